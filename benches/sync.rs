//! Sync of missed messages: how long a member who was away takes, once
//! back, to show the lines written to it while it was gone.
//!
//! Run with `cargo bench --bench sync`. Knobs (environment):
//! - `SYNC_MESSAGES` (default 10000): lines A writes while B is away;
//! - `SYNC_RUNS` (default 3): runs, each with fresh data dirs; the median
//!   and the range are reported;
//! - `SYNC_BEFORE` (default 10): lines A sends B while both are there, so
//!   B has a history to resume from (its restart must not show them again
//!   as new lines);
//! - `SYNC_STOP` (`close`, the default, or `kill`): how B is stopped: its
//!   stdin closed, as a person quits (killed by PID if it has not exited
//!   within 5 s), or SIGKILL by PID, as a crash;
//! - `SYNC_DEADLINE_SECS` (default 60): longest the restarted B may take
//!   to show them all;
//! - `SYNC_KEEP` (set to anything): keep each run's temp dir (the data
//!   dirs, every process's stdout with the time each line was read, and
//!   its stderr) and print where it is.
//!
//! Each run, on 127.0.0.1 with `--no-mdns`, with one clock (the
//! benchmark's) for every figure:
//! 1. A listens (`--listen 0 --data-dir A`), B connects (`--connect
//!    127.0.0.1:PORT --data-dir B`); both show `Type messages`. A sends
//!    the `SYNC_BEFORE` lines `b 0`.. and B shows them;
//! 2. B is stopped (`SYNC_STOP`) and reaped, then 100 ms are left for A to
//!    see the connection close (on loopback it closes at once);
//! 3. A's stdin gets N = `SYNC_MESSAGES` distinct lines `s 0`..`s N-1` in
//!    one write. With no one to send them to, A keeps them in its history
//!    as queued: A must print nothing for them but that they are queued
//!    and (at 10,000) that its input waits, and `rust-p2p-chat history
//!    --json --data-dir A` is run until it lists all N as outgoing lines
//!    (bounded; their statuses are reported, all should be `queued`; the
//!    time is only as fine as the polling, a run of `history` each time);
//! 4. B is started again with its data dir, and timed, from just before
//!    its spawn and from its `Connected to peer!` line, until its stdout
//!    has shown every one of the N lines as `Peer: s I`. Every line is
//!    counted: missing ones, ones shown more than once, out of order, and
//!    `b I` lines shown again as new;
//! 5. B's history is run until it holds the N lines as received (bounded;
//!    time since the last line was shown reported beside, not part of the
//!    bar); B's stdout is then watched for one more second, for late
//!    duplicates, and A's statuses after the sync are reported;
//! 6. A's stdin is closed, which ends its chat, then B's (B, a connector,
//!    is then reconnecting to A, and must still end when its input does);
//!    each is killed by PID if it has not exited within 5 s; the temp dir
//!    is removed.
//!
//! Whether B fetches the lines it missed from A's history or A publishes
//! its queued lines once B is back, it is the sync of missed messages the
//! user sees: what is measured is the time until B has shown them all.
//!
//! The bar: "Sync of 10,000 missed messages completes in under 2 s on
//! loopback", judged on the
//! median of spawn to the last line, with every run whole (each line shown
//! once). A miss is reported, not fatal; a run that could not be carried
//! out fails the benchmark (exit 1) after the other runs.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use support::process::{port_in, Ended, Running};
use support::{env_usize, grouped, load_average, machine, median};

/// The bar: N missed messages shown within this, on loopback.
const BAR_MESSAGES: usize = 10_000;
const BAR_SECONDS: f64 = 2.0;

/// Longest a process may take to print a status line.
const STATUS_DEADLINE: Duration = Duration::from_secs(10);

/// Longest a batch of lines may take to be written to a process's stdin.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// Longest A may take to store the lines it cannot send.
const QUEUE_DEADLINE: Duration = Duration::from_secs(30);

/// Longest one run of `rust-p2p-chat history` may take.
const HISTORY_DEADLINE: Duration = Duration::from_secs(10);

/// Longest B may take to store what it was sent, once it has shown it.
const STORED_DEADLINE: Duration = Duration::from_secs(30);

/// Pause between two runs of `history` while waiting for a store.
const POLL_PAUSE: Duration = Duration::from_millis(20);

/// Left to A to see B's connection close before it is given the lines.
const SETTLE: Duration = Duration::from_millis(100);

/// How long B's stdout is watched after the last line, for duplicates.
const QUIET_WINDOW: Duration = Duration::from_secs(1);

/// Longest a process may take to exit once its input is closed.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// Lines kept as examples of a kind of problem.
const EXAMPLES: usize = 5;

/// What the environment asks for.
struct Knobs {
    messages: usize,
    runs: usize,
    before: usize,
    kill: bool,
    deadline: Duration,
    keep: bool,
}

impl Knobs {
    fn from_env() -> Result<Knobs, String> {
        let kill = match std::env::var("SYNC_STOP").as_deref() {
            Err(_) | Ok("close") => false,
            Ok("kill") => true,
            Ok(other) => {
                return Err(format!(
                    "SYNC_STOP: {other:?} is neither `close` nor `kill`"
                ))
            }
        };
        Ok(Knobs {
            messages: env_usize("SYNC_MESSAGES", BAR_MESSAGES).max(1),
            runs: env_usize("SYNC_RUNS", 3).max(1),
            before: env_usize("SYNC_BEFORE", 10),
            kill,
            deadline: Duration::from_secs(env_usize("SYNC_DEADLINE_SECS", 60).max(1) as u64),
            keep: std::env::var_os("SYNC_KEEP").is_some(),
        })
    }
}

/// A line a process printed and when the benchmark read it; `None` when
/// its stdout closed.
struct Heard {
    at: Instant,
    line: Option<String>,
}

/// Reads a process's stdout on a thread: each line is timestamped as soon
/// as it is read, sent on the returned channel and logged (with its time
/// since `epoch`). The channel is unbounded so the reading never waits for
/// the benchmark; it holds at most what the process prints.
fn watch(stdout: ChildStdout, log: File, epoch: Instant) -> Receiver<Heard> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut log = BufWriter::new(log);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Heard {
                        at: Instant::now(),
                        line: None,
                    });
                    break;
                }
                Ok(_) => {
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&bytes)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    let _ = writeln!(log, "{:>12.3} {text}", (at - epoch).as_secs_f64() * 1e3);
                    if tx
                        .send(Heard {
                            at,
                            line: Some(text),
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = log.flush();
    });
    rx
}

/// One process of the chat: killed and reaped by its PID when dropped.
struct Member {
    process: Running,
    stdin: Option<ChildStdin>,
    heard: Receiver<Heard>,
    /// Its last lines, for error messages.
    recent: Vec<String>,
}

impl Member {
    /// Starts the binary with `args`, its stdout logged to `DIR/LOG.out`
    /// and its stderr to `DIR/LOG.err`.
    fn start(name: &str, args: &[&str], dir: &Path, log: &str) -> Result<Member, String> {
        let file = |suffix: &str| {
            let path = dir.join(format!("{log}.{suffix}"));
            File::create(&path).map_err(|e| format!("could not create {}: {e}", path.display()))
        };
        let (stderr, stdout_log) = (file("err")?, file("out")?);
        let epoch = Instant::now();
        let mut process = Running::ours_with_stderr(name, args, Stdio::from(stderr))?;
        let stdin = process.take_stdin()?;
        let heard = watch(process.take_stdout()?, stdout_log, epoch);
        Ok(Member {
            process,
            stdin: Some(stdin),
            heard,
            recent: Vec::new(),
        })
    }

    fn name(&self) -> &str {
        &self.process.name
    }

    /// The next line within `within`: `Ok(None)` when none came, an error
    /// when stdout closed.
    fn next(&mut self, within: Duration) -> Result<Option<(Instant, String)>, String> {
        match self.heard.recv_timeout(within) {
            Ok(Heard {
                at,
                line: Some(line),
            }) => {
                if self.recent.len() == EXAMPLES {
                    self.recent.remove(0);
                }
                self.recent.push(line.clone());
                Ok(Some((at, line)))
            }
            Ok(Heard { line: None, .. }) | Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .process
                    .ended_within(Duration::from_secs(1))
                    .map_or_else(|| "still running".to_owned(), |s| s.to_string());
                Err(format!(
                    "{}: stdout closed ({status}); its last lines: {:?}",
                    self.name(),
                    self.recent
                ))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
        }
    }

    /// Reads lines until one starts with `prefix`, for at most `within`.
    fn wait_for(&mut self, prefix: &str, within: Duration) -> Result<(Instant, String), String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left)? {
                Some((at, line)) if line.starts_with(prefix) => return Ok((at, line)),
                Some(_) if !left.is_zero() => {}
                _ => {
                    return Err(format!(
                    "{}: no line starting with {prefix:?} within {within:?}; its last lines: {:?}",
                    self.name(),
                    self.recent
                ))
                }
            }
        }
    }

    /// Everything printed so far, without waiting.
    fn drain(&mut self) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        while let Some((_, line)) = self.next(Duration::ZERO)? {
            lines.push(line);
        }
        Ok(lines)
    }

    /// Writes `bytes` to its stdin on a thread, waiting at most `within`
    /// (a process that stops reading would otherwise block the benchmark;
    /// the thread then ends when the process is killed).
    fn write(&mut self, bytes: Vec<u8>, within: Duration) -> Result<(), String> {
        let mut stdin = self
            .stdin
            .take()
            .ok_or_else(|| format!("{}: stdin already closed", self.name()))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let written = stdin.write_all(&bytes).and_then(|()| stdin.flush());
            let _ = tx.send(written.map(|()| stdin));
        });
        match rx.recv_timeout(within) {
            Ok(Ok(stdin)) => {
                self.stdin = Some(stdin);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("could not write to {}'s stdin: {e}", self.name())),
            Err(_) => Err(format!(
                "{}'s stdin took no more input within {within:?}",
                self.name()
            )),
        }
    }

    /// Closes its stdin, which ends its chat, and waits for it to exit;
    /// kills it by PID if it has not within [`EXIT_DEADLINE`]. Says how
    /// it ended, or why that is a problem.
    fn quit(mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let name = self.process.name.clone();
        match self.process.finish(EXIT_DEADLINE) {
            Ended::Exited(status) if status.success() => Ok(()),
            Ended::Exited(status) => Err(format!("{name} ended with {status}")),
            Ended::Killed => Err(format!(
                "{name} did not exit within {EXIT_DEADLINE:?} of its stdin closing; killed"
            )),
        }
    }
}

/// A line of `rust-p2p-chat history --json`, the fields used here.
struct Row {
    outgoing: bool,
    status: String,
    text: String,
}

/// Runs `rust-p2p-chat history --json` on a data dir, bounded.
fn history(data: &str, limit: usize, logs: &Path) -> Result<Vec<Row>, String> {
    let err_path = logs.join("history.err");
    let stderr = File::create(&err_path)
        .map_err(|e| format!("could not create {}: {e}", err_path.display()))?;
    let limit = limit.to_string();
    let mut process = Running::ours_with_stderr(
        "history",
        &["history", "--json", "--limit", &limit, "--data-dir", data],
        Stdio::from(stderr),
    )?;
    drop(process.take_stdin()?);
    let mut stdout = process.take_stdout()?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let _ = tx.send(stdout.read_to_string(&mut text).map(|_| text));
    });
    let text = match rx.recv_timeout(HISTORY_DEADLINE) {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return Err(format!("history --data-dir {data}: could not read: {e}")),
        // `process` is killed and reaped on return.
        Err(_) => {
            return Err(format!(
                "history --data-dir {data}: no end within {HISTORY_DEADLINE:?}"
            ))
        }
    };
    match process.ended_within(HISTORY_DEADLINE) {
        Some(status) if status.success() => {}
        status => {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!(
                "history --data-dir {data}: {}; stderr: {:?}",
                status.map_or_else(|| "did not exit".to_owned(), |s| s.to_string()),
                stderr.trim()
            ));
        }
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).map_err(|e| {
                format!("history --json printed a line that is not JSON ({e}): {l:?}")
            })?;
            let field = |name: &str| value.get(name).and_then(|v| v.as_str()).unwrap_or_default();
            Ok(Row {
                outgoing: value.get("outgoing").and_then(|v| v.as_bool()) == Some(true),
                status: field("status").to_owned(),
                text: field("text").to_owned(),
            })
        })
        .collect()
}

/// The index of a benchmark line `s I` below `n`.
fn missed_index(text: &str, n: usize) -> Option<usize> {
    text.strip_prefix("s ")
        .and_then(|i| i.parse().ok())
        .filter(|&i| i < n)
}

/// What a data dir's history holds of the lines `s I`.
struct Held {
    /// When a run of `history` first listed all N, if one did.
    all_at: Option<Instant>,
    /// Distinct lines listed by the last run.
    distinct: usize,
    /// Their statuses, counted (a line stored twice counts twice).
    statuses: BTreeMap<String, usize>,
}

/// Runs `history` on `data` until it lists every line `s I` (I < `n`) as
/// outgoing (or received, for `outgoing` false), or `within` has passed.
fn poll_history(
    data: &str,
    n: usize,
    outgoing: bool,
    within: Duration,
    logs: &Path,
) -> Result<Held, String> {
    let deadline = Instant::now() + within;
    let limit = n * 2 + 1000;
    loop {
        let rows = history(data, limit, logs)?;
        let at = Instant::now();
        let mut seen = vec![false; n];
        let mut distinct = 0;
        let mut statuses = BTreeMap::new();
        for row in rows.iter().filter(|r| r.outgoing == outgoing) {
            if let Some(i) = missed_index(&row.text, n) {
                *statuses.entry(row.status.clone()).or_insert(0) += 1;
                if !seen[i] {
                    seen[i] = true;
                    distinct += 1;
                }
            }
        }
        if distinct == n || at >= deadline {
            return Ok(Held {
                all_at: (distinct == n).then_some(at),
                distinct,
                statuses,
            });
        }
        thread::sleep(POLL_PAUSE);
    }
}

/// "queued 10,000, sent 3".
fn show_statuses(statuses: &BTreeMap<String, usize>) -> String {
    if statuses.is_empty() {
        return "none".to_owned();
    }
    statuses
        .iter()
        .map(|(status, count)| format!("{status} {}", grouped(*count as f64)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the restarted B showed.
struct Tally {
    n: usize,
    before: usize,
    copies: Vec<u32>,
    shown: usize,
    duplicates: usize,
    out_of_order: usize,
    highest: Option<usize>,
    /// `Peer: b I` lines, seen before B stopped, shown again as new.
    reshown: usize,
    /// Other `Peer: ` lines.
    stray: Vec<String>,
    stray_count: usize,
    connected: Option<Instant>,
    first: Option<Instant>,
    /// When the last of the N distinct lines was shown.
    complete: Option<Instant>,
}

impl Tally {
    fn new(n: usize, before: usize) -> Tally {
        Tally {
            n,
            before,
            copies: vec![0; n],
            shown: 0,
            duplicates: 0,
            out_of_order: 0,
            highest: None,
            reshown: 0,
            stray: Vec::new(),
            stray_count: 0,
            connected: None,
            first: None,
            complete: None,
        }
    }

    fn absorb(&mut self, at: Instant, line: &str) {
        if line.starts_with("Connected to peer!") {
            self.connected.get_or_insert(at);
            return;
        }
        let Some(text) = line.strip_prefix("Peer: ") else {
            return;
        };
        if let Some(i) = missed_index(text, self.n) {
            self.first.get_or_insert(at);
            self.copies[i] += 1;
            if self.copies[i] > 1 {
                self.duplicates += 1;
                return;
            }
            self.shown += 1;
            if self.shown == self.n {
                self.complete = Some(at);
            }
            if self.highest.is_some_and(|h| i < h) {
                self.out_of_order += 1;
            } else {
                self.highest = Some(i);
            }
        } else if text
            .strip_prefix("b ")
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < self.before)
        {
            self.reshown += 1;
        } else {
            self.stray_count += 1;
            if self.stray.len() < EXAMPLES {
                self.stray.push(line.to_owned());
            }
        }
    }

    /// The indices never shown, as ranges: "0-41, 57".
    fn missing(&self) -> String {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.n {
            if self.copies[i] > 0 {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < self.n && self.copies[i + 1] == 0 {
                i += 1;
            }
            out.push(if start == i {
                start.to_string()
            } else {
                format!("{start}-{i}")
            });
            i += 1;
            if out.len() == EXAMPLES * 2 {
                out.push("...".to_owned());
                break;
            }
        }
        out.join(", ")
    }
}

/// What one run measured.
struct RunFigures {
    /// B's spawn to the last missed line shown.
    spawn_to_all: Option<Duration>,
    /// B's `Connected to peer!` to the last missed line shown.
    connected_to_all: Option<Duration>,
    /// B's spawn to its `Connected to peer!`.
    spawn_to_connected: Option<Duration>,
    /// B's spawn to the first missed line shown.
    spawn_to_first: Option<Duration>,
    shown: usize,
    duplicates: usize,
    out_of_order: usize,
    /// First write to A's stdin until `history` listed all N (polled).
    queued_in: Option<Duration>,
    /// Last line shown until B's `history` listed all N (polled).
    b_stored_in: Option<Duration>,
    /// Anything that went wrong without stopping the run.
    problems: Vec<String>,
    /// What else is worth knowing (the statuses A gave the lines).
    notes: Vec<String>,
}

impl RunFigures {
    fn whole(&self, n: usize) -> bool {
        self.shown == n && self.duplicates == 0
    }
}

/// Paths of one run: the run's temp dir (logs) and the two data dirs.
struct Dirs {
    temp: tempfile::TempDir,
    a: String,
    b: String,
}

impl Dirs {
    fn new() -> Result<Dirs, String> {
        let temp = tempfile::Builder::new()
            .prefix("rust-p2p-chat-sync-")
            .tempdir()
            .map_err(|e| format!("could not create a temp dir: {e}"))?;
        let dir = |name: &str| {
            let path = temp.path().join(name);
            path.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("temp path {} is not UTF-8", path.display()))
        };
        let (a, b) = (dir("a")?, dir("b")?);
        Ok(Dirs { temp, a, b })
    }

    fn logs(&self) -> &Path {
        self.temp.path()
    }
}

/// One run, with its own dirs, removed at the end unless kept.
fn run(knobs: &Knobs, index: usize) -> Result<RunFigures, String> {
    let dirs = Dirs::new()?;
    // The processes live in `run_in`, so they are killed and reaped before
    // the dirs are removed, whatever happens.
    let result = run_in(knobs, &dirs);
    if knobs.keep {
        let path = dirs.temp.keep();
        println!("  run {index}: kept in {}", path.display());
    }
    result
}

fn run_in(knobs: &Knobs, dirs: &Dirs) -> Result<RunFigures, String> {
    let n = knobs.messages;
    let logs = dirs.logs();
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    // 1. A listens, B connects, both ready; the lines before.
    let args_a = ["--listen", "0", "--data-dir", &dirs.a, "--no-mdns"];
    let mut a = Member::start("listener A", &args_a, logs, "a")?;
    let (_, listening) = a.wait_for("Listening on: ", STATUS_DEADLINE)?;
    let target = format!("127.0.0.1:{}", port_in(&listening)?);
    let args_b = ["--connect", &target, "--data-dir", &dirs.b, "--no-mdns"];
    let mut b = Member::start("connector B", &args_b, logs, "b1")?;
    b.wait_for("Type messages", STATUS_DEADLINE)?;
    a.wait_for("Type messages", STATUS_DEADLINE)?;
    if knobs.before > 0 {
        let lines: String = (0..knobs.before).map(|i| format!("b {i}\n")).collect();
        a.write(lines.into_bytes(), WRITE_DEADLINE)?;
        for _ in 0..knobs.before {
            b.wait_for("Peer: b ", STATUS_DEADLINE)?;
        }
    }

    // 2. B goes away.
    if knobs.kill {
        // SIGKILL by PID, and reaped.
        drop(b);
    } else {
        b.quit().map_err(|e| format!("stopping B: {e}"))?;
    }
    thread::sleep(SETTLE);
    a.drain()?;

    // 3. A is given the lines while alone.
    let lines: String = (0..n).map(|i| format!("s {i}\n")).collect();
    let written = Instant::now();
    a.write(lines.into_bytes(), WRITE_DEADLINE)?;
    let Held {
        all_at: stored,
        distinct,
        statuses,
    } = poll_history(&dirs.a, n, true, QUEUE_DEADLINE, logs)?;
    let queued_in = stored.map(|at| at - written);
    if stored.is_none() {
        problems.push(format!(
            "A's history listed {} of the {} lines as outgoing {QUEUE_DEADLINE:?} after they were written",
            grouped(distinct as f64),
            grouped(n as f64)
        ));
    }
    notes.push(format!(
        "A's statuses of the lines while alone: {}",
        show_statuses(&statuses)
    ));
    if statuses.keys().any(|s| s != "queued") {
        problems.push(format!(
            "A's statuses while alone were {} (all should be queued)",
            show_statuses(&statuses)
        ));
    }
    let printed = a.drain()?;
    let echoed: Vec<&String> = printed
        .iter()
        .filter(|l| {
            l.rsplit_once("s ")
                .is_some_and(|(_, i)| i.parse::<usize>().is_ok_and(|i| i < n))
        })
        .collect();
    if !echoed.is_empty() {
        problems.push(format!(
            "A printed {} line(s) naming the lines it was given while alone (expected nothing), e.g. {:?}",
            echoed.len(),
            echoed.iter().take(EXAMPLES).collect::<Vec<_>>()
        ));
    } else {
        // That input waits once this many lines wait for someone is said,
        // and nothing else is.
        let other: Vec<&String> = printed
            .iter()
            .filter(|l| !l.starts_with("No one else is in #"))
            .collect();
        if !other.is_empty() {
            problems.push(format!(
                "A printed {} line(s) while alone (expected nothing but that input waits), e.g. {:?}",
                other.len(),
                other.iter().take(EXAMPLES).collect::<Vec<_>>()
            ));
        }
    }

    // 4. B comes back, and is timed.
    let spawned = Instant::now();
    let mut b = Member::start("restarted B", &args_b, logs, "b2")?;
    let mut tally = Tally::new(n, knobs.before);
    let deadline = spawned + knobs.deadline;
    let mut closed = None;
    while tally.complete.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match b.next(left) {
            Ok(Some((at, line))) => tally.absorb(at, &line),
            Ok(None) => break,
            Err(e) => {
                closed = Some(e);
                break;
            }
        }
    }
    // B's history, as soon as B has shown the lines; what B prints
    // meanwhile keeps the time it was read, and is taken in below.
    let mut b_stored_in = None;
    if let Some(complete) = tally.complete {
        let Held {
            all_at: stored,
            distinct,
            ..
        } = poll_history(&dirs.b, n, false, STORED_DEADLINE, logs)?;
        b_stored_in = stored.map(|at| at.saturating_duration_since(complete));
        if stored.is_none() {
            problems.push(format!(
                "B's history listed {} of the {} lines as received {STORED_DEADLINE:?} after it showed them",
                grouped(distinct as f64),
                grouped(n as f64)
            ));
        }
    }
    if closed.is_none() {
        let quiet_until = Instant::now() + QUIET_WINDOW;
        loop {
            let left = quiet_until.saturating_duration_since(Instant::now());
            match b.next(left) {
                Ok(Some((at, line))) => tally.absorb(at, &line),
                Ok(None) => break,
                Err(e) => {
                    closed = Some(e);
                    break;
                }
            }
        }
    }
    if let Some(e) = closed {
        problems.push(format!("restarted B ended early: {e}"));
    }
    if tally.shown < n {
        problems.push(format!(
            "restarted B showed {} of {} lines within {:?}; never shown: {}",
            grouped(tally.shown as f64),
            grouped(n as f64),
            knobs.deadline,
            tally.missing()
        ));
    }
    if tally.duplicates > 0 {
        problems.push(format!(
            "restarted B showed {} line(s) more than once",
            tally.duplicates
        ));
    }
    if tally.reshown > 0 {
        problems.push(format!(
            "restarted B showed {} of the {} lines it had before stopping again as new",
            tally.reshown, knobs.before
        ));
    }
    if tally.stray_count > 0 {
        problems.push(format!(
            "restarted B showed {} unexpected `Peer: ` line(s), e.g. {:?}",
            tally.stray_count, tally.stray
        ));
    }
    if tally.connected.is_none() {
        problems.push("restarted B printed no `Connected to peer!` line".to_owned());
    }

    // 5. A's statuses afterwards.
    let after = poll_history(&dirs.a, n, true, Duration::ZERO, logs)?.statuses;
    notes.push(format!(
        "A's statuses of the lines after the sync: {}",
        show_statuses(&after)
    ));

    // 6. Both leave.
    // A first: B, a connector, then tries to reconnect to it, and must
    // still end once its own input ends.
    let quit_a = a.quit();
    let quit_b = b.quit();
    problems.extend(quit_a.err());
    problems.extend(
        quit_b
            .err()
            .map(|e| format!("{e} (A had left first, so B was reconnecting to it)")),
    );
    for log in ["a", "b1", "b2"] {
        let path = logs.join(format!("{log}.err"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Notices the program is meant to give: a line typed alone is
        // queued, and at the end of input, how many lines still wait for
        // an acknowledgement (once a second); the latter are counted.
        let waits = text
            .lines()
            .filter(|l| l.starts_with("Waiting for "))
            .count();
        if waits > 0 {
            notes.push(format!(
                "{log} waited {waits} s for acknowledgements after its input ended"
            ));
        }
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.starts_with("Queued: no one else is in #") && !l.starts_with("Waiting for ")
            })
            .collect();
        if !lines.is_empty() {
            problems.push(format!(
                "{log}: {} line(s) on stderr, e.g. {:?}",
                lines.len(),
                lines.iter().take(EXAMPLES).collect::<Vec<_>>()
            ));
        }
    }

    let since = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
        (Some(from), Some(to)) => Some(to.saturating_duration_since(from)),
        _ => None,
    };
    Ok(RunFigures {
        spawn_to_all: since(Some(spawned), tally.complete),
        connected_to_all: since(tally.connected, tally.complete),
        spawn_to_connected: since(Some(spawned), tally.connected),
        spawn_to_first: since(Some(spawned), tally.first),
        shown: tally.shown,
        duplicates: tally.duplicates,
        out_of_order: tally.out_of_order,
        queued_in,
        b_stored_in,
        problems,
        notes,
    })
}

/// Seconds with three decimals, or "-".
fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.3}s", d.as_secs_f64()))
}

fn print_header() {
    println!(
        "{:>4} {:>12} {:>15} {:>17} {:>11} {:>15} {:>5} {:>9} {:>10} {:>10}",
        "run",
        "spawn->all",
        "connected->all",
        "spawn->connected",
        "first line",
        "shown",
        "dups",
        "reordered",
        "A queued",
        "B stored"
    );
}

fn print_row(index: usize, n: usize, f: &RunFigures) {
    println!(
        "{:>4} {:>12} {:>15} {:>17} {:>11} {:>15} {:>5} {:>9} {:>10} {:>10}",
        index,
        secs(f.spawn_to_all),
        secs(f.connected_to_all),
        secs(f.spawn_to_connected),
        secs(f.spawn_to_first),
        format!("{}/{}", grouped(f.shown as f64), grouped(n as f64)),
        f.duplicates,
        f.out_of_order,
        secs(f.queued_in),
        secs(f.b_stored_in),
    );
    for note in &f.notes {
        println!("     {note}");
    }
    for problem in &f.problems {
        println!("     PROBLEM: {problem}");
    }
    let _ = std::io::stdout().flush();
}

/// Picks one figure of a run.
type Pick = fn(&RunFigures) -> Option<Duration>;

/// Median and range of one figure over the runs that have it.
fn spread(all: &[RunFigures], pick: Pick) -> Option<(f64, f64, f64)> {
    let mut values: Vec<f64> = all
        .iter()
        .filter_map(pick)
        .map(|d| d.as_secs_f64())
        .collect();
    if values.is_empty() {
        return None;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    Some((median(&mut values), min, max))
}

fn print_summary(knobs: &Knobs, all: &[RunFigures]) {
    let n = knobs.messages;
    println!(
        "(spawn->all: B's spawn until its stdout showed the last of the {} lines; connected->all: from its \
         `Connected to peer!`;\n first line: spawn until the first was shown; A queued: first write to A's \
         stdin until A's history listed them all,\n and B stored: last line shown until B's history listed \
         them all, both as fine as the polling, one run of `history` each)",
        grouped(n as f64)
    );
    println!();
    let figures: [(&str, Pick); 4] = [
        ("spawn -> all shown", |f| f.spawn_to_all),
        ("connected -> all shown", |f| f.connected_to_all),
        ("spawn -> connected", |f| f.spawn_to_connected),
        ("A stored them as queued", |f| f.queued_in),
    ];
    println!(
        "{} runs with {} missed lines (median (range) of the runs that have the figure):",
        all.len(),
        grouped(n as f64)
    );
    for (name, pick) in figures {
        let shown = spread(all, pick).map_or_else(
            || "-".to_owned(),
            |(median, min, max)| format!("{median:.3} s ({min:.3}-{max:.3} s)"),
        );
        println!("  {name:<24} {shown}");
    }
    let whole = all.iter().filter(|f| f.whole(n)).count();
    println!(
        "  runs whole (every line shown, each once): {whole} of {}",
        knobs.runs
    );

    println!("\nbar (a miss is reported, not fatal):");
    if n != BAR_MESSAGES {
        println!(
            "  the bar is for {} messages; SYNC_MESSAGES={n}, so it is not judged",
            grouped(BAR_MESSAGES as f64)
        );
        return;
    }
    let median_all = spread(all, |f| f.spawn_to_all);
    let value = median_all.map_or_else(
        || "-".to_owned(),
        |(median, _, max)| format!("{median:.3} s (slowest {max:.3} s)"),
    );
    let met = whole == knobs.runs && median_all.is_some_and(|(median, _, _)| median < BAR_SECONDS);
    println!(
        "  sync of {} missed messages, spawn -> all shown, median: {value}   (bar: < {BAR_SECONDS} s, every run whole) {}",
        grouped(n as f64),
        if met { "ok" } else { "MISS" }
    );
}

fn main() {
    let knobs = Knobs::from_env().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    println!("{}", machine());
    println!(
        "load average at the start: {} (other work on the machine slows the processes down)",
        load_average()
    );
    println!(
        "Sync on 127.0.0.1: A and B chat ({} line(s) A->B), B {} and A is given {} lines while \
         alone; B is started again\nwith its data dir and timed until it has shown them all. {} run(s), \
         fresh data dirs each.\n",
        knobs.before,
        if knobs.kill {
            "is killed (SIGKILL)"
        } else {
            "quits (stdin closed)"
        },
        grouped(knobs.messages as f64),
        knobs.runs
    );
    let mut all = Vec::new();
    let mut failures = Vec::new();
    print_header();
    for index in 1..=knobs.runs {
        match run(&knobs, index) {
            Ok(figures) => {
                print_row(index, knobs.messages, &figures);
                all.push(figures);
            }
            Err(e) => {
                println!("{index:>4} FAILED: {e}");
                failures.push(format!("run {index}: {e}"));
            }
        }
    }
    println!();
    print_summary(&knobs, &all);
    if !failures.is_empty() {
        println!();
        for failure in &failures {
            println!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
