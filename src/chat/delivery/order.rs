//! Putting each author's lines back in the order it wrote them.
//!
//! Messages are identified by author, session and sequence number, never by
//! their text: two identical lines are two messages. A session is one
//! author's history (kept with its store), so sequence numbers carry on
//! across runs without being mistaken for replays.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::{line_cost, StreamId, Time};

/// Batches held while waiting for a gap before them to be filled, per
/// author session.
pub const MAX_HELD_BATCHES: usize = 256;

/// Bytes of batches held behind gaps, every author session's together
/// (counted as [`line_cost`]). Sessions are the author's to number, so
/// without it an author could make us hold [`MAX_HELD_BATCHES`] in each
/// of as many sessions as it likes. It is large enough for the backlog a
/// reader stopped under a flood gets out of order once it reads again.
/// When it is reached, the session holding the most lets go of its last
/// batches, never one holding less than the newcomer would: a flood ahead
/// of a gap cannot push out an honest author's few batches. A batch let
/// go of is not lost: once the gap before it is filled, it is a gap of its
/// own and is fetched like any other.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;

/// Runs of lines given up on (see [`Ordering::holes`]) remembered per
/// author session, at most; beyond it the earliest are forgotten.
pub const MAX_HOLES: usize = 64;

/// Sessions of authors that left whose place is kept, at most (the oldest
/// departure is forgotten first).
pub const MAX_DEPARTED: usize = 4096;

/// What [`Ordering::accept`] decided about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Show these texts now, in order (possibly several batches, when a
    /// gap was filled): consecutive lines, the first numbered as given.
    Show(u64, Vec<String>),
    /// Held: messages before it are missing. Ask for `from..=to` from a
    /// peer that has them.
    Gap {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// Every message in it was shown before.
    Duplicate,
}

/// Per-author, per-session delivery order: shows each message once, in the
/// order its author sent it, holding batches that arrive after a gap.
#[derive(Debug, Default)]
pub struct Ordering {
    authors: BTreeMap<StreamId, Author>,
    /// Sessions of authors that left, oldest departure first (an entry
    /// may be stale: the author came back, or left twice).
    departed: VecDeque<StreamId>,
    /// Bytes of every session's held batches (see [`MAX_HELD_BYTES`]).
    held_bytes: usize,
}

#[derive(Debug, Default)]
struct Author {
    /// The first sequence number shown: lines before it that arrive later
    /// (reordered on the way) are still new.
    floor: u64,
    /// The next sequence number to show.
    next: u64,
    /// Batches that arrived early, by first sequence number.
    held: BTreeMap<u64, Vec<String>>,
    /// What `held` counts for (see [`line_cost`]).
    held_bytes: usize,
    /// Lines given up on, first to end (exclusive), all below `next`.
    holes: BTreeMap<u64, u64>,
    /// When holes may be asked for again (see [`Ordering::holes_to_ask`]).
    ask_after: Option<Time>,
    /// The author left; its place is kept until it is back.
    departed: bool,
}

impl Author {
    fn starting_at(first: u64) -> Author {
        Author {
            floor: first,
            next: first,
            held: BTreeMap::new(),
            held_bytes: 0,
            holes: BTreeMap::new(),
            ask_after: None,
            departed: false,
        }
    }

    /// Takes every held batch, with what they counted for.
    fn take_held(&mut self) -> (BTreeMap<u64, Vec<String>>, usize) {
        let bytes = std::mem::take(&mut self.held_bytes);
        (std::mem::take(&mut self.held), bytes)
    }

    /// Remembers that lines `first..end` were given up on.
    fn hole(&mut self, first: u64, end: u64) {
        if first >= end {
            return;
        }
        // Joined to a hole that ends where this one starts.
        let first = match self.holes.range(..first).next_back() {
            Some((&start, &stop)) if stop == first => {
                self.holes.remove(&start);
                start
            }
            _ => first,
        };
        self.holes.insert(first, end);
        self.trim_holes();
    }

    /// Forgets the earliest holes beyond [`MAX_HOLES`].
    fn trim_holes(&mut self) {
        while self.holes.len() > MAX_HOLES {
            self.holes.pop_first();
        }
    }
}

impl Ordering {
    /// Takes a batch of `texts` numbered from `first` by `author` in
    /// `session`. The first batch seen from an author's session sets the
    /// starting point (we may join a room after its first messages).
    pub fn accept(&mut self, stream: &StreamId, first: u64, mut texts: Vec<String>) -> Accepted {
        let state = self
            .authors
            .entry(stream.clone())
            .or_insert_with(|| Author::starting_at(first));
        state.departed = false;
        let count = texts.len() as u64;
        let end = first.saturating_add(count);
        if count == 0 {
            return Accepted::Duplicate;
        }
        if first < state.floor {
            // Earlier than anything shown: it was overtaken on the way.
            // Show the part before the first line shown, once.
            let below = (state.floor.min(end) - first) as usize;
            texts.truncate(below);
            state.floor = first;
            return Accepted::Show(first, texts);
        }
        if end <= state.next {
            return Accepted::Duplicate;
        }
        if first > state.next {
            let from = state.next;
            self.hold(stream, first, texts);
            return Accepted::Gap {
                from,
                to: first - 1,
            };
        }
        // Overlap with what was shown: keep the new part.
        let skip = (state.next - first) as usize;
        texts.drain(..skip);
        let shown_from = state.next;
        state.next = end;
        // Batches held behind this one may now follow.
        while let Some(entry) = state.held.first_entry() {
            let held_first = *entry.key();
            if held_first > state.next {
                break;
            }
            let mut held = entry.remove();
            let cost = line_cost(&held);
            state.held_bytes -= cost;
            self.held_bytes -= cost;
            let held_end = held_first + held.len() as u64;
            if held_end > state.next {
                held.drain(..(state.next - held_first) as usize);
                texts.extend(held);
                state.next = held_end;
            }
        }
        Accepted::Show(shown_from, texts)
    }

    /// Sets where `author`'s session starts for us when nothing of it was
    /// seen yet: its hello says which line comes next, so a batch that
    /// overtakes an earlier one on the way is held for it rather than
    /// taken as the start. Does nothing once the session is known.
    pub fn start_at(&mut self, stream: &StreamId, next: u64) {
        self.authors
            .entry(stream.clone())
            .or_insert_with(|| Author::starting_at(next))
            .departed = false;
    }

    /// Gives up waiting for a gap: shows what was held from `author`'s
    /// session, in order, as runs of consecutive lines (first line number,
    /// texts), with the number of lines that never came.
    pub fn skip_gap(&mut self, stream: &StreamId) -> (Vec<(u64, Vec<String>)>, u64) {
        let Some(state) = self.authors.get_mut(stream) else {
            return (Vec::new(), 0);
        };
        let mut shown: Vec<(u64, Vec<String>)> = Vec::new();
        let mut lost = 0;
        let (held, bytes) = state.take_held();
        self.held_bytes -= bytes;
        for (first, mut texts) in held {
            let end = first + texts.len() as u64;
            if end <= state.next {
                continue;
            }
            let from = if first > state.next {
                lost += first - state.next;
                let next = state.next;
                state.hole(next, first);
                first
            } else {
                texts.drain(..(state.next - first) as usize);
                state.next
            };
            match shown.last_mut() {
                Some((run, run_texts)) if *run + run_texts.len() as u64 == from => {
                    run_texts.extend(texts);
                }
                _ => shown.push((from, texts)),
            }
            state.next = end;
        }
        (shown, lost)
    }

    /// Picks up an author's session where the store left it: lines before
    /// `next` were shown in an earlier run and are duplicates now.
    /// Lines in `holes` (first, end) were never stored: they are given up
    /// on, to be asked for (see [`Ordering::holes_to_ask`]) and taken late.
    pub fn resume(&mut self, stream: &StreamId, next: u64, holes: &[(u64, u64)]) {
        let state = self
            .authors
            .entry(stream.clone())
            .or_insert_with(|| Author::starting_at(next));
        state.departed = false;
        if state.next < next {
            state.next = next;
        }
        state.floor = 0;
        for &(first, end) in holes {
            state.hole(first, end.min(next));
        }
    }

    /// The first line of a stream we follow: lines before it are not
    /// ours to hold.
    pub fn start(&self, stream: &StreamId) -> Option<u64> {
        self.authors.get(stream).map(|a| a.floor)
    }

    /// The next sequence number expected from `author`'s session, if any
    /// line of it was seen.
    pub fn next(&self, stream: &StreamId) -> Option<u64> {
        self.authors.get(stream).map(|a| a.next)
    }

    /// Gives up on the lines before `end` that never came (the author said
    /// it sent up to `end - 1`, but nothing after them arrived to hold):
    /// returns how many were skipped.
    pub fn skip_to(&mut self, stream: &StreamId, end: u64) -> u64 {
        match self.authors.get_mut(stream) {
            Some(state) if end > state.next => {
                let lost = end - state.next;
                let next = state.next;
                state.hole(next, end);
                state.next = end;
                lost
            }
            _ => 0,
        }
    }

    /// The lines of `author`'s session given up on (by [`Ordering::skip_gap`]
    /// or [`Ordering::skip_to`]) and not recovered since, as (first, end)
    /// with `end` exclusive, earliest first; at most [`MAX_HOLES`].
    pub fn holes(&self, stream: &StreamId) -> Vec<(u64, u64)> {
        self.authors
            .get(stream)
            .map(|a| a.holes.iter().map(|(&first, &end)| (first, end)).collect())
            .unwrap_or_default()
    }

    /// Takes from a batch (`texts` numbered from `first`) the lines that
    /// were given up on: they are new after all. Returns them as runs of
    /// consecutive lines (first line number, texts), earliest first, and
    /// forgets those holes. The batch itself is left for
    /// [`Ordering::accept`], which finds those lines shown (they are below
    /// the next line expected).
    pub fn recover(
        &mut self,
        stream: &StreamId,
        first: u64,
        texts: &[String],
    ) -> Vec<(u64, Vec<String>)> {
        if texts.is_empty() {
            return Vec::new();
        }
        let Some(state) = self.authors.get_mut(stream) else {
            return Vec::new();
        };
        if state.holes.is_empty() {
            return Vec::new();
        }
        let end = first.saturating_add(texts.len() as u64);
        let overlapping: Vec<(u64, u64)> = state
            .holes
            .range(..end)
            .filter(|(_, &stop)| stop > first)
            .map(|(&start, &stop)| (start, stop))
            .collect();
        let mut runs = Vec::new();
        for (start, stop) in overlapping {
            state.holes.remove(&start);
            let (from, to) = (start.max(first), stop.min(end));
            if start < from {
                state.holes.insert(start, from);
            }
            if to < stop {
                state.holes.insert(to, stop);
            }
            let lines = texts[(from - first) as usize..(to - first) as usize].to_vec();
            runs.push((from, lines));
        }
        // A hole split in two is one more.
        state.trim_holes();
        runs
    }

    /// The holes of `author`'s session (see [`Ordering::holes`]) that a
    /// member holding every line below `below` can fill, cut at `below`:
    /// at most `most` of them, earliest first, and none if they were asked
    /// for less than `every` before `now`. When some are returned, the
    /// next ask is due `every` after `now`.
    pub fn holes_to_ask(
        &mut self,
        stream: &StreamId,
        below: u64,
        now: Time,
        every: Duration,
        most: usize,
    ) -> Vec<(u64, u64)> {
        let Some(state) = self.authors.get_mut(stream) else {
            return Vec::new();
        };
        if state.holes.is_empty() || state.ask_after.is_some_and(|at| now < at) {
            return Vec::new();
        }
        let asked: Vec<(u64, u64)> = state
            .holes
            .range(..below)
            .take(most)
            .map(|(&first, &end)| (first, end.min(below)))
            .collect();
        if !asked.is_empty() {
            state.ask_after = Some(now + every);
        }
        asked
    }

    /// Holds a batch that came ahead of a gap in `stream`, within
    /// [`MAX_HELD_BATCHES`] and [`MAX_HELD_BYTES`], letting go of the last
    /// batches of the session holding the most to make room when that
    /// session holds more than this one would (see [`MAX_HELD_BYTES`]).
    fn hold(&mut self, stream: &StreamId, first: u64, texts: Vec<String>) {
        let cost = line_cost(&texts);
        let Some(state) = self.authors.get(stream) else {
            return;
        };
        if state.held.contains_key(&first) || state.held.len() >= MAX_HELD_BATCHES {
            return;
        }
        let would_hold = state.held_bytes + cost;
        while self.held_bytes + cost > MAX_HELD_BYTES {
            let Some((most, most_bytes)) = self
                .authors
                .iter()
                .max_by_key(|(_, a)| a.held_bytes)
                .map(|(s, a)| (s.clone(), a.held_bytes))
            else {
                return;
            };
            let Some(victim) = self.authors.get_mut(&most) else {
                return;
            };
            let Some(entry) = victim.held.last_entry() else {
                return;
            };
            let take = if most == *stream {
                // Ours: the batch further on goes, the nearer one stays.
                *entry.key() > first
            } else {
                most_bytes > would_hold
            };
            if !take {
                return;
            }
            let let_go = line_cost(&entry.remove());
            victim.held_bytes -= let_go;
            self.held_bytes -= let_go;
        }
        if let Some(state) = self.authors.get_mut(stream) {
            state.held.insert(first, texts);
            state.held_bytes += cost;
            self.held_bytes += cost;
        }
    }

    /// Bytes held behind gaps, every session's together (at most
    /// [`MAX_HELD_BYTES`]).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Whether anything is held for `author`'s session.
    pub fn has_gap(&self, stream: &StreamId) -> bool {
        self.authors.get(stream).is_some_and(|a| !a.held.is_empty())
    }

    /// An author left. What was held for it is dropped, but its place in
    /// each session is kept: a member back from a dropped connection
    /// carries on, and what it sent meanwhile that never arrived is a gap,
    /// not a new start. The places of the [`MAX_DEPARTED`] latest
    /// departures are kept; older ones are forgotten.
    pub fn depart(&mut self, room: &str, author: &str) {
        let Ordering {
            authors,
            departed,
            held_bytes,
        } = self;
        let theirs = |s: &&StreamId| s.room == room && s.author == author;
        for (key, state) in authors.iter_mut().filter(|(s, _)| theirs(s)) {
            *held_bytes -= state.take_held().1;
            if !state.departed {
                state.departed = true;
                departed.push_back(key.clone());
            }
        }
        while departed.len() > MAX_DEPARTED {
            let Some(oldest) = departed.pop_front() else {
                break;
            };
            if authors.get(&oldest).is_some_and(|a| a.departed) {
                authors.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Author `author`'s stream in room `r`.
    fn s(author: &str, session: u64) -> StreamId {
        StreamId::new("r", author, session)
    }

    #[test]
    fn identical_lines_are_two_messages_and_replays_are_dropped() {
        let mut order = Ordering::default();
        assert_eq!(
            order.accept(&s("a", 1), 1, texts(&["hi", "hi"])),
            Accepted::Show(1, texts(&["hi", "hi"]))
        );
        assert_eq!(
            order.accept(&s("a", 1), 1, texts(&["hi", "hi"])),
            Accepted::Duplicate
        );
        assert_eq!(
            order.accept(&s("a", 1), 2, texts(&["hi", "new"])),
            Accepted::Show(3, texts(&["new"]))
        );
        // Another session of the same author starts afresh.
        assert_eq!(
            order.accept(&s("a", 2), 1, texts(&["again"])),
            Accepted::Show(1, texts(&["again"]))
        );
    }

    #[test]
    fn an_author_back_after_leaving_carries_on_and_a_missed_batch_is_a_gap() {
        let mut order = Ordering::default();
        assert_eq!(
            order.accept(&s("a", 1), 1, texts(&["one", "two"])),
            Accepted::Show(1, texts(&["one", "two"]))
        );
        // Held behind a gap, then the author leaves: what was held goes.
        assert_eq!(
            order.accept(&s("a", 1), 5, texts(&["five"])),
            Accepted::Gap { from: 3, to: 4 }
        );
        order.depart("r", "a");
        assert_eq!(order.next(&s("a", 1)), Some(3));
        assert!(!order.has_gap(&s("a", 1)));
        // Back: lines 3 and 4 were lost on the way, so 6 is a gap, not a
        // new start, and what was shown stays shown once.
        assert_eq!(
            order.accept(&s("a", 1), 6, texts(&["six"])),
            Accepted::Gap { from: 3, to: 5 }
        );
        assert_eq!(
            order.accept(&s("a", 1), 1, texts(&["one"])),
            Accepted::Duplicate
        );
        assert_eq!(
            order.accept(&s("a", 1), 3, texts(&["three", "four", "five"])),
            Accepted::Show(3, texts(&["three", "four", "five", "six"]))
        );
    }

    #[test]
    fn only_the_latest_departures_are_remembered() {
        let mut order = Ordering::default();
        for author in 0..=MAX_DEPARTED {
            let author = author.to_string();
            order.accept(&s(&author, 1), 1, texts(&["hi"]));
            order.depart("r", &author);
        }
        // The first to leave is forgotten: its next line starts afresh.
        assert_eq!(order.next(&s("0", 1)), None);
        assert_eq!(order.next(&s("1", 1)), Some(2));
        assert_eq!(order.next(&s(&MAX_DEPARTED.to_string(), 1)), Some(2));
        // One that came back is not forgotten for having left before.
        order.accept(&s("1", 1), 2, texts(&["back"]));
        for author in 0..MAX_DEPARTED {
            let author = format!("later-{author}");
            order.accept(&s(&author, 1), 1, texts(&["hi"]));
            order.depart("r", &author);
        }
        assert_eq!(order.next(&s("1", 1)), Some(3));
        assert_eq!(order.next(&s("2", 1)), None);
    }

    #[test]
    fn lines_given_up_on_are_recovered_once_when_they_come_late() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        order.accept(&s("a", 1), 4, texts(&["4"]));
        order.accept(&s("a", 1), 7, texts(&["7"]));
        let (shown, lost) = order.skip_gap(&s("a", 1));
        assert_eq!(shown, vec![(4, texts(&["4"])), (7, texts(&["7"]))]);
        assert_eq!(lost, 4);
        // The author said it sent up to 9: 8 and 9 are given up on too.
        assert_eq!(order.skip_to(&s("a", 1), 10), 2);
        assert_eq!(order.holes(&s("a", 1)), vec![(2, 4), (5, 7), (8, 10)]);
        // A fetch brings 3..=8: the lines in holes are new, 4 and 7 not.
        let fetched = texts(&["3", "4", "5", "6", "7", "8"]);
        assert_eq!(
            order.recover(&s("a", 1), 3, &fetched),
            vec![
                (3, texts(&["3"])),
                (5, texts(&["5", "6"])),
                (8, texts(&["8"]))
            ]
        );
        assert_eq!(
            order.accept(&s("a", 1), 3, fetched.clone()),
            Accepted::Duplicate
        );
        assert_eq!(order.holes(&s("a", 1)), vec![(2, 3), (9, 10)]);
        // Nothing twice.
        assert!(order.recover(&s("a", 1), 3, &fetched).is_empty());
        assert_eq!(
            order.recover(&s("a", 1), 1, &texts(&["1", "2"])),
            vec![(2, texts(&["2"]))]
        );
        assert_eq!(order.holes(&s("a", 1)), vec![(9, 10)]);
        // Unknown sessions have none, and nothing comes of no lines.
        assert!(order.holes(&s("a", 2)).is_empty());
        assert!(order.recover(&s("b", 1), 1, &fetched).is_empty());
        assert!(order.recover(&s("a", 1), 9, &[]).is_empty());
        assert_eq!(order.holes(&s("a", 1)), vec![(9, 10)]);
    }

    #[test]
    fn holes_are_asked_for_from_a_member_that_holds_them_at_most_so_often() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        order.skip_to(&s("a", 1), 4);
        order.accept(&s("a", 1), 4, texts(&["4"]));
        order.skip_to(&s("a", 1), 10);
        let (now, every) = (Duration::from_secs(100), Duration::from_secs(1));
        // A member holding only up to 3 cannot fill the second hole, and
        // does not use up the next ask.
        assert!(order.holes_to_ask(&s("a", 1), 2, now, every, 8).is_empty());
        assert_eq!(
            order.holes_to_ask(&s("a", 1), 3, now, every, 8),
            vec![(2, 3)]
        );
        assert!(order
            .holes_to_ask(&s("a", 1), 100, now, every, 8)
            .is_empty());
        let later = now + every;
        assert_eq!(
            order.holes_to_ask(&s("a", 1), 100, later, every, 1),
            vec![(2, 4)]
        );
        let later = later + every;
        assert_eq!(
            order.holes_to_ask(&s("a", 1), 100, later, every, 8),
            vec![(2, 4), (5, 10)]
        );
        assert!(order
            .holes_to_ask(&s("b", 1), 100, later + every, every, 8)
            .is_empty());
    }

    #[test]
    fn splitting_holes_keeps_them_bounded() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        order.skip_to(&s("a", 1), 1_000_000);
        // Lines one by one from the middle of the hole split it each time.
        for line in 0..(MAX_HOLES as u64 + 10) {
            let first = 10 + line * 10;
            assert_eq!(order.recover(&s("a", 1), first, &texts(&["x"])).len(), 1);
        }
        let holes = order.holes(&s("a", 1));
        assert_eq!(holes.len(), MAX_HOLES);
        assert_eq!(
            holes.last(),
            Some(&(10 + (MAX_HOLES as u64 + 9) * 10 + 1, 1_000_000))
        );
    }

    #[test]
    fn holes_next_to_each_other_join_and_only_the_latest_are_kept() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        assert_eq!(order.skip_to(&s("a", 1), 4), 2);
        assert_eq!(order.skip_to(&s("a", 1), 6), 2);
        assert_eq!(order.holes(&s("a", 1)), vec![(2, 6)]);
        let mut next = 6;
        for _ in 0..MAX_HOLES {
            order.accept(&s("a", 1), next, texts(&["seen"]));
            order.skip_to(&s("a", 1), next + 3);
            next += 3;
        }
        let holes = order.holes(&s("a", 1));
        assert_eq!(holes.len(), MAX_HOLES);
        assert_eq!(holes.first(), Some(&(7, 9)));
        assert_eq!(holes.last(), Some(&(next - 2, next)));
    }

    #[test]
    fn a_gap_holds_later_batches_until_it_is_filled() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        assert_eq!(
            order.accept(&s("a", 1), 4, texts(&["4", "5"])),
            Accepted::Gap { from: 2, to: 3 }
        );
        assert!(order.has_gap(&s("a", 1)));
        assert_eq!(
            order.accept(&s("a", 1), 2, texts(&["2", "3"])),
            Accepted::Show(2, texts(&["2", "3", "4", "5"]))
        );
        assert!(!order.has_gap(&s("a", 1)));
    }

    #[test]
    fn what_gaps_hold_is_bounded_across_sessions_and_fairly_shared() {
        let mut order = Ordering::default();
        // Two lines of the largest room size: 256 KiB a batch.
        let batch = || vec!["x".repeat(128 * 1024); 2];
        let per_batch = line_cost(&batch());
        let gap = |from, to| Accepted::Gap { from, to };
        for stream in [s("a", 1), s("a", 2), s("b", 1)] {
            order.accept(&stream, 1, batch());
        }
        // One author, two sessions, sending ahead of their missing lines
        // 3 and 4 until the bound: sessions do not multiply it.
        for first in (5..21).step_by(2) {
            assert_eq!(order.accept(&s("a", 2), first, batch()), gap(3, first - 1));
        }
        let mut next = 5;
        for _ in 0..MAX_HELD_BATCHES {
            if order.held_bytes() + per_batch > MAX_HELD_BYTES {
                break;
            }
            assert_eq!(order.accept(&s("a", 1), next, batch()), gap(3, next - 1));
            next += 2;
        }
        let full = order.held_bytes();
        assert!(full > MAX_HELD_BYTES - per_batch && full <= MAX_HELD_BYTES);
        // A batch further on than the session's last is not held.
        assert_eq!(order.accept(&s("a", 1), next, batch()), gap(3, next - 1));
        assert_eq!(order.held_bytes(), full);
        // An author holding nothing is not pushed out by the flood: the
        // session holding the most lets go of its last batch for it.
        assert_eq!(order.accept(&s("b", 1), 5, batch()), gap(3, 4));
        assert_eq!(order.held_bytes(), full);
        let Accepted::Show(3, shown) = order.accept(&s("b", 1), 3, batch()) else {
            panic!("b's gap filled shows what it held");
        };
        assert_eq!(shown.len(), 4);
        assert_eq!(order.held_bytes(), full - per_batch);
        // a's first session: what it held follows its filled gap; the
        // batch let go of is a gap of its own, fetched like any other.
        let Accepted::Show(3, shown) = order.accept(&s("a", 1), 3, batch()) else {
            panic!("the gap filled shows what it held");
        };
        let shown_to = 3 + shown.len() as u64;
        assert_eq!(shown_to, next - 2, "its last batch was let go of");
        assert_eq!(
            order.accept(&s("a", 1), next, batch()),
            gap(shown_to, next - 1)
        );
        // Given up on, or the author gone: what was held is let go.
        order.skip_gap(&s("a", 1));
        assert!(order.held_bytes() > 0, "a's second session still holds");
        order.depart("r", "a");
        assert_eq!(order.held_bytes(), 0);
    }

    #[test]
    fn a_batch_overtaken_on_the_way_is_still_shown_once() {
        let mut order = Ordering::default();
        assert_eq!(
            order.accept(&s("a", 1), 3, texts(&["3"])),
            Accepted::Show(3, texts(&["3"]))
        );
        assert_eq!(
            order.accept(&s("a", 1), 1, texts(&["1", "2", "3"])),
            Accepted::Show(1, texts(&["1", "2"]))
        );
        assert_eq!(
            order.accept(&s("a", 1), 1, texts(&["1", "2"])),
            Accepted::Duplicate
        );
        assert_eq!(
            order.accept(&s("a", 1), 2, texts(&["2"])),
            Accepted::Duplicate
        );
    }

    #[test]
    fn a_gap_at_the_end_is_skipped_by_count() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        assert_eq!(order.next(&s("a", 1)), Some(2));
        assert_eq!(order.skip_to(&s("a", 1), 5), 3);
        assert_eq!(order.skip_to(&s("a", 1), 5), 0);
        assert_eq!(
            order.accept(&s("a", 1), 4, texts(&["4"])),
            Accepted::Duplicate
        );
        assert_eq!(
            order.accept(&s("a", 1), 5, texts(&["5"])),
            Accepted::Show(5, texts(&["5"]))
        );
    }

    #[test]
    fn giving_up_on_a_gap_shows_the_rest_and_counts_the_lost() {
        let mut order = Ordering::default();
        order.accept(&s("a", 1), 1, texts(&["1"]));
        order.accept(&s("a", 1), 5, texts(&["5"]));
        order.accept(&s("a", 1), 3, texts(&["3"]));
        let (shown, lost) = order.skip_gap(&s("a", 1));
        assert_eq!(shown, vec![(3, texts(&["3"])), (5, texts(&["5"]))]);
        assert_eq!(lost, 2);
        assert_eq!(
            order.accept(&s("a", 1), 6, texts(&["6"])),
            Accepted::Show(6, texts(&["6"]))
        );
    }

    #[test]
    fn a_hello_sets_the_start_so_an_overtaking_batch_waits() {
        let mut order = Ordering::default();
        order.start_at(&s("a", 1), 10);
        assert_eq!(
            order.accept(&s("a", 1), 12, vec!["m12".into()]),
            Accepted::Gap { from: 10, to: 11 }
        );
        assert_eq!(
            order.accept(&s("a", 1), 10, vec!["m10".into(), "m11".into()]),
            Accepted::Show(10, vec!["m10".into(), "m11".into(), "m12".into()])
        );
        // Known sessions are not moved.
        order.start_at(&s("a", 1), 99);
        assert_eq!(order.next(&s("a", 1)), Some(13));
    }

    #[test]
    fn a_resumed_session_drops_what_was_shown_before() {
        let mut order = Ordering::default();
        order.resume(&s("a", 1), 10, &[]);
        assert_eq!(
            order.accept(&s("a", 1), 5, texts(&["5"])),
            Accepted::Duplicate
        );
        assert_eq!(
            order.accept(&s("a", 1), 8, texts(&["8", "9", "10"])),
            Accepted::Show(10, texts(&["10"]))
        );
        assert_eq!(
            order.accept(&s("a", 1), 13, texts(&["13"])),
            Accepted::Gap { from: 11, to: 12 }
        );
    }
}
