//! Recorded health scenarios on a simulated clock: each step feeds the machine one input at a
//! known time and checks the intent it answers with. The machine runs with the shipped
//! defaults (DNS probe every 100 ms, rise 5, fall 3; hold-down 2 s doubling; 10 changes an
//! hour; drain 5 s / quiet 2 s / at most 30 s), so these scenarios pin the defaults too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use anyns_health::{
    DeprefReason, DrainEnd, DrainPhase, DrainStage, HealthConfig, Intent, NodeHealth, ProbeHealth,
    ProbeId, ProbeOutcome, WithdrawReason, ZoneFreshness,
};

const MS: Duration = Duration::from_millis(1);
const INTERVAL: Duration = Duration::from_millis(100);
const ZONE_A: &str = "a.test.";
const ZONE_B: &str = "b.test.";

const LOADED: ZoneFreshness = ZoneFreshness {
    loaded: true,
    expired: false,
    lag_exceeded: false,
};

struct Sim {
    h: NodeHealth,
    t0: Instant,
    now: Instant,
    dns: ProbeId,
    queries: u64,
}

impl Sim {
    /// A node serving two zones, with the default config's policy and DNS probe.
    fn new() -> Sim {
        let t0 = Instant::now();
        let config = HealthConfig::default();
        let zones = [ZONE_A, ZONE_B].map(|z| z.parse().unwrap());
        let setup = config
            .build("192.0.2.53:53".parse().unwrap(), &zones)
            .unwrap();
        let specs = setup.probes.into_iter().map(|p| p.spec).collect();
        let h = NodeHealth::new(setup.policy, specs, [ZONE_A, ZONE_B], t0).unwrap();
        let dns = h.probe_id("dns").unwrap();
        Sim {
            h,
            t0,
            now: t0,
            dns,
            queries: 0,
        }
    }

    /// A node that has started, loaded its zones and announced.
    fn announced() -> Sim {
        let mut s = Sim::new();
        s.load_zones();
        s.oks(5);
        assert_eq!(s.intent(), Intent::Announce);
        s
    }

    fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    fn intent(&self) -> Intent {
        self.h.intent().clone()
    }

    fn load_zones(&mut self) {
        self.h.set_zone(ZONE_A, LOADED, self.now);
        self.h.set_zone(ZONE_B, LOADED, self.now);
    }

    /// One probe interval passes and the probe reports `outcome`.
    fn probe(&mut self, outcome: ProbeOutcome) -> Intent {
        self.now += INTERVAL;
        self.h.record_probe(self.dns, outcome, self.now);
        self.intent()
    }

    fn oks(&mut self, n: usize) -> Intent {
        for _ in 0..n {
            self.probe(ProbeOutcome::Ok);
        }
        self.intent()
    }

    fn lost(&mut self) -> Intent {
        self.probe(ProbeOutcome::TimedOut)
    }

    /// Healthy probes until `until` after the start.
    fn oks_until(&mut self, until: Duration) -> Intent {
        while self.now + INTERVAL <= self.t0 + until {
            self.probe(ProbeOutcome::Ok);
        }
        self.intent()
    }

    /// Healthy probes for `d`, with `qps`-ish queries counted and sampled on each step.
    fn serve_for(&mut self, d: Duration, queries_per_step: u64) -> Intent {
        let end = self.now + d;
        while self.now + INTERVAL <= end {
            self.probe(ProbeOutcome::Ok);
            self.queries += queries_per_step;
            self.h.sample_queries(self.queries, self.now);
        }
        self.intent()
    }

    /// Breaks the service: probes time out until the node withdraws; returns how many it took.
    fn break_until_withdrawn(&mut self) -> usize {
        let mut n = 0;
        while self.intent().is_announced() {
            self.lost();
            n += 1;
            assert!(n < 100, "never withdrew");
        }
        n
    }

    /// Heals the service: probes pass until the node announces; returns how long it took.
    fn heal_until_announced(&mut self) -> Duration {
        let start = self.now;
        while !self.intent().is_announced() {
            self.probe(ProbeOutcome::Ok);
            assert!(
                self.now - start < Duration::from_secs(7200),
                "never announced"
            );
        }
        self.now - start
    }
}

fn withdraw(reason: WithdrawReason) -> Intent {
    Intent::Withdraw { reason }
}

fn probe_down() -> Intent {
    withdraw(WithdrawReason::ProbeDown {
        probe: "dns".into(),
    })
}

fn deprefer(reason: DeprefReason) -> Intent {
    Intent::AnnounceDepreferred { reason }
}

#[test]
fn startup_is_withdrawn_until_every_zone_loaded_even_with_probes_passing() {
    let mut s = Sim::new();
    let not_loaded = |z: &str| withdraw(WithdrawReason::ZoneNotLoaded { zone: z.into() });
    assert_eq!(s.intent(), not_loaded(ZONE_A));
    assert_eq!(s.oks(10), not_loaded(ZONE_A));
    s.h.set_zone(ZONE_A, LOADED, s.now);
    assert_eq!(s.intent(), not_loaded(ZONE_B));
    s.h.set_zone(ZONE_B, LOADED, s.now);
    // The probe has long passed `rise` times, and a start has no hold-down.
    assert_eq!(s.intent(), Intent::Announce);
}

#[test]
fn startup_is_withdrawn_until_the_first_probes_pass_rise_times() {
    let mut s = Sim::new();
    s.load_zones();
    let pending = withdraw(WithdrawReason::ProbePending {
        probe: "dns".into(),
    });
    assert_eq!(s.intent(), pending);
    for _ in 0..4 {
        assert_eq!(s.probe(ProbeOutcome::Ok), pending);
    }
    assert_eq!(s.probe(ProbeOutcome::Ok), Intent::Announce);
    assert_eq!(s.ms(), 500);
    // A failure while pending starts the count again.
    let mut s = Sim::new();
    s.load_zones();
    s.oks(4);
    s.lost();
    assert_eq!(s.oks(4), pending);
    assert_eq!(s.oks(1), Intent::Announce);
}

#[test]
fn one_lost_probe_does_not_withdraw_nor_two_in_a_row() {
    let mut s = Sim::announced();
    assert_eq!(s.lost(), Intent::Announce);
    assert_eq!(s.probe(ProbeOutcome::Ok), Intent::Announce);
    assert_eq!(s.lost(), Intent::Announce);
    assert_eq!(s.lost(), Intent::Announce);
    assert_eq!(s.probe(ProbeOutcome::Ok), Intent::Announce);
    assert_eq!(
        s.probe(ProbeOutcome::Failed("rcode SERVFAIL".into())),
        Intent::Announce
    );
    assert_eq!(s.probe(ProbeOutcome::Ok), Intent::Announce);
}

#[test]
fn fall_consecutive_failures_withdraw_within_fall_intervals() {
    let mut s = Sim::announced();
    let broke_at = s.now;
    assert_eq!(s.break_until_withdrawn(), 3);
    assert_eq!(s.intent(), probe_down());
    // fall × interval here; the probe's own timeout adds at most 100 ms in real life.
    assert_eq!(s.now - broke_at, 300 * MS);
    let status = s.h.status(s.now);
    let dns = &status.probes[0];
    assert_eq!(dns.health, ProbeHealth::Down);
    let last = dns.transitions.last().unwrap();
    assert_eq!(last.reason, "3 consecutive failures, last timed out");
    assert_eq!((last.from, last.to), (ProbeHealth::Up, ProbeHealth::Down));
}

#[test]
fn after_a_withdraw_rise_successes_and_the_hold_down_are_both_needed() {
    let mut s = Sim::announced();
    s.break_until_withdrawn();
    let withdrawn_at = s.now;
    // Five clean answers make the probe Up again, but the 2 s hold-down still runs.
    assert_eq!(s.oks(5), withdraw(WithdrawReason::HoldDown));
    let status = s.h.status(s.now);
    assert_eq!(status.route.hold_down_remaining_ms, 1500);
    // A failure during the hold-down shows the real reason, and rise starts again.
    assert_eq!(s.lost(), withdraw(WithdrawReason::HoldDown));
    s.lost();
    assert_eq!(s.lost(), probe_down());
    // Healthy from here on: announced exactly when the hold-down ends.
    let back = s.heal_until_announced();
    assert_eq!(s.now - withdrawn_at, 2000 * MS);
    assert!(back >= 5 * INTERVAL);
    assert_eq!(s.intent(), Intent::Announce);
}

#[test]
fn repeated_flaps_double_the_hold_down_until_the_flap_budget_keeps_the_node_withdrawn() {
    let mut s = Sim::announced();
    let mut hold_downs = Vec::new();
    let mut first_withdraw = None;
    for _ in 0..4 {
        s.oks(10); // up for one second: a flap
        s.break_until_withdrawn();
        first_withdraw.get_or_insert(s.now);
        hold_downs.push(s.h.status(s.now).route.hold_down_remaining_ms);
        s.heal_until_announced();
    }
    // The first withdraw gets the base; each quick re-announce that fails doubles it.
    assert_eq!(hold_downs, [2000, 4000, 8000, 16_000]);

    // The fifth withdraw: 9 of 10 changes used, no room for an announce and its withdraw.
    s.oks(10);
    s.break_until_withdrawn();
    assert_eq!(s.h.status(s.now).route.hold_down_remaining_ms, 32_000);
    let after_hold_down = s.now + Duration::from_secs(33);
    s.oks_until(after_hold_down - s.t0);
    assert_eq!(s.intent(), withdraw(WithdrawReason::FlapBudgetExhausted));
    let status = s.h.status(s.now);
    assert!(status.flap_budget.exhausted);
    assert_eq!(status.flap_budget.used, 9);
    assert_eq!(status.flap_budget.limit_per_hour, 10);
    // It refills when the first withdraw leaves the one-hour window.
    let refill = first_withdraw.unwrap() + Duration::from_secs(3600);
    assert_eq!(
        status.flap_budget.refills_in_ms,
        Some(u64::try_from((refill - s.now).as_millis()).unwrap())
    );
    s.oks_until(refill - s.t0 - INTERVAL);
    assert_eq!(s.intent(), withdraw(WithdrawReason::FlapBudgetExhausted));
    assert_eq!(s.probe(ProbeOutcome::Ok), Intent::Announce);
    assert!(s.now >= refill);
    // A withdraw is never refused, budget or not.
    s.break_until_withdrawn();
    assert_eq!(s.intent(), probe_down());
}

#[test]
fn operator_reset_of_the_flap_budget_allows_announcing_again() {
    let mut s = Sim::announced();
    for _ in 0..5 {
        s.oks(10);
        s.break_until_withdrawn();
        s.oks_until(s.now - s.t0 + Duration::from_secs(40));
    }
    assert_eq!(s.intent(), withdraw(WithdrawReason::FlapBudgetExhausted));
    s.h.reset_flap_budget(s.now);
    assert_eq!(s.intent(), Intent::Announce);
    assert_eq!(s.h.status(s.now).route.next_hold_down_ms, 2000);
}

#[test]
fn an_announcement_that_lasted_resets_the_backoff_to_the_base() {
    let mut s = Sim::announced();
    s.break_until_withdrawn();
    s.heal_until_announced();
    s.oks(10);
    s.break_until_withdrawn();
    assert_eq!(s.h.status(s.now).route.hold_down_remaining_ms, 4000);
    s.heal_until_announced();
    s.oks_until(s.now - s.t0 + Duration::from_secs(61));
    s.break_until_withdrawn();
    assert_eq!(s.h.status(s.now).route.hold_down_remaining_ms, 2000);
}

#[test]
fn probe_silence_withdraws_like_failures() {
    let mut s = Sim::announced();
    // No result at all (a stuck probe task): (fall + 1) × interval + timeout = 500 ms.
    s.now += 499 * MS;
    s.h.poll(s.now);
    assert_eq!(s.intent(), Intent::Announce);
    s.now += MS;
    s.h.poll(s.now);
    assert_eq!(s.intent(), probe_down());
    let status = s.h.status(s.now);
    let reason = &status.probes[0].transitions.last().unwrap().reason;
    assert_eq!(reason, "no result for 500 ms");
}

#[test]
fn zone_lag_deprefers_and_zone_expiry_withdraws_at_once() {
    let mut s = Sim::announced();
    let lagging = ZoneFreshness {
        lag_exceeded: true,
        ..LOADED
    };
    s.h.set_zone(ZONE_B, lagging, s.now);
    assert_eq!(
        s.intent(),
        deprefer(DeprefReason::ZoneLagging {
            zone: ZONE_B.into()
        })
    );
    let expired = ZoneFreshness {
        expired: true,
        ..lagging
    };
    s.h.set_zone(ZONE_B, expired, s.now);
    assert_eq!(
        s.intent(),
        withdraw(WithdrawReason::ZoneExpired {
            zone: ZONE_B.into()
        })
    );
    let withdrawn_at = s.now;
    s.h.set_zone(ZONE_B, LOADED, s.now);
    assert_eq!(s.intent(), withdraw(WithdrawReason::HoldDown));
    s.heal_until_announced();
    assert_eq!(s.now - withdrawn_at, 2000 * MS);
}

#[test]
fn maintenance_deprefers_but_never_hides_a_failure() {
    let mut s = Sim::announced();
    s.h.set_maintenance(true, s.now);
    assert_eq!(s.intent(), deprefer(DeprefReason::Maintenance));
    s.break_until_withdrawn();
    assert_eq!(s.intent(), probe_down());
    s.heal_until_announced();
    assert_eq!(s.intent(), deprefer(DeprefReason::Maintenance));
    s.h.set_maintenance(false, s.now);
    assert_eq!(s.intent(), Intent::Announce);
}

#[test]
fn drain_deprefers_then_withdraws_then_is_drained_after_the_quiet_period() {
    let mut s = Sim::announced();
    s.serve_for(Duration::from_secs(1), 50);
    let start = s.now;
    s.h.start_drain(s.now);
    assert_eq!(s.intent(), deprefer(DeprefReason::Draining));
    // Step 1: de-preferred for 5 s, probes still running, queries still coming.
    assert_eq!(s.serve_for(4900 * MS, 50), deprefer(DeprefReason::Draining));
    assert_eq!(s.serve_for(100 * MS, 50), withdraw(WithdrawReason::Drained));
    assert_eq!(s.now - start, 5000 * MS);
    assert_eq!(s.h.drain_phase().stage(), DrainStage::Quiescing);
    // Step 2 paused the self-probe, whose queries would count as clients'.
    let status = s.h.status(s.now);
    assert!(status.probes[0].paused);
    assert_eq!(status.drain.stage, DrainStage::Quiescing);
    // Step 3: stragglers for another second, then silence.
    for _ in 0..10 {
        s.now += INTERVAL;
        s.queries += 3;
        s.h.sample_queries(s.queries, s.now);
    }
    let last_query = s.now;
    while s.h.drain_phase().stage() == DrainStage::Quiescing {
        s.now += INTERVAL;
        s.h.sample_queries(s.queries, s.now);
        assert!(s.now - last_query <= Duration::from_secs(3));
    }
    assert_eq!(s.now - last_query, 2000 * MS);
    assert!(matches!(
        s.h.drain_phase(),
        DrainPhase::Drained {
            end: DrainEnd::Quiet,
            ..
        }
    ));
    assert_eq!(s.intent(), withdraw(WithdrawReason::Drained));
    // The planned withdraw is not a flap.
    assert_eq!(s.h.status(s.now).flap_budget.used, 0);
}

#[test]
fn drain_ends_at_the_maximum_wait_when_queries_never_stop() {
    let mut s = Sim::announced();
    s.h.start_drain(s.now);
    let withdrawn_at = s.now + Duration::from_secs(5);
    s.serve_for(Duration::from_secs(5), 10);
    while s.h.drain_phase().stage() == DrainStage::Quiescing {
        s.now += INTERVAL;
        s.queries += 10;
        s.h.sample_queries(s.queries, s.now);
    }
    assert_eq!(s.now - withdrawn_at, Duration::from_secs(30));
    assert!(matches!(
        s.h.drain_phase(),
        DrainPhase::Drained {
            end: DrainEnd::MaxWait,
            ..
        }
    ));
}

#[test]
fn drain_of_a_withdrawn_node_skips_the_deprefer_step() {
    let mut s = Sim::announced();
    s.break_until_withdrawn();
    s.h.start_drain(s.now);
    assert_eq!(s.h.drain_phase().stage(), DrainStage::Quiescing);
    assert_eq!(s.intent(), withdraw(WithdrawReason::Drained));
}

#[test]
fn undrain_during_the_deprefer_step_returns_to_announce() {
    let mut s = Sim::announced();
    s.h.start_drain(s.now);
    s.oks(10);
    s.h.cancel_drain(s.now);
    assert_eq!(s.intent(), Intent::Announce);
    assert_eq!(s.h.drain_phase(), DrainPhase::Idle);
}

#[test]
fn undrain_after_the_withdraw_needs_the_probes_to_pass_again_but_no_hold_down() {
    let mut s = Sim::announced();
    s.h.start_drain(s.now);
    s.serve_for(Duration::from_secs(6), 1);
    assert_eq!(s.intent(), withdraw(WithdrawReason::Drained));
    s.h.cancel_drain(s.now);
    let pending = withdraw(WithdrawReason::ProbePending {
        probe: "dns".into(),
    });
    assert_eq!(s.intent(), pending);
    assert_eq!(s.oks(4), pending);
    assert_eq!(s.oks(1), Intent::Announce);
    assert_eq!(s.h.status(s.now).flap_budget.used, 0);
}

#[test]
fn status_keeps_the_intent_history_with_reasons() {
    let mut s = Sim::announced();
    s.break_until_withdrawn();
    s.heal_until_announced();
    let status = s.h.status(s.now);
    let history: Vec<Intent> = status
        .intent_history
        .iter()
        .map(|c| c.intent.clone())
        .collect();
    assert_eq!(
        history,
        [
            withdraw(WithdrawReason::ZoneNotLoaded {
                zone: ZONE_A.into()
            }),
            withdraw(WithdrawReason::ZoneNotLoaded {
                zone: ZONE_B.into()
            }),
            withdraw(WithdrawReason::ProbePending {
                probe: "dns".into()
            }),
            Intent::Announce,
            probe_down(),
            withdraw(WithdrawReason::HoldDown),
            Intent::Announce,
        ]
    );
    assert_eq!(status.intent_for_ms, 0);
    assert_eq!(status.zones.len(), 2);
    assert!(status.route.announced);
    let events: Vec<_> = std::iter::from_fn(|| s.h.poll_event()).collect();
    assert!(events.len() >= history.len());
}
