//! Our lines: numbered, written to the outbox, published (or kept while
//! nobody else is in the room), and kept in the outbox until a member
//! says it holds them.

use super::{
    Action, Delivery, Failure, Lines, Now, Report, Room, Said, StreamId, Time,
    ACK_DELAY_PER_MEMBER, PACE_PATIENCE, UNDELIVERED_NOTICE,
};

/// Our lines not yet acknowledged by a member, in bytes (see
/// [`line_cost`]), in every room together: those on their way to the
/// outbox, those kept while nobody else is in the room, and those
/// published. Once this much waits, input does (as a writer to a full
/// socket would) until a member says it holds some: nothing typed is
/// refused, and a sender never puts more than this in flight, however
/// fast its input or slow its readers. Loopback throughput is the window
/// over the time an acknowledgement takes (about 0.1 s).
pub const SEND_WINDOW: usize = 6 * 1024 * 1024;

/// Our lines published within the last [`Delivery::holding_published`]
/// (the time the network layer keeps a published message, to pass it on),
/// in bytes as [`line_cost`] counts them, in every room together: input
/// waits once this much was published that recently, acknowledged or not.
/// An acknowledgement says a member holds a line, not that the network
/// let go of it; without this, a fast pipe that is acknowledged at once
/// fills that cache with all it sends in that time. So a sender puts out
/// at most this much per holding time, and every member keeps at most
/// this much of its lines there.
pub const PUBLISH_WINDOW: usize = 8 * 1024 * 1024;

/// What each line counts for in [`SEND_WINDOW`] beyond its text: its share
/// of a batch's framing, so that empty lines are not free.
pub const LINE_OVERHEAD: usize = 16;

/// What `texts` count for in [`SEND_WINDOW`].
pub fn line_cost(texts: &[String]) -> usize {
    texts.iter().map(|t| t.len() + LINE_OVERHEAD).sum()
}

impl Delivery {
    /// Whether input should wait: [`SEND_WINDOW`] of our lines wait for an
    /// acknowledgement, or [`PUBLISH_WINDOW`] of them were published within
    /// the holding time.
    pub fn input_held(&self) -> bool {
        self.unacked_bytes >= SEND_WINDOW || self.published_bytes >= PUBLISH_WINDOW
    }

    /// How long the network keeps a message we published (0, the default,
    /// when it keeps none): see [`PUBLISH_WINDOW`].
    #[must_use]
    pub fn holding_published(mut self, hold: Time) -> Self {
        self.publish_hold = hold;
        self
    }

    /// What our lines published within the holding time count for in
    /// [`PUBLISH_WINDOW`].
    pub fn published_bytes(&self) -> usize {
        self.published_bytes
    }

    /// Forgets what was published longer ago than the holding time.
    pub(super) fn let_go_published(&mut self, now: Now) {
        while let Some(&(at, cost)) = self.published.front() {
            if at + self.publish_hold > now.at {
                break;
            }
            self.published.pop_front();
            self.published_bytes = self.published_bytes.saturating_sub(cost);
        }
    }

    /// When what holds input in [`PUBLISH_WINDOW`] is let go of.
    pub(super) fn published_wake(&self) -> Option<Time> {
        if self.published_bytes < PUBLISH_WINDOW {
            return None;
        }
        self.published
            .front()
            .map(|&(at, _)| at + self.publish_hold)
    }

    /// What our lines not yet acknowledged count for in [`SEND_WINDOW`].
    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// Numbers typed lines for `room` and has them written to the outbox,
    /// as queued; [`Delivery::recorded`] publishes them once they are.
    pub(super) fn typed(
        &mut self,
        now: Now,
        room: String,
        texts: Vec<String>,
        nick: Option<String>,
    ) {
        if texts.is_empty() {
            return;
        }
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        let first = state.next_seq;
        state.next_seq += texts.len() as u64;
        let cost = line_cost(&texts);
        state.unacked.push_back((state.next_seq, cost));
        self.unacked_bytes += cost;
        self.writing += 1;
        let lines = Lines {
            stream: StreamId::new(room, self.me.clone(), self.session),
            first,
            texts,
            nick,
            ts_ms: now.wall_ms,
        };
        self.act(Action::Record(lines));
    }

    /// Our lines were written to the outbox (or could not be: they go out
    /// all the same, and the user is told history is not kept): publish
    /// them, or keep them while we are alone in the room. Lines of a room
    /// left meanwhile stay queued in the store for when it is joined again.
    pub(super) fn recorded(&mut self, now: Now, lines: Lines, result: Result<(), Failure>) {
        self.writing = self.writing.saturating_sub(1);
        let notice = match result {
            Ok(()) => self.refused.stored(0),
            Err(e) => self.refused.failed(&e),
        };
        if let Some(notice) = notice {
            self.report(Report::Store(notice));
        }
        let name = lines.stream.room.clone();
        let Some(room) = self.rooms.get_mut(&name) else {
            return;
        };
        if lines.end() <= room.recorded {
            // The room was left and joined again while this write was on
            // its way: the join read these lines back from the store, and
            // keeps them already.
            return;
        }
        room.recorded = lines.end();
        if room.members.is_empty() {
            self.pending_lines += lines.texts.len();
            room.unacked_since.get_or_insert((now.at, false));
            room.pending.push(lines);
            // Said at once: the report of lines not yet delivered comes
            // only after a wait meant for a member slow to acknowledge.
            if !std::mem::replace(&mut room.told_queued, true) {
                self.report(Report::Queued { room: name });
            }
            return;
        }
        self.publish_lines(now, lines);
    }

    /// Publishes our lines. Handed to the network is not delivered: they
    /// stay queued in the store until a member acknowledges them, and a
    /// run that ends before then sends them again.
    pub(super) fn publish_lines(&mut self, now: Now, lines: Lines) {
        let Some(room) = self.rooms.get_mut(&lines.stream.room) else {
            return;
        };
        if room.acked < lines.end() {
            room.unacked_since.get_or_insert((now.at, false));
        }
        // A member that held all we had sent is taking our lines: its
        // patience starts with these.
        for (next, at) in room.held_by.values_mut() {
            if *next >= lines.first {
                *at = now.at;
            }
        }
        let Lines {
            stream,
            first,
            texts,
            nick,
            ts_ms,
        } = lines;
        if !self.publish_hold.is_zero() {
            let cost = line_cost(&texts);
            self.published.push_back((now.at, cost));
            self.published_bytes += cost;
        }
        let said = Said::Lines {
            session: stream.session,
            first,
            sent_ms: ts_ms,
            nick,
            texts,
        };
        self.act(Action::Publish {
            room: stream.room,
            said,
        });
    }

    /// Member `from` holds our lines of `room` below `next`.
    pub(super) fn delivered(&mut self, now: Now, name: &str, from: &str, next: u64) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        let next = next.min(room.next_seq);
        let took = room
            .held_by
            .get(from)
            .is_none_or(|&(before, _)| next > before);
        if took && room.members.contains(from) {
            room.held_by.insert(from.to_owned(), (next, now.at));
        }
        if next <= room.acked {
            self.pace(now, name);
            return;
        }
        room.acked = next;
        let all = next >= room.next_seq;
        let told = match room.unacked_since {
            Some((_, told)) if all => {
                room.unacked_since = None;
                told
            }
            _ => false,
        };
        self.pace(now, name);
        self.act(Action::MarkDelivered {
            room: name.to_owned(),
            through: next,
        });
        if told {
            self.report(Report::Delivered {
                room: name.to_owned(),
            });
        }
    }

    /// Lets the window go of our lines of `room` that every member taking
    /// lines holds: those that said what they hold and took some within
    /// [`PACE_PATIENCE`] (plus their spread), so a sender goes at the pace
    /// of the slowest reader that keeps reading, not the fastest, and its
    /// slower readers are not overrun. Without any such member, what any
    /// member holds.
    pub(super) fn pace(&mut self, now: Now, name: &str) {
        let patience = self.pace_patience(name);
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.paced_at = now.at;
        let slowest = room
            .held_by
            .values()
            .filter(|&&(next, at)| next >= room.next_seq || now.at < at + patience)
            .map(|&(next, _)| next)
            .min();
        let paced = slowest.unwrap_or(room.acked).min(room.acked);
        while let Some(&(end, cost)) = room.unacked.front() {
            if end > paced {
                break;
            }
            room.unacked.pop_front();
            self.unacked_bytes = self.unacked_bytes.saturating_sub(cost);
        }
    }

    /// How long a member of `name` may take none of our lines and still be
    /// waited for: [`PACE_PATIENCE`] and the spread of its room's
    /// acknowledgements.
    fn pace_patience(&self, name: &str) -> Time {
        let members = self.rooms.get(name).map_or(0, |r| r.members.len()) as u32;
        PACE_PATIENCE + ACK_DELAY_PER_MEMBER * members * 2
    }

    /// When a member still waited for stops being waited for, in a room
    /// with lines in the window: the window may then move on.
    pub(super) fn pace_wake(&self) -> Option<Time> {
        self.rooms
            .iter()
            .filter(|(_, room)| !room.unacked.is_empty())
            .flat_map(|(name, room)| {
                let patience = self.pace_patience(name);
                room.held_by
                    .values()
                    .filter(move |&&(next, _)| next < room.next_seq)
                    .map(move |&(_, at)| at + patience)
                    .filter(move |&due| due > room.paced_at)
            })
            .min()
    }

    /// Reports our lines waiting too long for an acknowledgement.
    pub(super) fn tell_undelivered(&mut self, now: Now) {
        let mut due = Vec::new();
        for (name, room) in &mut self.rooms {
            if let Some((since, told)) = &mut room.unacked_since {
                if !*told && now.at >= *since + UNDELIVERED_NOTICE {
                    *told = true;
                    let waiting = room.waiting();
                    if waiting > 0 {
                        due.push((name.clone(), waiting));
                    }
                }
            }
        }
        for (room, waiting) in due {
            self.report(Report::Undelivered { room, waiting });
        }
    }
}

impl Room {
    /// Our lines numbered and not acknowledged.
    pub(super) fn waiting(&self) -> u64 {
        self.next_seq.saturating_sub(self.acked.max(1))
    }
}
