//! The classic (plain) mode, black box: two real processes, or the
//! binary and a raw socket, chatting over loopback; the basics, the
//! protocol under load, under hostile input and at its edges, and the
//! library's classic API without a terminal.

mod common;

use std::io::Read;
use std::thread;
use std::time::Duration;

use common::{closed_port, port_of, raw_listener, Peer, RawPeer};

const READY: &str = "Type messages and press Enter to send (Ctrl+C to exit)";

/// A pause longer than any grace period after our input ends: a peer that
/// speaks only after it must still be heard. Waiting is the scenario here,
/// not a guess at how long something takes.
const PAUSE: Duration = Duration::from_millis(1500);

/// A listener with a raw socket peer connected to it, ready to chat.
fn listener_with_raw_peer(extra: &[&str]) -> (Peer, RawPeer) {
    let (mut listener, port) = Peer::listen(extra);
    let raw = RawPeer::connect(port);
    listener.expect_line(READY);
    (listener, raw)
}

/// A plain connector to `host` and the raw socket peer it reached.
fn connector_with_raw_peer(host: &str) -> (Peer, RawPeer) {
    let (listener, port) = raw_listener();
    let peer = Peer::start(&["--plain", "--connect", &format!("{host}:{port}")]);
    let (stream, _) = listener.accept().unwrap();
    (peer, RawPeer::from_stream(stream))
}

/// A plain listener whose stdin is already at EOF, as with `</dev/null`.
fn listener_without_input() -> (Peer, u16) {
    let mut listener = Peer::start(&["--plain", "--listen", "0"]);
    listener.close_input();
    let port = port_of(&listener.expect_prefix("Listening on: 0.0.0.0:"));
    listener.expect_next("Waiting for peer to connect...");
    (listener, port)
}

#[test]
fn two_peers_connect_and_exchange_messages() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);

    listener.expect_prefix("Peer connected from: 127.0.0.1:");
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");

    connector.send("hello from the connector");
    listener.expect_next("Peer: hello from the connector");

    listener.send("hello from the listener");
    connector.expect_next("Peer: hello from the listener");
}

#[test]
fn identical_lines_are_two_messages() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
    connector.send("same");
    connector.send("same");
    listener.expect_next("Peer: same");
    listener.expect_next("Peer: same");
}

#[test]
fn connector_exit_is_announced_and_listener_waits_again() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
    connector.send("bye");
    connector.close_input();
    assert!(connector.wait_exit().success());
    listener.expect_next("Peer: bye");
    listener.expect_next("Peer disconnected");
    listener.expect_next("Waiting for peer to connect...");
}

#[test]
fn library_peers_chat_without_a_terminal() {
    use rust_p2p_chat::classic::{self, Config, Received};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = classic::Listener::bind("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string().parse().unwrap();
        let (a, b) = tokio::join!(
            listener.accept(),
            classic::connect(&addr, Config::default())
        );
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        a.send("ping").await.unwrap();
        assert_eq!(
            b.next_event().await.unwrap(),
            Received::Message("ping".into())
        );
        b.send("pong").await.unwrap();
        assert_eq!(
            a.next_event().await.unwrap(),
            Received::Message("pong".into())
        );
        assert!(matches!(
            a.send("two\nlines").await,
            Err(classic::Error::MessageHasNewline)
        ));
        drop(b);
        assert_eq!(a.next_event().await.unwrap(), Received::Disconnected);
        assert_eq!(a.next_event().await.unwrap(), Received::Disconnected);
    });
}

#[test]
fn both_directions_at_the_same_time() {
    const N: usize = 2_000;
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line(READY);

    let batch = |who: &str| -> Vec<u8> {
        (0..N)
            .map(|i| format!("{who} {i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    // Both write everything before either reads anything.
    connector.send_bytes(&batch("from-connector"));
    listener.send_bytes(&batch("from-listener"));

    for i in 0..N {
        listener.expect_next(&format!("Peer: from-connector {i}"));
    }
    for i in 0..N {
        connector.expect_next(&format!("Peer: from-listener {i}"));
    }
}

#[test]
fn ten_thousand_messages_arrive_in_order() {
    const N: usize = 10_000;
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line(READY);

    let all: String = (0..N).map(|i| format!("message number {i:05}\n")).collect();
    connector.send_bytes(all.as_bytes());
    connector.close_input();
    for i in 0..N {
        listener.expect_next(&format!("Peer: message number {i:05}"));
    }
    listener.expect_next("Peer disconnected");
    assert!(connector.wait_exit().success());
}

#[test]
fn message_at_the_limit_arrives_whole() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    let big = "x".repeat(1024 * 1024);
    raw.send(format!("{big}\nsmall\n").as_bytes());
    listener.expect_next(&format!("Peer: {big}"));
    listener.expect_next("Peer: small");
}

#[test]
fn oversized_line_is_dropped_with_a_notice_and_the_chat_goes_on() {
    let (mut listener, mut raw) = listener_with_raw_peer(&["--max-line", "1000"]);
    raw.send(format!("{}\nafter\n", "y".repeat(5000)).as_bytes());
    listener.expect_next("Peer: after");
    let notice = listener.expect_stderr("Dropped a message from peer");
    assert!(notice.contains("1000-byte"), "{notice}");

    // The chat still works both ways.
    listener.send("still talking");
    assert_eq!(raw.read_line().as_deref(), Some("still talking"));
}

#[test]
fn our_own_oversized_line_goes_out_in_pieces() {
    let (mut listener, mut raw) = listener_with_raw_peer(&["--max-line", "10"]);
    listener.send("this line is far too long");
    listener.send("short");
    listener.expect_stderr(
        "Your line is longer than the 10-byte line limit: it goes out in pieces of at most 10 bytes",
    );
    for piece in ["this line ", "is far too", " long", "short"] {
        assert_eq!(raw.read_line().as_deref(), Some(piece));
    }
}

#[test]
fn endless_line_keeps_memory_bounded() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    let idle = listener.rss_kib();
    let chunk = vec![b'z'; 1024 * 1024];
    let mut peak = idle;
    // 1 GiB without a newline.
    for i in 0..1024 {
        raw.send(&chunk);
        if i % 64 == 0 {
            peak = peak.max(listener.rss_kib());
        }
    }
    raw.send(b"\nfine\n");
    listener.expect_next("Peer: fine");
    peak = peak.max(listener.rss_kib());
    listener.expect_stderr("Dropped a message from peer");
    assert!(
        peak < idle + 8 * 1024,
        "RSS grew from {idle} KiB to {peak} KiB on an endless line"
    );
}

#[test]
fn invalid_utf8_is_shown_with_replacement_characters() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    raw.send(b"bad \xff\xfe bytes \xc3\n");
    listener.expect_next("Peer: bad \u{fffd}\u{fffd} bytes \u{fffd}");
}

#[test]
fn escape_sequences_are_rendered_inert() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    raw.send(b"\x1b[2J\x1b]0;owned\x07\x1b]52;c;cHduZWQ=\x07 \x9b \xc2\x9b1m done\r\n");
    let line = listener.next_line().expect("a line");
    assert_eq!(
        line,
        "Peer: ^[[2J^[]0;owned^G^[]52;c;cHduZWQ=^G \u{fffd} \\u{9b}1m done"
    );
    assert!(!line.bytes().any(|b| b < 0x20 || b == 0x7f));
}

#[test]
fn invisible_characters_are_shown_escaped() {
    // A bidi mark, the line and paragraph separators, and tag characters
    // (text hidden in plain sight): each is spelled out, none printed raw.
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    let sent = [
        ("mark\u{61c}", "mark\\u{61c}"),
        ("line\u{2028}break", "line\\u{2028}break"),
        ("para\u{2029}break", "para\\u{2029}break"),
        ("tag\u{e0041}", "tag\\u{e0041}"),
    ];
    for (text, _) in &sent {
        raw.send(format!("{text}\n").as_bytes());
    }
    for (_, shown) in &sent {
        listener.expect_next(&format!("Peer: {shown}"));
    }
    let raw_chars = ['\u{61c}', '\u{2028}', '\u{2029}', '\u{e0041}'];
    let leaked: Vec<&String> = listener
        .seen
        .iter()
        .filter(|line| line.contains(raw_chars))
        .collect();
    assert!(leaked.is_empty(), "printed raw: {leaked:?}");
}

#[test]
fn lines_are_whole_whatever_the_segmentation() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    for byte in b"one line\r\nand another\n" {
        raw.send(&[*byte]);
        thread::sleep(Duration::from_millis(1));
    }
    listener.expect_next("Peer: one line");
    listener.expect_next("Peer: and another");
}

#[test]
fn abrupt_disconnect_mid_line_is_announced() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    raw.send(b"complete\nhalf a li");
    listener.expect_next("Peer: complete");
    thread::sleep(Duration::from_millis(50));
    raw.reset();
    listener.expect_line("Peer disconnected");
    listener.expect_next("Waiting for peer to connect...");
}

#[test]
fn unterminated_last_line_is_delivered_on_clean_close() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    raw.send(b"no newline at the end");
    raw.finish();
    listener.expect_next("Peer: no newline at the end");
    listener.expect_next("Peer disconnected");
}

#[test]
fn second_peer_is_turned_away_without_disturbing_the_chat() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut first = Peer::connect(port);
    listener.expect_line(READY);

    let mut second = RawPeer::connect(port);
    let busy = second.read_line().expect("a busy line");
    assert!(busy.contains("busy"), "{busy}");
    assert_eq!(second.read_line(), None, "the second peer is closed");
    listener.expect_stderr("Turned away 127.0.0.1:");

    first.send("still here");
    listener.expect_next("Peer: still here");
    listener.send("me too");
    first.expect_next("Peer: me too");
}

#[test]
fn connection_refused_is_one_clear_error() {
    let port = closed_port();
    let mut peer = Peer::start(&["--plain", "--connect", &format!("127.0.0.1:{port}")]);
    let status = peer.wait_exit();
    assert_eq!(status.code(), Some(1));
    // The address and the cause, each said once.
    let line = peer.expect_stderr("could not connect");
    assert_eq!(
        line,
        format!("error: could not connect to 127.0.0.1:{port}: connection refused")
    );
}

#[test]
fn port_in_use_is_one_clear_error() {
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let mut peer = Peer::start(&["--plain", "--listen", &port]);
    assert_eq!(peer.wait_exit().code(), Some(1));
    let line = peer.expect_stderr("address already in use");
    assert_eq!(
        line,
        format!("error: could not listen on 0.0.0.0:{port}: address already in use")
    );
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["--connect", "nowhere"][..],
        &["--bogus"],
        &["--plain", "-l", "1", "-c", "h:1"],
    ] {
        let mut peer = Peer::start(args);
        assert_eq!(peer.wait_exit().code(), Some(2), "{args:?}");
    }
}

#[test]
fn listener_serves_a_second_chat_after_the_first_ends() {
    let (mut listener, port) = Peer::listen(&[]);
    for round in 0..2 {
        let mut connector = Peer::connect(port);
        listener.expect_prefix("Peer connected from: 127.0.0.1:");
        listener.expect_next(READY);
        connector.send(&format!("chat {round}"));
        listener.expect_next(&format!("Peer: chat {round}"));
        listener.send(&format!("reply {round}"));
        connector.expect_next(&format!("Peer: reply {round}"));
        connector.close_input();
        assert!(connector.wait_exit().success());
        listener.expect_next("Peer disconnected");
        listener.expect_next("Waiting for peer to connect...");
    }
}

#[test]
fn connector_exits_when_the_listener_goes_away() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line(READY);
    listener.signal("TERM");
    assert!(listener.wait_exit().success());
    connector.expect_next("Peer disconnected");
    assert!(connector.wait_exit().success());
}

#[test]
fn input_end_delivers_everything_then_closes() {
    let (mut peer, mut raw) = connector_with_raw_peer("localhost");
    peer.send("a");
    peer.send("b");
    peer.close_input();
    assert_eq!(raw.read_line().as_deref(), Some("a"));
    assert_eq!(raw.read_line().as_deref(), Some("b"));
    assert_eq!(raw.read_line(), None, "closed after the last line");
    raw.finish();
    assert!(peer.wait_exit().success());
}

#[test]
fn listener_without_input_shows_a_piped_connector() {
    let (mut listener, port) = listener_without_input();
    let mut connector = Peer::connect(port);
    connector.send("a");
    connector.send("b");
    connector.close_input();
    listener.expect_prefix("Peer connected from: 127.0.0.1:");
    listener.expect_line("Peer: a");
    listener.expect_next("Peer: b");
    assert!(connector.wait_exit().success());
    assert!(listener.wait_exit().success());
}

#[test]
fn listener_without_input_hears_the_peer_until_it_closes() {
    let (mut listener, port) = listener_without_input();
    let mut raw = RawPeer::connect(port);
    listener.expect_prefix("Peer connected from: 127.0.0.1:");
    // However late the peer speaks, and however long it pauses, the
    // listener shows it.
    thread::sleep(PAUSE);
    raw.send(b"a\nb\n");
    listener.expect_line("Peer: a");
    listener.expect_next("Peer: b");
    thread::sleep(PAUSE);
    raw.send(b"c\n");
    listener.expect_next("Peer: c");
    raw.finish();
    listener.expect_next("Peer disconnected");
    assert_eq!(raw.read_line(), None, "closed once the peer closed");
    assert!(listener.wait_exit().success());
}

#[test]
fn connector_whose_input_ended_hears_the_listener_until_it_closes() {
    let (mut peer, mut raw) = connector_with_raw_peer("127.0.0.1");
    peer.expect_line(READY);
    peer.send("last words");
    peer.close_input();
    assert_eq!(raw.read_line().as_deref(), Some("last words"));
    assert_eq!(raw.read_line(), None, "our side is closed");
    thread::sleep(PAUSE);
    raw.send(b"late but heard\n");
    peer.expect_next("Peer: late but heard");
    raw.finish();
    peer.expect_next("Peer disconnected");
    assert!(peer.wait_exit().success());
}

#[test]
fn interrupt_exits_cleanly_and_flushes_output() {
    let (mut listener, mut raw) = listener_with_raw_peer(&[]);
    raw.send(b"before the interrupt\n");
    listener.expect_next("Peer: before the interrupt");
    listener.signal("INT");
    assert!(listener.wait_exit().success());
    let mut rest = Vec::new();
    let _ = raw.stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
}
