//! Running a chat over the plain protocol (`--plain`): the classic mode.
//!
//! Besides the chat itself, a session runs two kinds of task, both owned
//! by [`run`] for the whole session (a listener's chats, one after
//! another): each chat's writer of its history ([`Journal`]), with the
//! writes that go on to write again lines the store refused; and peers
//! being told we are busy. A chat that ends waits for its writer to write
//! what it holds; the session's end ends whatever still runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify, Semaphore};

use super::tasks::Tasks;
use super::{failure, Chat, End, Error, Inbound, Outbound, PlainHistory, Role, SendError};
use crate::chat::delivery::refused::{Counted, Refused};
use crate::chat::line::Lines;
use crate::chat::{describe_io, DialTarget, Event, Notice, Received};
use crate::classic::{self, Incoming, Outgoing};
use crate::store::{self, Batch, History, Status, Store, Written};

impl Counted for Batch {
    fn lines(&self) -> usize {
        self.texts.len()
    }
}

/// Bytes of lines waiting for the store at most (both sides of a chat
/// together); past that, the chat waits for the store (memory stays
/// bounded however fast lines come).
pub const MAX_JOURNAL_BYTES: usize = 8 * 1024 * 1024;

/// How long a line waits for others to be written with: the store's work
/// (a transaction, its thread's CPU) comes in one go per this much time,
/// never between a line's arrival and its showing.
const JOURNAL_DELAY: Duration = Duration::from_millis(100);

/// Lines of history shown when connecting to a peer talked to before.
const HISTORY_ON_CONNECT: usize = 20;

/// Lines of one side in one row of the store at most.
const WRITE_BATCH: usize = 4096;

/// Bytes waiting that have the writer write at once, without waiting for
/// [`JOURNAL_DELAY`]: half the bound, so a long flood is written as it
/// comes while a short burst (most of a pasted text) is written after it.
const WRITE_AT_ONCE_BYTES: usize = MAX_JOURNAL_BYTES / 2;

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
    history: Option<PlainHistory>,
    chat: &mut Chat<'_>,
) -> Result<(), Error> {
    let writes = Arc::new(Mutex::new(Tasks::new()));
    let mut turning_away = Tasks::new();
    let mut history = Opening { history };
    let result = run_chats(
        role,
        max_line,
        &mut history,
        chat,
        &writes,
        &mut turning_away,
    )
    .await;
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
    history: &mut Opening,
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
                DialTarget::Invite(_) => return Err(Error::InviteInPlainMode),
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
            let store = history.store(chat).await;
            if let Some(store) = &store {
                let conversation = format!("plain:{addr}");
                if let Ok(kept) = store.recent(&conversation, HISTORY_ON_CONNECT).await {
                    if !kept.is_empty() {
                        let lines = kept
                            .into_iter()
                            .map(|m| super::history_line(m, "local", None))
                            .collect();
                        if !chat.show(Event::History { lines, page: None }).await {
                            return Ok(());
                        }
                    }
                }
            }
            let (incoming, outgoing) = session.split();
            let journal = Journal::start(store, addr.to_string(), chat.events.downgrade(), writes);
            let (mut incoming, mut outgoing) = Journal::wrap(journal, incoming, outgoing);
            chat.run(&mut incoming, &mut outgoing, std::future::pending())
                .await;
            incoming.settle(&mut outgoing).await;
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
                let store = history.store(chat).await;
                let journal = Journal::start(store, peer, chat.events.downgrade(), writes);
                let (mut incoming, mut outgoing) = Journal::wrap(journal, incoming, outgoing);
                let others = turn_away_others(&listener, chat.events, turning_away);
                let end = chat.run(&mut incoming, &mut outgoing, others).await;
                incoming.settle(&mut outgoing).await;
                match end {
                    End::PeerLeft => continue,
                    End::InputClosed | End::Stopped => return Ok(()),
                }
            }
        }
    }
}

/// The plain mode's history, opened when the first chat starts.
struct Opening {
    history: Option<PlainHistory>,
}

impl Opening {
    /// The store, opened now if it was not yet; none without a history,
    /// or when it cannot be opened (the user is told why, once).
    async fn store(&mut self, chat: &mut Chat<'_>) -> Option<Store> {
        if let Some(PlainHistory::Store(store)) = &self.history {
            return Some(store.clone());
        }
        let Some(PlainHistory::Dir(dir)) = self.history.take() else {
            return None;
        };
        let opened = tokio::task::spawn_blocking(move || {
            let history = History::open(&dir).map_err(|e| e.to_string())?;
            Store::spawn_in_background(history)
                .map_err(|e| format!("could not start the history store: {}", describe_io(&e)))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match opened {
            Ok(store) => {
                self.history = Some(PlainHistory::Store(store.clone()));
                Some(store)
            }
            Err(cause) => {
                chat.show(Event::Notice(Notice::HistoryUnavailable(cause)))
                    .await;
                None
            }
        }
    }
}

/// What the store refused, shared by both sides of a chat and the write
/// that goes on to write it again ([`write_refused`]), while `retrying`.
#[derive(Default)]
struct Unstored {
    refused: Refused<Batch>,
    retrying: bool,
}

/// Takes in the outcome of a write (of lines refused before when
/// `again`) and tells the user what that changed; true when this write
/// must go on to write refused lines again ([`write_refused`]).
async fn write_lines(
    written: Written,
    again: bool,
    unstored: &Mutex<Unstored>,
    events: &mpsc::WeakSender<Event>,
) -> bool {
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
        write_lines(store.append(batches).await, true, &unstored, &events).await;
    }
}

/// Both sides' lines of one plain chat on their way to the store.
///
/// A side hands its lines over with [`Journal::hand_over`]: a copy into a queue
/// shared with the chat's writer ([`Journal::write`]), which writes them a
/// transaction at a time, [`JOURNAL_DELAY`] after the first of them or at
/// once when [`WRITE_AT_ONCE_BYTES`] wait, so the store's work never sits
/// between the socket and the screen. Past [`MAX_JOURNAL_BYTES`] a side
/// waits for the writer. Plain peers have no identity, so ids are local:
/// this run's session, the side (`local`, or the peer's address) and a
/// count. Lines the store refuses are written again every
/// [`RETRY_REFUSED`] until they are stored, and the user is told when that
/// starts and ends (see [`Refused`]); nothing is acknowledged in the plain
/// mode, so nothing else waits for them.
#[derive(Clone)]
struct Journal {
    shared: Arc<JournalShared>,
}

struct JournalShared {
    queue: Mutex<Queue>,
    /// The writer has something to do: lines after none, enough to write at
    /// once, or the end of the chat.
    work: Notify,
    /// The writer took lines: there is room again.
    room: Notify,
    /// The writer has written all and ended.
    done: Notify,
}

/// What waits for the writer.
#[derive(Default)]
struct Queue {
    /// The peer's lines, and ours.
    theirs: Lines,
    ours: Lines,
    /// What the lines waiting count for in [`MAX_JOURNAL_BYTES`]...
    bytes: usize,
    /// ... and those the writer is writing.
    writing: usize,
    /// When the oldest line waiting came.
    since: Option<Instant>,
    ended: bool,
    finished: bool,
}

impl Queue {
    fn lines(&self) -> usize {
        self.theirs.len() + self.ours.len()
    }

    /// Takes a side's lines; whether the writer should be woken for them.
    fn add(&mut self, ours: bool, run: &mut Lines) -> bool {
        let before = self.bytes;
        self.bytes += run.bytes();
        let side = if ours {
            &mut self.ours
        } else {
            &mut self.theirs
        };
        side.append(run);
        let first = self.since.is_none();
        self.since.get_or_insert_with(Instant::now);
        let full = self.bytes >= WRITE_AT_ONCE_BYTES && before < WRITE_AT_ONCE_BYTES;
        first || full
    }
}

/// Where a journal's lines go, and its writer's own state.
struct Writer {
    store: Store,
    stamp: Stamp,
    /// The next line number of the peer's side and of ours.
    next: [u64; 2],
    unstored: Arc<Mutex<Unstored>>,
    /// Where the writer and its writes of refused lines run: owned by the
    /// session, shared by its chats.
    tasks: Arc<Mutex<Tasks>>,
    /// Weak, so that a write still under way never keeps the front end
    /// open.
    events: mpsc::WeakSender<Event>,
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// A journal for a chat with `peer`, its writer started in `tasks`;
    /// without a store, lines are not kept.
    fn start(
        store: Option<Store>,
        peer: String,
        events: mpsc::WeakSender<Event>,
        tasks: &Arc<Mutex<Tasks>>,
    ) -> Option<Journal> {
        let store = store?;
        let journal = Journal {
            shared: Arc::new(JournalShared {
                queue: Mutex::new(Queue::default()),
                work: Notify::new(),
                room: Notify::new(),
                done: Notify::new(),
            }),
        };
        let writer = Writer {
            store,
            stamp: Stamp {
                peer,
                session: super::random_session(),
            },
            next: [0, 0],
            unstored: Arc::default(),
            tasks: Arc::clone(tasks),
            events,
        };
        tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(journal.clone().write(writer));
        Some(journal)
    }

    /// Both sides of one chat, with this journal.
    fn wrap(
        journal: Option<Journal>,
        incoming: Incoming,
        outgoing: Outgoing,
    ) -> (Logged<Incoming>, Logged<Outgoing>) {
        (
            Logged {
                inner: incoming,
                journal: journal.clone(),
                held: Lines::default(),
            },
            Logged {
                inner: outgoing,
                journal,
                held: Lines::default(),
            },
        )
    }

    /// Takes a side's lines, waiting only while the queue is full.
    async fn hand_over(&self, ours: bool, run: &mut Lines) {
        if run.is_empty() {
            return;
        }
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut queue = lock(&self.shared.queue);
                if queue.bytes + queue.writing < MAX_JOURNAL_BYTES {
                    if queue.add(ours, run) {
                        self.shared.work.notify_one();
                    }
                    return;
                }
            }
            room.await;
        }
    }

    /// Takes a side's lines without waiting: past the bound by at most
    /// [`HAND_OVER_BYTES`].
    fn hand_over_now(&self, ours: bool, run: &mut Lines) {
        if lock(&self.shared.queue).add(ours, run) {
            self.shared.work.notify_one();
        }
    }

    /// Ends the chat's journal: what waits is written at once, and this
    /// returns once it is (not lines refused and written again, which may
    /// wait on a full disk).
    async fn settle(&self) {
        let done = self.shared.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        {
            let mut queue = lock(&self.shared.queue);
            if queue.finished {
                return;
            }
            queue.ended = true;
        }
        self.shared.work.notify_one();
        done.await;
    }

    /// The writer: waits for lines to be due, writes them, until the chat
    /// ends and all is written.
    async fn write(self, mut writer: Writer) {
        loop {
            let work = self.shared.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            let due = {
                let queue = lock(&self.shared.queue);
                if queue.ended || queue.bytes >= WRITE_AT_ONCE_BYTES {
                    Some(Instant::now())
                } else {
                    queue.since.map(|since| since + JOURNAL_DELAY)
                }
            };
            match due {
                None => {
                    work.await;
                    continue;
                }
                Some(at) if at > Instant::now() => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = work => continue,
                    }
                }
                Some(_) => {}
            }
            let (theirs, ours, ended) = {
                let mut queue = lock(&self.shared.queue);
                let theirs = std::mem::take(&mut queue.theirs);
                let ours = std::mem::take(&mut queue.ours);
                queue.writing = std::mem::take(&mut queue.bytes);
                queue.since = None;
                (theirs, ours, queue.ended)
            };
            // Numbered here, made into rows on the store's thread: a copy
            // of every line, made at the store's lower priority, off the
            // chat's own thread.
            let sides = [(false, theirs), (true, ours)].map(|(ours, run)| {
                let next = &mut writer.next[usize::from(ours)];
                let first = *next;
                *next += run.len() as u64;
                (ours, first, run)
            });
            if sides.iter().any(|(_, _, run)| !run.is_empty()) {
                let stamp = writer.stamp.clone();
                // When the lines were taken, not when the store gets to
                // them.
                let ts_ms = super::now_ms();
                let written = writer
                    .store
                    .append_made(move || {
                        sides
                            .into_iter()
                            .flat_map(|(ours, first, run)| stamp.batches(ours, first, run, ts_ms))
                            .collect()
                    })
                    .await;
                let again = write_lines(written, false, &writer.unstored, &writer.events).await;
                if again {
                    let refused = write_refused(
                        writer.store.clone(),
                        Arc::clone(&writer.unstored),
                        writer.events.clone(),
                    );
                    writer
                        .tasks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .spawn(refused);
                }
            }
            // Written (or kept to be written again): room for more.
            lock(&self.shared.queue).writing = 0;
            self.shared.room.notify_waiters();
            if ended {
                let mut queue = lock(&self.shared.queue);
                if queue.lines() == 0 {
                    queue.finished = true;
                    drop(queue);
                    self.shared.done.notify_waiters();
                    return;
                }
            }
        }
    }
}

/// What a journal's rows say besides their lines.
#[derive(Clone)]
struct Stamp {
    peer: String,
    session: u64,
}

impl Stamp {
    /// One side's lines, numbered from `first`, as rows of at most
    /// [`WRITE_BATCH`] lines.
    fn batches(&self, ours: bool, first: u64, run: Lines, ts_ms: u64) -> Vec<Batch> {
        let mut first = first;
        run.into_batches(WRITE_BATCH)
            .into_iter()
            .map(|texts| {
                let batch = Batch {
                    conversation: format!("plain:{}", self.peer),
                    room: None,
                    peer: Some(self.peer.clone()),
                    author: if ours {
                        "local".into()
                    } else {
                        self.peer.clone()
                    },
                    session: self.session,
                    first_line: first,
                    name: None,
                    ts_ms,
                    outgoing: ours,
                    status: if ours { Status::Sent } else { Status::Received },
                    texts,
                };
                first += batch.texts.len() as u64;
                batch
            })
            .collect()
    }
}

/// Lines a side gathers before handing them over without waiting.
const HAND_OVER_BYTES: usize = 64 * 1024;

/// One side of a plain chat, with its journal (none without a store) and
/// the lines it has not handed over yet.
struct Logged<T> {
    inner: T,
    journal: Option<Journal>,
    held: Lines,
}

impl<T> Logged<T> {
    fn keep(&mut self, text: &str) {
        if self.journal.is_some() {
            self.held.push(text);
        }
    }

    async fn hand_over(&mut self, ours: bool) {
        if let Some(journal) = &self.journal {
            journal.hand_over(ours, &mut self.held).await;
        }
    }
}

impl Logged<Incoming> {
    /// The chat is over: what both sides said is written, and this returns
    /// once it is (`outgoing` hands its lines over first).
    async fn settle(&mut self, outgoing: &mut Logged<Outgoing>) {
        outgoing.hand_over(true).await;
        self.hand_over(false).await;
        if let Some(journal) = &self.journal {
            journal.settle().await;
        }
    }
}

impl Inbound for Logged<Incoming> {
    async fn next(&mut self) -> Result<Received, String> {
        // Called when what was read is used up: a moment to hand it over.
        self.hand_over(false).await;
        let received = Inbound::next(&mut self.inner).await;
        if let Ok(Received::Message(text)) = &received {
            self.keep(text);
        }
        received
    }

    fn try_next(&mut self) -> Option<Received> {
        let received = Inbound::try_next(&mut self.inner);
        if let Some(Received::Message(text)) = &received {
            self.keep(text);
            if self.held.bytes() >= HAND_OVER_BYTES {
                if let Some(journal) = &self.journal {
                    journal.hand_over_now(false, &mut self.held);
                }
            }
        }
        received
    }
}

impl Outbound for Logged<Outgoing> {
    async fn queue(&mut self, text: &str) -> Result<(), SendError> {
        Outbound::queue(&mut self.inner, text).await?;
        self.keep(text);
        if self.held.bytes() >= HAND_OVER_BYTES {
            self.hand_over(true).await;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        let flushed = Outbound::flush(&mut self.inner).await;
        self.hand_over(true).await;
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
