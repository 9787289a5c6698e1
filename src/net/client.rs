//! The handle the rest of the program holds, and the chat sessions it opens.
//!
//! [`Client`] is cheap to clone; each method sends a request to the event
//! loop and awaits its answer. Chat sessions run on libp2p streams (one
//! stream per chat, opened with `libp2p-stream`), outside the event loop:
//! reading and writing a stream never waits on the swarm task, which is
//! what lets a chat move hundreds of thousands of messages a second.
//!
//! The clients own the engine: every clone shares one [`Engine`], which
//! holds the engine's tasks, so dropping the last clone ends them, and
//! [`Client::shutdown`] ends them at once for every clone.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use super::event_loop::Request;
use super::events::PublishBacklog;
use super::frame::{FrameReader, FrameWriter};
use super::room_frame::{Body, RoomFrame};
use super::{Config, Error, CHAT_PROTOCOL};
use crate::chat::delivery::Said;
use crate::chat::room::is_public;
use crate::chat::room_key::RoomAccess;
use crate::chat::Received;

type Stream = Compat<libp2p::Stream>;

/// A handle on the running network engine. The engine runs until the
/// last clone is dropped or [`Client::shutdown`] is called.
#[derive(Clone)]
pub struct Client {
    pub(super) engine: Arc<Engine>,
    pub(super) requests: mpsc::Sender<Request>,
    pub(super) control: libp2p_stream::Control,
    pub(super) local: PeerId,
    pub(super) config: Config,
    pub(super) presence: watch::Receiver<HashSet<PeerId>>,
    pub(super) backlog: Arc<PublishBacklog>,
    pub(super) rooms: super::room_access::Rooms,
}

/// The engine's tasks (the event loop, which owns the swarm, and the one
/// that answers which private room we are in), shared by every clone of a
/// [`Client`]. Dropping it aborts them: a task blocked on the network
/// must not outlive every handle on it. Neither task holds a `Client`,
/// so nothing keeps the engine alive but its clients.
pub(super) struct Engine {
    /// An async mutex, so that a second [`Client::shutdown`] waits for the
    /// first one's tasks to end too.
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl Engine {
    pub(super) fn new(tasks: JoinSet<()>) -> Self {
        Self {
            tasks: tokio::sync::Mutex::new(tasks),
        }
    }
}

impl Client {
    /// Stops the engine, for every clone of this client: ends the event
    /// loop once what we published last has had a moment to leave (every
    /// connection closes with the swarm), and the task that
    /// answers peers' questions, and returns once they have ended. From
    /// then on every request fails with [`Error::Stopped`] and the channel
    /// of [`NetEvent`](super::NetEvent)s closes. Dropping the last clone
    /// does the same without waiting.
    pub async fn shutdown(&self) {
        // What we published last leaves first, unless the loop is gone.
        let (reply, answer) = oneshot::channel();
        if self.request(Request::Stop { reply }).await.is_ok() {
            let _ = tokio::time::timeout(2 * super::event_loop::FLUSH_GRACE, answer).await;
        }
        self.engine.tasks.lock().await.shutdown().await;
    }

    /// The room messages that wait for a member's queue to have room.
    pub fn publish_backlog(&self) -> Arc<PublishBacklog> {
        Arc::clone(&self.backlog)
    }

    /// Our own peer ID.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Listens on TCP `0.0.0.0:port` (0: a free port); returns the address
    /// bound, with the real port.
    pub async fn listen(&self, port: u16) -> Result<SocketAddr, Error> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::Listen { port, reply }).await?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Connects to `addr` and completes the secure handshake; returns the
    /// peer's proven identity. A `/p2p/ID` at the end of the address must
    /// match it.
    pub async fn dial(&self, addr: &Multiaddr) -> Result<PeerId, Error> {
        let mut addr = addr.clone();
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => {
                addr.pop();
                Some(peer)
            }
            _ => None,
        };
        let (reply, answer) = oneshot::channel();
        self.request(Request::Dial {
            addr: addr.clone(),
            peer,
            reply,
        })
        .await?;
        match tokio::time::timeout(self.config.dial_timeout, answer).await {
            Ok(answer) => answer.map_err(|_| Error::Stopped)?,
            Err(_) => Err(Error::Dial {
                addr: addr.to_string(),
                cause: "timed out".into(),
            }),
        }
    }

    /// The address a connected peer is at, if it is connected.
    pub async fn peer_address(&self, peer: PeerId) -> Option<Multiaddr> {
        let (reply, answer) = oneshot::channel();
        self.request(Request::PeerAddress { peer, reply })
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.request(Request::Disconnect { peer }).await;
    }

    /// Joins a room (subscribes to its topic). A private room is the one
    /// `access` holds the key of; joining a room we are in with another
    /// key moves us to that key's room. A public room has no key.
    pub async fn join(&self, room: &str, access: Option<RoomAccess>) -> Result<(), Error> {
        if access.is_none() && !is_public(room) {
            return Err(Error::NoRoomKey(room.to_owned()));
        }
        let access = access.filter(|_| !is_public(room));
        if let (Some(access), Ok(mut rooms)) = (&access, self.rooms.lock()) {
            // Shared here, before the engine takes the request, so that
            // what the app sets next (`set_answers`) finds the room. What
            // to tell members that come back stays until the app sets it
            // anew.
            let answers = rooms
                .remove(room)
                .map(|shared| shared.answers)
                .unwrap_or_default();
            let access = access.clone();
            rooms.insert(
                room.to_owned(),
                super::room_access::Shared { access, answers },
            );
        }
        self.request(Request::Join {
            room: room.to_owned(),
            access,
        })
        .await
    }

    /// Subscribes to a private room's topic, named by its id (see
    /// [`RoomKey::topic_id`](crate::chat::room_key::RoomKey::topic_id)),
    /// without its key, under the name `room`: what a forwarding peer or a
    /// stranger that learned the topic gets. Messages arrive as
    /// [`NetEvent::Sealed`](super::NetEvent::Sealed), as they came; what
    /// is published there goes out unsealed, which members refuse. The
    /// chat itself never does this; it shows what a room's traffic
    /// reveals to those outside it.
    pub async fn watch_sealed(&self, room: &str, topic_id: &str) -> Result<(), Error> {
        self.request(Request::Watch {
            room: room.to_owned(),
            topic_id: topic_id.to_owned(),
        })
        .await
    }

    /// Leaves a room.
    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.remove(room);
        }
        self.request(Request::Leave {
            room: room.to_owned(),
        })
        .await
    }

    /// Publishes a room frame. A message no member can take yet waits in
    /// the engine, in order, until one can or the engine gives up on those
    /// members; the app sees how many wait in
    /// [`Client::publish_backlog`] and should hold back while it grows.
    /// Other failures come back as
    /// [`NetEvent::NotPublished`](super::NetEvent::NotPublished).
    pub async fn publish(&self, room: &str, frame: &RoomFrame) -> Result<(), Error> {
        self.request(Request::Publish {
            room: room.to_owned(),
            data: frame.encode(),
        })
        .await
    }

    /// Says something in a room (see [`Client::publish`]); a hello also
    /// gives the addresses we listen on.
    pub async fn say(&self, room: &str, said: Said) -> Result<(), Error> {
        let addrs = match said {
            Said::Hello { .. } => self.listen_addrs().await,
            _ => Vec::new(),
        };
        let mut frame = RoomFrame::saying(said, &addrs);
        if let Body::Hello { invite_only, .. } = &mut frame.body {
            *invite_only = self.room_access(room).is_some_and(|a| a.invite_only);
        }
        self.publish(room, &frame).await
    }

    /// Connects to a peer we learned of, unless already connected.
    pub async fn introduce(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self.request(Request::Introduce { peer, addrs }).await;
    }

    /// The connected peers, with address and round-trip time.
    pub async fn peers(&self) -> Vec<super::PeerInfo> {
        let (reply, answer) = oneshot::channel();
        if self.request(Request::Peers { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// The addresses we listen on.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let (reply, answer) = oneshot::channel();
        if self.request(Request::ListenAddrs { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// The peers found on the LAN, with the public rooms they are in.
    pub async fn nearby(&self) -> Vec<super::NearbyPeer> {
        let (reply, answer) = oneshot::channel();
        if self.request(Request::Nearby { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// The largest batch of lines for one room message, in bytes.
    pub fn batch_bytes(&self) -> usize {
        self.config.batch_bytes
    }

    /// Opens a chat with a connected peer.
    pub async fn open_chat(&mut self, peer: PeerId) -> Result<Session, Error> {
        let stream = self
            .control
            .open_stream(peer, CHAT_PROTOCOL)
            .await
            .map_err(|e| Error::OpenChat {
                peer,
                cause: e.to_string(),
            })?;
        Ok(Session::new(
            peer,
            stream.compat(),
            &self.config,
            self.presence.clone(),
        ))
    }

    /// Whether a connection to `peer` is open now.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.presence.borrow().contains(peer)
    }

    /// Opens a stream on `protocol` with a connected peer, to be spoken by
    /// hand: for tools and tests that probe a peer the way a modified
    /// program would (the chat's own protocols have methods of their own).
    pub async fn open_stream(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<libp2p::Stream, Error> {
        self.control
            .open_stream(peer, protocol)
            .await
            .map_err(|e| Error::OpenChat {
                peer,
                cause: e.to_string(),
            })
    }

    /// Starts accepting chats that peers open with us. Only one acceptor
    /// may exist at a time.
    pub fn accept_chats(&mut self) -> Result<ChatStreams, Error> {
        let inner = self
            .control
            .accept(CHAT_PROTOCOL)
            .map_err(|_| Error::AlreadyAccepting)?;
        Ok(ChatStreams {
            inner,
            config: self.config.clone(),
            presence: self.presence.clone(),
        })
    }

    async fn request(&self, request: Request) -> Result<(), Error> {
        self.requests
            .send(request)
            .await
            .map_err(|_| Error::Stopped)
    }
}

/// Chats that peers open with us, in the order they arrive. Must be
/// polled continually: libp2p drops incoming streams that wait too long.
pub struct ChatStreams {
    inner: libp2p_stream::IncomingStreams,
    config: Config,
    presence: watch::Receiver<HashSet<PeerId>>,
}

impl ChatStreams {
    /// The next chat a peer opened. Cancel-safe.
    pub async fn next(&mut self) -> Option<Session> {
        let (peer, stream) = self.inner.next().await?;
        Some(Session::new(
            peer,
            stream.compat(),
            &self.config,
            self.presence.clone(),
        ))
    }
}

/// One chat with one peer over an encrypted stream.
pub struct Session {
    incoming: Incoming,
    outgoing: Outgoing,
}

impl Session {
    fn new(
        peer: PeerId,
        stream: Stream,
        config: &Config,
        presence: watch::Receiver<HashSet<PeerId>>,
    ) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self {
            incoming: Incoming {
                peer,
                reader: FrameReader::new(read, config.max_message),
                gone: Departure {
                    peer,
                    presence,
                    seen: false,
                },
            },
            outgoing: Outgoing {
                peer,
                writer: FrameWriter::new(write),
                max_message: config.max_message,
            },
        }
    }

    /// Who the chat is with.
    pub fn peer(&self) -> PeerId {
        self.incoming.peer
    }

    /// Splits into halves that can be used at the same time.
    pub fn split(self) -> (Incoming, Outgoing) {
        (self.incoming, self.outgoing)
    }

    /// Tells the peer we are busy and closes the stream.
    pub async fn turn_away(self) {
        let mut outgoing = self.outgoing;
        let _ = tokio::time::timeout(super::TURN_AWAY_TIMEOUT, async move {
            outgoing.writer.busy().await?;
            outgoing.writer.close().await
        })
        .await;
    }

    /// Waits for what the peer sends next.
    pub async fn next_event(&mut self) -> Result<Received, Error> {
        self.incoming.next().await
    }

    /// Sends one message and flushes it.
    pub async fn send(&mut self, text: &str) -> Result<(), Error> {
        self.outgoing.queue(text).await?;
        self.outgoing.flush().await
    }
}

/// The receiving half of a chat.
pub struct Incoming {
    peer: PeerId,
    reader: FrameReader<ReadHalf<Stream>>,
    gone: Departure,
}

/// Watches for the end of a peer's last connection.
///
/// When we close a connection ourselves (its pings went unanswered), yamux
/// closes it without waking the streams' readers, so a read on the chat
/// stream would wait forever; the event loop's record of who is connected
/// tells us instead.
struct Departure {
    peer: PeerId,
    presence: watch::Receiver<HashSet<PeerId>>,
    /// The peer was seen connected (the stream may arrive before the event
    /// loop has recorded its connection).
    seen: bool,
}

impl Departure {
    /// Resolves once the peer was connected and no longer is. Cancel-safe.
    async fn wait(&mut self) {
        loop {
            let present = self.presence.borrow_and_update().contains(&self.peer);
            if present {
                self.seen = true;
            } else if self.seen {
                return;
            }
            if self.presence.changed().await.is_err() {
                // The engine stopped: nobody is connected any more.
                return;
            }
        }
    }
}

impl Incoming {
    /// Waits for what the peer sends next. Cancel-safe. A broken stream
    /// (the connection closed, or pings went unanswered) is reported as
    /// [`Received::Disconnected`], like a clean end.
    pub async fn next(&mut self) -> Result<Received, Error> {
        let read = tokio::select! {
            biased;
            read = self.reader.next() => read,
            () = self.gone.wait() => Ok(Received::Disconnected),
        };
        match read {
            Ok(received) => Ok(received),
            Err(e) if is_disconnect(&e) => Ok(Received::Disconnected),
            Err(cause) => Err(Error::Io {
                peer: self.peer,
                cause,
            }),
        }
    }

    /// What the peer sent that is already read, without waiting.
    pub fn try_next(&mut self) -> Option<Received> {
        self.reader.try_next()
    }
}

/// The sending half of a chat.
pub struct Outgoing {
    peer: PeerId,
    writer: FrameWriter<WriteHalf<Stream>>,
    max_message: usize,
}

impl Outgoing {
    /// Adds a message to the send buffer; it goes out when the buffer
    /// fills or on [`flush`](Self::flush).
    pub async fn queue(&mut self, text: &str) -> Result<(), Error> {
        if text.len() > self.max_message {
            return Err(Error::MessageTooLong {
                len: text.len(),
                limit: self.max_message,
            });
        }
        let sent_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.writer
            .queue(text, sent_ms)
            .await
            .map_err(|cause| Error::Io {
                peer: self.peer,
                cause,
            })
    }

    /// Sends everything queued. Cancel-safe.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.writer.flush().await.map_err(|cause| Error::Io {
            peer: self.peer,
            cause,
        })
    }

    /// Sends everything queued and closes our direction of the stream.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.writer.close().await.map_err(|cause| Error::Io {
            peer: self.peer,
            cause,
        })
    }
}

fn is_disconnect(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        error.kind(),
        K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::NotConnected
            // yamux reports a stream of a closed connection as "other".
            | K::Other
    )
}
