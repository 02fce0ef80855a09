//! Errors of the health layer.

/// A health configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("probe {probe}: interval and timeout must be more than zero")]
    ZeroDuration { probe: String },
    #[error("command probe {probe}: the command is empty")]
    EmptyCommand { probe: String },
    #[error("two probes are named {probe}")]
    DuplicateProbe { probe: String },
    #[error("dns probe: zone {zone}: {error}")]
    BadZoneName {
        zone: String,
        error: anyns_wire::NameError,
    },
    #[error("dns probe: no zone to query")]
    NoZones,
    #[error(
        "flap budget: 1 change per hour would never allow a re-announce; use 0 (off) or 2 or more"
    )]
    FlapBudgetOfOne,
    #[error("hold-down: the maximum is below the base")]
    HoldDownMaxBelowBase,
}

/// The health runner has stopped, so a command could not reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the health runner has stopped")]
pub struct RunnerStopped;
