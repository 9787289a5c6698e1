//! Two real processes of the binary talking to each other on 127.0.0.1:
//! A listens, B connects, and the benchmark holds both ends of each (stdin
//! and stdout pipes). Run in the secure mode with its history (the
//! default) and with `--no-history`, and in the plain mode likewise
//! ([`Mode`]); every process gets a data dir of its own under a temp dir
//! (its identity, its history), so a benchmark never writes into the
//! user's real data directory. Every process runs with `--no-mdns`: pairs
//! run side by side, and mDNS would put them (and any other instance on
//! the LAN) into one room, each showing the others' messages.
//!
//! A message goes in as one line on the sender's stdin and comes out as
//! one `Peer: TEXT` line on the receiver's stdout; the receiver's stdout is
//! counted only once it is past its status lines. Measured:
//! - throughput each way, per message size: messages written to one
//!   process's stdin until all have appeared on the other's stdout;
//! - a check that one full batch each way arrives whole and in order;
//! - one-way latency of single messages both ways, with one clock;
//! - A's VmRSS right after `Waiting for peer to connect...` (idle), and
//!   both processes' VmHWM after the load;
//! - lines either process printed that the benchmark never asked for (a
//!   notice, a line shown twice), reported as a problem.
//!
//! A write to a process's stdin that takes longer than a run may (the
//! process stopped reading it) gets the process killed by its PID, which
//! ends the write; the pair fails, and the other pairs go on.
//!
//! Several pairs are measured together ([`measure_all`]): all are started,
//! then their throughput runs take turns (one run each way of one pair,
//! then of the next, the first pair of each round rotating). Only one pair
//! carries load at any time; the others sit idle. Figures compared with
//! each other (history on against off) are thus measured over the same
//! stretch of time, so a machine that gets busier or quieter during the
//! run (another build, a CPU changing speed) moves both alike instead of
//! skewing their ratio. After every run (each way) the benchmark waits
//! until the pair that ran is quiet again: its two processes together used
//! under [`QUIET_CPU`] of CPU in every [`QUIET_SLICE`] for [`QUIET_SPAN`]
//! on end (from /proc/PID/task/*/schedstat), for at most
//! [`QUIET_DEADLINE`]. A mode that keeps working once its lines are shown
//! (storing them, acknowledging them) would otherwise slow the next run,
//! often another pair's, on a machine with few cores; how long that work
//! lasts is reported ("quiet after"). The span outlasts the program's
//! 250 ms timers (a checkpoint of the history is looked for every 250 ms):
//! a single quiet slice ended the wait while such
//! work was still to come, and it then ran inside the next run. Only the
//! history's last checkpoint, of under 4 MiB, may come later (up to 2 s
//! after the one before), a few milliseconds of work. Latency is measured
//! pair after pair, each after a wait for quiet, since a sample lasts far
//! less than such work.

use std::io::BufReader;
use std::process::{ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::lines::{payload, push, LineCounter};
use super::process::{
    port_in, read_status, status_kib, wait_quiet, Ended, Running, Watchdog, QUIET_DEADLINE,
};
use super::{latency, median, take_turns, Latency};

/// Longest a throughput run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// No new throughput run starts after this long on one message size.
const SIZE_BUDGET: Duration = Duration::from_secs(60);

/// Longest one latency sample may take.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(5);

/// No new latency sample is taken after this long.
const LATENCY_BUDGET: Duration = Duration::from_secs(60);

/// Longest a process may take to print a status line.
const STATUS_DEADLINE: Duration = Duration::from_secs(10);

/// Longest a process may take to exit once its input is closed.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// Messages sent each way before measuring.
const WARM_UP: usize = 1000;

/// The program's prefix of a received message.
const RECEIVED_PREFIX: &[u8] = b"Peer: ";

/// Which protocol the pair speaks, and whether it keeps a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--plain --no-history`.
    Plain,
    /// `--plain`, with its history in its data dir.
    PlainHistory,
    /// The default: secure, with its history in its data dir.
    Secure,
    /// `--no-history`: secure, everything in memory.
    SecureNoHistory,
}

impl Mode {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::PlainHistory => "plain +history",
            Mode::Secure => "secure",
            Mode::SecureNoHistory => "secure --no-history",
        }
    }

    /// Whether it speaks the plain protocol.
    pub fn plain(self) -> bool {
        matches!(self, Mode::Plain | Mode::PlainHistory)
    }

    /// Whether it keeps a history on disk.
    pub fn history(self) -> bool {
        matches!(self, Mode::PlainHistory | Mode::Secure)
    }

    /// Its flags besides the role and the data dir.
    pub fn flags(self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.plain() {
            flags.push("--plain");
        }
        if !self.history() || same_pairs() {
            flags.push("--no-history");
        }
        flags
    }
}

/// Whether `BENCH_SAME_PAIRS=1` asks every pair to run with
/// `--no-history` (see the classic benchmark's knobs).
pub fn same_pairs() -> bool {
    std::env::var("BENCH_SAME_PAIRS").is_ok_and(|v| v == "1")
}

/// One message size to measure.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Bytes of each line written to stdin, newline included.
    pub bytes: usize,
    /// Messages per run.
    pub messages: usize,
}

/// Throughput at one message size.
pub struct Throughput {
    /// Messages per second, A's stdin to B's stdout (median).
    pub a_to_b: f64,
    /// Messages per second, B's stdin to A's stdout (median).
    pub b_to_a: f64,
}

/// What was measured for one pair.
pub struct PairFigures {
    /// One entry per load, in the order asked.
    pub throughput: Vec<Throughput>,
    /// A's stdin to B's stdout.
    pub a_to_b: Latency,
    /// B's stdin to A's stdout.
    pub b_to_a: Latency,
    /// A's VmRSS right after it printed that it waits for a peer, KiB.
    pub idle_rss_kib: u64,
    /// The anonymous part of it (heap, stacks; not the mapped binary and
    /// libraries), KiB.
    pub idle_anon_kib: u64,
    /// After a throughput run, until the pair was quiet again: the
    /// median, milliseconds.
    pub quiet_after_ms: f64,
    /// A's VmHWM after the load, KiB.
    pub loaded_a_kib: u64,
    /// B's VmHWM after the load, KiB.
    pub loaded_b_kib: u64,
    /// Anything that went wrong without stopping the measurement.
    pub problems: Vec<String>,
}

/// One process of the pair, with both its pipes held by the benchmark.
struct Side {
    process: Running,
    stdin: ChildStdin,
    received: LineCounter,
    /// Kills the process if a write to its stdin blocks too long.
    watchdog: Watchdog,
    label: &'static str,
}

/// A pair being measured. Its processes are declared before its temp dir,
/// so they are killed and reaped before the dir is removed.
struct Pair {
    a: Side,
    b: Side,
    idle_rss_kib: u64,
    idle_anon_kib: u64,
    /// Per load: messages/s of each run, A->B and B->A.
    rates: Vec<(Vec<f64>, Vec<f64>)>,
    /// Latency samples, microseconds.
    a_to_b: Vec<f64>,
    b_to_a: Vec<f64>,
    /// After each throughput run, until quiet, milliseconds.
    quiet_ms: Vec<f64>,
    problems: Vec<String>,
    _dirs: TempDir,
}

/// Starts a pair of each mode, measures them all, taking turns, and stops
/// them; one result per mode, in the order asked.
pub fn measure_all(
    modes: &[Mode],
    loads: &[Load],
    runs: usize,
    samples: usize,
) -> Vec<(Mode, Result<PairFigures, String>)> {
    // A pair that fails is dropped on the spot (its processes killed, its
    // dir removed); the others go on.
    let mut slots: Vec<Result<Box<Pair>, String>> = modes
        .iter()
        .map(|&mode| Pair::start(mode, loads.len()).map(Box::new))
        .collect();
    take_turns(&mut slots, 0, |pair| {
        pair.warm_up()?;
        pair.quiet();
        Ok(())
    });
    for (index, &load) in loads.iter().enumerate() {
        let bytes = payload(load.messages, load.bytes);
        take_turns(&mut slots, 0, |pair| {
            pair.check(&bytes, load)?;
            pair.quiet();
            Ok(())
        });
        // The budget is per pair, as if each were measured alone.
        let budget = SIZE_BUDGET * slots.iter().filter(|s| s.is_ok()).count().max(1) as u32;
        let started = Instant::now();
        for run in 0..runs {
            if started.elapsed() > budget {
                take_turns(&mut slots, 0, |pair| {
                    pair.problems.push(format!(
                        "{} B messages: only {run} runs each way within {budget:?} shared by the pairs",
                        load.bytes
                    ));
                    Ok(())
                });
                break;
            }
            take_turns(&mut slots, run, |pair| pair.run(index, &bytes, load));
        }
    }
    let line = payload(1, 64);
    take_turns(&mut slots, 0, |pair| pair.latency(&line, samples));
    modes
        .iter()
        .copied()
        .zip(slots)
        .map(|(mode, slot)| (mode, slot.map(|pair| pair.finish())))
        .collect()
}

impl Pair {
    /// Starts A listening and B connecting, each with its own data dir;
    /// returns once each has said the chat is ready, with A's idle VmRSS
    /// and RssAnon.
    fn start(mode: Mode, loads: usize) -> Result<Pair, String> {
        let dirs = tempfile::Builder::new()
            .prefix("rust-p2p-chat-bench-")
            .tempdir()
            .map_err(|e| format!("could not create a temp dir: {e}"))?;
        let dir_of = |name: &str| -> Result<String, String> {
            let dir = dirs.path().join(name);
            dir.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("temp path {} is not UTF-8", dir.display()))
        };
        let dir_a = dir_of("a")?;
        let dir_b = dir_of("b")?;

        let mut args_a = vec!["--listen", "0", "--data-dir", &dir_a, "--no-mdns"];
        args_a.extend(mode.flags());
        let mut a = Running::ours(&format!("{} listener A", mode.name()), &args_a)?;
        let stdout_a = BufReader::new(a.take_stdout()?);
        let listening = read_status(stdout_a, "Listening on: ", STATUS_DEADLINE)
            .map_err(|e| format!("{}: {e}", a.name))?;
        let port = port_in(&listening.line)?;
        let waiting = read_status(listening.rest, "Waiting for peer", STATUS_DEADLINE)
            .map_err(|e| format!("{}: {e}", a.name))?;
        let idle_rss_kib = status_kib(a.pid(), "VmRSS:");
        let idle_anon_kib = status_kib(a.pid(), "RssAnon:");

        let target = format!("127.0.0.1:{port}");
        let mut args_b = vec!["--connect", &target, "--data-dir", &dir_b, "--no-mdns"];
        args_b.extend(mode.flags());
        let mut b = Running::ours(&format!("{} connector B", mode.name()), &args_b)?;
        let stdout_b = BufReader::new(b.take_stdout()?);
        let ready_b = read_status(stdout_b, "Type messages", STATUS_DEADLINE)
            .map_err(|e| format!("{}: {e}", b.name))?;
        let ready_a = read_status(waiting.rest, "Type messages", STATUS_DEADLINE)
            .map_err(|e| format!("{}: {e}", a.name))?;

        Ok(Pair {
            a: side(a, ready_a.rest, "A")?,
            b: side(b, ready_b.rest, "B")?,
            idle_rss_kib,
            idle_anon_kib,
            rates: vec![(Vec::new(), Vec::new()); loads],
            a_to_b: Vec::new(),
            b_to_a: Vec::new(),
            quiet_ms: Vec::new(),
            problems: Vec::new(),
            _dirs: dirs,
        })
    }

    fn warm_up(&mut self) -> Result<(), String> {
        warm_up(&mut self.a, &mut self.b)
    }

    /// One batch each way whose every byte is checked.
    fn check(&mut self, bytes: &[u8], load: Load) -> Result<(), String> {
        let problems = [
            check_batch(&mut self.a, &mut self.b, bytes, load)?,
            check_batch(&mut self.b, &mut self.a, bytes, load)?,
        ];
        self.problems.extend(problems.into_iter().flatten());
        Ok(())
    }

    /// One throughput run each way of load number `index`, each followed
    /// by a wait for quiet.
    fn run(&mut self, index: usize, bytes: &[u8], load: Load) -> Result<(), String> {
        let took = send_batch(&mut self.a, &mut self.b, bytes, load.messages, RUN_DEADLINE)?;
        self.rates[index]
            .0
            .push(load.messages as f64 / took.as_secs_f64());
        let quiet = self.quiet();
        self.quiet_ms.push(quiet);
        let took = send_batch(&mut self.b, &mut self.a, bytes, load.messages, RUN_DEADLINE)?;
        self.rates[index]
            .1
            .push(load.messages as f64 / took.as_secs_f64());
        let quiet = self.quiet();
        self.quiet_ms.push(quiet);
        Ok(())
    }

    /// Waits until both processes are quiet (see the module docs), at most
    /// [`QUIET_DEADLINE`]; returns how long they kept working: until the
    /// start of the quiet span, milliseconds.
    fn quiet(&mut self) -> f64 {
        match wait_quiet(&[self.a.process.pid(), self.b.process.pid()]) {
            Ok(ms) => ms,
            Err(ms) => {
                self.problems.push(format!(
                    "still busy {QUIET_DEADLINE:?} after a run; the next run went ahead"
                ));
                ms
            }
        }
    }

    /// Latency of single 64-byte messages, alternating directions, after
    /// a wait for quiet.
    fn latency(&mut self, line: &[u8], samples: usize) -> Result<(), String> {
        self.quiet();
        let started = Instant::now();
        for _ in 0..samples {
            if started.elapsed() > LATENCY_BUDGET {
                self.problems.push(format!(
                    "latency: only {} samples each way within {LATENCY_BUDGET:?}",
                    self.a_to_b.len()
                ));
                break;
            }
            let took = send_batch(&mut self.a, &mut self.b, line, 1, SAMPLE_DEADLINE)?;
            self.a_to_b.push(took.as_secs_f64() * 1e6);
            let took = send_batch(&mut self.b, &mut self.a, line, 1, SAMPLE_DEADLINE)?;
            self.b_to_a.push(took.as_secs_f64() * 1e6);
        }
        Ok(())
    }

    /// Reads the peaks, stops both processes and sums up.
    fn finish(self) -> PairFigures {
        let Pair {
            a,
            b,
            idle_rss_kib,
            idle_anon_kib,
            rates,
            mut a_to_b,
            mut b_to_a,
            mut quiet_ms,
            mut problems,
            _dirs,
        } = self;
        let loaded_a_kib = status_kib(a.process.pid(), "VmHWM:");
        let loaded_b_kib = status_kib(b.process.pid(), "VmHWM:");
        for side in [&a, &b] {
            if let (lines @ 1.., Some(first)) = side.received.leftover() {
                problems.push(format!(
                    "{} printed {lines} line(s) the benchmark did not send (counted as if sent, so \
                     its figures are off), the first: {first:?}",
                    side.label
                ));
            }
        }
        stop(a, b, &mut problems);
        drop(_dirs);
        let throughput = rates
            .into_iter()
            .map(|(mut a_to_b, mut b_to_a)| Throughput {
                a_to_b: median(&mut a_to_b),
                b_to_a: median(&mut b_to_a),
            })
            .collect();
        PairFigures {
            throughput,
            a_to_b: latency(&mut a_to_b),
            b_to_a: latency(&mut b_to_a),
            quiet_after_ms: median(&mut quiet_ms),
            idle_rss_kib,
            idle_anon_kib,
            loaded_a_kib,
            loaded_b_kib,
            problems,
        }
    }
}

fn side(
    mut process: Running,
    stdout: BufReader<ChildStdout>,
    label: &'static str,
) -> Result<Side, String> {
    let stdin = process.take_stdin()?;
    let received = LineCounter::spawn(&format!("{label}'s stdout"), stdout);
    let watchdog = Watchdog::new(process.pid());
    Ok(Side {
        process,
        stdin,
        received,
        watchdog,
        label,
    })
}

/// Sends `messages` from `from` to `to`; returns how long until the last
/// one appeared.
fn send_batch(
    from: &mut Side,
    to: &mut Side,
    bytes: &[u8],
    messages: usize,
    within: Duration,
) -> Result<Duration, String> {
    to.received.expect(messages)?;
    let start = Instant::now();
    write(from, bytes, within)?;
    let end = to.received.arrived(within)?.at;
    Ok(end - start)
}

/// Writes to a side's stdin; kills the process if that takes over
/// `within`.
fn write(side: &mut Side, bytes: &[u8], within: Duration) -> Result<(), String> {
    side.watchdog.arm(within);
    let written = push(&mut side.stdin, bytes, &format!("{}'s stdin", side.label));
    side.watchdog.disarm();
    if side.watchdog.fired() {
        return Err(format!(
            "{}'s stdin took no more input for {within:?}; {} killed",
            side.label, side.process.name
        ));
    }
    written
}

fn warm_up(a: &mut Side, b: &mut Side) -> Result<(), String> {
    let bytes = payload(WARM_UP, 64);
    send_batch(a, b, &bytes, WARM_UP, RUN_DEADLINE)?;
    send_batch(b, a, &bytes, WARM_UP, RUN_DEADLINE)?;
    Ok(())
}

/// Sends one batch and compares what arrived with what was sent: a
/// difference is a problem to report; too few lines is an error, since the
/// counter can no longer tell which line is which.
fn check_batch(
    from: &mut Side,
    to: &mut Side,
    bytes: &[u8],
    load: Load,
) -> Result<Option<String>, String> {
    let way = format!("{}->{}", from.label, to.label);
    to.received.capture(load.messages)?;
    write(from, bytes, RUN_DEADLINE)?;
    let got = to
        .received
        .arrived(RUN_DEADLINE)
        .map_err(|e| format!("{way}, {} B check batch: {e}", load.bytes))?
        .captured;
    let mut want = Vec::with_capacity(bytes.len() + load.messages * RECEIVED_PREFIX.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        want.extend_from_slice(RECEIVED_PREFIX);
        want.extend_from_slice(line);
    }
    if got == want {
        return Ok(None);
    }
    let got_lines: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    let want_lines: Vec<&[u8]> = want.split_inclusive(|&b| b == b'\n').collect();
    let first = got_lines
        .iter()
        .zip(&want_lines)
        .position(|(g, w)| g != w)
        .unwrap_or(got_lines.len().min(want_lines.len()));
    let show =
        |l: Option<&&[u8]>| l.map(|l| String::from_utf8_lossy(&l[..l.len().min(60)]).into_owned());
    Ok(Some(format!(
        "{way}, {} B check batch: output differs from input at message {first} of {}: got {:?}, want {:?}",
        load.bytes,
        load.messages,
        show(got_lines.get(first)),
        show(want_lines.get(first)),
    )))
}

/// Closes A's input, which ends its chat: A should exit once everything is
/// delivered. Then B's: B, a connector, tries to reconnect to A once A is
/// gone, and should still exit once its own input ends. Both should exit 0.
fn stop(a: Side, b: Side, problems: &mut Vec<String>) {
    let Side {
        process: a,
        stdin: stdin_a,
        ..
    } = a;
    let Side {
        process: b,
        stdin: stdin_b,
        ..
    } = b;
    drop(stdin_a);
    let name_a = a.name.clone();
    let name_b = b.name.clone();
    let ended_a = a.finish(EXIT_DEADLINE);
    drop(stdin_b);
    let ended_b = b.finish(EXIT_DEADLINE);
    for (name, ended) in [(name_a, ended_a), (name_b, ended_b)] {
        match ended {
            Ended::Exited(status) if status.success() => {}
            Ended::Exited(status) => problems.push(format!("{name} ended with {status}")),
            Ended::Killed => problems.push(format!(
                "{name} did not exit within {EXIT_DEADLINE:?} after its input was closed; killed"
            )),
        }
    }
}
