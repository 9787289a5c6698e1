//! The work of one transfer, each in a task of its own: hashing and
//! offering a file, serving its pieces, receiving them.
//!
//! The chat runs on one thread, which also carries the network; so what
//! takes a while per piece (reading it, hashing it, writing it) runs on
//! the blocking pool, one piece at a time, while the chat's thread goes on
//! moving bytes and lines. Each task reports how far it is on a bounded
//! channel, dropping a report rather than waiting when the chat is busy,
//! and its end as its result.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::chat::transfer::download::DownloadError;
use crate::chat::transfer::name::floor_to_char_boundary;
use crate::chat::transfer::tree::{self, Cv, PieceHasher};
use crate::chat::transfer::{Download, Have, PIECE_LEN};
use crate::net::files::{
    Control, FileReader, FileStream, Frame, FrameError, MAX_CVS_PER_FRAME, MAX_REASON,
};
use crate::net::Client;
use crate::store::downloads::{self, Downloads};
use crate::store::{Store, TransferUpdate};

/// How long an offer, a rejection or a cancellation waits for its answer.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Every this many pieces, what was written is sent on to the disk (see
/// `downloads::start_writeback`).
const WRITEBACK_PIECES: u64 = 32;

/// Pieces checked and written at once while the next ones come in.
const MAX_CHECKING: usize = 2;

/// Pieces read from the disk at once while the last goes out.
const MAX_READING: usize = 2;

/// Frames read ahead of the one being dealt with.
const FRAME_QUEUE: usize = 1;

/// How long a transfer waits for the first frame after the ask: long
/// enough to hash or check a file of many GiB on a slow disk.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a transfer waits for the other side's next frame before it
/// counts the link as gone (it resumes later).
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a sender records the bytes it sent, at most, besides at the
/// end.
const RECORD_EVERY: Duration = Duration::from_millis(250);

/// How a task tells the chat how far it is.
#[derive(Debug)]
pub(in crate::app::secure) struct Progress {
    pub number: u64,
    pub done: u64,
}

/// How a file was hashed for an offer.
#[derive(Debug)]
pub(super) struct Hashed {
    pub size: u64,
    pub stamp: i128,
    pub root: Cv,
    pub cvs: Arc<Vec<Cv>>,
}

/// Reads and hashes a file to offer, piece by piece. Blocking.
pub(super) fn hash_file(path: &std::path::Path) -> Result<Hashed, String> {
    let (file, size, stamp) = downloads::open_source(path).map_err(|e| e.to_string())?;
    let pieces = tree::piece_count(size);
    let mut cvs = Vec::with_capacity(usize::try_from(pieces).unwrap_or(0));
    let mut buf = vec![0u8; 256 * 1024];
    for index in 0..pieces {
        let len = tree::piece_len(size, index).unwrap_or(0);
        let mut hasher = PieceHasher::new(size, index).map_err(|e| e.to_string())?;
        let mut read = 0u64;
        while read < len {
            let take = (len - read).min(buf.len() as u64) as usize;
            downloads::read_at(&file, index * PIECE_LEN + read, &mut buf[..take])
                .map_err(|e| format!("{}: {e}", path.display()))?;
            hasher.update(&buf[..take]);
            read += take as u64;
        }
        cvs.push(hasher.finish().map_err(|e| e.to_string())?);
    }
    let root = *tree::root(size, &cvs)
        .map_err(|e| e.to_string())?
        .as_bytes();
    if downloads::source_stamp(&file).map_err(|e| e.to_string())? != (size, stamp) {
        return Err(format!("{}: changed while it was read", path.display()));
    }
    Ok(Hashed {
        size,
        stamp,
        root,
        cvs: Arc::new(cvs),
    })
}

/// Says one thing on a new file stream and waits for the answer: `Ok`
/// when taken, `Err` with why not.
pub(super) async fn tell(mut client: Client, peer: PeerId, what: Control) -> Result<(), String> {
    let work = async {
        let mut stream = client
            .open_file_stream(peer)
            .await
            .map_err(|e| e.to_string())?;
        stream.send(&what).await.map_err(|e| e.to_string())?;
        let answer = stream.recv().await.map_err(|e| e.to_string())?;
        let _ = stream.close().await;
        match answer {
            Frame::Control(Control::Taken) => Ok(()),
            Frame::Control(Control::Refused { reason }) => Err(cut(reason)),
            _ => Err("the peer answered with something else".into()),
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, work)
        .await
        .map_err(|_| "the peer did not answer".to_owned())?
}

/// A peer's reason, bounded.
fn cut(reason: String) -> String {
    let kept = floor_to_char_boundary(&reason, MAX_REASON).len();
    let mut reason = reason;
    reason.truncate(kept);
    reason
}

/// Answers a stream's first frame and closes it.
pub(super) async fn answer(mut stream: FileStream, reply: Control) {
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let _ = stream.send(&reply).await;
        let _ = stream.close().await;
    })
    .await;
}

/// How serving a file ended.
#[derive(Debug)]
pub(in crate::app::secure) enum Served {
    /// The receiver holds it all, verified.
    Done { moved: u64 },
    /// The receiver stopped it.
    Cancelled { moved: u64 },
    /// The link went, or the receiver went quiet: it may come back.
    Interrupted { moved: u64 },
    /// It cannot be served (the file changed or went).
    Failed { reason: String },
}

/// What serving a file needs.
pub(super) struct Serve {
    pub number: u64,
    pub path: PathBuf,
    pub size: u64,
    pub stamp: Option<i64>,
    /// The piece hashes of the files offered, by transfer: taken from, and
    /// filled when a file offered before a restart is hashed again.
    pub cvs: Arc<std::sync::Mutex<std::collections::HashMap<u64, Arc<Vec<Cv>>>>>,
    pub moved: u64,
    pub store: Store,
    pub progress: mpsc::Sender<Progress>,
}

/// Serves an accepted file on `stream`: its piece hashes, then each piece
/// the receiver asks for.
pub(super) async fn serve(job: Serve, mut stream: FileStream) -> Served {
    let Serve {
        number,
        path,
        size,
        stamp,
        cvs,
        mut moved,
        store,
        progress,
    } = job;
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || -> Result<(std::fs::File, Arc<Vec<Cv>>), String> {
            let (file, now_size, now_stamp) =
                downloads::open_source(&path).map_err(|e| e.to_string())?;
            if now_size != size || stamp.is_some_and(|s| i128::from(s) != now_stamp) {
                return Err(format!(
                    "\"{}\" changed since it was offered",
                    path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    )
                ));
            }
            let known = cvs.lock().ok().and_then(|c| c.get(&number).cloned());
            let cvs = match known {
                Some(known) => known,
                None => {
                    let hashed = hash_file(&path)?.cvs;
                    if let Ok(mut cache) = cvs.lock() {
                        cache.insert(number, Arc::clone(&hashed));
                    }
                    hashed
                }
            };
            Ok((file, cvs))
        })
        .await
    };
    let (file, cvs) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(reason)) => {
            answer(
                stream,
                Control::Refused {
                    reason: reason.clone(),
                },
            )
            .await;
            return Served::Failed { reason };
        }
        Err(_) => return Served::Interrupted { moved },
    };
    let file = Arc::new(file);
    let pieces = tree::piece_count(size);
    for (n, batch) in cvs.chunks(MAX_CVS_PER_FRAME).enumerate() {
        let first = (n * MAX_CVS_PER_FRAME) as u64;
        let frame = Control::Cvs {
            first,
            cvs: batch.to_vec(),
        };
        if stream.send(&frame).await.is_err() {
            return Served::Interrupted { moved };
        }
    }
    // A receiver asks for each piece about once; one that asks for far
    // more is not receiving, and is cut off.
    let most_wants = pieces.saturating_mul(2).saturating_add(64);
    let mut wants = 0u64;
    let mut last_record = Instant::now();
    let faults = Faults::from_env();
    let mut corrupted = false;
    let (reader, mut writer) = stream.split();
    // The first ask may take a while: a receiver back after a restart
    // checks the pieces it held first.
    let (_reading, mut frames) = read_frames(reader, FIRST_FRAME_TIMEOUT, FRAME_TIMEOUT);
    // Pieces being read from the disk, in the order asked: the next is
    // read while the last goes out.
    let mut reading = FuturesOrdered::new();
    loop {
        tokio::select! {
            frame = frames.recv(), if reading.len() < MAX_READING => match frame {
                Some(Ok(Frame::Control(Control::Want { index })))
                    if index < pieces && wants < most_wants =>
                {
                    wants += 1;
                    let len = tree::piece_len(size, index).unwrap_or(0);
                    let file = Arc::clone(&file);
                    reading.push_back(tokio::task::spawn_blocking(move || {
                        let mut data = vec![0u8; len as usize];
                        let read = downloads::read_at(&file, index * PIECE_LEN, &mut data);
                        (index, read.map(|()| data))
                    }));
                }
                Some(Ok(Frame::Control(Control::Done { .. }))) => return Served::Done { moved },
                Some(Ok(Frame::Control(Control::Cancel { .. }))) => {
                    return Served::Cancelled { moved }
                }
                _ => break,
            },
            Some(read) = reading.next() => {
                let Ok((index, Ok(mut data))) = read else {
                    let reason = "the file could not be read".to_owned();
                    let refused = Control::Refused {
                        reason: reason.clone(),
                    };
                    let _ = tokio::time::timeout(ANSWER_TIMEOUT, writer.send(&refused)).await;
                    return Served::Failed { reason };
                };
                if faults.corrupt == Some(index) && !corrupted {
                    corrupted = true;
                    if let Some(byte) = data.first_mut() {
                        *byte ^= 0x55;
                    }
                }
                if writer.send_piece(index, &data).await.is_err() {
                    break;
                }
                moved += data.len() as u64;
                if faults.oversend && index == 0 {
                    let _ = writer.send_piece(index, &data).await;
                }
                let _ = progress.try_send(Progress {
                    number,
                    done: (index + 1).saturating_mul(PIECE_LEN).min(size),
                });
                if last_record.elapsed() >= RECORD_EVERY {
                    last_record = Instant::now();
                    let update = TransferUpdate {
                        moved: Some(moved),
                        ..TransferUpdate::default()
                    };
                    let _ = store.update_transfer(number, update).await;
                }
            }
        }
    }
    Served::Interrupted { moved }
}

/// Reads a stream's frames in a task of its own (owned by the set
/// returned, which ends it when dropped), handing them on as they come:
/// the next frame comes in while the last is being dealt with. After an
/// error, or a wait without a frame (`first` for the first, `then` for the
/// others), nothing more comes.
fn read_frames(
    mut reader: FileReader,
    first: Duration,
    then: Duration,
) -> (JoinSet<()>, mpsc::Receiver<Result<Frame, FrameError>>) {
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    let mut task = JoinSet::new();
    task.spawn(async move {
        let mut wait = first;
        loop {
            let frame = match tokio::time::timeout(wait, reader.recv()).await {
                Ok(frame) => frame,
                Err(_) => Err(FrameError::Io(std::io::ErrorKind::TimedOut.into())),
            };
            let end = frame.is_err();
            if tx.send(frame).await.is_err() || end {
                return;
            }
            wait = then;
        }
    });
    (task, rx)
}

/// Faults a debug build can be told to make, to test that a receiver
/// catches them: a piece corrupted once on the way, and the first piece
/// sent twice (more than the file holds). Release builds make none.
#[derive(Debug, Default)]
struct Faults {
    corrupt: Option<u64>,
    oversend: bool,
}

impl Faults {
    #[cfg(debug_assertions)]
    fn from_env() -> Faults {
        Faults {
            corrupt: std::env::var("RUST_P2P_CHAT_TEST_CORRUPT_PIECE")
                .ok()
                .and_then(|v| v.parse().ok()),
            oversend: std::env::var_os("RUST_P2P_CHAT_TEST_OVERSEND").is_some(),
        }
    }

    #[cfg(not(debug_assertions))]
    fn from_env() -> Faults {
        Faults::default()
    }
}

/// How receiving a file ended.
#[derive(Debug)]
pub(in crate::app::secure) enum Received {
    /// Whole and verified, at this path.
    Done { path: PathBuf },
    /// The sender stopped it.
    Cancelled,
    /// The link went: it resumes when the sender is back.
    Paused { held: u64 },
    /// The sender is busy with other transfers: asked again later.
    Busy,
    /// Whole and verified, but it could not take its name: it stays in
    /// its part file.
    Unplaced { part: PathBuf, reason: String },
    /// Given up.
    Failed { reason: String },
}

/// What receiving a file needs.
pub(super) struct Fetch {
    pub client: Client,
    pub store: Store,
    pub downloads: Downloads,
    pub number: u64,
    pub id: u64,
    pub peer: PeerId,
    pub name: String,
    pub size: u64,
    pub root: Cv,
    pub part: Option<PathBuf>,
    pub have: Option<Vec<u8>>,
    pub moved: u64,
    pub progress: mpsc::Sender<Progress>,
}

/// Receives an accepted file into its part file, then moves it to its
/// name in the download folder.
pub(super) async fn fetch(job: Fetch) -> Received {
    let Fetch {
        mut client,
        store,
        downloads,
        number,
        id,
        peer,
        name,
        size,
        root,
        part,
        have,
        mut moved,
        progress,
    } = job;
    let pieces = tree::piece_count(size);
    let resumed = part.is_some();
    let have = have.and_then(|bits| Have::from_bytes(pieces, bits));
    let mut download = Download::new(size, root, have);
    // The part file: a new one, or the one a previous run left.
    let opened = {
        let downloads = downloads.clone();
        tokio::task::spawn_blocking(move || match part {
            Some(path) => downloads.reopen_part(&path, size).map(|f| (f, path)),
            None => downloads.create_part(part_key(id, number), size),
        })
        .await
    };
    let (file, part) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            return Received::Failed {
                reason: e.to_string(),
            }
        }
        Err(_) => {
            return Received::Paused {
                held: download.verified_bytes(),
            }
        }
    };
    let file = Arc::new(file);
    if !resumed {
        let update = TransferUpdate {
            path: Some(part.display().to_string()),
            have: Some(download.have().as_bytes().to_vec()),
            ..TransferUpdate::default()
        };
        if let Err(e) = store.update_transfer(number, update).await {
            return Received::Failed {
                reason: e.to_string(),
            };
        }
    }
    let paused = |download: &Download| Received::Paused {
        held: download.verified_bytes(),
    };
    let Ok(mut stream) = client.open_file_stream(peer).await else {
        return paused(&download);
    };
    if stream.send(&Control::Get { id, root }).await.is_err() {
        return paused(&download);
    }
    let (reader, mut writer) = stream.split();
    // The sender may hash the file again first (it was offered before a
    // restart), and we check the pieces held before asking for more, so
    // every wait is the long one; a sender gone is a stream closed.
    let (reading, mut frames) = read_frames(reader, FIRST_FRAME_TIMEOUT, FIRST_FRAME_TIMEOUT);
    // The piece hashes, which must make the offered hash.
    while !download.ready() {
        match frames.recv().await {
            Some(Ok(Frame::Control(Control::Cvs { first, cvs }))) => {
                if let Err(e) = download.add_cvs(first, &cvs) {
                    return Received::Failed {
                        reason: e.to_string(),
                    };
                }
            }
            Some(Ok(Frame::Control(Control::Refused { reason }))) => {
                return Received::Failed {
                    reason: format!("the sender says: {}", cut(reason)),
                }
            }
            Some(Ok(Frame::Control(Control::Cancel { .. }))) => return Received::Cancelled,
            Some(Ok(Frame::Control(Control::Busy))) => return Received::Busy,
            _ => return paused(&download),
        }
    }
    // Pieces a previous run recorded are checked again on disk: a crash
    // may have left what was recorded unwritten.
    if resumed && download.have().count() > 0 {
        let held: Vec<(u64, Cv)> = download
            .have()
            .held()
            .filter_map(|i| download.expected(i).map(|cv| (i, cv)))
            .collect();
        let file = Arc::clone(&file);
        let checked = tokio::task::spawn_blocking(move || {
            held.into_iter()
                .filter(|&(index, cv)| {
                    let len = tree::piece_len(size, index).unwrap_or(0) as usize;
                    let mut data = vec![0u8; len];
                    downloads::read_at(&file, index * PIECE_LEN, &mut data).is_err()
                        || tree::check_piece(size, index, &data, &cv).is_err()
                })
                .map(|(index, _)| index)
                .collect::<Vec<u64>>()
        })
        .await;
        match checked {
            Ok(bad) => {
                for index in bad {
                    download.forget(index);
                }
            }
            Err(_) => return paused(&download),
        }
    }
    // Pieces being checked and written, in the order they came.
    let mut checking = FuturesOrdered::new();
    while !download.complete() || !checking.is_empty() {
        for index in download.next_wants() {
            if writer.send(&Control::Want { index }).await.is_err() {
                return record_paused(&store, number, &download, moved).await;
            }
        }
        tokio::select! {
            frame = frames.recv(), if checking.len() < MAX_CHECKING => {
                let (index, data) = match frame {
                    Some(Ok(Frame::Piece { index, data })) => (index, data),
                    Some(Ok(Frame::Control(Control::Cancel { .. }))) => return Received::Cancelled,
                    Some(Ok(Frame::Control(Control::Refused { reason }))) => {
                        return Received::Failed {
                            reason: format!("the sender says: {}", cut(reason)),
                        }
                    }
                    Some(Ok(Frame::Control(_)) | Err(FrameError::Malformed)) => {
                        return Received::Failed {
                            reason: "the sender broke the protocol".into(),
                        }
                    }
                    Some(Err(FrameError::TooLong { .. })) => {
                        return Received::Failed {
                            reason: "the sender sent more than a piece holds: not asked for".into(),
                        }
                    }
                    Some(Err(_)) | None => {
                        return record_paused(&store, number, &download, moved).await
                    }
                };
                moved += data.len() as u64;
                let expected = match download.arrived(index, data.len()) {
                    Ok(cv) => cv,
                    Err(e) => {
                        let _ = record(&store, number, &download, moved).await;
                        return Received::Failed {
                            reason: e.to_string(),
                        };
                    }
                };
                let file = Arc::clone(&file);
                checking.push_back(tokio::task::spawn_blocking(move || {
                    let written = if tree::check_piece(size, index, &data, &expected).is_err() {
                        Ok(false)
                    } else {
                        downloads::write_at(&file, index * PIECE_LEN, &data).map(|()| true)
                    };
                    if (index + 1) % WRITEBACK_PIECES == 0 {
                        let from = (index + 1 - WRITEBACK_PIECES) * PIECE_LEN;
                        downloads::start_writeback(&file, from, WRITEBACK_PIECES * PIECE_LEN);
                    }
                    (index, written)
                }));
            }
            Some(checked) = checking.next() => {
                match checked {
                    Ok((index, Ok(true))) => download.verified(index),
                    Ok((index, Ok(false))) => {
                        if let Err(e @ DownloadError::TooManyBad(_)) = download.corrupt(index) {
                            let _ = record(&store, number, &download, moved).await;
                            return Received::Failed {
                                reason: e.to_string(),
                            };
                        }
                    }
                    Ok((_, Err(e))) => {
                        let _ = record(&store, number, &download, moved).await;
                        return Received::Failed {
                            reason: e.to_string(),
                        };
                    }
                    Err(_) => return record_paused(&store, number, &download, moved).await,
                }
                let _ = progress.try_send(Progress {
                    number,
                    done: download.verified_bytes(),
                });
                // Recorded before more is asked for: a crash then costs
                // only what was in flight (a window) and being written.
                if let Err(reason) = record(&store, number, &download, moved).await {
                    return Received::Failed { reason };
                }
            }
        }
    }
    // Whole and verified: on the disk before it takes its name.
    let synced = {
        let file = Arc::clone(&file);
        tokio::task::spawn_blocking(move || file.sync_all()).await
    };
    if !matches!(synced, Ok(Ok(()))) {
        return Received::Failed {
            reason: "the file could not be written to the disk".into(),
        };
    }
    if let Err(reason) = record(&store, number, &download, moved).await {
        return Received::Failed { reason };
    }
    drop(file);
    // The file takes its name, and the store says where, before the sender
    // is told it is done: a crash in between leaves a transfer to finish,
    // never a sender told of a file that is not there.
    let part_path = part.clone();
    let finished = tokio::task::spawn_blocking(move || {
        downloads.finish(&part, &name, crate::chat::transfer::name::numbered)
    })
    .await;
    let path = match finished {
        Ok(Ok(path)) => path,
        Ok(Err(e)) => {
            return Received::Unplaced {
                part: part_path,
                reason: e.to_string(),
            }
        }
        Err(_) => {
            return Received::Unplaced {
                part: part_path,
                reason: "the file could not be moved into place".into(),
            }
        }
    };
    let update = TransferUpdate {
        state: Some(crate::chat::transfer::TransferState::Done),
        path: Some(path.display().to_string()),
        ..TransferUpdate::default()
    };
    let _ = store.update_transfer(number, update).await;
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let _ = writer.send(&Control::Done { id }).await;
        let _ = writer.close().await;
    })
    .await;
    drop(reading);
    Received::Done { path }
}

/// What a transfer's part file is named by: the sender's id and our
/// number for it, hashed. Not the id alone (two senders may pick one id,
/// and one could then end the other's part file), nor our number alone
/// (chats of other data directories may share the download folder, each
/// numbering from 1).
pub(super) fn part_key(id: u64, number: u64) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"rust-p2p-chat part file");
    hasher.update(&id.to_le_bytes());
    hasher.update(&number.to_le_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(key)
}

/// Records the pieces held and the bytes moved.
async fn record(store: &Store, number: u64, download: &Download, moved: u64) -> Result<(), String> {
    let update = TransferUpdate {
        have: Some(download.have().as_bytes().to_vec()),
        moved: Some(moved),
        ..TransferUpdate::default()
    };
    store
        .update_transfer(number, update)
        .await
        .map_err(|e| e.to_string())
}

async fn record_paused(store: &Store, number: u64, download: &Download, moved: u64) -> Received {
    let _ = record(store, number, download, moved).await;
    Received::Paused {
        held: download.verified_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::part_key;

    #[test]
    fn part_files_of_one_id_or_one_number_differ() {
        assert_eq!(part_key(7, 1), part_key(7, 1));
        assert_ne!(part_key(7, 1), part_key(7, 2));
        assert_ne!(part_key(7, 1), part_key(8, 1));
    }
}
