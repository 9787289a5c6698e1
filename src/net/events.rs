//! What the event loop tells the rest of the program: network events for
//! the app, what is known of peers, and how many publishes wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::Notify;

use crate::chat::delivery::Said;

/// A peer found on the LAN by mDNS, for `/nearby`.
#[derive(Debug, Clone)]
pub struct NearbyPeer {
    /// Its ID.
    pub peer: PeerId,
    /// Where mDNS says it is.
    pub addr: Option<Multiaddr>,
    /// The public rooms it is in, as far as we can tell: a peer's rooms
    /// are known only once connected, which discovery does only while we
    /// are in a public room ourselves (or the peer is).
    pub public_rooms: Vec<String>,
    /// Whether we are connected to it.
    pub connected: bool,
}

/// A connected peer, for `/peers`.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its ID.
    pub peer: PeerId,
    /// Where it is.
    pub addr: Option<Multiaddr>,
    /// The last ping's round trip.
    pub rtt: Option<Duration>,
    /// How we reach it.
    pub path: Path,
}

/// How a connected peer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A connection of its own.
    Direct,
    /// A direct connection made by hole punching, from a relayed one.
    HolePunched,
    /// Through this relay only.
    Relayed(PeerId),
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Direct => write!(f, "direct"),
            Path::HolePunched => write!(f, "direct (hole-punched)"),
            Path::Relayed(relay) => write!(f, "relayed via {relay}"),
        }
    }
}

/// What the network tells the app.
#[derive(Debug)]
pub enum NetEvent {
    /// A valid room message.
    Room {
        /// The room.
        room: String,
        /// Its author (proven by its signature).
        author: PeerId,
        /// The peer that passed it to us.
        via: PeerId,
        /// What it says.
        said: Said,
        /// Where its author says it can be reached (a hello's).
        addrs: Vec<Multiaddr>,
    },
    /// A peer joined a room's topic.
    Subscribed {
        /// The peer.
        peer: PeerId,
        /// The room.
        room: String,
    },
    /// A peer left a room's topic.
    Unsubscribed {
        /// The peer.
        peer: PeerId,
        /// The room.
        room: String,
    },
    /// A first connection to a peer was established.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: Multiaddr,
        /// Whether it connected to us.
        inbound: bool,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A peer sends room messages faster than allowed; some were dropped.
    Throttled {
        /// The peer.
        peer: PeerId,
    },
    /// A peer kept flooding; it was disconnected and is refused from now on.
    Banned {
        /// The peer.
        peer: PeerId,
    },
    /// A room message that does not decode, or does not open with the
    /// room's key, was dropped.
    Rejected {
        /// Its author.
        peer: PeerId,
    },
    /// A message on a private room's topic we watch without its key
    /// (see [`Client::watch_sealed`](super::Client::watch_sealed)), as it
    /// came.
    Sealed {
        /// Its author.
        author: PeerId,
        /// The message as gossipsub carried it.
        data: Vec<u8>,
    },
    /// A member handed us the rotations of a private room's key (someone
    /// was removed); unchecked, for the room's key ring to judge.
    Rotated {
        /// Who handed them.
        peer: PeerId,
        /// The room.
        room: String,
        /// The rotations, oldest first.
        rotations: Vec<crate::chat::membership::SealedRotation>,
    },
    /// A relayed connection to a peer was upgraded to a direct one.
    HolePunched {
        /// The peer.
        peer: PeerId,
    },
    /// A relay holds a reservation for us: peers reach us at `addr`.
    Relayed {
        /// The relay.
        relay: Multiaddr,
        /// Our address through it.
        addr: Multiaddr,
    },
    /// A relay's reservation ended; it is asked again after a wait.
    RelayLost {
        /// The relay.
        relay: Multiaddr,
        /// Why, in a user's words.
        cause: String,
    },
    /// A member said the private room admits only key holders from now
    /// on (someone handed out an invite); we no longer hand its key to
    /// whoever dials us.
    InviteOnly {
        /// The room.
        room: String,
    },
    /// A member has not taken what we send for a while.
    Slow {
        /// The peer.
        peer: PeerId,
    },
    /// A room message could not be published.
    NotPublished {
        /// The room.
        room: String,
        /// Why.
        cause: String,
    },
    /// A member that took nothing for too long was disconnected.
    SlowDropped {
        /// The peer.
        peer: PeerId,
    },
}

impl NetEvent {
    /// The author of the lines it brings, which the app takes in turns
    /// with other authors' lines; `None` for any other event, which keeps
    /// its place (see [`Outbox`](super::outbox::Outbox)).
    pub(super) fn lines_of(&self) -> Option<PeerId> {
        match self {
            NetEvent::Room {
                author,
                said: Said::Lines { .. },
                ..
            } => Some(*author),
            _ => None,
        }
    }
}

/// How many room messages wait for a member's queue to have room, shared
/// between the event loop and the app. Publishing never blocks the app
/// (which must go on taking the network's events, or the swarm stops, and
/// with it the very queues that are full); the app holds back its input
/// while this is high instead.
#[derive(Debug, Default)]
pub struct PublishBacklog {
    held: AtomicUsize,
    eased: Notify,
}

impl PublishBacklog {
    /// Messages waiting now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Returns after some of the waiting messages went out (or at once, if
    /// some went out since the last call).
    pub async fn eased(&self) {
        self.eased.notified().await;
    }

    pub(super) fn set(&self, held: usize) {
        let before = self.held.swap(held, Ordering::Relaxed);
        if held < before {
            self.eased.notify_one();
        }
    }
}
