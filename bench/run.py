#!/usr/bin/env python3
"""anyns vs Knot DNS vs NSD: same run, same zones, same query mix.

The one command (as root, from the repository root):

    python3 bench/run.py                       # all servers, both zones, 20 s each
    python3 bench/run.py --quick               # 5 s each: a smoke run
    python3 bench/run.py --servers knot,nsd    # only some servers
    python3 bench/run.py --update-results      # also rewrite "Latest run" in bench/RESULTS.md

For each zone (small.bench. ~100 RRs, large.bench. 1M RRs; made by gen_zones.py) and each
server it: writes the server's config in a private temp dir; starts it pinned with taskset to
the server CPU set, on 127.0.0.1 and a free port, with the same number of workers as the
others; measures the load time (start until the first authoritative SOA answer, polled every
10 ms) and the memory after load; checks a sample of queries against their expected outcome
(and compares the answers across servers) so a broken server is never timed; runs dnsperf
pinned to the client CPU set for --duration seconds and records qps, latency, loss, rcodes;
samples the server's CPU time while it runs (saturated or not); runs a short fixed-rate pass
for latency percentiles; reads peak RSS (VmHWM); counts instructions per query (perf stat if
the CPU counters work here, else callgrind on a fixed number of queries). It writes a
Markdown report to bench/out/results.md and prints it.

Every process it starts is stopped by its PID (process group) at the end, also on Ctrl-C or
an error; every wait has a timeout; temp dirs are removed (--keep-temp keeps them).
Needs: knot, nsd, dnsperf, valgrind, linux-perf (bench/setup.sh installs them) and, for
anyns, cargo (the binary is built with `cargo build --release` if missing).
"""

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # nothing to leave behind in bench/
sys.path.insert(0, HERE)
import gen_zones  # noqa: E402

ALL_SERVERS = ("anyns", "knot", "nsd")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# A minimal DNS client (stub, no recursion desired, no EDNS: the same as dnsperf's queries).

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
         "SRV": 33, "OPT": 41}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def build_query(qid, name, rtype):
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + encode_name(name) + \
        struct.pack(">HH", TYPES[rtype], 1)


def read_name(msg, off):
    labels, jumped, end, hops = [], False, off, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            hops += 1
            if hops > 64:
                raise ValueError("compression loop")
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            return ".".join(labels).lower() + ".", end
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def parse_response(msg):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    sections = []
    for count in (an, ns, ar):
        rrs = []
        for _ in range(count):
            owner, off = read_name(msg, off)
            rtype, _cls, ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
            off += 10
            rd = msg[off:off + rdlen]
            if rtype in (2, 5, 12):
                rdata = read_name(msg, off)[0]
            elif rtype == 15:
                rdata = f"{struct.unpack('>H', rd[:2])[0]} {read_name(msg, off + 2)[0]}"
            elif rtype == 6:
                m, o = read_name(msg, off)
                r, o = read_name(msg, o)
                rdata = f"{m} {r} " + " ".join(map(str, struct.unpack(">IIIII", msg[o:o + 20])))
            else:
                rdata = rd.hex()
            off += rdlen
            rrs.append((owner, TYPE_NAMES.get(rtype, str(rtype)), ttl, rdata))
        sections.append(rrs)
    return {"id": qid, "rcode": RCODES.get(flags & 0xF, str(flags & 0xF)),
            "aa": bool(flags & 0x0400), "tc": bool(flags & 0x0200),
            "answer": sections[0], "authority": sections[1], "additional": sections[2]}


def query(port, name, rtype, timeout=1.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        qid = random.randrange(65536)
        s.send(build_query(qid, name, rtype))
        while True:
            msg = s.recv(65535)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                return parse_response(msg)


def soa_ok(port, origin, timeout):
    try:
        r = query(port, origin, "SOA", timeout)
    except (OSError, ValueError, struct.error, IndexError):
        return False
    return r["rcode"] == "NOERROR" and r["aa"] and any(t == "SOA" for _, t, _, _ in r["answer"])


def check_outcome(kind, qname, rtype, r):
    """Why the response r does not have the expected outcome, or None."""
    qname = qname.lower()
    an, au, ad = r["answer"], r["authority"], r["additional"]
    types_au = {t for _, t, _, _ in au}
    if r["tc"]:
        return "truncated"
    if kind in ("answer", "wildcard"):
        if r["rcode"] != "NOERROR" or not r["aa"]:
            return f"{r['rcode']} aa={r['aa']}"
        if not any(o == qname and t == rtype for o, t, _, _ in an):
            return f"no {rtype} for {qname} in answer"
    elif kind == "cname":
        if r["rcode"] != "NOERROR" or not r["aa"]:
            return f"{r['rcode']} aa={r['aa']}"
        if not an or an[0][0] != qname or an[0][1] != "CNAME":
            return "answer does not start with the CNAME"
    elif kind in ("nxdomain", "nodata"):
        want = "NXDOMAIN" if kind == "nxdomain" else "NOERROR"
        if r["rcode"] != want or not r["aa"] or an:
            return f"{r['rcode']} aa={r['aa']} answers={len(an)}"
        if "SOA" not in types_au:
            return "no SOA in authority"
    elif kind == "referral":
        if r["rcode"] != "NOERROR" or r["aa"] or an:
            return f"{r['rcode']} aa={r['aa']} answers={len(an)}"
        if "NS" not in types_au:
            return "no NS in authority"
        if not any(t in ("A", "AAAA") for _, t, _, _ in ad):
            return "no glue in additional"
    return None


def signature(r):
    """What must be identical across servers: rcode, AA, the answer RRset contents and, for
    answers without data, the owner/type of the authority records. (Servers may differ in
    optional data: NS in the authority section of positive answers, additional records.)"""
    au = sorted({(o, t) for o, t, _, _ in r["authority"]}) if not r["answer"] else []
    return (r["rcode"], r["aa"], tuple(sorted(r["answer"])), tuple(au))


def sanity_check(port, expect_path):
    """Run the expected-outcome queries. Returns (failures, signatures)."""
    failures, sigs = [], {}
    with open(expect_path) as f:
        lines = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    for name, rtype, kind in lines:
        try:
            r = query(port, name, rtype, timeout=2.0)
        except (OSError, ValueError, struct.error, IndexError) as e:
            failures.append(f"{name} {rtype} ({kind}): {type(e).__name__} {e}")
            continue
        why = check_outcome(kind, name, rtype, r)
        if why:
            failures.append(f"{name} {rtype} (expected {kind}): {why}")
        sigs[(name, rtype)] = signature(r)
    return failures, sigs


# --------------------------------------------------------------------------------------------
# Processes

class Procs:
    """Every process we start, each in its own process group (so a server's forked children
    go with it); stop() ends them by that id."""

    def __init__(self):
        self.live = []

    def start(self, argv, logpath, cwd=None):
        logf = open(logpath, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             cwd=cwd, start_new_session=True)
        logf.close()
        self.live.append(p)
        return p

    def stop(self, p, timeout=15):
        if p.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Forked children (nsd's servers and xfrd) may outlive the leader for a moment.
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=5)


def tree(pid):
    """pid and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def cpus_busy_seconds(cpus):
    """Busy time (all but idle and iowait) of the given CPUs, from /proc/stat."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0].startswith("cpu") and parts[0][3:].isdigit() and int(parts[0][3:]) in cpus:
                v = [int(x) for x in parts[1:9]]
                total += sum(v) - v[3] - v[4]
    return total / CLK_TCK


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return status_kb(pid, "VmRSS")


def memory(pid):
    """(summed PSS of the process tree, largest single-process VmHWM) in KiB. For one process
    PSS is its RSS; for nsd's forked servers PSS does not count shared pages twice."""
    pids = tree(pid)
    return sum(pss_kb(p) for p in pids), max(status_kb(p, "VmHWM") for p in pids)


def repin(pid, cpus):
    """Put every thread of the server's processes back on the server CPU set; returns how
    many had left it. Knot pins each UDP worker to a CPU of its own choosing (worker i on
    CPU i), which would put it on the load generator's CPU."""
    moved = 0
    for p in tree(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                if os.sched_getaffinity(tid) != set(cpus):
                    moved += 1
                    os.sched_setaffinity(tid, cpus)
            except OSError:
                pass
    return moved


def udp_rcvbuf_errors():
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    head, vals = rows[0], rows[1]
    return int(vals[head.index("RcvbufErrors")])


def free_port():
    for _ in range(100):
        port = random.randrange(20000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def cpulist(cpus):
    return ",".join(str(c) for c in cpus)


# --------------------------------------------------------------------------------------------
# Servers: each writes its config into a private temp dir and returns the argv to run.

def knot_argv(tmp, zones, port, threads, args):
    conf = os.path.join(tmp, "knot.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
    rundir: "{tmp}"
    listen: 127.0.0.1@{port}
    udp-workers: {threads}
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{tmp}/db"
log:
  - target: stderr
    any: info
control:
    listen: "{tmp}/knot.sock"
template:
  - id: default
    storage: "{tmp}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
""")
        for z in zones:
            f.write(f'  - domain: {z["origin"]}\n    file: "{z["zonefile"]}"\n')
    os.makedirs(os.path.join(tmp, "db"), exist_ok=True)
    return ["knotd", "-c", conf]


def nsd_argv(tmp, zones, port, threads, args):
    conf = os.path.join(tmp, "nsd.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    server-count: {threads}
    reuseport: {"yes" if threads > 1 else "no"}
    username: ""
    chroot: ""
    zonesdir: ""
    database: ""
    zonelistfile: "{tmp}/zone.list"
    xfrdfile: "{tmp}/xfrd.state"
    xfrdir: "{tmp}"
    pidfile: "{tmp}/nsd.pid"
    zonefiles-write: 0
    verbosity: 1
    # Response rate limiting is compiled in and on by default; Knot's (a module) is off.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    # Like Knot's default: no NS RRset in the authority section of positive answers.
    minimal-responses: yes
remote-control:
    control-enable: no
""")
        for z in zones:
            f.write(f'zone:\n    name: "{z["origin"]}"\n    zonefile: "{z["zonefile"]}"\n')
    return ["nsd", "-d", "-c", conf]


def anyns_argv(tmp, zones, port, threads, args):
    argv = [args.anyns_bin, "serve", "--listen", f"127.0.0.1:{port}", "--threads", str(threads)]
    for z in zones:
        argv += ["--zone", f"{z['origin'].rstrip('.')}={z['zonefile']}"]
    return argv


SERVER_ARGV = {"anyns": anyns_argv, "knot": knot_argv, "nsd": nsd_argv}


def server_version(name, args):
    try:
        if name == "knot":
            return subprocess.run(["knotd", "-V"], capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        if name == "nsd":
            out = subprocess.run(["nsd", "-v"], capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return f"anyns {rev or '?'} ({os.path.relpath(args.anyns_bin, REPO)})"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


# --------------------------------------------------------------------------------------------
# dnsperf

def dnsperf_argv(args, port, datafile, extra):
    return ["taskset", "-c", cpulist(args.client_cpus), "dnsperf", "-s", "127.0.0.1",
            "-p", str(port), "-d", datafile] + extra


def parse_dnsperf(text):
    def num(pattern, cast=float):
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else None
    res = {
        "sent": num(r"Queries sent:\s+(\d+)", int),
        "completed": num(r"Queries completed:\s+(\d+)", int),
        "lost": num(r"Queries lost:\s+(\d+)", int),
        "qps": num(r"Queries per second:\s+([\d.]+)"),
        "runtime": num(r"Run time \(s\):\s+([\d.]+)"),
        "avg_latency": num(r"Average Latency \(s\):\s+([\d.]+)"),
        "min_latency": num(r"Average Latency \(s\):\s+[\d.]+ \(min ([\d.]+)"),
        "max_latency": num(r"max ([\d.]+)\)"),
        "stddev_latency": num(r"Latency StdDev \(s\):\s+([\d.]+)"),
        "resp_size": num(r"Average packet size:\s+request \d+, response (\d+)", int),
    }
    m = re.search(r"Response codes:\s+(.*)", text)
    res["rcodes"] = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+) \(", m.group(1))} if m else {}
    return res


def run_dnsperf(procs, args, port, datafile, extra, logpath, timeout, server_pid=None):
    """Run dnsperf to completion; while it runs, sample the server's and dnsperf's CPU time
    every 0.5 s. Returns (parsed stats, samples)."""
    argv = dnsperf_argv(args, port, datafile, extra)
    p = procs.start(argv, logpath)
    samples = []
    deadline = time.time() + timeout
    try:
        while p.poll() is None:
            if time.time() > deadline:
                raise RuntimeError(f"dnsperf did not finish within {timeout:.0f} s")
            if server_pid:
                samples.append((time.monotonic(), cpu_seconds(tree(server_pid)),
                                cpu_seconds([p.pid]), cpus_busy_seconds(args.server_cpus)))
            time.sleep(0.5)
    finally:
        procs.stop(p)
    with open(logpath) as f:
        text = f.read()
    stats = parse_dnsperf(text)
    if stats["completed"] is None:
        raise RuntimeError(f"dnsperf failed:\n{text[-2000:]}")
    return stats, samples


def utilisation(samples, server_cpus, client_cpus):
    """CPU use while the server was answering, without the first and last second (dnsperf
    reads its input at the start and waits out lost queries at the end): (server processes,
    dnsperf, the server CPUs' total busy time from /proc/stat, which also holds softirq work
    and anyone else's processes), each as a fraction of its CPU set."""
    active = [i for i in range(1, len(samples)) if samples[i][1] - samples[i - 1][1] > 0.01]
    if len(active) < 3:
        return None, None, None
    t0, t1 = samples[active[0] - 1][0] + 1.0, samples[active[-1]][0] - 1.0
    mid = [s for s in samples if t0 <= s[0] <= t1]
    if len(mid) < 2:
        mid = samples[active[0] - 1:active[-1] + 1]
    dt = mid[-1][0] - mid[0][0]
    if dt <= 0:
        return None, None, None
    return ((mid[-1][1] - mid[0][1]) / dt / server_cpus,
            (mid[-1][2] - mid[0][2]) / dt / client_cpus,
            (mid[-1][3] - mid[0][3]) / dt / server_cpus)


def latency_percentiles(logpath):
    lat = []
    with open(logpath) as f:
        for line in f:
            if line.startswith("> ") and not line.startswith("> T "):
                try:
                    lat.append(float(line.rsplit(None, 1)[1]))
                except (ValueError, IndexError):
                    pass
    if not lat:
        return None
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"n": len(lat), "p50": pick(0.50), "p99": pick(0.99), "p999": pick(0.999)}


# --------------------------------------------------------------------------------------------
# Instructions per query

def perf_works():
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    line = next((ln for ln in out.stderr.splitlines() if "instructions" in ln), "")
    return out.returncode == 0 and line[:1].isdigit()


def perf_instructions(procs, pids, logpath):
    """Start counting the server processes' instructions (user and kernel) with `perf stat`;
    returns a function that stops it and gives (total, user-space part)."""
    argv = ["perf", "stat", "-x,", "-e", "instructions:u,instructions:k",
            "-p", ",".join(map(str, pids))]
    p = procs.start(argv, logpath)

    def result():
        try:
            p.send_signal(signal.SIGINT)  # perf stat prints its counts on SIGINT
            p.wait(20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        procs.stop(p)
        counts = {}
        with open(logpath) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[0].isdigit() and fields[2].startswith("instructions"):
                    counts[fields[2]] = int(fields[0])
        user, kernel = counts.get("instructions:u"), counts.get("instructions:k")
        if user is None:
            return None, None
        return user + (kernel or 0), user
    return result


def callgrind_instructions(procs, args, name, zone, threads, workdir):
    """Instructions per query under callgrind, for a fixed number of queries from the same
    query file at a gentle rate (valgrind is ~50x slower). Ir counts every instruction of
    every server process, hot path and kernel-boundary glue alike, but not the kernel.

    Where every server process has a vgdb endpoint (knot, anyns: one process), load the zone,
    zero the counters, run the queries, dump, and divide the summed Ir by the answers.
    Forked children have no vgdb endpoint (nsd's server processes), so there it runs the
    server twice, with a few and with many queries, and divides the difference of the summed
    totals at exit by the difference in answers: loading and start-up cancel out."""
    n = args.callgrind_queries
    first = _callgrind_session(procs, args, name, zone, threads, workdir, n, differential=False)
    if first["method"] == "zero-dump":
        return first
    base = _callgrind_session(procs, args, name, zone, threads, workdir, max(1, n // 10),
                              differential=True)
    ir, q = first["ir"] - base["ir"], first["queries"] - base["queries"]
    if ir <= 0 or q <= 0:
        raise RuntimeError(f"differential callgrind gave {ir} Ir for {q} queries")
    return {"ir": ir, "queries": q, "per_query": ir / q, "processes": first["processes"],
            "method": "differential"}


def _callgrind_session(procs, args, name, zone, threads, workdir, nqueries, differential):
    tmp = tempfile.mkdtemp(prefix=f"anyns-bench-cg-{name}-", dir=workdir)
    port = free_port()
    argv = SERVER_ARGV[name](tmp, [zone], port, threads, args)
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out.%p",
          f"--vgdb-prefix={tmp}/vgdb", "--dump-line=no", "--compress-strings=no"]
    full = ["taskset", "-c", cpulist(args.server_cpus)] + vg + argv
    p = procs.start(full, os.path.join(tmp, "server.log"), cwd=tmp)
    try:
        deadline = time.time() + args.callgrind_load_timeout
        while not soa_ok(port, zone["origin"], 0.2):
            if p.poll() is not None:
                raise RuntimeError(f"{name} under valgrind exited: {tail(tmp, 'server.log')}")
            if time.time() > deadline:
                raise RuntimeError(f"{name} under valgrind: no SOA within "
                                   f"{args.callgrind_load_timeout} s")
            time.sleep(0.5)
        time.sleep(1.0)  # let post-load work (knot's background events) settle
        repin(p.pid, args.server_cpus)
        vpids = [q for q in tree(p.pid) if is_valgrind(q)]
        have_vgdb = all(any(fn.startswith(f"vgdb-from-vgdb-to-{q}-") for fn in os.listdir(tmp))
                        for q in vpids)
        zero_dump = have_vgdb and not differential
        if zero_dump:
            for q in vpids:
                run_quiet(["callgrind_control", f"--vgdb-prefix={tmp}/vgdb", "-z", str(q)], 120)
        qfile = os.path.join(tmp, "queries")
        with open(zone["queries"]) as src, open(qfile, "w") as dst:
            for i, line in enumerate(src):
                if i >= nqueries:
                    break
                dst.write(line)
        stats, _ = run_dnsperf(procs, args, port, qfile,
                               ["-n", "1", "-c", "1", "-q", "4", "-t", "10"],
                               os.path.join(tmp, "dnsperf.log"), timeout=1800)
        if not stats["completed"]:
            raise RuntimeError("no queries answered under valgrind")
        if zero_dump:
            before = set(os.listdir(tmp))
            for q in vpids:
                run_quiet(["callgrind_control", f"--vgdb-prefix={tmp}/vgdb", "-d", str(q)], 300)
            files = [fn for fn in set(os.listdir(tmp)) - before if fn.startswith("callgrind.out.")]
        else:
            procs.stop(p, timeout=300)  # callgrind writes its totals at exit
            files = [fn for fn in os.listdir(tmp) if re.fullmatch(r"callgrind\.out\.\d+", fn)]
        total = sum(callgrind_total(os.path.join(tmp, fn)) for fn in files)
        if not total:
            raise RuntimeError("callgrind gave no counts")
        return {"ir": total, "queries": stats["completed"], "per_query": total / stats["completed"],
                "processes": len(vpids), "method": "zero-dump" if zero_dump else "differential"}
    finally:
        procs.stop(p, timeout=300)
        if not args.keep_temp:
            shutil.rmtree(tmp, ignore_errors=True)


def is_valgrind(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "vgpreload_core" in f.read()
    except OSError:
        return False


def run_quiet(argv, timeout):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)


def callgrind_total(path):
    """The file's "totals:" line (written last), else its "summary:" line."""
    found = {}
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                found[line.split(":")[0]] = int(line.split()[1])
    return found.get("totals", found.get("summary", 0))


def tail(d, fn, n=1500):
    try:
        with open(os.path.join(d, fn), errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# One server on one zone

def bench_one(procs, args, name, zone, workdir):
    res = {"server": name, "zone": zone["origin"]}
    tmp = tempfile.mkdtemp(prefix=f"anyns-bench-{name}-", dir=workdir)
    try:
        port = free_port()
        argv = SERVER_ARGV[name](tmp, [zone], port, args.threads, args)
        full = ["taskset", "-c", cpulist(args.server_cpus)] + argv
        res["command"] = " ".join(full)
        log(f"{name} {zone['origin']}: starting: {res['command']}")
        t0 = time.monotonic()
        p = procs.start(full, os.path.join(tmp, "server.log"), cwd=tmp)
        deadline = t0 + args.load_timeout
        while True:
            tick = time.monotonic()
            if soa_ok(port, zone["origin"], 0.01):
                break
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail(tmp, 'server.log')}")
            if tick > deadline:
                raise RuntimeError(f"{name}: no SOA answer within {args.load_timeout} s:\n"
                                   f"{tail(tmp, 'server.log')}")
            time.sleep(max(0.0, 0.01 - (time.monotonic() - tick)))
        res["load_s"] = time.monotonic() - t0
        res["repinned_threads"] = repin(p.pid, args.server_cpus)
        res["rss_after_load_kb"], _ = memory(p.pid)
        log(f"{name} {zone['origin']}: answering after {res['load_s']:.2f} s, "
            f"{res['rss_after_load_kb'] / 1024:.0f} MiB")

        failures, sigs = sanity_check(port, zone["expect"])
        res["sanity_failures"], res["signatures"] = failures, sigs
        if failures and not args.force:
            log(f"{name} {zone['origin']}: SANITY FAILED, not timed:\n  " + "\n  ".join(failures[:10]))
            return res

        # Throughput at saturation; with --repeat, the best of several passes (other load on
        # the machine only ever lowers a pass).
        extra = ["-l", str(args.duration), "-c", str(args.clients), "-q", str(args.outstanding),
                 "-T", str(args.dnsperf_threads), "-t", "2"]
        res["dnsperf_command"] = " ".join(dnsperf_argv(args, port, zone["queries"], extra))
        passes = []
        for i in range(args.repeat):
            perf_result = None
            if args.instructions_method == "perf":
                perf_result = perf_instructions(procs, tree(p.pid),
                                                os.path.join(tmp, f"perf.{i}.log"))
            drops0 = udp_rcvbuf_errors()
            cpu0 = cpu_seconds(tree(p.pid))
            stats, samples = run_dnsperf(procs, args, port, zone["queries"], extra,
                                         os.path.join(tmp, f"dnsperf.{i}.log"),
                                         timeout=args.duration + 120, server_pid=p.pid)
            one = dict(stats)
            one["server_cpu_s"] = cpu_seconds(tree(p.pid)) - cpu0
            one["kernel_drops"] = udp_rcvbuf_errors() - drops0
            one["cpu_samples"] = [tuple(round(x, 3) for x in smp) for smp in samples]
            one["server_util"], one["client_util"], one["server_cpu_busy"] = utilisation(
                samples, len(args.server_cpus), len(args.client_cpus))
            if perf_result:
                ins, user = perf_result()
                if ins and stats["completed"]:
                    one["instructions_per_query"] = ins / stats["completed"]
                    one["user_instructions_per_query"] = user / stats["completed"]
            one["cpu_us_per_query"] = (one["server_cpu_s"] / stats["completed"] * 1e6
                                       if stats["completed"] else None)
            log(f"{name} {zone['origin']}: {stats['qps']:.0f} qps, lost {stats['lost']}, "
                f"server {fmt_pct(one['server_util'])} of its CPU (busy "
                f"{fmt_pct(one['server_cpu_busy'])}), dnsperf {fmt_pct(one['client_util'])}")
            passes.append(one)
        res.update(max(passes, key=lambda x: x["qps"] or 0))
        res["all_qps"] = [x["qps"] for x in passes]

        # Latency percentiles at a fixed rate, the same for every server.
        if args.latency_duration > 0:
            lat_extra = ["-l", str(args.latency_duration), "-c", str(args.clients), "-q",
                         str(args.outstanding), "-t", "2", "-Q", str(args.latency_qps), "-v"]
            res["latency_command"] = " ".join(dnsperf_argv(args, port, zone["queries"], lat_extra))
            lpath = os.path.join(tmp, "latency.log")
            lstats, _ = run_dnsperf(procs, args, port, zone["queries"], lat_extra, lpath,
                                    timeout=args.latency_duration + 120)
            res["latency"] = latency_percentiles(lpath)
            if res["latency"]:
                res["latency"]["qps"] = lstats["qps"]
                res["latency"]["lost"] = lstats["lost"]

        res["rss_end_kb"], res["peak_rss_kb"] = memory(p.pid)
        res["ok"] = True
        return res
    except Exception as e:  # one server's failure is reported, the others still run
        res["error"] = f"{type(e).__name__}: {e}" if not isinstance(e, RuntimeError) else str(e)
        log(f"{name} {zone['origin']}: ERROR {res['error']}")
        return res
    finally:
        procs.stop_all()
        if not args.keep_temp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")


# --------------------------------------------------------------------------------------------
# Report

def fmt_pct(x):
    return "?" if x is None else f"{100 * x:.0f}%"


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def fmt_mib(kb):
    return f"{kb / 1024:.1f} MiB" if kb else "–"


def fmt_num(x, unit=""):
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M{unit}"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k{unit}"
    return f"{x:.0f}{unit}"


def machine_facts():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = status_line("/proc/meminfo", "MemTotal")
    virt = ""
    if shutil.which("systemd-detect-virt"):
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory": mem, "virt": virt or "?"}


def status_line(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def compare_signatures(results):
    """Answers that differ between servers (same queries, same zone)."""
    diffs = []
    have = [r for r in results if r.get("signatures")]
    for i in range(1, len(have)):
        a, b = have[0], have[i]
        for key in a["signatures"]:
            if key in b["signatures"] and a["signatures"][key] != b["signatures"][key]:
                diffs.append(f"{key[0]} {key[1]}: {a['server']} {a['signatures'][key][:2]} "
                             f"/{len(a['signatures'][key][2])} answers vs {b['server']} "
                             f"{b['signatures'][key][:2]} /{len(b['signatures'][key][2])} answers")
    return diffs


def report(args, facts, versions, zones, all_results, instr_method, started, elapsed):
    L = []
    L.append(f"Run {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min, "
             f"`{' '.join(['python3', 'bench/run.py'] + sys.argv[1:])}`")
    L.append("")
    L.append(f"- Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, "
             f"kernel {facts['kernel']}, virtualisation: {facts['virt']}")
    L.append(f"- Pinning: servers on CPU {cpulist(args.server_cpus)}, dnsperf on CPU "
             f"{cpulist(args.client_cpus)} (taskset); loopback, UDP only, no EDNS")
    L.append(f"- Workers: {args.threads} for every server (anyns `--threads {args.threads}`; "
             f"knot `udp-workers: {args.threads}` + `tcp-workers: 1` + `background-workers: 1`; "
             f"nsd `server-count: {args.threads}`)")
    L.append(f"- Throughput: {args.duration} s per server and zone"
             f"{f', best of {args.repeat} passes' if args.repeat > 1 else ''}, dnsperf `-c {args.clients} "
             f"-q {args.outstanding} -T {args.dnsperf_threads} -t 2` (unanswered after 2 s = lost); "
             f"latency percentiles from a separate {args.latency_duration} s pass at a fixed "
             f"{args.latency_qps} qps (`-Q`, `-v`)")
    L.append(f"- Instructions/query: {instr_method}")
    L.append(f"- Load average at start: {LOADAVG_AT_START}")
    L.append("- Versions: " + "; ".join(f"{v}" for v in versions.values()) + f"; {dnsperf_version()}")
    L.append(f"- Query mix (gen_zones.py, seed {args.seed}): " +
             ", ".join(f"{v}% {k}" for k, v in gen_zones.MIX.items()))
    L.append("")
    for zkey, zone in zones.items():
        results = all_results.get(zkey, [])
        if not results:
            continue
        by = {r["server"]: r for r in results}
        knot, nsd = by.get("knot", {}), by.get("nsd", {})
        L.append(f"### {zone['origin']} ({zone['records']:,} RRs, {zone['delegations']:,} "
                 f"delegations, {zone['query_count']:,} queries in the file)")
        L.append("")
        L.append("| server | qps | ×knot | ×nsd | avg latency | lost | load time | RSS after load "
                 "| peak RSS | RSS ×knot | instr/query |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            if not r.get("ok"):
                why = "sanity check failed" if r.get("sanity_failures") else (r.get("error") or "failed")
                L.append(f"| {r['server']} | {why.splitlines()[0][:80]} |||||||||| ")
                continue
            lost = f"{r['lost']} ({100 * r['lost'] / max(1, r['sent']):.2f}%)"
            L.append("| " + " | ".join([
                r["server"], fmt_num(r["qps"]), fmt_ratio(r["qps"], knot.get("qps")),
                fmt_ratio(r["qps"], nsd.get("qps")),
                f"{r['avg_latency'] * 1e3:.2f} ms" if r.get("avg_latency") is not None else "–",
                lost, f"{r['load_s']:.2f} s", fmt_mib(r["rss_after_load_kb"]),
                fmt_mib(r["peak_rss_kb"]), fmt_ratio(r["peak_rss_kb"], knot.get("peak_rss_kb")),
                fmt_num(r.get("instructions_per_query"))]) + " |")
        L.append("")
        L.append("| server | server process CPU | server CPU busy | dnsperf CPU | CPU µs/query "
                 "| qps ÷ server CPU | p50 / p99 @ fixed rate | kernel drops | response codes "
                 "| avg response |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in results:
            if not r.get("ok"):
                continue
            lat = r.get("latency")
            latency = (f"{lat['p50'] * 1e6:.0f} / {lat['p99'] * 1e6:.0f} µs" if lat else "–")
            rc = ", ".join(f"{k} {100 * v / max(1, r['completed']):.1f}%"
                           for k, v in sorted(r["rcodes"].items()))
            L.append("| " + " | ".join([
                r["server"], fmt_pct(r.get("server_util")), fmt_pct(r.get("server_cpu_busy")),
                fmt_pct(r.get("client_util")),
                f"{r['cpu_us_per_query']:.2f}" if r.get("cpu_us_per_query") else "–",
                fmt_num(r["qps"] / r["server_util"]) if r.get("server_util") else "–",
                latency, str(r.get("kernel_drops", "–")), rc,
                f"{r['resp_size']} B" if r.get("resp_size") else "–"]) + " |")
        L.append("")
        notes = []
        for r in results:
            if r.get("ok") and r.get("server_cpu_busy") is not None:
                busy, own, client = r["server_cpu_busy"], r["server_util"], r["client_util"] or 0
                if busy < 0.9 and client < 0.9:
                    notes.append(f"{r['server']}: neither the server CPU (busy {fmt_pct(busy)}) "
                                 f"nor dnsperf ({fmt_pct(client)}) was saturated: other load on "
                                 f"the machine; qps is not comparable (rerun, --repeat)")
                elif busy < 0.9:
                    notes.append(f"{r['server']}: server CPU not saturated (busy {fmt_pct(busy)}, "
                                 f"dnsperf at {fmt_pct(client)}): qps is a lower bound")
                if busy - own > 0.15:
                    notes.append(f"{r['server']}: only {fmt_pct(own)} of the server CPU's "
                                 f"{fmt_pct(busy)} busy time was the server's own (the rest: "
                                 f"softirq work or other processes competing for the CPU)")
            if r.get("repinned_threads"):
                notes.append(f"{r['server']}: had moved {r['repinned_threads']} thread(s) off "
                             f"the server CPU set (own affinity); put back before timing")
            if r.get("sanity_failures"):
                notes.append(f"{r['server']}: {len(r['sanity_failures'])} sanity failures, e.g. "
                             + "; ".join(r["sanity_failures"][:3]))
            if r.get("error"):
                notes.append(f"{r['server']}: " + r["error"].splitlines()[0])
            if r.get("user_instructions_per_query"):
                notes.append(f"{r['server']}: {r['user_instructions_per_query']:.0f} of the "
                             f"instructions/query in user space")
            if r.get("callgrind"):
                c = r["callgrind"]
                notes.append(f"{r['server']}: callgrind {c['ir']:,} Ir for {c['queries']:,} "
                             f"queries, {c['processes']} process(es), {c['method']}")
            elif r.get("callgrind_error"):
                notes.append(f"{r['server']}: callgrind failed: {r['callgrind_error'].splitlines()[0]}")
        diffs = compare_signatures(results)
        checked = max((len(r.get("signatures", {})) for r in results), default=0)
        L.append(f"Sanity: {checked} sample queries checked against their expected outcome on "
                 f"every server; answers that differ between servers: {len(diffs)}")
        for d in diffs[:5]:
            L.append(f"  - {d}")
        if "anyns" in by and by["anyns"].get("ok") and knot.get("ok") and nsd.get("ok"):
            a = by["anyns"]

            def saturated(r):
                return (r.get("server_cpu_busy") or 0) >= 0.9

            checks = []
            for peer in (knot, nsd):
                label = f"qps ≥ {peer['server']}"
                if saturated(a) and saturated(peer):
                    checks.append((label, a["qps"] >= peer["qps"]))
                else:
                    # The load generator ran out first: qps says little; CPU time per
                    # answer is what the server would scale with.
                    checks.append((f"{label} (not saturated, by CPU µs/query instead)",
                                   a["cpu_us_per_query"] <= peer["cpu_us_per_query"]))
            checks.append(("load time ≤ knot", a["load_s"] <= knot["load_s"]))
            if a.get("instructions_per_query") and knot.get("instructions_per_query"):
                checks.append(("instr/query ≤ knot",
                               a["instructions_per_query"] <= knot["instructions_per_query"]))
            if zkey == "large":
                checks.append(("peak RSS ≤ knot", a["peak_rss_kb"] <= knot["peak_rss_kb"]))
            L.append("Targets: " + ", ".join(f"{n} {'✔' if ok else '✘'}" for n, ok in checks))
        for n in notes:
            L.append(f"- {n}")
        L.append("")
        L.append("Commands:")
        L.append("```")
        for r in results:
            for key in ("command", "dnsperf_command", "latency_command"):
                if r.get(key):
                    L.append(r[key])
        L.append("```")
        L.append("")
    return "\n".join(L)


def dnsperf_version():
    try:
        out = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, timeout=10)
        m = re.search(r"Version ([\d.]+)", out.stdout + out.stderr)
        return f"dnsperf {m.group(1)}" if m else "dnsperf ?"
    except (OSError, subprocess.TimeoutExpired):
        return "dnsperf ?"


def update_results(body):
    path = os.path.join(HERE, "RESULTS.md")
    with open(path) as f:
        text = f.read()
    section = "## Latest run\n\n" + body.strip() + "\n"
    m = re.search(r"^## Latest run\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    text = text[:m.start()] + section + ("\n" + text[m.end():] if m.end() < len(text) else "") \
        if m else text.rstrip() + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
    log(f"updated {path}")


# --------------------------------------------------------------------------------------------

def ensure_zones(args):
    mpath = os.path.join(args.out, "manifest.json")
    want = {"seed": args.seed, "large_records": args.large_records,
            "generator_version": gen_zones.GENERATOR_VERSION}
    try:
        with open(mpath) as f:
            m = json.load(f)
        if all(m.get(k) == v for k, v in want.items()) and m.get("mix") == gen_zones.MIX and \
                all(os.path.exists(z[k]) for z in m["zones"].values()
                    for k in ("zonefile", "queries", "expect")):
            return m
    except (OSError, ValueError, KeyError):
        pass
    log("generating zones and query files (gen_zones.py)")
    return gen_zones.generate(args.out, args.seed, args.large_records, 100_000, 1_000_000)


def ensure_anyns(args):
    if os.path.exists(args.anyns_bin):
        return
    if args.no_build:
        raise SystemExit(f"{args.anyns_bin} missing (build with `cargo build --release`)")
    log("building anyns: cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, timeout=3600)
    if not os.path.exists(args.anyns_bin):
        raise SystemExit(f"{args.anyns_bin} still missing after cargo build")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="anyns vs Knot DNS vs NSD (see the top of this file)")
    p.add_argument("--servers", default=",".join(ALL_SERVERS),
                   help="comma-separated subset of anyns,knot,nsd (default: all)")
    p.add_argument("--zones", default="small,large", help="comma-separated subset of small,large")
    p.add_argument("--duration", type=int, default=20, help="seconds of dnsperf per server and zone")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 5 s throughput, 2 s latency pass, callgrind on the small zone only")
    n = os.cpu_count() or 1
    p.add_argument("--server-cpus", default=str(n - 1) if n > 1 else "0",
                   help="CPUs for the server under test (default: the last one)")
    p.add_argument("--client-cpus", default=",".join(map(str, range(n - 1))) if n > 1 else "0",
                   help="CPUs for dnsperf (default: all the others)")
    p.add_argument("--threads", type=int, default=None,
                   help="workers per server (default: number of server CPUs)")
    p.add_argument("--clients", type=int, default=None, help="dnsperf -c (default: 8 × threads, min 16)")
    p.add_argument("--repeat", type=int, default=1,
                   help="throughput passes per server and zone; the best one is reported")
    p.add_argument("--outstanding", type=int, default=512, help="dnsperf -q")
    p.add_argument("--dnsperf-threads", type=int, default=None,
                   help="dnsperf -T (default: number of client CPUs)")
    p.add_argument("--latency-qps", type=int, default=20000,
                   help="fixed rate of the latency-percentile pass (same for every server)")
    p.add_argument("--latency-duration", type=int, default=None,
                   help="seconds of the latency pass (default 5, quick 2; 0 skips it)")
    p.add_argument("--instructions", default="auto", choices=("auto", "perf", "callgrind", "none"),
                   help="how to count instructions/query (auto: perf if the counters work, "
                        "else callgrind)")
    p.add_argument("--callgrind-queries", type=int, default=20000)
    p.add_argument("--callgrind-zones", default=None,
                   help="zones to run callgrind on (default: all; quick: small)")
    p.add_argument("--callgrind-load-timeout", type=int, default=1800)
    p.add_argument("--load-timeout", type=int, default=600, help="seconds to wait for a zone load")
    p.add_argument("--anyns-bin", default=os.path.join(REPO, "target", "release", "anyns"))
    p.add_argument("--no-build", action="store_true", help="never run cargo build")
    p.add_argument("--force", action="store_true", help="time servers even if the sanity check fails")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--large-records", type=int, default=1_000_000)
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    p.add_argument("--keep-temp", action="store_true")
    p.add_argument("--update-results", action="store_true",
                   help='rewrite the "Latest run" section of bench/RESULTS.md')
    a = p.parse_args(argv)
    a.servers = [s for s in a.servers.split(",") if s]
    for s in a.servers:
        if s not in ALL_SERVERS:
            p.error(f"unknown server {s}")
    a.zone_keys = [z for z in a.zones.split(",") if z]
    for z in a.zone_keys:
        if z not in ("small", "large"):
            p.error(f"unknown zone {z}")
    a.server_cpus = [int(c) for c in a.server_cpus.split(",")]
    a.client_cpus = [int(c) for c in a.client_cpus.split(",")]
    if set(a.server_cpus) & set(a.client_cpus):
        log("warning: server and client CPU sets overlap")
    if a.quick:
        a.duration = 5 if a.duration == 20 else a.duration
    if a.latency_duration is None:
        a.latency_duration = 2 if a.quick else 5
    if a.callgrind_zones is None:
        a.callgrind_zones = "small" if a.quick else "small,large"
    a.callgrind_zones = [z for z in a.callgrind_zones.split(",") if z]
    a.threads = a.threads or len(a.server_cpus)
    a.clients = a.clients or max(16, 8 * a.threads)
    a.dnsperf_threads = a.dnsperf_threads or len(a.client_cpus)
    a.anyns_bin = os.path.abspath(a.anyns_bin)
    return a


LOADAVG_AT_START = "?"


def main():
    args = parse_args()
    if os.geteuid() != 0:
        log("warning: not root; nsd and knot may fail to start")
    for tool in ("knotd", "nsd", "dnsperf", "taskset"):
        if not shutil.which(tool) and (tool not in ("knotd", "nsd") or
                                       {"knotd": "knot", "nsd": "nsd"}[tool] in args.servers):
            raise SystemExit(f"{tool} not found: run bench/setup.sh")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global LOADAVG_AT_START
    with open("/proc/loadavg") as f:
        LOADAVG_AT_START = " ".join(f.read().split()[:3])
    started = datetime.datetime.utcnow()
    t_start = time.time()
    manifest = ensure_zones(args)
    zones = {k: manifest["zones"][k] for k in args.zone_keys}
    if "anyns" in args.servers:
        ensure_anyns(args)

    if args.instructions == "auto":
        args.instructions_method = "perf" if perf_works() else "callgrind"
    else:
        args.instructions_method = args.instructions
    if args.instructions_method == "perf":
        instr_method = ("`perf stat -e instructions:u,instructions:k -p <server pids>` over the "
                        "whole throughput run, user + kernel, ÷ answers (user-space part in "
                        "the notes)")
    elif args.instructions_method == "callgrind":
        instr_method = (f"callgrind (no hardware counters here): server under valgrind, "
                        f"{args.callgrind_queries} queries from the same file at ≤4 outstanding; "
                        f"summed Ir of all server processes ÷ answers, counters zeroed after "
                        f"the load (zero-dump) or, for forked servers, the difference of a run "
                        f"with {max(1, args.callgrind_queries // 10)} queries (differential); "
                        f"zones: {', '.join(args.callgrind_zones)}")
    else:
        instr_method = "not measured"

    versions = {s: server_version(s, args) for s in args.servers}
    workdir = tempfile.mkdtemp(prefix="anyns-bench-")
    procs = Procs()
    all_results = {}
    try:
        for zkey, zone in zones.items():
            for name in args.servers:
                r = bench_one(procs, args, name, zone, workdir)
                if (r.get("ok") and args.instructions_method == "callgrind"
                        and zkey in args.callgrind_zones):
                    log(f"{name} {zone['origin']}: callgrind ({args.callgrind_queries} queries)")
                    try:
                        c = callgrind_instructions(procs, args, name, zone, args.threads, workdir)
                        r["callgrind"] = c
                        r["instructions_per_query"] = c["per_query"]
                        log(f"{name} {zone['origin']}: {c['per_query']:.0f} instructions/query")
                    except Exception as e:  # noqa: BLE001 - reported in the table
                        r["callgrind_error"] = str(e)
                        log(f"{name} {zone['origin']}: callgrind failed: {e}")
                all_results.setdefault(zkey, []).append(r)
    finally:
        procs.stop_all()
        if not args.keep_temp:
            shutil.rmtree(workdir, ignore_errors=True)

    body = report(args, machine_facts(), versions, zones, all_results, instr_method, started,
                  time.time() - t_start)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("# anyns vs Knot DNS vs NSD\n\n" + body.replace("\n### ", "\n## ") + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({k: [{kk: vv for kk, vv in r.items() if kk != "signatures"} for r in v]
                   for k, v in all_results.items()}, f, indent=2, default=str)
    print(body)
    if args.update_results:
        update_results(body)
    failed = [r for v in all_results.values() for r in v if not r.get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every process started was stopped")
        sys.exit(130)
