//! The pool: the endpoints discovery last published, and a ready one for
//! each call. A Kubernetes ClusterIP Service balances TCP connections, and
//! one HTTP/2 connection carries every call, so service2 keeps a connection
//! to each replica itself ([`Endpoint`]) and picks one per call
//! ([`selection`]).
//!
//! With nothing ready a call waits at most as long as it is told, then
//! fails: unlike with tonic's balanced channel, it never waits for its
//! deadline because every endpoint is gone.

use std::{collections::HashMap, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::upstream::{
    discovery::Refresh,
    endpoint::{Dialer, Endpoint, Lease, PoolShared},
    metrics::EndpointLabels,
    outlier::{EjectionPolicy, Ejections},
    selection::{self, Candidate},
    Address, UpstreamMetrics,
};

/// Picks tried before waiting for a readiness change. An endpoint can fail
/// between being chosen and being leased; it is then not ready, so the
/// next pick chooses among the others.
const LEASE_TRIES: usize = 3;

/// service1's replicas as service2 sees them.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    dialer: Dialer,
    shared: PoolShared,
    metrics: Arc<UpstreamMetrics>,
    stop: CancellationToken,
}

// === impl Pool ===

impl Pool {
    /// An empty pool; `refresh` is asked when an endpoint cannot connect or
    /// a call finds none ready; replicas that keep failing are ejected as
    /// `ejection` says. Its endpoints stop with `stop`.
    pub fn new(
        dialer: Dialer,
        refresh: Refresh,
        ejection: EjectionPolicy,
        metrics: Arc<UpstreamMetrics>,
        stop: CancellationToken,
    ) -> Self {
        let shared = PoolShared {
            became_ready: Default::default(),
            refresh,
            ejections: Arc::new(Ejections::new(ejection)),
            metrics: metrics.clone(),
            typical: Default::default(),
        };
        let inner = Arc::new(Inner { endpoints: Default::default(), dialer, shared, metrics, stop });
        Self { inner }
    }

    /// Reports the ready and known endpoints in `registry` at each scrape
    /// (cheaper to count then than to keep current on every change).
    pub fn report_to(&self, registry: &observability::Metrics) {
        let weak = Arc::downgrade(&self.inner);
        registry.on_scrape(move || {
            if let Some(inner) = weak.upgrade() {
                let pool = Pool { inner };
                let (ready, known) = pool.counts();
                pool.inner.metrics.ready.set(ready as i64);
                pool.inner.metrics.known.set(known as i64);
                pool.inner.metrics.ejected.set(pool.inner.shared.ejections.ejected() as i64);
            }
        });
    }

    /// Makes the pool match `addresses`: new replicas start connecting,
    /// removed ones take no new calls and close once their calls finish.
    pub fn set_endpoints(&self, addresses: Vec<Address>) {
        let current = self.inner.endpoints.load();
        if current.len() == addresses.len() && current.iter().all(|e| addresses.contains(e.address())) {
            return;
        }
        let mut known: HashMap<&Address, &Arc<Endpoint>> = current.iter().map(|e| (e.address(), e)).collect();
        let mut next = Vec::with_capacity(addresses.len());
        for address in addresses {
            match known.remove(&address) {
                Some(existing) => next.push(existing.clone()),
                None => {
                    tracing::info!(endpoint = %address, "service1 replica added");
                    let labels = EndpointLabels { endpoint: address.clone() };
                    let calls = self.inner.metrics.calls.get_or_create(&labels).clone();
                    let (dialer, shared) = (self.inner.dialer.clone(), self.inner.shared.clone());
                    next.push(Endpoint::spawn(address, calls, dialer, shared, self.inner.stop.child_token()));
                }
            }
        }
        for gone in known.into_values() {
            tracing::info!(endpoint = %gone.address(), "service1 replica removed; it gets no new calls");
            gone.remove();
            // Pods come and go: keep the label set bounded.
            self.inner.metrics.calls.remove(&EndpointLabels { endpoint: gone.address().clone() });
        }
        self.inner.shared.ejections.set_known(next.len());
        self.inner.endpoints.store(Arc::new(next));
    }

    /// A ready replica, waiting at most `wait` for one; prefers one other
    /// than `avoid` (the replica a retry just failed on), and one that is
    /// not ejected.
    pub async fn ready(&self, wait: Duration, avoid: Option<&Address>) -> Option<Lease> {
        self.wait_for(wait, || self.pick(avoid)).await
    }

    /// Whether a replica is ready, or becomes ready within `wait`. Takes no
    /// lease, so it counts no call: what the startup wait asks.
    pub async fn any_ready(&self, wait: Duration) -> bool {
        let any = || self.inner.endpoints.load().iter().any(|e| e.is_ready()).then_some(());
        self.wait_for(wait, any).await.is_some()
    }

    /// `look` until it finds something, at most for `wait`, looking again
    /// whenever an endpoint becomes ready.
    async fn wait_for<T>(&self, wait: Duration, look: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so a replica that becomes ready in
            // between is not missed.
            let became_ready = self.inner.shared.became_ready.notified();
            tokio::pin!(became_ready);
            became_ready.as_mut().enable();
            if let Some(found) = look() {
                return Some(found);
            }
            // None ready: perhaps DNS knows of others by now.
            self.inner.shared.refresh.request();
            if tokio::time::timeout_at(deadline, became_ready).await.is_err() {
                return None;
            }
        }
    }

    fn pick(&self, avoid: Option<&Address>) -> Option<Lease> {
        let endpoints = self.inner.endpoints.load();
        let mut rng = fastrand::Rng::new();
        for _ in 0..LEASE_TRIES {
            let avoided = |e: &Arc<Endpoint>| e.is_ejected() || Some(e.address()) == avoid;
            let endpoint = selection::p2c(&endpoints, avoided, &mut rng)?;
            if let Some(lease) = endpoint.lease() {
                return Some(lease);
            }
        }
        None
    }

    /// (ready, known) replica counts.
    pub fn counts(&self) -> (usize, usize) {
        let endpoints = self.inner.endpoints.load();
        (endpoints.iter().filter(|e| e.is_ready()).count(), endpoints.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool whose endpoints never connect (nothing listens on port 1).
    fn pool(metrics: Arc<UpstreamMetrics>, stop: &CancellationToken) -> Pool {
        Pool::new(Dialer::plaintext(), Refresh::default(), EjectionPolicy::default(), metrics, stop.clone())
    }

    fn addresses(texts: &[&str]) -> Vec<Address> {
        texts.iter().map(|t| Address::parse(t).unwrap()).collect()
    }

    fn endpoints(pool: &Pool) -> Vec<Arc<Endpoint>> {
        pool.inner.endpoints.load().to_vec()
    }

    #[tokio::test]
    async fn the_same_replicas_published_again_in_another_order_keep_their_endpoints() {
        let stop = CancellationToken::new();
        let pool = pool(Default::default(), &stop);
        pool.set_endpoints(addresses(&["127.0.0.1:1", "127.0.0.2:1"]));
        let before = endpoints(&pool);

        pool.set_endpoints(addresses(&["127.0.0.2:1", "127.0.0.1:1"]));

        let after = endpoints(&pool);
        assert!(before.iter().zip(&after).all(|(b, a)| Arc::ptr_eq(b, a)));
        assert_eq!(pool.counts(), (0, 2));
        stop.cancel();
    }

    #[tokio::test]
    async fn a_removed_replica_loses_its_calls_series_and_a_kept_one_keeps_it() {
        let stop = CancellationToken::new();
        let metrics = Arc::new(UpstreamMetrics::default());
        let pool = pool(metrics.clone(), &stop);
        pool.set_endpoints(addresses(&["127.0.0.1:1", "127.0.0.2:1"]));

        pool.set_endpoints(addresses(&["127.0.0.2:1", "127.0.0.3:1"]));

        let series =
            |text| metrics.calls.get(&EndpointLabels { endpoint: Address::parse(text).unwrap() }).is_some();
        assert_eq!(
            (series("127.0.0.1:1"), series("127.0.0.2:1"), series("127.0.0.3:1")),
            (false, true, true)
        );
        assert_eq!(pool.counts(), (0, 2));
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_endpoint_ready_a_pick_waits_as_long_as_it_is_told_and_asks_discovery_to_look_again() {
        let stop = CancellationToken::new();
        let refresh = Refresh::default();
        let pool = Pool::new(
            Dialer::plaintext(),
            refresh.clone(),
            EjectionPolicy::default(),
            Default::default(),
            stop.clone(),
        );
        let started = tokio::time::Instant::now();

        assert!(pool.ready(Duration::from_millis(300), None).await.is_none());

        assert_eq!(started.elapsed(), Duration::from_millis(300), "on tokio's paused clock");
        refresh.requested().await;
    }

    #[tokio::test]
    async fn waiting_for_a_ready_replica_takes_no_lease_and_counts_no_call() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = Address::from(listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut connection = h2::server::handshake(tcp).await.expect("server handshake");
            while let Some(Ok(_)) = connection.accept().await {}
        });
        let stop = CancellationToken::new();
        let metrics = Arc::new(UpstreamMetrics::default());
        let pool = pool(metrics.clone(), &stop);
        pool.set_endpoints(vec![address.clone()]);

        assert!(pool.any_ready(Duration::from_secs(10)).await);

        let calls = metrics.calls.get(&EndpointLabels { endpoint: address }).map(|c| c.get());
        assert_eq!(calls, Some(0));
        assert_eq!(pool.counts(), (1, 1));
        stop.cancel();
    }
}
