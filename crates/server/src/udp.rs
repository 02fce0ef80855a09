//! UDP workers (DESIGN decision 1): each worker is an OS thread with its own `SO_REUSEPORT`
//! socket per listen address, so the kernel spreads flows over the workers; a blocking loop
//! receives and sends in batches, with no async and no allocation per query.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::counters::{UdpCounters, add};
use crate::{DeclinedReply, Handler, MAX_MESSAGE_SIZE, Reply, Transport};
use anyns_netsys::{Batch, Poller};

/// How long an idle worker waits for a datagram before it looks at the stop flag again: the
/// longest a shutdown waits for a worker.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// A send that blocks longer than this (a full socket buffer that does not drain) fails.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct UdpConfig {
    /// Worker threads; `None` is one per core.
    pub workers: Option<NonZeroUsize>,
    /// Datagrams received and sent per system call (at most 1024).
    pub batch_size: NonZeroUsize,
    /// SO_RCVBUF for each socket; `None` keeps the system default (net.core.rmem_default). The
    /// kernel caps it at net.core.rmem_max.
    pub recv_buffer_size: Option<usize>,
    /// IP_FREEBIND: bind an address before it is configured on the host, e.g. a VIP that the
    /// health logic adds later.
    pub freebind: bool,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            workers: None,
            batch_size: NonZeroUsize::new(32).unwrap_or(NonZeroUsize::MIN),
            // Room for bursts: with the 208 KiB default the kernel dropped ~0.15% of a
            // saturating dnsperf load (bench/RESULTS.md); Knot and NSD also raise it.
            recv_buffer_size: Some(4 << 20),
            freebind: false,
        }
    }
}

impl UdpConfig {
    pub(crate) fn worker_count(&self) -> usize {
        self.workers
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }
}

/// A UDP socket for one worker: SO_REUSEPORT so that every worker binds the same address,
/// packet info on so that replies leave from the address the query came to, IPV6_V6ONLY so that
/// `[::]` and `0.0.0.0` are separate listen addresses.
pub(crate) fn bind(addr: SocketAddr, config: &UdpConfig) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        if config.freebind {
            socket.set_freebind_ipv6(true)?;
        }
    } else if config.freebind {
        socket.set_freebind(true)?;
    }
    socket.set_reuse_port(true)?;
    if let Some(size) = config.recv_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    anyns_netsys::enable_pktinfo(&socket, addr.is_ipv6())?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// One worker thread's state: its sockets (one per listen address) and what it shares.
pub(crate) struct Worker<H> {
    pub sockets: Vec<Socket>,
    pub handler: Arc<H>,
    pub counters: Arc<UdpCounters>,
    pub stop: Arc<AtomicBool>,
    pub batch_size: usize,
}

impl<H: Handler> Worker<H> {
    /// Runs until the stop flag is set. Each socket is drained without waiting, one batch at a
    /// time in turn; only when none has anything does the worker sleep in poll(2).
    pub(crate) fn run(self) {
        let mut batch = Batch::new(self.batch_size);
        let mut poller = Poller::new(&self.sockets);
        while !self.stop.load(Relaxed) {
            let mut busy = false;
            for socket in &self.sockets {
                match batch.recv(socket) {
                    Ok(0) => {}
                    Ok(n) => {
                        busy = true;
                        self.answer(&mut batch, n);
                        let outcome = batch.send(socket);
                        add(&self.counters.responses_sent, outcome.sent as u64);
                        add(&self.counters.send_errors, outcome.failed as u64);
                        if let Some(error) = outcome.error {
                            tracing::debug!(%error, "udp send failed");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => busy = true,
                    Err(error) => {
                        add(&self.counters.receive_errors, 1);
                        tracing::debug!(%error, "udp receive failed");
                    }
                }
            }
            if !busy {
                if let Err(error) = poller.wait(IDLE_WAIT) {
                    if error.kind() != io::ErrorKind::Interrupted {
                        tracing::warn!(%error, "poll failed");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
    }

    /// Asks the handler for each of the `n` requests of the batch and queues the answers.
    fn answer(&self, batch: &mut Batch, n: usize) {
        let mut dropped = 0;
        let mut panics = 0;
        for i in 0..n {
            let Some((request, out)) = batch.slot(i) else {
                // Truncated: larger than any DNS message we accept.
                dropped += 1;
                continue;
            };
            let handler = &self.handler;
            let reply = catch_unwind(AssertUnwindSafe(|| {
                handler.respond(request, Transport::Udp, out)
            }));
            let len = match reply {
                Ok(Reply::Answer(len)) => Some(len),
                Ok(Reply::Drop) => None,
                Ok(Reply::Declined) => match self.answer_declined(batch, i) {
                    Ok(len) => len,
                    Err(()) => {
                        panics += 1;
                        continue;
                    }
                },
                Err(_) => {
                    panics += 1;
                    continue;
                }
            };
            match len {
                Some(len) if len <= MAX_MESSAGE_SIZE => batch.queue_reply(i, len),
                _ => dropped += 1,
            }
        }
        if panics > 0 {
            // Once per batch: a flood of such requests must not flood the log too.
            tracing::error!(
                panics,
                "handler panicked on udp requests; they were dropped"
            );
        }
        add(&self.counters.queries_received, n as u64);
        add(&self.counters.dropped, dropped);
        add(&self.counters.handler_panics, panics);
    }

    /// The rare path: a request the engine declined, handed over with its source address.
    /// `Err` when the handler panicked.
    fn answer_declined(&self, batch: &mut Batch, i: usize) -> Result<Option<usize>, ()> {
        let Some(client) = batch.source(i) else {
            return Ok(None);
        };
        let Some((request, out)) = batch.slot(i) else {
            return Ok(None);
        };
        let handler = &self.handler;
        match catch_unwind(AssertUnwindSafe(|| {
            handler.respond_declined(request, client, Transport::Udp, out)
        })) {
            Ok(DeclinedReply::Answer(len)) => Ok(Some(len)),
            // Several messages cannot go over UDP.
            Ok(DeclinedReply::Drop | DeclinedReply::Messages(_)) => Ok(None),
            Err(_) => Err(()),
        }
    }
}
