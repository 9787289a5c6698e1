//! The session owner: one task that runs a chat between a front end and an
//! engine.
//!
//! A front end hands the app a bounded channel of [`Command`]s and takes a
//! bounded channel of [`Event`]s; it never sees a socket. The app drives an
//! engine (the plain protocol in `plain`, the secure one in `secure`):
//! it listens or connects, then runs the two directions of a chat
//! concurrently inside one task (`select!` over two futures, no extra
//! spawns), so a peer that is slow to read never stops us from showing what
//! it sends, and the reverse. Both channels are bounded: a fast sender is
//! slowed down by backpressure, never buffered without limit. The chat loop
//! is written once, over the `Inbound` and `Outbound` halves that both
//! engines provide.
//!
//! Input ending (stdin EOF, Ctrl+D) means "nothing more to say", not "stop
//! listening": everything queued is sent, our side of the connection is
//! closed, and what the peer still sends is shown until it closes too (the
//! secure engine instead waits for acknowledgements, at most [`LINGER`]).
//! Input that was already over, with nothing in it, when a chat began
//! (`</dev/null`) closes nothing: that side only listens. A peer reads our
//! close as "gone" and ends its chat, so closing first would cut off a peer
//! that has not yet said anything. Shutdown (Ctrl+C, SIGTERM) ends the chat
//! at once.

mod plain;
mod secure;
mod tasks;
mod trim;

pub use trim::one_heap;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::chat::event::YOU;
use crate::chat::line;
use crate::chat::room::Roster;
use crate::chat::{Command, DialTarget, Event, HistoryLine, KeptLine, Notice, Received};
use crate::identity::Identity;
use crate::store::{KnownPeers, RoomKeys, Store, StoredMessage};
use crate::{classic, identity, net, store};

pub use secure::{FileOptions, Secure};
pub use tasks::Tasks;

/// Capacity of the channel of commands from a front end. A command is a
/// typed line, or the lines of one read of a pipe (under 64 KiB, or one
/// line up to `--max-line`, or a piece of a longer one), so what waits is
/// bounded in bytes too. Few: a paste of long lines waits here, and a
/// few reads of a pipe are enough to keep the chat busy.
pub const COMMAND_QUEUE: usize = 4;

/// Capacity of the channel of events to a front end. Small, because one
/// event may carry a batch of lines (see [`BATCH_BYTES`]).
pub const EVENT_QUEUE: usize = 64;

/// How long the secure engine, once our input ended, waits for what we
/// sent to be acknowledged before it ends the chat.
pub const LINGER: Duration = Duration::from_secs(1);

/// A peer that has not taken what we send for this long is reported slow.
pub const SLOW_AFTER: Duration = Duration::from_secs(5);

/// A peer that has not taken what we send for this long is dropped.
pub const DROP_AFTER: Duration = Duration::from_secs(30);

/// Lines in one event are capped, in count and in bytes, so a front end
/// shows them promptly and the event queue's memory stays small.
const BATCH_LINES: usize = 1024;

/// See `BATCH_LINES`; the first line of a batch may exceed it alone.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Errors that end the app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plain protocol engine failed.
    #[error(transparent)]
    Classic(#[from] classic::Error),
    /// The secure engine failed.
    #[error(transparent)]
    Net(#[from] net::Error),
    /// Our identity could not be loaded.
    #[error(transparent)]
    Identity(#[from] identity::Error),
    /// The known peers could not be read.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The peer is not who `--expect` named.
    #[error("refusing {peer} (fingerprint {fingerprint}): expected {expected}")]
    UnexpectedPeer {
        /// What the user expected.
        expected: String,
        /// Who answered.
        peer: String,
        /// Its fingerprint.
        fingerprint: String,
    },
    /// Our input ended, but some of our lines were never acknowledged
    /// and the wait for them made no progress for too long.
    #[error("{lines} line(s) were not acknowledged by anyone after {seconds} s without progress; they stay queued and are sent on the next run")]
    Undelivered {
        /// Lines not acknowledged.
        lines: u64,
        /// How long the wait made no progress.
        seconds: u64,
    },
    /// An option's value is not valid.
    #[error("{0}")]
    Usage(String),
    /// The private room admits only those who hold its key.
    #[error("#{0} is by invitation: ask a member for an invite")]
    ByInvitation(String),
    /// A member removed us from the room.
    #[error("you were removed from #{room} by {by}")]
    Removed {
        /// The room.
        room: String,
        /// Who removed us.
        by: String,
    },
    /// A member said we were removed from the room.
    #[error("you were removed from #{0}")]
    RemovedFrom(String),
    /// The system gave no randomness for a new room's key.
    #[error("the system gives no randomness for a room key: {0}")]
    NoRandomness(String),
    /// The invite given has expired.
    #[error("this invite expired at {at} (UTC): ask a member for a new one")]
    InviteExpired {
        /// When, as the history shows times.
        at: String,
    },
    /// An invite was given with the plain protocol.
    #[error(
        "an invite joins a private room, which the plain protocol does not have: leave out --plain"
    )]
    InviteInPlainMode,
    /// A multiaddr was given with the plain protocol.
    #[error(
        "'{0}' is a multiaddr, which only the secure protocol dials: give HOST:PORT with --plain"
    )]
    MultiaddrInPlainMode(String),
}

/// Who starts the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Listen on `0.0.0.0:port` and chat with whoever connects, one peer
    /// after another.
    Listen {
        /// The port; 0 lets the system choose.
        port: u16,
    },
    /// Connect to a peer, chat, and end when the chat ends.
    Connect(DialTarget),
}

/// Where the plain mode keeps its history.
pub enum PlainHistory {
    /// A store already running.
    Store(Store),
    /// The history in this data directory, opened (with its store's
    /// threads in the background) when the first chat starts: a listener
    /// that nobody reaches never loads it, and stays as small as one
    /// without a history.
    Dir(std::path::PathBuf),
}

/// Which protocol to speak.
pub enum Protocol {
    /// The classic plain protocol: one line per message over TCP, kept
    /// in a history when one is given.
    Plain(Option<PlainHistory>),
    /// The secure protocol on libp2p.
    Secure(Box<Secure>),
}

impl Protocol {
    /// The secure protocol with our identity and memory of peers, in
    /// `room` by default.
    pub fn secure(
        identity: Identity,
        known: KnownPeers,
        room_keys: RoomKeys,
        room: String,
        store: Store,
    ) -> Self {
        Protocol::Secure(Box::new(Secure {
            identity,
            known,
            room_keys,
            expect: None,
            nick: None,
            room,
            mdns: true,
            also_listen: None,
            store,
            sync_window: DEFAULT_SYNC_WINDOW,
            relays: Vec::new(),
            files: FileOptions::default(),
            echo_own: false,
        }))
    }
}

/// How far back members reconcile room history when they meet, unless
/// told otherwise: a week.
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

impl Protocol {
    /// Whether this is the plain protocol.
    pub fn is_plain(&self) -> bool {
        matches!(self, Protocol::Plain(_))
    }
}

/// What to run.
pub struct Options {
    /// Listen or connect.
    pub role: Role,
    /// The longest line accepted or sent, in bytes.
    pub max_line: usize,
    /// The protocol.
    pub protocol: Protocol,
}

impl Options {
    /// The longest line sent as one: `max_line`, and in the secure mode
    /// at most a room line ([`net::MAX_ROOM_LINE`]). A longer one goes out
    /// in pieces of this many bytes at most.
    pub fn longest_sent(&self) -> usize {
        if self.protocol.is_plain() {
            self.max_line
        } else {
            self.max_line.min(net::MAX_ROOM_LINE)
        }
    }
}

/// Asks the app to stop; cloned into whatever may need to (signal handler,
/// a front end on Ctrl+C).
#[derive(Debug, Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Shutdown {
    /// A new shutdown switch and the receiver the app watches.
    pub fn new() -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Self(Arc::new(tx)), rx)
    }

    /// Tells the app to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// Runs the chat described by `options` until it is over: for a connecting
/// peer when the chat ends, for a listener when input ends or on shutdown.
pub async fn run(
    options: Options,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut chat = Chat {
        commands: &mut commands,
        events: &events,
        shutdown: &mut shutdown,
    };
    match options.protocol {
        Protocol::Plain(history) => {
            plain::run(options.role, options.max_line, history, &mut chat).await
        }
        Protocol::Secure(secure) => {
            secure::run(options.role, options.max_line, *secure, &mut chat).await
        }
    }
}

/// Why a chat ended.
enum End {
    /// The peer went away.
    PeerLeft,
    /// Our input ended, what it held was delivered, and then the peer
    /// closed too.
    InputClosed,
    /// Shutdown was asked for, or the front end is gone.
    Stopped,
}

/// The receiving half of a chat, whatever the engine.
trait Inbound {
    /// What the peer sends next; an error is shown and ends the chat.
    async fn next(&mut self) -> Result<Received, String>;
    /// What is already read, without waiting.
    fn try_next(&mut self) -> Option<Received>;
}

/// Why a message was not sent.
enum SendError {
    /// Over the limit: not sent, the chat goes on.
    TooLong { limit: usize },
    /// The connection failed.
    Failed(String),
}

/// The sending half of a chat, whatever the engine.
trait Outbound {
    async fn queue(&mut self, text: &str) -> Result<(), SendError>;
    async fn flush(&mut self) -> Result<(), SendError>;
    async fn close(&mut self) -> Result<(), SendError>;
}

/// The app's side of the front-end channels, borrowed for one run.
struct Chat<'a> {
    commands: &'a mut mpsc::Receiver<Command>,
    events: &'a mpsc::Sender<Event>,
    shutdown: &'a mut watch::Receiver<bool>,
}

impl Chat<'_> {
    /// Shows an event; false when the front end is gone.
    async fn show(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Resolves when shutdown is asked for.
    async fn stopped(&mut self) {
        stopped(self.shutdown).await
    }

    /// Runs one chat. While it runs, `others` turns away other peers.
    async fn run(
        &mut self,
        incoming: &mut impl Inbound,
        outgoing: &mut impl Outbound,
        others: impl Future<Output = ()>,
    ) -> End {
        if !self.show(Event::Ready).await {
            return End::Stopped;
        }
        let end = self.converse(incoming, outgoing, others).await;
        if matches!(end, End::PeerLeft | End::InputClosed)
            && !self.show(Event::PeerDisconnected).await
        {
            return End::Stopped;
        }
        end
    }

    /// Both directions of one chat, until it ends.
    async fn converse(
        &mut self,
        incoming: &mut impl Inbound,
        outgoing: &mut impl Outbound,
        others: impl Future<Output = ()>,
    ) -> End {
        let events = self.events;
        let inbound = receive(incoming, events);
        let outbound = send(outgoing, self.commands, events);
        let stopped = stopped(self.shutdown);
        tokio::pin!(inbound, outbound, others, stopped);
        // In order: a stop asked for wins; then our side's end, so that a
        // chat whose input had ended and whose peer left in the same turn
        // ends as a chat without input does, not as one waiting for the
        // next peer (a listener that opens its history as the peer comes
        // may find both already done).
        tokio::select! {
            biased;
            _ = &mut stopped => End::Stopped,
            sent_all = &mut outbound => {
                if !sent_all {
                    return End::PeerLeft;
                }
                // A half-closed chat: keep showing what the peer says, for
                // as long as it takes, until it closes too.
                tokio::select! {
                    front_end_open = &mut inbound => {
                        if front_end_open { End::InputClosed } else { End::Stopped }
                    }
                    _ = &mut others => End::Stopped,
                    _ = &mut stopped => End::Stopped,
                }
            }
            front_end_open = &mut inbound => {
                if front_end_open { End::PeerLeft } else { End::Stopped }
            }
            _ = &mut others => End::Stopped,
        }
    }
}

/// Resolves when shutdown is asked for.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            // The switch is gone, so nobody can ask any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Shows what the peer sends until it disconnects. Returns false when the
/// front end is gone. Lines that arrived together go out as one
/// [`Event::Messages`], so a flood costs one event per read, not per line.
async fn receive(incoming: &mut impl Inbound, events: &mpsc::Sender<Event>) -> bool {
    loop {
        let event = match incoming.next().await {
            Ok(Received::Message(text)) => {
                let (event, after) = gather(text, incoming);
                if events.send(event).await.is_err() {
                    return false;
                }
                match after {
                    Some(event) => event,
                    None => continue,
                }
            }
            Ok(Received::Disconnected) => return true,
            Ok(other) => match notice_for(other) {
                Some(event) => event,
                None => continue,
            },
            Err(e) => {
                return events
                    .send(Event::Notice(Notice::ConnectionError(e)))
                    .await
                    .is_ok();
            }
        };
        if events.send(event).await.is_err() {
            return false;
        }
    }
}

/// The notice for something received that is not a message.
fn notice_for(received: Received) -> Option<Event> {
    let notice = match received {
        Received::TooLong { limit } => Notice::IncomingTooLong { limit },
        Received::Malformed => Notice::Malformed,
        Received::Busy => Notice::PeerBusy,
        Received::Message(_) | Received::Disconnected => return None,
    };
    Some(Event::Notice(notice))
}

/// Collects `first` and the lines already read after it into one event;
/// also returns a notice that stopped the collection, if one did.
fn gather(first: String, incoming: &mut impl Inbound) -> (Event, Option<Event>) {
    let mut bytes = first.len();
    let mut texts = vec![first];
    let mut after = None;
    while texts.len() < BATCH_LINES && bytes < BATCH_BYTES {
        match incoming.try_next() {
            Some(Received::Message(text)) => {
                bytes += text.len();
                texts.push(text);
            }
            Some(other) => {
                after = notice_for(other);
                break;
            }
            None => break,
        }
    }
    let event = match texts.pop() {
        Some(text) if texts.is_empty() => Event::Message { text },
        Some(last) => {
            texts.push(last);
            Event::Messages { texts }
        }
        None => Event::Messages { texts },
    };
    (event, after)
}

/// Sends what the user types, flushing whenever the input runs dry, until
/// the input ends (true: all sent and our side closed, or left open when
/// there was never anything to send) or the connection fails or stalls
/// (false).
async fn send(
    outgoing: &mut impl Outbound,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
) -> bool {
    if commands.is_closed() && commands.is_empty() {
        // Nothing was, or ever will be, said on this side. Our close would
        // end the peer's chat (it reads it as "gone"), perhaps before it has
        // said what we are here to receive, so leave our side open.
        return true;
    }
    while let Some(command) = commands.recv().await {
        let mut next = Some(command);
        while let Some(command) = next {
            for line in command.texts() {
                if let Err(e) = queue(outgoing, line, events).await {
                    return report_failure(e, events).await;
                }
            }
            next = commands.try_recv().ok();
        }
        if let Err(e) = unstalled(outgoing.flush(), events).await {
            return report_failure(describe_send(e), events).await;
        }
    }
    match unstalled(outgoing.close(), events).await {
        Ok(()) => true,
        Err(e) => report_failure(describe_send(e), events).await,
    }
}

/// Queues one line to send; a line over the limit goes in pieces.
/// An error when the connection failed or stalled.
async fn queue(
    outgoing: &mut impl Outbound,
    line: &str,
    events: &mpsc::Sender<Event>,
) -> Result<(), String> {
    match unstalled(outgoing.queue(line), events).await {
        Ok(()) => Ok(()),
        Err(SendError::TooLong { limit }) => {
            // A whole line over the limit (typed at the terminal): nothing
            // typed is dropped, it goes in pieces.
            let _ = events
                .send(Event::Notice(Notice::OutgoingInPieces { limit }))
                .await;
            for piece in line::pieces(line, limit) {
                match unstalled(outgoing.queue(piece), events).await {
                    Ok(()) | Err(SendError::TooLong { .. }) => {}
                    Err(SendError::Failed(e)) => return Err(e),
                }
            }
            Ok(())
        }
        Err(SendError::Failed(e)) => Err(e),
    }
}

/// Runs a send step; if the peer has not taken our data after
/// [`SLOW_AFTER`], says so, and gives up after [`DROP_AFTER`].
async fn unstalled(
    step: impl Future<Output = Result<(), SendError>>,
    events: &mpsc::Sender<Event>,
) -> Result<(), SendError> {
    tokio::pin!(step);
    // Most steps (a line into a buffer with room) are done at once: they
    // need no timer, which would read the clock for every line.
    if let Poll::Ready(result) =
        std::future::poll_fn(|cx| Poll::Ready(step.as_mut().poll(cx))).await
    {
        return result;
    }
    if let Ok(result) = tokio::time::timeout(SLOW_AFTER, &mut step).await {
        return result;
    }
    let _ = events
        .send(Event::Notice(Notice::PeerSlow {
            seconds: SLOW_AFTER.as_secs(),
        }))
        .await;
    match tokio::time::timeout(DROP_AFTER - SLOW_AFTER, &mut step).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Failed(format!(
            "the peer read nothing for {} s; dropped it",
            DROP_AFTER.as_secs()
        ))),
    }
}

fn describe_send(error: SendError) -> String {
    match error {
        SendError::TooLong { limit } => format!("message over the {limit}-byte limit"),
        SendError::Failed(e) => e,
    }
}

async fn report_failure(error: String, events: &mpsc::Sender<Event>) -> bool {
    let _ = events
        .send(Event::Notice(Notice::ConnectionError(error)))
        .await;
    false
}

/// Milliseconds since 1970 by our clock.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A session number that differs between runs: the clock's nanoseconds
/// mixed with the process ID. It only has to differ, not be secret.
pub(super) fn random_session() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// What the delivery core is told of a store error.
pub(super) fn failure(error: &store::Error) -> crate::chat::delivery::Failure {
    crate::chat::delivery::Failure {
        disk_full: matches!(error, store::Error::DiskFull { .. }),
        cause: error.to_string(),
    }
}

/// When a line of history was written, as it is shown: `YYYY-MM-DD HH:MM`
/// in UTC.
pub(super) fn history_when(ts_ms: u64) -> String {
    let stamp = store::rfc3339(ts_ms);
    stamp.get(..16).unwrap_or(&stamp).replace('T', " ")
}

/// A stored line as `/history` and the start show it. An author who is in
/// `room` now is named as its live lines name it (`Peer` in a chat of two),
/// so one sender does not go by two names on one screen; anyone else by
/// the nick it had, or its short fingerprint.
pub(super) fn history_line(message: StoredMessage, me: &str, room: Option<&Roster>) -> HistoryLine {
    let when = history_when(message.ts_ms);
    let present = room.filter(|roster| roster.contains(&message.author));
    let from = if message.author == me {
        YOU.to_owned()
    } else if message.conversation.starts_with("plain:") {
        "Peer".to_owned()
    } else if let Some(roster) = present {
        roster.display(&message.author)
    } else {
        message.name.clone().unwrap_or_else(|| {
            // As the room shows it: by the short fingerprint.
            message
                .author
                .parse()
                .ok()
                .and_then(|peer| identity::peer_fingerprint(&peer))
                .map_or_else(
                    || "Peer".to_owned(),
                    |fp| format!("Peer-{}", crate::chat::room::short_fingerprint(&fp)),
                )
        })
    };
    let status = message.outgoing.then(|| message.status.as_str().to_owned());
    let fingerprint = message
        .author
        .parse()
        .ok()
        .and_then(|peer| identity::peer_fingerprint(&peer));
    HistoryLine {
        when,
        from,
        text: message.text,
        status,
        kept: Some(KeptLine {
            id: message.id,
            room: message.room,
            author: message.author,
            fingerprint,
            ts_ms: message.ts_ms,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::room::Member;
    use crate::store::Status;

    fn received(author: &str, name: Option<&str>) -> StoredMessage {
        StoredMessage {
            id: "id".into(),
            conversation: "room:lobby".into(),
            room: Some("lobby".into()),
            peer: None,
            author: author.into(),
            session: 1,
            line: 0,
            name: name.map(String::from),
            ts_ms: 0,
            text: "hello".into(),
            outgoing: false,
            status: Status::Received,
        }
    }

    #[test]
    fn history_names_a_sender_as_its_live_lines_do() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_string();
        let fingerprint = identity::peer_fingerprint(&peer.parse().unwrap()).unwrap();
        let mut room = Roster::default();
        room.join(
            &peer,
            Member {
                nick: None,
                fingerprint: fingerprint.clone(),
                impostor: false,
            },
        );
        // Alone with us, an unnamed member's live lines read `Peer: ...`.
        assert_eq!(room.display(&peer), "Peer");
        let line = history_line(received(&peer, None), "me", Some(&room));
        assert_eq!(line.from, "Peer");
        // Gone, it is told apart by its fingerprint, as fetched lines are.
        let short = crate::chat::room::short_fingerprint(&fingerprint);
        let line = history_line(received(&peer, None), "me", Some(&Roster::default()));
        assert_eq!(line.from, format!("Peer-{short}"));
        // Gone, a nick it had is kept.
        let line = history_line(received(&peer, Some("bob")), "me", None);
        assert_eq!(line.from, "bob");
        let ours = StoredMessage {
            outgoing: true,
            status: Status::Sent,
            ..received("me", None)
        };
        assert_eq!(history_line(ours, "me", Some(&room)).from, YOU);
    }
}
