#!/usr/bin/env bash
# Installs what the lab needs (Debian/Ubuntu, as root): BIRD 2 for the routers, NSD and ExaBGP
# for the reference node, dig/kdig for the checks, iproute2 for the namespaces. Debian may try to
# start the packaged daemons; the lab runs its own inside namespaces, so stop them where we can.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -ne 0 ]; then
    echo "lab/setup.sh: run as root" >&2
    exit 1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    bird2 exabgp nsd knot-dnsutils dnsutils iproute2 python3 procps >/dev/null
for unit in bird exabgp nsd; do
    if command -v systemctl >/dev/null 2>&1; then
        systemctl stop "$unit" >/dev/null 2>&1 || true
        systemctl disable "$unit" >/dev/null 2>&1 || true
    fi
done
echo "lab/setup.sh: $(bird --version 2>&1 | head -n1); $(exabgp --version 2>&1 | head -n1); $(nsd -v 2>&1 | head -n1)"
