//! Finding service1's replicas in DNS, with hickory. A headless Kubernetes
//! Service answers with one A (or AAAA) record per ready pod.

use std::{
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use hickory_resolver::{
    config::{NameServerConfig, ResolverConfig},
    net::{runtime::TokioRuntimeProvider, NetError},
    TokioResolver,
};

pub struct Resolver {
    inner: TokioResolver,
}

/// Why there is no resolver; service2 does not start without one.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("cannot read the system DNS config: {0}")]
    SystemConfig(#[source] NetError),
    #[error("cannot build the DNS resolver: {0}")]
    Build(#[source] NetError),
}

/// What a lookup found.
#[derive(Debug)]
pub enum Answer {
    /// The addresses, and until when the records may be trusted.
    Found(Vec<IpAddr>, Instant),
    /// The name has no addresses: no replica is ready.
    Nothing,
}

// === impl Resolver ===

impl Resolver {
    /// The system's resolver (`/etc/resolv.conf`), or the DNS server at
    /// `server` when one is given.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, ResolverError> {
        let mut builder = match server {
            None => TokioResolver::builder_tokio().map_err(ResolverError::SystemConfig)?,
            Some(server) => {
                let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut name_server.connections {
                    connection.port = server.port();
                }
                let config = ResolverConfig::from_name_servers(vec![name_server]);
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            }
        };
        // We look again on our own schedule and must see changes at once.
        builder.options_mut().cache_size = 0;
        let inner = builder.build().map_err(ResolverError::Build)?;
        Ok(Self { inner })
    }

    /// "No such name" and "no records" are an answer (no replica is ready);
    /// only a server that cannot be asked is an error.
    pub async fn lookup(&self, name: &str) -> Result<Answer, NetError> {
        match self.inner.lookup_ip(name).await {
            Ok(lookup) => {
                let mut addrs: Vec<IpAddr> = lookup.iter().collect();
                addrs.sort();
                addrs.dedup();
                if addrs.is_empty() {
                    return Ok(Answer::Nothing);
                }
                Ok(Answer::Found(addrs, lookup.valid_until()))
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Answer::Nothing),
            Err(e) => Err(e),
        }
    }
}
