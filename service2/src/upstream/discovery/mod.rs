//! Discovery: which service1 replicas there are. A fixed target is
//! published once; a DNS target is looked up again and again, and each
//! answer goes through [`DnsPolicy`], which decides what to believe and
//! when to ask next.

mod dns;
mod target;

use std::{
    fmt,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use self::{
    dns::{Answer, Resolver, ResolverError},
    target::Target,
};
use crate::upstream::Address;

/// Never look up DNS more often than this, however many failures ask to.
const MIN_RESOLVE_SPACING: Duration = Duration::from_millis(250);
/// Empty DNS answers in a row before every replica is dropped.
const CONFIRM_EMPTY_ANSWERS: u32 = 2;

/// Asks discovery to look again soon: a connection failed, or a call found
/// no ready replica. Cheap to clone; requests made while a lookup waits
/// coalesce into one.
#[derive(Clone, Default)]
pub struct Refresh(Arc<Notify>);

// === impl Refresh ===

impl Refresh {
    pub fn request(&self) {
        self.0.notify_one();
    }

    /// Returns at the next request, or at once if one was made since the
    /// last time this returned.
    pub async fn requested(&self) {
        self.0.notified().await;
    }
}

/// Starts following `target`: `publish` gets its replicas once for a fixed
/// target; for DNS, every answer that changes what is believed, looked up
/// every `interval`, sooner within the records' TTL or on a [`Refresh`],
/// until `stop`.
pub fn follow(
    target: Target,
    resolver: Option<Resolver>,
    interval: Duration,
    refresh: Refresh,
    stop: CancellationToken,
    publish: impl Fn(Vec<Address>) + Send + 'static,
) {
    match (target, resolver) {
        (Target::Single(address), _) => publish(vec![address]),
        (Target::Static(addresses), _) => publish(addresses),
        (Target::Dns { name, port, .. }, Some(resolver)) => {
            let policy = DnsPolicy::new(name, port, interval);
            tokio::spawn(resolve_loop(resolver, policy, refresh, stop, publish));
        }
        (Target::Dns { name, .. }, None) => tracing::error!(%name, "no resolver for a DNS target"),
    }
}

async fn resolve_loop(
    resolver: Resolver,
    mut policy: DnsPolicy,
    refresh: Refresh,
    stop: CancellationToken,
    publish: impl Fn(Vec<Address>),
) {
    loop {
        let answer = resolver.lookup(&policy.name).await;
        let (believed, wait) = policy.on_answer(answer, Instant::now());
        if let Some(addresses) = believed {
            publish(addresses);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = refresh.requested() => {
                tokio::time::sleep(MIN_RESOLVE_SPACING).await;
            }
        }
    }
}

/// What to make of each DNS answer, and how long to wait before the next
/// lookup: the rules alone, without the network or a clock.
struct DnsPolicy {
    name: String,
    port: u16,
    interval: Duration,
    /// Empty answers in a row.
    empty_answers: u32,
    /// How many replicas the last published answer had.
    known: usize,
}

// === impl DnsPolicy ===

impl DnsPolicy {
    fn new(name: String, port: u16, interval: Duration) -> Self {
        Self { name, port, interval, empty_answers: 0, known: 0 }
    }

    /// The replicas to publish, if this answer changes what is believed,
    /// and the wait before the next lookup.
    fn on_answer(
        &mut self,
        answer: Result<Answer, impl fmt::Display>,
        now: Instant,
    ) -> (Option<Vec<Address>>, Duration) {
        let name = &self.name;
        if !matches!(answer, Ok(Answer::Nothing)) {
            self.empty_answers = 0;
        }
        let (believed, wait) = match answer {
            Ok(Answer::Found(ips, valid_until)) => {
                let port = self.port;
                let addresses = ips.into_iter().map(|ip| Address::from(SocketAddr::new(ip, port))).collect();
                (Some(addresses), self.interval.min(valid_until.saturating_duration_since(now)))
            }
            Ok(Answer::Nothing) => {
                // With several nameservers in resolv.conf, one that does
                // not know the name can answer first. Believe "no
                // replicas" only when it is said twice in a row.
                self.empty_answers += 1;
                if self.empty_answers >= CONFIRM_EMPTY_ANSWERS || self.known == 0 {
                    (Some(Vec::new()), self.interval)
                } else {
                    tracing::warn!(%name, "DNS says service1 has no replicas; asking again before believing it");
                    (None, MIN_RESOLVE_SPACING)
                }
            }
            Err(error) => {
                // Keep the replicas we know: DNS being down says nothing
                // about them.
                tracing::warn!(%name, %error, "DNS lookup of service1 failed; keeping the known replicas");
                (None, self.interval)
            }
        };
        if let Some(addresses) = &believed {
            self.known = addresses.len();
        }
        (believed, wait.max(MIN_RESOLVE_SPACING))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    fn policy() -> DnsPolicy {
        DnsPolicy::new("service1.test".into(), 50051, INTERVAL)
    }

    fn found(ips: &[&str], ttl: Duration, now: Instant) -> Result<Answer, &'static str> {
        Ok(Answer::Found(ips.iter().map(|ip| ip.parse::<IpAddr>().unwrap()).collect(), now + ttl))
    }

    fn addresses(texts: &[&str]) -> Vec<Address> {
        texts.iter().map(|t| Address::parse(t).unwrap()).collect()
    }

    #[test]
    fn found_records_are_published_with_the_target_port() {
        let now = Instant::now();

        let (believed, _) = policy().on_answer(found(&["10.0.0.1", "fd00::1"], INTERVAL, now), now);

        assert_eq!(believed, Some(addresses(&["10.0.0.1:50051", "[fd00::1]:50051"])));
    }

    #[test]
    fn records_are_looked_up_again_within_their_ttl_or_the_interval_whichever_is_sooner() {
        let now = Instant::now();
        let mut policy = policy();

        let (_, short) = policy.on_answer(found(&["10.0.0.1"], Duration::from_secs(1), now), now);
        let (_, long) = policy.on_answer(found(&["10.0.0.1"], Duration::from_secs(60), now), now);

        assert_eq!((short, long), (Duration::from_secs(1), INTERVAL));
    }

    #[test]
    fn lookups_are_never_closer_together_than_the_minimum_spacing_even_with_a_zero_ttl() {
        let now = Instant::now();

        let (_, wait) = policy().on_answer(found(&["10.0.0.1"], Duration::ZERO, now), now);

        assert_eq!(wait, MIN_RESOLVE_SPACING);
    }

    #[test]
    fn a_single_empty_answer_keeps_the_known_replicas_and_asks_again_soon() {
        let now = Instant::now();
        let mut policy = policy();
        policy.on_answer(found(&["10.0.0.1"], INTERVAL, now), now);

        let (believed, wait) = policy.on_answer(Ok::<_, &str>(Answer::Nothing), now);

        assert_eq!((believed, wait), (None, MIN_RESOLVE_SPACING));
    }

    #[test]
    fn two_empty_answers_in_a_row_drop_every_replica() {
        let now = Instant::now();
        let mut policy = policy();
        policy.on_answer(found(&["10.0.0.1"], INTERVAL, now), now);

        policy.on_answer(Ok::<_, &str>(Answer::Nothing), now);
        let (believed, wait) = policy.on_answer(Ok::<_, &str>(Answer::Nothing), now);

        assert_eq!((believed, wait), (Some(Vec::new()), INTERVAL));
    }

    #[test]
    fn empty_answers_with_records_between_them_are_not_in_a_row() {
        let now = Instant::now();
        let mut policy = policy();
        policy.on_answer(found(&["10.0.0.1"], INTERVAL, now), now);

        policy.on_answer(Ok::<_, &str>(Answer::Nothing), now);
        policy.on_answer(found(&["10.0.0.1"], INTERVAL, now), now);
        let (believed, _) = policy.on_answer(Ok::<_, &str>(Answer::Nothing), now);

        assert_eq!(believed, None);
    }

    #[test]
    fn an_empty_answer_is_believed_at_once_when_no_replica_is_known() {
        let now = Instant::now();

        let (believed, _) = policy().on_answer(Ok::<_, &str>(Answer::Nothing), now);

        assert_eq!(believed, Some(Vec::new()));
    }

    #[test]
    fn a_failed_lookup_keeps_the_known_replicas() {
        let now = Instant::now();
        let mut policy = policy();
        policy.on_answer(found(&["10.0.0.1"], INTERVAL, now), now);

        let (believed, wait) = policy.on_answer(Err::<Answer, _>("connection refused"), now);

        assert_eq!((believed, wait), (None, INTERVAL));
        let (believed, _) = policy.on_answer(Ok::<_, &str>(Answer::Nothing), now);
        assert_eq!(believed, None, "one empty answer after a failure is still not believed");
    }
}
