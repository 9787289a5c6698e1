//! The secure mode, black box: two real binaries on 127.0.0.1, each with
//! its own data directory.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    data_dir, is_root, peer_id_of, run, secure_pair, Introductions, Peer, RawPeer, TIMEOUT,
};

#[test]
fn two_binaries_chat_encrypted_in_both_directions_at_once() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, _, _) =
        secure_pair(a.path(), b.path(), Introductions::Checked);
    const N: usize = 2000;
    // Both send at the same time, before reading anything.
    let mut batch_l = String::new();
    let mut batch_c = String::new();
    for i in 0..N {
        batch_l.push_str(&format!("from listener {i}\n"));
        batch_c.push_str(&format!("from connector {i}\n"));
    }
    listener.send_bytes(batch_l.as_bytes());
    connector.send_bytes(batch_c.as_bytes());
    for i in 0..N {
        connector.expect_next(&format!("Peer: from listener {i}"));
        listener.expect_next(&format!("Peer: from connector {i}"));
    }
    // Identical lines are two messages.
    connector.send("same");
    connector.send("same");
    listener.expect_next("Peer: same");
    listener.expect_next("Peer: same");
    connector.close_input();
    listener.expect_next("Peer disconnected");
    listener.expect_next("Waiting for peer to connect...");
    assert!(connector.wait_exit().success());
}

/// Relays one connection between `port` and a new local port, recording
/// every byte that passes in either direction.
fn recording_proxy(port: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let front = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let proxy_port = front.local_addr().expect("addr").port();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&recorded);
    thread::spawn(move || {
        let Ok((client, _)) = front.accept() else {
            return;
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
            return;
        };
        let pipe = |mut from: TcpStream, mut to: TcpStream, log: Arc<Mutex<Vec<u8>>>| {
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                // Bounded: ends when either side closes, or after TIMEOUT
                // of silence.
                let _ = from.set_read_timeout(Some(TIMEOUT));
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    log.lock().expect("log").extend_from_slice(&buf[..n]);
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            })
        };
        let up = pipe(
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
            Arc::clone(&log),
        );
        let down = pipe(server, client, log);
        let _ = up.join();
        let _ = down.join();
    });
    (proxy_port, recorded)
}

#[test]
fn no_message_text_appears_on_the_wire() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, port, _) = Peer::secure_listen(a.path(), &[]);
    let (proxy_port, recorded) = recording_proxy(port);
    let mut connector = Peer::secure_connect(proxy_port, b.path(), &[]);
    connector.expect_secure_chat();
    listener.expect_secure_chat();
    let secret_out = "attack at dawn, bring the blue folder";
    let secret_back = "understood: blue folder at dawn";
    connector.send(secret_out);
    listener.expect_next(&format!("Peer: {secret_out}"));
    listener.send(secret_back);
    connector.expect_next(&format!("Peer: {secret_back}"));
    connector.close_input();
    listener.expect_line("Peer disconnected");
    assert!(connector.wait_exit().success());

    let wire = recorded.lock().expect("log").clone();
    assert!(
        wire.len() > 200,
        "the proxy saw the chat: {} bytes",
        wire.len()
    );
    for secret in [secret_out, secret_back, "blue folder", "dawn"] {
        assert!(
            !wire.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} found in plain text on the wire"
        );
    }
}

#[test]
fn identity_persists_across_restarts_and_id_prints_it() {
    let dir = data_dir();
    let path = dir.path().to_str().expect("utf-8");
    let mut first = Peer::start(&["id", "--data-dir", path]);
    let id_line = first.expect_prefix("Peer ID: ");
    let fp_line = first.expect_prefix("Fingerprint: ");
    assert!(first.wait_exit().success());
    let peer_id = id_line["Peer ID: ".len()..].to_owned();
    assert!(peer_id.starts_with("12D3KooW"), "{peer_id}");

    let mut second = Peer::start(&["id", "--data-dir", path]);
    second.expect_line(&id_line);
    second.expect_line(&fp_line);
    assert!(second.wait_exit().success());

    let (mut listener, _, own) = Peer::secure_listen(dir.path(), &[]);
    assert_eq!(own, peer_id);
    listener.signal("TERM");
    assert!(listener.wait_exit().success());

    // Owner-only permissions on the key.
    use std::os::unix::fs::PermissionsExt;
    let key = dir.path().join("identity.key");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_key_file_open_to_others_or_corrupt_is_refused_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir();
    let path = dir.path().to_str().expect("utf-8");
    let mut peer = Peer::start(&["id", "--data-dir", path]);
    assert!(peer.wait_exit().success());
    let key = dir.path().join("identity.key");
    let original = std::fs::read(&key).expect("key");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut peer = Peer::start(&["--listen", "0", "--data-dir", path, "--no-mdns"]);
    peer.expect_stderr("chmod 600");
    assert_eq!(peer.wait_exit().code(), Some(1));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&key, b"not a key").expect("write");
    let mut peer = Peer::start(&["id", "--data-dir", path]);
    peer.expect_stderr("identity.key");
    assert_eq!(peer.wait_exit().code(), Some(1));
    assert_eq!(std::fs::read(&key).expect("key"), b"not a key");
    assert_ne!(original, b"not a key");
}

#[test]
fn expect_refuses_another_identity_and_accepts_the_right_one() {
    let (a, b, c) = (data_dir(), data_dir(), data_dir());
    let (mut listener, port, listener_id) = Peer::secure_listen(a.path(), &[]);

    // Somebody else's identity.
    let mut other = Peer::start(&["id", "--data-dir", c.path().to_str().expect("utf-8")]);
    let other_id = other.expect_prefix("Peer ID: ")["Peer ID: ".len()..].to_owned();
    assert!(other.wait_exit().success());
    let mut refused = Peer::secure_connect(port, b.path(), &["--expect", &other_id]);
    let error = refused.expect_stderr("refusing");
    assert!(error.contains(&listener_id), "{error}");
    assert!(error.contains(&other_id), "{error}");
    assert_eq!(refused.wait_exit().code(), Some(1));
    assert!(
        !refused.seen.iter().any(|l| l.starts_with("Type messages")),
        "no chat with the wrong peer"
    );

    // The right one, named by its fingerprint typed in lower case (read
    // with `id`, which may run beside the chat using the directory).
    let mut probe = Peer::start(&["id", "--data-dir", a.path().to_str().expect("utf-8")]);
    let fingerprint = probe.expect_prefix("Fingerprint: ")["Fingerprint: ".len()..].to_lowercase();
    assert!(probe.wait_exit().success());
    let mut accepted = Peer::secure_connect(port, b.path(), &["--expect", &fingerprint]);
    accepted.expect_secure_chat();
    listener.expect_secure_chat();
    accepted.send("hello, the right you");
    listener.expect_line("Peer: hello, the right you");
}

#[test]
fn safety_numbers_match_on_both_ends_and_trust_is_remembered() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Checked);
    listener.send("/verify");
    connector.send("/verify");
    let mine = listener.expect_prefix("Safety number: ");
    let theirs = connector.expect_prefix("Safety number: ");
    assert_eq!(mine, theirs);
    assert_eq!(mine.len(), "Safety number: ".len() + 12 * 5 + 11);
    // Neither command went to the peer as a message.
    connector.send("//verify is escaped");
    listener.expect_line("Peer: /verify is escaped");

    connector.send("/trust");
    connector.expect_prefix("Marked ");
    connector.close_input();
    assert!(connector.wait_exit().success());
    listener.expect_line("Waiting for peer to connect...");

    // Next time the peer is shown as verified.
    let mut again = Peer::secure_connect(port, b.path(), &[]);
    let identity = again.expect_prefix("Peer identity: ");
    assert!(identity.ends_with(", verified"), "{identity}");
}

#[test]
fn a_changed_key_behind_a_trusted_address_raises_a_warning_first() {
    let (a, b, c) = (data_dir(), data_dir(), data_dir());
    let (mut original, port, original_id) = Peer::secure_listen(a.path(), &[]);
    let mut connector = Peer::secure_connect(port, b.path(), &[]);
    connector.expect_secure_chat();
    original.expect_secure_chat();
    connector.send("/trust");
    connector.expect_prefix("Marked ");
    connector.close_input();
    assert!(connector.wait_exit().success());
    original.expect_line("Peer disconnected");
    original.signal("TERM");
    assert!(original.wait_exit().success());

    // Another key answers at the same address.
    let port_arg = port.to_string();
    let c_path = c.path().to_str().expect("utf-8");
    let mut impostor = Peer::start(&["--listen", &port_arg, "--data-dir", c_path, "--no-mdns"]);
    impostor.expect_line("Waiting for peer to connect...");
    impostor.send("trust me");
    let mut connector = Peer::secure_connect(port, b.path(), &[]);
    let warning = connector.expect_prefix("WARNING: THE IDENTITY OF 127.0.0.1:");
    assert!(warning.contains("HAS CHANGED"), "{warning}");
    let detail = connector.expect_prefix("WARNING: you trusted");
    assert!(detail.contains(&original_id), "{detail}");
    connector.expect_secure_chat();
    connector.expect_line("Peer: trust me");
    // The warning came before anything the peer said.
    let warned_at = connector
        .seen
        .iter()
        .position(|l| l.starts_with("WARNING: THE IDENTITY"));
    let said_at = connector.seen.iter().position(|l| l == "Peer: trust me");
    assert!(warned_at < said_at);
}

#[test]
fn plain_clients_do_not_disturb_a_secure_listener_or_its_chat() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Checked);
    // An nc-style client types a line; another connects and says nothing;
    // a third sends garbage and resets.
    let mut typist = RawPeer::connect(port);
    typist.send(b"hello? is this plain text?\n");
    let _silent = RawPeer::connect(port);
    let mut garbage = RawPeer::connect(port);
    garbage.send(&[0xff; 4096]);
    garbage.reset();
    connector.send("still here");
    listener.expect_next("Peer: still here");
    listener.send("me too");
    connector.expect_next("Peer: me too");
    // The plain client gets nothing it could show as a message, and is
    // dropped.
    let mut got = Vec::new();
    let _ = typist.stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = typist.stream.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("Peer"));
    assert!(
        !listener.seen.iter().any(|l| l.contains("hello?")),
        "plain text shown as a message"
    );
}

#[test]
fn a_third_peer_joins_the_room_without_disturbing_the_chat() {
    let (a, b, c) = (data_dir(), data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Checked);
    let mut third = Peer::secure_connect(port, c.path(), &["--name", "carol"]);
    third.expect_secure_chat();
    // The join is shown once its nick is known.
    listener.expect_line("carol joined #lobby");
    connector.send("undisturbed");
    let line = listener.expect_suffix(": undisturbed");
    assert!(line.starts_with("Peer-"), "{line}");
    let line = third.expect_suffix(": undisturbed");
    assert!(line.starts_with("Peer-"), "{line}");
    third.send("hello all");
    listener.expect_line("carol: hello all");
    connector.expect_line("carol: hello all");
}

#[test]
fn hostile_text_is_rendered_inert_and_oversized_messages_dropped() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, port, _) = Peer::secure_listen(a.path(), &["--max-line", "64"]);
    let mut connector = Peer::secure_connect(port, b.path(), &["--max-line", "1000"]);
    connector.expect_secure_chat();
    listener.expect_secure_chat();
    connector.send("\x1b]52;c;ZXZpbA==\x07\x1b[2Jgone");
    listener.expect_next("Peer: ^[]52;c;ZXZpbA==^G^[[2Jgone");
    connector.send(&"x".repeat(500));
    listener.expect_stderr("64-byte");
    connector.send_bytes(b"caf\xc3\x28\n");
    listener.expect_next("Peer: caf\u{fffd}(");
}

#[test]
fn a_peer_that_stops_answering_is_noticed_within_30_seconds() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, connector, _, _) = secure_pair(a.path(), b.path(), Introductions::Checked);
    let start = Instant::now();
    connector.signal("STOP");
    listener.expect_line_within("Peer disconnected", Duration::from_secs(40));
    let took = start.elapsed();
    connector.signal("CONT");
    assert!(took < Duration::from_secs(30), "noticed after {took:?}");
}

#[test]
fn a_peer_that_stops_reading_is_reported_slow_then_dropped_and_memory_stays_bounded() {
    let (a, b) = (data_dir(), data_dir());
    let a_path = a.path().to_str().expect("utf-8");
    // The listener's own reader (its terminal) stops reading: it keeps its
    // connection alive but takes nothing more from the chat stream.
    let port = common::closed_port();
    let port_arg = port.to_string();
    let listener = Peer::start_unread(&["--listen", &port_arg, "--data-dir", a_path, "--no-mdns"]);
    common::wait_for_port(port);
    let mut connector = Peer::secure_connect(port, b.path(), &[]);
    connector.expect_secure_chat();
    // Flood: far more than every buffer on the way can hold.
    let mut stdin = connector.take_stdin();
    let flooder = thread::spawn(move || {
        let line = format!("{}\n", "f".repeat(1023));
        let block = line.repeat(1024);
        for _ in 0..200 {
            if stdin.write_all(block.as_bytes()).is_err() {
                return;
            }
        }
    });
    connector.expect_stderr_within("has not read what you sent", Duration::from_secs(40));
    let rss = listener.peak_rss_kib();
    assert!(rss < 128 * 1024, "flooded listener grew to {rss} KiB");
    // Dropped once nothing of the sender's window is acknowledged for 30 s
    // (or the engine's queue for it stays full that long), or sooner by
    // the pings, which a peer that stopped taking anything stops answering.
    connector.expect_line_within("Peer disconnected", Duration::from_secs(45));
    // The flooder's own memory is bounded by what gossipsub keeps of what
    // it sent (for five heartbeats) and our queues (see `cargo bench
    // --bench flood`).
    let rss = connector.peak_rss_kib();
    assert!(rss < 512 * 1024, "flooding connector grew to {rss} KiB");
    drop(connector);
    let _ = flooder.join();
}

/// The binary with the data home `home` (where the default data directory
/// is), mDNS on, and `args`.
fn with_data_home(home: &std::path::Path, args: &[&str]) -> Peer {
    let var = format!("XDG_DATA_HOME={}", home.display());
    let mut all = vec![var.as_str(), common::BIN];
    all.extend_from_slice(args);
    Peer::start_with_program("env", &all)
}

#[test]
fn two_programs_on_one_machine_chat_through_the_prompts_with_no_flags() {
    let home = data_dir();
    // The seed's "Testing Locally": the same command in two terminals.
    let mut a = with_data_home(home.path(), &[]);
    a.send("");
    a.send("0");
    let port = common::port_of(&a.expect_prefix("Listening on: 0.0.0.0:"));
    a.expect_line("Waiting for peer to connect...");
    let mut b = with_data_home(home.path(), &[]);
    b.expect_stderr("runs as profile 2");
    b.send(&format!("127.0.0.1:{port}"));
    b.expect_line("Connected to peer!");
    b.expect_secure_chat();
    // The listener's lines come in the classic order, once.
    a.expect_prefix("Peer connected from: 127.0.0.1:");
    a.expect_secure_chat();
    b.send("hello from the second terminal");
    a.expect_line("Peer: hello from the second terminal");
    a.send("and back");
    b.expect_line("Peer: and back");
    let own = |peer: &Peer| {
        peer.seen
            .iter()
            .find(|l| l.starts_with("Your identity: "))
            .map(|l| peer_id_of(l))
    };
    assert_ne!(own(&a), own(&b), "the two share one identity");
    assert!(home
        .path()
        .join("rust-p2p-chat/profiles/2/identity.key")
        .exists());
}

#[test]
fn fresh_pairs_with_lan_discovery_on_connect_every_time() {
    // LAN discovery (on by default) once dialled the listener by itself at
    // the moment the user's dial did, and the second connection was refused
    // by the per-peer limit in some pairs.
    for i in 0..30 {
        let (da, db) = (data_dir(), data_dir());
        let dir_a = da.path().to_str().expect("utf-8");
        let mut a = Peer::start(&["--listen", "0", "--data-dir", dir_a]);
        let port = common::port_of(&a.expect_prefix("Listening on: 0.0.0.0:"));
        let target = format!("127.0.0.1:{port}");
        let dir_b = db.path().to_str().expect("utf-8");
        let mut b = Peer::start(&["--connect", &target, "--data-dir", dir_b]);
        if b.output_containing_within("Connected to peer!", TIMEOUT)
            .is_none()
        {
            panic!("pair {i} did not connect: {:?}", b.expect_stderr("error"));
        }
        a.expect_prefix("Peer connected from: 127.0.0.1:");
        b.send(&format!("pair {i}"));
        a.expect_line(&format!("Peer: pair {i}"));
    }
}

/// Two network namespaces (`10.213.0.1`, `10.213.0.2`) joined by a veth
/// pair whose two ends send at most `rate` (TBF); removed on drop.
struct SlowLink {
    names: [String; 2],
}

impl SlowLink {
    fn create(rate: &str) -> Option<SlowLink> {
        let tag = std::process::id() % 100_000;
        let link = SlowLink {
            names: [format!("rpc-sa-{tag}"), format!("rpc-sb-{tag}")],
        };
        let [a, b] = &link.names;
        let (va, vb) = (format!("rpcsa{tag}"), format!("rpcsb{tag}"));
        let mut ok = run(&["ip", "netns", "add", a])
            && run(&["ip", "netns", "add", b])
            && run(&[
                "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
            ])
            && run(&["ip", "link", "set", &va, "netns", a])
            && run(&["ip", "link", "set", &vb, "netns", b]);
        for (ns, dev, addr) in [(a, &va, "10.213.0.1/24"), (b, &vb, "10.213.0.2/24")] {
            ok = ok
                && run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])
                && run(&["ip", "-n", ns, "link", "set", dev, "up"])
                && run(&["ip", "-n", ns, "link", "set", "lo", "up"])
                && run(&[
                    "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                    "rate", rate, "burst", "32kbit", "latency", "400ms",
                ]);
        }
        ok.then_some(link)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .status();
        }
    }
}

#[test]
fn a_sender_fed_from_a_file_ends_only_once_a_slow_link_delivered_every_line() {
    if !is_root() {
        eprintln!("SKIPPED: creating network namespaces needs root (CI runs as root)");
        return;
    }
    let Some(link) = SlowLink::create("1mbit") else {
        eprintln!("SKIPPED: could not create network namespaces with a TBF link here");
        return;
    };
    const LINES: usize = 10_000;
    let (da, db) = (data_dir(), data_dir());
    let file = da.path().join("lines.txt");
    let text: String = (0..LINES)
        .map(|i| format!("{i:05} {}\n", "x".repeat(57)))
        .collect();
    std::fs::write(&file, text).expect("write the lines");
    let dir_b = db.path().to_str().expect("utf-8");
    let mut receiver = Peer::start_with_program(
        "ip",
        &[
            "netns",
            "exec",
            &link.names[1],
            common::BIN,
            "--no-mdns",
            "--listen",
            "0",
            "--data-dir",
            dir_b,
        ],
    );
    let port = common::port_of(&receiver.expect_prefix("Listening on: 0.0.0.0:"));
    let sender_dir = da.path().join("sender");
    let script = format!(
        "exec ip netns exec {} '{}' --no-mdns --connect 10.213.0.2:{port} --data-dir '{}' < '{}'",
        link.names[0],
        common::BIN,
        sender_dir.display(),
        file.display()
    );
    let started = Instant::now();
    let mut sender = Peer::start_with_program("sh", &["-c", &script]);
    let status = sender.wait_exit();
    let took = started.elapsed();
    assert!(status.success(), "the sender failed after {took:?}");
    // The sender ended only once every line was acknowledged, that is
    // stored by the receiver: they are all there, each once.
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < LINES {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("{} of {LINES} lines shown", seen.len()));
        let Some(line) = receiver.line_within(left) else {
            continue;
        };
        if let Some(text) = line.strip_prefix("Peer: ") {
            assert!(seen.insert(text.to_owned()), "shown twice: {text}");
        }
    }
    let history = Peer::history_json(&sender_dir);
    assert_eq!(history.len().min(LINES), history.len());
    assert!(
        history.iter().all(|m| m["status"] == "delivered"),
        "the sender's history has lines not delivered"
    );
    eprintln!("10,000 lines over 1 Mbit/s: the sender ended after {took:?}");
    drop((receiver, sender));
}

#[test]
fn a_line_over_what_others_accept_goes_in_pieces_and_later_lines_flow() {
    let (da, db) = (data_dir(), data_dir());
    let (mut receiver, port, _) = Peer::secure_listen(da.path(), &[]);
    let mut sender = Peer::secure_connect(port, db.path(), &["--max-line", "4194304"]);
    sender.expect_secure_chat();
    receiver.expect_secure_chat();
    // A line above what every member's engine takes in a room: the author
    // is told, and it arrives in pieces of a room line each, in order.
    let half = rust_p2p_chat::net::MAX_ROOM_LINE;
    sender.send(&("x".repeat(half) + &"z".repeat(half) + "end"));
    sender.expect_stderr(&format!(
        "longer than the {half}-byte line limit: it goes out in pieces"
    ));
    sender.send("after the big one");
    for piece in ["x".repeat(half), "z".repeat(half), "end".into()] {
        receiver.expect_line(&format!("Peer: {piece}"));
    }
    receiver.expect_line("Peer: after the big one");

    // A member with a smaller limit receives what others send in order,
    // drops a line over its own limit with a notice, and goes on.
    let dc = data_dir();
    let (mut small, small_port, _) = Peer::secure_listen(dc.path(), &["--max-line", "1000"]);
    let dd = data_dir();
    let mut big = Peer::secure_connect(small_port, dd.path(), &[]);
    big.expect_secure_chat();
    small.expect_secure_chat();
    big.send(&"y".repeat(5000));
    big.send("next");
    small.expect_stderr("longer than the 1000-byte line limit");
    small.expect_line("Peer: next");
}

#[test]
fn lines_of_the_largest_size_one_after_another_arrive_at_once() {
    // Each room message of a line this long came within a few KiB of
    // gossipsub's limit, and its reader counted the start of the next one
    // against it: the member stopped reading, and was dropped after 30 s.
    let (da, db) = (data_dir(), data_dir());
    let (mut receiver, mut sender, _, _) =
        secure_pair(da.path(), db.path(), Introductions::Reached);
    let longest = rust_p2p_chat::net::MAX_ROOM_LINE;
    let letters = ["a", "b", "c", "d"];
    let mut input = Vec::new();
    for letter in letters {
        input.extend_from_slice(letter.repeat(longest).as_bytes());
        input.push(b'\n');
    }
    sender.send_bytes(&input);
    for letter in letters {
        receiver.expect_line_within(
            &format!("Peer: {}", letter.repeat(longest)),
            Duration::from_secs(10),
        );
        receiver.seen.clear();
    }
}

#[test]
fn after_a_reconnect_both_sides_show_the_classic_lines_in_the_classic_order() {
    // With LAN discovery on, as users run it: it once reconnected the two
    // by itself, before the connector's own redial, and the connector
    // showed a join, a rename to `Peer` and `Connected to peer!` last.
    let (da, db) = (data_dir(), data_dir());
    let dir = da.path().to_str().expect("utf-8");
    let mut a = Peer::start(&["--listen", "0", "--data-dir", dir, "--name", "alice"]);
    let port = common::port_of(&a.expect_prefix("Listening on: 0.0.0.0:"));
    let target = format!("127.0.0.1:{port}");
    let dir_b = db.path().to_str().expect("utf-8");
    let mut b = Peer::start(&["--connect", &target, "--data-dir", dir_b, "--name", "bob"]);
    b.expect_line("Connected to peer!");
    b.expect_secure_chat();
    a.expect_prefix("Peer connected from: 127.0.0.1:");
    a.expect_secure_chat();
    b.send("before");
    a.expect_line("bob: before");

    // The listener goes away and comes back on the same port.
    a.kill_9();
    b.expect_line("Peer disconnected");
    let b_before = b.seen.len();
    let listen = port.to_string();
    let mut a = Peer::start(&["--listen", &listen, "--data-dir", dir, "--name", "alice"]);
    a.expect_line("Waiting for peer to connect...");
    // The connector: one "Connected to peer!", then who it is, then ready;
    // no join or rename lines of the two-person chat.
    b.expect_line_within("Connected to peer!", Duration::from_secs(40));
    b.expect_next_prefix("Peer identity: ");
    b.expect_next_prefix("The chat is end-to-end encrypted");
    b.expect_next("Type messages and press Enter to send (Ctrl+C to exit)");
    // The listener: the classic lines, in order, once.
    a.expect_next_prefix("Peer connected from: 127.0.0.1:");
    a.expect_next_prefix("Peer identity: ");
    a.expect_next_prefix("The chat is end-to-end encrypted");
    a.expect_next("Type messages and press Enter to send (Ctrl+C to exit)");
    b.send("after");
    a.expect_line("bob: after");
    a.send("welcome back");
    b.expect_line("alice: welcome back");
    // The restarted listener meets bob for the first time in its run and
    // learns his nick as at any first meeting; nothing else.
    for (who, peer, from) in [("connector", &b, b_before), ("listener", &a, 0)] {
        let noise: Vec<&String> = peer.seen[from..]
            .iter()
            .filter(|l| l.contains(" joined #") || l.contains(" is now known as "))
            .filter(|l| *l != "Peer is now known as bob")
            .collect();
        assert!(noise.is_empty(), "{who} showed {noise:?}: {:?}", peer.seen);
    }
}

#[test]
fn a_refused_connect_names_the_address_as_typed_and_its_cause_once() {
    let port = common::closed_port();
    let typed = [
        format!("127.0.0.1:{port}"),
        // A multiaddr typed stays a multiaddr.
        format!("/ip4/127.0.0.1/tcp/{port}"),
    ];
    for target in typed {
        let dir = data_dir();
        let path = dir.path().to_str().expect("utf-8");
        let mut peer = Peer::start(&["--connect", &target, "--data-dir", path, "--no-mdns"]);
        assert_eq!(peer.wait_exit().code(), Some(1));
        let line = peer.expect_stderr("could not connect");
        assert_eq!(
            line,
            format!("error: could not connect to {target}: connection refused")
        );
    }
}

#[test]
fn a_peer_back_without_a_name_keeps_the_nick_it_had() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, port, _) = Peer::secure_listen(a.path(), &[]);
    let mut bob = Peer::secure_connect(port, b.path(), &["--name", "bob"]);
    bob.expect_secure_chat();
    listener.expect_secure_chat();
    bob.send("hi");
    listener.expect_line("bob: hi");
    bob.close_input();
    assert!(bob.wait_exit().success());
    listener.expect_line("Peer disconnected");

    // The same identity again, with no --name this time.
    let restarted = listener.seen.len();
    let mut back = Peer::secure_connect(port, b.path(), &[]);
    back.expect_secure_chat();
    listener.expect_secure_chat();
    back.send("again");
    assert_eq!(listener.expect_suffix(": again"), "bob: again");
    let since = &listener.seen[restarted..];
    assert!(
        !since.iter().any(|l| l.contains("known as")),
        "renamed: {since:?}"
    );
}

#[test]
fn a_line_typed_alone_is_said_to_be_queued_at_once_and_once() {
    let (dir, visitor_dir) = (data_dir(), data_dir());
    let (mut alone, port, _) = Peer::secure_listen(dir.path(), &[]);
    alone.send("anyone?");
    let queued = "Queued: no one else is in #lobby; it is sent when someone comes";
    let line = alone.expect_stderr_within("Queued", Duration::from_secs(1));
    assert_eq!(line, queued);
    // Said once while alone, not once per line: the next line is queued
    // too (as /history shows), and not announced again.
    alone.send("still nobody?");
    alone.send("/history");
    alone.expect_suffix("You: still nobody? (queued)");
    let again = alone.output_containing_within("Queued", Duration::from_millis(500));
    assert_eq!(again, None);

    // Someone comes and takes them, and goes: the next stretch alone is
    // announced again.
    let mut visitor = Peer::secure_connect(port, visitor_dir.path(), &[]);
    visitor.expect_line("Peer: still nobody?");
    visitor.close_input();
    assert!(visitor.wait_exit().success());
    alone.expect_line("Peer disconnected");
    alone.send("gone again");
    let line = alone.expect_stderr_within("Queued", Duration::from_secs(1));
    assert_eq!(line, queued);
}
