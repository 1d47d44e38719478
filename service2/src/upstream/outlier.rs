//! Outlier ejection, as Envoy's outlier detection and Linkerd's failure
//! accrual do it: a replica that keeps failing is taken out of selection
//! for a while, however ready its connection looks.
//!
//! - **Ejected** after [`EjectionPolicy::consecutive_failures`] failures in
//!   a row (see [`crate::upstream::call`] for what counts), or at once when
//!   its connection stops answering keepalive pings.
//! - For [`EjectionPolicy::base`], doubled with each ejection in a row, up
//!   to [`EjectionPolicy::max`].
//! - Never more replicas at once than [`EjectionPolicy::max_percent`] of
//!   those known, but always at least one (as Envoy's
//!   `max_ejection_percent`): a failure that hits every replica alike is
//!   more likely on our side than on theirs.
//! - Then **on probation**: selectable again; its next success returns it
//!   for good, and its next failure ejects it again for twice as long.
//!
//! Selection still uses an ejected replica when no other is ready
//! ([`crate::upstream::selection`]), so ejection alone never fails a call.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

/// When a replica is ejected, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionPolicy {
    /// Failures in a row that eject a replica (0: never for failures).
    pub consecutive_failures: u32,
    /// The first ejection's length...
    pub base: Duration,
    /// ...doubled per ejection in a row, up to this.
    pub max: Duration,
    /// At most this percentage of the known replicas ejected at once (at
    /// least one).
    pub max_percent: u32,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            max_percent: 50,
        }
    }
}

/// Why a replica was ejected, as `service1_ejections_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Failures in a row, or one while on probation.
    Failures,
    /// Its connection did not answer a keepalive ping in time.
    Unresponsive,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failures => "failures",
            Self::Unresponsive => "unresponsive",
        }
    }
}

/// The pool's side: the policy, and how many replicas are ejected now.
#[derive(Debug, Default)]
pub struct Ejections {
    pub policy: EjectionPolicy,
    ejected: AtomicUsize,
    known: AtomicUsize,
}

impl Ejections {
    pub fn new(policy: EjectionPolicy) -> Self {
        Self { policy, ..Default::default() }
    }

    /// Replicas known, for the cap.
    pub fn set_known(&self, known: usize) {
        self.known.store(known, Ordering::Relaxed);
    }

    /// Replicas ejected now.
    pub fn ejected(&self) -> usize {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Takes one of the ejection slots the cap allows, if one is free.
    fn reserve(&self) -> bool {
        let known = self.known.load(Ordering::Relaxed);
        let cap = (known * self.policy.max_percent as usize / 100).max(1);
        self.ejected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < cap).then_some(n + 1))
            .is_ok()
    }

    fn release(&self) {
        let _ = self.ejected.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// One replica's standing.
#[derive(Debug)]
pub struct Standing {
    /// Failures since the last success.
    consecutive: AtomicU32,
    /// Read by every pick, so kept apart from the rest.
    ejected: AtomicBool,
    /// No ejection since the last success and not on probation: a success
    /// then has nothing to reset beyond `consecutive`, and takes no lock
    /// (it is every answered call's path).
    settled: AtomicBool,
    state: Mutex<State>,
}

impl Default for Standing {
    fn default() -> Self {
        Self {
            consecutive: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            settled: AtomicBool::new(true),
            state: Mutex::default(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Ejections since the last success: the next one lasts
    /// `base * 2^in_a_row`.
    in_a_row: u32,
    on_probation: bool,
}

/// What a change of standing means for the caller to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Ejected for this long: end it with [`Standing::end_ejection`] then.
    Ejected { reason: Reason, duration: Duration, in_a_row: u32 },
    /// Back for good after a success on probation.
    Returned,
}

impl Standing {
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// A call answered (an error of the caller's, such as a name service1
    /// refuses, is an answer too).
    pub fn succeeded(&self) -> Option<Change> {
        self.consecutive.store(0, Ordering::Relaxed);
        if self.settled.load(Ordering::Relaxed) {
            return None;
        }
        let mut state = self.lock();
        self.settled.store(true, Ordering::Relaxed);
        let was_on_probation = std::mem::take(&mut state.on_probation);
        state.in_a_row = 0;
        was_on_probation.then_some(Change::Returned)
    }

    /// A call failed in a way that says something about this replica.
    pub fn failed(&self, ejections: &Ejections) -> Option<Change> {
        let failures = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let threshold = ejections.policy.consecutive_failures;
        let on_probation = self.lock().on_probation;
        if on_probation || (threshold > 0 && failures >= threshold) {
            self.eject(ejections, Reason::Failures)
        } else {
            None
        }
    }

    /// Its connection stopped answering.
    pub fn unresponsive(&self, ejections: &Ejections) -> Option<Change> {
        self.eject(ejections, Reason::Unresponsive)
    }

    fn eject(&self, ejections: &Ejections, reason: Reason) -> Option<Change> {
        let mut state = self.lock();
        if self.is_ejected() || !ejections.reserve() {
            return None;
        }
        self.ejected.store(true, Ordering::Relaxed);
        self.settled.store(false, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        state.on_probation = false;
        let policy = ejections.policy;
        let duration = policy.base.saturating_mul(1 << state.in_a_row.min(16)).min(policy.max);
        state.in_a_row = state.in_a_row.saturating_add(1);
        Some(Change::Ejected { reason, duration, in_a_row: state.in_a_row })
    }

    /// The ejection's time is up: selectable again, on probation.
    pub fn end_ejection(&self, ejections: &Ejections) {
        let mut state = self.lock();
        if self.ejected.swap(false, Ordering::Relaxed) {
            state.on_probation = true;
            ejections.release();
        }
    }

    /// The replica left the pool: its slot is free again.
    pub fn forget(&self, ejections: &Ejections) {
        if self.ejected.swap(false, Ordering::Relaxed) {
            ejections.release();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ejections(known: usize, policy: EjectionPolicy) -> Ejections {
        let ejections = Ejections::new(policy);
        ejections.set_known(known);
        ejections
    }

    fn policy() -> EjectionPolicy {
        EjectionPolicy {
            consecutive_failures: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(5),
            max_percent: 50,
        }
    }

    fn fail(standing: &Standing, ejections: &Ejections, times: u32) -> Option<Change> {
        (0..times).map(|_| standing.failed(ejections)).last().flatten()
    }

    #[test]
    fn a_replica_is_ejected_after_the_set_number_of_failures_in_a_row_and_not_before() {
        let ejections = ejections(3, policy());
        let standing = Standing::default();

        assert_eq!(fail(&standing, &ejections, 2), None);
        assert!(!standing.is_ejected());
        assert_eq!(
            standing.failed(&ejections),
            Some(Change::Ejected { reason: Reason::Failures, duration: Duration::from_secs(1), in_a_row: 1 })
        );
        assert!(standing.is_ejected());
        assert_eq!(ejections.ejected(), 1);
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let ejections = ejections(3, policy());
        let standing = Standing::default();

        fail(&standing, &ejections, 2);
        standing.succeeded();

        assert_eq!(fail(&standing, &ejections, 2), None);
        assert!(!standing.is_ejected());
    }

    #[test]
    fn an_unresponsive_connection_ejects_at_once() {
        let ejections = ejections(3, policy());
        let standing = Standing::default();

        let change = standing.unresponsive(&ejections);

        assert!(matches!(change, Some(Change::Ejected { reason: Reason::Unresponsive, .. })));
    }

    #[test]
    fn on_probation_one_failure_ejects_again_for_twice_as_long_up_to_the_maximum() {
        let ejections = ejections(3, policy());
        let standing = Standing::default();
        fail(&standing, &ejections, 3);

        let mut durations = vec![];
        for _ in 0..4 {
            standing.end_ejection(&ejections);
            assert!(!standing.is_ejected());
            match standing.failed(&ejections) {
                Some(Change::Ejected { duration, .. }) => durations.push(duration.as_secs()),
                other => panic!("{other:?}"),
            }
        }

        assert_eq!(durations, [2, 4, 5, 5]);
    }

    #[test]
    fn on_probation_a_success_returns_the_replica_and_the_next_ejection_is_short_again() {
        let ejections = ejections(3, policy());
        let standing = Standing::default();
        fail(&standing, &ejections, 3);
        standing.end_ejection(&ejections);

        assert_eq!(standing.succeeded(), Some(Change::Returned));
        assert_eq!(standing.succeeded(), None, "returned once");
        assert_eq!(fail(&standing, &ejections, 2), None, "the count starts again");
        assert!(matches!(
            standing.failed(&ejections),
            Some(Change::Ejected { duration, in_a_row: 1, .. }) if duration == Duration::from_secs(1)
        ));
    }

    #[test]
    fn no_more_than_the_share_of_replicas_is_ejected_at_once_but_always_one() {
        let one_of_three = ejections(3, policy());
        let replicas: Vec<Standing> = (0..3).map(|_| Standing::default()).collect();

        let ejected = replicas.iter().filter(|r| r.unresponsive(&one_of_three).is_some()).count();

        assert_eq!((ejected, one_of_three.ejected()), (1, 1), "50 % of 3");
        let ten_percent = ejections(2, EjectionPolicy { max_percent: 10, ..policy() });
        assert!(Standing::default().unresponsive(&ten_percent).is_some(), "at least one");
    }

    #[test]
    fn an_ejection_that_ends_or_a_replica_that_leaves_frees_its_slot() {
        let ejections = ejections(2, policy());
        let (a, b) = (Standing::default(), Standing::default());
        a.unresponsive(&ejections);
        assert!(b.unresponsive(&ejections).is_none(), "cap of one");

        a.end_ejection(&ejections);
        assert!(b.unresponsive(&ejections).is_some());
        b.forget(&ejections);
        assert_eq!(ejections.ejected(), 0);
    }

    #[test]
    fn with_consecutive_failures_at_zero_failures_never_eject() {
        let ejections = ejections(3, EjectionPolicy { consecutive_failures: 0, ..policy() });
        let standing = Standing::default();

        assert_eq!(fail(&standing, &ejections, 100), None);
        assert!(standing.unresponsive(&ejections).is_some(), "an unresponsive connection still does");
    }
}
