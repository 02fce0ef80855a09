//! A running data plane: UDP worker threads and TCP accept tasks for a list of addresses.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use socket2::Socket;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::counters::{TcpCounters, UdpCounterValues, UdpCounters};
use crate::tcp::{self, TcpConfig};
use crate::udp::{self, UdpConfig};
use crate::{Error, Handler};

/// Tries at picking a port when a listen address has port 0 (tests, mostly): the port the
/// kernel gives the UDP socket may be taken for TCP.
const PORT_ATTEMPTS: usize = 16;

/// How long `shutdown` waits for the runtime to drop the TCP listeners.
const TCP_CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// Addresses to serve UDP and TCP on. Port 0 picks a free port, the same for UDP and TCP
    /// of that address; [`Server::local_addrs`] tells which.
    pub listen: Vec<SocketAddr>,
    pub udp: UdpConfig,
    pub tcp: TcpConfig,
}

/// The running data plane. Stop it with [`Server::shutdown`]; dropping it also stops it, but
/// without waiting for the threads and sockets to go.
pub struct Server {
    local_addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    udp_counters: Vec<Arc<UdpCounters>>,
    tcp_tasks: Vec<tokio::task::JoinHandle<()>>,
    tcp_counters: Arc<TcpCounters>,
    /// Disconnected once every TCP accept task (and with it its listener) has been dropped.
    /// In a mutex only so that `Server` is `Sync`.
    tcp_closed: Mutex<mpsc::Receiver<()>>,
}

impl Server {
    /// Binds every address in `config.listen` for UDP (one socket per worker) and TCP, then
    /// starts the UDP worker threads and spawns the TCP accept tasks on `runtime`. Nothing is
    /// left running when it fails; the error names the address that could not be bound.
    pub fn start<H: Handler>(
        config: &ServerConfig,
        handler: Arc<H>,
        runtime: &Handle,
    ) -> Result<Server, Error> {
        if config.listen.is_empty() {
            return Err(Error::NoListenAddress);
        }
        let workers = config.udp.worker_count();
        let mut worker_sockets: Vec<Vec<Socket>> = (0..workers).map(|_| Vec::new()).collect();
        let mut listeners = Vec::new();
        for &addr in &config.listen {
            let (first, listener, bound) = bind_address(addr, &config.udp)?;
            let mut sockets = worker_sockets.iter_mut();
            if let Some(own) = sockets.next() {
                own.push(first);
            }
            for own in sockets {
                own.push(
                    udp::bind(bound, &config.udp).map_err(|reason| Error::BindUdp {
                        addr: bound,
                        reason,
                    })?,
                );
            }
            listeners.push((bound, listener));
        }

        let (tcp_open, tcp_closed) = mpsc::channel();
        let mut server = Server {
            local_addrs: listeners.iter().map(|(addr, _)| *addr).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            udp_threads: Vec::with_capacity(workers),
            udp_counters: Vec::with_capacity(workers),
            tcp_tasks: Vec::with_capacity(listeners.len()),
            tcp_counters: Arc::new(TcpCounters::default()),
            tcp_closed: Mutex::new(tcp_closed),
        };
        // From here on an early return drops `server`, which stops what was started.

        let shared = Arc::new(tcp::Shared {
            handler: handler.clone(),
            config: config.tcp.clone(),
            counters: server.tcp_counters.clone(),
            limit: Arc::new(Semaphore::new(
                config.tcp.max_connections.get().min(Semaphore::MAX_PERMITS),
            )),
        });
        for (addr, listener) in listeners {
            let listener = {
                let _runtime = runtime.enter();
                TcpListener::from_std(listener)
            }
            .map_err(|reason| Error::BindTcp { addr, reason })?;
            let shared = shared.clone();
            let open = tcp_open.clone();
            server.tcp_tasks.push(runtime.spawn(async move {
                let _open = open;
                tcp::accept_loop(listener, shared).await;
            }));
        }
        drop(tcp_open);

        for (index, sockets) in worker_sockets.into_iter().enumerate() {
            let counters = Arc::new(UdpCounters::default());
            let worker = udp::Worker {
                sockets,
                handler: handler.clone(),
                counters: counters.clone(),
                stop: server.stop.clone(),
                batch_size: config.udp.batch_size.get(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("anyns-udp-{index}"))
                .spawn(move || worker.run())
                .map_err(|reason| Error::SpawnWorker { reason })?;
            server.udp_threads.push(thread);
            server.udp_counters.push(counters);
        }
        for addr in &server.local_addrs {
            tracing::info!(%addr, workers, "serving dns over udp and tcp");
        }
        Ok(server)
    }

    /// The addresses served, with the ports picked for port 0, in `config.listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// One set of counters per UDP worker thread.
    pub fn udp_counters(&self) -> &[Arc<UdpCounters>] {
        &self.udp_counters
    }

    /// The UDP counters summed over all workers.
    pub fn udp_totals(&self) -> UdpCounterValues {
        let mut total = UdpCounterValues::default();
        for counters in &self.udp_counters {
            total += counters.snapshot();
        }
        total
    }

    pub fn tcp_counters(&self) -> &Arc<TcpCounters> {
        &self.tcp_counters
    }

    /// Stops the server and waits for it: UDP workers finish their batch and exit (within about
    /// 250 ms), TCP listeners and connections are aborted. Blocks: from async code, call it in
    /// `spawn_blocking`. Every socket is closed when it returns, unless the runtime did not get
    /// to drop the TCP tasks within two seconds (then it logs a warning and returns anyway).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.signal_stop();
        let mut result = Ok(());
        for thread in self.udp_threads.drain(..) {
            let name = thread.thread().name().unwrap_or("udp worker").to_string();
            if thread.join().is_err() {
                result = Err(Error::WorkerPanicked { name });
            }
        }
        let tcp_closed = self
            .tcp_closed
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + TCP_CLOSE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tcp_closed.recv_timeout(left) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!("tcp listeners not closed yet; is the runtime running?");
                    break;
                }
            }
        }
        result
    }

    fn signal_stop(&mut self) {
        self.stop.store(true, Relaxed);
        for task in &self.tcp_tasks {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Binds the first UDP socket and the TCP listener of `addr`, on the same port.
fn bind_address(
    addr: SocketAddr,
    config: &UdpConfig,
) -> Result<(Socket, std::net::TcpListener, SocketAddr), Error> {
    let attempts = if addr.port() == 0 { PORT_ATTEMPTS } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp_error = |reason| Error::BindUdp { addr, reason };
        let socket = udp::bind(addr, config).map_err(udp_error)?;
        let bound = socket
            .local_addr()
            .and_then(|a| {
                a.as_socket()
                    .ok_or_else(|| io::Error::other("not an IP socket address"))
            })
            .map_err(udp_error)?;
        match tcp::bind(bound) {
            Ok(listener) => return Ok((socket, listener, bound)),
            Err(reason) if addr.port() == 0 && reason.kind() == io::ErrorKind::AddrInUse => {
                last_error = Some(reason);
            }
            Err(reason) => {
                return Err(Error::BindTcp {
                    addr: bound,
                    reason,
                });
            }
        }
    }
    Err(Error::BindTcp {
        addr,
        reason: last_error.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_can_be_shared_with_a_metrics_collector() {
        fn shared<T: Send + Sync>() {}
        shared::<Server>();
    }
}
