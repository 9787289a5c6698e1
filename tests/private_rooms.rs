//! Private rooms, black box: a room that has handed out an invite admits
//! only those who hold its key. Real processes on 127.0.0.1, and an
//! eavesdropper built with the library that learned the room's topic but
//! not its key.

mod common;

use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use rust_p2p_chat::chat::delivery::Said;
use rust_p2p_chat::chat::ticket::Ticket;
use rust_p2p_chat::net::NetEvent;

use common::{data_dir, dialled_engine, engine_runtime, utf8, Peer, TIMEOUT};

/// A listener in the default room that made an invite: it, its port and
/// the ticket.
fn inviter(dir: &std::path::Path, nick: &str) -> (Peer, u16, String) {
    let (mut ann, port, _) = Peer::secure_listen(dir, &["--name", nick]);
    ann.send("/invite");
    let ticket = ticket_in(&ann.expect_prefix("Invite: "));
    ann.expect_prefix("Whoever has this invite can join #lobby");
    (ann, port, ticket)
}

/// Fails with `why` if `peer` showed a line that `matches`.
fn never_showed(peer: &Peer, matches: impl Fn(&str) -> bool, why: &str) {
    assert!(
        !peer.seen.iter().any(|l| matches(l)),
        "{why}: {:?}",
        peer.seen
    );
}

/// The ticket of an `Invite: TICKET` line.
fn ticket_in(line: &str) -> String {
    line.strip_prefix("Invite: ").expect("an invite").to_owned()
}

/// Starts a peer that joins with `ticket` and waits until it chats.
fn join(dir: &std::path::Path, ticket: &str, nick: &str) -> Peer {
    let mut peer = Peer::start(&[
        "--join",
        ticket,
        "--data-dir",
        utf8(dir),
        "--no-mdns",
        "--name",
        nick,
    ]);
    peer.expect_line("Connected to peer!");
    peer.expect_secure_chat();
    peer
}

#[test]
fn an_invite_lets_its_holder_in_and_a_peer_without_one_gets_nothing() {
    let (a, b, c) = (data_dir(), data_dir(), data_dir());
    let (mut ann, port, ticket) = inviter(a.path(), "ann");
    assert!(ticket.len() <= 140, "{} characters: {ticket}", ticket.len());

    // Bob has nothing but the ticket.
    let mut bob = join(b.path(), &ticket, "bob");
    ann.expect_secure_chat();
    bob.send("hi ann");
    ann.expect_line("bob: hi ann");
    ann.send("hi bob");
    bob.expect_line("ann: hi bob");

    // Cat dials Ann's address, as the classic program did: it is told the
    // room is by invitation, reads nothing and ends.
    let mut cat = Peer::secure_connect(port, c.path(), &["--name", "cat"]);
    assert_eq!(cat.wait_exit().code(), Some(1));
    cat.expect_stderr("#lobby is by invitation: ask a member for an invite");
    ann.send("after cat");
    bob.expect_line("ann: after cat");
    never_showed(
        &cat,
        |l| l.contains("hi ") || l.contains("after cat"),
        "cat read the room",
    );
    never_showed(&ann, |l| l.contains("cat"), "cat was let in");

    // Its key stays Ann's own: the file is hers alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let keys = a.path().join(rust_p2p_chat::store::ROOM_KEYS_FILE);
        let mode = std::fs::metadata(keys)
            .expect("room keys")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    // A ticket typed at the classic prompt works too, and one ticket lets
    // several in.
    let d = data_dir();
    let mut dan = Peer::start(&["--data-dir", utf8(d.path()), "--no-mdns", "--name", "dan"]);
    dan.send(&ticket);
    dan.expect_line("Connected to peer!");
    bob.expect_line("dan joined #lobby");
    dan.send("dan here");
    ann.expect_line("dan: dan here");
    bob.expect_line("dan: dan here");
}

/// What the eavesdropper got: the sealed messages, by author.
type Sealed = Vec<(PeerId, Vec<u8>)>;

/// A peer that dials `port`, subscribes to the room's topic (which anyone
/// connected sees members subscribe to) without its key, posts a line of
/// its own there, and hands back what it received for `listen`.
fn eavesdropper(port: u16, topic_id: String, listen: Duration) -> std_mpsc::Receiver<Sealed> {
    let (done, result) = std_mpsc::channel();
    thread::spawn(move || {
        engine_runtime().block_on(async move {
            let (client, mut events, _) = dialled_engine(port).await;
            client
                .watch_sealed("lobby", &topic_id)
                .await
                .expect("watch");
            let mut got = Vec::new();
            let deadline = Instant::now() + listen;
            let mut posted = false;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !posted && left < listen / 2 {
                    posted = true;
                    let said = Said::Lines {
                        session: 1,
                        first: 1,
                        sent_ms: 0,
                        nick: Some("mallory".into()),
                        texts: vec!["intruder line".into()],
                    };
                    let _ = client.say("lobby", said).await;
                }
                let wait = left.min(Duration::from_millis(200));
                if let Ok(Some(NetEvent::Sealed { author, data })) =
                    tokio::time::timeout(wait, events.recv()).await
                {
                    got.push((author, data));
                }
            }
            let _ = done.send(got);
        });
    });
    result
}

#[test]
fn a_peer_on_the_rooms_topic_without_its_key_reads_nothing_and_cannot_post() {
    let (a, b) = (data_dir(), data_dir());
    let (mut ann, port, ticket) = inviter(a.path(), "ann");
    let mut bob = join(b.path(), &ticket, "bob");
    ann.expect_secure_chat();
    let topic_id = Ticket::decode(&ticket)
        .expect("ticket")
        .key
        .topic_id()
        .to_owned();
    let watched = eavesdropper(port, topic_id, Duration::from_secs(8));
    // Its subscription reaches the members; then they talk.
    thread::sleep(Duration::from_secs(2));
    for i in 0..5 {
        ann.send(&format!("the secret plan {i}"));
        bob.expect_line(&format!("ann: the secret plan {i}"));
        bob.send(&format!("the secret answer {i}"));
        ann.expect_line(&format!("bob: the secret answer {i}"));
    }
    let got = watched
        .recv_timeout(TIMEOUT)
        .expect("the eavesdropper ends");
    assert!(!got.is_empty(), "the eavesdropper got nothing to look at");
    for (author, data) in &got {
        assert!(
            !data.windows(6).any(|w| w == b"secret"),
            "{author} sent text in the clear: {data:?}"
        );
        assert!(!data.windows(4).any(|w| w == b"plan"));
    }
    // What it posted was refused by both.
    ann.send("still here");
    bob.expect_line("ann: still here");
    for peer in [&ann, &bob] {
        never_showed(
            peer,
            |l| l.contains("intruder"),
            "a stranger's line was shown",
        );
    }
}

#[test]
fn a_damaged_invite_is_a_clear_error_and_exit_2() {
    let a = data_dir();
    let (ann, _, ticket) = inviter(a.path(), "ann");
    drop(ann);
    let garbage = "CHAT".to_owned() + &"7Q".repeat(5_000);
    let cases = [
        (ticket[..ticket.len() - 3].to_owned(), "incomplete"),
        (ticket[..ticket.len() - 1].to_owned(), "incomplete"),
        (ticket[..40].to_owned(), "incomplete"),
        (format!("CHAX{}", &ticket[4..]), "not an invite"),
        (typo_at(&ticket, 60), "damaged"),
        (garbage, "far longer than an invite"),
        (
            with_version(&ticket, 2),
            "version 2, made by a newer rust-p2p-chat",
        ),
    ];
    for (bad, says) in cases {
        for flag in ["--join", "--connect"] {
            let dir = data_dir();
            let (status, _, err) = Peer::run(&[flag, &bad, "--data-dir", utf8(dir.path())]);
            assert_eq!(status.code(), Some(2), "{flag} {bad:.40}: {err:?}");
            let all = err.join("\n");
            assert!(
                all.contains(says) || (flag == "--connect" && all.contains("HOST:PORT")),
                "{flag} {bad:.40}: {all}"
            );
            assert!(!all.contains("panicked"), "{all}");
        }
    }
}

/// The ticket with its character at `at` changed to another one.
fn typo_at(ticket: &str, at: usize) -> String {
    let other = if &ticket[at..=at] == "A" { "B" } else { "A" };
    format!("{}{other}{}", &ticket[..at], &ticket[at + 1..])
}

/// The ticket as a program of encoding `version` would write it.
fn with_version(ticket: &str, version: u8) -> String {
    use sha2::{Digest, Sha256};
    let base32 = data_encoding::BASE32_NOPAD;
    let mut data = base32.decode(&ticket.as_bytes()[4..]).expect("base32");
    data.truncate(data.len() - 2);
    data[0] = version << 4 | (data[0] & 0x0f);
    let sum = Sha256::new()
        .chain_update(b"rust-p2p-chat ticket v1")
        .chain_update(&data)
        .finalize();
    data.extend_from_slice(&sum[..2]);
    format!("CHAT{}", base32.encode(&data))
}

#[test]
fn an_expired_invite_is_refused_with_when_it_expired() {
    let a = data_dir();
    let (mut ann, _, _) = Peer::secure_listen(a.path(), &[]);
    ann.send("/invite --valid 1s");
    let ticket = ticket_in(&ann.expect_prefix("Invite: "));
    ann.expect_prefix("Whoever has this invite can join #lobby and read it, until ");
    thread::sleep(Duration::from_millis(2_100));
    let b = data_dir();
    let (status, _, err) = Peer::run(&["--join", &ticket, "--data-dir", utf8(b.path())]);
    assert_eq!(status.code(), Some(1), "{err:?}");
    assert!(
        err.iter().any(|l| l.contains("this invite expired at")),
        "{err:?}"
    );
}

/// Ann made an invite; Bob and Dan joined with it, and all three see each
/// other.
fn room_of_three() -> (Vec<tempfile::TempDir>, Peer, u16, String, Peer, Peer) {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| data_dir()).collect();
    let (mut ann, port, ticket) = inviter(dirs[0].path(), "ann");
    let mut bob = join(dirs[1].path(), &ticket, "bob");
    let mut dan = join(dirs[2].path(), &ticket, "dan");
    bob.expect_line("dan joined #lobby");
    ann.expect_line("dan joined #lobby");
    dan.send("dan is here");
    bob.expect_line("dan: dan is here");
    ann.expect_line("dan: dan is here");
    bob.send("bob is here");
    dan.expect_line("bob: bob is here");
    ann.expect_line("bob: bob is here");
    (dirs, ann, port, ticket, bob, dan)
}

#[test]
fn a_removed_member_reads_nothing_said_after_and_its_lines_are_refused() {
    let (_dirs, mut ann, _, _, mut bob, mut dan) = room_of_three();
    ann.send("/kick bob");
    ann.expect_prefix("You removed bob from #lobby");
    dan.expect_line("bob was removed from #lobby by ann");
    ann.send("said after the kick");
    dan.expect_line("ann: said after the kick");
    dan.send("dan after the kick");
    ann.expect_line("dan: dan after the kick");
    bob.send("bob after the kick");
    // Time for anything to arrive that would.
    ann.send("/members");
    ann.expect_prefix("Members of #lobby holding its current key (epoch 1):");
    thread::sleep(Duration::from_secs(2));
    ann.read_available();
    dan.read_available();
    bob.read_available();
    for peer in [&ann, &dan] {
        never_showed(
            peer,
            |l| l.contains("bob after"),
            "a removed member's line was shown",
        );
    }
    never_showed(
        &bob,
        |l| l.contains("after the kick") && !l.starts_with("You"),
        "bob read the room after his removal",
    );
    never_showed(
        &ann,
        |l| l.starts_with("  bob "),
        "bob is listed as a member",
    );
    // Bob is told (by the first member he asks why it left).
    if !bob
        .stderr_so_far()
        .iter()
        .any(|l| l.contains("you were removed from #lobby"))
    {
        bob.expect_stderr_within("you were removed from #lobby", TIMEOUT);
    }
}

#[test]
fn a_member_away_during_a_kick_gets_the_new_key_when_it_returns_and_the_removed_one_does_not() {
    let (dirs, mut ann, port, _, mut bob, mut dan) = room_of_three();
    // Dan leaves for a while.
    dan.close_input();
    assert!(dan.wait_exit().success());
    ann.send("/kick bob");
    ann.expect_prefix("You removed bob from #lobby");
    // Dan comes back the way he left, with the key he holds.
    let mut dan = Peer::secure_connect(port, dirs[2].path(), &["--name", "dan"]);
    dan.expect_line("Connected to peer!");
    ann.send("welcome back dan");
    dan.expect_line("ann: welcome back dan");
    dan.send("dan holds the new key");
    ann.expect_line("dan: dan holds the new key");
    // Bob, coming back the same way, is told.
    bob.close_input();
    bob.wait_exit();
    let mut bob = Peer::secure_connect(port, dirs[1].path(), &["--name", "bob"]);
    assert_eq!(bob.wait_exit().code(), Some(1));
    bob.expect_stderr("you were removed from #lobby by");
}
