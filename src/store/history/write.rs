//! Writes: storing batches (each line once), the sent and delivery marks,
//! putting undelivered lines back in the outbox, and the small values kept
//! in `meta` (our session, when we joined a conversation).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{join_lines, storable_end};
use super::{from_sql, session_from_sql, session_to_sql, to_sql, Batch, Error, History};

/// The key in `meta` of our persistent session.
const SESSION_KEY: &str = "session";

/// Keys in `meta` of when we first joined each conversation: this, then
/// the conversation.
const JOINED_KEY: &str = "joined:";

impl History {
    /// Stores batches in one transaction and says, for each, how many of its
    /// lines were new.
    ///
    /// Lines already stored for the same (conversation, author, session),
    /// earlier or by a batch before in the same call, are cut out of the
    /// incoming batch, which may leave it stored in several rows: no line is
    /// ever stored twice, and the one stored first is kept. A batch of more
    /// than [`MAX_BATCH_LINES`](super::MAX_BATCH_LINES) lines, or with a line past
    /// [`MAX_LINE`](super::MAX_LINE), is
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

    /// Stores one direct message: `batch` is given the line after the last
    /// one held of its stream (its own `first_line` is not used), and one
    /// of ours is marked delivered at once: the chat stores it only after
    /// its stream was closed cleanly by both ends, so the peer has it. Returns the line's number.
    /// Direct messages are numbered here, by the store, because each side
    /// numbers its own copy of a conversation.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`] or [`Error::Database`]; then the line was not
    /// stored (or, for ours, not marked delivered).
    pub fn store_direct(&mut self, mut batch: Batch) -> Result<u64, Error> {
        let line = self.next_line(&batch.conversation, &batch.author, batch.session)?;
        batch.first_line = line;
        self.insert(std::slice::from_ref(&batch))?;
        if batch.outgoing {
            self.mark_delivered_through(
                &batch.conversation,
                &batch.author,
                batch.session,
                line.saturating_add(1),
            )?;
        }
        Ok(line)
    }

    /// Removes the oldest rows until the text held is at most `target`
    /// bytes (for a history in memory).
    pub(super) fn forget_oldest(&mut self, target: u64) -> Result<(), Error> {
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
    /// `next_line`: our lines there read as [`Status::Delivered`](super::Status::Delivered) from now
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
}

/// A mark per stream: every line below it is held by a recipient
/// (`delivered`), or was handed to the network (`sent`). Both tables have
/// the same shape.
#[derive(Clone, Copy)]
pub(super) enum Mark {
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
pub(super) fn stream_mark(
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
