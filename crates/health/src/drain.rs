//! A planned drain, as a pure machine.
//!
//! 1. De-prefer for `deprefer` (RFC 8326 GRACEFUL_SHUTDOWN, MED, prepend): routers move the
//!    traffic to other sites while our route is still there, so no query is lost in between.
//! 2. Withdraw.
//! 3. Keep serving until no query arrived for `quiet` (clients whose routers had not converged
//!    yet still reach us), or until `max_wait` after the withdraw; then the drain is done and the
//!    process may exit.
//!
//! The query input is a counter that only grows, sampled with the time it was read. It must not
//! count our own self-probe queries; the health core pauses the probes from step 2 on for this
//! reason.

use std::time::{Duration, Instant};

use serde::Serialize;

/// How long each drain step lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainTimers {
    pub deprefer: Duration,
    pub quiet: Duration,
    pub max_wait: Duration,
}

/// Why the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainEnd {
    /// No query arrived for the quiet period.
    Quiet,
    /// Queries kept arriving until the maximum wait.
    MaxWait,
}

/// Where a drain is, with its times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainPhase {
    Idle,
    /// Step 1: announced, de-preferred, until `until`.
    Depreferring {
        started: Instant,
        until: Instant,
    },
    /// Steps 2 and 3: withdrawn, still serving, waiting for the queries to stop.
    Quiescing {
        started: Instant,
        withdrawn_at: Instant,
        last_query_at: Instant,
        deadline: Instant,
    },
    Drained {
        started: Instant,
        at: Instant,
        end: DrainEnd,
    },
}

/// [`DrainPhase`] without the times: what the binary waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainStage {
    Idle,
    Depreferring,
    Quiescing,
    Drained,
}

impl DrainPhase {
    pub fn stage(&self) -> DrainStage {
        match self {
            DrainPhase::Idle => DrainStage::Idle,
            DrainPhase::Depreferring { .. } => DrainStage::Depreferring,
            DrainPhase::Quiescing { .. } => DrainStage::Quiescing,
            DrainPhase::Drained { .. } => DrainStage::Drained,
        }
    }

    /// Whether the drain holds the route withdrawn (steps 2 and 3, and after).
    pub fn is_withdrawn(&self) -> bool {
        matches!(
            self,
            DrainPhase::Quiescing { .. } | DrainPhase::Drained { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub struct Drain {
    timers: DrainTimers,
    phase: DrainPhase,
    /// The last query-counter sample: when, and its value.
    last_sample: Option<(Instant, u64)>,
}

impl Drain {
    pub fn new(timers: DrainTimers) -> Self {
        Drain {
            timers,
            phase: DrainPhase::Idle,
            last_sample: None,
        }
    }

    pub fn phase(&self) -> DrainPhase {
        self.phase
    }

    pub fn timers(&self) -> DrainTimers {
        self.timers
    }

    /// Starts a drain; `already_withdrawn` skips step 1, which has nothing to de-prefer. A drain
    /// already under way goes on unchanged.
    pub fn start(&mut self, already_withdrawn: bool, now: Instant) {
        if self.phase != DrainPhase::Idle {
            return;
        }
        if already_withdrawn {
            self.enter_quiescing(now, now);
        } else {
            self.phase = DrainPhase::Depreferring {
                started: now,
                until: now + self.timers.deprefer,
            };
        }
    }

    /// Undrain: back to normal from any step.
    pub fn cancel(&mut self) {
        self.phase = DrainPhase::Idle;
    }

    /// Takes a sample of the query counter.
    pub fn sample_queries(&mut self, total: u64, now: Instant) {
        let previous = self.last_sample.replace((now, total));
        if let DrainPhase::Quiescing { last_query_at, .. } = &mut self.phase {
            // No earlier sample, or a counter that went back (reset): we cannot tell how many
            // queries came, so count the moment as busy.
            let busy = previous.is_none_or(|(_, before)| total != before);
            if busy {
                *last_query_at = now;
            }
        }
        self.poll(now);
    }

    /// Moves on when a step's time is up.
    pub fn poll(&mut self, now: Instant) {
        match self.phase {
            DrainPhase::Depreferring { started, until } if now >= until => {
                self.enter_quiescing(started, now);
            }
            DrainPhase::Quiescing {
                started,
                last_query_at,
                deadline,
                ..
            } => {
                // Quiet only on evidence: a sample taken `quiet` after the last query that shows
                // the counter unchanged.
                let quiet = self.last_sample.is_some_and(|(sampled_at, _)| {
                    sampled_at.saturating_duration_since(last_query_at) >= self.timers.quiet
                });
                if quiet {
                    self.phase = DrainPhase::Drained {
                        started,
                        at: now,
                        end: DrainEnd::Quiet,
                    };
                } else if now >= deadline {
                    self.phase = DrainPhase::Drained {
                        started,
                        at: now,
                        end: DrainEnd::MaxWait,
                    };
                }
            }
            _ => {}
        }
    }

    /// When [`poll`](Self::poll) next has something to do on time alone.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            DrainPhase::Depreferring { until, .. } => Some(until),
            DrainPhase::Quiescing {
                last_query_at,
                deadline,
                ..
            } => Some(deadline.min(last_query_at + self.timers.quiet)),
            DrainPhase::Idle | DrainPhase::Drained { .. } => None,
        }
    }

    fn enter_quiescing(&mut self, started: Instant, now: Instant) {
        self.phase = DrainPhase::Quiescing {
            started,
            withdrawn_at: now,
            last_query_at: now,
            deadline: now + self.timers.max_wait,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn drain() -> Drain {
        Drain::new(DrainTimers {
            deprefer: 3000 * MS,
            quiet: 1000 * MS,
            max_wait: 10_000 * MS,
        })
    }

    #[test]
    fn deprefers_then_withdraws_then_drains_when_quiet() {
        let t0 = Instant::now();
        let mut d = drain();
        d.sample_queries(100, t0);
        d.start(false, t0);
        assert_eq!(d.phase().stage(), DrainStage::Depreferring);
        assert_eq!(d.deadline(), Some(t0 + 3000 * MS));
        d.poll(t0 + 2999 * MS);
        assert_eq!(d.phase().stage(), DrainStage::Depreferring);
        d.poll(t0 + 3000 * MS);
        assert_eq!(d.phase().stage(), DrainStage::Quiescing);
        // Queries still arrive after the withdraw.
        d.sample_queries(150, t0 + 3500 * MS);
        d.sample_queries(151, t0 + 4000 * MS);
        d.sample_queries(151, t0 + 4999 * MS);
        assert_eq!(d.phase().stage(), DrainStage::Quiescing);
        d.sample_queries(151, t0 + 5000 * MS);
        assert!(matches!(
            d.phase(),
            DrainPhase::Drained {
                end: DrainEnd::Quiet,
                ..
            }
        ));
    }

    #[test]
    fn quiet_needs_a_sample_as_evidence() {
        let t0 = Instant::now();
        let mut d = drain();
        d.start(true, t0);
        d.poll(t0 + 5000 * MS);
        assert_eq!(d.phase().stage(), DrainStage::Quiescing);
        // The first sample has no baseline: it counts as busy.
        d.sample_queries(7, t0 + 5000 * MS);
        d.sample_queries(7, t0 + 5999 * MS);
        assert_eq!(d.phase().stage(), DrainStage::Quiescing);
        d.sample_queries(7, t0 + 6000 * MS);
        assert_eq!(d.phase().stage(), DrainStage::Drained);
    }

    #[test]
    fn steady_queries_end_the_drain_at_max_wait() {
        let t0 = Instant::now();
        let mut d = drain();
        d.start(true, t0);
        for i in 0..=100u32 {
            d.sample_queries(u64::from(i), t0 + i * 100 * MS);
        }
        assert!(matches!(
            d.phase(),
            DrainPhase::Drained {
                end: DrainEnd::MaxWait,
                ..
            }
        ));
    }

    #[test]
    fn cancel_returns_to_idle_and_start_is_idempotent() {
        let t0 = Instant::now();
        let mut d = drain();
        d.start(false, t0);
        d.start(true, t0 + MS);
        assert_eq!(d.phase().stage(), DrainStage::Depreferring);
        d.cancel();
        assert_eq!(d.phase(), DrainPhase::Idle);
        assert_eq!(d.deadline(), None);
    }
}
