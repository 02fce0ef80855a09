"""The lab's topology and address plan: one place for every name, address and AS number.

Three sites in a line, A -- B -- C, each a node (DNS server + its BGP speaker, the VIPs on `lo`)
behind its own router (BIRD 2). Clients hang off routers A and C. Every address is from the
documentation / shared ranges (RFC 5737, RFC 3849, RFC 6598), the namespaces have no link to
the host's network, so nothing here can leak out.

    client1 ── router-a ──── router-b ──── router-c ── client2
               AS 65001      AS 65002      AS 65003
                  │             │             │
               node-a        node-b        node-c        (AS 65000 each: one anycast origin AS)
"""

from dataclasses import dataclass

PREFIX = "anyns-lab-"
"""Every namespace the lab creates starts with this; `down` removes exactly these."""

VIP4 = "192.0.2.53"
VIP6 = "2001:db8:53::53"
VIP_PREFIXES = (f"{VIP4}/32", f"{VIP6}/128")

NODE_ASN = 65000
ZONE = "example.test"

# Hold time the reference speaker (ExaBGP) offers on its sessions to the router; BIRD's default
# on the node sessions is 240 s, so the session runs with the smaller, this one. 90 s is
# RFC 4271 section 10's suggested value and also anyns's default (crates/bgp `PeerConfig`).
NODE_HOLD_TIME = 90

# Timers of the router-to-router sessions: short, so that the routers are never what we measure.
CORE_HOLD_TIME = 3
CORE_KEEPALIVE = 1


@dataclass(frozen=True)
class Site:
    key: str  # "a"
    router_asn: int
    router_id: str
    # node <-> router link
    link4: str  # router side .1, node side .2 of a /30
    link6: str  # ::1 router, ::2 node of a /64

    @property
    def name(self) -> str:
        return f"site-{self.key}"

    @property
    def node_name(self) -> str:
        """The node's name inside its site; identity answers are `<node>.<site>`."""
        return f"{self.key}1"

    @property
    def identity(self) -> str:
        return f"{self.node_name}.{self.name}"

    @property
    def router_ns(self) -> str:
        return f"{PREFIX}router-{self.key}"

    @property
    def node_ns(self) -> str:
        return f"{PREFIX}node-{self.key}"

    @property
    def router_addr4(self) -> str:
        return _host4(self.link4, 1)

    @property
    def node_addr4(self) -> str:
        return _host4(self.link4, 2)

    @property
    def router_addr6(self) -> str:
        return f"{self.link6}1"

    @property
    def node_addr6(self) -> str:
        return f"{self.link6}2"

    @property
    def node_router_id(self) -> str:
        return self.node_addr4


@dataclass(frozen=True)
class CoreLink:
    """A router-to-router link; `left` gets .1/::1, `right` .2/::2."""

    left: str
    right: str
    net4: str
    net6: str

    def addr4(self, key: str) -> str:
        return _host4(self.net4, 1 if key == self.left else 2)

    def addr6(self, key: str) -> str:
        return f"{self.net6}{1 if key == self.left else 2}"

    def other(self, key: str) -> str:
        return self.right if key == self.left else self.left


@dataclass(frozen=True)
class Client:
    name: str  # "client1"
    router: str  # site key of the router it hangs off
    net4: str  # /24, router .1, client .10
    net6: str  # /64, router ::1, client ::10
    nearest: str  # the site key that should answer it

    @property
    def ns(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def addr4(self) -> str:
        return _host4(self.net4, 10)

    @property
    def gw4(self) -> str:
        return _host4(self.net4, 1)

    @property
    def addr6(self) -> str:
        return f"{self.net6}10"

    @property
    def gw6(self) -> str:
        return f"{self.net6}1"


SITES = {
    "a": Site("a", 65001, "100.64.255.1", "198.51.100.0", "2001:db8:1:a::"),
    "b": Site("b", 65002, "100.64.255.2", "198.51.100.4", "2001:db8:1:b::"),
    "c": Site("c", 65003, "100.64.255.3", "198.51.100.8", "2001:db8:1:c::"),
}

CORE_LINKS = (
    CoreLink("a", "b", "203.0.113.0", "2001:db8:2:ab::"),
    CoreLink("b", "c", "203.0.113.4", "2001:db8:2:bc::"),
)

CLIENTS = {
    "client1": Client("client1", "a", "100.64.1.0", "2001:db8:3:1::", nearest="a"),
    "client2": Client("client2", "c", "100.64.3.0", "2001:db8:3:3::", nearest="c"),
}


def _host4(net: str, n: int) -> str:
    parts = net.split(".")
    return ".".join(parts[:3] + [str(int(parts[3]) + n)])


def core_links_of(key: str) -> list[CoreLink]:
    return [link for link in CORE_LINKS if key in (link.left, link.right)]


def all_namespaces() -> list[str]:
    names = []
    for site in SITES.values():
        names += [site.router_ns, site.node_ns]
    names += [c.ns for c in CLIENTS.values()]
    return names


def expected_paths(router_key: str, down: frozenset = frozenset()) -> list[str]:
    """AS paths a router should hold for the VIP, best first, with the sites in `down`
    withdrawn. BGP passes on only each router's best path, so a router sees its own node's
    route ("65000") and, from each neighbour router, that router's best."""
    best = _best_paths(down)
    paths = []
    if router_key not in down:
        paths.append(str(NODE_ASN))
    for link in core_links_of(router_key):
        other = link.other(router_key)
        path = best.get(other)
        if path is not None and str(SITES[router_key].router_asn) not in path.split():
            paths.append(f"{SITES[other].router_asn} {path}")
    paths.sort(key=lambda p: len(p.split()))
    return paths


def _best_paths(down: frozenset) -> dict:
    """Shortest AS path each router selects (ties cannot happen in a line of three)."""
    best = {k: (str(NODE_ASN) if k not in down else None) for k in SITES}
    for _ in range(len(SITES)):
        for link in CORE_LINKS:
            for here, there in ((link.left, link.right), (link.right, link.left)):
                if best[there] is None:
                    continue
                candidate = f"{SITES[there].router_asn} {best[there]}"
                if str(SITES[here].router_asn) in best[there].split():
                    continue
                if best[here] is None or len(candidate.split()) < len(best[here].split()):
                    best[here] = candidate
    return best


def answering_site(client: Client, down: frozenset = frozenset()) -> str | None:
    """The site a client should reach with the sites in `down` withdrawn."""
    path = _best_paths(down).get(client.router)
    if path is None:
        return None
    # The last router AS before the origin names the site whose node originated the path.
    hops = path.split()
    if len(hops) == 1:
        return client.router
    origin_router_asn = int(hops[-2])
    return next(k for k, s in SITES.items() if s.router_asn == origin_router_asn)
