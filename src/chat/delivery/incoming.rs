//! Members' lines: put back in order, gaps waited for and fetched, given
//! up on and taken late, stored, then shown and acknowledged.

use std::collections::BTreeMap;

use super::{
    Accepted, Action, Delivery, FetchAsk, Fetched, Gap, Held, Lines, Now, Report, Said, StreamId,
    Then, ACK_DELAY, ACK_DELAY_PER_MEMBER, FETCH_RETRY, GAP_WAIT, MAX_GAPS, MAX_LINE_NUMBER,
    MAX_REPAIR_FETCHES, MAX_STORED_AHEAD, STORE_RETRY, SYNC_BACKLOG,
};
use crate::chat::room::check_nick;

impl Delivery {
    pub(super) fn received(
        &mut self,
        now: Now,
        room: String,
        from: String,
        via: String,
        said: Said,
    ) {
        if !self.rooms.contains_key(&room) || !sane(&said) {
            return;
        }
        match said {
            Said::Lines {
                session,
                first,
                sent_ms,
                nick,
                texts,
            } => {
                self.note_nick(&from, &nick);
                let stream = StreamId::new(room, from, session);
                if self.order.next(&stream).is_none() {
                    // A stream first met in the middle: what came before
                    // is fetched, as from a member's summary; else a
                    // first batch lost on the way would never be asked
                    // for, and what we hold would be said to start after
                    // it.
                    self.start_stream(&stream, first);
                }
                self.recover(&stream, first, &texts, nick.clone(), sent_ms, true);
                match self.order.accept(&stream, first, texts) {
                    Accepted::Show(first, texts) => {
                        self.keep(stream, first, texts, nick, sent_ms, true);
                    }
                    Accepted::Gap { from, to } => self.wait_for_gap(now, stream, via, from, to),
                    Accepted::Duplicate => {}
                }
            }
            Said::Hello {
                session,
                nick,
                next,
                have,
                ..
            } => {
                self.note_nick(&from, &nick);
                self.on_have(now, &room, &from, have);
                // Lines of it we never saw the end of: fetch them.
                let stream = StreamId::new(room, from.clone(), session);
                self.sync_stream(now, stream, &from, next);
            }
            Said::Have { have, .. } => self.on_have(now, &room, &from, have),
            Said::Leave { .. } => self.member_left(&room, &from),
        }
    }

    /// Remembers the nick a member gave (every batch gives it: stored only
    /// when it changed).
    fn note_nick(&mut self, from: &str, nick: &Option<String>) {
        if self.nicks.get(from) != Some(nick) {
            self.nicks.insert(from.to_owned(), nick.clone());
        }
    }

    /// A member says what it holds: our lines it has are delivered, and
    /// what it has that we lack is fetched from it.
    fn on_have(&mut self, now: Now, room: &str, from: &str, have: Vec<Held>) {
        for held in have {
            if held.author == self.me {
                if held.session == self.session {
                    self.delivered(now, room, from, held.next);
                }
                continue;
            }
            let stream = StreamId::new(room, held.author, held.session);
            // Only for streams we hold: the map stays as small as `stored`.
            if self.stored.contains_key(&stream) {
                let heard = self.heard.entry(stream.clone()).or_insert(0);
                *heard = (*heard).max(held.next);
            }
            self.sync_stream(now, stream, from, held.next);
        }
    }

    /// `holder` has every line below `next` of a stream: fetch from it what
    /// we lack. A session we never saw is taken up to [`SYNC_BACKLOG`]
    /// lines back, so a member new to the room, or back with nothing kept,
    /// ends with what the others hold.
    fn sync_stream(&mut self, now: Now, stream: StreamId, holder: &str, next: u64) {
        let ours = match self.order.next(&stream) {
            Some(ours) => ours,
            None => self.start_stream(&stream, next),
        };
        self.repair(now, &stream, holder, next);
        if next > ours {
            self.wait_for_gap(now, stream, holder.to_owned(), ours, next - 1);
        }
    }

    /// Starts following a stream whose line `next` is the first we know
    /// of: from up to [`SYNC_BACKLOG`] lines before it. Returns where.
    fn start_stream(&mut self, stream: &StreamId, next: u64) -> u64 {
        let start = sync_start(next);
        self.order.start_at(stream, start);
        start
    }

    /// `holder` has every line below `next` of a stream: ask it for the
    /// lines we gave up on, at most once every [`FETCH_RETRY`]. What comes
    /// is shown, marked late, by [`Delivery::recover`].
    fn repair(&mut self, now: Now, stream: &StreamId, holder: &str, next: u64) {
        let holes = self
            .order
            .holes_to_ask(stream, next, now.at, FETCH_RETRY, MAX_REPAIR_FETCHES);
        for (first, end) in holes {
            self.act(Action::Fetch(FetchAsk {
                stream: stream.clone(),
                from: first,
                to: end - 1,
                ask: [stream.author.clone(), holder.to_owned()],
            }));
        }
    }

    /// Starts waiting for missing lines `from..=to`: asks for them now and
    /// again every [`FETCH_RETRY`] until they come or [`GAP_WAIT`] is over.
    fn wait_for_gap(&mut self, now: Now, stream: StreamId, via: String, from: u64, to: u64) {
        if let Some(gap) = self.gaps.get_mut(&stream) {
            // Already waiting: remember the furthest end the author reached.
            gap.to = gap.to.max(to);
            return;
        }
        if self.gaps.len() >= MAX_GAPS {
            // Asked again at the next summary that names it.
            return;
        }
        self.act(Action::Fetch(FetchAsk {
            stream: stream.clone(),
            from,
            to,
            ask: [stream.author.clone(), via.clone()],
        }));
        let gap = Gap {
            give_up: now.at + GAP_WAIT,
            retry: now.at + FETCH_RETRY,
            from,
            to,
            via,
        };
        self.gaps.insert(stream, gap);
    }

    /// Lines fetched: what fills a gap (and what waited behind it) is
    /// stored and shown; lines given up on are taken late. What stays
    /// missing is reported when the gap's wait is over.
    pub(super) fn fetched(&mut self, now: Now, ask: FetchAsk, reply: Option<Fetched>) {
        let Some(mut reply) = reply else {
            return;
        };
        let end = reply.first.saturating_add(reply.texts.len() as u64);
        if end > MAX_LINE_NUMBER || ask.to > MAX_LINE_NUMBER {
            return;
        }
        // Only what was asked for: a member may answer for any stream.
        reply.keep(ask.from, ask.to.saturating_add(1));
        if reply.texts.is_empty() || !self.rooms.contains_key(&ask.stream.room) {
            return;
        }
        let stream = ask.stream;
        // The nick we heard it give, else the one the answering member
        // knows (checked like any nick: it is only a claim).
        let nick = match self.nicks.get(&stream.author) {
            Some(nick) => nick.clone(),
            None => reply.nick.take().filter(|n| check_nick(n).is_ok()),
        };
        let first_ts = reply.sent_ms.first().copied().unwrap_or(now.wall_ms);
        self.recover(
            &stream,
            reply.first,
            &reply.texts,
            nick.clone(),
            first_ts,
            false,
        );
        let (reply_first, stamps) = (reply.first, std::mem::take(&mut reply.sent_ms));
        let Accepted::Show(first, texts) = self.order.accept(&stream, reply.first, reply.texts)
        else {
            return;
        };
        let filled = self
            .gaps
            .get(&stream)
            .is_none_or(|gap| self.order.next(&stream).is_some_and(|next| next > gap.to));
        if filled && !self.order.has_gap(&stream) {
            self.gaps.remove(&stream);
        }
        // Each run of lines written at one time is kept (and shown) with
        // its time; lines that waited behind the gap came live, now.
        let time_of = |line: u64| {
            line.checked_sub(reply_first)
                .and_then(|i| stamps.get(i as usize).copied())
                .unwrap_or(now.wall_ms)
        };
        let mut texts = texts.into_iter();
        for (first, count, ts) in time_runs(first, texts.len(), time_of) {
            let batch = texts.by_ref().take(count).collect();
            self.keep(stream.clone(), first, batch, nick.clone(), ts, false);
        }
    }

    /// Lines of `texts` (numbered from `first`) that were given up on came
    /// after all: they are stored and shown after a report that says so.
    /// `live`: they came as they were said, not fetched.
    fn recover(
        &mut self,
        stream: &StreamId,
        first: u64,
        texts: &[String],
        nick: Option<String>,
        ts_ms: u64,
        live: bool,
    ) {
        let runs = self.order.recover(stream, first, texts);
        if runs.is_empty() {
            return;
        }
        let count = runs
            .iter()
            .flat_map(|(_, texts)| texts)
            .filter(|text| text.len() <= self.max_line)
            .count() as u64;
        // Fetched lines said before we came are history, not news: no
        // report that they came late.
        if live || !self.before_we_came(&stream.room, ts_ms) {
            self.report_in_turn(Report::Recovered {
                stream: stream.clone(),
                count,
            });
        }
        for (first, texts) in runs {
            self.keep(stream.clone(), first, texts, nick.clone(), ts_ms, live);
        }
    }

    /// Asks again for gaps still open, and gives up on the ones waited
    /// for long enough: what was held behind them is shown, the rest is
    /// reported lost.
    pub(super) fn give_up_gaps(&mut self, now: Now) {
        let mut due = Vec::new();
        let mut again = Vec::new();
        for (stream, gap) in &mut self.gaps {
            if gap.give_up <= now.at {
                due.push((stream.clone(), gap.to));
            } else if gap.retry <= now.at {
                gap.retry = now.at + FETCH_RETRY;
                let from = self
                    .order
                    .next(stream)
                    .map_or(gap.from, |n| gap.from.max(n));
                again.push(FetchAsk {
                    stream: stream.clone(),
                    from,
                    to: gap.to,
                    ask: [stream.author.clone(), gap.via.clone()],
                });
            }
        }
        for ask in again {
            self.act(Action::Fetch(ask));
        }
        for (stream, to) in due {
            self.gaps.remove(&stream);
            let (runs, mut lost) = self.order.skip_gap(&stream);
            lost += self.order.skip_to(&stream, to + 1);
            if lost > 0 {
                self.report_in_turn(Report::Lost {
                    stream: stream.clone(),
                    count: lost,
                });
            }
            let nick = self.nicks.get(&stream.author).cloned().flatten();
            for (first, texts) in runs {
                self.keep(
                    stream.clone(),
                    first,
                    texts,
                    nick.clone(),
                    now.wall_ms,
                    true,
                );
            }
        }
    }

    /// Whether lines written at `ts_ms` were said before we first came to
    /// `room`: fetched, they are history to us.
    fn before_we_came(&self, room: &str, ts_ms: u64) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|room| ts_ms < room.joined_ms)
    }

    /// A report that belongs between lines: after those gathered before
    /// it are shown.
    fn report_in_turn(&mut self, report: Report) {
        if self.storing.is_none() && self.thens.is_empty() {
            self.report(report);
        } else {
            self.thens.push(Then::Report(report));
        }
    }

    /// Stores lines of a member, then shows them; only once they are
    /// stored are they acknowledged. Lines are stored in the order they
    /// arrive, which is the order they are shown. `live`: they came as
    /// they were said (published to the room), not fetched: never history.
    fn keep(
        &mut self,
        stream: StreamId,
        first: u64,
        texts: Vec<String>,
        nick: Option<String>,
        ts_ms: u64,
        live: bool,
    ) {
        // What we hold counts from where we started following the stream
        // (or the first line we ever tried to store, if earlier).
        let start = self.order.start(&stream).unwrap_or(first).min(first);
        self.stored.entry(stream.clone()).or_insert(start);
        // Lines said before we first came to the room, and fetched since,
        // are history to us.
        let earlier = !live && self.before_we_came(&stream.room, ts_ms);
        self.gather(
            Lines {
                stream,
                first,
                texts,
                nick,
                ts_ms,
            },
            Then::Show { earlier },
        );
    }

    /// Hands received lines to the store at once when no write of them is
    /// on its way, else gathers them for the next write, which starts as
    /// soon as that one ends: a line that comes to an idle chat waits for
    /// one commit, not for a timer, and a burst costs a commit per write
    /// rather than one per batch.
    fn gather(&mut self, lines: Lines, then: Then) {
        self.to_store_lines += lines.texts.len();
        self.to_store.push(lines);
        self.thens.push(then);
        self.write_received();
    }

    /// Writes the received lines gathered, unless a write is on its way.
    fn write_received(&mut self) {
        if self.storing.is_some() {
            return;
        }
        let thens = std::mem::take(&mut self.thens);
        if self.to_store.is_empty() {
            // Only reports wait: nothing comes before them any more.
            for then in thens {
                if let Then::Report(report) = then {
                    self.report(report);
                }
            }
            return;
        }
        self.to_store_lines = 0;
        self.storing = Some(thens);
        let lines = std::mem::take(&mut self.to_store);
        self.act(Action::Store(lines));
    }

    /// A write of received lines ended. What it stored is acknowledged
    /// soon, but only as far as every line before it is stored too (a
    /// write that failed leaves a hole that stops the acknowledgement until
    /// a later try fills it); what it could not store is kept to try again.
    /// Stored or not, new lines are shown now: the chat goes on without
    /// the store, and says so. Then the lines gathered meanwhile are
    /// written.
    pub(super) fn stored_lines(
        &mut self,
        now: Now,
        lines: Vec<Lines>,
        result: Result<(), super::Failure>,
    ) {
        let thens = self.storing.take().unwrap_or_default();
        let failed = result.err();
        if failed.is_some() {
            self.retry_store_at.get_or_insert(now.at + STORE_RETRY);
        }
        let mut lines = lines.into_iter();
        let mut after = Vec::new();
        // Stored: lines written again that were refused before. Refused:
        // what to write again, each marked when it was refused before.
        let (mut again, mut kept) = (0, Vec::new());
        for then in thens {
            let batch = then.has_lines().then(|| lines.next()).flatten();
            match (then, batch) {
                (Then::Report(report), _) => after.push(Action::Report(report)),
                (Then::Show { earlier }, Some(batch)) => {
                    if failed.is_some() {
                        kept.push((batch.clone(), false));
                    } else {
                        self.note_stored(now, &batch);
                    }
                    after.push(Action::Show {
                        lines: batch,
                        earlier,
                    });
                }
                (Then::Retry, Some(batch)) if failed.is_some() => kept.push((batch, true)),
                (Then::Retry, Some(batch)) => {
                    self.note_stored(now, &batch);
                    again += batch.texts.len();
                }
                (_, None) => {}
            }
        }
        let notice = match failed {
            None => self.refused.stored(again),
            Some(e) => self.refused.refused(&e, kept),
        };
        if let Some(notice) = notice {
            self.report(Report::Store(notice));
        }
        self.actions.extend(after);
        self.write_received();
    }

    /// Counts a batch of received lines as stored, and has it
    /// acknowledged soon if that stores more of its author's lines without
    /// a hole.
    fn note_stored(&mut self, now: Now, batch: &Lines) {
        let (first, end) = (batch.first, batch.end());
        let key = &batch.stream;
        let held = self.stored.entry(key.clone()).or_insert(first);
        let before = *held;
        if first <= *held {
            *held = (*held).max(end);
            if let Some(ahead) = self.stored_ahead.get_mut(key) {
                while let Some(entry) = ahead.first_entry() {
                    if *entry.key() > *held {
                        break;
                    }
                    *held = (*held).max(entry.remove());
                }
                if ahead.is_empty() {
                    self.stored_ahead.remove(key);
                }
            }
        } else {
            let ahead = self.stored_ahead.entry(key.clone()).or_default();
            add_run(ahead, first, end);
        }
        let advanced = self.stored.get(key).is_some_and(|held| *held > before);
        let Some(room) = self.rooms.get_mut(&key.room) else {
            return;
        };
        if advanced && !std::mem::replace(&mut room.have_dirty, true) && self.have_due.is_none() {
            // Spread over twice the room's delay, so that the first
            // members to tell spare the rest (see `say_have_due`).
            let members = room.members.len().min(200) as u32;
            let spread = ACK_DELAY_PER_MEMBER * members * 2;
            let share = (self.rng.next_u64() % 1024) as u32;
            self.have_due = Some(now.at + ACK_DELAY + spread * share / 1024);
        }
    }

    /// Tries again the writes that failed, when due.
    pub(super) fn retry_unstored(&mut self, now: Now) {
        if self.retry_store_at.is_none_or(|at| at > now.at) {
            return;
        }
        self.retry_store_at = None;
        for batch in self.refused.take() {
            self.gather(batch, Then::Retry);
        }
    }

    /// Says what we hold in the rooms where that changed.
    pub(super) fn say_have_due(&mut self, now: Now) {
        if self.have_due.is_none_or(|at| at > now.at) {
            return;
        }
        self.have_due = None;
        let dirty: Vec<String> = self
            .rooms
            .iter_mut()
            .filter_map(|(name, room)| {
                let dirty = std::mem::replace(&mut room.have_dirty, false);
                (dirty && !room.members.is_empty()).then(|| name.clone())
            })
            .collect();
        for room in dirty {
            // Another member already told the room it holds as much as we
            // do of every author: ours would tell nothing new (an author
            // needs one acknowledgement, and a member catching up one
            // holder), and every member would check it.
            let news = self
                .stored
                .iter()
                .filter(|(stream, _)| stream.room == room)
                .any(|(stream, next)| self.heard.get(stream).is_none_or(|heard| heard < next));
            if !news {
                continue;
            }
            self.hello_seq += 1;
            let said = Said::Have {
                session: self.session,
                seq: self.hello_seq,
                have: self.holdings(&room),
            };
            self.act(Action::Publish { room, said });
        }
    }
}

/// Where following a stream starts when line `next` is the first known
/// of it: up to [`SYNC_BACKLOG`] lines before, from line 1.
pub(super) fn sync_start(next: u64) -> u64 {
    next.saturating_sub(SYNC_BACKLOG).max(1)
}

/// Consecutive lines, `count` of them from `first`, cut into runs
/// written at one time each by `time_of(line)`: (first line, how many,
/// when).
pub fn time_runs(first: u64, count: usize, time_of: impl Fn(u64) -> u64) -> Vec<(u64, usize, u64)> {
    let mut runs: Vec<(u64, usize, u64)> = Vec::new();
    for i in 0..count {
        let line = first.saturating_add(i as u64);
        let ts = time_of(line);
        match runs.last_mut() {
            Some((_, n, last)) if *last == ts => *n += 1,
            _ => runs.push((line, 1, ts)),
        }
    }
    runs
}

/// Whether the line numbers in `said` are within [`MAX_LINE_NUMBER`].
fn sane(said: &Said) -> bool {
    let within = |n: u64| n <= MAX_LINE_NUMBER;
    match said {
        Said::Lines { first, texts, .. } => within(first.saturating_add(texts.len() as u64)),
        Said::Hello { next, have, .. } => within(*next) && have.iter().all(|h| within(h.next)),
        Said::Have { have, .. } => have.iter().all(|h| within(h.next)),
        Said::Leave { .. } => true,
    }
}

/// Adds the run `first..end` to the runs stored beyond a hole: runs that
/// touch are kept as one, so a long wait for a hole to be written makes
/// one entry, not one per batch.
fn add_run(ahead: &mut BTreeMap<u64, u64>, first: u64, end: u64) {
    let touching = ahead
        .range(..=first)
        .next_back()
        .filter(|(_, &stop)| stop >= first)
        .map(|(&start, &stop)| (start, stop));
    if let Some((start, stop)) = touching {
        ahead.insert(start, end.max(stop));
    } else if ahead.len() < MAX_STORED_AHEAD {
        ahead.insert(first, end);
    }
}

#[cfg(test)]
mod tests {
    use super::super::MAX_GATHERED_LINES;
    use super::*;

    #[test]
    fn runs_stored_beyond_a_hole_join_when_they_touch() {
        let mut ahead = BTreeMap::new();
        add_run(&mut ahead, 10, 20);
        add_run(&mut ahead, 20, 30);
        add_run(&mut ahead, 40, 45);
        assert_eq!(
            ahead.into_iter().collect::<Vec<_>>(),
            vec![(10, 30), (40, 45)]
        );
    }

    #[test]
    fn gathered_lines_beyond_the_limit_ask_the_app_to_wait() {
        let mut d = Delivery::new("me", 1, 100, 1, 0);
        let now = Now {
            at: std::time::Duration::ZERO,
            wall_ms: 0,
        };
        d.handle(
            now,
            super::super::Input::Joined {
                room: "r".into(),
                resume: Default::default(),
            },
        );
        let stream = StreamId::new("r", "a", 1);
        d.keep(stream.clone(), 1, vec!["x".into()], None, 0, true);
        assert!(d.storing());
        assert!(!d.must_wait_for_store());
        d.keep(
            stream,
            2,
            vec!["y".into(); MAX_GATHERED_LINES],
            None,
            0,
            true,
        );
        assert!(d.must_wait_for_store());
    }
}
