//! What the data-plane tests share: a handler that does not need the answer engine, a runtime,
//! and helpers that bound every wait.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyns_server::{DeclinedReply, Handler, Reply, Server, ServerConfig, Transport};

/// The longest any test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(3);

/// Answers by request content, after the 12-octet header: `D` drop, `P` panic, `B` a largest
/// message (65535 octets), `S` declined and then answered with the client's address as text
/// after the header, anything else an echo with QR set and one octet naming the transport.
pub struct TestHandler;

impl Handler for TestHandler {
    fn respond(&self, request: &[u8], transport: Transport, out: &mut [u8]) -> Reply {
        let Some(header) = request.get(..12) else {
            return Reply::Drop;
        };
        match request.get(12) {
            Some(b'D') => Reply::Drop,
            Some(b'P') => panic!("query of death (expected by the test)"),
            Some(b'S') => Reply::Declined,
            Some(b'B') => {
                out[..12].copy_from_slice(header);
                out[2] |= 0x80;
                out[12..].fill(b'B');
                Reply::Answer(out.len())
            }
            _ => {
                out[..request.len()].copy_from_slice(request);
                out[2] |= 0x80;
                out[request.len()] = match transport {
                    Transport::Udp => b'U',
                    Transport::Tcp => b'T',
                };
                Reply::Answer(request.len() + 1)
            }
        }
    }

    fn respond_declined(
        &self,
        request: &[u8],
        client: SocketAddr,
        _: Transport,
        out: &mut [u8],
    ) -> DeclinedReply {
        let text = client.to_string();
        out[..12].copy_from_slice(&request[..12]);
        out[2] |= 0x80;
        out[12..12 + text.len()].copy_from_slice(text.as_bytes());
        DeclinedReply::Answer(12 + text.len())
    }
}

/// A DNS-shaped request: a header with `id`, then `body`.
pub fn query(id: u16, body: &[u8]) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(body);
    q
}

/// What [`TestHandler`] answers to an echo request.
pub fn echo_answer(request: &[u8], transport: Transport) -> Vec<u8> {
    let mut a = request.to_vec();
    a[2] |= 0x80;
    a.push(match transport {
        Transport::Udp => b'U',
        Transport::Tcp => b'T',
    });
    a
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A config for `listen` with two UDP workers (the tests run side by side on few cores).
pub fn config(listen: &[&str]) -> ServerConfig {
    let mut config = ServerConfig {
        listen: listen.iter().map(|a| a.parse().unwrap()).collect(),
        ..ServerConfig::default()
    };
    config.udp.workers = NonZeroUsize::new(2);
    config
}

pub fn start(config: &ServerConfig, runtime: &tokio::runtime::Runtime) -> Server {
    Server::start(config, Arc::new(TestHandler), runtime.handle()).unwrap()
}

/// Whether this host has IPv6 loopback (some containers do not).
pub fn ipv6_loopback() -> bool {
    let ok = UdpSocket::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("no ::1 on this host; skipping the IPv6 part");
    }
    ok
}

pub fn udp_client(bind: &str) -> UdpSocket {
    let socket = UdpSocket::bind(bind).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

/// Sends `request` to `to` and returns the reply and where it came from.
pub fn udp_exchange(client: &UdpSocket, to: SocketAddr, request: &[u8]) -> (Vec<u8>, SocketAddr) {
    client.send_to(request, to).unwrap();
    let mut buf = vec![0; 65536];
    let (n, from) = client.recv_from(&mut buf).expect("udp reply");
    buf.truncate(n);
    (buf, from)
}

/// Waits until `done` holds, for at most [`WAIT`].
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
