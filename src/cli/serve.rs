//! `anyns serve`: load zones, start the data plane, reload on SIGHUP or `anyns reload`.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use anyns_engine::{Engine, EngineConfig, Identity};
use anyns_server::{Server, ServerConfig, Service};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{NodeConfig, Overrides};
use crate::zones::{Outcome, ZoneLoader};

/// Everything a reload needs: how the node was configured, and the zones it serves.
struct Node {
    overrides: Overrides,
    config: NodeConfig,
    loader: Mutex<ZoneLoader>,
    service: Arc<Service>,
}

pub fn run(overrides: &Overrides) -> anyhow::Result<ExitCode> {
    let config = NodeConfig::load(overrides)?;
    let mut loader = ZoneLoader::default();
    let (zones, report) = loader.load(&config.zones);
    report.log();
    if zones.is_empty() {
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
    let service = Arc::new(Service::new(engine, zones));

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

    let addresses: Vec<String> = server
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let zone_names: Vec<String> = service
        .zones()
        .iter()
        .map(|z| z.origin().to_string())
        .collect();
    println!(
        "anyns {identity}: listening on {} (udp+tcp, {} workers); serving {}",
        addresses.join(", "),
        config.threads,
        zone_names.join(", ")
    );
    tracing::info!(
        site = %config.site, node = %config.node, listen = %addresses.join(","),
        "node started"
    );

    let control_socket = config.control_socket.clone();
    let node = Arc::new(Node {
        overrides: overrides.clone(),
        config,
        loader: Mutex::new(loader),
        service,
    });
    let result = runtime.block_on(async {
        if let Some(path) = &control_socket {
            spawn_control(path, node.clone())?;
        }
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    let node = node.clone();
                    let _ = tokio::task::spawn_blocking(move || reload(&node)).await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        anyhow::Ok(())
    });
    tracing::info!("shutting down");
    if let Err(e) = server.shutdown() {
        tracing::error!("{e}");
    }
    if let Some(path) = &control_socket {
        let _ = std::fs::remove_file(path);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| ExitCode::SUCCESS)
}

/// Re-reads the configuration and every zone; swaps in the new zone set atomically. Returns a
/// report for the operator: "ok" first when every zone loaded.
fn reload(node: &Node) -> String {
    let mut text = String::new();
    let config = match NodeConfig::load(&node.overrides) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, configuration invalid: {e:#}");
            return format!("failed: configuration invalid, nothing changed: {e:#}\n");
        }
    };
    if config.listen != node.config.listen || config.threads != node.config.threads {
        let _ = writeln!(
            text,
            "note: listen addresses and threads change only on restart"
        );
    }
    let Ok(mut loader) = node.loader.lock() else {
        return "failed: an earlier reload crashed\n".to_string();
    };
    let (zones, report) = loader.load(&config.zones);
    report.log();
    node.service.set_zones(zones);
    for (name, outcome) in &report.zones {
        match outcome {
            Outcome::Loaded {
                serial, records, ..
            } => {
                let _ = writeln!(text, "loaded: {name} serial {serial}, {records} records");
            }
            Outcome::Failed { errors, kept } => {
                for e in &errors.0 {
                    let _ = writeln!(text, "error: {e}");
                }
                match kept {
                    Some(serial) => {
                        let _ = writeln!(text, "refused: {name}, serial {serial} keeps serving");
                    }
                    None => {
                        let _ = writeln!(text, "refused: {name}, not served");
                    }
                }
            }
        }
    }
    let failed = report.failed();
    if failed == 0 {
        format!("ok: {} zones\n{text}", report.zones.len())
    } else {
        format!(
            "failed: {failed} of {} zones refused\n{text}",
            report.zones.len()
        )
    }
}

/// The control socket: one command per connection, the answer, then close.
fn spawn_control(path: &Path, node: Arc<Node>) -> anyhow::Result<()> {
    // A socket left by a crashed run would block the bind; nothing else may own this path.
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale control socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot create control socket {}", path.display()))?;
    let path: PathBuf = path.to_path_buf();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let node = node.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = BufReader::new(read);
                if tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
                    .await
                    .is_err()
                {
                    return;
                }
                let answer = match line.trim() {
                    "reload" => tokio::task::spawn_blocking(move || reload(&node))
                        .await
                        .unwrap_or_else(|e| format!("failed: {e}\n")),
                    other => format!("failed: unknown command {other:?}\n"),
                };
                let _ = write.write_all(answer.as_bytes()).await;
            });
        }
    });
    tracing::info!(path = %path.display(), "control socket ready");
    Ok(())
}
