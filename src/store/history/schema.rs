//! The format of the database, and bringing an older one up to date;
//! opening checks that a file is ours and whole before anything is
//! written to it (see "Never written over" in the notes of the history
//! module).

use super::checkpoint::{BACKSTOP_CHECKPOINT_PAGES, LOG_FILE_LIMIT};
use super::{db_error, Error, History, BUSY_TIMEOUT, STATEMENT_CACHE};

/// The page size of a new database file, in bytes (SQLite's default is
/// 4,096). See "Large pages" above.
pub(super) const PAGE_BYTES: u32 = 16_384;

/// SQLite's page cache of the writing connection, in KiB (its default is
/// 2,000).
pub const CACHE_KIB: i64 = 512;

/// How many problems `quick_check` reports before it stops.
const QUICK_CHECK_PROBLEMS: u32 = 3;

/// The format's history: entry `n` brings a database from version `n` to
/// `n + 1`. Entries are only ever appended.
/// The newest format of the database this program reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) const MIGRATIONS: &[&str] = &[
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
    // 3: file transfers, each side's own record: what was offered, where
    // it stands, and (receiving) which pieces are held, verified.
    "CREATE TABLE transfers (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        id INTEGER NOT NULL,
        outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
        peer TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        root BLOB NOT NULL CHECK (length(root) = 32),
        path TEXT,
        stamp INTEGER,
        state TEXT NOT NULL CHECK (state IN
            ('offered', 'accepted', 'done', 'rejected', 'cancelled', 'failed')),
        have BLOB,
        moved INTEGER NOT NULL DEFAULT 0 CHECK (moved >= 0),
        ts_ms INTEGER NOT NULL CHECK (ts_ms >= 0),
        UNIQUE (peer, id, outgoing)
    );",
];

impl History {
    /// Checks the database and brings it up to date; `on_disk` sets the
    /// durability pragmas, which mean nothing in memory.
    pub(super) fn prepare(&mut self, on_disk: bool) -> Result<(), Error> {
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
            // Pages kept in memory (KiB when negative): lines are appended
            // and read back rarely, so a small cache costs little time,
            // and a big write spills to the log instead of growing it.
            self.conn
                .pragma_update(None, "cache_size", -CACHE_KIB)
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
    pub(super) fn version(&self) -> Result<i64, Error> {
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
}
