//! The probes against real sockets and processes: a tiny DNS responder on 127.0.0.1 started in
//! the test, real commands, and the runner end to end. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyns_health::command_probe::CommandProbe;
use anyns_health::dns_probe::DnsProbe;
use anyns_health::{
    DrainStage, DrainTimers, HealthPolicy, Intent, Probe, ProbeCheck, ProbeOutcome, ProbeSpec,
    WithdrawReason, ZoneFreshness, runner,
};
use anyns_wire::Name;
use tokio::net::UdpSocket;

/// Longest any single test step may take.
const BOUND: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_millis(100);

const CORRECT: u8 = 0;
const SERVFAIL: u8 = 1;
const SILENT: u8 = 2;
const WRONG_ID_ONLY: u8 = 3;
const WRONG_ID_THEN_CORRECT: u8 = 4;
const NOT_AUTHORITATIVE: u8 = 5;

/// An answer to `query` (SOA IN for some zone) with the given header flags and one SOA record.
fn answer(query: &[u8], id: u16, flags: u16) -> Vec<u8> {
    let mut a = query.to_vec();
    a[..2].copy_from_slice(&id.to_be_bytes());
    a[2..4].copy_from_slice(&flags.to_be_bytes());
    a[6..8].copy_from_slice(&1u16.to_be_bytes());
    a.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0x0e, 0x10]);
    let rdata: &[u8] = &[
        2, b'n', b's', 0xc0, 12, 4, b'r', b'o', b'o', b't', 0xc0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
        0, 3, 0, 0, 0, 4, 0, 0, 0, 5,
    ];
    a.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
    a.extend_from_slice(rdata);
    a
}

/// A UDP responder on 127.0.0.1 behaving as `mode` says (changeable while it runs).
async fn responder(mode: Arc<AtomicU8>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let query = &buf[..n];
            let id = u16::from_be_bytes([query[0], query[1]]);
            const QR_AA: u16 = 0x8400;
            let replies = match mode.load(Ordering::Relaxed) {
                CORRECT => vec![answer(query, id, QR_AA)],
                SERVFAIL => vec![answer(query, id, QR_AA | 2)],
                SILENT => vec![],
                WRONG_ID_ONLY => vec![answer(query, !id, QR_AA)],
                WRONG_ID_THEN_CORRECT => {
                    vec![answer(query, !id, QR_AA | 2), answer(query, id, QR_AA)]
                }
                NOT_AUTHORITATIVE => vec![answer(query, id, 0x8000)],
                _ => unreachable!(),
            };
            for r in replies {
                let _ = socket.send_to(&r, peer).await;
            }
        }
    });
    addr
}

fn zones() -> Vec<Name> {
    vec![
        Name::from_text("a.test.").unwrap(),
        Name::from_text("b.test.").unwrap(),
    ]
}

async fn dns_probe_with(mode: u8) -> ProbeOutcome {
    let addr = responder(Arc::new(AtomicU8::new(mode))).await;
    let probe = DnsProbe::new(addr, zones()).unwrap();
    tokio::time::timeout(BOUND, probe.run(TIMEOUT))
        .await
        .unwrap()
}

#[tokio::test]
async fn dns_probe_correct_authoritative_soa_answers_pass() {
    assert_eq!(dns_probe_with(CORRECT).await, ProbeOutcome::Ok);
}

#[tokio::test]
async fn dns_probe_wrong_rcode_fails_with_the_rcode() {
    let ProbeOutcome::Failed(reason) = dns_probe_with(SERVFAIL).await else {
        panic!("expected a failure");
    };
    assert!(reason.contains("rcode SERVFAIL"), "{reason}");
    assert!(reason.contains("(and 1 more)"), "{reason}");
}

#[tokio::test]
async fn dns_probe_missing_aa_fails() {
    let ProbeOutcome::Failed(reason) = dns_probe_with(NOT_AUTHORITATIVE).await else {
        panic!("expected a failure");
    };
    assert!(reason.contains("not authoritative"), "{reason}");
}

#[tokio::test]
async fn dns_probe_silence_times_out_on_time() {
    let start = tokio::time::Instant::now();
    assert_eq!(dns_probe_with(SILENT).await, ProbeOutcome::TimedOut);
    assert!(start.elapsed() < TIMEOUT * 5);
}

#[tokio::test]
async fn dns_probe_ignores_answers_with_a_wrong_id() {
    assert_eq!(dns_probe_with(WRONG_ID_ONLY).await, ProbeOutcome::TimedOut);
    // The wrong-ID SERVFAIL before the right answer does not fail the probe.
    assert_eq!(
        dns_probe_with(WRONG_ID_THEN_CORRECT).await,
        ProbeOutcome::Ok
    );
}

#[tokio::test]
async fn dns_probe_port_unreachable_fails_before_the_timeout() {
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let probe = DnsProbe::new(closed, zones()).unwrap();
    let outcome = tokio::time::timeout(BOUND, probe.run(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(matches!(outcome, ProbeOutcome::Failed(_)), "{outcome:?}");
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

async fn command(args: &[&str], timeout: Duration) -> ProbeOutcome {
    let probe = CommandProbe::new("test", &argv(args)).unwrap();
    tokio::time::timeout(BOUND, probe.run(timeout))
        .await
        .unwrap()
}

#[tokio::test]
async fn command_probe_exit_zero_passes_and_nonzero_fails() {
    assert_eq!(command(&["true"], BOUND).await, ProbeOutcome::Ok);
    let ProbeOutcome::Failed(reason) = command(&["false"], BOUND).await else {
        panic!("false must fail");
    };
    assert!(reason.contains("exit status: 1"), "{reason}");
    let ProbeOutcome::Failed(reason) =
        command(&["sh", "-c", "echo 'bird is down' >&2; exit 3"], BOUND).await
    else {
        panic!("exit 3 must fail");
    };
    assert!(reason.contains("exit status: 3: bird is down"), "{reason}");
    let ProbeOutcome::Failed(reason) = command(&["/nonexistent/check"], BOUND).await else {
        panic!("a missing program must fail");
    };
    assert!(reason.contains("cannot run"), "{reason}");
}

#[tokio::test]
async fn command_probe_timeout_kills_the_child_by_pid() {
    let pid_file = std::env::temp_dir().join(format!("anyns-health-{}.pid", std::process::id()));
    let script = format!("echo $$ > {}; exec sleep 10", pid_file.display());
    let start = tokio::time::Instant::now();
    let outcome = command(&["sh", "-c", &script], Duration::from_millis(100)).await;
    assert_eq!(outcome, ProbeOutcome::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(2));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let _ = std::fs::remove_file(&pid_file);
    // Killed and reaped: not even a zombie is left.
    let proc = std::path::Path::new("/proc").join(pid.trim());
    assert!(!proc.exists(), "process {} still exists", pid.trim());
}

fn spec(name: &str, interval_ms: u64, rise: u32, fall: u32) -> ProbeSpec {
    ProbeSpec::new(
        name,
        Duration::from_millis(interval_ms),
        Duration::from_millis(interval_ms),
        NonZeroU32::new(rise).unwrap(),
        NonZeroU32::new(fall).unwrap(),
    )
    .unwrap()
}

async fn wait_for_intent(
    rx: &mut tokio::sync::watch::Receiver<Intent>,
    what: impl Fn(&Intent) -> bool,
) -> Intent {
    tokio::time::timeout(BOUND, rx.wait_for(|i| what(i)))
        .await
        .expect("intent did not arrive in time")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn runner_announces_withdraws_and_drains_from_real_probes() {
    let mode = Arc::new(AtomicU8::new(CORRECT));
    let addr = responder(mode.clone()).await;
    let policy = HealthPolicy {
        hold_down: Duration::from_millis(50),
        hold_down_max: Duration::from_millis(400),
        stable_after: Duration::from_secs(60),
        flap_budget_per_hour: 10,
        drain: DrainTimers {
            deprefer: Duration::from_millis(100),
            quiet: Duration::from_millis(200),
            max_wait: Duration::from_secs(3),
        },
    };
    let probes = vec![
        Probe {
            spec: spec("dns", 20, 2, 2),
            check: ProbeCheck::Dns(DnsProbe::new(addr, zones()).unwrap()),
        },
        Probe {
            spec: spec("true", 50, 1, 1),
            check: ProbeCheck::Command(CommandProbe::new("true", &argv(&["true"])).unwrap()),
        },
    ];
    let queries = Arc::new(AtomicU64::new(0));
    let counter = queries.clone();
    let handle = runner::spawn(
        policy,
        probes,
        vec!["a.test.".into(), "b.test.".into()],
        Some(Box::new(move || counter.load(Ordering::Relaxed))),
    )
    .unwrap();
    let mut intent = handle.intent();
    assert!(!intent.borrow().is_announced());

    let loaded = ZoneFreshness {
        loaded: true,
        ..ZoneFreshness::default()
    };
    handle.set_zone("a.test.", loaded).await.unwrap();
    handle.set_zone("b.test.", loaded).await.unwrap();
    wait_for_intent(&mut intent, |i| *i == Intent::Announce).await;

    // The data plane goes silent: withdrawn.
    mode.store(SILENT, Ordering::Relaxed);
    let down = wait_for_intent(&mut intent, |i| !i.is_announced()).await;
    assert_eq!(
        down,
        Intent::Withdraw {
            reason: WithdrawReason::ProbeDown {
                probe: "dns".into()
            }
        }
    );
    let status = tokio::time::timeout(BOUND, handle.status())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.flap_budget.used, 1);
    assert!(!status.probes[0].transitions.is_empty());

    // Back: announced after rise and the hold-down.
    mode.store(CORRECT, Ordering::Relaxed);
    wait_for_intent(&mut intent, |i| *i == Intent::Announce).await;

    // Drain: de-prefer, withdraw, and drained once the query counter stays still.
    handle.drain().await.unwrap();
    wait_for_intent(&mut intent, |i| {
        matches!(i, Intent::AnnounceDepreferred { .. })
    })
    .await;
    queries.fetch_add(100, Ordering::Relaxed);
    wait_for_intent(&mut intent, |i| !i.is_announced()).await;
    tokio::time::timeout(BOUND, handle.drained())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*handle.drain_stage().borrow(), DrainStage::Drained);
    let status = tokio::time::timeout(BOUND, handle.status())
        .await
        .unwrap()
        .unwrap();
    assert!(status.probes.iter().all(|p| p.paused));
}
