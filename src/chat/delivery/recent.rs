//! The recent lines of every author, kept in memory to answer members
//! that missed some: a cache in front of the store, which answers for
//! anything older.

use std::collections::{HashMap, VecDeque};

use super::StreamId;

/// How much of a stream one read may return: at most `lines` lines and
/// `bytes` of their text, but at least one line. Fetch answers are bounded
/// by it whether they come from [`Recent`] or from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Lines at most.
    pub lines: usize,
    /// Bytes of text at most (one line is returned however long).
    pub bytes: usize,
}

impl Take {
    /// At most `lines` lines, of any size.
    pub fn lines(lines: usize) -> Self {
        Take {
            lines,
            bytes: usize::MAX,
        }
    }
}

/// Bytes of lines kept per author, session and room, to give to members
/// that missed them (text and [`KEPT_LINE_OVERHEAD`] each)...
pub const RECENT_BYTES: usize = 2 * 1024 * 1024;

/// ... and bytes of all authors together (the least recently heard
/// author's lines go first).
pub const RECENT_TOTAL_BYTES: usize = 8 * 1024 * 1024;

/// Authors (per session and room) whose recent lines are kept.
pub const RECENT_AUTHORS: usize = 512;

/// How long a line is kept: members repair gaps within seconds, and a
/// member back after longer is answered from the store. Without an age a
/// quiet chat would fill the byte bounds over hours, a slow climb of
/// memory that never gives anything back.
pub const RECENT_AGE_MS: u64 = 5 * 60 * 1000;

/// What a kept line costs beside its text: its slot in the queue and its
/// allocation, counted so that the byte bounds bound memory, not text.
pub const KEPT_LINE_OVERHEAD: usize = 64;

/// The recent lines of every author, by sequence number, so that a member
/// that missed some (gossipsub drops under load) can fetch them from us.
/// Bounded: the oldest lines of an author go first, and the authors not
/// heard from for longest.
#[derive(Debug, Default)]
pub struct Recent {
    authors: HashMap<StreamId, RecentLines>,
    clock: u64,
}

#[derive(Debug, Default)]
struct RecentLines {
    /// Sequence number of `lines[0]`.
    first: u64,
    /// Each line with its author's clock when it was written.
    lines: VecDeque<(String, u64)>,
    /// When each run of lines was kept, by our clock: the sequence number
    /// its last line has, and the time. One entry per `record`.
    kept: VecDeque<(u64, u64)>,
    bytes: usize,
    used: u64,
    /// The nick its author last gave with these lines.
    nick: Option<String>,
}

impl Recent {
    /// Records lines numbered from `first`, written at `sent_ms` by their
    /// author's clock, kept at `now_ms` by ours (a monotonic clock in
    /// milliseconds, the one [`Recent::forget_older`] is given); only the
    /// ones that continue or overlap what is kept: a jump starts afresh.
    pub fn record(
        &mut self,
        stream: &StreamId,
        first: u64,
        texts: &[String],
        sent_ms: u64,
        now_ms: u64,
    ) {
        self.clock += 1;
        if !self.authors.contains_key(stream) && self.authors.len() >= RECENT_AUTHORS {
            if let Some(oldest) = self
                .authors
                .iter()
                .min_by_key(|(_, r)| r.used)
                .map(|(k, _)| k.clone())
            {
                self.authors.remove(&oldest);
            }
        }
        let entry = self.authors.entry(stream.clone()).or_default();
        entry.used = self.clock;
        let end = entry.first + entry.lines.len() as u64;
        let skip = if entry.lines.is_empty() || first > end || first < entry.first {
            entry.first = first;
            entry.lines.clear();
            entry.kept.clear();
            entry.bytes = 0;
            0
        } else {
            (end - first) as usize
        };
        for text in texts.iter().skip(skip) {
            entry.bytes += cost(text);
            entry.lines.push_back((text.clone(), sent_ms));
        }
        if texts.len() > skip {
            let last = entry.first + entry.lines.len() as u64 - 1;
            entry.kept.push_back((last, now_ms));
        }
        while entry.bytes > RECENT_BYTES && entry.lines.len() > 1 {
            entry.pop();
        }
        entry.shrink();
        let current = stream;
        while self.bytes() > RECENT_TOTAL_BYTES {
            let Some(oldest) = self
                .authors
                .iter()
                .filter(|(k, _)| *k != current)
                .min_by_key(|(_, r)| r.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.authors.remove(&oldest);
        }
    }

    /// Lets go of the lines kept before `now_ms - RECENT_AGE_MS`, and of
    /// the authors left with none.
    pub fn forget_older(&mut self, now_ms: u64) {
        let before = now_ms.saturating_sub(RECENT_AGE_MS);
        self.authors.retain(|_, entry| {
            while entry.kept.front().is_some_and(|&(_, at)| at < before) {
                if let Some((last, _)) = entry.kept.pop_front() {
                    while entry.first <= last && !entry.lines.is_empty() {
                        entry.pop();
                    }
                }
            }
            entry.shrink();
            !entry.lines.is_empty()
        });
    }

    /// What the kept lines cost, in the measure of [`RECENT_BYTES`].
    pub fn bytes(&self) -> usize {
        self.authors.values().map(|r| r.bytes).sum()
    }

    /// Remembers the nick an author gave with its latest lines.
    pub fn name(&mut self, stream: &StreamId, nick: Option<&str>) {
        if let Some(entry) = self.authors.get_mut(stream) {
            entry.nick = nick.map(str::to_owned);
        }
    }

    /// The nick an author last gave with lines we keep.
    pub fn nick(&self, stream: &StreamId) -> Option<String> {
        self.authors.get(stream)?.nick.clone()
    }

    /// The kept lines from `from` to `to` (inclusive), from the first one
    /// kept in that range, as much as `take` allows: returns the first
    /// sequence number, the lines and when each was written.
    pub fn range(
        &self,
        stream: &StreamId,
        from: u64,
        to: u64,
        take: Take,
    ) -> Option<(u64, Vec<String>, Vec<u64>)> {
        let entry = self.authors.get(stream)?;
        let end = entry.first + entry.lines.len() as u64;
        let start = from.max(entry.first);
        let stop = to.saturating_add(1).min(end);
        if start >= stop {
            return None;
        }
        let mut bytes = 0;
        let (lines, stamps) = entry
            .lines
            .range((start - entry.first) as usize..(stop - entry.first) as usize)
            .take(take.lines.max(1))
            .enumerate()
            .take_while(|(i, (text, _))| {
                bytes += text.len();
                *i == 0 || bytes <= take.bytes
            })
            .map(|(_, line)| line.clone())
            .unzip();
        Some((start, lines, stamps))
    }
}

impl RecentLines {
    /// Gives back the room of lines let go, once it is most of what is
    /// held: what the byte bounds count is then what is held.
    fn shrink(&mut self) {
        if self.lines.capacity() > 4 * self.lines.len().max(16) {
            self.lines.shrink_to(self.lines.len() * 2);
        }
        if self.kept.capacity() > 4 * self.kept.len().max(16) {
            self.kept.shrink_to(self.kept.len() * 2);
        }
    }

    /// Lets go of the oldest line.
    fn pop(&mut self) {
        if let Some((old, _)) = self.lines.pop_front() {
            self.bytes -= cost(&old);
            self.first += 1;
        }
        while self
            .kept
            .front()
            .is_some_and(|&(last, _)| last < self.first)
        {
            self.kept.pop_front();
        }
    }
}

/// What a line counts for in [`RECENT_BYTES`].
fn cost(text: &str) -> usize {
    text.len() + KEPT_LINE_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything in range.
    const ALL: Take = Take {
        lines: usize::MAX,
        bytes: usize::MAX,
    };

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recent_lines_are_kept_in_order_and_bounded() {
        let mut recent = Recent::default();
        recent.record(
            &StreamId::new("r", "a", 1),
            1,
            &texts(&["1", "2", "3"]),
            100,
            0,
        );
        recent.record(&StreamId::new("r", "a", 1), 3, &texts(&["3", "4"]), 200, 0);
        assert_eq!(
            recent.range(&StreamId::new("r", "a", 1), 2, 3, ALL),
            Some((2, texts(&["2", "3"]), vec![100, 100]))
        );
        assert_eq!(
            recent.range(&StreamId::new("r", "a", 1), 4, 10, ALL),
            Some((4, texts(&["4"]), vec![200]))
        );
        // At most two lines, or two bytes, or at least one line.
        for (max, max_bytes) in [(2, usize::MAX), (usize::MAX, 2), (0, 0)] {
            let (_, lines, _) = recent
                .range(
                    &StreamId::new("r", "a", 1),
                    1,
                    10,
                    Take {
                        lines: max,
                        bytes: max_bytes,
                    },
                )
                .expect("kept");
            assert_eq!(lines, texts(&["1", "2", "3", "4"])[..max.clamp(1, 2)]);
        }
        assert_eq!(recent.range(&StreamId::new("r", "a", 1), 5, 10, ALL), None);
        assert_eq!(recent.range(&StreamId::new("r", "a", 2), 1, 1, ALL), None);
        assert_eq!(recent.nick(&StreamId::new("r", "a", 1)), None);
        recent.name(&StreamId::new("r", "a", 1), Some("ann"));
        assert_eq!(
            recent.nick(&StreamId::new("r", "a", 1)).as_deref(),
            Some("ann")
        );
        // Lines that cost 128 bytes each: the last RECENT_BYTES / 128 fit.
        let fit = RECENT_BYTES / 128;
        let many: Vec<String> = (0..fit + 10)
            .map(|i| format!("{i:0width$}", width = 128 - KEPT_LINE_OVERHEAD))
            .collect();
        recent.record(&StreamId::new("r", "b", 1), 1, &many, 300, 0);
        let (first, lines, stamps) = recent
            .range(&StreamId::new("r", "b", 1), 1, 20, ALL)
            .expect("kept");
        assert_eq!(first, 11);
        assert_eq!(lines[0].trim_start_matches('0'), "10");
        assert_eq!(stamps.len(), lines.len());
    }

    #[test]
    fn lines_are_let_go_once_older_than_the_age_and_the_bytes_count_their_cost() {
        let mut recent = Recent::default();
        let a = StreamId::new("r", "a", 1);
        let b = StreamId::new("r", "b", 1);
        recent.record(&a, 1, &texts(&["1", "2"]), 0, 1_000);
        recent.record(&a, 3, &texts(&["3"]), 0, 2_000);
        recent.record(&b, 1, &texts(&["x"]), 0, 1_500);
        assert_eq!(recent.bytes(), 4 * (1 + KEPT_LINE_OVERHEAD));

        // Nothing is old enough yet.
        recent.forget_older(1_000 + RECENT_AGE_MS);
        assert_eq!(recent.bytes(), 4 * (1 + KEPT_LINE_OVERHEAD));

        // The first run of a, and then b, are.
        recent.forget_older(1_001 + RECENT_AGE_MS);
        assert_eq!(
            recent.range(&a, 1, 10, Take::lines(10)).map(|r| r.1),
            Some(texts(&["3"]))
        );
        assert!(recent.range(&b, 1, 10, Take::lines(10)).is_some());
        recent.forget_older(1_501 + RECENT_AGE_MS);
        assert_eq!(recent.range(&b, 1, 10, Take::lines(10)), None);
        assert_eq!(
            recent.nick(&b),
            None,
            "an author with no lines left is forgotten"
        );

        // Lines that continue the stream after a forget are kept with it.
        recent.record(&a, 4, &texts(&["4"]), 0, 2_500 + RECENT_AGE_MS);
        recent.forget_older(2_001 + RECENT_AGE_MS);
        assert_eq!(
            recent.range(&a, 1, 10, Take::lines(10)).map(|r| (r.0, r.1)),
            Some((4, texts(&["4"])))
        );
        assert_eq!(recent.bytes(), 1 + KEPT_LINE_OVERHEAD);
    }

    #[test]
    fn lines_let_go_for_bytes_take_their_times_with_them() {
        let mut recent = Recent::default();
        let a = StreamId::new("r", "a", 1);
        let line = "x".repeat(RECENT_BYTES / 4);
        for i in 0..8u64 {
            recent.record(&a, i + 1, std::slice::from_ref(&line), 0, i);
        }
        // Only the last few fit; their times are the last few.
        let (first, kept, _) = recent.range(&a, 1, 100, Take::lines(100)).expect("kept");
        assert_eq!(first + kept.len() as u64, 9);
        recent.forget_older(RECENT_AGE_MS + 7);
        assert_eq!(
            recent.range(&a, 1, 100, Take::lines(100)).map(|r| r.0),
            Some(8)
        );
    }
}
