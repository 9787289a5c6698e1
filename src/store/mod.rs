//! What we remember between runs, in the data directory.
//!
//! [`KnownPeers`] is the peers we have met and the ones the user has
//! verified, so a changed key under a familiar address or nick is noticed;
//! it is one small JSON file, replaced atomically on each change.
//! [`RoomKeys`] is the keys of the private rooms we are in, kept the same
//! way and as private as the identity key.
//! [`History`] is every line sent and received, with its delivery state,
//! in a SQLite database, one row per batch of lines: it answers what to
//! show, what to send again and what to serve to a member catching up.
//! [`Store`] runs it on a thread of its own, so the chat never waits for the
//! disk. [`DirLock`] keeps a second program off the same data directory.
//! Nothing here touches the network: the store is told what happened and
//! answers what it remembers.

pub mod downloads;
mod history;
mod json_file;
mod known_peers;
mod lock;
mod relays;
mod room_keys;
mod worker;

pub use history::{
    message_id, parse_rfc3339, rfc3339, Batch, Checkpointer, Filter, History, RoomResume, Run,
    Status, StoredMessage, Stream, Take, Transfer, TransferUpdate, CHECKPOINT_BYTES,
    CHECKPOINT_INTERVAL, CHECKPOINT_TICK, HISTORY_FILE, IN_MEMORY_BYTES, MAX_BATCH_LINES, MAX_LINE,
    MAX_LISTED_TRANSFERS, RESUME_HOLES, SCHEMA_VERSION,
};
pub use known_peers::{
    Check, KnownPeers, KNOWN_PEERS_FILE, MAX_FILE_LEN, MAX_LABELS, MAX_LABEL_LEN, MAX_PEERS,
};
pub use lock::{DirLock, LOCK_FILE, MAX_PROFILES, PROFILES_DIR};
pub use relays::{Relays, MAX_RELAYS, RELAYS_FILE};
pub use room_keys::{RoomKeys, MAX_ROOMS, ROOM_KEYS_FILE};
pub use worker::{PendingWrite, Store, Written, JOB_QUEUE};

use std::io;
use std::path::PathBuf;

use crate::chat::describe_io;

/// What went wrong reading or writing the store. Every message names the
/// file, the cause and what to do about it. A cause is said in the message
/// and kept in a `cause` field, not given as the `source()`, so a printer
/// that follows the chain of sources does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the store exists but could not be read.
    #[error(
        "could not read {}: {}; check that it is a readable file owned by you",
        .path.display(), describe_io(.cause)
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
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
        .path.display(), describe_io(.cause)
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// A file of the store could not be written. What was recorded stays in
    /// memory for this run.
    #[error(
        "could not write {}: {}; check that the data directory is writable and not full",
        .path.display(), describe_io(.cause)
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// A label is too long to record.
    #[error("a peer label is {len} bytes, over the {limit}-byte limit")]
    LabelTooLong {
        /// The label's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Another process is using the data directory.
    #[error(
        "another rust-p2p-chat is already running with the data directory {}; \
         quit it, or give this one its own with --data-dir",
        .path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The lock file of the data directory could not be opened or locked.
    #[error(
        "could not lock {}: {}; check that the data directory is writable \
         and on a file system that supports file locks",
        .path.display(), describe_io(.cause)
    )]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// The history was written by a newer version of this program. It is
    /// left as it is.
    #[error(
        "{} was written by a newer rust-p2p-chat (history format {found}, this one \
         knows up to {known}); it was left untouched: run the newer version, or \
         move the file away to start a new history",
        .path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The format version found in the file.
        found: i64,
        /// The newest format version this program knows.
        known: i64,
    },
    /// The history is in an older format and can only be brought up to date
    /// by opening it for writing.
    #[error(
        "{} is in an older history format ({found}, this one reads {known}); \
         start a chat with this data directory once to bring it up to date",
        .path.display()
    )]
    OlderSchema {
        /// The database file.
        path: PathBuf,
        /// The format version found in the file.
        found: i64,
        /// The format version this program reads.
        known: i64,
    },
    /// The history file is not a database this program wrote, or is damaged.
    /// It is left as it is; nothing is written over it.
    #[error(
        "{} is not a valid history database ({reason}); it was left untouched: \
         move it away to start a new history",
        .path.display()
    )]
    CorruptDatabase {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The disk holding the history is full. Nothing of the change that
    /// failed was stored; what was stored before is intact.
    #[error(
        "could not write {}: the disk is full; nothing of this change was stored, \
         free some space to go on keeping history",
        .path.display()
    )]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// There is no history to read yet.
    #[error(
        "there is no history at {} yet; it is written by a chat run with this data directory",
        .path.display()
    )]
    NoHistory {
        /// The database file that does not exist.
        path: PathBuf,
    },
    /// The thread running the history is gone (a job on it failed, and
    /// said why when it did); nothing more can be stored or read this run.
    #[error("the history store stopped; see the error above")]
    Stopped,
    /// Any other failure of the history database.
    #[error(
        "the history database {} failed: {cause}; check that the file and its \
         directory are readable and writable by you",
        .path.display()
    )]
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause.
        cause: rusqlite::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_said_once() {
        // `main` prints an error's chain of sources after its message; the
        // message already names the cause, in plain words.
        let denied = || io::Error::from_raw_os_error(13);
        let path = PathBuf::from("/x/history.db");
        let errors = [
            Error::Read {
                path: path.clone(),
                cause: denied(),
            },
            Error::CreateDir {
                path: path.clone(),
                cause: denied(),
            },
            Error::Write {
                path: path.clone(),
                cause: denied(),
            },
            Error::Lock {
                path: path.clone(),
                cause: denied(),
            },
        ];
        for error in errors {
            assert!(std::error::Error::source(&error).is_none(), "{error}");
            assert_eq!(error.to_string().matches("permission denied").count(), 1);
        }
        let failed = Error::Database {
            path,
            cause: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some("disk I/O error".into()),
            ),
        };
        assert!(std::error::Error::source(&failed).is_none(), "{failed}");
    }
}
