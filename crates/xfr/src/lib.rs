//! Zone transfers for anyns: the secondary (SOA refresh, IXFR/AXFR in, NOTIFY in), the primary
//! (AXFR/IXFR out, NOTIFY out), TSIG, and catalog zones.
//!
//! The protocol logic is sans-I/O: [`secondary::Secondary`] and [`notify::Notifier`] are state
//! machines fed events and `now`, [`transfer::Transfer`] interprets response messages one at a
//! time, and [`primary::answer_transfer`] turns a request into response messages. The tokio
//! [`driver`] runs them over sockets.

pub mod acl;
pub mod catalog;
pub mod driver;
pub mod message;
pub mod notify;
pub mod primary;
pub mod secondary;
pub mod serial;
pub mod store;
pub mod transfer;
pub mod tsig;

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod testutil;
