//! The socket FFI of anyns, the only unsafe code of the workspace (STYLE: one crate holds it):
//! batches of datagrams received with `recvmmsg(2)` and sent with `sendmmsg(2)`, the IP_PKTINFO /
//! IPV6_PKTINFO control messages that let a reply leave from the address its query came to,
//! `poll(2)` and the `setsockopt(2)` calls that socket2 does not wrap.

#[cfg(not(target_os = "linux"))]
compile_error!("anyns-netsys uses Linux socket interfaces (recvmmsg, sendmmsg, IP_PKTINFO)");

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr;
use std::time::Duration;

use libc::{c_int, c_uint, socklen_t};
use socket2::Socket;

/// Largest DNS message: the TCP length prefix is 16 bits (RFC 1035 section 4.2.2), and a UDP
/// payload cannot be longer either.
pub const MAX_MESSAGE_SIZE: usize = 65535;

/// recvmmsg/sendmmsg take at most UIO_MAXIOV (1024) messages per call.
pub const MAX_BATCH: usize = 1024;

/// Room for the control messages of one datagram. We only ask for one packet-info message
/// (at most 40 octets with its header); the rest is slack for anything the kernel adds.
const CONTROL_LEN: usize = 128;

// SAFETY: CMSG_SPACE is arithmetic on its argument; it reads no memory.
const PKTINFO4_SPACE: usize =
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as c_uint) } as usize;
// SAFETY: as above.
const PKTINFO6_SPACE: usize =
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as c_uint) } as usize;
const _: () = assert!(PKTINFO4_SPACE <= CONTROL_LEN && PKTINFO6_SPACE <= CONTROL_LEN);

/// A control-message buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; CONTROL_LEN]);
const _: () = assert!(mem::align_of::<Control>() >= mem::align_of::<libc::cmsghdr>());

/// Asks the kernel to report each datagram's destination address (IP_PKTINFO for IPv4,
/// IPV6_RECVPKTINFO for IPv6, RFC 3542 section 6.1).
pub fn enable_pktinfo(socket: &Socket, ipv6: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
    } else {
        (libc::IPPROTO_IP, libc::IP_PKTINFO)
    };
    let on: c_int = 1;
    // SAFETY: the descriptor is open for the lifetime of `socket`; the option value points at a
    // live c_int and the length given is its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&on).cast(),
            mem::size_of::<c_int>() as socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits for any of a worker's sockets to become readable.
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    pub fn new(sockets: &[Socket]) -> Poller {
        Poller {
            fds: sockets
                .iter()
                .map(|s| libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    /// Returns when a socket is readable or after `timeout`. The sockets given to `new` must
    /// still be open.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `fds` is a live array of `fds.len()` pollfd entries; poll(2) only writes their
        // `revents`. A closed descriptor would be reported as POLLNVAL, not touch memory.
        let result = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if result < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// What `Batch::send` did.
#[derive(Debug, Default)]
pub struct SendOutcome {
    pub sent: usize,
    pub failed: usize,
    /// The last error seen, for the log.
    pub error: Option<io::Error>,
}

/// One queued reply: which request slot it answers, its length, its control-message length.
#[derive(Clone, Copy, Default)]
struct Queued {
    slot: usize,
    len: usize,
    control_len: usize,
}

/// The buffers of one worker for one batch of datagrams, allocated once.
///
/// Slot `i` holds the `i`-th received request, its sender's address and its control messages,
/// and the response to it. The kernel structures (`iovec`, `mmsghdr`) are filled with pointers
/// into these buffers right before each system call, never kept across calls.
///
/// The two big buffers are zeroed allocations: the kernel maps their pages lazily, so a slot
/// costs real memory only for the part of it that a datagram has ever used.
pub struct Batch {
    size: usize,
    requests: Box<[u8]>,
    responses: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    rx_control: Box<[Control]>,
    tx_control: Box<[Control]>,
    rx_iov: Box<[libc::iovec]>,
    tx_iov: Box<[libc::iovec]>,
    rx_msgs: Box<[libc::mmsghdr]>,
    tx_msgs: Box<[libc::mmsghdr]>,
    queued: Box<[Queued]>,
    queued_len: usize,
    received: usize,
}

impl Batch {
    /// A batch of `size` slots (clamped to 1..=[`MAX_BATCH`]).
    pub fn new(size: usize) -> Batch {
        let size = size.clamp(1, MAX_BATCH);
        let iovec = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        Batch {
            size,
            requests: vec![0; size * MAX_MESSAGE_SIZE].into_boxed_slice(),
            responses: vec![0; size * MAX_MESSAGE_SIZE].into_boxed_slice(),
            // SAFETY: sockaddr_storage is plain integers; all zeroes is a valid (AF_UNSPEC) value.
            names: vec![unsafe { mem::zeroed::<libc::sockaddr_storage>() }; size]
                .into_boxed_slice(),
            rx_control: vec![Control([0; CONTROL_LEN]); size].into_boxed_slice(),
            tx_control: vec![Control([0; CONTROL_LEN]); size].into_boxed_slice(),
            rx_iov: vec![iovec; size].into_boxed_slice(),
            tx_iov: vec![iovec; size].into_boxed_slice(),
            // SAFETY: mmsghdr is integers and raw pointers; all zeroes (null pointers, zero
            // lengths) is a valid value, and every field the kernel reads is set before a call.
            rx_msgs: (0..size).map(|_| unsafe { mem::zeroed() }).collect(),
            // SAFETY: as above.
            tx_msgs: (0..size).map(|_| unsafe { mem::zeroed() }).collect(),
            queued: vec![Queued::default(); size].into_boxed_slice(),
            queued_len: 0,
            received: 0,
        }
    }

    /// Receives up to a batch of datagrams without waiting and returns how many arrived
    /// (`ErrorKind::WouldBlock` when none is queued). Forgets the previous batch.
    pub fn recv(&mut self, socket: &Socket) -> io::Result<usize> {
        self.received = 0;
        self.queued_len = 0;
        let requests = self.requests.as_mut_ptr();
        for (i, iov) in self.rx_iov.iter_mut().enumerate() {
            iov.iov_base = requests.wrapping_add(i * MAX_MESSAGE_SIZE).cast();
            iov.iov_len = MAX_MESSAGE_SIZE;
        }
        let iovs = self.rx_iov.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        let controls = self.rx_control.as_mut_ptr();
        for (i, msg) in self.rx_msgs.iter_mut().enumerate() {
            let hdr = &mut msg.msg_hdr;
            hdr.msg_name = names.wrapping_add(i).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as socklen_t;
            hdr.msg_iov = iovs.wrapping_add(i);
            hdr.msg_iovlen = 1;
            hdr.msg_control = controls.wrapping_add(i).cast();
            hdr.msg_controllen = CONTROL_LEN as _;
            hdr.msg_flags = 0;
            msg.msg_len = 0;
        }
        // SAFETY: each of the `size` headers points at its own slot of buffers owned by `self`
        // (name, one iovec over MAX_MESSAGE_SIZE octets, CONTROL_LEN octets of control), with
        // the lengths of those buffers; none is borrowed elsewhere during the call, and the
        // kernel writes no further than the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.rx_msgs.as_mut_ptr(),
                self.size as c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel never reports more messages than it was given.
        self.received = (n as usize).min(self.size);
        Ok(self.received)
    }

    /// The request in slot `i` of the last batch and the buffer for its response, or `None`
    /// when there is no such slot or the datagram did not fit (it is dropped, not answered).
    pub fn slot(&mut self, i: usize) -> Option<(&[u8], &mut [u8])> {
        if i >= self.received {
            return None;
        }
        let msg = &self.rx_msgs[i];
        if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (msg.msg_len as usize).min(MAX_MESSAGE_SIZE);
        let start = i * MAX_MESSAGE_SIZE;
        let request = self.requests.get(start..start + len)?;
        let response = self.responses.get_mut(start..start + MAX_MESSAGE_SIZE)?;
        Some((request, response))
    }

    /// The address the datagram in slot `i` came from (for access lists: NOTIFY, transfers).
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        if i >= self.received {
            return None;
        }
        let len = self.rx_msgs[i].msg_hdr.msg_namelen as usize;
        let storage = &self.names[i];
        match c_int::from(storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote an AF_INET address of `len` octets into this
                // sockaddr_storage, which is larger and at least as aligned as sockaddr_in.
                let sin = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for an AF_INET6 address and sockaddr_in6.
                let sin6 = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The address the datagram in slot `i` was sent to, from its packet-info control message.
    // The length fields are size_t with glibc and socklen_t with musl: the casts are for musl.
    #[allow(clippy::unnecessary_cast)]
    pub fn destination(&self, i: usize) -> Option<IpAddr> {
        if i >= self.received {
            return None;
        }
        let hdr = &self.rx_msgs[i].msg_hdr;
        let control_start = self.rx_control[i].0.as_ptr() as usize;
        let control_end = control_start + (hdr.msg_controllen as usize).min(CONTROL_LEN);
        // SAFETY: after `recv`, `hdr.msg_control` points at `rx_control[i]` and the kernel set
        // `msg_controllen` to the octets it filled there. CMSG_FIRSTHDR/CMSG_NXTHDR only return
        // headers that start inside that length; the data is read only after checking that it
        // ends inside it too, with unaligned reads.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                let end = (cmsg as usize).saturating_add((*cmsg).cmsg_len as usize);
                let data_len = end.min(control_end).saturating_sub(data as usize);
                match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO)
                        if data_len >= mem::size_of::<libc::in_pktinfo>() =>
                    {
                        let info = ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                        // ipi_addr is the destination in the IP header, in network order.
                        let octets = info.ipi_addr.s_addr.to_ne_bytes();
                        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                        if data_len >= mem::size_of::<libc::in6_pktinfo>() =>
                    {
                        let info = ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        return Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
    }

    /// Queues the first `len` octets of slot `i`'s response buffer as the reply to its request:
    /// to the request's sender, from the request's destination address.
    pub fn queue_reply(&mut self, i: usize, len: usize) {
        if i >= self.received || self.queued_len >= self.size {
            return;
        }
        let k = self.queued_len;
        let control_len = match self.destination(i) {
            Some(source) => write_pktinfo(&mut self.tx_control[k], source),
            // No packet info (it cannot happen with the option on): let the kernel choose.
            None => 0,
        };
        self.queued[k] = Queued {
            slot: i,
            len: len.min(MAX_MESSAGE_SIZE),
            control_len,
        };
        self.queued_len += 1;
    }

    /// Sends the queued replies. A reply the kernel refuses is counted and skipped; the rest of
    /// the batch still goes out.
    pub fn send(&mut self, socket: &Socket) -> SendOutcome {
        let count = self.queued_len;
        self.queued_len = 0;
        let mut outcome = SendOutcome::default();
        if count == 0 {
            return outcome;
        }
        let responses = self.responses.as_mut_ptr();
        for (iov, q) in self.tx_iov.iter_mut().zip(&self.queued[..count]) {
            iov.iov_base = responses.wrapping_add(q.slot * MAX_MESSAGE_SIZE).cast();
            iov.iov_len = q.len;
        }
        let iovs = self.tx_iov.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        let controls = self.tx_control.as_mut_ptr();
        for (k, (msg, q)) in self
            .tx_msgs
            .iter_mut()
            .zip(&self.queued[..count])
            .enumerate()
        {
            let hdr = &mut msg.msg_hdr;
            hdr.msg_name = names.wrapping_add(q.slot).cast();
            hdr.msg_namelen = self.rx_msgs[q.slot].msg_hdr.msg_namelen;
            hdr.msg_iov = iovs.wrapping_add(k);
            hdr.msg_iovlen = 1;
            if q.control_len == 0 {
                hdr.msg_control = ptr::null_mut();
                hdr.msg_controllen = 0;
            } else {
                hdr.msg_control = controls.wrapping_add(k).cast();
                hdr.msg_controllen = q.control_len as _;
            }
            hdr.msg_flags = 0;
            msg.msg_len = 0;
        }
        let mut start = 0;
        while start < count {
            // SAFETY: headers `start..count` point at buffers owned by `self` (the sender's
            // address as the kernel wrote it with its length, one iovec over `len` octets of a
            // response slot, and a control message of `control_len` octets written by
            // `write_pktinfo`); the kernel only reads them, and only during the call.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.tx_msgs.as_mut_ptr().add(start),
                    (count - start) as c_uint,
                    0,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // sendmmsg reports an error only when the first message of the call failed.
                outcome.failed += 1;
                outcome.error = Some(error);
                start += 1;
            } else if n == 0 {
                // Not seen in practice; do not spin on it.
                outcome.failed += count - start;
                break;
            } else {
                let n = (n as usize).min(count - start);
                outcome.sent += n;
                start += n;
            }
        }
        outcome
    }
}

/// Writes the packet-info control message that sends a reply from `source` and returns its
/// length. The interface index stays 0 so that routing picks the way out: with anycast the
/// reply need not leave by the interface the query came in on.
fn write_pktinfo(control: &mut Control, source: IpAddr) -> usize {
    let cmsg = control.0.as_mut_ptr().cast::<libc::cmsghdr>();
    // SAFETY: `control` is CONTROL_LEN octets aligned for cmsghdr, and both packet-info
    // messages fit in it (checked at compile time above): the header is written aligned at its
    // start and the data at CMSG_DATA, inside the buffer, with an unaligned write.
    unsafe {
        let mut header: libc::cmsghdr = mem::zeroed();
        match source {
            IpAddr::V4(addr) => {
                header.cmsg_level = libc::IPPROTO_IP;
                header.cmsg_type = libc::IP_PKTINFO;
                header.cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::in_pktinfo>() as c_uint) as _;
                ptr::write(cmsg, header);
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    // ipi_spec_dst is the source address of the reply (ip(7)).
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(addr.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                PKTINFO4_SPACE
            }
            IpAddr::V6(addr) => {
                header.cmsg_level = libc::IPPROTO_IPV6;
                header.cmsg_type = libc::IPV6_PKTINFO;
                header.cmsg_len =
                    libc::CMSG_LEN(mem::size_of::<libc::in6_pktinfo>() as c_uint) as _;
                ptr::write(cmsg, header);
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: addr.octets(),
                    },
                    // A link-local reply still finds its interface: the sender's address
                    // carries the scope id the kernel reported.
                    ipi6_ifindex: 0,
                };
                ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                PKTINFO6_SPACE
            }
        }
    }
}

/// `struct tcp_md5sig` of linux/tcp.h (the libc crate does not define it). With TCP_MD5SIG
/// (not TCP_MD5SIG_EXT) the kernel reads the address, the key length and the key.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: c_int,
    key: [u8; TCP_MD5SIG_MAXKEYLEN],
}

/// Longest TCP-MD5 key the kernel takes (linux/tcp.h).
pub const TCP_MD5SIG_MAXKEYLEN: usize = 80;

/// Protects this socket's TCP segments to or from `peer` with a TCP MD5 signature (RFC 2385),
/// as BGP routers expect when a session password is configured. Call it on a socket before
/// `connect`, or on a listening socket once per peer (accepted sockets inherit the key). An
/// empty key removes it. On an IPv6 socket an IPv4 peer is given as its IPv4-mapped address.
pub fn set_tcp_md5sig(socket: &Socket, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP-MD5 key of {} octets, at most {TCP_MD5SIG_MAXKEYLEN}",
                key.len()
            ),
        ));
    }
    let ipv6_socket = socket.domain()? == socket2::Domain::IPV6;
    // SAFETY: sockaddr_storage is plain integers; all zeroes is a valid (AF_UNSPEC) value.
    let mut addr: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match (peer, ipv6_socket) {
        (IpAddr::V4(v4), false) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in, and we write
            // through a pointer to our own local.
            let sin = unsafe { &mut *ptr::from_mut(&mut addr).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
        }
        (peer, _) => {
            let v6 = match peer {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *ptr::from_mut(&mut addr).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
        }
    }
    let mut sig = TcpMd5Sig {
        addr,
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; TCP_MD5SIG_MAXKEYLEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the descriptor is open for the lifetime of `socket`; the option value points at a
    // live, fully initialised tcp_md5sig and the length given is its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            ptr::from_ref(&sig).cast(),
            mem::size_of::<TcpMd5Sig>() as socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Type};
    use std::net::{SocketAddr, UdpSocket};

    fn receiver(addr: SocketAddr) -> Socket {
        let socket =
            Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).unwrap();
        enable_pktinfo(&socket, addr.is_ipv6()).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket
    }

    fn recv_some(batch: &mut Batch, socket: &Socket, want: usize) -> usize {
        let mut poller = Poller::new(std::slice::from_ref(socket));
        let mut got = 0;
        for _ in 0..50 {
            match batch.recv(socket) {
                Ok(n) => got = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("recv: {e}"),
            }
            if got >= want {
                break;
            }
            poller.wait(Duration::from_millis(100)).unwrap();
        }
        got
    }

    #[test]
    fn batch_receives_and_reports_destination() {
        let socket = receiver("0.0.0.0:0".parse().unwrap());
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", ("127.0.0.3", port)).unwrap();

        let mut batch = Batch::new(4);
        assert_eq!(recv_some(&mut batch, &socket, 1), 1);
        let (request, response) = batch.slot(0).unwrap();
        assert_eq!(request, b"hello");
        response[..3].copy_from_slice(b"bye");
        assert_eq!(batch.destination(0), Some(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(batch.source(0), Some(client.local_addr().unwrap()));
        assert!(batch.slot(1).is_none());
        assert!(batch.source(1).is_none());

        batch.queue_reply(0, 3);
        let outcome = batch.send(&socket);
        assert_eq!((outcome.sent, outcome.failed), (1, 0));
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0; 16];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"bye");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 3], port)));
    }

    #[test]
    fn empty_batch_would_block() {
        let socket = receiver("127.0.0.1:0".parse().unwrap());
        let mut batch = Batch::new(2);
        let err = batch.recv(&socket).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(batch.send(&socket).sent, 0);
    }

    #[test]
    fn rfc2385_tcp_md5_key_is_accepted_and_bounded() {
        use std::net::TcpListener;
        for (bind, peer) in [
            ("127.0.0.1:0", "127.0.0.2"),
            ("[::1]:0", "::1"),
            ("[::1]:0", "127.0.0.2"),
        ] {
            let addr: SocketAddr = bind.parse().unwrap();
            let socket =
                Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
            socket.bind(&addr.into()).unwrap();
            socket.listen(1).unwrap();
            let peer: IpAddr = peer.parse().unwrap();
            set_tcp_md5sig(&socket, peer, b"secret").unwrap();
            // An empty key removes it again.
            set_tcp_md5sig(&socket, peer, b"").unwrap();
            let _: TcpListener = socket.into();
        }
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let too_long = [b'k'; TCP_MD5SIG_MAXKEYLEN + 1];
        let err = set_tcp_md5sig(&socket, "127.0.0.1".parse().unwrap(), &too_long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
