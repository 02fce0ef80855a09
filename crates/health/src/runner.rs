//! The tokio driver: one task per probe ticking at its interval, and one task owning the
//! [`NodeHealth`] machine, which takes the results, commands and clock ticks, logs what changed
//! and publishes the intent on a `watch` channel for the BGP side.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::command_probe::CommandProbe;
use crate::dns_probe::DnsProbe;
use crate::drain::DrainStage;
use crate::error::{ConfigError, RunnerStopped};
use crate::intent::Intent;
use crate::node::{HealthEvent, HealthPolicy, NodeHealth, ProbeId, ZoneFreshness};
use crate::probe::{ProbeOutcome, ProbeSpec};
use crate::status::HealthStatus;

/// How often the machine is polled and the query counter sampled with no other input. It bounds
/// how late a drain notices the quiet period, nothing else: deadlines wake it on time.
const TICK: Duration = Duration::from_millis(100);

/// A probe to run: when and how it is judged, and what it does.
#[derive(Debug, Clone)]
pub struct Probe {
    pub spec: ProbeSpec,
    pub check: ProbeCheck,
}

#[derive(Debug, Clone)]
pub enum ProbeCheck {
    Dns(DnsProbe),
    Command(CommandProbe),
}

impl ProbeCheck {
    /// One run, bounded by `timeout`.
    pub async fn run(&self, timeout: Duration) -> ProbeOutcome {
        match self {
            ProbeCheck::Dns(p) => p.run(timeout).await,
            ProbeCheck::Command(p) => p.run(timeout).await,
        }
    }
}

/// Reads the data plane's served-query total (monotonic; self-probes are paused while it
/// matters). Called on the runner's task, so it must be cheap: a sum of atomics.
pub type QueryCounter = Box<dyn Fn() -> u64 + Send + Sync>;

enum Command {
    SetZone(String, ZoneFreshness),
    AddZone(String, ZoneFreshness),
    RemoveZone(String),
    Maintenance(bool),
    Drain,
    Undrain,
    ResetFlapBudget,
    Status(oneshot::Sender<HealthStatus>),
}

/// Talks to the running health machine. Clones share it; it stops when the last clone is
/// dropped (its watch receivers then see the sender gone).
#[derive(Debug, Clone)]
pub struct HealthHandle {
    commands: mpsc::Sender<Command>,
    intent: watch::Receiver<Intent>,
    drain: watch::Receiver<DrainStage>,
}

/// Starts the probes and the machine on the current tokio runtime. At start the intent is a
/// withdraw: nothing is announced before every zone in `zones` has loaded (see
/// [`HealthHandle::set_zone`]) and every probe has passed.
pub fn spawn(
    policy: HealthPolicy,
    probes: Vec<Probe>,
    zones: Vec<String>,
    queries: Option<QueryCounter>,
) -> Result<HealthHandle, ConfigError> {
    let specs = probes.iter().map(|p| p.spec.clone()).collect();
    let health = NodeHealth::new(policy, specs, zones, Instant::now().into_std())?;
    let (intent_tx, intent_rx) = watch::channel(health.intent().clone());
    let (drain_tx, drain_rx) = watch::channel(health.drain_phase().stage());
    let (paused_tx, paused_rx) = watch::channel(false);
    let (results_tx, results_rx) = mpsc::channel(64);
    let (commands_tx, commands_rx) = mpsc::channel(16);

    let tasks: Vec<JoinHandle<()>> = probes
        .into_iter()
        .enumerate()
        .map(|(i, probe)| {
            tokio::spawn(run_probe(
                ProbeId(i),
                probe,
                results_tx.clone(),
                paused_rx.clone(),
            ))
        })
        .collect();
    let outputs = Outputs {
        intent: intent_tx,
        drain: drain_tx,
        paused: paused_tx,
    };
    tokio::spawn(run_machine(
        health,
        results_rx,
        commands_rx,
        outputs,
        queries,
        tasks,
    ));
    Ok(HealthHandle {
        commands: commands_tx,
        intent: intent_rx,
        drain: drain_rx,
    })
}

impl HealthHandle {
    /// The intent, for the BGP side to follow: `changed().await`, then `borrow_and_update()`.
    pub fn intent(&self) -> watch::Receiver<Intent> {
        self.intent.clone()
    }

    /// The drain stage; the binary exits once it reads `Drained`.
    pub fn drain_stage(&self) -> watch::Receiver<DrainStage> {
        self.drain.clone()
    }

    /// Waits until a drain has finished.
    pub async fn drained(&self) -> Result<(), RunnerStopped> {
        let mut rx = self.drain.clone();
        rx.wait_for(|s| *s == DrainStage::Drained)
            .await
            .map(|_| ())
            .map_err(|_| RunnerStopped)
    }

    /// What the zone store says about a configured zone (ignored for a zone not configured).
    pub async fn set_zone(
        &self,
        zone: impl Into<String>,
        freshness: ZoneFreshness,
    ) -> Result<(), RunnerStopped> {
        self.send(Command::SetZone(zone.into(), freshness)).await
    }

    /// A zone added by a reload; see [`NodeHealth::add_zone`].
    pub async fn add_zone(
        &self,
        zone: impl Into<String>,
        freshness: ZoneFreshness,
    ) -> Result<(), RunnerStopped> {
        self.send(Command::AddZone(zone.into(), freshness)).await
    }

    pub async fn remove_zone(&self, zone: impl Into<String>) -> Result<(), RunnerStopped> {
        self.send(Command::RemoveZone(zone.into())).await
    }

    pub async fn set_maintenance(&self, on: bool) -> Result<(), RunnerStopped> {
        self.send(Command::Maintenance(on)).await
    }

    /// Starts a planned drain.
    pub async fn drain(&self) -> Result<(), RunnerStopped> {
        self.send(Command::Drain).await
    }

    /// Cancels a drain.
    pub async fn undrain(&self) -> Result<(), RunnerStopped> {
        self.send(Command::Undrain).await
    }

    pub async fn reset_flap_budget(&self) -> Result<(), RunnerStopped> {
        self.send(Command::ResetFlapBudget).await
    }

    pub async fn status(&self) -> Result<HealthStatus, RunnerStopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Status(tx)).await?;
        rx.await.map_err(|_| RunnerStopped)
    }

    async fn send(&self, command: Command) -> Result<(), RunnerStopped> {
        self.commands.send(command).await.map_err(|_| RunnerStopped)
    }
}

async fn run_probe(
    id: ProbeId,
    probe: Probe,
    results: mpsc::Sender<(ProbeId, ProbeOutcome)>,
    paused: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(probe.spec.interval());
    // A run that takes longer than the interval delays the next one; runs never overlap.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if *paused.borrow() {
            continue;
        }
        let outcome = probe.check.run(probe.spec.timeout()).await;
        if results.send((id, outcome)).await.is_err() {
            return;
        }
    }
}

struct Outputs {
    intent: watch::Sender<Intent>,
    drain: watch::Sender<DrainStage>,
    paused: watch::Sender<bool>,
}

async fn run_machine(
    mut health: NodeHealth,
    mut results: mpsc::Receiver<(ProbeId, ProbeOutcome)>,
    mut commands: mpsc::Receiver<Command>,
    outputs: Outputs,
    queries: Option<QueryCounter>,
    tasks: Vec<JoinHandle<()>>,
) {
    loop {
        let now = Instant::now();
        let wake = health
            .next_deadline(now.into_std())
            .map_or(now + TICK, |d| Instant::from_std(d).min(now + TICK));
        tokio::select! {
            Some((id, outcome)) = results.recv() => {
                health.record_probe(id, outcome, Instant::now().into_std());
            }
            command = commands.recv() => {
                let Some(command) = command else { break };
                apply(&mut health, command);
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now().into_std();
        match &queries {
            Some(count) => health.sample_queries(count(), now),
            None => health.poll(now),
        }
        while let Some(event) = health.poll_event() {
            log(&event);
        }
        publish(&health, &outputs);
    }
    for task in tasks {
        task.abort();
    }
}

fn apply(health: &mut NodeHealth, command: Command) {
    let now = Instant::now().into_std();
    match command {
        Command::SetZone(zone, freshness) => {
            if !health.set_zone(&zone, freshness, now) {
                tracing::warn!(zone, "health: freshness for a zone not configured, ignored");
            }
        }
        Command::AddZone(zone, freshness) => health.add_zone(zone, freshness, now),
        Command::RemoveZone(zone) => {
            health.remove_zone(&zone, now);
        }
        Command::Maintenance(on) => health.set_maintenance(on, now),
        Command::Drain => health.start_drain(now),
        Command::Undrain => health.cancel_drain(now),
        Command::ResetFlapBudget => health.reset_flap_budget(now),
        Command::Status(reply) => {
            let _ = reply.send(health.status(now));
        }
    }
}

fn publish(health: &NodeHealth, outputs: &Outputs) {
    outputs.intent.send_if_modified(|current| {
        let changed = current != health.intent();
        if changed {
            *current = health.intent().clone();
        }
        changed
    });
    let phase = health.drain_phase();
    outputs.drain.send_if_modified(|current| {
        let changed = *current != phase.stage();
        *current = phase.stage();
        changed
    });
    let paused = phase.is_withdrawn();
    outputs.paused.send_if_modified(|current| {
        let changed = *current != paused;
        *current = paused;
        changed
    });
}

fn log(event: &HealthEvent) {
    match event {
        HealthEvent::Probe { probe, transition } => tracing::info!(
            probe,
            from = %transition.from,
            to = %transition.to,
            reason = %transition.reason,
            "health: probe state changed"
        ),
        HealthEvent::Intent { from, to } => {
            tracing::warn!(from = %from, to = %to, "health: route intent changed");
        }
        HealthEvent::Drain { stage } => tracing::info!(?stage, "health: drain step"),
    }
}
