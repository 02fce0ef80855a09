//! The node's health: probes, zone freshness, hysteresis, damping, maintenance and drain, turned
//! into one [`Intent`]. Pure: every input comes with `now`, and nothing here reads a clock.
//!
//! Two layers. The *health route* is announced or withdrawn from what the probes and zones say,
//! through rise/fall, the hold-down and the flap budget. The *admin overlay* (maintenance, drain)
//! then de-prefers or withdraws on top of it; it never announces a route that health withdrew.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::damping::{FlapBudget, HoldDown};
use crate::drain::{Drain, DrainPhase, DrainStage, DrainTimers};
use crate::error::ConfigError;
use crate::history::History;
use crate::intent::{DeprefReason, Intent, WithdrawReason};
use crate::probe::{ProbeOutcome, ProbeSpec, ProbeState, ProbeTransition};

/// How many intent changes the status page shows.
pub const INTENT_HISTORY: usize = 32;
/// Events not yet taken by [`NodeHealth::poll_event`] beyond this many are dropped, oldest first.
const EVENT_QUEUE: usize = 256;

/// The timers and limits of the health machine. See [`crate::config`] for the defaults and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// The first hold-down after a withdraw.
    pub hold_down: Duration,
    /// The cap of the doubling hold-down.
    pub hold_down_max: Duration,
    /// An announcement that lasted this long ends the flap streak.
    pub stable_after: Duration,
    /// Health-caused announce/withdraw changes allowed per hour; 0 turns the budget off.
    pub flap_budget_per_hour: u32,
    pub drain: DrainTimers,
}

/// What the zone store says about one configured zone. Transfers will set `expired` and
/// `lag_exceeded`; for a zone loaded from a file both stay false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ZoneFreshness {
    pub loaded: bool,
    /// Past the SOA expire time without a successful refresh.
    pub expired: bool,
    /// Behind the primary's serial for longer than the configured bound.
    pub lag_exceeded: bool,
}

/// A probe, by its position in the list given to [`NodeHealth::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(pub usize);

/// One change of the intent, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentChange {
    pub at: Instant,
    pub intent: Intent,
}

/// Something the driver should log (and count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    Probe {
        probe: String,
        transition: ProbeTransition,
    },
    Intent {
        from: Intent,
        to: Intent,
    },
    Drain {
        stage: DrainStage,
    },
}

/// Why the health route is withdrawn; decides what an announce costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawCause {
    /// Never announced since start.
    Startup,
    /// Probes or zones went bad: this withdraw and the next announce count as a flap.
    Health,
    /// A drain withdrew the route; a cancelled drain comes back like a start.
    Drain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Announced {
        since: Instant,
        /// Whether this announcement ended a health withdraw (and so counts toward the backoff).
        reannounced: bool,
    },
    Withdrawn {
        since: Instant,
        cause: WithdrawCause,
        hold_until: Option<Instant>,
        reason: WithdrawReason,
    },
}

#[derive(Debug, Clone)]
pub struct NodeHealth {
    policy: HealthPolicy,
    probes: Vec<ProbeState>,
    zones: BTreeMap<String, ZoneFreshness>,
    maintenance: bool,
    drain: Drain,
    route: Route,
    hold_down: HoldDown,
    budget: FlapBudget,
    intent: Intent,
    intent_since: Instant,
    intents: History<IntentChange>,
    events: VecDeque<HealthEvent>,
}

impl NodeHealth {
    /// A node at startup: withdrawn until every zone in `zones` has loaded and every probe has
    /// passed `rise` times.
    pub fn new<Z: Into<String>>(
        policy: HealthPolicy,
        probes: Vec<ProbeSpec>,
        zones: impl IntoIterator<Item = Z>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        for (i, p) in probes.iter().enumerate() {
            if probes[..i].iter().any(|q| q.name() == p.name()) {
                return Err(ConfigError::DuplicateProbe {
                    probe: p.name().to_owned(),
                });
            }
        }
        let zones: BTreeMap<String, ZoneFreshness> = zones
            .into_iter()
            .map(|z| (z.into(), ZoneFreshness::default()))
            .collect();
        let mut node = NodeHealth {
            policy,
            probes: probes
                .into_iter()
                .map(|s| ProbeState::new(s, now))
                .collect(),
            zones,
            maintenance: false,
            drain: Drain::new(policy.drain),
            route: Route::Withdrawn {
                since: now,
                cause: WithdrawCause::Startup,
                hold_until: None,
                reason: WithdrawReason::HoldDown,
            },
            hold_down: HoldDown::new(policy.hold_down, policy.hold_down_max, policy.stable_after),
            budget: FlapBudget::new(policy.flap_budget_per_hour),
            intent: Intent::Withdraw {
                reason: WithdrawReason::HoldDown,
            },
            intent_since: now,
            intents: History::new(INTENT_HISTORY),
            events: VecDeque::new(),
        };
        node.update_route(now);
        node.intent = node.compute_intent();
        node.intents.push(IntentChange {
            at: now,
            intent: node.intent.clone(),
        });
        Ok(node)
    }

    // ---- inputs ----

    /// Counts a probe result. An unknown id is ignored.
    pub fn record_probe(&mut self, id: ProbeId, outcome: ProbeOutcome, now: Instant) {
        if let Some(p) = self.probes.get_mut(id.0) {
            if let Some(t) = p.record(outcome, now) {
                let probe = p.spec().name().to_owned();
                self.push_event(HealthEvent::Probe {
                    probe,
                    transition: t,
                });
            }
        }
        self.evaluate(now);
    }

    /// Updates a configured zone; returns false (and changes nothing) for a zone not configured.
    pub fn set_zone(&mut self, zone: &str, freshness: ZoneFreshness, now: Instant) -> bool {
        let known = match self.zones.get_mut(zone) {
            Some(z) => {
                *z = freshness;
                true
            }
            None => false,
        };
        self.evaluate(now);
        known
    }

    /// Adds a zone to those that must be loaded before the node announces. While it has not
    /// loaded, the node withdraws: add a zone only once it has loaded, or accept that.
    pub fn add_zone(&mut self, zone: impl Into<String>, freshness: ZoneFreshness, now: Instant) {
        self.zones.insert(zone.into(), freshness);
        self.evaluate(now);
    }

    pub fn remove_zone(&mut self, zone: &str, now: Instant) -> bool {
        let known = self.zones.remove(zone).is_some();
        self.evaluate(now);
        known
    }

    /// Maintenance on: keep announcing, de-preferred. Off: back to normal.
    pub fn set_maintenance(&mut self, on: bool, now: Instant) {
        self.maintenance = on;
        self.evaluate(now);
    }

    /// Starts a planned drain (see [`crate::drain`]). A drain under way goes on unchanged.
    pub fn start_drain(&mut self, now: Instant) {
        let before = self.drain.phase().stage();
        let withdrawn = matches!(self.route, Route::Withdrawn { .. });
        self.drain.start(withdrawn, now);
        self.after_drain_step(before, now);
        self.evaluate(now);
    }

    /// Undrain: back to normal. If the drain had withdrawn the route, the node comes back as at
    /// startup: every probe must pass `rise` times again first.
    pub fn cancel_drain(&mut self, now: Instant) {
        let before = self.drain.phase().stage();
        self.drain.cancel();
        self.after_drain_step(before, now);
        self.evaluate(now);
    }

    /// A sample of the served-query counter (monotonic; self-probes excluded).
    pub fn sample_queries(&mut self, total: u64, now: Instant) {
        let before = self.drain.phase().stage();
        self.drain.sample_queries(total, now);
        self.after_drain_step(before, now);
        self.evaluate(now);
    }

    /// Operator override once the cause of repeated flaps is fixed: forgets the flap budget's
    /// history and the backoff streak. A hold-down already running still runs out.
    pub fn reset_flap_budget(&mut self, now: Instant) {
        self.budget.reset();
        self.hold_down.reset();
        self.evaluate(now);
    }

    /// Acts on time alone: silent probes, hold-down expiry, budget refill, drain steps. Call it at
    /// [`next_deadline`](Self::next_deadline) (calling it more often is harmless).
    pub fn poll(&mut self, now: Instant) {
        self.evaluate(now);
    }

    // ---- outputs ----

    pub fn intent(&self) -> &Intent {
        &self.intent
    }

    /// The next moment after `now` at which [`poll`](Self::poll) may change something without
    /// any new input.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let probes = self.probes.iter().filter_map(ProbeState::stale_deadline);
        let route = match &self.route {
            Route::Withdrawn {
                cause, hold_until, ..
            } => {
                let refill = if *cause == WithdrawCause::Health {
                    self.budget.refill_at(now)
                } else {
                    None
                };
                [*hold_until, refill]
            }
            Route::Announced { .. } => [None, None],
        };
        probes
            .chain(route.into_iter().flatten())
            .chain(self.drain.deadline())
            .filter(|&t| t > now)
            .min()
    }

    /// Takes the next event to log, oldest first.
    pub fn poll_event(&mut self) -> Option<HealthEvent> {
        self.events.pop_front()
    }

    pub fn drain_phase(&self) -> DrainPhase {
        self.drain.phase()
    }

    pub fn maintenance(&self) -> bool {
        self.maintenance
    }

    pub fn probes(&self) -> &[ProbeState] {
        &self.probes
    }

    pub fn probe_id(&self, name: &str) -> Option<ProbeId> {
        self.probes
            .iter()
            .position(|p| p.spec().name() == name)
            .map(ProbeId)
    }

    pub fn zones(&self) -> &BTreeMap<String, ZoneFreshness> {
        &self.zones
    }

    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    pub(crate) fn intent_since(&self) -> Instant {
        self.intent_since
    }

    pub(crate) fn intent_history(&self) -> &History<IntentChange> {
        &self.intents
    }

    pub(crate) fn flap_budget(&self) -> &FlapBudget {
        &self.budget
    }

    pub(crate) fn hold_down(&self) -> &HoldDown {
        &self.hold_down
    }

    /// The health route: `None` when announced; else since when, why, and the hold-down end.
    pub(crate) fn withdrawn(&self) -> Option<(Instant, WithdrawCause, Option<Instant>)> {
        match &self.route {
            Route::Announced { .. } => None,
            Route::Withdrawn {
                since,
                cause,
                hold_until,
                ..
            } => Some((*since, *cause, *hold_until)),
        }
    }

    pub(crate) fn route_since(&self) -> Instant {
        match &self.route {
            Route::Announced { since, .. } | Route::Withdrawn { since, .. } => *since,
        }
    }

    // ---- the machine ----

    fn evaluate(&mut self, now: Instant) {
        for p in &mut self.probes {
            if let Some(t) = p.check_stale(now) {
                let probe = p.spec().name().to_owned();
                push_bounded(
                    &mut self.events,
                    HealthEvent::Probe {
                        probe,
                        transition: t,
                    },
                );
            }
        }
        let before = self.drain.phase().stage();
        self.drain.poll(now);
        self.after_drain_step(before, now);
        if !self.drain.phase().is_withdrawn() {
            self.update_route(now);
        }
        let intent = self.compute_intent();
        if intent != self.intent {
            let from = std::mem::replace(&mut self.intent, intent.clone());
            self.intent_since = now;
            self.intents.push(IntentChange {
                at: now,
                intent: intent.clone(),
            });
            self.push_event(HealthEvent::Intent { from, to: intent });
        }
    }

    /// Pauses the probes when a drain withdraws the route, and resumes them when the drain is
    /// cancelled after that.
    fn after_drain_step(&mut self, before: DrainStage, now: Instant) {
        let after = self.drain.phase().stage();
        if after == before {
            return;
        }
        self.push_event(HealthEvent::Drain { stage: after });
        let was_withdrawn = matches!(before, DrainStage::Quiescing | DrainStage::Drained);
        let is_withdrawn = self.drain.phase().is_withdrawn();
        if is_withdrawn && !was_withdrawn {
            for p in &mut self.probes {
                if let Some(t) = p.pause("paused: the drain withdrew the route", now) {
                    let probe = p.spec().name().to_owned();
                    push_bounded(
                        &mut self.events,
                        HealthEvent::Probe {
                            probe,
                            transition: t,
                        },
                    );
                }
            }
            if let Route::Announced { .. } = self.route {
                self.route = Route::Withdrawn {
                    since: now,
                    cause: WithdrawCause::Drain,
                    hold_until: None,
                    reason: WithdrawReason::Drained,
                };
            }
        } else if was_withdrawn && !is_withdrawn {
            for p in &mut self.probes {
                p.resume(now);
            }
        }
    }

    /// The first thing, zones before probes, that keeps the node from being healthy.
    fn problem(&self) -> Option<WithdrawReason> {
        for (zone, f) in &self.zones {
            if !f.loaded {
                return Some(WithdrawReason::ZoneNotLoaded { zone: zone.clone() });
            }
            if f.expired {
                return Some(WithdrawReason::ZoneExpired { zone: zone.clone() });
            }
        }
        self.probes.iter().find(|p| !p.is_up()).map(|p| {
            let probe = p.spec().name().to_owned();
            match p.health() {
                crate::probe::ProbeHealth::Down => WithdrawReason::ProbeDown { probe },
                _ => WithdrawReason::ProbePending { probe },
            }
        })
    }

    fn update_route(&mut self, now: Instant) {
        let problem = self.problem();
        match &mut self.route {
            Route::Announced { since, reannounced } => {
                if let Some(reason) = problem {
                    let announced_for = now.saturating_duration_since(*since);
                    let hold = self.hold_down.on_withdraw(announced_for, *reannounced);
                    self.budget.record(now);
                    self.route = Route::Withdrawn {
                        since: now,
                        cause: WithdrawCause::Health,
                        hold_until: Some(now + hold),
                        reason,
                    };
                }
            }
            Route::Withdrawn {
                cause,
                hold_until,
                reason,
                ..
            } => {
                let blocked = if let Some(problem) = problem {
                    Some(problem)
                } else if hold_until.is_some_and(|t| now < t) {
                    Some(WithdrawReason::HoldDown)
                } else if *cause == WithdrawCause::Health && !self.budget.allows_announce(now) {
                    Some(WithdrawReason::FlapBudgetExhausted)
                } else {
                    None
                };
                match blocked {
                    Some(why) => *reason = why,
                    None => {
                        let reannounced = *cause == WithdrawCause::Health;
                        if reannounced {
                            self.budget.record(now);
                        }
                        self.route = Route::Announced {
                            since: now,
                            reannounced,
                        };
                    }
                }
            }
        }
    }

    fn compute_intent(&self) -> Intent {
        if self.drain.phase().is_withdrawn() {
            return Intent::Withdraw {
                reason: WithdrawReason::Drained,
            };
        }
        if let Route::Withdrawn { reason, .. } = &self.route {
            return Intent::Withdraw {
                reason: reason.clone(),
            };
        }
        let depref = if self.drain.phase().stage() == DrainStage::Depreferring {
            Some(DeprefReason::Draining)
        } else if self.maintenance {
            Some(DeprefReason::Maintenance)
        } else {
            self.zones
                .iter()
                .find(|(_, f)| f.lag_exceeded)
                .map(|(zone, _)| DeprefReason::ZoneLagging { zone: zone.clone() })
        };
        match depref {
            Some(reason) => Intent::AnnounceDepreferred { reason },
            None => Intent::Announce,
        }
    }

    fn push_event(&mut self, event: HealthEvent) {
        push_bounded(&mut self.events, event);
    }
}

fn push_bounded(events: &mut VecDeque<HealthEvent>, event: HealthEvent) {
    if events.len() == EVENT_QUEUE {
        events.pop_front();
    }
    events.push_back(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy(budget: u32) -> HealthPolicy {
        HealthPolicy {
            hold_down: 2 * S,
            hold_down_max: 120 * S,
            stable_after: 60 * S,
            flap_budget_per_hour: budget,
            drain: DrainTimers {
                deprefer: 5 * S,
                quiet: 2 * S,
                max_wait: 30 * S,
            },
        }
    }

    const LOADED: ZoneFreshness = ZoneFreshness {
        loaded: true,
        expired: false,
        lag_exceeded: false,
    };

    #[test]
    fn no_probes_and_loaded_zones_announce_at_once() {
        let t0 = Instant::now();
        let mut h = NodeHealth::new(policy(10), vec![], ["a."], t0).unwrap();
        assert!(!h.intent().is_announced());
        assert!(h.set_zone("a.", LOADED, t0));
        assert_eq!(h.intent(), &Intent::Announce);
        assert!(!h.set_zone("unknown.", LOADED, t0));
    }

    #[test]
    fn next_deadline_is_the_hold_down_end_then_nothing() {
        let t0 = Instant::now();
        let mut h = NodeHealth::new(policy(10), vec![], ["a."], t0).unwrap();
        h.set_zone("a.", LOADED, t0);
        assert_eq!(h.next_deadline(t0), None);
        h.set_zone("a.", ZoneFreshness::default(), t0 + S);
        h.set_zone("a.", LOADED, t0 + S);
        assert_eq!(h.next_deadline(t0 + S), Some(t0 + 3 * S));
        // A deadline already past is not reported again (no busy loop in the driver).
        h.poll(t0 + 3 * S);
        assert_eq!(h.intent(), &Intent::Announce);
        assert_eq!(h.next_deadline(t0 + 3 * S), None);
    }

    #[test]
    fn next_deadline_is_the_flap_budget_refill_when_it_blocks() {
        let t0 = Instant::now();
        let mut h = NodeHealth::new(policy(2), vec![], ["a."], t0).unwrap();
        h.set_zone("a.", LOADED, t0);
        h.set_zone("a.", ZoneFreshness::default(), t0 + S);
        h.set_zone("a.", LOADED, t0 + S);
        h.poll(t0 + 4 * S);
        assert_eq!(
            h.intent(),
            &Intent::Withdraw {
                reason: WithdrawReason::FlapBudgetExhausted
            }
        );
        assert_eq!(
            h.next_deadline(t0 + 4 * S),
            Some(t0 + S + crate::damping::FLAP_WINDOW)
        );
    }

    #[test]
    fn a_zone_added_later_withdraws_until_it_loads_and_removing_it_restores() {
        let t0 = Instant::now();
        let mut h = NodeHealth::new(policy(0), vec![], ["a."], t0).unwrap();
        h.set_zone("a.", LOADED, t0);
        h.add_zone("b.", ZoneFreshness::default(), t0);
        assert_eq!(
            h.intent(),
            &Intent::Withdraw {
                reason: WithdrawReason::ZoneNotLoaded { zone: "b.".into() }
            }
        );
        assert!(h.remove_zone("b.", t0 + 3 * S));
        assert_eq!(h.intent(), &Intent::Announce);
    }

    #[test]
    fn duplicate_probe_names_are_refused() {
        let one = std::num::NonZeroU32::MIN;
        let spec = ProbeSpec::new("x", S, S, one, one).unwrap();
        let err = NodeHealth::new(
            policy(0),
            vec![spec.clone(), spec],
            Vec::<String>::new(),
            Instant::now(),
        );
        assert!(matches!(err, Err(ConfigError::DuplicateProbe { .. })));
    }
}
