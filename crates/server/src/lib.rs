//! The data plane (DESIGN decision 1): per-core UDP workers with their own `SO_REUSEPORT` socket
//! per listen address and a batched `recvmmsg`/`sendmmsg` loop, replies sent from the address the
//! query came to (IP_PKTINFO / IPV6_PKTINFO), and DNS over TCP per RFC 7766 on tokio.
//!
//! Answers come from a [`Handler`]; [`Service`] is the real one (zone snapshot + answer engine).
//! A [`Server`] owns the sockets, threads and tasks for a list of listen addresses.

mod counters;
mod error;
mod server;
mod tcp;
mod udp;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyns_engine::Engine;
use anyns_zone::ZoneSet;
use arc_swap::ArcSwap;

pub use anyns_engine::Transport;
pub use counters::{TcpCounterValues, TcpCounters, UdpCounterValues, UdpCounters};
pub use error::Error;
pub use server::{Server, ServerConfig};
pub use tcp::TcpConfig;
pub use udp::UdpConfig;

/// Largest DNS message; every answer buffer handed to a [`Handler`] has this size.
pub use anyns_netsys::MAX_MESSAGE_SIZE;

/// Turns one request into one response. Called on the hot path: no allocation, no blocking.
pub trait Handler: Send + Sync + 'static {
    /// Writes the response to `request` into `out` ([`MAX_MESSAGE_SIZE`] octets) and returns
    /// its length, or `None` to send nothing. A length above `out.len()` is treated as `None`.
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Option<usize>;
}

/// The real handler: the answer engine over the current zone snapshot (DESIGN decision 2).
pub struct Service {
    pub engine: Engine,
    /// Replaced whole on reload with `service.zones.store(Arc::new(new_set))`; a query sees
    /// either the old or the new set, never a mix.
    pub zones: ArcSwap<ZoneSet>,
    /// Lab fault injection: drop every request, as a wedged data plane would.
    dropping: AtomicBool,
}

impl Service {
    pub fn new(engine: Engine, zones: ZoneSet) -> Self {
        Service {
            engine,
            zones: ArcSwap::from_pointee(zones),
            dropping: AtomicBool::new(false),
        }
    }

    /// Makes the data plane drop every request (`true`) or answer again (`false`). For the
    /// lab's failover measurement: the process lives, the service does not answer.
    pub fn set_dropping(&self, drop_all: bool) {
        self.dropping.store(drop_all, Ordering::Relaxed);
    }

    /// The zone set queries see now (a cheap guard; do not hold it for long).
    pub fn zones(&self) -> arc_swap::Guard<Arc<ZoneSet>> {
        self.zones.load()
    }

    /// Swaps in a new zone set: queries already running finish on the old one.
    pub fn set_zones(&self, zones: ZoneSet) {
        self.zones.store(Arc::new(zones));
    }
}

impl Handler for Service {
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Option<usize> {
        if self.dropping.load(Ordering::Relaxed) {
            return None;
        }
        // A guard, not a clone of the Arc: no lock and no reference-count traffic per query.
        let zones = self.zones.load();
        self.engine.respond(&zones, request, transport, out)
    }
}

impl<H: Handler> Handler for Arc<H> {
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Option<usize> {
        H::respond(self, request, transport, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyns_engine::EngineConfig;

    #[test]
    fn service_answers_from_the_zone_set_it_holds_now() {
        let service = Service::new(Engine::new(EngineConfig::default()), ZoneSet::default());
        let mut out = vec![0; MAX_MESSAGE_SIZE];
        // Whatever the engine answers, a too-short request must not panic; the swap is atomic.
        let _ = service.respond(&[0; 3], Transport::Udp, &mut out);
        service.set_zones(ZoneSet::default());
        assert_eq!(service.zones().iter().count(), 0);
        let _ = service.respond(&[0; 3], Transport::Tcp, &mut out);
    }

    #[test]
    fn a_dropping_service_answers_nothing() {
        let service = Service::new(Engine::new(EngineConfig::default()), ZoneSet::default());
        let mut out = vec![0; MAX_MESSAGE_SIZE];
        // A header-only malformed request is always answered (FORMERR)...
        let request = [0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(
            service
                .respond(&request, Transport::Udp, &mut out)
                .is_some()
        );
        // ...except while the fault is on.
        service.set_dropping(true);
        assert!(
            service
                .respond(&request, Transport::Udp, &mut out)
                .is_none()
        );
        service.set_dropping(false);
        assert!(
            service
                .respond(&request, Transport::Udp, &mut out)
                .is_some()
        );
    }
}
