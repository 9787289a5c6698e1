//! A peer built with the library itself, for tests that act as a peer no
//! honest program would be (a hostile one, an eavesdropper).

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use rust_p2p_chat::net::{self, Client, NetEvent};
use tokio::sync::mpsc;

/// A runtime for such a peer, on a test's thread of its own (its engine
/// needs one that runs while the test waits on a process's output).
pub fn engine_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An engine of a fresh identity that dialled 127.0.0.1:`port`: its
/// client, its events, and whom it reached.
pub async fn dialled_engine(port: u16) -> (Client, mpsc::Receiver<NetEvent>, PeerId) {
    let (client, events) =
        net::start(Keypair::generate_ed25519(), net::Config::default()).expect("engine");
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr");
    let peer = client.dial(&addr).await.expect("dial");
    (client, events, peer)
}
