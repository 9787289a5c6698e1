//! The session: connecting, the main loop, the wait for our lines to be
//! acknowledged when input ends, and reconnecting to the peer we
//! connected to.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::{unexpected, RoomChat};
use crate::app::{stopped, Chat, Error, Role, LINGER};
use crate::chat::command::{self, Input as Typed};
use crate::chat::delivery::{Input, SEND_WINDOW};
use crate::chat::event::Status;
use crate::chat::line;
use crate::chat::ticket::inviter_digest;
use crate::chat::{Command, DialTarget, Event, Notice};
use crate::identity;
use crate::net::{self, Client, NetEvent};
use crate::store::{PendingWrite, Written};

/// Batches of ours handed to the store and not yet published, at most:
/// input waits beyond that, so a store slower than the typing (or the
/// pipe) holds back the reading, not memory.
const MAX_WRITING: usize = 32;

/// Room messages waiting in the network engine for a member to take them
/// (see [`net::PublishBacklog`]) beyond which input waits.
const MAX_PUBLISH_BACKLOG: usize = 8;

/// Lines in one published batch at most.
const BATCH_LINES: usize = 4096;

/// Rooms with at least this many other members gather a sender's burst
/// into batches (see `RoomChat::coalesce_window`).
const COALESCE_FROM_MEMBERS: usize = 8;

/// The wait between one sender's publishes, per other member of the room.
const COALESCE_PER_MEMBER: Duration = Duration::from_micros(300);

/// The longest wait between one sender's publishes.
const MAX_COALESCE: Duration = Duration::from_millis(20);

/// The longest wait between two tries at reconnecting.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// Connection attempts when a member is busy with other handshakes.
const DIAL_ATTEMPTS: u32 = 4;

/// After our input ended, how often what is still unacknowledged is
/// looked at (and, after the first look, reported).
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// After our input ended, how long the wait for acknowledgements may go
/// without any before the program gives up (and exits with an error,
/// leaving the lines queued for its next run). Progress resets it, so a
/// slow link is waited for as long as it keeps moving.
pub(super) const DRAIN_GIVE_UP: Duration = Duration::from_secs(30);

/// How often the chat looks whether a burst of lines is over, to give its
/// memory back (see `app::trim`).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Our window of unacknowledged lines full, members there, and none of
/// it acknowledged for this long: they are told they have not read what
/// we sent, and after [`net::SLOW_DROP_AFTER`] they are dropped (a
/// member that comes back is sent the rest from the outbox).
const STALL_NOTICE: Duration = Duration::from_secs(5);

/// Since when our input waits on a full window with nothing acknowledged,
/// what was unacknowledged then, and whether the members were told.
#[derive(Debug, Clone, Copy)]
struct Stall {
    since: Instant,
    unacked: usize,
    told: bool,
}

impl Stall {
    fn new(now: Instant, unacked: usize) -> Self {
        Self {
            since: now,
            unacked,
            told: false,
        }
    }

    /// When to look again.
    fn due(&self) -> Instant {
        self.since
            + if self.told {
                net::SLOW_DROP_AFTER
            } else {
                STALL_NOTICE
            }
    }
}

/// The wait, after our input ended, for our lines to be acknowledged.
#[derive(Debug, Default)]
struct Drain {
    /// When input ended, and the last time fewer lines were waiting than
    /// before; `None` before input ended.
    since: Option<(Instant, Instant)>,
    /// Lines waiting at that time.
    waiting: u64,
}

/// What the wait does next.
#[derive(Debug, PartialEq, Eq)]
enum DrainStep {
    Wait,
    Report,
    GiveUp,
}

impl Drain {
    fn started(now: Instant, waiting: u64) -> Self {
        Drain {
            since: Some((now, now)),
            waiting,
        }
    }

    /// Whether input ended a while ago ([`LINGER`]).
    fn waited_for_a_member(&self) -> bool {
        self.since
            .is_some_and(|(started, _)| started.elapsed() >= LINGER)
    }

    /// Looks at how many lines wait at `now`.
    fn check_at(&mut self, now: Instant, waiting: u64) -> DrainStep {
        let Some((started, progress_at)) = self.since else {
            return DrainStep::Wait;
        };
        if waiting < self.waiting {
            self.waiting = waiting;
            self.since = Some((started, now));
        } else if now.duration_since(progress_at) >= DRAIN_GIVE_UP && waiting > 0 {
            return DrainStep::GiveUp;
        }
        if waiting > 0 && now.duration_since(started) >= DRAIN_CHECK {
            DrainStep::Report
        } else {
            DrainStep::Wait
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl RoomChat {
    /// The members of the current room read nothing of what we sent:
    /// tells so, or (`drop`) disconnects them. False once the display is
    /// gone.
    async fn stalled_members(&mut self, events: &mpsc::Sender<Event>, drop: bool) -> bool {
        let members: Vec<PeerId> = self
            .current
            .as_ref()
            .and_then(|room| self.rooms.get(room))
            .map(|roster| roster.iter().filter_map(|(k, _)| k.parse().ok()).collect())
            .unwrap_or_default();
        for peer in members {
            let event = if drop {
                self.client.disconnect(peer).await;
                NetEvent::SlowDropped { peer }
            } else {
                NetEvent::Slow { peer }
            };
            if !self.on_net_event(events, event).await {
                return false;
            }
        }
        true
    }

    /// Dials the peer typed and shows who it is. False once the display is
    /// gone or shutdown was asked for.
    pub(super) async fn connect(
        &mut self,
        chat: &mut Chat<'_>,
        target: &DialTarget,
    ) -> Result<bool, Error> {
        let connecting = Event::Connecting {
            to: target.to_string(),
        };
        if !chat.show(connecting).await {
            return Ok(false);
        }
        let addrs = dial_addrs(target).await?;
        let peer = tokio::select! {
            peer = dial_any(&self.client, &addrs) => {
                peer.map_err(|e| e.dialling(&target.to_string()))?
            }
            _ = chat.stopped() => return Ok(false),
        };
        if let DialTarget::Invite(ticket) = target {
            if inviter_digest(&peer.to_bytes()) != ticket.inviter {
                self.client.disconnect(peer).await;
                return Err(unexpected("the member who made the invite", &peer));
            }
        }
        if let Some(expected) = &self.secure.expect {
            if !identity::matches_expected(expected, &peer) {
                self.client.disconnect(peer).await;
                return Err(unexpected(expected, &peer));
            }
        }
        self.adopt_room_of(chat.events, peer).await?;
        self.label = Some(target.to_string());
        self.first_peer = Some(peer);
        if !chat.show(Event::Connected).await || !self.introduce(chat.events, peer).await {
            return Ok(false);
        }
        self.ready = true;
        Ok(chat.show(Event::Ready).await)
    }

    /// Ends the tasks of the chat, and waits for the store writes it
    /// started: the store runs them in order, so one empty job after them
    /// returns when they are done. Received lines still being written are
    /// shown once they are.
    pub(super) async fn settle(&mut self, events: &mpsc::Sender<Event>) {
        if let Some(task) = self.reconnect.take() {
            task.abort();
        }
        self.fetches.shutdown().await;
        self.tasks.shutdown().await;
        while self.marking.join_next().await.is_some() {}
        self.show_stored(events).await;
        let _ = self.secure.store.flush().await;
    }

    /// The main loop: what the user types, what the network says, the
    /// core's timers, until input ends, shutdown, or (for a peer that
    /// connected) the chat empties.
    pub(super) async fn run(
        &mut self,
        chat: &mut Chat<'_>,
        mut net_events: mpsc::Receiver<NetEvent>,
        mut direct: mpsc::Receiver<(PeerId, String)>,
    ) {
        let shutdown = &mut *chat.shutdown;
        let commands = &mut *chat.commands;
        let events = chat.events;
        // Lines typed and not yet sent, and when they will be (see
        // `coalesce_window`).
        let mut typed: Vec<String> = Vec::new();
        // Their bytes: a batch is gathered up to the client's batch size,
        // so long lines are never gathered by the thousand.
        let mut typed_bytes = 0;
        let batch_bytes = self.client.batch_bytes();
        let mut flush_at: Option<Instant> = None;
        // When input ended: when to look again at what is unacknowledged.
        let mut linger: Option<Instant> = None;
        let mut drain = Drain::default();
        let mut last_flush = Instant::now();
        let Some(mut reconnected_rx) = self.reconnected_rx.take() else {
            return;
        };
        let backlog = self.client.publish_backlog();
        let mut stall: Option<Stall> = None;
        let mut trim = tokio::time::interval(TRIM_EVERY);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resume = tokio::time::interval(super::files::RESUME_EVERY);
        resume.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let Some(mut file_streams) = self.files.streams.take() else {
            return;
        };
        loop {
            if self.quitting && self.core.writing() == 0 {
                return;
            }
            let backlogged = backlog.held() >= MAX_PUBLISH_BACKLOG;
            let held = self.core.input_held();
            // Said when nobody is there to acknowledge; with members, a
            // full window is the usual pace of a fast pipe.
            let alone = self
                .current
                .as_ref()
                .is_some_and(|room| self.core.members(room) == 0);
            if (held && alone) != self.told_held {
                self.told_held = held && alone;
                if let (true, Some(room)) = (self.told_held, &self.current) {
                    let status = Status::InputHeld {
                        room: room.clone(),
                        waiting: self.core.pending_lines(),
                    };
                    if events.send(Event::Status(status)).await.is_err() {
                        return;
                    }
                }
            }
            // Only a window of unacknowledged lines is a stall: input held
            // by what was just published goes on by itself.
            let unacked_full = self.core.unacked_bytes() >= SEND_WINDOW;
            stall = match (stall, unacked_full && !alone) {
                (_, false) => None,
                (None, true) => Some(Stall::new(Instant::now(), self.core.unacked_bytes())),
                (Some(s), true) if self.core.unacked_bytes() < s.unacked => {
                    Some(Stall::new(Instant::now(), self.core.unacked_bytes()))
                }
                (Some(s), true) if Instant::now() >= s.due() => {
                    let dropping = s.told;
                    if !self.stalled_members(events, dropping).await {
                        return;
                    }
                    (!dropping).then_some(Stall { told: true, ..s })
                }
                (kept, true) => kept,
            };
            let wake = self
                .core
                .next_wake()
                .map(|at| self.started + at)
                .into_iter()
                .chain(self.unannounced.values().copied())
                .chain(stall.map(|s| s.due()))
                .min();
            let settled = linger.is_some()
                && self.core.writing() == 0
                && self.core.all_acknowledged()
                && !self.core.owes_acknowledgements();
            if settled && self.ready {
                // Everything we typed is acknowledged, and what we received
                // is too: nothing to wait for.
                return;
            }
            if settled && drain.waited_for_a_member() {
                // Nothing of ours waits, and nobody came to say anything.
                return;
            }
            tokio::select! {
                _ = stopped(shutdown) => return,
                // Lines still being written go out first.
                () = sleep_until(linger), if self.core.writing() == 0 => {
                    let waiting = self.core.undelivered();
                    match drain.check_at(Instant::now(), waiting) {
                        DrainStep::Wait => {}
                        DrainStep::Report => {
                            let notice = Notice::Delivering { waiting };
                            if events.send(Event::Notice(notice)).await.is_err() {
                                return;
                            }
                        }
                        DrainStep::GiveUp => {
                            self.requeue_undelivered().await;
                            self.gave_up = Some(waiting);
                            return;
                        }
                    }
                    linger = Some(Instant::now() + DRAIN_CHECK);
                }
                // Input waits while the network cannot take more.
                () = backlog.eased(), if backlogged => {}
                Some(written) = self.recording.next() => {
                    if !self.on_recorded(events, written).await {
                        return;
                    }
                }
                command = commands.recv(),
                    if typed.len() < BATCH_LINES
                        && typed_bytes < batch_bytes
                        && linger.is_none()
                        && !self.quitting
                        && self.core.writing() < MAX_WRITING
                        && !backlogged
                        && !held => match command {
                    Some(command) => {
                        // A query is answered in its place among the lines
                        // typed: what was typed before it goes first.
                        let mut query = take_typed(command, &mut typed, &mut typed_bytes);
                        while query.is_none() && typed.len() < BATCH_LINES && typed_bytes < batch_bytes {
                            match commands.try_recv() {
                                Ok(command) => query = take_typed(command, &mut typed, &mut typed_bytes),
                                Err(_) => break,
                            }
                        }
                        let now = Instant::now();
                        let due = last_flush + self.coalesce_window();
                        if let Some(query) = query {
                            flush_at = None;
                            last_flush = now;
                            typed_bytes = 0;
                            if !typed.is_empty() && !self.on_input(events, std::mem::take(&mut typed)).await {
                                return;
                            }
                            if !self.on_asked(events, query).await {
                                return;
                            }
                        } else if typed.len() >= BATCH_LINES || typed_bytes >= batch_bytes || now >= due {
                            flush_at = None;
                            last_flush = now;
                            typed_bytes = 0;
                            if !self.on_input(events, std::mem::take(&mut typed)).await {
                                return;
                            }
                        } else {
                            flush_at.get_or_insert(due);
                        }
                    }
                    None => {
                        typed_bytes = 0;
                        if !typed.is_empty() && !self.on_input(events, std::mem::take(&mut typed)).await {
                            return;
                        }
                        // Everything typed went out; it must be
                        // acknowledged before we end (see `Drain`).
                        drain = Drain::started(Instant::now(), self.core.undelivered());
                        linger = Some(Instant::now() + DRAIN_CHECK);
                    }
                },
                () = sleep_until(flush_at) => {
                    flush_at = None;
                    last_flush = Instant::now();
                    typed_bytes = 0;
                    if !self.on_input(events, std::mem::take(&mut typed)).await {
                        return;
                    }
                }
                event = net_events.recv() => match event {
                    Some(event) => {
                        if !self.on_net_event(events, event).await {
                            return;
                        }
                    }
                    None => return,
                },
                _ = trim.tick() => {
                    let now_ms = self.kept_ms();
                    if let Ok(mut recent) = self.recent.lock() {
                        recent.forget_older(now_ms);
                    }
                    self.trimmer.tick();
                }
                Some((stream, control)) = file_streams.recv() => {
                    if let Some(event) = self.on_file_stream(events, stream, control).await {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Some(ended) = self.files.work.join_next() => {
                    let event = match ended {
                        Ok(ended) => self.on_file_ended(ended).await,
                        Err(_) => None,
                    };
                    if let Some(event) = event {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Some(progress) = self.files.progress.recv() => {
                    if let Some(event) = self.on_file_progress(progress) {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                _ = resume.tick() => self.resume_files(None),
                Some((peer, text)) = direct.recv() => {
                    if !self.on_direct(events, peer, text).await {
                        return;
                    }
                }
                Some(fetched) = self.fetches.join_next() => {
                    if let Ok((ask, reply)) = fetched {
                        if !self.on_fetched(events, ask, reply).await {
                            return;
                        }
                    }
                }
                () = sleep_until(wake) => {
                    if !self.feed(events, Input::Tick).await || !self.announce_due(events).await {
                        return;
                    }
                }
                written = stored(&mut self.storing) => {
                    if !self.on_stored(events, written).await {
                        return;
                    }
                }
                Some(peer) = reconnected_rx.recv() => {
                    if !self.on_reconnected(events, peer).await {
                        return;
                    }
                }
            }
        }
    }

    /// How long after one publish the next waits, gathering what is typed
    /// meanwhile into one batch. Every room message costs every member a
    /// signature check (and a few copies of it arrive), so a sender's
    /// burst of single lines costs a big room far more than the same lines
    /// in a few batches. The first line after a pause goes out at once; a
    /// person never types two lines this close together, so only pipes
    /// and pastes wait. Rooms of a few members do not wait at all.
    fn coalesce_window(&self) -> Duration {
        let members = self
            .current
            .as_ref()
            .map_or(0, |room| self.core.members(room));
        if members < COALESCE_FROM_MEMBERS {
            Duration::ZERO
        } else {
            (COALESCE_PER_MEMBER * members as u32).min(MAX_COALESCE)
        }
    }

    /// Handles typed lines: commands act, text is published in batches.
    async fn on_input(&mut self, events: &mpsc::Sender<Event>, lines: Vec<String>) -> bool {
        let limit = self.max_line.min(net::MAX_ROOM_LINE);
        // Text between commands goes out together, in batches.
        let mut run: Vec<String> = Vec::new();
        for line in lines {
            let text = match command::parse(&line) {
                Typed::Text(text) => text.to_owned(),
                Typed::Quit => {
                    // The run loop ends once these are out.
                    self.quitting = true;
                    return self.type_in_batches(events, run).await;
                }
                other => {
                    if !self.type_in_batches(events, std::mem::take(&mut run)).await {
                        return false;
                    }
                    // What arrived before the command is shown before its
                    // answer (and `/history` reads it).
                    if !self.show_stored(events).await {
                        return false;
                    }
                    let reply = self.on_command(events, other).await;
                    if let Some(event) = reply {
                        if events.send(event).await.is_err() {
                            return false;
                        }
                    }
                    continue;
                }
            };
            if text.len() > limit {
                if !in_pieces(events, &text, limit, &mut run).await {
                    return false;
                }
                continue;
            }
            run.push(text);
        }
        self.type_in_batches(events, run).await
    }

    /// Says `lines` in `room`, which stays as current as it was: the
    /// lines are text whatever they start with. False once the display is
    /// gone.
    pub(super) async fn say_in(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: String,
        lines: Vec<String>,
    ) -> bool {
        if !self.rooms.contains_key(&room) {
            let notice = Notice::NotSent(format!("you are not in #{room}; /join it first"));
            return events.send(Event::Notice(notice)).await.is_ok();
        }
        let limit = self.max_line.min(net::MAX_ROOM_LINE);
        let mut fit = Vec::with_capacity(lines.len());
        for text in lines {
            if text.len() <= limit {
                fit.push(text);
            } else if !in_pieces(events, &text, limit, &mut fit).await {
                return false;
            }
        }
        let current = self.current.replace(room);
        let shown = self.type_in_batches(events, fit).await;
        self.current = current;
        shown
    }

    /// Hands typed lines to the core for the current room, in batches of
    /// at most [`BATCH_LINES`] lines and the client's batch size in bytes,
    /// unless one line alone is bigger (a room message holds a batch or
    /// one long line). False once the display is gone.
    async fn type_in_batches(&mut self, events: &mpsc::Sender<Event>, texts: Vec<String>) -> bool {
        if texts.is_empty() {
            return true;
        }
        let Some(room) = self.current.clone() else {
            let notice = Notice::NotSent("you are in no room; /join one".into());
            return events.send(Event::Notice(notice)).await.is_ok();
        };
        let max_bytes = self.client.batch_bytes();
        let mut batch = Vec::new();
        let mut bytes = 0;
        for text in texts {
            if !batch.is_empty() && (bytes + text.len() > max_bytes || batch.len() >= BATCH_LINES) {
                let texts = std::mem::take(&mut batch);
                if !self.type_lines(events, &room, texts).await {
                    return false;
                }
                bytes = 0;
            }
            bytes += text.len();
            batch.push(text);
        }
        self.type_lines(events, &room, batch).await
    }

    async fn type_lines(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        texts: Vec<String>,
    ) -> bool {
        let input = Input::Typed {
            room: room.to_owned(),
            texts,
            nick: self.secure.nick.clone(),
        };
        self.feed(events, input).await
    }

    /// When the current room empties: a peer that connected (and does not
    /// listen) is done, as in the classic mode; a listener waits again.
    pub(super) async fn end_if_deserted(&mut self, events: &mpsc::Sender<Event>) -> bool {
        // In no room at all (removed from the last one): nothing to wait
        // for or to dial back into.
        if self.current.is_none() {
            return true;
        }
        let empty = self
            .current
            .as_ref()
            .and_then(|r| self.rooms.get(r))
            .is_none_or(|roster| roster.is_empty());
        if !empty || !self.ready {
            return true;
        }
        match &self.role {
            Role::Connect(target) if self.secure.also_listen.is_none() => {
                self.ready = false;
                if self.reconnect.is_none() {
                    self.reconnect = Some(spawn_reconnect(
                        self.client.clone(),
                        target.clone(),
                        events.downgrade(),
                        self.reconnected_tx.clone(),
                    ));
                }
                true
            }
            _ => {
                self.ready = false;
                events.send(Event::Waiting).await.is_ok()
            }
        }
    }

    /// The peer we connected to answers again: the same checks as at
    /// first (`--expect`, the key behind the address).
    async fn on_reconnected(&mut self, events: &mpsc::Sender<Event>, peer: PeerId) -> bool {
        self.reconnect = None;
        if let Some(expected) = &self.secure.expect {
            if !identity::matches_expected(expected, &peer) {
                self.client.disconnect(peer).await;
                let text = unexpected(expected, &peer).to_string();
                return events
                    .send(Event::Notice(Notice::ConnectionError(text)))
                    .await
                    .is_ok();
            }
        }
        if let Err(e) = self.adopt_room_of(events, peer).await {
            let text = e.to_string();
            return events
                .send(Event::Notice(Notice::ConnectionError(text)))
                .await
                .is_ok();
        }
        self.first_peer = Some(peer);
        self.introduced.remove(&peer);
        events.send(Event::Connected).await.is_ok() && self.introduce(events, peer).await
    }
}

/// The outcome of the write of received lines on the store thread; never
/// comes while there is none.
pub(super) async fn stored(storing: &mut Option<PendingWrite>) -> Written {
    match storing {
        Some(storing) => storing.await,
        None => std::future::pending().await,
    }
}

/// The addresses to dial for what was typed: a host name is resolved.
async fn dial_addrs(target: &DialTarget) -> Result<Vec<Multiaddr>, net::Error> {
    Ok(match target {
        DialTarget::Address(addr) => vec![net::resolve(addr).await?],
        DialTarget::Multiaddr(addr) => vec![net::parse_multiaddr(addr)?],
        DialTarget::Invite(ticket) => ticket
            .addrs
            .iter()
            .map(|a| net::multiaddr_of(*a))
            .chain(
                ticket
                    .relayed
                    .iter()
                    .filter_map(|bytes| Multiaddr::try_from(bytes.clone()).ok()),
            )
            .collect(),
    })
}

/// Connects to the first of `addrs` that answers, in order.
async fn dial_any(client: &Client, addrs: &[Multiaddr]) -> Result<PeerId, net::Error> {
    let mut last = net::Error::NoAddress;
    for addr in addrs {
        match dial_with_retries(client, addr).await {
            Ok(peer) => return Ok(peer),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects, trying again (after 0.5, 1, 2 s) when the handshake failed,
/// which is what a member at its limit of handshakes in progress looks
/// like (many peers joining at once); a refused connection is final.
async fn dial_with_retries(client: &Client, addr: &Multiaddr) -> Result<PeerId, net::Error> {
    let mut wait = Duration::from_millis(500);
    for _ in 1..DIAL_ATTEMPTS {
        match client.dial(addr).await {
            Err(net::Error::Dial { cause, .. }) if cause.contains("handshake") => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    client.dial(addr).await
}

/// Dials the address we connected to until it answers, waiting 1 s, then
/// twice as long each time up to [`MAX_RECONNECT_WAIT`], and says so. The
/// chat owns the task's handle and ends it when it ends.
fn spawn_reconnect(
    client: Client,
    target: DialTarget,
    events: mpsc::WeakSender<Event>,
    reconnected: mpsc::Sender<PeerId>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        loop {
            let status = Status::Reconnecting {
                to: target.to_string(),
                seconds: wait.as_secs(),
            };
            // The task holds no sender of its own: the chat ending closes
            // the front end's queue even while it waits here.
            let Some(events) = events.upgrade() else {
                return;
            };
            if events.send(Event::Status(status)).await.is_err() {
                return;
            }
            drop(events);
            tokio::time::sleep(wait).await;
            if let Ok(addrs) = dial_addrs(&target).await {
                if let Ok(peer) = dial_any(&client, &addrs).await {
                    let _ = reconnected.send(peer).await;
                    return;
                }
            }
            wait = (wait * 2).min(MAX_RECONNECT_WAIT);
        }
    })
}

/// Adds `text`, over `limit`, to `run` in pieces of at most `limit`
/// bytes, and tells the user so; false once the display is gone.
async fn in_pieces(
    events: &mpsc::Sender<Event>,
    text: &str,
    limit: usize,
    run: &mut Vec<String>,
) -> bool {
    run.extend(line::pieces(text, limit).map(str::to_owned));
    let notice = Event::Notice(Notice::OutgoingInPieces { limit });
    events.send(notice).await.is_ok()
}

/// Adds what a command asks to send to `typed`, and its bytes to
/// `bytes`; a command that asks for something else is handed back.
fn take_typed(command: Command, typed: &mut Vec<String>, bytes: &mut usize) -> Option<Command> {
    match command {
        Command::Send(line) => {
            *bytes += line.len();
            typed.push(line);
            None
        }
        Command::SendLines(lines) => {
            for line in lines.iter() {
                *bytes += line.len();
                typed.push(line.to_owned());
            }
            None
        }
        query @ (Command::History { .. } | Command::Say { .. }) => Some(query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_after_input_reports_after_a_second_and_gives_up_only_without_progress() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut drain = Drain::started(t0, 100);
        assert_eq!(drain.check_at(at(500), 100), DrainStep::Wait);
        assert_eq!(drain.check_at(at(1_000), 90), DrainStep::Report);
        // Slow but moving: never given up on.
        let mut waiting = 90;
        for s in 2..120 {
            waiting -= u64::from(s % 20 == 0);
            assert_eq!(drain.check_at(at(s * 1_000), waiting), DrainStep::Report);
        }
        // Stuck for the whole give-up time: given up on.
        // The last line acknowledged was at 100 s.
        let stuck = 100_000 + DRAIN_GIVE_UP.as_millis() as u64;
        assert_eq!(
            drain.check_at(at(stuck - 1_000), waiting),
            DrainStep::Report
        );
        assert_eq!(
            drain.check_at(at(stuck + 1_000), waiting),
            DrainStep::GiveUp
        );
        // Nothing waiting: nothing to say.
        let mut done = Drain::started(t0, 0);
        assert_eq!(done.check_at(at(5_000), 0), DrainStep::Wait);
        assert_eq!(Drain::default().check_at(at(5_000), 10), DrainStep::Wait);
    }
}
