//! The tokio side: sockets and timers around the sans-I/O cores.
//!
//! - [`spawn_secondary`] runs one [`Secondary`] per zone: SOA queries over UDP (TCP when
//!   truncated), transfers over TCP, each with a timeout; new zones go to a callback and to the
//!   [`ZoneStore`]; a restart restores the stored zone and its timers.
//! - [`serve_notify_udp`] answers NOTIFYs on a UDP socket and pokes the right secondary (the data
//!   plane can instead call [`crate::notify::answer_notify`] and [`SecondaryHandle::notify`]).
//! - [`TransferServer`] holds what a primary serves (zones, journal, policy), answers transfers
//!   and signed SOA queries on its own TCP/UDP sockets, and sends NOTIFYs when a zone changes.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyns_wire::Name;
use anyns_zone::{Zone, ZoneDiff, ZoneSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::acl::Acl;
use crate::notify::{Notifier, NotifyRequest, NotifyRetry, answer_notify};
use crate::primary::{
    Journal, TransferAnswer, TransferPolicy, answer_soa_query, answer_transfer, answer_transfer_udp,
};
use crate::secondary::{Action, Change, Freshness, OpId, Restored, Secondary, SecondaryConfig};
use crate::store::{SavedState, StoreWrite, ZoneStore, ZoneWriter, supersede};
use crate::transfer::{
    Progress, SoaQuery, Transfer, TransferError, TransferKind, Transferred, soa_record,
};
use crate::tsig::{KeyRing, TsigKey};

/// A random message ID (RFC 5452 section 9.2: unpredictable IDs), from the OS-seeded hasher keys.
pub fn random_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() & 0xffff) as u16
}

/// Reads one length-prefixed DNS message from a TCP stream (RFC 1035 section 4.2.2); `None` at
/// a clean end of stream.
pub async fn read_tcp_message(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// Writes one message with its length prefix.
pub async fn write_tcp_message(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await
}

fn net_err(e: std::io::Error) -> TransferError {
    TransferError::Network(e.to_string())
}

fn unspecified_for(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// Asks `primary` for the zone's SOA serial: UDP, then TCP if the answer was truncated.
pub async fn query_soa(
    primary: SocketAddr,
    zone: &Name,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<u32, TransferError> {
    let run = async {
        let (query, request) = SoaQuery::new(zone, random_id(), key, SystemTime::now())?;
        let socket = UdpSocket::bind(unspecified_for(&primary))
            .await
            .map_err(net_err)?;
        socket.connect(primary).await.map_err(net_err)?;
        socket.send(&request).await.map_err(net_err)?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = socket.recv(&mut buf).await.map_err(net_err)?;
            let reply = &buf[..n];
            // Ignore datagrams that are not the answer to this query (RFC 5452 section 9.1).
            if reply.len() < 12 || reply[..2] != query.id().to_be_bytes() {
                continue;
            }
            if reply[2] & 0x02 != 0 {
                break;
            }
            return query.response(reply.to_vec(), SystemTime::now());
        }
        // Truncated: over TCP.
        let (query, request) = SoaQuery::new(zone, random_id(), key, SystemTime::now())?;
        let mut stream = TcpStream::connect(primary).await.map_err(net_err)?;
        write_tcp_message(&mut stream, &request)
            .await
            .map_err(net_err)?;
        let reply = read_tcp_message(&mut stream)
            .await
            .map_err(net_err)?
            .ok_or(TransferError::Incomplete)?;
        query.response(reply, SystemTime::now())
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(TransferError::Timeout))
}

/// Runs one AXFR or IXFR from `primary` over TCP, all of it within `timeout`.
pub async fn run_transfer(
    primary: SocketAddr,
    zone: &Name,
    kind: TransferKind,
    current: Option<Arc<Zone>>,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<Transferred, TransferError> {
    let run = async {
        let (mut transfer, request) =
            Transfer::new(zone, kind, current, random_id(), key, SystemTime::now())?;
        let mut stream = TcpStream::connect(primary).await.map_err(net_err)?;
        write_tcp_message(&mut stream, &request)
            .await
            .map_err(net_err)?;
        loop {
            let Some(msg) = read_tcp_message(&mut stream).await.map_err(net_err)? else {
                return Err(transfer.eof());
            };
            // Parsing, and at the end building and checking the whole new zone (seconds for a
            // large one), is CPU work: keep it off the runtime the health probes share.
            let (back, progress) = tokio::task::spawn_blocking(move || {
                let progress = transfer.receive(msg, SystemTime::now());
                (transfer, progress)
            })
            .await
            .map_err(|e| TransferError::Internal(e.to_string()))?;
            transfer = back;
            if let Progress::Done(done) = progress? {
                return Ok(done);
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(TransferError::Timeout))
}

/// What a running secondary reports to its owner.
#[derive(Debug, Clone)]
pub enum ZoneEvent {
    /// Serve this zone (a new version, or the same after it had expired).
    Publish {
        zone: Arc<Zone>,
        /// How it differs from the version published before (IXFR steps for a journal).
        change: Change,
    },
    /// Stop serving the zone: it expired.
    Expired(Name),
    /// A refresh succeeded (the zone is current with a primary).
    Refreshed(Name),
    /// An SOA query or a transfer failed; the zone keeps what it had. For status and logs.
    Failed {
        zone: Name,
        primary: SocketAddr,
        error: TransferError,
    },
}

enum Command {
    Notify(Option<IpAddr>),
    Shutdown,
}

enum OpResult {
    Soa(Result<u32, TransferError>),
    Transfer(Result<Transferred, TransferError>),
}

/// A running secondary zone.
pub struct SecondaryHandle {
    zone: Name,
    commands: mpsc::UnboundedSender<Command>,
    freshness: watch::Receiver<Freshness>,
    task: JoinHandle<()>,
}

impl SecondaryHandle {
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// An accepted NOTIFY from `from`: check the primaries now.
    pub fn notify(&self, from: Option<IpAddr>) {
        let _ = self.commands.send(Command::Notify(from));
    }

    pub fn freshness(&self) -> Freshness {
        *self.freshness.borrow()
    }

    /// A receiver that sees every change of freshness.
    pub fn watch_freshness(&self) -> watch::Receiver<Freshness> {
        self.freshness.clone()
    }

    /// Asks the zone's task to stop, without waiting (for owners that share the handle).
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Stops the zone's task and waits for it.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown);
        let _ = self.task.await;
    }
}

/// Starts the secondary for one zone. With a `store`, a zone kept from before is served at once
/// (unless expired) and every new version is written back. `events` receives the zones to
/// publish; it runs on the zone's task, so it should only hand the zone over (swap a pointer,
/// send on a channel).
pub fn spawn_secondary(
    config: SecondaryConfig,
    store: Option<ZoneStore>,
    events: Arc<dyn Fn(ZoneEvent) + Send + Sync>,
) -> SecondaryHandle {
    let zone = config.zone.clone();
    let now = Instant::now();
    let core = match store.as_ref().map(|s| s.load(&zone)) {
        Some(Ok(Some((stored, state)))) => {
            let wall = SystemTime::now();
            let restored = Restored {
                zone: Arc::new(stored),
                refresh_age: wall.duration_since(state.last_refresh).unwrap_or_default(),
                expire_in: state.expire_at.duration_since(wall).unwrap_or_default(),
            };
            info!(zone = %zone, serial = state.serial, "restored the stored zone");
            Secondary::restore(config, restored, now)
        }
        Some(Err(e)) => {
            warn!(zone = %zone, error = %e, "stored zone not usable, transferring afresh");
            Secondary::new(config, now)
        }
        _ => Secondary::new(config, now),
    };
    let (commands, rx) = mpsc::unbounded_channel();
    let (fresh_tx, freshness) = watch::channel(core.freshness());
    let task = tokio::spawn(run_secondary(core, store, events, rx, fresh_tx));
    SecondaryHandle {
        zone,
        commands,
        freshness,
        task,
    }
}

async fn run_secondary(
    mut core: Secondary,
    store: Option<ZoneStore>,
    events: Arc<dyn Fn(ZoneEvent) + Send + Sync>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    freshness: watch::Sender<Freshness>,
) {
    let (results_tx, mut results) = mpsc::unbounded_channel::<(OpId, OpResult)>();
    let zone = core.zone_name().clone();
    let persister = store.map(|store| Persister::spawn(ZoneWriter::new(store, zone.clone())));
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    loop {
        while let Some(action) = core.poll_action() {
            match action {
                Action::QuerySoa { op, primary } => {
                    let Some(p) = core.config().primaries.get(primary).cloned() else {
                        continue;
                    };
                    let (zone, timeout, tx) =
                        (zone.clone(), core.config().soa_timeout, results_tx.clone());
                    debug!(zone = %zone, primary = %p.addr, "SOA query");
                    let events = events.clone();
                    running.push(tokio::spawn(async move {
                        let r = query_soa(p.addr, &zone, p.key.as_ref(), timeout).await;
                        if let Err(e) = &r {
                            warn!(zone = %zone, primary = %p.addr, error = %e, "SOA query failed");
                            events(ZoneEvent::Failed {
                                zone: zone.clone(),
                                primary: p.addr,
                                error: e.clone(),
                            });
                        }
                        let _ = tx.send((op, OpResult::Soa(r)));
                    }));
                }
                Action::Transfer { op, primary, kind } => {
                    let Some(p) = core.config().primaries.get(primary).cloned() else {
                        continue;
                    };
                    let (zone, timeout, tx) = (
                        zone.clone(),
                        core.config().transfer_timeout,
                        results_tx.clone(),
                    );
                    let current = core.zone().cloned();
                    debug!(zone = %zone, primary = %p.addr, ?kind, "transfer");
                    let events = events.clone();
                    running.push(tokio::spawn(async move {
                        let r = run_transfer(p.addr, &zone, kind, current, p.key.as_ref(), timeout).await;
                        match &r {
                            Err(e) => {
                                warn!(zone = %zone, primary = %p.addr, ?kind, error = %e, "transfer failed");
                                events(ZoneEvent::Failed { zone: zone.clone(), primary: p.addr, error: e.clone() });
                            }
                            Ok(Transferred::Incremental { diffs, .. }) => {
                                info!(zone = %zone, primary = %p.addr, steps = diffs.len(), "IXFR received");
                            }
                            Ok(Transferred::Full(z)) => {
                                info!(zone = %zone, primary = %p.addr, ?kind, serial = z.serial(), records = z.record_count(), "full transfer received");
                            }
                            Ok(Transferred::UpToDate { .. }) => {}
                        }
                        let _ = tx.send((op, OpResult::Transfer(r)));
                    }));
                }
                Action::Publish { zone: z, change } => {
                    info!(zone = %zone, serial = z.serial(), "serving new zone version");
                    events(ZoneEvent::Publish {
                        zone: z.clone(),
                        change: change.clone(),
                    });
                    // Written after it is served: writing a large zone takes seconds.
                    if let Some(persister) = &persister {
                        persister.published(z, change);
                    }
                }
                Action::Refreshed => {
                    if let (Some(persister), Some(state)) = (&persister, saved_state(&core)) {
                        persister.write(StoreWrite::State(state));
                    }
                    events(ZoneEvent::Refreshed(zone.clone()));
                }
                Action::Expired => {
                    warn!(zone = %zone, "zone expired: no successful refresh within EXPIRE");
                    events(ZoneEvent::Expired(zone.clone()));
                }
            }
        }
        running.retain(|t| !t.is_finished());
        freshness.send_replace(core.freshness());
        let sleep = match core.poll_timeout() {
            Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            () = sleep => core.handle_timeout(Instant::now()),
            cmd = commands.recv() => match cmd {
                Some(Command::Notify(from)) => {
                    let index = from.and_then(|ip| {
                        core.config().primaries.iter().position(|p| p.addr.ip() == ip)
                    });
                    debug!(zone = %zone, ?from, "NOTIFY: checking now");
                    core.notify(index, Instant::now());
                }
                Some(Command::Shutdown) | None => break,
            },
            Some((op, result)) = results.recv() => {
                let now = Instant::now();
                match result {
                    OpResult::Soa(r) => core.soa_result(op, r, now),
                    OpResult::Transfer(r) => core.transfer_result(op, r, now),
                }
            }
        }
    }
    for t in running {
        t.abort();
    }
    if let Some(persister) = persister {
        persister.finish().await;
    }
}

/// Writes one secondary's versions and timers to its store in the order they come, on the
/// blocking pool, so that neither the publication of a new version nor the runtime (which the
/// health probes share) waits for the disk.
struct Persister {
    writes: mpsc::UnboundedSender<StoreWrite>,
    task: JoinHandle<()>,
}

impl Persister {
    fn spawn(writer: ZoneWriter) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        Persister {
            writes,
            task: tokio::spawn(run_persister(writer, queue)),
        }
    }

    /// Stores a version just published, unless it is the one stored already.
    fn published(&self, zone: Arc<Zone>, change: Change) {
        let diffs = match change {
            Change::Stored => return,
            Change::Full => None,
            Change::Incremental(steps) => Some(steps),
        };
        self.write(StoreWrite::Zone { zone, diffs });
    }

    fn write(&self, write: StoreWrite) {
        let _ = self.writes.send(write);
    }

    /// Waits until every queued write is done.
    async fn finish(self) {
        drop(self.writes);
        let _ = self.task.await;
    }
}

/// Takes the writes queued since the last batch, drops those a later one supersedes, and does
/// the rest in order in one blocking call.
async fn run_persister(mut writer: ZoneWriter, mut queue: mpsc::UnboundedReceiver<StoreWrite>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, usize::MAX).await > 0 {
        let writes = supersede(std::mem::take(&mut batch));
        let done = tokio::task::spawn_blocking(move || {
            for write in writes {
                match writer.write(write) {
                    Ok(written) => debug!(zone = %writer.zone(), ?written, "stored"),
                    Err(e) => warn!(zone = %writer.zone(), error = %e, "cannot store the zone"),
                }
            }
            writer
        })
        .await;
        match done {
            Ok(back) => writer = back,
            Err(e) => {
                warn!(error = %e, "the zone store writer failed; no more writes");
                return;
            }
        }
    }
}

/// The core's timers as wall-clock times for the state file.
fn saved_state(core: &Secondary) -> Option<SavedState> {
    let f = core.freshness();
    let now = Instant::now();
    let wall = SystemTime::now();
    let to_wall = |t: Instant| {
        if t >= now {
            wall + (t - now)
        } else {
            wall.checked_sub(now - t).unwrap_or(wall)
        }
    };
    Some(SavedState {
        serial: f.serial?,
        last_refresh: to_wall(f.last_refresh?),
        expire_at: to_wall(f.expire_at?),
    })
}

/// The secondaries a NOTIFY listener dispatches to, with who may notify each zone.
#[derive(Default)]
pub struct NotifyTargets {
    pub keys: KeyRing,
    pub zones: HashMap<Name, (Acl, mpsc::UnboundedSender<IpAddr>)>,
}

/// Answers NOTIFYs on `socket` until the socket fails; accepted ones are sent to the zone's
/// channel (connect it to [`SecondaryHandle::notify`]).
pub async fn serve_notify_udp(
    socket: UdpSocket,
    targets: Arc<NotifyTargets>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        let answer = answer_notify(
            &buf[..n],
            from.ip(),
            &targets.keys,
            |zone| targets.zones.get(zone).map(|(acl, _)| acl),
            SystemTime::now(),
        );
        if let Some(response) = answer.response {
            let _ = socket.send_to(&response, from).await;
        }
        if let Some(accepted) = answer.accepted {
            if let Some((_, tx)) = targets.zones.get(&accepted.zone) {
                let _ = tx.send(accepted.from);
            }
        }
    }
}

/// Answers NOTIFYs over TCP on `listener` (Knot sends its NOTIFYs over TCP), like
/// [`serve_notify_udp`].
pub async fn serve_notify_tcp(
    listener: TcpListener,
    targets: Arc<NotifyTargets>,
) -> std::io::Result<()> {
    loop {
        let (mut stream, peer) = listener.accept().await?;
        let targets = targets.clone();
        tokio::spawn(async move {
            while let Ok(Ok(Some(request))) =
                tokio::time::timeout(Duration::from_secs(10), read_tcp_message(&mut stream)).await
            {
                let answer = answer_notify(
                    &request,
                    peer.ip(),
                    &targets.keys,
                    |zone| targets.zones.get(zone).map(|(acl, _)| acl),
                    SystemTime::now(),
                );
                if let Some(accepted) = answer.accepted {
                    if let Some((_, tx)) = targets.zones.get(&accepted.zone) {
                        let _ = tx.send(accepted.from);
                    }
                }
                match answer.response {
                    Some(response) => {
                        if write_tcp_message(&mut stream, &response).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        });
    }
}

/// Forwards NOTIFYs from a [`NotifyTargets`] channel to a running secondary.
pub fn forward_notifies(
    mut rx: mpsc::UnboundedReceiver<IpAddr>,
    handle: Arc<SecondaryHandle>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(from) = rx.recv().await {
            handle.notify(Some(from));
        }
    })
}

/// A secondary we send NOTIFYs to.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyTarget {
    pub addr: SocketAddr,
    pub key: Option<TsigKey>,
}

/// What a primary serves: the zones, their journal and the transfer policy. Shared between the
/// connections that answer transfers and the code that loads new zone versions.
pub struct TransferServer {
    zones: RwLock<Arc<ZoneSet>>,
    journal: RwLock<Journal>,
    policy: RwLock<Arc<TransferPolicy>>,
    notify_targets: RwLock<HashMap<Name, Vec<NotifyTarget>>>,
    notify_tx: Option<mpsc::UnboundedSender<Name>>,
}

impl TransferServer {
    pub fn new(
        zones: ZoneSet,
        journal: Journal,
        policy: TransferPolicy,
        notify_targets: HashMap<Name, Vec<NotifyTarget>>,
    ) -> Arc<Self> {
        Arc::new(TransferServer {
            zones: RwLock::new(Arc::new(zones)),
            journal: RwLock::new(journal),
            policy: RwLock::new(Arc::new(policy)),
            notify_targets: RwLock::new(notify_targets),
            notify_tx: None,
        })
    }

    /// Like [`TransferServer::new`], and starts the NOTIFY sender (RFC 1996) on `socket`. A
    /// socket bound to `[::]` also reaches IPv4 targets (as IPv4-mapped addresses).
    pub fn with_notify(
        zones: ZoneSet,
        journal: Journal,
        policy: TransferPolicy,
        notify_targets: HashMap<Name, Vec<NotifyTarget>>,
        socket: UdpSocket,
        retry: NotifyRetry,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let server = Arc::new(TransferServer {
            zones: RwLock::new(Arc::new(zones)),
            journal: RwLock::new(journal),
            policy: RwLock::new(Arc::new(policy)),
            notify_targets: RwLock::new(notify_targets),
            notify_tx: Some(tx),
        });
        let task = tokio::spawn(run_notifier(server.clone(), socket, rx, retry));
        (server, task)
    }

    pub fn zones(&self) -> Arc<ZoneSet> {
        self.zones.read().map(|z| z.clone()).unwrap_or_default()
    }

    pub fn policy(&self) -> Arc<TransferPolicy> {
        self.policy.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Replaces the keys and access lists (a configuration reload).
    pub fn set_policy(&self, policy: TransferPolicy) {
        if let Ok(mut p) = self.policy.write() {
            *p = Arc::new(policy);
        }
    }

    /// Replaces the secondaries to notify (a configuration reload).
    pub fn set_notify_targets(&self, targets: HashMap<Name, Vec<NotifyTarget>>) {
        if let Ok(mut t) = self.notify_targets.write() {
            *t = targets;
        }
    }

    fn notify_targets_of(&self, zone: &Name) -> Vec<NotifyTarget> {
        self.notify_targets
            .read()
            .ok()
            .and_then(|t| t.get(zone).cloned())
            .unwrap_or_default()
    }

    /// Serves a new version of a zone: records the difference in the journal (for IXFR) and
    /// notifies the zone's secondaries. Returns whether the serial changed (or the zone is new);
    /// the same version again changes nothing.
    pub fn update_zone(&self, zone: Arc<Zone>) -> bool {
        self.update_zone_with(zone, None)
    }

    /// Like [`TransferServer::update_zone`], for a version made by applying `steps` (a received
    /// IXFR) to the one served now: the journal keeps those steps instead of computing the
    /// difference from both versions, which costs a pass over each.
    pub fn update_zone_with(&self, zone: Arc<Zone>, steps: Option<&[ZoneDiff]>) -> bool {
        let origin = zone.origin().clone();
        let changed;
        {
            let Ok(mut zones) = self.zones.write() else {
                return false;
            };
            let old = zones.get(&origin).cloned();
            if old.as_ref().is_some_and(|old| Arc::ptr_eq(old, &zone)) {
                return false;
            }
            changed = old.as_ref().is_none_or(|old| old.serial() != zone.serial());
            if let Some(old) = &old {
                if let Ok(mut journal) = self.journal.write() {
                    let follows = steps.filter(|s| {
                        s.first().is_some_and(|d| d.from_serial() == old.serial())
                            && s.last().is_some_and(|d| d.to_serial() == zone.serial())
                    });
                    match follows {
                        Some(steps) => {
                            for step in steps {
                                journal.push(&origin, step.clone());
                            }
                        }
                        None => journal.record_change(old, &zone),
                    }
                }
            }
            let mut all: Vec<Arc<Zone>> = zones
                .iter()
                .filter(|z| z.origin() != &origin)
                .cloned()
                .collect();
            all.push(zone);
            *zones = Arc::new(ZoneSet::new(all));
        }
        if changed {
            if let Some(tx) = &self.notify_tx {
                let _ = tx.send(origin);
            }
        }
        changed
    }

    /// Serves a new version of a zone nobody transfers from us: no journal entry (computing
    /// the difference costs a pass over both versions) and no NOTIFY. Its journal is dropped,
    /// so that a later IXFR cannot bridge the untracked step.
    pub fn replace_zone(&self, zone: Arc<Zone>) {
        let origin = zone.origin().clone();
        if let Ok(mut zones) = self.zones.write() {
            let mut all: Vec<Arc<Zone>> = zones
                .iter()
                .filter(|z| z.origin() != &origin)
                .cloned()
                .collect();
            all.push(zone);
            *zones = Arc::new(ZoneSet::new(all));
        }
        if let Ok(mut journal) = self.journal.write() {
            journal.forget(&origin);
        }
    }

    /// Stops serving a zone (removed from the configuration, or expired) and forgets its
    /// journal.
    pub fn remove_zone(&self, origin: &Name) {
        if let Ok(mut zones) = self.zones.write() {
            if zones.get(origin).is_some() {
                let all: Vec<Arc<Zone>> = zones
                    .iter()
                    .filter(|z| z.origin() != origin)
                    .cloned()
                    .collect();
                *zones = Arc::new(ZoneSet::new(all));
            }
        }
        if let Ok(mut journal) = self.journal.write() {
            journal.forget(origin);
        }
    }

    /// Steps kept in the journal for `zone`.
    pub fn journal_len(&self, zone: &Name) -> usize {
        self.journal.read().map_or(0, |j| j.len(zone))
    }

    /// The response messages to a transfer request (see [`answer_transfer`]).
    pub fn answer_transfer(&self, request: &[u8], client: IpAddr) -> Vec<Vec<u8>> {
        self.transfer_answer(request, client).collect()
    }

    /// The response messages to a transfer request over TCP, built as they are taken (the
    /// data plane frames them as the client reads).
    pub fn transfer_answer(&self, request: &[u8], client: IpAddr) -> TransferAnswer {
        let zones = self.zones();
        let policy = self.policy();
        let Ok(journal) = self.journal.read() else {
            return answer_transfer(
                request,
                client,
                &zones,
                &Journal::new(0),
                &policy,
                SystemTime::now(),
            );
        };
        answer_transfer(
            request,
            client,
            &zones,
            &journal,
            &policy,
            SystemTime::now(),
        )
    }

    /// The answer to a transfer request that came over UDP (see [`answer_transfer_udp`]).
    pub fn answer_transfer_udp(&self, request: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        answer_transfer_udp(
            request,
            client,
            &self.zones(),
            &self.policy(),
            SystemTime::now(),
        )
    }

    /// Answers a TSIG-signed (or plain) SOA query (see [`answer_soa_query`]).
    pub fn answer_soa(&self, request: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        answer_soa_query(
            request,
            client,
            &self.zones(),
            &self.policy(),
            SystemTime::now(),
        )
    }

    /// Answers one request on a transfer connection: transfers, signed or plain SOA queries.
    fn answer(&self, request: &[u8], client: IpAddr) -> Vec<Vec<u8>> {
        let qtype = anyns_wire::Query::parse(request).map(|q| q.qtype).ok();
        match qtype {
            Some(anyns_wire::Rtype::AXFR) | Some(anyns_wire::Rtype::IXFR) => {
                self.answer_transfer(request, client)
            }
            _ => self.answer_soa(request, client).into_iter().collect(),
        }
    }

    /// Serves transfers (and SOA queries) over TCP on `listener`, one task per connection.
    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (mut stream, peer) = listener.accept().await?;
            let server = self.clone();
            tokio::spawn(async move {
                // RFC 7766 section 6.2.3: idle connections are closed after a while.
                while let Ok(Ok(Some(request))) =
                    tokio::time::timeout(Duration::from_secs(30), read_tcp_message(&mut stream))
                        .await
                {
                    for msg in server.answer(&request, peer.ip()) {
                        if write_tcp_message(&mut stream, &msg).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    }

    /// Serves SOA queries over UDP on `socket` (transfers are TCP only).
    pub async fn serve_udp(self: Arc<Self>, socket: UdpSocket) -> std::io::Result<()> {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            if let Some(reply) = self.answer_soa(&buf[..n], from.ip()) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    }
}

/// The address to send to from `socket`: an IPv4 target as IPv4-mapped when the socket is IPv6.
fn send_addr(socket: &UdpSocket, target: SocketAddr) -> SocketAddr {
    match (socket.local_addr(), target) {
        (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
            SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()))
        }
        _ => target,
    }
}

/// A received address as the target it answers for: IPv4-mapped back to IPv4.
fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from((addr.ip().to_canonical(), addr.port()))
}

async fn run_notifier(
    server: Arc<TransferServer>,
    socket: UdpSocket,
    mut changes: mpsc::UnboundedReceiver<Name>,
    retry: NotifyRetry,
) {
    let mut notifier = Notifier::new(retry);
    let mut outstanding: HashMap<(u16, SocketAddr), (Name, NotifyRequest)> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let now = Instant::now();
        for send in notifier.poll_transmit(now) {
            let zones = server.zones();
            let Some(zone) = zones.get(&send.zone) else {
                continue;
            };
            let key = server
                .notify_targets_of(&send.zone)
                .into_iter()
                .find(|t| t.addr == send.target)
                .and_then(|t| t.key);
            let soa = soa_record(zone);
            match NotifyRequest::new(
                &send.zone,
                soa.as_ref(),
                random_id(),
                key.as_ref(),
                SystemTime::now(),
            ) {
                Ok((req, bytes)) => {
                    debug!(zone = %send.zone, target = %send.target, attempt = send.attempt, "NOTIFY");
                    let _ = socket
                        .send_to(&bytes, send_addr(&socket, send.target))
                        .await;
                    outstanding.insert((req.id(), send.target), (send.zone.clone(), req));
                }
                Err(e) => warn!(zone = %send.zone, error = %e, "cannot build NOTIFY"),
            }
        }
        for (zone, target) in notifier.expire(now) {
            warn!(zone = %zone, target = %target, "NOTIFY never answered");
            outstanding.retain(|(_, t), (z, _)| !(t == &target && z == &zone));
        }
        let sleep = match notifier.poll_timeout() {
            Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            () = sleep => {}
            change = changes.recv() => match change {
                Some(zone) => {
                    let targets: Vec<SocketAddr> = server
                        .notify_targets_of(&zone)
                        .iter()
                        .map(|t| t.addr)
                        .collect();
                    outstanding.retain(|_, (z, _)| z != &zone);
                    notifier.zone_changed(&zone, &targets, Instant::now());
                }
                None => return,
            },
            received = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                let from = canonical_addr(from);
                if n < 2 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                if let Some((zone, req)) = outstanding.remove(&(id, from)) {
                    match req.response(buf[..n].to_vec(), SystemTime::now()) {
                        Ok(()) => notifier.acknowledged(&zone, from),
                        Err(e) => {
                            warn!(zone = %zone, target = %from, error = %e, "NOTIFY answer refused");
                            notifier.acknowledged(&zone, from);
                        }
                    }
                }
            }
        }
    }
}
