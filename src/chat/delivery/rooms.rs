//! Rooms and their members as the core sees them: joining and leaving,
//! members coming and going, the periodic hello that tells each member
//! what we hold, and which holdings a hello names.

use super::*;

impl Delivery {
    pub(super) fn joined(&mut self, now: Now, name: String, resume: Resume) {
        let mut room = Room {
            next_seq: resume.next_line.max(1),
            recorded: resume.next_line.max(1),
            acked: resume.delivered,
            joined_ms: resume.joined_ms,
            ..Room::default()
        };
        for stream in resume.streams {
            if stream.author == self.me {
                continue;
            }
            let id = StreamId::new(name.clone(), stream.author.clone(), stream.session);
            // What is missing before the first line held is ours to hold
            // as far back as a newcomer would fetch: lines whose write
            // was lost when the program stopped are fetched again.
            let start = incoming::sync_start(stream.next);
            let missing: Vec<(u64, u64)> = stream
                .missing
                .iter()
                .map(|&(from, end)| (from.max(start), end))
                .filter(|(from, end)| from < end)
                .collect();
            let stream = StoredStream { missing, ..stream };
            self.order.resume(&id, stream.next, &stream.missing);
            // Stored without a hole up to the first one; beyond it, runs.
            let mut held = stream.next;
            let mut ahead = BTreeMap::new();
            for (i, &(from, end)) in stream.missing.iter().enumerate() {
                if i == 0 {
                    held = from;
                }
                let stop = match stream.missing.get(i + 1) {
                    Some(next_hole) => next_hole.0,
                    None if stream.truncated => break,
                    None => stream.next,
                };
                if end < stop && ahead.len() < MAX_STORED_AHEAD {
                    ahead.insert(end, stop);
                }
            }
            if !ahead.is_empty() {
                self.stored_ahead.insert(id.clone(), ahead);
            }
            self.stored.insert(id, held);
        }
        for lines in resume.unsent {
            let cost = line_cost(&lines.texts);
            self.unacked_bytes += cost;
            room.unacked.push_back((lines.end(), cost));
            self.pending_lines += lines.texts.len();
            room.pending.push(lines);
        }
        self.rooms.insert(name, room);
        self.next_hello.get_or_insert(now.at + HELLO_PERIOD);
    }

    pub(super) fn left(&mut self, name: &str) {
        let Some(room) = self.rooms.remove(name) else {
            return;
        };
        // Kept in the store, queued, for when the room is joined again.
        let kept: usize = room.pending.iter().map(|l| l.texts.len()).sum();
        self.pending_lines = self.pending_lines.saturating_sub(kept);
        let unacked: usize = room.unacked.iter().map(|&(_, cost)| cost).sum();
        self.unacked_bytes = self.unacked_bytes.saturating_sub(unacked);
        // What is held is in the store, and read again on a new join.
        self.gaps.retain(|stream, _| stream.room != name);
        self.stored.retain(|stream, _| stream.room != name);
        self.stored_ahead.retain(|stream, _| stream.room != name);
        self.heard.retain(|stream, _| stream.room != name);
        self.hello_seq += 1;
        let said = Said::Leave {
            session: self.session,
            seq: self.hello_seq,
        };
        self.act(Action::Publish {
            room: name.to_owned(),
            said,
        });
    }

    pub(super) fn member_joined(&mut self, now: Now, name: &str, peer: String) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        let was_alone = room.members.is_empty();
        if !room.members.insert(peer) {
            return;
        }
        if was_alone {
            room.told_queued = false;
            let pending = std::mem::take(&mut room.pending);
            for lines in pending {
                self.pending_lines = self.pending_lines.saturating_sub(lines.texts.len());
                self.publish_lines(now, lines);
            }
        }
        self.greet_soon(now, name);
    }

    pub(super) fn member_left(&mut self, name: &str, peer: &str) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if !room.members.remove(peer) {
            return;
        }
        room.held_by.remove(peer);
        // Its place is kept (see `Ordering::depart`). Gaps in its lines
        // are not given up on while it is away: its next hello, or another
        // member's, says what to fetch again.
        self.order.depart(name, peer);
        self.gaps
            .retain(|stream, _| stream.room != name || stream.author != peer);
        if !self.rooms.values().any(|room| room.members.contains(peer)) {
            self.nicks.remove(peer);
        }
    }

    /// Schedules a hello for a newcomer: now if we have been quiet for
    /// [`HELLO_INTERVAL`], else when it has passed.
    pub(super) fn greet_soon(&mut self, now: Now, name: &str) {
        if let Some(room) = self.rooms.get_mut(name) {
            let at = room
                .last_hello
                .map_or(now.at, |last| (last + HELLO_INTERVAL).max(now.at));
            room.hello_due.get_or_insert(at);
        }
    }

    pub(super) fn tick(&mut self, now: Now) {
        self.give_up_gaps(now);
        let due: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.hello_due.is_some_and(|at| at <= now.at))
            .map(|(name, _)| name.clone())
            .collect();
        for room in due {
            self.hello(now, &room);
        }
        self.retry_unstored(now);
        self.say_have_due(now);
        self.tell_undelivered(now);
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.pace(now, &room);
        }
        if self.next_hello.is_some_and(|at| at <= now.at) {
            self.next_hello = Some(now.at + self.hello_period());
            let rooms: Vec<String> = self
                .rooms
                .iter()
                .filter(|(_, r)| !r.members.is_empty())
                .map(|(name, _)| name.clone())
                .collect();
            for room in rooms {
                self.hello(now, &room);
            }
        }
    }

    /// How long until the next periodic hello: longer in bigger rooms.
    pub(super) fn hello_period(&self) -> Duration {
        let members = self.rooms.values().map(|r| r.members.len()).max();
        HELLO_PERIOD + HELLO_PERIOD_PER_MEMBER * members.unwrap_or(0).min(1000) as u32
    }

    /// Says hello in a room: the number of our next line, and what we
    /// hold.
    pub(super) fn hello(&mut self, now: Now, name: &str) {
        let have = self.holdings(name);
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.hello_due = None;
        room.last_hello = Some(now.at);
        let next = room.recorded;
        self.hello_seq += 1;
        let said = Said::Hello {
            session: self.session,
            seq: self.hello_seq,
            nick: None,
            next,
            have,
        };
        self.act(Action::Publish {
            room: name.to_owned(),
            said,
        });
    }

    /// What we hold of a room's authors, for a hello or an
    /// acknowledgement: at most [`MAX_HOLDINGS`], those no other member
    /// said it holds as much of first. When there are more, each list
    /// starts where the last one ended, so every stream is told in turn.
    pub(super) fn holdings(&mut self, room: &str) -> Vec<Held> {
        let (mut news, mut rest): (Vec<Held>, Vec<Held>) = (Vec::new(), Vec::new());
        for (stream, next) in self.stored.iter().filter(|(s, _)| s.room == room) {
            let held = Held {
                author: stream.author.clone(),
                session: stream.session,
                next: *next,
            };
            if self.heard.get(stream).is_none_or(|heard| heard < next) {
                news.push(held);
            } else {
                rest.push(held);
            }
        }
        if news.len() + rest.len() <= MAX_HOLDINGS {
            news.append(&mut rest);
            return news;
        }
        let from = self.holdings_from;
        self.holdings_from = self.holdings_from.wrapping_add(MAX_HOLDINGS);
        let turn = |list: &mut Vec<Held>| {
            if !list.is_empty() {
                let by = from % list.len();
                list.rotate_left(by);
            }
        };
        turn(&mut news);
        turn(&mut rest);
        news.append(&mut rest);
        news.truncate(MAX_HOLDINGS);
        news
    }
}
