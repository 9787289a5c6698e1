//! Rooms, members and names: the pure state of a group chat.
//!
//! Everything here is data and decisions, no I/O, so the rules (what a
//! valid name is, how a member is shown, which messages are new and in
//! order) are tested without a network. The app feeds in what the network
//! reports and shows what comes out.
//!
//! Messages are identified by author, session and sequence number, never by
//! their text: two identical lines are two messages. A session is one run
//! of the author's program (a random number chosen at start), so sequence
//! numbers may restart without being mistaken for replays.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The room joined when none is named.
pub const DEFAULT_ROOM: &str = "lobby";

/// Longest room or nick name, in bytes.
pub const MAX_NAME: usize = 32;

/// Batches held while waiting for a gap before them to be filled, per
/// author.
pub const MAX_HELD_BATCHES: usize = 256;

/// Runs of lines given up on (see [`Ordering::holes`]) remembered per
/// author session, at most; beyond it the earliest are forgotten.
pub const MAX_HOLES: usize = 64;

/// Sessions of authors that left whose place is kept, at most (the oldest
/// departure is forgotten first).
pub const MAX_DEPARTED: usize = 4096;

/// Why a room or nick name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("a {0} name cannot be empty")]
    Empty(&'static str),
    /// Too long.
    #[error("a {what} name is at most {MAX_NAME} bytes; '{name}' is longer")]
    TooLong {
        /// Room or nick.
        what: &'static str,
        /// The name, made inert.
        name: String,
    },
    /// A character outside the allowed set.
    #[error("a {what} name may use letters, digits, '-', '_' and '.'; '{name}' has others")]
    BadCharacter {
        /// Room or nick.
        what: &'static str,
        /// The name, made inert.
        name: String,
    },
    /// A nick that would read as the label of an unnamed peer.
    #[error("'{0}' is how unnamed peers are shown; choose another nick")]
    Reserved(String),
}

fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(what));
    }
    let shown = || super::sanitize::inert(&name.chars().take(64).collect::<String>());
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong {
            what,
            name: shown(),
        });
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(NameError::BadCharacter {
            what,
            name: shown(),
        });
    }
    Ok(())
}

/// Checks a room name: 1 to 32 letters, digits, `-`, `_` or `.`.
///
/// ```
/// use rust_p2p_chat::chat::room::check_room;
///
/// assert!(check_room("lobby").is_ok());
/// assert!(check_room("rust-dev_2.0").is_ok());
/// assert!(check_room("no spaces").is_err());
/// assert!(check_room("").is_err());
/// ```
pub fn check_room(name: &str) -> Result<(), NameError> {
    check_name("room", name)
}

/// How a public room is told apart from a private one of the same name:
/// its key starts with this mark (`+lan`), which no room name can hold.
/// A private room (the default) is joined only by peers that dial one of
/// its members; a public one is also met through LAN discovery. The two
/// never mix: `lobby` and `+lobby` are different rooms, on different
/// topics, with different histories.
pub const PUBLIC_MARK: char = '+';

/// The key of the public room called `name`.
///
/// ```
/// use rust_p2p_chat::chat::room::{public_room, is_public, room_name};
///
/// assert_eq!(public_room("lan"), "+lan");
/// assert!(is_public("+lan") && !is_public("lan"));
/// assert_eq!(room_name("+lan"), "lan");
/// ```
pub fn public_room(name: &str) -> String {
    format!("{PUBLIC_MARK}{name}")
}

/// Whether a room key names a public room.
pub fn is_public(room: &str) -> bool {
    room.starts_with(PUBLIC_MARK)
}

/// The name of a room, without the public mark.
pub fn room_name(room: &str) -> &str {
    room.strip_prefix(PUBLIC_MARK).unwrap_or(room)
}

/// Checks a room key: a room name, or `+` and a room name for a public
/// room.
///
/// ```
/// use rust_p2p_chat::chat::room::check_room_key;
///
/// assert!(check_room_key("lobby").is_ok());
/// assert!(check_room_key("+lobby").is_ok());
/// assert!(check_room_key("++lobby").is_err());
/// ```
pub fn check_room_key(room: &str) -> Result<(), NameError> {
    check_room(room_name(room))
}

/// Checks a nick: like a room name, and not `Peer` or `Peer-...`, which
/// are how unnamed peers are shown.
///
/// ```
/// use rust_p2p_chat::chat::room::check_nick;
///
/// assert!(check_nick("alice").is_ok());
/// assert!(check_nick("Peer-1A2B").is_err());
/// assert!(check_nick("al\u{1b}ice").is_err());
/// ```
pub fn check_nick(name: &str) -> Result<(), NameError> {
    check_name("nick", name)?;
    let lower = name.to_lowercase();
    if lower == "peer" || lower.starts_with("peer-") {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// A member of a room, as far as we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its nick, if it chose one.
    pub nick: Option<String>,
    /// Its fingerprint (`XXXX XXXX XXXX XXXX`).
    pub fingerprint: String,
    /// True when the nick is bound, in the user's known peers, to another
    /// key that the user trusted.
    pub impostor: bool,
}

/// The other members of one room, keyed by peer ID.
#[derive(Debug, Default, Clone)]
pub struct Roster {
    members: BTreeMap<String, Member>,
}

impl Roster {
    /// Adds a member; true if it was not there before.
    pub fn join(&mut self, peer: &str, member: Member) -> bool {
        self.members.insert(peer.to_owned(), member).is_none()
    }

    /// Removes a member; the member if it was there.
    pub fn leave(&mut self, peer: &str) -> Option<Member> {
        self.members.remove(peer)
    }

    /// Changes a member's nick; the old one if the member is known.
    pub fn rename(
        &mut self,
        peer: &str,
        nick: Option<String>,
        impostor: bool,
    ) -> Option<Option<String>> {
        let member = self.members.get_mut(peer)?;
        member.impostor = impostor;
        Some(std::mem::replace(&mut member.nick, nick))
    }

    /// The member, if present.
    pub fn get(&self, peer: &str) -> Option<&Member> {
        self.members.get(peer)
    }

    /// Whether the peer is a member.
    pub fn contains(&self, peer: &str) -> bool {
        self.members.contains_key(peer)
    }

    /// How many other members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether we are alone.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Peer IDs and members, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Member)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How a member is shown: its nick (with a fingerprint suffix when
    /// another member uses the same nick, and a mark when the nick belongs
    /// to a key the user trusted and this is another key); without a nick,
    /// `Peer` when it is the only other member (the classic text), else
    /// `Peer-XXXX`.
    ///
    /// ```
    /// use rust_p2p_chat::chat::room::{Member, Roster};
    ///
    /// let member = |nick: Option<&str>, fp: &str| Member {
    ///     nick: nick.map(String::from),
    ///     fingerprint: fp.into(),
    ///     impostor: false,
    /// };
    /// let mut roster = Roster::default();
    /// roster.join("a", member(None, "1A2B 3C4D 5E6F 7A8B"));
    /// assert_eq!(roster.display("a"), "Peer");
    /// roster.join("b", member(Some("bob"), "9999 0000 1111 2222"));
    /// assert_eq!(roster.display("a"), "Peer-1A2B");
    /// roster.join("c", member(Some("bob"), "3333 4444 5555 6666"));
    /// assert_eq!(roster.display("c"), "bob#3333");
    /// ```
    pub fn display(&self, peer: &str) -> String {
        let Some(member) = self.members.get(peer) else {
            return "Peer".into();
        };
        let short = short_fingerprint(&member.fingerprint);
        match &member.nick {
            None if self.members.len() <= 1 => "Peer".into(),
            None => format!("Peer-{short}"),
            Some(nick) => {
                let shared = self
                    .members
                    .iter()
                    .any(|(other, m)| other != peer && m.nick.as_deref() == Some(nick));
                let mut shown = if shared {
                    format!("{nick}#{short}")
                } else {
                    nick.clone()
                };
                if member.impostor {
                    shown.push_str("(not the trusted one!)");
                }
                shown
            }
        }
    }

    /// The peer IDs whose display name or nick is `name` (a nick may be
    /// shared; `nick#XXXX` and `Peer-XXXX` pick one).
    pub fn find(&self, name: &str) -> Vec<String> {
        self.members
            .keys()
            .filter(|peer| {
                let member = &self.members[*peer];
                self.display(peer) == name
                    || member.nick.as_deref() == Some(name)
                    || format!("Peer-{}", short_fingerprint(&member.fingerprint)) == name
            })
            .cloned()
            .collect()
    }
}

/// The first four hex digits of a fingerprint.
pub fn short_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(4)
        .collect()
}

/// What [`Ordering::accept`] decided about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
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
    authors: HashMap<(String, u64), Author>,
    /// Sessions of authors that left, oldest departure first (an entry
    /// may be stale: the author came back, or left twice).
    departed: VecDeque<(String, u64)>,
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
    /// Lines given up on, first to end (exclusive), all below `next`.
    holes: BTreeMap<u64, u64>,
    /// When holes may be asked for again (see [`Ordering::holes_to_ask`]).
    ask_after: Option<Instant>,
    /// The author left; its place is kept until it is back.
    departed: bool,
}

impl Author {
    fn starting_at(first: u64) -> Author {
        Author {
            floor: first,
            next: first,
            held: BTreeMap::new(),
            holes: BTreeMap::new(),
            ask_after: None,
            departed: false,
        }
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
    pub fn accept(
        &mut self,
        author: &str,
        session: u64,
        first: u64,
        mut texts: Vec<String>,
    ) -> Delivery {
        let state = self
            .authors
            .entry((author.to_owned(), session))
            .or_insert_with(|| Author::starting_at(first));
        state.departed = false;
        let count = texts.len() as u64;
        let end = first.saturating_add(count);
        if count == 0 {
            return Delivery::Duplicate;
        }
        if first < state.floor {
            // Earlier than anything shown: it was overtaken on the way.
            // Show the part before the first line shown, once.
            let below = (state.floor.min(end) - first) as usize;
            texts.truncate(below);
            state.floor = first;
            return Delivery::Show(first, texts);
        }
        if end <= state.next {
            return Delivery::Duplicate;
        }
        if first > state.next {
            if state.held.len() < MAX_HELD_BATCHES {
                state.held.entry(first).or_insert(texts);
            }
            return Delivery::Gap {
                from: state.next,
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
            let held_end = held_first + held.len() as u64;
            if held_end > state.next {
                held.drain(..(state.next - held_first) as usize);
                texts.extend(held);
                state.next = held_end;
            }
        }
        Delivery::Show(shown_from, texts)
    }

    /// Sets where `author`'s session starts for us when nothing of it was
    /// seen yet: its hello says which line comes next, so a batch that
    /// overtakes an earlier one on the way is held for it rather than
    /// taken as the start. Does nothing once the session is known.
    pub fn start_at(&mut self, author: &str, session: u64, next: u64) {
        self.authors
            .entry((author.to_owned(), session))
            .or_insert_with(|| Author::starting_at(next))
            .departed = false;
    }

    /// Gives up waiting for a gap: shows what was held from `author`'s
    /// session, in order, as runs of consecutive lines (first line number,
    /// texts), with the number of lines that never came.
    pub fn skip_gap(&mut self, author: &str, session: u64) -> (Vec<(u64, Vec<String>)>, u64) {
        let Some(state) = self.authors.get_mut(&(author.to_owned(), session)) else {
            return (Vec::new(), 0);
        };
        let mut shown: Vec<(u64, Vec<String>)> = Vec::new();
        let mut lost = 0;
        while let Some((first, mut texts)) = state.held.pop_first() {
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
    pub fn resume(&mut self, author: &str, session: u64, next: u64) {
        let state = self
            .authors
            .entry((author.to_owned(), session))
            .or_insert_with(|| Author::starting_at(next));
        state.departed = false;
        if state.next < next {
            state.next = next;
        }
        state.floor = 0;
    }

    /// The next sequence number expected from `author`'s session, if any
    /// line of it was seen.
    pub fn next(&self, author: &str, session: u64) -> Option<u64> {
        self.authors
            .get(&(author.to_owned(), session))
            .map(|a| a.next)
    }

    /// Gives up on the lines before `end` that never came (the author said
    /// it sent up to `end - 1`, but nothing after them arrived to hold):
    /// returns how many were skipped.
    pub fn skip_to(&mut self, author: &str, session: u64, end: u64) -> u64 {
        match self.authors.get_mut(&(author.to_owned(), session)) {
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
    pub fn holes(&self, author: &str, session: u64) -> Vec<(u64, u64)> {
        self.authors
            .get(&(author.to_owned(), session))
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
        author: &str,
        session: u64,
        first: u64,
        texts: &[String],
    ) -> Vec<(u64, Vec<String>)> {
        if texts.is_empty() {
            return Vec::new();
        }
        let Some(state) = self.authors.get_mut(&(author.to_owned(), session)) else {
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
        author: &str,
        session: u64,
        below: u64,
        now: Instant,
        every: Duration,
        most: usize,
    ) -> Vec<(u64, u64)> {
        let Some(state) = self.authors.get_mut(&(author.to_owned(), session)) else {
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

    /// Whether anything is held for `author`'s session.
    pub fn has_gap(&self, author: &str, session: u64) -> bool {
        self.authors
            .get(&(author.to_owned(), session))
            .is_some_and(|a| !a.held.is_empty())
    }

    /// An author left. What was held for it is dropped, but its place in
    /// each session is kept: a member back from a dropped connection
    /// carries on, and what it sent meanwhile that never arrived is a gap,
    /// not a new start. The places of the [`MAX_DEPARTED`] latest
    /// departures are kept; older ones are forgotten.
    pub fn depart(&mut self, author: &str) {
        let Ordering { authors, departed } = self;
        for (key, state) in authors.iter_mut().filter(|((a, _), _)| a == author) {
            state.held = BTreeMap::new();
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

/// Lines kept per author, session and room, to give to members that
/// missed them...
pub const RECENT_LINES: usize = 100_000;

/// ... and bytes of them at most...
pub const RECENT_BYTES: usize = 16 * 1024 * 1024;

/// ... and bytes of all authors together (the least recently heard
/// author's lines go first).
pub const RECENT_TOTAL_BYTES: usize = 64 * 1024 * 1024;

/// Authors (per session and room) whose recent lines are kept.
pub const RECENT_AUTHORS: usize = 512;

/// The recent lines of every author, by sequence number, so that a member
/// that missed some (gossipsub drops under load) can fetch them from us.
/// Bounded: the oldest lines of an author go first, and the authors not
/// heard from for longest.
#[derive(Debug, Default)]
pub struct Recent {
    authors: HashMap<(String, u64), RecentLines>,
    clock: u64,
}

#[derive(Debug, Default)]
struct RecentLines {
    /// Sequence number of `lines[0]`.
    first: u64,
    /// Each line with its author's clock when it was written.
    lines: std::collections::VecDeque<(String, u64)>,
    bytes: usize,
    used: u64,
    /// The nick its author last gave with these lines.
    nick: Option<String>,
}

impl Recent {
    /// Records lines numbered from `first`, written at `sent_ms` by their
    /// author's clock (only the ones that continue or overlap what is
    /// kept; a jump starts afresh).
    pub fn record(&mut self, key: &str, session: u64, first: u64, texts: &[String], sent_ms: u64) {
        self.clock += 1;
        if !self.authors.contains_key(&(key.to_owned(), session))
            && self.authors.len() >= RECENT_AUTHORS
        {
            if let Some(oldest) = self
                .authors
                .iter()
                .min_by_key(|(_, r)| r.used)
                .map(|(k, _)| k.clone())
            {
                self.authors.remove(&oldest);
            }
        }
        let entry = self.authors.entry((key.to_owned(), session)).or_default();
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
        let current = (key.to_owned(), session);
        while self.authors.values().map(|r| r.bytes).sum::<usize>() > RECENT_TOTAL_BYTES {
            let Some(oldest) = self
                .authors
                .iter()
                .filter(|(k, _)| **k != current)
                .min_by_key(|(_, r)| r.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.authors.remove(&oldest);
        }
    }

    /// Remembers the nick an author gave with its latest lines.
    pub fn name(&mut self, key: &str, session: u64, nick: Option<&str>) {
        if let Some(entry) = self.authors.get_mut(&(key.to_owned(), session)) {
            entry.nick = nick.map(str::to_owned);
        }
    }

    /// The nick an author last gave with lines we keep.
    pub fn nick(&self, key: &str, session: u64) -> Option<String> {
        self.authors.get(&(key.to_owned(), session))?.nick.clone()
    }

    /// The kept lines from `from` to `to` (inclusive), from the first one
    /// kept in that range: returns the first sequence number, the lines and
    /// when each was written.
    pub fn range(
        &self,
        key: &str,
        session: u64,
        from: u64,
        to: u64,
    ) -> Option<(u64, Vec<String>, Vec<u64>)> {
        let entry = self.authors.get(&(key.to_owned(), session))?;
        let end = entry.first + entry.lines.len() as u64;
        let start = from.max(entry.first);
        let stop = to.saturating_add(1).min(end);
        if start >= stop {
            return None;
        }
        let (lines, stamps) = entry
            .lines
            .range((start - entry.first) as usize..(stop - entry.first) as usize)
            .cloned()
            .unzip();
        Some((start, lines, stamps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_lines_are_kept_in_order_and_bounded() {
        let mut recent = Recent::default();
        recent.record("a", 1, 1, &texts(&["1", "2", "3"]), 100);
        recent.record("a", 1, 3, &texts(&["3", "4"]), 200);
        assert_eq!(
            recent.range("a", 1, 2, 3),
            Some((2, texts(&["2", "3"]), vec![100, 100]))
        );
        assert_eq!(
            recent.range("a", 1, 4, 10),
            Some((4, texts(&["4"]), vec![200]))
        );
        assert_eq!(recent.range("a", 1, 5, 10), None);
        assert_eq!(recent.range("a", 2, 1, 1), None);
        assert_eq!(recent.nick("a", 1), None);
        recent.name("a", 1, Some("ann"));
        assert_eq!(recent.nick("a", 1).as_deref(), Some("ann"));
        let many: Vec<String> = (0..RECENT_LINES + 10).map(|i| i.to_string()).collect();
        recent.record("b", 1, 1, &many, 300);
        let (first, lines, stamps) = recent.range("b", 1, 1, 20).expect("kept");
        assert_eq!(first, 11);
        assert_eq!(lines[0], "10");
        assert_eq!(stamps.len(), lines.len());
    }

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_checked() {
        assert!(check_room(&"r".repeat(32)).is_ok());
        assert!(matches!(
            check_room(&"r".repeat(33)),
            Err(NameError::TooLong { .. })
        ));
        assert!(matches!(check_nick("peer"), Err(NameError::Reserved(_))));
        assert!(check_nick("peerless").is_ok());
        assert!(check_nick("zoë").is_ok());
        let err = check_nick("a\u{202e}b").unwrap_err().to_string();
        assert!(!err.contains('\u{202e}'), "{err}");
    }

    #[test]
    fn identical_lines_are_two_messages_and_replays_are_dropped() {
        let mut order = Ordering::default();
        assert_eq!(
            order.accept("a", 1, 1, texts(&["hi", "hi"])),
            Delivery::Show(1, texts(&["hi", "hi"]))
        );
        assert_eq!(
            order.accept("a", 1, 1, texts(&["hi", "hi"])),
            Delivery::Duplicate
        );
        assert_eq!(
            order.accept("a", 1, 2, texts(&["hi", "new"])),
            Delivery::Show(3, texts(&["new"]))
        );
        // Another session of the same author starts afresh.
        assert_eq!(
            order.accept("a", 2, 1, texts(&["again"])),
            Delivery::Show(1, texts(&["again"]))
        );
    }

    #[test]
    fn an_author_back_after_leaving_carries_on_and_a_missed_batch_is_a_gap() {
        let mut order = Ordering::default();
        assert_eq!(
            order.accept("a", 1, 1, texts(&["one", "two"])),
            Delivery::Show(1, texts(&["one", "two"]))
        );
        // Held behind a gap, then the author leaves: what was held goes.
        assert_eq!(
            order.accept("a", 1, 5, texts(&["five"])),
            Delivery::Gap { from: 3, to: 4 }
        );
        order.depart("a");
        assert_eq!(order.next("a", 1), Some(3));
        assert!(!order.has_gap("a", 1));
        // Back: lines 3 and 4 were lost on the way, so 6 is a gap, not a
        // new start, and what was shown stays shown once.
        assert_eq!(
            order.accept("a", 1, 6, texts(&["six"])),
            Delivery::Gap { from: 3, to: 5 }
        );
        assert_eq!(
            order.accept("a", 1, 1, texts(&["one"])),
            Delivery::Duplicate
        );
        assert_eq!(
            order.accept("a", 1, 3, texts(&["three", "four", "five"])),
            Delivery::Show(3, texts(&["three", "four", "five", "six"]))
        );
    }

    #[test]
    fn only_the_latest_departures_are_remembered() {
        let mut order = Ordering::default();
        for author in 0..=MAX_DEPARTED {
            let author = author.to_string();
            order.accept(&author, 1, 1, texts(&["hi"]));
            order.depart(&author);
        }
        // The first to leave is forgotten: its next line starts afresh.
        assert_eq!(order.next("0", 1), None);
        assert_eq!(order.next("1", 1), Some(2));
        assert_eq!(order.next(&MAX_DEPARTED.to_string(), 1), Some(2));
        // One that came back is not forgotten for having left before.
        order.accept("1", 1, 2, texts(&["back"]));
        for author in 0..MAX_DEPARTED {
            let author = format!("later-{author}");
            order.accept(&author, 1, 1, texts(&["hi"]));
            order.depart(&author);
        }
        assert_eq!(order.next("1", 1), Some(3));
        assert_eq!(order.next("2", 1), None);
    }

    #[test]
    fn lines_given_up_on_are_recovered_once_when_they_come_late() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        order.accept("a", 1, 4, texts(&["4"]));
        order.accept("a", 1, 7, texts(&["7"]));
        let (shown, lost) = order.skip_gap("a", 1);
        assert_eq!(shown, vec![(4, texts(&["4"])), (7, texts(&["7"]))]);
        assert_eq!(lost, 4);
        // The author said it sent up to 9: 8 and 9 are given up on too.
        assert_eq!(order.skip_to("a", 1, 10), 2);
        assert_eq!(order.holes("a", 1), vec![(2, 4), (5, 7), (8, 10)]);
        // A fetch brings 3..=8: the lines in holes are new, 4 and 7 not.
        let fetched = texts(&["3", "4", "5", "6", "7", "8"]);
        assert_eq!(
            order.recover("a", 1, 3, &fetched),
            vec![
                (3, texts(&["3"])),
                (5, texts(&["5", "6"])),
                (8, texts(&["8"]))
            ]
        );
        assert_eq!(
            order.accept("a", 1, 3, fetched.clone()),
            Delivery::Duplicate
        );
        assert_eq!(order.holes("a", 1), vec![(2, 3), (9, 10)]);
        // Nothing twice.
        assert!(order.recover("a", 1, 3, &fetched).is_empty());
        assert_eq!(
            order.recover("a", 1, 1, &texts(&["1", "2"])),
            vec![(2, texts(&["2"]))]
        );
        assert_eq!(order.holes("a", 1), vec![(9, 10)]);
        // Unknown sessions have none, and nothing comes of no lines.
        assert!(order.holes("a", 2).is_empty());
        assert!(order.recover("b", 1, 1, &fetched).is_empty());
        assert!(order.recover("a", 1, 9, &[]).is_empty());
        assert_eq!(order.holes("a", 1), vec![(9, 10)]);
    }

    #[test]
    fn holes_are_asked_for_from_a_member_that_holds_them_at_most_so_often() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        order.skip_to("a", 1, 4);
        order.accept("a", 1, 4, texts(&["4"]));
        order.skip_to("a", 1, 10);
        let (now, every) = (Instant::now(), Duration::from_secs(1));
        // A member holding only up to 3 cannot fill the second hole, and
        // does not use up the next ask.
        assert!(order.holes_to_ask("a", 1, 2, now, every, 8).is_empty());
        assert_eq!(order.holes_to_ask("a", 1, 3, now, every, 8), vec![(2, 3)]);
        assert!(order.holes_to_ask("a", 1, 100, now, every, 8).is_empty());
        let later = now + every;
        assert_eq!(
            order.holes_to_ask("a", 1, 100, later, every, 1),
            vec![(2, 4)]
        );
        let later = later + every;
        assert_eq!(
            order.holes_to_ask("a", 1, 100, later, every, 8),
            vec![(2, 4), (5, 10)]
        );
        assert!(order
            .holes_to_ask("b", 1, 100, later + every, every, 8)
            .is_empty());
    }

    #[test]
    fn splitting_holes_keeps_them_bounded() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        order.skip_to("a", 1, 1_000_000);
        // Lines one by one from the middle of the hole split it each time.
        for line in 0..(MAX_HOLES as u64 + 10) {
            let first = 10 + line * 10;
            assert_eq!(order.recover("a", 1, first, &texts(&["x"])).len(), 1);
        }
        let holes = order.holes("a", 1);
        assert_eq!(holes.len(), MAX_HOLES);
        assert_eq!(
            holes.last(),
            Some(&(10 + (MAX_HOLES as u64 + 9) * 10 + 1, 1_000_000))
        );
    }

    #[test]
    fn holes_next_to_each_other_join_and_only_the_latest_are_kept() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        assert_eq!(order.skip_to("a", 1, 4), 2);
        assert_eq!(order.skip_to("a", 1, 6), 2);
        assert_eq!(order.holes("a", 1), vec![(2, 6)]);
        let mut next = 6;
        for _ in 0..MAX_HOLES {
            order.accept("a", 1, next, texts(&["seen"]));
            order.skip_to("a", 1, next + 3);
            next += 3;
        }
        let holes = order.holes("a", 1);
        assert_eq!(holes.len(), MAX_HOLES);
        assert_eq!(holes.first(), Some(&(7, 9)));
        assert_eq!(holes.last(), Some(&(next - 2, next)));
    }

    #[test]
    fn a_gap_holds_later_batches_until_it_is_filled() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        assert_eq!(
            order.accept("a", 1, 4, texts(&["4", "5"])),
            Delivery::Gap { from: 2, to: 3 }
        );
        assert!(order.has_gap("a", 1));
        assert_eq!(
            order.accept("a", 1, 2, texts(&["2", "3"])),
            Delivery::Show(2, texts(&["2", "3", "4", "5"]))
        );
        assert!(!order.has_gap("a", 1));
    }

    #[test]
    fn a_batch_overtaken_on_the_way_is_still_shown_once() {
        let mut order = Ordering::default();
        assert_eq!(
            order.accept("a", 1, 3, texts(&["3"])),
            Delivery::Show(3, texts(&["3"]))
        );
        assert_eq!(
            order.accept("a", 1, 1, texts(&["1", "2", "3"])),
            Delivery::Show(1, texts(&["1", "2"]))
        );
        assert_eq!(
            order.accept("a", 1, 1, texts(&["1", "2"])),
            Delivery::Duplicate
        );
        assert_eq!(order.accept("a", 1, 2, texts(&["2"])), Delivery::Duplicate);
    }

    #[test]
    fn a_gap_at_the_end_is_skipped_by_count() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        assert_eq!(order.next("a", 1), Some(2));
        assert_eq!(order.skip_to("a", 1, 5), 3);
        assert_eq!(order.skip_to("a", 1, 5), 0);
        assert_eq!(order.accept("a", 1, 4, texts(&["4"])), Delivery::Duplicate);
        assert_eq!(
            order.accept("a", 1, 5, texts(&["5"])),
            Delivery::Show(5, texts(&["5"]))
        );
    }

    #[test]
    fn giving_up_on_a_gap_shows_the_rest_and_counts_the_lost() {
        let mut order = Ordering::default();
        order.accept("a", 1, 1, texts(&["1"]));
        order.accept("a", 1, 5, texts(&["5"]));
        order.accept("a", 1, 3, texts(&["3"]));
        let (shown, lost) = order.skip_gap("a", 1);
        assert_eq!(shown, vec![(3, texts(&["3"])), (5, texts(&["5"]))]);
        assert_eq!(lost, 2);
        assert_eq!(
            order.accept("a", 1, 6, texts(&["6"])),
            Delivery::Show(6, texts(&["6"]))
        );
    }

    #[test]
    fn display_names_follow_the_room() {
        let mut roster = Roster::default();
        let fp = "ABCD 0000 0000 0000";
        roster.join(
            "x",
            Member {
                nick: Some("alice".into()),
                fingerprint: fp.into(),
                impostor: true,
            },
        );
        assert_eq!(roster.display("x"), "alice(not the trusted one!)");
        assert_eq!(roster.find("alice"), vec!["x".to_string()]);
        assert_eq!(roster.rename("x", None, false), Some(Some("alice".into())));
        assert_eq!(roster.display("x"), "Peer");
        assert_eq!(roster.find("Peer-ABCD"), vec!["x".to_string()]);
    }

    #[test]
    fn a_hello_sets_the_start_so_an_overtaking_batch_waits() {
        let mut order = Ordering::default();
        order.start_at("a", 1, 10);
        assert_eq!(
            order.accept("a", 1, 12, vec!["m12".into()]),
            Delivery::Gap { from: 10, to: 11 }
        );
        assert_eq!(
            order.accept("a", 1, 10, vec!["m10".into(), "m11".into()]),
            Delivery::Show(10, vec!["m10".into(), "m11".into(), "m12".into()])
        );
        // Known sessions are not moved.
        order.start_at("a", 1, 99);
        assert_eq!(order.next("a", 1), Some(13));
    }

    #[test]
    fn a_resumed_session_drops_what_was_shown_before() {
        let mut order = Ordering::default();
        order.resume("a", 1, 10);
        assert_eq!(order.accept("a", 1, 5, texts(&["5"])), Delivery::Duplicate);
        assert_eq!(
            order.accept("a", 1, 8, texts(&["8", "9", "10"])),
            Delivery::Show(10, texts(&["10"]))
        );
        assert_eq!(
            order.accept("a", 1, 13, texts(&["13"])),
            Delivery::Gap { from: 11, to: 12 }
        );
    }
}
