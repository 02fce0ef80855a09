"""Turns a probe run (see probe.py) plus the fault and recovery times into the failover numbers,
and renders the stored runs as Markdown.

Definitions, all times from the probe's send times (resolution: the probe interval):
* failover: from the fault until answers *consistently* come from another site, i.e. until the
  first query after the last one (before recovery) that was lost or answered by the faulty site.
  0 when the fault never showed; None when it had not failed over before recovery.
* lost: queries sent in the phase that got no answer within the probe's timeout.
* return: from the recovery action until answers consistently come from the home site again.
* flaps: changes of the answering site (losses ignored) beyond the expected ones: one away from
  the home site when the fault phase exists, one back.
"""

from __future__ import annotations

LOST = "-"


def outcome(q) -> str:
    _, answered, site = q
    return site if answered is not None and site else LOST


def rle(seq: list[str]) -> list[tuple[str, int]]:
    out: list[list] = []
    for s in seq:
        if out and out[-1][0] == s:
            out[-1][1] += 1
        else:
            out.append([s, 1])
    return [(s, n) for s, n in out]


def _settle(queries, start_t, end_t, good) -> tuple[float | None, int]:
    """Time from start_t until outcomes in [start_t, end_t) are all `good` from some query on,
    and the number of lost queries in the window."""
    window = [q for q in queries if q[0] is not None and start_t <= q[0] < end_t]
    lost = sum(1 for q in window if outcome(q) == LOST)
    if not window:
        return None, lost
    last_bad = None
    for i, q in enumerate(window):
        if not good(outcome(q)):
            last_bad = i
    if last_bad is None:
        return 0.0, lost
    if last_bad == len(window) - 1:
        return None, lost
    return max(0.0, window[last_bad + 1][0] - start_t), lost


def analyze(probe: dict, home: str, fault_t: float | None, recover_t: float | None,
            end_t: float | None = None) -> dict:
    queries = [q for q in probe["queries"] if q[0] is not None]
    interval = probe["interval"]
    end_t = end_t if end_t is not None else (queries[-1][0] + interval if queries else 0.0)
    first_t = queries[0][0] if queries else 0.0
    res: dict = {"queries": len(queries), "interval_ms": round(interval * 1000),
                 "late": probe.get("late", 0), "home": home}

    phase_start = fault_t if fault_t is not None else first_t
    res["lost_before_fault"] = sum(
        1 for q in queries if q[0] < phase_start and fault_t is not None and outcome(q) == LOST)

    if fault_t is not None:
        stop = recover_t if recover_t is not None else end_t
        failover, lost = _settle(queries, fault_t, stop, lambda o: o not in (home, LOST))
        res["failover_s"] = None if failover is None else round(failover, 3)
        res["lost_fault"] = lost
        firsts = [q[0] for q in queries if fault_t <= q[0] < stop and outcome(q) not in (home, LOST)]
        res["first_other_s"] = round(firsts[0] - fault_t, 3) if firsts else None
        others = [outcome(q) for q in queries if fault_t <= q[0] < stop and outcome(q) not in (home, LOST)]
        res["failover_site"] = max(set(others), key=others.count) if others else None
    if recover_t is not None:
        ret, lost = _settle(queries, recover_t, end_t, lambda o: o == home)
        res["return_s"] = None if ret is None else round(ret, 3)
        res["lost_return"] = lost
        if fault_t is None:
            before = [outcome(q) for q in queries if q[0] < recover_t and outcome(q) != LOST]
            res["failover_site"] = max(set(before), key=before.count) if before else None
            res["lost_before_return"] = sum(
                1 for q in queries if q[0] < recover_t and outcome(q) == LOST)

    answered = [outcome(q) for q in queries if outcome(q) != LOST]
    sites = [s for s, _ in rle(answered)]
    res["site_sequence"] = "→".join(sites)
    changes = max(0, len(sites) - 1)
    expected = (1 if fault_t is not None else 0) + (1 if recover_t is not None else 0)
    res["site_changes"] = changes
    res["flaps"] = max(0, changes - expected)
    # A compact picture of the run: outcome runs with their lengths (in queries).
    res["timeline"] = " ".join(f"{s}×{n}" for s, n in rle([outcome(q) for q in queries]))
    return res


def _fmt_s(v) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}"


def _agg(values: list, fmt) -> str:
    """One value, or the median with the range and the number of runs."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    known = sorted(v for v in values if v is not None)
    if not known:
        return fmt(None)
    median = known[len(known) // 2] if len(known) % 2 else (known[len(known) // 2 - 1] + known[len(known) // 2]) / 2
    missing = len(values) - len(known)
    extra = f", {missing}× —" if missing else ""
    if known[0] == known[-1]:
        return f"{fmt(median)} (n={len(values)}{extra})"
    return f"{fmt(median)} ({fmt(known[0])}–{fmt(known[-1])}, n={len(values)}{extra})"


SCENARIO_ORDER = ["dns-stop", "kill", "freeze", "drain", "return"]

SCENARIO_TEXT = {
    "dns-stop": "DNS at the home site stops answering (process stopped / anyns drops queries); speaker keeps running",
    "kill": "node's DNS + speaker killed (SIGKILL): the BGP TCP session closes",
    "freeze": "node's DNS + speaker frozen (SIGSTOP): nothing closes, the router waits for its hold timer",
    "drain": "planned drain: DNS keeps answering while the route goes",
    "return": "cold start: the site is down, then its DNS + speaker start",
}


def render(results: dict, settings_md: str) -> str:
    entries = sorted(results.values(), key=lambda r: (
        r["speaker"], SCENARIO_ORDER.index(r["scenario"]) if r["scenario"] in SCENARIO_ORDER else 99,
        r["family"]))
    out = [
        "## Failover",
        "",
        "Measured with `lab/lab.py measure` (see lab/README.md): a client sends one UDP query",
        "every 20 ms on a fixed schedule and records which site answered (NSID). Times in",
        "seconds, from the fault (or the recovery) to the first query after which every answer",
        "comes from the expected site; \"lost\" counts queries without an answer within 500 ms",
        "(20 ms each). With several runs: median (min–max, n=runs).",
        "",
        "| speaker | scenario | IPv | failover s | lost | return s | lost on return | sites seen | flaps |",
        "|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for e in entries:
        ms = [run["metrics"] for run in e["runs"]]
        num = lambda v: "—" if v is None else f"{v:.0f}"
        if e["scenario"] == "return":
            failover = "n/a"
            lost = f"{sum(m.get('lost_before_return') or 0 for m in ms)} while down"
        else:
            failover = _agg([m.get("failover_s") for m in ms], _fmt_s)
            lost = _agg([m.get("lost_fault") for m in ms], num)
        seqs = sorted({m.get("site_sequence", "") for m in ms})
        out.append(
            f"| {e['speaker']} | {e['scenario']} | {e['family']} | {failover} | {lost} | "
            f"{_agg([m.get('return_s') for m in ms], _fmt_s)} | "
            f"{_agg([m.get('lost_return') for m in ms], num)} | {', '.join(seqs)} | "
            f"{sum(m.get('flaps', 0) for m in ms)} |")
    out += ["", "Scenarios:", ""]
    for s in SCENARIO_ORDER:
        out.append(f"- **{s}**: {SCENARIO_TEXT[s]}.")
    out += ["", settings_md.rstrip(), "", "### Runs", "",
            "Timelines: runs of outcomes in probe order, `site×queries`, `-` = no answer.", ""]
    for e in entries:
        for run in e["runs"]:
            m = run["metrics"]
            rec = run.get("recover_after")
            out.append(
                f"- {e['speaker']} {e['scenario']} IPv{e['family']} ({run['when']}, {e['client']}, "
                f"home site {m['home']}; fault at {run.get('fault_at')} s"
                + (f", recovery {rec:g} s later" if rec is not None else "")
                + f"): first answer from elsewhere {_fmt_s(m.get('first_other_s'))} s; "
                f"timeline `{m['timeline']}`")
            for note in run.get("notes", []):
                out.append(f"  - {note}")
    return "\n".join(out) + "\n"
