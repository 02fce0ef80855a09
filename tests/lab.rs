//! The multi-site lab (`lab/lab.py`) as a test: three sites in network namespaces, each a node
//! behind a real BIRD 2 router, two clients. `lab.py check`/`wait` hold the expectations (BGP
//! sessions Established over IPv4 and IPv6 at every router, the VIP /32 and /128 at each router
//! with the expected AS paths, best first, and each client answered by its nearest site over
//! UDP and TCP, IPv4 and IPv6, by NSID and CHAOS id.server); this test drives the lab through
//! faults and requires each expected state within a bound.
//!
//! Needs root and bird2, nsd, exabgp, dnsutils (lab/setup.sh). Without them the tests say they
//! are skipped, unless `ANYNS_REQUIRE_LAB=1`, which makes that a failure. The anyns test fails
//! when `lab.py anyns-ready` says the binary cannot run in the lab. Every test takes the lab
//! down at the end, pass or fail. Failover times are benchmark figures (`lab.py measure`,
//! bench/RESULTS.md), not asserted here.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// One lab test at a time in this process; `LabLock` keeps other processes (a measurement, a
/// second `cargo test`) out for the whole test.
static LAB: Mutex<()> = Mutex::new(());

const UP_TIMEOUT: Duration = Duration::from_secs(120);
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab_required() -> bool {
    std::env::var("ANYNS_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn program_exists(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .any(|dir| dir.join(name).is_file())
}

/// Whether the lab can run here; a reason to skip (or, when required, to fail) if not.
fn preflight(speaker: &str) -> Result<(), String> {
    if !is_root() {
        return Err("the lab needs root (network namespaces)".into());
    }
    let mut tools = vec!["python3", "ip", "bird", "birdc", "dig"];
    if speaker == "exabgp" {
        tools.extend(["nsd", "exabgp"]);
    }
    let missing: Vec<&str> = tools.into_iter().filter(|t| !program_exists(t)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing {} (run lab/setup.sh as root)",
            missing.join(", ")
        ))
    }
}

/// Returns false (after saying why) when the test should skip; panics when the lab is required.
fn lab_available(test: &str, speaker: &str) -> bool {
    match preflight(speaker) {
        Ok(()) => true,
        Err(why) if lab_required() => panic!("ANYNS_REQUIRE_LAB=1 but {why}"),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}; set ANYNS_REQUIRE_LAB=1 to make this a failure");
            false
        }
    }
}

/// Output of one `lab.py` run.
struct LabRun {
    ok: bool,
    output: String,
}

/// Runs `python3 lab/lab.py ARGS`, killed after `timeout`; stdout and stderr together.
fn lab(args: &[&str], timeout: Duration) -> LabRun {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let log = std::env::temp_dir().join(format!(
        "anyns-lab-test-{}-{}.log",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let file = fs::File::create(&log).unwrap();
    let mut child = Command::new("python3")
        .arg(repo().join("lab/lab.py"))
        .args(args)
        .env(LOCK_TOKEN_ENV, lock_token())
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    if status.is_none() {
        output.push_str(&format!("\n(lab.py killed after {timeout:?})"));
    }
    eprintln!("$ lab.py {}\n{output}", args.join(" "));
    LabRun {
        ok: status.is_some_and(|s| s.success()),
        output,
    }
}

/// Runs a lab step that must succeed.
fn step(what: &str, args: &[&str], timeout: Duration) -> String {
    let run = lab(args, timeout);
    assert!(
        run.ok,
        "{what}: `lab.py {}` failed:\n{}",
        args.join(" "),
        run.output
    );
    run.output
}

const LOCK_TOKEN_ENV: &str = "ANYNS_LAB_LOCK_TOKEN";

/// Commands run with this token share the lock held by this process's `LabLock`.
fn lock_token() -> String {
    format!("lab-test-{}", std::process::id())
}

/// The machine-wide lab lock (`lab.py hold-lock`), held from `acquire` until drop: the
/// namespaces have fixed names, so a measurement or another test run must not interleave with
/// this test's commands. The holder exits when its stdin closes, also if this process dies.
struct LabLock {
    holder: Child,
}

impl LabLock {
    fn acquire() -> LabLock {
        let mut holder = Command::new("python3")
            .arg(repo().join("lab/lab.py"))
            .args(["hold-lock", "--token", &lock_token(), "--timeout", "600"])
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = holder.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "LOCKED", "could not take the lab lock");
        LabLock { holder }
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

/// Takes the lab down when the test ends, whether it passed or panicked.
struct LabGuard;

impl Drop for LabGuard {
    fn drop(&mut self) {
        let run = lab(&["down"], DOWN_TIMEOUT);
        if !run.ok {
            eprintln!("lab.py down failed:\n{}", run.output);
        }
    }
}

/// The checks every speaker must pass. Site C's DNS stops answering: its route goes (router C
/// prefers B's path, client2 reaches B, client1 still A) and comes back when DNS does. Site A's
/// node is killed: the session drops and the route goes at once; restarted, it returns.
fn failover_checks(with_drain: bool) {
    step(
        "all sites up: sessions, routes, nearest site per client",
        &["check"],
        STEP_TIMEOUT,
    );

    step(
        "site C: DNS stops",
        &["fault", "--site", "c", "--kind", "dns-stop"],
        STEP_TIMEOUT,
    );
    step(
        "site C withdrawn after its health fails",
        &["wait", "--down", "c", "--timeout", "45"],
        STEP_TIMEOUT,
    );
    step(
        "site C: DNS answers again",
        &["recover", "--site", "c", "--kind", "dns-stop"],
        STEP_TIMEOUT,
    );
    step(
        "site C announced again after it recovers",
        &["wait", "--timeout", "45"],
        STEP_TIMEOUT,
    );

    step(
        "site A: node killed",
        &["fault", "--site", "a", "--kind", "kill"],
        STEP_TIMEOUT,
    );
    step(
        "site A withdrawn once its session drops",
        &["wait", "--down", "a", "--timeout", "15"],
        STEP_TIMEOUT,
    );
    step(
        "site A: node restarted",
        &["recover", "--site", "a", "--kind", "kill"],
        STEP_TIMEOUT,
    );
    step(
        "site A back after restart",
        &["wait", "--timeout", "45"],
        STEP_TIMEOUT,
    );

    if with_drain {
        step(
            "site A: drain",
            &["fault", "--site", "a", "--kind", "drain"],
            STEP_TIMEOUT,
        );
        step(
            "site A withdrawn by the drain",
            &["wait", "--down", "a", "--timeout", "45"],
            STEP_TIMEOUT,
        );
        step(
            "site A: undrain",
            &["recover", "--site", "a", "--kind", "drain"],
            STEP_TIMEOUT,
        );
        step(
            "site A back after undrain",
            &["wait", "--timeout", "45"],
            STEP_TIMEOUT,
        );
    }
}

/// The reference setup operators run today: NSD + ExaBGP with its healthcheck (defaults).
#[test]
fn lab_reference_exabgp_sessions_routes_and_failover() {
    let _one_lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available(
        "lab_reference_exabgp_sessions_routes_and_failover",
        "exabgp",
    ) {
        return;
    }
    let started = Instant::now();
    let _lock = LabLock::acquire();
    let _down = LabGuard;
    step(
        "lab up with the reference speaker",
        &["up", "--speaker", "exabgp", "--timeout", "90"],
        UP_TIMEOUT,
    );
    failover_checks(false);
    eprintln!("reference lab test took {:?}", started.elapsed());
}

fn anyns_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_anyns"))
}

/// anyns as the node: its own DNS, BGP speaker and health, in one process.
#[test]
fn lab_anyns_sessions_routes_and_failover() {
    let _one_lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    if !lab_available("lab_anyns_sessions_routes_and_failover", "anyns") {
        return;
    }
    let bin = anyns_binary().to_str().unwrap();
    // The binary must be able to run the lab's node config (BGP, health, fault switch).
    let ready = lab(&["anyns-ready", "--anyns-bin", bin], STEP_TIMEOUT);
    assert!(
        ready.ok,
        "anyns cannot run in the lab: {}",
        ready.output.trim()
    );
    let _lock = LabLock::acquire();
    let _down = LabGuard;
    step(
        "lab up with anyns as the speaker",
        &[
            "up",
            "--speaker",
            "anyns",
            "--anyns-bin",
            bin,
            "--timeout",
            "90",
        ],
        UP_TIMEOUT,
    );
    failover_checks(true);
}
