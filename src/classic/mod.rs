//! The plain protocol: one UTF-8 line per message over a direct TCP
//! connection, readable by `nc`, `socat` and older programs that speak it.
//!
//! This engine owns the sockets and nothing else. [`Listener`] and
//! [`connect`] produce a [`Session`]; a session splits into an [`Incoming`]
//! half that turns bytes into [`Received`] items through the bounded
//! [`LineSplitter`](crate::chat::line::LineSplitter), and an [`Outgoing`]
//! half that batches lines into few writes. The halves are independent so a
//! caller can read and write at the same time; neither ever holds more than
//! one line's limit of a peer's bytes.

mod error;
mod session;

pub use error::Error;
pub use session::{connect, Incoming, Listener, Outgoing, Received, Session};

use std::time::Duration;

use crate::chat::line::DEFAULT_MAX_LINE;

/// The line sent to a peer that connects while a chat is already running.
pub const BUSY_LINE: &str = "This peer is busy in another chat; try again later.";

/// How long a connection attempt may take before it is given up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the plain protocol.
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest line accepted or sent, in bytes, newline excluded.
    pub max_line: usize,
    /// How long to wait for a connection to be established.
    pub connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}
