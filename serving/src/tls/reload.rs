//! Rotation: the config in use, swapped for one built from new material
//! when the files' content changes and the new material is good, and
//! what an operator sees of it ([`TlsStatus`], metrics, log lines).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use observability::metrics::{Metrics, TlsFigures};
use rustls::{ClientConfig, ServerConfig};
use tokio_util::sync::CancellationToken;

use super::{
    material::{read, Material, Role, TlsError},
    ServerName, TlsFiles,
};

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
    use crate::tls::testing::files;

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
}
