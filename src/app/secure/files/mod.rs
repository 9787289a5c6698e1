//! Sending and receiving files: `/send`, `/accept`, `/reject`, `/cancel`,
//! `/files`, and what peers say about their transfers.
//!
//! Each transfer is recorded in the store from its offer on, on both
//! sides, with its state; the receiver also records which pieces it holds.
//! That record is what makes a transfer survive a crash or a dropped link
//! without a new `/accept`: a receiver asks again for an accepted file
//! whenever the sender is reachable, and a sender answers from its record.
//! The work of each transfer runs in a task of its own (`tasks.rs`), owned
//! here and ended with the chat. The commands are here; what peers open
//! file streams for is `incoming.rs`, progress and the ends of tasks
//! `ended.rs`.

mod ended;
mod incoming;
mod tasks;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::RoomChat;
use crate::chat::transfer::{
    human_size, Cv, FileEvent, TransferLine, TransferState, DEFAULT_MAX_FILE,
};
use crate::chat::Event;
use crate::net::files::{Control, FileStream, Frame};
use crate::store::downloads::Downloads;
use crate::store::{Transfer, TransferUpdate};

use tasks::{Progress, Received, Served};

/// File streams read at once before their first frame, from everyone.
const MAX_OPENING: usize = 16;

/// File streams waiting for the chat to take them.
const STREAM_QUEUE: usize = 16;

/// Progress reports waiting for the chat: a full queue drops reports, not
/// pieces.
const PROGRESS_QUEUE: usize = 64;

/// How long a new stream has to say what it is for.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A transfer's rate is taken over the last while: at least this long...
const MIN_RATE_SPAN: Duration = Duration::from_millis(50);

/// ... and at most about twice this.
const RATE_SPAN: Duration = Duration::from_secs(2);

/// How often accepted files that are not moving are asked for again.
pub(super) const RESUME_EVERY: Duration = Duration::from_secs(3);

/// Transfers offered to us and not yet answered, at most: more offers are
/// refused until some are...
const MAX_PENDING_OFFERS: usize = 64;

/// ... and from one peer.
const MAX_PENDING_OFFERS_PER_PEER: usize = 8;

/// Ended transfers `/files` keeps listing, at most (the history keeps
/// them all).
const MAX_ENDED_LISTED: usize = 256;

/// Transfers moving at once, at most, each way; more wait their turn.
pub const MAX_RUNNING: usize = 4;

/// Settings of file transfer.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Where received files land (`--download-dir`).
    pub download_dir: PathBuf,
    /// The largest file accepted (`--max-file`).
    pub max_file: u64,
    /// Accept files from trusted peers without asking
    /// (`--accept-files-from-trusted`).
    pub accept_from_trusted: bool,
}

impl FileOptions {
    /// The platform's download folder, in a `rust-p2p-chat` folder of its
    /// own; under `fallback` where there is none.
    pub fn default_dir(fallback: &Path) -> PathBuf {
        directories::UserDirs::new()
            .and_then(|dirs| dirs.download_dir().map(Path::to_path_buf))
            .map_or_else(
                || fallback.join("downloads"),
                |dir| dir.join("rust-p2p-chat"),
            )
    }
}

impl Default for FileOptions {
    fn default() -> FileOptions {
        FileOptions {
            download_dir: PathBuf::from("downloads"),
            max_file: DEFAULT_MAX_FILE,
            accept_from_trusted: false,
        }
    }
}

/// A transfer as the chat knows it.
struct Known {
    transfer: Transfer,
    /// Bytes so far.
    done: u64,
    /// When and at how many bytes the rate was last taken (this run of
    /// the transfer), and the rate.
    sample: Option<(Instant, u64)>,
    rate: u64,
    /// The tenth of the file last reported.
    decile: u64,
    /// Paused was said since it last moved.
    told_paused: bool,
    /// Receiving goes on from where an earlier run or link left it: said
    /// when it moves again.
    resuming: bool,
}

impl Known {
    fn new(transfer: Transfer) -> Known {
        Known {
            transfer,
            done: 0,
            sample: None,
            rate: 0,
            decile: 0,
            told_paused: false,
            resuming: false,
        }
    }
}

/// How a transfer's task ended.
pub(super) enum Ended {
    Offered {
        number: u64,
        cvs: Arc<Vec<Cv>>,
        result: Result<(), String>,
    },
    NotOffered {
        name: String,
        reason: String,
    },
    Served(u64, Served),
    Received(u64, Received),
}

/// The transfers of one chat.
pub(super) struct Files {
    options: FileOptions,
    downloads: Option<Downloads>,
    known: BTreeMap<u64, Known>,
    /// Tasks moving a transfer, by its number.
    running: HashMap<u64, AbortHandle>,
    /// Piece hashes of the files we offered this run.
    cvs: Arc<Mutex<HashMap<u64, Arc<Vec<Cv>>>>>,
    pub(super) work: JoinSet<Ended>,
    progress_tx: mpsc::Sender<Progress>,
    pub(super) progress: mpsc::Receiver<Progress>,
    pub(super) streams: Option<mpsc::Receiver<(FileStream, Control)>>,
    /// Names to offer files under instead of theirs, in turn: a debug
    /// build takes them from `RUST_P2P_CHAT_TEST_OFFER_NAMES` (a JSON list),
    /// to test what a receiver makes of names no file on disk can have.
    test_names: VecDeque<String>,
}

#[cfg(debug_assertions)]
fn test_names() -> VecDeque<String> {
    std::env::var("RUST_P2P_CHAT_TEST_OFFER_NAMES")
        .ok()
        .and_then(|list| serde_json::from_str(&list).ok())
        .unwrap_or_default()
}

#[cfg(not(debug_assertions))]
fn test_names() -> VecDeque<String> {
    VecDeque::new()
}

impl Files {
    pub(super) fn new(options: FileOptions) -> Files {
        let (progress_tx, progress) = mpsc::channel(PROGRESS_QUEUE);
        Files {
            options,
            downloads: None,
            known: BTreeMap::new(),
            running: HashMap::new(),
            cvs: Arc::new(Mutex::new(HashMap::new())),
            work: JoinSet::new(),
            progress_tx,
            progress,
            streams: None,
            test_names: test_names(),
        }
    }

    /// The download folder, opened (and made) on first use.
    fn downloads(&mut self) -> Result<Downloads, String> {
        if let Some(downloads) = &self.downloads {
            return Ok(downloads.clone());
        }
        let downloads = Downloads::open(&self.options.download_dir).map_err(|e| e.to_string())?;
        self.downloads = Some(downloads.clone());
        Ok(downloads)
    }

    fn find(&self, peer: &PeerId, id: u64, outgoing: bool) -> Option<u64> {
        let peer = peer.to_string();
        self.known
            .values()
            .find(|k| {
                k.transfer.id == id && k.transfer.outgoing == outgoing && k.transfer.peer == peer
            })
            .map(|k| k.transfer.number)
    }

    fn running_each_way(&self, outgoing: bool) -> usize {
        self.running
            .keys()
            .filter(|n| {
                self.known
                    .get(n)
                    .is_some_and(|k| k.transfer.outgoing == outgoing)
            })
            .count()
    }
}

/// What `/send` was given: a member and a path, or a path alone.
fn split_send(args: &str) -> (Option<&str>, &str) {
    let args = args.trim();
    match args.split_once(char::is_whitespace) {
        Some((first, rest)) if !rest.trim().is_empty() => (Some(first), rest.trim()),
        _ => (None, args),
    }
}

/// A path as typed: `~/` is the home folder.
fn typed_path(text: &str) -> PathBuf {
    match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(text),
    }
}

fn random_id() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

fn file_event(event: FileEvent) -> Option<Event> {
    Some(Event::File(event))
}

impl RoomChat {
    /// Starts taking file streams peers open: each says what it is for in
    /// its first frame, read here, then goes to the chat.
    pub(super) fn accept_files(&mut self) -> Result<(), crate::app::Error> {
        let mut streams = self.client.accept_file_streams()?;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        self.files.streams = Some(rx);
        self.tasks.spawn(async move {
            let mut opening = JoinSet::new();
            while let Some(mut stream) = streams.next().await {
                while opening.try_join_next().is_some() {}
                if opening.len() >= MAX_OPENING {
                    // Dropped: the stream is closed.
                    continue;
                }
                let tx = tx.clone();
                opening.spawn(async move {
                    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, stream.recv()).await;
                    if let Ok(Ok(Frame::Control(control))) = first {
                        let _ = tx.send((stream, control)).await;
                    }
                });
            }
        });
        Ok(())
    }

    /// Loads the transfers a previous run left unfinished.
    pub(super) async fn load_transfers(&mut self) {
        let Ok(stored) = self.secure.store.unfinished_transfers().await else {
            return;
        };
        for transfer in stored {
            if transfer.state.ended() {
                continue;
            }
            let mut known = Known::new(transfer);
            known.resuming =
                !known.transfer.outgoing && known.transfer.state == TransferState::Accepted;
            if let Some(bits) = &known.transfer.have {
                let pieces = crate::chat::transfer::tree::piece_count(known.transfer.size);
                if let Some(have) = crate::chat::transfer::Have::from_bytes(pieces, bits.clone()) {
                    known.done = crate::chat::transfer::Download::new(
                        known.transfer.size,
                        known.transfer.root,
                        Some(have),
                    )
                    .verified_bytes();
                }
            }
            self.files.known.insert(known.transfer.number, known);
        }
    }

    /// `/send [NICK] PATH`.
    pub(super) fn send_file(&mut self, args: &str) -> Option<Event> {
        let (who, path) = match split_send(args) {
            (Some(who), rest) => match self.target(Some(who)) {
                Ok(peer) => (Ok(peer), rest),
                // Not a member: the whole is a path.
                Err(_) => (self.target(None), args.trim()),
            },
            (None, path) => (self.target(None), path),
        };
        let peer = match who {
            Ok(peer) => peer,
            Err(e) => return Some(Event::Info(format!("/send: {e}"))),
        };
        let path = typed_path(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() {
            return file_event(FileEvent::NotOffered {
                name: path.display().to_string(),
                reason: "not a file".into(),
            });
        }
        let id = match random_id() {
            Ok(id) => id,
            Err(reason) => return file_event(FileEvent::NotOffered { name, reason }),
        };
        let offered_name = self
            .files
            .test_names
            .pop_front()
            .unwrap_or_else(|| name.clone());
        let client = self.client.clone();
        let store = self.secure.store.clone();
        self.files.work.spawn(async move {
            let hashed = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || tasks::hash_file(&path)).await
            };
            let hashed = match hashed {
                Ok(Ok(hashed)) => hashed,
                Ok(Err(reason)) => return Ended::NotOffered { name, reason },
                Err(_) => {
                    return Ended::NotOffered {
                        name,
                        reason: "reading it failed".into(),
                    }
                }
            };
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            let transfer = Transfer {
                number: 0,
                id,
                outgoing: true,
                peer: peer.to_string(),
                name: name.clone(),
                size: hashed.size,
                root: hashed.root,
                path: Some(path.display().to_string()),
                stamp: i64::try_from(hashed.stamp).ok(),
                state: TransferState::Offered,
                have: None,
                moved: 0,
                ts_ms: crate::app::now_ms(),
            };
            let number = match store.add_transfer(transfer).await {
                Ok((number, _)) => number,
                Err(e) => {
                    return Ended::NotOffered {
                        name,
                        reason: e.to_string(),
                    }
                }
            };
            let offer = Control::Offer {
                id,
                name: offered_name,
                size: hashed.size,
                root: hashed.root,
            };
            let result = tasks::tell(client, peer, offer).await;
            Ended::Offered {
                number,
                cvs: hashed.cvs,
                result,
            }
        });
        None
    }

    /// `/accept N`.
    pub(super) async fn accept_file(&mut self, number: u64) -> Option<Event> {
        let Some(known) = self.files.known.get(&number) else {
            return Some(Event::Info(format!(
                "/accept: there is no transfer {number}"
            )));
        };
        if known.transfer.outgoing || known.transfer.state != TransferState::Offered {
            return Some(Event::Info(format!(
                "/accept: transfer {number} is not an offer waiting for you"
            )));
        }
        let size = known.transfer.size;
        let free = self
            .files
            .downloads()
            .and_then(|d| d.free_bytes().map_err(|e| e.to_string()));
        match free {
            Ok(free) if free < size => {
                return Some(Event::Info(format!(
                    "/accept: {} does not fit: {} free in {}",
                    human_size(size),
                    human_size(free),
                    self.files.options.download_dir.display()
                )))
            }
            Err(reason) => return Some(Event::Info(format!("/accept: {reason}"))),
            Ok(_) => {}
        }
        let update = TransferUpdate {
            state: Some(TransferState::Accepted),
            ..TransferUpdate::default()
        };
        if let Err(e) = self.secure.store.update_transfer(number, update).await {
            return Some(Event::Info(format!("/accept: {e}")));
        }
        let name = match self.files.known.get_mut(&number) {
            Some(known) => {
                known.transfer.state = TransferState::Accepted;
                known.transfer.name.clone()
            }
            None => return None,
        };
        self.start_fetch(number);
        file_event(FileEvent::Receiving {
            number,
            name,
            size,
            held: 0,
        })
    }

    /// Starts (or resumes) receiving an accepted file.
    fn start_fetch(&mut self, number: u64) {
        if self.files.running.contains_key(&number)
            || self.files.running_each_way(false) >= MAX_RUNNING
        {
            return;
        }
        let Ok(downloads) = self.files.downloads() else {
            return;
        };
        let Some(known) = self.files.known.get(&number) else {
            return;
        };
        let t = &known.transfer;
        let Ok(peer) = t.peer.parse::<PeerId>() else {
            return;
        };
        let job = tasks::Fetch {
            client: self.client.clone(),
            store: self.secure.store.clone(),
            downloads,
            number,
            id: t.id,
            peer,
            name: t.name.clone(),
            size: t.size,
            root: t.root,
            part: t.path.as_ref().map(PathBuf::from),
            have: t.have.clone(),
            moved: t.moved,
            progress: self.files.progress_tx.clone(),
        };
        let handle = self
            .files
            .work
            .spawn(async move { Ended::Received(number, tasks::fetch(job).await) });
        self.files.running.insert(number, handle);
    }

    /// Asks again for accepted files that are not moving: from `peer`,
    /// when given (it just connected), else from every sender connected
    /// now (one that is not is asked when it connects).
    pub(super) fn resume_files(&mut self, peer: Option<&PeerId>) {
        let client = &self.client;
        let from = |sender: &str| match peer {
            Some(peer) => peer.to_string() == sender,
            None => sender
                .parse::<PeerId>()
                .is_ok_and(|sender| client.is_connected(&sender)),
        };
        let waiting: Vec<u64> = self
            .files
            .known
            .values()
            .filter(|k| {
                !k.transfer.outgoing
                    && k.transfer.state == TransferState::Accepted
                    && from(&k.transfer.peer)
            })
            .map(|k| k.transfer.number)
            .filter(|n| !self.files.running.contains_key(n))
            .collect();
        for number in waiting {
            self.start_fetch(number);
        }
    }

    /// `/reject N`.
    pub(super) async fn reject_file(&mut self, number: u64) -> Option<Event> {
        let (peer, id, name) = match self.files.known.get(&number) {
            Some(k) if !k.transfer.outgoing && k.transfer.state == TransferState::Offered => (
                k.transfer.peer.clone(),
                k.transfer.id,
                k.transfer.name.clone(),
            ),
            _ => {
                return Some(Event::Info(format!(
                    "/reject: transfer {number} is not an offer waiting for you"
                )))
            }
        };
        self.end_transfer(number, TransferState::Rejected).await;
        if let Ok(peer) = peer.parse::<PeerId>() {
            let client = self.client.clone();
            self.tasks.spawn(async move {
                let _ = tasks::tell(client, peer, Control::Reject { id }).await;
            });
        }
        Some(Event::Info(format!(
            "Declined \"{}\"",
            crate::chat::sanitize::inert(&name)
        )))
    }

    /// `/cancel N`.
    pub(super) async fn cancel_file(&mut self, number: u64) -> Option<Event> {
        let name = match self.files.known.get(&number) {
            Some(k) if !k.transfer.state.ended() => k.transfer.name.clone(),
            _ => {
                return Some(Event::Info(format!(
                    "/cancel: transfer {number} is not under way"
                )))
            }
        };
        self.tell_cancelled(number);
        self.end_transfer(number, TransferState::Cancelled).await;
        file_event(FileEvent::Cancelled {
            number,
            name,
            by: None,
        })
    }

    /// Tells the other side of a transfer that it is stopped (in a task
    /// of the chat's: the answer is not waited for).
    fn tell_cancelled(&mut self, number: u64) {
        let Some(known) = self.files.known.get(&number) else {
            return;
        };
        let id = known.transfer.id;
        if let Ok(peer) = known.transfer.peer.parse::<PeerId>() {
            let client = self.client.clone();
            self.tasks.spawn(async move {
                let _ = tasks::tell(client, peer, Control::Cancel { id }).await;
            });
        }
    }

    /// Whether any file is being sent or received now.
    pub(super) fn moving_files(&self) -> bool {
        !self.files.running.is_empty()
    }

    /// `/files`.
    pub(super) fn list_files(&self) -> Option<Event> {
        let lines = self
            .files
            .known
            .values()
            .map(|k| {
                let who = k
                    .transfer
                    .peer
                    .parse::<PeerId>()
                    .map_or_else(|_| k.transfer.peer.clone(), |p| self.display_anywhere(&p));
                TransferLine {
                    number: k.transfer.number,
                    outgoing: k.transfer.outgoing,
                    who,
                    name: k.transfer.name.clone(),
                    size: k.transfer.size,
                    done: if k.transfer.state == TransferState::Done {
                        k.transfer.size
                    } else {
                        k.done
                    },
                    state: k.transfer.state,
                    rate: self
                        .files
                        .running
                        .contains_key(&k.transfer.number)
                        .then_some(k.rate),
                }
            })
            .collect();
        file_event(FileEvent::List(lines))
    }

    /// Ends a transfer here: its task stops, its record says why, and a
    /// part file is removed.
    async fn end_transfer(&mut self, number: u64, state: TransferState) {
        if let Some(handle) = self.files.running.remove(&number) {
            handle.abort();
        }
        if let Ok(mut cvs) = self.files.cvs.lock() {
            cvs.remove(&number);
        }
        let mut update = TransferUpdate {
            state: Some(state),
            ..TransferUpdate::default()
        };
        // Only an accepted file may have a part file. The folder is opened
        // here if need be: a transfer of an earlier run may end before
        // anything of this run touched it.
        let had_part =
            self.files.known.get(&number).is_some_and(|k| {
                !k.transfer.outgoing && k.transfer.state == TransferState::Accepted
            });
        let downloads = had_part.then(|| self.files.downloads().ok()).flatten();
        if let Some(known) = self.files.known.get_mut(&number) {
            known.transfer.state = state;
            if !known.transfer.outgoing && state != TransferState::Done {
                if let Some(downloads) = downloads {
                    let _ = downloads.remove_part(tasks::part_key(known.transfer.id, number));
                }
                known.transfer.path = None;
                update.have = Some(Vec::new());
            }
        }
        let _ = self.secure.store.update_transfer(number, update).await;
        self.forget_ended();
    }

    /// Forgets the oldest ended transfers past [`MAX_ENDED_LISTED`]: a
    /// peer offering and cancelling again and again must not grow the
    /// chat.
    fn forget_ended(&mut self) {
        let ended: Vec<u64> = self
            .files
            .known
            .values()
            .filter(|k| k.transfer.state.ended())
            .map(|k| k.transfer.number)
            .collect();
        let excess = ended.len().saturating_sub(MAX_ENDED_LISTED);
        for number in ended.into_iter().take(excess) {
            self.files.known.remove(&number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_takes_a_member_then_a_path_or_a_path_alone() {
        assert_eq!(split_send("bob a.txt"), (Some("bob"), "a.txt"));
        assert_eq!(split_send("a.txt"), (None, "a.txt"));
        assert_eq!(
            split_send("  bob   my file.txt "),
            (Some("bob"), "my file.txt")
        );
    }
}
