//! Zone transfers in the running node: the secondary zones and catalogs (transferred, kept on
//! disk, swapped into the served zone set), the primary side (transfers out from a journal of
//! the differences between loaded versions, NOTIFY out), the data-plane entry for the requests
//! the answer engine declines (NOTIFY, AXFR/IXFR, TSIG), and the freshness each zone reports to
//! health.
//!
//! One [`Transfers`] owns the zone set the data plane serves: the file zones from the loader
//! plus the secondary zones with data; secondary zones without data (not yet transferred, or
//! expired) are served as SERVFAIL. Every change rebuilds the set and swaps it in whole.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use anyns_health::{HealthHandle, ZoneFreshness};
use anyns_server::{DeclinedReply, Service, TransferHandler, Transport};
use anyns_wire::{Name, Opcode, Query, Rtype};
use anyns_xfr::acl::Acl;
use anyns_xfr::catalog::{Catalog, catalog_changes};
use anyns_xfr::driver::{
    NotifyTarget, SecondaryHandle, TransferServer, ZoneEvent, spawn_secondary,
};
use anyns_xfr::notify::{NotifyRetry, answer_notify};
use anyns_xfr::primary::{Journal, TransferPolicy};
use anyns_xfr::secondary::{Change, Freshness, PrimaryServer, SecondaryConfig};
use anyns_xfr::store::ZoneStore;
use anyns_xfr::tsig::KeyRing;
use anyns_zone::{Zone, ZoneDiff, ZoneSet};
use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::config::{
    CatalogConfig, NodeConfig, PrimarySettings, SecondarySource, TransferSettings,
};

/// How long start-up waits for secondary zones restored from disk to be swapped in, so that a
/// restarted node answers from them as soon as it says it is listening.
const RESTORE_WAIT: Duration = Duration::from_secs(2);

/// Why a secondary runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// A `[[zone]]` with `primaries`.
    Zone,
    /// A `[[catalog]]`: transferred, parsed, never served.
    Catalog,
    /// A member of this catalog.
    Member(Name),
}

impl Role {
    fn label(&self) -> &'static str {
        match self {
            Role::Zone => "secondary",
            Role::Catalog => "catalog",
            Role::Member(_) => "catalog member",
        }
    }
}

/// What one secondary zone needs to run, compared on reload to decide on a restart.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    role: Role,
    source: SecondarySource,
    lag_bound: Duration,
}

struct Running {
    spec: Spec,
    generation: u64,
    handle: Arc<SecondaryHandle>,
    /// The version last published (kept when expired, for status).
    zone: Option<Arc<Zone>>,
    expired: bool,
    last_error: Option<String>,
    monitor: Option<JoinHandle<()>>,
}

impl Running {
    fn serves(&self) -> bool {
        self.spec.role != Role::Catalog
    }
}

struct CatalogState {
    config: CatalogConfig,
    current: Option<Catalog>,
}

#[derive(Default)]
struct State {
    settings: TransferSettings,
    files: HashMap<Name, Arc<Zone>>,
    primary: HashMap<Name, PrimarySettings>,
    secondaries: HashMap<Name, Running>,
    catalogs: HashMap<Name, CatalogState>,
    next_generation: u64,
}

/// Who may NOTIFY which secondary, for the data plane (a snapshot, rebuilt on changes).
#[derive(Default)]
struct NotifyTable {
    keys: KeyRing,
    zones: HashMap<Name, (Acl, Arc<SecondaryHandle>)>,
}

pub struct Transfers {
    service: Arc<Service>,
    health: HealthHandle,
    primary: Arc<TransferServer>,
    runtime: Handle,
    state: Mutex<State>,
    notify: RwLock<Arc<NotifyTable>>,
    this: Weak<Transfers>,
}

impl Transfers {
    /// Starts the transfer side: the primary (with its NOTIFY sender), every secondary zone and
    /// catalog of `config`, and hands the data plane's declined requests to it. `files` are the
    /// zones loaded from files. Call from inside the runtime.
    pub async fn start(
        config: &NodeConfig,
        files: &ZoneSet,
        service: Arc<Service>,
        health: HealthHandle,
    ) -> anyhow::Result<Arc<Transfers>> {
        let socket = match tokio::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await {
            Ok(s) => s,
            // No IPv6 here (some containers): NOTIFY over IPv4 only.
            Err(_) => tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?,
        };
        let (primary, _notifier) = TransferServer::with_notify(
            ZoneSet::default(),
            Journal::new(config.transfer.journal_steps),
            TransferPolicy::default(),
            HashMap::new(),
            socket,
            NotifyRetry::default(),
        );
        let transfers = Arc::new_cyclic(|this| Transfers {
            service: service.clone(),
            health,
            primary,
            runtime: Handle::current(),
            state: Mutex::new(State::default()),
            notify: RwLock::new(Arc::new(NotifyTable::default())),
            this: this.clone(),
        });
        transfers.reconfigure(config, files);
        service.set_transfer_handler(transfers.clone());
        transfers.wait_for_restored().await;
        Ok(transfers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a (new) configuration: keys, access lists, NOTIFY targets, the file zones, and
    /// the secondaries and catalogs to run (started, restarted when their settings changed,
    /// stopped when gone). Returns one line per secondary that changed, for the reload report.
    pub fn reconfigure(&self, config: &NodeConfig, files: &ZoneSet) -> Vec<String> {
        let _runtime = self.runtime.enter();
        let mut report = Vec::new();
        let mut state = self.lock();
        // New secrets or timer bounds reach running secondaries only through a restart.
        let keys_changed = state.settings.key_sections != config.transfer.key_sections
            || state.settings.timers != config.transfer.timers;
        state.settings = config.transfer.clone();
        state.primary = config
            .zones
            .iter()
            .map(|z| (z.name.clone(), z.primary.clone()))
            .collect();
        self.primary.set_policy(TransferPolicy {
            keys: config.transfer.keys.clone(),
            default_acl: Acl::default(),
            zones: state
                .primary
                .iter()
                .map(|(n, p)| (n.clone(), p.allow_transfer.clone()))
                .collect(),
        });
        self.primary.set_notify_targets(
            state
                .primary
                .iter()
                .filter(|(_, p)| !p.notify.is_empty())
                .map(|(n, p)| (n.clone(), p.notify.clone()))
                .collect::<HashMap<Name, Vec<NotifyTarget>>>(),
        );

        // File zones: new versions go to the primary side (journal, NOTIFY).
        let files_now: HashMap<Name, Arc<Zone>> = files
            .iter()
            .map(|z| (z.origin().clone(), z.clone()))
            .collect();
        for gone in state.files.keys().filter(|n| !files_now.contains_key(*n)) {
            self.primary.remove_zone(gone);
        }
        for zone in files_now.values() {
            self.offer(&state, zone.clone(), None);
        }
        state.files = files_now;

        // Configured secondaries.
        let wanted: HashMap<Name, Spec> = config
            .zones
            .iter()
            .filter_map(|z| {
                z.secondary().map(|source| {
                    (
                        z.name.clone(),
                        Spec {
                            role: Role::Zone,
                            source: source.clone(),
                            lag_bound: z.lag_bound,
                        },
                    )
                })
            })
            .chain(config.catalogs.iter().map(|c| {
                (
                    c.name.clone(),
                    Spec {
                        role: Role::Catalog,
                        source: c.source.clone(),
                        lag_bound: config.transfer.lag_bound,
                    },
                )
            }))
            .collect();
        let stale: Vec<Name> = state
            .secondaries
            .iter()
            .filter(|(name, r)| match &r.spec.role {
                Role::Zone | Role::Catalog => keys_changed || wanted.get(*name) != Some(&r.spec),
                // A zone now configured (file or secondary) wins over a catalog member.
                Role::Member(_) => wanted.contains_key(*name) || state.files.contains_key(*name),
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut carried: HashMap<Name, Arc<Zone>> = HashMap::new();
        for name in stale {
            let restart = wanted.contains_key(&name);
            if state
                .secondaries
                .get(&name)
                .is_some_and(|r| r.spec.role == Role::Catalog)
            {
                // Its members are started again from the catalog once it is back.
                let members: Vec<Name> = state
                    .secondaries
                    .iter()
                    .filter(|(_, r)| r.spec.role == Role::Member(name.clone()))
                    .map(|(n, _)| n.clone())
                    .collect();
                for m in members {
                    if let Some(z) = self.stop(&mut state, &m, restart) {
                        carried.insert(m, z);
                    }
                }
                if let Some(c) = state.catalogs.get_mut(&name) {
                    c.current = None;
                }
            }
            if let Some(z) = self.stop(&mut state, &name, restart) {
                carried.insert(name.clone(), z);
            }
            report.push(format!(
                "{}: {name}",
                if restart {
                    "restarted secondary"
                } else {
                    "stopped secondary"
                }
            ));
        }
        // Catalogs that are gone take their members with them.
        let gone_catalogs: Vec<Name> = state
            .catalogs
            .keys()
            .filter(|n| !config.catalogs.iter().any(|c| &c.name == *n))
            .cloned()
            .collect();
        for catalog in gone_catalogs {
            state.catalogs.remove(&catalog);
            let members: Vec<Name> = state
                .secondaries
                .iter()
                .filter(|(_, r)| r.spec.role == Role::Member(catalog.clone()))
                .map(|(n, _)| n.clone())
                .collect();
            for m in members {
                self.stop(&mut state, &m, false);
            }
        }
        for c in &config.catalogs {
            match state.catalogs.get_mut(&c.name) {
                Some(existing) => existing.config = c.clone(),
                None => {
                    state.catalogs.insert(
                        c.name.clone(),
                        CatalogState {
                            config: c.clone(),
                            current: None,
                        },
                    );
                }
            }
        }
        for (name, spec) in wanted {
            if !state.secondaries.contains_key(&name) {
                report.push(format!("started {}: {name}", spec.role.label()));
                let serving = carried.remove(&name);
                self.start_secondary(&mut state, name, spec, serving);
            }
        }
        self.publish(&state);
        self.rebuild_notify_table(&state);
        report
    }

    /// Starts one secondary (state locked); `serving` is what it served before a restart.
    fn start_secondary(
        &self,
        state: &mut State,
        name: Name,
        spec: Spec,
        serving: Option<Arc<Zone>>,
    ) {
        state.next_generation += 1;
        let generation = state.next_generation;
        let mut config = SecondaryConfig::new(name.clone(), spec.source.primaries.clone());
        config.timers = state.settings.timers;
        let store = ZoneStore::new(&spec.source.store);
        let this = self.this.clone();
        let zone = name.clone();
        let events = Arc::new(move |event: ZoneEvent| {
            if let Some(t) = this.upgrade() {
                t.on_event(&zone, generation, event);
            }
        });
        let handle = Arc::new(spawn_secondary(config, Some(store), events));
        let monitor = (spec.role != Role::Catalog).then(|| {
            self.runtime.spawn(monitor_freshness(
                name.clone(),
                handle.watch_freshness(),
                spec.lag_bound,
                self.health.clone(),
            ))
        });
        state.secondaries.insert(
            name,
            Running {
                spec,
                generation,
                handle,
                zone: serving,
                expired: false,
                last_error: None,
                monitor,
            },
        );
    }

    /// Stops one secondary (state locked). A zone that will not run again leaves health and
    /// the primary side. Returns the version it served, if any (a restart keeps serving it
    /// until the new task has restored it).
    fn stop(&self, state: &mut State, name: &Name, restarting: bool) -> Option<Arc<Zone>> {
        let running = state.secondaries.remove(name)?;
        running.handle.stop();
        if let Some(monitor) = &running.monitor {
            monitor.abort();
        }
        if !restarting && running.serves() {
            self.primary.remove_zone(name);
            let health = self.health.clone();
            let zone = name.to_string();
            self.runtime.spawn(async move {
                let _ = health.remove_zone(zone).await;
            });
        }
        running.zone.filter(|_| !running.expired)
    }

    /// A secondary's event, on its task.
    fn on_event(&self, zone: &Name, generation: u64, event: ZoneEvent) {
        let _runtime = self.runtime.enter();
        let mut state = self.lock();
        let Some(running) = state
            .secondaries
            .get_mut(zone)
            .filter(|r| r.generation == generation)
        else {
            return;
        };
        match event {
            ZoneEvent::Publish { zone: z, change } => {
                running.zone = Some(z.clone());
                running.expired = false;
                running.last_error = None;
                if running.spec.role == Role::Catalog {
                    self.catalog_changed(&mut state, zone, &z);
                    self.rebuild_notify_table(&state);
                } else {
                    let steps = match &change {
                        Change::Incremental(steps) => Some(&steps[..]),
                        Change::Stored | Change::Full => None,
                    };
                    self.offer(&state, z, steps);
                }
                self.publish(&state);
            }
            ZoneEvent::Expired(_) => {
                running.expired = true;
                if running.serves() {
                    tracing::error!(zone = %zone, "zone expired: answering SERVFAIL until a primary is reached");
                    self.primary.remove_zone(zone);
                }
                self.publish(&state);
            }
            ZoneEvent::Refreshed(_) => running.last_error = None,
            ZoneEvent::Failed { primary, error, .. } => {
                running.last_error = Some(format!("{primary}: {error}"));
            }
        }
    }

    /// A new version of a catalog: members added, removed, reset, reconfigured (RFC 9432
    /// section 5). A catalog that does not parse changes nothing.
    fn catalog_changed(&self, state: &mut State, name: &Name, zone: &Zone) {
        let parsed = match Catalog::parse(zone) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(catalog = %name, error = %e, "catalog not usable; members unchanged");
                if let Some(r) = state.secondaries.get_mut(name) {
                    r.last_error = Some(e.to_string());
                }
                return;
            }
        };
        for w in &parsed.warnings {
            tracing::warn!(catalog = %name, "{w}");
        }
        let Some(cat) = state.catalogs.get_mut(name) else {
            return;
        };
        let empty = Catalog {
            name: name.clone(),
            members: Default::default(),
            warnings: Vec::new(),
        };
        let changes = catalog_changes(cat.current.as_ref().unwrap_or(&empty), &parsed);
        let config = cat.config.clone();
        cat.current = Some(parsed.clone());
        let role = Role::Member(name.clone());
        let ours = |state: &State, member: &Name| {
            state
                .secondaries
                .get(member)
                .is_some_and(|r| r.spec.role == role)
        };
        for member in changes.removed.iter().chain(&changes.reset) {
            if ours(state, member) {
                tracing::info!(catalog = %name, zone = %member, "catalog member removed");
                self.stop(state, member, false);
                // RFC 9432 section 5.3 / 5.6: the zone's data goes with it.
                let store = ZoneStore::new(&config.source.store);
                let _ = std::fs::remove_file(store.zone_path(member));
                let _ = std::fs::remove_file(store.state_path(member));
                let _ = std::fs::remove_file(store.journal_path(member));
            }
        }
        let mut carried = HashMap::new();
        for member in &changes.changed {
            if ours(state, member) {
                if let Some(z) = self.stop(state, member, true) {
                    carried.insert(member.clone(), z);
                }
            }
        }
        for member in changes
            .added
            .iter()
            .chain(&changes.reset)
            .chain(&changes.changed)
        {
            if state.secondaries.contains_key(member) || state.files.contains_key(member) {
                if !ours(state, member) {
                    tracing::warn!(catalog = %name, zone = %member, "catalog member is already configured; the configuration wins");
                }
                continue;
            }
            let Some(properties) = parsed.members.get(member) else {
                continue;
            };
            let primaries = properties
                .groups
                .iter()
                .find_map(|g| config.groups.get(g))
                .cloned()
                .unwrap_or_else(|| config.source.primaries.clone());
            let notify_from = if primaries == config.source.primaries {
                config.source.notify_from.clone()
            } else {
                Acl::addresses(primaries.iter().map(|p: &PrimaryServer| p.addr.ip()))
            };
            tracing::info!(catalog = %name, zone = %member, "catalog member added");
            let spec = Spec {
                role: role.clone(),
                source: SecondarySource {
                    primaries,
                    notify_from,
                    store: config.source.store.clone(),
                },
                lag_bound: state.settings.lag_bound,
            };
            let serving = carried.remove(member);
            self.start_secondary(state, member.clone(), spec, serving);
        }
    }

    /// Gives a new zone version to the primary side: with a journal entry and NOTIFYs when
    /// others transfer the zone from us, else just the snapshot (for signed SOA queries).
    fn offer(&self, state: &State, zone: Arc<Zone>, steps: Option<&[ZoneDiff]>) {
        let tracked = state
            .primary
            .get(zone.origin())
            .is_some_and(|p| !p.allow_transfer.entries.is_empty() || !p.notify.is_empty());
        if tracked {
            self.primary.update_zone_with(zone, steps);
        } else {
            self.primary.replace_zone(zone);
        }
    }

    /// Builds the served zone set from the state and swaps it in (state locked).
    fn publish(&self, state: &State) {
        let mut zones: Vec<Arc<Zone>> = state.files.values().cloned().collect();
        let mut unavailable = Vec::new();
        for (name, r) in state.secondaries.iter().filter(|(_, r)| r.serves()) {
            match &r.zone {
                Some(z) if !r.expired => zones.push(z.clone()),
                _ => unavailable.push(name.clone()),
            }
        }
        self.service
            .set_zones(ZoneSet::new(zones).with_unavailable(unavailable));
    }

    fn rebuild_notify_table(&self, state: &State) {
        let table = NotifyTable {
            keys: state.settings.keys.clone(),
            zones: state
                .secondaries
                .iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        (r.spec.source.notify_from.clone(), r.handle.clone()),
                    )
                })
                .collect(),
        };
        if let Ok(mut t) = self.notify.write() {
            *t = Arc::new(table);
        }
    }

    fn notify_table(&self) -> Arc<NotifyTable> {
        self.notify.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits (bounded) until every secondary restored from disk with unexpired data is served.
    async fn wait_for_restored(&self) {
        let deadline = tokio::time::Instant::now() + RESTORE_WAIT;
        loop {
            let pending = {
                let state = self.lock();
                state.secondaries.values().any(|r| {
                    let f = r.handle.freshness();
                    f.loaded && !f.expired && r.zone.is_none()
                })
            };
            if !pending || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every secondary (at exit).
    pub fn shutdown(&self) {
        let state = self.lock();
        for r in state.secondaries.values() {
            r.handle.stop();
            if let Some(m) = &r.monitor {
                m.abort();
            }
        }
    }

    /// The zones for the status JSON: file zones and secondaries with their freshness.
    pub fn status(&self) -> Vec<Value> {
        let state = self.lock();
        let now = Instant::now();
        let secs_since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_secs());
        let secs_until = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now).as_secs());
        let mut out: Vec<(String, Value)> = Vec::new();
        for (name, z) in &state.files {
            let p = state.primary.get(name).cloned().unwrap_or_default();
            out.push((
                name.to_string(),
                json!({
                    "name": name.to_string(),
                    "kind": "file",
                    "loaded": true,
                    "serial": z.serial(),
                    "records": z.record_count(),
                    "notify": p.notify.iter().map(|t| t.addr.to_string()).collect::<Vec<_>>(),
                    "journal_steps": self.primary.journal_len(name),
                }),
            ));
        }
        for (name, r) in &state.secondaries {
            let f: Freshness = r.handle.freshness();
            let lag = f
                .behind_since
                .map(|s| now.saturating_duration_since(s).as_secs());
            out.push((
                name.to_string(),
                json!({
                    "name": name.to_string(),
                    "kind": r.spec.role.label(),
                    "catalog": match &r.spec.role { Role::Member(c) => Some(c.to_string()), _ => None },
                    "loaded": f.loaded,
                    "serial": f.serial,
                    "records": r.zone.as_ref().map(|z| z.record_count()),
                    "primaries": r.spec.source.primaries.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
                    "primary_serial": f.primary_serial,
                    "last_refresh_secs_ago": secs_since(f.last_refresh),
                    "refresh_in_secs": secs_until(f.refresh_at),
                    "expire_in_secs": if f.expired { None } else { secs_until(f.expire_at) },
                    "expired": f.expired,
                    "behind_primary_secs": lag,
                    "lag_exceeded": f.lag_exceeded(now, r.spec.lag_bound),
                    "last_error": r.last_error,
                    "members": state.catalogs.get(name).and_then(|c| c.current.as_ref()).map(|c| c.members.len()),
                }),
            ));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, v)| v).collect()
    }
}

/// Feeds a secondary zone's freshness to health: loaded, expired, and whether it has lagged its
/// primary for longer than `lag_bound` (re-checked when that moment comes). Nothing is sent
/// until the zone has loaded; then it is added (or updated). Health knows the zones configured
/// at start as not loaded from the beginning, so the node does not announce before they load,
/// while a zone added later (a reload, a catalog) never withdraws a node that serves everything
/// else; a restarted zone keeps its previous entry until it has loaded again.
async fn monitor_freshness(
    zone: Name,
    mut freshness: tokio::sync::watch::Receiver<Freshness>,
    lag_bound: Duration,
    health: HealthHandle,
) {
    let mut registered = false;
    let name = zone.to_string();
    let mut last: Option<ZoneFreshness> = None;
    loop {
        let f = *freshness.borrow_and_update();
        let now = Instant::now();
        let fresh = ZoneFreshness {
            loaded: f.loaded,
            expired: f.expired,
            lag_exceeded: f.lag_exceeded(now, lag_bound),
        };
        if last != Some(fresh) {
            if fresh.lag_exceeded && !last.is_some_and(|l| l.lag_exceeded) {
                tracing::warn!(zone = %zone, bound_secs = lag_bound.as_secs(), "zone lags its primary beyond the bound");
            }
            let sent = if registered {
                health.set_zone(name.clone(), fresh).await.is_ok()
            } else if fresh.loaded {
                registered = true;
                health.add_zone(name.clone(), fresh).await.is_ok()
            } else {
                true
            };
            if !sent {
                return;
            }
            last = Some(fresh);
        }
        let wake = f
            .behind_since
            .map(|since| since + lag_bound + Duration::from_millis(1))
            .filter(|t| *t > now);
        tokio::select! {
            changed = freshness.changed() => if changed.is_err() { return },
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Copies a response into the data plane's buffer.
fn reply(response: Option<Vec<u8>>, out: &mut [u8]) -> DeclinedReply {
    match response {
        Some(r) if r.len() <= out.len() => {
            out[..r.len()].copy_from_slice(&r);
            DeclinedReply::Answer(r.len())
        }
        _ => DeclinedReply::Drop,
    }
}

impl TransferHandler for Transfers {
    fn respond(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut [u8],
    ) -> DeclinedReply {
        let Ok(query) = Query::parse(request) else {
            return DeclinedReply::Drop;
        };
        let ip = client.ip().to_canonical();
        if query.opcode() == Opcode::NOTIFY {
            let table = self.notify_table();
            let answer = answer_notify(
                request,
                ip,
                &table.keys,
                |zone| table.zones.get(zone).map(|(acl, _)| acl),
                SystemTime::now(),
            );
            if let Some(accepted) = &answer.accepted {
                if let Some((_, handle)) = table.zones.get(&accepted.zone) {
                    tracing::info!(zone = %accepted.zone, from = %ip, serial = ?accepted.serial, "NOTIFY accepted: checking the primary now");
                    handle.notify(Some(ip));
                }
            } else {
                tracing::debug!(from = %ip, "NOTIFY refused");
            }
            return reply(answer.response, out);
        }
        if query.opcode() != Opcode::QUERY {
            return DeclinedReply::Drop;
        }
        match (query.qtype, transport) {
            (Rtype::AXFR | Rtype::IXFR, Transport::Tcp) => {
                tracing::info!(client = %client, qtype = %query.qtype, zone = %query.qname, "transfer request");
                // Listing a large zone's records takes a while: let the runtime move its other
                // tasks (health probes, BGP) to another thread meanwhile. The messages are then
                // built one at a time as the client reads them.
                let answer =
                    tokio::task::block_in_place(|| self.primary.transfer_answer(request, ip));
                DeclinedReply::Messages(Box::new(answer))
            }
            (Rtype::AXFR | Rtype::IXFR, Transport::Udp) => {
                reply(self.primary.answer_transfer_udp(request, ip), out)
            }
            // A TSIG-signed query: the SOA check of a secondary (other types are REFUSED,
            // signed, by answer_soa_query).
            _ => reply(self.primary.answer_soa(request, ip), out),
        }
    }
}
