#!/usr/bin/env python3
"""The anyns multi-site lab: three anycast sites, each a node (DNS server + BGP speaker) behind a
BIRD 2 router, and clients, all in network namespaces named `anyns-lab-*` on this machine, with
no link to any outside network.

    lab.py up [--speaker exabgp|anyns]    build (after cleaning any stale lab) and wait until converged
    lab.py down                           stop what the lab started (by PID) and delete its namespaces
    lab.py status                         sessions, VIP routes, which site each client reaches
    lab.py check [--down a,b]             exit 0 iff the lab is in the expected state
    lab.py wait  [--down a,b] [--timeout] wait until `check` passes
    lab.py fault   --site a --kind dns-stop|kill|freeze|drain
    lab.py recover --site a --kind dns-stop|kill|freeze|drain
    lab.py measure --scenario dns-stop|kill|freeze|drain|return|all [--speaker ...]

Runs as root. Standard library only; needs iproute2, bird2, nsd, dnsutils, and exabgp for the
reference speaker (lab/setup.sh installs them). See lab/README.md.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import analyze
import anyns_config
import templates
import topology as topo

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parent
STATE = Path(os.environ.get("ANYNS_LAB_STATE", "/run/anyns-lab"))
OUT = LAB_DIR / "out"
FAILOVER_MD = LAB_DIR / "out" / "RESULTS-failover.md"
ZONEFILE = REPO / "zones" / "example.test.zone"
SPEAKERS = ("exabgp", "anyns")
FAULT_KINDS = ("dns-stop", "kill", "freeze", "drain")
SCENARIOS = ("dns-stop", "kill", "freeze", "drain", "return")
EXABGP_PYTHON = "/usr/bin/python3"  # Debian's python3, where the exabgp package lives


# Daemons and ip/sysctl live in sbin, which a non-login shell's PATH (CI's) may lack.
os.environ["PATH"] = os.pathsep.join(
    [os.environ.get("PATH", "/usr/bin:/bin")]
    + [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in os.environ.get("PATH", "").split(os.pathsep)])


class LabError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- shell helpers

def run(argv: list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> exit {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def nsrun(ns: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    return run(["ip", "netns", "exec", ns] + argv, **kw)


def which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(Path(d) / name) for d in ("/usr/sbin", "/sbin", "/usr/local/sbin")
         if (Path(d) / name).is_file()), None)


# ---------------------------------------------------------------- processes (by PID only)

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def _alive(pid: int, start: int | None = None) -> bool:
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start is None or st[1] == start


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _pidfile(name: str) -> Path:
    return STATE / "pids" / f"{name}.json"


def spawn(name: str, ns: str, argv: list[str], env: dict | None = None) -> int:
    (STATE / "pids").mkdir(parents=True, exist_ok=True)
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    logf = open(STATE / "logs" / f"{name}.log", "ab")
    logf.write(f"\n==== {time.strftime('%F %T')} start: {' '.join(argv)}\n".encode())
    logf.flush()
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=subprocess.STDOUT, env=full_env,
                         start_new_session=True)
    logf.close()
    st = _stat(p.pid)
    _pidfile(name).write_text(json.dumps(
        {"pid": p.pid, "start": st[1] if st else None, "ns": ns, "argv": argv}))
    return p.pid


def recorded(name: str) -> tuple[int, int | None] | None:
    try:
        d = json.loads(_pidfile(name).read_text())
    except (OSError, ValueError):
        return None
    return d["pid"], d.get("start")


def pid_of(name: str) -> int | None:
    r = recorded(name)
    if r and _alive(*r):
        return r[0]
    return None


def descendants(pid: int) -> list[int]:
    """pid and all its descendants (via /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue  # gone
        for task in tasks:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def netns_pids(ns: str) -> list[int]:
    p = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_pids(pids: list[int], grace: float = 3.0) -> None:
    """SIGTERM (and SIGCONT, in case a fault froze them), then SIGKILL what is left."""
    pids = [p for p in pids if _alive(p)]
    signal_pids(pids, signal.SIGTERM)
    signal_pids(pids, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap()
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return
        time.sleep(0.05)
    signal_pids(pids, signal.SIGKILL)
    time.sleep(0.1)
    _reap()


def stop_recorded(name: str) -> None:
    r = recorded(name)
    if r and _alive(*r):
        stop_pids(descendants(r[0]))
    _pidfile(name).unlink(missing_ok=True)


# ---------------------------------------------------------------- one lab at a time

LOCK_PATH = STATE.parent / f"{STATE.name}.lock"
LOCK_ENV = "ANYNS_LAB_LOCK_TOKEN"
_lock_fd = None


def _lock_holder() -> dict:
    try:
        return json.loads(LOCK_PATH.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def acquire_lock(what: str, timeout: float, token: str = "") -> None:
    """Takes the machine-wide lab lock (flock) for the rest of this process. The namespaces
    have fixed names, so two labs (a test run and a measurement, say) must not interleave.
    A process whose ANYNS_LAB_LOCK_TOKEN matches the holder's (a `hold-lock` session, as the
    Rust test keeps) runs under that session's lock."""
    global _lock_fd
    if _lock_fd is not None:
        return
    holder = _lock_holder()
    env_token = os.environ.get(LOCK_ENV, "")
    if env_token and holder.get("token") == env_token and _alive(holder.get("pid", 0)):
        return
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _lock_holder()
            if time.monotonic() > deadline:
                os.close(fd)
                raise LabError(f"the lab is in use (pid {holder.get('pid')}: {holder.get('what')}); "
                               f"gave up after {timeout:.0f} s")
            if not said:
                log(f"waiting for the lab lock (pid {holder.get('pid')}: {holder.get('what')})")
                said = True
            time.sleep(0.5)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "what": what, "token": token}).encode())
    _lock_fd = fd


# ---------------------------------------------------------------- down / up

def our_namespaces() -> list[str]:
    p = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(topo.PREFIX)]


def down() -> None:
    pid_dir = STATE / "pids"
    if pid_dir.is_dir():
        # All at once: a node that drains on SIGTERM takes its grace period in parallel.
        pids = []
        for f in sorted(pid_dir.glob("*.json")):
            r = recorded(f.stem)
            if r and _alive(*r):
                pids += descendants(r[0])
            f.unlink(missing_ok=True)
        stop_pids(pids)
    for ns in our_namespaces():
        # Anything still inside one of our namespaces was started by the lab (the daemons'
        # own children, a probe): stop it by PID before the namespace goes.
        leftovers = netns_pids(ns)
        if leftovers:
            stop_pids(leftovers)
        run(["ip", "netns", "del", ns], check=False)
    for sub in ("pids", "faults", "run"):
        shutil.rmtree(STATE / sub, ignore_errors=True)
    (STATE / "lab.json").unlink(missing_ok=True)
    log("down: no lab namespaces left" if not our_namespaces() else "down: namespaces remain!")


def build_network() -> None:
    for ns in topo.all_namespaces():
        run(["ip", "netns", "add", ns])
        nsrun(ns, ["ip", "link", "set", "lo", "up"])
        nsrun(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                   "net.ipv6.conf.default.accept_dad=0"])
    for site in topo.SITES.values():
        nsrun(site.router_ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                               "net.ipv6.conf.all.forwarding=1"])
        r, n = site.router_ns, site.node_ns
        run(["ip", "link", "add", "node", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", n])
        nsrun(r, ["ip", "addr", "add", f"{site.router_addr4}/30", "dev", "node"])
        nsrun(r, ["ip", "-6", "addr", "add", f"{site.router_addr6}/64", "dev", "node", "nodad"])
        nsrun(r, ["ip", "link", "set", "node", "up"])
        nsrun(n, ["ip", "addr", "add", f"{site.node_addr4}/30", "dev", "eth0"])
        nsrun(n, ["ip", "-6", "addr", "add", f"{site.node_addr6}/64", "dev", "eth0", "nodad"])
        nsrun(n, ["ip", "link", "set", "eth0", "up"])
        nsrun(n, ["ip", "addr", "add", f"{topo.VIP4}/32", "dev", "lo"])
        nsrun(n, ["ip", "-6", "addr", "add", f"{topo.VIP6}/128", "dev", "lo"])
        nsrun(n, ["ip", "route", "add", "default", "via", site.router_addr4])
        nsrun(n, ["ip", "-6", "route", "add", "default", "via", site.router_addr6])
    for link in topo.CORE_LINKS:
        ln, rn = topo.SITES[link.left].router_ns, topo.SITES[link.right].router_ns
        lif, rif = f"r-{link.right}", f"r-{link.left}"
        run(["ip", "link", "add", lif, "netns", ln, "type", "veth", "peer", "name", rif, "netns", rn])
        for ns, ifname, key in ((ln, lif, link.left), (rn, rif, link.right)):
            nsrun(ns, ["ip", "addr", "add", f"{link.addr4(key)}/30", "dev", ifname])
            nsrun(ns, ["ip", "-6", "addr", "add", f"{link.addr6(key)}/64", "dev", ifname, "nodad"])
            nsrun(ns, ["ip", "link", "set", ifname, "up"])
    for c in topo.CLIENTS.values():
        r = topo.SITES[c.router].router_ns
        run(["ip", "link", "add", c.name, "netns", r, "type", "veth", "peer", "name", "eth0", "netns", c.ns])
        nsrun(r, ["ip", "addr", "add", f"{c.gw4}/24", "dev", c.name])
        nsrun(r, ["ip", "-6", "addr", "add", f"{c.gw6}/64", "dev", c.name, "nodad"])
        nsrun(r, ["ip", "link", "set", c.name, "up"])
        nsrun(c.ns, ["ip", "addr", "add", f"{c.addr4}/24", "dev", "eth0"])
        nsrun(c.ns, ["ip", "-6", "addr", "add", f"{c.addr6}/64", "dev", "eth0", "nodad"])
        nsrun(c.ns, ["ip", "link", "set", "eth0", "up"])
        nsrun(c.ns, ["ip", "route", "add", "default", "via", c.gw4])
        nsrun(c.ns, ["ip", "-6", "route", "add", "default", "via", c.gw6])


def bird_sock(key: str) -> Path:
    return STATE / "run" / f"router-{key}" / "bird.ctl"


def start_router(site: topo.Site) -> None:
    d = STATE / "run" / f"router-{site.key}"
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "bird.conf"
    conf.write_text(templates.bird_conf(site, str(STATE / "logs" / f"bird-{site.key}.events.log")))
    run([which("bird") or "bird", "-p", "-c", str(conf)])  # a config error, said clearly
    spawn(f"bird-{site.key}", site.router_ns,
          [which("bird") or "bird", "-f", "-c", str(conf), "-s", str(bird_sock(site.key)),
           "-P", str(d / "bird.pid")])


def node_dir(site: topo.Site) -> Path:
    d = STATE / "run" / f"node-{site.key}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def disable_file(site: topo.Site) -> Path:
    return node_dir(site) / "disabled"


def dns_answers(ns: str, server: str = topo.VIP4, timeout: int = 1) -> bool:
    p = nsrun(ns, ["dig", f"@{server}", topo.ZONE, "SOA", f"+time={timeout}", "+tries=1", "+norec"],
              check=False, timeout=timeout + 5)
    return "status: NOERROR" in p.stdout


def start_node(site: topo.Site, lab: dict) -> None:
    d = node_dir(site)
    if lab["speaker"] == "exabgp":
        (d / "nsd.pid").unlink(missing_ok=True)
        conf = d / "nsd.conf"
        conf.write_text(templates.nsd_conf(site, str(d), str(ZONEFILE)))
        spawn(f"nsd-{site.key}", site.node_ns, [which("nsd") or "nsd", "-d", "-c", str(conf)])
        deadline = time.monotonic() + 15
        while not dns_answers(site.node_ns):
            if time.monotonic() > deadline or pid_of(f"nsd-{site.key}") is None:
                raise LabError(f"NSD at site {site.key} does not answer; see {STATE}/logs/nsd-{site.key}.log")
            time.sleep(0.2)
        hc = d / "healthcheck.sh"
        hc.write_text(templates.healthcheck_script(site, str(disable_file(site)), EXABGP_PYTHON))
        hc.chmod(0o755)
        conf = d / "exabgp.conf"
        conf.write_text(templates.exabgp_conf(site, str(hc), lab["hold_time"]))
        spawn(f"exabgp-{site.key}", site.node_ns, [which("exabgp") or "exabgp", str(conf)],
              env=templates.EXABGP_ENV)
    else:
        conf = d / "node.toml"
        conf.write_text(anyns_config.node_toml(site, str(ZONEFILE), hold_time=lab["hold_time"],
                                               graceful_restart=lab.get("graceful_restart", False)))
        spawn(f"anyns-{site.key}", site.node_ns, anyns_config.serve_argv(lab["anyns_bin"], str(conf)),
              env={"RUST_LOG": os.environ.get("RUST_LOG", "info")})


def node_process_names(site: topo.Site, lab: dict) -> list[str]:
    return [f"nsd-{site.key}", f"exabgp-{site.key}"] if lab["speaker"] == "exabgp" else [f"anyns-{site.key}"]


def stop_node(site: topo.Site, lab: dict) -> None:
    for name in node_process_names(site, lab):
        stop_recorded(name)
    stop_pids(netns_pids(site.node_ns))


def require_tools(speaker: str) -> None:
    missing = [t for t in ("ip", "bird", "birdc", "dig") if not which(t)]
    if speaker == "exabgp":
        missing += [t for t in ("nsd", "exabgp") if not which(t)]
    if missing:
        raise LabError(f"missing: {', '.join(missing)} (run lab/setup.sh)")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces)")


def anyns_ready(binary: str) -> tuple[bool, str]:
    """Whether this anyns binary can run in the lab: `serve` takes the (hidden) fault-injection
    flag, and `check` accepts the lab's node.toml, [bgp] section included (unknown keys are
    errors there, so an older build or a renamed field says so here)."""
    if not binary or not Path(binary).is_file():
        return False, f"anyns binary not found ({binary or 'none given'}; build with cargo build --release or pass --anyns-bin)"
    p = run([binary, "serve", anyns_config.FAULT_FLAG, "--help"], check=False)
    if p.returncode != 0:
        return False, f"{binary} serve does not take {anyns_config.FAULT_FLAG}: {p.stderr.strip()[:200]}"
    conf = Path(tempfile.mkdtemp(prefix="anyns-lab-check-")) / "node.toml"
    try:
        conf.write_text(anyns_config.node_toml(topo.SITES["a"], str(ZONEFILE)))
        p = run([binary, "check", "--config", str(conf)], check=False)
    finally:
        shutil.rmtree(conf.parent, ignore_errors=True)
    if p.returncode != 0:
        return False, f"{binary} check rejects the lab's node.toml (lab/anyns_config.py): {(p.stderr or p.stdout).strip()[:300]}"
    return True, ""


def default_anyns_bin() -> str:
    for cand in (os.environ.get("ANYNS_BIN"), REPO / "target/release/anyns", REPO / "target/debug/anyns"):
        if cand and Path(cand).is_file():
            return str(cand)
    return ""


def lab_state() -> dict | None:
    try:
        return json.loads((STATE / "lab.json").read_text())
    except (OSError, ValueError):
        return None


def up(speaker: str, anyns_bin: str = "", hold_time: int = topo.NODE_HOLD_TIME,
       graceful_restart: bool = False, timeout: float = 60) -> dict:
    require_tools(speaker)
    if speaker == "anyns":
        anyns_bin = str(Path(anyns_bin).resolve()) if anyns_bin else default_anyns_bin()
        ok, why = anyns_ready(anyns_bin)
        if not ok:
            raise LabError(why)
    down()
    shutil.rmtree(STATE / "logs", ignore_errors=True)
    STATE.mkdir(parents=True, exist_ok=True)
    lab = {"speaker": speaker, "anyns_bin": anyns_bin, "hold_time": hold_time,
           "graceful_restart": graceful_restart, "started": time.strftime("%F %T")}
    (STATE / "lab.json").write_text(json.dumps(lab))
    log(f"up: namespaces and links ({len(topo.all_namespaces())} namespaces)")
    build_network()
    for site in topo.SITES.values():
        start_router(site)
    for site in topo.SITES.values():
        start_node(site, lab)
    log(f"up: routers and nodes started ({speaker}); waiting for convergence")
    wait(frozenset(), timeout)
    log("up: converged")
    return lab


# ---------------------------------------------------------------- observation

def birdc(key: str, *cmd: str) -> str:
    p = run(["birdc", "-s", str(bird_sock(key))] + list(cmd), check=False, timeout=10)
    return p.stdout


def protocols(key: str) -> dict:
    """BGP protocol name -> {'state': up/start/..., 'info': 'Established' ...}."""
    out = {}
    for line in birdc(key, "show", "protocols").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "BGP":
            m = re.search(r"(Established|Idle|Connect|Active|OpenSent|OpenConfirm)\b.*$", line)
            out[parts[0]] = {"state": parts[3], "info": m.group(0).strip() if m else ""}
    return out


PATH_RE = re.compile(r"unicast \[(\S+)[^\]]*\](\s+\*)?\s+\((\d+)")


def routes(key: str, prefix: str) -> list[dict]:
    """Every path BIRD holds for `prefix`, best first: protocol, AS path, next hop."""
    paths: list[dict] = []
    for line in birdc(key, "show", "route", prefix, "all").splitlines():
        m = PATH_RE.search(line)
        if m:
            paths.append({"proto": m.group(1), "best": bool(m.group(2)), "as_path": "", "via": ""})
            continue
        if not paths:
            continue
        s = line.strip()
        if s.startswith("BGP.as_path:"):
            paths[-1]["as_path"] = s.split(":", 1)[1].strip()
        elif s.startswith("via "):
            paths[-1]["via"] = s.split()[1]
        else:
            for attr in ("next_hop", "med", "local_pref", "community", "large_community"):
                if s.startswith(f"BGP.{attr}:"):
                    paths[-1][attr] = s.split(":", 1)[1].strip()
    paths.sort(key=lambda p: not p["best"])
    return paths


SITE_RE = re.compile(r"site-([a-z0-9]+)")


def ask(client: topo.Client, family: int, tcp: bool) -> dict:
    """One CHAOS id.server query with NSID from a client: which site answers it."""
    server = topo.VIP4 if family == 4 else topo.VIP6
    argv = ["dig", f"@{server}", "id.server", "CH", "TXT", "+nsid", "+time=1", "+tries=2", "+norec"]
    if tcp:
        argv.append("+tcp")
    p = nsrun(client.ns, argv, check=False, timeout=10)
    txt = re.search(r'^id\.server\.\s+\d+\s+CH\s+TXT\s+"([^"]*)"', p.stdout, re.M)
    nsid = re.search(r'NSID:.*\("([^"]*)"\)', p.stdout)
    def site(m):
        s = SITE_RE.search(m.group(1)) if m else None
        return s.group(1) if s else None
    return {"txt": txt.group(1) if txt else None, "nsid": nsid.group(1) if nsid else None,
            "site": site(txt) if site(txt) == site(nsid) else None,
            "txt_site": site(txt), "nsid_site": site(nsid)}


def observe(clients: bool = True) -> dict:
    obs = {"routers": {}, "clients": {}}
    for key in topo.SITES:
        obs["routers"][key] = {
            "protocols": protocols(key),
            "routes": {p: routes(key, p) for p in topo.VIP_PREFIXES},
        }
    if clients:
        for c in topo.CLIENTS.values():
            for fam in (4, 6):
                for tcp in (False, True):
                    obs["clients"][f"{c.name}/v{fam}/{'tcp' if tcp else 'udp'}"] = ask(c, fam, tcp)
    return obs


def evaluate(obs: dict, down_sites: frozenset) -> list[str]:
    """What differs from the expected state with `down_sites` withdrawn; empty when all is well."""
    problems = []
    for key, r in obs["routers"].items():
        wanted = [f"r{l.other(key)}{f}" for l in topo.core_links_of(key) for f in "46"]
        if key not in down_sites:
            wanted += ["node4", "node6"]
        for proto in wanted:
            info = r["protocols"].get(proto, {}).get("info", "missing")
            if not info.startswith("Established"):
                problems.append(f"router-{key}: BGP {proto} is {info or r['protocols'].get(proto)}")
        expect = topo.expected_paths(key, down_sites)
        for prefix, paths in r["routes"].items():
            got = [p["as_path"] for p in paths]
            # The best path must match; the order of the others is BIRD's (by age).
            if got[:1] != expect[:1] or sorted(got) != sorted(expect):
                problems.append(f"router-{key} {prefix}: AS paths {got}, expected {expect} (best first)")
    for name, res in obs["clients"].items():
        client = topo.CLIENTS[name.split("/")[0]]
        want = topo.answering_site(client, down_sites)
        if res["site"] != want:
            problems.append(f"{name}: answered by site {res['site']} "
                            f"(TXT {res['txt']!r}, NSID {res['nsid']!r}), expected site {want}")
    return problems


def wait(down_sites: frozenset, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        obs = observe(clients=False)
        problems = evaluate(obs, down_sites)
        if not problems:
            obs = observe(clients=True)
            problems = evaluate(obs, down_sites)
            if not problems:
                return obs
        if time.monotonic() > deadline:
            raise LabError("not converged after %.0f s:\n  " % timeout + "\n  ".join(problems))
        time.sleep(0.5)


def print_status(obs: dict) -> None:
    for key, r in obs["routers"].items():
        print(f"router-{key} (AS {topo.SITES[key].router_asn})")
        for name, p in sorted(r["protocols"].items()):
            print(f"  bgp {name:<6} {p['state']:<6} {p['info']}")
        for prefix, paths in r["routes"].items():
            for p in paths:
                attrs = " ".join(f"{a}={p[a]}" for a in ("med", "local_pref", "community", "large_community") if a in p)
                print(f"  {prefix:<20} {'*' if p['best'] else ' '} [{p['as_path']}] via {p['via']} ({p['proto']}) {attrs}")
            if not paths:
                print(f"  {prefix:<20} (no route)")
    for name, res in obs["clients"].items():
        print(f"{name:<18} site {res['site']}  (id.server {res['txt']!r}, NSID {res['nsid']!r})")


# ---------------------------------------------------------------- faults

def _fault_file(site: topo.Site) -> Path:
    (STATE / "faults").mkdir(parents=True, exist_ok=True)
    return STATE / "faults" / f"{site.key}.json"


def http(site: topo.Site, method: str, path: str) -> tuple[float, str]:
    """An HTTP call to the node's control API from inside its namespace; returns the monotonic
    time the request was sent and the response."""
    p = nsrun(site.node_ns, [sys.executable, str(Path(__file__).resolve()), "_http", method,
                             f"http://{anyns_config.CONTROL_ADDR}{path}"], check=False, timeout=15)
    m = re.match(r"T ([0-9.]+)\n", p.stdout)
    if p.returncode != 0 or not m:
        raise LabError(f"{method} {path} at node-{site.key}: {p.stdout.strip()} {p.stderr.strip()}")
    return float(m.group(1)), p.stdout[m.end():]


def fault(site: topo.Site, kind: str, lab: dict) -> float:
    """Injects a fault at a site; returns its monotonic time."""
    record: dict = {"kind": kind}
    if kind == "dns-stop":
        if lab["speaker"] == "exabgp":
            nsd = pid_of(f"nsd-{site.key}")
            if nsd is None:
                raise LabError(f"NSD at site {site.key} is not running")
            pids = descendants(nsd)
            t = time.monotonic()
            signal_pids(pids, signal.SIGSTOP)
            record["stopped"] = pids
        else:
            t, _ = http(site, *anyns_config.API["fault_dns_drop"])
    elif kind in ("kill", "freeze"):
        pids = netns_pids(site.node_ns)
        t = time.monotonic()
        signal_pids(pids, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        record["pids"] = pids
    elif kind == "drain":
        if lab["speaker"] == "exabgp":
            t = time.monotonic()
            disable_file(site).touch()
        else:
            t, _ = http(site, *anyns_config.API["drain"])
    else:
        raise LabError(f"unknown fault {kind}")
    record["t"] = t
    _fault_file(site).write_text(json.dumps(record))
    return t


def recover(site: topo.Site, kind: str, lab: dict) -> float:
    try:
        record = json.loads(_fault_file(site).read_text())
    except (OSError, ValueError):
        record = {}
    if kind == "dns-stop":
        if lab["speaker"] == "exabgp":
            t = time.monotonic()
            signal_pids(record.get("stopped", []), signal.SIGCONT)
        else:
            t, _ = http(site, *anyns_config.API["fault_clear"])
    elif kind == "freeze":
        t = time.monotonic()
        signal_pids(record.get("pids", []), signal.SIGCONT)
    elif kind == "kill":
        _reap()
        stop_node(site, lab)  # whatever survived, so the start is clean
        t = time.monotonic()
        start_node(site, lab)
    elif kind == "drain":
        if lab["speaker"] == "exabgp":
            t = time.monotonic()
            disable_file(site).unlink(missing_ok=True)
        elif any(pid_of(n) for n in node_process_names(site, lab)):
            t, _ = http(site, *anyns_config.API["undrain"])
        else:  # anyns's drain may end with the process exiting
            t = time.monotonic()
            start_node(site, lab)
    else:
        raise LabError(f"unknown fault {kind}")
    _fault_file(site).unlink(missing_ok=True)
    return t


# ---------------------------------------------------------------- measurement

def anyns_build() -> str:
    """Which anyns the anyns runs used: the release binary's build time and the commit that was
    HEAD then (the working tree may have had more)."""
    binary = REPO / "target/release/anyns"
    if not binary.is_file():
        return "no release build"
    built = time.strftime("%F %H:%M", time.gmtime(binary.stat().st_mtime))
    head = run(["git", "-C", str(REPO), "log", "-1", f"--before={built} UTC", "--format=%h"],
               check=False).stdout.strip()
    return f"target/release/anyns built {built} UTC, HEAD then {head or '?'}"


def settings_md() -> str:
    exa = run(["exabgp", "--version"], check=False).stdout.split("\n")[0] if which("exabgp") else "exabgp not installed"
    bird = run([which("bird") or "bird", "--version"], check=False)
    nsd = run([which("nsd") or "nsd", "-v"], check=False)
    return f"""### Setup

- Topology: sites A, B, C, each a node (AS {topo.NODE_ASN}, VIPs {topo.VIP4}/32 and {topo.VIP6}/128 on `lo`)
  behind its own BIRD router (AS 65001/65002/65003), routers in a line A—B—C; client1 at router A,
  client2 at router C. IPv4 and IPv6 sessions everywhere. All in network namespaces.
- Routers: {(bird.stdout + bird.stderr).strip()}; router-to-router hold {topo.CORE_HOLD_TIME} s, keepalive
  {topo.CORE_KEEPALIVE} s; node sessions: `{templates.NODE_SESSION_TIMERS}`, BIRD's default hold time (240 s),
  import of the VIP /32 and /128 only, GRACEFUL_SHUTDOWN (65535:0) mapped to local-pref 0 (RFC 8326).
- Reference node: {(nsd.stdout + nsd.stderr).strip().splitlines()[0] if (nsd.stdout + nsd.stderr).strip() else 'NSD'} on the VIPs;
  {exa}, hold time offered {topo.NODE_HOLD_TIME} s (negotiated {topo.NODE_HOLD_TIME} s, keepalive {topo.NODE_HOLD_TIME // 3} s);
  ExaBGP's healthcheck with its defaults: interval 5 s, fast interval 1 s, rise 3, fall 3,
  timeout 5 s, `--withdraw-on-down`; check `{templates.check_command()}`;
  drain = the healthcheck's `--disable FILE`.
- anyns node ({anyns_build()}): `anyns serve --config node.toml {anyns_config.FAULT_FLAG}`, `[health]` defaults,
  hold time {topo.NODE_HOLD_TIME} s, graceful restart without preserved routes (lab/anyns_config.py).
- Probe: one UDP query (`{topo.ZONE} SOA` with NSID) every 20 ms on a fixed schedule, 500 ms timeout.
- Faults (reference / anyns): dns-stop = SIGSTOP of NSD / `POST /fault/dns-drop`;
  kill = SIGKILL of every process in the node namespace; freeze = SIGSTOP of the same;
  drain = touch the healthcheck's disable file / `POST /drain`; recovery undoes each
  (SIGCONT, restart, remove the file / `POST /fault/clear`, `POST /undrain`).
"""


def results_path() -> Path:
    return OUT / "results.json"


def load_results() -> dict:
    try:
        return json.loads(results_path().read_text())
    except (OSError, ValueError):
        return {}


def write_reports(results: dict, write_failover: bool) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    md = analyze.render(results, settings_md())
    (OUT / "results.md").write_text("# anyns lab results\n\n" + md)
    log(f"wrote {OUT / 'results.md'}")
    if write_failover:
        FAILOVER_MD.write_text(
            "<!-- generated by `lab/lab.py measure ... --write-failover`; merge into bench/RESULTS.md -->\n\n" + md)
        log(f"wrote {FAILOVER_MD}")


def start_probes(client: topo.Client, families: list[int], duration: float, tag: str) -> list[dict]:
    d = STATE / "run" / "probes"
    d.mkdir(parents=True, exist_ok=True)
    probes = []
    for fam in families:
        out = d / f"{tag}-v{fam}.json"
        out.unlink(missing_ok=True)
        server = topo.VIP4 if fam == 4 else topo.VIP6
        p = subprocess.Popen(
            ["ip", "netns", "exec", client.ns, sys.executable, str(LAB_DIR / "probe.py"),
             "--server", server, "--duration", str(duration), "--interval", "0.02",
             "--timeout", "0.5", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=open(d / f"{tag}-v{fam}.stderr", "w"), text=True)
        (STATE / "pids").mkdir(parents=True, exist_ok=True)
        _pidfile(f"probe-v{fam}").write_text(json.dumps({"pid": p.pid, "start": (_stat(p.pid) or (0, None))[1]}))
        line = p.stdout.readline()
        if not line.startswith("START "):
            p.kill()
            raise LabError(f"probe did not start: {line} {(d / f'{tag}-v{fam}.stderr').read_text()}")
        probes.append({"family": fam, "proc": p, "out": out, "t0": float(line.split()[1])})
    return probes


def measure_one(scenario: str, lab: dict, client: topo.Client, families: list[int],
                fault_at: float, recover_after: float | None, tail: float) -> list[dict]:
    site = topo.SITES[client.nearest]
    kind = "kill" if scenario == "return" else scenario
    if recover_after is None:
        recover_after = lab["hold_time"] + 20 if scenario == "freeze" else 20
    log(f"measure {lab['speaker']}/{scenario}: baseline")
    wait(frozenset(), 90)
    if scenario == "return":
        fault(site, "kill", lab)
        wait(frozenset({site.key}), 30)
        total = fault_at + tail
    else:
        total = fault_at + recover_after + tail
    probes = start_probes(client, families, total, scenario)
    t0 = max(p["t0"] for p in probes)
    fault_t = recover_t = None
    notes = []
    try:
        if scenario != "return":
            time.sleep(max(0.0, t0 + fault_at - time.monotonic()))
            fault_t = fault(site, kind, lab)
            log(f"{scenario}: fault injected at site {site.key}")
            time.sleep(max(0.0, fault_t + recover_after - time.monotonic()))
        else:
            time.sleep(max(0.0, t0 + fault_at - time.monotonic()))
        log(f"{scenario}: recovering site {site.key}")
        recover_t = recover(site, kind, lab)
        if kind == "kill":
            notes.append(f"node restart issued at recovery; start took {time.monotonic() - recover_t:.2f} s (NSD answering before the speaker starts)")
    finally:
        for p in probes:
            try:
                p["proc"].wait(timeout=total + 30)
            except subprocess.TimeoutExpired:
                p["proc"].kill()
            _pidfile(f"probe-v{p['family']}").unlink(missing_ok=True)
    rows = []
    for p in probes:
        if not p["out"].is_file():
            err = p["out"].with_suffix(".stderr")
            raise LabError(f"probe IPv{p['family']} left no results (exit {p['proc'].returncode}); "
                           f"{err.read_text()[-2000:] if err.is_file() else 'its state directory is gone: did another lab run?'}")
        data = json.loads(p["out"].read_text())
        m = analyze.analyze(data, client.nearest, fault_t, recover_t)
        rows.append({"family": p["family"], "when": time.strftime("%F %T"), "fault_at": fault_at,
                     "recover_after": recover_after if scenario != "return" else None,
                     "hold_time": lab["hold_time"], "metrics": m, "notes": notes})
        log(f"{scenario} IPv{p['family']}: failover {m.get('failover_s')} s, lost {m.get('lost_fault')}, "
            f"return {m.get('return_s')} s, lost on return {m.get('lost_return')}, sites {m['site_sequence']}, flaps {m['flaps']}")
    return rows


# ---------------------------------------------------------------- CLI

def ensure_up(args) -> dict:
    lab = lab_state()
    if lab and lab["speaker"] == args.speaker and set(our_namespaces()) == set(topo.all_namespaces()):
        return lab
    return up(args.speaker, args.anyns_bin, args.hold_time, args.graceful_restart)


def parse_sites(s: str) -> frozenset:
    keys = frozenset(k for k in s.split(",") if k) if s else frozenset()
    bad = keys - set(topo.SITES)
    if bad:
        raise LabError(f"unknown site(s) {', '.join(sorted(bad))}")
    return keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def speaker_opts(p):
        p.add_argument("--speaker", choices=SPEAKERS, default="exabgp")
        p.add_argument("--anyns-bin", default="", help="anyns binary (default: $ANYNS_BIN, target/release, target/debug)")
        p.add_argument("--hold-time", type=int, default=topo.NODE_HOLD_TIME, help="hold time the node's speaker offers")
        p.add_argument("--graceful-restart", action="store_true",
                       help="anyns: ask the router to preserve routes across a restart (RFC 4724)")

    p = sub.add_parser("up", help="build the lab (cleaning any stale one first)")
    speaker_opts(p)
    p.add_argument("--timeout", type=float, default=60)
    sub.add_parser("down", help="stop and remove everything the lab started")
    p = sub.add_parser("status", help="print sessions, routes and who answers each client")
    p.add_argument("--json", action="store_true")
    for name in ("check", "wait"):
        p = sub.add_parser(name, help="exit 0 iff the lab is as expected" if name == "check" else "wait until check passes")
        p.add_argument("--down", default="", help="comma-separated sites expected withdrawn")
        p.add_argument("--timeout", type=float, default=60)
        p.add_argument("--json", action="store_true")
    for name in ("fault", "recover"):
        p = sub.add_parser(name)
        p.add_argument("--site", required=True, choices=sorted(topo.SITES))
        p.add_argument("--kind", required=True, choices=FAULT_KINDS)
    p = sub.add_parser("measure", help="failover measurement")
    speaker_opts(p)
    p.add_argument("--scenario", required=True, choices=SCENARIOS + ("all",))
    p.add_argument("--client", default="client1", choices=sorted(topo.CLIENTS))
    p.add_argument("--family", default="both", choices=("4", "6", "both"))
    p.add_argument("--fault-at", type=float, default=5.0, help="seconds after the probe starts")
    p.add_argument("--recover-after", type=float, default=None,
                   help="seconds from fault to recovery (default 20; freeze: hold time + 20)")
    p.add_argument("--tail", type=float, default=30.0, help="seconds measured after the recovery")
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario (the table shows median and range)")
    p.add_argument("--max-failover", type=float, default=None,
                   help="exit 1 unless every run failed over within this many seconds and returned")
    p.add_argument("--no-store", action="store_true", help="do not record the runs in lab/out")
    p.add_argument("--write-failover", action="store_true", help=f"also write {FAILOVER_MD.relative_to(REPO)}")
    p.add_argument("--down-after", action="store_true", help="take the lab down afterwards")
    p = sub.add_parser("report", help="re-render lab/out/results.md from stored runs")
    p.add_argument("--write-failover", action="store_true")
    p = sub.add_parser("anyns-ready", help="exit 0 iff the anyns binary can run in the lab")
    p.add_argument("--anyns-bin", default="")
    p = sub.add_parser("hold-lock", help="hold the lab lock until stdin closes (for a session of commands)")
    p.add_argument("--token", required=True, help=f"commands run with {LOCK_ENV}=TOKEN share the lock")
    p.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("_http")  # internal: run inside a node namespace
    p.add_argument("method")
    p.add_argument("url")
    args = ap.parse_args()

    try:
        if args.cmd == "_http":
            import urllib.request
            req = urllib.request.Request(args.url, method=args.method, data=b"" if args.method == "POST" else None)
            print(f"T {time.monotonic():.6f}", flush=True)
            with urllib.request.urlopen(req, timeout=10) as resp:
                print(resp.read().decode(errors="replace"))
            return 0
        if args.cmd == "hold-lock":
            acquire_lock("hold-lock session", args.timeout, token=args.token)
            print("LOCKED", flush=True)
            sys.stdin.read()
            return 0
        if args.cmd in ("up", "down", "fault", "recover", "measure"):
            acquire_lock(" ".join(sys.argv[1:]), float(os.environ.get("ANYNS_LAB_LOCK_WAIT", "900")))
        if args.cmd == "anyns-ready":
            ok, why = anyns_ready(str(Path(args.anyns_bin).resolve()) if args.anyns_bin else default_anyns_bin())
            print("ready" if ok else why)
            return 0 if ok else 1
        if args.cmd == "report":
            write_reports(load_results(), args.write_failover)
            return 0
        if args.cmd == "down":
            down()
            return 0
        if args.cmd == "up":
            up(args.speaker, args.anyns_bin, args.hold_time, args.graceful_restart, args.timeout)
            print_status(observe())
            return 0
        lab = lab_state()
        if args.cmd in ("status", "check", "wait", "fault", "recover") and lab is None:
            raise LabError("the lab is not up (lab.py up)")
        if args.cmd == "status":
            obs = observe()
            if args.json:
                print(json.dumps(obs, indent=1))
            else:
                print(f"speaker: {lab['speaker']}")
                print_status(obs)
                if lab["speaker"] == "anyns":
                    for site in topo.SITES.values():
                        try:
                            _, body = http(site, *anyns_config.API["status"])
                        except LabError as e:
                            body = str(e)
                        print(f"node-{site.key} {anyns_config.API['status'][1]}: {body.strip()[:400]}")
                problems = evaluate(obs, frozenset())
                print("state: as expected" if not problems else "state differs from all-up:\n  " + "\n  ".join(problems))
            return 0
        if args.cmd in ("check", "wait"):
            down_sites = parse_sites(args.down)
            if args.cmd == "wait":
                t = time.monotonic()
                obs = wait(down_sites, args.timeout)
                log(f"wait: as expected after {time.monotonic() - t:.1f} s")
                problems = []
            else:
                obs = observe()
                problems = evaluate(obs, down_sites)
            if args.json:
                print(json.dumps({"problems": problems, "observed": obs}, indent=1))
            else:
                print_status(obs)
                print("OK" if not problems else "FAILED:\n  " + "\n  ".join(problems))
            return 0 if not problems else 1
        if args.cmd == "fault":
            fault(topo.SITES[args.site], args.kind, lab)
            return 0
        if args.cmd == "recover":
            recover(topo.SITES[args.site], args.kind, lab)
            return 0
        if args.cmd == "measure":
            lab = ensure_up(args)
            client = topo.CLIENTS[args.client]
            families = [4, 6] if args.family == "both" else [int(args.family)]
            scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
            failures: list[str] = []
            try:
                for s in scenarios:
                    runs: dict = {}
                    for i in range(args.repeat):
                        if args.repeat > 1:
                            log(f"{s}: run {i + 1} of {args.repeat}")
                        for row in measure_one(s, lab, client, families, args.fault_at,
                                               args.recover_after, args.tail):
                            runs.setdefault(row["family"], []).append(row)
                    for fam_runs in runs.values():
                        for row in fam_runs:
                            m = row["metrics"]
                            if args.max_failover is not None and s != "return" and (
                                    m.get("failover_s") is None or m["failover_s"] > args.max_failover):
                                failures.append(f"{s} IPv{row['family']}: failover {m.get('failover_s')} s > {args.max_failover} s")
                            if args.max_failover is not None and m.get("return_s") is None:
                                failures.append(f"{s} IPv{row['family']}: traffic did not return")
                    if args.no_store:
                        continue
                    # A new measurement replaces the stored runs of the same speaker/scenario/family.
                    results = load_results()
                    for fam, fam_runs in runs.items():
                        results[f"{lab['speaker']}/{s}/{fam}"] = {
                            "speaker": lab["speaker"], "scenario": s, "family": fam,
                            "client": client.name, "runs": fam_runs}
                    OUT.mkdir(parents=True, exist_ok=True)
                    results_path().write_text(json.dumps(results, indent=1))
                    write_reports(results, args.write_failover)
                wait(frozenset(), 90)
            finally:
                if args.down_after:
                    down()
            if failures:
                raise LabError("measurement out of bounds:\n  " + "\n  ".join(failures))
            return 0
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
