//! One probe's state: rise/fall counting over a stream of results, with no I/O and no clock.
//!
//! A probe is Up after `rise` consecutive successes and Down after `fall` consecutive failures;
//! one result against the trend resets the opposite counter, so a single lost probe never moves
//! the state. A probe starts `Pending` (no verdict yet), which counts as not up: the node does
//! not announce before every probe has passed `rise` times.

use std::fmt;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::ConfigError;
use crate::history::History;

/// How many transitions each probe remembers for the status page.
pub const TRANSITION_HISTORY: usize = 16;

/// What one run of a probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum ProbeOutcome {
    Ok,
    Failed(String),
    TimedOut,
}

impl ProbeOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, ProbeOutcome::Ok)
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Ok => f.write_str("ok"),
            ProbeOutcome::Failed(reason) => write!(f, "failed: {reason}"),
            ProbeOutcome::TimedOut => f.write_str("timed out"),
        }
    }
}

/// A probe's verdict after hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeHealth {
    /// No verdict yet: just started, or resumed after a drain. Not up.
    Pending,
    Up,
    Down,
}

impl fmt::Display for ProbeHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeHealth::Pending => "pending",
            ProbeHealth::Up => "up",
            ProbeHealth::Down => "down",
        })
    }
}

/// How a probe is run and judged. Interval and timeout are non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    name: String,
    interval: Duration,
    timeout: Duration,
    rise: NonZeroU32,
    fall: NonZeroU32,
}

impl ProbeSpec {
    pub fn new(
        name: impl Into<String>,
        interval: Duration,
        timeout: Duration,
        rise: NonZeroU32,
        fall: NonZeroU32,
    ) -> Result<Self, ConfigError> {
        let name = name.into();
        if interval.is_zero() || timeout.is_zero() {
            return Err(ConfigError::ZeroDuration { probe: name });
        }
        Ok(ProbeSpec {
            name,
            interval,
            timeout,
            rise,
            fall,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn interval(&self) -> Duration {
        self.interval
    }
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    pub fn rise(&self) -> u32 {
        self.rise.get()
    }
    pub fn fall(&self) -> u32 {
        self.fall.get()
    }

    /// Worst-case time from the service breaking to this probe going Down:
    /// `fall` runs, one interval apart, the last of which waits out its timeout.
    pub fn time_to_down(&self) -> Duration {
        self.interval.max(self.timeout) * self.fall.get() + self.timeout
    }

    /// With no result at all for this long, the probe itself is broken (a stuck task, a runner
    /// that stopped): it is marked Down, since nothing confirms the service works.
    pub fn stale_after(&self) -> Duration {
        self.interval.max(self.timeout) * (self.fall.get() + 1) + self.timeout
    }
}

/// A change of a probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTransition {
    pub at: Instant,
    pub from: ProbeHealth,
    pub to: ProbeHealth,
    pub reason: String,
}

/// The running state of one probe.
#[derive(Debug, Clone)]
pub struct ProbeState {
    spec: ProbeSpec,
    health: ProbeHealth,
    successes: u32,
    failures: u32,
    last_result: Option<(Instant, ProbeOutcome)>,
    /// Results older than this do not count toward staleness: the probe's start or resume time,
    /// or its last result.
    heard_at: Instant,
    paused: bool,
    transitions: History<ProbeTransition>,
}

impl ProbeState {
    pub fn new(spec: ProbeSpec, now: Instant) -> Self {
        ProbeState {
            spec,
            health: ProbeHealth::Pending,
            successes: 0,
            failures: 0,
            last_result: None,
            heard_at: now,
            paused: false,
            transitions: History::new(TRANSITION_HISTORY),
        }
    }

    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }
    pub fn health(&self) -> ProbeHealth {
        self.health
    }
    pub fn is_up(&self) -> bool {
        self.health == ProbeHealth::Up
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    pub fn consecutive_successes(&self) -> u32 {
        self.successes
    }
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }
    pub fn last_result(&self) -> Option<&(Instant, ProbeOutcome)> {
        self.last_result.as_ref()
    }
    pub fn last_transition(&self) -> Option<&ProbeTransition> {
        self.transitions.last()
    }
    pub fn transitions(&self) -> &History<ProbeTransition> {
        &self.transitions
    }

    /// Counts one result; returns the transition it caused, if any. Ignored while paused (a
    /// result of a run that started before the pause).
    pub fn record(&mut self, outcome: ProbeOutcome, now: Instant) -> Option<ProbeTransition> {
        if self.paused {
            return None;
        }
        self.heard_at = now;
        let transition = if outcome.is_ok() {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (self.health != ProbeHealth::Up && self.successes >= self.spec.rise()).then(|| {
                let reason = format!("{} consecutive successes", self.successes);
                self.transition(ProbeHealth::Up, reason, now)
            })
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.health != ProbeHealth::Down && self.failures >= self.spec.fall()).then(|| {
                let reason = format!("{} consecutive failures, last {outcome}", self.failures);
                self.transition(ProbeHealth::Down, reason, now)
            })
        };
        self.last_result = Some((now, outcome));
        transition
    }

    /// Marks the probe Down when no result has arrived for [`ProbeSpec::stale_after`].
    pub fn check_stale(&mut self, now: Instant) -> Option<ProbeTransition> {
        if self.paused || self.health == ProbeHealth::Down {
            return None;
        }
        let silent = now.saturating_duration_since(self.heard_at);
        if silent < self.spec.stale_after() {
            return None;
        }
        self.successes = 0;
        let reason = format!("no result for {} ms", silent.as_millis());
        Some(self.transition(ProbeHealth::Down, reason, now))
    }

    /// When [`check_stale`](Self::check_stale) would next act.
    pub fn stale_deadline(&self) -> Option<Instant> {
        (!self.paused && self.health != ProbeHealth::Down)
            .then(|| self.heard_at + self.spec.stale_after())
    }

    /// Stops counting (a drain has withdrawn the route and the self-probe would count as
    /// client queries); the verdict goes back to Pending.
    pub fn pause(&mut self, reason: &str, now: Instant) -> Option<ProbeTransition> {
        if self.paused {
            return None;
        }
        self.paused = true;
        self.successes = 0;
        self.failures = 0;
        (self.health != ProbeHealth::Pending)
            .then(|| self.transition(ProbeHealth::Pending, reason.to_owned(), now))
    }

    /// Counts again from nothing: `rise` successes are needed before the probe is Up.
    pub fn resume(&mut self, now: Instant) {
        self.paused = false;
        self.heard_at = now;
    }

    fn transition(&mut self, to: ProbeHealth, reason: String, now: Instant) -> ProbeTransition {
        let t = ProbeTransition {
            at: now,
            from: self.health,
            to,
            reason,
        };
        self.health = to;
        self.transitions.push(t.clone());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rise: u32, fall: u32) -> ProbeSpec {
        ProbeSpec::new(
            "dns",
            Duration::from_millis(100),
            Duration::from_millis(100),
            NonZeroU32::new(rise).unwrap(),
            NonZeroU32::new(fall).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn starts_pending_and_rises_after_rise_successes() {
        let t0 = Instant::now();
        let mut p = ProbeState::new(spec(3, 2), t0);
        assert_eq!(p.health(), ProbeHealth::Pending);
        assert!(p.record(ProbeOutcome::Ok, t0).is_none());
        assert!(p.record(ProbeOutcome::Ok, t0).is_none());
        let t = p.record(ProbeOutcome::Ok, t0).unwrap();
        assert_eq!((t.from, t.to), (ProbeHealth::Pending, ProbeHealth::Up));
        assert_eq!(t.reason, "3 consecutive successes");
    }

    #[test]
    fn one_failure_between_successes_does_not_fall_and_resets_the_count() {
        let t0 = Instant::now();
        let mut p = ProbeState::new(spec(1, 2), t0);
        p.record(ProbeOutcome::Ok, t0);
        assert!(p.record(ProbeOutcome::TimedOut, t0).is_none());
        assert!(p.record(ProbeOutcome::Ok, t0).is_none());
        assert!(p.record(ProbeOutcome::TimedOut, t0).is_none());
        assert!(p.is_up());
        let t = p
            .record(ProbeOutcome::Failed("rcode SERVFAIL".into()), t0)
            .unwrap();
        assert_eq!(t.to, ProbeHealth::Down);
        assert_eq!(
            t.reason,
            "2 consecutive failures, last failed: rcode SERVFAIL"
        );
        assert_eq!(p.transitions().len(), 2);
    }

    #[test]
    fn silence_marks_the_probe_down_once() {
        let t0 = Instant::now();
        let mut p = ProbeState::new(spec(1, 2), t0);
        p.record(ProbeOutcome::Ok, t0);
        let stale = p.spec().stale_after();
        assert_eq!(stale, Duration::from_millis(400));
        assert_eq!(p.stale_deadline(), Some(t0 + stale));
        assert!(
            p.check_stale(t0 + stale - Duration::from_millis(1))
                .is_none()
        );
        let t = p.check_stale(t0 + stale).unwrap();
        assert_eq!(t.to, ProbeHealth::Down);
        assert_eq!(t.reason, "no result for 400 ms");
        assert!(p.check_stale(t0 + stale * 2).is_none());
    }

    #[test]
    fn paused_probe_ignores_results_and_needs_rise_again_after_resume() {
        let t0 = Instant::now();
        let mut p = ProbeState::new(spec(2, 2), t0);
        p.record(ProbeOutcome::Ok, t0);
        p.record(ProbeOutcome::Ok, t0);
        assert!(p.is_up());
        let t = p.pause("drain", t0).unwrap();
        assert_eq!(t.to, ProbeHealth::Pending);
        assert!(p.record(ProbeOutcome::Ok, t0).is_none());
        assert!(p.check_stale(t0 + Duration::from_secs(60)).is_none());
        p.resume(t0);
        assert!(p.record(ProbeOutcome::Ok, t0).is_none());
        assert!(p.record(ProbeOutcome::Ok, t0).is_some());
    }

    #[test]
    fn zero_interval_is_rejected() {
        let one = NonZeroU32::MIN;
        assert!(ProbeSpec::new("x", Duration::ZERO, Duration::from_millis(1), one, one).is_err());
    }

    #[test]
    fn time_to_down_is_fall_intervals_plus_a_timeout() {
        assert_eq!(spec(5, 3).time_to_down(), Duration::from_millis(400));
    }
}
