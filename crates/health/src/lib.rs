//! Health for anyns (DESIGN decision 5): probes, hysteresis, damping and drain, turned into what
//! the node asks of BGP — [`Intent::Announce`], [`Intent::AnnounceDepreferred`] or
//! [`Intent::Withdraw`] — each with its reason.
//!
//! The core ([`NodeHealth`] and the modules it is built from) is pure: no sockets, no clock,
//! every input comes with `now`, so it is tested with constructed instants. The I/O is small:
//! the [`dns_probe`], the [`command_probe`], and the [`runner`] that drives them on tokio and
//! publishes the intent on a `watch` channel.
//!
//! Wiring, from the binary:
//!
//! ```no_run
//! # async fn wire(vip: std::net::SocketAddr, zones: Vec<anyns_wire::Name>) -> Result<(), Box<dyn std::error::Error>> {
//! use anyns_health::{HealthConfig, ZoneFreshness, runner};
//! let config = HealthConfig::default(); // from the node's `[health]` section
//! let setup = config.build(vip, &zones)?;
//! let names = zones.iter().map(|z| z.to_string()).collect();
//! let health = runner::spawn(setup.policy, setup.probes, names, None)?;
//! for z in &zones {
//!     let loaded = ZoneFreshness { loaded: true, ..ZoneFreshness::default() };
//!     health.set_zone(z.to_string(), loaded).await?;
//! }
//! let mut intent = health.intent();
//! while intent.changed().await.is_ok() {
//!     let now = intent.borrow_and_update().clone();
//!     // map `now` to BGP routes
//! #   let _ = now;
//! }
//! # Ok(()) }
//! ```

pub mod command_probe;
pub mod config;
pub mod damping;
pub mod dns_probe;
pub mod drain;
pub mod error;
pub mod history;
pub mod intent;
pub mod node;
pub mod probe;
pub mod runner;
pub mod status;

pub use config::{HealthConfig, HealthSetup};
pub use drain::{DrainEnd, DrainPhase, DrainStage, DrainTimers};
pub use error::{ConfigError, RunnerStopped};
pub use intent::{DeprefReason, Intent, WithdrawReason};
pub use node::{HealthEvent, HealthPolicy, NodeHealth, ProbeId, WithdrawCause, ZoneFreshness};
pub use probe::{ProbeHealth, ProbeOutcome, ProbeSpec, ProbeState, ProbeTransition};
pub use runner::{HealthHandle, Probe, ProbeCheck, QueryCounter};
pub use status::HealthStatus;
