//! [`Peer`]: the binary under test as a running process, with piped
//! stdin, stdout and stderr, and every wait bounded by [`TIMEOUT`]; and
//! [`Peer::run`] and its users, which run a subcommand to its end.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{utf8, BIN, TIMEOUT};

/// A running `rust-p2p-chat` process with piped stdin, stdout and stderr.
pub struct Peer {
    child: Child,
    /// Stdout left unread (see [`Peer::start_unread`]); kept open.
    unread: Option<std::process::ChildStdout>,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stdout line seen so far, for error messages.
    pub seen: Vec<String>,
    /// Every stderr line read so far.
    pub seen_stderr: Vec<String>,
    /// The data home of a process not given `--data-dir`: its own, so no
    /// test writes to the user's real data directory. Removed with the
    /// Peer, after the process is killed.
    _data_home: Option<TempDir>,
}

impl Peer {
    /// Starts the binary with `args`.
    pub fn start(args: &[&str]) -> Peer {
        Peer::spawn(args, true)
    }

    /// Starts the binary with `args` and never reads its stdout, like a
    /// user whose terminal stopped scrolling: once the pipe is full, the
    /// program cannot show anything more.
    pub fn start_unread(args: &[&str]) -> Peer {
        Peer::spawn(args, false)
    }

    /// Starts `program` with `args` (for example the binary inside a
    /// network namespace, through `ip netns exec`).
    pub fn start_with_program(program: &str, args: &[&str]) -> Peer {
        Peer::spawn_program(program, args, true)
    }

    /// Starts the binary with `args` and these environment variables
    /// (a debug build's test faults).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Peer {
        Peer::spawn_full(BIN, args, true, env)
    }

    fn spawn(args: &[&str], read_stdout: bool) -> Peer {
        Peer::spawn_program(BIN, args, read_stdout)
    }

    fn spawn_program(program: &str, args: &[&str], read_stdout: bool) -> Peer {
        Peer::spawn_full(program, args, read_stdout, &[])
    }

    fn spawn_full(program: &str, args: &[&str], read_stdout: bool, env: &[(&str, &str)]) -> Peer {
        let data_home = (!gives_data_dir(args)).then(|| tempfile::tempdir().expect("temp dir"));
        let mut command = Command::new(program);
        command.envs(env.iter().copied());
        if let Some(home) = &data_home {
            command.env("XDG_DATA_HOME", home.path());
        }
        let mut child = command
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("stdout");
        let (stdout, unread) = if read_stdout {
            (lines_of(out), None)
        } else {
            (mpsc::channel().1, Some(out))
        };
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Peer {
            child,
            unread,
            stdin,
            stdout,
            stderr,
            seen: Vec::new(),
            seen_stderr: Vec::new(),
            _data_home: data_home,
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the process's stdin.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Writes raw bytes to the process's stdin.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Takes stdin, to write to it from another thread.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin still open")
    }

    /// Closes stdin (EOF).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, or `None` on EOF; panics after [`TIMEOUT`].
    pub fn next_line(&mut self) -> Option<String> {
        self.next_line_within(TIMEOUT)
    }

    /// The next stdout line, waiting at most `limit`.
    pub fn expect_any_within(&mut self, limit: Duration) -> String {
        match self.next_line_within(limit) {
            Some(line) => line,
            None => panic!("output ended; seen: {:?}", self.tail()),
        }
    }

    /// Waits up to `limit` for a stdout line equal to `want`, skipping
    /// others.
    pub fn expect_line_within(&mut self, want: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_line_within(left) {
                Some(line) if line == want => return,
                Some(_) => {}
                None => panic!("output ended before {want:?}; seen: {:?}", self.tail()),
            }
        }
        panic!("no {want:?} within {limit:?}; seen: {:?}", self.tail())
    }

    fn next_line_within(&mut self, limit: Duration) -> Option<String> {
        match self.stdout.recv_timeout(limit) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no output within {limit:?}; seen so far: {:?}", self.tail())
            }
        }
    }

    /// Waits for a stdout line equal to `want`, skipping others.
    pub fn expect_line(&mut self, want: &str) {
        self.expect_matching(|line| line == want, want);
    }

    /// Waits for a stdout line ending with `suffix`; returns it.
    pub fn expect_suffix(&mut self, suffix: &str) -> String {
        self.expect_matching(|line| line.ends_with(suffix), suffix)
    }

    /// Waits for a stdout line starting with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        self.expect_matching(|line| line.starts_with(prefix), prefix)
    }

    fn expect_matching(&mut self, matches: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match self.next_line() {
                Some(line) if matches(&line) => return line,
                Some(_) => {}
                None => panic!("output ended before {what:?}; seen: {:?}", self.tail()),
            }
        }
        panic!("no {what:?} within {TIMEOUT:?}; seen: {:?}", self.tail())
    }

    /// The next stdout line must start with `prefix`; returns it.
    pub fn expect_next_prefix(&mut self, prefix: &str) -> String {
        let line = self.next_line();
        match line {
            Some(line) if line.starts_with(prefix) => line,
            other => panic!("{other:?} is not {prefix:?}...; seen: {:?}", self.tail()),
        }
    }

    /// The next stdout line, which must be exactly `want`.
    pub fn expect_next(&mut self, want: &str) {
        let line = self.next_line();
        assert_eq!(line.as_deref(), Some(want), "seen: {:?}", self.tail());
    }

    /// Every stderr line so far, waiting for none: what a failure message
    /// shows beside what was awaited.
    pub fn stderr_so_far(&mut self) -> &[String] {
        while let Ok(line) = self.stderr.try_recv() {
            self.seen_stderr.push(line);
        }
        &self.seen_stderr
    }

    /// Waits for a stderr line containing `part`; returns it.
    pub fn expect_stderr(&mut self, part: &str) -> String {
        self.expect_stderr_within(part, TIMEOUT)
    }

    /// Waits up to `limit` for a stderr line containing `part`.
    pub fn expect_stderr_within(&mut self, part: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let from = self.seen_stderr.len();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen_stderr.push(line.clone());
                    if line.contains(part) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no stderr line with {part:?}; stderr: {:?}",
            &self.seen_stderr[from..]
        )
    }

    /// Waits for the process to exit; kills it and panics after [`TIMEOUT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!(
            "process did not exit within {TIMEOUT:?}; seen: {:?}",
            self.tail()
        )
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("memory figure in /proc status")
    }

    /// Kills the process with SIGKILL (by its PID), as a crash or a
    /// pulled plug would, and waits for it to be gone.
    pub fn kill_9(&mut self) {
        self.signal("KILL");
        let status = self.wait_exit();
        assert!(!status.success(), "killed, yet exited with {status}");
    }

    /// Reads the stdout lines still in the pipe of a process that has
    /// exited (a killed process's last writes are not lost), until the
    /// output ends; panics if it has not ended within `limit`.
    pub fn read_rest_within(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("output still open after {limit:?}"));
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => panic!("output still open after {limit:?}"),
            }
        }
    }

    /// Waits up to `limit` until `n` stdout lines satisfying `matches` have
    /// been read (counting from now).
    pub fn expect_count(&mut self, matches: impl Fn(&str) -> bool, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut got = 0;
        while got < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!(
                    "{got} of {n} lines within {limit:?}; seen: {:?}",
                    self.tail()
                );
            };
            if matches(&self.expect_any_within(left)) {
                got += 1;
            }
        }
    }

    /// The next stdout line within `limit`; `None` when none came in time
    /// or the output ended.
    pub fn line_within(&mut self, limit: Duration) -> Option<String> {
        let line = self.stdout.recv_timeout(limit).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits up to `limit` for a line containing `part` on stdout or
    /// stderr; returns it, or `None` when none came in time.
    pub fn output_containing_within(&mut self, part: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            while let Ok(line) = self.stderr.try_recv() {
                self.seen_stderr.push(line.clone());
                if line.contains(part) {
                    return Some(line);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self
                .stdout
                .recv_timeout(left.min(Duration::from_millis(20)))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(part) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Output ended: only stderr may still say it.
                Err(RecvTimeoutError::Disconnected) => {
                    let line = self
                        .stderr
                        .recv_timeout(deadline.checked_duration_since(Instant::now())?)
                        .ok()?;
                    self.seen_stderr.push(line.clone());
                    return line.contains(part).then_some(line);
                }
            }
        }
    }

    /// Reads every line already written to stdout and stderr, without
    /// waiting, into [`Peer::seen`] and [`Peer::seen_stderr`].
    pub fn read_available(&mut self) {
        while let Ok(line) = self.stdout.try_recv() {
            self.seen.push(line);
        }
        while let Ok(line) = self.stderr.try_recv() {
            self.seen_stderr.push(line);
        }
    }

    /// How many lines read so far, on stdout or stderr, contain `part`.
    pub fn count_output_containing(&self, part: &str) -> usize {
        self.seen
            .iter()
            .chain(&self.seen_stderr)
            .filter(|l| l.contains(part))
            .count()
    }

    /// Runs the binary with `args` to its end (stdin closed); returns its
    /// exit status, its stdout lines and its stderr lines.
    pub fn run(args: &[&str]) -> (ExitStatus, Vec<String>, Vec<String>) {
        let mut peer = Peer::start(args);
        peer.close_input();
        let mut out = Vec::new();
        while let Some(line) = peer.next_line() {
            out.push(line);
        }
        let status = peer.wait_exit();
        // The process is gone: its stderr ends at once.
        let mut err = Vec::new();
        while let Ok(line) = peer.stderr.recv_timeout(Duration::from_secs(5)) {
            err.push(line);
        }
        (status, out, err)
    }

    /// The peer ID kept in `dir`, as `rust-p2p-chat id` prints it.
    pub fn peer_id(dir: &Path) -> String {
        let (status, out, err) = Peer::run(&["id", "--data-dir", utf8(dir)]);
        assert!(status.success(), "id failed: {err:?}");
        out.iter()
            .find_map(|l| l.strip_prefix("Peer ID: "))
            .expect("a Peer ID line")
            .to_owned()
    }

    /// Everything `rust-p2p-chat history --json` holds in `dir` (with
    /// `extra` flags such as `--room NAME`), one object per message.
    pub fn history_json(dir: &Path) -> Vec<serde_json::Value> {
        Peer::history_json_with(dir, &[])
    }

    /// [`Peer::history_json`] with more flags.
    pub fn history_json_with(dir: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec![
            "history",
            "--json",
            "--limit",
            "100000",
            "--data-dir",
            utf8(dir),
        ];
        args.extend_from_slice(extra);
        let (status, out, err) = Peer::run(&args);
        assert!(status.success(), "history --json exited {status}: {err:?}");
        out.iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("history --json printed {line:?}: {e}"))
            })
            .collect()
    }

    fn tail(&self) -> &[String] {
        let from = self.seen.len().saturating_sub(10);
        &self.seen[from..]
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx
                        .send(String::from_utf8_lossy(&line).into_owned())
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Whether `args` name a data directory.
fn gives_data_dir(args: &[&str]) -> bool {
    args.iter()
        .any(|a| *a == "--data-dir" || a.starts_with("--data-dir="))
}
