//! The JSON front end (`--json`) and its example bot: commands in, events
//! out, peer text as data.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{data_dir, utf8, Peer, BIN};

/// The next stdout line of `peer` that parses as a JSON event of `kind`.
fn next_event(peer: &mut Peer, kind: &str) -> serde_json::Value {
    let wanted = format!("\"type\":\"{kind}\"");
    let line = peer
        .output_containing_within(&wanted, common::TIMEOUT)
        .unwrap_or_else(|| panic!("no {kind} event; seen: {:?}", peer.seen));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

#[test]
fn a_program_chats_in_json_and_peer_text_stays_data() {
    let (a, b) = (data_dir(), data_dir());
    let (mut ann, port, ann_id) = Peer::secure_listen(a.path(), &["--name", "ann"]);
    let target = format!("127.0.0.1:{port}");
    let mut bot = Peer::start(&[
        "--json",
        "--connect",
        &target,
        "--data-dir",
        utf8(b.path()),
        "--no-mdns",
    ]);
    let hello = next_event(&mut bot, "hello");
    assert_eq!(hello["api"], 2);
    assert!(hello["peer_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("12D3KooW")));
    ann.expect_secure_chat();
    bot.send(r#"{"type":"nick","name":"bot"}"#);
    ann.expect_line("Peer is now known as bot");

    // What a peer says reaches the program exactly, escapes and all.
    let hostile = "\u{1b}[2J<img src=x onerror=alert(1)> \u{202e}";
    ann.send(hostile);
    let line = next_event(&mut bot, "line");
    assert_eq!(line["text"], hostile);
    assert_eq!(line["author"], ann_id.as_str());
    assert_eq!(line["nick"], "ann");
    assert_eq!(line["room"], "lobby");
    let id = line["id"].as_str().expect("an id");
    assert!(id.starts_with(&format!("room:lobby/{ann_id}/")), "{id}");
    assert!(line["ts_ms"]
        .as_u64()
        .is_some_and(|ts| ts > 1_600_000_000_000));
    // ... and is never written raw: escaped in the JSON text.
    assert!(bot
        .seen
        .iter()
        .all(|l| !l.contains('\u{1b}') && !l.contains('\u{202e}')));

    // A text that looks like a command is said, not done.
    bot.send(r#"{"type":"send","text":"/quit now\nsecond"}"#);
    ann.expect_line("bot: /quit now");
    ann.expect_line("bot: second");
    // Our own lines come back as they go out, with their state, and are
    // marked delivered once a member holds them.
    let own = next_event(&mut bot, "line");
    assert_eq!(own["text"], "/quit now");
    assert_eq!(own["status"], "sent");
    let bot_id = hello["peer_id"].as_str().expect("our id");
    assert_eq!(own["author"], bot_id);
    assert_eq!(next_event(&mut bot, "line")["text"], "second");
    assert_eq!(next_event(&mut bot, "delivered")["room"], "lobby");

    // The history pages back from any line it holds.
    bot.send(r#"{"type":"history","limit":2}"#);
    let page = next_event(&mut bot, "history");
    assert_eq!(page["room"], "lobby");
    assert_eq!(page["more"], true);
    let texts = |page: &serde_json::Value| -> Vec<String> {
        page["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["text"].as_str().expect("text").to_owned())
            .collect()
    };
    assert_eq!(texts(&page), ["/quit now", "second"]);
    assert_eq!(page["lines"][1]["status"], "delivered");
    let first = page["lines"][0]["id"].as_str().expect("an id").to_owned();
    bot.send(&format!(
        r#"{{"type":"history","room":"lobby","before":"{first}","limit":50}}"#
    ));
    let older = next_event(&mut bot, "history");
    assert_eq!(older["before"], first.as_str());
    assert_eq!(older["more"], false);
    assert_eq!(texts(&older), [hostile]);
    assert_eq!(older["lines"][0]["author"], ann_id.as_str());

    // A command that is not one is answered with an error, and the chat
    // goes on.
    bot.send("{\"type\":\"shout\"}");
    let error = next_event(&mut bot, "error");
    assert!(
        error["text"].as_str().is_some_and(|t| t.contains("shout")),
        "{error}"
    );
    bot.send(r#"{"type":"peers"}"#);
    let peers = next_event(&mut bot, "peers");
    assert_eq!(peers["peers"][0]["nick"], "ann");

    bot.send(r#"{"type":"quit"}"#);
    assert!(bot.wait_exit().success());
}

#[test]
fn json_mode_asks_nothing() {
    let dir = data_dir();
    let (status, _, err) = Peer::run(&["--json", "--data-dir", utf8(dir.path())]);
    assert_eq!(status.code(), Some(2));
    assert!(
        err.iter().any(|l| l.contains("--json asks nothing")),
        "{err:?}"
    );
}

#[test]
fn the_example_echo_bot_answers_a_terminal_peer() {
    if !Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let (a, b) = (data_dir(), data_dir());
    let (mut ann, port, _) = Peer::secure_listen(a.path(), &["--name", "ann"]);
    let target = format!("127.0.0.1:{port}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/echo_bot.py");
    let mut bot = Peer::start_with_program(
        "python3",
        &[
            script,
            "--binary",
            BIN,
            "--",
            "--connect",
            &target,
            "--data-dir",
            utf8(b.path()),
            "--no-mdns",
        ],
    );
    ann.expect_secure_chat();
    ann.expect_line("Peer is now known as echo");
    for text in ["hello", "<b>bold</b> & \u{1b}[31mred"] {
        ann.send(text);
        let echoed = ann
            .output_containing_within("echo: echo: ", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no echo; seen: {:?}", ann.seen));
        let shown = rust_p2p_chat::chat::sanitize::inert(&format!("echo: echo: {text}"));
        assert_eq!(echoed, shown);
    }
    bot.kill_9();
}
