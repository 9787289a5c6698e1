//! Joining a private room with an invite: how long from starting
//! `rust-p2p-chat --join TICKET` to the first line of the room it shows.
//!
//! Run with `cargo bench --bench invite`. Knobs (environment):
//! `INVITE_JOINS` (default 20), the joins measured.
//!
//! On 127.0.0.1 with `--no-mdns`: A listens and makes an invite
//! (`/invite`). Then, one after another, a fresh peer (its own data dir)
//! is started with `--join TICKET`; once it shows `Type messages`, A is
//! told to say a line, and the time is taken when the joiner shows it.
//! The figure is start to that line: the start of the program, its dial,
//! the handshake, the room's key check, the mesh, and the one line (A's
//! reaction to the harness is included; on loopback it is well under a
//! millisecond). Each joiner quits before the next starts.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::process::Running;

/// Longest wait for any one line.
const DEADLINE: Duration = Duration::from_secs(30);

/// A process's stdout lines, as they come.
fn lines_of(running: &mut Running) -> Result<mpsc::Receiver<String>, String> {
    let stdout = running.take_stdout()?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Waits for a line satisfying `want`; returns it.
fn wait_for(
    lines: &mpsc::Receiver<String>,
    who: &str,
    want: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + DEADLINE;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return Ok(line),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Err(format!(
        "{who}: the line awaited did not come within {DEADLINE:?}"
    ))
}

fn run() -> Result<Vec<f64>, String> {
    let joins = support::env_usize("INVITE_JOINS", 20);
    let base = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir_a = base.path().join("a");
    let dir_a = dir_a.to_str().ok_or("temp path")?;
    // A's notices (the wait for its last lines at the end) are not the
    // figure: they go nowhere.
    let mut a = Running::ours_with_stderr(
        "inviter A",
        &[
            "--listen",
            "0",
            "--data-dir",
            dir_a,
            "--no-mdns",
            "--name",
            "ann",
        ],
        std::process::Stdio::null(),
    )?;
    let a_lines = lines_of(&mut a)?;
    let mut a_in = a.take_stdin()?;
    wait_for(&a_lines, "A", |l| l.starts_with("Waiting for peer"))?;
    writeln!(a_in, "/invite").map_err(|e| e.to_string())?;
    let ticket = wait_for(&a_lines, "A", |l| l.starts_with("Invite: "))?
        .trim_start_matches("Invite: ")
        .to_owned();
    let mut times = Vec::new();
    for k in 0..joins {
        let dir = base.path().join(format!("j{k}"));
        let dir = dir.to_str().ok_or("temp path")?;
        let start = Instant::now();
        let mut joiner = Running::ours_with_stderr(
            "joiner",
            &[
                "--join",
                &ticket,
                "--data-dir",
                dir,
                "--no-mdns",
                "--name",
                &format!("j{k}"),
            ],
            std::process::Stdio::null(),
        )?;
        let lines = lines_of(&mut joiner)?;
        wait_for(&lines, "joiner", |l| l.starts_with("Type messages"))?;
        writeln!(a_in, "welcome {k}").map_err(|e| e.to_string())?;
        let want = format!("ann: welcome {k}");
        wait_for(&lines, "joiner", |l| l == want)?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
        let mut stdin = joiner.take_stdin()?;
        let _ = writeln!(stdin, "/quit");
        drop(stdin);
        joiner.finish(Duration::from_secs(5));
    }
    drop(a_in);
    a.finish(Duration::from_secs(5));
    Ok(times)
}

fn main() {
    println!("== invite: from `--join TICKET` to the first line of the room, on 127.0.0.1");
    match run() {
        Ok(mut times) => {
            let n = times.len();
            let latency = support::latency(&mut times);
            println!(
                "{n} joins: p50 {:.1} ms, p99 {:.1} ms, slowest {:.1} ms",
                latency.p50 / 1000.0,
                latency.p99 / 1000.0,
                times.last().copied().unwrap_or(0.0) / 1000.0
            );
        }
        Err(e) => {
            eprintln!("invite: {e}");
            std::process::exit(1);
        }
    }
}
