//! `anyns serve`: load zones, start the data plane, the health machine and the control API;
//! reload on SIGHUP or `anyns reload`; drain on SIGTERM before exiting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use anyns_bgp::{ShutdownMode, Speaker};
use anyns_control::{Command, Fault, Request};
use anyns_engine::{Engine, EngineConfig, Identity};
use anyns_health::{DrainStage, HealthHandle, ZoneFreshness, runner};
use anyns_server::{Server, ServerConfig, Service};
use anyns_wire::Name;
use anyns_zone::ZoneSet;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::{NodeConfig, Overrides};
use crate::routing::BgpSection;
use crate::transfers::Transfers;
use crate::zones::{Outcome, Report, ZoneLoader};

/// What the running node holds: its configuration, its zones, its data plane and its health.
struct Node {
    overrides: Overrides,
    /// The configuration the node started with (listen addresses, identity, BGP).
    config: NodeConfig,
    /// File zones of the configuration applied last, startup or reload: what a reload removes.
    file_zones: Mutex<Vec<Name>>,
    loader: Mutex<ZoneLoader>,
    service: Arc<Service>,
    server: Server,
    health: HealthHandle,
    /// Secondary zones, catalogs, transfers out, NOTIFY.
    transfers: Arc<Transfers>,
    /// The BGP speaker, when `[bgp]` is configured; taken at exit to say goodbye to peers.
    speaker: tokio::sync::Mutex<Option<Speaker>>,
    fault_injection: bool,
}

pub fn run(overrides: &Overrides, fault_injection: bool) -> anyhow::Result<ExitCode> {
    let config = NodeConfig::load(overrides)?;
    let mut loader = ZoneLoader::default();
    let (zones, report) = loader.load(&config.zones);
    report.log();
    let secondaries =
        config.zones.iter().any(|z| z.secondary().is_some()) || !config.catalogs.is_empty();
    if zones.is_empty() && !secondaries {
        bail!("no zone could be loaded; see the errors above");
    }
    let identity = config.identity();
    let engine = Engine::new(EngineConfig {
        identity: Identity {
            nsid: Some(identity.as_bytes().into()),
            server_id: Some(identity.clone().into()),
            version: config.version.clone().map(Into::into),
        },
        max_udp_payload: config.max_udp_payload,
    });
    let service = Arc::new(Service::new(engine, ZoneSet::new(zones.iter().cloned())));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("anyns-ctl")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut server_config = ServerConfig {
        listen: config.listen.clone(),
        ..ServerConfig::default()
    };
    server_config.udp.workers = NonZeroUsize::new(config.threads);
    server_config.tcp.idle_timeout = Duration::from_secs(config.tcp_idle_timeout_secs);
    server_config.tcp.max_connections = NonZeroUsize::new(config.tcp_max_connections)
        .context("tcp_max_connections must be at least 1")?;
    let server = Server::start(&server_config, service.clone(), runtime.handle())?;

    let result = runtime.block_on(async {
        let (control, requests) = anyns_control::bind(config.control)
            .await
            .with_context(|| {
                format!(
                    "control API: cannot listen on {} (set [control] listen or --control)",
                    config.control
                )
            })?;
        let control_addr = control.local_addr()?;
        let health = start_health(&config, &server, &report)?;
        let transfers = Transfers::start(&config, &zones, service.clone(), health.clone())
            .await
            .context("zone transfers")?;
        let speaker = match &config.bgp {
            Some(bgp) => Some(start_bgp(bgp, &health).await?),
            None => None,
        };

        let addresses: Vec<String> =
            server.local_addrs().iter().map(ToString::to_string).collect();
        let zone_names: Vec<String> = config
            .zones
            .iter()
            .map(|z| z.name.to_string())
            .chain(config.catalogs.iter().map(|c| format!("catalog {}", c.name)))
            .collect();
        println!(
            "anyns {identity}: listening on {} (udp+tcp, {} workers); control on http://{control_addr}; serving {}",
            addresses.join(", "),
            config.threads,
            zone_names.join(", ")
        );
        tracing::info!(
            site = %config.site, node = %config.node, listen = %addresses.join(","),
            control = %control_addr, "node started"
        );
        tokio::spawn(async move {
            if let Err(e) = control.serve().await {
                tracing::error!("control API stopped: {e}");
            }
        });
        let node = Arc::new(Node {
            overrides: overrides.clone(),
            file_zones: Mutex::new(file_zone_names(&config)),
            config,
            loader: Mutex::new(loader),
            service,
            server,
            health,
            transfers,
            speaker: tokio::sync::Mutex::new(speaker),
            fault_injection,
        });
        let outcome = main_loop(&node, requests).await;
        node.transfers.shutdown();
        if let Some(speaker) = node.speaker.lock().await.take() {
            // A Cease NOTIFICATION makes routers withdraw our routes at once (RFC 4271 6.7);
            // after a drain they are withdrawn already.
            speaker
                .shutdown(ShutdownMode::Cease {
                    communication: Some("anyns shutting down".to_string()),
                })
                .await;
        }
        // Release the node (and with it the data plane) outside the async context.
        anyhow::Ok((outcome, node))
    });
    let (outcome, node) = result?;
    tracing::info!("shutting down");
    match Arc::try_unwrap(node) {
        Ok(node) => {
            if let Err(e) = node.server.shutdown() {
                tracing::error!("{e}");
            }
        }
        // A control request still holds the node: dropping the server stops it anyway.
        Err(_) => tracing::warn!("control request in flight at exit"),
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome.map(|()| ExitCode::SUCCESS)
}

/// The address the DNS self-probe asks: the first listen address, with a wildcard replaced by
/// loopback of the same family (the probe must go through the real data plane).
fn probe_target(listen: &[SocketAddr]) -> SocketAddr {
    let first = listen
        .first()
        .copied()
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
    match first.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, first.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, first.port()))
        }
        _ => first,
    }
}

fn start_health(
    config: &NodeConfig,
    server: &Server,
    report: &Report,
) -> anyhow::Result<HealthHandle> {
    let zone_names: Vec<Name> = config.zones.iter().map(|z| z.name.clone()).collect();
    let target = probe_target(server.local_addrs());
    if zone_names.is_empty()
        && config.health.dns_probe.enabled
        && config.health.dns_probe.zones.is_none()
    {
        bail!(
            "[health] configuration: the DNS probe has no zone to ask (catalog members are not \
             known at start): set [health.dns_probe] zones = [\"a-member.example.\"]"
        );
    }
    let setup = config
        .health
        .build(target, &zone_names)
        .context("[health] configuration")?;
    let udp = server.udp_counters().to_vec();
    let tcp = server.tcp_counters().clone();
    // Queries received, for the drain to see when traffic has stopped.
    let counter = Box::new(move || {
        udp.iter()
            .map(|c| c.snapshot().queries_received)
            .sum::<u64>()
            + tcp.snapshot().queries_received
    });
    let health = runner::spawn(
        setup.policy,
        setup.probes,
        zone_names.iter().map(ToString::to_string).collect(),
        Some(counter),
    )
    .context("[health] configuration")?;
    let freshness = zone_freshness(report);
    let handle = health.clone();
    tokio::spawn(async move {
        for (zone, fresh) in freshness {
            if handle.set_zone(zone, fresh).await.is_err() {
                break;
            }
        }
    });
    Ok(health)
}

/// Starts the speaker and keeps its routes in step with the health intent.
async fn start_bgp(bgp: &BgpSection, health: &HealthHandle) -> anyhow::Result<Speaker> {
    let speaker = Speaker::start(bgp.speaker_config()?)
        .await
        .context("[bgp] cannot start the speaker")?;
    let mut intent = health.intent();
    speaker.set_routes(bgp.routes_for(&intent.borrow_and_update()));
    let routes = speaker.routes_sender();
    let bgp = bgp.clone();
    tokio::spawn(async move {
        while intent.changed().await.is_ok() {
            let now = intent.borrow_and_update().clone();
            tracing::info!(intent = %now, "routing intent");
            routes.send_replace(bgp.routes_for(&now));
        }
    });
    Ok(speaker)
}

/// What a load report says about each zone's freshness: loaded, or (refused and) not.
fn zone_freshness(report: &Report) -> Vec<(String, ZoneFreshness)> {
    report
        .zones
        .iter()
        .map(|(name, outcome)| {
            let loaded = match outcome {
                Outcome::Loaded { .. } => true,
                Outcome::Failed { kept, .. } => kept.is_some(),
            };
            (
                name.to_string(),
                ZoneFreshness {
                    loaded,
                    ..ZoneFreshness::default()
                },
            )
        })
        .collect()
}

/// Serves control requests and signals until the node should exit.
async fn main_loop(node: &Arc<Node>, mut requests: mpsc::Receiver<Request>) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut drain_stage = node.health.drain_stage();
    let mut exit_when_drained = false;
    loop {
        tokio::select! {
            Some(request) = requests.recv() => {
                let node = node.clone();
                tokio::spawn(async move {
                    let reply = handle(&node, request.command).await;
                    let _ = request.reply.send(reply);
                });
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                let _ = reload(node).await;
            }
            _ = term.recv() => {
                if exit_when_drained || *drain_stage.borrow() == DrainStage::Drained {
                    tracing::info!("SIGTERM: exiting");
                    return Ok(());
                }
                tracing::info!("SIGTERM: draining before exit (send SIGTERM again to exit now)");
                exit_when_drained = true;
                node.health.drain().await?;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: exiting");
                return Ok(());
            }
            changed = drain_stage.changed() => {
                if changed.is_err() {
                    bail!("the health machine stopped");
                }
                let stage = *drain_stage.borrow_and_update();
                tracing::info!(?stage, "drain");
                if exit_when_drained && stage == DrainStage::Drained {
                    tracing::info!("drained: exiting");
                    return Ok(());
                }
            }
        }
    }
}

async fn handle(node: &Node, command: Command) -> anyns_control::Reply {
    let message = |text: &str| json!({ "message": text });
    let stopped = |_| message("the health machine stopped");
    match command {
        Command::Status => Ok(status(node).await),
        Command::Reload => reload(node).await,
        Command::Drain => {
            node.health.drain().await.map_err(stopped)?;
            Ok(message(
                "draining: de-preferring the route, then withdrawing it, then waiting until \
                 queries stop; `anyns status` shows the stage",
            ))
        }
        Command::Undrain => {
            node.health.undrain().await.map_err(stopped)?;
            Ok(message("drain cancelled: announcing again once healthy"))
        }
        Command::Maintenance(on) => {
            node.health.set_maintenance(on).await.map_err(stopped)?;
            Ok(message(if on {
                "maintenance on: the route is announced de-preferred"
            } else {
                "maintenance off"
            }))
        }
        Command::Fault(fault) => {
            if !node.fault_injection {
                return Err(message(
                    "fault injection is off (start with serve --enable-fault-injection)",
                ));
            }
            let drop_all = fault == Fault::DnsDrop;
            node.service.set_dropping(drop_all);
            tracing::warn!(
                drop_all,
                "fault injection: the data plane drops every query"
            );
            Ok(message(if drop_all {
                "fault on: every query is dropped"
            } else {
                "fault cleared"
            }))
        }
    }
}

/// Re-reads the configuration and every zone off the async threads, swaps the new zone set in
/// atomically and tells the health machine. "ok" when every zone loaded.
async fn reload(node: &Node) -> anyns_control::Reply {
    let loaded = tokio::task::block_in_place(|| -> Result<_, String> {
        let config = NodeConfig::load(&node.overrides)
            .map_err(|e| format!("configuration invalid, nothing changed: {e:#}"))?;
        let mut loader = node
            .loader
            .lock()
            .map_err(|_| "an earlier reload crashed".to_string())?;
        let (zones, report) = loader.load(&config.zones);
        report.log();
        let secondaries = node.transfers.reconfigure(&config, &zones);
        Ok((config, report, secondaries))
    });
    let (config, report, secondaries) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("reload refused: {e}");
            return Err(json!({ "message": format!("failed: {e}\n") }));
        }
    };
    let mut text = String::new();
    if config.listen != node.config.listen || config.threads != node.config.threads {
        text.push_str("note: listen addresses and threads change only on restart\n");
    }
    let current = file_zone_names(&config);
    let previous = match node.file_zones.lock() {
        Ok(mut applied) => std::mem::replace(&mut *applied, current.clone()),
        Err(_) => Vec::new(),
    };
    for old in previous.iter().filter(|name| !current.contains(name)) {
        let _ = node.health.remove_zone(old.to_string()).await;
    }
    for (zone, fresh) in zone_freshness(&report) {
        let _ = node.health.add_zone(zone, fresh).await;
    }
    for line in secondaries {
        text.push_str(&line);
        text.push('\n');
    }
    for (name, outcome) in &report.zones {
        match outcome {
            Outcome::Loaded {
                serial, records, ..
            } => text.push_str(&format!(
                "loaded: {name} serial {serial}, {records} records\n"
            )),
            Outcome::Failed { errors, kept } => {
                for e in &errors.0 {
                    text.push_str(&format!("error: {e}\n"));
                }
                match kept {
                    Some(serial) => {
                        text.push_str(&format!("refused: {name}, serial {serial} keeps serving\n"))
                    }
                    None => text.push_str(&format!("refused: {name}, not served\n")),
                }
            }
        }
    }
    let failed = report.failed();
    if failed == 0 {
        Ok(json!({ "message": format!("ok: {} zones\n{text}", report.zones.len()) }))
    } else {
        Err(json!({
            "message": format!("failed: {failed} of {} zones refused\n{text}", report.zones.len())
        }))
    }
}

/// The JSON status: identity, data plane, zones, health and routing intent.
async fn status(node: &Node) -> Value {
    let zones: Vec<Value> = node.transfers.status();
    let udp = node.server.udp_totals();
    let tcp = node.server.tcp_counters().snapshot();
    let health = match node.health.status().await {
        Ok(h) => serde_json::to_value(&h).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let intent_now = node.health.intent().borrow().clone();
    let intent = intent_now.to_string();
    let bgp = match (&node.config.bgp, node.speaker.lock().await.as_ref()) {
        (Some(section), Some(speaker)) => json!({
            "local_asn": section.local_asn,
            "routes": routes_json(&section.routes_for(&intent_now)),
            "peers": serde_json::to_value(speaker.status()).unwrap_or(Value::Null),
        }),
        _ => Value::Null,
    };
    json!({
        "node": {
            "site": node.config.site,
            "node": node.config.node,
            "identity": node.config.identity(),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "listen": node.server.local_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "zones": zones,
        "queries": {
            "udp_received": udp.queries_received,
            "udp_answered": udp.responses_sent,
            "tcp_received": tcp.queries_received,
            "tcp_connections_open": tcp.connections_open,
        },
        "intent": intent,
        "health": health,
        "bgp": bgp,
        "fault_injection": node.fault_injection,
    })
}

fn routes_json(routes: &anyns_bgp::Routes) -> Value {
    routes
        .iter()
        .map(|(prefix, attributes)| {
            json!({
                "prefix": prefix.to_string(),
                "attributes": serde_json::to_value(attributes).unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// The zones loaded from files (secondaries are tracked by the transfer side).
fn file_zone_names(config: &NodeConfig) -> Vec<Name> {
    config
        .zones
        .iter()
        .filter(|z| z.secondary().is_none())
        .map(|z| z.name.clone())
        .collect()
}
