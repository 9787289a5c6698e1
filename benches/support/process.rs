//! Child processes with bounded waits: a guard that kills and reaps its
//! child whatever happens, a watchdog that kills a process by PID when a
//! blocking write to it takes too long, reading status lines with a
//! deadline, and what /proc says about memory and listening sockets.

use std::io::BufRead;
use std::net::TcpListener;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rust-p2p-chat");

/// Status lines read before giving up on the one looked for.
const MAX_STATUS_LINES: usize = 20;

/// A started child process; dropping it kills and reaps the child.
pub struct Running {
    child: Option<Child>,
    /// What it is, for messages ("secure listener A").
    pub name: String,
}

/// How a process ended.
pub enum Ended {
    /// By itself, with this status.
    Exited(ExitStatus),
    /// It did not end in time and was killed.
    Killed,
}

impl Running {
    /// Starts `command` with stdin and stdout piped and stderr inherited.
    pub fn spawn(name: &str, command: &mut Command) -> Result<Running, String> {
        Running::spawn_with_stderr(name, command, Stdio::inherit())
    }

    /// Starts `command` with stdin and stdout piped and stderr going to
    /// `stderr` (a log file, when many processes would flood the terminal).
    pub fn spawn_with_stderr(
        name: &str,
        command: &mut Command,
        stderr: Stdio,
    ) -> Result<Running, String> {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        Ok(Running {
            child: Some(child),
            name: name.to_owned(),
        })
    }

    /// Starts the binary under test with `args`, without colour.
    pub fn ours(name: &str, args: &[&str]) -> Result<Running, String> {
        Running::ours_with_stderr(name, args, Stdio::inherit())
    }

    /// Starts the binary under test with `args`, without colour, its
    /// stderr going to `stderr`.
    pub fn ours_with_stderr(name: &str, args: &[&str], stderr: Stdio) -> Result<Running, String> {
        Running::spawn_with_stderr(
            name,
            Command::new(BIN).args(args).env("NO_COLOR", "1"),
            stderr,
        )
    }

    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is there until dropped")
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The piped stdin; once.
    pub fn take_stdin(&mut self) -> Result<ChildStdin, String> {
        let name = self.name.clone();
        self.child()
            .stdin
            .take()
            .ok_or_else(|| format!("stdin of {name} already taken"))
    }

    /// The piped stdout; once.
    pub fn take_stdout(&mut self) -> Result<ChildStdout, String> {
        let name = self.name.clone();
        self.child()
            .stdout
            .take()
            .ok_or_else(|| format!("stdout of {name} already taken"))
    }

    /// How the process ended, if it has; waits at most `within`.
    pub fn ended_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            match self.child().try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Waits up to `within` for the process to end by itself (the caller
    /// has closed its input), then kills it.
    pub fn finish(mut self, within: Duration) -> Ended {
        let deadline = Instant::now() + within;
        let mut child = self.child.take().expect("the child is there until dropped");
        drop(child.stdin.take());
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Ended::Exited(status),
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Ended::Killed
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How often a [`Watchdog`] looks at its deadline.
const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// Kills a process by its PID (SIGKILL, with `kill`) when a step armed
/// with a deadline is still running past it: a write to a pipe the process
/// no longer reads blocks for ever, and the kill makes it fail instead.
/// Arming and disarming are two atomic stores, and the thread only looks
/// every [`WATCHDOG_TICK`], so timed steps are not disturbed; it ends when
/// the watchdog is dropped. The guard ([`Running`]) still reaps the
/// process, so its PID cannot be reused before then.
pub struct Watchdog {
    epoch: Instant,
    /// Nanoseconds since `epoch` when to kill; 0 when not armed.
    deadline: Arc<AtomicU64>,
    fired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(pid: u32) -> Watchdog {
        let epoch = Instant::now();
        let deadline = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (due, shot, stopped) = (Arc::clone(&deadline), Arc::clone(&fired), Arc::clone(&stop));
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                thread::sleep(WATCHDOG_TICK);
                let at = due.load(Ordering::Relaxed);
                if at != 0 && epoch.elapsed().as_nanos() as u64 > at {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    shot.store(true, Ordering::Relaxed);
                    due.store(0, Ordering::Relaxed);
                }
            }
        });
        Watchdog {
            epoch,
            deadline,
            fired,
            stop,
        }
    }

    /// Kills the process if not disarmed within `within`.
    pub fn arm(&self, within: Duration) {
        let at = (self.epoch.elapsed() + within).as_nanos() as u64;
        self.deadline.store(at.max(1), Ordering::Relaxed);
    }

    pub fn disarm(&self) {
        self.deadline.store(0, Ordering::Relaxed);
    }

    /// Whether it has killed the process.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Relaxed)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A status line that was found, and what to go on reading from.
pub struct Status<R> {
    /// The rest of the stream.
    pub rest: R,
    /// The line, with its newline.
    pub line: String,
    /// When it was read.
    pub at: Instant,
}

/// Reads lines from `stdout` until one starts with `prefix`, reading at
/// most [`MAX_STATUS_LINES`] lines and waiting at most `within`. The read
/// happens on a thread; if it times out, the thread ends once the process
/// is killed and its stdout closes.
pub fn read_status<R>(mut stdout: R, prefix: &str, within: Duration) -> Result<Status<R>, String>
where
    R: BufRead + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let wanted = prefix.to_owned();
    thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..MAX_STATUS_LINES {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.starts_with(&wanted) => {
                    let at = Instant::now();
                    let _ = tx.send(Ok(Status {
                        rest: stdout,
                        line,
                        at,
                    }));
                    return;
                }
                Ok(_) => seen.push(line.trim_end().to_owned()),
            }
        }
        let _ = tx.send(Err(seen));
    });
    match rx.recv_timeout(within) {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(seen)) => Err(format!(
            "no status line starting with {prefix:?}; stdout had {seen:?}"
        )),
        Err(_) => Err(format!(
            "no status line starting with {prefix:?} within {within:?}"
        )),
    }
}

/// Time on a CPU and time runnable but waiting for one, summed over the
/// process's threads (/proc/PID/task/*/schedstat); `None` when the
/// kernel does not say.
pub fn sched_times(pid: u32) -> Option<SchedTimes> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = SchedTimes::default();
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
        if let (Some(Some(on_cpu)), Some(Some(waiting))) = (fields.next(), fields.next()) {
            total.on_cpu += Duration::from_nanos(on_cpu);
            total.waiting += Duration::from_nanos(waiting);
        }
    }
    Some(total)
}

/// Processes count as quiet when together they used less CPU than this...
pub const QUIET_CPU: Duration = Duration::from_millis(2);

/// ... in every slice this long...
pub const QUIET_SLICE: Duration = Duration::from_millis(20);

/// ... for this long on end: longer than the program's timers that start
/// work after a run (a history written 100 ms after its lines, flushes
/// and acknowledgements every 250 ms).
pub const QUIET_SPAN: Duration = Duration::from_millis(600);

/// Longest a wait for quiet may take.
pub const QUIET_DEADLINE: Duration = Duration::from_secs(5);

/// Waits until the processes `pids` are quiet: under [`QUIET_CPU`] of CPU
/// together in every [`QUIET_SLICE`] for [`QUIET_SPAN`] on end, so that
/// work a run left behind is not charged to the next one. Returns how long
/// they kept working (until the start of the quiet span, milliseconds), or
/// that long as an error once [`QUIET_DEADLINE`] passed first.
pub fn wait_quiet(pids: &[u32]) -> Result<f64, f64> {
    let cpu = || -> Option<Duration> {
        pids.iter()
            .map(|&pid| sched_times(pid).map(|t| t.on_cpu))
            .sum()
    };
    let started = Instant::now();
    let mut before = cpu();
    let mut sampled = started;
    // When the current run of quiet slices began.
    let mut quiet_since: Option<Instant> = None;
    // A span begun before the deadline may finish after it.
    while started.elapsed() < QUIET_DEADLINE
        || quiet_since.is_some_and(|since| since - started < QUIET_DEADLINE)
    {
        thread::sleep(QUIET_SLICE);
        let (now, at) = (cpu(), Instant::now());
        match (before, now) {
            (Some(b), Some(n)) if n.saturating_sub(b) < QUIET_CPU => {
                let since = *quiet_since.get_or_insert(sampled);
                if at - since >= QUIET_SPAN {
                    return Ok((since - started).as_secs_f64() * 1e3);
                }
            }
            // Without schedstat there is nothing to wait for.
            (None, _) | (_, None) => return Ok(0.0),
            _ => quiet_since = None,
        }
        (before, sampled) = (now, at);
    }
    Err(started.elapsed().as_secs_f64() * 1e3)
}

/// CPU time the whole machine has spent busy (all processes, all CPUs)
/// since boot, from /proc/stat; `None` when it cannot be read. Beside the
/// members' own CPU time it shows what else ran during a measurement.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...; /proc/stat
    // counts in USER_HZ, which is 100 on Linux whatever the kernel's HZ.
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some(Duration::from_millis((all - idle) * 10))
}

/// What [`sched_times`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedTimes {
    /// Running on a CPU.
    pub on_cpu: Duration,
    /// Runnable, waiting for a CPU.
    pub waiting: Duration,
}

/// The port in a `Listening on: 0.0.0.0:PORT` line.
pub fn port_in(line: &str) -> Result<u16, String> {
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("no port in {:?}", line.trim_end()))
}

/// A field of /proc/PID/status in KiB (`VmRSS:`, `VmHWM:`); 0 if unknown.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits until something listens on the port, looking in /proc/net/tcp
/// rather than probing (socat is started without `fork`, so a probe would
/// consume its one connection).
pub fn wait_listening(port: u16, within: Duration) -> Result<(), String> {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| t.contains(&needle)) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(format!("nothing listened on port {port} within {within:?}"))
}

/// Whether `socat` can be run.
pub fn socat_available() -> bool {
    Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
