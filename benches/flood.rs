//! Floods: what a sustained flood of room lines costs each peer in memory,
//! whether every line still arrives once and in order, and how long lines
//! the other way wait meanwhile.
//!
//! Run with `cargo bench --bench flood`. Knobs (environment):
//! - `FLOOD_ONLY` (default `pair,stop,room,paste`): the sections to run;
//! - `FLOOD_SECS` (default 15): how long the flooding sender is fed;
//! - `FLOOD_LINE` (default 1024): bytes per flood line, newline included;
//! - `STOP_SECS` (default 40): how long the receiver is stopped;
//! - `STOP_LINES` (default 200000): lines fed to the sender of `stop`;
//! - `PASTE_MB` (default 100): the size of the line `paste` feeds, in MiB;
//! - `SOAK_SECS`, `SOAK_BURST_EVERY`, `SOAK_BURST_SECS`: see `soak`, a
//!   section run only when named (`FLOOD_ONLY=soak`).
//!
//! Two secure peers on 127.0.0.1 (`--no-mdns`, a temp data dir each, with
//! their history): A listens, B connects; both show `Type messages` and
//! are left one second to settle, and their VmRSS then is their idle RSS.
//! Every 50 ms the benchmark reads both VmRSS; the largest is the peak.
//!
//! `pair`: B's stdin gets `f I xxx...` lines of `FLOOD_LINE` bytes as fast
//! as it takes them for `FLOOD_SECS`; meanwhile A's stdin gets `r I` every
//! 100 ms, timed from just before the write until B's stdout shows `Peer:
//! r I` (one clock). Once A has shown every flood line (at most 120 s),
//! both are left 10 s and their VmRSS read again. Every flood line must be
//! shown once, in order. Bars (issue 16): peak RSS of each <= 64 MB, back
//! within 16 MB of idle 10 s after the flood drained, the lines the other
//! way at p99 <= 250 ms.
//!
//! `stop`: B's stdin gets `STOP_LINES` lines of 1 KiB from a thread (a
//! write waits when B waits); after one second A is stopped (SIGSTOP) for
//! `STOP_SECS`, then continued, and must show every line once, in order,
//! within 180 s. Bar: B's peak RSS <= its idle RSS + 32 MB.
//!
//! `room`: five members (`--name m0`..`m4`), m1..m4 joining through m0,
//! each shown `Type messages` and left 3 s to meet. m4's stdin gets flood
//! lines as in `pair` for `FLOOD_SECS` while m1 says `h I` every 100 ms;
//! every other member must show each `m1: h I`, timed from just before
//! the write. Bars: m1's lines at p99 <= 250 ms at every member, none
//! missing; every member's peak RSS <= 64 MB.
//!
//! `paste`: B's stdin gets one line of `PASTE_MB` MiB (a new letter every
//! 128 KiB) as fast as it takes it, then `after the paste`. A must show the
//! line in pieces of 128 KiB (the longest room line), each all its letter,
//! in order, with every byte, then `after the paste`, within 300 s. Bar:
//! each peer's peak RSS <= 64 MB (the line is never held whole).
//!
//! A missed bar is reported and the run goes on; a section that could not
//! be carried out fails the run (exit 1) after the others. MB is MiB.

mod support;

#[path = "flood/soak.rs"]
mod soak;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::process::{port_in, read_status, status_kib, Running};
use support::{env_usize, grouped, latency, mb};

/// Peak RSS of either peer during a flood, at most (MB).
const BAR_PEAK_MB: f64 = 64.0;
/// RSS above idle 10 s after the flood drained, at most (MB).
const BAR_AFTER_MB: f64 = 16.0;
/// p99 of the lines the other way during the flood, at most (ms).
const BAR_REVERSE_P99_MS: f64 = 250.0;
/// The sender's RSS above idle while its reader is stopped, at most (MB).
const BAR_STOP_GROWTH_MB: f64 = 32.0;

/// How long a status line may take.
const START_WAIT: Duration = Duration::from_secs(20);
/// How long the receiver may take to show every line of `pair`.
const DRAIN_WAIT: Duration = Duration::from_secs(120);
/// How long the receiver may take to show every line of `stop`.
const STOP_DRAIN_WAIT: Duration = Duration::from_secs(180);
/// How long the pair is left after the flood drained before the last RSS.
const SETTLE: Duration = Duration::from_secs(10);
/// How often RSS is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

fn main() {
    let only = std::env::var("FLOOD_ONLY").unwrap_or_else(|_| "pair,stop,room,paste".into());
    println!("{}", support::machine());
    println!("load average: {}", support::load_average());
    let mut failed = false;
    for section in only.split(',').map(str::trim) {
        let result = match section {
            "pair" => pair(),
            "stop" => stop(),
            "room" => room(),
            "paste" => paste(),
            "soak" => soak::soak(),
            other => Err(format!(
                "no section {other:?} (pair, stop, room, paste, soak)"
            )),
        };
        if let Err(e) = result {
            println!("\n{section}: could not be measured: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// Two peers talking, with both ends of each held by the benchmark.
struct Pair {
    _temp: tempfile::TempDir,
    a: Running,
    b: Running,
    a_in: ChildStdin,
    b_in: ChildStdin,
    a_out: BufReader<ChildStdout>,
    b_out: BufReader<ChildStdout>,
    idle_a: u64,
    idle_b: u64,
}

impl Pair {
    fn start() -> Result<Pair, String> {
        let temp = tempfile::Builder::new()
            .prefix("flood-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let dir = |name: &str| temp.path().join(name).to_string_lossy().into_owned();
        let (dir_a, dir_b) = (dir("a"), dir("b"));
        let mut a = Running::ours("A", &["--listen", "0", "--data-dir", &dir_a, "--no-mdns"])?;
        let a_out = BufReader::new(a.take_stdout()?);
        let listening = read_status(a_out, "Listening on:", START_WAIT)?;
        let target = format!("127.0.0.1:{}", port_in(&listening.line)?);
        let mut b = Running::ours(
            "B",
            &["--connect", &target, "--data-dir", &dir_b, "--no-mdns"],
        )?;
        let b_out = BufReader::new(b.take_stdout()?);
        let b_out = read_status(b_out, "Type messages", START_WAIT)?.rest;
        let a_out = read_status(listening.rest, "Type messages", START_WAIT)?.rest;
        let (a_in, b_in) = (a.take_stdin()?, b.take_stdin()?);
        thread::sleep(Duration::from_secs(1));
        let (idle_a, idle_b) = (rss(&a), rss(&b));
        Ok(Pair {
            _temp: temp,
            a,
            b,
            a_in,
            b_in,
            a_out,
            b_out,
            idle_a,
            idle_b,
        })
    }
}

fn rss(p: &Running) -> u64 {
    status_kib(p.pid(), "VmRSS:")
}

/// Reads both peers' RSS until stopped; returns the peaks (KiB).
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(u64, u64)>,
}

impl Sampler {
    fn start(a: u32, b: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let (mut peak_a, mut peak_b) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                peak_a = peak_a.max(status_kib(a, "VmRSS:"));
                peak_b = peak_b.max(status_kib(b, "VmRSS:"));
                thread::sleep(SAMPLE_EVERY);
            }
            (peak_a, peak_b)
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or((0, 0))
    }
}

/// Counts `Peer: f I ...` lines on a receiver's stdout: how many, and how
/// many came out of order (a repeat counts as out of order).
struct FloodCounter {
    shown: Arc<AtomicU64>,
    disorder: Arc<AtomicU64>,
}

impl FloodCounter {
    fn spawn(out: BufReader<ChildStdout>) -> FloodCounter {
        let shown = Arc::new(AtomicU64::new(0));
        let disorder = Arc::new(AtomicU64::new(0));
        let (count, bad) = (Arc::clone(&shown), Arc::clone(&disorder));
        let mut next = 0u64;
        each_line(out, move |line| {
            let Some(rest) = line.strip_prefix("Peer: f ") else {
                return;
            };
            let index = rest.split(' ').next().and_then(|i| i.parse::<u64>().ok());
            if index != Some(next) {
                bad.fetch_add(1, Ordering::Relaxed);
            }
            next = index.map_or(next, |i| i + 1);
            count.fetch_add(1, Ordering::Relaxed);
        });
        FloodCounter { shown, disorder }
    }

    fn shown(&self) -> u64 {
        self.shown.load(Ordering::Relaxed)
    }

    fn disorder(&self) -> u64 {
        self.disorder.load(Ordering::Relaxed)
    }

    /// Waits until `lines` were shown, at most `within`; how long it took.
    fn wait_for(&self, lines: u64, within: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        while self.shown() < lines {
            if start.elapsed() >= within {
                return Err(format!(
                    "{} of {} lines shown after {within:?}",
                    grouped(self.shown() as f64),
                    grouped(lines as f64)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(start.elapsed())
    }
}

/// Reads `out` line by line on a thread of its own until it ends, handing
/// each line to `seen`.
fn each_line(mut out: BufReader<ChildStdout>, mut seen: impl FnMut(&str) + Send + 'static) {
    thread::spawn(move || {
        let mut line = String::new();
        while matches!(out.read_line(&mut line), Ok(n) if n > 0) {
            seen(&line);
            line.clear();
        }
    });
}

/// When each numbered line `PREFIX I` showed on a stdout, read on a thread
/// of its own.
struct Arrivals(Arc<Mutex<Vec<(u64, Instant)>>>);

impl Arrivals {
    fn watch(out: BufReader<ChildStdout>, prefix: &'static str) -> Arrivals {
        let arrived = Arc::new(Mutex::new(Vec::new()));
        let noted = Arc::clone(&arrived);
        each_line(out, move |line| {
            if let Some(i) = line
                .strip_prefix(prefix)
                .and_then(|r| r.trim_end().parse().ok())
            {
                if let Ok(mut noted) = noted.lock() {
                    noted.push((i, Instant::now()));
                }
            }
        });
        Arrivals(arrived)
    }

    /// How long each line that showed took, in microseconds, from when
    /// line I was written (`sent_at[I]`).
    fn waits(&self, sent_at: &[Instant]) -> Vec<f64> {
        let Ok(arrived) = self.0.lock() else {
            return Vec::new();
        };
        arrived
            .iter()
            .filter_map(|&(i, at)| {
                let sent = sent_at.get(i as usize)?;
                Some(at.duration_since(*sent).as_secs_f64() * 1e6)
            })
            .collect()
    }
}

/// Writes flood lines of `line_bytes` to `input` as fast as it takes them
/// for `secs`; how many.
fn flood(input: &mut ChildStdin, secs: u64, line_bytes: usize) -> std::io::Result<u64> {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut block = String::new();
    while start.elapsed() < Duration::from_secs(secs) {
        block.clear();
        for _ in 0..64 {
            push_flood_line(&mut block, sent, line_bytes);
            sent += 1;
        }
        input.write_all(block.as_bytes())?;
    }
    Ok(sent)
}

/// Writes `PREFIX I` to `input` every 100 ms while `flooding`, noting when
/// each was written; gives `input` back at the end (closing it would end
/// the program).
fn speak(
    mut input: ChildStdin,
    prefix: &'static str,
    flooding: Arc<AtomicBool>,
    sent_at: Arc<Mutex<Vec<Instant>>>,
) -> JoinHandle<ChildStdin> {
    thread::spawn(move || {
        let mut i = 0u64;
        while flooding.load(Ordering::Relaxed) {
            if let Ok(mut sent) = sent_at.lock() {
                sent.push(Instant::now());
            }
            if input
                .write_all(format!("{prefix} {i}\n").as_bytes())
                .is_err()
            {
                break;
            }
            i += 1;
            thread::sleep(Duration::from_millis(100));
        }
        input
    })
}

/// Flood line `index`, `bytes` long with its newline, into `block`.
fn push_flood_line(block: &mut String, index: u64, bytes: usize) {
    let start = block.len();
    block.push_str("f ");
    block.push_str(&index.to_string());
    block.push(' ');
    let used = block.len() - start + 1;
    block.extend(std::iter::repeat_n('x', bytes.saturating_sub(used)));
    block.push('\n');
}

fn pair() -> Result<(), String> {
    let secs = env_usize("FLOOD_SECS", 15) as u64;
    let line_bytes = env_usize("FLOOD_LINE", 1024).max(16);
    println!("\n== pair: B floods A with {line_bytes}-byte lines for {secs} s; A says a line every 100 ms");
    let pair = Pair::start()?;
    let (a, b, a_in, mut b_in) = (pair.a, pair.b, pair.a_in, pair.b_in);
    let (a_out, b_out) = (pair.a_out, pair.b_out);
    let (idle_a, idle_b, _temp) = (pair.idle_a, pair.idle_b, pair._temp);
    let counter = FloodCounter::spawn(a_out);
    // The lines the other way: sent times by index, and arrival times.
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let arrived = Arrivals::watch(b_out, "Peer: r ");
    let sampler = Sampler::start(a.pid(), b.pid());
    let flooding = Arc::new(AtomicBool::new(true));
    let pinger = speak(a_in, "r", Arc::clone(&flooding), Arc::clone(&sent_at));
    let start = Instant::now();
    let sent = flood(&mut b_in, secs, line_bytes).map_err(|e| format!("writing to B: {e}"))?;
    let fed = start.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let _a_in = pinger
        .join()
        .map_err(|_| "the thread writing to A failed")?;
    let drained = counter.wait_for(sent, DRAIN_WAIT)? + fed;
    let (at_drain_a, at_drain_b) = (rss(&a), rss(&b));
    thread::sleep(SETTLE);
    let (after_a, after_b) = (rss(&a), rss(&b));
    let (peak_a, peak_b) = sampler.finish();
    // Lines the other way sent while the flood was on, and their waits.
    let sent_at = sent_at.lock().map(|s| s.clone()).unwrap_or_default();
    let mut waits = arrived.waits(&sent_at);
    let missing_reverse = sent_at.len().saturating_sub(waits.len());
    let reverse = latency(&mut waits);
    println!(
        "flood: {} lines in {:.1} s, all shown by A {:.1} s after the first ({} lines/s); out of order or repeated: {}",
        grouped(sent as f64),
        fed.as_secs_f64(),
        drained.as_secs_f64(),
        grouped(sent as f64 / drained.as_secs_f64()),
        counter.disorder()
    );
    println!(
        "the other way: {} lines, {} missing, p50 {:.1} ms, p99 {:.1} ms (bar: p99 <= {BAR_REVERSE_P99_MS} ms)",
        sent_at.len(),
        missing_reverse,
        reverse.p50 / 1000.0,
        reverse.p99 / 1000.0
    );
    println!(
        "{:<12} {:>8} {:>8} {:>10} {:>10}",
        "RSS (MB)", "idle", "peak", "drained", "+10 s"
    );
    for (name, idle, peak, drained, after) in [
        ("A (reader)", idle_a, peak_a, at_drain_a, after_a),
        ("B (sender)", idle_b, peak_b, at_drain_b, after_b),
    ] {
        println!(
            "{name:<12} {:>8.1} {:>8.1} {:>10.1} {:>10.1}",
            mb(idle),
            mb(peak),
            mb(drained),
            mb(after)
        );
    }
    let mut missed = Vec::new();
    if counter.disorder() > 0 {
        missed.push("every line once, in order".to_owned());
    }
    if missing_reverse > 0 || reverse.p99 / 1000.0 > BAR_REVERSE_P99_MS {
        missed.push(format!("the other way at p99 <= {BAR_REVERSE_P99_MS} ms"));
    }
    for (name, idle, peak, after) in [
        ("A", idle_a, peak_a, after_a),
        ("B", idle_b, peak_b, after_b),
    ] {
        if mb(peak) > BAR_PEAK_MB {
            missed.push(format!("{name}'s peak <= {BAR_PEAK_MB} MB"));
        }
        if mb(after.saturating_sub(idle)) > BAR_AFTER_MB {
            missed.push(format!(
                "{name} within {BAR_AFTER_MB} MB of idle 10 s after"
            ));
        }
    }
    report(&missed);
    Ok(())
}

/// The longest line sent as one in a room.
const PIECE: usize = rust_p2p_chat::net::MAX_ROOM_LINE;

/// How long A may take to show the whole paste.
const PASTE_WAIT: Duration = Duration::from_secs(300);

fn paste() -> Result<(), String> {
    const MIB: usize = 1024 * 1024;
    let size = env_usize("PASTE_MB", 100).max(1) * MIB;
    println!("\n== paste: B is fed one line of {} MiB", size / MIB);
    let pair = Pair::start()?;
    let (a, b, mut b_in, mut a_out) = (pair.a, pair.b, pair.b_in, pair.a_out);
    let (idle_a, idle_b, _temp) = (pair.idle_a, pair.idle_b, pair._temp);
    let letter = |at: usize| b'a' + (at / PIECE % 26) as u8;
    let sampler = Sampler::start(a.pid(), b.pid());
    let start = Instant::now();
    let feeder = thread::spawn(move || -> std::io::Result<ChildStdin> {
        let mut chunk = vec![0u8; 64 * 1024];
        for at in (0..size).step_by(chunk.len()) {
            chunk.fill(letter(at));
            b_in.write_all(&chunk)?;
        }
        b_in.write_all(b"\nafter the paste\n")?;
        Ok(b_in)
    });
    // A's lines, read here: the pieces in order, each all its letter.
    let (mut shown, mut pieces, mut wrong) = (0usize, 0usize, 0usize);
    let mut line = Vec::new();
    loop {
        if start.elapsed() > PASTE_WAIT {
            return Err(format!(
                "{shown} of {size} bytes shown after {PASTE_WAIT:?}"
            ));
        }
        line.clear();
        match a_out.read_until(b'\n', &mut line) {
            Ok(0) => return Err(format!("A ended after {shown} of {size} bytes")),
            Ok(_) => {}
            Err(e) => return Err(format!("reading A: {e}")),
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text == b"Peer: after the paste" {
            break;
        }
        let Some(piece) = text.strip_prefix(b"Peer: ") else {
            continue;
        };
        let expected = letter(shown);
        if piece.len() != PIECE.min(size.saturating_sub(shown))
            || piece.iter().any(|&c| c != expected)
        {
            wrong += 1;
        }
        shown += piece.len();
        pieces += 1;
    }
    let took = start.elapsed();
    let (peak_a, peak_b) = sampler.finish();
    let _b_in = feeder
        .join()
        .map_err(|_| "the thread writing to B failed")?
        .map_err(|e| format!("writing to B: {e}"))?;
    println!(
        "{} MiB in {pieces} pieces, all shown by A in {:.1} s ({:.1} MiB/s); bytes shown {}, pieces wrong or out of order: {wrong}",
        size / MIB,
        took.as_secs_f64(),
        size as f64 / MIB as f64 / took.as_secs_f64(),
        grouped(shown as f64)
    );
    println!("{:<12} {:>8} {:>8}", "RSS (MB)", "idle", "peak");
    let mut missed = Vec::new();
    if shown != size || wrong > 0 {
        missed.push("every byte shown once, in order".to_owned());
    }
    for (name, idle, peak) in [
        ("A (reader)", idle_a, peak_a),
        ("B (sender)", idle_b, peak_b),
    ] {
        println!("{name:<12} {:>8.1} {:>8.1}", mb(idle), mb(peak));
        if mb(peak) > BAR_PEAK_MB {
            missed.push(format!("{name}'s peak <= {BAR_PEAK_MB} MB"));
        }
    }
    report(&missed);
    Ok(())
}

fn stop() -> Result<(), String> {
    let secs = env_usize("STOP_SECS", 40) as u64;
    let lines = env_usize("STOP_LINES", 200_000) as u64;
    println!(
        "\n== stop: B is fed {} lines of 1 KiB; A is stopped for {secs} s",
        grouped(lines as f64)
    );
    let pair = Pair::start()?;
    let (a, b, a_in, mut b_in) = (pair.a, pair.b, pair.a_in, pair.b_in);
    let (a_out, b_out, idle_b, _temp) = (pair.a_out, pair.b_out, pair.idle_b, pair._temp);
    // B's own output is read and dropped, so it never waits on it.
    each_line(b_out, |_| {});
    let counter = FloodCounter::spawn(a_out);
    let sampler = Sampler::start(a.pid(), b.pid());
    // B's input, fed on a thread: a write waits while B does.
    let feeder = thread::spawn(move || {
        let mut block = String::new();
        let mut i = 0;
        while i < lines {
            block.clear();
            for _ in 0..64.min(lines - i) {
                push_flood_line(&mut block, i, 1024);
                i += 1;
            }
            if b_in.write_all(block.as_bytes()).is_err() {
                break;
            }
        }
        // Given back, not closed: closing it would end B.
        b_in
    });
    thread::sleep(Duration::from_secs(1));
    signal(a.pid(), "STOP")?;
    let stopped_at = counter.shown();
    thread::sleep(Duration::from_secs(secs));
    let peak_b_stopped = status_kib(b.pid(), "VmHWM:");
    signal(a.pid(), "CONT")?;
    let waited = counter.wait_for(lines, STOP_DRAIN_WAIT);
    let (_, peak_b) = sampler.finish();
    let _b_in = feeder.join();
    drop(a_in);
    println!(
        "A showed {} lines before it was stopped; after it was continued: {}; out of order or repeated: {}",
        grouped(stopped_at as f64),
        match &waited {
            Ok(d) => format!("all {} within {:.1} s", grouped(lines as f64), d.as_secs_f64()),
            Err(e) => e.clone(),
        },
        counter.disorder()
    );
    println!(
        "B's RSS: idle {:.1} MB, peak {:.1} MB (+{:.1} MB; bar: +{BAR_STOP_GROWTH_MB} MB); VmHWM at the end of the stop {:.1} MB",
        mb(idle_b),
        mb(peak_b),
        mb(peak_b.saturating_sub(idle_b)),
        mb(peak_b_stopped)
    );
    let mut missed = Vec::new();
    if waited.is_err() || counter.disorder() > 0 {
        missed.push("every line once, in order, after SIGCONT".to_owned());
    }
    if mb(peak_b.saturating_sub(idle_b)) > BAR_STOP_GROWTH_MB {
        missed.push(format!("B within {BAR_STOP_GROWTH_MB} MB of idle"));
    }
    report(&missed);
    Ok(())
}

/// Members of the `room` section.
const ROOM_MEMBERS: usize = 5;

/// A room of [`ROOM_MEMBERS`] (`--name m0`..), each member shown `Type
/// messages`, with both ends of each held by the benchmark.
struct Room {
    _temp: tempfile::TempDir,
    members: Vec<Running>,
    inputs: Vec<ChildStdin>,
    outputs: Vec<BufReader<ChildStdout>>,
}

impl Room {
    /// m1.. join through m0.
    fn start(prefix: &str) -> Result<Room, String> {
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut members = Vec::new();
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut port = String::new();
        for i in 0..ROOM_MEMBERS {
            let dir = temp
                .path()
                .join(format!("m{i}"))
                .to_string_lossy()
                .into_owned();
            let name = format!("m{i}");
            let target = format!("127.0.0.1:{port}");
            let mut args = vec![
                "--listen",
                "0",
                "--data-dir",
                &dir,
                "--no-mdns",
                "--name",
                &name,
            ];
            if i > 0 {
                args.extend_from_slice(&["--connect", &target]);
            }
            let mut member = Running::ours(&name, &args)?;
            let out = BufReader::new(member.take_stdout()?);
            let listening = read_status(out, "Listening on:", START_WAIT)?;
            if i == 0 {
                port = port_in(&listening.line)?.to_string();
            }
            inputs.push(member.take_stdin()?);
            outputs.push(listening.rest);
            members.push(member);
        }
        let mut ready = Vec::new();
        for out in outputs {
            ready.push(read_status(out, "Type messages", START_WAIT)?.rest);
        }
        Ok(Room {
            _temp: temp,
            members,
            inputs,
            outputs: ready,
        })
    }
}

fn room() -> Result<(), String> {
    let secs = env_usize("FLOOD_SECS", 15) as u64;
    let line_bytes = env_usize("FLOOD_LINE", 1024).max(16);
    println!(
        "\n== room: {ROOM_MEMBERS} members; m4 floods with {line_bytes}-byte lines for {secs} s; m1 says a line every 100 ms"
    );
    let Room {
        _temp,
        members,
        mut inputs,
        outputs: ready,
    } = Room::start("flood-room-")?;
    thread::sleep(Duration::from_secs(3));
    let idle: Vec<u64> = members.iter().map(rss).collect();
    // Arrivals of m1's lines at each member.
    let arrived: Vec<Arrivals> = ready
        .into_iter()
        .map(|out| Arrivals::watch(out, "m1: h "))
        .collect();
    let peaks: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(vec![0; ROOM_MEMBERS]));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let pids: Vec<u32> = members.iter().map(Running::pid).collect();
        let (peaks, sampling) = (Arc::clone(&peaks), Arc::clone(&sampling));
        thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(mut peaks) = peaks.lock() {
                    for (peak, pid) in peaks.iter_mut().zip(&pids) {
                        *peak = (*peak).max(status_kib(*pid, "VmRSS:"));
                    }
                }
                thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let honest = inputs.remove(1);
    let flooding = Arc::new(AtomicBool::new(true));
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let speaker = speak(honest, "h", Arc::clone(&flooding), Arc::clone(&sent_at));
    let flooder = inputs.last_mut().ok_or("no member to flood with")?;
    let start = Instant::now();
    let sent = flood(flooder, secs, line_bytes).map_err(|e| format!("writing to m4: {e}"))?;
    let fed = start.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let _honest = speaker
        .join()
        .map_err(|_| "the thread writing to m1 failed")?;
    // The last of m1's lines may still be on their way.
    thread::sleep(Duration::from_secs(5));
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let sent_at = sent_at.lock().map(|s| s.clone()).unwrap_or_default();
    let peaks = peaks.lock().map(|p| p.clone()).unwrap_or_default();
    println!(
        "m4 wrote {} flood lines in {:.1} s; m1 said {} lines",
        grouped(sent as f64),
        fed.as_secs_f64(),
        sent_at.len()
    );
    println!(
        "{:<6} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "member", "m1 lines", "p50 ms", "p99 ms", "idle MB", "peak MB"
    );
    let mut missed = Vec::new();
    for member in 0..ROOM_MEMBERS {
        let mut waits = arrived
            .get(member)
            .map_or_else(Vec::new, |a| a.waits(&sent_at));
        let shown = waits.len();
        let wait = latency(&mut waits);
        let (idle_kib, peak_kib) = (
            idle.get(member).copied().unwrap_or(0),
            peaks.get(member).copied().unwrap_or(0),
        );
        if member == 1 {
            println!(
                "m1     {:>9} {:>9} {:>9} {:>10.1} {:>10.1}",
                "(says)",
                "",
                "",
                mb(idle_kib),
                mb(peak_kib)
            );
        } else {
            println!(
                "m{member:<5} {:>9} {:>9.1} {:>9.1} {:>10.1} {:>10.1}",
                format!("{shown}/{}", sent_at.len()),
                wait.p50 / 1000.0,
                wait.p99 / 1000.0,
                mb(idle_kib),
                mb(peak_kib)
            );
            if shown < sent_at.len() || wait.p99 / 1000.0 > BAR_REVERSE_P99_MS {
                missed.push(format!(
                    "m1's lines at m{member} all, p99 <= {BAR_REVERSE_P99_MS} ms"
                ));
            }
        }
        if mb(peak_kib) > BAR_PEAK_MB {
            missed.push(format!("m{member}'s peak <= {BAR_PEAK_MB} MB"));
        }
    }
    drop(members);
    report(&missed);
    Ok(())
}

fn signal(pid: u32, name: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .map_err(|e| format!("kill -{name}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {pid} failed"))
    }
}

fn report(missed: &[String]) {
    if missed.is_empty() {
        println!("bars: all met");
    } else {
        println!("bars missed: {}", missed.join("; "));
    }
}
