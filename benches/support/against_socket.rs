//! One program against a raw TCP socket held by the benchmark: the plain
//! protocol of `rust-p2p-chat --plain --listen 0`, and
//! `socat TCP-LISTEN:P STDIO` doing the same job, measured the same way.
//!
//! The benchmark starts the program listening, connects one TCP socket to
//! it, and measures:
//! - inbound: lines written to the socket until all are read from the
//!   program's stdout (a pipe);
//! - outbound: lines written to the program's stdin (a pipe) until all are
//!   read from the socket;
//! - one-way latency of single lines both ways, timed with one clock;
//! - RSS while listening (idle) and its peak after the load (loaded).
//!
//! The program runs with `--no-history` (socat keeps none), and again with
//! its history (the default), each with a temp `--data-dir`, so it never
//! writes into the user's real data directory.

use std::io::BufReader;
use std::net::TcpStream;
use std::process::{ChildStdout, Command};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::lines::{payload, push, LineCounter};
use super::process::{
    free_port, port_in, read_status, status_kib, wait_listening, Running, Watchdog,
};
use super::{latency, median, Latency};

/// Bytes of each line, newline included.
pub const LINE_BYTES: usize = 64;

/// Longest a throughput run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Longest one latency sample may take.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(5);

/// Longest the program may take to print a status line.
const STATUS_DEADLINE: Duration = Duration::from_secs(10);

/// Which program is measured.
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
}

/// Measures one program: `lines` lines per throughput run, the median of
/// `runs` runs, `samples` latency samples each way.
pub fn measure(
    subject: &Subject,
    lines: usize,
    runs: usize,
    samples: usize,
) -> Result<Figures, String> {
    // `dir` first, so on an early return it is dropped after the program.
    let (dir, mut target, stdout, port) = start(subject)?;
    let idle_rss_kib = status_kib(target.pid(), "VmRSS:");
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("could not connect to 127.0.0.1:{port}: {e}"))?;
    socket
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    // A program that stops reading makes a write fail, not hang; the same
    // for its stdin, by killing it.
    socket
        .set_write_timeout(Some(RUN_DEADLINE))
        .map_err(|e| format!("write timeout: {e}"))?;
    let watchdog = Watchdog::new(target.pid());
    let to_stdin = |stdin: &mut std::process::ChildStdin, bytes: &[u8], within| {
        watchdog.arm(within);
        let written = push(stdin, bytes, "stdin");
        watchdog.disarm();
        if watchdog.fired() {
            return Err(format!(
                "the program took no input on stdin for {within:?}; killed"
            ));
        }
        written
    };
    let stdout = match subject {
        Subject::Ours { .. } => read_status(stdout, "Type messages", STATUS_DEADLINE)?.rest,
        Subject::Socat => stdout,
    };
    let mut inbound_rx = LineCounter::spawn("the program's stdout", stdout);
    let clone = socket
        .try_clone()
        .map_err(|e| format!("could not clone the socket: {e}"))?;
    let mut outbound_rx = LineCounter::spawn("the socket", clone);
    let mut stdin = target.take_stdin()?;

    let payload = payload(lines, LINE_BYTES);
    // Warm up both directions once before measuring.
    let warm = lines.min(1000);
    inbound_rx.expect(warm)?;
    push(&mut socket, &payload[..warm * LINE_BYTES], "the socket")?;
    inbound_rx.arrived(RUN_DEADLINE)?;
    outbound_rx.expect(warm)?;
    to_stdin(&mut stdin, &payload[..warm * LINE_BYTES], RUN_DEADLINE)?;
    outbound_rx.arrived(RUN_DEADLINE)?;

    let mut inbound = Vec::with_capacity(runs);
    let mut outbound = Vec::with_capacity(runs);
    for _ in 0..runs {
        inbound_rx.expect(lines)?;
        let start = Instant::now();
        push(&mut socket, &payload, "the socket")?;
        let end = inbound_rx.arrived(RUN_DEADLINE)?.at;
        inbound.push(lines as f64 / (end - start).as_secs_f64());

        outbound_rx.expect(lines)?;
        let start = Instant::now();
        to_stdin(&mut stdin, &payload, RUN_DEADLINE)?;
        let end = outbound_rx.arrived(RUN_DEADLINE)?.at;
        outbound.push(lines as f64 / (end - start).as_secs_f64());
    }

    let line = &payload[..LINE_BYTES];
    let mut in_samples = Vec::with_capacity(samples);
    let mut out_samples = Vec::with_capacity(samples);
    for _ in 0..samples {
        inbound_rx.expect(1)?;
        let start = Instant::now();
        push(&mut socket, line, "the socket")?;
        in_samples.push((inbound_rx.arrived(SAMPLE_DEADLINE)?.at - start).as_secs_f64() * 1e6);
        outbound_rx.expect(1)?;
        let start = Instant::now();
        to_stdin(&mut stdin, line, SAMPLE_DEADLINE)?;
        out_samples.push((outbound_rx.arrived(SAMPLE_DEADLINE)?.at - start).as_secs_f64() * 1e6);
    }
    let loaded_rss_kib = status_kib(target.pid(), "VmHWM:");
    drop(socket);
    drop(stdin);
    target.finish(Duration::from_secs(5));
    // Removed once the program has ended.
    drop(dir);

    Ok(Figures {
        inbound: median(&mut inbound),
        outbound: median(&mut outbound),
        in_latency: latency(&mut in_samples),
        out_latency: latency(&mut out_samples),
        idle_rss_kib,
        loaded_rss_kib,
    })
}

/// Starts the program listening on a loopback port; returns its temp data
/// dir (none for socat), to be removed once it has ended, the program, its
/// stdout past the status lines that come before a connection, and the
/// port.
fn start(
    subject: &Subject,
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
