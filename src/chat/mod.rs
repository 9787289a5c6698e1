//! The core: plain data and pure logic shared by every engine and front end.
//!
//! Nothing here does I/O, spawns tasks or prints; that keeps it testable
//! without sockets and importable from anywhere. Engines and front ends
//! import `chat`; `chat` imports nothing of ours.

use std::io;

pub mod address;
pub mod api;
pub mod command;
pub mod delivery;
pub mod event;
pub mod json;
pub mod line;
pub mod membership;
pub mod room;
pub mod room_key;
pub mod safety;
pub mod sanitize;
pub mod ticket;
pub mod transfer;

pub use address::{DialTarget, PeerAddress};
pub use event::{
    Command, Event, HistoryLine, HistoryPage, KeptLine, MemberLine, NearbyLine, Notice, Received,
};

/// What the standard library puts before a resolver's message.
const RESOLVER_PREAMBLE: &str = "failed to lookup address information: ";

/// A short description of an I/O error (in lower case for the common
/// network ones), without the OS error number that `io::Error`'s own
/// `Display` appends, or the standard library's preamble to a resolver's
/// answer (our messages already say that a name was being resolved).
///
/// ```
/// use rust_p2p_chat::chat::describe_io;
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(describe_io(&refused), "connection refused");
/// let unknown = std::io::Error::other(
///     "failed to lookup address information: Name or service not known",
/// );
/// assert_eq!(describe_io(&unknown), "Name or service not known");
/// ```
pub fn describe_io(error: &io::Error) -> String {
    use io::ErrorKind as K;
    let text = match error.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by peer",
        K::ConnectionAborted => "connection aborted",
        K::AddrInUse => "address already in use",
        K::AddrNotAvailable => "address not available on this machine",
        K::PermissionDenied => "permission denied",
        K::TimedOut => "timed out",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::BrokenPipe => "connection closed by peer",
        _ => {
            let text = error.to_string();
            let text = text.strip_prefix(RESOLVER_PREAMBLE).unwrap_or(&text);
            return match text.find(" (os error") {
                Some(end) => text[..end].to_owned(),
                None => text.to_owned(),
            };
        }
    };
    text.to_owned()
}
