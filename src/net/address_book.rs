//! Where the members we have heard of can be reached.
//!
//! A room of many is held together by a few connections per member
//! (gossipsub needs about six), not by everyone connecting to everyone:
//! each connection costs a handshake and a ping every few seconds, and a
//! full mesh of fifty members is 1,225 of them. So we connect on our own
//! to a few members only, and remember the addresses of the others from
//! their hellos. This behaviour hands those addresses to any dial by peer
//! ID alone, such as the one `libp2p-stream` makes when a direct message
//! or a fetch is addressed to a member we are not connected to.

use std::convert::Infallible;
use std::num::NonZeroUsize;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, PeerAddresses, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Peers whose addresses are kept; the least recently used go first.
const MAX_PEERS: usize = 1024;

/// The addresses of peers we know of, offered to every dial.
pub struct AddressBook {
    addresses: PeerAddresses,
}

impl Default for AddressBook {
    fn default() -> Self {
        Self {
            addresses: PeerAddresses::new(NonZeroUsize::MIN.saturating_add(MAX_PEERS - 1)),
        }
    }
}

impl AddressBook {
    /// Remembers where `peer` can be reached.
    pub fn add(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        for addr in addrs {
            self.addresses.add(peer, addr);
        }
    }
}

impl NetworkBehaviour for AddressBook {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(peer.map_or_else(Vec::new, |peer| self.addresses.get(&peer).collect()))
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.addresses.on_swarm_event(&event);
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
