//! Child processes with bounded waits: a guard that kills and reaps its
//! child whatever happens, reading status lines with a deadline, and what
//! /proc says about memory and listening sockets.

use std::io::BufRead;
use std::net::TcpListener;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
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
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        Ok(Running {
            child: Some(child),
            name: name.to_owned(),
        })
    }

    /// Starts the binary under test with `args`, without colour.
    pub fn ours(name: &str, args: &[&str]) -> Result<Running, String> {
        Running::spawn(name, Command::new(BIN).args(args).env("NO_COLOR", "1"))
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
