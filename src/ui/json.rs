//! The JSON front end (`--json`): one command object per line in, one
//! event object per line out (see [`crate::chat::api`] and `docs/api.md`).
//!
//! Built like the pipe front end: each direction on a thread of its own
//! doing plain blocking I/O, output written in batches and flushed when
//! the queue runs dry. Everything, notices and errors included, goes to
//! stdout as events, so a program reads one stream; nothing is coloured
//! and nothing is prompted for.

use std::io::{self, Read, Write};
use std::thread::{self, JoinHandle};

use tokio::sync::mpsc;

use crate::app::Shutdown;
use crate::chat::api::{events_of, ApiCommand};
use crate::chat::line::{Frame, LineSplitter};
use crate::chat::{Command, Event, Notice};

/// A batch of output is written once it reaches this size.
const WRITE_BATCH: usize = 64 * 1024;

/// Room for a command's JSON around a line of text: its escapes may take
/// six bytes for one, and the object's other fields.
fn longest_command(max_line: usize) -> usize {
    max_line.saturating_mul(6).saturating_add(4096)
}

/// Reads commands from stdin on a thread and hands the app the lines they
/// stand for; a command that cannot be carried out is answered with an
/// `error` event. Ends at end of input or when the app is gone (see
/// `pipe::spawn_input` on why it is not joined while it reads).
pub fn spawn_input(
    max_line: usize,
    commands: mpsc::Sender<Command>,
    events: mpsc::WeakSender<Event>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_input(io::stdin().lock(), max_line, &commands, &events))
}

fn refuse(events: &mpsc::WeakSender<Event>, reason: String) -> bool {
    super::notice_from_input(events, Notice::BadCommand(reason))
}

fn read_input(
    input: impl Read,
    max_line: usize,
    commands: &mpsc::Sender<Command>,
    events: &mpsc::WeakSender<Event>,
) {
    let each = |frame: Frame| match frame {
        Frame::Line(text) if text.trim().is_empty() => true,
        Frame::Line(text) => match ApiCommand::parse(&text).and_then(|c| c.commands()) {
            Ok(asked) => asked
                .into_iter()
                .all(|command| commands.blocking_send(command).is_ok()),
            Err(e) => refuse(events, e.to_string()),
        },
        Frame::TooLong { limit } => refuse(events, format!("a command longer than {limit} bytes")),
        // A command is read whole or refused, never in pieces.
        Frame::Piece { .. } => true,
    };
    super::each_frame(
        input,
        LineSplitter::new(longest_command(max_line)),
        || commands.is_closed(),
        each,
        || true,
    );
}

/// Writes events as JSON lines on a thread until the app drops its
/// sender; a broken stdout shuts the app down.
pub fn spawn_output(
    events: mpsc::Receiver<Event>,
    shutdown: Shutdown,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name("stdout".into()).spawn(move || {
        if write_output(events, &mut io::stdout().lock()).is_err() {
            shutdown.trigger();
        }
    })
}

fn write_output(mut events: mpsc::Receiver<Event>, out: &mut impl Write) -> io::Result<()> {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    let outcome = loop {
        let Some(first) = events.blocking_recv() else {
            break Ok(());
        };
        let mut next = Some(first);
        while let Some(event) = next {
            for api in events_of(&event) {
                // Control and invisible characters are escaped: peer text
                // stays data even on a terminal.
                if let Err(e) = crate::chat::json::to_writer(&mut batch, &api) {
                    return Err(io::Error::other(e));
                }
                batch.push(b'\n');
            }
            next = if batch.len() < WRITE_BATCH {
                events.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = out.write_all(&batch).and_then(|()| out.flush()) {
            break Err(e);
        }
        batch.clear();
    };
    if outcome.is_err() {
        while events.blocking_recv().is_some() {}
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_become_lines_and_bad_ones_errors() {
        let (tx, mut rx) = mpsc::channel(16);
        let (etx, mut erx) = mpsc::channel(16);
        let input: &[u8] =
            b"{\"type\":\"send\",\"text\":\"hi\"}\n\nnonsense\n{\"type\":\"nick\",\"name\":\"ann\"}";
        read_input(input, 1024, &tx, &etx.downgrade());
        drop(tx);
        let mut sent = Vec::new();
        while let Some(Command::Send(line)) = rx.blocking_recv() {
            sent.push(line);
        }
        assert_eq!(sent, ["hi", "/nick ann"]);
        assert!(matches!(
            erx.try_recv(),
            Ok(Event::Notice(Notice::BadCommand(_)))
        ));
    }

    #[test]
    fn events_go_out_one_json_object_a_line() {
        let (tx, rx) = mpsc::channel(16);
        tx.blocking_send(Event::Message {
            text: "a\u{1b}b".into(),
        })
        .expect("queued");
        tx.blocking_send(Event::Waiting).expect("queued");
        drop(tx);
        let mut out = Vec::new();
        write_output(rx, &mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"type\":\"line\"") && lines[0].contains("a\\u001bb"));
        assert!(!text.contains('\u{1b}'));
        assert!(lines[1].contains("\"type\":\"notice\""));
    }
}
