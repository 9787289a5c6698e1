//! When the history refuses writes, and when it takes them again, told
//! once each.
//!
//! A full disk refuses every write until space is freed, and a busy chat
//! writes many times a second: a notice per refused write would bury the
//! conversation. So the user is told when the trouble starts, and again
//! when it ends, which is when a write succeeds and nothing waits to be
//! stored any more. Both chats (plain and secure) keep one of these.

use crate::chat::Notice;
use crate::store;

/// Whether the history is refusing writes; see the module note.
#[derive(Debug, Default)]
pub(super) struct StoreTrouble {
    failing: bool,
}

impl StoreTrouble {
    /// A write failed; the notice to show, the first time only.
    /// `retried` is how many lines wait to be tried again, when the lines
    /// of the failed write are among them (a full disk is then said in so
    /// many words; otherwise, or for any other failure, its cause).
    pub(super) fn failed(
        &mut self,
        error: &store::Error,
        retried: Option<usize>,
    ) -> Option<Notice> {
        if std::mem::replace(&mut self.failing, true) {
            return None;
        }
        Some(match (error, retried) {
            (store::Error::DiskFull { .. }, Some(unstored)) => Notice::HistoryFull { unstored },
            (other, _) => Notice::HistoryFailed(other.to_string()),
        })
    }

    /// A write succeeded, and `unstored` lines still wait to be stored; the
    /// notice to show when that ends a failure.
    pub(super) fn stored(&mut self, unstored: usize) -> Option<Notice> {
        if !self.failing || unstored > 0 {
            return None;
        }
        self.failing = false;
        Some(Notice::HistoryResumed)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn full() -> store::Error {
        store::Error::DiskFull {
            path: PathBuf::from("history.sqlite3"),
        }
    }

    #[test]
    fn a_full_disk_is_said_once_and_its_end_once() {
        let mut trouble = StoreTrouble::default();
        assert_eq!(trouble.stored(0), None);
        assert_eq!(
            trouble.failed(&full(), Some(7)),
            Some(Notice::HistoryFull { unstored: 7 })
        );
        assert_eq!(trouble.failed(&full(), Some(70)), None);
        // Newer lines stored while older ones still wait end nothing.
        assert_eq!(trouble.stored(70), None);
        assert_eq!(trouble.stored(0), Some(Notice::HistoryResumed));
        assert_eq!(trouble.stored(0), None);
        // A later failure is a new one, said again.
        assert!(trouble.failed(&full(), Some(1)).is_some());
    }

    #[test]
    fn lines_not_tried_again_are_not_promised_a_retry() {
        let mut trouble = StoreTrouble::default();
        let notice = trouble.failed(&full(), None);
        assert!(
            matches!(&notice, Some(Notice::HistoryFailed(cause)) if cause.contains("full")),
            "{notice:?}"
        );
    }

    #[test]
    fn other_failures_name_their_cause() {
        let mut trouble = StoreTrouble::default();
        let notice = trouble.failed(&store::Error::Stopped, Some(3));
        assert!(
            matches!(&notice, Some(Notice::HistoryFailed(cause)) if cause.contains("stopped")),
            "{notice:?}"
        );
    }
}
