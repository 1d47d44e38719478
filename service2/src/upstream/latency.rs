//! Each replica's latency, as a peak-sensitive moving average (PeakEWMA,
//! as Finagle, Linkerd and tower's balancers keep it): what selection
//! multiplies by the calls in flight to compare two replicas.
//!
//! - A call slower than the estimate replaces it at once (the peak), so a
//!   replica that turns slow loses its share of calls with its first slow
//!   answer.
//! - A faster call pulls the estimate down gradually, weighted by how long
//!   ago the last one was ([`DECAY`]).
//! - Read without new calls, the estimate decays towards zero, so a replica
//!   left alone for being slow is tried again now and then: that is how
//!   selection finds out it has recovered.
//! - Until its first call ends, a replica (or a new connection to one) has
//!   no estimate of its own and is taken to be as fast as the replicas are
//!   on average ([`Typical`]): neither a black hole that draws every call
//!   while its first is still open, nor left out until a default decays.
//!
//! Two atomics rather than a lock: a pick reads two replicas' estimates and
//! every attempt writes one. Two writes racing can lose one sample, which
//! an average of thousands does not miss.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;

/// How fast old samples lose their weight: a sample this old counts for
/// 1/e of a new one (Linkerd's and tower's default).
pub const DECAY: Duration = Duration::from_secs(10);

/// `PeakEwma::estimate`'s bits before the first sample.
const UNMEASURED: u64 = u64::MAX;

/// A replica's latency estimate.
#[derive(Debug)]
pub struct PeakEwma {
    /// The estimate in nanoseconds, as `f64` bits; [`UNMEASURED`] until the
    /// first sample.
    estimate: AtomicU64,
    /// When it was last updated, in nanoseconds since `epoch`.
    updated: AtomicU64,
    epoch: Instant,
}

impl PeakEwma {
    pub fn new() -> Self {
        let epoch = Instant::now();
        Self { estimate: AtomicU64::new(UNMEASURED), updated: AtomicU64::new(0), epoch }
    }

    /// The estimate at `now`, in nanoseconds, decayed for the time since the
    /// last sample; `None` before the first.
    pub fn estimate(&self, now: Instant) -> Option<f64> {
        let (estimate, age) = self.read(now)?;
        Some(estimate * decay(age))
    }

    /// Takes the latency of one call that ended at `now`.
    pub fn observe(&self, rtt: Duration, now: Instant) {
        self.update(rtt, now, true);
    }

    /// The next estimate: the sample itself when it is the first, or (with
    /// `peak`) above the estimate; else the two weighted by the time since
    /// the last sample.
    fn update(&self, rtt: Duration, now: Instant, peak: bool) {
        let sample = rtt.as_nanos() as f64;
        let next = match self.read(now) {
            None => sample,
            Some((estimate, _)) if peak && sample > estimate => sample,
            Some((estimate, age)) => {
                let weight = decay(age);
                estimate * weight + sample * (1.0 - weight)
            }
        };
        self.estimate.store(next.to_bits(), Ordering::Relaxed);
        self.updated.store(self.nanos(now), Ordering::Relaxed);
    }

    /// Forgets every sample: a new connection starts afresh.
    pub fn reset(&self) {
        self.estimate.store(UNMEASURED, Ordering::Relaxed);
    }

    fn read(&self, now: Instant) -> Option<(f64, Duration)> {
        let bits = self.estimate.load(Ordering::Relaxed);
        if bits == UNMEASURED {
            return None;
        }
        let updated = Duration::from_nanos(self.updated.load(Ordering::Relaxed));
        Some((f64::from_bits(bits), now.saturating_duration_since(self.epoch).saturating_sub(updated)))
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new()
    }
}

/// The latency of every replica's calls together, a plain moving average
/// over about [`DECAY`]: what a replica not measured yet is taken to be.
#[derive(Debug, Default)]
pub struct Typical {
    inner: PeakEwma,
}

impl Typical {
    /// In nanoseconds; `None` before any call has ended.
    pub fn estimate(&self, now: Instant) -> Option<f64> {
        self.inner.read(now).map(|(estimate, _)| estimate)
    }

    pub fn observe(&self, rtt: Duration, now: Instant) {
        self.inner.update(rtt, now, false);
    }
}

/// The weight left to a sample `age` old.
fn decay(age: Duration) -> f64 {
    (-age.as_secs_f64() / DECAY.as_secs_f64()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1_000_000.0;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_replica_has_no_estimate_until_its_first_call_ends_and_then_that_calls_latency() {
        let ewma = PeakEwma::new();
        assert_eq!(ewma.estimate(Instant::now()), None);

        ewma.observe(ms(3), Instant::now());

        assert_eq!(ewma.estimate(Instant::now()), Some(3.0 * MS));
    }

    #[tokio::test(start_paused = true)]
    async fn one_slow_answer_raises_the_estimate_to_its_latency_at_once() {
        let ewma = PeakEwma::new();
        for _ in 0..100 {
            ewma.observe(ms(1), Instant::now());
        }

        ewma.observe(ms(200), Instant::now());

        assert_eq!(ewma.estimate(Instant::now()), Some(200.0 * MS));
    }

    #[tokio::test(start_paused = true)]
    async fn fast_answers_bring_the_estimate_down_gradually_not_at_once() {
        let ewma = PeakEwma::new();
        ewma.observe(ms(200), Instant::now());

        tokio::time::advance(ms(100)).await;
        ewma.observe(ms(1), Instant::now());
        let after_one = ewma.estimate(Instant::now()).unwrap();
        for _ in 0..1000 {
            tokio::time::advance(ms(100)).await;
            ewma.observe(ms(1), Instant::now());
        }
        let after_many = ewma.estimate(Instant::now()).unwrap();

        assert!(after_one > 150.0 * MS, "one fast answer 100 ms later: {after_one}");
        assert!(after_many < 2.0 * MS, "1,000 fast answers over 100 s: {after_many}");
    }

    #[tokio::test(start_paused = true)]
    async fn left_alone_the_estimate_decays_so_a_slow_replica_is_tried_again() {
        let ewma = PeakEwma::new();
        ewma.observe(ms(200), Instant::now());

        tokio::time::advance(DECAY).await;

        let decayed = ewma.estimate(Instant::now()).unwrap();
        assert!((decayed - 200.0 * MS / std::f64::consts::E).abs() < MS, "{decayed}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_forgets_every_sample() {
        let ewma = PeakEwma::new();
        ewma.observe(ms(1000), Instant::now());

        ewma.reset();

        assert_eq!(ewma.estimate(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_typical_latency_follows_every_call_without_jumping_to_a_slow_one_nor_decaying() {
        let typical = Typical::default();
        typical.observe(ms(1), Instant::now());

        tokio::time::advance(ms(1)).await;
        typical.observe(ms(1000), Instant::now());
        tokio::time::advance(DECAY * 10).await;

        let estimate = typical.estimate(Instant::now()).unwrap();
        assert!((1.0 * MS..2.0 * MS).contains(&estimate), "{estimate}");
    }
}
