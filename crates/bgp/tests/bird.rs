//! Interop with BIRD 2 on loopback: sessions, the routes BIRD sees (`birdc show route all`),
//! de-preference, withdrawal, TCP-MD5 and graceful restart. Skipped when BIRD is missing
//! unless ANYNS_REQUIRE_LAB=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyns_bgp::{
    Community, HoldTime, LargeCommunity, PeerConfig, RouteAttributes, Routes, ShutdownMode,
    Speaker, SpeakerConfig, State,
};
use common::bird::{Bird, BirdPeer, lab_available};

const OUR_ASN: u32 = 4_200_000_053;
const BIRD_ASN: u32 = 64512;
const WAIT: Duration = Duration::from_secs(30);

fn vip4() -> ipnet::IpNet {
    "192.0.2.53/32".parse().unwrap()
}
fn vip6() -> ipnet::IpNet {
    "2001:db8:53::53/128".parse().unwrap()
}

fn normal() -> RouteAttributes {
    RouteAttributes {
        med: Some(10),
        communities: vec![Community::new(64512, 53)],
        large_communities: vec![LargeCommunity::new(OUR_ASN, 1, 1)],
        ..Default::default()
    }
}

fn depreferred() -> RouteAttributes {
    RouteAttributes {
        med: Some(500),
        communities: vec![Community::new(64512, 53), Community::GRACEFUL_SHUTDOWN],
        large_communities: vec![LargeCommunity::new(OUR_ASN, 1, 2)],
        as_path_prepend: 2,
        ..Default::default()
    }
}

fn routes(attributes: RouteAttributes) -> Routes {
    [(vip4(), attributes.clone()), (vip6(), attributes)]
        .into_iter()
        .collect()
}

struct Lab {
    bird: Bird,
    speaker: Speaker,
}

/// One BIRD and one speaker peering on loopback.
struct LabSetup {
    name: &'static str,
    bird_addr: &'static str,
    bird_port: u16,
    our_addr: &'static str,
    our_port: u16,
    bird_password: Option<&'static str>,
    our_password: Option<&'static str>,
    graceful_restart: bool,
    /// Our graceful restart capability lists our families: BIRD keeps our routes stale.
    preserve_routes: bool,
    /// Configure the IPv6 next hop on an IPv4 session (else our IPv6 routes stay back).
    next_hop_ipv6: bool,
    /// BIRD in our AS: an iBGP session.
    internal: bool,
}

impl LabSetup {
    fn new(
        name: &'static str,
        bird_addr: &'static str,
        our_addr: &'static str,
        port: u16,
    ) -> LabSetup {
        LabSetup {
            name,
            bird_addr,
            bird_port: port,
            our_addr,
            our_port: port + 1,
            bird_password: None,
            our_password: None,
            graceful_restart: true,
            preserve_routes: false,
            next_hop_ipv6: true,
            internal: false,
        }
    }

    async fn start(self) -> Lab {
        let bird_asn = if self.internal { OUR_ASN } else { BIRD_ASN };
        let bird_peer = BirdPeer {
            local: self.bird_addr.into(),
            local_port: self.bird_port,
            local_as: bird_asn,
            neighbor: self.our_addr.into(),
            neighbor_port: self.our_port,
            neighbor_as: OUR_ASN,
            password: self.bird_password.map(str::to_string),
            graceful_restart: self.graceful_restart,
            hold_time: 9,
        };
        let bird = Bird::start(self.name, &bird_peer.config("192.0.2.254"));
        let mut peer = PeerConfig::new(self.bird_addr.parse().unwrap(), bird_asn);
        peer.port = self.bird_port;
        peer.local_address = Some(self.our_addr.parse::<IpAddr>().unwrap());
        peer.hold_time = HoldTime::try_from(9).unwrap();
        peer.connect_retry = 1;
        peer.connect_retry_max = 4;
        peer.password = self.our_password.map(str::to_string);
        if self.bird_addr.contains(':') {
            // IPv4 routes over an IPv6 session need an IPv4 next hop from config.
            peer.next_hop_ipv4 = Some("192.0.2.1".parse().unwrap());
        } else if self.next_hop_ipv6 {
            // And IPv6 routes over an IPv4 session an IPv6 one.
            peer.next_hop_ipv6 = Some("2001:db8:ffff::2".parse().unwrap());
        }
        let config = SpeakerConfig {
            local_asn: OUR_ASN,
            router_id: "192.0.2.53".parse().unwrap(),
            listen_port: self.our_port,
            graceful_restart: anyns_bgp::GracefulRestartConfig {
                preserve_routes: self.preserve_routes,
                ..anyns_bgp::GracefulRestartConfig::default()
            },
            peers: vec![peer],
        };
        let speaker = Speaker::start(config).await.unwrap();
        Lab { bird, speaker }
    }
}

impl Lab {
    async fn wait_established(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.speaker.status()[0].state != State::Established {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not Established: {:#?}\nBIRD: {}\n{}",
                self.speaker.status(),
                self.bird.cli("show protocols all anyns"),
                self.bird.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.bird
            .wait_for("show protocols anyns", WAIT, |o| o.contains("Established"))
            .await
            .unwrap();
    }

    async fn route(&self, prefix: ipnet::IpNet, accept: impl Fn(&str) -> bool) -> String {
        let command = format!("show route {prefix} all");
        match self.bird.wait_for(&command, WAIT, accept).await {
            Ok(out) => out,
            Err(out) => panic!(
                "BIRD's route for {prefix} never matched; last output:\n{out}\nstatus: {:#?}\n{}",
                self.speaker.status(),
                self.bird.log()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4271_ipv4_session_announces_depreferes_and_withdraws() {
    if !lab_available("rfc4271_ipv4_session_announces_depreferes_and_withdraws") {
        return;
    }
    let lab = LabSetup::new("v4", "127.0.0.1", "127.0.0.2", 17_901)
        .start()
        .await;
    lab.speaker.set_routes(routes(normal()));
    lab.wait_established().await;

    let out = lab.route(vip4(), |o| o.contains("BGP.med: 10")).await;
    println!("{out}");
    assert!(out.contains("BGP.origin: IGP"), "{out}");
    assert!(out.contains("BGP.as_path: 4200000053\n"), "{out}");
    assert!(out.contains("BGP.next_hop: 127.0.0.2"), "{out}");
    assert!(out.contains("BGP.community: (64512,53)"), "{out}");
    assert!(
        out.contains("BGP.large_community: (4200000053, 1, 1)"),
        "{out}"
    );
    let out6 = lab.route(vip6(), |o| o.contains("BGP.med: 10")).await;
    println!("{out6}");
    assert!(out6.contains("BGP.next_hop: 2001:db8:ffff::2"), "{out6}");

    // De-preferred: higher MED, two prepends, GRACEFUL_SHUTDOWN (RFC 8326).
    lab.speaker.set_routes(routes(depreferred()));
    let out = lab.route(vip4(), |o| o.contains("BGP.med: 500")).await;
    println!("{out}");
    assert!(
        out.contains("BGP.as_path: 4200000053 4200000053 4200000053"),
        "{out}"
    );
    assert!(out.contains("(65535,0)"), "{out}");
    assert!(out.contains("(4200000053, 1, 2)"), "{out}");
    lab.route(vip6(), |o| {
        o.contains("BGP.med: 500") && o.contains("(65535,0)")
    })
    .await;

    // Withdraw: classic withdrawn routes for IPv4, MP_UNREACH_NLRI for IPv6.
    lab.speaker.set_routes(Routes::new());
    lab.route(vip4(), |o| !o.contains("192.0.2.53/32")).await;
    lab.route(vip6(), |o| !o.contains("2001:db8:53::53/128"))
        .await;
    assert_eq!(lab.speaker.status()[0].state, State::Established);

    lab.speaker
        .shutdown(ShutdownMode::Cease {
            communication: Some("maintenance".into()),
        })
        .await;
    let out = lab
        .bird
        .wait_for("show protocols all anyns", WAIT, |o| {
            o.contains("maintenance")
        })
        .await;
    println!("{}", out.as_ref().unwrap_or_else(|e| e));
    assert!(out.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4760_ipv6_session_carries_both_families() {
    if !lab_available("rfc4760_ipv6_session_carries_both_families") {
        return;
    }
    let lab = LabSetup::new("v6", "::1", "::1", 17_911).start().await;
    lab.speaker.set_routes(routes(normal()));
    lab.wait_established().await;
    let out6 = lab.route(vip6(), |o| o.contains("BGP.med: 10")).await;
    println!("{out6}");
    assert!(out6.contains("BGP.next_hop: ::1"), "{out6}");
    assert!(
        out6.contains("BGP.large_community: (4200000053, 1, 1)"),
        "{out6}"
    );
    let out4 = lab.route(vip4(), |o| o.contains("BGP.med: 10")).await;
    println!("{out4}");
    assert!(out4.contains("BGP.next_hop: 192.0.2.1"), "{out4}");
    lab.speaker.set_routes(Routes::new());
    lab.route(vip6(), |o| !o.contains("2001:db8:53::53/128"))
        .await;
    lab.route(vip4(), |o| !o.contains("192.0.2.53/32")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2385_tcp_md5_session_establishes_with_the_same_password() {
    if !lab_available("rfc2385_tcp_md5_session_establishes_with_the_same_password") {
        return;
    }
    let mut setup = LabSetup::new("md5ok", "127.0.0.3", "127.0.0.4", 17_921);
    setup.bird_password = Some("s3cret-key");
    setup.our_password = Some("s3cret-key");
    // No IPv6 next hop on this IPv4 session: the /128 must stay back (BIRD refuses an
    // IPv4-mapped next hop, so we do not send one).
    setup.next_hop_ipv6 = false;
    let lab = setup.start().await;
    lab.speaker.set_routes(routes(normal()));
    lab.wait_established().await;
    lab.route(vip4(), |o| o.contains("BGP.med: 10")).await;
    let status = &lab.speaker.status()[0];
    assert!(
        status.not_announced.iter().any(|(p, _)| *p == vip6()),
        "{status:#?}"
    );
    assert!(
        !lab.bird
            .cli(&format!("show route {} all", vip6()))
            .contains("2001:db8:53::53/128")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2385_tcp_md5_session_fails_with_a_different_password() {
    if !lab_available("rfc2385_tcp_md5_session_fails_with_a_different_password") {
        return;
    }
    let mut setup = LabSetup::new("md5bad", "127.0.0.5", "127.0.0.6", 17_931);
    setup.bird_password = Some("bird-key");
    setup.our_password = Some("our-key");
    let lab = setup.start().await;
    lab.speaker.set_routes(routes(normal()));
    // Both sides keep trying for a while; neither may get past Connect/Active.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < deadline {
        let status = &lab.speaker.status()[0];
        assert!(
            matches!(status.state, State::Idle | State::Connect | State::Active),
            "{status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bird = lab.bird.cli("show protocols anyns");
    assert!(!bird.contains("Established"), "{bird}");
    assert_eq!(lab.speaker.status()[0].messages_in.open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4724_peer_keeps_our_routes_stale_after_a_crash() {
    if !lab_available("rfc4724_peer_keeps_our_routes_stale_after_a_crash") {
        return;
    }
    let mut setup = LabSetup::new("gr", "127.0.0.7", "127.0.0.8", 17_941);
    setup.preserve_routes = true;
    let lab = setup.start().await;
    lab.speaker.set_routes(routes(normal()));
    lab.wait_established().await;
    lab.route(vip4(), |o| o.contains("BGP.med: 10")).await;
    let negotiated = lab.speaker.status()[0].negotiated.clone().unwrap();
    assert!(negotiated.graceful_restart);
    let Lab { bird, speaker } = lab;
    // Our side drops the TCP connection without a NOTIFICATION, as a crash would.
    speaker.shutdown(ShutdownMode::GracefulRestart).await;
    bird.wait_for("show protocols anyns", WAIT, |o| !o.contains("Established"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let protocols = bird.cli("show protocols all anyns");
    println!("{protocols}");
    let out = bird.cli(&format!("show route {} all", vip4()));
    println!("{out}");
    assert!(
        out.contains("192.0.2.53/32") && out.contains("BGP.med: 10"),
        "{out}\n{protocols}"
    );
    assert!(
        bird.cli(&format!("show route {}", vip6()))
            .contains("2001:db8:53::53/128")
    );
}

/// The default: graceful restart negotiated, but no <AFI, SAFI> in our capability, so BIRD
/// keeps nothing when the node crashes (RFC 4724 section 4.2) and traffic moves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4724_by_default_a_crash_withdraws_at_once_despite_graceful_restart() {
    if !lab_available("rfc4724_by_default_a_crash_withdraws_at_once_despite_graceful_restart") {
        return;
    }
    let lab = LabSetup::new("grdefault", "127.0.0.13", "127.0.0.14", 17_971)
        .start()
        .await;
    lab.speaker.set_routes(routes(normal()));
    lab.wait_established().await;
    lab.route(vip4(), |o| o.contains("BGP.med: 10")).await;
    assert!(
        lab.speaker.status()[0]
            .negotiated
            .clone()
            .unwrap()
            .graceful_restart
    );
    let Lab { bird, speaker } = lab;
    speaker.shutdown(ShutdownMode::GracefulRestart).await;
    bird.wait_for(&format!("show route {}", vip4()), WAIT, |o| {
        !o.contains("192.0.2.53/32")
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4724_without_graceful_restart_a_crash_withdraws_at_once() {
    if !lab_available("rfc4724_without_graceful_restart_a_crash_withdraws_at_once") {
        return;
    }
    let mut setup = LabSetup::new("nogr", "127.0.0.9", "127.0.0.10", 17_951);
    setup.graceful_restart = false;
    let lab = setup.start().await;
    lab.speaker.set_routes(routes(normal()));
    lab.wait_established().await;
    lab.route(vip4(), |o| o.contains("BGP.med: 10")).await;
    assert!(
        !lab.speaker.status()[0]
            .negotiated
            .clone()
            .unwrap()
            .graceful_restart
    );
    let Lab { bird, speaker } = lab;
    speaker.shutdown(ShutdownMode::GracefulRestart).await;
    bird.wait_for(&format!("show route {}", vip4()), WAIT, |o| {
        !o.contains("192.0.2.53/32")
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4271_5_1_ibgp_session_sends_empty_as_path_and_local_pref() {
    if !lab_available("rfc4271_5_1_ibgp_session_sends_empty_as_path_and_local_pref") {
        return;
    }
    let mut setup = LabSetup::new("ibgp", "127.0.0.11", "127.0.0.12", 17_961);
    setup.internal = true;
    let lab = setup.start().await;
    let mut attributes = depreferred();
    attributes.local_pref = Some(50);
    lab.speaker.set_routes(routes(attributes));
    lab.wait_established().await;
    let out = lab.route(vip4(), |o| o.contains("BGP.med: 500")).await;
    println!("{out}");
    // RFC 4271 5.1.2: an empty AS_PATH, prepends ignored; 5.1.5: LOCAL_PREF sent.
    assert!(
        out.contains("BGP.as_path: \n") || out.contains("BGP.as_path:\n"),
        "{out}"
    );
    assert!(out.contains("BGP.local_pref: 50"), "{out}");
    assert!(out.contains("[i]"), "{out}");
}
