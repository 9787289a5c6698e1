//! End to end: the real binary driven as a person drives it (a terminal),
//! as a script drives it (pipes), and as `nc` talks to it (a raw socket).

mod common;

use std::process::Command;

use common::{raw_listener, Peer, RawPeer, BIN, TIMEOUT};
use rexpect::session::{spawn_with_options, Options, PtySession};

/// Starts the binary with `args` in a pseudo-terminal of 80x24.
fn in_terminal(args: &str) -> PtySession {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("stty cols 80 rows 24 && exec '{BIN}' {args}"))
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let options = Options::new().timeout_ms(Some(TIMEOUT.as_millis() as u64));
    spawn_with_options(command, options).expect("spawn in a pseudo-terminal")
}

#[test]
fn terminal_prompts_then_chat_like_a_person() {
    let mut term = in_terminal("--plain");
    term.exp_string("P2P Chat Application").unwrap();
    term.exp_string("Enter peer address (or press Enter to start as server): ")
        .unwrap();
    term.send_line("").unwrap();
    term.exp_string("Enter port to listen on (default 8080): ")
        .unwrap();
    // An invalid answer is explained and asked again.
    term.send_line("eighty").unwrap();
    term.exp_string("invalid port 'eighty'").unwrap();
    term.exp_string("Enter port to listen on (default 8080): ")
        .unwrap();
    term.send_line("0").unwrap();
    let (_, port) = term.exp_regex(r"Listening on: 0\.0\.0\.0:\d+").unwrap();
    let port: u16 = port.rsplit(':').next().unwrap().parse().unwrap();
    term.exp_string("Waiting for peer to connect...").unwrap();

    let mut peer = RawPeer::connect(port);
    term.exp_string("Peer connected from: 127.0.0.1:").unwrap();
    term.exp_string("Type messages and press Enter to send (Ctrl+C to exit)")
        .unwrap();

    // A hostile line arrives inert.
    peer.send(b"hello \x1b]0;pwned\x07\x1b[2J\n");
    term.exp_string("Peer: hello ^[]0;pwned^G^[[2J").unwrap();

    // The input prompt is the classic session's `You: `.
    term.exp_string("You: ").unwrap();
    // Typing: Enter in a raw-mode terminal is a carriage return.
    term.send("hi from the terminal\r").unwrap();
    term.flush().unwrap();
    assert_eq!(peer.read_line().as_deref(), Some("hi from the terminal"));

    // History: up arrow recalls the last line, Enter sends it again.
    term.send("\x1b[A\r").unwrap();
    term.flush().unwrap();
    assert_eq!(peer.read_line().as_deref(), Some("hi from the terminal"));

    // A message arriving while a line is half typed does not garble it.
    term.send("half typ").unwrap();
    term.flush().unwrap();
    peer.send(b"interrupting\n");
    term.exp_string("Peer: interrupting").unwrap();
    term.send("ed\r").unwrap();
    term.flush().unwrap();
    assert_eq!(peer.read_line().as_deref(), Some("half typed"));

    // Ctrl+C exits cleanly.
    term.send_control('c').unwrap();
    term.exp_eof().unwrap();
    let status = term.process().wait().unwrap();
    assert!(format!("{status:?}").starts_with("Exited("), "{status:?}");
    assert!(format!("{status:?}").ends_with(", 0)"), "{status:?}");
}

#[test]
fn terminal_connect_prompt_and_ctrl_d() {
    let (listener, port) = raw_listener();
    let mut term = in_terminal("--plain");
    term.exp_string("Enter peer address (or press Enter to start as server): ")
        .unwrap();
    term.send_line(&format!("127.0.0.1:{port}")).unwrap();
    term.exp_string(&format!("Connecting to 127.0.0.1:{port}..."))
        .unwrap();
    term.exp_string("Connected to peer!").unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut peer = RawPeer::from_stream(stream);
    peer.send(b"welcome\n");
    term.exp_string("Peer: welcome").unwrap();
    term.send("last words\r").unwrap();
    term.send_control('d').unwrap();
    assert_eq!(peer.read_line().as_deref(), Some("last words"));
    assert_eq!(peer.read_line(), None, "Ctrl+D closes the chat");
    peer.finish();
    term.exp_eof().unwrap();
}

#[test]
fn prompts_answered_through_a_pipe() {
    let mut listener = Peer::start(&["--plain"]);
    listener.send("");
    listener.send("0");
    listener.expect_line("P2P Chat Application");
    let line = listener.expect_prefix("Listening on: 0.0.0.0:");
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    listener.expect_next("Waiting for peer to connect...");

    let mut connector = Peer::start(&["--plain"]);
    connector.send(&format!("127.0.0.1:{port}"));
    connector.expect_line(&format!("Connecting to 127.0.0.1:{port}..."));
    connector.expect_next("Connected to peer!");
    connector.expect_next("Type messages and press Enter to send (Ctrl+C to exit)");

    listener.expect_prefix("Peer connected from: 127.0.0.1:");
    listener.expect_next("Type messages and press Enter to send (Ctrl+C to exit)");
    connector.send("through a pipe");
    listener.expect_next("Peer: through a pipe");
    listener.send("and back");
    connector.expect_next("Peer: and back");

    // In a pipe, nothing but status and message lines reaches stdout.
    for line in listener.seen.iter().chain(&connector.seen) {
        assert!(!line.contains('\x1b'), "decoration in a pipe: {line:?}");
    }
}

#[test]
fn a_port_in_use_at_the_prompt_is_asked_again() {
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = holder.local_addr().unwrap().port();
    let mut listener = Peer::start(&["--plain"]);
    listener.send_bytes(format!("\n{busy}\n0\n").as_bytes());
    listener.expect_prefix(&format!("port {busy} is in use: "));
    listener.expect_prefix("Enter port to listen on");
    listener.expect_prefix("Listening on: 0.0.0.0:");
    listener.expect_next("Waiting for peer to connect...");
}

#[test]
fn piped_lines_are_delivered_and_the_program_exits() {
    let (listener, port) = raw_listener();
    let script = format!("printf 'a\\nb\\n' | '{BIN}' --plain --connect 127.0.0.1:{port}");
    let child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut peer = RawPeer::from_stream(stream);
    assert_eq!(peer.read_line().as_deref(), Some("a"));
    assert_eq!(peer.read_line().as_deref(), Some("b"));
    assert_eq!(peer.read_line(), None);
    peer.finish();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
}

#[test]
fn talks_to_a_raw_socket_like_nc() {
    let (listener, port) = raw_listener();
    let mut chat = Peer::start(&["--plain", "--connect", &format!("127.0.0.1:{port}")]);
    let (stream, _) = listener.accept().unwrap();
    let mut nc = RawPeer::from_stream(stream);
    chat.expect_line("Connected to peer!");

    // nc sends CRLF lines, in one segment and split over several.
    nc.send(b"first\r\nsec");
    nc.send(b"ond\nthird\n");
    chat.expect_line("Peer: first");
    chat.expect_next("Peer: second");
    chat.expect_next("Peer: third");

    chat.send("reply with unicode: ✓ ü");
    assert_eq!(nc.read_line().as_deref(), Some("reply with unicode: ✓ ü"));

    // nc quits: the connecting side reports it and exits 0.
    nc.finish();
    drop(nc);
    chat.expect_next("Peer disconnected");
    assert!(chat.wait_exit().success());
}

/// A terminal screen of 80x24, the size [`in_terminal`] sets, fed what the
/// program printed.
struct Screen(vt100::Parser);

impl Screen {
    fn new() -> Screen {
        Screen(vt100::Parser::default())
    }

    /// Reads what `term` prints up to and including `needle` onto the
    /// screen.
    fn read_until(&mut self, term: &mut PtySession, needle: &str) {
        let before = term.exp_string(needle).unwrap();
        // The pseudo-terminal reader hands out each byte as a char.
        let bytes: Vec<u8> = before.chars().map(|c| c as u8).collect();
        self.0.process(&bytes);
        self.0.process(needle.as_bytes());
    }

    /// Checks that each of `texts` is on `times` rows of the screen.
    fn assert_rows(&self, texts: &[String], times: usize, after: &str) {
        for text in texts {
            let rows = self
                .0
                .screen()
                .rows(0, 80)
                .filter(|row| row.contains(text.as_str()))
                .count();
            assert_eq!(
                rows,
                times,
                "{text:?} after {after}:\n{}",
                self.0.screen().contents()
            );
        }
    }
}

/// Types `text` (keys and control characters) into the terminal.
fn keys(term: &mut PtySession, text: &str) {
    term.send(text).unwrap();
    term.flush().unwrap();
}

#[test]
fn a_wrapped_input_line_cleared_leaves_nothing_on_screen() {
    let (listener, port) = raw_listener();
    let mut term = in_terminal(&format!("--plain --connect 127.0.0.1:{port}"));
    let (stream, _) = listener.accept().unwrap();
    let mut peer = RawPeer::from_stream(stream);
    let mut screen = Screen::new();
    screen.read_until(
        &mut term,
        "Type messages and press Enter to send (Ctrl+C to exit)",
    );
    // Wider than the 80 columns with the prompt: two rows, each with a
    // text of its own to look for.
    let long = |tag: &str| format!("{tag}-first-row-{}{tag}-second-row", ".".repeat(60));
    let rows = |tag: &str| [format!("{tag}-first-row-"), format!("{tag}-second-row")];

    // Ctrl+U on a wrapped line clears both of its rows.
    let typed = long("typed");
    keys(&mut term, &typed);
    screen.read_until(&mut term, &typed);
    keys(&mut term, "\x15");
    keys(&mut term, "#1");
    screen.read_until(&mut term, "You: #1");
    screen.assert_rows(&rows("typed"), 0, "Ctrl+U");
    keys(&mut term, "\x15");

    // A wrapped line sent shows once, as sent.
    keys(&mut term, "short entry\r");
    assert_eq!(peer.read_line().as_deref(), Some("short entry"));
    let sent = long("sent");
    keys(&mut term, &format!("{sent}\r"));
    assert_eq!(peer.read_line().as_deref(), Some(sent.as_str()));
    keys(&mut term, "#2");
    screen.read_until(&mut term, "You: #2");
    screen.assert_rows(&rows("sent"), 1, "Enter");

    // Up recalls the wrapped line, Up again the shorter one before it:
    // the wrapped one is gone from the input rows.
    keys(&mut term, "\x15");
    keys(&mut term, "\x1b[A");
    keys(&mut term, "\x1b[A");
    screen.read_until(&mut term, "You: short entry");
    screen.assert_rows(&rows("sent"), 1, "Up, Up");
    term.send_control('c').unwrap();
    term.exp_eof().unwrap();
}
