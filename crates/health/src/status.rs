//! A snapshot of the health machine for the status API and the dashboard. Times are relative to
//! the moment the snapshot was taken, in milliseconds, since an `Instant` has no wall-clock
//! meaning.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::drain::{DrainEnd, DrainPhase, DrainStage};
use crate::intent::Intent;
use crate::node::{NodeHealth, WithdrawCause, ZoneFreshness};
use crate::probe::{ProbeHealth, ProbeOutcome};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthStatus {
    /// What the node asks of BGP now, and why.
    pub intent: Intent,
    pub intent_for_ms: u64,
    pub route: RouteStatus,
    pub flap_budget: FlapBudgetStatus,
    pub maintenance: bool,
    pub drain: DrainStatus,
    pub probes: Vec<ProbeStatus>,
    pub zones: Vec<ZoneStatus>,
    /// Recent intent changes, oldest first.
    pub intent_history: Vec<IntentChangeStatus>,
}

/// The health route, before maintenance and drain are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    pub announced: bool,
    pub since_ms: u64,
    /// Why it is withdrawn; absent while announced.
    pub withdraw_cause: Option<WithdrawCause>,
    /// Time left before an announce is allowed; 0 when no hold-down runs.
    pub hold_down_remaining_ms: u64,
    /// Consecutive short-lived announcements: the hold-down doubles with each.
    pub backoff_streak: u32,
    /// The hold-down a withdraw would get now (after a stable announcement it drops to the base).
    pub next_hold_down_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlapBudgetStatus {
    /// 0: the budget is off.
    pub limit_per_hour: u32,
    pub used: u32,
    /// True while it blocks announcing: the node stays withdrawn until the budget refills.
    pub exhausted: bool,
    pub refills_in_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainStatus {
    pub stage: DrainStage,
    pub started_ms_ago: Option<u64>,
    /// Step 1: time left de-preferred. Step 3: time left before the maximum wait ends it.
    pub remaining_ms: Option<u64>,
    /// Step 3: how long no query has arrived.
    pub quiet_for_ms: Option<u64>,
    pub end: Option<DrainEnd>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeStatus {
    pub name: String,
    pub health: ProbeHealth,
    pub paused: bool,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    pub last_result: Option<ProbeOutcome>,
    pub last_result_ms_ago: Option<u64>,
    /// Recent transitions, oldest first.
    pub transitions: Vec<TransitionStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionStatus {
    pub ms_ago: u64,
    pub from: ProbeHealth,
    pub to: ProbeHealth,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneStatus {
    pub name: String,
    #[serde(flatten)]
    pub freshness: ZoneFreshness,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntentChangeStatus {
    pub ms_ago: u64,
    pub intent: Intent,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ago(now: Instant, then: Instant) -> u64 {
    ms(now.saturating_duration_since(then))
}

impl NodeHealth {
    /// Everything the status page shows, as of `now`.
    pub fn status(&self, now: Instant) -> HealthStatus {
        let withdrawn = self.withdrawn();
        let hold_down_remaining = withdrawn
            .and_then(|(_, _, hold_until)| hold_until)
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let budget = self.flap_budget();
        let blocked_by_budget = matches!(withdrawn, Some((_, WithdrawCause::Health, _)))
            && !budget.allows_announce(now);
        HealthStatus {
            intent: self.intent().clone(),
            intent_for_ms: ago(now, self.intent_since()),
            route: RouteStatus {
                announced: withdrawn.is_none(),
                since_ms: ago(now, self.route_since()),
                withdraw_cause: withdrawn.map(|(_, cause, _)| cause),
                hold_down_remaining_ms: ms(hold_down_remaining),
                backoff_streak: self.hold_down().streak(),
                next_hold_down_ms: ms(self.hold_down().current()),
            },
            flap_budget: FlapBudgetStatus {
                limit_per_hour: budget.limit(),
                used: budget.used(now),
                exhausted: blocked_by_budget,
                refills_in_ms: budget
                    .refill_at(now)
                    .map(|t| ms(t.saturating_duration_since(now))),
            },
            maintenance: self.maintenance(),
            drain: drain_status(self.drain_phase(), now),
            probes: self
                .probes()
                .iter()
                .map(|p| {
                    let spec = p.spec();
                    ProbeStatus {
                        name: spec.name().to_owned(),
                        health: p.health(),
                        paused: p.is_paused(),
                        interval_ms: ms(spec.interval()),
                        timeout_ms: ms(spec.timeout()),
                        rise: spec.rise(),
                        fall: spec.fall(),
                        consecutive_successes: p.consecutive_successes(),
                        consecutive_failures: p.consecutive_failures(),
                        last_result: p.last_result().map(|(_, o)| o.clone()),
                        last_result_ms_ago: p.last_result().map(|(t, _)| ago(now, *t)),
                        transitions: p
                            .transitions()
                            .iter()
                            .map(|t| TransitionStatus {
                                ms_ago: ago(now, t.at),
                                from: t.from,
                                to: t.to,
                                reason: t.reason.clone(),
                            })
                            .collect(),
                    }
                })
                .collect(),
            zones: self
                .zones()
                .iter()
                .map(|(name, f)| ZoneStatus {
                    name: name.clone(),
                    freshness: *f,
                })
                .collect(),
            intent_history: self
                .intent_history()
                .iter()
                .map(|c| IntentChangeStatus {
                    ms_ago: ago(now, c.at),
                    intent: c.intent.clone(),
                })
                .collect(),
        }
    }
}

fn drain_status(phase: DrainPhase, now: Instant) -> DrainStatus {
    let mut s = DrainStatus {
        stage: phase.stage(),
        started_ms_ago: None,
        remaining_ms: None,
        quiet_for_ms: None,
        end: None,
    };
    match phase {
        DrainPhase::Idle => {}
        DrainPhase::Depreferring { started, until } => {
            s.started_ms_ago = Some(ago(now, started));
            s.remaining_ms = Some(ms(until.saturating_duration_since(now)));
        }
        DrainPhase::Quiescing {
            started,
            last_query_at,
            deadline,
            ..
        } => {
            s.started_ms_ago = Some(ago(now, started));
            s.remaining_ms = Some(ms(deadline.saturating_duration_since(now)));
            s.quiet_for_ms = Some(ago(now, last_query_at));
        }
        DrainPhase::Drained { started, end, .. } => {
            s.started_ms_ago = Some(ago(now, started));
            s.end = Some(end);
        }
    }
    s
}
