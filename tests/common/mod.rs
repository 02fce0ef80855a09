//! Helpers shared by the integration tests: a DNS client, and one small module per server
//! that writes the server's config, starts it on loopback and stops it by PID on drop
//! (after domain's `tests/common/nsd.rs`).
//!
//! Each test binary uses only part of this, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod anyns;
pub mod compare;
pub mod dns;
pub mod knot;
pub mod nsd;
pub mod process;
pub mod querygen;

use std::path::PathBuf;

/// A zone to load: its apex and its master file.
#[derive(Clone, Debug)]
pub struct ZoneFile {
    /// Absolute apex name in presentation format, e.g. `diff.test.`.
    pub apex: String,
    pub path: PathBuf,
}

impl ZoneFile {
    pub fn new(apex: &str, path: impl Into<PathBuf>) -> Self {
        ZoneFile {
            apex: apex.to_owned(),
            path: path.into(),
        }
    }
}

/// What every server under test offers the comparison.
pub trait DnsServer {
    /// A short name for reports: `knot`, `nsd`, `anyns`.
    fn name(&self) -> &str;
    /// The listen addresses: 127.0.0.1, then ::1 where the host has it.
    fn addrs(&self) -> &[std::net::SocketAddr];
}
