//! Relays, black box on 127.0.0.1: a relay node, a peer reachable
//! through its reservation there, and a peer that dials it through the
//! relay (on one machine hole punching then makes it direct at once);
//! then the relay restarts, the listener reserves again by itself, and
//! the chat goes on.

mod common;

use std::time::Duration;

use common::{data_dir, utf8, Peer, TIMEOUT};
use rust_p2p_chat::chat::ticket::Ticket;

/// Starts a relay on `port` (0: any) with its key in `dir`; returns it and
/// its loopback address, as it prints it.
fn relay(dir: &std::path::Path, port: u16) -> (Peer, String) {
    let port = port.to_string();
    let mut relay = Peer::start(&["relay", "--listen", &port, "--data-dir", utf8(dir)]);
    relay.expect_prefix("Relay identity: ");
    let addr = relay
        .expect_prefix("Relay listening on: /ip4/127.0.0.1/")
        .trim_start_matches("Relay listening on: ")
        .to_owned();
    (relay, addr)
}

/// Bob, with his data in `dir`, reaches Ann with `flag target` (`--connect
/// ADDRESS` or `--join TICKET`); both are chatting when it returns.
fn bob_reaches(ann: &mut Peer, flag: &str, target: &str, dir: &std::path::Path) -> Peer {
    let mut bob = Peer::start(&[
        flag,
        target,
        "--data-dir",
        utf8(dir),
        "--no-mdns",
        "--name",
        "bob",
    ]);
    bob.expect_line("Connected to peer!");
    bob.expect_secure_chat();
    ann.expect_secure_chat();
    bob
}

/// The TCP port in a multiaddr.
fn port_in(addr: &str) -> u16 {
    addr.split('/')
        .skip_while(|p| *p != "tcp")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a tcp port")
}

#[test]
fn two_peers_chat_through_a_relay_and_find_each_other_again_after_it_restarts() {
    let (r, a, b) = (data_dir(), data_dir(), data_dir());
    let (mut relay_node, relay_addr) = relay(r.path(), 0);
    assert!(relay_addr.contains("/p2p/12D3KooW"), "{relay_addr}");
    let (mut ann, _, _) = Peer::secure_listen(a.path(), &["--name", "ann", "--relay", &relay_addr]);
    let circuit = ann
        .expect_prefix(&format!(
            "Reachable through a relay at: {relay_addr}/p2p-circuit/p2p/"
        ))
        .trim_start_matches("Reachable through a relay at: ")
        .to_owned();

    let mut bob = bob_reaches(&mut ann, "--connect", &circuit, b.path());
    let relay_id = relay_addr.rsplit('/').next().expect("the relay's ID");
    assert!(
        ann.seen
            .iter()
            .any(|l| l == &format!("Peer connected through the relay {relay_id}")),
        "{:?}",
        ann.seen
    );
    bob.send("hello through the relay");
    ann.expect_line("bob: hello through the relay");
    ann.send("and back");
    bob.expect_line("ann: and back");
    // Bob can dial nobody else: he sees the relay in the path.
    bob.send("/peers");
    let line = bob.expect_prefix("  ann  ");
    assert!(
        line.ends_with(&format!("relayed via {relay_id}")) || line.ends_with("(hole-punched)"),
        "{line}"
    );

    // The relay goes away and comes back on its port with its key.
    relay_node.kill_9();
    ann.expect_stderr_within("asking it again shortly", TIMEOUT);
    let (_relay_again, again) = relay(r.path(), port_in(&relay_addr));
    assert_eq!(again, relay_addr);
    ann.expect_line_within(
        &format!("Reachable through a relay at: {circuit}"),
        Duration::from_secs(40),
    );
    // On one machine the two went direct by hole punching at once, and
    // the chat never needed the relay after; either way it goes on.
    bob.send("still here after the relay restarted");
    ann.expect_line("bob: still here after the relay restarted");
}

#[test]
fn an_invite_made_behind_a_relay_lets_its_holder_in_through_the_relay() {
    let (r, a, b) = (data_dir(), data_dir(), data_dir());
    let (_relay_node, relay_addr) = relay(r.path(), 0);
    let (mut ann, _, _) = Peer::secure_listen(a.path(), &["--name", "ann", "--relay", &relay_addr]);
    ann.expect_prefix("Reachable through a relay at: ");
    ann.send("/invite");
    let line = ann.expect_prefix("Invite: ");
    // Only the way through the relay, as for an inviter behind a NAT.
    let mut ticket = Ticket::decode(line.trim_start_matches("Invite: ")).expect("ticket");
    assert!(!ticket.relayed.is_empty(), "{ticket:?}");
    ticket.addrs.clear();
    let mut bob = bob_reaches(&mut ann, "--join", &ticket.encode(), b.path());
    bob.send("joined through the relay");
    ann.expect_line("bob: joined through the relay");
    ann.send("welcome");
    bob.expect_line("ann: welcome");
}

#[test]
fn a_relay_given_once_is_used_again_without_the_flag() {
    let (r, a) = (data_dir(), data_dir());
    let (_relay_node, relay_addr) = relay(r.path(), 0);
    let (mut ann, _, _) = Peer::secure_listen(a.path(), &["--relay", &relay_addr]);
    ann.expect_prefix("Reachable through a relay at: ");
    drop(ann);
    let (mut again, _, _) = Peer::secure_listen(a.path(), &[]);
    again.expect_prefix(&format!("Reachable through a relay at: {relay_addr}"));
}

#[test]
fn a_relay_address_without_its_peer_id_is_a_usage_error() {
    let d = data_dir();
    let (status, _, err) = Peer::run(&[
        "--listen",
        "0",
        "--relay",
        "/ip4/127.0.0.1/tcp/4001",
        "--data-dir",
        utf8(d.path()),
    ]);
    assert_eq!(status.code(), Some(2), "{err:?}");
    assert!(err.iter().any(|l| l.contains("/p2p/RELAY_ID")), "{err:?}");
}
