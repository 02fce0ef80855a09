//! anyns-bgp: a BGP-4 speaker that originates the node's own prefixes (the anycast VIPs) and
//! ignores what its peers send beyond session bookkeeping.
//!
//! - [`packet`]: pure encode/decode over netgauze-bgp-pkt, typed errors mapped to NOTIFICATIONs.
//! - [`fsm`]: the RFC 4271 session state machine, sans-I/O: feed events and `now`, poll
//!   transmits, actions and the next deadline.
//! - [`rib_out`]: our Adj-RIB-Out; desired routes become minimal UPDATEs.
//! - [`driver`]: tokio sockets and timers around the FSM, one task per peer, and the handle
//!   the binary and the health crate use.

pub mod config;
pub mod packet;

pub use config::{
    Community, GracefulRestartConfig, HoldTime, LargeCommunity, PeerConfig, RestartTime,
    RouteAttributes, SpeakerConfig,
};
pub mod fsm;
pub mod rib_out;

pub use fsm::{
    Action, ConnectionId, Direction, Event, PeerStatus, Session, SessionConfig, State, Transmit,
};
pub use rib_out::Routes;
pub mod driver;

pub use driver::{ShutdownMode, Speaker, StartError};
