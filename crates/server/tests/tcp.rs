//! DNS over TCP (RFC 7766) against real sockets on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyns_server::Transport;
use common::*;

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// A message with its two-octet length (RFC 1035 section 4.2.2).
fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = (message.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0; 2];
    stream.read_exact(&mut length)?;
    let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

/// True when the server has closed the connection (EOF or reset) within [`WAIT`].
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 1];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn rfc7766_6_2_1_1_pipelined_queries_in_one_write_get_two_answers() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let mut stream = connect(server.local_addrs()[0]);
    let first = query(1, b"first");
    let second = query(2, b"second");
    let mut bytes = framed(&first);
    bytes.extend(framed(&second));
    stream.write_all(&bytes).unwrap();
    assert_eq!(
        read_framed(&mut stream).unwrap(),
        echo_answer(&first, Transport::Tcp)
    );
    assert_eq!(
        read_framed(&mut stream).unwrap(),
        echo_answer(&second, Transport::Tcp)
    );
    // The connection stays open for more (RFC 7766 section 6.2.1).
    let third = query(3, b"third");
    stream.write_all(&framed(&third)).unwrap();
    assert_eq!(
        read_framed(&mut stream).unwrap(),
        echo_answer(&third, Transport::Tcp)
    );
    let t = server.tcp_counters().snapshot();
    assert_eq!(
        (t.connections_accepted, t.queries_received, t.responses_sent),
        (1, 3, 3)
    );
    server.shutdown().unwrap();
}

#[test]
fn tcp_declined_request_reaches_the_handler_with_the_client_address() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let mut stream = connect(server.local_addrs()[0]);
    stream.write_all(&framed(&query(5, b"S"))).unwrap();
    let answer = read_framed(&mut stream).unwrap();
    assert_eq!(
        &answer[12..],
        stream.local_addr().unwrap().to_string().as_bytes()
    );
    server.shutdown().unwrap();
}

#[test]
fn tcp_ipv6_query_is_answered() {
    if !ipv6_loopback() {
        return;
    }
    let rt = runtime();
    let server = start(&config(&["[::1]:0"]), &rt);
    let mut stream = connect(server.local_addrs()[0]);
    let request = query(6, b"six");
    stream.write_all(&framed(&request)).unwrap();
    assert_eq!(
        read_framed(&mut stream).unwrap(),
        echo_answer(&request, Transport::Tcp)
    );
    server.shutdown().unwrap();
}

#[test]
fn tcp_half_closed_client_gets_every_answer_then_eof() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let mut stream = connect(server.local_addrs()[0]);
    let queries: Vec<Vec<u8>> = (0..3).map(|i| query(i, b"q")).collect();
    let bytes: Vec<u8> = queries.iter().flat_map(|q| framed(q)).collect();
    stream.write_all(&bytes).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let expected: Vec<u8> = queries
        .iter()
        .flat_map(|q| framed(&echo_answer(q, Transport::Tcp)))
        .collect();
    assert_eq!(all, expected);
    server.shutdown().unwrap();
}

#[test]
fn rfc7766_6_2_3_idle_connection_is_closed_after_the_idle_timeout() {
    let rt = runtime();
    let mut config = config(&["127.0.0.1:0"]);
    config.tcp.idle_timeout = Duration::from_millis(300);
    let server = start(&config, &rt);
    let mut stream = connect(server.local_addrs()[0]);
    let request = query(1, b"once");
    stream.write_all(&framed(&request)).unwrap();
    read_framed(&mut stream).unwrap();
    let answered = Instant::now();
    // Half a message is not activity: it does not keep the connection open.
    stream.write_all(&[0, 40, 1]).unwrap();
    assert!(closed_by_server(&mut stream), "idle connection left open");
    let idle = answered.elapsed();
    assert!(idle >= Duration::from_millis(250), "closed after {idle:?}");
    eventually("idle timeout counted", || {
        let t = server.tcp_counters().snapshot();
        t.idle_timeouts == 1 && t.connections_open == 0
    });
    server.shutdown().unwrap();
}

#[test]
fn rfc7766_6_2_2_connections_over_the_limit_are_closed_at_once() {
    let rt = runtime();
    let mut config = config(&["127.0.0.1:0"]);
    config.tcp.max_connections = NonZeroUsize::new(2).unwrap();
    let server = start(&config, &rt);
    let addr = server.local_addrs()[0];
    let request = query(1, b"limit");
    let mut open: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&framed(&request)).unwrap();
            read_framed(&mut s).unwrap();
            s
        })
        .collect();
    let mut third = connect(addr);
    let _ = third.write_all(&framed(&request));
    assert!(closed_by_server(&mut third), "third connection was served");
    assert_eq!(server.tcp_counters().snapshot().connections_rejected, 1);
    // The open ones still work.
    open[0].write_all(&framed(&request)).unwrap();
    read_framed(&mut open[0]).unwrap();

    // Closing one frees its place.
    drop(open.remove(0));
    eventually("place freed", || {
        server.tcp_counters().snapshot().connections_open == 1
    });
    let mut fourth = connect(addr);
    fourth.write_all(&framed(&request)).unwrap();
    assert_eq!(
        read_framed(&mut fourth).unwrap(),
        echo_answer(&request, Transport::Tcp)
    );
    server.shutdown().unwrap();
}

/// A client that sends queries for large answers and never reads them fills its socket buffers;
/// its task waits alone, another client is served meanwhile, and the write timeout ends it.
#[test]
fn tcp_client_that_does_not_read_blocks_nobody_and_is_closed() {
    let rt = runtime();
    let mut config = config(&["127.0.0.1:0"]);
    config.tcp.write_timeout = Duration::from_millis(1500);
    let server = start(&config, &rt);
    let addr = server.local_addrs()[0];

    let mut stalled = connect(addr);
    let big: Vec<u8> = (0..64).flat_map(|i| framed(&query(i, b"B"))).collect();
    stalled.write_all(&big).unwrap();
    eventually("stalled client's answers pending", || {
        server.tcp_counters().snapshot().responses_sent >= 2
    });

    let started = Instant::now();
    let mut other = connect(addr);
    let request = query(1, b"other");
    other.write_all(&framed(&request)).unwrap();
    assert_eq!(
        read_framed(&mut other).unwrap(),
        echo_answer(&request, Transport::Tcp)
    );
    // Well before the stalled client's write timeout ends its connection.
    assert!(started.elapsed() < Duration::from_secs(1));

    eventually("write timeout", || {
        server.tcp_counters().snapshot().write_timeouts == 1
    });
    // The other client is not affected by the timeout.
    other.write_all(&framed(&request)).unwrap();
    read_framed(&mut other).unwrap();
    // Not every answer was taken: the server wrote at most its backlog and the socket buffers.
    assert!(server.tcp_counters().snapshot().responses_sent < 64);
    server.shutdown().unwrap();
}

#[test]
fn tcp_shutdown_closes_open_connections() {
    let rt = runtime();
    let server = start(&config(&["127.0.0.1:0"]), &rt);
    let addr = server.local_addrs()[0];
    let mut stream = connect(addr);
    let request = query(1, b"x");
    stream.write_all(&framed(&request)).unwrap();
    read_framed(&mut stream).unwrap();
    server.shutdown().unwrap();
    assert!(
        closed_by_server(&mut stream),
        "connection left open by shutdown"
    );
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}
