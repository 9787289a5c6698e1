//! History, black box: real peers on 127.0.0.1, each with its own data
//! directory, chatting, restarting, crashing (SIGKILL), partitioned and
//! short of disk; `rust-p2p-chat history --json` is the witness of what
//! each one stored, and the screen of what each one showed.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{
    data_dir, is_root, member, port_of, secure_pair, utf8, Introductions, Peer, RawPeer, BIN,
    TIMEOUT,
};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Peers

/// Starts a listener again on the same `port` with its data in `dir`.
fn listen_again(dir: &Path, port: u16) -> Peer {
    let port_arg = port.to_string();
    let mut peer = Peer::start(&["--listen", &port_arg, "--data-dir", utf8(dir), "--no-mdns"]);
    assert_eq!(port_of(&peer.expect_prefix("Listening on: 0.0.0.0:")), port);
    peer
}

/// Writes `lines` to `stdin` from another thread, `chunk` lines per write
/// with `pause` between writes. The thread hands stdin back when done:
/// closing it would end the chat.
fn write_in_chunks(
    mut stdin: ChildStdin,
    lines: Vec<String>,
    chunk: usize,
    pause: Duration,
) -> JoinHandle<ChildStdin> {
    thread::spawn(move || {
        for part in lines.chunks(chunk) {
            let block: String = part.iter().map(|l| format!("{l}\n")).collect();
            if stdin.write_all(block.as_bytes()).is_err() {
                break;
            }
            thread::sleep(pause);
        }
        stdin
    })
}

// ---------------------------------------------------------------------------
// What a peer showed

/// The text of a line another peer said, shown as `Peer: TEXT` (two in the
/// room) or `Peer-XXXX: TEXT` (more); `None` for anything else, history
/// lines included.
/// Counts `line` by its number when a peer said it; it must be one of
/// `sent`.
fn count_shown(shown: &mut HashMap<String, usize>, sent: &HashSet<&str>, line: &str) {
    if let Some(text) = said_by_a_peer(line) {
        assert!(sent.contains(text), "not sent: {line:?}");
        *shown.entry(text[..6].to_owned()).or_default() += 1;
    }
}

fn said_by_a_peer(line: &str) -> Option<&str> {
    let (who, text) = line.split_once(": ")?;
    let unnamed = who == "Peer"
        || who
            .strip_prefix("Peer-")
            .is_some_and(|short| short.len() == 4 && !short.contains(' '));
    unnamed.then_some(text)
}

/// How often each text was shown as said by another peer.
fn shown_counts(peer: &Peer) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for text in peer.seen.iter().filter_map(|l| said_by_a_peer(l)) {
        *counts.entry(text.to_owned()).or_default() += 1;
    }
    counts
}

/// Waits up to `limit` until every one of `texts` has been shown as said
/// by another peer.
fn expect_said(peer: &mut Peer, texts: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let counts = shown_counts(peer);
        let missing: Vec<&String> = texts.iter().filter(|t| !counts.contains_key(*t)).collect();
        if missing.is_empty() {
            return;
        }
        let line = deadline
            .checked_duration_since(Instant::now())
            .and_then(|left| peer.line_within(left));
        if line.is_none() {
            let from = peer.seen.len().saturating_sub(15);
            panic!(
                "not shown within {limit:?}: {missing:?}; last shown: {:?}",
                &peer.seen[from..]
            );
        }
    }
}

/// Reads a history block (`--- N line(s) from history ---`, N lines,
/// `--- end of history ---`), skipping what comes before it; returns its
/// lines.
fn read_history_block(peer: &mut Peer) -> Vec<String> {
    let head = peer.expect_suffix(" line(s) from history ---");
    let count: usize = head
        .strip_prefix("--- ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {head:?}"));
    let lines: Vec<String> = (0..count)
        .map(|_| peer.expect_any_within(TIMEOUT))
        .collect();
    peer.expect_next("--- end of history ---");
    lines
}

/// Splits `[history YYYY-MM-DD HH:MM] REST` after checking the stamp's
/// shape; returns REST.
fn history_entry(line: &str) -> &str {
    let rest = line
        .strip_prefix("[history ")
        .unwrap_or_else(|| panic!("not a history line: {line:?}"));
    let (stamp, rest) = rest
        .split_once("] ")
        .unwrap_or_else(|| panic!("no stamp in {line:?}"));
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99 99:99", "stamp of {line:?}");
    rest
}

fn no_history_block(peer: &Peer) -> bool {
    !peer.seen.iter().any(|l| l.contains("from history"))
}

// ---------------------------------------------------------------------------
// What a peer stored

fn string<'a>(message: &'a Value, key: &str) -> &'a str {
    message[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {message}"))
}

fn ids<'a>(messages: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    messages
        .into_iter()
        .map(|m| string(m, "id").to_owned())
        .collect()
}

fn received(history: &[Value]) -> Vec<&Value> {
    history
        .iter()
        .filter(|m| m["status"] == "received")
        .collect()
}

fn outgoing(history: &[Value]) -> Vec<&Value> {
    history.iter().filter(|m| m["outgoing"] == true).collect()
}

/// Polls `dir`'s history every 500 ms until `done` holds; panics after
/// `limit` with what it held last.
fn wait_for_history(dir: &Path, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let history = Peer::history_json(dir);
        if done(&history) {
            return history;
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = history.iter().rev().take(5).map(Value::to_string).collect();
            panic!(
                "history in {} not as awaited within {limit:?}: {} message(s), last: {shown:?}",
                dir.display(),
                history.len()
            );
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Asserts that no item occurs twice.
fn assert_each_once(items: &[String], what: &str) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(twice.is_empty(), "{what} more than once: {twice:?}");
}

/// Asserts that two sets of ids are equal, naming a few of the differences.
fn assert_same_ids(left: &[String], right: &[String], what: &str) {
    let (l, r): (BTreeSet<&String>, BTreeSet<&String>) =
        (left.iter().collect(), right.iter().collect());
    let only_left: Vec<_> = l.difference(&r).take(10).collect();
    let only_right: Vec<_> = r.difference(&l).take(10).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "{what}: {} vs {} ids; only in the first: {only_left:?}; only in the second: {only_right:?}",
        l.len(),
        r.len()
    );
}

/// Asserts that the texts of `messages` are exactly `expected`, each once.
fn assert_texts_each_once(messages: &[&Value], expected: &[String], whose: &str) {
    let texts: Vec<String> = messages
        .iter()
        .map(|m| string(m, "text").to_owned())
        .collect();
    assert_each_once(&texts, &format!("{whose}: a text"));
    let missing: Vec<_> = expected
        .iter()
        .filter(|t| !texts.contains(t))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "{whose}: texts missing: {missing:?}");
    assert_eq!(texts.len(), expected.len(), "{whose}: texts");
}

/// Asserts that `ts` is RFC 3339 in UTC with milliseconds,
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, with plausible values.
fn assert_rfc3339_millis(ts: &str) {
    let shape: String = ts
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999Z", "shape of ts {ts:?}");
    let number = |from: usize, to: usize| ts[from..to].parse::<u32>().expect("digits");
    assert!(number(0, 4) >= 2025, "year of {ts:?}");
    assert!((1..=12).contains(&number(5, 7)), "month of {ts:?}");
    assert!((1..=31).contains(&number(8, 10)), "day of {ts:?}");
    assert!(number(11, 13) < 24, "hour of {ts:?}");
    assert!(number(14, 16) < 60, "minute of {ts:?}");
    assert!(number(17, 19) < 61, "second of {ts:?}");
}

/// Asserts every field of a stored room line by `author` saying `text`.
fn assert_room_message(message: &Value, author: &str, text: &str) {
    for key in [
        "id",
        "conversation",
        "room",
        "peer",
        "author",
        "name",
        "ts",
        "text",
        "status",
        "outgoing",
        "session",
        "line",
    ] {
        assert!(message.get(key).is_some(), "no {key} in {message}");
    }
    assert_eq!(message["conversation"], "room:lobby", "{message}");
    assert_eq!(message["room"], "lobby", "{message}");
    assert!(message["peer"].is_null(), "peer in a room: {message}");
    assert_eq!(message["author"], author, "{message}");
    assert!(message["name"].is_null(), "a name nobody gave: {message}");
    assert_rfc3339_millis(string(message, "ts"));
    assert_eq!(message["text"], text, "{message}");
    assert!(message["outgoing"].is_boolean(), "{message}");
    let session = string(message, "session");
    assert!(
        session.len() == 16 && session.chars().all(|c| c.is_ascii_hexdigit()),
        "session of {message}"
    );
    let line = message["line"]
        .as_u64()
        .unwrap_or_else(|| panic!("line is not a number in {message}"));
    assert_eq!(
        string(message, "id"),
        format!("room:lobby/{author}/{session}/{line}"),
        "id of {message}"
    );
}

// ---------------------------------------------------------------------------
// A small disk

/// A tmpfs mounted on a temp dir, unmounted on drop (even in a panic).
/// Declare it before the peers that use it, so they are gone first.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the file system holding `dir` until only about `room` bytes are
/// free; returns the filler file.
fn fill_leaving(dir: &Path, room: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = File::create(&path).expect("create the filler");
    let block = vec![0u8; 16 * 1024];
    // Bounded by the size of the file system.
    while file.write_all(&block).is_ok() {}
    let len = file.metadata().expect("filler size").len();
    file.set_len(len.saturating_sub(room))
        .expect("shrink the filler");
    path
}

// ---------------------------------------------------------------------------
// The specification

#[test]
fn history_json_has_every_field() {
    let (a, b) = (data_dir(), data_dir());
    let (mut sender, mut receiver, _, sender_id) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    assert_eq!(Peer::peer_id(a.path()), sender_id);
    sender.send("same");
    sender.send("same");
    receiver.expect_line("Peer: same");
    receiver.expect_line("Peer: same");
    // The receiver stores, then acknowledges: our lines become delivered.
    wait_for_history(a.path(), Duration::from_secs(5), |h| {
        h.len() == 2 && h.iter().all(|m| m["status"] == "delivered")
    });
    sender.close_input();
    assert!(sender.wait_exit().success());

    let held = Peer::history_json(b.path());
    assert_eq!(held.len(), 2, "{held:?}");
    assert_each_once(&ids(&held), "an id");
    for message in &held {
        assert_room_message(message, &sender_id, "same");
        assert_eq!(message["status"], "received", "{message}");
        assert_eq!(message["outgoing"], false, "{message}");
    }
    let sent = Peer::history_json(a.path());
    assert_eq!(sent.len(), 2, "{sent:?}");
    for message in &sent {
        assert_room_message(message, &sender_id, "same");
        assert_eq!(message["status"], "delivered", "{message}");
        assert_eq!(message["outgoing"], true, "{message}");
    }
    assert_same_ids(&ids(&sent), &ids(&held), "sent and received");

    // The connector, left reconnecting, ends when its input does; what it
    // stored stays as it was.
    receiver.close_input();
    assert!(receiver.wait_exit().success());
    assert_eq!(Peer::history_json(b.path()), held);
}

#[test]
fn history_json_escapes_what_a_terminal_would_act_on() {
    // A plain listener keeps what a raw socket sent: DEL, a one-character
    // CSI (U+009B) and a right-to-left override.
    let dir = data_dir();
    let mut listener = Peer::start(&["--plain", "--listen", "0", "--data-dir", utf8(dir.path())]);
    let port = port_of(&listener.expect_prefix("Listening on: 0.0.0.0:"));
    let mut raw = RawPeer::connect(port);
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
    let text = "del\x7f csi\u{9b}31m rlo\u{202e}txt";
    raw.send(format!("{text}\n").as_bytes());
    listener.expect_line("Peer: del^? csi\\u{9b}31m rlo\\u{202e}txt");
    // Parsed, the JSON gives back the very text that was sent.
    wait_for_history(dir.path(), Duration::from_secs(10), |h| {
        h.iter().any(|m| m["text"] == text)
    });

    let output = Command::new(BIN)
        .args(["history", "--json", "--data-dir", utf8(dir.path())])
        .output()
        .expect("run history --json");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).expect("UTF-8 output");
    let raw_chars: Vec<char> = printed
        .chars()
        .filter(|&c| (c.is_control() && c != '\n') || c == '\u{202e}')
        .collect();
    assert!(raw_chars.is_empty(), "raw in {printed:?}: {raw_chars:?}");
    for escape in [r"\u007f", r"\u009b", r"\u202e"] {
        assert!(printed.contains(escape), "no {escape} in {printed:?}");
    }
}

#[test]
fn history_is_shown_on_restart_and_by_command() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    assert!(no_history_block(&connector), "{:?}", connector.seen);
    assert!(no_history_block(&listener), "{:?}", listener.seen);
    connector.send("hello");
    listener.expect_line("Peer: hello");
    listener.send("hi back");
    connector.expect_line("Peer: hi back");
    wait_for_history(b.path(), Duration::from_secs(5), |h| {
        outgoing(h).iter().all(|m| m["status"] == "delivered") && h.len() == 2
    });
    connector.close_input();
    assert!(connector.wait_exit().success());
    listener.expect_line("Peer disconnected");
    // `rust-p2p-chat history` names our lines as the chat does.
    let (status, out, err) = Peer::run(&["history", "--data-dir", utf8(b.path())]);
    assert!(status.success(), "{err:?}");
    assert!(
        out.iter()
            .any(|l| l.ends_with(" #lobby You: hello [delivered]")),
        "{out:?}"
    );

    let mut again = Peer::secure_connect(port, b.path(), &[]);
    let block = read_history_block(&mut again);
    assert!(
        !again.seen.iter().any(|l| l == "Connected to peer!"),
        "the history block came after the connection: {:?}",
        again.seen
    );
    assert_eq!(block.len(), 2, "{block:?}");
    assert_eq!(history_entry(&block[0]), "You: hello (delivered)");
    let (who, text) = history_entry(&block[1])
        .split_once(": ")
        .unwrap_or_else(|| panic!("{block:?}"));
    assert!(who.starts_with("Peer-") && who.len() == 9, "{block:?}");
    assert_eq!(text, "hi back");
    again.expect_line("Connected to peer!");
    again.expect_secure_chat();

    // Back in a chat of two, the peer's lines read `Peer: ...` live, and
    // `/history` names it so too.
    listener.send("welcome back");
    again.expect_line("Peer: welcome back");
    again.send("/history 2");
    let block = read_history_block(&mut again);
    let block: Vec<&str> = block.iter().map(|l| history_entry(l)).collect();
    assert_eq!(block, ["Peer: hi back", "Peer: welcome back"]);
}

#[test]
fn history_names_a_peer_as_the_room_does() {
    let (a, b, c) = (data_dir(), data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    // A third member, so the room names the others `Peer-XXXX`.
    let mut third = Peer::secure_connect(port, c.path(), &[]);
    third.expect_secure_chat();
    connector.expect_suffix(" joined #lobby");
    listener.send("who am I");
    let live = connector.expect_suffix(": who am I");
    let live_name = live.trim_end_matches(": who am I").to_owned();
    assert!(live_name.starts_with("Peer-"), "{live}");
    wait_for_history(b.path(), Duration::from_secs(5), |h| {
        !received(h).is_empty()
    });

    connector.send("/history 1");
    let block = read_history_block(&mut connector);
    assert_eq!(
        history_entry(&block[0]),
        format!("{live_name}: who am I"),
        "the room shows {live:?}"
    );
}

#[test]
fn a_second_instance_on_one_data_dir_refuses() {
    let a = data_dir();
    let (_first, _, _) = Peer::secure_listen(a.path(), &[]);
    let mut second = Peer::start(&["--listen", "0", "--data-dir", utf8(a.path()), "--no-mdns"]);
    let error = second.expect_stderr("already running");
    assert!(error.contains("--data-dir"), "{error}");
    assert_eq!(second.wait_exit().code(), Some(1));
}

#[test]
fn no_history_writes_no_database() {
    let (a, b) = (data_dir(), data_dir());
    let assert_no_database = |dir: &Path| {
        let files: Vec<String> = std::fs::read_dir(dir)
            .expect("read the data dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !files.iter().any(|f| f.starts_with("history")),
            "--no-history wrote {files:?}"
        );
    };
    let (mut listener, port, _) = Peer::secure_listen(a.path(), &["--no-history"]);
    let mut connector = Peer::secure_connect(port, b.path(), &["--no-history"]);
    connector.expect_secure_chat();
    listener.expect_secure_chat();
    connector.send("kept in memory only");
    listener.expect_line("Peer: kept in memory only");
    listener.send("me too");
    connector.expect_line("Peer: me too");
    // Kept for this run: /history shows it.
    connector.send("/history");
    let block = read_history_block(&mut connector);
    assert_eq!(block.len(), 2, "{block:?}");
    assert_no_database(a.path());
    assert_no_database(b.path());
    connector.close_input();
    assert!(connector.wait_exit().success());
    listener.close_input();
    assert!(listener.wait_exit().success());
    assert_no_database(a.path());
    assert_no_database(b.path());
}

/// Lines in the crash test: `CRASH_LINES=10000` makes it a soak
/// (scripts/soak.sh).
fn crash_lines() -> usize {
    std::env::var("CRASH_LINES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn crash_test_kill_9_twice_loses_and_duplicates_nothing() {
    let n = crash_lines();
    let scale = u32::try_from((n / 2000).max(1)).unwrap_or(u32::MAX);
    let lines: Vec<String> = (0..n).map(|i| format!("m {i}")).collect();
    let (a, b) = (data_dir(), data_dir());
    let (mut sender, mut receiver, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    let writer = write_in_chunks(
        sender.take_stdin(),
        lines.clone(),
        100,
        Duration::from_millis(20),
    );
    let shown = |l: &str| l.starts_with("Peer: m ");

    receiver.expect_count(shown, n / 5, TIMEOUT * scale);
    receiver.kill_9();
    let mut receiver = Peer::secure_connect(port, b.path(), &[]);
    receiver.expect_count(shown, n * 3 / 5, TIMEOUT * scale);
    receiver.kill_9();
    let _receiver = Peer::secure_connect(port, b.path(), &[]);

    let held = wait_for_history(b.path(), Duration::from_secs(60) * scale, |h| {
        received(h).len() >= n
    });
    // Everything arrived, so the writer is done; its stdin stays open.
    let _stdin = writer.join().expect("writer");
    let sent = Peer::history_json(a.path());
    let (held_ids, sent_ids) = (ids(received(&held)), ids(outgoing(&sent)));
    assert_each_once(&held_ids, "a received id");
    assert_each_once(&sent_ids, "a sent id");
    assert_eq!(held_ids.len(), n);
    assert_same_ids(
        &sent_ids,
        &held_ids,
        "A's sent lines and B's received lines",
    );
    assert_texts_each_once(&received(&held), &lines, "B");
    assert_texts_each_once(&outgoing(&sent), &lines, "A");
    // And the author learns that all of it arrived.
    wait_for_history(a.path(), Duration::from_secs(15) * scale, |h| {
        outgoing(h).iter().all(|m| m["status"] == "delivered")
    });
}

/// The texts of the `[history ...] WHO: TEXT` lines `peer` showed.
fn history_texts(peer: &Peer) -> impl Iterator<Item = &str> {
    peer.seen
        .iter()
        .filter(|l| l.starts_with("[history "))
        .filter_map(|l| history_entry(l).split_once(": ").map(|(_, text)| text))
}

/// What is shown is what was stored: a receiver killed (SIGKILL) twice in
/// the middle of a stream and started again on its data never shows a
/// line live twice, across all its runs. A line stored but killed before
/// it reached the screen is in a later run's history instead; every line
/// is seen one way or the other, and stored once.
#[test]
fn lines_shown_before_a_crash_are_never_shown_live_again() {
    const LINES: usize = 5000;
    let lines: Vec<String> = (0..LINES).map(|i| format!("n {i:04}")).collect();
    let (a, b) = (data_dir(), data_dir());
    let (mut sender, mut receiver, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    let writer = write_in_chunks(
        sender.take_stdin(),
        lines.clone(),
        100,
        Duration::from_millis(20),
    );
    let live = |l: &str| said_by_a_peer(l).is_some_and(|t| t.starts_with("n "));
    let mut runs = Vec::new();
    for count in [LINES / 5, LINES * 2 / 5] {
        receiver.expect_count(live, count, TIMEOUT);
        receiver.kill_9();
        receiver.read_rest_within(TIMEOUT);
        runs.push(receiver);
        receiver = Peer::secure_connect(port, b.path(), &[]);
    }

    // The last run ends up holding every line; what it holds it shows,
    // unless an earlier run already did.
    let held = wait_for_history(b.path(), TIMEOUT * 2, |h| received(h).len() >= LINES);
    assert_texts_each_once(&received(&held), &lines, "the receiver");
    let _stdin = writer.join().expect("writer");
    let mut shown_live: HashMap<String, usize> = HashMap::new();
    for run in &runs {
        for text in run.seen.iter().filter_map(|l| said_by_a_peer(l)) {
            *shown_live.entry(text.to_owned()).or_default() += 1;
        }
    }
    let mut in_history: HashSet<String> = runs
        .iter()
        .skip(1)
        .flat_map(history_texts)
        .map(str::to_owned)
        .collect();
    // Bounded: the last run shows what it fetched within TIMEOUT.
    let deadline = Instant::now() + TIMEOUT;
    let mut seen_last: HashSet<String> = HashSet::new();
    while lines
        .iter()
        .any(|t| !shown_live.contains_key(t) && !in_history.contains(t) && !seen_last.contains(t))
    {
        let Some(line) = deadline
            .checked_duration_since(Instant::now())
            .and_then(|left| receiver.line_within(left))
        else {
            break;
        };
        if line.starts_with("[history ") {
            if let Some((_, text)) = history_entry(&line).split_once(": ") {
                in_history.insert(text.to_owned());
            }
        } else if let Some(text) = said_by_a_peer(&line) {
            seen_last.insert(text.to_owned());
        }
    }
    for text in receiver.seen.iter().filter_map(|l| said_by_a_peer(l)) {
        *shown_live.entry(text.to_owned()).or_default() += 1;
    }

    let twice: BTreeSet<(&String, &usize)> = shown_live.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} line(s) shown live more than once across the runs: {:?}",
        twice.len(),
        twice.iter().take(10).collect::<Vec<_>>()
    );
    let never: Vec<&String> = lines
        .iter()
        .filter(|t| !shown_live.contains_key(*t) && !in_history.contains(*t))
        .collect();
    assert!(
        never.is_empty(),
        "{} line(s) neither shown live nor in a later run's history: {:?}",
        never.len(),
        never.iter().take(10).collect::<Vec<_>>()
    );
    let only_history = lines
        .iter()
        .filter(|t| !shown_live.contains_key(*t))
        .count();
    eprintln!("crash and show: {only_history} line(s) seen only in a later run's history");
    let held = Peer::history_json(b.path());
    assert_each_once(&ids(received(&held)), "a received id");
}

#[test]
fn partition_heals_and_all_three_converge() {
    partition_and_heal(false);
}

/// The same, with C having heard from A and B before it died (so it has
/// where each one's lines stood in its store).
#[test]
fn partition_heals_for_a_member_that_had_heard_from_both() {
    partition_and_heal(true);
}

/// A listens; B and C join through it, each accepting others too. C is
/// killed; A and B talk; C comes back and catches up, and all three hold
/// the same lines. With `heard_before`, A and B each say one line that C
/// shows before it is killed.
fn partition_and_heal(heard_before: bool) {
    let (a, b, c) = (data_dir(), data_dir(), data_dir());
    let (mut pa, port, _) = Peer::secure_listen(a.path(), &[]);
    let mut pb = member(b.path(), Some(port), &[]);
    pb.expect_secure_chat();
    let mut pc = member(c.path(), Some(port), &[]);
    for peer in [&mut pa, &mut pb, &mut pc] {
        peer.expect_suffix(" joined #lobby");
    }
    let mut before = Vec::new();
    if heard_before {
        before = vec!["before A".to_owned(), "before B".to_owned()];
        pa.send(&before[0]);
        pb.send(&before[1]);
        expect_said(&mut pc, &before, TIMEOUT);
        wait_for_history(c.path(), Duration::from_secs(10), |h| {
            received(h).len() == 2
        });
    }

    pc.kill_9();
    let from_a: Vec<String> = (0..10).map(|i| format!("from A {i}")).collect();
    let from_b: Vec<String> = (0..10).map(|i| format!("from B {i}")).collect();
    for (x, y) in from_a.iter().zip(&from_b) {
        pa.send(x);
        pb.send(y);
    }
    expect_said(&mut pb, &from_a, TIMEOUT);
    expect_said(&mut pa, &from_b, TIMEOUT);

    let mut pc = member(c.path(), Some(port), &[]);
    let missed: Vec<String> = from_a.iter().chain(&from_b).cloned().collect();
    expect_said(&mut pc, &missed, TIMEOUT);
    // Anything shown twice would come before these.
    let markers = ["after A".to_owned(), "after B".to_owned()];
    pa.send(&markers[0]);
    pb.send(&markers[1]);
    expect_said(&mut pc, &markers, TIMEOUT);
    let counts = shown_counts(&pc);
    let twice: Vec<_> = missed
        .iter()
        .filter(|t| counts.get(*t) != Some(&1))
        .collect();
    assert!(
        twice.is_empty(),
        "C did not show these once: {twice:?}; counts {counts:?}"
    );

    // C showed everything, so it stored it; A and B may store the other's
    // markers a moment later: wait for that, bounded.
    let room_ids = |dir: &Path| ids(&Peer::history_json_with(dir, &["--room", "lobby"]));
    let dirs = [a.path(), b.path(), c.path()];
    let deadline = Instant::now() + Duration::from_secs(10);
    let histories = loop {
        let histories: Vec<Vec<String>> = dirs.iter().map(|d| room_ids(d)).collect();
        let sets: Vec<BTreeSet<&String>> = histories.iter().map(|h| h.iter().collect()).collect();
        if sets.windows(2).all(|w| w[0] == w[1]) || Instant::now() >= deadline {
            break histories;
        }
        thread::sleep(Duration::from_millis(500));
    };
    let lines = before.len() + missed.len() + markers.len();
    for (name, held) in ["A", "B", "C"].iter().zip(&histories) {
        assert_each_once(held, &format!("{name}: an id"));
        assert_eq!(held.len(), lines, "{name} holds {} lines", held.len());
    }
    assert_same_ids(&histories[0], &histories[1], "A and B");
    assert_same_ids(&histories[0], &histories[2], "A and C");
    // Whose line it is shows: C meets A first, alone (so A may be the
    // classic `Peer` until B is seen), but B's lines, fetched before B is
    // in C's room, carry B's fingerprint: never two authors as `Peer`.
    let anonymous: Vec<&String> = pc.seen.iter().filter(|l| l.starts_with("Peer: ")).collect();
    let authors: BTreeSet<bool> = anonymous
        .iter()
        .map(|l| l.contains("from A") || l.contains("after A"))
        .collect();
    assert!(
        authors.len() <= 1,
        "C showed lines of two authors as plain `Peer`: {anonymous:?}"
    );
}

#[test]
fn reconnect_with_backoff_delivers_queued_lines_in_order() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    listener.kill_9();
    connector.expect_line("Peer disconnected");
    connector.expect_prefix("Reconnecting to ");
    for line in ["q1", "q2", "q3"] {
        connector.send(line);
    }

    let mut listener = listen_again(a.path(), port);
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < 3 {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("only {got:?} arrived"));
        let line = listener.expect_any_within(left);
        if line.starts_with("Peer: q") {
            got.push(line);
        }
    }
    assert_eq!(got, ["Peer: q1", "Peer: q2", "Peer: q3"]);
    connector.expect_line("Connected to peer!");
}

#[test]
fn a_line_typed_while_the_peer_is_away_is_reported_then_delivered() {
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, port, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    listener.kill_9();
    connector.expect_line("Peer disconnected");
    let typed = Instant::now();
    connector.send("while you were out");
    connector
        .output_containing_within("not yet delivered", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no 'not yet delivered' within 10 s: {:?}", connector.seen));
    let after = typed.elapsed();
    assert!(
        after >= Duration::from_millis(2500),
        "reported after only {after:?}"
    );

    let mut listener = listen_again(a.path(), port);
    listener.expect_line("Peer: while you were out");
    connector.expect_line("All your messages in #lobby are delivered");
}

/// The connector stops (SIGSTOP) while the listener sends a burst, so
/// the listener's queues fill and it drops the connection; lines it had
/// already sent are lost on the way, and the rest wait for a member. When
/// the connector goes on (SIGCONT), it reconnects and must end up showing
/// every line exactly once: what waited is sent, and what was lost is
/// fetched, since the member it returns to carries on where it left off.
#[test]
fn a_connection_dropped_mid_burst_loses_no_line_on_reconnect() {
    const LINES: usize = 20_000;
    let (a, b) = (data_dir(), data_dir());
    let (mut listener, mut connector, _, _) =
        secure_pair(a.path(), b.path(), Introductions::Reached);
    let texts: Vec<String> = (0..LINES)
        .map(|i| format!("{i:06} {}", "x".repeat(1000)))
        .collect();
    connector.signal("STOP");
    let writer = write_in_chunks(
        listener.take_stdin(),
        texts.clone(),
        500,
        Duration::from_millis(20),
    );
    listener.expect_line_within("Waiting for peer to connect...", Duration::from_secs(40));
    connector.signal("CONT");
    connector.expect_line_within("Connected to peer!", TIMEOUT);
    // Counted line by line: `shown_counts` over 20,000 long lines after
    // every line would be too slow in a debug build.
    let sent: HashSet<&str> = texts.iter().map(String::as_str).collect();
    let mut shown: HashMap<String, usize> = HashMap::new();
    // Lines that reached the connector before the drop are shown as soon
    // as it goes on, before it reconnects: they count too.
    for line in &connector.seen {
        count_shown(&mut shown, &sent, line);
    }
    let deadline = Instant::now() + TIMEOUT;
    while shown.len() < LINES {
        let line = deadline
            .checked_duration_since(Instant::now())
            .and_then(|left| connector.line_within(left));
        let Some(line) = line else {
            let count = shown.len();
            let missing: Vec<usize> = (0..LINES)
                .filter(|i| !shown.contains_key(&format!("{i:06}")))
                .take(20)
                .collect();
            let last: Vec<String> = connector
                .seen
                .iter()
                .rev()
                .take(3)
                .map(|l| l.chars().take(60).collect())
                .collect();
            let stderr = connector.stderr_so_far().to_vec();
            // The sender's side: what it said last (status lines, lines
            // from the peer), and on stderr.
            let mut sender_out = Vec::new();
            while sender_out.len() < 100_000 {
                match listener.line_within(Duration::from_millis(50)) {
                    Some(line) => sender_out.push(line),
                    None => break,
                }
            }
            let sender_said: Vec<String> = sender_out
                .iter()
                .rev()
                .take(5)
                .map(|l| l.chars().take(80).collect())
                .collect();
            let sender_stderr = listener.stderr_so_far();
            panic!(
                "{count} of {LINES} lines shown within {TIMEOUT:?}; missing {missing:?}; \
                 last shown {last:?}; stderr: {stderr:?}; the sender said last \
                 {sender_said:?}, on stderr {sender_stderr:?}"
            );
        };
        count_shown(&mut shown, &sent, &line);
    }
    let twice: Vec<_> = shown.into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "shown more than once: {twice:?}");
    let _stdin = writer.join().expect("writer thread");
}

/// What a receiver says, once, when its disk is full.
const DISK_FULL: &str = "history: the disk is full";

/// What it says, once, when it can store again.
const STORING_AGAIN: &str = "history: storing again";

/// Sends `count` more lines of 1,000 bytes, numbered on from `sent`, and
/// adds them to it.
fn send_long_lines(sender: &mut Peer, sent: &mut Vec<String>, count: usize) {
    for _ in 0..count {
        let line = format!("{:05} {}", sent.len(), "x".repeat(994));
        sender.send(&line);
        sent.push(line);
    }
}

/// Sends lines of 1,000 bytes numbered from 0 until `receiver` reports a
/// full disk (on stdout or stderr); returns what was sent and the report.
fn send_until_the_disk_is_full(sender: &mut Peer, receiver: &mut Peer) -> (Vec<String>, String) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut sent = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline && sent.len() < 5000,
            "no history error after {} lines of 1,000 bytes; seen last: {:?}",
            sent.len(),
            receiver.seen[receiver.seen.len().saturating_sub(3)..]
                .iter()
                .map(|l| l.get(..40).unwrap_or(l))
                .collect::<Vec<_>>()
        );
        send_long_lines(sender, &mut sent, 10);
        if let Some(report) =
            receiver.output_containing_within("the disk is full", Duration::from_millis(50))
        {
            return (sent, report);
        }
    }
}

/// Asserts that every line the author (data in `author`) holds as
/// delivered is stored by the receiver (data in `receiver`); returns how
/// many lines each holds. Read the author first: the receiver only grows.
fn assert_delivered_only_what_is_held(author: &Path, receiver: &Path) -> (usize, usize) {
    let believed = Peer::history_json(author);
    let held = Peer::history_json(receiver);
    let held_ids = ids(&held);
    assert_each_once(&held_ids, "an id");
    let delivered: Vec<&Value> = outgoing(&believed)
        .into_iter()
        .filter(|m| m["status"] == "delivered")
        .collect();
    let line_numbers = |messages: &[&Value]| -> Vec<u64> {
        messages.iter().filter_map(|m| m["line"].as_u64()).collect()
    };
    let not_held: Vec<&Value> = delivered
        .iter()
        .copied()
        .filter(|m| !held_ids.iter().any(|id| m["id"] == id.as_str()))
        .collect();
    assert!(
        not_held.is_empty(),
        "the author has {} line(s) delivered that the receiver never stored: lines {:?}; \
         delivered: {:?}; stored: {:?}",
        not_held.len(),
        line_numbers(&not_held),
        line_numbers(&delivered),
        line_numbers(&held.iter().collect::<Vec<_>>())
    );
    (delivered.len(), held.len())
}

/// A pair whose receiver keeps its data on a 4 MiB tmpfs, filled but for
/// 100 KiB, sent lines until the receiver's history refused one for want
/// of room.
struct FullDisk {
    disk: Tmpfs,
    /// The sender's data dir.
    a: TempDir,
    sender: Peer,
    receiver: Peer,
    /// What fills the disk; removing it makes room again.
    filler: PathBuf,
    /// The lines sent, and what the receiver said about its history.
    sent: Vec<String>,
    report: String,
}

/// A [`FullDisk`], or `None` (said on stderr) where no tmpfs can be
/// mounted.
fn full_disk() -> Option<FullDisk> {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root (CI runs as root)");
        return None;
    }
    let Some(disk) = Tmpfs::mount("4m") else {
        eprintln!("SKIPPED: could not mount a tmpfs here");
        return None;
    };
    let a = data_dir();
    let (mut sender, mut receiver, _, _) =
        secure_pair(a.path(), disk.path(), Introductions::Reached);
    let filler = fill_leaving(disk.path(), 100 * 1024);
    let (sent, report) = send_until_the_disk_is_full(&mut sender, &mut receiver);
    Some(FullDisk {
        disk,
        a,
        sender,
        receiver,
        filler,
        sent,
        report,
    })
}

#[test]
fn a_full_disk_is_said_once_and_storing_resumes_when_there_is_room() {
    let Some(FullDisk {
        disk,
        a,
        mut sender,
        mut receiver,
        filler,
        sent,
        report,
    }) = full_disk()
    else {
        return;
    };
    let (Some(unstored), Some(" line(s) not stored yet, will retry")) = (
        report
            .strip_prefix(&format!("{DISK_FULL}; "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok()),
        report.find(" line(s)").map(|at| &report[at..]),
    ) else {
        panic!("not a clear error: {report:?}");
    };
    assert!(unstored > 0, "{report:?}");

    // More lines while the disk is full: every write of them fails, and
    // none of them says so again.
    let mut sent = sent;
    send_long_lines(&mut sender, &mut sent, 300);
    expect_said(&mut receiver, &sent[sent.len() - 1..], TIMEOUT);

    // Room again: storing resumes, says so once, and stores what was
    // refused as well as what comes now.
    std::fs::remove_file(filler).expect("remove the filler");
    let after: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    for line in &after {
        sender.send(line);
    }
    receiver
        .output_containing_within(STORING_AGAIN, Duration::from_secs(15))
        .unwrap_or_else(|| {
            panic!(
                "no {STORING_AGAIN:?} within 15 s: {:?}",
                receiver.seen_stderr
            )
        });
    let all: Vec<String> = sent.iter().chain(&after).cloned().collect();
    let held = wait_for_history(disk.path(), TIMEOUT, |h| received(h).len() >= all.len());
    assert_texts_each_once(&received(&held), &all, "the receiver, with room again");
    expect_said(&mut receiver, &after, TIMEOUT);
    receiver.read_available();
    assert_eq!(
        receiver.count_output_containing(DISK_FULL),
        1,
        "the full disk said other than once: {:?}",
        receiver.seen_stderr
    );
    assert_eq!(
        receiver.count_output_containing(STORING_AGAIN),
        1,
        "{:?}",
        receiver.seen_stderr
    );

    receiver.signal("TERM");
    let _ = receiver.wait_exit();
    let held = Peer::history_json(disk.path());
    assert_each_once(&ids(&held), "an id");
    assert_texts_each_once(&received(&held), &all, "the receiver, after it ended");
    let (delivered, _) = assert_delivered_only_what_is_held(a.path(), disk.path());
    eprintln!(
        "full disk: B reported {report:?}; sent {}, A counts {delivered} delivered",
        all.len()
    );
    drop(sender);
}

#[test]
fn lines_lost_to_a_full_disk_are_not_acknowledged_once_there_is_room() {
    let Some(FullDisk {
        disk,
        a,
        mut sender,
        mut receiver,
        filler,
        ..
    }) = full_disk()
    else {
        return;
    };

    // Room again: the lines that come now may be stored and acknowledged;
    // the ones lost before must not be acknowledged with them.
    std::fs::remove_file(filler).expect("remove the filler");
    let after: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    for line in &after {
        sender.send(line);
    }
    expect_said(&mut receiver, &after, TIMEOUT);
    // Bounded: acknowledgements of the new lines, if any, within 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let history = Peer::history_json(a.path());
        if outgoing(&history)
            .iter()
            .any(|m| m["text"] == "after 9" && m["status"] == "delivered")
        {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let (delivered, held) = assert_delivered_only_what_is_held(a.path(), disk.path());
    eprintln!("room again: A counts {delivered} delivered, B holds {held}");
}

/// The plain mode stores what it receives too, and says the same about a
/// full disk: once when it starts refusing lines, once when it stores
/// again, and then the lines it refused are stored with the next ones.
#[test]
fn a_full_disk_in_plain_mode_is_said_once_and_storing_resumes() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let Some(disk) = Tmpfs::mount("4m") else {
        eprintln!("SKIPPED: could not mount a tmpfs here");
        return;
    };
    let (mut receiver, port) = Peer::listen(&["--data-dir", utf8(disk.path())]);
    let mut sender = Peer::connect(port);
    receiver.expect_prefix("Peer connected from: ");
    let filler = fill_leaving(disk.path(), 100 * 1024);
    let (mut sent, report) = send_until_the_disk_is_full(&mut sender, &mut receiver);
    assert!(
        report.starts_with(DISK_FULL) && report.ends_with(" line(s) not stored yet, will retry"),
        "not a clear error: {report:?}"
    );
    send_long_lines(&mut sender, &mut sent, 100);
    expect_said(&mut receiver, &sent[sent.len() - 1..], TIMEOUT);

    std::fs::remove_file(filler).expect("remove the filler");
    let after: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    for line in &after {
        sender.send(line);
    }
    receiver
        .output_containing_within(STORING_AGAIN, TIMEOUT)
        .unwrap_or_else(|| panic!("no {STORING_AGAIN:?}: {:?}", receiver.seen_stderr));
    let all: Vec<String> = sent.iter().chain(&after).cloned().collect();
    let held = wait_for_history(disk.path(), TIMEOUT, |h| received(h).len() >= all.len());
    assert_texts_each_once(&received(&held), &all, "the plain receiver");
    receiver.read_available();
    for notice in [DISK_FULL, STORING_AGAIN] {
        assert_eq!(
            receiver.count_output_containing(notice),
            1,
            "{notice:?} said other than once: {:?}",
            receiver.seen_stderr
        );
    }
}

/// A member that comes back (same data directory, so same session) is
/// heard at once: its first hellos and acknowledgements are numbered above
/// those of its last run, which the others' gossip layer still remembers
/// and would drop as seen. Lines typed while it was away read delivered
/// as soon as it has them, not at its next periodic hello.
#[test]
fn a_member_back_after_a_restart_acknowledges_at_once() {
    let (a, b) = (data_dir(), data_dir());
    let (mut author, mut member, port, _) = secure_pair(a.path(), b.path(), Introductions::Reached);
    // One at a time: each is acknowledged in a message of its own, so the
    // member's last run numbered several of them.
    for i in 0..10 {
        author.send(&format!("before {i}"));
        member.expect_line(&format!("Peer: before {i}"));
        thread::sleep(Duration::from_millis(150));
    }
    member.close_input();
    assert!(member.wait_exit().success());
    author.expect_line("Peer disconnected");
    for i in 0..100 {
        author.send(&format!("away {i}"));
    }
    wait_for_history(a.path(), TIMEOUT, |h| outgoing(h).len() == 110);

    let mut member = Peer::secure_connect(port, b.path(), &[]);
    member.expect_line("Peer: away 99");
    let shown = Instant::now();
    // Periodic hellos come every 4 s: an acknowledgement that waited for
    // one would take that long.
    wait_for_history(a.path(), Duration::from_millis(2500), |h| {
        outgoing(h).iter().all(|m| m["status"] == "delivered")
    });
    assert!(shown.elapsed() < Duration::from_millis(2500));
    member.close_input();
    author.close_input();
}

#[test]
fn a_plain_history_that_cannot_be_opened_is_said_and_the_chat_goes_on() {
    // The data directory is a file: the history cannot be made there.
    let dir = data_dir();
    let not_a_dir = dir.path().join("a-file");
    std::fs::write(&not_a_dir, "not a directory").expect("write the file");
    // Listening does not touch the history: nothing is said yet.
    let (mut receiver, port) = Peer::listen(&["--data-dir", utf8(&not_a_dir)]);
    let mut sender = Peer::connect(port);
    receiver.expect_prefix("Peer connected from: ");
    // Notices go to stderr when the output is a pipe.
    let said = receiver.expect_stderr_within("History not kept: ", TIMEOUT);
    assert!(
        said.ends_with("this chat is shown but not stored"),
        "{said}"
    );
    sender.send("still chatting");
    receiver.expect_line("Peer: still chatting");
    receiver.send("both ways");
    sender.expect_line("Peer: both ways");
}
