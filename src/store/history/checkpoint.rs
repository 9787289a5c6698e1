//! Moving the write-ahead log into the database off the writer's path, and
//! letting go of the operating system's cache of what is on the disk (see
//! "Checkpoints off the writer's path", "A log started over" and "Cache
//! let go" in the notes of the history module).

use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::{db_error, Error, History, BUSY_TIMEOUT};

/// How often the checkpoint thread asks its [`Checkpointer`] whether a
/// checkpoint is due.
pub const CHECKPOINT_TICK: Duration = Duration::from_millis(250);

/// A checkpoint is due once this many bytes of text were written since the
/// last one...
pub const CHECKPOINT_BYTES: u64 = 4 * 1024 * 1024;

/// ... or this long after the last one. The log is synced at each, so a
/// power cut takes back at most about this much.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// The last bytes of the database file a [`Checkpointer`] leaves in the
/// operating system's cache: the newest lines, the ones read again (shown
/// at the next start, sent to a member catching up).
pub(super) const KEEP_CACHED: u64 = 32 * 1024 * 1024;

/// Checkpoint passes at most, one after the other, to catch up with a
/// writer that goes on writing.
const CATCH_UP_PASSES: usize = 8;

/// The cache is let go of in steps of at least this many bytes.
pub(super) const DROP_STEP: u64 = 8 * 1024 * 1024;
const _: () = assert!(DROP_STEP > 0);

/// The size SQLite cuts the log file back to when it starts it over.
pub(super) const LOG_FILE_LIMIT: i64 = 64 * 1024 * 1024;

/// The log size, in pages, at which the writer checkpoints by itself: only
/// if no [`Checkpointer`] runs, or it cannot keep up (SQLite's default is
/// 1,000 pages, 4 MB).
pub(super) const BACKSTOP_CHECKPOINT_PAGES: u32 = 16_384;

impl History {
    /// A second connection to this history's file that checkpoints its log
    /// (see [`Checkpointer`]); `None` for one in memory or without a log.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the file cannot be opened again.
    pub fn checkpointer(&self) -> Result<Option<Checkpointer>, Error> {
        let mode: String = self
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .map_err(|e| db_error(&self.path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|e| db_error(&self.path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_error(&self.path, e))?;
        Ok(Some(Checkpointer {
            conn,
            path: self.path.clone(),
            unchecked: Arc::clone(&self.unchecked),
            last: Instant::now(),
            // Without it, pages stay cached, as they would anyway.
            file: fs::File::open(&self.path).ok(),
            // What opening read to check the file goes too.
            cached_from: 0,
        }))
    }
}

/// Moves a history's write-ahead log into its database, on a connection of
/// its own, so that the writer's commits never do it (see the module
/// notes). Made by [`History::checkpointer`].
pub struct Checkpointer {
    conn: Connection,
    path: PathBuf,
    /// See [`History::unchecked`].
    unchecked: Arc<AtomicU64>,
    /// When the last checkpoint ran.
    pub(super) last: Instant,
    /// The database file, read only, to drop its pages from the cache.
    file: Option<fs::File>,
    /// Where in the file the pages not yet dropped begin.
    pub(super) cached_from: u64,
}

impl fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpointer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Checkpoints (see [`Checkpointer::checkpoint`]) if
    /// [`CHECKPOINT_BYTES`] of text were written since the last time, or
    /// [`CHECKPOINT_INTERVAL`] passed; says whether it did. It makes passes
    /// until one finds nothing new (see "A log started over" in
    /// the module notes), then lets the cache of the database go (see
    /// "Cache let go").
    ///
    /// A checkpoint syncs the log and the database, and a write meeting
    /// that sync waited for it, so checkpoints come seldom (not at every
    /// tick) to keep the latency of single lines down. A stream of lines still
    /// gets one every few megabytes, so the log stays short.
    ///
    /// # Errors
    ///
    /// As [`Checkpointer::checkpoint`].
    pub fn checkpoint_if_due(&mut self) -> Result<bool, Error> {
        let written = self.unchecked.load(Ordering::Relaxed);
        if written < CHECKPOINT_BYTES && self.last.elapsed() < CHECKPOINT_INTERVAL {
            return Ok(false);
        }
        self.unchecked.fetch_sub(written, Ordering::Relaxed);
        self.last = Instant::now();
        // Passes until the log is whole in the database, so that the
        // writer's next commit starts it over. A pass that finds the log as
        // the one before left it has nothing more to do: all is copied, or
        // a reader holds the rest back.
        let mut last = None;
        for _ in 0..CATCH_UP_PASSES {
            let (log, _) = self.checkpoint()?;
            if last == Some(log) {
                break;
            }
            last = Some(log);
        }
        self.drop_cached();
        Ok(true)
    }

    /// Lets the operating system drop from its cache the pages of the
    /// database a checkpoint wrote and synced, except the last
    /// [`KEEP_CACHED`]: lines are written once and seldom read again, and
    /// a cache that grows with every line takes fresh memory for each (on
    /// a virtual machine that hands unused memory back to its host, each
    /// such page costs a fault in the host). Pages dropped are read from
    /// the disk if they are needed again.
    fn drop_cached(&mut self) {
        let Some(file) = &self.file else {
            return;
        };
        let Ok(size) = file.metadata().map(|m| m.len()) else {
            return;
        };
        let keep_from = size.saturating_sub(KEEP_CACHED);
        // The program never shrinks the file, but another may (a VACUUM).
        self.cached_from = self.cached_from.min(keep_from);
        if keep_from < self.cached_from.saturating_add(DROP_STEP) {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{fadvise, Advice};
            let len = std::num::NonZeroU64::new(keep_from - self.cached_from);
            // Only advice: if it fails, the pages stay cached.
            let _ = fadvise(file, self.cached_from, len, Advice::DontNeed);
        }
        self.cached_from = keep_from;
    }

    /// Copies into the database what the log holds, without waiting for
    /// the writer or readers (a `PASSIVE` checkpoint), and says how many
    /// pages the log holds and how many of them are now in the database.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`]; the log keeps what was
    /// not copied, and the next checkpoint tries again.
    pub fn checkpoint(&self) -> Result<(u64, u64), Error> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                let log: i64 = row.get(1)?;
                let copied: i64 = row.get(2)?;
                Ok((log.max(0) as u64, copied.max(0) as u64))
            })
            .map_err(|e| db_error(&self.path, e))
    }
}
