//! Rooms, black box: real processes on 127.0.0.1 in one room; and mDNS
//! discovery between network namespaces the test creates.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{data_dir, is_root, member, run, utf8, Peer, TIMEOUT};
use tempfile::TempDir;

/// A member: its process, its nick and its data directory.
struct Member {
    peer: Peer,
    nick: String,
    _dir: TempDir,
}

impl Member {
    /// Starts a member named `nick` listening on a free port, joining
    /// through `via` when given; returns it with its port.
    fn start(nick: &str, via: Option<u16>) -> (Member, u16) {
        let dir = data_dir();
        let mut peer = member(dir.path(), via, &["--name", nick]);
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
}

/// Waits until every member has seen every other nick join; on failure,
/// prints what each member printed, stdout and stderr.
fn await_joins(members: &mut [Member], others: &[String]) {
    let deadline = Instant::now() + TIMEOUT * 2;
    for i in 0..members.len() {
        let member = &mut members[i];
        let joined = |n: &String, l: &String| {
            l == &format!("{n} joined #lobby") || l.ends_with(&format!(" is now known as {n}"))
        };
        let mut missing: Vec<&String> = others
            .iter()
            .filter(|n| **n != member.nick)
            .filter(|n| !member.peer.seen.iter().any(|l| joined(n, l)))
            .collect();
        while !missing.is_empty() {
            let line = deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| member.peer.line_within(left));
            let Some(line) = line else {
                let missing: Vec<String> = missing.into_iter().cloned().collect();
                let nick = member.nick.clone();
                for m in members.iter_mut() {
                    m.peer.send("/peers");
                }
                std::thread::sleep(Duration::from_secs(1));
                for m in members.iter_mut() {
                    while m.peer.line_within(Duration::ZERO).is_some() {}
                    eprintln!("--- {} stdout: {:#?}", m.nick, m.peer.seen);
                    eprintln!("--- {} stderr: {:#?}", m.nick, m.peer.stderr_so_far());
                }
                panic!("{nick} never saw {missing:?} join");
            };
            missing.retain(|n| !joined(n, &line));
        }
    }
}

/// A member joined through a peer that was still alone in a room of its
/// own (its dial to the room it is joining had not finished): when that
/// peer moves into the room it dialled, the member follows it there,
/// rather than stay alone in a room nobody else will ever be in.
#[test]
fn a_member_that_joined_through_a_peer_still_on_its_way_follows_it() {
    let (a, port_a) = Member::start("ann", None);
    // Ann answers nothing while stopped: Bob's handshake with her waits,
    // and Bob stays alone in a room of his own meanwhile.
    a.peer.signal("STOP");
    let (mut b, port_b) = Member::start("bob", Some(port_a));
    b.peer
        .expect_line(&format!("Connecting to 127.0.0.1:{port_a}..."));
    let (mut c, _) = Member::start("cat", Some(port_b));
    // Connected means Cat has joined the room Bob is in: his own.
    c.peer.expect_line("Connected to peer!");
    a.peer.signal("CONT");
    b.peer.expect_line("Connected to peer!");
    let mut members = vec![a, b, c];
    let nicks = ["ann".to_owned(), "bob".to_owned(), "cat".to_owned()];
    await_joins(&mut members, &nicks);
    members[0].peer.send("hello from ann");
    members[2].peer.expect_line("ann: hello from ann");
    assert!(
        !members[2]
            .peer
            .seen
            .iter()
            .any(|l| l == "Peer disconnected"),
        "cat was left alone: {:?}",
        members[2].peer.seen
    );
}

#[test]
fn a_room_of_five_delivers_every_message_once_and_outlives_its_founder() {
    let nicks: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    let (first, port1) = Member::start(&nicks[0], None);
    let mut members = vec![first];
    let mut ports = vec![port1];
    for (i, nick) in nicks.iter().enumerate().skip(1) {
        // Each joins through the member before it: a chain, not a star, so
        // the room only holds together if members learn of each other.
        let (m, port) = Member::start(nick, Some(ports[i - 1]));
        members.push(m);
        ports.push(port);
    }
    await_joins(&mut members, &nicks);

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
    let (mut a, port) = Member::start("alice", None);
    let (mut b, _) = Member::start("bob", Some(port));
    await_joins(std::slice::from_mut(&mut a), &["bob".into()]);
    await_joins(std::slice::from_mut(&mut b), &["alice".into()]);
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
    assert!(line.ends_with("  direct"), "{line}");
    a.peer.send("/frobnicate");
    a.peer.expect_prefix("Unknown command /frobnicate");
    a.peer.send("/nick Peer-0000");
    a.peer
        .expect_prefix("'Peer-0000' is how unnamed peers are shown");
    b.peer.send("/leave side");
    b.peer.expect_line("Left #side; now in #lobby");
    a.peer.expect_line("robert left #side");
}

/// A LAN of network namespaces: hosts `10.231.0.1`, `.2`, ... each with
/// a veth whose other end is on a bridge in a namespace of its own;
/// removed on drop.
struct Lan {
    hosts: Vec<String>,
    switch: String,
}

impl Lan {
    fn create(hosts: usize) -> Option<Lan> {
        // Tests run in parallel: each LAN gets names of its own.
        static LANS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = LANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let switch = format!("rpc-sw-{tag}");
        let lan = Lan {
            hosts: (1..=hosts).map(|i| format!("rpc-h{i}-{tag}")).collect(),
            switch,
        };
        let sw = lan.switch.as_str();
        let mut ok = run(&["ip", "netns", "add", sw])
            && run(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
            && run(&["ip", "-n", sw, "link", "set", "br0", "up"]);
        for (i, host) in lan.hosts.iter().enumerate() {
            let n = i + 1;
            let (inside, outside) = (format!("rpc{n}h{tag}"), format!("rpc{n}s{tag}"));
            let (inside, outside) = (
                &inside[..inside.len().min(15)],
                &outside[..outside.len().min(15)],
            );
            let addr = format!("10.231.0.{n}/24");
            ok = ok
                && run(&["ip", "netns", "add", host])
                && run(&["ip", "link", "add", inside, "type", "veth", "peer", "name", outside])
                && run(&["ip", "link", "set", inside, "netns", host])
                && run(&["ip", "link", "set", outside, "netns", sw])
                && run(&["ip", "-n", sw, "link", "set", outside, "master", "br0"])
                && run(&["ip", "-n", sw, "link", "set", outside, "up"])
                && run(&["ip", "-n", host, "addr", "add", &addr, "dev", inside])
                && run(&["ip", "-n", host, "link", "set", inside, "up"])
                && run(&["ip", "-n", host, "link", "set", "lo", "up"])
                // A LAN has a route for multicast (usually its default route).
                && run(&["ip", "-n", host, "route", "add", "224.0.0.0/4", "dev", inside]);
        }
        ok.then_some(lan)
    }

    /// The LAN of `hosts`, or why the test cannot run here.
    fn for_test(hosts: usize) -> Option<Lan> {
        if !is_root() {
            eprintln!("SKIPPED: creating network namespaces needs root (CI runs as root)");
            return None;
        }
        let lan = Lan::create(hosts);
        if lan.is_none() {
            eprintln!("SKIPPED: could not create network namespaces with `ip netns` here");
        }
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in self.hosts.iter().chain([&self.switch]) {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The binary in namespace `ns`, with its own data directory and `args`.
fn in_namespace(ns: &str, dir: &Path, args: &[&str]) -> Peer {
    let mut all = vec!["netns", "exec", ns, common::BIN, "--data-dir", utf8(dir)];
    all.extend_from_slice(args);
    Peer::start_with_program("ip", &all)
}

#[test]
fn mdns_finds_a_peer_of_a_public_room_with_no_address_given() {
    let Some(lan) = Lan::for_test(2) else {
        return;
    };
    let (da, db) = (data_dir(), data_dir());
    let public = ["--listen", "0", "--public", "--name"];
    let mut a = in_namespace(&lan.hosts[0], da.path(), &[&public[..], &["east"]].concat());
    let mut b = in_namespace(&lan.hosts[1], db.path(), &[&public[..], &["west"]].concat());
    // Discovery dials on its own only for a public room, so neither is
    // "connected from" the other: each sees the other join.
    a.expect_line_within("west joined #+lobby", Duration::from_secs(40));
    b.expect_line_within("east joined #+lobby", Duration::from_secs(40));
    a.send("found you without an address");
    b.expect_line("east: found you without an address");
    // Stop both before the namespaces go.
    drop(a);
    drop(b);
}

#[test]
fn a_stranger_on_the_lan_neither_joins_nor_reads_a_private_chat_but_finds_public_rooms() {
    let Some(lan) = Lan::for_test(4) else {
        return;
    };
    let dirs: Vec<_> = (0..4).map(|_| data_dir()).collect();
    // A listens as the seed does; C, a stranger on the same LAN, runs with
    // default flags and types nothing.
    let mut a = in_namespace(&lan.hosts[0], dirs[0].path(), &["--listen", "0"]);
    let port = common::port_of(&a.expect_prefix("Listening on: "));
    let mut c = in_namespace(&lan.hosts[2], dirs[2].path(), &["--listen", "0"]);
    c.expect_prefix("Listening on: ");
    // B dials A's address.
    let target = format!("10.231.0.1:{port}");
    let mut b = in_namespace(&lan.hosts[1], dirs[1].path(), &["--connect", &target]);
    b.expect_line_within("Connected to peer!", Duration::from_secs(20));
    // A's first peer is B, announced the classic way, before anything else.
    let from = a.expect_prefix("Peer connected from: ");
    assert!(from.contains("10.231.0.2:"), "{from}");
    a.expect_prefix("Peer identity: ");
    b.send("secret between A and B");
    a.expect_line("Peer: secret between A and B");
    // Discovery asks every 5 s: C has had several rounds to find A and B.
    assert_eq!(
        c.output_containing_within("secret", Duration::from_secs(12)),
        None,
        "the stranger read the private chat: {:?}",
        c.seen
    );
    assert!(
        !c.seen
            .iter()
            .any(|l| l.contains("joined") || l.contains("connected")),
        "the stranger was joined into something: {:?}",
        c.seen
    );
    // D opens a public room: C, with its default flags, finds it.
    let mut d = in_namespace(
        &lan.hosts[3],
        dirs[3].path(),
        &[
            "--listen", "0", "--public", "--room", "open", "--name", "dave",
        ],
    );
    d.expect_prefix("Listening on: ");
    let mut found = None;
    for _ in 0..20 {
        c.send("/nearby");
        found = c.output_containing_within("public #open", Duration::from_secs(2));
        if found.is_some() {
            break;
        }
    }
    let found = found.unwrap_or_else(|| panic!("no public room found: {:?}", c.seen));
    assert!(found.contains("10.231.0.4"), "{found}");
    // A public room's members did not become members of the private chat.
    assert!(
        !a.seen
            .iter()
            .any(|l| l.contains("10.231.0.4") || l.contains("dave")),
        "discovery reached into the private chat: {:?}",
        a.seen
    );
    // C joins the public room it found and is heard there.
    c.send("/join open --public");
    c.expect_prefix("Now in #+open");
    c.send("hello, open room");
    assert!(
        d.output_containing_within("hello, open room", Duration::from_secs(20))
            .is_some(),
        "{:?}",
        d.seen
    );
    // And still nothing of the private chat reached C or D.
    b.send("still just us");
    a.expect_line("Peer: still just us");
    for (who, peer) in [("C", &mut c), ("D", &mut d)] {
        assert_eq!(
            peer.output_containing_within("still just us", Duration::from_secs(3)),
            None,
            "{who} read the private chat"
        );
    }
    // Stop every peer before the namespaces go.
    drop((a, b, c, d));
}

#[test]
fn a_trusted_nick_claimed_by_another_key_is_marked() {
    let (mut alice, port) = Member::start("alice", None);
    let (mut bob, _) = Member::start("bob", Some(port));
    await_joins(std::slice::from_mut(&mut alice), &["bob".into()]);
    alice.peer.send("/trust bob");
    alice.peer.expect_prefix("Marked ");
    bob.peer.send("/quit");
    assert!(bob.peer.wait_exit().success());
    alice.peer.expect_line("Peer disconnected");

    // Someone else takes the nick.
    let (mut impostor, _) = Member::start("bob", Some(port));
    let warning = alice
        .peer
        .expect_prefix("WARNING: THE IDENTITY OF the nick bob");
    assert!(warning.contains("HAS CHANGED"), "{warning}");
    impostor.peer.send("it is me, really");
    alice
        .peer
        .expect_line("bob(not the trusted one!): it is me, really");
}

#[test]
fn a_newcomer_sees_what_was_said_before_it_came_as_history_only() {
    let (mut alice, port) = Member::start("alice", None);
    let (mut bob, _) = Member::start("bob", Some(port));
    await_joins(std::slice::from_mut(&mut alice), &["bob".to_owned()]);
    await_joins(std::slice::from_mut(&mut bob), &["alice".to_owned()]);
    bob.peer.send("said before carol came");
    bob.peer.send("and this too");
    alice.peer.expect_line("bob: and this too");

    let (mut carol, _) = Member::start("carol", Some(port));
    // What was said before carol came reaches her as history, in order,
    // with its time (in one block or in several, as it is fetched): never
    // as live lines.
    let earlier = ["said before carol came", "and this too"];
    let mut found = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while found.len() < earlier.len() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("history seen: {found:?}; {:?}", carol.peer.seen));
        let line = carol.peer.expect_any_within(left);
        if let Some(text) = earlier
            .iter()
            .find(|t| line.ends_with(&format!("bob: {t}")))
        {
            assert!(line.starts_with("[history "), "shown live: {line}");
            found.push(*text);
        }
    }
    assert_eq!(found, earlier);
    bob.peer.send("after carol came");
    carol.peer.expect_line("bob: after carol came");
    assert!(
        !carol
            .peer
            .seen
            .iter()
            .any(|l| l == "bob: said before carol came" || l == "bob: and this too"),
        "shown live: {:?}",
        carol.peer.seen
    );
}
