//! The UDP data plane against real sockets on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::time::Duration;

use anyns_server::{Error, Server, Transport};
use common::*;

#[test]
fn udp_ipv4_query_is_answered() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let addr = server.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    let client = udp_client("127.0.0.1:0");
    let request = query(0x1234, b"\x03www\x07example\x00\x00\x01\x00\x01");
    let (answer, from) = udp_exchange(&client, addr, &request);
    assert_eq!(answer, echo_answer(&request, Transport::Udp));
    assert_eq!(from, addr);
    eventually("counted", || {
        let t = server.udp_totals();
        t.queries_received == 1 && t.responses_sent == 1
    });
    server.shutdown().unwrap();
}

#[test]
fn udp_declined_request_reaches_the_handler_with_the_client_address() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let addr = server.local_addrs()[0];
    let client = udp_client("127.0.0.1:0");
    let request = query(9, b"S");
    let (answer, _) = udp_exchange(&client, addr, &request);
    assert_eq!(
        &answer[12..],
        client.local_addr().unwrap().to_string().as_bytes()
    );
    server.shutdown().unwrap();
}

#[test]
fn udp_ipv6_query_is_answered() {
    if !ipv6_loopback() {
        return;
    }
    let rt = runtime();
    let server = start(&config(&["[::1]:0"]), &rt);
    let addr = server.local_addrs()[0];
    let client = udp_client("[::1]:0");
    let request = query(7, b"six");
    let (answer, from) = udp_exchange(&client, addr, &request);
    assert_eq!(answer, echo_answer(&request, Transport::Udp));
    assert_eq!(from, addr);
    server.shutdown().unwrap();
}

/// The reason for IP_PKTINFO: on a wildcard socket the reply must come from the address the
/// query was sent to, or the client (and any connected socket) drops it.
#[test]
fn udp_reply_leaves_from_the_query_destination_on_a_wildcard_address() {
    let rt = runtime();
    let server = start(&config(&["0.0.0.0:0"]), &rt);
    let port = server.local_addrs()[0].port();
    let client = udp_client("127.0.0.1:0");
    for (id, destination) in [
        (1, [127, 0, 0, 2]),
        (2, [127, 0, 0, 3]),
        (3, [127, 0, 0, 1]),
    ] {
        let to = SocketAddr::from((destination, port));
        let request = query(id, b"vip");
        let (answer, from) = udp_exchange(&client, to, &request);
        assert_eq!(answer, echo_answer(&request, Transport::Udp));
        assert_eq!(from, to, "reply source");
    }
    // A connected client only sees replies from the address it sent to.
    let connected = udp_client("127.0.0.1:0");
    connected.connect(("127.0.0.2", port)).unwrap();
    let request = query(4, b"connected");
    connected.send(&request).unwrap();
    let mut buf = [0; 512];
    let n = connected
        .recv(&mut buf)
        .expect("reply to a connected socket");
    assert_eq!(&buf[..n], echo_answer(&request, Transport::Udp));
    server.shutdown().unwrap();
}

#[test]
fn udp_ipv6_wildcard_reply_leaves_from_the_query_destination() {
    if !ipv6_loopback() {
        return;
    }
    let rt = runtime();
    let server = start(&config(&["[::]:0", "0.0.0.0:0"]), &rt);
    let v6 = server.local_addrs()[0];
    let to = SocketAddr::new("::1".parse().unwrap(), v6.port());
    let client = udp_client("[::1]:0");
    let request = query(9, b"v6");
    let (answer, from) = udp_exchange(&client, to, &request);
    assert_eq!(answer, echo_answer(&request, Transport::Udp));
    assert_eq!(from, to);
    // IPV6_V6ONLY: IPv4 goes to the 0.0.0.0 sockets, on their own port.
    let v4 = server.local_addrs()[1];
    let client4 = udp_client("127.0.0.1:0");
    let to4 = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), v4.port());
    let (_, from4) = udp_exchange(&client4, to4, &request);
    assert_eq!(from4, to4);
    server.shutdown().unwrap();
}

#[test]
fn udp_dropped_and_panicking_requests_get_no_answer_and_are_counted() {
    let rt = runtime();
    let mut config = config(&["127.0.0.1:0"]);
    config.udp.workers = NonZeroUsize::new(1);
    let server = start(&config, &rt);
    let addr = server.local_addrs()[0];
    let client = udp_client("127.0.0.1:0");
    client.send_to(&query(1, b"D"), addr).unwrap();
    client.send_to(&query(2, b"P"), addr).unwrap();
    client.send_to(b"short", addr).unwrap();
    // The worker survives the panic and answers the next request; nothing came before it.
    let request = query(3, b"after");
    let (answer, _) = udp_exchange(&client, addr, &request);
    assert_eq!(answer, echo_answer(&request, Transport::Udp));
    eventually("counted", || {
        let t = server.udp_totals();
        t.queries_received == 4 && t.dropped == 2 && t.handler_panics == 1 && t.responses_sent == 1
    });
    server.shutdown().unwrap();
}

/// A reply the kernel refuses (65535 octets do not fit a UDP datagram) is counted; the other
/// replies of the batch still go out.
#[test]
fn udp_send_error_is_counted_and_the_rest_of_the_batch_is_sent() {
    let rt = runtime();
    let mut config = config(&["127.0.0.1:0"]);
    config.udp.workers = NonZeroUsize::new(1);
    let server = start(&config, &rt);
    let addr = server.local_addrs()[0];
    let client = udp_client("127.0.0.1:0");
    client.send_to(&query(1, b"B"), addr).unwrap();
    let request = query(2, b"small");
    let (answer, _) = udp_exchange(&client, addr, &request);
    assert_eq!(answer, echo_answer(&request, Transport::Udp));
    eventually("send error counted", || {
        let t = server.udp_totals();
        t.send_errors == 1 && t.responses_sent == 1
    });
    server.shutdown().unwrap();
}

/// SO_REUSEPORT: every worker has its own socket on the same port and the kernel spreads the
/// clients over them.
#[test]
fn udp_workers_share_the_port() {
    let rt = runtime();
    let mut config = config(&["127.0.0.1:0"]);
    config.udp.workers = NonZeroUsize::new(4);
    let server = start(&config, &rt);
    let addr = server.local_addrs()[0];
    let clients: Vec<UdpSocket> = (0..16).map(|_| udp_client("127.0.0.1:0")).collect();
    for (c, client) in clients.iter().enumerate() {
        for i in 0..5u16 {
            let request = query(c as u16 * 100 + i, b"spread");
            let (answer, _) = udp_exchange(client, addr, &request);
            assert_eq!(answer, echo_answer(&request, Transport::Udp));
        }
    }
    eventually("all counted", || server.udp_totals().responses_sent == 80);
    let busy = server
        .udp_counters()
        .iter()
        .filter(|c| c.snapshot().queries_received > 0)
        .count();
    assert!(busy >= 2, "only {busy} of 4 workers saw queries");
    server.shutdown().unwrap();
}

#[test]
fn udp_shutdown_stops_the_workers_and_frees_the_port() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let addr = server.local_addrs()[0];
    let client = udp_client("127.0.0.1:0");
    udp_exchange(&client, addr, &query(1, b"before"));
    let started = std::time::Instant::now();
    server.shutdown().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // No socket of the server is left: a plain bind (no SO_REUSEPORT) of both protocols works.
    UdpSocket::bind(addr).expect("udp port free after shutdown");
    std::net::TcpListener::bind(addr).expect("tcp port free after shutdown");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    client.send_to(&query(2, b"after"), addr).unwrap();
    assert!(
        client.recv_from(&mut [0; 512]).is_err(),
        "answered after shutdown"
    );
}

#[test]
fn bind_error_names_protocol_and_address() {
    let rt = runtime();
    // A socket without SO_REUSEPORT holds the port.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let config = config(&[&addr.to_string()]);
    let err = Server::start(&config, std::sync::Arc::new(TestHandler), rt.handle())
        .err()
        .expect("bind must fail");
    assert!(
        matches!(err, Error::BindUdp { addr: a, .. } if a == addr),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("cannot bind udp {addr}: address in use by another socket")
    );

    let none = config_none();
    let err = Server::start(&none, std::sync::Arc::new(TestHandler), rt.handle()).err();
    assert!(matches!(err, Some(Error::NoListenAddress)));
}

fn config_none() -> anyns_server::ServerConfig {
    anyns_server::ServerConfig::default()
}
