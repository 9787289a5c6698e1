//! The tasks a session starts, and their owner.
//!
//! A task spawned with a bare `tokio::spawn` belongs to nobody: it runs on
//! after the session that started it, holding what it captured (a store
//! handle, a network client that keeps the engine alive, a permit), until
//! the runtime itself goes. The plain chat starts its tasks through a
//! [`Tasks`] instead (the secure chat keeps its own `JoinSet`s, whose
//! results it reads), owned by whatever it works for (a session, a chat,
//! an acceptor of streams): dropping the owner aborts what still runs, and
//! [`Tasks::shutdown`] ends them and waits until they have.
//!
//! It is a [`JoinSet`] that also forgets the tasks that have finished each
//! time one is started, so a session that starts a task per fetch or per
//! write, for hours, holds only the ones still running. An acceptor that
//! starts a task per incoming stream owns a `Tasks` of its own inside its
//! task: aborting the acceptor drops that set, which aborts the streams'
//! tasks with it.
//!
//! It lives in `app`, not in an engine: both engines' sessions use it, and
//! an engine owns its own tasks with a [`JoinSet`] directly (see
//! `net::Client`).

use std::future::Future;

use tokio::task::JoinSet;

/// Tasks owned together; dropping the set aborts every one still running.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rust_p2p_chat::app::Tasks;
///
/// let mut tasks = Tasks::new();
/// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
/// tasks.spawn(async move {
///     // Runs until its owner ends it: the sender is dropped only then.
///     std::future::pending::<()>().await;
///     drop(tx);
/// });
/// tasks.shutdown().await;
/// assert!(rx.await.is_err(), "the task was ended, and what it held dropped");
/// assert!(tasks.is_empty());
/// # });
/// ```
#[derive(Debug, Default)]
pub struct Tasks {
    set: JoinSet<()>,
}

impl Tasks {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `task` on the current runtime, owned by this set. Tasks that
    /// have finished are forgotten first. A task that panicked is forgotten
    /// like one that returned: the panic was already reported, and one
    /// task's failure is not its owner's.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        while self.set.try_join_next().is_some() {}
        self.set.spawn(task);
    }

    /// Tasks started and not yet known to have finished.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no task is known to be running.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Waits until every task has finished on its own.
    pub async fn wait(&mut self) {
        while self.set.join_next().await.is_some() {}
    }

    /// Aborts every task and waits until each has ended (dropping what it
    /// held), so that on return nothing this set started still runs.
    pub async fn shutdown(&mut self) {
        self.set.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    /// Generous: only a broken owner comes near it.
    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn dropping_the_owner_ends_its_tasks() {
        let mut tasks = Tasks::new();
        let (held, released) = oneshot::channel::<()>();
        tasks.spawn(async move {
            std::future::pending::<()>().await;
            drop(held);
        });
        assert_eq!(tasks.len(), 1);
        drop(tasks);
        let ended = tokio::time::timeout(WAIT, released).await;
        assert!(
            matches!(ended, Ok(Err(_))),
            "the task still held its sender"
        );
    }

    #[tokio::test]
    async fn finished_tasks_are_forgotten_when_another_starts() {
        let mut tasks = Tasks::new();
        for _ in 0..100 {
            tasks.spawn(async {});
            tokio::task::yield_now().await;
        }
        // Each spawn forgot the ones before it that had run.
        assert!(tasks.len() <= 2, "{} tasks kept", tasks.len());
        tokio::time::timeout(WAIT, tasks.wait())
            .await
            .expect("finished tasks are waited for at once");
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn a_task_that_panics_is_its_own_failure() {
        let mut tasks = Tasks::new();
        tasks.spawn(async { panic!("a task's own bug") });
        tokio::time::timeout(WAIT, tasks.wait())
            .await
            .expect("a panicked task counts as finished");
        tasks.spawn(async {});
        tokio::time::timeout(WAIT, tasks.wait())
            .await
            .expect("the set still works");
    }
}
