//! Sending a file: `cargo bench --bench files`.
//!
//! Makes a file of `FILES_MIB` MiB (default 1024) of random bytes, then,
//! `FILES_ROUNDS` times (default 4), taking turns at going first:
//! - `socat -u` copies it over TCP on 127.0.0.1 into a new file, and the
//!   copy is synced to the disk (`sync FILE`), since the chat syncs a
//!   received file before it gives it its name; the copy alone is timed
//!   too;
//! - two real processes of the binary (release build) send it: B offers
//!   it with `/send`, A accepts it with `/accept`; timed from the accept
//!   to A's `Received ... (..., verified)` line. Meanwhile B types a line
//!   every 20 ms, and the time each takes to show at A is taken (one
//!   clock: both pipes are read here). Both processes' RSS is read before
//!   (idle) and their peak (VmHWM) after. The received file's BLAKE3 hash
//!   is compared with the original's.
//!
//! `FILES_TRACE=1` prints what A shows during a transfer, with the time
//! since the accept.
//!
//! Reports each side's rate, ours against socat's (the bar: at least
//! half), the typed lines' latency (the bar: p99 under 50 ms), and the
//! memory each side took over its idle RSS (the bar: 32 MB).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use support::process::{
    free_port, read_status, socat_available, status_kib, wait_listening, Running,
};

/// A megabyte as the benchmarks count it (see docs/benchmarks.md).
const MB: f64 = 1024.0 * 1024.0;

/// How long one transfer may take before the benchmark gives up.
const TRANSFER_LIMIT: Duration = Duration::from_secs(600);

/// How often B types a line during a transfer.
const TYPE_EVERY: Duration = Duration::from_millis(20);

fn main() {
    if let Err(e) = run() {
        eprintln!("files benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// Writes `mib` MiB of pseudo-random bytes (xorshift: no pattern a
/// compressor or a deduplicating disk could take advantage of).
fn make_file(path: &Path, mib: usize) -> Result<blake3::Hash, String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = blake3::Hasher::new();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        hasher.update(&block);
        out.write_all(&block).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    // On the disk before anything is timed: its writing back would
    // otherwise share the machine with the first runs.
    out.get_ref().sync_all().map_err(|e| e.to_string())?;
    Ok(hasher.finalize())
}

fn hash_of(path: &Path) -> Result<blake3::Hash, String> {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::copy(&mut file, &mut hasher).map_err(|e| e.to_string())?;
    Ok(hasher.finalize())
}

/// One socat copy: (seconds to copy, seconds to copy and sync).
fn socat_once(src: &Path, dst: &Path) -> Result<(f64, f64), String> {
    let _ = std::fs::remove_file(dst);
    let port = free_port()?;
    let mut receiver = Running::spawn(
        "socat receiver",
        Command::new("socat").args([
            "-u",
            &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"),
            &format!("CREATE:{}", dst.display()),
        ]),
    )?;
    wait_listening(port, Duration::from_secs(5))?;
    let start = Instant::now();
    let mut sender = Running::spawn(
        "socat sender",
        Command::new("socat").args([
            "-u",
            &format!("OPEN:{}", src.display()),
            &format!("TCP:127.0.0.1:{port}"),
        ]),
    )?;
    sender
        .ended_within(TRANSFER_LIMIT)
        .ok_or("socat did not finish sending")?;
    receiver
        .ended_within(TRANSFER_LIMIT)
        .ok_or("socat did not finish receiving")?;
    let copied = start.elapsed().as_secs_f64();
    let synced = Command::new("sync")
        .arg(dst)
        .status()
        .map_err(|e| e.to_string())?;
    if !synced.success() {
        return Err("sync failed".into());
    }
    let both = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(dst);
    Ok((copied, both))
}

/// Lines a process prints, with when they were read.
fn lines_of(running: &mut Running) -> Result<mpsc::Receiver<(Instant, String)>, String> {
    let stdout = BufReader::new(running.take_stdout()?);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Waits for a line containing `part`, handing every line read to `seen`.
fn wait_for(
    lines: &mpsc::Receiver<(Instant, String)>,
    part: &str,
    within: Duration,
    mut seen: impl FnMut(Instant, &str),
) -> Result<(Instant, String), String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or_else(|| format!("no line with {part:?} within {within:?}"))?;
        let (at, line) = lines
            .recv_timeout(left)
            .map_err(|_| format!("no line with {part:?} within {within:?}"))?;
        seen(at, &line);
        if line.contains(part) {
            return Ok((at, line));
        }
    }
}

fn say(stdin: &mut ChildStdin, line: &str) -> Result<(), String> {
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| stdin.flush())
        .map_err(|e| e.to_string())
}

/// What one transfer of ours measured.
struct Ours {
    hashing: f64,
    seconds: f64,
    latency_ms: Vec<f64>,
    idle_kib: (u64, u64),
    peak_kib: (u64, u64),
    received: PathBuf,
}

fn ours_once(work: &Path, src: &Path, round: usize) -> Result<Ours, String> {
    let a_dir = work.join(format!("a{round}"));
    let b_dir = work.join(format!("b{round}"));
    let downloads = work.join(format!("downloads{round}"));
    let text = |p: &Path| p.display().to_string();
    let mut a = Running::ours(
        "receiver A",
        &[
            "--listen",
            "0",
            "--no-mdns",
            "--name",
            "ann",
            "--data-dir",
            &text(&a_dir),
            "--download-dir",
            &text(&downloads),
        ],
    )?;
    let a_out = BufReader::new(a.take_stdout()?);
    let listening = read_status(a_out, "Listening on: ", Duration::from_secs(20))?;
    let port = support::process::port_in(&listening.line)?;
    let (a_tx, a_lines) = mpsc::channel();
    let mut rest = listening.rest;
    thread::spawn(move || {
        let mut line = String::new();
        while rest.read_line(&mut line).is_ok_and(|n| n > 0) {
            if a_tx
                .send((Instant::now(), line.trim_end().to_owned()))
                .is_err()
            {
                break;
            }
            line.clear();
        }
    });
    let mut b = Running::ours(
        "sender B",
        &[
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--no-mdns",
            "--name",
            "bob",
            "--data-dir",
            &text(&b_dir),
        ],
    )?;
    let b_lines = lines_of(&mut b)?;
    let mut a_in = a.take_stdin()?;
    let mut b_in = b.take_stdin()?;
    let ready = Duration::from_secs(20);
    wait_for(&b_lines, "Type messages", ready, |_, _| {})?;
    wait_for(&a_lines, "Peer is now known as bob", ready, |_, _| {})?;
    thread::sleep(Duration::from_secs(1));
    let idle_kib = (status_kib(a.pid(), "VmRSS:"), status_kib(b.pid(), "VmRSS:"));
    let asked = Instant::now();
    say(&mut b_in, &format!("/send {}", src.display()))?;
    let (offered, _) = wait_for(&b_lines, "Offered \"", TRANSFER_LIMIT, |_, _| {})?;
    let hashing = (offered - asked).as_secs_f64();
    let (_, offer) = wait_for(&a_lines, " offers \"", ready, |_, _| {})?;
    let number = offer
        .split("/accept ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| format!("no number in {offer:?}"))?
        .to_owned();
    // B types while the file moves; A's reader matches what arrives.
    let typing = Arc::new(AtomicBool::new(true));
    let (sent_tx, sent_rx) = mpsc::channel::<(usize, Instant)>();
    let typist = {
        let typing = Arc::clone(&typing);
        thread::spawn(move || {
            let mut n = 0usize;
            while typing.load(Ordering::Relaxed) && n < 100_000 {
                let at = Instant::now();
                if say(&mut b_in, &format!("ping {n}")).is_err() {
                    break;
                }
                let _ = sent_tx.send((n, at));
                n += 1;
                thread::sleep(TYPE_EVERY);
            }
            b_in
        })
    };
    let start = Instant::now();
    say(&mut a_in, &format!("/accept {number}"))?;
    let mut shown: Vec<(usize, Instant)> = Vec::new();
    let (done, line) = wait_for(&a_lines, "Received \"", TRANSFER_LIMIT, |at, line| {
        if std::env::var_os("FILES_TRACE").is_some() && !line.starts_with("bob: ping") {
            eprintln!("{:.3} {line}", (at - start).as_secs_f64());
        }
        if let Some(n) = line.strip_prefix("bob: ping ").and_then(|n| n.parse().ok()) {
            shown.push((n, at));
        }
    })?;
    let seconds = (done - start).as_secs_f64();
    typing.store(false, Ordering::Relaxed);
    let _ = typist.join();
    let sent: std::collections::HashMap<usize, Instant> = sent_rx.try_iter().collect();
    let latency_ms: Vec<f64> = shown
        .iter()
        .filter_map(|(n, at)| sent.get(n).map(|s| (*at - *s).as_secs_f64() * 1000.0))
        .collect();
    if std::env::var_os("FILES_TRACE").is_some() {
        for ((n, at), ms) in shown.iter().zip(&latency_ms) {
            if *ms > 20.0 {
                eprintln!(
                    "{:.3} line {n} took {ms:.1} ms",
                    (*at - start).as_secs_f64()
                );
            }
        }
    }
    if !line.contains(", verified) -> ") {
        return Err(format!("unexpected: {line}"));
    }
    let received = PathBuf::from(line.rsplit(" -> ").next().unwrap_or_default());
    let peak_kib = (status_kib(a.pid(), "VmHWM:"), status_kib(b.pid(), "VmHWM:"));
    let _ = say(&mut a_in, "/quit");
    drop(a_in);
    a.finish(Duration::from_secs(10));
    b.finish(Duration::from_secs(10));
    Ok(Ours {
        hashing,
        seconds,
        latency_ms,
        idle_kib,
        peak_kib,
        received,
    })
}

fn report_socat(round: usize, bytes: f64, copy: f64, synced: f64) {
    println!(
        "round {round}: socat -u {:.0} MB/s ({copy:.2} s), with sync {:.0} MB/s ({synced:.2} s)",
        bytes / copy / MB,
        bytes / synced / MB
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn run() -> Result<(), String> {
    let mib = support::env_usize("FILES_MIB", 1024);
    let rounds = support::env_usize("FILES_ROUNDS", 4).max(1);
    // Beside the build, not in a memory-backed /tmp: both sides write to
    // the same kind of disk.
    let work = tempfile::Builder::new()
        .prefix("files-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| e.to_string())?;
    println!("{}", support::machine());
    let src = work.path().join("random.bin");
    let made = Instant::now();
    let hash = make_file(&src, mib)?;
    println!(
        "file: {mib} MiB of random bytes (made in {:.1} s), BLAKE3 {}",
        made.elapsed().as_secs_f64(),
        hash.to_hex()
    );
    let bytes = (mib as f64) * 1024.0 * 1024.0;
    let socat = socat_available();
    if !socat {
        println!("socat not found: install it (apt-get install socat) for the comparison");
    }
    let mut socat_copy = Vec::new();
    let mut socat_synced = Vec::new();
    let mut ours = Vec::new();
    for round in 0..rounds {
        // Taking turns at going first.
        if socat && round % 2 == 0 {
            let (copy, synced) = socat_once(&src, &work.path().join("socat-copy.bin"))?;
            report_socat(round, bytes, copy, synced);
            socat_copy.push(copy);
            socat_synced.push(synced);
        }
        let run = ours_once(work.path(), &src, round)?;
        let got = hash_of(&run.received)?;
        let mut latency = run.latency_ms.clone();
        latency.sort_by(f64::total_cmp);
        println!(
            "round {round}: ours {:.0} MB/s ({:.2} s; hashing before the offer {:.2} s), hash {}, \
             typed lines p50 {:.1} ms p99 {:.1} ms ({} lines), \
             RSS receiver {:.1} -> peak {:.1} MB (+{:.1}), sender {:.1} -> peak {:.1} MB (+{:.1})",
            bytes / run.seconds / MB,
            run.seconds,
            run.hashing,
            if got == hash { "equal" } else { "DIFFERENT" },
            percentile(&latency, 0.5),
            percentile(&latency, 0.99),
            latency.len(),
            support::mb(run.idle_kib.0),
            support::mb(run.peak_kib.0),
            support::mb(run.peak_kib.0.saturating_sub(run.idle_kib.0)),
            support::mb(run.idle_kib.1),
            support::mb(run.peak_kib.1),
            support::mb(run.peak_kib.1.saturating_sub(run.idle_kib.1)),
        );
        if got != hash {
            return Err("the received file differs".into());
        }
        let _ = std::fs::remove_file(&run.received);
        ours.push(run);
        if socat && round % 2 == 1 {
            let (copy, synced) = socat_once(&src, &work.path().join("socat-copy.bin"))?;
            report_socat(round, bytes, copy, synced);
            socat_copy.push(copy);
            socat_synced.push(synced);
        }
    }
    let median = |values: &mut Vec<f64>| support::median(values);
    let mut our_secs: Vec<f64> = ours.iter().map(|r| r.seconds).collect();
    let ours_median = median(&mut our_secs);
    let mut all_latency: Vec<f64> = ours.iter().flat_map(|r| r.latency_ms.clone()).collect();
    all_latency.sort_by(f64::total_cmp);
    let growth = |pick: fn(&Ours) -> (u64, u64)| {
        ours.iter()
            .map(|r| {
                let (idle, peak) = pick(r);
                support::mb(peak.saturating_sub(idle))
            })
            .fold(0.0, f64::max)
    };
    println!();
    println!("ours (median): {:.0} MB/s", bytes / ours_median / MB);
    if socat {
        let synced = median(&mut socat_synced);
        let copy = median(&mut socat_copy);
        println!(
            "socat -u (median): {:.0} MB/s with sync, {:.0} MB/s without",
            bytes / synced / MB,
            bytes / copy / MB
        );
        println!(
            "ours / socat: {:.2}x (with sync), {:.2}x (without)",
            synced / ours_median,
            copy / ours_median
        );
    }
    println!(
        "typed lines during the transfers: p50 {:.1} ms, p99 {:.1} ms ({} lines)",
        percentile(&all_latency, 0.5),
        percentile(&all_latency, 0.99),
        all_latency.len()
    );
    println!(
        "RSS over idle, worst round: receiver +{:.1} MB, sender +{:.1} MB",
        growth(|r| (r.idle_kib.0, r.peak_kib.0)),
        growth(|r| (r.idle_kib.1, r.peak_kib.1)),
    );
    Ok(())
}
