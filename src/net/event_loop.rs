//! The one task that owns the swarm.
//!
//! As in rust-libp2p's file-sharing example, nothing outside this module
//! touches the swarm: the rest of the program holds a [`Client`] that sends
//! [`Request`]s here and awaits the answers on oneshot channels. The loop
//! `select!`s over swarm events and requests; it ends when every client
//! handle is gone.
//!
//! [`Client`]: super::Client

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, watch};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::{socket_addr, Error};
use crate::chat::describe_io;

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
}

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    requests: mpsc::Receiver<Request>,
    listens: HashMap<libp2p::core::transport::ListenerId, PendingListen>,
    dials: HashMap<ConnectionId, PendingDial>,
    /// Where each connected peer is, from its latest connection.
    addresses: HashMap<PeerId, Multiaddr>,
    /// The peers with at least one connection, for sessions to watch.
    presence: watch::Sender<HashSet<PeerId>>,
}

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
        presence: watch::Sender<HashSet<PeerId>>,
    ) -> Self {
        Self {
            swarm,
            requests,
            listens: HashMap::new(),
            dials: HashMap::new(),
            addresses: HashMap::new(),
            presence,
        }
    }

    /// Runs until every client is dropped.
    pub(super) async fn run(mut self) {
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => return,
                },
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
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if let Some(pending) = self.listens.remove(&listener_id) {
                    let port = socket_addr(&address).map_or(pending.port, |a| a.port());
                    let bound = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port));
                    let _ = pending.reply.send(Ok(bound));
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(pending) = self.listens.remove(&listener_id) {
                    let cause = match reason {
                        Err(e) => describe_io(&e),
                        Ok(()) => "the listener closed".into(),
                    };
                    let _ = pending.reply.send(Err(Error::Listen {
                        port: pending.port,
                        cause,
                    }));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let addr = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                self.addresses.insert(peer_id, addr);
                self.presence.send_modify(|peers| {
                    peers.insert(peer_id);
                });
                if let Some(pending) = self.dials.remove(&connection_id) {
                    let _ = pending.reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.addresses.remove(&peer_id);
                self.presence.send_modify(|peers| {
                    peers.remove(&peer_id);
                });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some(pending) = self.dials.remove(&connection_id) {
                    let _ = pending.reply.send(Err(Error::Dial {
                        addr: pending.addr.to_string(),
                        cause: describe_dial(&error),
                    }));
                }
            }
            // A plain client (nc), a scanner, or a peer over the limits
            // fails its handshake and is dropped: nothing else is disturbed,
            // and the user, who can do nothing about it, is not told.
            SwarmEvent::IncomingConnectionError { .. } => {}
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                connection,
                result: Err(_),
                ..
            })) => {
                // Two pings in a row went unanswered: the peer is gone even
                // if the connection looks open. Closing it ends the chat
                // stream, which reports the disconnect.
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }
}

/// A dial error in a user's words: the first underlying I/O error when
/// there is one ("connection refused"), otherwise what failed.
fn describe_dial(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) => attempts
            .first()
            .map(|(_, e)| describe_transport(e))
            .unwrap_or_else(|| "no address to try".into()),
        DialError::WrongPeerId { obtained, .. } => {
            format!("the peer there is {obtained}, not the one asked for")
        }
        DialError::Denied { cause } => format!("refused by a local limit: {cause}"),
        DialError::LocalPeerId { .. } => "that address is ourselves".into(),
        DialError::NoAddresses => "no address to try".into(),
        DialError::DialPeerConditionFalse(_) | DialError::Aborted => {
            "the attempt was aborted".into()
        }
    }
}

fn describe_transport(error: &libp2p::TransportError<std::io::Error>) -> String {
    match error {
        libp2p::TransportError::MultiaddrNotSupported(addr) => {
            format!("unsupported address {addr}")
        }
        libp2p::TransportError::Other(e) => describe_upgrade(e),
    }
}

/// An I/O error from the transport: either the socket's own error, or a
/// failed negotiation wrapped in one, which almost always means the other
/// side does not speak this protocol.
fn describe_upgrade(error: &std::io::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_none() {
                return describe_io(io);
            }
        }
        source = inner.source();
    }
    match error.kind() {
        std::io::ErrorKind::Other | std::io::ErrorKind::InvalidData => {
            let text = error.to_string().to_lowercase();
            if text.contains("handshake") || text.contains("negotiat") || text.contains("protocol")
            {
                "the secure handshake failed: the peer may not speak this protocol (is it running with --plain?)".into()
            } else {
                text
            }
        }
        _ => describe_io(error),
    }
}
