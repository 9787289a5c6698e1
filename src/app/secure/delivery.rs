//! Carrying out what the core's [`Delivery`](crate::chat::delivery::Delivery)
//! decides: publishing, fetching, writing to the store, showing and
//! reporting; and feeding back what came of it.

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::session::stored;
use super::{conversation, fingerprint_of, short, RoomChat};
use crate::app::{failure, history_line, history_when, now_ms, unstalled, SendError};
use crate::chat::delivery::{
    line_cost, time_runs, Action, FetchAsk, Fetched, Input, Lines, Now, Report, Resume, Said,
    StoredStream, StreamId,
};
use crate::chat::event::{Origin, Status};
use crate::chat::room::Roster;
use crate::chat::{Command, Event, HistoryLine, HistoryPage, KeptLine, Notice};
use crate::store::{self, Batch, PendingWrite, Written};

/// Bytes of lines written on the chat's own thread at most (see
/// [`store::Store::append_now`]) when the store thread is idle; a bigger
/// write goes to the store thread.
const INLINE_WRITE: usize = 16 * 1024;

/// A store write, done at once or on its way.
enum Write {
    Done(Written),
    Queued(PendingWrite),
}

/// Fetches of missing lines on their way at once, at most.
const MAX_FETCHES: usize = 256;

/// Lines as the store keeps them: ours queued in the outbox until a
/// member holds them, others' received.
fn batch_of(lines: Lines, outgoing: bool) -> Batch {
    let Lines {
        stream,
        first,
        texts,
        nick,
        ts_ms,
    } = lines;
    Batch {
        conversation: conversation(&stream.room),
        room: Some(stream.room),
        peer: None,
        author: stream.author,
        session: stream.session,
        first_line: first,
        name: nick,
        ts_ms,
        texts,
        outgoing,
        status: if outgoing {
            store::Status::Queued
        } else {
            store::Status::Received
        },
    }
}

/// The lines of a room batch.
fn lines_of(batch: Batch) -> Lines {
    Lines {
        stream: StreamId::new(batch.room.unwrap_or_default(), batch.author, batch.session),
        first: batch.first_line,
        texts: batch.texts,
        nick: batch.name,
        ts_ms: batch.ts_ms,
    }
}

/// How the author `peer` of lines in a room is shown. Lines fetched from a
/// member who is not (or no longer) here are told apart by fingerprint,
/// never shown as the classic `Peer`.
pub(super) fn shown_as(roster: &Roster, peer: &str) -> String {
    match peer.parse::<PeerId>() {
        Ok(author) if !roster.contains(peer) => {
            format!("Peer-{}", short(&fingerprint_of(&author)))
        }
        _ => roster.display(peer),
    }
}

impl RoomChat {
    fn now(&self) -> Now {
        Now {
            at: self.started.elapsed(),
            wall_ms: now_ms(),
        }
    }

    /// Our clock for [`Recent`](crate::chat::delivery::Recent): milliseconds
    /// since the chat started.
    pub(super) fn kept_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Tells the core what happened and carries out what it decides.
    /// False once the display is gone.
    pub(super) async fn feed(&mut self, events: &mpsc::Sender<Event>, input: Input) -> bool {
        let now = self.now();
        self.core.handle(now, input);
        self.carry_out(events).await
    }

    /// Carries out the core's actions, in order. A store slower than the
    /// network holds back the network (and the core's memory): past the
    /// core's limit this waits for the write on its way.
    async fn carry_out(&mut self, events: &mpsc::Sender<Event>) -> bool {
        loop {
            while let Some(action) = self.core.poll() {
                if !self.act(events, action).await {
                    return false;
                }
            }
            if !self.core.must_wait_for_store() {
                return true;
            }
            let written = stored(&mut self.storing).await;
            self.storing = None;
            self.take_stored(written);
        }
    }

    async fn act(&mut self, events: &mpsc::Sender<Event>, action: Action) -> bool {
        match action {
            Action::Publish { room, said } => self.publish(events, room, said).await,
            Action::Fetch(ask) => {
                if self.fetches.len() >= MAX_FETCHES {
                    // The core asks again while it still waits.
                    return true;
                }
                let mut client = self.client.clone();
                self.fetches.spawn(async move {
                    let reply = client.fetch_missing(&ask).await;
                    (ask, reply)
                });
                true
            }
            Action::Record(lines) => {
                self.trimmer.handled(line_cost(&lines.texts));
                if self.secure.echo_own && !self.echo(events, &lines).await {
                    return false;
                }
                self.record(lines).await;
                true
            }
            Action::Store(lines) => {
                self.store(lines).await;
                true
            }
            Action::MarkDelivered { room, through } => {
                if self.secure.echo_own {
                    let event = Event::DeliveredThrough {
                        room: room.clone(),
                        session: self.session,
                        through,
                    };
                    if events.send(event).await.is_err() {
                        return false;
                    }
                }
                let (conversation, me) = (conversation(&room), self.me());
                let (store, session) = (self.secure.store.clone(), self.session);
                // Not waited for: the chat goes on meanwhile. Queued after
                // the writes of those lines, so it follows them.
                while self.marking.try_join_next().is_some() {}
                self.marking.spawn(async move {
                    let _ = store
                        .mark_delivered(&conversation, &me, session, through)
                        .await;
                });
                true
            }
            Action::Show { lines, earlier } => {
                self.trimmer.handled(line_cost(&lines.texts));
                self.show_lines(events, lines, earlier).await
            }
            Action::Report(report) => self.report(events, report).await,
        }
    }

    fn me(&self) -> String {
        self.client.local_peer_id().to_string()
    }

    /// Tells the front end of our lines as they go out. False once the
    /// display is gone.
    async fn echo(&self, events: &mpsc::Sender<Event>, lines: &Lines) -> bool {
        let queued = self
            .rooms
            .get(&lines.stream.room)
            .is_none_or(Roster::is_empty);
        let origin = Origin {
            room: lines.stream.room.clone(),
            peer_id: lines.stream.author.clone(),
            fingerprint: fingerprint_of(&self.client.local_peer_id()),
            session: lines.stream.session,
            numbers: (lines.first..).take(lines.texts.len()).collect(),
            ts_ms: lines.ts_ms,
        };
        let texts = lines.texts.clone();
        events
            .send(Event::Own {
                origin,
                texts,
                queued,
            })
            .await
            .is_ok()
    }

    /// Publishes what the core says; our lines are kept in memory for
    /// members that miss them.
    async fn publish(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: String,
        mut said: Said,
    ) -> bool {
        match &mut said {
            Said::Lines {
                session,
                first,
                sent_ms,
                nick,
                texts,
            } => {
                let kept_ms = self.kept_ms();
                if let Ok(mut recent) = self.recent.lock() {
                    let stream = StreamId::new(room.clone(), self.me(), *session);
                    recent.record(&stream, *first, texts, *sent_ms, kept_ms);
                    recent.name(&stream, nick.as_deref());
                }
            }
            // Ours now: a /nick typed since the core asked is told.
            Said::Hello { nick, .. } => *nick = self.secure.nick.clone(),
            Said::Have { .. } | Said::Leave { .. } => {}
        }
        // Only typed lines are watched for a stall (see `unstalled`).
        if !matches!(said, Said::Lines { .. }) {
            let _ = self.client.say(&room, said).await;
            return true;
        }
        let publish = async {
            self.client
                .say(&room, said)
                .await
                .map_err(|e| SendError::Failed(e.to_string()))
        };
        if let Err(e) = unstalled(publish, events).await {
            let cause = match e {
                SendError::Failed(cause) => cause,
                SendError::TooLong { limit } => format!("over the {limit}-byte limit"),
            };
            if events
                .send(Event::Notice(Notice::ConnectionError(cause)))
                .await
                .is_err()
            {
                return false;
            }
            // The members that took nothing for so long are dropped.
            if let Some(roster) = self.rooms.get(&room) {
                let members: Vec<PeerId> =
                    roster.iter().filter_map(|(p, _)| p.parse().ok()).collect();
                for peer in members {
                    self.client.disconnect(peer).await;
                }
            }
        }
        true
    }

    /// Writes our lines to the outbox. A short write, with none of ours
    /// before it still on its way, is done here when the store is free:
    /// no wait for its thread. Others go to the store thread, which runs
    /// jobs in order, so they come back in order.
    async fn record(&mut self, lines: Lines) {
        let inline = self.core.writing() == 1 && self.recording.is_empty();
        match self.write(vec![batch_of(lines, true)], inline).await {
            Write::Done(written) => {
                for input in recorded(written) {
                    let now = self.now();
                    self.core.handle(now, input);
                }
            }
            Write::Queued(pending) => self.recording.push_back(pending),
        }
    }

    /// Writes received lines; a short write is done here and now when the
    /// store thread is idle, as for our own lines, and its lines shown at
    /// once: handing it to that thread and back would cost a line more
    /// time than the commit.
    async fn store(&mut self, lines: Vec<Lines>) {
        let batches = lines.into_iter().map(|l| batch_of(l, false)).collect();
        match self.write(batches, true).await {
            Write::Done(written) => self.take_stored(written),
            Write::Queued(pending) => self.storing = Some(pending),
        }
    }

    /// Writes `batches` here and now when `inline` allows it, they are
    /// short ([`INLINE_WRITE`]) and the store thread is idle; else queues
    /// them on the store thread.
    async fn write(&self, batches: Vec<Batch>, inline: bool) -> Write {
        let bytes: usize = batches.iter().flat_map(|b| &b.texts).map(String::len).sum();
        // While files move, the disk may be slow to take even a short
        // commit, and the chat's thread must not wait for it: everything
        // goes to the store thread.
        let inline = inline && !self.moving_files();
        let batches = if inline && bytes <= INLINE_WRITE {
            match self.secure.store.append_now(batches) {
                Ok(written) => return Write::Done(written),
                Err(unwritten) => unwritten,
            }
        } else {
            batches
        };
        Write::Queued(self.secure.store.append_queued(batches).await)
    }

    /// Tells the core how a write of received lines ended.
    fn take_stored(&mut self, written: Written) {
        let input = Input::Stored {
            lines: written.batches.into_iter().map(lines_of).collect(),
            result: written.result.map(drop).map_err(|e| failure(&e)),
        };
        let now = self.now();
        self.core.handle(now, input);
    }

    /// A write of our lines ended. False once the display is gone.
    pub(super) async fn on_recorded(
        &mut self,
        events: &mpsc::Sender<Event>,
        written: Written,
    ) -> bool {
        for input in recorded(written) {
            if !self.feed(events, input).await {
                return false;
            }
        }
        true
    }

    /// The write of received lines on the store thread ended. False once
    /// the display is gone.
    pub(super) async fn on_stored(
        &mut self,
        events: &mpsc::Sender<Event>,
        written: Written,
    ) -> bool {
        self.storing = None;
        self.take_stored(written);
        self.carry_out(events).await
    }

    /// Waits until every received line handed over so far is written (or
    /// refused) and shown, so that what is shown next comes after them.
    /// False once the display is gone.
    pub(super) async fn show_stored(&mut self, events: &mpsc::Sender<Event>) -> bool {
        while self.storing.is_some() {
            let written = stored(&mut self.storing).await;
            if !self.on_stored(events, written).await {
                return false;
            }
        }
        true
    }

    /// A member said something in a room: who it is and where it can be
    /// reached are for the roster; lines are kept for members that miss
    /// them; the rest is the core's. False once the display is gone.
    pub(super) async fn on_room_said(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: String,
        author: PeerId,
        via: PeerId,
        said: Said,
        addrs: Vec<Multiaddr>,
    ) -> bool {
        // Nothing from a member that was removed (sealed under a key it
        // held before, or passed on by one that does not know yet).
        if !self.rooms.contains_key(&room) || self.removed_from(&room, &author) {
            return true;
        }
        if !self.announce_dialled_in(events, &room, author).await {
            return false;
        }
        let from = author.to_string();
        let input = |said| Input::Received {
            room: room.clone(),
            from: from.clone(),
            via: via.to_string(),
            said,
        };
        match said {
            Said::Hello { ref nick, .. } => {
                let nick = nick.clone();
                if !addrs.is_empty() {
                    self.client.introduce(author, addrs).await;
                }
                self.feed(events, input(said)).await
                    && self.member_joined(events, &room, author, Some(nick)).await
            }
            Said::Leave { .. } => {
                self.member_left(events, &room, &from).await && self.end_if_deserted(events).await
            }
            Said::Have { .. } => self.feed(events, input(said)).await,
            Said::Lines {
                session,
                first,
                sent_ms,
                ref nick,
                ref texts,
            } => {
                let nick = nick.clone();
                let kept_ms = self.kept_ms();
                if let Ok(mut recent) = self.recent.lock() {
                    let stream = StreamId::new(room.clone(), from.clone(), session);
                    recent.record(&stream, first, texts, sent_ms, kept_ms);
                    recent.name(&stream, nick.as_deref());
                }
                self.member_joined(events, &room, author, Some(nick)).await
                    && self.feed(events, input(said)).await
            }
        }
    }

    /// Lines fetched: kept for other members, then the core's. False once
    /// the display is gone.
    pub(super) async fn on_fetched(
        &mut self,
        events: &mpsc::Sender<Event>,
        ask: FetchAsk,
        reply: Option<Fetched>,
    ) -> bool {
        let reply = reply.map(|mut reply| {
            // Only what was asked for: a member may answer for any stream,
            // and what is kept for others must be the author's lines.
            reply.keep(ask.from, ask.to.saturating_add(1));
            if reply.sent_ms.len() != reply.texts.len() {
                // An answer without the times of its lines: they are
                // unknown, and taken as now.
                reply.sent_ms = vec![now_ms(); reply.texts.len()];
            }
            let kept_ms = self.kept_ms();
            if let Ok(mut recent) = self.recent.lock() {
                for (first, texts, sent_ms) in stamped_runs(&reply) {
                    recent.record(&ask.stream, first, texts, sent_ms, kept_ms);
                }
            }
            // The nick we heard it give, else the answer's (the core
            // checks it like any nick: it is only a claim).
            let author = ask.stream.author.parse::<PeerId>().ok();
            if let Some(nick) = author.and_then(|a| self.nicks.get(&a)) {
                reply.nick = Some(nick.clone());
            }
            reply
        });
        self.feed(events, Input::Fetched { ask, reply }).await
    }

    /// Picks a room up where the store left it: what we hold of each
    /// author (so nothing is shown twice and what is missing is fetched),
    /// the number of our next line, and our lines never acknowledged.
    pub(super) async fn resume_room(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
    ) -> Result<bool, crate::app::Error> {
        let conversation = conversation(room);
        let me = self.me();
        let session = self.session;
        let since = now_ms().saturating_sub(self.secure.sync_window.as_millis() as u64);
        let stored = self
            .secure
            .store
            .resume_room(&conversation, &me, session, since, now_ms())
            .await?;
        let streams = stored
            .streams
            .into_iter()
            .zip(stored.missing)
            .map(|(stream, missing)| StoredStream {
                author: stream.author,
                session: stream.session,
                next: stream.next_line,
                truncated: missing.len() >= store::RESUME_HOLES,
                missing,
            })
            .collect();
        let resume = Resume {
            streams,
            next_line: stored.next_line,
            unsent: stored.unsent.into_iter().map(lines_of).collect(),
            delivered: stored.delivered_through,
            joined_ms: stored.joined,
        };
        let input = Input::Joined {
            room: room.to_owned(),
            resume,
        };
        Ok(self.feed(events, input).await)
    }

    /// Puts our unacknowledged lines back in the outbox, for the next run
    /// to send: handed to the network is not delivered.
    pub(super) async fn requeue_undelivered(&mut self) {
        let (me, session) = (self.me(), self.session);
        for room in self.core.unacknowledged_rooms() {
            let conversation = conversation(&room);
            let _ = self
                .secure
                .store
                .requeue_undelivered(&conversation, &me, session)
                .await;
        }
    }

    /// Shows lines of a member (those within the line limit). False once
    /// the display is gone.
    async fn show_lines(&self, events: &mpsc::Sender<Event>, lines: Lines, earlier: bool) -> bool {
        let Lines {
            stream,
            first,
            texts,
            nick,
            ts_ms,
        } = lines;
        let before = texts.len();
        let (numbers, texts): (Vec<u64>, Vec<String>) = (first..)
            .zip(texts)
            .filter(|(_, t)| t.len() <= self.max_line)
            .unzip();
        if texts.len() < before {
            let limit = self.max_line;
            let notice = Event::Notice(Notice::IncomingTooLong { limit });
            if events.send(notice).await.is_err() {
                return false;
            }
        }
        if texts.is_empty() {
            return true;
        }
        let roster = self.rooms.get(&stream.room);
        let from = match (&nick, roster) {
            // History names its author as `/history` does: by the nick
            // given with the lines.
            (Some(nick), _) if earlier => nick.clone(),
            (_, Some(roster)) => shown_as(roster, &stream.author),
            (_, None) => shown_as(&Roster::default(), &stream.author),
        };
        let event = if earlier {
            let when = history_when(ts_ms);
            let (conversation, fingerprint) = (
                conversation(&stream.room),
                stream.author.parse().ok().map(|peer| fingerprint_of(&peer)),
            );
            let lines = numbers
                .into_iter()
                .zip(texts)
                .map(|(number, text)| HistoryLine {
                    when: when.clone(),
                    from: from.clone(),
                    text,
                    status: None,
                    kept: Some(KeptLine {
                        id: store::message_id(
                            &conversation,
                            &stream.author,
                            stream.session,
                            number,
                        ),
                        room: Some(stream.room.clone()),
                        author: stream.author.clone(),
                        fingerprint: fingerprint.clone(),
                        ts_ms,
                    }),
                })
                .collect();
            Event::History { lines, page: None }
        } else {
            let origin = Origin {
                room: stream.room.clone(),
                fingerprint: stream
                    .author
                    .parse()
                    .map_or_else(|_| String::new(), |peer| fingerprint_of(&peer)),
                peer_id: stream.author,
                session: stream.session,
                numbers,
                ts_ms,
            };
            let room = (self.current.as_deref() != Some(&stream.room)).then_some(stream.room);
            Event::Lines {
                from,
                room,
                texts,
                origin: Some(origin),
            }
        };
        events.send(event).await.is_ok()
    }

    /// Tells the user what the core reports. False once the display is
    /// gone.
    async fn report(&self, events: &mpsc::Sender<Event>, report: Report) -> bool {
        let display = |stream: &StreamId, shown: fn(&Roster, &str) -> String| {
            self.rooms
                .get(&stream.room)
                .map_or_else(|| "Peer".into(), |r| shown(r, &stream.author))
        };
        let event = match report {
            Report::Lost { stream, count } => Event::Notice(Notice::Lost {
                who: display(&stream, |r, p| r.display(p)),
                count,
            }),
            Report::Recovered { stream, count } => Event::Notice(Notice::Recovered {
                who: display(&stream, shown_as),
                count,
            }),
            Report::Queued { room } => Event::Notice(Notice::Queued { room }),
            Report::Undelivered { room, waiting } => {
                Event::Status(Status::Undelivered { room, waiting })
            }
            Report::Delivered { room } => Event::Status(Status::Delivered { room }),
            Report::Store(notice) => Event::Notice(notice),
        };
        events.send(event).await.is_ok()
    }

    /// The last `limit` lines kept of a room, or why they cannot be read.
    /// Received lines are read as far as they were handed to the store
    /// (see [`RoomChat::show_stored`]).
    pub(super) async fn history_event(&mut self, room: &str, limit: usize) -> Event {
        let conversation = conversation(room);
        let me = self.me();
        let kept = self.secure.store.recent(&conversation, limit).await;
        let roster = self.rooms.get(room);
        match kept {
            Ok(messages) => Event::History {
                lines: messages
                    .into_iter()
                    .map(|m| history_line(m, &me, roster))
                    .collect(),
                page: None,
            },
            Err(e) => Event::Info(format!("history: {e}")),
        }
    }
}

impl RoomChat {
    /// Carries out what a program asks besides typed lines (see
    /// [`Command::Say`] and [`Command::History`]). False once the display
    /// is gone.
    pub(super) async fn on_asked(&mut self, events: &mpsc::Sender<Event>, asked: Command) -> bool {
        match asked {
            Command::Say { room, lines } => self.say_in(events, room, lines).await,
            Command::History {
                room,
                before,
                limit,
            } => {
                let answer = self.history_page(room, before, limit).await;
                events.send(answer).await.is_ok()
            }
            Command::Send(_) | Command::SendLines(_) => true,
        }
    }

    /// A page of a room's history (see [`Command::History`]).
    async fn history_page(
        &mut self,
        room: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> Event {
        let Some(room) = room.or_else(|| self.current.clone()) else {
            return Event::Info("you are in no room".into());
        };
        let limit = limit.clamp(1, HISTORY_PAGE_MAX);
        let conversation = conversation(&room);
        // Lines already reported delivered are read back as delivered: the
        // marks on their way to the store are written first.
        while self.marking.join_next().await.is_some() {}
        let kept = match &before {
            // Only lines of this room are paged through.
            Some(id)
                if id
                    .strip_prefix(conversation.as_str())
                    .is_some_and(|r| r.starts_with('/')) =>
            {
                self.secure.store.before(id, limit).await
            }
            Some(_) => Ok(None),
            None => self
                .secure
                .store
                .recent(&conversation, limit)
                .await
                .map(Some),
        };
        let me = self.me();
        let roster = self.rooms.get(&room);
        match kept {
            Ok(messages) => {
                // A line not (yet) held gives nothing, but is not taken
                // for the start of the history.
                let more = messages.as_ref().is_none_or(|m| m.len() == limit);
                let messages = messages.unwrap_or_default();
                Event::History {
                    lines: messages
                        .into_iter()
                        .map(|m| history_line(m, &me, roster))
                        .collect(),
                    page: Some(HistoryPage { room, before, more }),
                }
            }
            Err(e) => Event::Info(format!("history: {e}")),
        }
    }
}

/// Lines one page of history holds at most.
const HISTORY_PAGE_MAX: usize = 1_000;

/// What the core is told of a write of our lines.
fn recorded(written: Written) -> Vec<Input> {
    let result = written.result.map(drop).map_err(|e| failure(&e));
    written
        .batches
        .into_iter()
        .map(|batch| Input::Recorded {
            lines: lines_of(batch),
            result: result.clone(),
        })
        .collect()
}

/// The lines of an answer in runs written at one time each: the first
/// line's number, the lines, and when they were written.
fn stamped_runs(reply: &Fetched) -> Vec<(u64, &[String], u64)> {
    let time_of = |line: u64| {
        let i = line.saturating_sub(reply.first) as usize;
        reply.sent_ms.get(i).copied().unwrap_or(0)
    };
    let mut start = 0;
    time_runs(reply.first, reply.texts.len(), time_of)
        .into_iter()
        .map(|(first, count, ts)| {
            let run = (first, &reply.texts[start..start + count], ts);
            start += count;
            run
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_splits_into_runs_of_one_time() {
        let reply = Fetched {
            first: 5,
            texts: ["a", "b", "c", "d"].map(String::from).to_vec(),
            sent_ms: vec![10, 10, 20, 10],
            nick: None,
        };
        let runs: Vec<(u64, usize, u64)> = stamped_runs(&reply)
            .into_iter()
            .map(|(first, texts, ms)| (first, texts.len(), ms))
            .collect();
        assert_eq!(runs, [(5, 2, 10), (7, 1, 20), (8, 1, 10)]);
        assert!(stamped_runs(&Fetched::default()).is_empty());
    }
}
