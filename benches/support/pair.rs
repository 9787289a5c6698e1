//! Two real processes of the binary talking to each other on 127.0.0.1:
//! A listens, B connects, and the benchmark holds both ends of each (stdin
//! and stdout pipes). Run in the secure mode (each with its own data dir,
//! so its own identity) and, for comparison, in the plain mode.
//!
//! A message goes in as one line on the sender's stdin and comes out as
//! one `Peer: TEXT` line on the receiver's stdout; the receiver's stdout is
//! counted only once it is past its status lines. Measured:
//! - throughput each way, per message size: messages written to one
//!   process's stdin until all have appeared on the other's stdout;
//! - a check that one full batch each way arrives whole and in order;
//! - one-way latency of single messages both ways, with one clock;
//! - A's VmRSS right after `Waiting for peer to connect...` (idle), and
//!   both processes' VmHWM after the load.

use std::io::BufReader;
use std::process::{ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::lines::{payload, push, LineCounter};
use super::process::{port_in, read_status, status_kib, Ended, Running};
use super::{latency, median, Latency};

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

/// Which protocol the pair speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--plain`.
    Plain,
    /// The default, with `--data-dir`.
    Secure,
}

impl Mode {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Secure => "secure",
        }
    }
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
    label: &'static str,
}

/// Starts a pair, measures it, and stops it.
pub fn measure(
    mode: Mode,
    loads: &[Load],
    runs: usize,
    samples: usize,
) -> Result<PairFigures, String> {
    let dirs = match mode {
        Mode::Secure => Some(
            tempfile::Builder::new()
                .prefix("rust-p2p-chat-bench-")
                .tempdir()
                .map_err(|e| format!("could not create a temp dir: {e}"))?,
        ),
        Mode::Plain => None,
    };
    let (mut a, mut b, (idle_rss_kib, idle_anon_kib)) = start(mode, dirs.as_ref())?;
    let mut problems = Vec::new();

    warm_up(&mut a, &mut b)?;
    let mut throughput = Vec::with_capacity(loads.len());
    for &load in loads {
        throughput.push(measure_load(&mut a, &mut b, load, runs, &mut problems)?);
    }
    let (a_to_b, b_to_a) = measure_latency(&mut a, &mut b, samples, &mut problems)?;
    let loaded_a_kib = status_kib(a.process.pid(), "VmHWM:");
    let loaded_b_kib = status_kib(b.process.pid(), "VmHWM:");
    stop(a, b, &mut problems);
    drop(dirs);

    Ok(PairFigures {
        throughput,
        a_to_b,
        b_to_a,
        idle_rss_kib,
        idle_anon_kib,
        loaded_a_kib,
        loaded_b_kib,
        problems,
    })
}

/// Starts A listening and B connecting; returns both once each has said
/// the chat is ready, and A's idle VmRSS and RssAnon.
fn start(mode: Mode, dirs: Option<&TempDir>) -> Result<(Side, Side, (u64, u64)), String> {
    let dir_of = |name: &str| -> Result<Option<String>, String> {
        dirs.map(|d| {
            let dir = d.path().join(name);
            dir.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("temp path {} is not UTF-8", dir.display()))
        })
        .transpose()
    };
    let dir_a = dir_of("a")?;
    let dir_b = dir_of("b")?;

    let mut args_a = vec!["--listen", "0"];
    let mut args_b = vec!["--connect"];
    if mode == Mode::Plain {
        args_a.push("--plain");
    }
    let mut a = Running::ours(
        &format!("{} listener A", mode.name()),
        &with_dir(&args_a, &dir_a),
    )?;
    let stdout_a = BufReader::new(a.take_stdout()?);
    let listening = read_status(stdout_a, "Listening on: ", STATUS_DEADLINE)
        .map_err(|e| format!("{}: {e}", a.name))?;
    let port = port_in(&listening.line)?;
    let waiting = read_status(listening.rest, "Waiting for peer", STATUS_DEADLINE)
        .map_err(|e| format!("{}: {e}", a.name))?;
    let idle = (
        status_kib(a.pid(), "VmRSS:"),
        status_kib(a.pid(), "RssAnon:"),
    );

    let target = format!("127.0.0.1:{port}");
    args_b.push(&target);
    if mode == Mode::Plain {
        args_b.push("--plain");
    }
    let mut b = Running::ours(
        &format!("{} connector B", mode.name()),
        &with_dir(&args_b, &dir_b),
    )?;
    let stdout_b = BufReader::new(b.take_stdout()?);
    let ready_b = read_status(stdout_b, "Type messages", STATUS_DEADLINE)
        .map_err(|e| format!("{}: {e}", b.name))?;
    let ready_a = read_status(waiting.rest, "Type messages", STATUS_DEADLINE)
        .map_err(|e| format!("{}: {e}", a.name))?;

    let a = side(a, ready_a.rest, "A")?;
    let b = side(b, ready_b.rest, "B")?;
    Ok((a, b, idle))
}

fn with_dir<'a>(args: &[&'a str], dir: &'a Option<String>) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if let Some(dir) = dir {
        args.extend(["--data-dir", dir]);
    }
    args
}

fn side(
    mut process: Running,
    stdout: BufReader<ChildStdout>,
    label: &'static str,
) -> Result<Side, String> {
    let stdin = process.take_stdin()?;
    let received = LineCounter::spawn(&format!("{label}'s stdout"), stdout);
    Ok(Side {
        process,
        stdin,
        received,
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
    push(&mut from.stdin, bytes, &format!("{}'s stdin", from.label))?;
    let end = to.received.arrived(within)?.at;
    Ok(end - start)
}

fn warm_up(a: &mut Side, b: &mut Side) -> Result<(), String> {
    let bytes = payload(WARM_UP, 64);
    send_batch(a, b, &bytes, WARM_UP, RUN_DEADLINE)?;
    send_batch(b, a, &bytes, WARM_UP, RUN_DEADLINE)?;
    Ok(())
}

/// Throughput at one size, median of up to `runs` runs each way, after a
/// batch each way whose every byte is checked.
fn measure_load(
    a: &mut Side,
    b: &mut Side,
    load: Load,
    runs: usize,
    problems: &mut Vec<String>,
) -> Result<Throughput, String> {
    let bytes = payload(load.messages, load.bytes);
    problems.extend(check_batch(a, b, &bytes, load)?);
    problems.extend(check_batch(b, a, &bytes, load)?);
    let mut a_to_b = Vec::with_capacity(runs);
    let mut b_to_a = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        if started.elapsed() > SIZE_BUDGET {
            problems.push(format!(
                "{} B messages: only {} runs each way within {SIZE_BUDGET:?}",
                load.bytes,
                a_to_b.len()
            ));
            break;
        }
        let took = send_batch(a, b, &bytes, load.messages, RUN_DEADLINE)?;
        a_to_b.push(load.messages as f64 / took.as_secs_f64());
        let took = send_batch(b, a, &bytes, load.messages, RUN_DEADLINE)?;
        b_to_a.push(load.messages as f64 / took.as_secs_f64());
    }
    Ok(Throughput {
        a_to_b: median(&mut a_to_b),
        b_to_a: median(&mut b_to_a),
    })
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
    push(&mut from.stdin, bytes, &format!("{}'s stdin", from.label))?;
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

/// One-way latency of single 64-byte messages, alternating directions.
fn measure_latency(
    a: &mut Side,
    b: &mut Side,
    samples: usize,
    problems: &mut Vec<String>,
) -> Result<(Latency, Latency), String> {
    let line = payload(1, 64);
    let mut a_to_b = Vec::with_capacity(samples);
    let mut b_to_a = Vec::with_capacity(samples);
    let started = Instant::now();
    for _ in 0..samples {
        if started.elapsed() > LATENCY_BUDGET {
            problems.push(format!(
                "latency: only {} samples each way within {LATENCY_BUDGET:?}",
                a_to_b.len()
            ));
            break;
        }
        let took = send_batch(a, b, &line, 1, SAMPLE_DEADLINE)?;
        a_to_b.push(took.as_secs_f64() * 1e6);
        let took = send_batch(b, a, &line, 1, SAMPLE_DEADLINE)?;
        b_to_a.push(took.as_secs_f64() * 1e6);
    }
    Ok((latency(&mut a_to_b), latency(&mut b_to_a)))
}

/// Closes A's input, which ends the chat: A should exit once everything is
/// delivered, and B, a connector, once A is gone. Both should exit 0.
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
    // B ends by itself when A leaves; its stdin is still open.
    let ended_b = b.finish(EXIT_DEADLINE);
    drop(stdin_b);
    for (name, ended) in [(name_a, ended_a), (name_b, ended_b)] {
        match ended {
            Ended::Exited(status) if status.success() => {}
            Ended::Exited(status) => problems.push(format!("{name} ended with {status}")),
            Ended::Killed => problems.push(format!(
                "{name} did not exit within {EXIT_DEADLINE:?} after the chat ended; killed"
            )),
        }
    }
}
