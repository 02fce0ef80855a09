//! A small DNS client for integration tests: build a query with domain's `MessageBuilder`,
//! send it over UDP or TCP (RFC 1035 section 4.2) with a timeout, parse the answer.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

use domain::base::iana::{Class, Rcode};
use domain::base::{Message, MessageBuilder, Name, Rtype, ToName};

/// Largest DNS message (a TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65535;

//------------ Query ----------------------------------------------------------

/// The EDNS(0) part of a query (RFC 6891 section 6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub udp_payload_size: u16,
    pub dnssec_ok: bool,
    pub version: u8,
}

impl Edns {
    pub fn payload(udp_payload_size: u16) -> Self {
        Edns {
            udp_payload_size,
            dnssec_ok: false,
            version: 0,
        }
    }

    pub fn with_dnssec_ok(self) -> Self {
        Edns {
            dnssec_ok: true,
            ..self
        }
    }
}

/// A query to build: one question, optional EDNS, header flags a client may set.
#[derive(Clone, Debug)]
pub struct Query {
    pub id: u16,
    pub qname: Name<Vec<u8>>,
    pub qtype: Rtype,
    pub qclass: Class,
    pub rd: bool,
    pub cd: bool,
    pub edns: Option<Edns>,
}

impl Query {
    /// An IN query without RD and without EDNS.
    pub fn new(qname: Name<Vec<u8>>, qtype: Rtype) -> Self {
        Query {
            id: 0x4242,
            qname,
            qtype,
            qclass: Class::IN,
            rd: false,
            cd: false,
            edns: None,
        }
    }

    /// Parses `qname` from presentation format (absolute or not: it is made absolute).
    pub fn parse(qname: &str, qtype: Rtype) -> Result<Self, String> {
        let text = if qname.ends_with('.') {
            qname.to_owned()
        } else {
            format!("{qname}.")
        };
        let name =
            Name::<Vec<u8>>::from_str(&text).map_err(|e| format!("bad name {qname:?}: {e}"))?;
        Ok(Query::new(name, qtype))
    }

    pub fn with_id(self, id: u16) -> Self {
        Query { id, ..self }
    }

    pub fn with_edns(self, edns: Option<Edns>) -> Self {
        Query { edns, ..self }
    }

    pub fn with_class(self, qclass: Class) -> Self {
        Query { qclass, ..self }
    }

    /// The query in wire format (no TCP length prefix).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut builder = MessageBuilder::new_vec();
        let header = builder.header_mut();
        header.set_id(self.id);
        header.set_rd(self.rd);
        header.set_cd(self.cd);
        let mut question = builder.question();
        // A Vec target never runs out of room and one question cannot overflow the count.
        let _ = question.push((&self.qname, self.qtype, self.qclass));
        let mut additional = question.additional();
        if let Some(edns) = self.edns {
            let _ = additional.opt(|opt| {
                opt.set_udp_payload_size(edns.udp_payload_size);
                opt.set_dnssec_ok(edns.dnssec_ok);
                opt.set_version(edns.version);
                Ok(())
            });
        }
        additional.finish()
    }
}

/// Parses a response.
pub fn parse(bytes: Vec<u8>) -> Result<Message<Vec<u8>>, String> {
    Message::from_octets(bytes).map_err(|e| format!("response shorter than a header: {e}"))
}

/// The ID of a message, if it is long enough to have one.
fn message_id(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

//------------ UDP ------------------------------------------------------------

/// A UDP client socket connected to one server; replies whose ID does not match the query's
/// (late answers to an earlier, timed-out query) are skipped.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    timeout: Duration,
    buf: Vec<u8>,
}

impl UdpClient {
    pub fn connect(server: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let socket = match server {
            SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
            SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?,
        };
        socket.connect(server)?;
        Ok(UdpClient {
            socket,
            timeout,
            buf: vec![0; MAX_MESSAGE],
        })
    }

    /// Sends `query` and returns the first datagram with the same ID.
    pub fn exchange(&mut self, query: &[u8]) -> io::Result<Vec<u8>> {
        let id = message_id(query);
        let deadline = Instant::now() + self.timeout;
        self.socket.send(query)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no UDP answer"));
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv(&mut self.buf) {
                Ok(len) => {
                    let reply = &self.buf[..len];
                    if message_id(reply) == id {
                        return Ok(reply.to_vec());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no UDP answer"));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One query over UDP from a fresh socket.
pub fn udp_exchange(server: SocketAddr, query: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    UdpClient::connect(server, timeout)?.exchange(query)
}

//------------ TCP ------------------------------------------------------------

/// A TCP client that keeps its connection for the next query (RFC 7766 section 6.2.1) and
/// reconnects once if the server closed it in between.
#[derive(Debug)]
pub struct TcpClient {
    server: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
}

impl TcpClient {
    pub fn new(server: SocketAddr, timeout: Duration) -> Self {
        TcpClient {
            server,
            timeout,
            stream: None,
        }
    }

    /// Sends `query` with its two-octet length prefix and reads one framed answer.
    pub fn exchange(&mut self, query: &[u8]) -> io::Result<Vec<u8>> {
        let reused = self.stream.is_some();
        match self.try_exchange(query) {
            Ok(reply) => Ok(reply),
            // A kept connection may have been closed by the server's idle timeout.
            Err(e) if reused && is_closed(&e) => {
                self.stream = None;
                self.try_exchange(query)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    fn try_exchange(&mut self, query: &[u8]) -> io::Result<Vec<u8>> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            empty => {
                let stream = TcpStream::connect_timeout(&self.server, self.timeout)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                empty.insert(stream)
            }
        };
        let len = u16::try_from(query.len())
            .map_err(|_| io::Error::other("query longer than 65535 octets"))?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed)?;
        let id = message_id(query);
        loop {
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix)?;
            let mut reply = vec![0; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut reply)?;
            if message_id(&reply) == id {
                return Ok(reply);
            }
        }
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// One query over a fresh TCP connection.
pub fn tcp_exchange(server: SocketAddr, query: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    TcpClient::new(server, timeout).exchange(query)
}

//------------ Readiness ------------------------------------------------------

/// Checks once, over UDP, that `server` answers an authoritative SOA for every zone in
/// `zones` (servers such as Knot listen before their zones are loaded, and answer SERVFAIL
/// meanwhile). Poll it with [`super::process::ServerProcess::wait_until`].
pub fn serves_zones(server: SocketAddr, zones: &[&str]) -> Result<(), String> {
    for zone in zones {
        let query = Query::parse(zone, Rtype::SOA)?.to_wire();
        let reply = udp_exchange(server, &query, Duration::from_millis(300))
            .map_err(|e| format!("{zone} SOA from {server}: {e}"))?;
        let msg = parse(reply)?;
        if !is_authoritative_soa(&msg) {
            return Err(format!(
                "{zone} SOA from {server}: rcode {} aa={}",
                msg.header().rcode(),
                msg.header().aa()
            ));
        }
    }
    Ok(())
}

fn is_authoritative_soa(msg: &Message<Vec<u8>>) -> bool {
    msg.header().rcode() == Rcode::NOERROR
        && msg.header().aa()
        && msg
            .answer()
            .is_ok_and(|answer| answer.flatten().any(|rr| rr.rtype() == Rtype::SOA))
}

/// Renders a name byte for byte (case kept, escapes as in RFC 1035 section 5.1).
pub fn name_text(name: &impl ToName) -> String {
    let name = name.to_vec();
    if name.is_root() {
        ".".to_owned()
    } else {
        format!("{name}.")
    }
}
