//! The libp2p behaviours the secure chat runs, composed into one.
//!
//! Only what is used: connection limits (so many peers, or a flood of
//! half-open connections, cannot exhaust us), ping (so a dead peer is
//! noticed even when nobody types, and `/peers` can show round-trip times),
//! generic streams (`libp2p-stream`) for direct messages, gossipsub for
//! rooms (signed messages, strict validation, peer scoring) and mDNS to find
//! peers on the LAN.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, dcutr, gossipsub, identify, mdns, ping, relay};

use super::address_book::AddressBook;
use super::room_frame;

/// Connections still in their handshake, from others.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Connections of ours still in their handshake.
pub const MAX_PENDING_OUTGOING: u32 = 64;
/// Established connections, all peers together.
pub const MAX_ESTABLISHED: u32 = 64;
/// Established connections to one peer.
pub const MAX_ESTABLISHED_PER_PEER: u32 = 2;

/// Time between pings on a connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(4);
/// A ping without an answer for this long has failed; two failures in a
/// row close the connection, so a dead peer is found within about 20 s.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How often mDNS asks the LAN who is there. The default (5 minutes)
/// means a first query lost while an interface comes up finds nobody for
/// minutes; a multicast packet every few seconds costs nothing.
pub const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(5);

/// Gossipsub's heartbeat: how often meshes are repaired, and its cache of
/// messages shifted. The first one comes after one interval too (the
/// library waits 5 s by default): until then the cache is never shifted,
/// and a flood in a chat's first seconds was held whole. Short, because
/// the cache holds what a sender published in the last [`MESSAGE_HOLD`],
/// and a sender may publish only so much in that time
/// ([`crate::chat::delivery::PUBLISH_WINDOW`]): the shorter the hold, the
/// faster a flood may go in the same memory.
pub const HEARTBEAT: Duration = Duration::from_millis(HEARTBEAT_MS);
const HEARTBEAT_MS: u64 = 100;

/// Heartbeats a message stays in gossipsub's cache, to be passed on to a
/// member that missed it (gossipsub's default).
const HISTORY_LENGTH: u64 = 5;

/// How long gossipsub keeps a message, ours or one it passed on.
pub const MESSAGE_HOLD: Duration = Duration::from_millis(HEARTBEAT_MS * HISTORY_LENGTH);

/// Room messages queued for one peer at most (each up to a batch, 128 KiB
/// by default, or one longer line): 16 MiB of batches, which a flooded
/// member slow to read needs not to drop any (at 4 MiB, a room of five on
/// two cores dropped thousands of messages, fetched later).
const QUEUE_LEN: usize = 128;

/// A peer's score drops by this much for each invalid room message.
const INVALID_MESSAGE_WEIGHT: f64 = -100.0;

/// The composed behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    limits: connection_limits::Behaviour,
    pub(super) addresses: AddressBook,
    pub(super) ping: ping::Behaviour,
    pub(super) stream: libp2p_stream::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Reservations at relays (`--relay`), and dials through them.
    pub(super) relay_client: relay::client::Behaviour,
    /// What address a peer sees us at, and which protocols we speak.
    pub(super) identify: identify::Behaviour,
    /// A relayed connection upgraded to a direct one by hole punching.
    pub(super) dcutr: dcutr::Behaviour,
}

/// Scoring of one room's topic: only invalid messages count against a
/// peer (a quiet member is normal in a chat, so no delivery quotas).
pub fn topic_score() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: 0.5,
        ..Default::default()
    }
}

impl Behaviour {
    pub(super) fn new(
        keypair: &Keypair,
        relay_client: relay::client::Behaviour,
        max_transmit: usize,
        use_mdns: bool,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .message_id_fn(room_frame::message_id)
            .max_transmit_size(max_transmit)
            .heartbeat_interval(HEARTBEAT)
            .heartbeat_initial_delay(HEARTBEAT)
            .history_length(HISTORY_LENGTH as usize)
            // A mesh of 4 (gossipsub's default is 6): each member gets
            // fewer copies of each message, and checks the signature of
            // every copy, which is what a big room's latency is made of.
            // The upper bound stays at the default 12: a lower one lets
            // the only member a late joiner knows prune it from its mesh,
            // and the late joiner then hears nothing.
            .mesh_n(4)
            .mesh_n_low(3)
            .mesh_n_high(12)
            .mesh_outbound_min(2)
            .connection_handler_queue_len(QUEUE_LEN)
            // Publishes wait in a queue as long as the app waits for a
            // slow member before dropping it.
            .publish_queue_duration(super::SLOW_DROP_AFTER)
            // Chat messages are small, and each copy received costs a
            // signature check: tell the mesh at once which we have (and
            // that a message we publish need not come back), so fewer
            // copies are sent. The default does this only above 1 KB.
            .idontwant_message_size_threshold(0)
            .idontwant_on_publish(true)
            .build()
            .map_err(|e| e.to_string())?;
        let mut gossipsub: gossipsub::Behaviour = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(keypair.clone()),
            config,
        )
        .map_err(|e| e.to_owned())?;
        // No penalty for many peers on one address: a LAN behind one NAT,
        // or several members on one host, is normal for a chat. No penalty
        // for a member slower than a burst either: each message its full
        // queue refuses would lower its score (by the square of their
        // count), so after a long burst we would stop publishing to it at
        // all, and it would never get the rest. A member that reads nothing
        // for long is dropped by the event loop instead (`SLOW_DROP_AFTER`).
        let score = gossipsub::PeerScoreParams {
            ip_colocation_factor_weight: 0.0,
            slow_peer_weight: 0.0,
            ..Default::default()
        };
        gossipsub.with_peer_score(score, gossipsub::PeerScoreThresholds::default())?;
        let mdns = if use_mdns {
            let local = keypair.public().to_peer_id();
            Some(
                mdns::tokio::Behaviour::new(
                    mdns::Config {
                        query_interval: MDNS_QUERY_INTERVAL,
                        ..Default::default()
                    },
                    local,
                )
                .map_err(|e| format!("mDNS: {e}"))?,
            )
        } else {
            None
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_pending_outgoing(Some(MAX_PENDING_OUTGOING))
            .with_max_established(Some(MAX_ESTABLISHED))
            .with_max_established_per_peer(Some(MAX_ESTABLISHED_PER_PEER));
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            addresses: AddressBook::default(),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            stream: libp2p_stream::Behaviour::new(),
            gossipsub,
            mdns: Toggle::from(mdns),
            relay_client,
            // Identify tells any peer we connect to where we listen; LAN
            // addresses are of no use to a peer elsewhere and say more
            // than it needs. Members learn them from our (sealed) hellos;
            // hole punching uses the addresses peers observe us at.
            identify: identify::Behaviour::new(
                identify::Config::new(
                    super::relay_node::IDENTIFY_PROTOCOL.to_owned(),
                    keypair.public(),
                )
                .with_hide_listen_addrs(true),
            ),
            dcutr: dcutr::Behaviour::new(keypair.public().to_peer_id()),
        })
    }
}
