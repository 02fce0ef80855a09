#!/usr/bin/env python3
"""Generate the benchmark zones and dnsperf query files, deterministically.

    python3 bench/gen_zones.py [--out bench/out] [--seed 1] [--large-records 1000000]

Writes into --out (gitignored):

    small.bench.zone      ~100 RRs: SOA, NS, A/AAAA hosts, MX, TXT, CNAMEs, a wildcard,
                          delegations with glue
    large.bench.zone      --large-records RRs: A/AAAA/TXT/MX/CNAME hosts, some
                          two-label names (so empty non-terminals exist), a wildcard and
                          thousands of delegations with glue
    <zone>.queries        dnsperf input ("name TYPE" per line), the same file for every
                          server; the mix is fixed:
                            70% existing names with their types (incl. CNAME, wildcard)
                            15% NXDOMAIN
                            10% referrals (names at or under a delegation)
                             5% other: NODATA (type absent, empty non-terminal), apex
                                SOA/NS/MX/TXT
    <zone>.expect         a sample of those queries with the outcome they must have
                          (answer, cname, wildcard, nxdomain, referral, nodata); run.py
                          checks every server against it before timing anything
    manifest.json         what was generated and with which parameters; run.py
                          regenerates when it does not match

The same seed and sizes always give byte-identical files.
"""

import argparse
import json
import os
import random
import string
import sys

TTL = 3600
LETTERS = string.ascii_lowercase

# Query mix, in per cent. Must sum to 100.
MIX = {"existing": 70, "nxdomain": 15, "referral": 10, "other": 5}
EXPECT_PER_KIND = 8
# Bump when the output for a given seed changes, so run.py regenerates stale files.
GENERATOR_VERSION = 2


class Zone:
    """Records of one zone, kept as (owner, type, rdata) with owners relative to the apex
    ("@" for the apex), plus the facts the query generator needs."""

    def __init__(self, origin):
        self.origin = origin  # with trailing dot
        self.rrs = []
        self.rrsets = {}  # (owner, type) -> count
        self.owners = set()
        self.delegations = []  # owner names of zone cuts
        self.ents = []  # empty non-terminals
        self.wildcard_parent = None  # e.g. "wild": *.wild exists
        self.a_only_hosts = []  # owners with exactly an A RRset (for NODATA queries)

    def add(self, owner, rtype, rdata):
        self.rrs.append((owner, rtype, rdata))
        self.rrsets[(owner, rtype)] = self.rrsets.get((owner, rtype), 0) + 1
        self.owners.add(owner)

    def fqdn(self, owner):
        return self.origin if owner == "@" else f"{owner}.{self.origin}"

    def write(self, path):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"$ORIGIN {self.origin}\n$TTL {TTL}\n")
            for owner, rtype, rdata in self.rrs:
                f.write(f"{owner}\t{rtype}\t{rdata}\n")
        os.replace(tmp, path)


def rand_ipv4(rng):
    return f"192.0.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}" if rng.random() < 0.5 \
        else f"198.51.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"


def rand_ipv6(rng):
    return f"2001:db8:{rng.randrange(0, 65536):x}:{rng.randrange(0, 65536):x}::{rng.randrange(1, 65536):x}"


def rand_text(rng, n):
    return "".join(rng.choice(LETTERS + " ") for _ in range(n)).strip() or "x"


def rand_label(rng, index):
    """A label that looks random but is unique by construction: random letters, then the
    index in decimal (the first digit marks the split, so different indexes never give the
    same label). Never starts with "nx": those are kept for NXDOMAIN queries."""
    n = rng.randrange(3, 9)
    head = "".join(rng.choice(LETTERS) for _ in range(n))
    if head.startswith("nx"):
        head = "q" + head[1:]
    return f"{head}{index}"


def apex(z, rng):
    z.add("@", "SOA", "ns1 hostmaster 2024010101 3600 900 604800 300")
    z.add("@", "NS", "ns1")
    z.add("@", "NS", "ns2")
    z.add("@", "MX", "10 mail")
    z.add("@", "TXT", '"v=spf1 mx -all"')
    for ns in ("ns1", "ns2"):
        z.add(ns, "A", rand_ipv4(rng))
        z.add(ns, "AAAA", rand_ipv6(rng))
    z.add("mail", "A", rand_ipv4(rng))


def delegation(z, rng, owner):
    # One in-bailiwick name server (needs glue) and one out of zone (no glue).
    z.add(owner, "NS", f"ns1.{owner}")
    z.add(owner, "NS", "ns.provider.example.")
    z.add(f"ns1.{owner}", "A", rand_ipv4(rng))
    z.add(f"ns1.{owner}", "AAAA", rand_ipv6(rng))
    z.delegations.append(owner)


def host(z, rng, owner, targets):
    """One host with a mix of types; returns nothing. targets: existing host names usable
    as MX exchange / CNAME target."""
    r = rng.random()
    if r < 0.45:
        z.add(owner, "A", rand_ipv4(rng))
        z.a_only_hosts.append(owner)
    elif r < 0.65:
        z.add(owner, "A", rand_ipv4(rng))
        z.add(owner, "AAAA", rand_ipv6(rng))
    elif r < 0.72:
        z.add(owner, "AAAA", rand_ipv6(rng))
    elif r < 0.82:
        z.add(owner, "TXT", f'"{rand_text(rng, rng.randrange(8, 48))}"')
    elif r < 0.90 and targets:
        z.add(owner, "MX", f"{rng.choice((10, 20))} {rng.choice(targets)}")
        z.add(owner, "A", rand_ipv4(rng))
    elif targets:
        z.add(owner, "CNAME", rng.choice(targets))
    else:
        z.add(owner, "A", rand_ipv4(rng))
        z.a_only_hosts.append(owner)


def build_small(rng):
    z = Zone("small.bench.")
    apex(z, rng)
    targets = []
    i = 0
    # Named hosts first so there are CNAME/MX targets.
    for name in ("www0", "web", "api", "cdn", "app", "db", "git", "vpn"):
        z.add(name, "A", rand_ipv4(rng))
        z.add(name, "AAAA", rand_ipv6(rng))
        targets.append(name)
    for name, target in (("www", "www0"), ("blog", "web"), ("shop", "cdn"), ("docs", "web"),
                         ("far", "target.elsewhere.example.")):
        z.add(name, "CNAME", target)
    z.add("*.wild", "A", "192.0.2.99")
    z.add("*.wild", "TXT", '"wildcard"')
    z.wildcard_parent = "wild"
    for d in range(5):
        delegation(z, rng, f"sub{d}")
    # An empty non-terminal.
    z.add("a.ent", "A", rand_ipv4(rng))
    z.ents.append("ent")
    while len(z.rrs) < 100:
        host(z, rng, rand_label(rng, i), targets)
        i += 1
    return z


def build_large(rng, records):
    z = Zone("large.bench.")
    apex(z, rng)
    z.add("*.wild", "A", "192.0.2.99")
    z.wildcard_parent = "wild"
    n_deleg = max(10, records // 200)  # 5,000 for 1M records, 4 RRs each
    index = 0
    for _ in range(n_deleg):
        delegation(z, rng, "d" + rand_label(rng, index))
        index += 1
    targets = []
    ent_child = {}
    while len(z.rrs) < records:
        label = rand_label(rng, index)
        index += 1
        if rng.random() < 0.10:
            # Two-label name: its parent is an empty non-terminal.
            parent = label
            label = f"{rng.choice(('www', 'mail', 'api', 'm'))}.{parent}"
            if len(z.ents) < 10000:
                z.ents.append(parent)
                ent_child[parent] = label
        host(z, rng, label, targets)
        if len(targets) < 1000 and (label, "A") in z.rrsets:
            targets.append(label)
    # Trim to the exact count; trimming whole owner tails keeps RRsets intact enough (a
    # trimmed A+AAAA host just loses its AAAA).
    del z.rrs[records:]
    z.rrsets = {}
    z.owners = set()
    for owner, rtype, _ in z.rrs:
        z.rrsets[(owner, rtype)] = z.rrsets.get((owner, rtype), 0) + 1
        z.owners.add(owner)
    z.a_only_hosts = [h for h in z.a_only_hosts
                      if (h, "A") in z.rrsets and (h, "AAAA") not in z.rrsets
                      and (h, "MX") not in z.rrsets]
    z.ents = [e for e in z.ents if ent_child[e] in z.owners]
    return z


def queries(z, rng, count):
    """Yield (fqdn, type, kind) tuples following MIX."""
    deleg_set = set(z.delegations)

    def at_or_under_cut(owner):
        parts = owner.split(".")
        return any(".".join(parts[i:]) in deleg_set for i in range(len(parts)))

    # Authoritative RRsets below the apex; the wildcard is queried through generated names.
    existing = sorted(k for k in z.rrsets
                      if k[0] != "@" and not k[0].startswith("*") and not at_or_under_cut(k[0]))
    apex_types = ["SOA", "NS", "MX", "TXT"]
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    nx_index = 0
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "existing":
            if z.wildcard_parent and rng.random() < 0.03:
                yield (f"{rand_label(rng, rng.randrange(1 << 30))}.{z.fqdn(z.wildcard_parent)}",
                       "A", "wildcard")
                continue
            owner, rtype = rng.choice(existing)
            if rtype == "CNAME":
                yield (z.fqdn(owner), "A", "cname")
            else:
                yield (z.fqdn(owner), rtype, "answer")
        elif kind == "nxdomain":
            nx_index += 1
            yield (f"nx{rand_label(rng, nx_index)}.{z.origin}", rng.choice(("A", "AAAA")),
                   "nxdomain")
        elif kind == "referral":
            d = rng.choice(z.delegations)
            name = z.fqdn(d) if rng.random() < 0.3 else f"www.{z.fqdn(d)}"
            yield (name, rng.choice(("A", "AAAA")), "referral")
        else:
            r = rng.random()
            if r < 0.5 and z.a_only_hosts:
                yield (z.fqdn(rng.choice(z.a_only_hosts)), "AAAA", "nodata")
            elif r < 0.6 and z.ents:
                yield (z.fqdn(rng.choice(z.ents)), "A", "nodata")
            else:
                t = rng.choice(apex_types)
                yield (z.origin, t, "answer")


def write_queries(z, rng, count, qpath, epath):
    per_kind = {}
    tmp = qpath + ".tmp"
    with open(tmp, "w") as f:
        for name, rtype, kind in queries(z, rng, count):
            f.write(f"{name} {rtype}\n")
            lst = per_kind.setdefault(kind, [])
            if len(lst) < EXPECT_PER_KIND and (name, rtype, kind) not in lst:
                lst.append((name, rtype, kind))
    os.replace(tmp, qpath)
    with open(epath, "w") as f:
        f.write("# name type expected-outcome\n")
        for kind in sorted(per_kind):
            for name, rtype, k in per_kind[kind]:
                f.write(f"{name} {rtype} {k}\n")


def generate(out, seed, large_records, small_queries, large_queries):
    os.makedirs(out, exist_ok=True)
    manifest = {"generator_version": GENERATOR_VERSION, "seed": seed, "large_records": large_records,
                "small_queries": small_queries, "large_queries": large_queries,
                "mix": MIX, "zones": {}}
    for label, build, nq in (("small", lambda r: build_small(r), small_queries),
                             ("large", lambda r: build_large(r, large_records), large_queries)):
        rng = random.Random(f"{seed}-{label}")
        z = build(rng)
        zpath = os.path.join(out, f"{z.origin}zone")
        z.write(zpath)
        qpath = os.path.join(out, f"{z.origin}queries")
        epath = os.path.join(out, f"{z.origin}expect")
        write_queries(z, rng, nq, qpath, epath)
        manifest["zones"][label] = {
            "origin": z.origin, "zonefile": os.path.abspath(zpath),
            "queries": os.path.abspath(qpath), "expect": os.path.abspath(epath),
            "records": len(z.rrs), "delegations": len(z.delegations), "query_count": nq,
        }
        print(f"{z.origin}: {len(z.rrs)} RRs, {len(z.delegations)} delegations, "
              f"{nq} queries -> {zpath}", file=sys.stderr)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


def parse_args(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(here, "out"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--large-records", type=int, default=1_000_000)
    p.add_argument("--small-queries", type=int, default=100_000)
    p.add_argument("--large-queries", type=int, default=1_000_000)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    generate(a.out, a.seed, a.large_records, a.small_queries, a.large_queries)
