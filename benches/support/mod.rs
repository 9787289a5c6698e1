//! Helpers of the benchmarks, kept out of their `main`s so each part reads
//! on its own: counting lines on a pipe ([`lines`]), running and reaping
//! processes with bounded waits, and what /proc says about them
//! ([`process`]), the plain protocol against a raw socket
//! ([`against_socket`]), two real processes of the binary talking to each
//! other ([`pair`]) and start-up times ([`startup`]). `classic` uses all of
//! them; `rooms` and `sync` only [`process`] and the figures here, hence
//! the `allow(dead_code)` (each benchmark is its own crate).
//!
//! Every wait here has a deadline and every measurement returns an error
//! instead of panicking, so one failing section is reported and the others
//! still run; every child process is owned by a guard that kills and reaps
//! it, whatever happens.

#![allow(dead_code)]

pub mod against_socket;
pub mod lines;
pub mod pair;
pub mod process;
pub mod startup;

use std::thread;

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Microseconds.
    pub p50: f64,
    /// Microseconds.
    pub p99: f64,
}

/// Runs `step` on each subject still measured (`Ok`), starting at number
/// `round % len` so that none always goes first; a subject whose step
/// fails is stopped there, its error kept in its place.
pub fn take_turns<T>(
    subjects: &mut [Result<T, String>],
    round: usize,
    mut step: impl FnMut(&mut T) -> Result<(), String>,
) {
    let len = subjects.len();
    for k in 0..len {
        let i = (round + k) % len;
        if let Ok(subject) = &mut subjects[i] {
            if let Err(e) = step(subject) {
                subjects[i] = Err(e);
            }
        }
    }
}

/// The median; 0 for no values.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// p50 and p99 of samples in microseconds.
pub fn latency(samples: &mut [f64]) -> Latency {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        samples[((samples.len() - 1) as f64 * q).round() as usize]
    };
    Latency {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// A value from the environment, or `default` when unset or unparsable.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One line describing the machine the figures come from.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("machine: {cpu}, {cores} cores, Linux {kernel}")
}

/// The load averages (1, 5 and 15 minutes) as `/proc/loadavg` gives them,
/// space-separated; empty when unreadable.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    load.join(" ")
}

/// A count with thousands separators: 1234567 -> "1,234,567".
pub fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB, the unit the tables call MB.
pub fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
