//! Running a chat over the plain protocol (`--plain`): the classic mode.
//!
//! Besides the chat itself, a session runs two kinds of task, both owned
//! by [`run`] for the whole session (a listener's chats, one after
//! another): writes to the store, each of which, when the store refuses
//! lines, goes on to write them again until they are stored; and peers
//! being told we are busy. A chat that ends waits for its writes in
//! flight; the session's end ends whatever still runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::tasks::Tasks;
use super::{failure, Chat, End, Error, Inbound, Outbound, Role, SendError};
use crate::chat::delivery::refused::{Counted, Refused};
use crate::chat::{DialTarget, Event, Notice, Received};
use crate::classic::{self, Incoming, Outgoing};
use crate::store::{self, Batch, Status, Store, Written};

impl Counted for Batch {
    fn lines(&self) -> usize {
        self.texts.len()
    }
}

/// Writes to the store in flight at most; past that, the chat waits for
/// the store (memory stays bounded however fast lines come).
const MAX_WRITES_IN_FLIGHT: u32 = 16;

/// Lines of history shown when connecting to a peer talked to before.
const HISTORY_ON_CONNECT: usize = 20;

/// Lines kept back for one write at most.
const WRITE_BATCH: usize = 4096;

/// Lines the store refused are written again this often until they are
/// stored.
const RETRY_REFUSED: Duration = Duration::from_secs(1);

/// At most this many peers are being turned away at once; more are closed
/// without the busy line.
const MAX_TURNING_AWAY: usize = 8;

/// Pause after a failed accept (for example, out of file descriptors) so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub(super) async fn run(
    role: Role,
    max_line: usize,
    store: Option<Store>,
    chat: &mut Chat<'_>,
) -> Result<(), Error> {
    let writes = Arc::new(Mutex::new(Tasks::new()));
    let mut turning_away = Tasks::new();
    let result = run_chats(role, max_line, store, chat, &writes, &mut turning_away).await;
    // What still runs: lines the store refused, being written again, and
    // peers being told we are busy. The session is over, so are they.
    turning_away.shutdown().await;
    let mut writes = std::mem::take(&mut *writes.lock().unwrap_or_else(PoisonError::into_inner));
    writes.shutdown().await;
    result
}

/// The session: connects and chats, or listens and chats with one peer
/// after another. The writes of each chat are started in `writes`, the
/// peers turned away meanwhile are told so in `turning_away`.
async fn run_chats(
    role: Role,
    max_line: usize,
    store: Option<Store>,
    chat: &mut Chat<'_>,
    writes: &Arc<Mutex<Tasks>>,
    turning_away: &mut Tasks,
) -> Result<(), Error> {
    let config = classic::Config {
        max_line,
        ..classic::Config::default()
    };
    match role {
        Role::Connect(target) => {
            let addr = match target {
                DialTarget::Address(addr) => addr,
                DialTarget::Multiaddr(addr) => return Err(Error::MultiaddrInPlainMode(addr)),
            };
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
            if let Some(store) = &store {
                let conversation = format!("plain:{addr}");
                if let Ok(kept) = store.recent(&conversation, HISTORY_ON_CONNECT).await {
                    if !kept.is_empty() {
                        let lines = kept
                            .into_iter()
                            .map(|m| super::history_line(m, "local", None))
                            .collect();
                        if !chat.show(Event::History { lines }).await {
                            return Ok(());
                        }
                    }
                }
            }
            let (incoming, outgoing) = session.split();
            let log = Log::new(
                store,
                addr.to_string(),
                chat.events.downgrade(),
                Arc::clone(writes),
            );
            let (mut incoming, mut outgoing) = log.wrap(incoming, outgoing);
            chat.run(&mut incoming, &mut outgoing, std::future::pending())
                .await;
            incoming.log.flush().await;
            outgoing.log.flush().await;
            incoming.log.settle().await;
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
                let peer = session.peer_addr().to_string();
                let (incoming, outgoing) = session.split();
                let log = Log::new(
                    store.clone(),
                    peer,
                    chat.events.downgrade(),
                    Arc::clone(writes),
                );
                let (mut incoming, mut outgoing) = log.wrap(incoming, outgoing);
                let others = turn_away_others(&listener, chat.events, turning_away);
                let end = chat.run(&mut incoming, &mut outgoing, others).await;
                incoming.log.flush().await;
                outgoing.log.flush().await;
                incoming.log.settle().await;
                match end {
                    End::PeerLeft => continue,
                    End::InputClosed | End::Stopped => return Ok(()),
                }
            }
        }
    }
}

/// What one side of a plain chat said, on its way to the store: lines
/// are gathered and written a batch at a time (when the input runs dry or
/// a batch is full). Plain peers have no identity, so ids are local: this
/// run's session, the side (`local`, or the peer's address) and a count.
/// Lines the store refuses are written again every [`RETRY_REFUSED`]
/// until they are stored, and the user is told when that starts and ends
/// (see [`Refused`]); nothing is acknowledged in the plain mode, so
/// nothing else waits for them.
struct Log {
    store: Option<Store>,
    peer: String,
    author: String,
    outgoing: bool,
    session: u64,
    next_line: u64,
    lines: Vec<String>,
    /// A permit per write in flight, shared by both sides of a chat.
    in_flight: Arc<Semaphore>,
    unstored: Arc<Mutex<Unstored>>,
    /// Where writes start: owned by the session, shared by its chats.
    tasks: Arc<Mutex<Tasks>>,
    /// Weak, so that a write still under way never keeps the front end
    /// open.
    events: mpsc::WeakSender<Event>,
}

/// What the store refused, shared by both sides of a chat and the write
/// that goes on to write it again ([`write_refused`]), while `retrying`.
#[derive(Default)]
struct Unstored {
    refused: Refused<Batch>,
    retrying: bool,
}

/// Writes `batches` (refused before when `again`), takes in the outcome
/// and tells the user what that changed; true when this write must go on
/// to write refused lines again ([`write_refused`]).
async fn write_lines(
    store: &Store,
    batches: Vec<Batch>,
    again: bool,
    unstored: &Mutex<Unstored>,
    events: &mpsc::WeakSender<Event>,
) -> bool {
    let written = store.append(batches).await;
    let (notice, start) = match (written, unstored.lock()) {
        (
            Written {
                batches,
                result: Ok(_),
            },
            Ok(mut unstored),
        ) => {
            let stored = batches.iter().map(|b| b.texts.len()).sum();
            (
                unstored.refused.stored(if again { stored } else { 0 }),
                false,
            )
        }
        // The store thread is gone (it said why), and the lines with it.
        (
            Written {
                result: Err(e @ store::Error::Stopped),
                ..
            },
            Ok(mut unstored),
        ) => (unstored.refused.failed(&failure(&e)), false),
        (
            Written {
                batches,
                result: Err(e),
            },
            Ok(mut unstored),
        ) => {
            let notice = unstored
                .refused
                .refused(&failure(&e), batches.into_iter().map(|b| (b, again)));
            (notice, !std::mem::replace(&mut unstored.retrying, true))
        }
        (_, Err(_)) => (None, false),
    };
    if let (Some(notice), Some(events)) = (notice, events.upgrade()) {
        let _ = events.send(Event::Notice(notice)).await;
    }
    start
}

/// Writes what the store refused again every [`RETRY_REFUSED`], until
/// nothing refused is left (stored, or lost with the store).
async fn write_refused(
    store: Store,
    unstored: Arc<Mutex<Unstored>>,
    events: mpsc::WeakSender<Event>,
) {
    loop {
        tokio::time::sleep(RETRY_REFUSED).await;
        let batches = match unstored.lock() {
            Ok(mut unstored) => {
                let batches = unstored.refused.take();
                unstored.retrying = !batches.is_empty();
                batches
            }
            Err(_) => return,
        };
        if batches.is_empty() {
            return;
        }
        write_lines(&store, batches, true, &unstored, &events).await;
    }
}

impl Log {
    fn new(
        store: Option<Store>,
        peer: String,
        events: mpsc::WeakSender<Event>,
        tasks: Arc<Mutex<Tasks>>,
    ) -> Log {
        Log {
            store,
            author: peer.clone(),
            peer,
            outgoing: false,
            session: super::random_session(),
            next_line: 0,
            lines: Vec::new(),
            in_flight: Arc::new(Semaphore::new(MAX_WRITES_IN_FLIGHT as usize)),
            unstored: Arc::default(),
            tasks,
            events,
        }
    }

    /// Logs for both sides of one chat.
    fn wrap(self, incoming: Incoming, outgoing: Outgoing) -> (Logged<Incoming>, Logged<Outgoing>) {
        let ours = Log {
            store: self.store.clone(),
            peer: self.peer.clone(),
            author: "local".into(),
            outgoing: true,
            session: self.session,
            next_line: 0,
            lines: Vec::new(),
            in_flight: Arc::clone(&self.in_flight),
            unstored: Arc::clone(&self.unstored),
            tasks: Arc::clone(&self.tasks),
            events: self.events.clone(),
        };
        (
            Logged {
                inner: incoming,
                log: self,
            },
            Logged {
                inner: outgoing,
                log: ours,
            },
        )
    }

    fn push(&mut self, text: &str) {
        if self.store.is_some() {
            self.lines.push(text.to_owned());
        }
    }

    /// Writes what was gathered if a write may start now (else it waits
    /// for the next flush).
    fn try_flush(&mut self) {
        if let Ok(slot) = Arc::clone(&self.in_flight).try_acquire_owned() {
            self.write(slot);
        }
    }

    /// Writes what was gathered. Waits only when too many writes are
    /// already in flight.
    async fn flush(&mut self) {
        if self.store.is_none() || self.lines.is_empty() {
            return;
        }
        let Ok(slot) = Arc::clone(&self.in_flight).acquire_owned().await else {
            return;
        };
        self.write(slot);
    }

    fn write(&mut self, slot: tokio::sync::OwnedSemaphorePermit) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let texts = std::mem::take(&mut self.lines);
        let first = self.next_line;
        self.next_line += texts.len() as u64;
        let batch = Batch {
            conversation: format!("plain:{}", self.peer),
            room: None,
            peer: Some(self.peer.clone()),
            author: self.author.clone(),
            session: self.session,
            first_line: first,
            name: None,
            ts_ms: super::now_ms(),
            texts,
            outgoing: self.outgoing,
            status: if self.outgoing {
                Status::Sent
            } else {
                Status::Received
            },
        };
        let (unstored, events) = (Arc::clone(&self.unstored), self.events.clone());
        let write = async move {
            let again = write_lines(&store, vec![batch], false, &unstored, &events).await;
            // The write is done; writing refused lines again is not one
            // in flight.
            drop(slot);
            if again {
                write_refused(store, unstored, events).await;
            }
        };
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(write);
    }

    /// Waits for the writes in flight of both sides of this chat (not for
    /// refused lines written again, which may wait on a full disk).
    async fn settle(&self) {
        // Every permit free again: no write holds one.
        let _ = self.in_flight.acquire_many(MAX_WRITES_IN_FLIGHT).await;
    }
}

/// One side of a plain chat, with its log.
struct Logged<T> {
    inner: T,
    log: Log,
}

impl Inbound for Logged<Incoming> {
    async fn next(&mut self) -> Result<Received, String> {
        self.log.flush().await;
        let received = Inbound::next(&mut self.inner).await;
        if let Ok(Received::Message(text)) = &received {
            self.log.push(text);
        }
        received
    }

    fn try_next(&mut self) -> Option<Received> {
        let received = Inbound::try_next(&mut self.inner);
        if let Some(Received::Message(text)) = &received {
            self.log.push(text);
            if self.log.lines.len() >= WRITE_BATCH {
                self.log.try_flush();
            }
        }
        received
    }
}

impl Outbound for Logged<Outgoing> {
    async fn queue(&mut self, text: &str) -> Result<(), SendError> {
        Outbound::queue(&mut self.inner, text).await?;
        self.log.push(text);
        if self.log.lines.len() >= WRITE_BATCH {
            self.log.flush().await;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        let flushed = Outbound::flush(&mut self.inner).await;
        self.log.flush().await;
        flushed
    }

    async fn close(&mut self) -> Result<(), SendError> {
        Outbound::close(&mut self.inner).await
    }
}

impl Inbound for Incoming {
    async fn next(&mut self) -> Result<Received, String> {
        Incoming::next(self).await.map_err(|e| e.to_string())
    }

    fn try_next(&mut self) -> Option<Received> {
        Incoming::try_next(self)
    }
}

impl Outbound for Outgoing {
    async fn queue(&mut self, text: &str) -> Result<(), SendError> {
        Outgoing::queue(self, text).await.map_err(send_error)
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        Outgoing::flush(self).await.map_err(send_error)
    }

    async fn close(&mut self) -> Result<(), SendError> {
        Outgoing::close(self).await.map_err(send_error)
    }
}

fn send_error(error: classic::Error) -> SendError {
    match error {
        classic::Error::MessageTooLong { limit, .. } => SendError::TooLong { limit },
        other => SendError::Failed(other.to_string()),
    }
}

/// Turns away every peer that connects while a chat runs, each in a task
/// of `tasks`. Never returns while the front end is open.
async fn turn_away_others(
    listener: &classic::Listener,
    events: &mpsc::Sender<Event>,
    tasks: &mut Tasks,
) {
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
            tasks.spawn(async move {
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
