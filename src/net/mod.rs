//! The secure engine: an authenticated, encrypted chat on rust-libp2p.
//!
//! Connections are TCP, secured with Noise (XX handshake, keys bound to
//! Ed25519 identities, so a peer ID is proven, not claimed) and multiplexed
//! with Yamux; under both, a socket that takes nothing for 30 s ends its
//! connection (see `stall`). A chat is one stream of our own protocol,
//! [`CHAT_PROTOCOL`], carrying length-prefixed frames (see [`frame`]).
//!
//! The swarm lives in one task (`event_loop`); everything else talks to
//! it through a [`Client`]. This module imports `chat` and no other engine.

mod address_book;
mod behaviour;
mod client;
mod describe;
pub mod doctor;
mod event_loop;
mod events;
pub mod fetch;
pub mod files;
pub mod frame;
mod outbox;
mod rate;
pub mod relay_node;
mod relays;
pub mod room_access;
pub mod room_frame;
mod stall;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libp2p::core::Transport;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, watch};

pub use behaviour::{
    MAX_ESTABLISHED, MAX_ESTABLISHED_PER_PEER, MAX_PENDING_INCOMING, MESSAGE_HOLD, PING_INTERVAL,
    PING_TIMEOUT,
};
pub use client::{ChatStreams, Client, Incoming, Outgoing, Session};
pub use event_loop::SLOW_DROP_AFTER;
pub use events::{NearbyPeer, NetEvent, Path, PeerInfo, PublishBacklog};
pub use rate::{
    FORWARD_BYTES, RATE_BURST, RATE_BYTES_BURST, RATE_BYTES_PER_SECOND, RATE_PER_SECOND,
};

use crate::chat::line::DEFAULT_MAX_LINE;
use crate::chat::{describe_io, PeerAddress};

/// The chat stream protocol.
pub const CHAT_PROTOCOL: StreamProtocol = StreamProtocol::new("/rust-p2p-chat/chat/1.0.0");

/// Capacity of the channel of requests to the event loop.
const REQUEST_QUEUE: usize = 64;

/// Capacity of the channel of network events to the app. Small: one event
/// may carry a batch of lines, and the channel is first come, first
/// served, while the event loop's outbox before it takes peers in turn.
const EVENT_QUEUE: usize = 4;

/// Room messages are this much larger than their text at most, besides
/// the batch (header, nick, signature, protobuf).
const ROOM_OVERHEAD: usize = 4 * 1024;

/// What gossipsub's reader may hold beyond the message it is reading: it
/// checks its limit against every byte it has read, and one read (8 KiB)
/// may already hold the start of the next message. A message within that
/// of the limit, followed by another, was refused there, and the reader
/// stopped reading the member until it was dropped; so the limit it is
/// given has this much room on top of what a room message may be.
const READ_AHEAD: usize = 8 * 1024;

/// The longest line a room message carries, whatever `--max-line` says.
/// Every member's engine accepts room messages of this size (plus a
/// batch's overhead), so a member with a larger limit cannot send what
/// others' engines would refuse (which would stall its every later line),
/// and a member with a smaller one still receives the message, in order,
/// and drops the line with a notice.
pub const MAX_ROOM_LINE: usize = 128 * 1024;

/// How long a peer that is turned away gets to read that we are busy.
const TURN_AWAY_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the secure engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest message accepted or sent, in bytes.
    pub max_message: usize,
    /// How long a connection attempt (with its handshake) may take.
    pub dial_timeout: Duration,
    /// A connection with no open stream closes after this long.
    pub idle_timeout: Duration,
    /// Find peers on the LAN with mDNS.
    pub mdns: bool,
    /// The most bytes of lines one room message carries (or one longer
    /// line): 128 KiB by default. Smaller batches make what gossipsub
    /// queues for a member that stopped reading smaller, and cost a
    /// signature check each, which a flooded room's latency is made of.
    pub batch_bytes: usize,
    /// Relays to hold a reservation at (`--relay`), each a multiaddr
    /// ending in `/p2p/RELAY_ID`: peers that cannot dial us reach us
    /// through them. A reservation is made once the node listens (see
    /// [`Client::listen`]), so that the connection to the relay leaves
    /// from the listening port and hole punching can reach it; within
    /// 2 s of the start, or a few seconds more, regardless.
    pub relays: Vec<Multiaddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message: DEFAULT_MAX_LINE,
            dial_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            mdns: false,
            batch_bytes: 128 * 1024,
            relays: Vec::new(),
        }
    }
}

/// What went wrong in the secure engine. An I/O cause is said in the
/// message and kept in a `cause` field, not given as the `source()`, so a
/// printer that follows the chain of sources does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network stack could not be set up.
    #[error("could not start the network: {0}")]
    Start(String),
    /// The listening socket could not be opened.
    #[error("could not listen on 0.0.0.0:{port}: {cause}")]
    Listen {
        /// The port asked for.
        port: u16,
        /// The cause.
        cause: String,
    },
    /// A host name could not be resolved.
    #[error("could not resolve host '{host}': {cause}")]
    Resolve {
        /// The name looked up.
        host: String,
        /// The cause.
        cause: String,
    },
    /// A multiaddr could not be parsed or is not one we can dial.
    #[error("invalid address '{addr}': {cause}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        cause: String,
    },
    /// A connection could not be established or secured.
    #[error("could not connect to {addr}: {cause}")]
    Dial {
        /// The address tried.
        addr: String,
        /// The cause.
        cause: String,
    },
    /// The chat stream could not be opened.
    #[error("could not open a chat with {peer}: {cause}")]
    OpenChat {
        /// The peer.
        peer: PeerId,
        /// The cause.
        cause: String,
    },
    /// Reading from or writing to the peer failed.
    #[error("connection with {peer} failed: {}", describe_io(.cause))]
    Io {
        /// The peer.
        peer: PeerId,
        /// The cause.
        cause: std::io::Error,
    },
    /// A message to send is longer than the limit.
    #[error("message is {len} bytes, over the {limit}-byte limit")]
    MessageTooLong {
        /// The message's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Nothing to dial.
    #[error("no address to dial")]
    NoAddress,
    /// Something already accepts chats.
    #[error("chats are already being accepted")]
    AlreadyAccepting,
    /// A private room joined without its key.
    #[error("the private room #{0} cannot be joined without its key")]
    NoRoomKey(String),
    /// The engine's task has ended.
    #[error("the network engine has stopped")]
    Stopped,
}

impl Error {
    /// The error with a failed connection named by `typed`, the address as
    /// the user gave it: the engine only knows the multiaddr it dialled,
    /// which a user who typed `HOST:PORT` would not recognise.
    pub fn dialling(self, typed: &str) -> Self {
        match self {
            Error::Dial { cause, .. } => Error::Dial {
                addr: typed.to_owned(),
                cause,
            },
            other => other,
        }
    }
}

/// The largest room message gossipsub takes with `config`, in bytes,
/// with room for a read of the next: a batch holds up to `batch_bytes` of
/// lines, or one longer line of [`MAX_ROOM_LINE`] at most; the same for
/// every member, whatever its own line limit.
pub fn max_room_message(config: &Config) -> usize {
    MAX_ROOM_LINE.max(config.batch_bytes) + ROOM_OVERHEAD + READ_AHEAD
}

/// Starts the engine with our identity; it runs until every [`Client`]
/// clone is dropped or [`Client::shutdown`] is called: the clients own its
/// tasks. Returns the client and what the network reports.
///
/// # Panics
///
/// Outside a tokio runtime: the engine's tasks start on the current one.
pub fn start(
    keypair: Keypair,
    config: Config,
) -> Result<(Client, mpsc::Receiver<NetEvent>), Error> {
    let local = keypair.public().to_peer_id();
    let idle = config.idle_timeout;
    let max_transmit = max_room_message(&config);
    let use_mdns = config.mdns;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            // What `with_tcp` builds, with the raw stream guarded (see
            // [`stall`]).
            let noise = libp2p::noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
                    .map(|stream, _| stall::StallGuard::new(stream, stall::WRITE_STALL))
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(libp2p::yamux::Config::default()),
            )
        })
        .map_err(|e| Error::Start(e.to_string()))?
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .map_err(|e| Error::Start(e.to_string()))?
        .with_behaviour(|key, relay_client| {
            behaviour::Behaviour::new(key, relay_client, max_transmit, use_mdns)
        })
        .map_err(|e| Error::Start(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    let mut control = swarm.behaviour().stream.new_control();
    let rooms = room_access::Rooms::default();
    let questions = room_access::accept(&mut control)?;
    // Nonces of sealed room messages: a random prefix per run and a
    // counter, so no two are alike without a system call per message.
    let mut nonce_prefix = [0u8; 16];
    getrandom::fill(&mut nonce_prefix).map_err(|e| Error::Start(format!("no randomness: {e}")))?;
    let (requests, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    let (presence, presence_rx) = watch::channel(HashSet::new());
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
    let backlog = std::sync::Arc::new(PublishBacklog::default());
    let rotations_events = events.clone();
    let event_loop = event_loop::EventLoop::new(
        swarm,
        requests_rx,
        events,
        presence,
        std::sync::Arc::clone(&backlog),
        event_loop::Private {
            rooms: std::sync::Arc::clone(&rooms),
            nonce_prefix,
            relays: relays::Relays::new(&config.relays, std::time::Instant::now()),
        },
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(event_loop.run());
    tasks.spawn(room_access::answer(
        questions,
        std::sync::Arc::clone(&rooms),
        rotations_events,
    ));
    let client = Client {
        engine: std::sync::Arc::new(client::Engine::new(tasks)),
        requests,
        control,
        local,
        config,
        presence: presence_rx,
        backlog,
        rooms,
    };
    Ok((client, events_rx))
}

/// The multiaddr to dial for an address typed as `HOST:PORT`; a host name
/// is resolved here, so its errors read like the plain mode's.
pub async fn resolve(addr: &PeerAddress) -> Result<Multiaddr, Error> {
    let ip = match addr.ip() {
        Some(ip) => ip,
        None => tokio::net::lookup_host((addr.host(), addr.port()))
            .await
            .map_err(|e| Error::Resolve {
                host: addr.host().to_owned(),
                cause: describe_io(&e),
            })?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| Error::Resolve {
                host: addr.host().to_owned(),
                cause: "no address found".into(),
            })?,
    };
    Ok(Multiaddr::from(ip).with(Protocol::Tcp(addr.port())))
}

/// The multiaddr of a TCP socket address.
pub fn multiaddr_of(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip()).with(Protocol::Tcp(addr.port()))
}

/// Parses a multiaddr typed by the user (`/ip4/1.2.3.4/tcp/9000/p2p/ID`).
pub fn parse_multiaddr(text: &str) -> Result<Multiaddr, Error> {
    let addr: Multiaddr =
        text.parse()
            .map_err(|e: libp2p::multiaddr::Error| Error::InvalidAddress {
                addr: text.to_owned(),
                cause: e.to_string(),
            })?;
    if socket_addr(&addr).is_none() {
        return Err(Error::InvalidAddress {
            addr: text.to_owned(),
            cause: "expected /ip4/ADDR/tcp/PORT or /ip6/ADDR/tcp/PORT, optionally ending in /p2p/PEER_ID".into(),
        });
    }
    Ok(addr)
}

/// The IP and TCP port of a multiaddr, if it has them.
pub fn socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(v4.into()),
            Protocol::Ip6(v6) => ip = Some(v6.into()),
            Protocol::Tcp(port) => return ip.map(|ip| SocketAddr::new(ip, port)),
            _ => {}
        }
    }
    None
}

/// Whether a multiaddr goes through a relay (`.../p2p-circuit/...`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The relay a circuit address goes through: the peer ID before
/// `/p2p-circuit`; `None` for a direct address.
pub fn relay_in(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// The peer ID at the end of a multiaddr, if there is one.
pub fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiaddrs_give_their_socket_address_and_peer() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let addr = parse_multiaddr(&format!("/ip4/127.0.0.1/tcp/9000/p2p/{peer}")).unwrap();
        assert_eq!(socket_addr(&addr), Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(peer_in(&addr), Some(peer));
        assert!(parse_multiaddr("/ip4/127.0.0.1/udp/9000").is_err());
        assert!(parse_multiaddr("/nonsense").is_err());
    }

    #[test]
    fn a_failed_connection_says_its_cause_once() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let error = Error::Io {
            peer,
            cause: std::io::Error::from_raw_os_error(104),
        };
        assert!(std::error::Error::source(&error).is_none(), "{error}");
        assert_eq!(error.to_string().matches("reset").count(), 1, "{error}");
    }

    /// Far longer than the engine needs to stop; only a task that never
    /// ends comes near it.
    const STOP_WAIT: Duration = Duration::from_secs(10);

    /// Tasks alive on this test's runtime (each `#[tokio::test]` has its
    /// own, so other tests' tasks are not counted).
    fn alive() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    /// Waits until no more than `count` tasks are alive.
    async fn until_alive_at_most(count: usize) -> Result<(), usize> {
        tokio::time::timeout(STOP_WAIT, async {
            while alive() > count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .map_err(|_| alive())
    }

    /// The engine's events until the channel closes, which it does when
    /// the event loop has ended.
    async fn until_closed(events: &mut mpsc::Receiver<NetEvent>) -> Vec<NetEvent> {
        let mut seen = Vec::new();
        let closed = tokio::time::timeout(STOP_WAIT, async {
            while let Some(event) = events.recv().await {
                seen.push(event);
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the event loop still runs; it sent {seen:?}"
        );
        seen
    }

    #[tokio::test]
    async fn the_engine_ends_with_its_last_client() {
        let before = alive();
        let (client, mut events) =
            start(Keypair::generate_ed25519(), Config::default()).expect("the engine starts");
        let clone = client.clone();
        client.listen(0).await.expect("listens on a free port");
        assert!(alive() > before, "the engine runs tasks");
        drop(client);
        // A clone still owns the engine.
        assert!(!clone.listen_addrs().await.is_empty());
        drop(clone);
        until_closed(&mut events).await;
        let left = until_alive_at_most(before).await;
        assert_eq!(left, Ok(()), "tasks outlived the engine");
    }

    #[tokio::test]
    async fn shutdown_ends_the_engine_and_its_connections_for_every_clone() {
        let before = alive();
        let (ours, mut our_events) =
            start(Keypair::generate_ed25519(), Config::default()).expect("ours starts");
        let (theirs, mut their_events) =
            start(Keypair::generate_ed25519(), Config::default()).expect("theirs starts");
        let port = theirs.listen(0).await.expect("listens").port();
        let addr = parse_multiaddr(&format!("/ip4/127.0.0.1/tcp/{port}")).expect("address");
        let peer = ours.dial(&addr).await.expect("connects");
        assert_eq!(peer, theirs.local_peer_id());

        let clone = ours.clone();
        tokio::time::timeout(STOP_WAIT, ours.shutdown())
            .await
            .expect("shutdown returns once the tasks have ended");
        assert!(matches!(clone.listen(0).await, Err(Error::Stopped)));
        until_closed(&mut our_events).await;

        // The other side sees the connection go with our engine.
        let gone = tokio::time::timeout(STOP_WAIT, async {
            while let Some(event) = their_events.recv().await {
                if matches!(event, NetEvent::Disconnected { peer } if peer == clone.local_peer_id())
                {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(gone, Ok(true), "the peer never saw us leave");

        theirs.shutdown().await;
        drop((ours, clone, theirs));
        let left = until_alive_at_most(before).await;
        assert_eq!(left, Ok(()), "tasks outlived both engines");
    }

    #[test]
    fn a_failed_dial_is_named_as_typed() {
        let error = Error::Dial {
            addr: "/ip4/127.0.0.1/tcp/9999".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(
            error.dialling("127.0.0.1:9999").to_string(),
            "could not connect to 127.0.0.1:9999: connection refused"
        );
        assert!(matches!(
            Error::Stopped.dialling("127.0.0.1:9999"),
            Error::Stopped
        ));
    }
}
