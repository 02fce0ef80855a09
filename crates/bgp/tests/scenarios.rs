//! Recorded scenarios of the session state machine on a simulated clock: each test drives a
//! [`Session`] with events and time, records every input and output as text, and compares
//! the transcript with `tests/scenarios/<name>.txt`. ANYNS_BLESS=1 rewrites the transcripts
//! when behaviour changes on purpose (review the diff).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyns_bgp::packet::{
    self, DecodeContext, Family, GracefulRestartParameters, LocalOpen, Message, Notification,
};
use anyns_bgp::{
    Action, Community, ConnectionId, Event, RouteAttributes, Routes, Session, SessionConfig, State,
};

fn config() -> SessionConfig {
    SessionConfig {
        local_asn: 4_200_000_053,
        router_id: "192.0.2.53".parse().unwrap(),
        remote_asn: 64512,
        remote_address: "192.0.2.254".parse().unwrap(),
        passive: false,
        hold_time: 90,
        keepalive_time: None,
        connect_retry: Duration::from_secs(5),
        connect_retry_max: Duration::from_secs(60),
        graceful_restart: Some(GracefulRestartParameters {
            restart_time: 120,
            restarting: false,
            preserve_routes: true,
        }),
        next_hop_ipv4: None,
        next_hop_ipv6: Some("2001:db8::53".parse().unwrap()),
        families: Family::ALL.to_vec(),
    }
}

const LOCAL: &str = "192.0.2.53:40000";
const REMOTE: &str = "192.0.2.254:179";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The peer's OPEN.
fn peer_open(asn: u32, hold_time: u16, id: &str) -> Vec<u8> {
    packet::encode_open(&LocalOpen {
        asn,
        hold_time,
        router_id: id.parse().unwrap(),
        families: Family::ALL.to_vec(),
        graceful_restart: Some(GracefulRestartParameters {
            restart_time: 120,
            restarting: false,
            preserve_routes: true,
        }),
    })
    .unwrap()
}

fn vips(med: u32) -> Routes {
    let attributes = RouteAttributes {
        med: Some(med),
        ..Default::default()
    };
    [
        ("192.0.2.53/32", &attributes),
        ("2001:db8:53::53/128", &attributes),
    ]
    .into_iter()
    .map(|(p, a)| (p.parse().unwrap(), a.clone()))
    .collect()
}

fn describe(frame: &[u8]) -> String {
    match packet::decode(
        frame,
        &DecodeContext {
            four_octet_as: true,
        },
    ) {
        Ok(Message::Open(o)) => format!(
            "OPEN as={} hold={} id={} families={:?} gr={}",
            o.asn,
            o.hold_time,
            o.bgp_id,
            o.families,
            o.graceful_restart.is_some()
        ),
        Ok(Message::Keepalive) => "KEEPALIVE".into(),
        Ok(Message::Notification(n)) => format!("NOTIFICATION {n}"),
        Ok(Message::RouteRefresh(r)) => format!("ROUTE-REFRESH afi={} safi={}", r.afi, r.safi),
        Ok(Message::Update(u)) => {
            let mut s = String::from("UPDATE");
            if let Some(f) = u.end_of_rib {
                write!(s, " End-of-RIB {f:?}").unwrap();
            }
            for p in &u.announced {
                write!(s, " +{p}").unwrap();
            }
            for p in &u.withdrawn {
                write!(s, " -{p}").unwrap();
            }
            if let Some(e) = &u.error {
                write!(s, " [{e}]").unwrap();
            }
            s
        }
        Err(e) => format!("undecodable ({e})"),
    }
}

struct Sim {
    name: &'static str,
    session: Session,
    t0: Instant,
    now: Instant,
    state: State,
    log: String,
}

impl Sim {
    fn new(name: &'static str, config: SessionConfig) -> Sim {
        let t0 = Instant::now();
        let mut sim = Sim {
            name,
            session: Session::new(config),
            t0,
            now: t0,
            state: State::Idle,
            log: String::new(),
        };
        sim.line("state Idle");
        sim
    }

    fn line(&mut self, text: &str) {
        let t = self.now.duration_since(self.t0).as_secs_f64();
        writeln!(self.log, "{t:8.3}  {text}").unwrap();
    }

    fn note(&mut self, text: &str) {
        writeln!(self.log, "          # {text}").unwrap();
    }

    fn input(&mut self, event: Event) {
        let text = match &event {
            Event::Message { conn, frame } => format!("> {conn} {}", describe(frame)),
            Event::TcpCrAcked { conn, .. } => format!("> TcpCrAcked {conn}"),
            Event::TcpConnectionConfirmed { conn, .. } => {
                format!("> TcpConnectionConfirmed {conn}")
            }
            Event::TcpConnectionFails { conn, reason } => {
                format!("> TcpConnectionFails {conn} ({reason})")
            }
            other => format!("> {other:?}"),
        };
        self.line(&text);
        self.session.handle(event, self.now);
        self.drain();
    }

    fn message(&mut self, conn: ConnectionId, frame: Vec<u8>) {
        self.input(Event::Message { conn, frame });
    }

    fn set_routes(&mut self, routes: Routes) {
        let text = format!(
            "> set_routes {:?}",
            routes
                .iter()
                .map(|(p, a)| format!("{p} med={:?}", a.med))
                .collect::<Vec<_>>()
        );
        self.line(&text);
        self.session.set_routes(routes, self.now);
        self.drain();
    }

    /// Lets `secs` pass, firing each timer at its deadline.
    fn advance(&mut self, secs: u64) {
        let target = self.now + Duration::from_secs(secs);
        while let Some(deadline) = self.session.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.line("timer");
            self.session.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    fn drain(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            let text = format!("< {} {}", t.conn, describe(&t.frame));
            self.line(&text);
        }
        while let Some(a) = self.session.poll_action() {
            let text = match a {
                Action::Connect(id) => format!("< connect {id}"),
                Action::Close(id) => format!("< close {id}"),
            };
            self.line(&text);
        }
        let state = self.session.state();
        if state != self.state {
            self.state = state;
            self.line(&format!("state {state}"));
        }
    }

    fn connect_out(&mut self, seq: u64) -> ConnectionId {
        let id = ConnectionId::outgoing(seq);
        self.input(Event::TcpCrAcked {
            conn: id,
            local: addr(LOCAL),
            remote: addr(REMOTE),
        });
        id
    }

    fn accept_in(&mut self, seq: u64) -> ConnectionId {
        let id = ConnectionId::incoming(seq);
        self.input(Event::TcpConnectionConfirmed {
            conn: id,
            local: addr("192.0.2.53:179"),
            remote: addr("192.0.2.254:50000"),
        });
        id
    }

    /// ManualStart, TCP up, OPENs and KEEPALIVEs exchanged: Established on out#1.
    fn establish(&mut self, peer_hold: u16) -> ConnectionId {
        self.input(Event::ManualStart);
        let conn = self.connect_out(1);
        self.message(conn, peer_open(64512, peer_hold, "192.0.2.254"));
        self.message(conn, packet::encode_keepalive());
        assert_eq!(self.session.state(), State::Established);
        conn
    }

    fn finish(self) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios")
            .join(format!("{}.txt", self.name));
        if std::env::var("ANYNS_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, &self.log).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != self.log {
            panic!(
                "scenario {} differs from {} (ANYNS_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{}",
                self.name,
                path.display(),
                self.log
            );
        }
    }
}

#[test]
fn rfc4271_8_session_reaches_established_and_sends_routes_then_end_of_rib() {
    let mut sim = Sim::new("rfc4271_8_session_reaches_established", config());
    sim.set_routes(vips(10));
    let conn = sim.establish(90);
    sim.note("a de-preferred announce changes the MED: one UPDATE per family");
    sim.set_routes(vips(500));
    sim.note("the same set again sends nothing");
    sim.set_routes(vips(500));
    sim.note("RFC 2918: ROUTE-REFRESH for IPv6 resends the IPv6 Adj-RIB-Out");
    sim.message(conn, packet::encode_route_refresh(Family::Ipv6Unicast));
    sim.note("withdraw everything");
    sim.set_routes(Routes::new());
    let status = sim.session.status(sim.now);
    assert_eq!(status.messages_in.open, 1);
    assert_eq!(status.negotiated.as_ref().unwrap().hold_time, 90);
    assert!(status.announced.is_empty());
    sim.finish();
}

#[test]
fn rfc4271_6_5_hold_timer_expiry_sends_notification_and_backs_off() {
    let mut sim = Sim::new("rfc4271_6_5_hold_timer_expiry", config());
    let conn = sim.establish(9);
    sim.note("negotiated hold 9 s: our KEEPALIVEs every 3 s, the peer stays silent");
    sim.advance(9);
    assert_eq!(sim.session.state(), State::Idle);
    let _ = conn;
    sim.note("IdleHoldTimer 5 s, then AutomaticStart; each failure doubles the wait");
    sim.advance(5);
    sim.input(Event::TcpConnectionFails {
        conn: ConnectionId::outgoing(2),
        reason: "refused".into(),
    });
    sim.advance(10);
    sim.input(Event::TcpConnectionFails {
        conn: ConnectionId::outgoing(3),
        reason: "refused".into(),
    });
    sim.note("then connects that hang: ConnectRetryTimer retries, doubling up to the 60 s cap");
    sim.advance(20 + 40 + 60 + 60 + 60);
    sim.finish();
}

#[test]
fn rfc4271_4_4_keepalive_pacing_and_hold_time_zero() {
    let mut sim = Sim::new("rfc4271_4_4_keepalive_pacing", config());
    let conn = sim.establish(30);
    sim.note(
        "hold 30 s negotiated: KEEPALIVE every 10 s; the peer's KEEPALIVEs keep the hold timer",
    );
    for _ in 0..3 {
        sim.advance(10);
        sim.message(conn, packet::encode_keepalive());
    }
    assert_eq!(sim.session.state(), State::Established);
    assert_eq!(sim.session.status(sim.now).messages_out.keepalive, 4);
    sim.finish();

    let mut sim = Sim::new("rfc4271_4_2_hold_time_zero", config());
    sim.establish(0);
    sim.note("RFC 4271 4.2: hold time 0 means no KEEPALIVEs and no hold timer");
    assert_eq!(sim.session.poll_timeout(), None);
    sim.advance(3600);
    assert_eq!(sim.session.state(), State::Established);
    sim.finish();
}

/// The NOTIFICATION a bad OPEN gets, as the last error says it.
fn open_error(name: &'static str, open: Vec<u8>, expected: Notification) {
    let mut sim = Sim::new(name, config());
    sim.input(Event::ManualStart);
    let conn = sim.connect_out(1);
    sim.message(conn, open);
    assert_eq!(sim.session.state(), State::Idle);
    let error = sim.session.status(sim.now).last_error.unwrap();
    assert!(
        error.contains(&format!("sent NOTIFICATION {expected}")),
        "{error}"
    );
    sim.finish();
}

#[test]
fn rfc4271_6_2_open_errors_get_the_right_notification() {
    // Bad Peer AS: we expect 64512.
    open_error(
        "rfc4271_6_2_bad_peer_as",
        peer_open(64513, 90, "192.0.2.254"),
        Notification::new(2, 2, 64513u16.to_be_bytes()),
    );
    // Unacceptable Hold Time: 1 and 2 s must be rejected.
    let mut open = peer_open(64512, 90, "192.0.2.254");
    open[22] = 0;
    open[23] = 2;
    open_error(
        "rfc4271_6_2_unacceptable_hold_time",
        open,
        Notification::new(2, 6, []),
    );
    // Unsupported Version Number: data is the version we speak.
    let mut open = peer_open(64512, 90, "192.0.2.254");
    open[19] = 3;
    open_error(
        "rfc4271_6_2_unsupported_version",
        open,
        Notification::new(2, 1, [0, 4]),
    );
    // iBGP with our own BGP Identifier (RFC 6286 section 2.2).
    let mut internal = config();
    internal.remote_asn = internal.local_asn;
    let mut sim = Sim::new("rfc6286_2_2_ibgp_same_identifier", internal);
    sim.input(Event::ManualStart);
    let conn = sim.connect_out(1);
    sim.message(conn, peer_open(4_200_000_053, 90, "192.0.2.53"));
    sim.finish();
}

#[test]
fn rfc4271_6_1_bad_marker_and_rfc6608_unexpected_message() {
    let mut sim = Sim::new("rfc4271_6_1_bad_marker", config());
    let conn = sim.establish(90);
    let mut keepalive = packet::encode_keepalive();
    keepalive[0] = 0;
    sim.message(conn, keepalive);
    sim.finish();

    let mut sim = Sim::new("rfc6608_keepalive_in_open_sent", config());
    sim.input(Event::ManualStart);
    let conn = sim.connect_out(1);
    sim.message(conn, packet::encode_keepalive());
    sim.finish();
}

#[test]
fn rfc7606_malformed_update_attribute_keeps_the_session() {
    let mut sim = Sim::new("rfc7606_treat_as_withdraw_keeps_session", config());
    let conn = sim.establish(90);
    let good = packet::encode_announce(
        Family::Ipv4Unicast,
        &["198.51.100.0/24".parse().unwrap()],
        &RouteAttributes {
            communities: vec![Community::new(64512, 1)],
            ..Default::default()
        },
        "192.0.2.254".parse().unwrap(),
        &packet::EncodeContext {
            local_asn: 64512,
            internal: false,
            four_octet_as: true,
        },
    )
    .unwrap()
    .remove(0);
    sim.message(conn, good.clone());
    assert_eq!(sim.session.status(sim.now).prefixes_received, 1);
    sim.note("the same UPDATE with ORIGIN = 7: treat-as-withdraw, no NOTIFICATION");
    let mut bad = good;
    let origin = bad
        .windows(3)
        .position(|w| w == [0x40, 0x01, 0x01])
        .unwrap()
        + 3;
    bad[origin] = 7;
    sim.message(conn, bad);
    let status = sim.session.status(sim.now);
    assert_eq!(status.state, State::Established);
    assert_eq!(status.prefixes_received, 0);
    assert_eq!(status.update_errors_survived, 1);
    assert_eq!(status.messages_out.notification, 0);
    sim.note("an UPDATE whose Withdrawn Routes Length overruns the message: session reset");
    let mut broken = packet::encode_end_of_rib(Family::Ipv4Unicast).unwrap();
    broken[20] = 9;
    sim.message(conn, broken);
    sim.finish();
}

#[test]
fn rfc4271_6_8_collision_closes_the_connection_of_the_lower_identifier() {
    // Our identifier 192.0.2.53 < the peer's 192.0.2.254: our outgoing connection is closed.
    let mut sim = Sim::new("rfc4271_6_8_collision_we_are_lower", config());
    sim.input(Event::ManualStart);
    let out = sim.connect_out(1);
    let incoming = sim.accept_in(1);
    sim.message(incoming, peer_open(64512, 90, "192.0.2.254"));
    sim.message(out, peer_open(64512, 90, "192.0.2.254"));
    sim.message(incoming, packet::encode_keepalive());
    assert_eq!(sim.session.state(), State::Established);
    sim.finish();

    // The peer's identifier is lower: the incoming connection is closed.
    let mut sim = Sim::new("rfc4271_6_8_collision_we_are_higher", config());
    sim.input(Event::ManualStart);
    let out = sim.connect_out(1);
    let incoming = sim.accept_in(1);
    sim.message(out, peer_open(64512, 90, "192.0.2.1"));
    sim.message(out, packet::encode_keepalive());
    assert_eq!(sim.session.state(), State::Established);
    sim.note("RFC 4271 6.8: a connection while Established is closed");
    sim.accept_in(2);
    let _ = incoming;
    sim.finish();
}

#[test]
fn rfc8203_manual_stop_sends_cease_with_shutdown_communication() {
    let mut sim = Sim::new("rfc8203_manual_stop", config());
    sim.set_routes(vips(10));
    sim.establish(90);
    sim.input(Event::ManualStop {
        communication: Some("planned maintenance".into()),
    });
    assert_eq!(sim.session.state(), State::Idle);
    assert_eq!(
        sim.session.poll_timeout(),
        None,
        "no automatic restart after ManualStop"
    );
    sim.finish();
}

#[test]
fn passive_peer_waits_in_active() {
    let mut passive = config();
    passive.passive = true;
    let mut sim = Sim::new("rfc4271_8_1_passive_waits_in_active", passive);
    sim.input(Event::ManualStart);
    assert_eq!(sim.session.state(), State::Active);
    sim.advance(600);
    let conn = sim.accept_in(1);
    sim.message(conn, peer_open(64512, 90, "192.0.2.254"));
    sim.message(conn, packet::encode_keepalive());
    sim.input(Event::TcpConnectionFails {
        conn,
        reason: "reset by peer".into(),
    });
    sim.advance(5);
    sim.finish();
}
