//! Running the secure chat: rooms of any number of peers on rust-libp2p.
//!
//! Every secure chat is a room (`lobby` unless another is named). Typed
//! lines are published to the current room in batches (one gossipsub
//! message per burst of input); what arrives is put back in each author's
//! order by [`Ordering`] and shown once. Two peers alone in a room see the
//! classic lines (`Peer: TEXT`, `Peer disconnected`); in a bigger room
//! members are shown by nick or short fingerprint, with join and leave
//! lines. Members learn each other's addresses from their hellos and
//! connect directly, so a room outlives whoever started it.
//!
//! On top of the rooms: identities proven by the Noise handshake, a loud
//! warning before anything is shown when an address or nick the user
//! trusted now answers with another key, `--expect`, `/verify` and
//! `/trust`, and direct messages (`/msg`) on the two-peer stream protocol.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::fault::Faults;
use super::trouble::Refused;
use super::{
    history_line, now_ms, random_session, stopped, unstalled, Chat, Error, Role, SendError, LINGER,
};
use crate::chat::command::{self, Input};
use crate::chat::room::{
    check_nick, check_room_key, is_public, public_room, room_name, Delivery, Member, Ordering,
    Recent, Roster,
};
use crate::chat::safety::safety_number;
use crate::chat::{Command, DialTarget, Event, HistoryLine, NearbyLine, Notice, Received};
use crate::identity::{self, Identity};
use crate::net::fetch::{FetchReply, FetchRequest};
use crate::net::room_frame::{Body, Holding, RoomFrame, MAX_HOLDINGS};
use crate::net::{self, Client, NetEvent};
use crate::store::{self, Batch, Check, KnownPeers, Status, Store};

/// How long a gap in a member's messages is waited for (and fetched)
/// before what came after it is shown anyway and the rest reported lost.
const GAP_WAIT: Duration = Duration::from_secs(10);

/// Missing lines are asked for again this often while waited for.
const FETCH_RETRY: Duration = Duration::from_secs(1);

/// Lines typed while nobody else is in the room are kept and sent when
/// someone arrives. Once this many wait, input does (as a writer to a full
/// socket would) until someone does: nothing typed is refused.
const MAX_PENDING_LINES: usize = 10_000;

/// At most one hello per room in this time, however many members arrive:
/// a newcomer is answered once the interval since our last hello has
/// passed, together with every other newcomer of that interval. In a room
/// that forms quickly (dozens of members within a second) each hello is
/// checked by every member, so answering each arrival on its own would
/// cost more than everything said.
const HELLO_INTERVAL: Duration = Duration::from_millis(500);

/// How long a member's join waits for its nick before it is shown.
const ANNOUNCE_WAIT: Duration = Duration::from_millis(1500);

/// Every member says hello this often (plus [`HELLO_PERIOD_PER_MEMBER`]),
/// so members that missed one (a message lost, a member that joined
/// through another) still learn of each other and connect, and a lost last
/// batch is noticed.
const HELLO_PERIOD: Duration = Duration::from_secs(4);

/// What each other member of the biggest room adds to [`HELLO_PERIOD`]:
/// every hello is checked by every member, so a room's hellos cost it the
/// square of its size; this keeps the cost of a quiet room near linear.
const HELLO_PERIOD_PER_MEMBER: Duration = Duration::from_millis(150);

/// Lines of history shown when a room is opened.
const HISTORY_ON_START: usize = 20;

/// Lines `/history` shows unless told.
const HISTORY_DEFAULT: usize = 50;

/// After storing what arrived, a member says so (see [`Body::Have`]) this
/// long after, plus [`ACK_DELAY_PER_MEMBER`] per other member: every
/// acknowledgement is checked by the whole room.
const ACK_DELAY: Duration = Duration::from_millis(50);

/// See [`ACK_DELAY`].
const ACK_DELAY_PER_MEMBER: Duration = Duration::from_millis(50);

/// Our lines unacknowledged this long are reported as not yet delivered.
const UNDELIVERED_NOTICE: Duration = Duration::from_secs(3);

/// The longest wait between two tries at reconnecting.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// Lines of an author's session fetched at most when it is first met.
const SYNC_BACKLOG: u64 = 10_000;

/// Writes refused by the store are tried again this often.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Runs stored beyond a hole remembered per author session at most.
const MAX_STORED_AHEAD: usize = 1024;

/// Batches of ours handed to the store and not yet published, at most:
/// input waits beyond that, so a store slower than the typing (or the
/// pipe) holds back the reading, not memory.
const MAX_WRITING: usize = 32;

/// Room messages waiting in the network engine for a member to take them
/// (see [`net::PublishBacklog`]) beyond which input waits.
const MAX_PUBLISH_BACKLOG: usize = 8;

/// Bytes of our lines written to the outbox, or of received lines written
/// together, on the chat's own thread at most (see [`Store::try_now`]); a
/// bigger write goes to the store thread.
const INLINE_WRITE: usize = 16 * 1024;

/// Received lines gathered while a write of earlier ones is on the store
/// thread, at most; past that the chat waits for that write (and the
/// network with it), so a store slower than the network holds back the
/// network, not memory.
const MAX_GATHERED_LINES: usize = 16_384;

/// Fetch answers waiting to be handled.
const FETCHED_QUEUE: usize = 64;

/// Direct messages waiting to be shown.
const DIRECT_QUEUE: usize = 256;

/// How long a direct message may take to be delivered.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines in one published batch at most.
const BATCH_LINES: usize = 4096;

/// Rooms with at least this many other members gather a sender's burst
/// into batches (see `RoomChat::coalesce_window`).
const COALESCE_FROM_MEMBERS: usize = 8;

/// The wait between one sender's publishes, per other member of the room.
const COALESCE_PER_MEMBER: Duration = Duration::from_micros(300);

/// The longest wait between one sender's publishes.
const MAX_COALESCE: Duration = Duration::from_millis(20);

/// Lines of an author that are missing and asked for.
struct Gap {
    /// When to stop waiting and report them lost.
    give_up: Instant,
    /// When to ask again.
    retry: Instant,
    request: FetchRequest,
    author: PeerId,
    via: PeerId,
}

/// What the secure protocol needs beyond the common options.
pub struct Secure {
    /// Our identity.
    pub identity: Identity,
    /// The peers we have met and trusted.
    pub known: KnownPeers,
    /// `--expect`: the only peer ID or fingerprint to connect to.
    pub expect: Option<String>,
    /// Our nick.
    pub nick: Option<String>,
    /// The room to join first.
    pub room: String,
    /// Find peers on the LAN with mDNS.
    pub mdns: bool,
    /// A port to listen on as well when connecting (`--listen` with
    /// `--connect`).
    pub also_listen: Option<u16>,
    /// Where messages are kept (on disk, or in memory with `--no-history`).
    pub store: Store,
    /// How far back members reconcile what they hold when they meet.
    pub sync_window: Duration,
}

pub(super) async fn run(
    role: Role,
    max_line: usize,
    secure: Secure,
    chat: &mut Chat<'_>,
) -> Result<(), Error> {
    check_room_key(&secure.room).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(nick) = &secure.nick {
        check_nick(nick).map_err(|e| Error::Usage(e.to_string()))?;
    }
    let config = net::Config {
        max_message: max_line,
        mdns: secure.mdns,
        ..net::Config::default()
    };
    let (mut client, net_events) = net::start(secure.identity.keypair().clone(), config)?;
    let direct = accept_direct(&mut client)?;
    if !chat.show(own_identity(&secure.identity)).await {
        return Ok(());
    }
    let recent = Arc::new(Mutex::new(Recent::default()));
    let store = secure.store.clone();
    serve_fetches(&mut client, Arc::clone(&recent), store.clone())?;
    let session = store.call(|h| h.session()).await??;
    let (fetched_tx, fetched) = mpsc::channel(FETCHED_QUEUE);
    let mut room = RoomChat::new(
        client,
        secure,
        role.clone(),
        max_line,
        session,
        recent,
        fetched_tx,
    );
    let listen_port = match &role {
        Role::Listen { port } => Some(*port),
        Role::Connect(_) => room.secure.also_listen,
    };
    match listen_port {
        Some(port) => {
            let bound = room.client.listen(port).await?;
            if !chat.show(Event::Listening { addr: bound }).await {
                return Ok(());
            }
        }
        // A connecting peer listens too, on any free port, so that other
        // members can connect to it and the room holds together.
        None => {
            room.client.listen(0).await?;
        }
    }
    let first_room = room.secure.room.clone();
    room.join(&first_room).await?;
    if !room
        .show_history(chat.events, &first_room, HISTORY_ON_START)
        .await
    {
        return Ok(());
    }
    match role {
        Role::Connect(target) => {
            if !chat
                .show(Event::Connecting {
                    to: target.to_string(),
                })
                .await
            {
                return Ok(());
            }
            let addr = match &target {
                DialTarget::Address(addr) => net::resolve(addr).await?,
                DialTarget::Multiaddr(addr) => net::parse_multiaddr(addr)?,
            };
            let peer = tokio::select! {
                peer = dial_with_retries(&room.client, &addr) => {
                    peer.map_err(|e| e.dialling(&target.to_string()))?
                }
                _ = chat.stopped() => return Ok(()),
            };
            if let Some(expected) = &room.secure.expect {
                if !identity::matches_expected(expected, &peer) {
                    room.client.disconnect(peer).await;
                    return Err(unexpected(expected, &peer));
                }
            }
            room.adopt_room_of(peer).await;
            room.label = Some(target.to_string());
            room.first_peer = Some(peer);
            if !chat.show(Event::Connected).await || !room.introduce(chat.events, peer).await {
                return Ok(());
            }
            room.ready = true;
            if !chat.show(Event::Ready).await {
                return Ok(());
            }
        }
        Role::Listen { .. } => {
            if !chat.show(Event::Waiting).await {
                return Ok(());
            }
        }
    }
    room.run(chat, net_events, direct, fetched).await;
    room.settle(chat.events).await;
    match room.gave_up {
        Some(lines) => Err(Error::Undelivered {
            lines,
            seconds: DRAIN_GIVE_UP.as_secs(),
        }),
        None => Ok(()),
    }
}

/// Fetches missing lines in a task: from the author (it has all it sent),
/// else from the member that passed later ones on.
fn spawn_fetch(
    mut client: Client,
    fetched: mpsc::Sender<(FetchRequest, FetchReply)>,
    request: FetchRequest,
    author: PeerId,
    via: PeerId,
) {
    tokio::spawn(async move {
        let mut reply = FetchReply::default();
        for peer in [author, via] {
            if let Ok(got) = client.fetch(peer, &request).await {
                if !got.texts.is_empty() {
                    reply = got;
                    break;
                }
            }
        }
        let _ = fetched.send((request, reply)).await;
    });
}

/// The lines of a fetch reply in runs written at one time each: the first
/// line's number, the lines, and when they were written.
fn stamped_runs(reply: &FetchReply) -> Vec<(u64, &[String], u64)> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=reply.texts.len() {
        if i == reply.texts.len() || reply.sent_ms.get(i) != reply.sent_ms.get(start) {
            let sent_ms = reply.sent_ms.get(start).copied().unwrap_or(0);
            runs.push((reply.first + start as u64, &reply.texts[start..i], sent_ms));
            start = i;
        }
    }
    runs
}

/// The outcome of the write of received lines on the store thread; never
/// comes while there is none.
async fn stored(storing: &mut Option<Storing>) -> Written {
    match storing {
        Some(storing) => (&mut storing.done)
            .await
            .unwrap_or_else(|_| (Vec::new(), Err(store::Error::Stopped))),
        None => std::future::pending().await,
    }
}

/// Shows a notice, if there is one; false once the display is gone.
async fn tell(events: &mpsc::Sender<Event>, notice: Option<Notice>) -> bool {
    match notice {
        Some(notice) => events.send(Event::Notice(notice)).await.is_ok(),
        None => true,
    }
}

/// How the author `peer` of lines in a room is shown. Lines fetched from a
/// member who is not (or no longer) here are told apart by fingerprint,
/// never shown as the classic `Peer`.
fn shown_as(roster: &Roster, peer: &str) -> String {
    match peer.parse::<PeerId>() {
        Ok(author) if !roster.contains(peer) => {
            format!("Peer-{}", short(&fingerprint_of(&author)))
        }
        _ => roster.display(peer),
    }
}

/// After our input ended, how often what is still unacknowledged is
/// looked at (and, after the first look, reported).
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// After our input ended, how long the wait for acknowledgements may go
/// without any before the program gives up (and exits with an error,
/// leaving the lines queued for its next run). Progress resets it, so a
/// slow link is waited for as long as it keeps moving.
const DRAIN_GIVE_UP: Duration = Duration::from_secs(30);

/// The wait, after our input ended, for our lines to be acknowledged.
#[derive(Debug, Default)]
struct Drain {
    /// When input ended; `None` before.
    started: Option<Instant>,
    /// The last time fewer lines were waiting than before.
    progress_at: Option<Instant>,
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
            started: Some(now),
            progress_at: Some(now),
            waiting,
        }
    }

    /// Whether input ended a while ago ([`super::LINGER`]).
    fn waited_for_a_member(&self) -> bool {
        self.started.is_some_and(|at| at.elapsed() >= LINGER)
    }

    /// Looks at how many lines wait now.
    fn check(&mut self, waiting: u64) -> DrainStep {
        self.check_at(Instant::now(), waiting)
    }

    fn check_at(&mut self, now: Instant, waiting: u64) -> DrainStep {
        let (Some(started), Some(progress_at)) = (self.started, self.progress_at) else {
            return DrainStep::Wait;
        };
        if waiting < self.waiting {
            self.waiting = waiting;
            self.progress_at = Some(now);
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

/// Members asked which private room of a name they are in, at most, when
/// `/join` names one.
const MAX_FOUNDER_QUESTIONS: usize = 8;

/// Holes of one stream [`RoomChat::repair`] asks for at once, at most.
const MAX_REPAIR_FETCHES: usize = 4;

/// Lines one fetch is answered with at most from the store.
const MAX_FETCH_LINES: usize = 16_384;

/// Answers other members' fetches from the recent lines we keep in
/// memory, else from the store (lines from before a restart, or older).
fn serve_fetches(
    client: &mut Client,
    recent: Arc<Mutex<Recent>>,
    store: Store,
) -> Result<(), Error> {
    let mut requests = client.accept_fetches()?;
    tokio::spawn(async move {
        while let Some((_peer, mut fetch)) = requests.next().await {
            let recent = Arc::clone(&recent);
            let store = store.clone();
            tokio::spawn(async move {
                let Ok(request) = fetch.request().await else {
                    return;
                };
                let Some(author) = request.author() else {
                    let _ = fetch.reply(&FetchReply::default()).await;
                    return;
                };
                let key = format!("{author}/{}", request.room);
                let kept = recent.lock().ok().and_then(|recent| {
                    let nick = recent.nick(&key, request.session);
                    recent
                        .range(&key, request.session, request.from, request.to)
                        .map(|range| (range, nick))
                });
                let reply = match kept {
                    Some(((first, texts, sent_ms), nick)) if first == request.from => FetchReply {
                        first,
                        texts,
                        sent_ms,
                        nick,
                    },
                    _ => stored_range(&store, &request, &author.to_string()).await,
                };
                let _ = fetch.reply(&reply).await;
            });
        }
    });
    Ok(())
}

/// Lines `request.from..=request.to` of an author from the store, as far
/// as they run on without a hole.
async fn stored_range(store: &Store, request: &FetchRequest, author: &str) -> FetchReply {
    let conversation = conversation(&request.room);
    let (author, session) = (author.to_owned(), request.session);
    let (from, to) = (request.from, request.to.saturating_add(1));
    let runs = store
        .call(move |h| h.range(&conversation, &author, session, from, to, MAX_FETCH_LINES))
        .await;
    let mut reply = FetchReply {
        first: from,
        texts: Vec::new(),
        sent_ms: Vec::new(),
        nick: None,
    };
    if let Ok(Ok(runs)) = runs {
        for run in runs {
            reply.nick = run.name.clone();
            if run.first_line != reply.first + reply.texts.len() as u64 {
                break;
            }
            reply
                .sent_ms
                .extend(std::iter::repeat_n(run.ts_ms, run.texts.len()));
            reply.texts.extend(run.texts);
        }
    }
    reply
}

/// The store's name for a room's conversation.
fn conversation(room: &str) -> String {
    format!("room:{room}")
}

/// Connection attempts when a member is busy with other handshakes.
const DIAL_ATTEMPTS: u32 = 4;

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

/// Accepts direct-message streams and hands their messages on.
fn accept_direct(client: &mut Client) -> Result<mpsc::Receiver<(PeerId, String)>, Error> {
    let mut chats = client.accept_chats()?;
    let (tx, rx) = mpsc::channel(DIRECT_QUEUE);
    tokio::spawn(async move {
        while let Some(session) = chats.next().await {
            let tx = tx.clone();
            let peer = session.peer();
            tokio::spawn(async move {
                let (mut incoming, _outgoing) = session.split();
                // A direct stream carries a few messages; bounded in time.
                let _ = tokio::time::timeout(DIRECT_TIMEOUT, async {
                    while let Ok(Received::Message(text)) = incoming.next().await {
                        if tx.send((peer, text)).await.is_err() {
                            return;
                        }
                    }
                })
                .await;
            });
        }
    });
    Ok(rx)
}

/// How received lines are shown once they are stored: worked out when
/// they arrive, so that a member who leaves meanwhile is shown as it was
/// when it spoke.
struct Shown {
    from: String,
    /// The room, when it is not the current one.
    room: Option<String>,
    /// For lines said before we first came to the room: when they were
    /// written. They are shown as history, never as live lines.
    earlier: Option<u64>,
}

/// What follows the write of a batch of received lines.
enum Then {
    /// New lines: shown once written (stored or not).
    Show(Shown),
    /// New lines of a room left meanwhile: written only.
    Keep,
    /// Lines the store refused before (they were shown then), tried again.
    Retry,
}

/// Received lines a store job wrote, or could not.
type Written = (Vec<Batch>, Result<(), store::Error>);

/// The write of received lines on the store thread (one at a time: see
/// [`RoomChat::gather`]), and what follows it for each of its batches.
struct Storing {
    then: Vec<Then>,
    done: oneshot::Receiver<Written>,
}

/// Carries received lines through the store job that writes them and
/// back. If the job is dropped unrun (the store thread is gone), they
/// still come back, as not written, to be shown all the same.
struct ReceivedWrite {
    batches: Vec<Batch>,
    done: Option<oneshot::Sender<Written>>,
}

impl ReceivedWrite {
    /// Writes the batches to `history` in one transaction, then reports.
    fn write(mut self, history: &mut store::History) {
        let written = history.insert(&self.batches).map(drop);
        self.send(written);
    }

    fn send(&mut self, result: Result<(), store::Error>) {
        if let Some(done) = self.done.take() {
            let _ = done.send((std::mem::take(&mut self.batches), result));
        }
    }
}

impl Drop for ReceivedWrite {
    fn drop(&mut self) {
        self.send(Err(store::Error::Stopped));
    }
}

/// A batch of our lines on its way: handed to the store to be written as
/// queued, then published once it is (see [`RoomChat::publish_lines`]).
struct Outgoing {
    room: String,
    first: u64,
    texts: Vec<String>,
    /// The nick when the lines were typed (a `/nick` typed after them
    /// applies to later lines only).
    nick: Option<String>,
}

/// Carries an [`Outgoing`] through the store job that writes it and back
/// to the chat, in the order written. Its lines travel in the [`Batch`]
/// written (not copied: a burst of long lines would be copied twice) and
/// are handed back to it after the write. If the job is dropped unrun (the
/// store thread is gone), it still comes back, lines and all, as not
/// written.
struct WriteReport {
    outgoing: Option<(Outgoing, Batch)>,
    to: mpsc::UnboundedSender<(Outgoing, Result<(), store::Error>)>,
}

impl WriteReport {
    /// Writes the batch to `history`, then reports.
    fn write(mut self, history: &mut store::History) {
        let written = match &self.outgoing {
            Some((_, batch)) => history.insert(std::slice::from_ref(batch)).map(drop),
            None => return,
        };
        self.send(written);
    }

    fn send(&mut self, result: Result<(), store::Error>) {
        if let Some((mut outgoing, batch)) = self.outgoing.take() {
            outgoing.texts = batch.texts;
            let _ = self.to.send((outgoing, result));
        }
    }
}

impl Drop for WriteReport {
    fn drop(&mut self) {
        self.send(Err(store::Error::Stopped));
    }
}

/// The state of the chat in rooms.
struct RoomChat {
    client: Client,
    secure: Secure,
    role: Role,
    /// The longest line shown or sent.
    max_line: usize,
    /// This run of the program, so our sequence numbers may restart.
    session: u64,
    /// The next line number per room, and a counter for hellos.
    next_seq: HashMap<String, u64>,
    hello_seq: u64,
    last_hello: HashMap<String, Instant>,
    /// Rooms with a newcomer not yet greeted, and when to greet it.
    hello_due: HashMap<String, Instant>,
    rooms: BTreeMap<String, Roster>,
    current: Option<String>,
    order: Ordering,
    /// Gaps waited for, by (author/room key, session).
    gaps: HashMap<(String, u64), Gap>,
    /// Faults a test asked for (none outside tests).
    faults: Faults,
    /// Peers whose identity was shown.
    introduced: HashSet<PeerId>,
    /// Lines never acknowledged when the wait after our input ended gave
    /// up; they were put back in the outbox.
    gave_up: Option<u64>,
    /// Peers that dialled our listener and have not joined the room we
    /// show yet, with where they came from.
    dialled_in: HashMap<PeerId, SocketAddr>,
    /// Batches typed while alone in a room (room, first line, lines):
    /// stored, numbered, and published when someone is there.
    pending: Vec<(String, u64, Vec<String>)>,
    /// Lines held in `pending`.
    pending_lines: usize,
    /// Whether the user was told that input waits (see
    /// [`RoomChat::pending_full`]).
    told_held: bool,
    /// Per (room, author, session): every line below this is stored.
    stored: HashMap<(String, String, u64), u64>,
    /// Per stream we hold: the most another member said it holds, in a
    /// have or a hello.
    heard: HashMap<(String, String, u64), u64>,
    /// Rooms with lines stored since we last said what we hold, and when
    /// we will.
    have_dirty: HashSet<String>,
    have_due: Option<Instant>,
    /// Where writes of our lines report back, in order, and how many are
    /// on their way (see [`MAX_WRITING`]).
    written_tx: mpsc::UnboundedSender<(Outgoing, Result<(), store::Error>)>,
    written_rx: Option<mpsc::UnboundedReceiver<(Outgoing, Result<(), store::Error>)>>,
    writing: usize,
    /// `/quit` was typed: end once the lines typed before it are out.
    quitting: bool,
    /// Received lines not yet handed to the store, what follows the
    /// write of each batch, and how many lines (see [`RoomChat::gather`]).
    to_store: Vec<Batch>,
    to_show: Vec<Then>,
    to_store_lines: usize,
    /// The write of received lines on the store thread, if any.
    storing: Option<Storing>,
    /// Per room: our lines below this are acknowledged by a member.
    acked: HashMap<String, u64>,
    /// Per room: since when our oldest unacknowledged line waits, and
    /// whether that was reported.
    unacked_since: HashMap<String, (Instant, bool)>,
    /// When we first joined each room (kept in the store): what was said
    /// there before is history to us.
    joined_at: HashMap<String, u64>,
    /// Streams (author/room, session) first met through a member's
    /// summary rather than live: what of them was written before we first
    /// joined is shown as history.
    backlog: HashSet<(String, u64)>,
    /// Rooms where we were told, since we were last alone in them with
    /// nobody arriving, that what we type is kept until someone comes.
    told_queued: HashSet<String>,
    /// Received lines the store refused, to try again (at most
    /// [`super::trouble::MAX_REFUSED_LINES`]: the rest is never
    /// acknowledged, so its authors still count it undelivered), and
    /// whether it refuses writes, said when that starts and ends.
    refused: Refused,
    /// Per (room, author, session): lines stored beyond a hole, first to
    /// end, until the hole is written.
    stored_ahead: HashMap<(String, String, u64), BTreeMap<u64, u64>>,
    /// When to write the refused lines again.
    retry_store_at: Option<Instant>,
    /// Reconnecting to the peer we connected to, and where it says so.
    reconnect: Option<tokio::task::JoinHandle<()>>,
    reconnected_tx: mpsc::Sender<PeerId>,
    reconnected_rx: Option<mpsc::Receiver<PeerId>>,
    /// The address we connected to, as typed.
    label: Option<String>,
    /// The peer we connected to.
    first_peer: Option<PeerId>,
    /// "Type messages..." was shown.
    ready: bool,
    /// Nicks whose key changed from a trusted one: warned once.
    warned: HashSet<(String, PeerId)>,
    /// The nick each peer last announced, in any room.
    nicks: HashMap<PeerId, String>,
    /// Members whose join is not shown yet, waiting for their nick.
    unannounced: HashMap<(String, PeerId), Instant>,
    /// Recent lines of every author, ours included, for members that
    /// missed some.
    recent: Arc<Mutex<Recent>>,
    /// Where fetched lines come back.
    fetched_tx: mpsc::Sender<(FetchRequest, FetchReply)>,
}

impl RoomChat {
    fn new(
        client: Client,
        secure: Secure,
        role: Role,
        max_line: usize,
        session: u64,
        recent: Arc<Mutex<Recent>>,
        fetched_tx: mpsc::Sender<(FetchRequest, FetchReply)>,
    ) -> Self {
        let (reconnected_tx, reconnected_rx) = mpsc::channel(1);
        let (written_tx, written_rx) = mpsc::unbounded_channel();
        Self {
            written_tx,
            written_rx: Some(written_rx),
            writing: 0,
            quitting: false,
            to_store: Vec::new(),
            to_show: Vec::new(),
            to_store_lines: 0,
            storing: None,
            pending_lines: 0,
            told_held: false,
            stored: HashMap::new(),
            heard: HashMap::new(),
            faults: Faults::from_env(),
            have_dirty: HashSet::new(),
            have_due: None,
            acked: HashMap::new(),
            unacked_since: HashMap::new(),
            told_queued: HashSet::new(),
            joined_at: HashMap::new(),
            backlog: HashSet::new(),
            refused: Refused::default(),
            stored_ahead: HashMap::new(),
            retry_store_at: None,
            reconnect: None,
            reconnected_tx,
            reconnected_rx: Some(reconnected_rx),
            recent,
            fetched_tx,
            client,
            secure,
            role,
            max_line,
            session,
            next_seq: HashMap::new(),
            hello_seq: 0,
            last_hello: HashMap::new(),
            hello_due: HashMap::new(),
            rooms: BTreeMap::new(),
            current: None,
            order: Ordering::default(),
            gaps: HashMap::new(),
            introduced: HashSet::new(),
            dialled_in: HashMap::new(),
            gave_up: None,
            pending: Vec::new(),
            label: None,
            first_peer: None,
            ready: false,
            warned: HashSet::new(),
            nicks: HashMap::new(),
            unannounced: HashMap::new(),
        }
    }

    async fn join(&mut self, room: &str) -> Result<(), Error> {
        if !self.rooms.contains_key(room) {
            self.resume_room(room).await?;
            let founder = self.founder_among_members(room).await;
            self.client.join(room, founder).await?;
            self.rooms.insert(room.to_owned(), Roster::default());
        }
        self.current = Some(room.to_owned());
        Ok(())
    }

    /// The private room called `room` that the members we chat with are
    /// in, if one of them is in one: `/join side` then meets them there,
    /// not in a room of our own. Only members are asked; a peer met on the
    /// LAN is not.
    async fn founder_among_members(&self, room: &str) -> Option<PeerId> {
        if is_public(room) {
            return None;
        }
        let mut asked = HashSet::new();
        for roster in self.rooms.values() {
            for (key, _) in roster.iter() {
                let Ok(peer) = key.parse::<PeerId>() else {
                    continue;
                };
                if !asked.insert(peer) || asked.len() > MAX_FOUNDER_QUESTIONS {
                    continue;
                }
                if let Some(founder) = self.client.room_founder(peer, room).await {
                    return Some(founder);
                }
            }
        }
        None
    }

    /// After dialling `peer`: joins the private room it is in under our
    /// current room's name (dialling a member is how a private room is
    /// joined), leaving the one of our own we started alone in.
    async fn adopt_room_of(&mut self, peer: PeerId) {
        let Some(room) = self.current.clone() else {
            return;
        };
        if is_public(&room) {
            return;
        }
        if let Some(founder) = self.client.room_founder(peer, &room).await {
            let _ = self.client.join(&room, Some(founder)).await;
        }
    }

    /// Picks a room up where the store left it: what we hold of each
    /// author (so nothing is shown twice and what is missing is fetched),
    /// the number of our next line, and our lines never sent.
    async fn resume_room(&mut self, room: &str) -> Result<(), Error> {
        let conversation = conversation(room);
        let me = self.client.local_peer_id().to_string();
        let session = self.session;
        let since = now_ms().saturating_sub(self.secure.sync_window.as_millis() as u64);
        let (streams, next, unsent, acked, joined) = self
            .secure
            .store
            .call(move |h| -> Result<_, store::Error> {
                Ok((
                    h.streams(&conversation, since)?,
                    h.next_line(&conversation, &me, session)?,
                    h.unsent(&conversation, &me, session)?,
                    h.delivered_through(&conversation, &me, session)?,
                    h.joined(&conversation, now_ms())?,
                ))
            })
            .await??;
        self.joined_at.insert(room.to_owned(), joined);
        let me = self.client.local_peer_id().to_string();
        for stream in streams {
            if stream.author == me {
                continue;
            }
            let key = format!("{}/{room}", stream.author);
            self.order.resume(&key, stream.session, stream.next_line);
            self.stored.insert(
                (room.to_owned(), stream.author, stream.session),
                stream.next_line,
            );
        }
        self.next_seq.insert(room.to_owned(), next.max(1));
        self.acked.insert(room.to_owned(), acked);
        for batch in unsent {
            self.pending_lines += batch.texts.len();
            self.pending
                .push((room.to_owned(), batch.first_line, batch.texts));
        }
        Ok(())
    }

    /// Shows the last `limit` lines kept of a room, marked as history
    /// (on start, nothing when there are none).
    async fn show_history(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        limit: usize,
    ) -> bool {
        match self.history_event(room, limit).await {
            Event::History { lines } if lines.is_empty() && limit == HISTORY_ON_START => true,
            event => events.send(event).await.is_ok(),
        }
    }

    /// The last `limit` lines kept of a room, or why they cannot be read.
    /// Received lines are read as far as they were handed to the store
    /// (see [`RoomChat::show_stored`]).
    async fn history_event(&mut self, room: &str, limit: usize) -> Event {
        let conversation = conversation(room);
        let me = self.client.local_peer_id().to_string();
        let kept = self
            .secure
            .store
            .call(move |h| h.recent(&conversation, limit))
            .await;
        let roster = self.rooms.get(room);
        match kept {
            Ok(Ok(messages)) => Event::History {
                lines: messages
                    .into_iter()
                    .map(|m| history_line(m, &me, roster))
                    .collect(),
            },
            Ok(Err(e)) | Err(e) => Event::Info(format!("history: {e}")),
        }
    }

    /// Lets the store writes started by the chat reach the store, and
    /// waits for them: the store runs them in order, so one empty job
    /// after them returns when they are done. Received lines still being
    /// written are shown once they are.
    async fn settle(&mut self, events: &mpsc::Sender<Event>) {
        if let Some(task) = self.reconnect.take() {
            task.abort();
        }
        self.show_stored(events).await;
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        let _ = self.secure.store.call(|_| ()).await;
    }

    /// The main loop: what the user types, what the network says, gaps
    /// that time out, until input ends, shutdown, or (for a peer that
    /// connected) the chat empties.
    async fn run(
        &mut self,
        chat: &mut Chat<'_>,
        mut net_events: mpsc::Receiver<NetEvent>,
        mut direct: mpsc::Receiver<(PeerId, String)>,
        mut fetched: mpsc::Receiver<(FetchRequest, FetchReply)>,
    ) {
        let shutdown = &mut *chat.shutdown;
        let commands = &mut *chat.commands;
        let events = chat.events;
        // Lines typed and not yet sent, and when they will be (see
        // `coalesce_window`).
        let mut typed: Vec<String> = Vec::new();
        let mut flush_at: Option<Instant> = None;
        // When input ended: when to look again at what is unacknowledged.
        let mut linger: Option<Instant> = None;
        let mut drain = Drain::default();
        let mut last_flush = Instant::now();
        let mut next_hello = Instant::now() + HELLO_PERIOD;
        let (Some(mut reconnected_rx), Some(mut written_rx)) =
            (self.reconnected_rx.take(), self.written_rx.take())
        else {
            return;
        };
        let backlog = self.client.publish_backlog();
        loop {
            if self.quitting && self.writing == 0 {
                return;
            }
            let backlogged = backlog.held() >= MAX_PUBLISH_BACKLOG;
            let held = self.pending_full();
            if held != self.told_held {
                self.told_held = held;
                if let (true, Some(room)) = (held, &self.current) {
                    let text = format!(
                        "No one else is in #{room} and {} lines wait to be sent; more input is read once someone is back",
                        self.pending_lines
                    );
                    if events.send(Event::Info(text)).await.is_err() {
                        return;
                    }
                }
            }
            let gap_deadline = self
                .gaps
                .values()
                .map(|gap| gap.retry.min(gap.give_up))
                .chain(self.unannounced.values().copied())
                .chain(self.hello_due.values().copied())
                .chain(self.have_due)
                .chain(self.retry_store_at)
                .chain(
                    self.unacked_since
                        .values()
                        .filter(|(_, told)| !told)
                        .map(|(since, _)| *since + UNDELIVERED_NOTICE),
                )
                .min();
            let settled = linger.is_some()
                && self.writing == 0
                && self.unacked_since.is_empty()
                && !self.owes_acknowledgements();
            if settled && self.ready {
                // Everything we typed is acknowledged, and what we received
                // is too: nothing to wait for.
                return;
            }
            if settled && drain.waited_for_a_member() {
                // Nothing of ours waits, and nobody came to say anything.
                return;
            }
            let lingering = async {
                match linger {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let flush_timer = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let gap_timer = async {
                match gap_deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stopped(shutdown) => return,
                // Lines still being written go out first.
                () = lingering, if self.writing == 0 => {
                    let waiting = self.undelivered();
                    match drain.check(waiting) {
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
                Some((outgoing, written)) = written_rx.recv() => {
                    if !self.on_written(events, outgoing, written).await {
                        return;
                    }
                }
                command = commands.recv(),
                    if typed.len() < BATCH_LINES
                        && linger.is_none()
                        && !self.quitting
                        && self.writing < MAX_WRITING
                        && !backlogged
                        && !held => match command {
                    Some(Command::Send(line)) => {
                        typed.push(line);
                        while typed.len() < BATCH_LINES {
                            match commands.try_recv() {
                                Ok(Command::Send(line)) => typed.push(line),
                                Err(_) => break,
                            }
                        }
                        let now = Instant::now();
                        let due = last_flush + self.coalesce_window();
                        if typed.len() >= BATCH_LINES || now >= due {
                            flush_at = None;
                            last_flush = now;
                            if !self.on_input(events, std::mem::take(&mut typed)).await {
                                return;
                            }
                        } else {
                            flush_at.get_or_insert(due);
                        }
                    }
                    None => {
                        if !typed.is_empty() && !self.on_input(events, std::mem::take(&mut typed)).await {
                            return;
                        }
                        // Everything typed went out; it must be
                        // acknowledged before we end (see `Drain`).
                        drain = Drain::started(Instant::now(), self.undelivered());
                        linger = Some(Instant::now() + DRAIN_CHECK);
                    }
                },
                () = flush_timer => {
                    flush_at = None;
                    last_flush = Instant::now();
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
                Some((peer, text)) = direct.recv() => {
                    let from = self.display_anywhere(&peer);
                    if let Some(e) = self.store_direct(peer, peer, text.clone(), false).await {
                        if !self.report_store_error(events, &e).await {
                            return;
                        }
                    }
                    if events.send(Event::Direct { from, text }).await.is_err() {
                        return;
                    }
                }
                Some((request, reply)) = fetched.recv() => {
                    if !self.on_fetched(events, request, reply).await {
                        return;
                    }
                }
                () = gap_timer => {
                    if !self.give_up_gaps(events).await || !self.announce_due(events).await {
                        return;
                    }
                    self.greet_due().await;
                    if !self.retry_unstored(events).await {
                        return;
                    }
                    self.say_have_due().await;
                    if !self.tell_undelivered(events).await {
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
                () = tokio::time::sleep_until(next_hello.into()) => {
                    next_hello = Instant::now() + self.hello_period();
                    let rooms: Vec<String> = self
                        .rooms
                        .iter()
                        .filter(|(_, roster)| !roster.is_empty())
                        .map(|(room, _)| room.clone())
                        .collect();
                    for room in rooms {
                        self.hello(&room).await;
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
            .and_then(|room| self.rooms.get(room))
            .map_or(0, Roster::len);
        if members < COALESCE_FROM_MEMBERS {
            Duration::ZERO
        } else {
            (COALESCE_PER_MEMBER * members as u32).min(MAX_COALESCE)
        }
    }

    /// Handles typed lines: commands act, text is published in batches.
    async fn on_input(&mut self, events: &mpsc::Sender<Event>, lines: Vec<String>) -> bool {
        // Text between commands goes out together, in batches.
        let mut run: Vec<String> = Vec::new();
        for line in lines {
            let text = match command::parse(&line) {
                Input::Text(text) => text.to_owned(),
                Input::Quit => {
                    self.publish_in_batches(events, std::mem::take(&mut run))
                        .await;
                    // The run loop ends once those are out.
                    self.quitting = true;
                    return true;
                }
                other => {
                    self.publish_in_batches(events, std::mem::take(&mut run))
                        .await;
                    // What arrived before the command is shown before its
                    // answer (and `/history` reads it).
                    if !self.show_stored(events).await {
                        return false;
                    }
                    let reply = self.on_command(other).await;
                    if let Some(event) = reply {
                        if events.send(event).await.is_err() {
                            return false;
                        }
                    }
                    continue;
                }
            };
            if text.len() > self.max_line.min(net::MAX_ROOM_LINE) {
                let limit = self.max_line.min(net::MAX_ROOM_LINE);
                let notice = Event::Notice(Notice::OutgoingTooLong { limit });
                if events.send(notice).await.is_err() {
                    return false;
                }
                continue;
            }
            run.push(text);
        }
        self.publish_in_batches(events, run).await;
        true
    }

    /// Whether input waits: no one else is in the current room, and
    /// [`MAX_PENDING_LINES`] of ours wait for someone.
    fn pending_full(&self) -> bool {
        self.pending_lines >= MAX_PENDING_LINES
            && self
                .current
                .as_ref()
                .and_then(|room| self.rooms.get(room))
                .is_none_or(Roster::is_empty)
    }

    /// Publishes lines in batches of at most [`BATCH_LINES`] lines and the
    /// client's batch size in bytes, unless one line alone is bigger (a
    /// room message holds a batch or one long line).
    async fn publish_in_batches(&mut self, events: &mpsc::Sender<Event>, texts: Vec<String>) {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for text in texts {
            if !batch.is_empty()
                && (bytes + text.len() > self.client.batch_bytes() || batch.len() >= BATCH_LINES)
            {
                self.publish_lines(events, std::mem::take(&mut batch)).await;
                bytes = 0;
            }
            bytes += text.len();
            batch.push(text);
        }
        self.publish_lines(events, batch).await;
    }

    /// Numbers lines for the current room and hands them to the store, to
    /// be written to the outbox as queued; [`RoomChat::on_written`]
    /// publishes them once they are. Input goes on being read meanwhile
    /// (up to [`MAX_WRITING`] batches ahead), so the chat moves at the pace
    /// of the store's throughput, not of one commit after another.
    async fn publish_lines(&mut self, events: &mpsc::Sender<Event>, texts: Vec<String>) {
        if texts.is_empty() {
            return;
        }
        let Some(room) = self.current.clone() else {
            let _ = events
                .send(Event::Notice(Notice::NotSent(
                    "you are in no room; /join one".into(),
                )))
                .await;
            return;
        };
        let seq = self.next_seq.entry(room.clone()).or_insert(1);
        let first = *seq;
        *seq += texts.len() as u64;
        let me = self.client.local_peer_id().to_string();
        let key = format!("{me}/{room}");
        let ts_ms = now_ms();
        if let Ok(mut recent) = self.recent.lock() {
            recent.record(&key, self.session, first, &texts, ts_ms);
            recent.name(&key, self.session, self.secure.nick.as_deref());
        }
        // Into the outbox before it is sent.
        let batch = Batch {
            conversation: conversation(&room),
            room: Some(room.clone()),
            peer: None,
            author: me,
            session: self.session,
            first_line: first,
            name: self.secure.nick.clone(),
            ts_ms,
            texts,
            outgoing: true,
            status: Status::Queued,
        };
        let mut outgoing = Outgoing {
            room,
            first,
            texts: Vec::new(),
            nick: self.secure.nick.clone(),
        };
        self.writing += 1;
        // A short write, with none of ours before it still on its way, is
        // done here when the store is free: no wait for its thread.
        if self.writing == 1 && batch.texts.iter().map(String::len).sum::<usize>() <= INLINE_WRITE {
            let now = self
                .secure
                .store
                .try_now(|h| h.insert(std::slice::from_ref(&batch)));
            if let Some(written) = now {
                let written = store_error(written).map_or(Ok(()), Err);
                outgoing.texts = batch.texts;
                self.on_written(events, outgoing, written).await;
                return;
            }
        }
        let report = WriteReport {
            outgoing: Some((outgoing, batch)),
            to: self.written_tx.clone(),
        };
        // The store runs jobs in order, so reports come back in order. A
        // job that never runs reports on drop, here or on the store thread.
        let _ = self.secure.store.submit(move |h| report.write(h)).await;
    }

    /// Our lines were written to the outbox (or could not be: they go out
    /// all the same, and the user is told history is not kept): publish
    /// them, or keep them while we are alone in the room. Lines of a room
    /// left meanwhile stay queued in the store for when it is joined again.
    async fn on_written(
        &mut self,
        events: &mpsc::Sender<Event>,
        outgoing: Outgoing,
        written: Result<(), store::Error>,
    ) -> bool {
        self.writing = self.writing.saturating_sub(1);
        let told = match written {
            Ok(()) => {
                let notice = self.refused.stored(0);
                tell(events, notice).await
            }
            // Our lines go out all the same, and are not written again.
            Err(e) => self.report_store_error(events, &e).await,
        };
        if !told {
            return false;
        }
        let Outgoing {
            room,
            first,
            texts,
            nick,
        } = outgoing;
        let Some(roster) = self.rooms.get(&room) else {
            return true;
        };
        if roster.is_empty() {
            self.pending_lines += texts.len();
            self.unacked_since
                .entry(room.clone())
                .or_insert((Instant::now(), false));
            // Said at once: the report of lines not yet delivered comes
            // only after a wait meant for a member slow to acknowledge.
            let notice = self
                .told_queued
                .insert(room.clone())
                .then(|| Notice::Queued { room: room.clone() });
            self.pending.push((room, first, texts));
            if let Some(notice) = notice {
                return ChatEvents(events).notice(notice).await;
            }
            return true;
        }
        self.publish_batch(events, &room, first, texts, nick).await;
        true
    }

    /// Publishes stored lines numbered from `first`, and marks them sent.
    async fn publish_batch(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        first: u64,
        texts: Vec<String>,
        nick: Option<String>,
    ) {
        let count = texts.len() as u64;
        let frame = RoomFrame {
            session: self.session,
            seq: first,
            attempt: 0,
            body: Body::Lines {
                sent_ms: now_ms(),
                nick,
                texts,
            },
        };
        let publish = async {
            self.client
                .publish(room, &frame)
                .await
                .map_err(|e| SendError::Failed(e.to_string()))
        };
        match unstalled(publish, events).await {
            Ok(()) => {
                // Handed to the network is not delivered: the lines stay
                // queued in the store until a member acknowledges them,
                // and a run that ends before then sends them again.
                let acked = self.acked.get(room).copied().unwrap_or(0);
                if acked < first + count {
                    self.unacked_since
                        .entry(room.to_owned())
                        .or_insert((Instant::now(), false));
                }
            }
            Err(e) => {
                let cause = match e {
                    SendError::Failed(cause) => cause,
                    SendError::TooLong { limit } => format!("over the {limit}-byte limit"),
                };
                let _ = events
                    .send(Event::Notice(Notice::ConnectionError(cause)))
                    .await;
                // The members that took nothing for so long are dropped.
                if let Some(roster) = self.rooms.get(room) {
                    let members: Vec<PeerId> =
                        roster.iter().filter_map(|(p, _)| p.parse().ok()).collect();
                    for peer in members {
                        self.client.disconnect(peer).await;
                    }
                }
            }
        }
    }

    /// Publishes the batches kept while alone in `room`.
    async fn publish_pending(&mut self, events: &mpsc::Sender<Event>, room: &str) {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(r, _, _)| r == room);
        self.pending = others;
        for (_, first, texts) in mine {
            self.pending_lines = self.pending_lines.saturating_sub(texts.len());
            let nick = self.secure.nick.clone();
            self.publish_batch(events, room, first, texts, nick).await;
        }
    }

    /// Keeps a direct message, sent (delivered: its stream was closed
    /// cleanly by both ends) or received, in the conversation with `peer`.
    /// Direct messages are numbered locally, per conversation and author.
    async fn store_direct(
        &mut self,
        peer: PeerId,
        author: PeerId,
        text: String,
        outgoing: bool,
    ) -> Option<store::Error> {
        let conversation = format!("peer:{peer}");
        let author = author.to_string();
        let session = self.session;
        let batch = Batch {
            conversation: conversation.clone(),
            room: None,
            peer: Some(peer.to_string()),
            author: author.clone(),
            session,
            first_line: 0,
            name: if outgoing {
                self.secure.nick.clone()
            } else {
                self.nicks.get(&peer).cloned()
            },
            ts_ms: now_ms(),
            texts: vec![text],
            outgoing,
            status: if outgoing {
                Status::Sent
            } else {
                Status::Received
            },
        };
        let written = self
            .secure
            .store
            .call(move |h| -> Result<(), store::Error> {
                let mut batch = batch;
                let line = h.next_line(&conversation, &author, session)?;
                batch.first_line = line;
                h.insert(&[batch])?;
                if outgoing {
                    h.mark_delivered_through(&conversation, &author, session, line + 1)?;
                }
                Ok(())
            })
            .await;
        store_error(written)
    }

    /// Tells the user that a write whose lines are not written again
    /// failed, when that starts a trouble (see [`Refused`]); the chat goes
    /// on without the store. False once the display is gone.
    async fn report_store_error(
        &mut self,
        events: &mpsc::Sender<Event>,
        error: &store::Error,
    ) -> bool {
        let notice = self.refused.failed(error);
        tell(events, notice).await
    }

    /// Stores lines of a member, then shows them (see
    /// [`RoomChat::gather`]); only once they are stored are they
    /// acknowledged. Lines are stored in the order they arrive, which is
    /// the order they are shown. False once the display is gone.
    #[allow(clippy::too_many_arguments)]
    async fn keep_and_show(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        author: &str,
        session: u64,
        first: u64,
        texts: Vec<String>,
        nick: Option<String>,
        ts_ms: u64,
    ) -> bool {
        // What we hold counts from the first line we ever tried to store.
        self.stored
            .entry((room.to_owned(), author.to_owned(), session))
            .or_insert(first);
        // Lines said before we first came to the room are history to us.
        let slot = (format!("{author}/{room}"), session);
        let earlier = self.backlog.contains(&slot)
            && self
                .joined_at
                .get(room)
                .is_some_and(|joined| ts_ms < *joined);
        let then = match self.rooms.get(room) {
            Some(roster) => Then::Show(Shown {
                // History names its author as `/history` does: by the
                // nick given with the lines.
                from: match &nick {
                    Some(nick) if earlier => nick.clone(),
                    _ => shown_as(roster, author),
                },
                room: (self.current.as_deref() != Some(room)).then(|| room.to_owned()),
                earlier: earlier.then_some(ts_ms),
            }),
            None => Then::Keep,
        };
        let batch = Batch {
            conversation: conversation(room),
            room: Some(room.to_owned()),
            peer: None,
            author: author.to_owned(),
            session,
            first_line: first,
            name: nick,
            ts_ms,
            texts,
            outgoing: false,
            status: Status::Received,
        };
        self.gather(events, vec![(batch, then)]).await
    }

    /// Hands received lines to the store at once when no write of them is
    /// on the store thread, else gathers them for the next write, which
    /// starts as soon as that one ends: a line that comes to an idle chat
    /// waits for one commit, not for a timer, and a burst costs a commit
    /// per write rather than one per batch. Past [`MAX_GATHERED_LINES`]
    /// this waits for the write on the store thread. False once the
    /// display is gone.
    async fn gather(&mut self, events: &mpsc::Sender<Event>, batches: Vec<(Batch, Then)>) -> bool {
        for (batch, then) in batches {
            self.to_store_lines += batch.texts.len();
            self.to_store.push(batch);
            self.to_show.push(then);
        }
        if self.storing.is_none() {
            return self.write_received(events).await;
        }
        if self.to_store_lines >= MAX_GATHERED_LINES {
            let written = stored(&mut self.storing).await;
            return self.on_stored(events, written).await;
        }
        true
    }

    /// Waits until every received line handed over so far is written (or
    /// refused) and shown, so that what is shown next comes after them.
    /// False once the display is gone.
    async fn show_stored(&mut self, events: &mpsc::Sender<Event>) -> bool {
        if !self.write_received(events).await {
            return false;
        }
        while self.storing.is_some() {
            let written = stored(&mut self.storing).await;
            if !self.on_stored(events, written).await {
                return false;
            }
        }
        true
    }

    /// Writes the received lines gathered, unless a write of them is on
    /// the store thread already. A short write is done here and now when
    /// the store thread is idle, as for our own lines, and its lines shown
    /// at once: handing it to that thread and back would cost a line more
    /// time than the commit. Others go to the store thread, and
    /// [`RoomChat::on_stored`] takes their outcome. False once the display
    /// is gone.
    async fn write_received(&mut self, events: &mpsc::Sender<Event>) -> bool {
        if self.storing.is_some() || self.to_store.is_empty() {
            return true;
        }
        self.to_store_lines = 0;
        let batches = std::mem::take(&mut self.to_store);
        let then = std::mem::take(&mut self.to_show);
        let bytes: usize = batches.iter().flat_map(|b| &b.texts).map(String::len).sum();
        if bytes <= INLINE_WRITE {
            let now = self.secure.store.try_now(|h| h.insert(&batches).map(drop));
            if let Some(written) = now {
                let written = written.and_then(|inserted| inserted);
                return self.take_in(events, then, (batches, written)).await;
            }
        }
        let (report, done) = oneshot::channel();
        self.storing = Some(Storing { then, done });
        let write = ReceivedWrite {
            batches,
            done: Some(report),
        };
        // A job that never runs reports on drop, here or on the store
        // thread.
        let _ = self.secure.store.submit(move |h| write.write(h)).await;
        true
    }

    /// The write of received lines on the store thread ended: its outcome
    /// is taken in (see [`RoomChat::take_in`]), then the lines gathered
    /// meanwhile are written. False once the display is gone.
    async fn on_stored(&mut self, events: &mpsc::Sender<Event>, written: Written) -> bool {
        let then = self.storing.take().map(|s| s.then).unwrap_or_default();
        self.take_in(events, then, written).await && self.write_received(events).await
    }

    /// A write of received lines ended. What it stored is acknowledged
    /// soon, but only as far as every line before it is stored too (a
    /// write that failed leaves a hole that stops the acknowledgement until
    /// a later try fills it); what it could not store is kept to try again.
    /// Stored or not, new lines are shown now: the chat goes on without
    /// the store, and says so. False once the display is gone.
    async fn take_in(
        &mut self,
        events: &mpsc::Sender<Event>,
        thens: Vec<Then>,
        written: Written,
    ) -> bool {
        let (batches, result) = written;
        let mut to_show = Vec::new();
        let notice = match result {
            Ok(()) => {
                let mut again = 0;
                for (batch, then) in batches.into_iter().zip(thens) {
                    self.note_stored(&batch);
                    match then {
                        Then::Show(shown) => to_show.push((shown, batch.texts)),
                        Then::Retry => again += batch.texts.len(),
                        Then::Keep => {}
                    }
                }
                self.refused.stored(again)
            }
            Err(e) => {
                self.retry_store_at
                    .get_or_insert(Instant::now() + STORE_RETRY);
                let mut kept = Vec::new();
                for (batch, then) in batches.into_iter().zip(thens) {
                    match then {
                        Then::Show(shown) => {
                            to_show.push((shown, batch.texts.clone()));
                            kept.push((batch, false));
                        }
                        Then::Keep => kept.push((batch, false)),
                        Then::Retry => kept.push((batch, true)),
                    }
                }
                self.refused.refused(&e, kept)
            }
        };
        if !tell(events, notice).await {
            return false;
        }
        for (shown, texts) in to_show {
            if !self.show_lines(events, shown, texts).await {
                return false;
            }
        }
        true
    }

    /// Counts a batch of received lines as stored, and has it
    /// acknowledged soon if that stores more of its author's lines without
    /// a hole.
    fn note_stored(&mut self, batch: &Batch) {
        let room = batch.room.clone().unwrap_or_default();
        let first = batch.first_line;
        let end = first + batch.texts.len() as u64;
        let key = (room.clone(), batch.author.clone(), batch.session);
        let held = self.stored.entry(key.clone()).or_insert(first);
        let before = *held;
        let mut advanced = false;
        if first <= *held {
            *held = (*held).max(end);
            if let Some(ahead) = self.stored_ahead.get_mut(&key) {
                while let Some(entry) = ahead.first_entry() {
                    if *entry.key() > *held {
                        break;
                    }
                    *held = (*held).max(entry.remove());
                }
                if ahead.is_empty() {
                    self.stored_ahead.remove(&key);
                }
            }
            advanced = *held > before;
        } else {
            let ahead = self.stored_ahead.entry(key).or_default();
            // Runs that touch are kept as one: a long wait for a
            // hole to be written makes one entry, not one per batch.
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
        if advanced && self.have_dirty.insert(room.clone()) && self.have_due.is_none() {
            // Spread over twice the room's delay, so that the first
            // members to tell spare the rest (see `say_have_due`).
            let members = self.rooms.get(&room).map_or(0, Roster::len) as u32;
            let spread = ACK_DELAY_PER_MEMBER * members.min(200) * 2;
            let share = (random_session() % 1024) as u32;
            self.have_due = Some(Instant::now() + ACK_DELAY + spread * share / 1024);
        }
    }

    /// Tries again the writes that failed, when due. False once the
    /// display is gone.
    async fn retry_unstored(&mut self, events: &mpsc::Sender<Event>) -> bool {
        if self.retry_store_at.is_none_or(|at| at > Instant::now()) {
            return true;
        }
        self.retry_store_at = None;
        let batches = self.refused.take();
        let batches = batches.into_iter().map(|b| (b, Then::Retry)).collect();
        self.gather(events, batches).await
    }

    /// What we hold of a room's authors, for a hello or an
    /// acknowledgement: the most recently written first.
    fn holdings(&self, room: &str) -> Vec<Holding> {
        self.stored
            .iter()
            .filter(|((r, _, _), _)| r == room)
            .filter_map(|((_, author, session), next)| {
                let author: PeerId = author.parse().ok()?;
                Some(Holding {
                    author: author.to_bytes(),
                    session: *session,
                    next: *next,
                })
            })
            .take(MAX_HOLDINGS)
            .collect()
    }

    /// Says what we hold in the rooms where that changed.
    async fn say_have_due(&mut self) {
        if self.have_due.is_none_or(|at| at > Instant::now()) {
            return;
        }
        self.have_due = None;
        for room in std::mem::take(&mut self.have_dirty) {
            if self.rooms.get(&room).is_none_or(Roster::is_empty) {
                continue;
            }
            // Another member already told the room it holds as much as we
            // do of every author: ours would tell nothing new (an author
            // needs one acknowledgement, and a member catching up one
            // holder), and every member would check it.
            let news = self
                .stored
                .iter()
                .filter(|((r, _, _), _)| *r == room)
                .any(|(key, next)| self.heard.get(key).is_none_or(|heard| heard < next));
            if !news {
                continue;
            }
            self.hello_seq += 1;
            let frame = RoomFrame {
                session: self.session,
                seq: self.hello_seq,
                attempt: 0,
                body: Body::Have {
                    have: self.holdings(&room),
                },
            };
            let _ = self.client.publish(&room, &frame).await;
        }
    }

    /// A member says what it holds: our lines it has are delivered, and
    /// what it has that we lack is fetched from it.
    async fn on_have(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        from: PeerId,
        have: Vec<Holding>,
    ) -> bool {
        let me = self.client.local_peer_id();
        for holding in have {
            let Ok(author) = PeerId::from_bytes(&holding.author) else {
                continue;
            };
            if author == me {
                if holding.session == self.session
                    && !self.on_delivered(events, room, holding.next).await
                {
                    return false;
                }
                continue;
            }
            // Only for streams we hold: the map stays as small as `stored`.
            let key = (room.to_owned(), author.to_string(), holding.session);
            if self.stored.contains_key(&key) {
                let heard = self.heard.entry(key).or_insert(0);
                *heard = (*heard).max(holding.next);
            }
            self.sync_stream(room, author, from, holding.session, holding.next);
        }
        true
    }

    /// `holder` has every line below `next` of `author`'s session: fetch
    /// from it what we lack. A session we never saw is taken up to
    /// [`SYNC_BACKLOG`] lines back, so a member new to the room, or back
    /// with nothing kept, ends with what the others hold.
    fn sync_stream(&mut self, room: &str, author: PeerId, holder: PeerId, session: u64, next: u64) {
        let key = format!("{author}/{room}");
        let ours = match self.order.next(&key, session) {
            Some(ours) => ours,
            None => {
                let start = next.saturating_sub(SYNC_BACKLOG).max(1);
                self.order.start_at(&key, session, start);
                self.backlog.insert((key.clone(), session));
                start
            }
        };
        if next > ours {
            self.wait_for_gap(room, author, holder, session, ours, next - 1);
        }
        self.repair(room, author, holder, session, next);
    }

    /// `holder` has every line below `next` of `author`'s session: ask it
    /// for the lines we gave up on (a gap waited for too long), at most
    /// once every [`FETCH_RETRY`]. What comes is shown, marked late, by
    /// [`RoomChat::recover_lines`].
    fn repair(&mut self, room: &str, author: PeerId, holder: PeerId, session: u64, next: u64) {
        let key = format!("{author}/{room}");
        let now = Instant::now();
        let holes =
            self.order
                .holes_to_ask(&key, session, next, now, FETCH_RETRY, MAX_REPAIR_FETCHES);
        for (first, end) in holes {
            let request = FetchRequest {
                room: room.to_owned(),
                author: author.to_bytes(),
                session,
                from: first,
                to: end - 1,
            };
            self.fetch_missing(request, author, holder);
        }
    }

    /// Lines of `texts` (numbered from `first`) of the stream `order_key`
    /// (`author/room`) that were given up on came after all: stores and
    /// shows them, after saying so.
    #[allow(clippy::too_many_arguments)]
    async fn recover_lines(
        &mut self,
        events: &mpsc::Sender<Event>,
        order_key: &str,
        session: u64,
        first: u64,
        texts: &[String],
        nick: Option<&str>,
        ts_ms: u64,
    ) -> bool {
        let runs = self.order.recover(order_key, session, first, texts);
        if runs.is_empty() {
            return true;
        }
        let Some((author, room)) = order_key.split_once('/') else {
            return true;
        };
        let count = runs
            .iter()
            .flat_map(|(_, texts)| texts)
            .filter(|text| text.len() <= self.max_line)
            .count() as u64;
        let who = self
            .rooms
            .get(room)
            .map_or_else(|| "Peer".into(), |r| shown_as(r, author));
        // The notice heads the late lines: what came before them is shown
        // before it.
        if !self.show_stored(events).await {
            return false;
        }
        let notice = Event::Notice(Notice::Recovered { who, count });
        if events.send(notice).await.is_err() {
            return false;
        }
        for (first, texts) in runs {
            let nick = nick.map(str::to_owned);
            if !self
                .keep_and_show(events, room, author, session, first, texts, nick, ts_ms)
                .await
            {
                return false;
            }
        }
        true
    }

    /// A member holds our lines of `room` below `next`.
    async fn on_delivered(&mut self, events: &mpsc::Sender<Event>, room: &str, next: u64) -> bool {
        let sent = self.next_seq.get(room).copied().unwrap_or(1);
        let next = next.min(sent);
        let acked = self.acked.entry(room.to_owned()).or_insert(0);
        if next <= *acked {
            return true;
        }
        *acked = next;
        let (store, conversation) = (self.secure.store.clone(), conversation(room));
        let (me, session) = (self.client.local_peer_id().to_string(), self.session);
        tokio::spawn(async move {
            let _ = store
                .call(move |h| h.mark_delivered_through(&conversation, &me, session, next))
                .await;
        });
        if next >= sent {
            if let Some((_, told)) = self.unacked_since.remove(room) {
                if told {
                    let text = format!("All your messages in #{room} are delivered");
                    return events.send(Event::Info(text)).await.is_ok();
                }
            }
        }
        true
    }

    /// Whether lines we received still wait to be stored or acknowledged:
    /// a member whose input ended tells the others what it holds before it
    /// goes, or they would wait for an acknowledgement that never comes.
    fn owes_acknowledgements(&self) -> bool {
        !self.to_store.is_empty() || self.storing.is_some() || self.have_due.is_some()
    }

    /// Our lines not acknowledged yet, in every room.
    fn undelivered(&self) -> u64 {
        self.unacked_since
            .keys()
            .map(|room| {
                let sent = self.next_seq.get(room).copied().unwrap_or(1);
                let acked = self.acked.get(room).copied().unwrap_or(0).max(1);
                sent.saturating_sub(acked)
            })
            .sum()
    }

    /// Puts our unacknowledged lines back in the outbox, for the next run
    /// to send: handed to the network is not delivered.
    async fn requeue_undelivered(&mut self) {
        let (me, session) = (self.client.local_peer_id().to_string(), self.session);
        for room in self.unacked_since.keys() {
            let (me, conversation) = (me.clone(), conversation(room));
            let _ = self
                .secure
                .store
                .call(move |h| h.requeue_undelivered(&conversation, &me, session))
                .await;
        }
    }

    /// Reports our lines waiting too long for an acknowledgement.
    async fn tell_undelivered(&mut self, events: &mpsc::Sender<Event>) -> bool {
        let now = Instant::now();
        let mut due = Vec::new();
        for (room, (since, told)) in self.unacked_since.iter_mut() {
            if !*told && now >= *since + UNDELIVERED_NOTICE {
                *told = true;
                due.push(room.clone());
            }
        }
        for room in due {
            let sent = self.next_seq.get(&room).copied().unwrap_or(1);
            let acked = self.acked.get(&room).copied().unwrap_or(0).max(1);
            let waiting = sent.saturating_sub(acked);
            if waiting == 0 {
                continue;
            }
            let text = format!(
                "{waiting} message(s) to #{room} not yet delivered; they are kept and sent when a member is back"
            );
            if events.send(Event::Info(text)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Says hello in a room: our nick and addresses.
    async fn hello(&mut self, room: &str) {
        let now = Instant::now();
        self.hello_due.remove(room);
        self.last_hello.insert(room.to_owned(), now);
        self.hello_seq += 1;
        let addrs = self
            .client
            .listen_addrs()
            .await
            .iter()
            .map(|a| a.to_vec())
            .take(16)
            .collect();
        let frame = RoomFrame {
            session: self.session,
            seq: self.hello_seq,
            attempt: 0,
            body: Body::Hello {
                nick: self.secure.nick.clone(),
                addrs,
                next: self.next_seq.get(room).copied().unwrap_or(1),
                have: self.holdings(room),
            },
        };
        let _ = self.client.publish(room, &frame).await;
    }

    /// How long until the next periodic hello: longer in bigger rooms.
    fn hello_period(&self) -> Duration {
        let members = self.rooms.values().map(Roster::len).max().unwrap_or(0);
        HELLO_PERIOD + HELLO_PERIOD_PER_MEMBER * members.min(1000) as u32
    }

    /// Schedules a hello for a newcomer of `room`: now if we have been
    /// quiet for [`HELLO_INTERVAL`], else when it has passed.
    fn greet_soon(&mut self, room: &str) {
        let now = Instant::now();
        let at = self
            .last_hello
            .get(room)
            .map_or(now, |last| (*last + HELLO_INTERVAL).max(now));
        self.hello_due.entry(room.to_owned()).or_insert(at);
    }

    /// Says the hellos that are due.
    async fn greet_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .hello_due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            self.hello(&room).await;
        }
    }

    async fn on_command(&mut self, input: Input<'_>) -> Option<Event> {
        let info = |text: String| Some(Event::Info(text));
        match input {
            Input::Text(_) | Input::Quit => None,
            Input::Help => Some(Event::Help(command::HELP.into())),
            Input::Unknown(word) => Some(Event::Help(command::unknown_hint(word))),
            Input::Usage(usage) => Some(Event::Help(format!("Usage: {usage}"))),
            Input::Id => Some(own_identity(&self.secure.identity)),
            Input::Nick(nick) => {
                if let Err(e) = check_nick(nick) {
                    return info(e.to_string());
                }
                self.secure.nick = Some(nick.to_owned());
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    self.hello(&room).await;
                }
                info(format!("You are now known as {nick}"))
            }
            Input::Join { room, public } => {
                if let Err(e) = check_room_key(room) {
                    return info(e.to_string());
                }
                let room = if public && !is_public(room) {
                    public_room(room)
                } else {
                    room.to_owned()
                };
                if self.join(&room).await.is_err() {
                    return info("the network engine has stopped".into());
                }
                self.hello(&room).await;
                let members = self.rooms.get(&room).map_or(0, Roster::len);
                let kind = if is_public(&room) {
                    "a public room: peers on the LAN can find and join it"
                } else {
                    "a private room: only peers that dial a member join it"
                };
                info(format!(
                    "Now in #{room} ({members} other member(s); {kind})"
                ))
            }
            Input::Nearby => {
                let peers = self
                    .client
                    .nearby()
                    .await
                    .into_iter()
                    .map(|nearby| NearbyLine {
                        fingerprint: short(&fingerprint_of(&nearby.peer)),
                        addr: nearby
                            .addr
                            .as_ref()
                            .and_then(net::socket_addr)
                            .map(|a| a.to_string()),
                        public_rooms: nearby
                            .public_rooms
                            .iter()
                            .map(|r| room_name(r).to_owned())
                            .collect(),
                        rooms_known: nearby.connected,
                    })
                    .collect();
                Some(Event::Nearby { peers })
            }
            Input::Leave(room) => {
                let Some(room) = room.map(str::to_owned).or_else(|| self.current.clone()) else {
                    return info("you are in no room".into());
                };
                if self.rooms.remove(&room).is_none() {
                    return info(format!(
                        "you are not in #{}",
                        crate::chat::sanitize::inert(&room)
                    ));
                }
                self.hello_seq += 1;
                let frame = RoomFrame {
                    session: self.session,
                    seq: self.hello_seq,
                    attempt: 0,
                    body: Body::Leave,
                };
                let _ = self.client.publish(&room, &frame).await;
                let _ = self.client.leave(&room).await;
                if self.current.as_deref() == Some(room.as_str()) {
                    self.current = self.rooms.keys().next().cloned();
                }
                match &self.current {
                    Some(now) => info(format!("Left #{room}; now in #{now}")),
                    None => info(format!("Left #{room}; you are in no room (/join one)")),
                }
            }
            Input::Rooms => {
                let mut text = String::from("Rooms:");
                for (name, roster) in &self.rooms {
                    let mark = if self.current.as_deref() == Some(name) {
                        "*"
                    } else {
                        " "
                    };
                    text.push_str(&format!(
                        "\n {mark} #{name} ({} other member(s))",
                        roster.len()
                    ));
                }
                info(text)
            }
            Input::History(count) => {
                let Some(room) = self.current.clone() else {
                    return info("you are in no room".into());
                };
                let limit = count.unwrap_or(HISTORY_DEFAULT).min(100_000);
                Some(self.history_event(&room, limit).await)
            }
            Input::Peers => {
                let peers = self.client.peers().await;
                let mut text = format!("Peers connected: {}", peers.len());
                for p in peers {
                    let addr = p
                        .addr
                        .as_ref()
                        .and_then(net::socket_addr)
                        .map_or_else(|| "?".into(), |a| a.to_string());
                    let rtt = p.rtt.map_or_else(
                        || "?".into(),
                        |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
                    );
                    text.push_str(&format!(
                        "\n  {}  {}  {}  {}",
                        self.display_anywhere(&p.peer),
                        fingerprint_of(&p.peer),
                        addr,
                        rtt
                    ));
                }
                info(text)
            }
            Input::Msg { to, text } => {
                let peer = match self.resolve(to) {
                    Ok(peer) => peer,
                    Err(e) => return info(e),
                };
                let mut client = self.client.clone();
                let text = text.to_owned();
                let kept = text.clone();
                let result = tokio::time::timeout(DIRECT_TIMEOUT, async move {
                    let mut session = client.open_chat(peer).await?;
                    session.send(&text).await?;
                    let (_, mut outgoing) = session.split();
                    outgoing.close().await
                })
                .await;
                match result {
                    Ok(Ok(())) => {
                        let me = self.client.local_peer_id();
                        let who = self.display_anywhere(&peer);
                        match self.store_direct(peer, me, kept, true).await {
                            None => info(format!("Sent to {who} only")),
                            Some(e) => info(format!("Sent to {who} only (not kept: {e})")),
                        }
                    }
                    Ok(Err(e)) => Some(Event::Notice(Notice::NotSent(e.to_string()))),
                    Err(_) => Some(Event::Notice(Notice::NotSent("timed out".into()))),
                }
            }
            Input::Verify(who) => {
                let peer = match self.target(who) {
                    Ok(peer) => peer,
                    Err(e) => return info(e),
                };
                match identity::peer_key_bytes(&peer) {
                    Some(theirs) => Some(Event::SafetyNumber {
                        number: safety_number(&self.secure.identity.public_key_bytes(), &theirs),
                    }),
                    None => info("this peer's key type has no safety number".into()),
                }
            }
            Input::Trust(who) => {
                let peer = match self.target(who) {
                    Ok(peer) => peer,
                    Err(e) => return info(e),
                };
                let mut result = Ok(());
                if self.first_peer == Some(peer) {
                    result = self.secure.known.trust(self.label.as_deref(), &peer);
                }
                if result.is_ok() {
                    result = self.secure.known.trust(None, &peer);
                }
                if let (Ok(()), Some(nick)) = (&result, self.nick_of(&peer)) {
                    result = self.secure.known.trust(Some(&name_label(&nick)), &peer);
                }
                for roster in self.rooms.values_mut() {
                    if let Some(member) = roster.get(&peer.to_string()).cloned() {
                        roster.rename(&peer.to_string(), member.nick, false);
                    }
                }
                match result {
                    Ok(()) => Some(Event::Trusted {
                        peer_id: peer.to_string(),
                    }),
                    Err(e) => Some(Event::Notice(Notice::Store(e.to_string()))),
                }
            }
        }
    }

    /// The member a command names, or the only other member of the room.
    fn target(&self, who: Option<&str>) -> Result<PeerId, String> {
        match who {
            Some(who) => self.resolve(who),
            None => {
                let roster = self
                    .current
                    .as_ref()
                    .and_then(|r| self.rooms.get(r))
                    .ok_or("you are in no room")?;
                let mut members = roster.iter();
                match (members.next(), members.next()) {
                    (Some((peer, _)), None) => peer.parse().map_err(|_| "unknown peer".into()),
                    // The peer we connected to, before it shows in the room.
                    (None, _)
                        if self
                            .first_peer
                            .is_some_and(|p| self.introduced.contains(&p)) =>
                    {
                        self.first_peer.ok_or_else(|| "no one else is here".into())
                    }
                    (None, _) => Err("no one else is here".into()),
                    _ => Err("there are several members here: name one".into()),
                }
            }
        }
    }

    /// A member by display name or nick, in any room.
    fn resolve(&self, who: &str) -> Result<PeerId, String> {
        let mut found: Vec<String> = Vec::new();
        for roster in self.rooms.values() {
            for peer in roster.find(who) {
                if !found.contains(&peer) {
                    found.push(peer);
                }
            }
        }
        match found.as_slice() {
            [one] => one.parse().map_err(|_| "unknown peer".into()),
            [] => Err(format!(
                "no member called {}",
                crate::chat::sanitize::inert(who)
            )),
            _ => Err(format!(
                "several members are called {}: add the #XXXX suffix shown",
                crate::chat::sanitize::inert(who)
            )),
        }
    }

    fn nick_of(&self, peer: &PeerId) -> Option<String> {
        let key = peer.to_string();
        self.rooms
            .values()
            .find_map(|r| r.get(&key).and_then(|m| m.nick.clone()))
    }

    /// How a peer is shown: as in the current room if it is there, else as
    /// in any room it is in.
    fn display_anywhere(&self, peer: &PeerId) -> String {
        let key = peer.to_string();
        if let Some(roster) = self.current.as_ref().and_then(|r| self.rooms.get(r)) {
            if roster.contains(&key) {
                return roster.display(&key);
            }
        }
        self.rooms.values().find(|r| r.contains(&key)).map_or_else(
            || format!("Peer-{}", short(&fingerprint_of(peer))),
            |r| r.display(&key),
        )
    }

    /// Shows who a newly connected peer is, after a loud warning if the
    /// address we typed was trusted for another key. False when the front
    /// end is gone.
    async fn introduce(&mut self, events: &mpsc::Sender<Event>, peer: PeerId) -> bool {
        let chat = ChatEvents(events);
        if !self.introduced.insert(peer) {
            return true;
        }
        let label = if self.first_peer == Some(peer) {
            self.label.clone()
        } else {
            None
        };
        if let Check::Changed {
            label,
            previous,
            was_trusted: true,
        } = self.secure.known.check(label.as_deref(), &peer)
        {
            let warning = Event::KeyChanged {
                label,
                previous: previous.to_string(),
                now: peer.to_string(),
            };
            if !chat.show(warning).await {
                return false;
            }
        }
        let identity = Event::PeerIdentity {
            peer_id: peer.to_string(),
            fingerprint: fingerprint_of(&peer),
            verified: self.secure.known.is_trusted(&peer),
        };
        if !chat.show(identity).await || !chat.show(Event::Encrypted).await {
            return false;
        }
        if let Err(e) = self.secure.known.record_seen(label.as_deref(), &peer) {
            return chat.show(Event::Notice(Notice::Store(e.to_string()))).await;
        }
        true
    }

    async fn on_net_event(&mut self, events: &mpsc::Sender<Event>, event: NetEvent) -> bool {
        let chat_events = ChatEvents(events);
        match event {
            NetEvent::Connected {
                peer,
                addr,
                inbound,
            } => {
                if inbound {
                    if let Some(expected) = &self.secure.expect {
                        if !identity::matches_expected(expected, &peer) {
                            self.client.disconnect(peer).await;
                            let peer_id = peer.to_string();
                            return chat_events.notice(Notice::Unexpected { peer_id }).await;
                        }
                    }
                }
                if inbound && matches!(self.role, Role::Listen { .. }) {
                    // Announced when it joins our room: a connection alone
                    // (LAN discovery from a peer in a public room, a
                    // scanner) makes nobody a member.
                    let from = net::socket_addr(&addr)
                        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                    self.dialled_in.insert(peer, from);
                }
                true
            }
            NetEvent::Disconnected { peer } => {
                let key = peer.to_string();
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    if !self.member_left(events, &room, &key).await {
                        return false;
                    }
                }
                self.introduced.remove(&peer);
                self.dialled_in.remove(&peer);
                self.end_if_deserted(events).await
            }
            NetEvent::Subscribed { peer, room } => {
                if !self.rooms.contains_key(&room) {
                    return true;
                }
                if !self.announce_dialled_in(events, &room, peer).await {
                    return false;
                }
                let newcomer = !self
                    .rooms
                    .get(&room)
                    .is_some_and(|r| r.contains(&peer.to_string()));
                if !self.member_joined(events, &room, peer, None).await {
                    return false;
                }
                if newcomer {
                    self.greet_soon(&room);
                }
                true
            }
            NetEvent::Unsubscribed { peer, room } => {
                self.member_left(events, &room, &peer.to_string()).await
                    && self.end_if_deserted(events).await
            }
            NetEvent::Room {
                room,
                author,
                via,
                frame,
            } => self.on_room_frame(events, room, author, via, frame).await,
            NetEvent::Throttled { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events.notice(Notice::Throttled { who }).await
            }
            NetEvent::Banned { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events.notice(Notice::Banned { who }).await
            }
            NetEvent::Rejected { .. } => chat_events.notice(Notice::Malformed).await,
            NetEvent::NotPublished { room, cause } => {
                chat_events
                    .notice(Notice::NotSent(format!("#{room}: {cause}")))
                    .await
            }
            NetEvent::Slow { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events.notice(Notice::MemberSlow { who }).await
            }
            NetEvent::SlowDropped { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events
                    .notice(Notice::ConnectionError(format!(
                        "{} read nothing for {} s; dropped it",
                        crate::chat::sanitize::inert(&who),
                        net::SLOW_DROP_AFTER.as_secs()
                    )))
                    .await
            }
        }
    }

    async fn on_room_frame(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: String,
        author: PeerId,
        via: PeerId,
        frame: RoomFrame,
    ) -> bool {
        if !self.rooms.contains_key(&room) {
            return true;
        }
        if !self.announce_dialled_in(events, &room, author).await {
            return false;
        }
        let key = author.to_string();
        match frame.body {
            Body::Hello {
                nick,
                addrs,
                next,
                have,
            } => {
                if !self.on_have(events, &room, author, have).await {
                    return false;
                }
                let addrs: Vec<Multiaddr> = addrs
                    .into_iter()
                    .filter_map(|a| Multiaddr::try_from(a).ok())
                    .collect();
                if !addrs.is_empty() {
                    self.client.introduce(author, addrs).await;
                }
                // Lines of it we never saw the end of: fetch them.
                self.sync_stream(&room, author, author, frame.session, next);
                let newcomer = !self.rooms.get(&room).is_some_and(|r| r.contains(&key));
                if newcomer {
                    self.greet_soon(&room);
                }
                self.member_joined(events, &room, author, Some(nick)).await
            }
            Body::Leave => {
                self.member_left(events, &room, &key).await && self.end_if_deserted(events).await
            }
            Body::Have { have } => self.on_have(events, &room, author, have).await,
            Body::Lines {
                nick,
                texts,
                sent_ms,
            } => {
                if !self
                    .member_joined(events, &room, author, Some(nick.clone()))
                    .await
                {
                    return false;
                }
                let (session, order_key) = (frame.session, format!("{key}/{room}"));
                for (first, texts) in self.faults.pass_lines(frame.seq, texts) {
                    if let Ok(mut recent) = self.recent.lock() {
                        recent.record(&order_key, session, first, &texts, sent_ms);
                        recent.name(&order_key, session, nick.as_deref());
                    }
                    let nick_now = nick.as_deref();
                    if !self
                        .recover_lines(
                            events, &order_key, session, first, &texts, nick_now, sent_ms,
                        )
                        .await
                    {
                        return false;
                    }
                    match self.order.accept(&order_key, session, first, texts) {
                        Delivery::Show(first, texts) => {
                            let nick = nick.clone();
                            if !self
                                .keep_and_show(
                                    events, &room, &key, session, first, texts, nick, sent_ms,
                                )
                                .await
                            {
                                return false;
                            }
                        }
                        Delivery::Gap { from, to } => {
                            self.wait_for_gap(&room, author, via, session, from, to);
                        }
                        Delivery::Duplicate => {}
                    }
                }
                true
            }
        }
    }

    /// Starts waiting for missing lines `from..=to` of `author`: asks for
    /// them now and again every [`FETCH_RETRY`] until they come or
    /// [`GAP_WAIT`] is over.
    fn wait_for_gap(
        &mut self,
        room: &str,
        author: PeerId,
        via: PeerId,
        session: u64,
        from: u64,
        to: u64,
    ) {
        let slot = (format!("{author}/{room}"), session);
        let request = FetchRequest {
            room: room.to_owned(),
            author: author.to_bytes(),
            session,
            from,
            to,
        };
        let now = Instant::now();
        match self.gaps.get_mut(&slot) {
            // Already waiting: remember the furthest end the author reached.
            Some(gap) => gap.request.to = gap.request.to.max(to),
            None => {
                if !self.faults.refuses_gap_fetches() {
                    self.fetch_missing(request.clone(), author, via);
                }
                self.gaps.insert(
                    slot,
                    Gap {
                        give_up: now + GAP_WAIT,
                        retry: now + FETCH_RETRY,
                        request,
                        author,
                        via,
                    },
                );
            }
        }
    }

    /// Asks the author for the lines missing before a gap (it has all it
    /// sent), else the member that passed the later ones on; the answer
    /// comes back through `fetched`.
    fn fetch_missing(&self, request: FetchRequest, author: PeerId, via: PeerId) {
        spawn_fetch(
            self.client.clone(),
            self.fetched_tx.clone(),
            request,
            author,
            via,
        );
    }

    /// Shows lines fetched to fill a gap (and what waited behind it); what
    /// stays missing is reported when the gap's wait is over.
    async fn on_fetched(
        &mut self,
        events: &mpsc::Sender<Event>,
        request: FetchRequest,
        reply: FetchReply,
    ) -> bool {
        let Some(author) = request.author() else {
            return true;
        };
        // Only what was asked for: a member may answer for any stream.
        let mut reply = reply;
        reply.keep(request.from, request.to.saturating_add(1));
        if reply.texts.is_empty() {
            return true;
        }
        if reply.sent_ms.len() != reply.texts.len() {
            // A reply without the times of its lines: they are unknown.
            reply.sent_ms = vec![now_ms(); reply.texts.len()];
        }
        let key = author.to_string();
        let order_key = format!("{key}/{}", request.room);
        if let Ok(mut recent) = self.recent.lock() {
            for (first, texts, sent_ms) in stamped_runs(&reply) {
                recent.record(&order_key, request.session, first, texts, sent_ms);
            }
        }
        let sent_ms = reply.sent_ms.first().copied().unwrap_or_else(now_ms);
        // The nick we heard it give, else the one the answering member
        // knows (checked like any nick: it is only a claim).
        let nick = self.nicks.get(&author).cloned().or_else(|| {
            reply
                .nick
                .take()
                .filter(|n| crate::chat::room::check_nick(n).is_ok())
        });
        let session = request.session;
        if !self
            .recover_lines(
                events,
                &order_key,
                session,
                reply.first,
                &reply.texts,
                nick.as_deref(),
                sent_ms,
            )
            .await
        {
            return false;
        }
        let (reply_first, stamps) = (reply.first, std::mem::take(&mut reply.sent_ms));
        match self
            .order
            .accept(&order_key, session, reply.first, reply.texts)
        {
            Delivery::Show(first, texts) => {
                let slot = (order_key.clone(), session);
                let filled = self.gaps.get(&slot).is_none_or(|gap| {
                    self.order
                        .next(&order_key, session)
                        .is_some_and(|next| next > gap.request.to)
                });
                if filled && !self.order.has_gap(&order_key, session) {
                    self.gaps.remove(&slot);
                }
                // Each run of lines written at one time is kept (and shown)
                // with its time; lines that waited behind the gap came
                // live, now.
                let room = &request.room;
                let now = now_ms();
                let time_of = |line: u64| {
                    line.checked_sub(reply_first)
                        .and_then(|i| stamps.get(i as usize).copied())
                        .unwrap_or(now)
                };
                let mut texts = texts;
                let mut first = first;
                while !texts.is_empty() {
                    let ts = time_of(first);
                    let run = (1..texts.len())
                        .find(|i| time_of(first + *i as u64) != ts)
                        .unwrap_or(texts.len());
                    let rest = texts.split_off(run);
                    let batch = std::mem::replace(&mut texts, rest);
                    if !self
                        .keep_and_show(events, room, &key, session, first, batch, nick.clone(), ts)
                        .await
                    {
                        return false;
                    }
                    first += run as u64;
                }
                true
            }
            Delivery::Gap { .. } | Delivery::Duplicate => true,
        }
    }

    /// Shows lines of a member (those within the line limit). False once
    /// the display is gone.
    async fn show_lines(
        &self,
        events: &mpsc::Sender<Event>,
        shown: Shown,
        mut texts: Vec<String>,
    ) -> bool {
        let before = texts.len();
        texts.retain(|t| t.len() <= self.max_line);
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
        let Shown {
            from,
            room,
            earlier,
        } = shown;
        let event = match earlier {
            Some(ts_ms) => {
                let stamp = store::rfc3339(ts_ms);
                let when = stamp.get(..16).unwrap_or(&stamp).replace('T', " ");
                let lines = texts
                    .into_iter()
                    .map(|text| HistoryLine {
                        when: when.clone(),
                        from: from.clone(),
                        text,
                        status: None,
                    })
                    .collect();
                Event::History { lines }
            }
            None => Event::Lines { from, room, texts },
        };
        events.send(event).await.is_ok()
    }

    /// Asks again for gaps still open, and gives up on the ones waited
    /// for long enough: what was held behind them is shown, the rest is
    /// reported lost.
    async fn give_up_gaps(&mut self, events: &mpsc::Sender<Event>) -> bool {
        let now = Instant::now();
        let mut due = Vec::new();
        for (slot, gap) in self.gaps.iter_mut() {
            if gap.give_up <= now {
                due.push((slot.clone(), gap.request.to));
            } else if gap.retry <= now && !self.faults.refuses_gap_fetches() {
                gap.retry = now + FETCH_RETRY;
                let mut request = gap.request.clone();
                if let Some(next) = self.order.next(&slot.0, slot.1) {
                    request.from = request.from.max(next);
                }
                let (author, via) = (gap.author, gap.via);
                let client = self.client.clone();
                let fetched = self.fetched_tx.clone();
                spawn_fetch(client, fetched, request, author, via);
            }
        }
        for ((order_key, session), to) in due {
            self.gaps.remove(&(order_key.clone(), session));
            let (runs, mut lost) = self.order.skip_gap(&order_key, session);
            lost += self.order.skip_to(&order_key, session, to + 1);
            let Some((peer, room)) = order_key.split_once('/') else {
                continue;
            };
            let (peer, room) = (peer.to_owned(), room.to_owned());
            if lost > 0 {
                let who = self
                    .rooms
                    .get(&room)
                    .map_or_else(|| "Peer".into(), |r| r.display(&peer));
                if events
                    .send(Event::Notice(Notice::Lost { who, count: lost }))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            let nick = peer
                .parse::<PeerId>()
                .ok()
                .and_then(|p| self.nicks.get(&p).cloned());
            for (first, texts) in runs {
                let nick = nick.clone();
                if !self
                    .keep_and_show(events, &room, &peer, session, first, texts, nick, now_ms())
                    .await
                {
                    return false;
                }
            }
        }
        true
    }

    /// Shows the joins that waited long enough for a nick.
    async fn announce_due(&mut self, events: &mpsc::Sender<Event>) -> bool {
        let now = Instant::now();
        let due: Vec<(String, PeerId)> = self
            .unannounced
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for slot in due {
            self.unannounced.remove(&slot);
            let (room, peer) = slot;
            let Some(roster) = self.rooms.get(&room) else {
                continue;
            };
            let key = peer.to_string();
            if !roster.contains(&key) {
                continue;
            }
            let event = Event::Joined {
                who: roster.display(&key),
                room,
            };
            if events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Records a member (and its nick, when known); shows a join line the
    /// first time, a rename when the nick changed. Sends what was typed
    /// while alone once someone is here.
    async fn member_joined(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: PeerId,
        nick: Option<Option<String>>,
    ) -> bool {
        // A member we knew by a nick that comes back without one (started
        // again without --name) keeps that nick until it says another:
        // renaming it to `Peer`, the name of the unnamed, would read as if
        // someone else had taken its place.
        let nick = match nick {
            Some(None) if self.nicks.contains_key(&peer) => None,
            nick => nick,
        };
        let key = peer.to_string();
        let trusted_owner = nick
            .as_ref()
            .and_then(|n| n.as_deref())
            .and_then(|nick| self.trusted_owner(nick, &peer));
        let impostor = trusted_owner.is_some();
        if let (Some(Some(nick)), Some(previous)) = (&nick, trusted_owner) {
            if self.warned.insert((nick.clone(), peer)) {
                let warning = Event::KeyChanged {
                    label: format!("the nick {nick}"),
                    previous: previous.to_string(),
                    now: peer.to_string(),
                };
                if events.send(warning).await.is_err() {
                    return false;
                }
            }
        }
        if let Some(Some(known)) = &nick {
            self.nicks.insert(peer, known.clone());
        }
        let known_nick = nick
            .clone()
            .flatten()
            .or_else(|| self.nicks.get(&peer).cloned());
        let introduced = self.introduced.contains(&peer);
        let Some(roster) = self.rooms.get_mut(room) else {
            return true;
        };
        let was_alone = roster.is_empty();
        let slot = (room.to_owned(), peer);
        if !roster.contains(&key) {
            let member = Member {
                nick: known_nick.clone(),
                fingerprint: fingerprint_of(&peer),
                impostor,
            };
            roster.join(&key, member);
            let two_person = roster.len() == 1;
            if two_person && introduced && room == self.secure.room {
                // Two peers alone keep the classic lines: the connection
                // was announced already.
            } else if known_nick.is_none() {
                // Its hello (with its nick) is usually a moment behind:
                // announce it then, or when the wait is over.
                self.unannounced
                    .insert(slot, Instant::now() + ANNOUNCE_WAIT);
            } else {
                let event = Event::Joined {
                    who: roster.display(&key),
                    room: room.to_owned(),
                };
                if events.send(event).await.is_err() {
                    return false;
                }
            }
        } else if self.unannounced.contains_key(&slot) && known_nick.is_some() {
            self.unannounced.remove(&slot);
            roster.rename(&key, known_nick, impostor);
            let event = Event::Joined {
                who: roster.display(&key),
                room: room.to_owned(),
            };
            if events.send(event).await.is_err() {
                return false;
            }
        } else if let Some(nick) = nick {
            let old = roster.display(&key);
            if roster.get(&key).map(|m| &m.nick) != Some(&nick) {
                roster.rename(&key, nick, impostor);
                let new = roster.display(&key);
                if old != new && events.send(Event::Renamed { old, new }).await.is_err() {
                    return false;
                }
            }
        }
        if was_alone {
            self.told_queued.remove(room);
        }
        if was_alone && self.current.as_deref() == Some(room) {
            if !self.ready {
                self.ready = true;
                if events.send(Event::Ready).await.is_err() {
                    return false;
                }
            }
            self.publish_pending(events, room).await;
        }
        true
    }

    /// Removes a member; shows a leave line (or the classic disconnect).
    async fn member_left(&mut self, events: &mpsc::Sender<Event>, room: &str, peer: &str) -> bool {
        // Its last lines, still being stored, are shown before it leaves.
        if !self.show_stored(events).await {
            return false;
        }
        let Some(roster) = self.rooms.get_mut(room) else {
            return true;
        };
        let who = roster.display(peer);
        if roster.leave(peer).is_none() {
            return true;
        }
        let never_announced = peer
            .parse::<PeerId>()
            .is_ok_and(|p| self.unannounced.remove(&(room.to_owned(), p)).is_some());
        // Its place is kept (see `Ordering::depart`). Gaps in its lines
        // are not given up on while it is away: its next hello, or another
        // member's, says what to fetch again.
        let order_key = format!("{peer}/{room}");
        self.order.depart(&order_key);
        self.gaps.retain(|(key, _), _| *key != order_key);
        let event = if roster.is_empty() && self.current.as_deref() == Some(room) {
            Event::PeerDisconnected
        } else if never_announced {
            return true;
        } else {
            Event::Left {
                who,
                room: room.to_owned(),
            }
        };
        events.send(event).await.is_ok()
    }

    /// When the current room empties: a peer that connected (and does not
    /// listen) is done, as in the classic mode; a listener waits again.
    async fn end_if_deserted(&mut self, events: &mpsc::Sender<Event>) -> bool {
        let empty = self
            .current
            .as_ref()
            .and_then(|r| self.rooms.get(r))
            .is_none_or(Roster::is_empty);
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

    /// A peer that dialled our listener joined the room we show: the
    /// classic `Peer connected from:` line, and who it is, once, before
    /// anything else of it.
    async fn announce_dialled_in(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: PeerId,
    ) -> bool {
        // In a public room, peers that LAN discovery connected meet as
        // members joining, not as someone who dialled us.
        if self.current.as_deref() != Some(room)
            || is_public(room)
            || self.introduced.contains(&peer)
        {
            return true;
        }
        let Some(from) = self.dialled_in.remove(&peer) else {
            return true;
        };
        events.send(Event::PeerConnected { from }).await.is_ok()
            && self.introduce(events, peer).await
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
        self.adopt_room_of(peer).await;
        self.first_peer = Some(peer);
        self.introduced.remove(&peer);
        if events.send(Event::Connected).await.is_err() || !self.introduce(events, peer).await {
            return false;
        }
        true
    }

    /// The peer the user trusted for `nick`, when `peer` is another one.
    fn trusted_owner(&self, nick: &str, peer: &PeerId) -> Option<PeerId> {
        match self.secure.known.check(Some(&name_label(nick)), peer) {
            Check::Changed {
                previous,
                was_trusted: true,
                ..
            } => Some(previous),
            _ => None,
        }
    }
}

/// Sends events, for the few places that only notify.
struct ChatEvents<'a>(&'a mpsc::Sender<Event>);

impl ChatEvents<'_> {
    async fn show(&self, event: Event) -> bool {
        self.0.send(event).await.is_ok()
    }

    async fn notice(&self, notice: Notice) -> bool {
        self.show(Event::Notice(notice)).await
    }
}

/// The known-peers label of a nick.
fn name_label(nick: &str) -> String {
    format!("name:{nick}")
}

fn own_identity(identity: &Identity) -> Event {
    Event::OwnIdentity {
        peer_id: identity.peer_id().to_string(),
        fingerprint: identity.fingerprint(),
    }
}

fn fingerprint_of(peer: &PeerId) -> String {
    identity::peer_fingerprint(peer).unwrap_or_else(|| "unavailable".into())
}

fn short(fingerprint: &str) -> String {
    crate::chat::room::short_fingerprint(fingerprint)
}

fn unexpected(expected: &str, peer: &PeerId) -> Error {
    Error::UnexpectedPeer {
        expected: crate::chat::sanitize::inert(expected),
        peer: peer.to_string(),
        fingerprint: fingerprint_of(peer),
    }
}

/// Dials the address we connected to until it answers, waiting 1 s, then
/// twice as long each time up to [`MAX_RECONNECT_WAIT`], and says so.
fn spawn_reconnect(
    client: Client,
    target: DialTarget,
    events: mpsc::WeakSender<Event>,
    reconnected: mpsc::Sender<PeerId>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        loop {
            let text = format!(
                "Reconnecting to {target} in {} s (messages you type meanwhile are kept)...",
                wait.as_secs()
            );
            // The task holds no sender of its own: the chat ending closes
            // the front end's queue even while it waits here.
            let Some(events) = events.upgrade() else {
                return;
            };
            if events.send(Event::Info(text)).await.is_err() {
                return;
            }
            drop(events);
            tokio::time::sleep(wait).await;
            let addr = match &target {
                DialTarget::Address(addr) => net::resolve(addr).await,
                DialTarget::Multiaddr(addr) => net::parse_multiaddr(addr),
            };
            if let Ok(addr) = addr {
                if let Ok(peer) = client.dial(&addr).await {
                    let _ = reconnected.send(peer).await;
                    return;
                }
            }
            wait = (wait * 2).min(MAX_RECONNECT_WAIT);
        }
    })
}

/// The error of a store call, if any.
fn store_error<T>(result: Result<Result<T, store::Error>, store::Error>) -> Option<store::Error> {
    match result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) | Err(e) => Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_splits_into_runs_of_one_time() {
        let reply = FetchReply {
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
        assert!(stamped_runs(&FetchReply::default()).is_empty());
    }

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
