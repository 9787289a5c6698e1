//! What the app says, kept for the pages that read it: a broadcast bounded
//! in bytes rather than in events.
//!
//! Every page reads the same frames in the same order at its own pace. A
//! page that falls further behind than [`Feed`]'s byte limit (a tab in
//! the background while thousands of lines arrive) is told so rather than
//! holding memory for it; it then reloads what it shows from the history.
//! The app itself never waits for a page.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::watch;

/// Frames handed to a page at once, at most.
const READ_BATCH: usize = 64;

/// The frames kept, by number: the first kept is `first`.
struct Ring {
    frames: VecDeque<Utf8Bytes>,
    first: u64,
    bytes: usize,
}

/// A broadcast of JSON frames, keeping at most a number of bytes of them.
pub struct Feed {
    ring: Mutex<Ring>,
    limit: usize,
    /// The number of the next frame: pages wait on its changes.
    next: watch::Sender<u64>,
}

/// A page fell so far behind that frames it had not read were dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Behind;

/// Where one page reads the feed.
pub struct Cursor {
    next: u64,
    changed: watch::Receiver<u64>,
}

impl Feed {
    /// An empty feed keeping at most `limit` bytes of frames (and always
    /// the last frame, however long).
    pub fn new(limit: usize) -> Feed {
        Feed {
            ring: Mutex::new(Ring {
                frames: VecDeque::new(),
                first: 0,
                bytes: 0,
            }),
            limit,
            next: watch::Sender::new(0),
        }
    }

    /// Adds a frame for every page, dropping the oldest beyond the limit:
    /// the one `make` makes, given its number (none when it makes none).
    pub fn push(&self, make: impl FnOnce(u64) -> Option<Utf8Bytes>) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let number = ring.first + ring.frames.len() as u64;
        let Some(frame) = make(number) else {
            return;
        };
        ring.bytes += frame.len();
        ring.frames.push_back(frame);
        while ring.bytes > self.limit && ring.frames.len() > 1 {
            if let Some(old) = ring.frames.pop_front() {
                ring.bytes -= old.len();
                ring.first += 1;
            }
        }
        let next = ring.first + ring.frames.len() as u64;
        drop(ring);
        self.next.send_replace(next);
    }

    /// A cursor reading from `back` frames before the newest (those still
    /// kept) on, and the number of the next frame to come.
    pub fn cursor(&self, back: usize) -> (Cursor, u64) {
        let (first, next) = self.span();
        let cursor = Cursor {
            next: next.saturating_sub(back as u64).max(first),
            changed: self.next.subscribe(),
        };
        (cursor, next)
    }

    /// A cursor reading from frame `from` on, if it is still kept (or is
    /// the next to come).
    pub fn cursor_at(&self, from: u64) -> Option<Cursor> {
        let (first, next) = self.span();
        (first..=next).contains(&from).then(|| Cursor {
            next: from,
            changed: self.next.subscribe(),
        })
    }

    /// The number of the first frame kept and of the next to come.
    fn span(&self) -> (u64, u64) {
        self.ring.lock().map_or((0, 0), |ring| {
            (ring.first, ring.first + ring.frames.len() as u64)
        })
    }

    fn read(&self, from: u64) -> Result<Vec<Utf8Bytes>, Behind> {
        let Ok(ring) = self.ring.lock() else {
            return Ok(Vec::new());
        };
        let Some(skip) = from.checked_sub(ring.first) else {
            return Err(Behind);
        };
        Ok(ring
            .frames
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(READ_BATCH)
            .cloned()
            .collect())
    }

    /// Bytes of frames kept.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.ring.lock().map_or(0, |ring| ring.bytes)
    }
}

impl Cursor {
    /// The next frames for this page, waiting for some; [`Behind`] when
    /// some it had not read were dropped. Cancel-safe: nothing is taken
    /// until it returns.
    pub async fn next(&mut self, feed: &Feed) -> Result<Vec<Utf8Bytes>, Behind> {
        loop {
            let frames = feed.read(self.next)?;
            if !frames.is_empty() {
                self.next += frames.len() as u64;
                return Ok(frames);
            }
            if self.changed.changed().await.is_err() {
                // The feed is gone with the chat: nothing more will come.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Utf8Bytes {
        Utf8Bytes::from(format!("{n:04}"))
    }

    fn push(feed: &Feed, n: usize) {
        feed.push(|number| {
            assert_eq!(number, n as u64);
            Some(frame(n))
        });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pages_read_every_frame_in_order_and_a_late_page_is_told_it_is_behind() {
        let feed = Feed::new(40);
        let (mut early, _) = feed.cursor(0);
        let mut read = Vec::new();
        for n in 0..8 {
            push(&feed, n);
            read.extend(early.next(&feed).await.expect("kept"));
        }
        assert_eq!(read, (0..8).map(frame).collect::<Vec<_>>());
        // Ten bytes of frames at most: the oldest go.
        let (mut late, next) = feed.cursor(0);
        assert_eq!(next, 8);
        let (mut slow, _) = feed.cursor(100);
        for n in 8..20 {
            push(&feed, n);
        }
        assert!(feed.bytes() <= 40);
        assert_eq!(slow.next(&feed).await, Err(Behind));
        assert_eq!(late.next(&feed).await, Err(Behind));
        // A page starting now reads what is kept, oldest first.
        let (mut fresh, _) = feed.cursor(3);
        assert_eq!(
            fresh.next(&feed).await.expect("kept"),
            vec![frame(17), frame(18), frame(19)]
        );
        // A page back after a while reads on from where it was, while that
        // is kept.
        let mut back = feed.cursor_at(18).expect("kept");
        assert_eq!(
            back.next(&feed).await.expect("kept"),
            vec![frame(18), frame(19)]
        );
        assert!(feed.cursor_at(20).is_some());
        assert!(feed.cursor_at(3).is_none());
        assert!(feed.cursor_at(21).is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_frame_longer_than_the_limit_is_still_sent() {
        let feed = Feed::new(2);
        let (mut cursor, _) = feed.cursor(0);
        feed.push(|_| Some(frame(1)));
        assert_eq!(cursor.next(&feed).await.expect("kept"), vec![frame(1)]);
    }
}
