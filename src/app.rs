//! The session owner: one task that runs a chat between a front end and an
//! engine.
//!
//! A front end hands the app a bounded channel of [`Command`]s and takes a
//! bounded channel of [`Event`]s; it never sees a socket. The app drives the
//! engine: it listens or connects, then runs the two directions of a chat
//! concurrently inside one task (`select!` over two futures, no extra
//! spawns), so a peer that is slow to read never stops us from showing what
//! it sends, and the reverse. Both channels are bounded: a fast sender is
//! slowed down by backpressure, never buffered without limit.
//!
//! Input ending (stdin EOF, Ctrl+D) means "nothing more to say": everything
//! queued is sent, our side of the connection is closed, and the chat ends
//! when the peer closes too (or after [`LINGER`]). Shutdown (Ctrl+C, SIGTERM)
//! ends the chat at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};

use crate::chat::{Command, Event, Notice, PeerAddress};
use crate::classic::{self, Incoming, Outgoing, Received, Session};

/// Capacity of the channel of commands from a front end.
pub const COMMAND_QUEUE: usize = 1024;

/// Capacity of the channel of events to a front end. Small, because one
/// event may carry a batch of lines (see [`BATCH_BYTES`]).
pub const EVENT_QUEUE: usize = 64;

/// How long, after our input ended and our side was closed, we keep
/// showing what the peer still sends before we close the connection.
pub const LINGER: Duration = Duration::from_secs(1);

/// At most this many peers are being turned away at once; more are closed
/// without the busy line.
const MAX_TURNING_AWAY: usize = 8;

/// Pause after a failed accept (for example, out of file descriptors) so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Errors that end the app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plain protocol engine failed.
    #[error(transparent)]
    Classic(#[from] classic::Error),
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
    Connect(PeerAddress),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen or connect.
    pub role: Role,
    /// The longest line accepted or sent, in bytes.
    pub max_line: usize,
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

/// Why a chat ended.
enum End {
    /// The peer went away.
    PeerLeft,
    /// Our input ended; the chat was closed after it was delivered.
    InputClosed,
    /// Shutdown was asked for, or the front end is gone.
    Stopped,
}

/// Runs the chat described by `options` until it is over: for a connecting
/// peer when the chat ends, for a listener when input ends or on shutdown.
pub async fn run(
    options: Options,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let config = classic::Config {
        max_line: options.max_line,
        ..classic::Config::default()
    };
    let mut chat = Chat {
        commands: &mut commands,
        events: &events,
        shutdown: &mut shutdown,
    };
    match options.role {
        Role::Connect(addr) => {
            if !chat
                .show(Event::Connecting {
                    to: addr.to_string(),
                })
                .await
            {
                return Ok(());
            }
            let session = tokio::select! {
                session = classic::connect(&addr, config) => session?,
                _ = chat.stopped() => return Ok(()),
            };
            if !chat.show(Event::Connected).await {
                return Ok(());
            }
            chat.run(session, None).await;
            Ok(())
        }
        Role::Listen { port } => {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            let listener = classic::Listener::bind(addr, config).await?;
            if !chat
                .show(Event::Listening {
                    addr: listener.local_addr()?,
                })
                .await
            {
                return Ok(());
            }
            loop {
                if !chat.show(Event::Waiting).await {
                    return Ok(());
                }
                let session = loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(session) => break session,
                            Err(e) => {
                                chat.show(Event::Notice(Notice::ConnectionError(e.to_string()))).await;
                                tokio::time::sleep(ACCEPT_BACKOFF).await;
                            }
                        },
                        _ = chat.stopped() => return Ok(()),
                    }
                };
                if !chat
                    .show(Event::PeerConnected {
                        from: session.peer_addr(),
                    })
                    .await
                {
                    return Ok(());
                }
                match chat.run(session, Some(&listener)).await {
                    End::PeerLeft => continue,
                    End::InputClosed | End::Stopped => return Ok(()),
                }
            }
        }
    }
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

    /// Runs one chat. While it runs, other peers that connect to
    /// `listener` are turned away.
    async fn run(&mut self, session: Session, listener: Option<&classic::Listener>) -> End {
        if !self.show(Event::Ready).await {
            return End::Stopped;
        }
        let (mut incoming, mut outgoing) = session.split();
        let end = self.converse(&mut incoming, &mut outgoing, listener).await;
        if matches!(end, End::PeerLeft) && !self.show(Event::PeerDisconnected).await {
            return End::Stopped;
        }
        end
    }

    /// Both directions of one chat, until it ends.
    async fn converse(
        &mut self,
        incoming: &mut Incoming,
        outgoing: &mut Outgoing,
        listener: Option<&classic::Listener>,
    ) -> End {
        let events = self.events;
        let inbound = receive(incoming, events);
        let outbound = send(outgoing, self.commands, events);
        let turn_away = turn_away_others(listener, events);
        let stopped = stopped(self.shutdown);
        tokio::pin!(inbound, outbound, turn_away, stopped);
        tokio::select! {
            front_end_open = &mut inbound => {
                if front_end_open { End::PeerLeft } else { End::Stopped }
            }
            sent_all = &mut outbound => {
                if sent_all {
                    // Keep showing what the peer still says until it closes.
                    tokio::select! {
                        _ = &mut inbound => {}
                        _ = tokio::time::sleep(LINGER) => {}
                        _ = &mut turn_away => {}
                        _ = &mut stopped => {}
                    }
                    End::InputClosed
                } else {
                    End::PeerLeft
                }
            }
            _ = &mut turn_away => End::Stopped,
            _ = &mut stopped => End::Stopped,
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
async fn receive(incoming: &mut Incoming, events: &mpsc::Sender<Event>) -> bool {
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
            Ok(Received::TooLong { limit }) => Event::Notice(Notice::IncomingTooLong { limit }),
            Ok(Received::Disconnected) => return true,
            Err(e) => {
                return events
                    .send(Event::Notice(Notice::ConnectionError(e.to_string())))
                    .await
                    .is_ok();
            }
        };
        if events.send(event).await.is_err() {
            return false;
        }
    }
}

/// Lines in one event are capped, in count and in bytes, so a front end
/// shows them promptly and the event queue's memory stays small.
const BATCH_LINES: usize = 1024;

/// See [`BATCH_LINES`]; the first line of a batch may exceed it alone.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Collects `first` and the lines already read after it into one event;
/// also returns a notice that stopped the collection, if one did.
fn gather(first: String, incoming: &mut Incoming) -> (Event, Option<Event>) {
    let mut bytes = first.len();
    let mut texts = vec![first];
    let mut after = None;
    while texts.len() < BATCH_LINES && bytes < BATCH_BYTES {
        match incoming.try_next() {
            Some(Received::Message(text)) => {
                bytes += text.len();
                texts.push(text);
            }
            Some(Received::TooLong { limit }) => {
                after = Some(Event::Notice(Notice::IncomingTooLong { limit }));
                break;
            }
            Some(Received::Disconnected) | None => break,
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
/// the input ends (true: all sent and our side closed) or the connection
/// fails (false).
async fn send(
    outgoing: &mut Outgoing,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
) -> bool {
    while let Some(command) = commands.recv().await {
        let mut next = Some(command);
        while let Some(Command::Send(text)) = next {
            match outgoing.queue(&text).await {
                Ok(()) => {}
                Err(classic::Error::MessageTooLong { limit, .. }) => {
                    let _ = events
                        .send(Event::Notice(Notice::OutgoingTooLong { limit }))
                        .await;
                }
                Err(e) => return report_failure(e, events).await,
            }
            next = commands.try_recv().ok();
        }
        if let Err(e) = outgoing.flush().await {
            return report_failure(e, events).await;
        }
    }
    match outgoing.close().await {
        Ok(()) => true,
        Err(e) => report_failure(e, events).await,
    }
}

async fn report_failure(error: classic::Error, events: &mpsc::Sender<Event>) -> bool {
    let _ = events
        .send(Event::Notice(Notice::ConnectionError(error.to_string())))
        .await;
    false
}

/// Turns away every peer that connects while a chat runs. Never returns
/// while the front end is open.
async fn turn_away_others(listener: Option<&classic::Listener>, events: &mpsc::Sender<Event>) {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    let slots = Arc::new(Semaphore::new(MAX_TURNING_AWAY));
    loop {
        let session = match listener.accept().await {
            Ok(session) => session,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let from = session.peer_addr();
        if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
            tokio::spawn(async move {
                session.turn_away().await;
                drop(slot);
            });
        }
        if events
            .send(Event::Notice(Notice::TurnedAway { from }))
            .await
            .is_err()
        {
            return;
        }
    }
}
