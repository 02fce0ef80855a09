//! Flap damping for our own route: a hold-down after each health withdraw that doubles while
//! the flaps repeat, and a budget of route changes per hour.
//!
//! Both only ever delay an *announce*. A withdraw is never delayed or refused: a node that
//! announces while it cannot answer blackholes every client in its catchment, while a node that
//! stays withdrawn only costs the other sites some capacity. For anycast, withdrawn is the safe
//! state, so that is where an exhausted budget leaves the node.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window of the flap budget.
pub const FLAP_WINDOW: Duration = Duration::from_secs(3600);

/// Exponential hold-down: after a health withdraw, no announce for `base × 2^streak` (at most
/// `max`), where `streak` counts the withdraws in a row that each ended a re-announcement (one
/// that followed a health withdraw) shorter than `stable_after`. Any other withdraw — the first
/// one, or one after an announcement that lasted — starts again from the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldDown {
    base: Duration,
    max: Duration,
    stable_after: Duration,
    streak: u32,
}

impl HoldDown {
    /// `max` below `base` is raised to `base`.
    pub fn new(base: Duration, max: Duration, stable_after: Duration) -> Self {
        HoldDown {
            base,
            max: max.max(base),
            stable_after,
            streak: 0,
        }
    }

    /// Counts a health withdraw that ended an announcement of `announced_for`, which was a
    /// re-announcement after an earlier health withdraw if `reannounced`; returns how long the
    /// route must now stay withdrawn.
    pub fn on_withdraw(&mut self, announced_for: Duration, reannounced: bool) -> Duration {
        if reannounced && announced_for < self.stable_after {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 0;
        }
        self.current()
    }

    /// The hold-down the streak so far gives.
    pub fn current(&self) -> Duration {
        let factor = 1u32 << self.streak.min(31);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Consecutive short-lived announcements so far.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    pub fn reset(&mut self) {
        self.streak = 0;
    }
}

/// At most `limit` announce/withdraw changes caused by health in any [`FLAP_WINDOW`].
///
/// An announce is allowed only while two more changes fit (the announce and the withdraw that
/// may follow it), so even a node that keeps failing stays within the limit, and the change
/// that would break it is always a withdraw into the safe state. A limit of zero turns the
/// budget off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlapBudget {
    limit: u32,
    changes: VecDeque<Instant>,
}

impl FlapBudget {
    pub fn new(limit: u32) -> Self {
        FlapBudget {
            limit,
            changes: VecDeque::new(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn is_enabled(&self) -> bool {
        self.limit > 0
    }

    /// Changes within the window ending at `now`.
    pub fn used(&self, now: Instant) -> u32 {
        let live = self
            .changes
            .iter()
            .filter(|&&t| t + FLAP_WINDOW > now)
            .count();
        u32::try_from(live).unwrap_or(u32::MAX)
    }

    pub fn record(&mut self, now: Instant) {
        while self
            .changes
            .front()
            .is_some_and(|&t| t + FLAP_WINDOW <= now)
        {
            self.changes.pop_front();
        }
        self.changes.push_back(now);
    }

    /// Whether an announce (and the withdraw that may follow) fits.
    pub fn allows_announce(&self, now: Instant) -> bool {
        !self.is_enabled() || self.used(now).saturating_add(2) <= self.limit
    }

    /// When [`allows_announce`](Self::allows_announce) turns true again; `None` if it is true
    /// now, or never will be (a limit of 1).
    pub fn refill_at(&self, now: Instant) -> Option<Instant> {
        if self.allows_announce(now) {
            return None;
        }
        // Changes must expire until `used + 2 <= limit`; they expire oldest first.
        let live: Vec<Instant> = self
            .changes
            .iter()
            .copied()
            .filter(|&t| t + FLAP_WINDOW > now)
            .collect();
        let must_expire = (live.len() + 2).saturating_sub(self.limit as usize);
        let last_to_go = live.get(must_expire.checked_sub(1)?)?;
        Some(*last_to_go + FLAP_WINDOW)
    }

    /// Forgets past changes: an operator's override after the cause of the flaps is fixed.
    pub fn reset(&mut self) {
        self.changes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn hold_down_doubles_while_flaps_repeat_and_is_capped() {
        let mut h = HoldDown::new(2 * S, 30 * S, 60 * S);
        assert_eq!(h.on_withdraw(S, false), 2 * S); // the first withdraw: the base
        assert_eq!(h.on_withdraw(5 * S, true), 4 * S);
        assert_eq!(h.on_withdraw(5 * S, true), 8 * S);
        assert_eq!(h.on_withdraw(5 * S, true), 16 * S);
        assert_eq!(h.on_withdraw(5 * S, true), 30 * S);
        for _ in 0..100 {
            assert_eq!(h.on_withdraw(5 * S, true), 30 * S);
        }
        assert_eq!(h.on_withdraw(60 * S, true), 2 * S); // a stable announcement ends the streak
        assert_eq!(h.on_withdraw(5 * S, true), 4 * S);
        assert_eq!(h.on_withdraw(5 * S, false), 2 * S); // after a start or a drain
    }

    #[test]
    fn flap_budget_keeps_room_for_the_withdraw_after_an_announce() {
        let t0 = Instant::now();
        let mut b = FlapBudget::new(4);
        assert!(b.allows_announce(t0));
        b.record(t0); // withdraw
        b.record(t0 + S); // announce
        assert!(b.allows_announce(t0 + S));
        b.record(t0 + 2 * S); // withdraw: 3 used, an announce would leave no room
        assert!(!b.allows_announce(t0 + 2 * S));
        // The first change leaves the window an hour after it happened.
        assert_eq!(b.refill_at(t0 + 2 * S), Some(t0 + FLAP_WINDOW));
        assert!(!b.allows_announce(t0 + FLAP_WINDOW - S));
        assert!(b.allows_announce(t0 + FLAP_WINDOW));
        assert_eq!(b.used(t0 + FLAP_WINDOW), 2);
    }

    #[test]
    fn flap_budget_of_zero_is_off() {
        let t0 = Instant::now();
        let mut b = FlapBudget::new(0);
        for i in 0..100 {
            b.record(t0 + i * S);
        }
        assert!(b.allows_announce(t0 + 100 * S));
        assert_eq!(b.refill_at(t0 + 100 * S), None);
    }

    #[test]
    fn flap_budget_below_two_never_allows_a_reannounce() {
        let t0 = Instant::now();
        let b = FlapBudget::new(1);
        assert!(!b.allows_announce(t0));
        assert_eq!(b.refill_at(t0), None);
    }
}
