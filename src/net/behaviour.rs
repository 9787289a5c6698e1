//! The libp2p behaviours the secure chat runs, composed into one.
//!
//! Only what is used: connection limits (so many peers, or a flood of
//! half-open connections, cannot exhaust us), ping (so a dead peer is
//! noticed even when nobody types) and generic streams (`libp2p-stream`),
//! on which the chat protocol runs.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, ping};

/// Connections still in their handshake, from others.
pub const MAX_PENDING_INCOMING: u32 = 16;
/// Connections of ours still in their handshake.
pub const MAX_PENDING_OUTGOING: u32 = 16;
/// Established connections, all peers together.
pub const MAX_ESTABLISHED: u32 = 64;
/// Established connections to one peer.
pub const MAX_ESTABLISHED_PER_PEER: u32 = 2;

/// Time between pings on a connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(4);
/// A ping without an answer for this long has failed; two failures in a
/// row close the connection, so a dead peer is found within about 20 s.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The composed behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    limits: connection_limits::Behaviour,
    ping: ping::Behaviour,
    pub(super) stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    pub(super) fn new() -> Self {
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_pending_outgoing(Some(MAX_PENDING_OUTGOING))
            .with_max_established(Some(MAX_ESTABLISHED))
            .with_max_established_per_peer(Some(MAX_ESTABLISHED_PER_PEER));
        Self {
            limits: connection_limits::Behaviour::new(limits),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            stream: libp2p_stream::Behaviour::new(),
        }
    }
}
