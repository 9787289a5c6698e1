//! One program against a raw TCP socket held by the benchmark: the plain
//! protocol of `rust-p2p-chat --plain --listen 0`, and
//! `socat TCP-LISTEN:P STDIO` doing the same job, measured the same way.
//!
//! The benchmark starts every program listening, connects one TCP socket
//! to each, and measures:
//! - inbound: lines written to the socket until all are read from the
//!   program's stdout (a pipe);
//! - outbound: lines written to the program's stdin (a pipe) until all are
//!   read from the socket;
//! - one-way latency of single lines both ways, timed with one clock;
//! - RSS while listening (idle) and its peak after the load (loaded).
//!
//! The programs take turns, run after run, so a machine that gets busier
//! or quieter during the benchmark weighs on all of them alike, and after
//! each run the benchmark waits until the program that ran is quiet
//! ([`wait_quiet`]): a history written after a burst is that program's
//! cost, reported as "quiet after", not charged to the next run. Latency
//! is sampled in [`LATENCY_BLOCKS`] blocks, taking turns the same way.
//!
//! Ours runs with `--no-history` (socat keeps none), and again with its
//! history (the default), each with a temp `--data-dir`, so it never
//! writes into the user's real data directory.

use std::io::BufReader;
use std::net::TcpStream;
use std::process::{ChildStdin, ChildStdout, Command};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::lines::{payload, push, LineCounter};
use super::process::{
    free_port, port_in, read_status, status_kib, wait_listening, wait_quiet, Running, Watchdog,
    QUIET_DEADLINE,
};
use super::{latency, median, take_turns, Latency};

/// Bytes of each line, newline included.
pub const LINE_BYTES: usize = 64;

/// Longest a throughput run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Longest one latency sample may take.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(5);

/// Longest the program may take to print a status line.
const STATUS_DEADLINE: Duration = Duration::from_secs(10);

/// Latency samples are taken in this many blocks per program, the
/// programs taking turns.
pub const LATENCY_BLOCKS: usize = 10;

/// Which program is measured.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    /// `rust-p2p-chat --plain`, with its history or `--no-history`.
    Ours {
        /// Whether the history is kept (the default).
        history: bool,
    },
    /// `socat TCP-LISTEN:P STDIO`.
    Socat,
}

/// What was measured for one program.
pub struct Figures {
    /// Lines per second, socket to stdout.
    pub inbound: f64,
    /// Lines per second, stdin to socket.
    pub outbound: f64,
    /// Socket to stdout.
    pub in_latency: Latency,
    /// Stdin to socket.
    pub out_latency: Latency,
    /// VmRSS while listening, KiB.
    pub idle_rss_kib: u64,
    /// VmHWM after the load, KiB.
    pub loaded_rss_kib: u64,
    /// After a throughput run, until the program was quiet again, median,
    /// milliseconds: the work it left behind (the history's writes).
    pub quiet_after_ms: f64,
    /// What went wrong without stopping the measurement.
    pub problems: Vec<String>,
}

/// One program being measured. Its process is declared before its temp
/// dir, so it is killed and reaped before the dir is removed.
struct Target {
    socket: TcpStream,
    stdin: ChildStdin,
    inbound_rx: LineCounter,
    outbound_rx: LineCounter,
    watchdog: Watchdog,
    process: Running,
    _dir: Option<TempDir>,
    idle_rss_kib: u64,
    inbound: Vec<f64>,
    outbound: Vec<f64>,
    in_samples: Vec<f64>,
    out_samples: Vec<f64>,
    quiet_ms: Vec<f64>,
    problems: Vec<String>,
}

/// Measures every subject, taking turns: `lines` lines per throughput run,
/// the median of `runs` runs each way, `samples` latency samples each way.
/// One result per subject, in order; a program that fails is dropped on
/// the spot and the others go on.
pub fn measure_all(
    subjects: &[Subject],
    lines: usize,
    runs: usize,
    samples: usize,
) -> Vec<Result<Figures, String>> {
    let mut targets: Vec<Result<Target, String>> = subjects
        .iter()
        .map(|&subject| Target::start(subject))
        .collect();
    let payload = payload(lines, LINE_BYTES);
    // Warm up both directions once before measuring.
    let warm = lines.min(1000);
    take_turns(&mut targets, 0, |t| {
        t.inbound_run(&payload[..warm * LINE_BYTES], warm)?;
        t.outbound_run(&payload[..warm * LINE_BYTES], warm)?;
        t.quiet();
        Ok(())
    });
    for run in 0..runs {
        take_turns(&mut targets, run, |t| {
            let rate = t.inbound_run(&payload, lines)?;
            t.inbound.push(rate);
            let quiet = t.quiet();
            t.quiet_ms.push(quiet);
            let rate = t.outbound_run(&payload, lines)?;
            t.outbound.push(rate);
            let quiet = t.quiet();
            t.quiet_ms.push(quiet);
            Ok(())
        });
    }
    let line = &payload[..LINE_BYTES];
    let per_block = samples.div_ceil(LATENCY_BLOCKS);
    for block in 0..LATENCY_BLOCKS {
        let count = per_block.min(samples.saturating_sub(block * per_block));
        take_turns(&mut targets, block, |t| t.latency(line, count));
    }
    targets
        .into_iter()
        .map(|target| target.map(Target::finish))
        .collect()
}

impl Target {
    /// Starts the program, connects a socket to it and waits until it is
    /// ready to chat.
    fn start(subject: Subject) -> Result<Target, String> {
        // `dir` first, so on an early return it is dropped after the program.
        let (dir, mut process, stdout, port) = start(subject)?;
        let idle_rss_kib = status_kib(process.pid(), "VmRSS:");
        let socket = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("could not connect to 127.0.0.1:{port}: {e}"))?;
        socket
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        // A program that stops reading makes a write fail, not hang; the
        // same for its stdin, by killing it.
        socket
            .set_write_timeout(Some(RUN_DEADLINE))
            .map_err(|e| format!("write timeout: {e}"))?;
        let stdout = match subject {
            Subject::Ours { .. } => read_status(stdout, "Type messages", STATUS_DEADLINE)?.rest,
            Subject::Socat => stdout,
        };
        let inbound_rx = LineCounter::spawn("the program's stdout", stdout);
        let clone = socket
            .try_clone()
            .map_err(|e| format!("could not clone the socket: {e}"))?;
        let outbound_rx = LineCounter::spawn("the socket", clone);
        let stdin = process.take_stdin()?;
        Ok(Target {
            socket,
            stdin,
            inbound_rx,
            outbound_rx,
            watchdog: Watchdog::new(process.pid()),
            process,
            _dir: dir,
            idle_rss_kib,
            inbound: Vec::new(),
            outbound: Vec::new(),
            in_samples: Vec::new(),
            out_samples: Vec::new(),
            quiet_ms: Vec::new(),
            problems: Vec::new(),
        })
    }

    /// Writes `bytes` to the program's stdin; it is killed if it takes
    /// none for `within`.
    fn write_stdin(&mut self, bytes: &[u8], within: Duration) -> Result<(), String> {
        self.watchdog.arm(within);
        let written = push(&mut self.stdin, bytes, "stdin");
        self.watchdog.disarm();
        if self.watchdog.fired() {
            return Err(format!(
                "the program took no input on stdin for {within:?}; killed"
            ));
        }
        written
    }

    /// `lines` lines (`bytes`) from the socket to stdout: lines per second.
    fn inbound_run(&mut self, bytes: &[u8], lines: usize) -> Result<f64, String> {
        self.inbound_rx.expect(lines)?;
        let start = Instant::now();
        push(&mut self.socket, bytes, "the socket")?;
        let end = self.inbound_rx.arrived(RUN_DEADLINE)?.at;
        Ok(lines as f64 / (end - start).as_secs_f64())
    }

    /// `lines` lines (`bytes`) from stdin to the socket: lines per second.
    fn outbound_run(&mut self, bytes: &[u8], lines: usize) -> Result<f64, String> {
        self.outbound_rx.expect(lines)?;
        let start = Instant::now();
        self.write_stdin(bytes, RUN_DEADLINE)?;
        let end = self.outbound_rx.arrived(RUN_DEADLINE)?.at;
        Ok(lines as f64 / (end - start).as_secs_f64())
    }

    /// Waits until the program is quiet; how long it kept working,
    /// milliseconds.
    fn quiet(&mut self) -> f64 {
        wait_quiet(&[self.process.pid()]).unwrap_or_else(|ms| {
            self.problems.push(format!(
                "still busy {QUIET_DEADLINE:?} after a run; the next run went ahead"
            ));
            ms
        })
    }

    /// `count` latency samples each way, alternating, after a wait for
    /// quiet.
    fn latency(&mut self, line: &[u8], count: usize) -> Result<(), String> {
        self.quiet();
        for _ in 0..count {
            self.inbound_rx.expect(1)?;
            let start = Instant::now();
            push(&mut self.socket, line, "the socket")?;
            let at = self.inbound_rx.arrived(SAMPLE_DEADLINE)?.at;
            self.in_samples.push((at - start).as_secs_f64() * 1e6);
            self.outbound_rx.expect(1)?;
            let start = Instant::now();
            self.write_stdin(line, SAMPLE_DEADLINE)?;
            let at = self.outbound_rx.arrived(SAMPLE_DEADLINE)?.at;
            self.out_samples.push((at - start).as_secs_f64() * 1e6);
        }
        Ok(())
    }

    /// Reads the peak RSS, ends the program and sums up.
    fn finish(mut self) -> Figures {
        let loaded_rss_kib = status_kib(self.process.pid(), "VmHWM:");
        drop(self.socket);
        drop(self.stdin);
        self.process.finish(Duration::from_secs(5));
        Figures {
            inbound: median(&mut self.inbound),
            outbound: median(&mut self.outbound),
            in_latency: latency(&mut self.in_samples),
            out_latency: latency(&mut self.out_samples),
            idle_rss_kib: self.idle_rss_kib,
            loaded_rss_kib,
            quiet_after_ms: median(&mut self.quiet_ms),
            problems: self.problems,
        }
    }
}

/// Starts the program listening on a loopback port; returns its temp data
/// dir (none for socat), to be removed once it has ended, the program, its
/// stdout past the status lines that come before a connection, and the
/// port.
fn start(
    subject: Subject,
) -> Result<(Option<TempDir>, Running, BufReader<ChildStdout>, u16), String> {
    match subject {
        Subject::Ours { history } => {
            let dir = tempfile::Builder::new()
                .prefix("rust-p2p-chat-bench-")
                .tempdir()
                .map_err(|e| format!("could not create a temp dir: {e}"))?;
            let path = dir
                .path()
                .to_str()
                .ok_or_else(|| format!("temp path {} is not UTF-8", dir.path().display()))?
                .to_owned();
            let mut args = vec!["--plain", "--data-dir", &path, "--listen", "0"];
            if !history {
                args.push("--no-history");
            }
            let mut target = Running::ours("rust-p2p-chat --plain", &args)?;
            let stdout = BufReader::new(target.take_stdout()?);
            let listening = read_status(stdout, "Listening on: ", STATUS_DEADLINE)?;
            let port = port_in(&listening.line)?;
            let waiting = read_status(listening.rest, "Waiting for peer", STATUS_DEADLINE)?;
            Ok((Some(dir), target, waiting.rest, port))
        }
        Subject::Socat => {
            let port = free_port()?;
            let mut target = Running::spawn(
                "socat",
                Command::new("socat").args([
                    &format!("TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1"),
                    "STDIO",
                ]),
            )?;
            let stdout = BufReader::new(target.take_stdout()?);
            wait_listening(port, STATUS_DEADLINE)?;
            Ok((None, target, stdout, port))
        }
    }
}
