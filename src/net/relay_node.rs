//! A relay node (`rust-p2p-chat relay`): lets two chat peers that cannot
//! dial each other (both behind NATs) meet through it, with circuit relay
//! v2, tells peers the address it sees them at (identify), and dials that
//! address back when asked whether it is reachable (AutoNAT v2).
//!
//! It is a swarm of its own, apart from the chat's engine: it joins no
//! room and keeps no history; what passes through it is Noise-encrypted
//! end to end between the two peers (and room messages are sealed besides),
//! so it sees who talks to whom, when and how much, never what.
//!
//! rust-libp2p's relay serves only once it has an external address (it
//! refuses reservations with `NoAddressesInReservation` otherwise), so every
//! address it listens on, and every `--external-addr`, is marked external at
//! once. The library's default circuit limits (2 minutes, 128 KiB) would cut
//! a chat that cannot go direct; ours are sized for chat.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::Transport;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{autonat, connection_limits, identify, ping, relay, Multiaddr, PeerId};

use super::Error;

/// The identify protocol version both our programs speak.
pub const IDENTIFY_PROTOCOL: &str = "/rust-p2p-chat/id/1.0.0";

/// How a relay node is run.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The TCP port to listen on, on every interface (0: any).
    pub port: u16,
    /// Addresses others reach it at, beside those it listens on (a public
    /// address behind a port forward).
    pub external: Vec<Multiaddr>,
    /// Reservations held at once.
    pub max_reservations: usize,
    /// Circuits open at once.
    pub max_circuits: usize,
    /// Circuits per peer at once.
    pub max_circuits_per_peer: usize,
    /// How long a circuit lasts before it is closed (and redialled).
    pub circuit_duration: Duration,
    /// How many bytes a circuit carries before it is closed.
    pub circuit_bytes: u64,
    /// Reservations one IP address may make at once, and again each
    /// minute after (peers behind one NAT share an address).
    pub reservations_per_ip: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            port: 4001,
            external: Vec::new(),
            max_reservations: 512,
            max_circuits: 256,
            max_circuits_per_peer: 8,
            circuit_duration: Duration::from_secs(60 * 60),
            circuit_bytes: 256 * 1024 * 1024,
            reservations_per_ip: 60,
        }
    }
}

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    limits: connection_limits::Behaviour,
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Dials back the address a peer asks about: whether it is
    /// reachable directly (`doctor`).
    autonat: autonat::v2::server::Behaviour,
}

/// Connections a relay node holds at once: its reservations and both ends
/// of its circuits, with room to spare.
fn max_connections(config: &RelayConfig) -> u32 {
    u32::try_from(config.max_reservations + 2 * config.max_circuits + 64).unwrap_or(u32::MAX)
}

/// Runs a relay node until the process ends; `listening` is told each
/// address it can be reached at, ending in `/p2p/ID`.
pub async fn run_relay(
    keypair: Keypair,
    config: RelayConfig,
    mut listening: impl FnMut(&Multiaddr),
) -> Result<(), Error> {
    let local = keypair.public().to_peer_id();
    let per_ip = std::num::NonZeroU32::new(config.reservations_per_ip.max(1))
        .unwrap_or(std::num::NonZeroU32::MIN);
    let per_peer = std::num::NonZeroU32::new(30).unwrap_or(std::num::NonZeroU32::MIN);
    let minute = Duration::from_secs(60);
    // The library's limits on how often a peer or an address may reserve
    // or open circuits, with the per-address reservations a flag.
    let relay_config = relay::Config {
        max_reservations: config.max_reservations,
        max_circuits: config.max_circuits,
        max_circuits_per_peer: config.max_circuits_per_peer,
        max_circuit_duration: config.circuit_duration,
        max_circuit_bytes: config.circuit_bytes,
        reservation_rate_limiters: Vec::new(),
        ..relay::Config::default()
    }
    .reservation_rate_per_peer(per_peer, 2 * minute)
    .reservation_rate_per_ip(per_ip, minute);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(max_connections(&config)))
        .with_max_pending_incoming(Some(128));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(tcp_transport)
        .map_err(|e| Error::Start(e.to_string()))?
        .with_behaviour(|key| RelayBehaviour {
            limits: connection_limits::Behaviour::new(limits),
            relay: relay::Behaviour::new(local, relay_config),
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_owned(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            autonat: autonat::v2::server::Behaviour::default(),
        })
        .map_err(|e| Error::Start(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let listen = Multiaddr::from(Ipv4Addr::UNSPECIFIED).with(Protocol::Tcp(config.port));
    swarm
        .listen_on(listen)
        .map_err(|e| Error::Start(e.to_string()))?;
    for addr in &config.external {
        swarm.add_external_address(addr.clone());
        listening(&with_peer(addr, local));
    }
    while let Some(event) = swarm.next().await {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                swarm.add_external_address(address.clone());
                listening(&with_peer(&address, local));
            }
            SwarmEvent::ListenerError { error, .. } => {
                return Err(Error::Start(error.to_string()));
            }
            SwarmEvent::ListenerClosed {
                reason: Err(error), ..
            } => return Err(Error::Start(error.to_string())),
            _ => {}
        }
    }
    Ok(())
}

/// TCP with Noise and yamux, as every one of our swarms but the chat's
/// (which guards its sockets, see `stall`) speaks it.
pub(super) fn tcp_transport(
    key: &Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let noise = libp2p::noise::Config::new(key)?;
    Ok(
        libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
            .upgrade(libp2p::core::upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(libp2p::yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

/// `addr` ending in `/p2p/PEER`.
fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.clone()
    } else {
        addr.clone().with(Protocol::P2p(peer))
    }
}
