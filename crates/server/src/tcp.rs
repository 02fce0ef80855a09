//! DNS over TCP (RFC 7766) on tokio: one task per connection, so that no client can stall
//! another; several queries per connection, read while earlier answers are still being written
//! (RFC 7766 section 6.2.1.1), answered in order; idle and write timeouts; a connection limit.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

use crate::counters::{TcpCounters, add};
use crate::{DeclinedReply, Handler, MAX_MESSAGE_SIZE, MessageStream, Reply, Transport};

/// Pending connections the kernel queues before we accept them.
const LISTEN_BACKLOG: i32 = 1024;

/// Stop taking requests off a connection while this many octets of answers wait to be written:
/// a client that sends but does not read costs a bounded amount of memory.
const WRITE_BACKLOG: usize = 64 * 1024;

/// Initial size of a connection's input buffer.
const INPUT_START: usize = 4096;

/// Pause after a failed accept (e.g. EMFILE), so that a persistent error does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Close a connection that has had no complete query and no answer to write for this long
    /// (RFC 7766 section 6.2.3 recommends timeouts of the order of seconds). Half-received
    /// messages do not count as activity, so a client trickling octets is closed too.
    pub idle_timeout: Duration,
    /// Close a connection whose client does not take any of its pending answers for this long.
    pub write_timeout: Duration,
    /// Connections open at once over all TCP listeners of a server. When they are all in use a
    /// new connection is accepted and closed at once (RFC 7766 section 6.2.2 lets a server limit
    /// connections); the connections already open are left alone.
    pub max_connections: NonZeroUsize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// A TCP listening socket with SO_REUSEADDR (a restart binds while old connections linger in
/// TIME_WAIT) and IPV6_V6ONLY. Blocking mode off, ready for tokio.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// What every connection task of a server shares.
pub(crate) struct Shared<H> {
    pub handler: Arc<H>,
    pub config: TcpConfig,
    pub counters: Arc<TcpCounters>,
    pub limit: Arc<Semaphore>,
}

/// Accepts connections until the task is aborted. Connection tasks live in a `JoinSet` owned by
/// this task, so aborting it (dropping the set) ends them all.
pub(crate) async fn accept_loop<H: Handler>(listener: TcpListener, shared: Arc<Shared<H>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = shared.limit.clone().try_acquire_owned() else {
                        add(&shared.counters.connections_rejected, 1);
                        tracing::debug!(%peer, "tcp connection limit reached; closing new connection");
                        drop(stream);
                        continue;
                    };
                    add(&shared.counters.connections_accepted, 1);
                    connections.spawn(connection(stream, peer, shared.clone(), permit));
                }
                Err(error) => {
                    add(&shared.counters.errors, 1);
                    tracing::warn!(%error, "tcp accept failed");
                    sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = done {
                    if error.is_panic() {
                        tracing::error!("tcp connection task panicked");
                    }
                }
            }
        }
    }
}

/// Keeps the open-connections gauge right however the task ends (also when it is aborted).
struct OpenConnection {
    counters: Arc<TcpCounters>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counters.connections_open.fetch_sub(1, Relaxed);
    }
}

async fn connection<H: Handler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<H>>,
    permit: OwnedSemaphorePermit,
) {
    shared.counters.connections_open.fetch_add(1, Relaxed);
    let _open = OpenConnection {
        counters: shared.counters.clone(),
        _permit: permit,
    };
    // Answers are written whole as soon as they are ready; Nagle's algorithm would only hold
    // back the last segment of each.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY failed");
    }
    let (reader, writer) = stream.split();
    let ending = Connection::new(peer)
        .serve(
            reader,
            writer,
            &*shared.handler,
            &shared.config,
            &shared.counters,
        )
        .await;
    match ending {
        Ending::Closed => {}
        Ending::IdleTimeout => add(&shared.counters.idle_timeouts, 1),
        Ending::WriteTimeout => add(&shared.counters.write_timeouts, 1),
        Ending::Error(error) => {
            add(&shared.counters.errors, 1);
            tracing::debug!(%error, "tcp connection ended by error");
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The client closed its side and every answer was written.
    Closed,
    IdleTimeout,
    WriteTimeout,
    Error(io::Error),
}

/// The buffers of one connection, allocated once when it opens.
pub(crate) struct Connection {
    /// Received octets; `input[read_start..read_end]` is not yet processed. Starts small (most
    /// requests are a few hundred octets) and grows, once, to hold the largest message with
    /// its length field when a request announces more than fits.
    input: Vec<u8>,
    read_start: usize,
    read_end: usize,
    /// The handler writes each answer here first; it is then framed into `output`.
    answer: Box<[u8]>,
    /// Framed answers; `output[written..]` is not yet sent.
    output: Vec<u8>,
    written: usize,
    /// The client, for requests the engine declines (their access lists go by address).
    peer: SocketAddr,
    /// A multi-message answer (a zone transfer) still being produced: its messages are framed
    /// into `output` as the client takes them, and later requests wait for it to end.
    stream: Option<MessageStream>,
}

impl Connection {
    pub(crate) fn new(peer: SocketAddr) -> Connection {
        Connection {
            input: vec![0; INPUT_START],
            read_start: 0,
            read_end: 0,
            answer: vec![0; MAX_MESSAGE_SIZE].into_boxed_slice(),
            output: Vec::new(),
            written: 0,
            peer,
            stream: None,
        }
    }

    fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    /// Serves one connection until the client closes it, a timeout, or an error.
    pub(crate) async fn serve<R, W, H>(
        &mut self,
        mut reader: R,
        mut writer: W,
        handler: &H,
        config: &TcpConfig,
        counters: &TcpCounters,
    ) -> Ending
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
        H: Handler + ?Sized,
    {
        let mut reading = true;
        let timer = sleep(config.idle_timeout);
        tokio::pin!(timer);
        loop {
            if !reading && self.pending() == 0 && self.stream.is_none() {
                return Ending::Closed;
            }
            let pending_before = self.pending();
            // Reading stops while answers pile up (the client does not read them), and while
            // whole requests still wait in the input buffer for the same reason.
            let can_read =
                reading && pending_before < WRITE_BACKLOG && self.read_end < self.input.len();
            tokio::select! {
                result = writer.write(&self.output[self.written..]), if pending_before > 0 => {
                    match result {
                        Ok(0) => return Ending::Error(io::ErrorKind::WriteZero.into()),
                        Ok(n) => self.written += n,
                        Err(error) => return Ending::Error(error),
                    }
                    if self.pending() == 0 {
                        self.output.clear();
                        self.written = 0;
                    }
                    // Requests held back by the write backlog may go now.
                    self.process(handler, counters);
                    let wait = if self.pending() > 0 {
                        config.write_timeout
                    } else {
                        config.idle_timeout
                    };
                    timer.as_mut().reset(Instant::now() + wait);
                }
                result = reader.read(&mut self.input[self.read_end..]), if can_read => {
                    match result {
                        Ok(0) => reading = false,
                        Ok(n) => {
                            self.read_end += n;
                            // A complete request is activity (RFC 7766 section 6.2.3); the
                            // write timer, once running, is not extended by more requests.
                            if self.process(handler, counters) > 0 && pending_before == 0 {
                                let wait = if self.pending() > 0 {
                                    config.write_timeout
                                } else {
                                    config.idle_timeout
                                };
                                timer.as_mut().reset(Instant::now() + wait);
                            }
                        }
                        Err(error) => return Ending::Error(error),
                    }
                }
                () = &mut timer => {
                    return if self.pending() > 0 {
                        Ending::WriteTimeout
                    } else {
                        Ending::IdleTimeout
                    };
                }
            }
        }
    }

    /// Answers the complete requests in the input buffer, each a two-octet length and that many
    /// octets (RFC 1035 section 4.2.2), until the write backlog is full. Returns how many it took.
    fn process<H: Handler + ?Sized>(&mut self, handler: &H, counters: &TcpCounters) -> u64 {
        let mut taken = 0;
        let mut answered = 0;
        let mut dropped = 0;
        while self.pending() < WRITE_BACKLOG {
            // A multi-message answer in progress goes first: answers leave in request order.
            if let Some(stream) = &mut self.stream {
                match stream.next() {
                    Some(message) => {
                        if !self.push_answer_from(&message) {
                            // Cannot be framed: end the answer here; the client sees it cut.
                            self.stream = None;
                        }
                    }
                    None => self.stream = None,
                }
                continue;
            }
            let unread = &self.input[self.read_start..self.read_end];
            let Some(&[high, low]) = unread.get(..2) else {
                break;
            };
            let len = usize::from(u16::from_be_bytes([high, low]));
            if unread.len() < 2 + len {
                break;
            }
            let request = self.read_start + 2..self.read_start + 2 + len;
            self.read_start += 2 + len;
            taken += 1;
            let reply = handler.respond(
                &self.input[request.clone()],
                Transport::Tcp,
                &mut self.answer,
            );
            let declined = match reply {
                Reply::Answer(n) => DeclinedReply::Answer(n),
                Reply::Drop => DeclinedReply::Drop,
                Reply::Declined => handler.respond_declined(
                    &self.input[request],
                    self.peer,
                    Transport::Tcp,
                    &mut self.answer,
                ),
            };
            match declined {
                DeclinedReply::Answer(n) => {
                    if self.push_answer(n) {
                        answered += 1;
                    } else {
                        dropped += 1;
                    }
                }
                DeclinedReply::Drop => dropped += 1,
                DeclinedReply::Messages(stream) => {
                    self.stream = Some(stream);
                    answered += 1;
                }
            }
        }
        // Keep the partial request (if any) at the front, so that it always has room to finish.
        if self.read_start > 0 {
            self.input.copy_within(self.read_start..self.read_end, 0);
            self.read_end -= self.read_start;
            self.read_start = 0;
        }
        if let Some(&[high, low]) = self.input.get(..2).filter(|_| self.read_end >= 2) {
            let needed = 2 + usize::from(u16::from_be_bytes([high, low]));
            if needed > self.input.len() {
                self.input.resize(2 + MAX_MESSAGE_SIZE, 0);
            }
        }
        add(&counters.queries_received, taken);
        add(&counters.responses_sent, answered);
        add(&counters.dropped, dropped);
        taken
    }

    /// Frames the first `n` octets of the answer buffer into the output; false if they cannot
    /// be a message.
    fn push_answer(&mut self, n: usize) -> bool {
        let Some(answer) = self.answer.get(..n) else {
            return false;
        };
        let Ok(length) = u16::try_from(n) else {
            return false;
        };
        if self.written > 0 && self.written >= self.pending() {
            // Move the unsent tail to the front when that copies less than was already sent:
            // the buffer stays bounded, copies stay small.
            self.output.drain(..self.written);
            self.written = 0;
        }
        // Length and message leave in one write (RFC 7766 section 8).
        self.output.extend_from_slice(&length.to_be_bytes());
        self.output.extend_from_slice(answer);
        true
    }

    /// Like [`Connection::push_answer`], for a message of a multi-message answer.
    fn push_answer_from(&mut self, message: &[u8]) -> bool {
        let Ok(length) = u16::try_from(message.len()) else {
            return false;
        };
        if self.written > 0 && self.written >= self.pending() {
            self.output.drain(..self.written);
            self.written = 0;
        }
        self.output.extend_from_slice(&length.to_be_bytes());
        self.output.extend_from_slice(message);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// Answers a request with the request itself; `many` with three messages, `drop` not at
    /// all.
    struct Echo;
    impl Handler for Echo {
        fn respond(&self, request: &[u8], _: Transport, out: &mut [u8]) -> Reply {
            match request {
                b"drop" => Reply::Drop,
                b"many" => Reply::Declined,
                _ => {
                    out[..request.len()].copy_from_slice(request);
                    Reply::Answer(request.len())
                }
            }
        }

        fn respond_declined(
            &self,
            _: &[u8],
            client: SocketAddr,
            _: Transport,
            _: &mut [u8],
        ) -> DeclinedReply {
            assert_eq!(client, peer());
            let messages = vec![b"m1".to_vec(), vec![b'x'; 40_000], b"m3".to_vec()];
            DeclinedReply::Messages(Box::new(messages.into_iter()))
        }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 4242))
    }

    fn frame(message: &[u8]) -> Vec<u8> {
        let mut framed = (message.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(message);
        framed
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn rfc1035_4_2_2_split_and_pipelined_messages_are_framed() {
        runtime().block_on(async {
            let (client, server) = duplex(1 << 20);
            let (server_read, server_write) = tokio::io::split(server);
            let counters = TcpCounters::default();
            let config = TcpConfig::default();
            let serve = async {
                Connection::new(peer())
                    .serve(server_read, server_write, &Echo, &config, &counters)
                    .await
            };
            let talk = async {
                let (mut read, mut write) = tokio::io::split(client);
                let mut bytes = frame(b"one");
                bytes.extend(frame(b"drop"));
                bytes.extend(frame(b"two"));
                bytes.extend(frame(b"three"));
                // One length octet, then the rest in two pieces.
                write.write_all(&bytes[..1]).await.unwrap();
                tokio::task::yield_now().await;
                write.write_all(&bytes[1..9]).await.unwrap();
                tokio::task::yield_now().await;
                write.write_all(&bytes[9..]).await.unwrap();
                write.shutdown().await.unwrap();
                let mut answers = Vec::new();
                read.read_to_end(&mut answers).await.unwrap();
                answers
            };
            let (ending, answers) =
                tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(serve, talk) })
                    .await
                    .unwrap();
            assert!(matches!(ending, Ending::Closed), "{ending:?}");
            let mut expected = frame(b"one");
            expected.extend(frame(b"two"));
            expected.extend(frame(b"three"));
            assert_eq!(answers, expected);
            let values = counters.snapshot();
            assert_eq!(
                (
                    values.queries_received,
                    values.responses_sent,
                    values.dropped
                ),
                (4, 3, 1)
            );
        });
    }

    #[test]
    fn largest_request_fits_the_input_buffer() {
        runtime().block_on(async {
            let (client, server) = duplex(1 << 20);
            let (server_read, server_write) = tokio::io::split(server);
            let counters = TcpCounters::default();
            let config = TcpConfig::default();
            let (mut read, mut write) = tokio::io::split(client);
            let big = vec![7; MAX_MESSAGE_SIZE];
            let mut bytes = frame(&big);
            bytes.extend(frame(b"small"));
            let mut connection = Connection::new(peer());
            let serve = connection.serve(server_read, server_write, &Echo, &config, &counters);
            let talk = async {
                write.write_all(&bytes).await.unwrap();
                write.shutdown().await.unwrap();
                let mut answers = Vec::new();
                read.read_to_end(&mut answers).await.unwrap();
                answers
            };
            let (ending, answers) =
                tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(serve, talk) })
                    .await
                    .unwrap();
            assert!(matches!(ending, Ending::Closed), "{ending:?}");
            assert_eq!(answers, bytes);
        });
    }

    #[test]
    fn zero_length_message_is_a_request_too() {
        runtime().block_on(async {
            let (client, server) = duplex(1024);
            let (server_read, server_write) = tokio::io::split(server);
            let counters = TcpCounters::default();
            let config = TcpConfig::default();
            let (mut read, mut write) = tokio::io::split(client);
            write.write_all(&[0, 0, 0, 1, b'x']).await.unwrap();
            write.shutdown().await.unwrap();
            let mut connection = Connection::new(peer());
            let serve = connection.serve(server_read, server_write, &Echo, &config, &counters);
            let mut answers = Vec::new();
            let (ending, _) = tokio::time::timeout(Duration::from_secs(5), async {
                tokio::join!(serve, read.read_to_end(&mut answers))
            })
            .await
            .unwrap();
            assert!(matches!(ending, Ending::Closed));
            assert_eq!(answers, [0, 0, 0, 1, b'x']);
        });
    }

    #[test]
    fn rfc5936_2_2_multi_message_answer_is_framed_before_the_next_answer() {
        runtime().block_on(async {
            let (client, server) = duplex(1 << 10);
            let (server_read, server_write) = tokio::io::split(server);
            let counters = TcpCounters::default();
            let config = TcpConfig::default();
            let (mut read, mut write) = tokio::io::split(client);
            let mut bytes = frame(b"many");
            bytes.extend(frame(b"after"));
            let mut connection = Connection::new(peer());
            let serve = connection.serve(server_read, server_write, &Echo, &config, &counters);
            let talk = async {
                write.write_all(&bytes).await.unwrap();
                write.shutdown().await.unwrap();
                let mut answers = Vec::new();
                read.read_to_end(&mut answers).await.unwrap();
                answers
            };
            let (ending, answers) =
                tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(serve, talk) })
                    .await
                    .unwrap();
            assert!(matches!(ending, Ending::Closed), "{ending:?}");
            let mut expected = frame(b"m1");
            expected.extend(frame(&[b'x'; 40_000]));
            expected.extend(frame(b"m3"));
            expected.extend(frame(b"after"));
            assert_eq!(answers.len(), expected.len());
            assert!(answers == expected);
        });
    }
}
