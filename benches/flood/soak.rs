//! `soak`: a pair and a room of five for `SOAK_SECS` (default 600; an
//! hour is `SOAK_SECS=3600`). Every peer says a numbered line each second;
//! every `SOAK_BURST_EVERY` seconds (default 180) one of them floods
//! 1 KiB lines for `SOAK_BURST_SECS` (default 10), B of the pair and m4 of
//! the room in turn. Every 10 s the benchmark reads each process's VmRSS
//! and its open file descriptors.
//!
//! At the end (after up to 60 s for the last lines to arrive) every
//! numbered line must have been shown exactly once, in order, by every
//! other peer of its pair or room, and so must every flood line. Reported
//! per process: RSS at 10 minutes (or a third of the run, if shorter) and
//! at the end, the RSS slope over that span (least squares, MB/h), and the
//! least and most file descriptors seen after the start. Bars (issue 16):
//! a slope <= 1 MB/h after the first 10 minutes, and a flat fd count
//! (within two).

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::process::{ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::support::process::{status_kib, Running};
use super::support::{env_usize, grouped, mb};
use super::{each_line, push_flood_line, report, Pair, Room};

/// RSS slope after the first part of the run, at most (MB per hour).
const BAR_SLOPE_MB_PER_HOUR: f64 = 1.0;

/// How often RSS and file descriptors are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// How long the last lines may take to arrive once the run is over.
const FINAL_WAIT: Duration = Duration::from_secs(60);

/// The samples of a cycle that count as quiet: those in the last this
/// many seconds before a burst begins, when the last burst has drained
/// and its heap has been handed back. Their trend is what the chat keeps
/// for good, without the bursts' peaks, which the other bars bound.
const QUIET_BEFORE_BURST: f64 = 30.0;

/// Descriptors open for a moment (a store file, a connection coming up)
/// that a flat count may show between samples.
const FD_WOBBLE: usize = 2;

/// Bytes of a flood line, newline included.
const BURST_LINE: usize = 1024;

/// One process of the soak: its name, how its lines are shown to the
/// others (`Peer: ` in the pair, `NAME: ` in the room), and its stdin,
/// shared by the thread that speaks each second and the one that floods.
struct Speaker {
    name: String,
    shown_as: String,
    input: Arc<Mutex<ChildStdin>>,
    said: Arc<Mutex<HashMap<char, u64>>>,
}

/// What one process showed: per speaker shown-as prefix and kind of line
/// (`s` spoken, `f` flood), the next number due, and lines out of order.
#[derive(Default)]
struct Shown {
    next: HashMap<(String, char), u64>,
    disorder: u64,
}

impl Shown {
    fn watch(out: BufReader<ChildStdout>) -> Arc<Mutex<Shown>> {
        let shown = Arc::new(Mutex::new(Shown::default()));
        let noted = Arc::clone(&shown);
        each_line(out, move |line| {
            // "WHO: K N ..." where K is s or f.
            let Some((who, rest)) = line.split_once(": ") else {
                return;
            };
            let mut words = rest.split(' ');
            let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                return;
            };
            let kind = match kind {
                "s" => 's',
                "f" => 'f',
                _ => return,
            };
            let Ok(n) = n.trim_end().parse::<u64>() else {
                return;
            };
            if let Ok(mut shown) = noted.lock() {
                let next = shown.next.entry((format!("{who}: "), kind)).or_insert(0);
                let in_order = n == *next;
                *next = n + 1;
                if !in_order {
                    shown.disorder += 1;
                }
            }
        });
        shown
    }
}

/// One process's samples: seconds since the start, RSS in KiB, open fds.
type Samples = Vec<(f64, u64, usize)>;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Least-squares slope of RSS over time, in MB per hour, of the samples at
/// or after `from` seconds.
fn slope_mb_per_hour(samples: &Samples, from: f64) -> f64 {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _, _)| *t >= from)
        .map(|&(t, kib, _)| (t, mb(kib)))
        .collect();
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mean_t, mean_m) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = points
        .iter()
        .map(|(t, m)| (t - mean_t) * (m - mean_m))
        .sum();
    let variance: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance * 3600.0
    }
}

/// Writes every sample as `who,seconds,rss_kib,fds` lines to `path`, for
/// a closer look than the summary gives.
fn write_samples(path: &str, speakers: &[Speaker], samples: &[Samples]) {
    let mut out = String::from("who,seconds,rss_kib,fds\n");
    for (speaker, series) in speakers.iter().zip(samples) {
        for (t, kib, fds) in series {
            out.push_str(&format!("{},{t:.1},{kib},{fds}\n", speaker.name));
        }
    }
    if let Err(e) = std::fs::write(path, out) {
        eprintln!("SOAK_SAMPLES {path}: {e}");
    }
}

/// Says `s I` every second until `running` is cleared.
fn speak_each_second(speaker: &Speaker, running: Arc<AtomicBool>) -> JoinHandle<()> {
    let (input, said) = (Arc::clone(&speaker.input), Arc::clone(&speaker.said));
    thread::spawn(move || {
        let mut i = 0u64;
        while running.load(Ordering::Relaxed) {
            let written = input
                .lock()
                .is_ok_and(|mut input| input.write_all(format!("s {i}\n").as_bytes()).is_ok());
            if !written {
                return;
            }
            i += 1;
            if let Ok(mut said) = said.lock() {
                said.insert('s', i);
            }
            thread::sleep(Duration::from_secs(1));
        }
    })
}

/// Floods `f I ...` lines (numbered on from earlier bursts) for `secs`,
/// a block of 64 at a time, letting the speaker in between.
fn burst(speaker: &Speaker, secs: u64) -> Result<(), String> {
    let start = Instant::now();
    let mut block = String::new();
    let mut next = speaker
        .said
        .lock()
        .map(|said| said.get(&'f').copied().unwrap_or(0))
        .unwrap_or(0);
    while start.elapsed() < Duration::from_secs(secs) {
        block.clear();
        for _ in 0..64 {
            push_flood_line(&mut block, next, BURST_LINE);
            next += 1;
        }
        speaker
            .input
            .lock()
            .map_err(|_| "a writer failed")?
            .write_all(block.as_bytes())
            .map_err(|e| format!("flooding {}: {e}", speaker.name))?;
        if let Ok(mut said) = speaker.said.lock() {
            said.insert('f', next);
        }
    }
    Ok(())
}

pub(super) fn soak() -> Result<(), String> {
    let secs = env_usize("SOAK_SECS", 600) as u64;
    let burst_every = env_usize("SOAK_BURST_EVERY", 180).max(1) as u64;
    let burst_secs = env_usize("SOAK_BURST_SECS", 10) as u64;
    println!(
        "\n== soak: a pair and a room of 5 for {secs} s, a line a second from each, a {burst_secs} s flood every {burst_every} s"
    );
    let pair = Pair::start()?;
    let room = Room::start("soak-room-")?;
    let Pair {
        _temp: _pair_temp,
        a,
        b,
        a_in,
        b_in,
        a_out,
        b_out,
        ..
    } = pair;
    let Room {
        _temp: _room_temp,
        members,
        inputs,
        outputs,
    } = room;
    let mut processes: Vec<Running> = vec![a, b];
    processes.extend(members);
    let mut speakers = Vec::new();
    // The groups: who hears whom.
    let mut groups: Vec<Vec<usize>> = vec![vec![0, 1], Vec::new()];
    let mut shown = Vec::new();
    for (i, (input, out)) in [(a_in, a_out), (b_in, b_out)]
        .into_iter()
        .chain(inputs.into_iter().zip(outputs))
        .enumerate()
    {
        let name = if i < 2 {
            ["A", "B"][i].to_owned()
        } else {
            format!("m{}", i - 2)
        };
        let shown_as = if i < 2 {
            "Peer: ".to_owned()
        } else {
            format!("{name}: ")
        };
        if i >= 2 {
            groups[1].push(i);
        }
        speakers.push(Speaker {
            name,
            shown_as,
            input: Arc::new(Mutex::new(input)),
            said: Arc::new(Mutex::new(HashMap::new())),
        });
        shown.push(Shown::watch(out));
    }
    let pids: Vec<u32> = processes.iter().map(Running::pid).collect();
    let start = Instant::now();
    let samples: Arc<Mutex<Vec<Samples>>> = Arc::new(Mutex::new(vec![Vec::new(); pids.len()]));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, running, pids) = (Arc::clone(&samples), Arc::clone(&running), pids.clone());
        thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                let t = start.elapsed().as_secs_f64();
                if let Ok(mut samples) = samples.lock() {
                    for (series, &pid) in samples.iter_mut().zip(&pids) {
                        series.push((t, status_kib(pid, "VmRSS:"), open_fds(pid)));
                    }
                }
                thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let voices: Vec<JoinHandle<()>> = speakers
        .iter()
        .map(|s| speak_each_second(s, Arc::clone(&running)))
        .collect();
    // The flooders take turns: B of the pair, m4 of the room.
    let flooders = [1, processes.len() - 1];
    let mut bursts = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        let next_burst = Duration::from_secs(burst_every * (bursts as u64 + 1));
        let left = Duration::from_secs(secs).saturating_sub(start.elapsed());
        thread::sleep(next_burst.saturating_sub(start.elapsed()).min(left));
        if start.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        let who = flooders[bursts % flooders.len()];
        burst(&speakers[who], burst_secs)?;
        bursts += 1;
        println!(
            "{:>6.0} s: burst {bursts} by {} over",
            start.elapsed().as_secs_f64(),
            speakers[who].name
        );
        let _ = std::io::stdout().flush();
    }
    running.store(false, Ordering::Relaxed);
    for voice in voices {
        let _ = voice.join();
    }
    // Everything said must be shown by every other member of its group.
    let expected = |listener: usize| -> Vec<(String, char, u64)> {
        let group = groups.iter().find(|g| g.contains(&listener));
        group
            .into_iter()
            .flatten()
            .filter(|&&s| s != listener)
            .flat_map(|&s| {
                let said = speakers[s]
                    .said
                    .lock()
                    .map(|m| m.clone())
                    .unwrap_or_default();
                let shown_as = speakers[s].shown_as.clone();
                said.into_iter()
                    .map(move |(kind, n)| (shown_as.clone(), kind, n))
            })
            .collect()
    };
    let missing = |listener: usize| -> u64 {
        let Ok(got) = shown[listener].lock() else {
            return u64::MAX;
        };
        expected(listener)
            .into_iter()
            .map(|(who, kind, n)| {
                n.saturating_sub(got.next.get(&(who, kind)).copied().unwrap_or(0))
            })
            .sum()
    };
    let waited = Instant::now();
    while (0..speakers.len()).any(|l| missing(l) > 0) && waited.elapsed() < FINAL_WAIT {
        thread::sleep(Duration::from_millis(200));
    }
    thread::sleep(SAMPLE_EVERY);
    running.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let from = if secs >= 1800 {
        600.0
    } else {
        secs as f64 / 3.0
    };
    if let Ok(path) = std::env::var("SOAK_SAMPLES") {
        write_samples(&path, &speakers, &samples);
    }
    let cycle = burst_every as f64;
    let quiet = |series: &Samples| -> Samples {
        series
            .iter()
            .filter(|(t, _, _)| {
                let into = t % cycle;
                *t >= cycle && into >= cycle - QUIET_BEFORE_BURST
            })
            .copied()
            .collect()
    };
    println!(
        "{bursts} bursts; slope from {from:.0} s on, of every sample and of the quiet ones ({QUIET_BEFORE_BURST:.0} s before each burst)\n{:<5} {:>10} {:>10} {:>12} {:>12} {:>9} {:>9} {:>9} {:>12}",
        "who", "RSS@from", "RSS end", "slope MB/h", "quiet MB/h", "peak MB", "fds min", "fds max", "lost/disord"
    );
    let mut missed = Vec::new();
    for (i, series) in samples.iter().enumerate() {
        let name = &speakers[i].name;
        let at_from = series
            .iter()
            .find(|(t, _, _)| *t >= from)
            .map_or(0, |s| s.1);
        let end = series.last().map_or(0, |s| s.1);
        let peak = series.iter().map(|s| s.1).max().unwrap_or(0);
        let fds: Vec<usize> = series.iter().skip(1).map(|s| s.2).collect();
        let (fd_min, fd_max) = (
            fds.iter().min().copied().unwrap_or(0),
            fds.iter().max().copied().unwrap_or(0),
        );
        let slope = slope_mb_per_hour(series, from);
        let quiet_slope = slope_mb_per_hour(&quiet(series), from);
        let lost = missing(i);
        let disorder = shown[i].lock().map_or(u64::MAX, |s| s.disorder);
        println!(
            "{name:<5} {:>10.1} {:>10.1} {:>12.2} {:>12.2} {:>9.1} {:>9} {:>9} {:>12}",
            mb(at_from),
            mb(end),
            slope,
            quiet_slope,
            mb(peak),
            fd_min,
            fd_max,
            format!("{}/{}", grouped(lost as f64), grouped(disorder as f64))
        );
        if slope > BAR_SLOPE_MB_PER_HOUR {
            missed.push(format!("{name}'s slope <= {BAR_SLOPE_MB_PER_HOUR} MB/h"));
        }
        if fd_max > fd_min + FD_WOBBLE {
            missed.push(format!("{name}'s fds flat ({fd_min}..{fd_max})"));
        }
        if lost > 0 || disorder > 0 {
            missed.push(format!("{name}: every line once, in order"));
        }
    }
    drop(processes);
    report(&missed);
    Ok(())
}
