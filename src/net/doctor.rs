//! `rust-p2p-chat doctor`: how reachable this machine is, found out the
//! way a chat would be reached.
//!
//! A short-lived swarm of its own (a fresh key, a port of its own) listens,
//! connects to each relay given, learns from identify the address the relay
//! sees it at, has the relay's AutoNAT v2 server dial that address back
//! (reachable directly, or not), and asks for a reservation (reachable
//! through the relay). It also checks that mDNS can start here. What it
//! found comes back as [`Findings`]; the binary says it in plain words.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{autonat, identify, mdns, ping, relay, Multiaddr};

use super::relay_node::IDENTIFY_PROTOCOL;
use super::Error;

/// What the doctor found.
#[derive(Debug)]
pub struct Findings {
    /// Where it listened on this machine.
    pub listening: Vec<Multiaddr>,
    /// Where relays see this machine.
    pub observed: Vec<Multiaddr>,
    /// Addresses a relay dialled back successfully.
    pub reachable: Vec<Multiaddr>,
    /// Addresses a relay could not dial back, and why.
    pub unreachable: Vec<(Multiaddr, String)>,
    /// Reservations that held, by relay address.
    pub reserved: Vec<Multiaddr>,
    /// Relays that could not be used, and why.
    pub relay_errors: Vec<(Multiaddr, String)>,
    /// Whether mDNS could start here, or why not.
    pub mdns: Result<(), String>,
}

impl Findings {
    /// Whether a peer elsewhere can reach this machine: directly, or
    /// through a relay.
    pub fn reachable(&self) -> bool {
        !self.reachable.is_empty() || !self.reserved.is_empty()
    }
}

#[derive(NetworkBehaviour)]
struct DoctorBehaviour {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    autonat: autonat::v2::client::Behaviour,
    ping: ping::Behaviour,
}

/// Finds out how reachable this machine is through `relays`, within
/// `within`.
pub async fn diagnose(relays: &[Multiaddr], within: Duration) -> Result<Findings, Error> {
    let mut findings = Findings {
        listening: Vec::new(),
        observed: Vec::new(),
        reachable: Vec::new(),
        unreachable: Vec::new(),
        reserved: Vec::new(),
        relay_errors: Vec::new(),
        mdns: mdns_starts(),
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(super::relay_node::tcp_transport)
        .map_err(|e| Error::Start(e.to_string()))?
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .map_err(|e| Error::Start(e.to_string()))?
        .with_behaviour(|key, relay_client| DoctorBehaviour {
            relay_client,
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_owned(),
                key.public(),
            )),
            autonat: autonat::v2::client::Behaviour::default(),
            ping: ping::Behaviour::new(ping::Config::new()),
        })
        .map_err(|e| Error::Start(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(within))
        .build();
    swarm
        .listen_on(
            "/ip4/0.0.0.0/tcp/0"
                .parse()
                .map_err(|_| Error::Start("address".into()))?,
        )
        .map_err(|e| Error::Start(e.to_string()))?;
    // The relays are asked once we listen: a reservation asked before
    // that is closed at once.
    let mut asked = false;
    let deadline = tokio::time::Instant::from(Instant::now() + within);
    loop {
        let event = tokio::select! {
            event = swarm.select_next_some() => event,
            () = tokio::time::sleep_until(deadline) => break,
        };
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    findings.reserved.push(address);
                } else {
                    findings.listening.push(address);
                }
                if !std::mem::replace(&mut asked, true) {
                    for relay in relays {
                        if let Err(e) = swarm.listen_on(relay.clone().with(Protocol::P2pCircuit)) {
                            findings.relay_errors.push((relay.clone(), e.to_string()));
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(DoctorBehaviourEvent::Identify(identify::Event::Received {
                info,
                ..
            })) if !findings.observed.contains(&info.observed_addr) => {
                findings.observed.push(info.observed_addr);
            }
            SwarmEvent::Behaviour(DoctorBehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                result,
                ..
            })) => match result {
                Ok(()) => {
                    if !findings.reachable.contains(&tested_addr) {
                        findings.reachable.push(tested_addr);
                    }
                }
                Err(e) => findings.unreachable.push((tested_addr, e.to_string())),
            },
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                if let Some(relay) = relays.iter().find(|r| super::peer_in(r) == Some(peer)) {
                    findings
                        .relay_errors
                        .push((relay.clone(), super::describe::describe_dial(&error)));
                }
            }
            SwarmEvent::ListenerClosed {
                addresses,
                reason: Err(e),
                ..
            } => {
                for address in addresses {
                    findings.relay_errors.push((address, e.to_string()));
                }
            }
            _ => {}
        }
        let tested = !findings.reachable.is_empty() || !findings.unreachable.is_empty();
        let reserved = findings.reserved.len() + findings.relay_errors.len() >= relays.len();
        if tested && reserved {
            break;
        }
    }
    Ok(findings)
}

/// Whether mDNS can start here (a socket on port 5353, multicast).
fn mdns_starts() -> Result<(), String> {
    // Started outside a runtime's reactor it cannot register its socket;
    // the caller is inside one.
    mdns::tokio::Behaviour::new(mdns::Config::default(), libp2p::PeerId::random())
        .map(drop)
        .map_err(|e| e.to_string())
}
