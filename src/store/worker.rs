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

use std::io;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, TryLockError};
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::{Checkpointer, Error, History, CHECKPOINT_TICK};

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
///     let new = store.call(move |history| history.insert(&[batch])).await??;
///     assert_eq!(new, [1]);
///     let recent = store.call(|history| history.recent("room:rust", 10)).await??;
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

impl Store {
    /// Moves `history` to a new thread named `store` and returns the
    /// handle to it. The thread ends when every handle is dropped.
    ///
    /// # Errors
    ///
    /// When the operating system cannot start a thread.
    pub fn spawn(history: History) -> io::Result<Store> {
        let (jobs, queue) = mpsc::channel(JOB_QUEUE);
        // Dropped when the store thread ends, which ends the checkpoints.
        let (running, stopped) = std_mpsc::channel::<()>();
        // Without a checkpointer (a history in memory, or a file that could
        // not be opened twice), the writer's own checkpoints keep the log
        // bounded.
        if let Ok(Some(mut checkpointer)) = history.checkpointer() {
            thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || checkpoint(&mut checkpointer, &stopped))?;
        }
        let history = Arc::new(Mutex::new(history));
        let served = Arc::clone(&history);
        thread::Builder::new().name("store".into()).spawn(move || {
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
    pub async fn call<R: Send + 'static>(
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
    pub fn try_now<R>(&self, job: impl FnOnce(&mut History) -> R) -> Option<Result<R, Error>> {
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
    pub async fn submit<R: Send + 'static>(
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
}
