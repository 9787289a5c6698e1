//! Start-up time: from just before the process is spawned until its
//! `Listening on:` line has been read from its stdout, over fresh processes
//! that are killed (SIGKILL) and reaped after each start. Every mode is
//! given a data dir (the plain mode keeps its history there too), so a
//! start never writes into the user's real data directory.

use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use super::median;
use super::pair::Mode;
use super::process::{read_status, Running};

/// Longest one start may take.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Start-up times, milliseconds.
pub struct StartUp {
    /// Median.
    pub median_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Starts timed.
    pub starts: usize,
}

/// Where a process keeps its identity and history across the starts.
pub enum DataDir<'a> {
    /// This directory, for every start (its identity already exists after
    /// the first).
    Shared(&'a Path),
    /// A new subdirectory of this one for each start, so each start
    /// creates its identity.
    FreshUnder(&'a Path),
}

/// Times `starts` starts of a listener on port 0.
pub fn measure(mode: Mode, dir: DataDir<'_>, starts: usize) -> Result<StartUp, String> {
    let mut times = Vec::with_capacity(starts);
    for i in 0..starts {
        let dir = match &dir {
            DataDir::Shared(path) => path.to_path_buf(),
            DataDir::FreshUnder(path) => path.join(format!("start-{i}")),
        };
        let dir = dir
            .to_str()
            .ok_or_else(|| format!("temp path {} is not UTF-8", dir.display()))?
            .to_owned();
        let mut args = vec!["--listen", "0", "--data-dir", &dir];
        args.extend(mode.flags());
        let name = format!("{} listener (start-up {i})", mode.name());
        let start = Instant::now();
        let mut process = Running::ours(&name, &args)?;
        let stdout = BufReader::new(process.take_stdout()?);
        let listening = read_status(stdout, "Listening on: ", START_DEADLINE)
            .map_err(|e| format!("{name}: {e}"))?;
        times.push((listening.at - start).as_secs_f64() * 1e3);
        // Killed and reaped here.
        drop(process);
    }
    let min_ms = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max_ms = times.iter().copied().fold(0.0, f64::max);
    Ok(StartUp {
        median_ms: median(&mut times),
        min_ms,
        max_ms,
        starts: times.len(),
    })
}
