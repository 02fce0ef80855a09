//! The tokio driver: sockets and timers around each peer's [`Session`].
//!
//! One task per peer owns its session and feeds it what the network does; one task per
//! listening address accepts connections and hands each to the peer it comes from. Each TCP
//! connection has a reader task (framing: the 19-octet header, then the body it declares,
//! RFC 4271 section 4.1) and a writer task. [`Speaker`] is the handle the binary and the health
//! logic use: [`Speaker::set_routes`], [`Speaker::status`], [`Speaker::shutdown`].

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{PeerConfig, SpeakerConfig};
use crate::fsm::{Action, ConnectionId, Event, PeerStatus, Session, SessionConfig, State};
use crate::packet::{self, HEADER_LEN};
use crate::rib_out::Routes;

/// How long a TCP connect may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for NOTIFICATIONs to be written.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// How to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Cease / Administrative Shutdown (RFC 4486), with an optional RFC 8203 Shutdown
    /// Communication: peers withdraw our routes at once.
    Cease { communication: Option<String> },
    /// Close the TCP connections without a NOTIFICATION, so that peers that negotiated
    /// graceful restart keep our routes as stale for the restart time (RFC 4724 section 4.2)
    /// until the next process comes up and sends its End-of-RIB. For planned restarts.
    GracefulRestart,
}

/// Errors starting the speaker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("TCP-MD5 key for peer {peer} on {address}: {source}")]
    Md5 {
        peer: IpAddr,
        address: SocketAddr,
        source: io::Error,
    },
    #[error("two peers with address {0}")]
    DuplicatePeer(IpAddr),
}

enum PeerInput {
    Accepted(TcpStream, SocketAddr, SocketAddr),
    Connected(ConnectionId, io::Result<TcpStream>),
    Frame(ConnectionId, Vec<u8>),
    Closed(ConnectionId, String),
    Shutdown(ShutdownMode, oneshot::Sender<()>),
}

struct PeerHandle {
    inputs: mpsc::UnboundedSender<PeerInput>,
    status: watch::Receiver<(PeerStatus, Instant)>,
    task: JoinHandle<()>,
}

/// A running BGP speaker.
pub struct Speaker {
    routes: watch::Sender<Routes>,
    peers: Vec<PeerHandle>,
    listeners: Vec<JoinHandle<()>>,
    listen_addresses: Vec<SocketAddr>,
}

impl Speaker {
    /// Binds the listeners and starts one session per peer (RFC 4271 ManualStart). Must run
    /// inside a tokio runtime.
    pub async fn start(config: SpeakerConfig) -> Result<Speaker, StartError> {
        let (routes, _) = watch::channel(Routes::new());
        let mut by_address: HashMap<IpAddr, mpsc::UnboundedSender<PeerInput>> = HashMap::new();
        let mut groups: BTreeMap<SocketAddr, Vec<&PeerConfig>> = BTreeMap::new();
        for peer in &config.peers {
            let local = peer.local_address.unwrap_or(match peer.address {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            });
            groups
                .entry(SocketAddr::new(local, config.listen_port))
                .or_default()
                .push(peer);
        }
        let mut sockets = Vec::new();
        for (address, peers) in &groups {
            let socket = listen_socket(*address, peers)?;
            sockets.push((
                *address,
                socket,
                peers.iter().map(|p| p.address).collect::<Vec<_>>(),
            ));
        }
        let mut peers = Vec::new();
        for peer in &config.peers {
            if by_address.contains_key(&peer.address) {
                return Err(StartError::DuplicatePeer(peer.address));
            }
            let (inputs, receiver) = mpsc::unbounded_channel();
            let session = Session::new(SessionConfig::new(&config, peer));
            let now = Instant::now();
            let (status_tx, status) = watch::channel((session.status(now), now));
            let task = tokio::spawn(
                run_peer(
                    peer.clone(),
                    session,
                    inputs.clone(),
                    receiver,
                    routes.subscribe(),
                    status_tx,
                )
                .instrument(tracing::info_span!("bgp", peer = %peer.address)),
            );
            by_address.insert(peer.address, inputs.clone());
            peers.push(PeerHandle {
                inputs,
                status,
                task,
            });
        }
        let mut listeners = Vec::new();
        let mut listen_addresses = Vec::new();
        for (address, socket, addresses) in sockets {
            let listener = TcpListener::from_std(socket.into())
                .map_err(|source| StartError::Listen { address, source })?;
            listen_addresses.push(listener.local_addr().unwrap_or(address));
            let targets: HashMap<IpAddr, mpsc::UnboundedSender<PeerInput>> = addresses
                .iter()
                .filter_map(|a| by_address.get(a).map(|s| (*a, s.clone())))
                .collect();
            listeners.push(tokio::spawn(accept_loop(listener, targets)));
        }
        Ok(Speaker {
            routes,
            peers,
            listeners,
            listen_addresses,
        })
    }

    /// The routes every session should carry (the health policy's intent). Sessions send
    /// only the difference from what their peer has.
    pub fn set_routes(&self, routes: Routes) {
        self.routes.send_replace(routes);
    }

    /// A handle that sets the routes like [`set_routes`](Self::set_routes), for a task that
    /// follows the health intent while the speaker itself stays with its owner.
    pub fn routes_sender(&self) -> watch::Sender<Routes> {
        self.routes.clone()
    }

    /// Per-peer state, one entry per configured peer, in config order.
    pub fn status(&self) -> Vec<PeerStatus> {
        let now = Instant::now();
        self.peers
            .iter()
            .map(|p| {
                let (mut status, at) = p.status.borrow().clone();
                if let Some(uptime) = status.uptime.as_mut() {
                    *uptime += now.saturating_duration_since(at);
                }
                status
            })
            .collect()
    }

    /// The addresses the listeners are bound to (useful with port 0).
    pub fn listen_addresses(&self) -> &[SocketAddr] {
        &self.listen_addresses
    }

    /// Stops every session and waits (a few seconds at most) until the NOTIFICATIONs are out.
    pub async fn shutdown(self, mode: ShutdownMode) {
        for listener in &self.listeners {
            listener.abort();
        }
        let mut done = Vec::new();
        for peer in &self.peers {
            let (tx, rx) = oneshot::channel();
            if peer
                .inputs
                .send(PeerInput::Shutdown(mode.clone(), tx))
                .is_ok()
            {
                done.push(rx);
            }
        }
        for rx in done {
            let _ = tokio::time::timeout(SHUTDOWN_FLUSH + Duration::from_secs(1), rx).await;
        }
        for peer in &self.peers {
            peer.task.abort();
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
        for peer in &self.peers {
            peer.task.abort();
        }
    }
}

fn listen_socket(address: SocketAddr, peers: &[&PeerConfig]) -> Result<Socket, StartError> {
    let listen_error = |source| StartError::Listen { address, source };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(listen_error)?;
    socket.set_reuse_address(true).map_err(listen_error)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(listen_error)?;
    }
    for peer in peers {
        if let Some(password) = &peer.password {
            anyns_netsys::set_tcp_md5sig(&socket, peer.address, password.as_bytes()).map_err(
                |source| StartError::Md5 {
                    peer: peer.address,
                    address,
                    source,
                },
            )?;
        }
    }
    socket.bind(&address.into()).map_err(listen_error)?;
    socket.listen(64).map_err(listen_error)?;
    socket.set_nonblocking(true).map_err(listen_error)?;
    Ok(socket)
}

async fn accept_loop(
    listener: TcpListener,
    peers: HashMap<IpAddr, mpsc::UnboundedSender<PeerInput>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let remote_ip = match remote.ip() {
                    IpAddr::V6(v6) => v6
                        .to_ipv4_mapped()
                        .map(IpAddr::V4)
                        .unwrap_or(IpAddr::V6(v6)),
                    ip => ip,
                };
                let local = stream.local_addr().unwrap_or(remote);
                match peers.get(&remote_ip) {
                    Some(peer) => {
                        let _ = peer.send(PeerInput::Accepted(stream, local, remote));
                    }
                    None => {
                        tracing::info!(%remote, "BGP connection from an unknown address refused")
                    }
                }
            }
            Err(e) => {
                tracing::warn!("BGP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connect(peer: PeerConfig) -> io::Result<TcpStream> {
    let remote = SocketAddr::new(peer.address, peer.port);
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if let Some(password) = &peer.password {
        // RFC 2385: the key must be on the socket before the SYN.
        anyns_netsys::set_tcp_md5sig(&socket, peer.address, password.as_bytes())?;
    }
    if let Some(local) = peer.local_address {
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    socket.set_nonblocking(true)?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    Ok(stream)
}

/// Reads whole messages: the header, then the body it declares. A header that fails the
/// RFC 4271 section 6.1 checks is handed over alone (the session answers it) and reading stops.
async fn read_frames(
    id: ConnectionId,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    inputs: mpsc::UnboundedSender<PeerInput>,
) {
    loop {
        let mut frame = vec![0u8; HEADER_LEN];
        if let Err(e) = reader.read_exact(&mut frame).await {
            let _ = inputs.send(PeerInput::Closed(id, closed_reason(&e)));
            return;
        }
        let length = match packet::check_header(&frame) {
            Ok((_, length)) => length,
            Err(_) => {
                let _ = inputs.send(PeerInput::Frame(id, frame));
                return;
            }
        };
        frame.resize(length, 0);
        if let Err(e) = reader.read_exact(&mut frame[HEADER_LEN..]).await {
            let _ = inputs.send(PeerInput::Closed(id, closed_reason(&e)));
            return;
        }
        if inputs.send(PeerInput::Frame(id, frame)).is_err() {
            return;
        }
    }
}

fn closed_reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "closed by the peer".into()
    } else {
        e.to_string()
    }
}

async fn write_frames(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

struct Connection {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct PeerTask {
    peer: PeerConfig,
    session: Session,
    inputs: mpsc::UnboundedSender<PeerInput>,
    connections: HashMap<ConnectionId, Connection>,
    connecting: HashMap<ConnectionId, JoinHandle<()>>,
    closing: Vec<JoinHandle<()>>,
    next_incoming: u64,
}

impl PeerTask {
    fn register(&mut self, id: ConnectionId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (frames, frames_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_frames(id, read, self.inputs.clone()));
        let writer = tokio::spawn(write_frames(write, frames_rx));
        self.connections.insert(
            id,
            Connection {
                frames,
                reader,
                writer,
            },
        );
    }

    /// Carries out what the session asked for.
    fn flush(&mut self) {
        while let Some(transmit) = self.session.poll_transmit() {
            if let Some(conn) = self.connections.get(&transmit.conn) {
                let _ = conn.frames.send(transmit.frame);
            }
        }
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Connect(id) => {
                    let peer = self.peer.clone();
                    let inputs = self.inputs.clone();
                    let task = tokio::spawn(async move {
                        let result = connect(peer).await;
                        let _ = inputs.send(PeerInput::Connected(id, result));
                    });
                    self.connecting.insert(id, task);
                }
                Action::Close(id) => {
                    if let Some(task) = self.connecting.remove(&id) {
                        task.abort();
                    }
                    if let Some(conn) = self.connections.remove(&id) {
                        // Dropping the sender lets the writer send what is queued, then FIN.
                        drop(conn.frames);
                        conn.reader.abort();
                        self.closing.push(conn.writer);
                    }
                }
            }
        }
        self.closing.retain(|t| !t.is_finished());
    }
}

async fn run_peer(
    peer: PeerConfig,
    session: Session,
    inputs: mpsc::UnboundedSender<PeerInput>,
    mut receiver: mpsc::UnboundedReceiver<PeerInput>,
    mut routes: watch::Receiver<Routes>,
    status: watch::Sender<(PeerStatus, Instant)>,
) {
    let mut task = PeerTask {
        peer,
        session,
        inputs,
        connections: HashMap::new(),
        connecting: HashMap::new(),
        closing: Vec::new(),
        next_incoming: 1,
    };
    let now = Instant::now();
    let desired = routes.borrow_and_update().clone();
    task.session.set_routes(desired, now);
    task.session.handle(Event::ManualStart, now);
    let mut stopped: Option<oneshot::Sender<()>> = None;
    loop {
        task.flush();
        let now = Instant::now();
        status.send_replace((task.session.status(now), now));
        if stopped.is_some() && task.session.state() == State::Idle {
            break;
        }
        let deadline = task.session.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            input = receiver.recv() => {
                let Some(input) = input else { break };
                let now = Instant::now();
                match input {
                    PeerInput::Accepted(stream, local, remote) => {
                        let id = ConnectionId::incoming(task.next_incoming);
                        task.next_incoming += 1;
                        task.register(id, stream);
                        task.session.handle(Event::TcpConnectionConfirmed { conn: id, local, remote }, now);
                    }
                    PeerInput::Connected(id, result) => {
                        if task.connecting.remove(&id).is_none() {
                            continue;
                        }
                        match result.and_then(|s| Ok((s.local_addr()?, s.peer_addr()?, s))) {
                            Ok((local, remote, stream)) => {
                                task.register(id, stream);
                                task.session.handle(Event::TcpCrAcked { conn: id, local, remote }, now);
                            }
                            Err(e) => task.session.handle(
                                Event::TcpConnectionFails { conn: id, reason: e.to_string() },
                                now,
                            ),
                        }
                    }
                    PeerInput::Frame(id, frame) => task.session.handle(Event::Message { conn: id, frame }, now),
                    PeerInput::Closed(id, reason) => {
                        task.session.handle(Event::TcpConnectionFails { conn: id, reason }, now);
                    }
                    PeerInput::Shutdown(mode, done) => {
                        let event = match mode {
                            ShutdownMode::Cease { communication } => Event::ManualStop { communication },
                            ShutdownMode::GracefulRestart => Event::StopForRestart,
                        };
                        task.session.handle(event, now);
                        stopped = Some(done);
                    }
                }
            }
            _ = sleep => task.session.handle_timeout(Instant::now()),
            changed = routes.changed() => {
                if changed.is_ok() {
                    let desired = routes.borrow_and_update().clone();
                    task.session.set_routes(desired, Instant::now());
                }
            }
        }
    }
    task.flush();
    status.send_replace((task.session.status(Instant::now()), Instant::now()));
    // Let the writers send the NOTIFICATIONs before we report done.
    let writers: Vec<JoinHandle<()>> = task
        .connections
        .drain()
        .map(|(_, c)| {
            drop(c.frames);
            c.reader.abort();
            c.writer
        })
        .chain(task.closing.drain(..))
        .collect();
    for writer in writers {
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, writer).await;
    }
    for (_, t) in task.connecting.drain() {
        t.abort();
    }
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}
