//! Selection: power of two choices (p2c) on each replica's load, its
//! latency estimate ([`crate::upstream::latency`], PeakEWMA) times its
//! calls in flight plus one. Two random ready endpoints are compared and
//! the cheaper one wins, which steers calls away from a replica that is
//! busy or slow, where round-robin would keep feeding it; it needs no state
//! shared between calls or between service2 pods.
//!
//! Loads within [`COMPARABLE`] of each other count as equal and either
//! wins: PeakEWMA alone would send every call to whichever of several
//! equally healthy replicas answered last a few microseconds faster, and a
//! difference that small is noise, not a reason to stop spreading calls.
//! Calls in flight still decide between replicas that answer alike (one
//! call open against none is a factor of two), and a replica that answers
//! in 200 ms beside others in 1 ms loses every comparison until its
//! estimate has decayed back (see `latency`), so it keeps a share of calls
//! in proportion to its latency.
//!
//! It makes one pass over the endpoint list, reading each endpoint's
//! readiness once: O(n) in the replicas known, with no lock and no
//! allocation. A handful of replicas cost a few nanoseconds; keeping a
//! separate list of the ready ones, updated as connections come and go,
//! would make a pick O(1) at the price of that bookkeeping.
//!
//! Why not `tower::balance::p2c`: its `Balance` is one tower service that
//! owns the endpoints and is called through `&mut self`, so calls from
//! many requests at once would share it through `tower::buffer` (a channel
//! and a task between every call and its connection, which the direct h2
//! path in `h2_client` exists to avoid). It also keeps endpoints ready in
//! tower's sense by polling them, and routes with no notion of a retry
//! avoiding the replica it just failed on, or of an ejected replica that
//! is still the last resort; here both are one closure, and a pick is one
//! pass over a list shared without a lock.

/// Loads closer than this factor are taken as equal.
pub const COMPARABLE: f64 = 1.5;

/// What selection reads of an endpoint.
pub trait Candidate {
    fn is_ready(&self) -> bool;
    /// What a call sent there now would cost: comparable between
    /// endpoints, higher is worse.
    fn load(&self) -> f64;
}

/// A ready candidate chosen by p2c, or `None` when none is ready. A
/// candidate for which `avoid` is true (the one a retry just failed on, or
/// an ejected one) is chosen only when no other is ready.
pub fn p2c<'a, C: Candidate>(
    candidates: &'a [C],
    avoid: impl Fn(&C) -> bool,
    rng: &mut fastrand::Rng,
) -> Option<&'a C> {
    // Reservoir sampling: after each ready candidate, `pair` holds a
    // uniformly random pair of those seen so far.
    let mut pair: [Option<&C>; 2] = [None, None];
    let mut seen = 0;
    let mut avoided: Option<&C> = None;
    for candidate in candidates.iter().filter(|c| c.is_ready()) {
        if avoid(candidate) {
            // The least loaded of the avoided, should it come to that.
            if avoided.is_none_or(|a| candidate.load() < a.load()) {
                avoided = Some(candidate);
            }
            continue;
        }
        let slot = if seen < 2 { seen } else { rng.usize(..=seen) };
        if let Some(slot) = pair.get_mut(slot) {
            *slot = Some(candidate);
        }
        seen += 1;
    }
    match pair {
        [Some(a), Some(b)] => {
            let (load_a, load_b) = (a.load(), b.load());
            Some(if load_b > load_a * COMPARABLE {
                a
            } else if load_a > load_b * COMPARABLE {
                b
            } else if rng.bool() {
                // Comparable (all idle at low load, say): either, so that
                // calls still spread.
                a
            } else {
                b
            })
        }
        [Some(only), None] => Some(only),
        _ => avoided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Fake {
        name: &'static str,
        ready: bool,
        load: f64,
    }

    impl Candidate for Fake {
        fn is_ready(&self) -> bool {
            self.ready
        }

        fn load(&self) -> f64 {
            self.load
        }
    }

    /// A ready endpoint with `in_flight` calls open and 1 ms of latency.
    fn ready(name: &'static str, in_flight: usize) -> Fake {
        slow(name, in_flight, 1.0)
    }

    fn slow(name: &'static str, in_flight: usize, latency_ms: f64) -> Fake {
        Fake { name, ready: true, load: latency_ms * (in_flight + 1) as f64 }
    }

    fn not_ready(name: &'static str) -> Fake {
        Fake { name, ready: false, load: 0.0 }
    }

    /// The names picked in `rounds` picks, with a fixed seed.
    fn picks(candidates: &[Fake], avoid: Option<&str>, rounds: usize) -> Vec<&'static str> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..rounds)
            .map(|_| p2c(candidates, |c| Some(c.name) == avoid, &mut rng).map(|c| c.name).unwrap_or("none"))
            .collect()
    }

    fn count(picks: &[&str], name: &str) -> usize {
        picks.iter().filter(|p| **p == name).count()
    }

    #[test]
    fn nothing_is_picked_when_no_endpoint_is_ready() {
        assert_eq!(picks(&[], None, 10), vec!["none"; 10]);
        assert_eq!(picks(&[not_ready("a"), not_ready("b")], None, 10), vec!["none"; 10]);
    }

    #[test]
    fn a_not_ready_endpoint_is_never_picked_however_idle() {
        let endpoints = [not_ready("a"), ready("b", 50), not_ready("c"), ready("d", 70), not_ready("e")];

        let picks = picks(&endpoints, None, 1000);

        assert_eq!(count(&picks, "b") + count(&picks, "d"), 1000);
    }

    #[test]
    fn the_only_ready_endpoint_is_picked_every_time() {
        let endpoints = [not_ready("a"), ready("b", 9), not_ready("c")];

        assert_eq!(picks(&endpoints, None, 100), vec!["b"; 100]);
    }

    #[test]
    fn of_two_ready_endpoints_the_one_with_fewer_calls_in_flight_is_picked() {
        let endpoints = [ready("busy", 5), ready("idle", 0)];

        assert_eq!(picks(&endpoints, None, 100), vec!["idle"; 100]);
    }

    #[test]
    fn the_busiest_ready_endpoint_is_never_picked_since_it_loses_every_comparison() {
        let endpoints = [ready("a", 1), ready("b", 2), ready("busiest", 9), ready("c", 0)];

        let picks = picks(&endpoints, None, 1000);

        assert_eq!(count(&picks, "busiest"), 0);
        assert!(count(&picks, "a") > 0 && count(&picks, "b") > 0, "not only the least busy: {picks:?}");
    }

    #[test]
    fn equally_busy_endpoints_all_get_calls() {
        let endpoints = [ready("a", 0), ready("b", 0), ready("c", 0), ready("d", 0)];

        let picks = picks(&endpoints, None, 4000);

        for name in ["a", "b", "c", "d"] {
            // Uniform would be 1000 each.
            assert!(count(&picks, name) > 800, "{name}: {} of 4000", count(&picks, name));
        }
    }

    #[test]
    fn a_retry_avoids_the_endpoint_it_failed_on_while_another_is_ready() {
        let endpoints = [ready("failed", 0), ready("b", 3), ready("c", 9)];

        let picks = picks(&endpoints, Some("failed"), 100);

        assert_eq!(count(&picks, "failed"), 0);
        assert_eq!(count(&picks, "b"), 100, "p2c still applies among the others");
    }

    #[test]
    fn a_retry_goes_back_to_the_endpoint_it_failed_on_when_it_is_the_only_ready_one() {
        let endpoints = [ready("failed", 0), not_ready("b")];

        assert_eq!(picks(&endpoints, Some("failed"), 10), vec!["failed"; 10]);
    }

    #[test]
    fn a_replica_that_answers_slowly_loses_to_an_idle_fast_one_though_it_has_no_call_open() {
        let endpoints = [slow("slow", 0, 200.0), ready("fast", 1)];

        assert_eq!(picks(&endpoints, None, 100), vec!["fast"; 100]);
    }

    #[test]
    fn replicas_whose_latency_differs_by_less_than_half_share_calls() {
        let endpoints = [slow("a", 0, 0.25), slow("b", 0, 0.35)];

        let picks = picks(&endpoints, None, 1000);

        assert!(count(&picks, "b") > 400, "b: {} of 1000", count(&picks, "b"));
    }

    #[test]
    fn when_every_ready_endpoint_is_avoided_the_least_loaded_of_them_is_picked() {
        let endpoints = [ready("busy", 5), ready("idle", 0), not_ready("c")];

        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(p2c(&endpoints, |_| true, &mut rng).map(|c| c.name), Some("idle"));
    }
}
