#!/usr/bin/env python3
"""Zone transfers of a 1,000,000-record zone: anyns vs Knot DNS as the secondary.

    python3 bench/xfr.py                    # as root, from the repository root
    python3 bench/xfr.py --update-results   # also write the section in bench/RESULTS.md

A Knot DNS primary serves bench/out/large.bench.zone (journal of changes, zone-file
differences on reload, NOTIFY to the secondary). Each secondary in turn (a fresh primary
for each, so both see the same conditions) is started with no data:

- AXFR-in: from starting the secondary until it answers the SOA query with the primary's
  serial (polled every 20 ms); then its VmHWM (peak RSS).
- IXFR-apply: ~100 records change in a copy of the zone file (50 A records get a new address,
  50 TXT records are added, the serial goes up by one), `knotc zone-reload`; the time from the
  reload command until the secondary answers with the new serial (and, separately, from the
  moment the primary itself serves the new serial); then VmHWM again.
- Transfer kind: from the secondary's log (anyns: "full transfer received" / "IXFR received";
  Knot: "AXFR, incoming" / "IXFR, incoming").

The primary runs on the first CPU, the secondary on the last (taskset). Every wait has a
timeout, every process is stopped by its process-group id, temp dirs are removed.
"""

import argparse
import datetime
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from run import (Procs, free_port, log, machine_facts, query, repin, status_kb)  # noqa: E402

ORIGIN = "large.bench."
SECTION = "## Zone transfers (1M records): anyns vs Knot as secondary"


def soa_serial(port, timeout=0.2):
    try:
        r = query(port, ORIGIN, "SOA", timeout)
    except Exception:  # noqa: BLE001 (timeouts, refusals, half-loaded servers)
        return None
    if r["rcode"] != "NOERROR" or not r["aa"]:
        return None
    for _, t, _, rdata in r["answer"]:
        if t == "SOA":
            return int(rdata.split()[2])
    return None


def wait_serial(port, serial, timeout, pin=None, also_port=None):
    """Poll every 20 ms until `port` answers with `serial`. Returns (seconds, seconds until
    also_port first answered with it or None)."""
    t0 = time.monotonic()
    also = None
    while True:
        now = time.monotonic()
        if now - t0 > timeout:
            raise TimeoutError(f"127.0.0.1:{port} did not reach serial {serial} in {timeout} s")
        if pin:
            repin(*pin)
        if also_port and also is None and soa_serial(also_port) == serial:
            also = time.monotonic() - t0
        if soa_serial(port) == serial:
            return time.monotonic() - t0, also
        time.sleep(max(0.0, 0.02 - (time.monotonic() - now)))


def zone_serial(path):
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) > 3 and parts[1] == "SOA":
                return int(parts[4])
    raise ValueError(f"no SOA in {path}")


def write_changed_zone(src, dst, n_modify=50, n_add=50):
    """Copy src to dst with n_modify A records changed, n_add TXT records added and the serial
    up by one. Returns the new serial."""
    serial = None
    modified = 0
    with open(src) as fi, open(dst, "w") as fo:
        for i, line in enumerate(fi):
            parts = line.rstrip("\n").split("\t")
            if serial is None and len(parts) >= 3 and parts[1] == "SOA":
                f = parts[2].split()
                serial = int(f[2]) + 1
                f[2] = str(serial)
                line = "\t".join(parts[:2] + [" ".join(f)]) + "\n"
            elif modified < n_modify and i > 100_000 and i % 1000 == 0 and len(parts) == 3 \
                    and parts[1] == "A" and not parts[0].startswith("ns"):
                line = f"{parts[0]}\tA\t203.0.113.{modified + 1}\n"
                modified += 1
            fo.write(line)
        for j in range(n_add):
            fo.write(f'xfrbench-{j}\tTXT\t"added by bench/xfr.py {j}"\n')
    if serial is None or modified < n_modify:
        raise ValueError(f"could not change {n_modify} A records in {src}")
    return serial, modified + n_add


def knot_common(tmp, port):
    os.makedirs(os.path.join(tmp, "db"), exist_ok=True)
    return f"""server:
    rundir: "{tmp}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{tmp}/db"
log:
  - target: stderr
    any: info
control:
    listen: "{tmp}/knot.sock"
"""


def primary_conf(tmp, port, zonefile, sec_port):
    conf = os.path.join(tmp, "knot.conf")
    with open(conf, "w") as f:
        f.write(knot_common(tmp, port) + f"""remote:
  - id: secondary
    address: 127.0.0.1@{sec_port}
acl:
  - id: xfr
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: "{tmp}"
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    semantic-checks: off
zone:
  - domain: {ORIGIN}
    file: "{zonefile}"
    notify: secondary
    acl: xfr
""")
    return conf


def knot_secondary_argv(tmp, port, primary_port, args):
    conf = os.path.join(tmp, "knot.conf")
    with open(conf, "w") as f:
        f.write(knot_common(tmp, port) + f"""remote:
  - id: primary
    address: 127.0.0.1@{primary_port}
acl:
  - id: notify
    address: 127.0.0.1
    action: notify
template:
  - id: default
    storage: "{tmp}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: {args.knot_journal}
    semantic-checks: off
zone:
  - domain: {ORIGIN}
    file: "{tmp}/never-written.zone"
    master: primary
    acl: notify
""")
    return ["knotd", "-c", conf]


def anyns_secondary_argv(tmp, port, primary_port, args):
    control = free_port()
    conf = os.path.join(tmp, "node.toml")
    with open(conf, "w") as f:
        f.write(f"""version = 1

[node]
site = "bench"
node = "xfr-1"

[server]
listen = ["127.0.0.1:{port}"]

[control]
listen = "127.0.0.1:{control}"

[transfer]
store = "{tmp}/store"

[[zone]]
name = "{ORIGIN.rstrip('.')}"
primaries = ["127.0.0.1:{primary_port}"]
""")
    args._anyns_control = f"127.0.0.1:{control}"
    return [args.anyns_bin, "serve", "--config", conf, "--threads", str(args.threads)]


def anyns_status_serial(args):
    import json
    try:
        out = subprocess.run([args.anyns_bin, "status", "--json", "--control", args._anyns_control],
                             capture_output=True, text=True, timeout=10).stdout
        for z in json.loads(out).get("zones", []):
            if z.get("name", "").rstrip(".") == ORIGIN.rstrip("."):
                return z.get("serial"), z.get("last_error")
    except Exception as e:  # noqa: BLE001
        return None, f"status failed: {e}"
    return None, "zone not in status"


def transfer_kinds(name, logpath):
    with open(logpath, errors="replace") as f:
        text = f.read()
    kinds = []
    if name == "anyns":
        for line in text.splitlines():
            if "IXFR received" in line:
                kinds.append("IXFR")
            elif "full transfer received" in line:
                m = re.search(r"kind=(\S+)", line)
                kinds.append(m.group(1).upper() if m else "AXFR")
    else:
        for line in text.splitlines():
            m = re.search(r"\b(AXFR|IXFR), incoming, remote [^,]+, (finished|started)", line)
            if m and m.group(2) == "finished":
                kinds.append(m.group(1))
            elif "fallback to AXFR" in line:
                kinds.append("IXFR->AXFR fallback")
    return kinds


def bench_secondary(procs, name, args, cpus_primary, cpus_secondary):
    tmp = tempfile.mkdtemp(prefix=f"xfr-{name}-")
    ptmp = os.path.join(tmp, "primary")
    stmp = os.path.join(tmp, "secondary")
    os.makedirs(ptmp)
    os.makedirs(stmp)
    res = {"server": name}
    primary = secondary = None
    try:
        pport, sport = free_port(), free_port()
        while sport == pport:
            sport = free_port()
        zonefile = os.path.join(ptmp, "large.bench.zone")
        shutil.copyfile(args.zone, zonefile)
        serial0 = zone_serial(zonefile)
        conf = primary_conf(ptmp, pport, zonefile, sport)
        plog = os.path.join(tmp, "primary.log")
        primary = procs.start(["taskset", "-c", cpus_primary, "knotd", "-c", conf], plog)
        log(f"{name}: primary Knot on 127.0.0.1:{pport} loading {args.zone}")
        t, _ = wait_serial(pport, serial0, args.timeout, pin=(primary.pid, set(map(int, cpus_primary.split(",")))))
        log(f"{name}: primary serves serial {serial0} after {t:.1f} s")

        slog = os.path.join(tmp, "secondary.log")
        argv = (anyns_secondary_argv if name == "anyns" else knot_secondary_argv)(stmp, sport, pport, args)
        env = dict(os.environ, RUST_LOG="info") if name == "anyns" else None
        scpus = set(map(int, cpus_secondary.split(",")))
        logf = open(slog, "ab")
        secondary = subprocess.Popen(["taskset", "-c", cpus_secondary] + argv, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=env)
        logf.close()
        procs.live.append(secondary)
        res["command"] = " ".join(shlex.quote(a) for a in argv)
        log(f"{name}: secondary started (pid {secondary.pid}) on 127.0.0.1:{sport}")
        res["axfr_s"], _ = wait_serial(sport, serial0, args.timeout, pin=(secondary.pid, scpus))
        time.sleep(0.2)
        res["hwm_axfr_kb"] = status_kb(secondary.pid, "VmHWM")
        res["rss_axfr_kb"] = status_kb(secondary.pid, "VmRSS")
        log(f"{name}: AXFR-in {res['axfr_s']:.2f} s, VmHWM {res['hwm_axfr_kb'] / 1024:.0f} MiB")
        # Let the first transfer settle (stores written, Knot's journal flushed).
        time.sleep(args.settle)

        changed = os.path.join(ptmp, "large.bench.changed.zone")
        serial1, nchanged = write_changed_zone(args.zone, changed)
        os.replace(changed, zonefile)
        res["changed"] = nchanged
        t0 = time.monotonic()
        subprocess.run(["knotc", "-s", os.path.join(ptmp, "knot.sock"), "zone-reload", ORIGIN],
                       capture_output=True, timeout=60, check=True)
        total, primary_t = wait_serial(sport, serial1, args.timeout, pin=(secondary.pid, scpus),
                                       also_port=pport)
        res["ixfr_s"] = time.monotonic() - t0
        res["ixfr_after_primary_s"] = (res["ixfr_s"] - primary_t) if primary_t is not None else None
        res["primary_reload_s"] = primary_t
        time.sleep(0.2)
        res["hwm_ixfr_kb"] = status_kb(secondary.pid, "VmHWM")
        res["rss_ixfr_kb"] = status_kb(secondary.pid, "VmRSS")
        log(f"{name}: IXFR-apply {res['ixfr_s']:.2f} s from reload "
            f"({res['ixfr_after_primary_s'] if res['ixfr_after_primary_s'] is not None else float('nan'):.2f} s "
            f"after the primary served it), VmHWM {res['hwm_ixfr_kb'] / 1024:.0f} MiB")
        if name == "anyns":
            res["status_serial"], res["status_error"] = anyns_status_serial(args)
        time.sleep(0.5)
        res["kinds"] = transfer_kinds(name, slog)
        res["serials"] = (serial0, serial1)
        if args.keep_logs:
            for fn in ("primary.log", "secondary.log"):
                shutil.copyfile(os.path.join(tmp, fn), os.path.join(args.out, f"xfr-{name}-{fn}"))
        return res
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"{name}: FAILED: {res['error']}")
        for fn in ("primary.log", "secondary.log"):
            p = os.path.join(tmp, fn)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    log(f"--- {fn} (tail)\n" + "".join(f.readlines()[-15:]))
        return res
    finally:
        for p in (secondary, primary):
            if p is not None:
                procs.stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def mib(kb):
    return f"{kb / 1024:.0f} MiB" if kb else "—"


def secs(x):
    return f"{x:.2f}" if isinstance(x, (int, float)) else "—"


def report(args, results, facts, versions, started, cmd):
    lines = [f"Run {started} UTC on {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, "
             f"kernel {facts['kernel']}, virt {facts['virt']}; {versions}.", "",
             f"Command: `{cmd}`", "",
             f"Zone `{ORIGIN}` from `{os.path.relpath(args.zone, REPO)}` (1,000,000 records). Primary: "
             "Knot DNS (journal of changes, `zonefile-load: difference`, NOTIFY to the secondary), "
             f"a fresh one for each secondary, on CPU {args.primary_cpus}; secondary on CPU "
             f"{args.secondary_cpus}. IXFR: 50 A records changed + 50 TXT added, serial +1, "
             "`knotc zone-reload`.", "",
             "| server | AXFR-in s | peak RSS after AXFR | IXFR-apply s (from reload / after primary serves it) "
             "| peak RSS after IXFR | transfer kind seen |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        if "error" in r and "ixfr_s" not in r:
            lines.append(f"| {r['server']} | {secs(r.get('axfr_s'))} | {mib(r.get('hwm_axfr_kb'))} | — | — | "
                         f"failed: {r['error']} |")
            continue
        kinds = " then ".join(r.get("kinds") or ["(none logged)"])
        lines.append(f"| {r['server']} | {secs(r['axfr_s'])} | {mib(r['hwm_axfr_kb'])} | "
                     f"{secs(r['ixfr_s'])} / {secs(r['ixfr_after_primary_s'])} | {mib(r['hwm_ixfr_kb'])} | "
                     f"{kinds} |")
    lines.append("")
    for r in results:
        if "primary_reload_s" in r:
            extra = ""
            if r["server"] == "anyns":
                extra = f"; `anyns status --json` serial {r.get('status_serial')}, last_error {r.get('status_error')}"
            lines.append(f"- {r['server']}: serials {r['serials'][0]} → {r['serials'][1]}; the primary served "
                         f"the new serial {secs(r['primary_reload_s'])} s after the reload command; RSS now "
                         f"{mib(r['rss_ixfr_kb'])}{extra}; secondary: `{r['command']}`")
    lines.append("- Peak RSS is VmHWM of the secondary process. Knot secondary: `zonefile-sync: -1`, "
                 f"`journal-content: {args.knot_journal}`, `zonefile-load: none`; anyns writes each "
                 "version to its `[transfer] store`. Times are polled every 20 ms (±20 ms).")
    return "\n".join(lines) + "\n"


def update_results(body):
    path = os.path.join(HERE, "RESULTS.md")
    with open(path) as f:
        text = f.read()
    section = SECTION + "\n\n" + body.strip() + "\n"
    i = text.find("\n" + SECTION + "\n")
    if i >= 0:
        m = re.search(r"^## ", text[i + 1 + len(SECTION):], flags=re.M)
        end = i + 1 + len(SECTION) + m.start() if m else len(text)
        rest = text[end:]
        text = text[:i + 1] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip() + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
    log(f"updated {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", default="anyns,knot")
    ap.add_argument("--zone", default=os.path.join(HERE, "out", "large.bench.zone"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--anyns-bin", default=os.path.join(REPO, "target", "release", "anyns"))
    ap.add_argument("--threads", type=int, default=1, help="anyns --threads (UDP workers)")
    ap.add_argument("--knot-journal", default="changes", choices=("none", "changes", "all"))
    ap.add_argument("--timeout", type=float, default=600, help="limit of every wait, seconds")
    ap.add_argument("--settle", type=float, default=2.0, help="pause between AXFR and the change")
    ncpu = os.cpu_count() or 1
    ap.add_argument("--primary-cpus", default="0")
    ap.add_argument("--secondary-cpus", default=str(ncpu - 1))
    ap.add_argument("--keep-logs", action="store_true", help="copy the logs to out/")
    ap.add_argument("--update-results", action="store_true")
    args = ap.parse_args()
    cmd = "python3 bench/xfr.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    os.chdir(REPO)
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(args.zone):
        log("generating zones: python3 bench/gen_zones.py")
        subprocess.run([sys.executable, os.path.join(HERE, "gen_zones.py")], check=True, timeout=1800)
    if not os.path.exists(args.anyns_bin):
        log("building anyns: cargo build --release")
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, timeout=3600)
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    facts = machine_facts()
    kv = subprocess.run(["knotd", "-V"], capture_output=True, text=True, timeout=10).stdout.strip()
    av = subprocess.run([args.anyns_bin, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    versions = f"{av}, {kv.replace('knotd (Knot DNS), version', 'Knot DNS')}"
    procs = Procs()
    results = []
    try:
        for name in args.servers.split(","):
            results.append(bench_secondary(procs, name.strip(), args, args.primary_cpus,
                                           args.secondary_cpus))
    finally:
        procs.stop_all()
    body = report(args, results, facts, versions, started, cmd)
    path = os.path.join(args.out, "xfr.md")
    with open(path, "w") as f:
        f.write("# " + SECTION[3:] + "\n\n" + body)
    print(body)
    log(f"wrote {path}")
    if args.update_results:
        update_results(body)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every process started was stopped")
        sys.exit(130)
