use std::sync::atomic::Ordering;

use super::super::checkpoint::{DROP_STEP, KEEP_CACHED};
use super::*;

#[test]
fn a_checkpoint_is_due_after_enough_text_or_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let mut checkpointer = history.checkpointer().unwrap().expect("a file in WAL mode");
    history.insert(&[numbered(ME, 1, 0..10)]).unwrap();
    assert!(!checkpointer.checkpoint_if_due().unwrap(), "a few lines");
    let line = "x".repeat(1024);
    let lines = vec![line.as_str(); 1024];
    let mut first = 10;
    while history.unchecked.load(Ordering::Relaxed) < CHECKPOINT_BYTES {
        history.insert(&[batch(ME, 1, first, &lines)]).unwrap();
        first += 1024;
    }
    assert!(checkpointer.checkpoint_if_due().unwrap(), "enough text");
    assert_eq!(history.unchecked.load(Ordering::Relaxed), 0);
    assert!(!checkpointer.checkpoint_if_due().unwrap(), "just done");
    checkpointer.last -= CHECKPOINT_INTERVAL;
    assert!(checkpointer.checkpoint_if_due().unwrap(), "long enough");
}

#[test]
fn checkpoints_let_go_of_the_cache_of_all_but_the_newest_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let mut checkpointer = history.checkpointer().unwrap().expect("a file in WAL mode");
    assert_eq!(checkpointer.cached_from, 0, "a new file");
    let line = "y".repeat(1023);
    let lines = vec![line.as_str(); 1024];
    let mut first = 0;
    let mut size = 0;
    // A file grown until three steps were let go, with every line
    // checkpointed as it goes (each batch adds about 1 MiB).
    let most = (KEEP_CACHED + 6 * DROP_STEP) / (1024 * 1024);
    for _ in 0..most {
        if checkpointer.cached_from >= 3 * DROP_STEP {
            break;
        }
        history.insert(&[batch(ME, 1, first, &lines)]).unwrap();
        first += 1024;
        checkpointer.last -= CHECKPOINT_INTERVAL;
        assert!(checkpointer.checkpoint_if_due().unwrap());
        size = fs::metadata(history.path()).unwrap().len();
        let kept = size - checkpointer.cached_from;
        assert!(
            kept >= KEEP_CACHED.min(size),
            "{kept} bytes of {size} left cached"
        );
        assert!(
            kept < KEEP_CACHED + DROP_STEP + 1024 * 1024,
            "{kept} bytes of {size} left cached"
        );
    }
    assert!(checkpointer.cached_from >= 3 * DROP_STEP);
    // Every line reads back whole, from the disk where it was dropped.
    drop((history, checkpointer));
    let history = History::open(dir.path()).unwrap();
    let stored = history.recent(ROOM, usize::MAX).unwrap();
    assert_eq!(stored.len() as u64, first);
    assert!(stored.iter().all(|m| m.text == line));
    // Opened again, the first checkpoint lets go of what opening read.
    let mut checkpointer = history.checkpointer().unwrap().unwrap();
    assert_eq!(checkpointer.cached_from, 0);
    checkpointer.last -= CHECKPOINT_INTERVAL;
    assert!(checkpointer.checkpoint_if_due().unwrap());
    assert_eq!(checkpointer.cached_from, size - KEEP_CACHED);
}

#[test]
fn after_a_checkpoint_the_next_commit_starts_the_log_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let mut checkpointer = history.checkpointer().unwrap().unwrap();
    for n in 0..100 {
        history.insert(&[numbered(ME, 3, n..n + 1)]).unwrap();
    }
    checkpointer.last -= CHECKPOINT_INTERVAL;
    assert!(checkpointer.checkpoint_if_due().unwrap());
    let log = dir.path().join(format!("{HISTORY_FILE}-wal"));
    let grown = fs::metadata(&log).unwrap().len();
    history.insert(&[numbered(ME, 3, 100..101)]).unwrap();
    // One commit, in a log started over: a few pages, on the file's
    // own, which keeps its size.
    let (pages, copied) = checkpointer.checkpoint().unwrap();
    assert!(pages <= 4, "{pages} pages in the log");
    assert_eq!(copied, pages);
    assert_eq!(fs::metadata(&log).unwrap().len(), grown);
}

#[test]
fn the_checkpointer_moves_the_log_while_the_writer_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(dir.path()).unwrap();
    let checkpointer = history.checkpointer().unwrap().expect("a file in WAL mode");
    checkpointer.checkpoint().unwrap();
    for n in 0..200 {
        history.insert(&[numbered(ME, 7, n..n + 1)]).unwrap();
    }
    // 200 commits grew the log: the writer did not checkpoint it.
    let (log, copied) = checkpointer.checkpoint().unwrap();
    assert!(log >= 200, "the log holds {log} pages");
    assert_eq!(
        copied, log,
        "a passive checkpoint with no reader copies all"
    );
    // What was copied is in the database, read through a fresh
    // connection after the writer closed.
    drop(history);
    let history = History::open(dir.path()).unwrap();
    assert_eq!(history.recent(ROOM, 300).unwrap().len(), 200);
    assert!(History::in_memory()
        .unwrap()
        .checkpointer()
        .unwrap()
        .is_none());
}
