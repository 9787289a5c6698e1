//! Rooms, black box: real processes on 127.0.0.1 in one room; and mDNS
//! discovery between network namespaces the test creates.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Peer, TIMEOUT};
use tempfile::TempDir;

/// A member: its process, its nick and its data directory.
struct Member {
    peer: Peer,
    nick: String,
    _dir: TempDir,
}

/// Starts a member listening on a free port, joining through `via` when
/// given; returns it with its port.
fn member(nick: &str, via: Option<u16>) -> (Member, u16) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("utf-8").to_owned();
    let target = via.map(|port| format!("127.0.0.1:{port}"));
    let mut args = vec![
        "--listen",
        "0",
        "--data-dir",
        &path,
        "--no-mdns",
        "--name",
        nick,
    ];
    if let Some(target) = &target {
        args.extend_from_slice(&["--connect", target]);
    }
    let mut peer = Peer::start(&args);
    let port = common::port_of(&peer.expect_prefix("Listening on: 0.0.0.0:"));
    (
        Member {
            peer,
            nick: nick.to_owned(),
            _dir: dir,
        },
        port,
    )
}

/// Waits until `member` has seen every nick in `others` join.
fn await_joins(member: &mut Member, others: &[String]) {
    let deadline = Instant::now() + TIMEOUT * 2;
    let mut missing: Vec<&String> = others
        .iter()
        .filter(|n| **n != member.nick)
        .filter(|n| {
            !member.peer.seen.iter().any(|l| {
                l == &format!("{n} joined #lobby") || l.ends_with(&format!(" is now known as {n}"))
            })
        })
        .collect();
    while !missing.is_empty() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("{} never saw {missing:?} join", member.nick));
        let line = member.peer.expect_any_within(left);
        missing.retain(|n| {
            line != format!("{n} joined #lobby")
                && !line.ends_with(&format!(" is now known as {n}"))
        });
    }
}

#[test]
fn a_room_of_five_delivers_every_message_once_and_outlives_its_founder() {
    let nicks: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    let (first, port1) = member(&nicks[0], None);
    let mut members = vec![first];
    let mut ports = vec![port1];
    for (i, nick) in nicks.iter().enumerate().skip(1) {
        // Each joins through the member before it: a chain, not a star, so
        // the room only holds together if members learn of each other.
        let (m, port) = member(nick, Some(ports[i - 1]));
        members.push(m);
        ports.push(port);
    }
    for m in members.iter_mut() {
        await_joins(m, &nicks);
    }

    // Everyone says three things, two of them identical.
    for m in members.iter_mut() {
        let nick = m.nick.clone();
        for text in ["hello", "same", "same"] {
            m.peer.send(&format!("{text} from {nick}"));
        }
    }
    let mut counts: Vec<HashMap<String, usize>> = vec![HashMap::new(); members.len()];
    for (i, m) in members.iter_mut().enumerate() {
        let expected = (members_len_minus_one(&nicks)) * 3;
        let deadline = Instant::now() + TIMEOUT;
        let mut got = 0;
        while got < expected {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("{} got {got} of {expected}: {:?}", m.nick, counts[i]));
            let line = m.peer.expect_any_within(left);
            if line.contains(" from n") && line.contains(": ") {
                *counts[i].entry(line).or_default() += 1;
                got += 1;
            }
        }
    }
    for (i, m) in members.iter().enumerate() {
        for other in nicks.iter().filter(|n| **n != m.nick) {
            assert_eq!(
                counts[i].get(&format!("{other}: hello from {other}")),
                Some(&1)
            );
            assert_eq!(
                counts[i].get(&format!("{other}: same from {other}")),
                Some(&2)
            );
        }
        assert!(
            !counts[i]
                .keys()
                .any(|l| l.starts_with(&format!("{}: ", m.nick))),
            "{} was shown its own messages",
            m.nick
        );
    }

    // A direct message reaches only its target.
    members[0].peer.send("/msg n3 for your eyes only");
    members[0].peer.expect_line("Sent to n3 only");
    members[2]
        .peer
        .expect_line("[direct] n1: for your eyes only");

    // The founder leaves; the others are told and keep talking.
    members[0].peer.send("/quit");
    assert!(members[0].peer.wait_exit().success());
    for m in members.iter_mut().skip(1) {
        m.peer.expect_line("n1 left #lobby");
    }
    members[4].peer.send("still here");
    for m in members.iter_mut().skip(1).take(3) {
        m.peer.expect_line("n5: still here");
    }
    for m in members.iter().skip(1) {
        assert!(
            !m.peer.seen.iter().any(|l| l.contains("for your eyes only")) || m.nick == "n3",
            "{} saw a direct message meant for n3",
            m.nick
        );
    }
}

fn members_len_minus_one(nicks: &[String]) -> usize {
    nicks.len() - 1
}

#[test]
fn room_commands_list_join_switch_and_leave() {
    let (mut a, port) = member("alice", None);
    let (mut b, _) = member("bob", Some(port));
    await_joins(&mut a, &["bob".into()]);
    await_joins(&mut b, &["alice".into()]);
    b.peer.send("/join side");
    b.peer.expect_prefix("Now in #side");
    a.peer.send("/join side");
    a.peer.expect_prefix("Now in #side");
    b.peer.expect_line("alice joined #side");
    a.peer.send("in the side room");
    b.peer.expect_line("alice: in the side room");
    // A message to a room that is not the current one says where it is.
    a.peer.send("/join lobby");
    a.peer.send("back in the lobby");
    b.peer.expect_line("#lobby alice: back in the lobby");
    b.peer.send("/rooms");
    b.peer.expect_line("Rooms:");
    b.peer.expect_line("   #lobby (1 other member(s))");
    b.peer.expect_line(" * #side (1 other member(s))");
    b.peer.send("/nick robert");
    b.peer.expect_line("You are now known as robert");
    a.peer.expect_line("bob is now known as robert");
    b.peer.send("/peers");
    b.peer.expect_line("Peers connected: 1");
    let line = b.peer.expect_prefix("  alice  ");
    assert!(line.contains("127.0.0.1:"), "{line}");
    a.peer.send("/frobnicate");
    a.peer.expect_prefix("Unknown command /frobnicate");
    a.peer.send("/nick Peer-0000");
    a.peer
        .expect_prefix("'Peer-0000' is how unnamed peers are shown");
    b.peer.send("/leave side");
    b.peer.expect_line("Left #side; now in #lobby");
    a.peer.expect_line("robert left #side");
}

/// Runs a command, returning whether it succeeded.
fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct Namespaces {
    names: [String; 2],
}

impl Namespaces {
    fn create() -> Option<Namespaces> {
        let tag = std::process::id();
        let names = [format!("rpc-a-{tag}"), format!("rpc-b-{tag}")];
        let ns = Namespaces { names };
        let [a, b] = &ns.names;
        let (va, vb) = (format!("rpca{tag}"), format!("rpcb{tag}"));
        let (va, vb) = (&va[..va.len().min(15)], &vb[..vb.len().min(15)]);
        let ok = run(&["ip", "netns", "add", a])
            && run(&["ip", "netns", "add", b])
            && run(&["ip", "link", "add", va, "type", "veth", "peer", "name", vb])
            && run(&["ip", "link", "set", va, "netns", a])
            && run(&["ip", "link", "set", vb, "netns", b])
            && run(&["ip", "-n", a, "addr", "add", "10.231.0.1/24", "dev", va])
            && run(&["ip", "-n", b, "addr", "add", "10.231.0.2/24", "dev", vb])
            && run(&["ip", "-n", a, "link", "set", va, "up"])
            && run(&["ip", "-n", b, "link", "set", vb, "up"])
            && run(&["ip", "-n", a, "link", "set", "lo", "up"])
            && run(&["ip", "-n", b, "link", "set", "lo", "up"])
            // A LAN has a route for multicast (usually its default route).
            && run(&["ip", "-n", a, "route", "add", "224.0.0.0/4", "dev", va])
            && run(&["ip", "-n", b, "route", "add", "224.0.0.0/4", "dev", vb]);
        ok.then_some(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn in_namespace(ns: &str, nick: &str, dir: &Path) -> Peer {
    let dir = dir.to_str().expect("utf-8");
    Peer::start_with_program(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            common::BIN,
            "--listen",
            "0",
            "--data-dir",
            dir,
            "--name",
            nick,
        ],
    )
}

#[test]
fn mdns_finds_a_peer_on_the_lan_with_no_address_given() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("SKIPPED: creating network namespaces needs root (CI runs as root)");
        return;
    }
    let Some(ns) = Namespaces::create() else {
        eprintln!("SKIPPED: could not create network namespaces with `ip netns` here");
        return;
    };
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut a = in_namespace(&ns.names[0], "east", da.path());
    let mut b = in_namespace(&ns.names[1], "west", db.path());
    // Who dials whom depends on which query is answered first: the one
    // that was dialled meets the other as its first peer (`Peer connected
    // from:`, then a rename once the nick is known); the other sees a join.
    let met = |nick: &'static str| {
        move |line: &str| {
            line == format!("{nick} joined #lobby")
                || line == format!("Peer is now known as {nick}")
        }
    };
    a.expect_count(met("west"), 1, Duration::from_secs(40));
    b.expect_count(met("east"), 1, Duration::from_secs(40));
    a.send("found you without an address");
    b.expect_line("east: found you without an address");
    // Stop both before the namespaces go.
    drop(a);
    drop(b);
}

#[test]
fn a_trusted_nick_claimed_by_another_key_is_marked() {
    let (mut alice, port) = member("alice", None);
    let (mut bob, _) = member("bob", Some(port));
    await_joins(&mut alice, &["bob".into()]);
    alice.peer.send("/trust bob");
    alice.peer.expect_prefix("Marked ");
    bob.peer.send("/quit");
    assert!(bob.peer.wait_exit().success());
    alice.peer.expect_line("Peer disconnected");

    // Someone else takes the nick.
    let (mut impostor, _) = member("bob", Some(port));
    let warning = alice
        .peer
        .expect_prefix("WARNING: THE IDENTITY OF the nick bob");
    assert!(warning.contains("HAS CHANGED"), "{warning}");
    impostor.peer.send("it is me, really");
    alice
        .peer
        .expect_line("bob(not the trusted one!): it is me, really");
}
