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

use crate::chat::Event;

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
