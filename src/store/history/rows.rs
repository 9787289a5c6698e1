//! What the history holds and hands out ([`Batch`], [`StoredMessage`],
//! [`Run`], [`Stream`], [`Status`]), and how a row of `batches` is read
//! back into lines.

use std::fmt;

use rusqlite::types::Type;

use super::{from_sql, message_id, session_from_sql, MAX_BATCH_LINES, MAX_LINE};

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
    /// [`History::mark_delivered_through`](super::History::mark_delivered_through)).
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
    pub(super) fn stored(self) -> &'static str {
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
/// and receives them and as [`History::insert`](super::History::insert) stores them.
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

/// Which lines [`History::query`](super::History::query) returns. The default is all of them.
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

/// How much of a stream one read may return: the delivery core's measure,
/// which the recent lines kept in memory answer by too.
pub use crate::chat::delivery::Take;

/// How much of one author's session in a conversation is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The author's peer ID.
    pub author: String,
    /// The author's session.
    pub session: u64,
    /// One more than the highest line held (there may be gaps below it;
    /// see [`History::missing`](super::History::missing)).
    pub next_line: u64,
}

/// A row of `batches` as read by a [`batch_rows!`] query, with the
/// delivery mark of its stream.
pub(super) struct BatchRow {
    pub(super) conversation: String,
    pub(super) room: Option<String>,
    pub(super) peer: Option<String>,
    pub(super) author: String,
    pub(super) session: u64,
    pub(super) first_line: u64,
    pub(super) count: u64,
    pub(super) name: Option<String>,
    pub(super) ts_ms: u64,
    pub(super) texts: String,
    pub(super) outgoing: bool,
    pub(super) status: Status,
    pub(super) delivered: u64,
}

impl BatchRow {
    /// The column of `texts`, named in errors.
    const TEXTS: usize = 9;

    /// Reads a row of [`batch_rows!`].
    pub(super) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRow> {
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
    pub(super) fn expand(&self, skip: usize, out: &mut Vec<StoredMessage>) -> rusqlite::Result<()> {
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
    pub(super) fn into_batch(self) -> rusqlite::Result<Batch> {
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
pub(super) fn storable_end(batch: &Batch) -> Option<u64> {
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
pub(super) fn join_lines(lines: &[String], out: &mut String) {
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
pub(super) fn split_lines(texts: &str, count: u64, column: usize) -> rusqlite::Result<Vec<&str>> {
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

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn batch(first_line: u64, texts: Vec<String>) -> Batch {
        Batch {
            conversation: "room:lobby".into(),
            room: Some("lobby".into()),
            peer: None,
            author: "a".into(),
            session: 1,
            first_line,
            name: None,
            ts_ms: 0,
            texts,
            outgoing: false,
            status: Status::Received,
        }
    }

    proptest! {
        /// A batch's lines are stored as one text and read back as the
        /// same lines, a newline inside a line read back as a space.
        #[test]
        fn stored_lines_read_back_as_written(
            lines in proptest::collection::vec(".{0,40}", 1..64),
        ) {
            let mut joined = String::new();
            join_lines(&lines, &mut joined);
            let back = split_lines(&joined, lines.len() as u64, 0);
            let expected: Vec<String> = lines.iter().map(|l| l.replace('\n', " ")).collect();
            prop_assert_eq!(back.ok(), Some(expected.iter().map(String::as_str).collect()));
        }

        /// A row whose text does not hold the lines its count says is an
        /// error, never a panic nor a wrong number of lines.
        #[test]
        fn a_row_with_the_wrong_count_is_refused(text in ".{0,200}", count in any::<u64>()) {
            let lines = text.split('\n').count() as u64;
            match split_lines(&text, count, 9) {
                Ok(split) => prop_assert_eq!(split.len() as u64, count),
                Err(_) => prop_assert_ne!(lines, count),
            }
        }

        /// Whatever its first line and size, a batch is storable only
        /// within the limits, and its end never overflows.
        #[test]
        fn only_batches_within_the_limits_are_storable(
            first_line in any::<u64>(),
            count in 0usize..70_000,
        ) {
            let end = storable_end(&batch(first_line, vec![String::new(); count]));
            if let Some(end) = end {
                prop_assert!((1..=MAX_BATCH_LINES).contains(&count));
                prop_assert!(end - 1 <= MAX_LINE);
                prop_assert_eq!(end - first_line, count as u64);
            } else {
                let last = first_line.checked_add((count as u64).saturating_sub(1));
                prop_assert!(count == 0 || count > MAX_BATCH_LINES || last.is_none_or(|l| l > MAX_LINE));
            }
        }

        /// A status read from the database is one we write, or refused.
        #[test]
        fn statuses_parse_back_or_are_refused(
            name in prop_oneof![
                Just("queued".to_owned()),
                Just("sent".to_owned()),
                Just("delivered".to_owned()),
                Just("received".to_owned()),
                "[a-z]{0,10}",
                ".{0,12}",
            ],
        ) {
            if let Some(status) = Status::parse(&name) {
                prop_assert_eq!(status.as_str(), name);
            }
        }
    }
}
