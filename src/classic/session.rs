//! Connections of the plain protocol: listening, connecting, and one chat.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::error::Error;
use super::{Config, BUSY_LINE};
use crate::chat::line::{Frame, LineSplitter};
use crate::chat::PeerAddress;
pub use crate::chat::Received;

/// Bytes asked of the socket in one read.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes gathered before a write is issued (a write happens earlier when the
/// caller flushes because it has nothing more to send).
const WRITE_BUFFER: usize = 64 * 1024;

/// How long a refused peer gets to take the busy line before it is closed.
const TURN_AWAY_TIMEOUT: Duration = Duration::from_secs(2);

/// TCP keep-alive: a peer that vanished without closing (power loss, cable
/// pulled, a link that drops everything) while the chat is idle is noticed
/// after `IDLE + INTERVAL * RETRIES` of silence, 25 s. The system defaults
/// (two hours of idleness) would leave a listener busy with a ghost.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// See [`KEEPALIVE_IDLE`].
const KEEPALIVE_RETRIES: u32 = 3;

/// A connection whose sent data has gone unacknowledged this long is
/// dropped (`TCP_USER_TIMEOUT`). Without it, retransmissions to a vanished
/// peer go on for about 15 minutes (and keep-alive does not probe while data
/// is outstanding). Where the option is missing, keep-alive is all we have.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
const USER_TIMEOUT: Duration = Duration::from_secs(20);

/// A listening socket that hands out one [`Session`] per accepted peer.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    config: Config,
}

impl Listener {
    /// Binds `addr` (port 0 lets the system choose).
    pub async fn bind(addr: SocketAddr, config: Config) -> Result<Self, Error> {
        let inner = TcpListener::bind(addr)
            .await
            .map_err(|cause| Error::Bind { addr, cause })?;
        Ok(Self { inner, config })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.inner
            .local_addr()
            .map_err(|cause| Error::Accept { cause })
    }

    /// Waits for the next peer. Cancel-safe.
    pub async fn accept(&self) -> Result<Session, Error> {
        let (stream, peer) = self
            .inner
            .accept()
            .await
            .map_err(|cause| Error::Accept { cause })?;
        Ok(Session::new(stream, peer, &self.config))
    }
}

/// Connects to `addr`, trying each address its host resolves to in turn.
pub async fn connect(addr: &PeerAddress, config: Config) -> Result<Session, Error> {
    let candidates: Vec<SocketAddr> = match addr.ip() {
        Some(ip) => vec![SocketAddr::new(ip, addr.port())],
        None => tokio::net::lookup_host((addr.host(), addr.port()))
            .await
            .map_err(|cause| Error::Resolve {
                host: addr.host().to_owned(),
                cause,
            })?
            .collect(),
    };
    let mut last_error = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the name resolved to no address",
    );
    for candidate in candidates {
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(candidate)).await {
            Ok(Ok(stream)) => return Ok(Session::new(stream, candidate, &config)),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = std::io::ErrorKind::TimedOut.into(),
        }
    }
    Err(Error::Connect {
        addr: addr.to_string(),
        cause: last_error,
    })
}

/// One chat with one peer.
#[derive(Debug)]
pub struct Session {
    incoming: Incoming,
    outgoing: Outgoing,
}

impl Session {
    fn new(stream: TcpStream, peer: SocketAddr, config: &Config) -> Self {
        // Tuning: a socket without it still works, only a dead peer is
        // found late.
        let _ = stream.set_nodelay(true);
        let _ = watch_for_dead_peer(SockRef::from(&stream));
        let (read, write) = stream.into_split();
        Self {
            incoming: Incoming {
                stream: read,
                peer,
                lines: LineSplitter::new(config.max_line),
                chunk: vec![0; READ_CHUNK].into_boxed_slice(),
                disconnected: false,
            },
            outgoing: Outgoing {
                stream: BufWriter::with_capacity(WRITE_BUFFER, write),
                peer,
                max_line: config.max_line,
            },
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.incoming.peer
    }

    /// Splits into halves that can be used at the same time.
    pub fn split(self) -> (Incoming, Outgoing) {
        (self.incoming, self.outgoing)
    }

    /// Waits for what the peer sends next. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<Received, Error> {
        self.incoming.next().await
    }

    /// Sends one line and flushes it.
    pub async fn send(&mut self, text: &str) -> Result<(), Error> {
        self.outgoing.queue(text).await?;
        self.outgoing.flush().await
    }

    /// Tells the peer that we are busy and closes the connection, giving
    /// up after a short timeout if the peer does not read.
    pub async fn turn_away(self) {
        let mut outgoing = self.outgoing;
        let _ = tokio::time::timeout(TURN_AWAY_TIMEOUT, async move {
            outgoing.queue(BUSY_LINE).await?;
            outgoing.close().await
        })
        .await;
    }
}

/// The receiving half of a session.
#[derive(Debug)]
pub struct Incoming {
    stream: OwnedReadHalf,
    peer: SocketAddr,
    lines: LineSplitter,
    chunk: Box<[u8]>,
    disconnected: bool,
}

impl Incoming {
    /// Waits for what the peer sends next. Cancel-safe: bytes read are kept
    /// in the session, so a dropped call loses nothing.
    pub async fn next(&mut self) -> Result<Received, Error> {
        loop {
            if let Some(received) = self.try_next() {
                return Ok(received);
            }
            if self.disconnected {
                return Ok(Received::Disconnected);
            }
            match self.stream.read(&mut self.chunk).await {
                Ok(0) => self.disconnected = true,
                Ok(n) => self.lines.push(&self.chunk[..n]),
                Err(e) if is_disconnect(&e) => self.disconnected = true,
                Err(cause) => {
                    self.disconnected = true;
                    return Err(Error::Io {
                        peer: self.peer,
                        cause,
                    });
                }
            }
        }
    }

    /// What the peer sent that is already read, without waiting. `None`
    /// means that more must be read from the socket.
    pub fn try_next(&mut self) -> Option<Received> {
        let frame = if self.disconnected {
            self.lines.finish()
        } else {
            self.lines.next_frame()
        };
        frame.map(|frame| match frame {
            // A peer's lines are read whole or dropped, never in pieces.
            Frame::Line(text) | Frame::Piece { text, .. } => Received::Message(text),
            Frame::TooLong { limit } => Received::TooLong { limit },
        })
    }
}

/// The sending half of a session.
#[derive(Debug)]
pub struct Outgoing {
    stream: BufWriter<OwnedWriteHalf>,
    peer: SocketAddr,
    max_line: usize,
}

impl Outgoing {
    /// Checks one line and adds it to the send buffer; it goes out when the
    /// buffer fills or on [`flush`](Self::flush). Waits only when the
    /// buffer is full and the peer is not reading.
    pub async fn queue(&mut self, text: &str) -> Result<(), Error> {
        if text.len() > self.max_line {
            return Err(Error::MessageTooLong {
                len: text.len(),
                limit: self.max_line,
            });
        }
        if text.contains('\n') {
            return Err(Error::MessageHasNewline);
        }
        let peer = self.peer;
        let io_error = |cause| Error::Io { peer, cause };
        self.stream
            .write_all(text.as_bytes())
            .await
            .map_err(io_error)?;
        self.stream.write_all(b"\n").await.map_err(io_error)
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.flush().await.map_err(|cause| Error::Io {
            peer: self.peer,
            cause,
        })
    }

    /// Sends everything queued and closes our direction of the connection
    /// (the peer reads end-of-file; it may still send to us).
    pub async fn close(&mut self) -> Result<(), Error> {
        self.stream.shutdown().await.map_err(|cause| Error::Io {
            peer: self.peer,
            cause,
        })
    }
}

/// Sets the options that find a peer gone without a word (see
/// [`KEEPALIVE_IDLE`] and [`USER_TIMEOUT`]) on a connected socket.
fn watch_for_dead_peer(socket: SockRef<'_>) -> std::io::Result<()> {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    Ok(())
}

fn is_disconnect(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        error.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest a vanished peer may go unnoticed, idle or not.
    const DEAD_PEER_FOUND_WITHIN: Duration = Duration::from_secs(30);

    /// Bounds every wait in these tests.
    const TEST_TIMEOUT: Duration = Duration::from_secs(10);

    fn assert_watches_for_a_dead_peer(stream: &TcpStream) {
        let socket = SockRef::from(stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_RETRIES);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(socket.tcp_user_timeout().unwrap(), Some(USER_TIMEOUT));
    }

    #[tokio::test]
    async fn accepted_and_connected_sockets_watch_for_a_dead_peer() {
        let config = Config::default();
        let listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config.clone())
            .await
            .unwrap();
        let target: PeerAddress = listener.local_addr().unwrap().to_string().parse().unwrap();
        let (connected, accepted) = tokio::time::timeout(TEST_TIMEOUT, async {
            tokio::join!(connect(&target, config), listener.accept())
        })
        .await
        .unwrap();
        for session in [connected.unwrap(), accepted.unwrap()] {
            assert_watches_for_a_dead_peer(session.incoming.stream.as_ref());
        }
    }

    #[test]
    fn a_dead_peer_is_found_in_time() {
        // Idle: the probes go unanswered.
        let idle = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES;
        assert!(idle <= DEAD_PEER_FOUND_WITHIN, "{idle:?}");
        // Sending: our data goes unacknowledged.
        assert!(USER_TIMEOUT <= DEAD_PEER_FOUND_WITHIN);
    }
}
