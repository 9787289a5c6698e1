//! Tests of the history, by the part of it they cover.

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

mod checkpoint;
mod read;
mod schema;
mod write;
