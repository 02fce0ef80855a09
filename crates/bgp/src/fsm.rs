//! The BGP session state machine of RFC 4271 section 8, without I/O.
//!
//! Feed it [`Event`]s and timeouts with `now`; poll it for bytes to send ([`Transmit`]), things
//! to do with sockets ([`Action`]) and its next deadline. It reads no clock and opens no socket,
//! so a whole session can be replayed on a simulated clock.
//!
//! One [`Session`] per peer. It follows one connection through the RFC 4271 states; a second
//! connection that appears while the first is in OpenSent or OpenConfirm is kept as a collision
//! candidate until one of the two OPENs tells us the peer's BGP Identifier, then the collision
//! is resolved as RFC 4271 section 6.8 says.
//!
//! Not implemented (optional in RFC 4271): DelayOpen, the AllowAutomaticStop peer-oscillation
//! damping beyond our capped exponential idle hold, and ConnectRetryTimer jitter.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Serialize;

use crate::config::{PeerConfig, RouteAttributes, SpeakerConfig};
use crate::packet::{
    self, DecodeContext, DecodeError, EncodeContext, Family, GracefulRestartParameters, LocalOpen,
    Message, MessageType, Notification, PeerOpen, RouteRefreshRequest, UpdateErrorAction,
    UpdateSummary, cease_subcode, code, fsm_subcode, open_subcode,
};
use crate::rib_out::{AdjRibOut, RibChange, Routes, SessionRouting};

/// The large Hold Timer of OpenSent, "4 minutes is suggested" (RFC 4271 section 8.2.2).
pub const OPEN_SENT_HOLD_TIME: Duration = Duration::from_secs(240);

/// RFC 4271 section 8.2.2 states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Who opened a TCP connection: RFC 4271 section 6.8 closes one or the other by direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// A TCP connection of a session. Outgoing ids are chosen by the session (in
/// [`Action::Connect`]), incoming ones by the driver when it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnectionId {
    pub direction: Direction,
    pub seq: u64,
}

impl ConnectionId {
    pub fn incoming(seq: u64) -> ConnectionId {
        ConnectionId {
            direction: Direction::Incoming,
            seq,
        }
    }
    pub fn outgoing(seq: u64) -> ConnectionId {
        ConnectionId {
            direction: Direction::Outgoing,
            seq,
        }
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Outgoing => write!(f, "out#{}", self.seq),
            Direction::Incoming => write!(f, "in#{}", self.seq),
        }
    }
}

/// Inputs from the driver (RFC 4271 section 8.1 event numbers in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// [1] ManualStart, or [4] ManualStart_with_PassiveTcpEstablishment for a passive peer.
    ManualStart,
    /// [2] ManualStop: Cease / Administrative Shutdown with an optional RFC 8203 text.
    ManualStop { communication: Option<String> },
    /// Stop without a NOTIFICATION: the TCP connection just closes, so a peer that negotiated
    /// graceful restart keeps our routes as stale for the restart time (RFC 4724 section 4.2).
    /// What a crash looks like from outside, done on purpose before a restart.
    StopForRestart,
    /// [16] Tcp_CR_Acked: our connection attempt succeeded.
    TcpCrAcked {
        conn: ConnectionId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// [17] TcpConnectionConfirmed: the driver accepted a connection from the peer.
    TcpConnectionConfirmed {
        conn: ConnectionId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// [18] TcpConnectionFails: an attempt failed or an open connection closed.
    TcpConnectionFails { conn: ConnectionId, reason: String },
    /// One whole message (header and body) read from a connection; the driver reads the
    /// 19-octet header, then the body length it declares when that is 19..=4096 (else it
    /// hands over the header alone, which decodes to a Bad Message Length).
    Message { conn: ConnectionId, frame: Vec<u8> },
}

/// Socket work for the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer; report [`Event::TcpCrAcked`] or
    /// [`Event::TcpConnectionFails`] with this id.
    Connect(ConnectionId),
    /// Close this connection after sending what was queued for it.
    Close(ConnectionId),
}

/// Bytes to write on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub conn: ConnectionId,
    pub frame: Vec<u8>,
}

/// The session's settings, from the speaker and peer config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub remote_asn: u32,
    pub remote_address: IpAddr,
    pub passive: bool,
    pub hold_time: u16,
    pub keepalive_time: Option<u16>,
    pub connect_retry: Duration,
    pub connect_retry_max: Duration,
    pub graceful_restart: Option<GracefulRestartParameters>,
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
    pub families: Vec<Family>,
}

impl SessionConfig {
    pub fn new(speaker: &SpeakerConfig, peer: &PeerConfig) -> SessionConfig {
        SessionConfig {
            local_asn: speaker.local_asn,
            router_id: speaker.router_id,
            remote_asn: peer.remote_asn,
            remote_address: peer.address,
            passive: peer.passive,
            hold_time: peer.hold_time.seconds(),
            keepalive_time: peer.keepalive_time,
            connect_retry: Duration::from_secs(u64::from(peer.connect_retry.max(1))),
            connect_retry_max: Duration::from_secs(u64::from(
                peer.connect_retry_max.max(peer.connect_retry).max(1),
            )),
            graceful_restart: speaker.graceful_restart.enabled.then_some(
                GracefulRestartParameters {
                    restart_time: speaker.graceful_restart.restart_time.seconds(),
                    restarting: false,
                    preserve_routes: speaker.graceful_restart.preserve_routes,
                },
            ),
            next_hop_ipv4: peer.next_hop_ipv4,
            next_hop_ipv6: peer.next_hop_ipv6,
            families: Family::ALL.to_vec(),
        }
    }

    fn internal(&self) -> bool {
        self.local_asn == self.remote_asn
    }
}

/// What the two OPENs settled (RFC 4271 4.2, RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_bgp_id: Ipv4Addr,
    /// The smaller of both Hold Times; 0 means no keepalives and no hold timer.
    pub hold_time: u16,
    /// A third of the hold time, or less when configured so; none with hold time 0.
    pub keepalive: Option<Duration>,
    pub four_octet_as: bool,
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub graceful_restart: bool,
}

/// Messages counted by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
    /// Frames whose type octet is not one we know.
    pub unknown: u64,
}

impl MessageCounts {
    fn count(&mut self, frame: &[u8]) {
        match MessageType::of_frame(frame) {
            Some(MessageType::Open) => self.open += 1,
            Some(MessageType::Update) => self.update += 1,
            Some(MessageType::Notification) => self.notification += 1,
            Some(MessageType::Keepalive) => self.keepalive += 1,
            Some(MessageType::RouteRefresh) => self.route_refresh += 1,
            None => self.unknown += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.open
            + self.update
            + self.notification
            + self.keepalive
            + self.route_refresh
            + self.unknown
    }
}

/// A session's state for status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub remote_asn: u32,
    pub state: State,
    /// Time in Established, when there.
    pub uptime: Option<Duration>,
    pub last_error: Option<String>,
    /// Our Adj-RIB-Out: what the peer has from us, with attributes.
    pub announced: Vec<(IpNet, RouteAttributes)>,
    /// Desired routes this session cannot carry, with why.
    pub not_announced: Vec<(IpNet, String)>,
    /// Prefixes the peer announced to us (counted, not kept as routes).
    pub prefixes_received: usize,
    /// UPDATE errors RFC 7606 let the session survive (treat-as-withdraw, attribute discard).
    pub update_errors_survived: u64,
    pub messages_in: MessageCounts,
    pub messages_out: MessageCounts,
    pub negotiated: Option<Negotiated>,
    /// How many times the session reached Established.
    pub established_count: u64,
}

/// RFC 4271 section 8.1 events, as the state machine sees them.
#[derive(Debug)]
enum FsmEvent {
    /// [1]/[4]
    ManualStart,
    /// [2]
    ManualStop(Option<String>),
    /// Our graceful-restart stop (no RFC event number: a deliberate TCP close).
    StopForRestart,
    /// [3]/[5] AutomaticStart, when the IdleHoldTimer of section 8.1.1 expires.
    AutomaticStart,
    /// [9]
    ConnectRetryTimerExpires,
    /// [10]
    HoldTimerExpires,
    /// [11]
    KeepaliveTimerExpires,
    /// [16]
    TcpCrAcked(Connection),
    /// [17]
    TcpConnectionConfirmed(Connection),
    /// [18]
    TcpConnectionFails(String),
    /// [19]
    BgpOpen(PeerOpen),
    /// [21]
    BgpHeaderErr(DecodeError),
    /// [22]
    BgpOpenMsgErr(DecodeError),
    /// [24]/[25]: a NOTIFICATION, or a malformed one (closed without reply).
    NotifMsg(Result<Notification, String>),
    /// [26]
    KeepAliveMsg,
    /// [27]
    UpdateMsg(UpdateSummary),
    /// [28]
    UpdateMsgErr(DecodeError),
    /// RFC 2918 ROUTE-REFRESH, or one of the wrong length (RFC 7313 section 5).
    RouteRefreshMsg(Result<RouteRefreshRequest, DecodeError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Connection {
    id: ConnectionId,
    local: SocketAddr,
    remote: SocketAddr,
}

/// A second connection during OpenSent/OpenConfirm (RFC 4271 section 6.8).
#[derive(Debug)]
struct Candidate {
    conn: Connection,
    open: Option<PeerOpen>,
    hold_deadline: Instant,
}

#[derive(Debug, Default)]
struct Timers {
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    /// The IdleHoldTimer of RFC 4271 section 8.1.1: our capped exponential backoff in Idle.
    idle_hold: Option<Instant>,
}

/// One BGP session with one peer.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    /// ManualStart seen and no ManualStop since: Idle restarts by itself after the idle hold.
    enabled: bool,
    conn: Option<Connection>,
    /// Our TCP attempt in flight.
    connecting: Option<ConnectionId>,
    candidate: Option<Candidate>,
    next_seq: u64,
    timers: Timers,
    /// Consecutive failures: the retry interval is connect_retry × 2^backoff, capped.
    backoff: u32,
    negotiated: Option<Negotiated>,
    routing: Option<SessionRouting>,
    desired: Routes,
    rib_out: AdjRibOut,
    not_announced: Vec<(IpNet, String)>,
    received: HashSet<IpNet>,
    established_at: Option<Instant>,
    established_count: u64,
    update_errors_survived: u64,
    last_error: Option<String>,
    messages_in: MessageCounts,
    messages_out: MessageCounts,
    transmits: std::collections::VecDeque<Transmit>,
    actions: std::collections::VecDeque<Action>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            state: State::Idle,
            enabled: false,
            conn: None,
            connecting: None,
            candidate: None,
            next_seq: 1,
            timers: Timers::default(),
            backoff: 0,
            negotiated: None,
            routing: None,
            desired: Routes::new(),
            rib_out: AdjRibOut::default(),
            not_announced: Vec::new(),
            received: HashSet::new(),
            established_at: None,
            established_count: 0,
            update_errors_survived: 0,
            last_error: None,
            messages_in: MessageCounts::default(),
            messages_out: MessageCounts::default(),
            transmits: Default::default(),
            actions: Default::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next socket action. Drain transmits first: a Close comes after its connection's last
    /// bytes.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest running timer; call [`Session::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timers;
        [
            t.connect_retry,
            t.hold,
            t.keepalive,
            t.idle_hold,
            self.candidate.as_ref().map(|c| c.hold_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn status(&self, now: Instant) -> PeerStatus {
        PeerStatus {
            address: self.config.remote_address,
            remote_asn: self.config.remote_asn,
            state: self.state,
            uptime: self
                .established_at
                .map(|t| now.saturating_duration_since(t)),
            last_error: self.last_error.clone(),
            announced: self
                .rib_out
                .advertised()
                .iter()
                .map(|(p, a)| (*p, a.clone()))
                .collect(),
            not_announced: self.not_announced.clone(),
            prefixes_received: self.received.len(),
            update_errors_survived: self.update_errors_survived,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            negotiated: self.negotiated.clone(),
            established_count: self.established_count,
        }
    }

    /// Fires the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if self
            .candidate
            .as_ref()
            .is_some_and(|c| c.hold_deadline <= now)
        {
            if let Some(c) = self.candidate.take() {
                self.send_notification(c.conn.id, &Notification::hold_timer_expired());
                self.actions.push_back(Action::Close(c.conn.id));
            }
        }
        if due(self.timers.hold) {
            self.timers.hold = None;
            self.step(FsmEvent::HoldTimerExpires, now);
        }
        if due(self.timers.keepalive) {
            self.timers.keepalive = None;
            self.step(FsmEvent::KeepaliveTimerExpires, now);
        }
        if due(self.timers.connect_retry) {
            self.timers.connect_retry = None;
            self.step(FsmEvent::ConnectRetryTimerExpires, now);
        }
        if due(self.timers.idle_hold) {
            self.timers.idle_hold = None;
            self.step(FsmEvent::AutomaticStart, now);
        }
    }

    /// The desired routes (the health policy's intent); sent at once when Established.
    pub fn set_routes(&mut self, desired: Routes, now: Instant) {
        self.desired = desired;
        if self.state == State::Established {
            self.sync_routes(now);
        }
    }

    pub fn handle(&mut self, event: Event, now: Instant) {
        match event {
            Event::ManualStart => self.step(FsmEvent::ManualStart, now),
            Event::ManualStop { communication } => {
                self.step(FsmEvent::ManualStop(communication), now)
            }
            Event::StopForRestart => self.step(FsmEvent::StopForRestart, now),
            Event::TcpCrAcked {
                conn,
                local,
                remote,
            } => {
                if self.connecting != Some(conn) {
                    // A stale attempt: the FSM moved on.
                    self.actions.push_back(Action::Close(conn));
                    return;
                }
                self.connecting = None;
                self.new_connection(
                    Connection {
                        id: conn,
                        local,
                        remote,
                    },
                    now,
                );
            }
            Event::TcpConnectionConfirmed {
                conn,
                local,
                remote,
            } => {
                self.new_connection(
                    Connection {
                        id: conn,
                        local,
                        remote,
                    },
                    now,
                );
            }
            Event::TcpConnectionFails { conn, reason } => self.connection_failed(conn, reason, now),
            Event::Message { conn, frame } => {
                if self.conn.is_some_and(|c| c.id == conn) {
                    self.messages_in.count(&frame);
                    let event = self.decode(&frame);
                    if let FsmEvent::BgpOpen(open) = &event {
                        if self.candidate.is_some() && !self.resolve_collision(open.bgp_id, now) {
                            // The main connection lost; the candidate took its place.
                            return;
                        }
                    }
                    self.step(event, now);
                } else if self.candidate.as_ref().is_some_and(|c| c.conn.id == conn) {
                    self.messages_in.count(&frame);
                    self.candidate_message(&frame, now);
                }
            }
        }
    }

    fn decode(&self, frame: &[u8]) -> FsmEvent {
        let context = DecodeContext {
            four_octet_as: self.negotiated.as_ref().is_none_or(|n| n.four_octet_as),
        };
        match packet::decode(frame, &context) {
            Ok(Message::Open(open)) => FsmEvent::BgpOpen(open),
            Ok(Message::Update(update)) => FsmEvent::UpdateMsg(update),
            Ok(Message::Notification(n)) => FsmEvent::NotifMsg(Ok(n)),
            Ok(Message::Keepalive) => FsmEvent::KeepAliveMsg,
            Ok(Message::RouteRefresh(r)) => FsmEvent::RouteRefreshMsg(Ok(r)),
            Err(e @ DecodeError::Header { .. }) => FsmEvent::BgpHeaderErr(e),
            Err(e @ DecodeError::Open { .. }) => FsmEvent::BgpOpenMsgErr(e),
            Err(e @ DecodeError::Update { .. }) => FsmEvent::UpdateMsgErr(e),
            Err(DecodeError::Notification { reason }) => FsmEvent::NotifMsg(Err(reason)),
            Err(e @ DecodeError::RouteRefresh { .. }) => FsmEvent::RouteRefreshMsg(Err(e)),
        }
    }

    /// The state machine proper: RFC 4271 section 8.2.2, state by state.
    fn step(&mut self, event: FsmEvent, now: Instant) {
        use FsmEvent as E;
        use State::*;
        match (self.state, event) {
            // ---- Idle: refuse connections; start on ManualStart or after the idle hold.
            (Idle, E::ManualStart) => {
                self.enabled = true;
                self.backoff = 0;
                self.timers.idle_hold = None;
                self.start(now);
            }
            (Idle, E::AutomaticStart) => {
                if self.enabled {
                    self.start(now);
                }
            }
            (Idle, E::ManualStop(_) | E::StopForRestart) => {
                self.enabled = false;
                self.timers.idle_hold = None;
            }
            (Idle, _) => {}

            // ---- Connect and Active: waiting for a TCP connection.
            (Connect | Active, E::ManualStop(_) | E::StopForRestart) => {
                self.enabled = false;
                self.enter_idle(now, None);
            }
            (Connect, E::ConnectRetryTimerExpires) => {
                self.count_failure();
                if let Some(old) = self.connecting.take() {
                    self.actions.push_back(Action::Close(old));
                }
                self.connect(now);
            }
            (Active, E::ConnectRetryTimerExpires) => {
                self.connect(now);
                self.set_state(Connect);
            }
            (Connect | Active, E::TcpCrAcked(conn) | E::TcpConnectionConfirmed(conn)) => {
                self.timers.connect_retry = None;
                self.conn = Some(conn);
                self.send_open(conn.id);
                self.timers.hold = Some(now + OPEN_SENT_HOLD_TIME);
                self.set_state(OpenSent);
            }
            (Connect | Active, E::TcpConnectionFails(reason)) => {
                self.enter_idle(now, Some(format!("TCP connection failed: {reason}")));
            }
            (Connect | Active, _) => {}

            // ---- OpenSent: our OPEN is out, waiting for theirs.
            (OpenSent, E::BgpOpen(open)) => match self.check_open(&open) {
                Ok(negotiated) => {
                    let Some(conn) = self.conn else { return };
                    self.timers.connect_retry = None;
                    self.send_frame(conn.id, packet::encode_keepalive());
                    self.timers.hold =
                        (negotiated.hold_time > 0).then(|| now + secs(negotiated.hold_time));
                    self.timers.keepalive = negotiated.keepalive.map(|k| now + k);
                    self.routing = Some(self.routing_for(&negotiated, &conn));
                    self.negotiated = Some(negotiated);
                    self.set_state(OpenConfirm);
                }
                Err(notification) => self.fail_with(notification, now),
            },
            (OpenSent, E::TcpConnectionFails(reason)) => {
                // RFC 4271 8.2.2: back to Active, ConnectRetryTimer restarted.
                if let Some(conn) = self.conn.take() {
                    self.actions.push_back(Action::Close(conn.id));
                }
                self.timers.hold = None;
                self.last_error = Some(format!("TCP connection failed in OpenSent: {reason}"));
                if !self.config.passive {
                    self.timers.connect_retry = Some(now + self.retry_interval());
                }
                self.count_failure();
                self.set_state(Active);
            }

            // ---- What OpenSent, OpenConfirm and Established share.
            (OpenSent | OpenConfirm | Established, E::ManualStop(text)) => {
                self.enabled = false;
                let n = Notification::administrative_shutdown(text.as_deref());
                self.fail_with(n, now);
            }
            (OpenSent | OpenConfirm | Established, E::StopForRestart) => {
                self.enabled = false;
                self.enter_idle(now, Some("stopped for a graceful restart".into()));
            }
            (OpenSent | OpenConfirm | Established, E::HoldTimerExpires) => {
                self.fail_with(Notification::hold_timer_expired(), now);
            }
            (OpenConfirm | Established, E::KeepaliveTimerExpires) => {
                if let Some(conn) = self.conn {
                    self.send_frame(conn.id, packet::encode_keepalive());
                }
                // RFC 4271 section 8.2.2: restart the KeepaliveTimer with each KEEPALIVE sent.
                self.timers.keepalive = self
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.keepalive)
                    .map(|k| now + k);
            }
            (
                OpenSent | OpenConfirm | Established,
                E::BgpHeaderErr(e)
                | E::BgpOpenMsgErr(e)
                | E::UpdateMsgErr(e)
                | E::RouteRefreshMsg(Err(e)),
            ) => {
                let reason = e.to_string();
                match e.notification() {
                    Some(n) => self.fail_because(n.clone(), Some(reason), now),
                    None => self.enter_idle(now, Some(reason)),
                }
            }
            (OpenSent | OpenConfirm | Established, E::NotifMsg(received)) => {
                let error = match received {
                    Ok(n) => format!("received NOTIFICATION {n}"),
                    Err(reason) => format!("received malformed NOTIFICATION: {reason}"),
                };
                self.enter_idle(now, Some(error));
            }
            (OpenConfirm | Established, E::TcpConnectionFails(reason)) => {
                self.enter_idle(now, Some(format!("TCP connection failed: {reason}")));
            }

            // ---- OpenConfirm: waiting for the peer's KEEPALIVE.
            (OpenConfirm, E::KeepAliveMsg) => {
                self.restart_hold_timer(now);
                self.set_state(Established);
                self.established_at = Some(now);
                self.established_count += 1;
                self.last_error = None;
                self.sync_routes(now);
                // End-of-RIB after the initial UPDATEs (RFC 4724 section 2), every family.
                let families = self
                    .negotiated
                    .as_ref()
                    .map(|n| n.families.clone())
                    .unwrap_or_default();
                for family in families {
                    match packet::encode_end_of_rib(family) {
                        Ok(frame) => self.send_update(frame, now),
                        Err(e) => tracing::error!(peer = %self.config.remote_address, "{e}"),
                    }
                }
            }

            // ---- Established.
            (Established, E::KeepAliveMsg) => self.restart_hold_timer(now),
            (Established, E::UpdateMsg(update)) => {
                self.restart_hold_timer(now);
                self.count_received(update);
            }
            (Established, E::RouteRefreshMsg(Ok(request))) => {
                self.restart_hold_timer(now);
                self.route_refresh(request, now);
            }

            // ---- Anything else is unexpected in that state (RFC 6608 subcodes).
            (OpenSent | OpenConfirm | Established, event) => {
                let subcode = match self.state {
                    OpenSent => fsm_subcode::UNEXPECTED_MESSAGE_IN_OPEN_SENT,
                    OpenConfirm => fsm_subcode::UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM,
                    _ => fsm_subcode::UNEXPECTED_MESSAGE_IN_ESTABLISHED,
                };
                let is_message = matches!(
                    event,
                    E::BgpOpen(_) | E::KeepAliveMsg | E::UpdateMsg(_) | E::RouteRefreshMsg(_)
                );
                if is_message {
                    let message_type = match event {
                        E::BgpOpen(_) => MessageType::Open,
                        E::KeepAliveMsg => MessageType::Keepalive,
                        E::UpdateMsg(_) => MessageType::Update,
                        _ => MessageType::RouteRefresh,
                    };
                    // RFC 6608 section 4: the data is the type of the unexpected message.
                    self.fail_with(
                        Notification::new(code::FSM, subcode, [message_type as u8]),
                        now,
                    );
                }
            }
        }
    }

    // ---- transitions ----------------------------------------------------------------------

    fn set_state(&mut self, state: State) {
        if self.state != state {
            tracing::info!(peer = %self.config.remote_address, from = %self.state, to = %state, "BGP state change");
            self.state = state;
        }
    }

    /// Idle → Connect (initiating) or Active (passive): RFC 4271 events 1/3 and 4/5.
    fn start(&mut self, now: Instant) {
        if self.config.passive {
            self.set_state(State::Active);
        } else {
            self.connect(now);
            self.set_state(State::Connect);
        }
    }

    fn connect(&mut self, now: Instant) {
        let id = ConnectionId::outgoing(self.next_seq);
        self.next_seq += 1;
        self.connecting = Some(id);
        self.actions.push_back(Action::Connect(id));
        self.timers.connect_retry = Some(now + self.retry_interval());
    }

    /// The retry interval: connect_retry × 2^(consecutive failures), capped.
    fn retry_interval(&self) -> Duration {
        let factor = 1u32.checked_shl(self.backoff.min(16)).unwrap_or(u32::MAX);
        self.config
            .connect_retry
            .saturating_mul(factor)
            .min(self.config.connect_retry_max)
    }

    /// One more consecutive failure: the next interval doubles (until the cap).
    fn count_failure(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Sends a NOTIFICATION on the session's connection and goes to Idle.
    fn fail_with(&mut self, notification: Notification, now: Instant) {
        self.fail_because(notification, None, now);
    }

    fn fail_because(&mut self, notification: Notification, reason: Option<String>, now: Instant) {
        if let Some(conn) = self.conn {
            self.send_notification(conn.id, &notification);
        }
        let error = match reason {
            Some(reason) => format!("{reason}; sent NOTIFICATION {notification}"),
            None => format!("sent NOTIFICATION {notification}"),
        };
        self.enter_idle(now, Some(error));
    }

    /// Back to Idle: connections closed, timers stopped, the peer's view of our routes gone.
    /// While enabled, the IdleHoldTimer brings the session back after the backoff interval.
    fn enter_idle(&mut self, now: Instant, error: Option<String>) {
        if let Some(error) = error {
            tracing::warn!(peer = %self.config.remote_address, state = %self.state, "BGP session down: {error}");
            self.last_error = Some(error);
        }
        for id in [
            self.conn.take().map(|c| c.id),
            self.connecting.take(),
            self.candidate.take().map(|c| c.conn.id),
        ]
        .into_iter()
        .flatten()
        {
            self.actions.push_back(Action::Close(id));
        }
        if let Some(since) = self.established_at.take() {
            // A session that stayed up for a while resets the backoff (RFC 4271 8.1.1's
            // damping: only repeated quick failures keep growing the interval).
            if now.saturating_duration_since(since) >= self.config.connect_retry_max {
                self.backoff = 0;
            }
        }
        self.timers = Timers::default();
        self.negotiated = None;
        self.routing = None;
        self.rib_out.clear();
        self.not_announced.clear();
        self.received.clear();
        self.set_state(State::Idle);
        if self.enabled {
            self.timers.idle_hold = Some(now + self.retry_interval());
            self.count_failure();
        }
    }

    // ---- connections and collisions ---------------------------------------------------------

    fn new_connection(&mut self, conn: Connection, now: Instant) {
        match self.state {
            // RFC 4271 8.2.2: Idle refuses incoming connections.
            State::Idle => self.actions.push_back(Action::Close(conn.id)),
            State::Connect | State::Active => {
                let event = match conn.id.direction {
                    Direction::Outgoing => FsmEvent::TcpCrAcked(conn),
                    Direction::Incoming => FsmEvent::TcpConnectionConfirmed(conn),
                };
                self.step(event, now);
            }
            State::OpenSent | State::OpenConfirm => {
                if self.candidate.is_none() {
                    // A second connection: it runs until its OPEN or ours tells us the peer's
                    // BGP Identifier (RFC 4271 section 6.8).
                    self.send_open(conn.id);
                    self.candidate = Some(Candidate {
                        conn,
                        open: None,
                        hold_deadline: now + OPEN_SENT_HOLD_TIME,
                    });
                    if let Some(open) = self.negotiated.as_ref().map(|n| n.peer_bgp_id) {
                        // OpenConfirm: we know the peer's identifier already.
                        self.resolve_collision(open, now);
                    }
                } else {
                    self.actions.push_back(Action::Close(conn.id));
                }
            }
            State::Established => {
                // RFC 4271 6.8: a collision with an Established session closes the new one.
                let n = Notification::new(
                    code::CEASE,
                    cease_subcode::CONNECTION_COLLISION_RESOLUTION,
                    [],
                );
                self.send_notification(conn.id, &n);
                self.actions.push_back(Action::Close(conn.id));
            }
        }
    }

    /// RFC 4271 section 6.8: the connection opened by the side with the lower BGP Identifier
    /// is closed. Returns whether the main connection survived.
    fn resolve_collision(&mut self, peer_bgp_id: Ipv4Addr, now: Instant) -> bool {
        let (Some(main), Some(candidate)) = (self.conn, self.candidate.as_ref()) else {
            return true;
        };
        let close_direction = if u32::from(self.config.router_id) < u32::from(peer_bgp_id) {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        // Two connections of the same direction: the peer gave up on the older one.
        let main_loses = if main.id.direction == candidate.conn.id.direction {
            true
        } else {
            main.id.direction == close_direction
        };
        let cease = Notification::new(
            code::CEASE,
            cease_subcode::CONNECTION_COLLISION_RESOLUTION,
            [],
        );
        tracing::info!(peer = %self.config.remote_address, main = %main.id, other = %candidate.conn.id, main_loses, "BGP connection collision");
        if !main_loses {
            if let Some(c) = self.candidate.take() {
                self.send_notification(c.conn.id, &cease);
                self.actions.push_back(Action::Close(c.conn.id));
            }
            return true;
        }
        let Some(candidate) = self.candidate.take() else {
            return true;
        };
        self.send_notification(main.id, &cease);
        self.actions.push_back(Action::Close(main.id));
        self.conn = Some(candidate.conn);
        self.negotiated = None;
        self.routing = None;
        self.timers.keepalive = None;
        self.timers.hold = Some(candidate.hold_deadline);
        self.set_state(State::OpenSent);
        if let Some(open) = candidate.open {
            self.step(FsmEvent::BgpOpen(open), now);
        }
        false
    }

    fn candidate_message(&mut self, frame: &[u8], now: Instant) {
        let Some(candidate) = self.candidate.as_mut() else {
            return;
        };
        let id = candidate.conn.id;
        let reply = match packet::decode(
            frame,
            &DecodeContext {
                four_octet_as: true,
            },
        ) {
            Ok(Message::Open(open)) if candidate.open.is_none() => match self.check_open(&open) {
                Ok(_) => {
                    let bgp_id = open.bgp_id;
                    if let Some(c) = self.candidate.as_mut() {
                        c.open = Some(open);
                    }
                    self.resolve_collision(bgp_id, now);
                    return;
                }
                Err(n) => Some(n),
            },
            Ok(Message::Notification(_)) | Err(DecodeError::Notification { .. }) => None,
            Err(e) => e.notification().cloned(),
            Ok(_) => Some(Notification::new(
                code::FSM,
                fsm_subcode::UNEXPECTED_MESSAGE_IN_OPEN_SENT,
                [],
            )),
        };
        if let Some(n) = reply {
            self.send_notification(id, &n);
        }
        self.candidate = None;
        self.actions.push_back(Action::Close(id));
    }

    fn connection_failed(&mut self, id: ConnectionId, reason: String, now: Instant) {
        if self.conn.is_some_and(|c| c.id == id) {
            if let Some(candidate) = self.candidate.take() {
                // The other connection of a collision carries on.
                self.actions.push_back(Action::Close(id));
                self.conn = Some(candidate.conn);
                self.negotiated = None;
                self.routing = None;
                self.timers.keepalive = None;
                self.timers.hold = Some(candidate.hold_deadline);
                self.set_state(State::OpenSent);
                if let Some(open) = candidate.open {
                    self.step(FsmEvent::BgpOpen(open), now);
                }
                return;
            }
            self.step(FsmEvent::TcpConnectionFails(reason), now);
        } else if self.connecting == Some(id) {
            self.connecting = None;
            if self.state == State::Connect {
                self.step(FsmEvent::TcpConnectionFails(reason), now);
            }
        } else if self.candidate.as_ref().is_some_and(|c| c.conn.id == id) {
            self.candidate = None;
            self.actions.push_back(Action::Close(id));
        }
    }

    // ---- OPEN ---------------------------------------------------------------------------------

    fn send_open(&mut self, id: ConnectionId) {
        let open = LocalOpen {
            asn: self.config.local_asn,
            hold_time: self.config.hold_time,
            router_id: self.config.router_id,
            families: self.config.families.clone(),
            graceful_restart: self.config.graceful_restart,
        };
        match packet::encode_open(&open) {
            Ok(frame) => self.send_frame(id, frame),
            Err(e) => tracing::error!(peer = %self.config.remote_address, "{e}"),
        }
    }

    /// The checks of RFC 4271 section 6.2 that need our configuration, then negotiation.
    fn check_open(&self, open: &PeerOpen) -> Result<Negotiated, Notification> {
        if open.asn != self.config.remote_asn {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                open_subcode::BAD_PEER_AS,
                open.my_as.to_be_bytes(),
            ));
        }
        // RFC 6286 section 2.2: identifiers must differ within an AS.
        if self.config.internal() && open.bgp_id == self.config.router_id {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                open_subcode::BAD_BGP_IDENTIFIER,
                open.bgp_id.octets(),
            ));
        }
        let hold_time = self.config.hold_time.min(open.hold_time);
        let keepalive = (hold_time > 0).then(|| {
            let third = u64::from(hold_time / 3).max(1);
            let configured = self.config.keepalive_time.map(u64::from).unwrap_or(third);
            Duration::from_secs(configured.clamp(1, third))
        });
        let families = self
            .config
            .families
            .iter()
            .filter(|f| open.families.contains(f))
            .copied()
            .collect();
        Ok(Negotiated {
            peer_asn: open.asn,
            peer_bgp_id: open.bgp_id,
            hold_time,
            keepalive,
            four_octet_as: open.four_octet_as,
            families,
            route_refresh: open.route_refresh,
            graceful_restart: self.config.graceful_restart.is_some()
                && open.graceful_restart.is_some(),
        })
    }

    /// Next hops: configured, else the session's local address of the family. IPv6 routes
    /// over an IPv4 session need a configured IPv6 next hop: BIRD 2 rejects an IPv4-mapped
    /// one ("Invalid NEXT_HOP attribute - mismatched address family"), so we send none and
    /// report the routes as not announced.
    fn routing_for(&self, negotiated: &Negotiated, conn: &Connection) -> SessionRouting {
        let local = conn.local.ip();
        let next_hop_ipv4 = self.config.next_hop_ipv4.or(match local {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        });
        let next_hop_ipv6 = self.config.next_hop_ipv6.or(match local {
            IpAddr::V4(_) => None,
            IpAddr::V6(a) => Some(a).filter(|a| a.to_ipv4_mapped().is_none()),
        });
        SessionRouting {
            families: negotiated.families.clone(),
            next_hop_ipv4,
            next_hop_ipv6,
            encode: EncodeContext {
                local_asn: self.config.local_asn,
                internal: self.config.internal(),
                four_octet_as: negotiated.four_octet_as,
            },
        }
    }

    // ---- UPDATEs ------------------------------------------------------------------------------

    fn sync_routes(&mut self, now: Instant) {
        let Some(routing) = self.routing.clone() else {
            return;
        };
        let (carried, skipped) = routing.eligible(&self.desired);
        for (prefix, why) in &skipped {
            if !self
                .not_announced
                .iter()
                .any(|(p, w)| p == prefix && w == why)
            {
                tracing::warn!(peer = %self.config.remote_address, %prefix, "not announced: {why}");
            }
        }
        self.not_announced = skipped;
        let change = self.rib_out.change_to(carried);
        self.send_change(&change, &routing, now);
    }

    fn send_change(&mut self, change: &RibChange, routing: &SessionRouting, now: Instant) {
        if change.is_empty() {
            return;
        }
        match change.encode(routing) {
            Ok(frames) => {
                for frame in frames {
                    self.send_update(frame, now);
                }
            }
            Err(e) => tracing::error!(peer = %self.config.remote_address, "{e}"),
        }
    }

    /// RFC 2918 section 4: resend the Adj-RIB-Out of a family we negotiated; others are ignored.
    fn route_refresh(&mut self, request: RouteRefreshRequest, now: Instant) {
        let Some(routing) = self.routing.clone() else {
            return;
        };
        let Some(family) = request.family().filter(|f| routing.families.contains(f)) else {
            tracing::info!(peer = %self.config.remote_address, afi = request.afi, safi = request.safi, "ROUTE-REFRESH for a family not negotiated, ignored");
            return;
        };
        let change = self.rib_out.refresh(&[family]);
        self.send_change(&change, &routing, now);
    }

    fn count_received(&mut self, update: UpdateSummary) {
        for prefix in &update.withdrawn {
            self.received.remove(prefix);
        }
        self.received.extend(update.announced.iter().copied());
        if let Some(error) = update.error {
            self.update_errors_survived += 1;
            let how = match &error {
                DecodeError::Update {
                    action: UpdateErrorAction::AttributeDiscard,
                    ..
                } => "attribute discard",
                _ => "treat-as-withdraw",
            };
            tracing::warn!(peer = %self.config.remote_address, "malformed UPDATE handled by {how} (RFC 7606): {error}");
        }
        if let Some(family) = update.end_of_rib {
            tracing::debug!(peer = %self.config.remote_address, ?family, "End-of-RIB received");
        }
    }

    fn restart_hold_timer(&mut self, now: Instant) {
        if let Some(hold) = self
            .negotiated
            .as_ref()
            .map(|n| n.hold_time)
            .filter(|&h| h > 0)
        {
            self.timers.hold = Some(now + secs(hold));
        }
    }

    // ---- output -------------------------------------------------------------------------------

    fn send_frame(&mut self, conn: ConnectionId, frame: Vec<u8>) {
        self.messages_out.count(&frame);
        self.transmits.push_back(Transmit { conn, frame });
    }

    /// An UPDATE also restarts the KeepaliveTimer (RFC 4271 section 8.2.2, Established).
    fn send_update(&mut self, frame: Vec<u8>, now: Instant) {
        let Some(conn) = self.conn else { return };
        self.send_frame(conn.id, frame);
        if let Some(k) = self.negotiated.as_ref().and_then(|n| n.keepalive) {
            self.timers.keepalive = Some(now + k);
        }
    }

    fn send_notification(&mut self, conn: ConnectionId, notification: &Notification) {
        self.send_frame(conn, packet::encode_notification(notification));
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}
