//! Every line sent and received, kept in a SQLite database so that what
//! was acknowledged survives a crash, a restart and a power cut.
//!
//! Why it is shaped so:
//!
//! - **One row per batch, not per line.** Stored one row per line, SQLite
//!   kept up with a small fraction of the lines the chat moves, and keeping
//!   history must cost the chat little of its throughput. The chat already
//!   publishes and receives lines in batches (of up to 4,096): a run of
//!   consecutive lines of one author's session. So a row of `batches` holds
//!   such a run, its texts joined by `'\n'`, and the per-row cost is paid
//!   once per batch. A line never holds a `'\n'` (one that does has it
//!   stored as a space), so the texts split back exactly.
//! - **Ids stay per line.** A line is still identified by (conversation,
//!   author, session, line), its id is [`message_id`] of those, and every
//!   reader ([`History::recent`], [`History::query`]) hands out lines. The
//!   id is derived from the row and the line's place in it, never stored.
//! - **Acknowledged means stored.** The program acknowledges a line only
//!   after the transaction holding it has committed. The database runs in
//!   WAL mode (readers, such as the `history` command, never block the chat
//!   that writes) with `synchronous=NORMAL`: a commit is in the log, in the
//!   operating system's hands, when it returns, so killing the program at
//!   any moment (`kill -9`) loses nothing committed; the log is synced to
//!   the disk at each checkpoint, so a power cut may take back the last
//!   moments (at most about [`CHECKPOINT_INTERVAL`]). `FULL` (a sync per
//!   commit) makes every commit wait for the disk, which costs the chat
//!   much of its throughput. Every method is exactly one transaction, and
//!   [`History::insert`] takes many batches at once.
//! - **Checkpoints off the writer's path.** SQLite copies the log into the
//!   database, and syncs both, in whichever commit finds the log grown past
//!   its limit; that commit took milliseconds instead of microseconds, and
//!   with it the line waiting on it. A [`Checkpointer`], on a connection
//!   and thread of its own, does that work instead (a WAL checkpoint runs
//!   beside the writer without blocking it), after every
//!   [`CHECKPOINT_BYTES`] of text or [`CHECKPOINT_INTERVAL`], whichever
//!   comes first; the writer's own automatic checkpoint is only a backstop,
//!   at
//!   [`BACKSTOP_CHECKPOINT_PAGES`](checkpoint::BACKSTOP_CHECKPOINT_PAGES).
//! - **A log started over.** SQLite starts the log over, writing on the
//!   pages of the file it already has, only when a commit finds all of it
//!   in the database. One checkpoint beside a writer that goes on writing
//!   never gets there: it copies what the log held when it began, and more
//!   has come meanwhile. So the log grew until the backstop, then was cut
//!   back to [`LOG_FILE_LIMIT`](checkpoint::LOG_FILE_LIMIT) and grew again,
//!   taking new pages each time. The [`Checkpointer`] makes passes until
//!   one finds nothing new (at most
//!   [`CATCH_UP_PASSES`](checkpoint::CATCH_UP_PASSES)), which keeps the log
//!   short under a steady stream of lines.
//! - **Large pages.** SQLite writes the log, and the checkpoint copies it,
//!   a page per system call. With its default small pages a stream of lines
//!   spent most of the store's time in those calls; larger pages
//!   ([`PAGE_BYTES`](schema::PAGE_BYTES)) take far fewer. A commit of one
//!   line then writes more, part of what history adds to the latency of
//!   single lines.
//! - **Cache let go.** Every line written makes the file, and with it the
//!   operating system's cache of it, grow. Lines are written once and
//!   seldom read again, and new cache takes fresh memory: on a virtual
//!   machine that hands unused memory back to its host, each new page costs
//!   a fault in the host, and a checkpoint's copy, with the chat waiting
//!   behind it, slowed down markedly as the cache grew. So after each
//!   checkpoint, whose pages are then on the disk, the [`Checkpointer`]
//!   lets the system drop them from its cache (`posix_fadvise`, Linux
//!   only), all but the newest [`KEEP_CACHED`](checkpoint::KEEP_CACHED):
//!   the memory is used again for the next pages instead.
//! - **Exactly once.** The rows of one stream never overlap: lines of an
//!   incoming batch that are already stored (it arrived twice, by gossip
//!   and again by a fetch, or after a restart, or overlaps one that did)
//!   are cut out before it is stored, which may leave it in several rows.
//!   [`History::insert`] says how many lines of each batch were new: only
//!   those are shown.
//! - **Delivery is a mark per stream.** A member acknowledges "I hold all
//!   your lines below N"; that is one row of `delivered`, raised and never
//!   lowered, rather than an update of every row below N. An outgoing line
//!   reads as delivered when it is below its stream's mark.
//! - **Sent is a mark too.** Our lines are written as queued before they
//!   are published, and marked sent after. SQLite rewrites a whole row to
//!   change one column, texts and all, so marking rows sent wrote each of
//!   our lines twice more (in the log, then at a checkpoint). Since the
//!   chat publishes a stream in line order, a mark per stream, in `sent`,
//!   says the same: a queued row below it reads as sent. Rows are updated
//!   one by one only when an earlier one is still queued.
//! - **Arrival order.** `seq_no` numbers rows in the order they were
//!   stored. Display follows it (and line order within a row), not the
//!   authors' clocks, which may be wrong or hostile; the author's own time
//!   is kept beside it (`ts_ms`).
//! - **Streams.** The rows of one author's session in a conversation are
//!   found by the unique index on (conversation, author, session,
//!   first_line). It serves what reconciliation asks: what each member
//!   holds ([`History::streams`]), what is missing ([`History::missing`]),
//!   the lines to send to a member catching up ([`History::range`]), and
//!   the overlap check of every insert.
//! - **Bounded by what a peer sends.** A batch of more than
//!   [`MAX_BATCH_LINES`] lines, or with a line numbered past [`MAX_LINE`],
//!   is not stored at all: no one call can be made to store more than that.
//! - **Never written over.** A file that is not a history database, fails
//!   SQLite's `quick_check`, or was written by a newer version of the
//!   program is refused and left exactly as it was; the user decides what
//!   to do. The format is versioned with `PRAGMA user_version` and brought
//!   up to date by [`MIGRATIONS`](schema::MIGRATIONS), each applied in a
//!   transaction of its own.
//!
//! The code is split by what it does: `schema` (the format, migrations,
//! checks on opening), `write` (inserts, the sent and delivery marks, the
//! outbox, `meta`), `read` (what is shown, served and resumed), `rows`
//! (the types handed in and out, and reading a row back into lines) and
//! `checkpoint` (the [`Checkpointer`] and the cache it lets go). Their
//! tests are in `tests/`, one file per part.
//!
//! The store is synchronous: the program runs it on a thread of its own
//! behind [`Store`](super::Store). `--no-history` uses
//! [`History::in_memory`], which has the same API, so there is one code path
//! with or without a file.

use std::fs;
use std::io;
use std::num::NonZeroU8;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use time::format_description::well_known::iso8601::{Config, EncodedConfig, TimePrecision};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::OffsetDateTime;

use super::Error;
use crate::private_file::{create_private_dir, create_private_file};

pub use checkpoint::{Checkpointer, CHECKPOINT_BYTES, CHECKPOINT_INTERVAL, CHECKPOINT_TICK};
pub use read::{RoomResume, RESUME_HOLES};
pub use rows::{Batch, Filter, Run, Status, StoredMessage, Stream, Take};
pub use schema::SCHEMA_VERSION;
pub use transfers::{Transfer, TransferUpdate, MAX_LISTED_TRANSFERS};

/// The name of the database file inside the data directory.
pub const HISTORY_FILE: &str = "history.sqlite3";

/// The highest line number stored. A batch with a line past it is not
/// stored (no honest author gets there); keeping one below `i64::MAX` lets
/// every exclusive bound (`next_line`) fit SQLite's signed integers too.
pub const MAX_LINE: u64 = (i64::MAX - 1) as u64;

/// The most lines [`History::insert`] stores from one batch; a longer one is
/// not stored at all. The chat sends batches of up to 4,096 lines.
pub const MAX_BATCH_LINES: usize = 65_536;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many prepared statements are kept; more than this module has.
const STATEMENT_CACHE: usize = 32;

/// The text a [`History::in_memory`] keeps at most, in bytes; beyond it
/// the oldest rows go, down to three quarters of it.
pub const IN_MEMORY_BYTES: u64 = 32 * 1024 * 1024;

/// The columns of a [`BatchRow`], in the order [`BatchRow::read`] reads
/// them, and the tables they come from: a row of `batches` (`b`) with the
/// delivery and sent marks of its stream.
macro_rules! batch_rows {
    () => {
        "SELECT b.conversation, b.room, b.peer, b.author, b.session, b.first_line, b.count, \
         b.name, b.ts_ms, b.texts, b.outgoing, b.status, COALESCE(d.next_line, 0), \
         COALESCE(s.next_line, 0) \
         FROM batches AS b LEFT JOIN delivered AS d ON d.conversation = b.conversation \
         AND d.author = b.author AND d.session = b.session \
         LEFT JOIN sent AS s ON s.conversation = b.conversation \
         AND s.author = b.author AND s.session = b.session "
    };
}

/// The condition on `?1`, `?2`, `?3` (conversation, author, session) and
/// `?4` (a line) that leaves the rows of that stream from the one holding
/// line `?4` (or, if none does, the first after it) on. Rows of a stream
/// never overlap, so the row holding `?4` is the last one starting at or
/// before it; both lookups are in the stream index.
macro_rules! stream_from_line {
    () => {
        "conversation = ?1 AND author = ?2 AND session = ?3 AND first_line >= COALESCE(( \
             SELECT MAX(first_line) FROM batches \
             WHERE conversation = ?1 AND author = ?2 AND session = ?3 AND first_line <= ?4 \
         ), ?4)"
    };
}

mod checkpoint;
mod read;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod transfers;
mod write;

/// The id of a line: `CONVERSATION/AUTHOR/SESSION/LINE`, the session in 16
/// hex digits. It can be read back from the right, as neither an author's
/// peer ID nor the numbers contain a `/`.
///
/// ```
/// use rust_p2p_chat::store::message_id;
///
/// assert_eq!(
///     message_id("room:rust", "12D3KooW", 255, 7),
///     "room:rust/12D3KooW/00000000000000ff/7"
/// );
/// ```
pub fn message_id(conversation: &str, author: &str, session: u64, line: u64) -> String {
    format!("{conversation}/{author}/{session:016x}/{line}")
}

/// A [`message_id`] read back: conversation, author, session and line.
pub(crate) fn parse_message_id(id: &str) -> Option<(&str, &str, u64, u64)> {
    let mut parts = id.rsplitn(4, '/');
    let line = parts.next()?.parse().ok()?;
    let session = u64::from_str_radix(parts.next()?, 16).ok()?;
    let author = parts.next()?;
    let conversation = parts.next()?;
    Some((conversation, author, session, line))
}

/// How times are written: RFC 3339 in UTC, always with three digits of
/// milliseconds (`2026-11-25T19:04:05.120Z`). The time crate's own
/// [`Rfc3339`] writes as many digits as the time needs (`05.12Z`, or none
/// at all on a whole second), which would change the width of every line
/// `history` prints and what scripts reading `history --json` get; this
/// profile of its ISO 8601 format is RFC 3339 with the digits fixed.
const TIMESTAMP: EncodedConfig = Config::DEFAULT
    .set_year_is_six_digits(false)
    .set_time_precision(TimePrecision::Second {
        decimal_digits: NonZeroU8::new(3),
    })
    .encode();

/// The last millisecond a four-digit year holds, 9999-12-31T23:59:59.999Z,
/// in ms since 1970.
const LAST_MS: u64 = 253_402_300_799_999;

/// A time in ms since 1970 as RFC 3339 in UTC, to the millisecond. Times
/// past the year 9999 show as its last millisecond.
///
/// ```
/// use rust_p2p_chat::store::rfc3339;
///
/// assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(rfc3339(1_795_633_445_123), "2026-11-25T19:04:05.123Z");
/// ```
pub fn rfc3339(ts_ms: u64) -> String {
    let nanos = i128::from(ts_ms.min(LAST_MS)) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|time| time.format(&Iso8601::<TIMESTAMP>).ok())
        // Neither fails for a time from 1970 to 9999.
        .unwrap_or_else(|| "9999-12-31T23:59:59.999Z".to_owned())
}

/// A time written as RFC 3339 (as [`rfc3339`] writes it, or with any
/// offset and any digits of a second), in ms since 1970; `None` for text
/// that is not such a time or one before 1970. Digits past the millisecond
/// are cut off.
///
/// ```
/// use rust_p2p_chat::store::{parse_rfc3339, rfc3339};
///
/// assert_eq!(parse_rfc3339("2026-11-25T19:04:05.123Z"), Some(1_795_633_445_123));
/// assert_eq!(parse_rfc3339("2026-11-25T20:04:05.1239+01:00"), Some(1_795_633_445_123));
/// assert_eq!(parse_rfc3339(&rfc3339(42)), Some(42));
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The message history, backed by `history.sqlite3` in the data directory
/// or, for a run that keeps none, by memory.
///
/// ```
/// use rust_p2p_chat::store::{Batch, History, Status};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut history = History::open(dir.path())?;
/// let session = history.session()?;
/// let batch = |first_line: u64, texts: &[&str]| Batch {
///     conversation: "room:rust".into(),
///     room: Some("rust".into()),
///     peer: None,
///     author: "me".into(),
///     session,
///     first_line,
///     name: Some("alice".into()),
///     ts_ms: 1_700_000_000_000,
///     texts: texts.iter().map(|text| text.to_string()).collect(),
///     outgoing: true,
///     status: Status::Queued,
/// };
/// // Lines 0 and 1, then 1 again and 2: line 1 is stored once.
/// assert_eq!(history.insert(&[batch(0, &["hello", "there"]), batch(1, &["there", "!"])])?, [2, 1]);
/// drop(history);
///
/// let mut history = History::open(dir.path())?;
/// let lines = history.recent("room:rust", 10)?;
/// let texts: Vec<_> = lines.iter().map(|line| line.text.as_str()).collect();
/// assert_eq!(texts, ["hello", "there", "!"]);
/// assert_eq!(lines[2].id, format!("room:rust/me/{session:016x}/2"));
/// assert_eq!(history.next_line("room:rust", "me", session)?, 3);
///
/// // A member acknowledged lines 0 and 1.
/// history.mark_delivered_through("room:rust", "me", session, 2)?;
/// let statuses: Vec<_> = history.recent("room:rust", 10)?.iter().map(|l| l.status).collect();
/// assert_eq!(statuses, [Status::Delivered, Status::Delivered, Status::Queued]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct History {
    conn: Connection,
    /// The database file, or `:memory:`; named in every error.
    path: PathBuf,
    /// For a history in memory: the bytes of text it keeps at most (the
    /// oldest rows go beyond that), and the bytes it holds.
    budget: Option<u64>,
    held_bytes: u64,
    /// Bytes of text written since the last checkpoint; shared with the
    /// [`Checkpointer`], which decides by it when the next is due.
    unchecked: Arc<AtomicU64>,
}

impl History {
    /// Opens the history in `dir`, creating the directory and the database
    /// if they are missing and bringing an older format up to date.
    ///
    /// The whole file is read once to check it (`quick_check`), so opening a
    /// large history takes a moment. Hold the directory's
    /// [`DirLock`](super::DirLock) first: one writer per history.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptDatabase`] for a file that is not a history database
    /// or is damaged, [`Error::NewerSchema`] for one written by a newer
    /// version (both left untouched); [`Error::CreateDir`],
    /// [`Error::Write`], [`Error::DiskFull`] or [`Error::Database`] when it
    /// cannot be created or opened.
    pub fn open(dir: &Path) -> Result<History, Error> {
        create_private_dir(dir).map_err(|cause| Error::CreateDir {
            path: dir.to_owned(),
            cause,
        })?;
        let path = dir.join(HISTORY_FILE);
        create_private_file(&path).map_err(|cause| Error::Write {
            path: path.clone(),
            cause,
        })?;
        // Without CREATE: the file was made above, private to the user, and
        // SQLite gives its -wal and -shm files the same permissions.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| db_error(&path, e))?;
        let mut history = History::new(conn, path, None);
        history.prepare(true)?;
        Ok(history)
    }

    /// A history that lives in memory and is gone when dropped, for a run
    /// that keeps none. It answers like a file-backed one, but keeps only
    /// the newest [`IN_MEMORY_BYTES`] of text or so: memory stays bounded
    /// however long the run.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] if SQLite cannot set it up (out of memory).
    pub fn in_memory() -> Result<History, Error> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| db_error(&path, e))?;
        let mut history = History::new(conn, path, Some(IN_MEMORY_BYTES));
        history.prepare(false)?;
        Ok(history)
    }

    /// Opens the history in `dir` for reading only, as the `history` command
    /// does. It may be open for writing by a running chat at the same time:
    /// this connection sees what had been committed when each query began.
    /// Nothing is created, checked in full or brought up to date.
    ///
    /// # Errors
    ///
    /// [`Error::NoHistory`] when there is no history file, or one that was
    /// never set up; [`Error::OlderSchema`] when it needs bringing up to date
    /// (which only [`History::open`] does); otherwise as [`History::open`].
    pub fn open_read_only(dir: &Path) -> Result<History, Error> {
        let path = dir.join(HISTORY_FILE);
        match fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NoHistory { path }),
            Err(cause) => return Err(Error::Read { path, cause }),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| db_error(&path, e))?;
        let history = History::new(conn, path, None);
        history
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_error(&history.path, e))?;
        let version = history.version()?;
        if version == 0 {
            return Err(Error::NoHistory { path: history.path });
        }
        if version < SCHEMA_VERSION {
            return Err(Error::OlderSchema {
                path: history.path,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        Ok(history)
    }

    /// A history on `conn`, with the text it may keep (see `budget`).
    fn new(conn: Connection, path: PathBuf, budget: Option<u64>) -> History {
        History {
            conn,
            path,
            budget,
            held_bytes: 0,
            unchecked: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The database file (`:memory:` for [`History::in_memory`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs reads, naming the file in any error.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, Error> {
        f(&self.conn).map_err(|e| db_error(&self.path, e))
    }

    /// Runs `f` in one write transaction and commits it; on any error the
    /// transaction is rolled back and nothing of it is stored.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        // IMMEDIATE takes the write lock at the start, so a reader's
        // snapshot can never make the commit fail halfway.
        let result = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            });
        result.map_err(|e| db_error(&self.path, e))
    }
}

/// Turns a SQLite failure into the store's error for `path`.
fn db_error(path: &Path, error: rusqlite::Error) -> Error {
    let path = path.to_owned();
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => return Error::DiskFull { path },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            return Error::CorruptDatabase {
                path,
                reason: error.to_string(),
            }
        }
        _ => {}
    }
    match error {
        // A value this program never writes: the file was changed by
        // something else.
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => Error::CorruptDatabase {
            path,
            reason: format!("a stored value is not what this program writes: {error}"),
        },
        cause => Error::Database { path, cause },
    }
}

/// A count, line or time as SQLite's signed integer, past its range
/// counted as its highest.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A column written by [`to_sql`], which is never negative.
fn from_sql(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

/// A session is an identifier, not a quantity: stored bit for bit.
fn session_to_sql(session: u64) -> i64 {
    session as i64
}

/// The inverse of [`session_to_sql`].
fn session_from_sql(session: i64) -> u64 {
    session as u64
}
