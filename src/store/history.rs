//! Every line sent and received, kept in a SQLite database so that what
//! was acknowledged survives a crash, a restart and a power cut.
//!
//! Why it is shaped so:
//!
//! - **One row per batch, not per line.** Stored one row per line, SQLite
//!   managed about 100,000 rows a second here, while the chat moves about
//!   1,000,000 lines a second and keeping history must not cost it more than
//!   a fifth of that. The chat already publishes and receives lines in
//!   batches (of up to 4,096): a run of consecutive lines of one author's
//!   session. So a row of `batches` holds such a run, its texts joined by
//!   `'\n'`, and the per-row cost is paid once per batch. A line never
//!   holds a `'\n'` (one that does has it stored as a space), so the texts
//!   split back exactly.
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
//!   commit) measured 0.3 ms per commit here and cost the chat a third of
//!   its throughput. Every method is exactly
//!   one transaction, and [`History::insert`] takes many batches at once.
//! - **Checkpoints off the writer's path.** SQLite copies the log into the
//!   database, and syncs both, in whichever commit finds the log grown past
//!   its limit; that commit took milliseconds instead of microseconds, and
//!   with it the line waiting on it. A [`Checkpointer`], on a connection
//!   and thread of its own, does that work instead (a WAL checkpoint runs
//!   beside the writer without blocking it), after every
//!   [`CHECKPOINT_BYTES`] of text or [`CHECKPOINT_INTERVAL`], whichever
//!   comes first; the writer's own automatic checkpoint is only a
//!   backstop, at [`BACKSTOP_CHECKPOINT_PAGES`].
//! - **A log started over.** SQLite starts the log over, writing on the
//!   pages of the file it already has, only when a commit finds all of it
//!   in the database. One checkpoint beside a writer that goes on writing
//!   never gets there: it copies what the log held when it began, and more
//!   has come meanwhile. So the log grew until the backstop (256 MiB),
//!   then was cut back to [`LOG_FILE_LIMIT`] and grew again, taking new
//!   pages each time. The [`Checkpointer`] makes passes until one finds
//!   nothing new (at most [`CATCH_UP_PASSES`]); under a stream of 1 KiB
//!   lines the log then stays under about 80 MB.
//! - **Large pages.** SQLite writes the log, and the checkpoint copies it,
//!   a page per system call. With its default 4 KiB pages a stream of
//!   1 KiB lines spent most of the store's time in those calls; 16 KiB
//!   pages ([`PAGE_BYTES`]) take far fewer. A commit of one line writes
//!   more (about 110 against 55 us in a probe), part of what history adds
//!   to the latency of single lines.
//! - **Cache let go.** Every line written makes the file, and with it the
//!   operating system's cache of it, grow. Lines are written once and
//!   seldom read again, and new cache takes fresh memory: on a virtual
//!   machine that hands unused memory back to its host, each new page costs
//!   a fault in the host. Here a checkpoint's copy got three to four times
//!   slower once the cache had grown by a few hundred megabytes, and the
//!   chat with it. So after each checkpoint, whose pages are then on the
//!   disk, the [`Checkpointer`] lets the system drop them from its cache
//!   (`posix_fadvise`, Linux only), all but the newest [`KEEP_CACHED`]:
//!   the memory is used again for the next pages instead.
//! - **Exactly once.** The rows of one stream never overlap: lines of an
//!   incoming batch that are already stored (it arrived twice, by gossip and
//!   again by a fetch, or after a restart, or overlaps one that did) are cut
//!   out before it is stored, which may leave it in several rows.
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
//! - **Arrival order.** `seq_no` numbers rows in the order they were stored.
//!   Display follows it (and line order within a row), not the authors'
//!   clocks, which may be wrong or hostile; the author's own time is kept
//!   beside it (`ts_ms`).
//! - **Streams.** The rows of one author's session in a conversation are
//!   found by the unique index on (conversation, author, session,
//!   first_line). It serves what reconciliation asks: what each member holds
//!   ([`History::streams`]), what is missing ([`History::missing`]), the
//!   lines to send to a member catching up ([`History::range`]), and the
//!   overlap check of every insert.
//! - **Bounded by what a peer sends.** A batch of more than
//!   [`MAX_BATCH_LINES`] lines, or with a line numbered past [`MAX_LINE`], is
//!   not stored at all: no one call can be made to store more than that.
//! - **Never written over.** A file that is not a history database, fails
//!   SQLite's `quick_check`, or was written by a newer version of the program
//!   is refused and left exactly as it was; the user decides what to do.
//!   The format is versioned with `PRAGMA user_version` and brought up to
//!   date by [`MIGRATIONS`], each applied in a transaction of its own.
//!
//! The store is synchronous: the program runs it on a thread of its own
//! behind [`Store`](super::Store). `--no-history` uses
//! [`History::in_memory`], which has the same API, so there is one code path
//! with or without a file.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use time::OffsetDateTime;

use super::{private_file_options, Error};
use crate::identity::create_private_dir;

/// The name of the database file inside the data directory.
pub const HISTORY_FILE: &str = "history.sqlite3";

/// The highest line number stored. A batch with a line past it is not
/// stored (no honest author gets there); keeping one below `i64::MAX` lets
/// every exclusive bound (`next_line`) fit SQLite's signed integers too.
pub const MAX_LINE: u64 = (i64::MAX - 1) as u64;

/// The most lines [`History::insert`] stores from one batch; a longer one is
/// not stored at all. The chat sends batches of up to 4,096 lines.
pub const MAX_BATCH_LINES: usize = 65_536;

/// The newest format of the database this program reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many prepared statements are kept; more than this module has.
const STATEMENT_CACHE: usize = 32;

/// The text a [`History::in_memory`] keeps at most, in bytes; beyond it
/// the oldest rows go, down to three quarters of it.
pub const IN_MEMORY_BYTES: u64 = 32 * 1024 * 1024;

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
const KEEP_CACHED: u64 = 32 * 1024 * 1024;

/// Checkpoint passes at most, one after the other, to catch up with a
/// writer that goes on writing.
const CATCH_UP_PASSES: usize = 8;

/// The cache is let go of in steps of at least this many bytes.
const DROP_STEP: u64 = 8 * 1024 * 1024;
const _: () = assert!(DROP_STEP > 0);

/// The size SQLite cuts the log file back to when it starts it over.
const LOG_FILE_LIMIT: i64 = 64 * 1024 * 1024;

/// The log size, in pages, at which the writer checkpoints by itself: only
/// if no [`Checkpointer`] runs, or it cannot keep up (SQLite's default is
/// 1,000 pages, 4 MB).
const BACKSTOP_CHECKPOINT_PAGES: u32 = 16_384;

/// The page size of a new database file, in bytes (SQLite's default is
/// 4,096). See "Large pages" above.
const PAGE_BYTES: u32 = 16_384;

/// How many problems `quick_check` reports before it stops.
const QUICK_CHECK_PROBLEMS: u32 = 3;

/// The key in `meta` of our persistent session.
const SESSION_KEY: &str = "session";

/// Keys in `meta` of when we first joined each conversation: this, then
/// the conversation.
const JOINED_KEY: &str = "joined:";

/// The format's history: entry `n` brings a database from version `n` to
/// `n + 1`. Entries are only ever appended.
const MIGRATIONS: &[&str] = &[
    // 1: batches of lines, delivery marks per stream; meta for small values.
    "CREATE TABLE batches (
        seq_no INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation TEXT NOT NULL,
        room TEXT,
        peer TEXT,
        author TEXT NOT NULL,
        session INTEGER NOT NULL,
        first_line INTEGER NOT NULL CHECK (first_line >= 0),
        count INTEGER NOT NULL CHECK (count >= 1),
        name TEXT,
        ts_ms INTEGER NOT NULL CHECK (ts_ms >= 0),
        texts TEXT NOT NULL,
        outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
        status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'received')),
        UNIQUE (conversation, author, session, first_line)
    );
    CREATE INDEX batches_by_conversation ON batches (conversation, seq_no);
    CREATE TABLE delivered (
        conversation TEXT NOT NULL,
        author TEXT NOT NULL,
        session INTEGER NOT NULL,
        next_line INTEGER NOT NULL CHECK (next_line >= 0),
        PRIMARY KEY (conversation, author, session)
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;",
    // 2: a mark per stream of our lines handed to the network (see "Sent
    // is a mark too" above); rows already marked keep their status.
    "CREATE TABLE sent (
        conversation TEXT NOT NULL,
        author TEXT NOT NULL,
        session INTEGER NOT NULL,
        next_line INTEGER NOT NULL CHECK (next_line >= 0),
        PRIMARY KEY (conversation, author, session)
    ) WITHOUT ROWID;",
];

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

/// Where a line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ours, written but not yet handed to the network.
    Queued,
    /// Ours, handed to the network.
    Sent,
    /// Ours, acknowledged by a recipient. Never stored in a row: a line
    /// reads as delivered when it is below its stream's delivery mark (see
    /// [`History::mark_delivered_through`]).
    Delivered,
    /// Someone else's, received.
    Received,
}

impl Status {
    /// Its name, as shown and as stored in a row.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Received => "received",
        }
    }

    /// The status with this name, if there is one.
    ///
    /// ```
    /// use rust_p2p_chat::store::Status;
    ///
    /// assert_eq!(Status::parse("sent"), Some(Status::Sent));
    /// assert_eq!(Status::parse(Status::Delivered.as_str()), Some(Status::Delivered));
    /// assert_eq!(Status::parse("lost"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Status> {
        match name {
            "queued" => Some(Status::Queued),
            "sent" => Some(Status::Sent),
            "delivered" => Some(Status::Delivered),
            "received" => Some(Status::Received),
            _ => None,
        }
    }

    /// The name stored in a row: delivery is kept per stream, so a batch
    /// handed in as delivered is stored as sent.
    fn stored(self) -> &'static str {
        match self {
            Status::Delivered => Status::Sent.as_str(),
            status => status.as_str(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run of consecutive lines of one author's session, as the chat sends
/// and receives them and as [`History::insert`] stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Which conversation it belongs to: `room:NAME`, `peer:PEERID` for
    /// direct messages, `plain:ADDR` for the plain protocol.
    pub conversation: String,
    /// The room, for room lines.
    pub room: Option<String>,
    /// The other party, for direct and plain messages.
    pub peer: Option<String>,
    /// The author's peer ID (base58), or `local`/`remote` in plain mode.
    pub author: String,
    /// The author's session.
    pub session: u64,
    /// The number of the first line in the author's session, from 0; the
    /// others follow it.
    pub first_line: u64,
    /// The author's nick when it was written.
    pub name: Option<String>,
    /// The author's clock when it was written, in ms since 1970.
    pub ts_ms: u64,
    /// The lines. A `'\n'` in one is stored as a space.
    pub texts: Vec<String>,
    /// Whether we wrote it.
    pub outgoing: bool,
    /// [`Status::Queued`] or [`Status::Sent`] for ours, [`Status::Received`]
    /// for someone else's. [`Status::Delivered`] is stored as sent.
    pub status: Status,
}

/// One line as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredMessage {
    /// [`message_id`] of the line.
    pub id: String,
    /// Which conversation it belongs to: `room:NAME`, `peer:PEERID` for
    /// direct messages, `plain:ADDR` for the plain protocol.
    pub conversation: String,
    /// The room, for room lines.
    pub room: Option<String>,
    /// The other party, for direct and plain messages.
    pub peer: Option<String>,
    /// The author's peer ID (base58), or `local`/`remote` in plain mode.
    pub author: String,
    /// The author's session.
    pub session: u64,
    /// The line's number in the author's session, from 0.
    pub line: u64,
    /// The author's nick when it was written.
    pub name: Option<String>,
    /// The author's clock when it was written, in ms since 1970.
    pub ts_ms: u64,
    /// The text.
    pub text: String,
    /// Whether we wrote it.
    pub outgoing: bool,
    /// Where it stands.
    pub status: Status,
}

/// Which lines [`History::query`] returns. The default is all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only lines of this room.
    pub room: Option<String>,
    /// Only lines with this peer: written by it, or exchanged with it
    /// directly.
    pub peer: Option<String>,
}

/// Consecutive lines of a stream, as served to a member fetching what it
/// missed: the lines of one row, or the part of it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The number of the first line; the others follow it.
    pub first_line: u64,
    /// The lines.
    pub texts: Vec<String>,
    /// The author's nick when they were written.
    pub name: Option<String>,
    /// The author's clock when they were written, in ms since 1970.
    pub ts_ms: u64,
}

/// How much of one author's session in a conversation is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The author's peer ID.
    pub author: String,
    /// The author's session.
    pub session: u64,
    /// One more than the highest line held (there may be gaps below it;
    /// see [`History::missing`]).
    pub next_line: u64,
}

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
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000)
        .unwrap_or_else(|_| {
            // The last representable millisecond, 9999-12-31T23:59:59.999Z.
            OffsetDateTime::from_unix_timestamp_nanos(253_402_300_799_999_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        });
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    )
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

    /// Stores batches in one transaction and says, for each, how many of its
    /// lines were new.
    ///
    /// Lines already stored for the same (conversation, author, session),
    /// earlier or by a batch before in the same call, are cut out of the
    /// incoming batch, which may leave it stored in several rows: no line is
    /// ever stored twice, and the one stored first is kept. A batch of more
    /// than [`MAX_BATCH_LINES`] lines, or with a line past [`MAX_LINE`], is
    /// not stored at all and counts 0, as does an empty one.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`]; then none of the batches
    /// was stored.
    pub fn insert(&mut self, batches: &[Batch]) -> Result<Vec<usize>, Error> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let mut added = 0u64;
        let new = self.write(|tx| {
            let mut held = tx.prepare_cached(concat!(
                "SELECT first_line, count FROM batches WHERE ",
                stream_from_line!(),
                " AND first_line < ?5 ORDER BY first_line"
            ))?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO batches (conversation, room, peer, author, session, first_line, \
                 count, name, ts_ms, texts, outgoing, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut joined = String::new();
            batches
                .iter()
                .map(|batch| {
                    let Some(end) = storable_end(batch) else {
                        return Ok(0);
                    };
                    let first = batch.first_line;
                    let session = session_to_sql(batch.session);
                    // The parts of [first, end) not held yet.
                    let mut pieces = Vec::new();
                    let mut next = first;
                    let mut rows = held.query(params![
                        batch.conversation,
                        batch.author,
                        session,
                        to_sql(first),
                        to_sql(end)
                    ])?;
                    while let Some(row) = rows.next()? {
                        let start = from_sql(row, 0)?;
                        let stop = start.saturating_add(from_sql(row, 1)?);
                        if start > next {
                            pieces.push((next, start));
                        }
                        next = next.max(stop);
                        if next >= end {
                            break;
                        }
                    }
                    if next < end {
                        pieces.push((next, end));
                    }
                    drop(rows);
                    let mut new = 0;
                    for (from, to) in pieces {
                        // Both within [first, end), which holds at most
                        // MAX_BATCH_LINES lines.
                        let (skip, count) = ((from - first) as usize, (to - from) as usize);
                        join_lines(&batch.texts[skip..skip + count], &mut joined);
                        insert.execute(params![
                            batch.conversation,
                            batch.room,
                            batch.peer,
                            batch.author,
                            session,
                            to_sql(from),
                            to_sql(to - from),
                            batch.name,
                            to_sql(batch.ts_ms),
                            joined,
                            batch.outgoing,
                            batch.status.stored(),
                        ])?;
                        new += count;
                        added += joined.len() as u64;
                    }
                    Ok(new)
                })
                .collect()
        })?;
        self.unchecked.fetch_add(added, Ordering::Relaxed);
        if let Some(budget) = self.budget {
            self.held_bytes += added;
            if self.held_bytes > budget {
                self.forget_oldest(budget / 4 * 3)?;
            }
        }
        Ok(new)
    }

    /// Removes the oldest rows until the text held is at most `target`
    /// bytes (for a history in memory).
    fn forget_oldest(&mut self, target: u64) -> Result<(), Error> {
        let mut held = self.held_bytes;
        let freed = self.write(|tx| {
            let mut oldest =
                tx.prepare_cached("SELECT seq_no, length(texts) FROM batches ORDER BY seq_no")?;
            let mut rows = oldest.query([])?;
            let mut last = None;
            while held > target {
                let Some(row) = rows.next()? else {
                    break;
                };
                let (seq_no, bytes): (i64, i64) = (row.get(0)?, row.get(1)?);
                held = held.saturating_sub(bytes.max(0) as u64);
                last = Some(seq_no);
            }
            drop(rows);
            if let Some(last) = last {
                tx.execute("DELETE FROM batches WHERE seq_no <= ?1", [last])?;
            }
            Ok(held)
        })?;
        self.held_bytes = freed;
        Ok(())
    }

    /// Our rows of a stream that start at a line in `[from, to)` and are
    /// still queued are marked sent: they were handed to the network.
    ///
    /// Usually none of ours before `from` is still queued (the chat
    /// publishes in line order): then the stream's sent mark is raised to
    /// `to`, and the rows stay as they are. Otherwise (lines kept back
    /// while alone in a room) the rows are marked one by one.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`]; then nothing changed.
    pub fn mark_sent(
        &mut self,
        conversation: &str,
        author: &str,
        session: u64,
        from: u64,
        to: u64,
    ) -> Result<(), Error> {
        let session = session_to_sql(session);
        let (from, to) = (to_sql(from), to_sql(to));
        self.write(|tx| {
            let mark = to_sql(stream_mark(tx, Mark::Sent, conversation, author, session)?);
            let queued_before: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM batches \
                     WHERE conversation = ?1 AND author = ?2 AND session = ?3 \
                     AND first_line >= ?4 AND first_line < ?5 \
                     AND outgoing = 1 AND status = 'queued')",
                )?
                .query_row(params![conversation, author, session, mark, from], |row| {
                    row.get(0)
                })?;
            if !queued_before {
                return raise_mark(tx, Mark::Sent, conversation, author, session, to);
            }
            tx.prepare_cached(
                "UPDATE batches SET status = 'sent' \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3 \
                 AND first_line >= ?4 AND first_line < ?5 \
                 AND outgoing = 1 AND status = 'queued'",
            )?
            .execute(params![conversation, author, session, from, to])?;
            Ok(())
        })
    }

    /// Records that a recipient holds every line of a stream below
    /// `next_line`: our lines there read as [`Status::Delivered`] from now
    /// on. The mark is only ever raised, never lowered, so a late or stale
    /// acknowledgement changes nothing. Returns the mark as it was before
    /// (0 if there was none).
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`]; then nothing changed.
    pub fn mark_delivered_through(
        &mut self,
        conversation: &str,
        author: &str,
        session: u64,
        next_line: u64,
    ) -> Result<u64, Error> {
        let session = session_to_sql(session);
        self.write(|tx| {
            let previous = stream_mark(tx, Mark::Delivered, conversation, author, session)?;
            if next_line > previous {
                raise_mark(
                    tx,
                    Mark::Delivered,
                    conversation,
                    author,
                    session,
                    to_sql(next_line),
                )?;
            }
            Ok(previous)
        })
    }

    /// Puts back in the outbox our lines of a stream that no recipient
    /// acknowledged (from its delivery mark on): they were handed to the
    /// network, which is no proof that anyone got them, so the next start
    /// publishes them again (receivers drop what they already hold).
    /// Returns how many lines that is.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`]; then nothing changed.
    pub fn requeue_undelivered(
        &mut self,
        conversation: &str,
        author: &str,
        session: u64,
    ) -> Result<u64, Error> {
        let session = session_to_sql(session);
        self.write(|tx| {
            let delivered = to_sql(stream_mark(tx, Mark::Delivered, conversation, author, session)?);
            // A batch that straddles the mark goes back whole.
            let (first, lines): (Option<i64>, i64) = tx
                .prepare_cached(
                    "SELECT MIN(first_line), COALESCE(SUM(first_line + count - MAX(first_line, ?4)), 0) \
                     FROM batches WHERE conversation = ?1 AND author = ?2 AND session = ?3 \
                     AND outgoing = 1 AND first_line + count > ?4",
                )?
                .query_row(params![conversation, author, session, delivered], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            let Some(first) = first else {
                return Ok(0);
            };
            tx.prepare_cached(
                "UPDATE batches SET status = 'queued' \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3 \
                 AND outgoing = 1 AND status = 'sent' AND first_line >= ?4",
            )?
            .execute(params![conversation, author, session, first])?;
            tx.prepare_cached(
                "UPDATE sent SET next_line = MIN(next_line, ?4) \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3",
            )?
            .execute(params![conversation, author, session, first])?;
            Ok(u64::try_from(lines).unwrap_or(0))
        })
    }

    /// The delivery mark of a stream: every line below it is held by a
    /// recipient. 0 when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Database`], or [`Error::CorruptDatabase`] for a value this
    /// program did not write.
    pub fn delivered_through(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
    ) -> Result<u64, Error> {
        self.read(|conn| {
            stream_mark(
                conn,
                Mark::Delivered,
                conversation,
                author,
                session_to_sql(session),
            )
        })
    }

    /// The last `limit` lines of a conversation, oldest first, in the order
    /// they were stored (and in line order within a batch). An outgoing
    /// line is [`Status::Delivered`] when it is below its stream's
    /// [delivery mark](History::delivered_through), else as its row says.
    ///
    /// # Errors
    ///
    /// [`Error::Database`], or [`Error::CorruptDatabase`] for a row this
    /// program did not write.
    pub fn recent(&self, conversation: &str, limit: usize) -> Result<Vec<StoredMessage>, Error> {
        self.last_lines(
            concat!(
                batch_rows!(),
                "WHERE b.conversation = ?1 ORDER BY b.seq_no DESC"
            ),
            params![conversation],
            limit,
        )
    }

    /// The last `limit` lines matching `filter`, oldest first, as
    /// [`History::recent`] gives them.
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn query(&self, filter: &Filter, limit: usize) -> Result<Vec<StoredMessage>, Error> {
        self.last_lines(
            concat!(
                batch_rows!(),
                "WHERE (?1 IS NULL OR b.room = ?1) \
                 AND (?2 IS NULL OR b.peer = ?2 OR b.author = ?2) \
                 ORDER BY b.seq_no DESC"
            ),
            params![filter.room, filter.peer],
            limit,
        )
    }

    /// The lines held of one author's session in a conversation, numbered
    /// from `from` up to but not including `to`, at most `max` of them, in
    /// line order: what a member catching up is sent. Each run is the part
    /// of one row asked for, with the row's name and time; lines not held
    /// are skipped, so a run may start later than the one before ended.
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn range(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<Vec<Run>, Error> {
        if from >= to || max == 0 {
            return Ok(Vec::new());
        }
        self.read(|conn| {
            let mut select = conn.prepare_cached(concat!(
                "SELECT first_line, count, texts, name, ts_ms FROM batches WHERE ",
                stream_from_line!(),
                " AND first_line < ?5 ORDER BY first_line"
            ))?;
            let mut rows = select.query(params![
                conversation,
                author,
                session_to_sql(session),
                to_sql(from),
                to_sql(to)
            ])?;
            let mut runs = Vec::new();
            let mut left = max;
            while left > 0 {
                let Some(row) = rows.next()? else { break };
                let first = from_sql(row, 0)?;
                let count = from_sql(row, 1)?;
                let start = first.max(from);
                let stop = first.saturating_add(count).min(to);
                if start >= stop {
                    continue;
                }
                let take = usize::try_from(stop - start).map_or(left, |n| n.min(left));
                let texts: String = row.get(2)?;
                let lines = split_lines(&texts, count, 2)?;
                let skip = (start - first) as usize;
                runs.push(Run {
                    first_line: start,
                    texts: lines[skip..skip + take]
                        .iter()
                        .map(|line| (*line).to_owned())
                        .collect(),
                    name: row.get(3)?,
                    ts_ms: from_sql(row, 4)?,
                });
                left -= take;
            }
            Ok(runs)
        })
    }

    /// For every author's session with a batch in `conversation` written at
    /// or after `since_ms` (by the author's clock), how far it is held: what
    /// this member says it has when reconciling. Sorted by author, then
    /// session.
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn streams(&self, conversation: &str, since_ms: u64) -> Result<Vec<Stream>, Error> {
        self.read(|conn| {
            let mut select = conn.prepare_cached(
                "SELECT author, session, MAX(first_line + count) FROM batches \
                 WHERE conversation = ?1 GROUP BY author, session HAVING MAX(ts_ms) >= ?2",
            )?;
            let rows = select.query_map(params![conversation, to_sql(since_ms)], |row| {
                Ok(Stream {
                    author: row.get(0)?,
                    session: session_from_sql(row.get(1)?),
                    next_line: from_sql(row, 2)?,
                })
            })?;
            let mut streams = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            // In Rust: SQL would order sessions by their signed bit pattern.
            streams.sort_by(|a, b| (&a.author, a.session).cmp(&(&b.author, b.session)));
            Ok(streams)
        })
    }

    /// One more than the highest line held of an author's session in a
    /// conversation; 0 when none is. Lines below it may be missing.
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn next_line(&self, conversation: &str, author: &str, session: u64) -> Result<u64, Error> {
        self.read(|conn| {
            // Rows of a stream never overlap: the last to start ends last.
            let mut select = conn.prepare_cached(
                "SELECT first_line + count FROM batches \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3 \
                 ORDER BY first_line DESC LIMIT 1",
            )?;
            let next = select
                .query_row(
                    params![conversation, author, session_to_sql(session)],
                    |row| from_sql(row, 0),
                )
                .optional()?;
            Ok(next.unwrap_or(0))
        })
    }

    /// The lines of an author's session in a conversation, below `below`,
    /// that are not held, as ranges `(from, to)` (`to` not included), lowest
    /// first, at most `max` ranges. It walks the session's rows below
    /// `below` in the index, up to the `max`-th gap.
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn missing(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
        below: u64,
        max: usize,
    ) -> Result<Vec<(u64, u64)>, Error> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.read(|conn| {
            let mut select = conn.prepare_cached(
                "SELECT first_line, count FROM batches \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3 AND first_line < ?4 \
                 ORDER BY first_line",
            )?;
            let mut rows = select.query(params![
                conversation,
                author,
                session_to_sql(session),
                to_sql(below)
            ])?;
            let mut gaps = Vec::new();
            let mut expected = 0;
            while let Some(row) = rows.next()? {
                let first = from_sql(row, 0)?;
                if first > expected {
                    gaps.push((expected, first));
                    if gaps.len() == max {
                        return Ok(gaps);
                    }
                }
                expected = expected.max(first.saturating_add(from_sql(row, 1)?));
            }
            if expected < below {
                gaps.push((expected, below));
            }
            Ok(gaps)
        })
    }

    /// Our batches of a stream that are still queued and not all
    /// acknowledged, in line order: what to publish on the next start.
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn unsent(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
    ) -> Result<Vec<Batch>, Error> {
        self.read(|conn| {
            let mut select = conn.prepare_cached(concat!(
                batch_rows!(),
                "WHERE b.conversation = ?1 AND b.author = ?2 AND b.session = ?3 \
                 AND b.outgoing = 1 AND b.status = 'queued' \
                 AND b.first_line >= COALESCE(s.next_line, 0) \
                 AND b.first_line + b.count > COALESCE(d.next_line, 0) ORDER BY b.first_line"
            ))?;
            let mut rows = select.query(params![conversation, author, session_to_sql(session)])?;
            let mut batches = Vec::new();
            while let Some(row) = rows.next()? {
                batches.push(BatchRow::read(row)?.into_batch()?);
            }
            Ok(batches)
        })
    }

    /// Our session: made up once, at random, and kept with the history, so
    /// that our line numbers carry on across runs (continue from
    /// [`History::next_line`]). An in-memory history makes a new one.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`] (for a history opened
    /// read-only, when it has none yet).
    pub fn session(&mut self) -> Result<u64, Error> {
        const SELECT: &str = "SELECT value FROM meta WHERE key = ?1";
        let found = self.read(|conn| {
            conn.query_row(SELECT, [SESSION_KEY], |row| row.get(0))
                .optional()
        })?;
        if let Some(session) = found {
            return Ok(session_from_sql(session));
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![SESSION_KEY, session_to_sql(random_session())],
            )?;
            let session = tx.query_row(SELECT, [SESSION_KEY], |row| row.get(0))?;
            Ok(session_from_sql(session))
        })
    }

    /// When we first joined a conversation (ms since 1970): recorded as
    /// `now_ms` the first time this is asked, and kept. What its members
    /// said before it is history to us, not news.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`].
    pub fn joined(&mut self, conversation: &str, now_ms: u64) -> Result<u64, Error> {
        const SELECT: &str = "SELECT value FROM meta WHERE key = ?1";
        let key = format!("{JOINED_KEY}{conversation}");
        let found: Option<i64> =
            self.read(|conn| conn.query_row(SELECT, [&key], |row| row.get(0)).optional())?;
        if let Some(at) = found {
            return Ok(u64::try_from(at).unwrap_or(0));
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, to_sql(now_ms)],
            )?;
            let at: i64 = tx.query_row(SELECT, [&key], |row| row.get(0))?;
            Ok(u64::try_from(at).unwrap_or(0))
        })
    }

    /// Checks the database and brings it up to date; `on_disk` sets the
    /// durability pragmas, which mean nothing in memory.
    fn prepare(&mut self, on_disk: bool) -> Result<(), Error> {
        let path = self.path.clone();
        let fail = |e| db_error(&path, e);
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Only reads until the file is known to be ours and whole.
        let version = self.version()?;
        self.quick_check()?;
        if on_disk {
            if version == 0 {
                // Only a new file takes it; one made with another size keeps
                // that, which reads and writes just as well.
                self.conn
                    .pragma_update(None, "page_size", PAGE_BYTES)
                    .map_err(fail)?;
            }
            // A file system without shared memory keeps the rollback
            // journal; that is as durable, only slower, and readers then
            // wait for the writer (up to BUSY_TIMEOUT).
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(fail)?;
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(fail)?;
            self.conn
                .pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES)
                .map_err(fail)?;
            self.conn
                .query_row(
                    &format!("PRAGMA journal_size_limit = {LOG_FILE_LIMIT}"),
                    [],
                    |_| Ok(()),
                )
                .map_err(fail)?;
        }
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let target = index as i64 + 1;
            if target <= version {
                continue;
            }
            self.write(|tx| {
                tx.execute_batch(migration)?;
                tx.pragma_update(None, "user_version", target)
            })?;
        }
        Ok(())
    }

    /// The format version, refusing one this program cannot use.
    fn version(&self) -> Result<i64, Error> {
        let (version, tables): (i64, i64) = self.read(|conn| {
            let version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
            let tables =
                conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))?;
            Ok((version, tables))
        })?;
        if version > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: self.path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < 0 || (version == 0 && tables > 0) {
            return Err(Error::CorruptDatabase {
                path: self.path.clone(),
                reason: format!("it is a SQLite database of another kind (format {version})"),
            });
        }
        Ok(version)
    }

    /// Refuses a damaged database.
    fn quick_check(&self) -> Result<(), Error> {
        let problems: Vec<String> = self.read(|conn| {
            let mut check = conn.prepare(&format!("PRAGMA quick_check({QUICK_CHECK_PROBLEMS})"))?;
            let rows = check.query_map([], |row| row.get(0))?;
            rows.collect()
        })?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(Error::CorruptDatabase {
            path: self.path.clone(),
            reason: format!("the integrity check found: {}", problems.join("; ")),
        })
    }

    /// The last `limit` lines of the rows `sql` (a [`batch_rows!`] query)
    /// gives newest first, oldest first. Reads rows only until they hold
    /// `limit` lines.
    fn last_lines(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read(|conn| {
            let mut select = conn.prepare_cached(sql)?;
            let mut rows = select.query(params)?;
            let mut newest_first = Vec::new();
            let mut lines = 0usize;
            while lines < limit {
                let Some(row) = rows.next()? else { break };
                let row = BatchRow::read(row)?;
                lines = lines.saturating_add(usize::try_from(row.count).unwrap_or(usize::MAX));
                newest_first.push(row);
            }
            // Of the oldest row, only its last lines may fit.
            let mut skip = lines.saturating_sub(limit);
            let mut messages = Vec::with_capacity(lines.min(limit));
            for row in newest_first.iter().rev() {
                row.expand(skip, &mut messages)?;
                skip = 0;
            }
            Ok(messages)
        })
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

/// Moves a history's write-ahead log into its database, on a connection of
/// its own, so that the writer's commits never do it (see the module
/// notes). Made by [`History::checkpointer`].
pub struct Checkpointer {
    conn: Connection,
    path: PathBuf,
    /// See [`History::unchecked`].
    unchecked: Arc<AtomicU64>,
    /// When the last checkpoint ran.
    last: Instant,
    /// The database file, read only, to drop its pages from the cache.
    file: Option<fs::File>,
    /// Where in the file the pages not yet dropped begin.
    cached_from: u64,
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
    /// that sync waited for it: checkpointing every 250 ms took the p99 of
    /// single lines from 0.7-0.8 ms to 1.0-1.2 ms. A stream of lines still
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

/// A row of `batches` as read by a [`batch_rows!`] query, with the
/// delivery mark of its stream.
struct BatchRow {
    conversation: String,
    room: Option<String>,
    peer: Option<String>,
    author: String,
    session: u64,
    first_line: u64,
    count: u64,
    name: Option<String>,
    ts_ms: u64,
    texts: String,
    outgoing: bool,
    status: Status,
    delivered: u64,
}

impl BatchRow {
    /// The column of `texts`, named in errors.
    const TEXTS: usize = 9;

    /// Reads a row of [`batch_rows!`].
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRow> {
        let status: String = row.get(11)?;
        let mut status = Status::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                11,
                Type::Text,
                format!("unknown message status '{status}'").into(),
            )
        })?;
        let first_line = from_sql(row, 5)?;
        let sent: u64 = from_sql(row, 13)?;
        if status == Status::Queued && first_line < sent {
            status = Status::Sent;
        }
        Ok(BatchRow {
            conversation: row.get(0)?,
            room: row.get(1)?,
            peer: row.get(2)?,
            author: row.get(3)?,
            session: session_from_sql(row.get(4)?),
            first_line,
            count: from_sql(row, 6)?,
            name: row.get(7)?,
            ts_ms: from_sql(row, 8)?,
            texts: row.get(Self::TEXTS)?,
            outgoing: row.get(10)?,
            status,
            delivered: from_sql(row, 12)?,
        })
    }

    /// Appends the row's lines but the first `skip` to `out`, each with its
    /// id and its status by the delivery mark.
    fn expand(&self, skip: usize, out: &mut Vec<StoredMessage>) -> rusqlite::Result<()> {
        let lines = split_lines(&self.texts, self.count, Self::TEXTS)?;
        for (line, text) in (self.first_line..).zip(lines).skip(skip) {
            let status = if self.outgoing && line < self.delivered {
                Status::Delivered
            } else {
                self.status
            };
            out.push(StoredMessage {
                id: message_id(&self.conversation, &self.author, self.session, line),
                conversation: self.conversation.clone(),
                room: self.room.clone(),
                peer: self.peer.clone(),
                author: self.author.clone(),
                session: self.session,
                line,
                name: self.name.clone(),
                ts_ms: self.ts_ms,
                text: text.to_owned(),
                outgoing: self.outgoing,
                status,
            });
        }
        Ok(())
    }

    /// The row as the batch it stores.
    fn into_batch(self) -> rusqlite::Result<Batch> {
        let texts = split_lines(&self.texts, self.count, Self::TEXTS)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(Batch {
            conversation: self.conversation,
            room: self.room,
            peer: self.peer,
            author: self.author,
            session: self.session,
            first_line: self.first_line,
            name: self.name,
            ts_ms: self.ts_ms,
            texts,
            outgoing: self.outgoing,
            status: self.status,
        })
    }
}

/// One past the last line of `batch` if it may be stored: neither empty,
/// nor longer than [`MAX_BATCH_LINES`], nor reaching past [`MAX_LINE`].
fn storable_end(batch: &Batch) -> Option<u64> {
    let count = batch.texts.len();
    if count == 0 || count > MAX_BATCH_LINES {
        return None;
    }
    let last = batch.first_line.checked_add(count as u64 - 1)?;
    // Lazily: past the limit, `last + 1` may not even exist.
    (last <= MAX_LINE).then(|| last + 1)
}

/// Joins lines with `'\n'` into `out` (cleared first), a `'\n'` inside a
/// line becoming a space, so the row splits back into exactly these lines.
fn join_lines(lines: &[String], out: &mut String) {
    out.clear();
    // At once: growing by doubling copied a large batch twice more.
    out.reserve(lines.iter().map(|line| line.len() + 1).sum());
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        if line.contains('\n') {
            out.extend(line.chars().map(|c| if c == '\n' { ' ' } else { c }));
        } else {
            out.push_str(line);
        }
    }
}

/// The lines of a row's `texts`, which must be `count` of them.
fn split_lines(texts: &str, count: u64, column: usize) -> rusqlite::Result<Vec<&str>> {
    let lines: Vec<&str> = texts.split('\n').collect();
    if lines.len() as u64 != count {
        return Err(rusqlite::Error::FromSqlConversionFailure(
            column,
            Type::Text,
            format!("a batch of {count} lines holds {} texts", lines.len()).into(),
        ));
    }
    Ok(lines)
}

/// A mark per stream: every line below it is held by a recipient
/// (`delivered`), or was handed to the network (`sent`). Both tables have
/// the same shape.
#[derive(Clone, Copy)]
enum Mark {
    Delivered,
    Sent,
}

impl Mark {
    fn select(self) -> &'static str {
        match self {
            Mark::Delivered => {
                "SELECT next_line FROM delivered \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3"
            }
            Mark::Sent => {
                "SELECT next_line FROM sent \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3"
            }
        }
    }

    fn raise(self) -> &'static str {
        match self {
            Mark::Delivered => {
                "INSERT INTO delivered (conversation, author, session, next_line) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (conversation, author, session) \
                 DO UPDATE SET next_line = MAX(next_line, excluded.next_line)"
            }
            Mark::Sent => {
                "INSERT INTO sent (conversation, author, session, next_line) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (conversation, author, session) \
                 DO UPDATE SET next_line = MAX(next_line, excluded.next_line)"
            }
        }
    }
}

/// A stream's `mark`; 0 when there is none.
fn stream_mark(
    conn: &Connection,
    mark: Mark,
    conversation: &str,
    author: &str,
    session: i64,
) -> rusqlite::Result<u64> {
    let mut select = conn.prepare_cached(mark.select())?;
    let next = select
        .query_row(params![conversation, author, session], |row| {
            from_sql(row, 0)
        })
        .optional()?;
    Ok(next.unwrap_or(0))
}

/// Raises a stream's `mark` to `next_line` (never lowers it).
fn raise_mark(
    conn: &Connection,
    mark: Mark,
    conversation: &str,
    author: &str,
    session: i64,
    next_line: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(mark.raise())?.execute(params![
        conversation,
        author,
        session,
        next_line
    ])?;
    Ok(())
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

/// Creates `path` as an empty file only the user can read, unless it exists.
fn create_private_file(path: &Path) -> io::Result<()> {
    match private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A session number that differs between histories: the standard library's
/// per-process random hash keys mixed with the clock and the process ID.
/// It only has to differ, not be secret.
fn random_session() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::ops::Range;
    use std::time::Instant;

    use tempfile::TempDir;

    use super::*;

    const ROOM: &str = "room:rust";
    const ME: &str = "12D3KooWme";
    const BOB: &str = "12D3KooWbob";

    /// A batch of `author` in the room with these texts, from `first_line`.
    fn batch(author: &str, session: u64, first_line: u64, texts: &[&str]) -> Batch {
        Batch {
            conversation: ROOM.into(),
            room: Some("rust".into()),
            peer: None,
            author: author.into(),
            session,
            first_line,
            name: Some(format!("{author}-nick")),
            ts_ms: first_line.saturating_add(1_000),
            texts: texts.iter().map(|text| (*text).to_owned()).collect(),
            outgoing: author == ME,
            status: if author == ME {
                Status::Queued
            } else {
                Status::Received
            },
        }
    }

    /// A batch of `author` in the room holding `line N` for each line.
    fn numbered(author: &str, session: u64, lines: Range<u64>) -> Batch {
        let texts: Vec<String> = lines.clone().map(|n| format!("line {n}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        batch(author, session, lines.start, &texts)
    }

    /// A direct message between us and `peer`.
    fn direct(peer: &str, author: &str, line: u64, text: &str) -> Batch {
        Batch {
            conversation: format!("peer:{peer}"),
            room: None,
            peer: Some(peer.into()),
            name: None,
            ts_ms: 5,
            ..batch(author, 9, line, &[text])
        }
    }

    fn texts(messages: &[StoredMessage]) -> Vec<&str> {
        messages.iter().map(|m| m.text.as_str()).collect()
    }

    fn numbers(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.line).collect()
    }

    fn statuses(history: &History) -> Vec<Status> {
        let messages = history.recent(ROOM, 100).unwrap();
        messages.iter().map(|m| m.status).collect()
    }

    fn rows(history: &History) -> i64 {
        history
            .conn
            .query_row("SELECT COUNT(*) FROM batches", [], |row| row.get(0))
            .unwrap()
    }

    fn run(first_line: u64, lines: Range<u64>, name: &str, ts_ms: u64) -> Run {
        Run {
            first_line,
            texts: lines.map(|n| format!("line {n}")).collect(),
            name: Some(name.into()),
            ts_ms,
        }
    }

    fn assert_names(error: &Error, path: &Path, part: &str) {
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(part), "{message}");
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let lines = numbered(ME, 7, 0..3);
        let session = {
            let mut history = History::open(dir.path()).unwrap();
            let new = history.insert(std::slice::from_ref(&lines)).unwrap();
            assert_eq!(new, [3]);
            history.session().unwrap()
        };
        let mut history = History::open(dir.path()).unwrap();
        let stored = history.recent(ROOM, 10).unwrap();
        let expected: Vec<_> = (0..3)
            .map(|line| StoredMessage {
                id: message_id(ROOM, ME, 7, line),
                conversation: ROOM.into(),
                room: Some("rust".into()),
                peer: None,
                author: ME.into(),
                session: 7,
                line,
                name: Some(format!("{ME}-nick")),
                ts_ms: 1_000,
                text: format!("line {line}"),
                outgoing: true,
                status: Status::Queued,
            })
            .collect();
        assert_eq!(stored, expected);
        assert_eq!(stored[2].id, "room:rust/12D3KooWme/0000000000000007/2");
        assert_eq!(history.session().unwrap(), session, "the session is kept");
        assert_eq!(history.insert(&[lines]).unwrap(), [0]);
        assert_eq!(rows(&history), 1);
    }

    #[test]
    fn the_file_is_private_and_in_wal_mode_with_normal_sync_and_large_pages() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        let mode: String = history
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = history
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let page: u32 = history
            .conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .unwrap();
        assert_eq!(page, PAGE_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(HISTORY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_checkpoint_is_due_after_enough_text_or_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::open(dir.path()).unwrap();
        let mut checkpointer = history.checkpointer().unwrap().expect("a file in WAL mode");
        history.insert(&[numbered(ME, 1, 0..10)]).unwrap();
        assert!(!checkpointer.checkpoint_if_due().unwrap(), "a few lines");
        let line = "x".repeat(1024);
        let lines = vec![line.as_str(); 1024];
        let mut first = 10;
        while history.unchecked.load(Ordering::Relaxed) < CHECKPOINT_BYTES {
            history.insert(&[batch(ME, 1, first, &lines)]).unwrap();
            first += 1024;
        }
        assert!(checkpointer.checkpoint_if_due().unwrap(), "enough text");
        assert_eq!(history.unchecked.load(Ordering::Relaxed), 0);
        assert!(!checkpointer.checkpoint_if_due().unwrap(), "just done");
        checkpointer.last -= CHECKPOINT_INTERVAL;
        assert!(checkpointer.checkpoint_if_due().unwrap(), "long enough");
    }

    #[test]
    fn checkpoints_let_go_of_the_cache_of_all_but_the_newest_pages() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::open(dir.path()).unwrap();
        let mut checkpointer = history.checkpointer().unwrap().expect("a file in WAL mode");
        assert_eq!(checkpointer.cached_from, 0, "a new file");
        let line = "y".repeat(1023);
        let lines = vec![line.as_str(); 1024];
        let mut first = 0;
        let mut size = 0;
        // A file grown until three steps were let go, with every line
        // checkpointed as it goes (each batch adds about 1 MiB).
        let most = (KEEP_CACHED + 6 * DROP_STEP) / (1024 * 1024);
        for _ in 0..most {
            if checkpointer.cached_from >= 3 * DROP_STEP {
                break;
            }
            history.insert(&[batch(ME, 1, first, &lines)]).unwrap();
            first += 1024;
            checkpointer.last -= CHECKPOINT_INTERVAL;
            assert!(checkpointer.checkpoint_if_due().unwrap());
            size = fs::metadata(history.path()).unwrap().len();
            let kept = size - checkpointer.cached_from;
            assert!(
                kept >= KEEP_CACHED.min(size),
                "{kept} bytes of {size} left cached"
            );
            assert!(
                kept < KEEP_CACHED + DROP_STEP + 1024 * 1024,
                "{kept} bytes of {size} left cached"
            );
        }
        assert!(checkpointer.cached_from >= 3 * DROP_STEP);
        // Every line reads back whole, from the disk where it was dropped.
        drop((history, checkpointer));
        let history = History::open(dir.path()).unwrap();
        let stored = history.recent(ROOM, usize::MAX).unwrap();
        assert_eq!(stored.len() as u64, first);
        assert!(stored.iter().all(|m| m.text == line));
        // Opened again, the first checkpoint lets go of what opening read.
        let mut checkpointer = history.checkpointer().unwrap().unwrap();
        assert_eq!(checkpointer.cached_from, 0);
        checkpointer.last -= CHECKPOINT_INTERVAL;
        assert!(checkpointer.checkpoint_if_due().unwrap());
        assert_eq!(checkpointer.cached_from, size - KEEP_CACHED);
    }

    #[test]
    fn after_a_checkpoint_the_next_commit_starts_the_log_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::open(dir.path()).unwrap();
        let mut checkpointer = history.checkpointer().unwrap().unwrap();
        for n in 0..100 {
            history.insert(&[numbered(ME, 3, n..n + 1)]).unwrap();
        }
        checkpointer.last -= CHECKPOINT_INTERVAL;
        assert!(checkpointer.checkpoint_if_due().unwrap());
        let log = dir.path().join(format!("{HISTORY_FILE}-wal"));
        let grown = fs::metadata(&log).unwrap().len();
        history.insert(&[numbered(ME, 3, 100..101)]).unwrap();
        // One commit, in a log started over: a few pages, on the file's
        // own, which keeps its size.
        let (pages, copied) = checkpointer.checkpoint().unwrap();
        assert!(pages <= 4, "{pages} pages in the log");
        assert_eq!(copied, pages);
        assert_eq!(fs::metadata(&log).unwrap().len(), grown);
    }

    #[test]
    fn the_checkpointer_moves_the_log_while_the_writer_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::open(dir.path()).unwrap();
        let checkpointer = history.checkpointer().unwrap().expect("a file in WAL mode");
        checkpointer.checkpoint().unwrap();
        for n in 0..200 {
            history.insert(&[numbered(ME, 7, n..n + 1)]).unwrap();
        }
        // 200 commits grew the log: the writer did not checkpoint it.
        let (log, copied) = checkpointer.checkpoint().unwrap();
        assert!(log >= 200, "the log holds {log} pages");
        assert_eq!(
            copied, log,
            "a passive checkpoint with no reader copies all"
        );
        // What was copied is in the database, read through a fresh
        // connection after the writer closed.
        drop(history);
        let history = History::open(dir.path()).unwrap();
        assert_eq!(history.recent(ROOM, 300).unwrap().len(), 200);
        assert!(History::in_memory()
            .unwrap()
            .checkpointer()
            .unwrap()
            .is_none());
    }

    #[test]
    fn overlapping_lines_are_cut_out_and_stored_once() {
        let mut history = History::in_memory().unwrap();
        assert_eq!(history.insert(&[numbered(BOB, 1, 0..10)]).unwrap(), [10]);
        assert_eq!(history.insert(&[numbered(BOB, 1, 5..15)]).unwrap(), [5]);
        assert_eq!(rows(&history), 2);
        let stored = history.recent(ROOM, 100).unwrap();
        assert_eq!(numbers(&stored), (0..15).collect::<Vec<_>>());
        assert_eq!(stored[14].text, "line 14");
        // Other texts for lines already held change nothing: the first kept.
        let forged = batch(BOB, 1, 3, &["forged", "forged"]);
        assert_eq!(history.insert(&[forged]).unwrap(), [0]);
        assert_eq!(history.recent(ROOM, 100).unwrap(), stored);
        assert_eq!(rows(&history), 2);

        // A batch over several holes is stored in the holes only.
        assert_eq!(
            history
                .insert(&[
                    numbered(BOB, 2, 2..3),
                    numbered(BOB, 2, 5..6),
                    numbered(BOB, 2, 8..9)
                ])
                .unwrap(),
            [1, 1, 1]
        );
        assert_eq!(history.insert(&[numbered(BOB, 2, 0..10)]).unwrap(), [7]);
        let firsts: Vec<_> = history
            .range(ROOM, BOB, 2, 0, 10, 100)
            .unwrap()
            .iter()
            .map(|run| (run.first_line, run.texts.len()))
            .collect();
        assert_eq!(
            firsts,
            [(0, 2), (2, 1), (3, 2), (5, 1), (6, 2), (8, 1), (9, 1)]
        );
        assert!(history.missing(ROOM, BOB, 2, 10, 10).unwrap().is_empty());

        // Batches of one call overlap each other as well.
        assert_eq!(
            history
                .insert(&[
                    numbered(BOB, 3, 0..4),
                    numbered(BOB, 3, 2..6),
                    numbered(BOB, 3, 0..6),
                    numbered(BOB, 3, 6..8),
                ])
                .unwrap(),
            [4, 2, 0, 2]
        );
        let lines = history.range(ROOM, BOB, 3, 0, 100, 100).unwrap();
        let held: Vec<_> = lines.iter().flat_map(|run| run.texts.clone()).collect();
        let expected: Vec<_> = (0..8).map(|n| format!("line {n}")).collect();
        assert_eq!(held, expected);

        // The same numbers in another conversation or session are other lines.
        let mut elsewhere = numbered(BOB, 1, 0..10);
        elsewhere.conversation = "room:other".into();
        assert_eq!(
            history
                .insert(&[elsewhere, numbered(BOB, 4, 0..10)])
                .unwrap(),
            [10, 10]
        );
        assert_eq!(history.insert(&[]).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn a_newline_in_a_line_is_stored_as_a_space() {
        let mut history = History::in_memory().unwrap();
        let lines = batch(BOB, 1, 0, &["two\nparts", "", "\n", "last"]);
        assert_eq!(history.insert(&[lines]).unwrap(), [4]);
        let stored = history.recent(ROOM, 10).unwrap();
        assert_eq!(texts(&stored), ["two parts", "", " ", "last"]);
        assert_eq!(numbers(&stored), [0, 1, 2, 3]);
    }

    #[test]
    fn a_batch_past_the_limits_is_not_stored() {
        let mut history = History::in_memory().unwrap();
        let mut longest = batch(BOB, 1, 0, &[]);
        longest.texts = vec![String::new(); MAX_BATCH_LINES];
        let mut too_long = longest.clone();
        too_long.session = 2;
        too_long.texts.push(String::new());
        let at_limit = batch(BOB, 3, MAX_LINE, &["last"]);
        let past = batch(BOB, 4, MAX_LINE - 1, &["a", "b", "c"]);
        let far_past = batch(BOB, 4, u64::MAX, &["x"]);
        let empty = batch(BOB, 4, 0, &[]);
        let mut future = batch(BOB, 5, 0, &["future"]);
        future.ts_ms = u64::MAX;
        assert_eq!(
            history
                .insert(&[longest, too_long, at_limit, past, far_past, empty, future])
                .unwrap(),
            [MAX_BATCH_LINES, 0, 1, 0, 0, 0, 1]
        );
        assert_eq!(
            history.next_line(ROOM, BOB, 1).unwrap(),
            MAX_BATCH_LINES as u64
        );
        assert_eq!(history.next_line(ROOM, BOB, 2).unwrap(), 0);
        assert_eq!(history.next_line(ROOM, BOB, 3).unwrap(), MAX_LINE + 1);
        assert_eq!(history.next_line(ROOM, BOB, 4).unwrap(), 0);
        let stored = history.recent(ROOM, 2).unwrap();
        assert_eq!(texts(&stored), ["last", "future"]);
        assert_eq!(stored[0].line, MAX_LINE);
        assert_eq!(
            stored[1].ts_ms,
            i64::MAX as u64,
            "a time past the range is kept as its end"
        );
        let runs = history.range(ROOM, BOB, 3, 0, u64::MAX, 10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].first_line, MAX_LINE);
        assert_eq!(
            history.missing(ROOM, BOB, 3, u64::MAX, 1).unwrap(),
            [(0, MAX_LINE)]
        );
    }

    #[test]
    fn recent_is_the_last_lines_in_arrival_order_oldest_first() {
        let mut history = History::in_memory().unwrap();
        // Arrival order, not line order or the author's clock, decides.
        let mut late = numbered(BOB, 1, 0..3);
        late.ts_ms = 1;
        history
            .insert(&[
                numbered(BOB, 1, 9..12),
                late,
                direct(BOB, BOB, 0, "elsewhere"),
            ])
            .unwrap();
        history.insert(&[numbered(ME, 2, 0..2)]).unwrap();

        let all = history.recent(ROOM, 100).unwrap();
        let order: Vec<_> = all.iter().map(|m| (m.author.as_str(), m.line)).collect();
        assert_eq!(
            order,
            [
                (BOB, 9),
                (BOB, 10),
                (BOB, 11),
                (BOB, 0),
                (BOB, 1),
                (BOB, 2),
                (ME, 0),
                (ME, 1)
            ]
        );
        assert_eq!(all[3].ts_ms, 1);
        assert_eq!(all[3].id, message_id(ROOM, BOB, 1, 0));
        // A limit that ends inside a batch takes its last lines.
        assert_eq!(history.recent(ROOM, 4).unwrap(), all[4..]);
        assert_eq!(history.recent(ROOM, 2).unwrap(), all[6..]);
        assert_eq!(history.recent(ROOM, 1).unwrap(), all[7..]);
        assert_eq!(history.recent(ROOM, 8).unwrap(), all);
        assert!(history.recent(ROOM, 0).unwrap().is_empty());
        assert!(history.recent("room:other", 10).unwrap().is_empty());
        let elsewhere = history.recent("peer:12D3KooWbob", 10).unwrap();
        assert_eq!(texts(&elsewhere), ["elsewhere"]);
        assert_eq!(elsewhere[0].peer.as_deref(), Some(BOB));
        assert_eq!(elsewhere[0].room, None);
    }

    #[test]
    fn query_filters_by_room_and_by_peer() {
        let mut history = History::in_memory().unwrap();
        let mut other_room = batch(BOB, 1, 0, &["bob elsewhere"]);
        other_room.room = Some("other".into());
        other_room.conversation = "room:other".into();
        history
            .insert(&[
                batch(BOB, 1, 0, &["bob in rust", "bob again"]),
                batch(ME, 2, 0, &["me in rust"]),
                direct(BOB, ME, 0, "me to bob"),
                direct("12D3KooWcarol", "12D3KooWcarol", 0, "carol to me"),
                other_room,
            ])
            .unwrap();

        let everything = history.query(&Filter::default(), 100).unwrap();
        assert_eq!(everything.len(), 6);
        assert_eq!(
            texts(&history.query(&Filter::default(), 2).unwrap()),
            ["carol to me", "bob elsewhere"]
        );
        let room = Filter {
            room: Some("rust".into()),
            peer: None,
        };
        assert_eq!(
            texts(&history.query(&room, 100).unwrap()),
            ["bob in rust", "bob again", "me in rust"]
        );
        assert_eq!(
            texts(&history.query(&room, 2).unwrap()),
            ["bob again", "me in rust"]
        );
        let bob = Filter {
            room: None,
            peer: Some(BOB.into()),
        };
        assert_eq!(
            texts(&history.query(&bob, 100).unwrap()),
            ["bob in rust", "bob again", "me to bob", "bob elsewhere"]
        );
        let bob_in_rust = Filter {
            room: Some("rust".into()),
            peer: Some(BOB.into()),
        };
        assert_eq!(
            texts(&history.query(&bob_in_rust, 100).unwrap()),
            ["bob in rust", "bob again"]
        );
        assert!(history.query(&bob, 0).unwrap().is_empty());
    }

    #[test]
    fn statuses_follow_sending_and_the_delivery_mark() {
        use Status::*;
        let mut history = History::in_memory().unwrap();
        history
            .insert(&[
                numbered(ME, 1, 0..3),
                numbered(ME, 1, 3..5),
                numbered(ME, 1, 5..8),
                numbered(BOB, 1, 0..2),
                numbered(ME, 2, 0..1),
            ])
            .unwrap();
        assert_eq!(history.unsent(ROOM, ME, 1).unwrap().len(), 3);

        // Rows starting in [0, 5) were sent; the one at 5 was not.
        history.mark_sent(ROOM, ME, 1, 0, 5).unwrap();
        // Neither a range that only reaches into a row nor Bob's lines.
        history.mark_sent(ROOM, ME, 1, 6, 100).unwrap();
        history.mark_sent(ROOM, BOB, 1, 0, 100).unwrap();
        assert_eq!(
            statuses(&history),
            [Sent, Sent, Sent, Sent, Sent, Queued, Queued, Queued, Received, Received, Queued]
        );
        assert_eq!(
            history.unsent(ROOM, ME, 1).unwrap(),
            [numbered(ME, 1, 5..8)]
        );
        assert_eq!(
            history.unsent(ROOM, ME, 2).unwrap(),
            [numbered(ME, 2, 0..1)]
        );
        assert!(history.unsent(ROOM, BOB, 1).unwrap().is_empty());
        assert!(history.unsent("room:other", ME, 1).unwrap().is_empty());

        assert_eq!(history.delivered_through(ROOM, ME, 1).unwrap(), 0);
        assert_eq!(history.mark_delivered_through(ROOM, ME, 1, 4).unwrap(), 0);
        assert_eq!(
            statuses(&history),
            [
                Delivered, Delivered, Delivered, Delivered, Sent, Queued, Queued, Queued, Received,
                Received, Queued
            ]
        );
        // Never lowered; the previous mark is returned.
        assert_eq!(history.mark_delivered_through(ROOM, ME, 1, 2).unwrap(), 4);
        assert_eq!(history.delivered_through(ROOM, ME, 1).unwrap(), 4);
        // A line acknowledged while still queued reads as delivered too.
        assert_eq!(history.mark_delivered_through(ROOM, ME, 1, 7).unwrap(), 4);
        assert_eq!(history.delivered_through(ROOM, ME, 1).unwrap(), 7);
        // Someone else's lines stay received whatever the mark.
        assert_eq!(history.mark_delivered_through(ROOM, BOB, 1, 9).unwrap(), 0);
        assert_eq!(
            statuses(&history),
            [
                Delivered, Delivered, Delivered, Delivered, Delivered, Delivered, Delivered,
                Queued, Received, Received, Queued
            ]
        );
        // Marks are per stream.
        assert_eq!(history.delivered_through(ROOM, ME, 2).unwrap(), 0);
        assert_eq!(history.delivered_through("room:other", ME, 1).unwrap(), 0);
        assert_eq!(
            history
                .mark_delivered_through(ROOM, ME, 3, u64::MAX)
                .unwrap(),
            0
        );
        assert_eq!(
            history.delivered_through(ROOM, ME, 3).unwrap(),
            i64::MAX as u64
        );
        // The row is still queued: it is published again on the next start.
        assert_eq!(
            history.unsent(ROOM, ME, 1).unwrap(),
            [numbered(ME, 1, 5..8)]
        );
    }

    /// The status column of each row, as stored.
    fn row_statuses(history: &History) -> Vec<String> {
        let mut select = history
            .conn
            .prepare("SELECT status FROM batches ORDER BY seq_no")
            .unwrap();
        let rows = select.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// A history holding five lines of ours, queued in three batches
    /// (lines 1-2, 3-4 and 5).
    fn ours_in_three_batches() -> History {
        let mut history = History::in_memory().unwrap();
        history
            .insert(&[
                numbered(ME, 1, 1..3),
                numbered(ME, 1, 3..5),
                numbered(ME, 1, 5..6),
            ])
            .unwrap();
        history
    }

    #[test]
    fn sent_is_a_mark_unless_an_earlier_line_is_still_queued() {
        use Status::*;
        let mut history = ours_in_three_batches();
        // In order: the stream's mark moves; no row is written again.
        history.mark_sent(ROOM, ME, 1, 1, 3).unwrap();
        assert_eq!(statuses(&history), [Sent, Sent, Queued, Queued, Queued]);
        assert_eq!(row_statuses(&history), ["queued", "queued", "queued"]);
        // The batch at 3 kept back, the one at 5 sent: that row is marked
        // by itself, and the mark stays below the one still queued.
        history.mark_sent(ROOM, ME, 1, 5, 6).unwrap();
        assert_eq!(statuses(&history), [Sent, Sent, Queued, Queued, Sent]);
        assert_eq!(row_statuses(&history), ["queued", "queued", "sent"]);
        assert_eq!(
            history.unsent(ROOM, ME, 1).unwrap(),
            [numbered(ME, 1, 3..5)]
        );
        // The batch kept back goes out: the mark passes it.
        history.mark_sent(ROOM, ME, 1, 3, 5).unwrap();
        assert_eq!(statuses(&history), [Sent; 5]);
        assert!(history.unsent(ROOM, ME, 1).unwrap().is_empty());
    }

    #[test]
    fn lines_a_recipient_acknowledged_are_not_sent_again() {
        let mut history = ours_in_three_batches();
        // Published, never marked sent: all three wait to go again...
        assert_eq!(history.unsent(ROOM, ME, 1).unwrap().len(), 3);
        // ...but for what a recipient acknowledged (the batch at 3
        // straddles the mark: it goes whole).
        history.mark_delivered_through(ROOM, ME, 1, 4).unwrap();
        assert_eq!(
            history.unsent(ROOM, ME, 1).unwrap(),
            [numbered(ME, 1, 3..5), numbered(ME, 1, 5..6)]
        );
        history.mark_delivered_through(ROOM, ME, 1, 6).unwrap();
        assert!(history.unsent(ROOM, ME, 1).unwrap().is_empty());
    }

    #[test]
    fn the_first_join_of_a_conversation_is_kept() {
        let mut history = History::in_memory().unwrap();
        assert_eq!(history.joined(ROOM, 1_000).unwrap(), 1_000);
        assert_eq!(history.joined(ROOM, 5_000).unwrap(), 1_000);
        assert_eq!(history.joined("room:other", 7_000).unwrap(), 7_000);
    }

    #[test]
    fn lines_nobody_acknowledged_go_back_to_the_outbox() {
        use Status::*;
        let mut history = ours_in_three_batches();
        history.mark_sent(ROOM, ME, 1, 1, 6).unwrap();
        // A recipient holds lines 1 to 3: the batch at 3 straddles that.
        history.mark_delivered_through(ROOM, ME, 1, 4).unwrap();
        assert_eq!(history.requeue_undelivered(ROOM, ME, 1).unwrap(), 2);
        assert_eq!(
            statuses(&history),
            [Delivered, Delivered, Delivered, Queued, Queued]
        );
        assert_eq!(
            history.unsent(ROOM, ME, 1).unwrap(),
            [numbered(ME, 1, 3..5), numbered(ME, 1, 5..6)]
        );
        // Nothing left to put back once every line is acknowledged.
        history.mark_delivered_through(ROOM, ME, 1, 6).unwrap();
        assert_eq!(history.requeue_undelivered(ROOM, ME, 1).unwrap(), 0);
    }

    #[test]
    fn a_database_of_the_first_format_is_brought_up_to_date_with_its_statuses() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(HISTORY_FILE)).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let mut old = History::new(conn, dir.path().join(HISTORY_FILE), None);
            old.insert(&[numbered(ME, 1, 1..3), numbered(ME, 1, 3..4)])
                .unwrap();
            old.conn
                .execute(
                    "UPDATE batches SET status = 'sent' WHERE first_line = 1",
                    [],
                )
                .unwrap();
        }
        let err = History::open_read_only(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::OlderSchema { found: 1, .. }),
            "{err:?}"
        );
        let mut history = History::open(dir.path()).unwrap();
        assert_eq!(history.version().unwrap(), SCHEMA_VERSION);
        use Status::*;
        assert_eq!(statuses(&history), [Sent, Sent, Queued]);
        history.mark_sent(ROOM, ME, 1, 3, 4).unwrap();
        assert_eq!(statuses(&history), [Sent, Sent, Sent]);
        assert!(History::open_read_only(dir.path()).is_ok());
    }

    #[test]
    fn a_batch_handed_in_as_delivered_is_stored_as_sent() {
        let mut history = History::in_memory().unwrap();
        let mut lines = numbered(ME, 1, 0..2);
        lines.status = Status::Delivered;
        history.insert(&[lines]).unwrap();
        assert_eq!(statuses(&history), [Status::Sent, Status::Sent]);
    }

    #[test]
    fn range_serves_runs_across_rows_and_parts_of_rows() {
        let mut history = History::in_memory().unwrap();
        let mut later = numbered(BOB, 1, 8..12);
        later.name = Some("bobby".into());
        history
            .insert(&[numbered(BOB, 1, 0..4), numbered(BOB, 1, 4..6), later])
            .unwrap();
        let nick = format!("{BOB}-nick");

        assert_eq!(
            history.range(ROOM, BOB, 1, 1, 9, 100).unwrap(),
            [
                run(1, 1..4, &nick, 1_000),
                run(4, 4..6, &nick, 1_004),
                run(8, 8..9, "bobby", 1_008)
            ]
        );
        assert_eq!(
            history.range(ROOM, BOB, 1, 1, 9, 4).unwrap(),
            [run(1, 1..4, &nick, 1_000), run(4, 4..5, &nick, 1_004)]
        );
        assert_eq!(
            history.range(ROOM, BOB, 1, 2, 3, 100).unwrap(),
            [run(2, 2..3, &nick, 1_000)]
        );
        // From inside the gap on.
        assert_eq!(
            history.range(ROOM, BOB, 1, 7, 100, 100).unwrap(),
            [run(8, 8..12, "bobby", 1_008)]
        );
        let all = history
            .range(ROOM, BOB, 1, 0, u64::MAX, usize::MAX)
            .unwrap();
        assert_eq!(all.iter().map(|run| run.texts.len()).sum::<usize>(), 10);
        assert!(history.range(ROOM, BOB, 1, 6, 8, 100).unwrap().is_empty());
        assert!(history.range(ROOM, BOB, 1, 5, 5, 100).unwrap().is_empty());
        assert!(history.range(ROOM, BOB, 1, 9, 2, 100).unwrap().is_empty());
        assert!(history.range(ROOM, BOB, 1, 0, 12, 0).unwrap().is_empty());
        assert!(history.range(ROOM, BOB, 2, 0, 12, 100).unwrap().is_empty());
        assert!(history.range(ROOM, ME, 1, 0, 12, 100).unwrap().is_empty());
    }

    #[test]
    fn streams_next_line_and_missing() {
        let mut history = History::in_memory().unwrap();
        // Bob's session 1 holds 0, 1, 2, 5, 6 and 9.
        let mut batches = vec![
            numbered(BOB, 1, 0..3),
            numbered(BOB, 1, 5..7),
            numbered(BOB, 1, 9..10),
        ];
        // An old session, last written long ago.
        let mut old = numbered(BOB, 0, 3..4);
        old.ts_ms = 10;
        batches.push(old);
        batches.push(numbered(BOB, u64::MAX, 0..1));
        batches.push(numbered(ME, 3, 0..1));
        history.insert(&batches).unwrap();

        assert_eq!(history.next_line(ROOM, BOB, 1).unwrap(), 10);
        assert_eq!(history.next_line(ROOM, BOB, 0).unwrap(), 4);
        assert_eq!(history.next_line(ROOM, BOB, 2).unwrap(), 0);
        assert_eq!(history.next_line("room:other", BOB, 1).unwrap(), 0);
        assert_eq!(history.next_line(ROOM, BOB, u64::MAX).unwrap(), 1);

        let stream = |author: &str, session, next_line| Stream {
            author: author.into(),
            session,
            next_line,
        };
        assert_eq!(
            history.streams(ROOM, 0).unwrap(),
            [
                stream(BOB, 0, 4),
                stream(BOB, 1, 10),
                stream(BOB, u64::MAX, 1),
                stream(ME, 3, 1),
            ]
        );
        // The old session falls outside the window.
        assert_eq!(
            history.streams(ROOM, 1_000).unwrap(),
            [
                stream(BOB, 1, 10),
                stream(BOB, u64::MAX, 1),
                stream(ME, 3, 1)
            ]
        );
        assert!(history.streams("room:other", 0).unwrap().is_empty());

        assert_eq!(
            history.missing(ROOM, BOB, 1, 10, 10).unwrap(),
            [(3, 5), (7, 9)]
        );
        assert_eq!(
            history.missing(ROOM, BOB, 1, 12, 10).unwrap(),
            [(3, 5), (7, 9), (10, 12)]
        );
        assert_eq!(history.missing(ROOM, BOB, 1, 6, 10).unwrap(), [(3, 5)]);
        assert_eq!(history.missing(ROOM, BOB, 1, 4, 10).unwrap(), [(3, 4)]);
        assert_eq!(history.missing(ROOM, BOB, 1, 12, 1).unwrap(), [(3, 5)]);
        assert!(history.missing(ROOM, BOB, 1, 12, 0).unwrap().is_empty());
        assert!(history.missing(ROOM, BOB, 1, 3, 10).unwrap().is_empty());
        assert!(history.missing(ROOM, BOB, 1, 2, 10).unwrap().is_empty());
        assert_eq!(history.missing(ROOM, BOB, 0, 4, 10).unwrap(), [(0, 3)]);
        assert_eq!(history.missing(ROOM, BOB, 2, 2, 10).unwrap(), [(0, 2)]);
    }

    /// 200 batches of 4,096 lines of 64 bytes, each stored in a transaction
    /// of its own (the slowest way the chat stores them: one sync each),
    /// must take under 10 s in a debug build on a loaded machine. A bound far
    /// above the expected time: it catches a statement or a row per line.
    ///
    /// Measured on a 2-core virtual machine: about 2.1 million lines a second
    /// in a debug build, about 3.1 to 3.3 million in release, against the
    /// chat's 1 million. The release figure is printed by
    /// `nice cargo test --release --lib -j1
    /// store::history::tests::batches_of_thousands_of_lines_are_stored_quickly
    /// -- --nocapture`.
    #[test]
    fn batches_of_thousands_of_lines_are_stored_quickly() {
        const BATCHES: u64 = 200;
        const LINES: u64 = 4_096;
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::open(dir.path()).unwrap();
        let mut lines = batch(BOB, 1, 0, &[]);
        lines.texts = (0..LINES).map(|n| format!("{n:064}")).collect();
        let started = Instant::now();
        for n in 0..BATCHES {
            lines.first_line = n * LINES;
            let new = history.insert(std::slice::from_ref(&lines)).unwrap();
            assert_eq!(new, [LINES as usize]);
        }
        let elapsed = started.elapsed();
        let total = BATCHES * LINES;
        eprintln!(
            "stored {total} lines of 64 bytes in {BATCHES} transactions in {elapsed:.2?}: \
             {:.0} lines/s",
            total as f64 / elapsed.as_secs_f64()
        );
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
        assert_eq!(history.next_line(ROOM, BOB, 1).unwrap(), total);
        assert!(history.missing(ROOM, BOB, 1, total, 10).unwrap().is_empty());
        let last = history.recent(ROOM, 1).unwrap();
        assert_eq!(last[0].line, total - 1);
        assert_eq!(last[0].text, format!("{:064}", LINES - 1));
    }

    /// Puts `contents` in place of the history, checks that opening it
    /// fails as `expected` says, naming the file, and that the file is left
    /// exactly as it was. Returns the directory, still holding the file,
    /// and the error.
    fn assert_refused(contents: &[u8], expected: fn(&Error) -> bool) -> (TempDir, Error) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        fs::write(&path, contents).unwrap();
        let err = History::open(dir.path()).unwrap_err();
        assert!(expected(&err), "{err:?}");
        assert_names(&err, &path, "left untouched");
        assert_eq!(fs::read(&path).unwrap(), contents);
        (dir, err)
    }

    /// The bytes of a database set up by `sql` alone.
    fn database_bytes(sql: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("made.sqlite3");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        fs::read(&path).unwrap()
    }

    #[test]
    fn a_newer_format_is_refused_and_left_untouched() {
        let newer = database_bytes("CREATE TABLE future (x); PRAGMA user_version = 99;");
        let (dir, err) = assert_refused(
            &newer,
            |err| matches!(err, Error::NewerSchema { found: 99, known, .. } if *known == SCHEMA_VERSION),
        );
        assert!(err.to_string().contains("newer"), "{err}");
        let err = History::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NewerSchema { .. }), "{err:?}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
        let garbage: Vec<u8> = (0..10_000u32).map(|n| (n * 7 % 251) as u8).collect();
        let (dir, err) =
            assert_refused(&garbage, |err| matches!(err, Error::CorruptDatabase { .. }));
        let message = err.to_string();
        assert!(
            message.contains("move it away to start a new history"),
            "{message}"
        );
        let err = History::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, Error::CorruptDatabase { .. }), "{err:?}");
    }

    #[test]
    fn a_damaged_database_fails_the_check_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut history = History::open(dir.path()).unwrap();
            let batches: Vec<_> = (0..500).map(|n| numbered(BOB, n, 0..2)).collect();
            history.insert(&batches).unwrap();
        }
        // Scribble over the pages after the first, keeping the header.
        let mut bytes = fs::read(dir.path().join(HISTORY_FILE)).unwrap();
        assert!(bytes.len() > 16_384, "{}", bytes.len());
        bytes[8_192..16_384].fill(0x5a);
        assert_refused(&bytes, |err| matches!(err, Error::CorruptDatabase { .. }));
    }

    #[test]
    fn another_kind_of_database_is_refused() {
        let other = database_bytes("CREATE TABLE batches (x)");
        let (_dir, err) =
            assert_refused(&other, |err| matches!(err, Error::CorruptDatabase { .. }));
        assert!(err.to_string().contains("another kind"), "{err}");
    }

    #[test]
    fn a_full_disk_loses_only_the_failed_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let kept = numbered(BOB, 1, 0..10);
        {
            let mut history = History::open(dir.path()).unwrap();
            history.insert(std::slice::from_ref(&kept)).unwrap();
            let pages: i64 = history
                .conn
                .pragma_query_value(None, "page_count", |row| row.get(0))
                .unwrap();
            history
                .conn
                .pragma_update(None, "max_page_count", pages)
                .unwrap();
            let mut big = batch(BOB, 1, 10, &[]);
            big.texts = vec!["x".repeat(200); 2_000];
            let small = numbered(BOB, 2, 0..1);
            let err = history.insert(&[small, big]).unwrap_err();
            assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
            assert_names(&err, &path, "the disk is full");
            // The connection is still usable, and nothing of the call is there.
            assert_eq!(history.next_line(ROOM, BOB, 1).unwrap(), 10);
            assert_eq!(history.next_line(ROOM, BOB, 2).unwrap(), 0);
            assert_eq!(history.insert(&[numbered(BOB, 1, 10..11)]).unwrap(), [1]);
        }
        let mut history = History::open(dir.path()).unwrap();
        let stored = history.recent(ROOM, 100).unwrap();
        assert_eq!(numbers(&stored), (0..11).collect::<Vec<_>>());
        history.session().unwrap();
        history.mark_delivered_through(ROOM, BOB, 1, 3).unwrap();
    }

    #[test]
    fn an_empty_file_is_set_up_from_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        fs::write(&path, b"").unwrap();
        let err = History::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NoHistory { .. }), "{err:?}");

        let mut history = History::open(dir.path()).unwrap();
        let version: i64 = history
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(history.insert(&[numbered(BOB, 1, 0..1)]).unwrap(), [1]);
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a").join("b");
        let history = History::open(&data).unwrap();
        assert_eq!(history.path(), data.join(HISTORY_FILE));

        let blocked = dir.path().join("file");
        fs::write(&blocked, b"in the way").unwrap();
        let err = History::open(&blocked).unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
    }

    #[test]
    fn a_reader_sees_what_a_running_writer_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let err = History::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NoHistory { .. }), "{err:?}");
        assert_names(&err, &path, "no history");

        let mut writer = History::open(dir.path()).unwrap();
        writer.insert(&[batch(BOB, 1, 0, &["one"])]).unwrap();
        let mut reader = History::open_read_only(dir.path()).unwrap();
        let err = reader.session().unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        let session = writer.session().unwrap();
        assert_eq!(reader.session().unwrap(), session);
        writer.insert(&[batch(BOB, 1, 1, &["two"])]).unwrap();
        assert_eq!(
            texts(&reader.query(&Filter::default(), 10).unwrap()),
            ["one", "two"]
        );
        let err = reader.insert(&[batch(BOB, 1, 2, &["three"])]).unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        assert_names(&err, &path, "readable and writable");
        let err = reader.mark_delivered_through(ROOM, BOB, 1, 1).unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");

        // After the writer is gone (and its log folded in), still readable.
        drop(writer);
        let reader = History::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.query(&Filter::default(), 10).unwrap().len(), 2);
    }

    #[test]
    fn a_bad_stored_value_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let mut history = History::open(dir.path()).unwrap();
        history.insert(&[numbered(BOB, 1, 0..2)]).unwrap();
        history
            .conn
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON; UPDATE batches SET status = 'lost';",
            )
            .unwrap();
        let err = history.recent(ROOM, 10).unwrap_err();
        assert!(matches!(err, Error::CorruptDatabase { .. }), "{err:?}");
        assert_names(&err, &path, "unknown message status 'lost'");

        // Texts that do not split into the row's count of lines.
        history
            .conn
            .execute_batch("UPDATE batches SET status = 'received', texts = 'one line';")
            .unwrap();
        for err in [
            history.recent(ROOM, 10).unwrap_err(),
            history.range(ROOM, BOB, 1, 0, 2, 10).unwrap_err(),
        ] {
            assert!(matches!(err, Error::CorruptDatabase { .. }), "{err:?}");
            assert_names(&err, &path, "a batch of 2 lines holds 1 texts");
        }
    }

    #[test]
    fn in_memory_answers_like_a_file_and_keeps_nothing() {
        let mut history = History::in_memory().unwrap();
        assert_eq!(history.path(), Path::new(":memory:"));
        let session = history.session().unwrap();
        assert_eq!(history.session().unwrap(), session);
        let lines = batch(ME, session, 0, &["hi"]);
        let new = history.insert(std::slice::from_ref(&lines)).unwrap();
        assert_eq!(new, [1]);
        assert_eq!(history.unsent(ROOM, ME, session).unwrap(), [lines]);
        let other = History::in_memory().unwrap();
        assert!(other.query(&Filter::default(), 10).unwrap().is_empty());
    }

    #[test]
    fn in_memory_forgets_the_oldest_beyond_its_budget() {
        let mut history = History::in_memory().unwrap();
        // 48 batches of 1,024 lines of 1 KiB: 48 MiB, past the 32 MiB kept.
        let text = "x".repeat(1023);
        let texts: Vec<&str> = vec![text.as_str(); 1024];
        for n in 0..48u64 {
            let new = history.insert(&[batch(ME, 7, n * 1024, &texts)]).unwrap();
            assert_eq!(new, [1024]);
            assert!(history.held_bytes <= IN_MEMORY_BYTES, "batch {n}");
        }
        let kept = history
            .range(ROOM, ME, 7, 0, 48 * 1024, usize::MAX)
            .unwrap();
        let first = kept.first().map(|run| run.first_line).unwrap();
        let lines: usize = kept.iter().map(|run| run.texts.len()).sum();
        // The newest lines stay, without a hole, and the oldest are gone.
        assert_eq!(first as usize + lines, 48 * 1024);
        assert!(first > 0, "nothing was forgotten");
        let bytes = lines as u64 * 1024;
        assert!(bytes <= IN_MEMORY_BYTES, "{bytes} bytes kept");
        assert!(bytes >= IN_MEMORY_BYTES / 2, "only {bytes} bytes kept");
        // A file-backed history forgets nothing.
        let dir = tempfile::tempdir().unwrap();
        assert!(History::open(dir.path()).unwrap().budget.is_none());
    }

    #[test]
    fn sessions_differ_between_histories() {
        let mut a = History::in_memory().unwrap();
        let mut b = History::in_memory().unwrap();
        assert_ne!(a.session().unwrap(), b.session().unwrap());
    }

    #[test]
    fn ids_times_and_statuses_are_formatted() {
        assert_eq!(
            message_id("room:r/x", "A", 1, 2),
            "room:r/x/A/0000000000000001/2"
        );
        assert_eq!(
            message_id("peer:B", "A", u64::MAX, u64::MAX),
            "peer:B/A/ffffffffffffffff/18446744073709551615"
        );
        assert_eq!(rfc3339(1_795_633_445_123), "2026-11-25T19:04:05.123Z");
        assert_eq!(rfc3339(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
        for status in [
            Status::Queued,
            Status::Sent,
            Status::Delivered,
            Status::Received,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
    }

    #[test]
    fn every_error_names_the_file() {
        let path = PathBuf::from("/data/history.sqlite3");
        let errors = [
            Error::DiskFull { path: path.clone() },
            Error::NoHistory { path: path.clone() },
            Error::Locked { path: path.clone() },
            Error::NewerSchema {
                path: path.clone(),
                found: 3,
                known: 1,
            },
            Error::OlderSchema {
                path: path.clone(),
                found: 1,
                known: 2,
            },
            Error::CorruptDatabase {
                path: path.clone(),
                reason: "r".into(),
            },
            Error::Database {
                path: path.clone(),
                cause: rusqlite::Error::QueryReturnedNoRows,
            },
            Error::Lock {
                path: path.clone(),
                cause: io::Error::from(io::ErrorKind::PermissionDenied),
            },
        ];
        for error in &errors {
            assert_names(error, &path, "");
        }
    }
}
