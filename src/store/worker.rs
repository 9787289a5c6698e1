//! The history on a thread of its own, so the chat never waits for SQLite.
//!
//! The app runs on a single-threaded runtime: while it waits, nothing else
//! moves, neither input nor the network. A [`History`] call may take
//! milliseconds (every commit waits for the disk to sync; opening reads the
//! whole file to check it), so the history lives on a thread named `store`
//! that owns it, and the rest of the program holds a [`Store`], a cloneable
//! handle that sends it jobs and awaits their replies on a oneshot
//! channel, as `net::Client` does for the swarm.
//!
//! One thread rather than a pool of blocking tasks: one connection keeps
//! its prepared statements warm and runs jobs one at a time in the order
//! they were sent, so an insert sent before a query is seen by it.
//!
//! Handing a job to another thread costs little on an idle machine, but
//! on a busy one the store thread may wait milliseconds for a CPU, and a
//! line waiting for its outbox write waits with it. So the history sits
//! behind a mutex that the store thread holds only while it runs a job,
//! and [`Store::try_now`] lets the caller run a short write itself, at
//! once, when the store thread is not running one.
//!
//! The job queue is bounded ([`JOB_QUEUE`]). It is a tokio channel rather
//! than `std::sync::mpsc::sync_channel` because a full std channel would
//! block the sender, here the runtime's only thread; with tokio's, a caller
//! that finds the queue full waits asynchronously for room, and the store
//! thread takes jobs with a plain blocking receive.
//!
//! A history kept in a file has a second thread, `checkpoint`, with a
//! [`Checkpointer`]: it moves the log into the database when that is due
//! (looking every [`CHECKPOINT_TICK`]), so that no job waits for that (see
//! the notes of the history module). It ends with the store thread.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::{
    Batch, Checkpointer, Error, History, RoomResume, Run, StoredMessage, Take, Transfer,
    TransferUpdate, CHECKPOINT_TICK,
};

/// How many jobs wait for the store thread before a caller has to wait for
/// room. The app has a handful of calls in flight at most; a longer queue
/// would only hide a store that cannot keep up.
pub const JOB_QUEUE: usize = 64;

/// Work for the store thread: it runs with the history and sends its own
/// reply.
type Job = Box<dyn FnOnce(&mut History) + Send>;

/// A handle to the history running on its own thread. Clones share the
/// thread, which ends (closing the history) once every handle is dropped
/// and the jobs already sent have run.
///
/// Each method says what the chat wants of the history (append lines,
/// mark them delivered, resume a room, read a range); it runs on the
/// store thread, in the order the calls were made.
///
/// ```
/// use rust_p2p_chat::store::{Batch, History, Status, Store};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let store = Store::spawn(History::in_memory()?)?;
///     let batch = Batch {
///         conversation: "room:rust".into(),
///         room: Some("rust".into()),
///         peer: None,
///         author: "bob".into(),
///         session: 1,
///         first_line: 0,
///         name: None,
///         ts_ms: 0,
///         texts: vec!["hello".into()],
///         outgoing: false,
///         status: Status::Received,
///     };
///     let written = store.append(vec![batch]).await;
///     assert_eq!(written.result?, [1]);
///     assert_eq!(written.batches[0].texts, ["hello"]);
///     let recent = store.recent("room:rust", 10).await?;
///     assert_eq!(recent[0].text, "hello");
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    history: Arc<Mutex<History>>,
}

/// How much lower a background store's threads run (a nice value).
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority by [`BACKGROUND_NICE`]; a thread
/// that cannot keeps its own.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority takes no pointer; on Linux, PRIO_PROCESS with
    // 0 names the calling thread alone.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

impl Store {
    /// Moves `history` to a new thread named `store` and returns the
    /// handle to it. The thread ends when every handle is dropped.
    ///
    /// # Errors
    ///
    /// When the operating system cannot start a thread.
    pub fn spawn(history: History) -> io::Result<Store> {
        Self::spawn_with(history, false)
    }

    /// As [`Store::spawn`], with the store's threads at a lower priority
    /// than the chat's: for a chat that shows lines without waiting for
    /// them to be stored (the plain mode), whose writes then take the
    /// processor only when the chat leaves it free.
    ///
    /// # Errors
    ///
    /// As [`Store::spawn`].
    pub fn spawn_in_background(history: History) -> io::Result<Store> {
        Self::spawn_with(history, true)
    }

    fn spawn_with(history: History, background: bool) -> io::Result<Store> {
        let (jobs, queue) = mpsc::channel(JOB_QUEUE);
        // Dropped when the store thread ends, which ends the checkpoints.
        let (running, stopped) = std_mpsc::channel::<()>();
        // Without a checkpointer (a history in memory, or a file that could
        // not be opened twice), the writer's own checkpoints keep the log
        // bounded.
        if let Ok(Some(mut checkpointer)) = history.checkpointer() {
            thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || {
                    if background {
                        lower_priority();
                    }
                    checkpoint(&mut checkpointer, &stopped);
                })?;
        }
        let history = Arc::new(Mutex::new(history));
        let served = Arc::clone(&history);
        thread::Builder::new().name("store".into()).spawn(move || {
            if background {
                lower_priority();
            }
            serve(&served, queue);
            drop(running);
        })?;
        Ok(Store { jobs, history })
    }

    /// Runs `job` on the store thread with the history and returns what it
    /// returns. Jobs run one at a time, in the order they were sent. If
    /// this future is dropped once the job was sent, the job still runs and
    /// its result is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] when the store thread is gone: a job panicked.
    /// Errors of the history itself are in `R`.
    async fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut History) -> R + Send + 'static,
    ) -> Result<R, Error> {
        self.submit(job).await?.await.map_err(|_| Error::Stopped)
    }

    /// Runs `job` here and now, on the calling thread, if the store thread
    /// is not running a job; `None` if it is (then nothing ran). For short
    /// writes only: the caller waits for it, and so does everything else on
    /// its thread. Jobs queued and not started yet run after it, so it must
    /// not depend on them.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] when a job panicked: the store is gone.
    fn try_now<R>(&self, job: impl FnOnce(&mut History) -> R) -> Option<Result<R, Error>> {
        match self.history.try_lock() {
            Ok(mut history) => Some(Ok(job(&mut history))),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(_)) => Some(Err(Error::Stopped)),
        }
    }

    /// Queues `job` and returns where its result will come, without
    /// waiting for it: jobs run in the order they are queued, so a later
    /// [`Store::call`] sees what this one wrote.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] when the store thread is gone.
    async fn submit<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut History) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, Error> {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |history| {
            // The caller may have stopped waiting; the job was done anyway.
            let _ = reply.send(job(history));
        });
        self.jobs.send(job).await.map_err(|_| Error::Stopped)?;
        Ok(result)
    }
}

/// The batches of a write, handed back (not copied) with its outcome.
#[derive(Debug)]
pub struct Written {
    /// The batches, as they were handed in.
    pub batches: Vec<Batch>,
    /// For each batch, how many of its lines were new (see
    /// [`History::insert`]); or why none of them was stored, including
    /// [`Error::Stopped`] when the store thread is gone.
    pub result: Result<Vec<usize>, Error>,
}

/// A write queued on the store thread by [`Store::append_queued`]; await
/// it for its [`Written`]. It always comes, with the batches: a write
/// that can never run (the store thread is gone) ends with
/// [`Error::Stopped`].
#[derive(Debug)]
pub struct PendingWrite {
    done: oneshot::Receiver<Written>,
}

impl Future for PendingWrite {
    type Output = Written;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Written> {
        Pin::new(&mut self.done).poll(cx).map(|written| {
            // A job dropped unrun reports through `WriteJob`, with its
            // batches; only `append_made`'s, dropped before it made them,
            // ends here.
            written.unwrap_or(Written {
                batches: Vec::new(),
                result: Err(Error::Stopped),
            })
        })
    }
}

/// Carries batches through the job that writes them and back. If the job
/// is dropped unrun (the store thread is gone, or the queue closed), they
/// still come back, as not written.
struct WriteJob {
    batches: Vec<Batch>,
    done: Option<oneshot::Sender<Written>>,
}

impl WriteJob {
    fn write(mut self, history: &mut History) {
        let result = history.insert(&self.batches);
        self.send(result);
    }

    fn send(&mut self, result: Result<Vec<usize>, Error>) {
        if let Some(done) = self.done.take() {
            let batches = std::mem::take(&mut self.batches);
            // The caller may have stopped waiting; the write was done anyway.
            let _ = done.send(Written { batches, result });
        }
    }
}

impl Drop for WriteJob {
    fn drop(&mut self) {
        self.send(Err(Error::Stopped));
    }
}

impl Store {
    /// Stores `batches` in one transaction (see [`History::insert`]: lines
    /// already held are not stored again) and hands them back with the
    /// outcome.
    pub async fn append(&self, batches: Vec<Batch>) -> Written {
        self.append_queued(batches).await.await
    }

    /// As [`Store::append`], with the batches made by `make` on the store's
    /// thread: the work of making rows then runs at the store's priority
    /// (lower than the chat's for [`Store::spawn_in_background`]), not the
    /// caller's. If the store thread is gone, nothing is made and the
    /// outcome is [`Error::Stopped`] with no batches.
    pub async fn append_made(&self, make: impl FnOnce() -> Vec<Batch> + Send + 'static) -> Written {
        let (report, done) = oneshot::channel();
        let _ = self
            .submit(move |history| {
                let job = WriteJob {
                    batches: make(),
                    done: Some(report),
                };
                job.write(history);
            })
            .await;
        PendingWrite { done }.await
    }

    /// Queues the write of `batches` and returns at once (once the queue
    /// has room) with where its outcome will come: writes queued one after
    /// the other are done, and their outcomes come, in that order.
    pub async fn append_queued(&self, batches: Vec<Batch>) -> PendingWrite {
        let (report, done) = oneshot::channel();
        let job = WriteJob {
            batches,
            done: Some(report),
        };
        // A job that is not sent reports on drop, as not written.
        let _ = self.submit(move |history| job.write(history)).await;
        PendingWrite { done }
    }

    /// Stores `batches` here and now, on the calling thread, when the store
    /// thread is not running a job, and hands them back with the outcome;
    /// when it is, nothing is written and they come back as `Err`. For
    /// short writes only (everything on the calling thread waits for the
    /// commit), and only when no write queued before must come first:
    /// queued jobs not started yet run after this one.
    ///
    /// # Errors
    ///
    /// The batches, unwritten, when the store thread is busy.
    pub fn append_now(&self, batches: Vec<Batch>) -> Result<Written, Vec<Batch>> {
        match self.try_now(|history| history.insert(&batches)) {
            Some(result) => Ok(Written {
                batches,
                result: result.and_then(|new| new),
            }),
            None => Err(batches),
        }
    }

    /// Our persistent session (see [`History::session`]).
    ///
    /// # Errors
    ///
    /// As [`History::session`], or [`Error::Stopped`].
    pub async fn session(&self) -> Result<u64, Error> {
        self.call(|history| history.session()).await?
    }

    /// The last `limit` lines of `conversation`, oldest first (see
    /// [`History::recent`]).
    ///
    /// # Errors
    ///
    /// As [`History::recent`], or [`Error::Stopped`].
    pub async fn recent(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, Error> {
        let conversation = conversation.to_owned();
        self.call(move |history| history.recent(&conversation, limit))
            .await?
    }

    /// The `limit` lines just before the line `id` (see
    /// [`History::before`]).
    ///
    /// # Errors
    ///
    /// As [`History::before`], or [`Error::Stopped`].
    pub async fn before(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Option<Vec<StoredMessage>>, Error> {
        let id = id.to_owned();
        self.call(move |history| history.before(&id, limit)).await?
    }

    /// The lines held of `author`'s `session` in `conversation` from `from`
    /// up to but not including `to`, as much as `take` allows: what a member catching
    /// up is served (see [`History::range`]).
    ///
    /// # Errors
    ///
    /// As [`History::range`], or [`Error::Stopped`].
    pub async fn read_range(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
        from: u64,
        to: u64,
        take: Take,
    ) -> Result<Vec<Run>, Error> {
        let (conversation, author) = (conversation.to_owned(), author.to_owned());
        self.call(move |history| history.range(&conversation, &author, session, from, to, take))
            .await?
    }

    /// What the chat needs to pick a room up where the store left it (see
    /// [`History::resume_room`]), read in one job.
    ///
    /// # Errors
    ///
    /// As [`History::resume_room`], or [`Error::Stopped`].
    pub async fn resume_room(
        &self,
        conversation: &str,
        me: &str,
        session: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<RoomResume, Error> {
        let (conversation, me) = (conversation.to_owned(), me.to_owned());
        self.call(move |history| history.resume_room(&conversation, &me, session, since_ms, now_ms))
            .await?
    }

    /// Stores a direct message, numbered after the last of its stream, and
    /// returns its number (see [`History::store_direct`]).
    ///
    /// # Errors
    ///
    /// As [`History::store_direct`], or [`Error::Stopped`].
    pub async fn store_direct(&self, batch: Batch) -> Result<u64, Error> {
        self.call(move |history| history.store_direct(batch))
            .await?
    }

    /// A member holds every line of a stream below `next_line`; returns
    /// the mark as it was before (see [`History::mark_delivered_through`]).
    ///
    /// # Errors
    ///
    /// As [`History::mark_delivered_through`], or [`Error::Stopped`].
    pub async fn mark_delivered(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
        next_line: u64,
    ) -> Result<u64, Error> {
        let (conversation, author) = (conversation.to_owned(), author.to_owned());
        self.call(move |history| {
            history.mark_delivered_through(&conversation, &author, session, next_line)
        })
        .await?
    }

    /// Puts our lines of a stream that no member acknowledged back in the
    /// outbox; returns how many (see [`History::requeue_undelivered`]).
    ///
    /// # Errors
    ///
    /// As [`History::requeue_undelivered`], or [`Error::Stopped`].
    pub async fn requeue_undelivered(
        &self,
        conversation: &str,
        author: &str,
        session: u64,
    ) -> Result<u64, Error> {
        let (conversation, author) = (conversation.to_owned(), author.to_owned());
        self.call(move |history| history.requeue_undelivered(&conversation, &author, session))
            .await?
    }

    /// Records a transfer; returns its number and whether it is new (see
    /// [`History::add_transfer`]).
    ///
    /// # Errors
    ///
    /// As [`History::add_transfer`], or [`Error::Stopped`].
    pub async fn add_transfer(&self, transfer: Transfer) -> Result<(u64, bool), Error> {
        self.call(move |history| history.add_transfer(&transfer))
            .await?
    }

    /// Changes a recorded transfer (see [`History::update_transfer`]).
    ///
    /// # Errors
    ///
    /// As [`History::update_transfer`], or [`Error::Stopped`].
    pub async fn update_transfer(&self, number: u64, update: TransferUpdate) -> Result<(), Error> {
        self.call(move |history| history.update_transfer(number, &update))
            .await?
    }

    /// One recorded transfer (see [`History::transfer`]).
    ///
    /// # Errors
    ///
    /// As [`History::transfer`], or [`Error::Stopped`].
    pub async fn transfer(&self, number: u64) -> Result<Option<Transfer>, Error> {
        self.call(move |history| history.transfer(number)).await?
    }

    /// The transfers not yet ended (see
    /// [`History::unfinished_transfers`]).
    ///
    /// # Errors
    ///
    /// As [`History::unfinished_transfers`], or [`Error::Stopped`].
    pub async fn unfinished_transfers(&self) -> Result<Vec<Transfer>, Error> {
        self.call(|history| history.unfinished_transfers()).await?
    }

    /// The transfers recorded (see [`History::transfers`]).
    ///
    /// # Errors
    ///
    /// As [`History::transfers`], or [`Error::Stopped`].
    pub async fn transfers(&self) -> Result<Vec<Transfer>, Error> {
        self.call(|history| history.transfers()).await?
    }

    /// Waits until every job queued before this call has run: what was
    /// handed to the store by then is written (or failed) when it returns.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] when the store thread is gone.
    pub async fn flush(&self) -> Result<(), Error> {
        self.call(|_| ()).await
    }
}

/// The checkpoint thread: checkpoints when due until the store thread
/// ends.
fn checkpoint(checkpointer: &mut Checkpointer, stopped: &std_mpsc::Receiver<()>) {
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_TICK) {
        // A failed checkpoint (a full disk) leaves the log as it was; the
        // writer meets the same trouble in its next commit and reports it.
        let _ = checkpointer.checkpoint_if_due();
    }
}

/// The store thread: runs jobs until every [`Store`] is dropped. A job
/// that panics ends it (and poisons the history, so that
/// [`Store::try_now`] fails too).
fn serve(history: &Mutex<History>, mut queue: mpsc::Receiver<Job>) {
    while let Some(job) = queue.blocking_recv() {
        let Ok(mut history) = history.lock() else {
            return;
        };
        job(&mut history);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use super::*;
    use crate::store::{Batch, Status};

    /// How long a test waits for the store thread before it fails.
    const WAIT: Duration = Duration::from_secs(10);

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn lines(first_line: u64, count: u64) -> Batch {
        Batch {
            conversation: "room:rust".into(),
            room: Some("rust".into()),
            peer: None,
            author: "12D3KooWbob".into(),
            session: 1,
            first_line,
            name: None,
            ts_ms: 0,
            texts: (first_line..first_line + count)
                .map(|n| format!("line {n}"))
                .collect(),
            outgoing: false,
            status: Status::Received,
        }
    }

    #[test]
    fn jobs_run_on_the_store_thread_in_order_with_the_same_history() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let name = store
                .call(|_| thread::current().name().map(str::to_owned))
                .await
                .unwrap();
            assert_eq!(name.as_deref(), Some("store"));

            let other = store.clone();
            let (first, second) = tokio::join!(
                store.call(|history| history.insert(&[lines(0, 10)])),
                other.call(|history| history.insert(&[lines(5, 10)])),
            );
            assert_eq!(first.unwrap().unwrap(), [10]);
            assert_eq!(second.unwrap().unwrap(), [5]);
            let next = store
                .call(|history| history.next_line("room:rust", "12D3KooWbob", 1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(next, 15);
        });
    }

    #[test]
    fn more_calls_than_the_queue_holds_all_complete() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let calls = (0..3 * JOB_QUEUE as u64).map(|n| {
                store.call(move |history| history.insert(&[lines(n * 2, 2)]).map(|new| new[0]))
            });
            let results = futures::future::join_all(calls).await;
            assert!(results.into_iter().all(|r| r.unwrap().unwrap() == 2));
            let stored = store
                .call(|history| history.recent("room:rust", usize::MAX))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stored.len(), 6 * JOB_QUEUE);
        });
    }

    #[test]
    fn a_waiting_call_leaves_the_runtime_free() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let (open, gate) = std_mpsc::channel::<()>();
            // The job holds the store thread until the runtime, which is
            // also awaiting the call, opens the gate.
            let job = store.call(move |_| gate.recv_timeout(WAIT).is_ok());
            let (passed, ()) = tokio::join!(job, async move { open.send(()).unwrap() });
            assert!(passed.unwrap(), "the call blocked the runtime");
        });
    }

    /// Sends on its channel when dropped.
    struct Signal(std_mpsc::Sender<()>);

    impl Drop for Signal {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    thread_local! {
        /// Dropped when the thread that set it ends.
        static ON_EXIT: RefCell<Option<Signal>> = const { RefCell::new(None) };
    }

    #[test]
    fn the_thread_ends_when_the_last_handle_is_dropped() {
        let (signal, ended) = std_mpsc::channel();
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            store
                .call(move |_| ON_EXIT.with(|slot| *slot.borrow_mut() = Some(Signal(signal))))
                .await
                .unwrap();
            let clone = store.clone();
            drop(store);
            // The clone keeps the thread.
            assert_eq!(clone.call(|_| 7).await.unwrap(), 7);
            assert_eq!(
                ended.try_recv(),
                Err(std_mpsc::TryRecvError::Empty),
                "the thread ended early"
            );
            drop(clone);
        });
        assert_eq!(ended.recv_timeout(WAIT), Ok(()));
    }

    #[test]
    fn calls_fail_with_stopped_once_the_thread_is_gone() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let err = store
                .call(|_| -> u8 { panic!("a job failed on purpose") })
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Stopped), "{err:?}");
            assert_eq!(
                err.to_string(),
                "the history store stopped; see the error above"
            );
            let err = store.call(|_| ()).await.unwrap_err();
            assert!(matches!(err, Error::Stopped), "{err:?}");
        });
    }

    fn ours(first_line: u64, count: u64) -> Batch {
        Batch {
            author: "12D3KooWme".into(),
            outgoing: true,
            status: Status::Queued,
            ..lines(first_line, count)
        }
    }

    /// [`Store::append_now`], tried until the store thread is idle: it
    /// replies to a job (or fails it) a moment before it lets go of the
    /// history.
    fn append_now_when_idle(store: &Store, mut batches: Vec<Batch>) -> Written {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match store.append_now(batches) {
                Ok(written) => return written,
                Err(back) if std::time::Instant::now() < deadline => {
                    batches = back;
                    thread::sleep(Duration::from_millis(1));
                }
                Err(_) => panic!("the store thread stayed busy"),
            }
        }
    }

    #[test]
    fn append_hands_the_batches_back_with_what_was_new() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let written = store.append(vec![lines(0, 3), lines(2, 3)]).await;
            assert_eq!(written.result.unwrap(), [3, 2]);
            assert_eq!(written.batches, [lines(0, 3), lines(2, 3)]);

            // Queued writes are done, and report, in order.
            let first = store.append_queued(vec![lines(5, 2)]).await;
            let second = store.append_queued(vec![lines(6, 2)]).await;
            let (first, second) = tokio::join!(first, second);
            assert_eq!(first.result.unwrap(), [2]);
            assert_eq!(second.result.unwrap(), [1]);
            assert_eq!(second.batches, [lines(6, 2)]);

            // Here and now, once the store thread is idle.
            let now = append_now_when_idle(&store, vec![lines(8, 1)]);
            assert_eq!(now.result.unwrap(), [1]);
            let stored = store.recent("room:rust", 100).await.unwrap();
            let numbers: Vec<u64> = stored.iter().map(|m| m.line).collect();
            assert_eq!(numbers, (0..9).collect::<Vec<_>>());
        });
    }

    #[test]
    fn append_now_gives_the_batches_back_while_the_thread_is_busy() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let (started, running) = std_mpsc::channel::<()>();
            let (open, gate) = std_mpsc::channel::<()>();
            let busy = store
                .submit(move |_| {
                    let _ = started.send(());
                    let _ = gate.recv_timeout(WAIT);
                })
                .await
                .unwrap();
            running.recv_timeout(WAIT).unwrap();
            let back = store.append_now(vec![lines(0, 2)]).unwrap_err();
            assert_eq!(back, [lines(0, 2)]);
            open.send(()).unwrap();
            busy.await.unwrap();
            assert!(store.recent("room:rust", 10).await.unwrap().is_empty());
        });
    }

    #[test]
    fn a_write_the_store_cannot_run_comes_back_stopped_with_its_batches() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let _ = store
                .call(|_| -> u8 { panic!("a job failed on purpose") })
                .await;
            let written = store.append(vec![lines(0, 2)]).await;
            assert!(matches!(written.result, Err(Error::Stopped)), "{written:?}");
            assert_eq!(written.batches, [lines(0, 2)]);
            let now = append_now_when_idle(&store, vec![lines(0, 1)]);
            assert!(matches!(now.result, Err(Error::Stopped)), "{now:?}");
            assert!(matches!(store.session().await, Err(Error::Stopped)));
            assert!(matches!(store.flush().await, Err(Error::Stopped)));
        });
    }

    #[test]
    fn named_reads_and_marks_do_what_they_say() {
        runtime().block_on(async {
            let store = Store::spawn(History::in_memory().unwrap()).unwrap();
            let session = store.session().await.unwrap();
            assert_eq!(store.session().await.unwrap(), session, "kept");

            let me = "12D3KooWme";
            store
                .append(vec![lines(0, 4), ours(0, 2), ours(2, 2)])
                .await
                .result
                .unwrap();
            let runs = store
                .read_range("room:rust", "12D3KooWbob", 1, 1, 3, Take::lines(10))
                .await
                .unwrap();
            assert_eq!(runs.len(), 1);
            assert_eq!(runs[0].first_line, 1);
            assert_eq!(runs[0].texts, ["line 1", "line 2"]);

            let resume = store
                .resume_room("room:rust", me, 1, 0, 5_000)
                .await
                .unwrap();
            assert_eq!(resume.next_line, 4);
            assert_eq!(resume.unsent, [ours(0, 2), ours(2, 2)]);
            assert_eq!(resume.delivered_through, 0);
            assert_eq!(resume.joined, 5_000);
            assert_eq!(resume.streams.len(), 2);

            assert_eq!(
                store.mark_delivered("room:rust", me, 1, 3).await.unwrap(),
                0
            );
            assert_eq!(
                store.mark_delivered("room:rust", me, 1, 1).await.unwrap(),
                3
            );
            let statuses: Vec<Status> = store
                .recent("room:rust", 100)
                .await
                .unwrap()
                .iter()
                .filter(|m| m.outgoing)
                .map(|m| m.status)
                .collect();
            assert_eq!(
                statuses,
                [
                    Status::Delivered,
                    Status::Delivered,
                    Status::Delivered,
                    Status::Queued
                ]
            );
            // Line 3 is not acknowledged: its batch is put back.
            assert_eq!(
                store.requeue_undelivered("room:rust", me, 1).await.unwrap(),
                1
            );
            let resume = store
                .resume_room("room:rust", me, 1, 0, 9_000)
                .await
                .unwrap();
            assert_eq!(resume.unsent, [ours(2, 2)]);
            assert_eq!(resume.delivered_through, 3);
            assert_eq!(resume.joined, 5_000);

            let direct = Batch {
                conversation: "peer:12D3KooWbob".into(),
                room: None,
                peer: Some("12D3KooWbob".into()),
                ..ours(99, 1)
            };
            assert_eq!(store.store_direct(direct.clone()).await.unwrap(), 0);
            assert_eq!(store.store_direct(direct).await.unwrap(), 1);
            let kept = store.recent("peer:12D3KooWbob", 10).await.unwrap();
            let kept: Vec<(u64, Status)> = kept.iter().map(|m| (m.line, m.status)).collect();
            assert_eq!(kept, [(0, Status::Delivered), (1, Status::Delivered)]);

            // What was queued before a flush is done when it returns.
            let pending = store.append_queued(vec![lines(4, 1)]).await;
            store.flush().await.unwrap();
            assert_eq!(pending.await.result.unwrap(), [1]);
        });
    }
}
