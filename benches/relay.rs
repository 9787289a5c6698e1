//! A relay node's memory under load: `cargo bench --bench relay`.
//!
//! Starts the real binary as a relay on 127.0.0.1 (release build), then,
//! in this process, `RELAY_RESERVATIONS` (default 200) peers that each
//! hold a reservation at it, and `RELAY_CIRCUITS` (default 50) pairs among
//! them that each open a circuit through it and keep it busy with pings
//! every 100 ms for `RELAY_SECS` (default 30) seconds. These peers are
//! bare relay clients (no hole punching, so the circuits stay circuits).
//! Reports the relay's RSS idle, with the reservations, and at its peak
//! with the circuits.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, ping, relay, tcp, yamux, Multiaddr, PeerId, Swarm};
use support::process::{status_kib, Running};

#[derive(NetworkBehaviour)]
struct Client {
    relay: relay::client::Behaviour,
    ping: ping::Behaviour,
}

fn client() -> Result<Swarm<Client>, String> {
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| e.to_string())?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_behaviour(|_, relay| Client {
                relay,
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_millis(100)),
                ),
            })
            .map_err(|e| e.to_string())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
            .build(),
    )
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run() -> Result<(), String> {
    let reservations = support::env_usize("RELAY_RESERVATIONS", 200);
    let circuits = support::env_usize("RELAY_CIRCUITS", 50).min(reservations / 2);
    let secs = support::env_usize("RELAY_SECS", 30) as u64;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir_str = dir.path().to_str().ok_or("temp path")?;
    let mut relay = Running::ours(
        "relay",
        &[
            "relay",
            "--listen",
            "0",
            "--data-dir",
            dir_str,
            "--max-reservations",
            "1000",
            "--max-circuits",
            "500",
            // Every peer here has one address.
            "--reservations-per-ip",
            "1000",
        ],
    )?;
    let stdout = std::io::BufReader::new(relay.take_stdout()?);
    let found = support::process::read_status(
        stdout,
        "Relay listening on: /ip4/127.0.0.1/",
        Duration::from_secs(10),
    )?;
    let relay_addr: Multiaddr = found
        .line
        .trim()
        .trim_start_matches("Relay listening on: ")
        .parse()
        .map_err(|e| format!("{e}"))?;
    // Kept open: the relay may write more.
    let _rest = found.rest;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = status_kib(relay.pid(), "VmRSS:");
    println!("relay idle: {:.1} MB", mb(idle));

    // The reservations, each peer's swarm driven by a task of its own.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, PeerId)>(reservations);
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(reservations);
    let mut dialers = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..reservations {
        let mut swarm = client()?;
        swarm
            .listen_on(relay_addr.clone().with(Protocol::P2pCircuit))
            .map_err(|e| e.to_string())?;
        let (dial_tx, mut dial_rx) = tokio::sync::mpsc::channel::<Multiaddr>(1);
        dialers.push(dial_tx);
        let tx = tx.clone();
        let open_tx = open_tx.clone();
        // In a stream, as peers come: the relay takes at most 128
        // handshakes at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.spawn(async move {
            let me = *swarm.local_peer_id();
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::Behaviour(ClientEvent::Relay(
                            relay::client::Event::ReservationReqAccepted { .. },
                        )) => {
                            let _ = tx.send((i, me)).await;
                        }
                        SwarmEvent::Behaviour(ClientEvent::Relay(
                            relay::client::Event::OutboundCircuitEstablished { .. },
                        )) => {
                            let _ = open_tx.send(()).await;
                        }
                        _ => {}
                    },
                    Some(addr) = dial_rx.recv() => {
                        let _ = swarm.dial(addr);
                    }
                }
            }
        });
    }
    let mut reserved = vec![None; reservations];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut held = 0;
    while held < reservations && Instant::now() < deadline {
        if let Ok(Some((i, peer))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            if reserved[i].replace(peer).is_none() {
                held += 1;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_reservations = status_kib(relay.pid(), "VmRSS:");
    println!(
        "relay with {held} reservations: {:.1} MB",
        mb(with_reservations)
    );

    // The circuits: peer 2k dials peer 2k+1 through the relay.
    for k in 0..circuits {
        if let Some(target) = reserved[2 * k + 1] {
            let addr = relay_addr
                .clone()
                .with(Protocol::P2pCircuit)
                .with(Protocol::P2p(target));
            let _ = dialers[2 * k].send(addr).await;
        }
    }
    let mut peak = with_reservations;
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(status_kib(relay.pid(), "VmRSS:"));
    }
    let end = status_kib(relay.pid(), "VmRSS:");
    let mut open = 0;
    while open_rx.try_recv().is_ok() {
        open += 1;
    }
    println!(
        "relay with {open} circuits (of {circuits} dialled) pinging every 100 ms for {secs} s: peak {:.1} MB, at the end {:.1} MB",
        mb(peak),
        mb(end)
    );
    tasks.shutdown().await;
    relay.finish(Duration::from_secs(2));
    Ok(())
}

fn main() {
    println!("== relay: a relay node's memory with reservations and busy circuits, on 127.0.0.1");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("relay: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("relay: {e}");
        std::process::exit(1);
    }
}
