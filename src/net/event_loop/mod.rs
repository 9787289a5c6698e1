//! The one task that owns the swarm.
//!
//! As in rust-libp2p's file-sharing example, nothing outside this module
//! touches the swarm: the rest of the program holds a [`Client`] that sends
//! [`Request`]s here and awaits the answers on oneshot channels. The loop
//! `select!`s over swarm events and requests; it ends when every client
//! handle is gone.
//!
//! [`Client`]: super::Client
//!
//! The swarm's events are handled in `swarm.rs`, room messages in
//! `rooms.rs`.

mod rooms;
mod swarm;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{gossipsub, mdns, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, watch};

use super::behaviour::{self, Behaviour, BehaviourEvent};
use super::describe::{describe_dial, describe_transport};
use super::events::{NearbyPeer, NetEvent, PeerInfo, PublishBacklog};
use super::rate::{Admit, Rate};
use super::room_frame::{self, RoomFrame};
use super::{socket_addr, Error};
use crate::chat::delivery::{Said, LINE_OVERHEAD};
use crate::chat::describe_io;
use crate::chat::room::is_public;
use crate::chat::room_key::{RoomAccess, RoomKey, NONCE_LEN};

/// What a client asks of the event loop.
#[derive(Debug)]
pub(super) enum Request {
    /// Listen on TCP `0.0.0.0:port`; answered with the bound address.
    Listen {
        port: u16,
        reply: oneshot::Sender<Result<SocketAddr, Error>>,
    },
    /// Connect to an address; answered with who answered, once the secure
    /// handshake is done.
    Dial {
        addr: Multiaddr,
        peer: Option<PeerId>,
        reply: oneshot::Sender<Result<PeerId, Error>>,
    },
    /// The address a connected peer connected from (or we dialled).
    PeerAddress {
        peer: PeerId,
        reply: oneshot::Sender<Option<Multiaddr>>,
    },
    /// Close every connection to a peer.
    Disconnect { peer: PeerId },
    /// Subscribe to a room's topic: for a private room, the one of its
    /// key (a public room has none).
    Join {
        room: String,
        access: Option<RoomAccess>,
    },
    /// Subscribe to a private room's topic without its key (see
    /// [`super::Client::watch_sealed`]).
    Watch { room: String, topic_id: String },
    /// Unsubscribe from a room's topic.
    Leave { room: String },
    /// Publish an encoded room frame.
    Publish { room: String, data: Vec<u8> },
    /// Connect to a peer we learned of (peer exchange), unless connected.
    Introduce { peer: PeerId, addrs: Vec<Multiaddr> },
    /// End the loop once what was published last has had
    /// [`FLUSH_GRACE`] to leave; say so.
    Stop { reply: oneshot::Sender<()> },
    /// What we know of the connected peers.
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    /// The addresses we listen on.
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// The peers found on the LAN, with the public rooms they are in.
    Nearby {
        reply: oneshot::Sender<Vec<NearbyPeer>>,
    },
}

/// What the loop keeps for private rooms and reachability: the rooms
/// shared with the client, the run's nonce prefix, the relays asked for.
pub(super) struct Private {
    pub(super) rooms: super::room_access::Rooms,
    pub(super) nonce_prefix: [u8; 16],
    pub(super) relays: super::relays::Relays,
}

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    backlog: Arc<PublishBacklog>,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<NetEvent>,
    rtts: HashMap<PeerId, Duration>,
    rates: HashMap<PeerId, Rate>,
    banned: HashSet<PeerId>,
    /// Events for the app, waiting for room in its channel.
    outbox: super::outbox::Outbox<NetEvent>,
    /// Publishes waiting for a member's queue to have room.
    pending: VecDeque<PendingPublish>,
    /// Peers gossipsub reported slow: since when, and last report.
    slow: HashMap<PeerId, (Instant, Instant)>,
    /// Peers dropped for not reading whose connection has not closed yet:
    /// told once, however many of their messages run out of time.
    slow_dropped: HashSet<PeerId>,
    listens: HashMap<libp2p::core::transport::ListenerId, PendingListen>,
    dials: HashMap<ConnectionId, PendingDial>,
    /// Where each connected peer is, from its latest connection.
    addresses: HashMap<PeerId, Multiaddr>,
    /// Each connected peer's connections and their addresses: whether it
    /// is reached directly or through a relay.
    connections: HashMap<PeerId, Vec<(ConnectionId, Multiaddr)>>,
    /// Peers whose relayed connection was upgraded by hole punching.
    punched: HashSet<PeerId>,
    /// The peers with at least one connection, for sessions to watch.
    presence: watch::Sender<HashSet<PeerId>>,
    /// The topic of each room we are in.
    joined: HashMap<String, gossipsub::IdentTopic>,
    /// The room of each topic we are in: messages and subscriptions on any
    /// other topic (a private room of the same name, founded by someone
    /// else) are none of ours.
    topic_rooms: HashMap<gossipsub::TopicHash, String>,
    /// The key of each private room we are in, to seal what we publish
    /// and open what we receive.
    keys: HashMap<String, RoomKey>,
    /// Private rooms' topics we are on without their key: what arrives
    /// is handed on sealed.
    watched: HashSet<String>,
    /// The same rooms, for peers that dial us and ask which room we mean
    /// (see [`super::room_access`]), and for our hellos.
    rooms: super::room_access::Rooms,
    /// Relays we hold a reservation at, or try to.
    relays: super::relays::Relays,
    /// The next nonce to seal a room message with: a random prefix for
    /// this run, and a counter.
    nonce_prefix: [u8; 16],
    nonce_counter: u64,
    /// Where LAN discovery last found each peer (at most
    /// [`MAX_LAN_PEERS`]), for `/nearby`.
    lan_addrs: HashMap<PeerId, Multiaddr>,
    /// When we last published: what a stop waits after.
    last_publish: Option<Instant>,
    /// Asked to stop: when, and whom to tell.
    stopping: Option<(Instant, oneshot::Sender<()>)>,
}

/// How long the loop runs on after our last publish when asked to stop:
/// gossipsub writes a message on the connection's next poll, and a last
/// acknowledgement dropped with the swarm would keep its reader waiting
/// for one that never comes.
pub(super) const FLUSH_GRACE: Duration = Duration::from_millis(250);

/// Peers found on the LAN whose address is remembered, at most.
const MAX_LAN_PEERS: usize = 256;

struct PendingPublish {
    room: String,
    data: Vec<u8>,
    attempt: u8,
    since: Instant,
}

/// Events held for the app before the swarm stops being polled, lines
/// taken in turns per author (see [`Outbox`](super::outbox::Outbox)).
/// Small: one event may carry a batch of lines.
const OUTBOX_LIMIT: usize = 16;

/// How often a publish that found every queue full is tried again.
const PUBLISH_RETRY: Duration = Duration::from_millis(10);

struct PendingListen {
    port: u16,
    reply: oneshot::Sender<Result<SocketAddr, Error>>,
}

struct PendingDial {
    addr: Multiaddr,
    reply: oneshot::Sender<Result<PeerId, Error>>,
}

impl EventLoop {
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        requests: mpsc::Receiver<Request>,
        events: mpsc::Sender<NetEvent>,
        presence: watch::Sender<HashSet<PeerId>>,
        backlog: Arc<PublishBacklog>,
        private: Private,
    ) -> Self {
        let Private {
            rooms,
            nonce_prefix,
            relays,
        } = private;
        Self {
            swarm,
            backlog,
            requests,
            events,
            rtts: HashMap::new(),
            rates: HashMap::new(),
            banned: HashSet::new(),
            slow: HashMap::new(),
            slow_dropped: HashSet::new(),
            outbox: super::outbox::Outbox::default(),
            pending: VecDeque::new(),
            listens: HashMap::new(),
            dials: HashMap::new(),
            addresses: HashMap::new(),
            connections: HashMap::new(),
            punched: HashSet::new(),
            presence,
            lan_addrs: HashMap::new(),
            joined: HashMap::new(),
            topic_rooms: HashMap::new(),
            keys: HashMap::new(),
            watched: HashSet::new(),
            rooms,
            nonce_prefix,
            nonce_counter: 0,
            relays,
            last_publish: None,
            stopping: None,
        }
    }

    /// Runs until every client is dropped (the channel of requests
    /// closes), unless the clients end it first (see `client::Engine`).
    pub(super) async fn run(mut self) {
        let mut retry = tokio::time::interval(PUBLISH_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redial = tokio::time::interval(super::behaviour::MDNS_QUERY_INTERVAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Never wait on the app: events wait in the outbox, and the
            // swarm is polled only while the outbox has room (backpressure
            // on the network, not a deadlock with a busy app).
            let outbox_open = self.outbox.len() < OUTBOX_LIMIT || self.stopping.is_some();
            let has_event = !self.outbox.is_empty();
            let publishing = !self.pending.is_empty();
            let events = self.events.clone();
            tokio::select! {
                permit = events.reserve(), if has_event => {
                    if let (Ok(permit), Some(event)) = (permit, self.outbox.pop()) {
                        permit.send(event);
                    }
                }
                event = self.swarm.select_next_some(), if outbox_open => self.on_swarm_event(event),
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => return,
                },
                _ = retry.tick(), if publishing => self.retry_publishes(),
                _ = redial.tick() => {
                    self.redial_lan_peers();
                    self.listen_on_relays();
                }
                () = sleep_until(self.stopping.as_ref().map(|(at, _)| *at)) => {
                    if let Some((_, reply)) = self.stopping.take() {
                        let _ = reply.send(());
                    }
                    return;
                }
            }
        }
    }

    /// How a connected peer is reached: directly if any of its
    /// connections is (hole-punched if that came from a relayed one), else
    /// through the relay of one.
    fn path_to(&self, peer: &PeerId) -> super::Path {
        let conns = self.connections.get(peer).map(Vec::as_slice).unwrap_or(&[]);
        if conns.iter().any(|(_, a)| !super::is_relayed(a)) || conns.is_empty() {
            if self.punched.contains(peer) {
                return super::Path::HolePunched;
            }
            return super::Path::Direct;
        }
        conns
            .iter()
            .find_map(|(_, a)| super::relay_in(a))
            .map_or(super::Path::Direct, super::Path::Relayed)
    }

    /// Listens on the circuit address of each relay due for it.
    fn listen_on_relays(&mut self) {
        let swarm = &mut self.swarm;
        self.relays
            .listen_due(Instant::now(), |addr| swarm.listen_on(addr).ok());
    }

    /// Dials the peers mDNS found that we are not connected to, while we
    /// are in a public room (see [`EventLoop::in_public_room`]). mDNS
    /// reports a peer once (until its record expires, minutes later), so
    /// a first dial that failed (both ends dialling each other while
    /// starting up, an interface not quite up) would leave it unconnected;
    /// the addresses come from mDNS itself.
    fn redial_lan_peers(&mut self) {
        if !self.in_public_room() {
            return;
        }
        let Some(mdns) = self.swarm.behaviour().mdns.as_ref() else {
            return;
        };
        let found: Vec<PeerId> = mdns.discovered_nodes().copied().collect();
        for peer in found {
            if self.swarm.is_connected(&peer)
                || self.banned.contains(&peer)
                || self.swarm.connected_peers().count() >= MAX_INTRODUCED
            {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    /// Queues an event for the app.
    fn emit(&mut self, event: NetEvent) {
        // Stopping: the app reads no more.
        if self.stopping.is_some() {
            return;
        }
        self.outbox.push(event.lines_of(), event);
    }

    /// Publishes that found every member's queue full are tried again
    /// (under a new attempt byte, so a new gossipsub id) until a member
    /// takes them or [`SLOW_DROP_AFTER`] passes. Later ones wait behind
    /// them, in order, and the app, which sees the [`PublishBacklog`],
    /// slows down like a writer to a full socket would.
    fn retry_publishes(&mut self) {
        self.publish_pending();
        self.backlog.set(self.pending.len());
    }

    /// Keeps a message to publish once a member's queue has room, behind
    /// those already kept.
    fn hold_publish(&mut self, room: String, data: Vec<u8>) {
        self.pending.push_back(PendingPublish {
            room,
            data,
            attempt: 0,
            since: Instant::now(),
        });
        self.backlog.set(self.pending.len());
    }

    fn publish_pending(&mut self) {
        while let Some(mut pending) = self.pending.pop_front() {
            pending.attempt = pending.attempt.wrapping_add(1);
            if let Some(byte) = pending.data.get_mut(room_frame::ATTEMPT_BYTE) {
                *byte = pending.attempt;
            }
            let Some(topic) = self.joined.get(&pending.room).cloned() else {
                // Left the room meanwhile: nobody to say it to.
                continue;
            };
            self.last_publish = Some(Instant::now());
            let result = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), pending.data.clone());
            if let Err(gossipsub::PublishError::AllQueuesFull(_)) = result {
                if pending.since.elapsed() >= SLOW_DROP_AFTER {
                    // Nobody took it for too long: drop the members that
                    // do not read, and the message.
                    let stuck: Vec<PeerId> = self
                        .swarm
                        .behaviour()
                        .gossipsub
                        .all_peers()
                        .filter(|(_, topics)| topics.contains(&&topic.hash()))
                        .map(|(peer, _)| *peer)
                        .collect();
                    for peer in stuck {
                        self.drop_slow(peer);
                    }
                    continue;
                }
                self.pending.push_front(pending);
                return;
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Listen { port, reply } => {
                let addr = Multiaddr::from(std::net::Ipv4Addr::UNSPECIFIED)
                    .with(libp2p::multiaddr::Protocol::Tcp(port));
                match self.swarm.listen_on(addr) {
                    Ok(id) => {
                        self.listens.insert(id, PendingListen { port, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Listen {
                            port,
                            cause: describe_transport(&e),
                        }));
                    }
                }
            }
            Request::Dial { addr, peer, reply } => {
                let opts = match peer {
                    Some(peer) => DialOpts::peer_id(peer)
                        .addresses(vec![addr.clone()])
                        .build(),
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, PendingDial { addr, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Dial {
                            addr: addr.to_string(),
                            cause: describe_dial(&e),
                        }));
                    }
                }
            }
            Request::PeerAddress { peer, reply } => {
                let _ = reply.send(self.addresses.get(&peer).cloned());
            }
            Request::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Request::Join { room, access } => {
                let topic = room_frame::topic(&room, access.as_ref().map(|a| &a.key));
                if let Some(old) = self.joined.get(&room) {
                    if old.hash() == topic.hash() {
                        return;
                    }
                    let old = old.clone();
                    self.topic_rooms.remove(&old.hash());
                    let _ = self.swarm.behaviour_mut().gossipsub.unsubscribe(&old);
                }
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = gossipsub.subscribe(&topic);
                let _ = gossipsub.set_topic_params(topic.clone(), behaviour::topic_score());
                self.topic_rooms.insert(topic.hash(), room.clone());
                // Peers already in that room said so before we were: gossipsub
                // told us then, and will not again.
                let hash = topic.hash();
                let members: Vec<PeerId> = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(peer, _)| *peer)
                    .collect();
                for peer in members {
                    self.emit(NetEvent::Subscribed {
                        peer,
                        room: room.clone(),
                    });
                }
                // The client shared the access already (see `Client::join`).
                if let Some(access) = access {
                    self.keys.insert(room.clone(), access.key);
                }
                self.joined.insert(room, topic);
            }
            Request::Watch { room, topic_id } => {
                let topic = room_frame::private_topic(&topic_id);
                let _ = self.swarm.behaviour_mut().gossipsub.subscribe(&topic);
                self.topic_rooms.insert(topic.hash(), room.clone());
                self.watched.insert(room.clone());
                self.joined.insert(room, topic);
            }
            Request::Leave { room } => {
                self.watched.remove(&room);
                if let Some(topic) = self.joined.remove(&room) {
                    self.topic_rooms.remove(&topic.hash());
                    let _ = self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
                }
                self.keys.remove(&room);
            }
            Request::Publish { room, data } => {
                let data = self.sealed(&room, data);
                if !self.pending.is_empty() {
                    self.hold_publish(room, data);
                    return;
                }
                let Some(topic) = self.joined.get(&room).cloned() else {
                    return;
                };
                self.last_publish = Some(Instant::now());
                match self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, data.clone())
                {
                    Ok(_) => {}
                    Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                        self.hold_publish(room, data);
                    }
                    // Hellos and goodbyes to an empty room go nowhere, and
                    // that is fine; typed lines are reported.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
                        if !room_frame::is_lines(&data) => {}
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        self.emit(NetEvent::NotPublished {
                            room,
                            cause: "no one else is in the room".into(),
                        });
                    }
                    Err(other) => {
                        let cause = other.to_string();
                        self.emit(NetEvent::NotPublished { room, cause });
                    }
                }
            }
            Request::Stop { reply } => {
                let now = Instant::now();
                let at = self
                    .last_publish
                    .map_or(now, |at| (at + FLUSH_GRACE).max(now));
                self.stopping = Some((at, reply));
            }
            Request::Introduce { peer, addrs } => {
                if peer == *self.swarm.local_peer_id() || self.banned.contains(&peer) {
                    return;
                }
                self.swarm
                    .behaviour_mut()
                    .addresses
                    .add(peer, addrs.iter().cloned());
                if !self.swarm.is_connected(&peer)
                    && self.swarm.connected_peers().count() < MAX_INTRODUCED
                {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(addrs)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            }
            Request::Peers { reply } => {
                let peers = self
                    .swarm
                    .connected_peers()
                    .map(|peer| PeerInfo {
                        peer: *peer,
                        addr: self.addresses.get(peer).cloned(),
                        rtt: self.rtts.get(peer).copied(),
                        path: self.path_to(peer),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Request::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Request::Nearby { reply } => {
                let _ = reply.send(self.nearby());
            }
        }
    }

    /// The peers mDNS found, each once, with the public rooms their
    /// subscriptions show.
    fn nearby(&self) -> Vec<NearbyPeer> {
        let Some(mdns) = self.swarm.behaviour().mdns.as_ref() else {
            return Vec::new();
        };
        let mut found: Vec<NearbyPeer> = Vec::new();
        for peer in mdns.discovered_nodes() {
            if found.iter().any(|n| n.peer == *peer) {
                continue;
            }
            found.push(NearbyPeer {
                peer: *peer,
                addr: None,
                public_rooms: Vec::new(),
                connected: self.swarm.is_connected(peer),
            });
        }
        for (peer, topics) in self.swarm.behaviour().gossipsub.all_peers() {
            if let Some(nearby) = found.iter_mut().find(|n| n.peer == *peer) {
                nearby.public_rooms = topics
                    .iter()
                    .filter_map(|t| room_frame::room_of(t))
                    .filter(|room| is_public(room))
                    .collect();
                nearby.public_rooms.sort();
            }
        }
        for nearby in &mut found {
            nearby.addr = self
                .lan_addrs
                .get(&nearby.peer)
                .or_else(|| self.addresses.get(&nearby.peer))
                .cloned();
        }
        found.sort_by_key(|n| n.peer.to_string());
        found
    }

    /// Whether we are in a public room: only then does LAN discovery dial
    /// the peers it finds. A private room is joined by dialing one of its
    /// members, never because a peer happens to be on the same network.
    fn in_public_room(&self) -> bool {
        self.swarm
            .behaviour()
            .gossipsub
            .topics()
            .filter_map(room_frame::room_of)
            .any(|room| is_public(&room))
    }

    /// A member whose queue overflowed: reported once, dropped when it
    /// stays slow for [`SLOW_DROP_AFTER`].
    fn on_slow_peer(&mut self, peer: PeerId) {
        // Gossipsub reports a peer's failed messages at its next
        // heartbeat, possibly after the peer was dropped or had left.
        if self.slow_dropped.contains(&peer) || !self.swarm.is_connected(&peer) {
            return;
        }
        let now = Instant::now();
        self.slow
            .retain(|_, (_, last)| now.duration_since(*last) < SLOW_RESET);
        let (since, last) = self.slow.entry(peer).or_insert((now, now));
        *last = now;
        let since = *since;
        if since == now {
            self.emit(NetEvent::Slow { peer });
        } else if now.duration_since(since) >= SLOW_DROP_AFTER {
            self.drop_slow(peer);
        }
    }

    /// Drops a peer that reads nothing, and says so once: its connections
    /// may take a while to close (see [`super::stall`]).
    fn drop_slow(&mut self, peer: PeerId) {
        self.slow.remove(&peer);
        if self.swarm.disconnect_peer_id(peer).is_ok() && self.slow_dropped.insert(peer) {
            self.emit(NetEvent::SlowDropped { peer });
        }
    }
}

/// Peers we connect to on our own (peer exchange, mDNS) only while we have
/// fewer connections than this; the rest of a big room is reached through
/// gossipsub's mesh (which keeps about six peers per member), and directly
/// by the address book when a direct message or a fetch is for them.
const MAX_INTRODUCED: usize = 8;

/// A slow member is dropped after being slow this long.
pub const SLOW_DROP_AFTER: Duration = Duration::from_secs(30);

// A line may be that late on its way (in gossipsub's publish queue, or
// behind a member not yet dropped): the core must wait at least as long
// for a gap before calling what is missing lost.
const _: () = assert!(crate::chat::delivery::GAP_WAIT.as_secs() >= SLOW_DROP_AFTER.as_secs());

/// A slow member not reported for this long is fine again.
const SLOW_RESET: Duration = Duration::from_secs(5);

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
