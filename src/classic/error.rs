//! Errors of the plain protocol, each naming the address and the cause.

use std::io;
use std::net::SocketAddr;

pub(crate) use crate::chat::describe_io as describe;

/// What went wrong in the plain protocol engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host name could not be resolved.
    #[error("could not resolve host '{host}': {}", describe(.source))]
    Resolve {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A connection could not be established.
    #[error("could not connect to {addr}: {}", describe(.source))]
    Connect {
        /// The address as the user gave it, or the one tried.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {}", describe(.source))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// Accepting a connection failed.
    #[error("could not accept a connection: {}", describe(.source))]
    Accept {
        /// The cause.
        source: io::Error,
    },
    /// Reading from or writing to the peer failed.
    #[error("connection with {peer} failed: {}", describe(.source))]
    Io {
        /// The peer's address.
        peer: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// A message to send is longer than the line limit.
    #[error("message is {len} bytes, over the {limit}-byte line limit")]
    MessageTooLong {
        /// The message's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A message to send contains a newline, which would split it in two.
    #[error("a message cannot contain a newline")]
    MessageHasNewline,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_address_and_cause() {
        let err = Error::Connect {
            addr: "127.0.0.1:9".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(
            err.to_string(),
            "could not connect to 127.0.0.1:9: connection refused"
        );
    }

    #[test]
    fn os_error_numbers_are_not_shown() {
        let err = io::Error::from_raw_os_error(2);
        assert!(!describe(&err).contains("os error"));
    }
}
