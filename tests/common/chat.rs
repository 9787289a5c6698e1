//! Ways into a chat: a plain listener and connector, a secure listener
//! and connector, a secure pair already chatting, and a room member.

use std::path::Path;

use super::{peer_id_of, port_of, utf8, Peer};

impl Peer {
    /// Starts a plain listener on a free port; returns it and the port.
    pub fn listen(extra: &[&str]) -> (Peer, u16) {
        let mut args = vec!["--plain", "--listen", "0"];
        args.extend_from_slice(extra);
        let mut peer = Peer::start(&args);
        let port = port_of(&peer.expect_prefix("Listening on: 0.0.0.0:"));
        peer.expect_line("Waiting for peer to connect...");
        (peer, port)
    }

    /// Starts a plain peer connecting to 127.0.0.1:`port` and waits until
    /// it is connected.
    pub fn connect(port: u16) -> Peer {
        let mut peer = Peer::start(&["--plain", "--connect", &format!("127.0.0.1:{port}")]);
        peer.expect_line("Connected to peer!");
        peer.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
        peer
    }

    /// Starts a secure listener on a free port with its data in `dir`;
    /// returns it, the port and its own peer ID.
    pub fn secure_listen(dir: &Path, extra: &[&str]) -> (Peer, u16, String) {
        // No mDNS: tests run side by side and must not find each other.
        let mut args = vec!["--listen", "0", "--data-dir", utf8(dir), "--no-mdns"];
        args.extend_from_slice(extra);
        let mut peer = Peer::start(&args);
        let own = peer.expect_prefix("Your identity: ");
        let port = port_of(&peer.expect_prefix("Listening on: 0.0.0.0:"));
        peer.expect_line("Waiting for peer to connect...");
        (peer, port, peer_id_of(&own))
    }

    /// Starts a secure peer connecting to 127.0.0.1:`port` with its data
    /// in `dir`, without waiting for anything.
    pub fn secure_connect(port: u16, dir: &Path, extra: &[&str]) -> Peer {
        let target = format!("127.0.0.1:{port}");
        let mut args = vec!["--connect", &target, "--data-dir", utf8(dir), "--no-mdns"];
        args.extend_from_slice(extra);
        Peer::start(&args)
    }

    /// Waits for the secure introduction (peer identity, encryption,
    /// ready); returns the peer ID shown.
    pub fn expect_secure_chat(&mut self) -> String {
        let identity = self.expect_prefix("Peer identity: ");
        self.expect_prefix("The chat is end-to-end encrypted");
        self.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
        peer_id_of(&identity)
    }
}

/// How much of the two introductions [`secure_pair`] checks on its way to
/// a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Introductions {
    /// Only that both reach the chat, the connector seeing the listener's
    /// peer ID; every other line is skipped.
    Reached,
    /// Every step, in order: the connector's own identity, the address it
    /// connects to, the listener's peer ID; where the listener was reached
    /// from, and the connector's peer ID as the listener saw it.
    Checked,
}

/// A listener (data in `a`) and a connector (data in `b`) in a secure
/// chat, both ready, their introductions checked as `check` says; returns
/// them, the listener's port and its peer ID.
pub fn secure_pair(a: &Path, b: &Path, check: Introductions) -> (Peer, Peer, u16, String) {
    let (mut listener, port, listener_id) = Peer::secure_listen(a, &[]);
    let mut connector = Peer::secure_connect(port, b, &[]);
    match check {
        Introductions::Reached => {
            connector.expect_line("Connected to peer!");
            assert_eq!(connector.expect_secure_chat(), listener_id);
            listener.expect_secure_chat();
        }
        Introductions::Checked => {
            let connector_id = peer_id_of(&connector.expect_prefix("Your identity: "));
            connector.expect_line(&format!("Connecting to 127.0.0.1:{port}..."));
            connector.expect_line("Connected to peer!");
            assert_eq!(connector.expect_secure_chat(), listener_id);
            listener.expect_prefix("Peer connected from: 127.0.0.1:");
            assert_eq!(listener.expect_secure_chat(), connector_id);
        }
    }
    (listener, connector, port, listener_id)
}

/// Starts a room member with its data in `dir`: it listens on a free port
/// for other members and, given `via`, joins the room through the peer on
/// that port; `extra` flags (such as `--name NICK`) follow. Waits for
/// nothing.
pub fn member(dir: &Path, via: Option<u16>, extra: &[&str]) -> Peer {
    let target = via.map(|port| format!("127.0.0.1:{port}"));
    let mut args = vec!["--listen", "0", "--data-dir", utf8(dir), "--no-mdns"];
    if let Some(target) = &target {
        args.extend_from_slice(&["--connect", target]);
    }
    args.extend_from_slice(extra);
    Peer::start(&args)
}
