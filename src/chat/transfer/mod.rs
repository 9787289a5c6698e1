//! File transfer: what is pure about it.
//!
//! A file goes from one member to another in pieces of [`PIECE_LEN`]
//! bytes. The offer carries the file's size and its BLAKE3 hash; once the
//! receiver accepts, the sender names every piece's BLAKE3 chaining value,
//! which the receiver merges and compares with that hash before it asks
//! for a single byte (see [`tree`]). Every piece is then checked as it
//! arrives, so a corrupt or lying piece is caught at once and asked for
//! again, and the whole file is proven when its last piece is.
//!
//! The receiver drives: it asks for a few pieces at a time
//! ([`download::WINDOW`]), which bounds what is in flight and makes a
//! resumed transfer ask only for what it lacks ([`Download`]). Names come
//! from a peer and are made harmless before anything is shown or written
//! ([`name::safe_name`]).

pub mod download;
pub mod event;
pub mod name;
pub mod tree;

pub use download::{Download, Have, WINDOW};
pub use event::{FileEvent, TransferLine, TransferState};
pub use name::safe_name;
pub use tree::{Cv, PIECE_LEN};

/// The largest file accepted unless `--max-file` says otherwise: 4 GiB.
pub const DEFAULT_MAX_FILE: u64 = 4 << 30;

/// A size as people read it: `512 B`, `1.5 KiB`, `3.0 GiB`.
///
/// ```
/// use rust_p2p_chat::chat::transfer::human_size;
///
/// assert_eq!(human_size(0), "0 B");
/// assert_eq!(human_size(1536), "1.5 KiB");
/// assert_eq!(human_size(1 << 30), "1.0 GiB");
/// ```
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
