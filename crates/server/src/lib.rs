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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyns_engine::Engine;
use anyns_zone::ZoneSet;
use arc_swap::ArcSwap;

pub use anyns_engine::{Reply, Transport};
pub use counters::{TcpCounterValues, TcpCounters, UdpCounterValues, UdpCounters};
pub use error::Error;
pub use server::{Server, ServerConfig};
pub use tcp::TcpConfig;
pub use udp::UdpConfig;

/// Largest DNS message; every answer buffer handed to a [`Handler`] has this size.
pub use anyns_netsys::MAX_MESSAGE_SIZE;

/// Turns one request into one response. Called on the hot path: no allocation, no blocking.
pub trait Handler: Send + Sync + 'static {
    /// Writes the response to `request` into `out` ([`MAX_MESSAGE_SIZE`] octets): returns
    /// [`Reply::Answer`] with its length (a length above `out.len()` counts as a drop),
    /// [`Reply::Drop`] to send nothing, or [`Reply::Declined`] to have the request handed to
    /// [`Handler::respond_declined`] with the client's address.
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Reply;

    /// A request [`Handler::respond`] declined (NOTIFY, zone transfers, TSIG): rare, so it may
    /// allocate. `client` is the request's source address.
    fn respond_declined(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut [u8],
    ) -> DeclinedReply {
        let _ = (request, client, transport, out);
        DeclinedReply::Drop
    }
}

/// Response messages produced one at a time (a zone transfer), without the TCP length prefix.
pub type MessageStream = Box<dyn Iterator<Item = Vec<u8>> + Send>;

/// The answer to a declined request.
pub enum DeclinedReply {
    /// The response is the first `len` octets of `out`.
    Answer(usize),
    Drop,
    /// Over TCP: several messages, each sent with its length prefix as it is produced, before
    /// the connection's next answer (RFC 5936 section 2.2). Over UDP it is dropped.
    Messages(MessageStream),
}

/// Where the real handler sends what the answer engine declines: NOTIFY (RFC 1996), AXFR/IXFR
/// (RFC 5936, RFC 1995) and TSIG-signed requests (RFC 8945). The binary implements it with the
/// zone-transfer crate.
pub trait TransferHandler: Send + Sync + 'static {
    fn respond(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut [u8],
    ) -> DeclinedReply;
}

/// The real handler: the answer engine over the current zone snapshot (DESIGN decision 2).
pub struct Service {
    pub engine: Engine,
    /// Replaced whole on reload with `service.zones.store(Arc::new(new_set))`; a query sees
    /// either the old or the new set, never a mix.
    pub zones: ArcSwap<ZoneSet>,
    /// Lab fault injection: drop every request, as a wedged data plane would.
    dropping: AtomicBool,
    /// Set once the zone-transfer side runs; until then the engine answers declined requests
    /// itself (NOTIMP for NOTIFY, REFUSED for transfers, NOTAUTH for TSIG).
    transfers: OnceLock<Arc<dyn TransferHandler>>,
}

impl Service {
    pub fn new(engine: Engine, zones: ZoneSet) -> Self {
        Service {
            engine,
            zones: ArcSwap::from_pointee(zones),
            dropping: AtomicBool::new(false),
            transfers: OnceLock::new(),
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

    /// Hands NOTIFY, transfers and TSIG-signed requests to `handler` from now on. Only the
    /// first call has an effect.
    pub fn set_transfer_handler(&self, handler: Arc<dyn TransferHandler>) {
        let _ = self.transfers.set(handler);
    }
}

impl Handler for Service {
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Reply {
        if self.dropping.load(Ordering::Relaxed) {
            return Reply::Drop;
        }
        // A guard, not a clone of the Arc: no lock and no reference-count traffic per query.
        let zones = self.zones.load();
        match self
            .engine
            .respond_or_decline(&zones, request, transport, out)
        {
            Reply::Declined if self.transfers.get().is_none() => {
                match self.engine.respond(&zones, request, transport, out) {
                    Some(len) => Reply::Answer(len),
                    None => Reply::Drop,
                }
            }
            reply => reply,
        }
    }

    fn respond_declined(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut [u8],
    ) -> DeclinedReply {
        match self.transfers.get() {
            Some(transfers) => transfers.respond(request, client, transport, out),
            None => DeclinedReply::Drop,
        }
    }
}

impl<H: Handler> Handler for Arc<H> {
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Reply {
        H::respond(self, request, transport, out)
    }

    fn respond_declined(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut [u8],
    ) -> DeclinedReply {
        H::respond_declined(self, request, client, transport, out)
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
        let answered = |r| matches!(r, Reply::Answer(_));
        assert!(answered(service.respond(
            &request,
            Transport::Udp,
            &mut out
        )));
        // ...except while the fault is on.
        service.set_dropping(true);
        assert_eq!(
            service.respond(&request, Transport::Udp, &mut out),
            Reply::Drop
        );
        service.set_dropping(false);
        assert!(answered(service.respond(
            &request,
            Transport::Udp,
            &mut out
        )));
    }

    #[test]
    fn declined_requests_go_to_the_transfer_handler_once_there_is_one() {
        struct Notimp;
        impl TransferHandler for Notimp {
            fn respond(
                &self,
                _: &[u8],
                _: SocketAddr,
                _: Transport,
                out: &mut [u8],
            ) -> DeclinedReply {
                out[0] = 0xaa;
                DeclinedReply::Answer(1)
            }
        }
        let service = Service::new(Engine::new(EngineConfig::default()), ZoneSet::default());
        let mut out = vec![0; MAX_MESSAGE_SIZE];
        // An AXFR query for example.
        let mut axfr = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7];
        axfr.extend_from_slice(b"example\0\0\xfc\0\x01");
        let client = SocketAddr::from(([127, 0, 0, 1], 5353));
        // Without a handler the engine answers (REFUSED).
        assert!(matches!(
            service.respond(&axfr, Transport::Tcp, &mut out),
            Reply::Answer(_)
        ));
        service.set_transfer_handler(Arc::new(Notimp));
        assert_eq!(
            service.respond(&axfr, Transport::Tcp, &mut out),
            Reply::Declined
        );
        assert!(matches!(
            service.respond_declined(&axfr, client, Transport::Tcp, &mut out),
            DeclinedReply::Answer(1)
        ));
    }
}
