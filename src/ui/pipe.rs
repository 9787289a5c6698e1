//! The pipe front end: stdin lines in, status and message lines out.
//!
//! Each direction runs on its own thread doing plain blocking I/O, so a
//! consumer that stops reading our stdout never stalls what we send, and a
//! producer that floods stdin never stalls what we show. Output is written
//! in batches: everything already queued goes out in one `write`, and the
//! batch is flushed as soon as the queue runs dry, which keeps interactive
//! latency low and bulk throughput high. Notices go to stderr, so stdout
//! carries only status lines and one `Peer: ` line per message.

use std::io::{self, Read, Write};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Style, READ_CHUNK};
use crate::app::Shutdown;
use crate::chat::command;
use crate::chat::line::{self, Frame, LineSplitter, Lines};
use crate::chat::{Command, Event, Notice};

/// A batch of output is written once it reaches this size, even if more
/// events are queued.
const WRITE_BATCH: usize = 64 * 1024;

/// After writing a batch the output thread polls for the next event this
/// long before it sleeps. Waking a sleeping thread costs tens of
/// microseconds on a virtual machine (the idle CPU must be woken first);
/// a reply that follows within the window is shown without that cost. The
/// window is short, so an idle chat uses no CPU.
const SPIN_WINDOW: Duration = Duration::from_micros(100);

/// Reads lines from stdin on a thread and sends them as commands. The
/// thread ends at EOF (dropping `commands`, which tells the app that input
/// ended) or when the app is gone. Notices about our own input go to
/// `events` while the app still runs.
///
/// The thread can be joined only once it has ended: it waits for input in
/// a blocking read of stdin, and a thread blocked in `read(2)` cannot be
/// woken or cancelled (closing fd 0 under it would race with the next
/// file opened; a signal would reach the whole process). So when the app
/// is gone (its end of `commands` dropped) the thread ends at its next
/// read, whether or not that read completed a line; until then it holds
/// nothing but stdin and input nobody would take, and a caller that cannot
/// wait for a user to type leaves it to end with the process.
pub fn spawn_input(
    input: Input,
    commands: mpsc::Sender<Command>,
    events: mpsc::WeakSender<Event>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_input(io::stdin().lock(), input, &commands, &events))
}

/// How the input is read.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    /// The longest line read whole (`--max-line`): a command longer than
    /// this is refused, a text longer than this is read a piece at a time.
    pub max_line: usize,
    /// The longest text sent as one line (`--max-line`, and in the secure
    /// mode a room line at most): a longer one goes in pieces of this many
    /// bytes at most.
    pub piece: usize,
    /// Whether the app takes a line that starts with `/` for a command
    /// (the secure mode; the plain one sends every line as it is). A
    /// command is never cut in pieces, and a piece of text that starts
    /// with `/` goes as `//…`, which the app takes for text.
    pub commands: bool,
}

/// What becomes of the line being read in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Long {
    /// No line is being read in pieces.
    No,
    /// Text: it goes out in pieces.
    Text,
    /// A command over the limit: dropped, as it is read.
    Command,
}

fn read_input(
    input: impl Read,
    how: Input,
    commands: &mpsc::Sender<Command>,
    events: &mpsc::WeakSender<Event>,
) {
    // The lines of one read go to the app as one command (or a few, past
    // READ_CHUNK), sent before any notice that follows them.
    let batch = std::cell::RefCell::new(Lines::default());
    let mut long = Long::No;
    let is_command = |text: &str| how.commands && command::parse(text).is_command();
    // Sends text of a line over the limit in pieces of `how.piece` at most
    // (decoding may have made a piece read longer); `start` says whether
    // it begins the line, which alone may be taken for a command, and is
    // when the user is told (once per line).
    let send_text = |batch: &mut Lines, text: String, start: bool| {
        if !send_lines(commands, batch) {
            return false;
        }
        if start {
            let notice = Notice::OutgoingInPieces { limit: how.piece };
            if !super::notice_from_input(events, notice) {
                return false;
            }
        }
        line::pieces(&text, how.piece).enumerate().all(|(i, part)| {
            let part = match part.starts_with('/') {
                true if how.commands && (i > 0 || !start) => format!("/{part}"),
                _ => part.to_owned(),
            };
            commands.blocking_send(Command::Send(part)).is_ok()
        })
    };
    let each = |frame: Frame| {
        let mut batch = batch.borrow_mut();
        match frame {
            Frame::Piece { text, first } => {
                if first {
                    long = if is_command(&text) {
                        Long::Command
                    } else {
                        Long::Text
                    };
                    if long == Long::Command {
                        let notice = Notice::OutgoingTooLong {
                            limit: how.max_line,
                        };
                        return send_lines(commands, &mut batch)
                            && super::notice_from_input(events, notice);
                    }
                }
                long == Long::Command || send_text(&mut batch, text, first)
            }
            // The last part of a line read in pieces.
            Frame::Line(text) if long != Long::No => {
                let was = std::mem::replace(&mut long, Long::No);
                was == Long::Command || send_text(&mut batch, text, false)
            }
            Frame::Line(text) if text.len() > how.piece && !is_command(&text) => {
                send_text(&mut batch, text, true)
            }
            // A long line goes as it is, not copied into a batch.
            Frame::Line(text) if text.len() >= READ_CHUNK => {
                send_lines(commands, &mut batch)
                    && commands.blocking_send(Command::Send(text)).is_ok()
            }
            Frame::Line(text) => {
                batch.push(&text);
                batch.bytes() < READ_CHUNK || send_lines(commands, &mut batch)
            }
            // Not from a splitter in pieces.
            Frame::TooLong { .. } => true,
        }
    };
    let after_read = || send_lines(commands, &mut batch.borrow_mut());
    super::each_frame(
        input,
        LineSplitter::in_pieces(how.max_line),
        || commands.is_closed(),
        each,
        after_read,
    );
}

/// Sends the lines gathered, if any; false once the app is gone.
fn send_lines(commands: &mpsc::Sender<Command>, batch: &mut Lines) -> bool {
    batch.is_empty()
        || commands
            .blocking_send(Command::SendLines(std::mem::take(batch)))
            .is_ok()
}

/// Shows events on a thread until the app drops its sender. If stdout
/// breaks (the reader went away), the app is told to shut down and the
/// remaining events are discarded.
pub fn spawn_output(
    events: mpsc::Receiver<Event>,
    style: Style,
    shutdown: Shutdown,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name("stdout".into()).spawn(move || {
        let result = write_output(events, style, &mut io::stdout().lock(), &mut io::stderr());
        if result.is_err() {
            shutdown.trigger();
        }
    })
}

fn write_output(
    mut events: mpsc::Receiver<Event>,
    style: Style,
    out: &mut impl Write,
    notices: &mut impl Write,
) -> io::Result<()> {
    let mut batch = String::with_capacity(WRITE_BATCH);
    let mut notice_batch = String::new();
    let outcome = loop {
        let Some(first) = next_event(&mut events) else {
            break Ok(());
        };
        let mut next = Some(first);
        while let Some(event) = next {
            match event {
                Event::Notice(_) => style.render(&event, &mut notice_batch),
                _ => style.render(&event, &mut batch),
            }
            next = if batch.len() < WRITE_BATCH {
                events.try_recv().ok()
            } else {
                None
            };
        }
        let written = out
            .write_all(batch.as_bytes())
            .and_then(|()| out.flush())
            .and_then(|()| notices.write_all(notice_batch.as_bytes()));
        if let Err(e) = written {
            break Err(e);
        }
        batch.clear();
        notice_batch.clear();
    };
    if outcome.is_err() {
        // Keep the app from blocking on a full queue while it shuts down.
        while events.blocking_recv().is_some() {}
    }
    outcome
}

/// The next event: polled for [`SPIN_WINDOW`], then waited for.
fn next_event(events: &mut mpsc::Receiver<Event>) -> Option<Event> {
    let start = Instant::now();
    while start.elapsed() < SPIN_WINDOW {
        match events.try_recv() {
            Ok(event) => return Some(event),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => thread::yield_now(),
        }
    }
    events.blocking_recv()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input read for the secure mode, with lines of `max_line` at most.
    fn secure(max_line: usize) -> Input {
        Input {
            max_line,
            piece: max_line,
            commands: true,
        }
    }

    /// Reads `input` as `how` says; the texts it sent, in order, and the
    /// notices it gave.
    fn texts_and_notices(input: &[u8], how: Input) -> (Vec<String>, Vec<Event>) {
        let (tx, mut rx) = mpsc::channel(16);
        let (etx, mut erx) = mpsc::channel(16);
        read_input(input, how, &tx, &etx.downgrade());
        drop(tx);
        let mut sent = Vec::new();
        while let Some(command) = rx.blocking_recv() {
            sent.extend(command.texts().map(str::to_owned));
        }
        let notices = std::iter::from_fn(|| erx.try_recv().ok()).collect();
        (sent, notices)
    }

    #[test]
    fn input_lines_become_commands_and_long_lines_go_in_pieces() {
        let input = b"hello\r\n0123456789abcdef/x\nlast";
        let (sent, notices) = texts_and_notices(input, secure(8));
        // The long line in pieces of 8 bytes at most; its piece that
        // starts with `/` is escaped, so that it is text.
        assert_eq!(sent, ["hello", "01234567", "89abcdef", "//x", "last"]);
        // One notice for the long line.
        assert_eq!(
            notices,
            [Event::Notice(Notice::OutgoingInPieces { limit: 8 })]
        );
    }

    #[test]
    fn a_command_up_to_the_line_limit_goes_whole_and_text_in_room_sized_pieces() {
        let how = Input {
            max_line: 64,
            piece: 8,
            commands: true,
        };
        let input = b"/msg bob 0123456789abcdef\n0123456789abcdef/YZ\n";
        let (sent, notices) = texts_and_notices(input, how);
        assert_eq!(
            sent,
            ["/msg bob 0123456789abcdef", "01234567", "89abcdef", "//YZ"]
        );
        // One notice for the long line.
        assert_eq!(
            notices,
            [Event::Notice(Notice::OutgoingInPieces { limit: 8 })]
        );
    }

    #[test]
    fn pieces_that_decoding_made_longer_are_cut_again_with_one_notice() {
        let how = Input {
            max_line: 4,
            piece: 4,
            commands: false,
        };
        let (sent, notices) = texts_and_notices(b"\xff\xff\xff\xff\xff\xff\n", how);
        assert_eq!(sent.concat(), "\u{fffd}".repeat(6));
        assert!(sent.iter().all(|part| part.len() <= 4), "{sent:?}");
        assert_eq!(notices.len(), 1, "one notice for the long line");
    }

    #[test]
    fn in_the_plain_mode_pieces_go_as_they_are() {
        let how = Input {
            max_line: 4,
            piece: 4,
            commands: false,
        };
        let (sent, _) = texts_and_notices(b"ab/cdef\n", how);
        assert_eq!(sent, ["ab/c", "def"]);
    }

    #[test]
    fn a_command_over_the_limit_is_not_run_nor_sent() {
        let input = format!("/msg bob {}\nafter\n", "x".repeat(40));
        let (sent, notices) = texts_and_notices(input.as_bytes(), secure(16));
        assert_eq!(sent, ["after"]);
        assert_eq!(
            notices,
            [Event::Notice(Notice::OutgoingTooLong { limit: 16 })]
        );
    }

    /// A paste of one line far longer than the limit is sent whole, a
    /// piece at a time, each taken before the next is read (the splitter
    /// holds at most a piece and a read: see `chat::line`).
    #[test]
    fn a_huge_line_goes_whole_a_piece_at_a_time() {
        const LIMIT: usize = 64 * 1024;
        const SIZE: usize = 32 * 1024 * 1024;
        let (tx, mut rx) = mpsc::channel(1);
        let (etx, _erx) = mpsc::channel(16);
        let input = Read::chain(io::repeat(b'y').take(SIZE as u64), &b"\n"[..]);
        let reader = thread::spawn(move || read_input(input, secure(LIMIT), &tx, &etx.downgrade()));
        let mut got = 0;
        while let Some(command) = rx.blocking_recv() {
            for text in command.texts() {
                assert!(text.len() <= LIMIT);
                assert!(text.bytes().all(|b| b == b'y'));
                got += text.len();
            }
        }
        reader.join().expect("reader");
        assert_eq!(got, SIZE);
    }

    #[test]
    fn the_lines_of_one_read_go_as_one_command_of_bounded_size() {
        let (tx, mut rx) = mpsc::channel(1024);
        let (etx, _erx) = mpsc::channel(16);
        let input = "0123456789\n".repeat(3 * READ_CHUNK / 10);
        read_input(
            io::Cursor::new(input.into_bytes()),
            secure(1024),
            &tx,
            &etx.downgrade(),
        );
        drop(tx);
        let mut commands = 0;
        let mut lines = 0;
        while let Some(Command::SendLines(batch)) = rx.blocking_recv() {
            commands += 1;
            lines += batch.len();
            assert!(batch.bytes() < READ_CHUNK + 1024, "{}", batch.bytes());
            assert!(batch.iter().all(|line| line == "0123456789"));
        }
        assert_eq!(lines, 3 * READ_CHUNK / 10);
        // A read of READ_CHUNK bytes holds lines worth more than a
        // command (their ends count too); a few commands per read, not one
        // per line.
        assert!((3..=12).contains(&commands), "{commands} commands");
    }

    #[test]
    fn input_stops_being_read_once_the_app_is_gone() {
        /// Input that never ends and never completes a line; the splitter
        /// hands it on in pieces, so memory stays bounded.
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b'x');
                Ok(buf.len())
            }
        }
        let (tx, mut rx) = mpsc::channel::<Command>(1);
        let (etx, mut erx) = mpsc::channel(1);
        let (done, ended) = std::sync::mpsc::sync_channel(1);
        let reader = thread::spawn(move || {
            read_input(Endless, secure(1024), &tx, &etx.downgrade());
            let _ = done.send(());
        });
        // Reading has begun: the endless line goes in pieces.
        assert_eq!(
            erx.blocking_recv(),
            Some(Event::Notice(Notice::OutgoingInPieces { limit: 1024 }))
        );
        assert!(rx.blocking_recv().is_some(), "a first piece");
        drop(rx);
        assert_eq!(
            ended.recv_timeout(Duration::from_secs(10)),
            Ok(()),
            "the reader went on reading for nobody"
        );
        reader.join().expect("the reader ends cleanly");
    }

    #[test]
    fn output_goes_to_stdout_and_notices_to_stderr() {
        let (tx, rx) = mpsc::channel(16);
        tx.blocking_send(Event::Message {
            text: "hi\x1b".into(),
        })
        .unwrap();
        tx.blocking_send(Event::Notice(Notice::IncomingTooLong { limit: 4 }))
            .unwrap();
        tx.blocking_send(Event::PeerDisconnected).unwrap();
        drop(tx);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        write_output(rx, Style::plain(), &mut out, &mut err).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Peer: hi^[\nPeer disconnected\n"
        );
        assert!(String::from_utf8(err).unwrap().contains("4-byte"));
    }

    #[test]
    fn broken_output_drains_the_queue() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = mpsc::channel(4);
        let producer = thread::spawn(move || {
            for i in 0..100 {
                if tx
                    .blocking_send(Event::Message {
                        text: i.to_string(),
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        assert!(write_output(rx, Style::plain(), &mut Broken, &mut Vec::new()).is_err());
        producer.join().unwrap();
    }

    #[test]
    fn a_long_line_goes_as_it_is_after_the_lines_before_it() {
        let (tx, mut rx) = mpsc::channel(16);
        let (etx, _erx) = mpsc::channel(16);
        let long = "y".repeat(READ_CHUNK * 2);
        let input = format!("a\n{long}\nb\n");
        read_input(
            io::Cursor::new(input.into_bytes()),
            secure(READ_CHUNK * 4),
            &tx,
            &etx.downgrade(),
        );
        drop(tx);
        let mut got = Vec::new();
        while let Some(command) = rx.blocking_recv() {
            got.push(match command {
                Command::Send(text) => vec![format!("send {}", text.len())],
                Command::SendLines(lines) => lines.iter().map(str::to_owned).collect(),
                Command::History { .. } | Command::Say { .. } => Vec::new(),
            });
        }
        assert_eq!(
            got,
            [
                vec!["a".to_owned()],
                vec![format!("send {}", READ_CHUNK * 2)],
                vec!["b".to_owned()]
            ]
        );
    }
}
