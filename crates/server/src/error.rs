//! Errors of the data plane: starting it (binding, threads) and stopping it.

use std::io;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no listen address configured")]
    NoListenAddress,
    #[error("cannot bind udp {addr}: {}", describe(.reason, .addr))]
    BindUdp { addr: SocketAddr, reason: io::Error },
    #[error("cannot bind tcp {addr}: {}", describe(.reason, .addr))]
    BindTcp { addr: SocketAddr, reason: io::Error },
    #[error("cannot start udp worker thread: {reason}")]
    SpawnWorker { reason: io::Error },
    #[error("udp worker thread {name} panicked")]
    WorkerPanicked { name: String },
}

/// The reason in words an operator acts on, with a hint for the usual causes.
fn describe(reason: &io::Error, addr: &SocketAddr) -> String {
    match reason.kind() {
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".to_string()
        }
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::AddrInUse => "address in use by another socket".to_string(),
        io::ErrorKind::AddrNotAvailable => {
            "address not available on this host (is it configured? see UdpConfig::freebind)"
                .to_string()
        }
        _ => reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_names_the_address_and_the_reason() {
        let err = Error::BindUdp {
            addr: SocketAddr::from(([127, 0, 0, 1], 53)),
            reason: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            err.to_string(),
            "cannot bind udp 127.0.0.1:53: permission denied \
             (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        );
    }
}
