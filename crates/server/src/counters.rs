//! Plain counters of the data plane, read from outside (the Prometheus collector, the status API).
//!
//! UDP counters are per worker: each is written by one thread only, once per batch, and padded to
//! its own cache lines, so counting adds no contention. Readers see `Relaxed` values, which is
//! all a metric needs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one UDP worker thread (all its listen addresses).
// 128 bytes: a cache line plus the adjacent line the x86 prefetcher pulls in with it.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct UdpCounters {
    pub queries_received: AtomicU64,
    pub responses_sent: AtomicU64,
    /// Requests not answered: the handler returned `None`, or the datagram was truncated.
    pub dropped: AtomicU64,
    pub send_errors: AtomicU64,
    pub receive_errors: AtomicU64,
    /// Requests whose handler panicked; the worker carries on (a query of death must not take
    /// the workers down one by one while the node keeps announcing its route).
    pub handler_panics: AtomicU64,
}

/// A copy of [`UdpCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounterValues {
    pub queries_received: u64,
    pub responses_sent: u64,
    pub dropped: u64,
    pub send_errors: u64,
    pub receive_errors: u64,
    pub handler_panics: u64,
}

impl UdpCounters {
    pub fn snapshot(&self) -> UdpCounterValues {
        UdpCounterValues {
            queries_received: self.queries_received.load(Relaxed),
            responses_sent: self.responses_sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            receive_errors: self.receive_errors.load(Relaxed),
            handler_panics: self.handler_panics.load(Relaxed),
        }
    }
}

impl std::ops::AddAssign for UdpCounterValues {
    fn add_assign(&mut self, other: Self) {
        self.queries_received += other.queries_received;
        self.responses_sent += other.responses_sent;
        self.dropped += other.dropped;
        self.send_errors += other.send_errors;
        self.receive_errors += other.receive_errors;
        self.handler_panics += other.handler_panics;
    }
}

/// Counters of all TCP listeners of a server. Shared by the connection tasks: TCP rates are
/// far below UDP's, so one set of atomics is enough.
#[derive(Debug, Default)]
pub struct TcpCounters {
    pub connections_accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_rejected: AtomicU64,
    /// Open connections now (a gauge).
    pub connections_open: AtomicU64,
    pub queries_received: AtomicU64,
    pub responses_sent: AtomicU64,
    /// Requests the handler returned `None` for.
    pub dropped: AtomicU64,
    /// Connections closed after the idle timeout (RFC 7766 section 6.2.3).
    pub idle_timeouts: AtomicU64,
    /// Connections closed because the client did not read its answers in time.
    pub write_timeouts: AtomicU64,
    /// Connections ended by an I/O error (reset by the peer, mostly) and failed accepts.
    pub errors: AtomicU64,
}

/// A copy of [`TcpCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounterValues {
    pub connections_accepted: u64,
    pub connections_rejected: u64,
    pub connections_open: u64,
    pub queries_received: u64,
    pub responses_sent: u64,
    pub dropped: u64,
    pub idle_timeouts: u64,
    pub write_timeouts: u64,
    pub errors: u64,
}

impl TcpCounters {
    pub fn snapshot(&self) -> TcpCounterValues {
        TcpCounterValues {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_rejected: self.connections_rejected.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            queries_received: self.queries_received.load(Relaxed),
            responses_sent: self.responses_sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            idle_timeouts: self.idle_timeouts.load(Relaxed),
            write_timeouts: self.write_timeouts.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

/// Adds `n` to a counter; skips the atomic operation when there is nothing to add.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.fetch_add(n, Relaxed);
    }
}
