//! Mutual TLS between the services, with certificates that are re-read from
//! disk while the service runs.
//!
//! tonic's own TLS settings are fixed at start, so TLS is terminated here
//! with rustls: the server side runs its own accept loop ([`server`]) and the
//! client side its own connector ([`client`]); both take the *current*
//! config from a [`Reloader`] for every new handshake. Certificate checks
//! are rustls's own (`WebPkiClientVerifier`, and `WebPkiServerVerifier`
//! behind `with_root_certificates`).

mod chain;
pub mod client;
mod identity;
pub mod server;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use observability::metrics::{Metrics, TlsFigures};
use rustls::{
    client::{verify_server_cert_signed_by_trust_anchor, verify_server_name},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, UnixTime},
    server::{ParsedCertificate, WebPkiClientVerifier},
    CertificateError, ClientConfig, RootCertStore, ServerConfig,
};
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A DNS name or IP address a server certificate must cover.
pub use rustls::pki_types::ServerName;

/// ALPN for gRPC: HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

/// TLS 1.3 preferred, 1.2 the minimum.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

pub use settings::TlsFiles;

pub use self::identity::{identities, Identity, Logged};

/// Loads the TLS material `args` names with `load` (a server or client
/// reloader), or warns loudly and returns `None` when TLS is off.
pub fn load<C>(
    args: &settings::TlsArgs,
    load: impl FnOnce(TlsFiles) -> Result<Arc<Reloader<C>>, TlsError>,
) -> std::io::Result<Option<Arc<Reloader<C>>>> {
    let Some(files) = args.files().map_err(std::io::Error::other)? else {
        tracing::warn!(
            "TLS_MODE=insecure: gRPC between the services is PLAINTEXT, neither encrypted nor \
             authenticated. Use it only for experiments against plaintext peers."
        );
        return Ok(None);
    };
    load(files).map(Some).map_err(std::io::Error::other)
}

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

    fn parse(files: &TlsFiles, role: &Role, cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Self, TlsError> {
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

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

/// What the reloader knows, for logs, health and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsStatus {
    /// Serial of the certificate in use, lowercase hex.
    pub serial: String,
    /// notAfter of the certificate in use, seconds since the Unix epoch.
    pub not_after: i64,
    /// Replacements applied since start.
    pub reloads: u64,
    /// Replacements refused since start (unreadable, invalid, expired...).
    pub reload_failures: u64,
    /// Why the latest replacement was refused, until one succeeds.
    pub last_error: Option<String>,
}

/// Holds the config built from the files on disk, and swaps in a new one
/// when their content changes and the new content is good.
pub struct Reloader<C> {
    files: TlsFiles,
    role: Role,
    build: Build<C>,
    current: ArcSwap<C>,
    state: Mutex<ReloadState>,
}

struct ReloadState {
    /// What the files held at the last look (or why they could not be
    /// read), so an unchanged or still-broken replacement is not retried
    /// and logged again on every poll.
    seen: Result<[Vec<u8>; 3], String>,
    status: TlsStatus,
}

/// Makes a config from the material on disk.
type Build<C> = Box<dyn Fn(&Material) -> Result<C, TlsError> + Send + Sync>;

/// Certificates a client may present (TLS_MAX_CLIENT_CHAIN's default).
pub const MAX_CLIENT_CHAIN: usize = 4;

pub type ServerReloader = Reloader<ServerConfig>;
pub type ClientReloader = Reloader<ClientConfig>;

// === impl Reloader ===

impl Reloader<ServerConfig> {
    /// A server's material; its certificate must cover `name` when given
    /// (see [`Role::Server`]); clients may present [`MAX_CLIENT_CHAIN`]
    /// certificates.
    pub fn server(files: TlsFiles, name: Option<ServerName<'static>>) -> Result<Arc<Self>, TlsError> {
        Self::server_with_chain_cap(files, name, MAX_CLIENT_CHAIN)
    }

    /// The same, with clients presenting at most `max_client_chain`
    /// certificates, leaf included.
    pub fn server_with_chain_cap(
        files: TlsFiles,
        name: Option<ServerName<'static>>,
        max_client_chain: usize,
    ) -> Result<Arc<Self>, TlsError> {
        let build = Box::new(move |material: &Material| material.server_config(max_client_chain));
        Self::load(files, Role::Server { name }, build)
    }
}

impl Reloader<ClientConfig> {
    pub fn client(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        Self::load(files, Role::Client, Box::new(Material::client_config))
    }
}

impl<C: Send + Sync + 'static> Reloader<C> {
    fn load(files: TlsFiles, role: Role, build: Build<C>) -> Result<Arc<Self>, TlsError> {
        let contents = [read(&files.cert)?, read(&files.key)?, read(&files.ca)?];
        let material = Material::parse(&files, &role, &contents[0], &contents[1], &contents[2])?;
        let config = build(&material)?;
        let status = TlsStatus {
            serial: material.serial,
            not_after: material.not_after,
            reloads: 0,
            reload_failures: 0,
            last_error: None,
        };
        tracing::info!(cert = %files.cert.display(), serial = %status.serial, "TLS material loaded");
        Ok(Arc::new(Self {
            files,
            role,
            build,
            current: ArcSwap::from_pointee(config),
            state: Mutex::new(ReloadState { seen: Ok(contents), status }),
        }))
    }

    /// The config for the next handshake.
    pub fn current(&self) -> Arc<C> {
        self.current.load_full()
    }

    /// Reports this material's state in `metrics` at each scrape.
    pub fn report_to(self: &Arc<Self>, metrics: &Metrics) {
        let this = Arc::downgrade(self);
        metrics.report_tls(move || {
            this.upgrade().map(|reloader| {
                let status = reloader.status();
                TlsFigures {
                    not_after: status.not_after,
                    reloads: status.reloads,
                    reload_failures: status.reload_failures,
                }
            })
        });
    }

    pub fn status(&self) -> TlsStatus {
        self.lock().status.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReloadState> {
        // A panic elsewhere while holding the lock leaves valid data.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Re-reads the files; swaps in new material if it changed and is good,
    /// otherwise keeps what is in use and records why.
    pub fn reload_if_changed(&self) {
        let seen = (|| Ok([read(&self.files.cert)?, read(&self.files.key)?, read(&self.files.ca)?]))()
            .map_err(|e: TlsError| e.to_string());
        let mut state = self.lock();
        if state.seen == seen {
            return;
        }
        let outcome = match &seen {
            Ok([cert, key, ca]) => Material::parse(&self.files, &self.role, cert, key, ca)
                .and_then(|m| (self.build)(&m).map(|config| (m, config)))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        state.seen = seen;
        match outcome {
            Ok((material, config)) => {
                self.current.store(Arc::new(config));
                let status = &mut state.status;
                status.reloads += 1;
                status.last_error = None;
                status.serial = material.serial;
                status.not_after = material.not_after;
                tracing::info!(serial = %status.serial, "TLS material reloaded; new handshakes use it");
            }
            Err(error) => {
                state.status.reload_failures += 1;
                tracing::error!(
                    %error,
                    serial_in_use = %state.status.serial,
                    "TLS material on disk was refused; the previous material stays in use"
                );
                state.status.last_error = Some(error);
            }
        }
    }

    /// Polls the files every `interval` until `stop`. Polling the content
    /// catches Kubernetes' Secret updates, which swap a symlink to a new
    /// directory: a watch on the files themselves would miss that.
    pub fn spawn_watcher(self: &Arc<Self>, interval: Duration, stop: CancellationToken) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Some(reloader) = this.upgrade() else { return };
                // File reads block: keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use certgen::{Authority, LeafSpec};

    use super::*;

    struct Files {
        _dir: tempfile::TempDir,
        files: TlsFiles,
    }

    impl Files {
        fn write(&self, cert: &str, key: &str) {
            std::fs::write(&self.files.cert, cert).unwrap();
            std::fs::write(&self.files.key, key).unwrap();
        }
    }

    fn files(ca: &Authority) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            ca: dir.path().join("ca.crt"),
        };
        std::fs::write(&files.ca, ca.cert_pem()).unwrap();
        Files { _dir: dir, files }
    }

    #[test]
    fn a_good_replacement_is_swapped_in_and_a_broken_one_is_refused_once() {
        let ca = Authority::new("ca").unwrap();
        let first = ca.issue(&LeafSpec::server("s", &["s"])).unwrap();
        let second = ca.issue(&LeafSpec::server("s", &["s"])).unwrap();
        let files = files(&ca);
        files.write(&first.cert_pem, &first.key_pem);
        let reloader = Reloader::server(files.files.clone(), None).unwrap();
        let before = reloader.current();

        files.write("not a certificate", &first.key_pem);
        reloader.reload_if_changed();
        reloader.reload_if_changed();
        let refused = reloader.status();
        assert!(Arc::ptr_eq(&before, &reloader.current()), "the old config stays in use");
        assert_eq!((refused.serial.as_str(), refused.reload_failures), (first.serial_hex.as_str(), 1));
        assert!(refused.last_error.is_some());

        files.write(&second.cert_pem, &second.key_pem);
        reloader.reload_if_changed();
        let swapped = reloader.status();
        assert!(!Arc::ptr_eq(&before, &reloader.current()));
        assert_eq!((swapped.serial.as_str(), swapped.reloads), (second.serial_hex.as_str(), 1));
        assert_eq!(swapped.last_error, None);
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
        let expired = Reloader::server(files.files.clone(), None).err().unwrap().to_string();
        files.write(&other.cert_pem, &stale.key_pem);
        let mismatched = Reloader::server(files.files.clone(), None).err().unwrap().to_string();

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

        for (leaf, client) in
            [(&stranger, false), (&client_only, false), (&other_name, false), (&server_only, true)]
        {
            files.write(&leaf.cert_pem, &leaf.key_pem);
            let refused = match client {
                false => Reloader::server(files.files.clone(), name()).err(),
                true => Reloader::client(files.files.clone()).err(),
            };
            refusals.push(refused.map(|e| e.to_string()).unwrap_or_default());
        }

        assert!(refusals[0].contains("not issued by a CA in"), "{}", refusals[0]);
        assert!(refusals[1].contains("lacks the serverAuth extended key usage"), "{}", refusals[1]);
        assert!(refusals[2].contains("does not cover \"s\""), "{}", refusals[2]);
        assert!(refusals[3].contains("lacks the clientAuth extended key usage"), "{}", refusals[3]);
        files.write(&other_name.cert_pem, &other_name.key_pem);
        assert!(Reloader::server(files.files.clone(), None).is_ok(), "no name set, none checked");
    }

    #[test]
    fn identities_are_the_dns_and_uri_sans_each_with_its_type() {
        let ca = Authority::new("ca").unwrap();
        let leaf =
            ca.issue(&LeafSpec::client("service2").with_uri("spiffe://cluster.local/ns/x/sa/y")).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();

        assert_eq!(
            identities(&der),
            [Identity::Dns("service2".into()), Identity::Uri("spiffe://cluster.local/ns/x/sa/y".into())]
        );
    }
}
