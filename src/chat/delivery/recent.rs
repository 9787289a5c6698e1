//! The recent lines of every author, kept in memory to answer members
//! that missed some.

use std::collections::{HashMap, VecDeque};

use super::StreamId;

/// Lines kept per author, session and room, to give to members that
/// missed them...
pub const RECENT_LINES: usize = 100_000;

/// ... and bytes of them at most...
pub const RECENT_BYTES: usize = 2 * 1024 * 1024;

/// ... and bytes of all authors together (the least recently heard
/// author's lines go first).
pub const RECENT_TOTAL_BYTES: usize = 8 * 1024 * 1024;

/// Authors (per session and room) whose recent lines are kept.
pub const RECENT_AUTHORS: usize = 512;

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
    bytes: usize,
    used: u64,
    /// The nick its author last gave with these lines.
    nick: Option<String>,
}

impl Recent {
    /// Records lines numbered from `first`, written at `sent_ms` by their
    /// author's clock (only the ones that continue or overlap what is
    /// kept; a jump starts afresh).
    pub fn record(&mut self, stream: &StreamId, first: u64, texts: &[String], sent_ms: u64) {
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
            entry.bytes = 0;
            0
        } else {
            (end - first) as usize
        };
        for text in texts.iter().skip(skip) {
            entry.bytes += text.len();
            entry.lines.push_back((text.clone(), sent_ms));
        }
        while entry.lines.len() > RECENT_LINES
            || (entry.bytes > RECENT_BYTES && entry.lines.len() > 1)
        {
            if let Some((old, _)) = entry.lines.pop_front() {
                entry.bytes -= old.len();
            }
            entry.first += 1;
        }
        let current = stream;
        while self.authors.values().map(|r| r.bytes).sum::<usize>() > RECENT_TOTAL_BYTES {
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
    /// kept in that range, at most `max` lines and `max_bytes` of text (but
    /// at least one line): returns the first sequence number, the lines and
    /// when each was written.
    pub fn range(
        &self,
        stream: &StreamId,
        from: u64,
        to: u64,
        max: usize,
        max_bytes: usize,
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
            .take(max.max(1))
            .enumerate()
            .take_while(|(i, (text, _))| {
                bytes += text.len();
                *i == 0 || bytes <= max_bytes
            })
            .map(|(_, line)| line.clone())
            .unzip();
        Some((start, lines, stamps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        );
        recent.record(&StreamId::new("r", "a", 1), 3, &texts(&["3", "4"]), 200);
        assert_eq!(
            recent.range(&StreamId::new("r", "a", 1), 2, 3, usize::MAX, usize::MAX),
            Some((2, texts(&["2", "3"]), vec![100, 100]))
        );
        assert_eq!(
            recent.range(&StreamId::new("r", "a", 1), 4, 10, usize::MAX, usize::MAX),
            Some((4, texts(&["4"]), vec![200]))
        );
        // At most two lines, or two bytes, or at least one line.
        for (max, max_bytes) in [(2, usize::MAX), (usize::MAX, 2), (0, 0)] {
            let (_, lines, _) = recent
                .range(&StreamId::new("r", "a", 1), 1, 10, max, max_bytes)
                .expect("kept");
            assert_eq!(lines, texts(&["1", "2", "3", "4"])[..max.clamp(1, 2)]);
        }
        assert_eq!(
            recent.range(&StreamId::new("r", "a", 1), 5, 10, usize::MAX, usize::MAX),
            None
        );
        assert_eq!(
            recent.range(&StreamId::new("r", "a", 2), 1, 1, usize::MAX, usize::MAX),
            None
        );
        assert_eq!(recent.nick(&StreamId::new("r", "a", 1)), None);
        recent.name(&StreamId::new("r", "a", 1), Some("ann"));
        assert_eq!(
            recent.nick(&StreamId::new("r", "a", 1)).as_deref(),
            Some("ann")
        );
        let many: Vec<String> = (0..RECENT_LINES + 10).map(|i| i.to_string()).collect();
        recent.record(&StreamId::new("r", "b", 1), 1, &many, 300);
        let (first, lines, stamps) = recent
            .range(&StreamId::new("r", "b", 1), 1, 20, usize::MAX, usize::MAX)
            .expect("kept");
        assert_eq!(first, 11);
        assert_eq!(lines[0], "10");
        assert_eq!(stamps.len(), lines.len());
    }
}
