//! Errors of the plain protocol, each naming the address and the cause.
//!
//! The I/O error behind one is said in its message, in a few plain words,
//! and kept in a `cause` field rather than given as its `source()`: a
//! printer that follows the chain of sources (as `main` does) would say
//! the cause twice, the second time in the system's words with an error
//! number.

use std::io;
use std::net::SocketAddr;

pub(crate) use crate::chat::describe_io as describe;

/// What went wrong in the plain protocol engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host name could not be resolved.
    #[error("could not resolve host '{host}': {}", describe(.cause))]
    Resolve {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        cause: io::Error,
    },
    /// A connection could not be established.
    #[error("could not connect to {addr}: {}", describe(.cause))]
    Connect {
        /// The address as the user gave it, or the one tried.
        addr: String,
        /// The cause.
        cause: io::Error,
    },
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {}", describe(.cause))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        cause: io::Error,
    },
    /// Accepting a connection failed.
    #[error("could not accept a connection: {}", describe(.cause))]
    Accept {
        /// The cause.
        cause: io::Error,
    },
    /// Reading from or writing to the peer failed.
    #[error("connection with {peer} failed: {}", describe(.cause))]
    Io {
        /// The peer's address.
        peer: SocketAddr,
        /// The cause.
        cause: io::Error,
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
            cause: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(
            err.to_string(),
            "could not connect to 127.0.0.1:9: connection refused"
        );
    }

    /// The message with its chain of causes, as `main` prints it
    /// (`anyhow`'s `{:#}`).
    fn with_causes(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            text = format!("{text}: {e}");
            cause = e.source();
        }
        text
    }

    #[test]
    fn the_cause_is_said_once() {
        let refused = || io::Error::from_raw_os_error(111);
        let errors = [
            Error::Connect {
                addr: "127.0.0.1:9999".into(),
                cause: refused(),
            },
            Error::Bind {
                addr: ([0, 0, 0, 0], 9000).into(),
                cause: io::Error::from_raw_os_error(98),
            },
            Error::Accept { cause: refused() },
            Error::Io {
                peer: ([127, 0, 0, 1], 9).into(),
                cause: refused(),
            },
            Error::Resolve {
                host: "nowhere".into(),
                cause: io::Error::other(
                    "failed to lookup address information: Name or service not known",
                ),
            },
        ];
        let shown: Vec<String> = errors.iter().map(|e| with_causes(e)).collect();
        assert_eq!(
            shown,
            [
                "could not connect to 127.0.0.1:9999: connection refused",
                "could not listen on 0.0.0.0:9000: address already in use",
                "could not accept a connection: connection refused",
                "connection with 127.0.0.1:9 failed: connection refused",
                "could not resolve host 'nowhere': Name or service not known",
            ]
        );
    }

    #[test]
    fn os_error_numbers_are_not_shown() {
        let err = io::Error::from_raw_os_error(2);
        assert!(!describe(&err).contains("os error"));
    }
}
