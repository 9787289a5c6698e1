//! Reads: the last lines of a conversation, what a member catching up is
//! served, how far each stream is held and what is missing of it, and our
//! lines still to publish.

use rusqlite::{params, OptionalExtension};

use super::rows::{split_lines, BatchRow};
use super::write::{stream_mark, Mark};
use super::{
    from_sql, session_from_sql, session_to_sql, to_sql, Batch, Error, Filter, History, Run,
    StoredMessage, Stream, Take,
};

/// Where a room stands in the store when we join it: what [`History::resume_room`]
/// reads so the chat picks it up where the last run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomResume {
    /// How far each author's session active since the sync window began is
    /// held (see [`History::streams`]): nothing below it is shown again,
    /// and what is missing is fetched.
    pub streams: Vec<Stream>,
    /// The number after our last line in the room this session
    /// ([`History::next_line`]).
    pub next_line: u64,
    /// Our lines still to publish ([`History::unsent`]).
    pub unsent: Vec<Batch>,
    /// Our lines below it are held by a member
    /// ([`History::delivered_through`]).
    pub delivered_through: u64,
    /// When we first joined the room, in ms since 1970 ([`History::joined`]).
    pub joined: u64,
    /// For each stream, in the same order: the lines below its end that
    /// are not held ([`History::missing`], from line 0, at most
    /// `RESUME_HOLES` ranges).
    pub missing: Vec<Vec<(u64, u64)>>,
}

/// Ranges of missing lines read per stream when a room is resumed: as
/// many holes as delivery remembers per stream, and the range before the
/// first line held.
pub const RESUME_HOLES: usize = crate::chat::delivery::order::MAX_HOLES + 1;

impl History {
    /// Everything the chat needs to pick a room up where the store left it
    /// (see [`RoomResume`]): the streams of `conversation` written at or
    /// after `since_ms`, and of `me`'s `session` the next line, the lines
    /// never published and the delivery mark; the first join is recorded
    /// as `now_ms` if this is it.
    ///
    /// # Errors
    ///
    /// As [`History::recent`], and [`Error::DiskFull`] when the first join
    /// cannot be recorded.
    pub fn resume_room(
        &mut self,
        conversation: &str,
        me: &str,
        session: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<RoomResume, Error> {
        let streams = self.streams(conversation, since_ms)?;
        let missing = streams
            .iter()
            .map(|s| {
                self.missing(
                    conversation,
                    &s.author,
                    s.session,
                    s.next_line,
                    RESUME_HOLES,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(RoomResume {
            missing,
            streams,
            next_line: self.next_line(conversation, me, session)?,
            unsent: self.unsent(conversation, me, session)?,
            delivered_through: self.delivered_through(conversation, me, session)?,
            joined: self.joined(conversation, now_ms)?,
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
    /// line is [`Status::Delivered`](super::Status::Delivered) when it is below its stream's
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

    /// The `limit` lines of a conversation just before the line `id` (a
    /// [`message_id`](super::message_id) of it), oldest first, as
    /// [`History::recent`] gives them: a page further back in a
    /// conversation someone scrolls through. `None` when no line `id` is
    /// held (not yet written, or not an id).
    ///
    /// # Errors
    ///
    /// As [`History::recent`].
    pub fn before(&self, id: &str, limit: usize) -> Result<Option<Vec<StoredMessage>>, Error> {
        let Some((conversation, author, session, line)) = super::parse_message_id(id) else {
            return Ok(None);
        };
        let Some(seq_no) = self.read(|conn| {
            conn.prepare_cached(
                "SELECT seq_no FROM batches \
                 WHERE conversation = ?1 AND author = ?2 AND session = ?3 AND first_line <= ?4 \
                 ORDER BY first_line DESC LIMIT 1",
            )?
            .query_row(
                params![conversation, author, session_to_sql(session), to_sql(line)],
                |row| row.get::<_, i64>(0),
            )
            .optional()
        })?
        else {
            return Ok(None);
        };
        // Of the row holding the line, the lines before it.
        let mut own = Vec::new();
        let held = self.read(|conn| {
            let row = conn
                .prepare_cached(concat!(batch_rows!(), "WHERE b.seq_no = ?1"))?
                .query_row(params![seq_no], BatchRow::read)?;
            if line >= row.first_line.saturating_add(row.count) {
                return Ok(false);
            }
            row.expand(0, &mut own)?;
            own.truncate(usize::try_from(line - row.first_line).unwrap_or(usize::MAX));
            Ok(true)
        })?;
        if !held {
            return Ok(None);
        }
        if own.len() >= limit {
            return Ok(Some(own.split_off(own.len() - limit)));
        }
        let mut older = self.last_lines(
            concat!(
                batch_rows!(),
                "WHERE b.conversation = ?1 AND b.seq_no < ?2 ORDER BY b.seq_no DESC"
            ),
            params![conversation, seq_no],
            limit - own.len(),
        )?;
        older.append(&mut own);
        Ok(Some(older))
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
    /// from `from` up to but not including `to`, as much as `take` allows,
    /// in line order: what a member catching up is sent. Each run is the part
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
        take: Take,
    ) -> Result<Vec<Run>, Error> {
        let Take {
            lines: max,
            bytes: max_bytes,
        } = take;
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
            let (mut bytes, mut full) = (0, false);
            while left > 0 && !full {
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
                let mut run = Vec::new();
                for line in &lines[skip..skip + take] {
                    if bytes + line.len() > max_bytes && !(runs.is_empty() && run.is_empty()) {
                        full = true;
                        break;
                    }
                    bytes += line.len();
                    run.push((*line).to_owned());
                }
                let take = run.len();
                if take > 0 {
                    runs.push(Run {
                        first_line: start,
                        texts: run,
                        name: row.get(3)?,
                        ts_ms: from_sql(row, 4)?,
                    });
                }
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
}
