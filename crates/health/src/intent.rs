//! What the node wants the routers to do with its VIP routes, and why.
//!
//! These are our own types so that health does not depend on the BGP crate: the binary maps
//! `Announce` to a plain announcement, `AnnounceDepreferred` to the same prefixes with a worse
//! MED, an AS-path prepend and the GRACEFUL_SHUTDOWN community (RFC 8326), and
//! `Withdraw` to a withdrawal. Intents compare equal when the routing outcome and the reason are
//! the same, so a watch channel wakes the BGP side only on a real change.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    Announce,
    AnnounceDepreferred { reason: DeprefReason },
    Withdraw { reason: WithdrawReason },
}

impl Intent {
    /// Whether the VIP routes should be in BGP at all.
    pub fn is_announced(&self) -> bool {
        !matches!(self, Intent::Withdraw { .. })
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Intent::Announce => f.write_str("announce"),
            Intent::AnnounceDepreferred { reason } => write!(f, "announce de-preferred: {reason}"),
            Intent::Withdraw { reason } => write!(f, "withdraw: {reason}"),
        }
    }
}

/// Why the node announces, but asks to be used only when no better site is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeprefReason {
    /// Drain step 1.
    Draining,
    /// An operator turned maintenance mode on.
    Maintenance,
    /// The zone is behind its primary for longer than the configured bound: still correct,
    /// but other sites may be fresher.
    ZoneLagging { zone: String },
}

impl fmt::Display for DeprefReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeprefReason::Draining => f.write_str("draining"),
            DeprefReason::Maintenance => f.write_str("maintenance"),
            DeprefReason::ZoneLagging { zone } => write!(f, "zone {zone} lags its primary"),
        }
    }
}

/// Why the node does not announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WithdrawReason {
    /// A configured zone has not loaded yet (always so at startup until it does).
    ZoneNotLoaded { zone: String },
    /// A zone passed its SOA expire time without a refresh (RFC 1035 section 3.3.13).
    ZoneExpired { zone: String },
    /// A probe has not passed `rise` times yet: startup, or after a drain was cancelled.
    ProbePending { probe: String },
    /// A probe failed `fall` times in a row, or gave no result at all for too long.
    ProbeDown { probe: String },
    /// Healthy again, but the hold-down after the last withdraw has not run out.
    HoldDown,
    /// Healthy again, but the flap budget has no room for another announce and withdraw.
    FlapBudgetExhausted,
    /// Drain steps 2 and 3, and a finished drain.
    Drained,
}

impl fmt::Display for WithdrawReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WithdrawReason::ZoneNotLoaded { zone } => write!(f, "zone {zone} is not loaded"),
            WithdrawReason::ZoneExpired { zone } => write!(f, "zone {zone} has expired"),
            WithdrawReason::ProbePending { probe } => write!(f, "probe {probe} has not passed yet"),
            WithdrawReason::ProbeDown { probe } => write!(f, "probe {probe} is down"),
            WithdrawReason::HoldDown => f.write_str("hold-down after a withdraw"),
            WithdrawReason::FlapBudgetExhausted => f.write_str("flap budget exhausted"),
            WithdrawReason::Drained => f.write_str("drained"),
        }
    }
}
