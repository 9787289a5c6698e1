//! The core: plain data and pure logic shared by every engine and front end.
//!
//! Nothing here does I/O, spawns tasks or prints; that keeps it testable
//! without sockets and importable from anywhere. Engines and front ends
//! import `chat`; `chat` imports nothing of ours.

pub mod address;
pub mod event;
pub mod line;
pub mod sanitize;

pub use address::PeerAddress;
pub use event::{Command, Event, Notice};
