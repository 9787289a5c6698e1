//! Helpers shared by the test binaries. Each binary compiles all of
//! `common` (`mod common;`) and uses part of it:
//!
//! - `process`: [`Peer`], the binary under test as a running process whose
//!   output is awaited with a timeout, and subcommands run to their end;
//! - `chat`: ways into a chat: plain and secure listeners and connectors,
//!   [`secure_pair`], a room [`member`];
//! - `net`: [`RawPeer`] and loopback ports, for talking to the program the
//!   way `nc` does;
//! - `engine`: a peer built with the library, for the hostile ones;
//! - here: the binary, the timeout, temp data directories, the host (root,
//!   commands), and reading what the binary prints.

// No test binary uses every helper, and each one compiles them all.
#![allow(dead_code)]

mod chat;
mod engine;
mod net;
mod process;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

pub use process::Peer;
// Each binary takes some of these and leaves the rest unused.
#[allow(unused_imports)]
pub use {
    chat::{member, secure_pair, Introductions},
    engine::{dialled_engine, engine_runtime},
    net::{closed_port, raw_listener, wait_for_port, RawPeer},
};

/// The longest any single wait in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rust-p2p-chat");

/// A fresh data directory, removed when dropped.
pub fn data_dir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `path` as the `&str` a command line takes.
pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Whether the tests run as root (needed for network namespaces and
/// mounts).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a command, returning whether it succeeded.
pub fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

/// The port in a `Listening on: 0.0.0.0:PORT` line.
pub fn port_of(line: &str) -> u16 {
    line.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the Listening line")
}

/// The peer ID in a `Your identity: ID (fingerprint ...)` or
/// `Peer identity: ...` line.
pub fn peer_id_of(line: &str) -> String {
    line.split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("peer ID in the identity line")
        .to_owned()
}

/// The fingerprint in an identity line.
pub fn fingerprint_of(line: &str) -> String {
    let start = line.find("(fingerprint ").expect("fingerprint in line") + "(fingerprint ".len();
    line[start..start + 19].to_owned()
}
