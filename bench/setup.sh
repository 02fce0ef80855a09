#!/bin/sh
# Installs what bench/run.py needs on a fresh Debian 12 (bookworm) machine. Run as root.
#
#   sh bench/setup.sh
#
# The Debian packages of Knot DNS and NSD start system services on port 53 when installed;
# they are stopped and disabled here so they take no CPU during a run (the benchmark starts
# its own instances on free loopback ports, with configs in temp dirs).
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    knot nsd dnsperf knot-dnsutils dnsutils valgrind linux-perf python3 util-linux

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now knot.service nsd.service 2>/dev/null || true
fi

# Hardware counters are often missing in VMs; run.py then falls back to callgrind.
if perf stat -e instructions true 2>&1 | grep -q "not supported"; then
    echo "note: perf cannot count instructions here; run.py will use callgrind" >&2
fi

echo "ok: knotd $(knotd -V 2>&1 | head -1 | sed 's/.*version //'), $(nsd -v 2>&1 | head -1)," \
     "$(dnsperf -h 2>&1 | grep -o 'Version [0-9.]*')"
