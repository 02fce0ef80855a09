//! The secondary's refresh logic for one zone, without I/O (RFC 1034 section 4.3.5, RFC 1035
//! section 3.3.13, RFC 1996 for NOTIFY, RFC 1995/5936 for the transfers).
//!
//! Feed it the results of the actions it asks for and call [`Secondary::handle_timeout`] at
//! [`Secondary::poll_timeout`]; take actions with [`Secondary::poll_action`]. Time is an
//! argument: tests drive it with a simulated clock.
//!
//! One refresh attempt walks the primaries in order: SOA query; if the primary's serial is newer
//! (RFC 1982), a transfer (IXFR when we hold the zone, AXFR after an IXFR that failed or was
//! refused); a primary that fails passes the turn to the next. When every primary failed, the
//! next attempt waits RETRY; after a success, REFRESH. With no success for EXPIRE the zone is
//! expired: it must no longer be served.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyns_wire::Name;
use anyns_zone::{Zone, ZoneDiff, soa_fields};

use crate::serial;
use crate::transfer::{TransferError, TransferKind, Transferred};
use crate::tsig::TsigKey;

/// A primary server of the zone.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryServer {
    pub addr: SocketAddr,
    /// Sign requests to it with this key, and require its answers to be signed.
    pub key: Option<TsigKey>,
}

/// Bounds applied to the SOA timers, so that a zone with silly values neither hammers the
/// primary nor goes stale for weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerBounds {
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub expire_min: Duration,
    /// Retry interval while we have never loaded the zone (no SOA to take RETRY from).
    pub initial_retry: Duration,
}

impl Default for TimerBounds {
    fn default() -> Self {
        TimerBounds {
            refresh_min: Duration::from_secs(2),
            refresh_max: Duration::from_secs(86_400),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(86_400),
            expire_min: Duration::from_secs(60),
            initial_retry: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecondaryConfig {
    pub zone: Name,
    /// Tried in order (RFC 1996 section 3.10 aside: a NOTIFY moves its sender to the front).
    pub primaries: Vec<PrimaryServer>,
    pub timers: TimerBounds,
    pub soa_timeout: Duration,
    pub transfer_timeout: Duration,
    /// Ask for IXFR when we hold a version of the zone.
    pub ixfr: bool,
}

impl SecondaryConfig {
    pub fn new(zone: Name, primaries: Vec<PrimaryServer>) -> Self {
        SecondaryConfig {
            zone,
            primaries,
            timers: TimerBounds::default(),
            soa_timeout: Duration::from_secs(5),
            transfer_timeout: Duration::from_secs(300),
            ixfr: true,
        }
    }
}

/// Identifies one requested operation, so that late results of abandoned ones are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// How a published version relates to the one published before, which tells the driver what to
/// write to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The version already stored: restored at start-up, or served again after it had expired.
    Stored,
    /// A whole new zone (AXFR, or an IXFR answered in AXFR form, RFC 1995 section 4).
    Full,
    /// The previous version with these IXFR steps applied (RFC 1995 section 4).
    Incremental(Arc<[ZoneDiff]>),
}

/// What the secondary asks its driver to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send an SOA query for the zone to `primaries[primary]`; report with `soa_result`.
    QuerySoa { op: OpId, primary: usize },
    /// Transfer the zone from `primaries[primary]`; report with `transfer_result`.
    Transfer {
        op: OpId,
        primary: usize,
        kind: TransferKind,
    },
    /// Serve this zone: a new version, or the same one again after it had expired.
    Publish { zone: Arc<Zone>, change: Change },
    /// A refresh succeeded: the timers moved (persist them).
    Refreshed,
    /// EXPIRE passed without a successful refresh: stop serving the zone (RFC 1035 3.3.13).
    Expired,
}

impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Action::Publish { zone, change },
                Action::Publish {
                    zone: zone2,
                    change: change2,
                },
            ) => Arc::ptr_eq(zone, zone2) && change == change2,
            (
                Action::QuerySoa { op, primary },
                Action::QuerySoa {
                    op: op2,
                    primary: primary2,
                },
            ) => op == op2 && primary == primary2,
            (
                Action::Transfer { op, primary, kind },
                Action::Transfer {
                    op: op2,
                    primary: primary2,
                    kind: kind2,
                },
            ) => op == op2 && primary == primary2 && kind == kind2,
            (Action::Refreshed, Action::Refreshed) | (Action::Expired, Action::Expired) => true,
            _ => false,
        }
    }
}

/// What health and status want to know about the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub loaded: bool,
    pub serial: Option<u32>,
    pub last_refresh: Option<Instant>,
    /// The serial the primary last reported.
    pub primary_serial: Option<u32>,
    /// Since when the primary has had a newer serial than ours.
    pub behind_since: Option<Instant>,
    pub expired: bool,
    pub refresh_at: Option<Instant>,
    pub expire_at: Option<Instant>,
}

impl Freshness {
    /// Whether we have been behind the primary for longer than `bound`.
    pub fn lag_exceeded(&self, now: Instant, bound: Duration) -> bool {
        self.behind_since
            .is_some_and(|since| now.saturating_duration_since(since) > bound)
    }
}

/// A zone restored from disk at start-up, with its timers (wall-clock times converted by the
/// caller into durations relative to now).
#[derive(Debug, Clone)]
pub struct Restored {
    pub zone: Arc<Zone>,
    /// How long ago the last successful refresh was.
    pub refresh_age: Duration,
    /// Time left until it expires (zero: already expired).
    pub expire_in: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the refresh timer.
    Idle,
    Soa {
        op: OpId,
        primary: usize,
        deadline: Instant,
    },
    Transfer {
        op: OpId,
        primary: usize,
        kind: TransferKind,
        deadline: Instant,
    },
}

/// One secondary zone's refresh state machine.
pub struct Secondary {
    config: SecondaryConfig,
    zone: Option<Arc<Zone>>,
    phase: Phase,
    /// Primaries in the order of the current attempt, and how many have been tried.
    order: Vec<usize>,
    tried: usize,
    next_op: u64,
    refresh_at: Instant,
    expire_at: Option<Instant>,
    last_refresh: Option<Instant>,
    primary_serial: Option<u32>,
    behind_since: Option<Instant>,
    expired: bool,
    notify_pending: Option<Option<usize>>,
    actions: VecDeque<Action>,
}

impl Secondary {
    /// A secondary with no data: the first refresh starts at `now`.
    pub fn new(config: SecondaryConfig, now: Instant) -> Self {
        Secondary {
            order: (0..config.primaries.len()).collect(),
            config,
            zone: None,
            phase: Phase::Idle,
            tried: 0,
            next_op: 0,
            refresh_at: now,
            expire_at: None,
            last_refresh: None,
            primary_serial: None,
            behind_since: None,
            expired: false,
            notify_pending: None,
            actions: VecDeque::new(),
        }
    }

    /// A secondary that starts serving a zone kept from before a restart, honouring the refresh
    /// and expiry it had.
    pub fn restore(config: SecondaryConfig, restored: Restored, now: Instant) -> Self {
        let mut s = Secondary::new(config, now);
        let [_, refresh, _, _, _] = s.soa_timers(&restored.zone);
        // A last refresh too long ago for the monotonic clock to express (the store gives an
        // unknown one as the Unix epoch) makes the refresh due now, like any older than REFRESH.
        let last = now.checked_sub(restored.refresh_age);
        s.last_refresh = last;
        s.refresh_at = last.map_or(now, |last| (last + refresh).max(now));
        s.expire_at = Some(now + restored.expire_in);
        s.zone = Some(restored.zone.clone());
        if restored.expire_in.is_zero() {
            s.expired = true;
            s.refresh_at = now;
        } else {
            s.actions.push_back(Action::Publish {
                zone: restored.zone,
                change: Change::Stored,
            });
        }
        s
    }

    pub fn zone_name(&self) -> &Name {
        &self.config.zone
    }

    pub fn config(&self) -> &SecondaryConfig {
        &self.config
    }

    /// The zone we hold (even if expired).
    pub fn zone(&self) -> Option<&Arc<Zone>> {
        self.zone.as_ref()
    }

    pub fn freshness(&self) -> Freshness {
        Freshness {
            loaded: self.zone.is_some(),
            serial: self.zone.as_ref().map(|z| z.serial()),
            last_refresh: self.last_refresh,
            primary_serial: self.primary_serial,
            behind_since: self.behind_since,
            expired: self.expired,
            refresh_at: (self.phase == Phase::Idle).then_some(self.refresh_at),
            expire_at: self.expire_at,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Secondary::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Idle => self.refresh_at,
            Phase::Soa { deadline, .. } | Phase::Transfer { deadline, .. } => deadline,
        };
        let expire = self
            .expire_at
            .filter(|_| !self.expired && self.zone.is_some());
        Some(expire.map_or(phase, |e| e.min(phase)))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(expire_at) = self.expire_at {
            if !self.expired && self.zone.is_some() && now >= expire_at {
                // RFC 1035 section 3.3.13: EXPIRE without a refresh, no longer authoritative.
                self.expired = true;
                self.actions.push_back(Action::Expired);
            }
        }
        match self.phase {
            Phase::Idle if now >= self.refresh_at => self.start_attempt(now),
            Phase::Soa { deadline, op, .. } if now >= deadline => {
                self.soa_result(op, Err(TransferError::Timeout), now);
            }
            Phase::Transfer { deadline, op, .. } if now >= deadline => {
                self.transfer_result(op, Err(TransferError::Timeout), now);
            }
            _ => {}
        }
    }

    /// A NOTIFY for this zone was accepted (RFC 1996 section 3.7): check the primary now,
    /// starting with the one that sent it (`from`, an index in the primaries) if known. While a
    /// check is under way, one more follows it.
    pub fn notify(&mut self, from: Option<usize>, now: Instant) {
        if self.phase == Phase::Idle {
            self.order_from(from);
            self.refresh_at = now;
            self.handle_timeout(now);
        } else {
            self.notify_pending = Some(from);
        }
    }

    /// The answer to an SOA query: the primary's serial, or why there is none.
    pub fn soa_result(&mut self, op: OpId, result: Result<u32, TransferError>, now: Instant) {
        let Phase::Soa {
            op: current,
            primary,
            ..
        } = self.phase
        else {
            return;
        };
        if current != op {
            return;
        }
        match result {
            Ok(theirs) => {
                self.primary_serial = Some(theirs);
                let ours = self.zone.as_ref().map(|z| z.serial());
                match ours {
                    Some(ours) if !serial::is_newer(theirs, ours) => {
                        // Up to date (or the primary is behind us: nothing to take from it).
                        self.behind_since = None;
                        self.refreshed(now);
                    }
                    _ => {
                        self.behind_since.get_or_insert(now);
                        let kind = if self.zone.is_some() && self.config.ixfr {
                            TransferKind::Ixfr
                        } else {
                            TransferKind::Axfr
                        };
                        self.start_transfer(primary, kind, now);
                    }
                }
            }
            Err(_) => self.next_primary(now),
        }
    }

    /// The outcome of a transfer.
    pub fn transfer_result(
        &mut self,
        op: OpId,
        result: Result<Transferred, TransferError>,
        now: Instant,
    ) {
        let Phase::Transfer {
            op: current,
            primary,
            kind,
            ..
        } = self.phase
        else {
            return;
        };
        if current != op {
            return;
        }
        match result {
            Ok(Transferred::UpToDate { serial }) => {
                self.primary_serial = Some(serial);
                self.behind_since = None;
                self.refreshed(now);
            }
            Ok(Transferred::Full(zone)) => self.transferred(zone, Change::Full, now),
            Ok(Transferred::Incremental { zone, diffs }) => {
                self.transferred(zone, Change::Incremental(diffs.into()), now);
            }
            Err(e) if kind == TransferKind::Ixfr && e.ixfr_fallback() => {
                // RFC 1995 section 4 / common practice: a failed or refused IXFR is retried as
                // AXFR from the same primary.
                self.start_transfer(primary, TransferKind::Axfr, now);
            }
            Err(_) => self.next_primary(now),
        }
    }

    /// A new version arrived: serve it, and it is current with the primary.
    fn transferred(&mut self, zone: Zone, change: Change, now: Instant) {
        let zone = Arc::new(zone);
        self.primary_serial = Some(zone.serial());
        self.behind_since = None;
        self.zone = Some(zone.clone());
        self.actions.push_back(Action::Publish { zone, change });
        self.expired = false;
        self.refreshed(now);
    }

    fn soa_timers(&self, zone: &Zone) -> [Duration; 5] {
        let fields = zone
            .soa()
            .and_then(|s| s.rdatas().next())
            .and_then(soa_fields)
            .unwrap_or([0; 5]);
        let b = &self.config.timers;
        let secs = |v: u32| Duration::from_secs(u64::from(v));
        [
            secs(fields[0]),
            secs(fields[1]).clamp(b.refresh_min, b.refresh_max),
            secs(fields[2]).clamp(b.retry_min, b.retry_max),
            secs(fields[3]).max(b.expire_min),
            secs(fields[4]),
        ]
    }

    fn order_from(&mut self, first: Option<usize>) {
        let n = self.config.primaries.len();
        self.order = (0..n).collect();
        if let Some(f) = first.filter(|f| *f < n) {
            self.order.retain(|p| *p != f);
            self.order.insert(0, f);
        }
    }

    fn new_op(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    fn start_attempt(&mut self, now: Instant) {
        self.tried = 0;
        if self.order.len() != self.config.primaries.len() {
            self.order_from(None);
        }
        self.try_current(now);
    }

    /// Works with `order[tried]`: an SOA query, or straight to AXFR when we hold nothing.
    fn try_current(&mut self, now: Instant) {
        let Some(&primary) = self.order.get(self.tried) else {
            self.attempt_failed(now);
            return;
        };
        if self.zone.is_none() {
            self.start_transfer(primary, TransferKind::Axfr, now);
        } else {
            let op = self.new_op();
            self.phase = Phase::Soa {
                op,
                primary,
                deadline: now + self.config.soa_timeout,
            };
            self.actions.push_back(Action::QuerySoa { op, primary });
        }
    }

    fn start_transfer(&mut self, primary: usize, kind: TransferKind, now: Instant) {
        let op = self.new_op();
        self.phase = Phase::Transfer {
            op,
            primary,
            kind,
            deadline: now + self.config.transfer_timeout,
        };
        self.actions
            .push_back(Action::Transfer { op, primary, kind });
    }

    fn next_primary(&mut self, now: Instant) {
        self.tried += 1;
        self.try_current(now);
    }

    fn attempt_failed(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        let retry = match &self.zone {
            Some(z) => self.soa_timers(z)[2],
            None => self.config.timers.initial_retry,
        };
        self.refresh_at = now + retry;
        self.order_from(None);
        self.after_attempt(now);
    }

    fn refreshed(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        self.last_refresh = Some(now);
        if let Some(zone) = self.zone.clone() {
            let [_, refresh, _, expire, _] = self.soa_timers(&zone);
            self.refresh_at = now + refresh;
            self.expire_at = Some(now + expire);
            if self.expired {
                self.expired = false;
                self.actions.push_back(Action::Publish {
                    zone,
                    change: Change::Stored,
                });
            }
        }
        self.actions.push_back(Action::Refreshed);
        self.order_from(None);
        self.after_attempt(now);
    }

    fn after_attempt(&mut self, now: Instant) {
        if let Some(from) = self.notify_pending.take() {
            self.order_from(from);
            self.refresh_at = now;
            self.start_attempt(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn primaries(n: usize) -> Vec<PrimaryServer> {
        (0..n)
            .map(|i| PrimaryServer {
                addr: SocketAddr::from(([192, 0, 2, 1 + i as u8], 53)),
                key: None,
            })
            .collect()
    }

    fn drain(s: &mut Secondary) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    /// Runs the timers until the next action appears, as a driver would.
    fn advance(s: &mut Secondary, now: &mut Instant) -> Vec<Action> {
        for _ in 0..100 {
            let Some(t) = s.poll_timeout() else { break };
            *now = (*now).max(t);
            s.handle_timeout(*now);
            let acts = drain(s);
            if !acts.is_empty() {
                return acts;
            }
        }
        Vec::new()
    }

    fn full(serial: u32) -> Result<Transferred, TransferError> {
        let z = zone(serial, "");
        Ok(Transferred::Full(Arc::try_unwrap(z).unwrap()))
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// A secondary holding serial 1 (SOA timers: refresh 3600, retry 600, expire 86400).
    fn loaded(n: usize, t0: Instant) -> Secondary {
        let mut s = Secondary::new(SecondaryConfig::new(origin(), primaries(n)), t0);
        s.handle_timeout(t0);
        let Some(Action::Transfer { op, .. }) = s.poll_action() else {
            panic!()
        };
        s.transfer_result(op, full(1), t0);
        drain(&mut s);
        s
    }

    #[test]
    fn first_load_is_an_axfr_then_refresh_timer() {
        let t0 = Instant::now();
        let mut s = Secondary::new(SecondaryConfig::new(origin(), primaries(1)), t0);
        assert_eq!(s.poll_timeout(), Some(t0));
        s.handle_timeout(t0);
        let Some(Action::Transfer {
            op,
            primary: 0,
            kind: TransferKind::Axfr,
        }) = s.poll_action()
        else {
            panic!()
        };
        s.transfer_result(op, full(1), t0);
        let acts = drain(&mut s);
        assert!(matches!(
            &acts[..],
            [Action::Publish { zone, change: Change::Full }, Action::Refreshed] if zone.serial() == 1
        ));
        let f = s.freshness();
        assert!(f.loaded && !f.expired);
        assert_eq!((f.serial, f.last_refresh), (Some(1), Some(t0)));
        assert_eq!(f.expire_at, Some(t0 + S(86_400)));
        assert_eq!(s.poll_timeout(), Some(t0 + S(3600)));
    }

    #[test]
    fn rfc1034_4_3_5_refresh_retry_expire_on_a_simulated_clock() {
        let t0 = Instant::now();
        let mut s = loaded(2, t0);
        let mut now = t0;
        // REFRESH: SOA query to the first primary, which times out; then the second, which
        // answers an error; the attempt failed, RETRY later.
        let acts = advance(&mut s, &mut now);
        assert_eq!(now, t0 + S(3600));
        let [Action::QuerySoa { op, primary: 0 }] = acts[..] else {
            panic!("{acts:?}")
        };
        let acts = advance(&mut s, &mut now);
        assert_eq!(now, t0 + S(3605), "SOA timeout is 5 s");
        let [
            Action::QuerySoa {
                op: op2,
                primary: 1,
            },
        ] = acts[..]
        else {
            panic!("{acts:?}")
        };
        assert_ne!(op, op2);
        s.soa_result(op2, Err(TransferError::Network("refused".into())), now);
        assert_eq!(s.poll_timeout(), Some(now + S(600)));
        // Failing on every RETRY until EXPIRE.
        let mut attempts = 1;
        loop {
            let acts = advance(&mut s, &mut now);
            if acts.contains(&Action::Expired) {
                break;
            }
            let Action::QuerySoa { op, .. } = acts[0] else {
                panic!("{acts:?}")
            };
            s.soa_result(op, Err(TransferError::Timeout), now);
            attempts += 1;
            assert!(now < t0 + S(86_400 + 600));
        }
        assert_eq!(now, t0 + S(86_400));
        assert!(attempts > 100, "{attempts}");
        assert!(s.freshness().expired);
        // Refreshing again (the primary is back, same serial) serves the zone again.
        let acts = advance(&mut s, &mut now);
        let Action::QuerySoa { op, .. } = acts[0] else {
            panic!("{acts:?}")
        };
        s.soa_result(op, Ok(1), now);
        let acts = drain(&mut s);
        assert!(
            matches!(
                &acts[..],
                [
                    Action::Publish {
                        change: Change::Stored,
                        ..
                    },
                    Action::Refreshed
                ]
            ),
            "{acts:?}"
        );
        assert!(!s.freshness().expired);
        assert_eq!(s.freshness().expire_at, Some(now + S(86_400)));
    }

    #[test]
    fn rfc1995_newer_serial_ixfr_falls_back_to_axfr() {
        let t0 = Instant::now();
        let mut s = loaded(2, t0);
        let mut now = t0;
        let acts = advance(&mut s, &mut now);
        let Action::QuerySoa { op, primary: 0 } = acts[0] else {
            panic!()
        };
        s.soa_result(op, Ok(5), now);
        assert_eq!(s.freshness().primary_serial, Some(5));
        assert_eq!(s.freshness().behind_since, Some(now));
        let Some(Action::Transfer {
            op,
            primary: 0,
            kind: TransferKind::Ixfr,
        }) = s.poll_action()
        else {
            panic!()
        };
        s.transfer_result(
            op,
            Err(TransferError::Rcode(anyns_wire::Rcode::NOTIMP)),
            now,
        );
        let Some(Action::Transfer {
            op,
            primary: 0,
            kind: TransferKind::Axfr,
        }) = s.poll_action()
        else {
            panic!()
        };
        // A late result of the abandoned IXFR is ignored.
        s.transfer_result(OpId(op.0 - 1), full(9), now);
        assert!(s.poll_action().is_none());
        s.transfer_result(op, full(5), now);
        let acts = drain(&mut s);
        assert!(matches!(
            &acts[..],
            [Action::Publish { zone, change: Change::Full }, Action::Refreshed] if zone.serial() == 5
        ));
        assert_eq!(s.freshness().behind_since, None);
    }

    #[test]
    fn axfr_failure_moves_to_the_next_primary() {
        let t0 = Instant::now();
        let mut s = loaded(2, t0);
        let mut now = t0;
        let acts = advance(&mut s, &mut now);
        let Action::QuerySoa { op, primary: 0 } = acts[0] else {
            panic!()
        };
        s.soa_result(op, Ok(2), now);
        let Some(Action::Transfer {
            op,
            kind: TransferKind::Ixfr,
            ..
        }) = s.poll_action()
        else {
            panic!()
        };
        s.transfer_result(op, Err(TransferError::Timeout), now);
        let Some(Action::QuerySoa { primary: 1, .. }) = s.poll_action() else {
            panic!()
        };
        assert!(s.freshness().lag_exceeded(now + S(61), S(60)));
    }

    #[test]
    fn rfc1996_notify_checks_now_and_queues_while_busy() {
        let t0 = Instant::now();
        let mut s = loaded(3, t0);
        let now = t0 + S(10);
        s.notify(Some(2), now);
        let Some(Action::QuerySoa { op, primary: 2 }) = s.poll_action() else {
            panic!()
        };
        // A second NOTIFY during the check: one more check follows.
        s.notify(None, now);
        assert!(s.poll_action().is_none());
        s.soa_result(op, Ok(1), now);
        let acts = drain(&mut s);
        assert!(
            matches!(
                acts[..],
                [Action::Refreshed, Action::QuerySoa { primary: 0, .. }]
            ),
            "{acts:?}"
        );
    }

    #[test]
    fn restored_zone_keeps_its_expiry_across_a_restart() {
        let t0 = Instant::now();
        let config = SecondaryConfig::new(origin(), primaries(1));
        let restored = Restored {
            zone: zone(7, ""),
            refresh_age: S(100),
            expire_in: S(500),
        };
        let mut s = Secondary::restore(config.clone(), restored, t0);
        assert!(matches!(
            s.poll_action(),
            Some(Action::Publish { zone, change: Change::Stored }) if zone.serial() == 7
        ));
        assert_eq!(s.freshness().refresh_at, Some(t0 + S(3500)));
        assert_eq!(s.poll_timeout(), Some(t0 + S(500)));
        s.handle_timeout(t0 + S(500));
        assert_eq!(s.poll_action(), Some(Action::Expired));
        // Already expired on disk: not served, refreshed at once.
        let restored = Restored {
            zone: zone(7, ""),
            refresh_age: S(100_000),
            expire_in: S(0),
        };
        let mut s = Secondary::restore(config.clone(), restored, t0);
        assert!(s.freshness().expired);
        s.handle_timeout(t0);
        assert!(matches!(s.poll_action(), Some(Action::QuerySoa { .. })));
        // Last refresh unknown (the store lost the version its timers were for): served, and
        // refreshed at once.
        let restored = Restored {
            zone: zone(7, ""),
            refresh_age: Duration::MAX,
            expire_in: S(500),
        };
        let mut s = Secondary::restore(config, restored, t0);
        assert!(matches!(s.poll_action(), Some(Action::Publish { .. })));
        assert_eq!(s.freshness().refresh_at, Some(t0));
        assert_eq!(s.freshness().last_refresh, None);
    }

    #[test]
    fn rfc1995_4_ixfr_publishes_its_steps_for_the_journal() {
        let t0 = Instant::now();
        let mut s = loaded(1, t0);
        let mut now = t0;
        let acts = advance(&mut s, &mut now);
        let Action::QuerySoa { op, .. } = acts[0] else {
            panic!("{acts:?}")
        };
        s.soa_result(op, Ok(2), now);
        let Some(Action::Transfer {
            op,
            kind: TransferKind::Ixfr,
            ..
        }) = s.poll_action()
        else {
            panic!()
        };
        let new = zone(2, "www A 192.0.2.9\n");
        let step = anyns_zone::zone_diff(&zone(1, ""), &new).unwrap();
        let result = Transferred::Incremental {
            zone: Arc::try_unwrap(new).unwrap(),
            diffs: vec![step.clone()],
        };
        s.transfer_result(op, Ok(result), now);
        let acts = drain(&mut s);
        let [
            Action::Publish {
                zone,
                change: Change::Incremental(steps),
            },
            Action::Refreshed,
        ] = &acts[..]
        else {
            panic!("{acts:?}")
        };
        assert_eq!((zone.serial(), &steps[..]), (2, &[step][..]));
    }
}
