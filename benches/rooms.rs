//! Room scale: N real processes of the binary in one room on 127.0.0.1,
//! each a member that listens and joins through one earlier member, as
//! people would start them by hand.
//!
//! Run with `cargo bench --bench rooms`. Knobs (environment):
//! - `ROOM_SIZES` (default `10,30,50`): room sizes, comma-separated;
//! - `ROOM_MESSAGES` (default 100): messages each of the three senders
//!   sends;
//! - `ROOM_PACE_US` (default 1000): microseconds between one sender's
//!   messages (the three send at the same time); 0 writes them all at once;
//! - `ROOM_SEED` (default: from the clock, printed): which earlier member
//!   each one joins through; the same seed gives the same topology;
//! - `ROOM_MESH_SECS` (default 60): how long the mesh may take to form;
//! - `ROOM_SETTLE_SECS` (default 10): how long the formed room may take to
//!   settle before the messages (step 2 below); 0 does not wait;
//! - `ROOM_KEEP` (set to anything): keep the temp directory, with each
//!   member's stdout (timestamped) and stderr, and print where it is;
//! - `ROOM_RUNS` (default 3): rooms started afresh per N. The row of an N
//!   sums its runs up: delivery and duplicates at their worst (every run
//!   must deliver every message once, and the mesh form in every run),
//!   the largest RSS, and the median of
//!   the times and of the latency percentiles. A p99 of 300 messages on
//!   two cores shared by N processes moves by a third from run to run;
//!   the bars are checked on that row;
//! - `ROOM_ARGS` (default none): more arguments for every member,
//!   separated by spaces, such as `--no-history`.
//!
//! For each N, with one clock (the benchmark's) for every figure:
//! 1. member 0 listens; member i (names `p0`..) listens on port 0 and
//!    connects to a random earlier member, started once the one before it
//!    prints its port. Two mesh times, from the first spawn: until every
//!    member has shown every other *present* (a `WHO joined #lobby` line
//!    where WHO is its nick or its `Peer-XXXX`, a rename from or to it, or
//!    its `Peer identity:` on a direct connection), and until every member
//!    has shown every other *by nick* (`pK joined #lobby` or `... is now
//!    known as pK`). The first member a peer meets is announced by a rename,
//!    not a join, and a member is often announced as `Peer-XXXX` before its
//!    nick is known, hence both. The wait ends at `ROOM_MESH_SECS`, or
//!    earlier once the members still running are complete (a member that
//!    exits is reported with its exit status and last stderr line);
//! 2. the room settles: the benchmark waits until the members' CPU over a
//!    quarter second falls below 5% of one core (the joins, greetings and
//!    mesh grafts are done), at most `ROOM_SETTLE_SECS` (default 10; 0
//!    sends at once, while the mesh is still busy forming), and says how
//!    long that took. The latency is that of a room people talk in, not of
//!    one still forming;
//! 3. three members (the first, the middle and the last started) send
//!    `m <sender> <i> <nanoseconds since the run began>` lines, each sender
//!    on its own thread, all three at once; every other member must show
//!    each exactly once as `<sender>: m ...`. Latency is from just before
//!    the line is written to the sender's stdin until the receiver's stdout
//!    line is read (each member's stdout is read on its own thread, which
//!    stamps each line as it reads it). The wait ends when every member
//!    still running has shown every message of every sender still running,
//!    or 30 s after the last was written; then three more seconds are
//!    watched for duplicates (and the CPU the quiet room uses). What is
//!    missing is listed by sender and message numbers, with the receivers
//!    that missed them;
//! 4. VmRSS of every member after the messages.
//!
//! Beside each phase: the members' CPU time, the whole machine's, and how
//! long the members' threads were runnable but waited for a CPU (from
//! /proc), since on a small machine N processes compete for few cores and
//! anything else running skews the figures.
//!
//! Then every member is killed and reaped by its PID and the temp directory
//! removed. A missed bar is reported, and the run still succeeds; a room
//! that could not be started fails the run (exit 1) after the other sizes.
//! MB is MiB.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::process::{machine_busy, port_in, sched_times, status_kib, Running, SchedTimes};
use support::{env_usize, latency, load_average, machine, mb, median, Latency};

/// The room every member joins.
const ROOM: &str = "lobby";

/// Members that send.
const SENDERS: usize = 3;

/// Longest a member may take to print its port.
const LISTEN_DEADLINE: Duration = Duration::from_secs(10);

/// Longest the messages may take to arrive after the last is written.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

/// How long the room is watched once the messages are in (or their wait
/// is over): for duplicates, and for the CPU an idle room uses.
const QUIET_WINDOW: Duration = Duration::from_secs(3);

/// How often the settling room's CPU is looked at, and the share of one
/// core the members together may use in that time for it to count as
/// settled.
const SETTLE_STEP: Duration = Duration::from_millis(250);
const SETTLED_CPU_SHARE: f64 = 0.05;

/// Longest a killed member's stdout may take to close.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Problems printed per kind before the rest are only counted.
const SHOWN_PROBLEMS: usize = 25;

/// The bars, checked at this room size.
const BAR_SIZE: usize = 30;
const BAR_DELIVERED_PERCENT: f64 = 100.0;
const BAR_P99_MS: f64 = 150.0;
const BAR_RSS_MB: f64 = 15.0;

/// What the environment asks for.
struct Knobs {
    sizes: Vec<usize>,
    messages: usize,
    pace: Duration,
    seed: u64,
    mesh_deadline: Duration,
    settle_deadline: Duration,
    runs: usize,
    keep: bool,
    extra_args: Vec<String>,
}

impl Knobs {
    fn from_env() -> Result<Knobs, String> {
        let sizes = match std::env::var("ROOM_SIZES") {
            Err(_) => vec![10, 30, 50],
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<usize>() {
                    Ok(n) if n >= 2 => Ok(n),
                    _ => Err(format!("ROOM_SIZES: {s:?} is not a room size of 2 or more")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let seed = match std::env::var("ROOM_SEED") {
            Ok(s) => s
                .parse()
                .map_err(|_| format!("ROOM_SEED: {s:?} is not a number"))?,
            Err(_) => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 % 1_000_000),
        };
        Ok(Knobs {
            sizes,
            messages: env_usize("ROOM_MESSAGES", 100).max(1),
            pace: Duration::from_micros(env_usize("ROOM_PACE_US", 1000) as u64),
            seed,
            mesh_deadline: Duration::from_secs(env_usize("ROOM_MESH_SECS", 60) as u64),
            settle_deadline: Duration::from_secs(env_usize("ROOM_SETTLE_SECS", 10) as u64),
            runs: env_usize("ROOM_RUNS", 3).max(1),
            keep: std::env::var_os("ROOM_KEEP").is_some(),
            extra_args: std::env::var("ROOM_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// A small xorshift generator: the topology only has to be varied and
/// repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What a member printed, as far as the benchmark cares.
enum Line {
    /// `Your identity: PEER_ID (fingerprint XXXX ...)`: its own.
    Identity { peer_id: String, short: String },
    /// `Listening on: 0.0.0.0:PORT`.
    Listening(u16),
    /// `Peer identity: PEER_ID ...`, on a direct connection.
    Connected(String),
    /// `WHO joined #lobby`.
    Joined(String),
    /// `OLD is now known as NEW`.
    Renamed { old: String, new: String },
    /// `WHO left #lobby`.
    Left(String),
    /// `SHOWN: m SENDER INDEX NANOS`, one of the benchmark's messages.
    Message {
        shown_as: String,
        sender: String,
        index: usize,
        sent_nanos: u64,
    },
    /// Anything else (status lines).
    Other,
    /// Its stdout closed.
    Closed,
}

/// A line a member printed, and when the benchmark read it.
struct Heard {
    member: usize,
    at: Instant,
    line: Line,
}

fn classify(text: &str) -> Line {
    if let Some(rest) = text.strip_prefix("Listening on: ") {
        return port_in(rest).map_or(Line::Other, Line::Listening);
    }
    if let Some(rest) = text.strip_prefix("Your identity: ") {
        if let Some((peer_id, fingerprint)) = rest.split_once(" (fingerprint ") {
            return Line::Identity {
                peer_id: peer_id.to_owned(),
                short: fingerprint.chars().take(4).collect(),
            };
        }
    }
    if let Some(rest) = text.strip_prefix("Peer identity: ") {
        let peer_id = rest.split(' ').next().unwrap_or_default();
        return Line::Connected(peer_id.to_owned());
    }
    let presence = |suffix: &str| text.strip_suffix(&format!(" {suffix} #{ROOM}"));
    if let Some(who) = presence("joined") {
        return Line::Joined(who.to_owned());
    }
    if let Some(who) = presence("left") {
        return Line::Left(who.to_owned());
    }
    if let Some((old, new)) = text.split_once(" is now known as ") {
        return Line::Renamed {
            old: old.to_owned(),
            new: new.to_owned(),
        };
    }
    if let Some((shown_as, body)) = text.split_once(": ") {
        let fields: Vec<&str> = body.split(' ').collect();
        if let ["m", sender, index, nanos] = fields[..] {
            if let (Ok(index), Ok(sent_nanos)) = (index.parse(), nanos.parse()) {
                return Line::Message {
                    shown_as: shown_as.to_owned(),
                    sender: sender.to_owned(),
                    index,
                    sent_nanos,
                };
            }
        }
    }
    Line::Other
}

/// Reads a member's stdout on a thread: each line is timestamped as soon
/// as it is read, classified, sent to `heard` and logged (with its time
/// since `epoch`) to `log`. The channel is unbounded so a busy main thread
/// never delays the reading, which would distort the latencies; it holds
/// at most what the members print.
fn listen_to(
    member: usize,
    stdout: ChildStdout,
    log: File,
    epoch: Instant,
    heard: Sender<Heard>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut log = BufWriter::new(log);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            let line = match reader.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => Line::Closed,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let text = text.trim_end_matches(['\n', '\r']);
                    let line = classify(text);
                    let _ = writeln!(log, "{:>12.3} {text}", epoch.elapsed().as_secs_f64() * 1e3);
                    line
                }
            };
            let closed = matches!(line, Line::Closed);
            let at = Instant::now();
            if heard.send(Heard { member, at, line }).is_err() || closed {
                break;
            }
        }
        let _ = log.flush();
    })
}

/// One member: its process (killed and reaped when dropped) and its stdin.
/// The stdin is kept open until the end, since a member whose input ends
/// leaves the room.
struct Member {
    process: Running,
    stdin: File,
}

/// A room being measured. Members are declared before the directory so
/// they are killed before it is removed.
struct Room {
    members: Vec<Member>,
    readers: Vec<JoinHandle<()>>,
    heard: Receiver<Heard>,
    epoch: Instant,
    n: usize,
    /// Which earlier member each joined through.
    via: Vec<Option<usize>>,
    ports: Vec<Option<u16>>,
    /// Each member's peer ID and the first four hex digits of its
    /// fingerprint (`Peer-XXXX`).
    ids: Vec<Option<(String, String)>>,
    /// Who has shown whom as present: a join line under any name, a
    /// rename, or the identity of a direct connection.
    present: Pairs,
    /// Who has shown whom by nick: `NICK joined` or `... is now known as NICK`.
    named: Pairs,
    /// (member, who) for every `left` line.
    lefts: Vec<(usize, String)>,
    closed: Vec<bool>,
    /// Members whose stdout closed before they were killed, and when.
    exited: Vec<(usize, Instant)>,
    stopping: bool,
    senders: Vec<usize>,
    messages: usize,
    /// More arguments for every member (`ROOM_ARGS`).
    extra_args: Vec<String>,
    /// `copies[receiver][sender slot][index]`.
    copies: Vec<Vec<Vec<u32>>>,
    /// The highest index seen per receiver and sender slot.
    highest: Vec<Vec<Option<usize>>>,
    delivered: usize,
    duplicates: usize,
    reordered: usize,
    /// Messages shown under another name than their sender's nick.
    misnamed: Vec<String>,
    /// Message lines that were not expected (a sender's own, an unknown
    /// sender or index).
    stray: Vec<String>,
    latencies_us: Vec<f64>,
    last_delivery: Option<Instant>,
    dir: Option<tempfile::TempDir>,
}

/// Which member has shown which other, and when every one had shown
/// every other.
struct Pairs {
    seen: Vec<Vec<bool>>,
    count: usize,
    complete_at: Option<Instant>,
}

impl Pairs {
    fn new(n: usize) -> Pairs {
        Pairs {
            seen: vec![vec![false; n]; n],
            count: 0,
            complete_at: None,
        }
    }

    fn wanted(&self) -> usize {
        self.seen.len() * self.seen.len().saturating_sub(1)
    }

    fn see(&mut self, a: usize, b: usize, at: Instant) {
        if a != b && !self.seen[a][b] {
            self.seen[a][b] = true;
            self.count += 1;
            if self.count == self.wanted() && self.complete_at.is_none() {
                self.complete_at = Some(at);
            }
        }
    }

    fn forget(&mut self, a: usize, b: usize) {
        if self.seen[a][b] {
            self.seen[a][b] = false;
            self.count -= 1;
        }
    }

    /// The members `a` has not shown.
    fn missing(&self, a: usize) -> Vec<usize> {
        (0..self.seen.len())
            .filter(|&b| b != a && !self.seen[a][b])
            .collect()
    }
}

/// The threads writing the senders' messages.
type Writers = Vec<JoinHandle<Result<(), String>>>;

/// What one room size measured.
struct Figures {
    n: usize,
    /// First spawn until every member showed every other present.
    mesh: Option<Duration>,
    /// First spawn until every member showed every other by nick.
    names: Option<Duration>,
    present: usize,
    delivered: usize,
    expected: usize,
    duplicates: usize,
    latency: Latency,
    rss_mean_kib: u64,
    rss_max_kib: u64,
}

/// Runs of one N summed up: delivery and duplicates at their worst, the
/// largest RSS, the median of the rest (see `ROOM_RUNS`).
fn summary(runs: &[Figures]) -> Figures {
    let median_of = |value: &dyn Fn(&Figures) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(value).collect();
        median(&mut values)
    };
    let median_time = |time: &dyn Fn(&Figures) -> Option<Duration>| {
        let times: Option<Vec<f64>> = runs
            .iter()
            .map(|f| time(f).map(|t| t.as_secs_f64()))
            .collect();
        times.map(|mut t| Duration::from_secs_f64(median(&mut t)))
    };
    let worst = runs
        .iter()
        .min_by(|a, b| a.delivered_percent().total_cmp(&b.delivered_percent()))
        .unwrap_or(&runs[0]);
    Figures {
        n: runs[0].n,
        mesh: median_time(&|f| f.mesh),
        names: median_time(&|f| f.names),
        present: runs.iter().map(|f| f.present).min().unwrap_or(0),
        delivered: worst.delivered,
        expected: worst.expected,
        duplicates: runs.iter().map(|f| f.duplicates).max().unwrap_or(0),
        latency: Latency {
            p50: median_of(&|f| f.latency.p50),
            p99: median_of(&|f| f.latency.p99),
        },
        rss_mean_kib: median_of(&|f| f.rss_mean_kib as f64) as u64,
        rss_max_kib: runs.iter().map(|f| f.rss_max_kib).max().unwrap_or(0),
    }
}

impl Figures {
    fn delivered_percent(&self) -> f64 {
        self.delivered as f64 * 100.0 / self.expected.max(1) as f64
    }
}

impl Room {
    fn new(n: usize, knobs: &Knobs) -> Result<(Room, Sender<Heard>), String> {
        let dir = tempfile::Builder::new()
            .prefix("rust-p2p-chat-rooms-")
            .tempdir()
            .map_err(|e| format!("could not create a temp dir: {e}"))?;
        let (tx, heard) = mpsc::channel();
        let senders = sender_members(n);
        let room = Room {
            members: Vec::with_capacity(n),
            readers: Vec::with_capacity(n),
            heard,
            epoch: Instant::now(),
            n,
            via: Vec::with_capacity(n),
            ports: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            present: Pairs::new(n),
            named: Pairs::new(n),
            lefts: Vec::new(),
            closed: vec![false; n],
            exited: Vec::new(),
            stopping: false,
            copies: vec![vec![vec![0; knobs.messages]; senders.len()]; n],
            highest: vec![vec![None; senders.len()]; n],
            senders,
            messages: knobs.messages,
            extra_args: knobs.extra_args.clone(),
            delivered: 0,
            duplicates: 0,
            reordered: 0,
            misnamed: Vec::new(),
            stray: Vec::new(),
            latencies_us: Vec::new(),
            last_delivery: None,
            dir: Some(dir),
        };
        Ok((room, tx))
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("."), |d| d.path())
    }

    fn nick_index(&self, nick: &str) -> Option<usize> {
        nick.strip_prefix('p')
            .and_then(|k| k.parse().ok())
            .filter(|&k| k < self.n)
    }

    /// The member a name stands for: a nick `pK`, or `Peer-XXXX` when one
    /// member's fingerprint starts so.
    fn resolve(&self, name: &str) -> Option<usize> {
        if let Some(short) = name.strip_prefix("Peer-") {
            let mut found = self
                .ids
                .iter()
                .enumerate()
                .filter(|(_, id)| id.as_ref().is_some_and(|(_, s)| s == short))
                .map(|(k, _)| k);
            return match (found.next(), found.next()) {
                (Some(k), None) => Some(k),
                _ => None,
            };
        }
        self.nick_index(name)
    }

    fn by_peer_id(&self, peer_id: &str) -> Option<usize> {
        self.ids
            .iter()
            .position(|id| id.as_ref().is_some_and(|(p, _)| p == peer_id))
    }

    fn expected(&self) -> usize {
        self.senders.len() * self.messages * (self.n - 1)
    }

    /// Starts member `i`, joining through a random earlier member, and
    /// waits for its port.
    fn start_member(&mut self, i: usize, rng: &mut Rng, tx: &Sender<Heard>) -> Result<(), String> {
        let nick = format!("p{i}");
        let data = self.path().join(&nick);
        let data = data
            .to_str()
            .ok_or_else(|| format!("temp path {} is not UTF-8", data.display()))?
            .to_owned();
        let log = |suffix: &str| {
            let path = self.path().join(format!("{nick}.{suffix}"));
            File::create(&path).map_err(|e| format!("could not create {}: {e}", path.display()))
        };
        let (stderr, stdout_log) = (log("err")?, log("out")?);
        let via = (i > 0).then(|| rng.below(i));
        let target = match via {
            Some(j) => {
                let port = self.ports[j].ok_or_else(|| format!("p{j} has no port"))?;
                Some(format!("127.0.0.1:{port}"))
            }
            None => None,
        };
        let mut args = vec![
            "--listen",
            "0",
            "--name",
            &nick,
            "--data-dir",
            &data,
            "--no-mdns",
            "--room",
            ROOM,
        ];
        if let Some(target) = &target {
            args.extend(["--connect", target]);
        }
        args.extend(self.extra_args.iter().map(String::as_str));
        let mut process = Running::ours_with_stderr(&nick, &args, Stdio::from(stderr))?;
        let stdout = process.take_stdout()?;
        let stdin = File::from(OwnedFd::from(process.take_stdin()?));
        self.readers
            .push(listen_to(i, stdout, stdout_log, self.epoch, tx.clone()));
        self.members.push(Member { process, stdin });
        self.via.push(via);
        self.ports.push(None);
        self.ids.push(None);
        let deadline = Instant::now() + LISTEN_DEADLINE;
        if !self.absorb_until(deadline, |room| room.ports[i].is_some()) {
            return Err(format!(
                "{nick} printed no `Listening on:` line within {LISTEN_DEADLINE:?}"
            ));
        }
        Ok(())
    }

    /// Takes in what members print until `done` or `deadline`; whether
    /// `done` holds.
    fn absorb_until(&mut self, deadline: Instant, done: impl Fn(&Room) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.heard.recv_timeout(deadline - now) {
                Ok(heard) => self.absorb(heard),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return done(self)
                }
            }
        }
    }

    fn absorb(&mut self, heard: Heard) {
        let Heard { member, at, line } = heard;
        // What members print while they are being killed is not measured.
        if self.stopping && !matches!(line, Line::Closed) {
            return;
        }
        match line {
            Line::Listening(port) => self.ports[member] = Some(port),
            Line::Identity { peer_id, short } => self.ids[member] = Some((peer_id, short)),
            Line::Connected(peer_id) => {
                if let Some(k) = self.by_peer_id(&peer_id) {
                    self.present.see(member, k, at);
                }
            }
            Line::Joined(who) => {
                if let Some(k) = self.resolve(&who) {
                    self.present.see(member, k, at);
                }
                if let Some(k) = self.nick_index(&who) {
                    self.named.see(member, k, at);
                }
            }
            Line::Renamed { old, new } => {
                if let Some(k) = self.resolve(&old) {
                    self.present.see(member, k, at);
                }
                if let Some(k) = self.nick_index(&new) {
                    self.present.see(member, k, at);
                    self.named.see(member, k, at);
                }
            }
            Line::Left(who) => {
                if let Some(k) = self.resolve(&who) {
                    self.present.forget(member, k);
                    self.named.forget(member, k);
                }
                self.lefts.push((member, who));
            }
            Line::Message {
                shown_as,
                sender,
                index,
                sent_nanos,
            } => {
                let slot = self
                    .nick_index(&sender)
                    .and_then(|s| self.senders.iter().position(|&x| x == s));
                let Some(slot) =
                    slot.filter(|&slot| index < self.messages && self.senders[slot] != member)
                else {
                    self.stray
                        .push(format!("p{member} showed `{shown_as}: m {sender} {index}`"));
                    return;
                };
                let copies = &mut self.copies[member][slot][index];
                *copies += 1;
                if *copies > 1 {
                    self.duplicates += 1;
                    return;
                }
                self.delivered += 1;
                self.last_delivery = Some(at);
                let sent = self.epoch + Duration::from_nanos(sent_nanos);
                self.latencies_us
                    .push(at.saturating_duration_since(sent).as_secs_f64() * 1e6);
                if shown_as != sender {
                    self.misnamed.push(format!(
                        "p{member} showed {sender}'s message {index} as from {shown_as:?}"
                    ));
                }
                let highest = &mut self.highest[member][slot];
                if highest.is_some_and(|h| index < h) {
                    self.reordered += 1;
                } else {
                    *highest = Some(index);
                }
            }
            Line::Other => {}
            Line::Closed => {
                self.closed[member] = true;
                if !self.stopping {
                    self.exited.push((member, at));
                }
            }
        }
    }

    /// Starts one writer thread per sender, all sending at the same pace
    /// from the same start; returns the threads and when the last message
    /// is due.
    fn send(&self, pace: Duration) -> Result<(Writers, Instant), String> {
        let start = Instant::now() + Duration::from_millis(10);
        let mut writers = Vec::with_capacity(self.senders.len());
        for &s in &self.senders {
            let mut stdin = self.members[s]
                .stdin
                .try_clone()
                .map_err(|e| format!("could not share p{s}'s stdin: {e}"))?;
            let (epoch, messages) = (self.epoch, self.messages);
            writers.push(thread::spawn(move || {
                for i in 0..messages {
                    let due = start + pace * i as u32;
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    let nanos = epoch.elapsed().as_nanos();
                    stdin
                        .write_all(format!("m p{s} {i} {nanos}\n").as_bytes())
                        .map_err(|e| format!("could not write message {i} to p{s}: {e}"))?;
                }
                Ok(())
            }));
        }
        Ok((writers, start + pace * self.messages as u32))
    }

    /// Whether every member still running has shown every other one
    /// still running in `pairs`: once a member has exited, the wait for
    /// the mesh ends there rather than at its deadline.
    fn live_complete(&self, pairs: &Pairs) -> bool {
        let live: Vec<usize> = (0..self.n).filter(|&k| !self.closed[k]).collect();
        live.iter()
            .all(|&a| live.iter().all(|&b| a == b || pairs.seen[a][b]))
    }

    /// Whether every member still running has shown every message it
    /// should.
    /// (Nothing more is waited for from a sender that has exited.)
    fn all_delivered(&self) -> bool {
        (0..self.n).filter(|&r| !self.closed[r]).all(|r| {
            self.senders
                .iter()
                .enumerate()
                .filter(|&(_, &s)| s != r && !self.closed[s])
                .all(|(slot, _)| self.copies[r][slot].iter().all(|&c| c > 0))
        })
    }

    /// CPU time all members' threads have used so far, and how long
    /// they waited for a CPU while runnable.
    /// Takes in what members print until their CPU over a [`SETTLE_STEP`]
    /// is under [`SETTLED_CPU_SHARE`] of a core, or `deadline`; the share
    /// in the last step.
    fn settle(&mut self, deadline: Instant) -> f64 {
        loop {
            let before = self.sched_times().on_cpu;
            let step = Instant::now();
            self.absorb_until(step + SETTLE_STEP, |_| false);
            let used = self.sched_times().on_cpu.saturating_sub(before);
            let share = used.as_secs_f64() / step.elapsed().as_secs_f64();
            if share < SETTLED_CPU_SHARE || Instant::now() >= deadline {
                return share;
            }
        }
    }

    fn sched_times(&self) -> SchedTimes {
        let mut total = SchedTimes::default();
        for member in &self.members {
            if let Some(times) = sched_times(member.process.pid()) {
                total.on_cpu += times.on_cpu;
                total.waiting += times.waiting;
            }
        }
        total
    }

    /// How each member that exited by itself ended, with the last line of
    /// its stderr.
    fn exits(&mut self) -> Vec<String> {
        let mut exits = Vec::new();
        for &(member, at) in &self.exited {
            let status = self.members[member]
                .process
                .ended_within(Duration::from_secs(1))
                .map_or_else(|| "still running".to_owned(), |s| s.to_string());
            let path = self.path().join(format!("p{member}.err"));
            let last = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.lines().last().map(str::to_owned))
                .unwrap_or_default();
            exits.push(format!(
                "p{member} (joined via {}) closed its stdout {:.2} s after the first spawn ({status}); stderr: {last:?}",
                self.via[member].map_or("-".to_owned(), |v| format!("p{v}")),
                (at - self.epoch).as_secs_f64()
            ));
        }
        exits
    }

    /// VmRSS of every member, KiB.
    fn rss(&self) -> Vec<u64> {
        self.members
            .iter()
            .map(|m| status_kib(m.process.pid(), "VmRSS:"))
            .collect()
    }

    /// Kills and reaps every member, then waits (bounded) for the readers
    /// to see their stdout close.
    fn stop(&mut self) {
        self.stopping = true;
        self.members.clear();
        let deadline = Instant::now() + CLOSE_DEADLINE;
        self.absorb_until(deadline, |room| room.closed.iter().all(|&c| c));
        for reader in self.readers.drain(..) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }

    /// Keeps the directory if asked; otherwise it is removed on drop.
    fn keep(&mut self) -> Option<PathBuf> {
        self.dir.take().map(tempfile::TempDir::keep)
    }
}

/// Machine CPU time since `start` ("1.2 s"), or "?" if unknown.
fn busy_since(start: Option<Duration>) -> String {
    match (start, machine_busy()) {
        (Some(start), Some(now)) => format!("{:.1} s", now.saturating_sub(start).as_secs_f64()),
        _ => "?".to_owned(),
    }
}

/// The members that send: the first, the middle and the last started.
fn sender_members(n: usize) -> Vec<usize> {
    let mut senders = vec![0, n / 2, n - 1];
    senders.dedup();
    senders.truncate(SENDERS);
    senders
}

/// Members by name, the first few: "p1 p4 p7 ... (+12)".
fn members_list(members: &[usize]) -> String {
    const SHOWN: usize = 12;
    let mut out: Vec<String> = members
        .iter()
        .take(SHOWN)
        .map(|m| format!("p{m}"))
        .collect();
    if members.len() > SHOWN {
        out.push(format!("... (+{})", members.len() - SHOWN));
    }
    out.join(" ")
}

/// Missing indices as ranges: "0-41, 57".
fn ranges(indices: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            indices[i].to_string()
        } else {
            format!("{}-{}", indices[i], indices[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

fn print_limited(title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    println!("  {title} ({}):", items.len());
    for item in items.iter().take(SHOWN_PROBLEMS) {
        println!("    {item}");
    }
    if items.len() > SHOWN_PROBLEMS {
        println!("    ... and {} more", items.len() - SHOWN_PROBLEMS);
    }
}

/// Measures one room size.
fn measure(n: usize, knobs: &Knobs, failures: &mut Vec<String>) -> Option<Figures> {
    let seed = knobs.seed.wrapping_add(n as u64);
    let mut rng = Rng::new(seed);
    let (mut room, tx) = match Room::new(n, knobs) {
        Ok(room) => room,
        Err(e) => {
            failures.push(format!("N={n}: {e}"));
            return None;
        }
    };
    println!(
        "N={n} (topology seed {seed}; ROOM_SEED={} reproduces it); extra arguments: {:?}",
        knobs.seed, knobs.extra_args
    );
    let busy_at_start = machine_busy();
    let started = Instant::now();
    for i in 0..n {
        if let Err(e) = room.start_member(i, &mut rng, &tx) {
            failures.push(format!("N={n}: {e}"));
            println!("  FAILED: {e}\n");
            room.stop();
            return None;
        }
    }
    drop(tx);
    let spawned = started.elapsed();
    room.absorb_until(started + knobs.mesh_deadline, |r| {
        r.live_complete(&r.present) && r.live_complete(&r.named)
    });
    let mesh_wall = started.elapsed();
    let mesh_cpu = room.sched_times();
    let mesh_busy = busy_since(busy_at_start);
    let since_start = |pairs: &Pairs| pairs.complete_at.map(|at| at - started);
    let (mesh, names) = (since_start(&room.present), since_start(&room.named));
    println!(
        "  started all {n} in {:.2} s; wanted {} (member, other) pairs",
        spawned.as_secs_f64(),
        room.present.wanted()
    );
    for (what, took, pairs) in [
        (
            "present (any join line, rename or direct connection)",
            mesh,
            &room.present,
        ),
        (
            "by nick (`pK joined` or `... is now known as pK`)",
            names,
            &room.named,
        ),
    ] {
        match took {
            Some(took) => println!(
                "  mesh, every member showed every other {what}: {:.2} s after the first spawn",
                took.as_secs_f64()
            ),
            None => println!(
                "  mesh, every member showed every other {what}: INCOMPLETE when the wait ended \
                 {:.1} s after the first spawn: {} of {} pairs",
                mesh_wall.as_secs_f64(),
                pairs.count,
                pairs.wanted()
            ),
        }
    }
    let mut missing = Vec::new();
    for a in 0..n {
        let absent = room.present.missing(a);
        let unnamed: Vec<usize> = room
            .named
            .missing(a)
            .into_iter()
            .filter(|b| !absent.contains(b))
            .collect();
        if !absent.is_empty() || !unnamed.is_empty() {
            missing.push(format!(
                "p{a} (joined via {}): {} of {} never shown [{}]; {} more shown only as Peer-XXXX [{}]",
                room.via[a].map_or("-".to_owned(), |v| format!("p{v}")),
                absent.len(),
                n - 1,
                members_list(&absent),
                unnamed.len(),
                members_list(&unnamed)
            ));
        }
    }
    print_limited("members missing joins", &missing);
    println!(
        "  CPU while the mesh formed: members {:.1} s (machine {mesh_busy}) over {:.1} s; members' threads waited {:.1} s for a CPU",
        mesh_cpu.on_cpu.as_secs_f64(),
        mesh_wall.as_secs_f64(),
        mesh_cpu.waiting.as_secs_f64()
    );

    if !knobs.settle_deadline.is_zero() {
        let settling = Instant::now();
        let share = room.settle(settling + knobs.settle_deadline);
        println!(
            "  room {} {:.2} s after the mesh formed (members' CPU in the last {} ms: {:.0}% of a core)",
            if share < SETTLED_CPU_SHARE {
                "settled"
            } else {
                "STILL BUSY; messages sent anyway"
            },
            settling.elapsed().as_secs_f64(),
            SETTLE_STEP.as_millis(),
            share * 100.0
        );
    }

    let senders: Vec<String> = room.senders.iter().map(|s| format!("p{s}")).collect();
    let writers = match room.send(knobs.pace) {
        Ok(sent) => Some(sent),
        Err(e) => {
            failures.push(format!("N={n}: {e}"));
            None
        }
    };
    let mut write_errors = Vec::new();
    if let Some((writers, last_due)) = writers {
        let sending = Instant::now();
        let before = room.sched_times();
        let busy_before = machine_busy();
        room.absorb_until(last_due + DELIVERY_DEADLINE, Room::all_delivered);
        let after = room.sched_times();
        let busy = busy_since(busy_before);
        let waited = sending.elapsed();
        let quiet_before = room.sched_times();
        let quiet_busy = machine_busy();
        room.absorb_until(Instant::now() + QUIET_WINDOW, |_| false);
        let quiet = room.sched_times();
        let quiet_busy = busy_since(quiet_busy);
        let rss = room.rss();
        let exits = room.exits();
        room.stop();
        println!(
            "  CPU while the messages went out: members {:.2} s (machine {busy}) over {:.2} s; members' threads waited {:.2} s for a CPU",
            after.on_cpu.saturating_sub(before.on_cpu).as_secs_f64(),
            waited.as_secs_f64(),
            after.waiting.saturating_sub(before.waiting).as_secs_f64()
        );
        println!(
            "  CPU of the quiet room in the {:.0} s after: members {:.2} s (machine {quiet_busy})",
            QUIET_WINDOW.as_secs_f64(),
            quiet
                .on_cpu
                .saturating_sub(quiet_before.on_cpu)
                .as_secs_f64()
        );
        print_limited("members that exited by themselves", &exits);
        // The members are gone, so a writer stuck on a full pipe has
        // failed by now.
        for writer in writers {
            match writer.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => write_errors.push(e),
                Err(_) => write_errors.push("a writer thread panicked".into()),
            }
        }
        let figures = report(
            &mut room,
            knobs,
            &senders,
            (mesh, names),
            &rss,
            write_errors,
        );
        finish(&mut room, knobs);
        Some(figures)
    } else {
        room.stop();
        finish(&mut room, knobs);
        None
    }
}

/// Prints what one room size measured, with whatever went wrong.
fn report(
    room: &mut Room,
    knobs: &Knobs,
    senders: &[String],
    (mesh, names): (Option<Duration>, Option<Duration>),
    rss: &[u64],
    write_errors: Vec<String>,
) -> Figures {
    let n = room.n;
    let expected = room.expected();
    let pace = if knobs.pace.is_zero() {
        "all at once".to_owned()
    } else {
        format!("{} us apart", knobs.pace.as_micros())
    };
    let latency_figures = latency(&mut room.latencies_us);
    let max_latency_ms = room.latencies_us.last().copied().unwrap_or(0.0) / 1e3;
    let figures = Figures {
        n,
        mesh,
        names,
        present: room.present.count,
        delivered: room.delivered,
        expected,
        duplicates: room.duplicates,
        latency: latency_figures,
        rss_mean_kib: rss.iter().sum::<u64>() / rss.len().max(1) as u64,
        rss_max_kib: rss.iter().copied().max().unwrap_or(0),
    };
    println!(
        "  messages: {} senders ({}) x {}, each sender's {pace}, at the same time",
        senders.len(),
        senders.join(", "),
        room.messages
    );
    println!(
        "  delivered {}/{} ({:.2}%), duplicates {}, out of order {}, under another name {}",
        room.delivered,
        expected,
        figures.delivered_percent(),
        room.duplicates,
        room.reordered,
        room.misnamed.len()
    );
    if let Some(last) = room.last_delivery {
        println!(
            "  latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; last message shown {:.2} s after the first spawn",
            figures.latency.p50 / 1e3,
            figures.latency.p99 / 1e3,
            max_latency_ms,
            (last - room.epoch).as_secs_f64()
        );
    }
    println!(
        "  VmRSS after the messages: mean {:.1} MB, max {:.1} MB",
        mb(figures.rss_mean_kib),
        mb(figures.rss_max_kib)
    );

    // Receivers that missed the same messages of a sender, and had shown
    // that sender alike, are listed together.
    let mut lost_alike: BTreeMap<(usize, String, &str), (usize, Vec<usize>)> = BTreeMap::new();
    for receiver in 0..n {
        for (slot, &sender) in room.senders.iter().enumerate() {
            if sender == receiver {
                continue;
            }
            let lost: Vec<usize> = (0..room.messages)
                .filter(|&i| room.copies[receiver][slot][i] == 0)
                .collect();
            if !lost.is_empty() {
                let knew = if room.named.seen[receiver][sender] {
                    "had shown the sender by nick"
                } else if room.present.seen[receiver][sender] {
                    "had shown the sender only as Peer-XXXX"
                } else {
                    "had NOT shown the sender at all"
                };
                lost_alike
                    .entry((sender, ranges(&lost), knew))
                    .or_insert_with(|| (lost.len(), Vec::new()))
                    .1
                    .push(receiver);
            }
        }
    }
    let missing: Vec<String> = lost_alike
        .into_iter()
        .map(|((sender, lost, knew), (count, receivers))| {
            format!(
                "p{sender}'s {lost} ({count} messages) not shown by {} receiver(s), which {knew}: {}",
                receivers.len(),
                members_list(&receivers)
            )
        })
        .collect();
    let mut duplicated = Vec::new();
    for receiver in 0..n {
        for (slot, &sender) in room.senders.iter().enumerate() {
            let twice: Vec<usize> = (0..room.messages)
                .filter(|&i| room.copies[receiver][slot][i] > 1)
                .collect();
            if !twice.is_empty() {
                duplicated.push(format!(
                    "p{receiver} showed {} of p{sender}'s more than once: {}",
                    twice.len(),
                    ranges(&twice)
                ));
            }
        }
    }
    let lefts: Vec<String> = room
        .lefts
        .iter()
        .map(|(member, who)| format!("p{member} showed {who} leaving"))
        .collect();
    print_limited("missing messages", &missing);
    print_limited("duplicated messages", &duplicated);
    print_limited("shown under another name", &room.misnamed);
    print_limited("unexpected lines", &room.stray);
    print_limited("members leaving", &lefts);
    print_limited("writing to a sender failed", &write_errors);
    print_stderr(room);
    println!();
    let _ = std::io::stdout().flush();
    figures
}

/// What the members wrote to stderr, alike lines counted together (digits
/// and peer IDs blanked).
fn print_stderr(room: &Room) {
    let mut alike: BTreeMap<String, (usize, usize, String)> = BTreeMap::new();
    for member in 0..room.n {
        let path = room.path().join(format!("p{member}.err"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut seen_here = std::collections::HashSet::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let shape: String = line
                .split(' ')
                .map(|w| {
                    if w.starts_with("12D3KooW") {
                        "<peer-id>".to_owned()
                    } else {
                        w.chars()
                            .map(|c| if c.is_ascii_digit() { '#' } else { c })
                            .collect()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let entry = alike
                .entry(shape.clone())
                .or_insert_with(|| (0, 0, format!("p{member}: {line}")));
            entry.0 += 1;
            if seen_here.insert(shape) {
                entry.1 += 1;
            }
        }
    }
    if alike.is_empty() {
        return;
    }
    let mut rows: Vec<_> = alike.into_values().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let rows: Vec<String> = rows
        .into_iter()
        .map(|(count, members, example)| {
            format!("{count} x from {members} member(s), e.g. {example}")
        })
        .collect();
    print_limited("stderr lines, alike counted together", &rows);
}

fn finish(room: &mut Room, knobs: &Knobs) {
    if knobs.keep {
        if let Some(path) = room.keep() {
            println!("  logs kept in {}\n", path.display());
        }
    }
}

fn print_header() {
    println!(
        "{:>4} {:>9} {:>9} {:>11} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "N", "mesh", "nicks", "joins", "delivered", "dups", "p50", "p99", "RSS mean", "RSS max"
    );
}

fn print_row(f: &Figures) {
    let time = |t: Option<Duration>| {
        t.map_or_else(
            || "INCOMPL.".to_owned(),
            |m| format!("{:.2}s", m.as_secs_f64()),
        )
    };
    // Latencies only of what was delivered.
    let ms = |us: f64| {
        if f.delivered == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}ms", us / 1e3)
        }
    };
    println!(
        "{:>4} {:>9} {:>9} {:>11} {:>9.2}% {:>6} {:>9} {:>9} {:>7.1}MB {:>7.1}MB",
        f.n,
        time(f.mesh),
        time(f.names),
        format!("{}/{}", f.present, f.n * (f.n - 1)),
        f.delivered_percent(),
        f.duplicates,
        ms(f.latency.p50),
        ms(f.latency.p99),
        mb(f.rss_mean_kib),
        mb(f.rss_max_kib)
    );
}

fn print_bars(all: &[Figures]) {
    println!("\nbars at N={BAR_SIZE}:");
    let Some(f) = all.iter().find(|f| f.n == BAR_SIZE) else {
        println!("  N={BAR_SIZE} was not measured (ROOM_SIZES)");
        return;
    };
    let verdict = |met: bool| if met { "ok" } else { "MISS" };
    let p99_ms = f.latency.p99 / 1e3;
    let rows = [
        (
            "delivered, each once",
            format!("{:.2}%, {} dup.", f.delivered_percent(), f.duplicates),
            format!("{BAR_DELIVERED_PERCENT}%, 0 dup."),
            f.delivered_percent() >= BAR_DELIVERED_PERCENT && f.duplicates == 0,
        ),
        (
            "latency p99",
            // A p99 of part of the messages is shown with that part.
            match f.delivered {
                0 => "-".to_owned(),
                d if d < f.expected => {
                    format!("{p99_ms:.1} ms of {:.1}%", f.delivered_percent())
                }
                _ => format!("{p99_ms:.1} ms"),
            },
            format!("< {BAR_P99_MS} ms"),
            f.delivered > 0 && p99_ms < BAR_P99_MS,
        ),
        (
            "RSS, largest member",
            format!("{:.1} MB", mb(f.rss_max_kib)),
            format!("<= {BAR_RSS_MB} MB"),
            mb(f.rss_max_kib) <= BAR_RSS_MB,
        ),
    ];
    for (name, value, bar, met) in rows {
        println!(
            "  {name:<22} {value:>18}   (bar: {bar:<12}) {}",
            verdict(met)
        );
    }
}

fn main() {
    let knobs = Knobs::from_env().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    println!("{}", machine());
    println!(
        "load average at the start: {} (other work on the machine slows the members down)",
        load_average()
    );
    println!(
        "Rooms on 127.0.0.1: N members in #{ROOM}, each joining through a random earlier one; \
         {SENDERS} senders x {} messages.\n",
        knobs.messages
    );
    let mut failures = Vec::new();
    let mut all = Vec::new();
    let mut runs = Vec::new();
    for &n in &knobs.sizes {
        let of_n: Vec<Figures> = (0..knobs.runs)
            .filter_map(|_| measure(n, &knobs, &mut failures))
            .collect();
        if !of_n.is_empty() {
            all.push(summary(&of_n));
        }
        runs.extend(of_n);
    }
    if knobs.runs > 1 && !runs.is_empty() {
        println!("each run:");
        print_header();
        for figures in &runs {
            print_row(figures);
        }
        println!();
        println!(
            "summed up ({} runs per N: worst delivery, largest RSS, median of the rest):",
            knobs.runs
        );
    }
    if !all.is_empty() {
        print_header();
        for figures in &all {
            print_row(figures);
        }
        println!(
            "(mesh: first spawn until every member showed every other present; nicks: ... by \
             nick; joins: (member, other) pairs shown present;\n delivered: of senders x messages x (N-1) receivers; latency: \
             written to the sender's stdin until read from a receiver's stdout; RSS: VmRSS after \
             the messages)"
        );
    }
    print_bars(&all);
    if !failures.is_empty() {
        println!();
        for failure in &failures {
            println!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
