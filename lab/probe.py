#!/usr/bin/env python3
"""Failover probe, run inside a client namespace: one DNS query over UDP every `interval`
seconds on a fixed schedule (a sender thread never waits for answers), a receiver thread
matching answers by ID, and for each query the send time, the answer time and the site that
answered (from NSID, else from a CHAOS TXT answer). Times are CLOCK_MONOTONIC, which all network
namespaces share, so the lab can line them up with the moment it injected a fault.

Writes one JSON document to --out when done; prints `START <t0>` as soon as it starts sending.
Standard library only.
"""

import argparse
import json
import re
import socket
import struct
import sys
import threading
import time

SITE_RE = re.compile(r"site-([a-z0-9]+)")

TYPES = {"A": 1, "NS": 2, "SOA": 6, "TXT": 16, "AAAA": 28}
CLASSES = {"IN": 1, "CH": 3}


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def build_query(qid: int, qname: str, qtype: int, qclass: int) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)  # RD=0: an authoritative query
    question = encode_name(qname) + struct.pack("!HH", qtype, qclass)
    # OPT RR (RFC 6891) with an empty NSID option (RFC 5001, code 3).
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 4) + struct.pack("!HH", 3, 0)
    return header + question + opt


def skip_name(msg: bytes, off: int) -> int:
    while True:
        length = msg[off]
        if length == 0:
            return off + 1
        if length & 0xC0 == 0xC0:
            return off + 2
        off += 1 + length


def identity(msg: bytes) -> str | None:
    """The NSID if present, else the first TXT string in the answer section."""
    try:
        _, _, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
        off = 12
        for _ in range(qd):
            off = skip_name(msg, off) + 4
        txt = None
        for i in range(an + ns + ar):
            off = skip_name(msg, off)
            rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            rdata = msg[off:off + rdlen]
            off += rdlen
            if i < an and rtype == 16 and txt is None and rdata:
                txt = rdata[1:1 + rdata[0]].decode(errors="replace")
            if rtype == 41:
                o = 0
                while o + 4 <= len(rdata):
                    code, olen = struct.unpack("!HH", rdata[o:o + 4])
                    if code == 3:
                        return rdata[o + 4:o + 4 + olen].decode(errors="replace")
                    o += 4 + olen
        return txt
    except (struct.error, IndexError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=0.5,
                    help="an answer later than this after its query counts as lost")
    ap.add_argument("--qname", default="example.test")
    ap.add_argument("--qtype", default="SOA")
    ap.add_argument("--qclass", default="IN")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    family = socket.AF_INET6 if ":" in args.server else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.connect((args.server, args.port))
    sock.settimeout(0.05)
    qtype, qclass = TYPES[args.qtype.upper()], CLASSES[args.qclass.upper()]

    count = int(args.duration / args.interval)
    sent = [None] * count  # monotonic send time
    answered = [None] * count  # monotonic receive time
    who = [None] * count  # identity string
    late = 0
    by_id = {}  # DNS ID -> index of the latest query sent with it
    done = threading.Event()

    t0 = time.monotonic() + 0.2
    print(f"START {t0:.6f}", flush=True)

    def sender():
        for i in range(count):
            due = t0 + i * args.interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            qid = i & 0xFFFF
            by_id[qid] = i
            sent[i] = time.monotonic()
            try:
                sock.send(build_query(qid, args.qname, qtype, qclass))
            except OSError:
                pass  # e.g. no route right now: the query is lost, which is what we measure
        time.sleep(args.timeout)
        done.set()

    def receiver():
        nonlocal late
        while not done.is_set():
            try:
                msg = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                continue  # ICMP errors surface here on a connected socket
            now = time.monotonic()
            if len(msg) < 12:
                continue
            i = by_id.get(struct.unpack("!H", msg[:2])[0])
            if i is None or sent[i] is None or answered[i] is not None:
                continue
            if now - sent[i] > args.timeout:
                late += 1
                continue
            answered[i] = now
            who[i] = identity(msg)

    threads = [threading.Thread(target=sender), threading.Thread(target=receiver)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    queries = []
    for i in range(count):
        ident = who[i]
        m = SITE_RE.search(ident) if ident else None
        queries.append([sent[i], answered[i], m.group(1) if m else (ident or None)])
    with open(args.out, "w") as f:
        json.dump({"server": args.server, "interval": args.interval, "timeout": args.timeout,
                   "start": t0, "late": late, "queries": queries}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
