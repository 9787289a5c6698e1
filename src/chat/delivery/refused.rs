//! Lines the history refused, kept to be written again, and telling the
//! user when that trouble starts and ends, once each.
//!
//! A full disk refuses every write until space is freed, and a busy chat
//! writes many times a second: a notice per refused write would bury the
//! conversation. So the user is told when the trouble starts, and again
//! when it ends, which is when a write succeeds and nothing refused waits
//! any more. Both chats (plain and secure) keep one [`Refused`].

use super::{Failure, Lines};
use crate::chat::Notice;

/// What is refused: something holding lines.
pub trait Counted {
    /// How many lines it holds.
    fn lines(&self) -> usize;
}

impl Counted for Lines {
    fn lines(&self) -> usize {
        self.texts.len()
    }
}

/// Lines refused kept to be written again, at most: beyond that they are
/// shown but never stored (nor, in a room, acknowledged).
pub const MAX_REFUSED_LINES: usize = 100_000;

/// What the store refused, and whether it is refusing; see the module
/// note.
#[derive(Debug)]
pub struct Refused<T> {
    batches: Vec<T>,
    /// Lines refused and not stored yet: in `batches`, or taken to be
    /// written again.
    lines: usize,
    failing: bool,
}

impl<T> Default for Refused<T> {
    fn default() -> Self {
        Refused {
            batches: Vec::new(),
            lines: 0,
            failing: false,
        }
    }
}

impl<T: Counted> Refused<T> {
    /// A write of `batches` failed: they are kept to be written again
    /// (each marked `again` when refused before, and so counted already;
    /// a new one past [`MAX_REFUSED_LINES`] is not kept). Returns the
    /// notice to show when this starts a trouble.
    pub fn refused(
        &mut self,
        error: &Failure,
        batches: impl IntoIterator<Item = (T, bool)>,
    ) -> Option<Notice> {
        for (batch, again) in batches {
            if !again {
                if self.lines + batch.lines() > MAX_REFUSED_LINES {
                    continue;
                }
                self.lines += batch.lines();
            }
            self.batches.push(batch);
        }
        self.start(if error.disk_full {
            Notice::HistoryFull {
                unstored: self.lines,
            }
        } else {
            Notice::HistoryFailed(error.cause.clone())
        })
    }

    /// A write failed whose lines are not written again (they went out
    /// all the same, or the store is gone): its cause is the notice to
    /// show when this starts a trouble.
    pub fn failed(&mut self, error: &Failure) -> Option<Notice> {
        self.start(Notice::HistoryFailed(error.cause.clone()))
    }

    fn start(&mut self, notice: Notice) -> Option<Notice> {
        (!std::mem::replace(&mut self.failing, true)).then_some(notice)
    }

    /// A write succeeded, storing `again` lines that were refused before.
    /// Returns the notice to show when that ends a trouble.
    pub fn stored(&mut self, again: usize) -> Option<Notice> {
        self.lines = self.lines.saturating_sub(again);
        if !self.failing || self.lines > 0 {
            return None;
        }
        self.failing = false;
        Some(Notice::HistoryResumed)
    }

    /// Takes the refused batches to write them again; they stay counted
    /// until a write stores them ([`Refused::stored`]) or they are
    /// refused again.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.batches)
    }
}

#[cfg(test)]
mod tests {
    use super::super::StreamId;
    use super::*;

    fn full() -> Failure {
        Failure {
            disk_full: true,
            cause: "the disk is full".into(),
        }
    }

    fn lines(count: usize) -> Lines {
        Lines {
            stream: StreamId::new("rust", "12D3KooWbob", 1),
            first: 0,
            texts: vec!["x".into(); count],
            nick: None,
            ts_ms: 0,
        }
    }

    #[test]
    fn a_full_disk_is_said_once_and_its_end_once() {
        let mut refused: Refused<Lines> = Refused::default();
        assert_eq!(refused.stored(0), None);
        assert_eq!(
            refused.refused(&full(), [(lines(7), false)]),
            Some(Notice::HistoryFull { unstored: 7 })
        );
        assert_eq!(refused.refused(&full(), [(lines(3), false)]), None);
        // Newer lines stored while refused ones still wait end nothing.
        assert_eq!(refused.stored(0), None);
        let again: Vec<(Lines, bool)> = refused.take().into_iter().map(|b| (b, true)).collect();
        assert_eq!(again.len(), 2);
        assert_eq!(refused.refused(&full(), again), None);
        let again = refused.take();
        assert_eq!(
            refused.stored(again.iter().map(|b| b.texts.len()).sum()),
            Some(Notice::HistoryResumed)
        );
        assert_eq!(refused.stored(0), None);
        // A later failure is a new trouble, said again.
        assert!(refused.refused(&full(), [(lines(1), false)]).is_some());
    }

    #[test]
    fn refused_lines_are_kept_up_to_the_limit() {
        let mut refused: Refused<Lines> = Refused::default();
        refused.refused(&full(), [(lines(MAX_REFUSED_LINES - 1), false)]);
        refused.refused(&full(), [(lines(2), false), (lines(1), false)]);
        let kept: usize = refused.take().iter().map(|b| b.texts.len()).sum();
        assert_eq!(kept, MAX_REFUSED_LINES);
    }

    #[test]
    fn other_failures_name_their_cause() {
        let mut refused: Refused<Lines> = Refused::default();
        let notice = refused.refused(
            &Failure {
                disk_full: false,
                cause: "the store stopped".into(),
            },
            [(lines(3), false)],
        );
        assert!(
            matches!(&notice, Some(Notice::HistoryFailed(cause)) if cause.contains("stopped")),
            "{notice:?}"
        );
        let mut refused: Refused<Lines> = Refused::default();
        let notice = refused.failed(&full());
        assert!(
            matches!(&notice, Some(Notice::HistoryFailed(cause)) if cause.contains("full")),
            "lines not written again are promised no retry: {notice:?}"
        );
    }
}
