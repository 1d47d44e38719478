//! A cap on the certificates a client may present, checked before rustls
//! verifies any of them. Building a path through many intermediates costs
//! the server a signature check per candidate: a leaf with a hundred fake
//! intermediates named like our CA (made without its key) cost 9.5 ms of
//! CPU per handshake against 0.4 ms, so three such clients took a core.
//! Real chains are a leaf and one or two intermediates.

use std::{fmt, sync::Arc};

use rustls::{
    client::danger::HandshakeSignatureValid,
    pki_types::{CertificateDer, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};

/// `inner`, refusing a chain of more than `max` certificates (the leaf
/// included) before it looks at any.
#[derive(Debug)]
pub struct ShortChains {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub max: usize,
}

/// Why a chain was refused unverified.
struct TooLong {
    presented: usize,
    max: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the client presented {} certificates, more than TLS_MAX_CLIENT_CHAIN ({})",
            self.presented, self.max
        )
    }
}

/// As Display: rustls's handshake error shows its cause with `{:?}`, and
/// that is what the log line says.
impl fmt::Debug for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TooLong {}

impl ClientCertVerifier for ShortChains {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let presented = 1 + intermediates.len();
        if presented > self.max {
            let too_long = TooLong { presented, max: self.max };
            return Err(Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(too_long)))));
        }
        self.inner.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use certgen::{Authority, LeafSpec};
    use rustls::{pki_types::pem::PemObject, server::WebPkiClientVerifier, RootCertStore};

    use super::*;

    /// A client certificate from `ca`, and the verifier for `ca` capped at `max`.
    fn setup(max: usize) -> (CertificateDer<'static>, ShortChains) {
        let ca = Authority::new("ca").unwrap();
        let leaf = ca.issue(&LeafSpec::client("service2")).unwrap();
        let leaf = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        (leaf, ShortChains { inner, max })
    }

    #[test]
    fn a_chain_longer_than_the_cap_is_refused_unverified_with_the_setting_named() {
        let (leaf, verifier) = setup(2);
        // Copies of the leaf as intermediates: the inner verifier would
        // say "unknown issuer"; the cap must refuse before it looks.
        let intermediates = [leaf.clone(), leaf.clone()];

        let refused = verifier.verify_client_cert(&leaf, &intermediates, UnixTime::now()).unwrap_err();

        assert_eq!(
            format!("{refused:?}")
                .matches("the client presented 3 certificates, more than TLS_MAX_CLIENT_CHAIN (2)")
                .count(),
            1,
            "{refused:?}"
        );
    }

    #[test]
    fn a_chain_within_the_cap_is_left_to_the_inner_verifier() {
        let (leaf, verifier) = setup(2);
        let stranger = Authority::new("another ca").unwrap().issue(&LeafSpec::client("service2")).unwrap();
        let stranger = CertificateDer::from_pem_slice(stranger.cert_pem.as_bytes()).unwrap();

        let ours = verifier.verify_client_cert(&leaf, std::slice::from_ref(&leaf), UnixTime::now());
        let theirs = verifier.verify_client_cert(&stranger, &[], UnixTime::now());

        assert!(ours.is_ok(), "{ours:?}");
        assert!(
            matches!(theirs, Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))),
            "{theirs:?}"
        );
    }
}
