//! Mutual TLS between the services, with certificates that are re-read from
//! disk while the service runs.
//!
//! tonic's own TLS settings are fixed at start, so TLS is terminated here
//! with rustls: the server side runs its own accept loop ([`server`]) and the
//! client side its own connector ([`client`]); both take the *current*
//! config from a [`Reloader`] for every new handshake. Certificate checks
//! are rustls's own (`WebPkiClientVerifier`, and `WebPkiServerVerifier`
//! behind `with_root_certificates`).
//!
//! - `material`: reading the three files and checking them as the peer
//!   would, into a [`Material`] and the rustls configs built from it;
//! - `reload`: rotation, the [`Reloader`] and its [`TlsStatus`];
//! - `chain`: the cap on the certificates a client may present;
//! - `identity`: who a certificate names ([`Identity`]);
//! - this module: whether TLS is on at all ([`load`]).

mod chain;
pub mod client;
mod identity;
mod material;
mod reload;
pub mod server;

use std::sync::Arc;

/// A DNS name or IP address a server certificate must cover.
pub use rustls::pki_types::ServerName;
pub use settings::TlsFiles;

pub use self::{
    identity::{identities, Identity, Logged},
    material::{Material, Role, TlsError},
    reload::{ClientReloader, Reloader, ServerReloader, TlsStatus, MAX_CLIENT_CHAIN},
};

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

/// Certificates written where a test's [`TlsFiles`] point.
#[cfg(test)]
pub(crate) mod testing {
    use certgen::Authority;

    use super::TlsFiles;

    pub(crate) struct Files {
        _dir: tempfile::TempDir,
        pub(crate) files: TlsFiles,
    }

    impl Files {
        pub(crate) fn write(&self, cert: &str, key: &str) {
            std::fs::write(&self.files.cert, cert).unwrap();
            std::fs::write(&self.files.key, key).unwrap();
        }
    }

    /// Files in a new directory, with `ca`'s certificate as the CA.
    pub(crate) fn files(ca: &Authority) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            ca: dir.path().join("ca.crt"),
        };
        std::fs::write(&files.ca, ca.cert_pem()).unwrap();
        Files { _dir: dir, files }
    }
}
