//! Selection: power of two choices (p2c) on calls in flight. Two random
//! ready endpoints are compared and the less busy one wins, which steers
//! calls away from a slow replica where round-robin would keep feeding it,
//! and needs no state shared between calls or between service2 pods.
//!
//! It makes one pass over the endpoint list, reading each endpoint's
//! readiness and load once: O(n) in the replicas known, with no lock and no
//! allocation. A handful of replicas cost a few nanoseconds; keeping a
//! separate list of the ready ones, updated as connections come and go,
//! would make a pick O(1) at the price of that bookkeeping.

/// What selection reads of an endpoint.
pub trait Candidate {
    fn is_ready(&self) -> bool;
    fn in_flight(&self) -> usize;
}

/// A ready candidate chosen by p2c, or `None` when none is ready. A
/// candidate for which `avoid` is true (the one a retry just failed on) is
/// chosen only when it is the only ready one.
pub fn p2c<'a, C: Candidate>(
    candidates: &'a [C],
    avoid: impl Fn(&C) -> bool,
    rng: &mut fastrand::Rng,
) -> Option<&'a C> {
    // Reservoir sampling: after each ready candidate, `pair` holds a
    // uniformly random pair of those seen so far.
    let mut pair: [Option<&C>; 2] = [None, None];
    let mut seen = 0;
    let mut avoided = None;
    for candidate in candidates.iter().filter(|c| c.is_ready()) {
        if avoid(candidate) {
            avoided = Some(candidate);
            continue;
        }
        let slot = if seen < 2 { seen } else { rng.usize(..=seen) };
        if let Some(slot) = pair.get_mut(slot) {
            *slot = Some(candidate);
        }
        seen += 1;
    }
    match pair {
        [Some(a), Some(b)] => Some(match a.in_flight().cmp(&b.in_flight()) {
            std::cmp::Ordering::Less => a,
            std::cmp::Ordering::Greater => b,
            // Equally busy (all idle, at low load): either, so that calls
            // still spread.
            std::cmp::Ordering::Equal if rng.bool() => a,
            std::cmp::Ordering::Equal => b,
        }),
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
        in_flight: usize,
    }

    impl Candidate for Fake {
        fn is_ready(&self) -> bool {
            self.ready
        }

        fn in_flight(&self) -> usize {
            self.in_flight
        }
    }

    fn ready(name: &'static str, in_flight: usize) -> Fake {
        Fake { name, ready: true, in_flight }
    }

    fn not_ready(name: &'static str) -> Fake {
        Fake { name, ready: false, in_flight: 0 }
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
        let endpoints = [ready("failed", 0), ready("b", 3), ready("c", 4)];

        let picks = picks(&endpoints, Some("failed"), 100);

        assert_eq!(count(&picks, "failed"), 0);
        assert_eq!(count(&picks, "b"), 100, "p2c still applies among the others");
    }

    #[test]
    fn a_retry_goes_back_to_the_endpoint_it_failed_on_when_it_is_the_only_ready_one() {
        let endpoints = [ready("failed", 0), not_ready("b")];

        assert_eq!(picks(&endpoints, Some("failed"), 10), vec!["failed"; 10]);
    }
}
