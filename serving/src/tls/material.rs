//! One consistent set of TLS material, read from the three files, parsed
//! and checked as the peer's handshake would check it ([`Material`],
//! [`Role`]), and the rustls configs built from it; [`TlsError`] says
//! what was wrong, naming the file.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    client::{verify_server_cert_signed_by_trust_anchor, verify_server_name},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, UnixTime},
    server::{ParsedCertificate, WebPkiClientVerifier},
    CertificateError, ClientConfig, RootCertStore, ServerConfig,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{chain, ServerName, TlsFiles};

/// ALPN for gRPC: HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

/// TLS 1.3 preferred, 1.2 the minimum.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
}

impl TlsError {
    fn invalid(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Invalid { path: path.to_owned(), reason: reason.to_string() }
    }
}

/// What a service's own certificate must be good for. It is checked with
/// the same code the peer's handshake runs (rustls and webpki), at start
/// and before every swap, so a replacement the peer would refuse is
/// refused here instead of failing every new connection later.
#[derive(Debug, Clone)]
pub enum Role {
    /// A server certificate: `serverAuth`, and covering `name` (the name
    /// clients check, `TLS_SERVER_NAME`) when one is configured.
    Server { name: Option<ServerName<'static>> },
    /// A client certificate: `clientAuth`.
    Client,
}

// === impl Role ===

impl Role {
    /// Why `chain` would not pass the peer's checks against `roots`, if
    /// it would not: it must chain to a CA in `roots` and carry the right
    /// extended key usage (and name).
    fn check(
        &self,
        chain: &[CertificateDer<'static>],
        roots: &Arc<RootCertStore>,
        files: &TlsFiles,
    ) -> Result<(), String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no certificate in the file".into());
        };
        let provider = provider();
        let now = UnixTime::now();
        let verified = match self {
            Self::Server { name } => ParsedCertificate::try_from(leaf).and_then(|parsed| {
                let algorithms = provider.signature_verification_algorithms.all;
                verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, now, algorithms)?;
                name.as_ref().map_or(Ok(()), |name| verify_server_name(&parsed, name))
            }),
            Self::Client => WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))
                .and_then(|verifier| verifier.verify_client_cert(leaf, intermediates, now).map(|_| ())),
        };
        verified.map_err(|error| self.explain(&error, files))
    }

    /// The reason an operator can act on.
    fn explain(&self, error: &rustls::Error, files: &TlsFiles) -> String {
        let usage = match self {
            Self::Server { .. } => "serverAuth",
            Self::Client => "clientAuth",
        };
        match error {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!("not issued by a CA in {}", files.ca.display()),
            rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            ) => format!("lacks the {usage} extended key usage"),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => match self {
                Self::Server { name: Some(name) } => {
                    format!("does not cover {:?}, the name clients check (TLS_SERVER_NAME)", name.to_str())
                }
                _ => "not valid for the expected name".into(),
            },
            other => format!("would be refused by the peer: {other}"),
        }
    }
}

/// One consistent set of certificate, key and CA, checked and parsed.
pub struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    /// The leaf's notAfter, seconds since the Unix epoch.
    pub not_after: i64,
}

// === impl Material ===

impl Material {
    /// Reads and checks the three files; nothing is used unless all of them
    /// are readable, parse, the leaf is valid now and would pass the peer's
    /// checks for `role`.
    pub fn load(files: &TlsFiles, role: &Role) -> Result<Self, TlsError> {
        Self::parse(files, role, &read(&files.cert)?, &read(&files.key)?, &read(&files.ca)?)
    }

    pub(super) fn parse(
        files: &TlsFiles,
        role: &Role,
        cert: &[u8],
        key: &[u8],
        ca: &[u8],
    ) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::invalid(&files.cert, e))?;
        let leaf =
            chain.first().ok_or_else(|| TlsError::invalid(&files.cert, "no certificate in the file"))?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::invalid(&files.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca_cert in CertificateDer::pem_slice_iter(ca) {
            let ca_cert = ca_cert.map_err(|e| TlsError::invalid(&files.ca, e))?;
            roots.add(ca_cert).map_err(|e| TlsError::invalid(&files.ca, e))?;
        }
        if roots.is_empty() {
            return Err(TlsError::invalid(&files.ca, "no CA certificate in the file"));
        }
        let (_, parsed) = X509Certificate::from_der(leaf).map_err(|e| TlsError::invalid(&files.cert, e))?;
        let validity = parsed.validity();
        if !validity.is_valid() {
            return Err(TlsError::invalid(
                &files.cert,
                format!("not valid now (valid from {} to {})", validity.not_before, validity.not_after),
            ));
        }
        let roots = Arc::new(roots);
        role.check(&chain, &roots, files).map_err(|reason| TlsError::invalid(&files.cert, reason))?;
        Ok(Self {
            serial: hex::encode(parsed.raw_serial()),
            not_after: validity.not_after.timestamp(),
            chain,
            key,
            roots,
        })
    }

    /// A server config that requires a client certificate chained to the
    /// CA, in a chain of at most `max_client_chain` certificates.
    pub fn server_config(&self, max_client_chain: usize) -> Result<ServerConfig, TlsError> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
        let verifier = Arc::new(chain::ShortChains { inner: verifier, max: max_client_chain });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            // Fails when the key does not belong to the certificate.
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }

    /// A client config that presents our certificate and verifies the
    /// server's against the CA.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use certgen::{Authority, LeafSpec};

    use super::*;
    use crate::tls::{testing::files, MAX_CLIENT_CHAIN};

    /// A server's config from the files, as the server would build it.
    fn server(files: &TlsFiles, name: Option<ServerName<'static>>) -> Result<ServerConfig, TlsError> {
        Material::load(files, &Role::Server { name })?.server_config(MAX_CLIENT_CHAIN)
    }

    fn client(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
        Material::load(files, &Role::Client)?.client_config()
    }

    #[test]
    fn expired_material_and_a_key_that_does_not_match_are_refused_at_start() {
        let ca = Authority::new("ca").unwrap();
        let now = std::time::SystemTime::now();
        let day = Duration::from_secs(86400);
        let stale = ca.issue(&LeafSpec::server("s", &["s"]).valid_between(now - 2 * day, now - day)).unwrap();
        let other = ca.issue(&LeafSpec::server("s", &["s"])).unwrap();
        let files = files(&ca);

        files.write(&stale.cert_pem, &stale.key_pem);
        let expired = server(&files.files, None).err().unwrap().to_string();
        files.write(&other.cert_pem, &stale.key_pem);
        let mismatched = server(&files.files, None).err().unwrap().to_string();

        assert!(expired.contains("not valid now"), "{expired}");
        assert!(mismatched.contains("certificate and key"), "{mismatched}");
    }

    #[test]
    fn material_the_peer_would_refuse_is_refused_with_the_reason() {
        let ca = Authority::new("ca").unwrap();
        let stranger = Authority::new("another ca").unwrap().issue(&LeafSpec::server("s", &["s"])).unwrap();
        let client_only = ca.issue(&LeafSpec::client("s")).unwrap();
        let server_only = ca.issue(&LeafSpec::server("c", &["c"])).unwrap();
        let other_name = ca.issue(&LeafSpec::server("t", &["t"])).unwrap();
        let files = files(&ca);
        let name = || Some(ServerName::try_from("s").unwrap());
        let mut refusals = Vec::new();

        for (leaf, as_client) in
            [(&stranger, false), (&client_only, false), (&other_name, false), (&server_only, true)]
        {
            files.write(&leaf.cert_pem, &leaf.key_pem);
            let refused = match as_client {
                false => server(&files.files, name()).err(),
                true => client(&files.files).err(),
            };
            refusals.push(refused.map(|e| e.to_string()).unwrap_or_default());
        }

        assert!(refusals[0].contains("not issued by a CA in"), "{}", refusals[0]);
        assert!(refusals[1].contains("lacks the serverAuth extended key usage"), "{}", refusals[1]);
        assert!(refusals[2].contains("does not cover \"s\""), "{}", refusals[2]);
        assert!(refusals[3].contains("lacks the clientAuth extended key usage"), "{}", refusals[3]);
        files.write(&other_name.cert_pem, &other_name.key_pem);
        assert!(server(&files.files, None).is_ok(), "no name set, none checked");
    }
}
