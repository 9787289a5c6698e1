//! Front ends: they read what the user types, turn it into
//! [`Command`](crate::chat::Command)s, and show [`Event`]s. They hold no
//! sockets and know no engine, so any of them can drive any chat.
//!
//! - [`pipe`]: stdin and stdout are not both terminals. Plain lines only,
//!   output batched into few writes, so it is fast and scriptable.
//! - [`terminal`]: an interactive line editor; incoming messages are printed
//!   above the line being typed, never through it.

pub mod json;
pub mod pipe;
pub mod qr;
pub mod terminal;
pub mod web;

use std::io::{self, Read};

use crate::chat::line::{Frame, LineSplitter};
use tokio::sync::mpsc;

use crate::chat::{Event, Notice};

/// Bytes asked of stdin in one read.
const READ_CHUNK: usize = 64 * 1024;

/// Tells the user of a notice about their own input, from an input
/// thread; false once the app is gone.
fn notice_from_input(events: &mpsc::WeakSender<Event>, notice: Notice) -> bool {
    events
        .upgrade()
        .is_some_and(|events| events.blocking_send(Event::Notice(notice)).is_ok())
}

/// Reads `input` a chunk at a time, handing each frame `lines` makes of
/// it to `each` and calling `after_read` once the lines of a
/// read are handed on; ends at end of input, a read error, when `stopped`
/// says so, or when either callback returns false. What the pipe and JSON
/// front ends share.
fn each_frame(
    mut input: impl Read,
    mut lines: LineSplitter,
    stopped: impl Fn() -> bool,
    mut each: impl FnMut(Frame) -> bool,
    mut after_read: impl FnMut() -> bool,
) {
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        if stopped() {
            return;
        }
        let end = match input.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                lines.push(&chunk[..n]);
                false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A broken stdin is an end of input like any other.
            Err(_) => true,
        };
        loop {
            let frame = if end {
                lines.finish()
            } else {
                lines.next_frame()
            };
            match frame {
                None => break,
                Some(frame) => {
                    if !each(frame) {
                        return;
                    }
                }
            }
        }
        if !after_read() || end {
            return;
        }
    }
}

/// How events are dressed for the screen.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

const STATUS_COLOR: &str = "\x1b[36m";
const NOTICE_COLOR: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

impl Style {
    /// Colour only on a terminal, and never when `NO_COLOR` is set to a
    /// non-empty value (<https://no-color.org>).
    pub fn detect(output_is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: output_is_terminal && !no_color,
        }
    }

    /// No colour at all.
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// Appends the event's line, with its newline. Peer text is made inert
    /// by [`Event::render`]; colour codes are our own and only added around
    /// status lines and notices.
    pub fn render(&self, event: &Event, out: &mut String) {
        let color = match event {
            _ if !self.color => None,
            Event::Message { .. }
            | Event::Messages { .. }
            | Event::Lines { .. }
            | Event::Direct { .. } => None,
            Event::Notice(_) => Some(NOTICE_COLOR),
            _ => Some(STATUS_COLOR),
        };
        match color {
            Some(code) => {
                out.push_str(code);
                event.render(out);
                out.push_str(RESET);
            }
            None => event.render(out),
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_style_adds_no_escape() {
        let mut out = String::new();
        Style::plain().render(&Event::Waiting, &mut out);
        assert_eq!(out, "Waiting for peer to connect...\n");
    }

    #[test]
    fn colour_never_touches_peer_text() {
        let style = Style { color: true };
        let mut out = String::new();
        style.render(&Event::Message { text: "x".into() }, &mut out);
        assert_eq!(out, "Peer: x\n");
        out.clear();
        style.render(&Event::Connected, &mut out);
        assert_eq!(out, "\x1b[36mConnected to peer!\x1b[0m\n");
    }
}
