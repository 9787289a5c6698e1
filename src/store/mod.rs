//! What we remember between runs, in the data directory.
//!
//! For now that is [`KnownPeers`]: the peers we have met and the ones the
//! user has verified, so a changed key under a familiar address or nick is
//! noticed. It is one small JSON file, replaced atomically on each change;
//! history and the outbox will bring SQLite, and the known peers will move
//! there with them. Nothing here touches the network: the store is told
//! what happened and answers what it remembers.

mod known_peers;

pub use known_peers::{
    Check, KnownPeers, KNOWN_PEERS_FILE, MAX_FILE_LEN, MAX_LABELS, MAX_LABEL_LEN, MAX_PEERS,
};

use std::io;
use std::path::PathBuf;

use crate::chat::describe_io;

/// What went wrong reading or writing the store. Every message names the
/// file, the cause and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the store exists but could not be read.
    #[error(
        "could not read {}: {}; check that it is a readable file owned by you",
        .path.display(), describe_io(.source)
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file of the store is not what this program writes. It is left as
    /// it is; nothing is written over it.
    #[error(
        "{} is not a valid known peers file ({reason}); it was left untouched: \
         fix it, or move it away to start again with no known peers",
        .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The data directory could not be created.
    #[error(
        "could not create the data directory {}: {}; \
         check the path and that you can write to its parent",
        .path.display(), describe_io(.source)
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file of the store could not be written. What was recorded stays in
    /// memory for this run.
    #[error(
        "could not write {}: {}; check that the data directory is writable and not full",
        .path.display(), describe_io(.source)
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A label is too long to record.
    #[error("a peer label is {len} bytes, over the {limit}-byte limit")]
    LabelTooLong {
        /// The label's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
}
