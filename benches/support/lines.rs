//! Lines on a pipe or socket: writing payloads of fixed-size lines, and
//! counting (or capturing) the lines that arrive on the other end.
//!
//! The counter reads its stream on its own thread all the time, whether
//! or not it has been asked for lines: a program whose output is not read
//! stops reading its input, so lines nobody asked for (a notice, a line
//! shown twice, another member's) must not block it, or the benchmark's
//! next write would block for ever. It must be told how many lines to
//! wait for *before* they are written; bytes read past the lines asked for
//! (a later line, or part of one) are kept for the next request, so
//! requests line up exactly with what was sent, and what is left over at
//! the end says how many lines came that were never asked for.

use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes asked of the stream in one read.
const READ_CHUNK: usize = 256 * 1024;

/// Most bytes kept that no request has taken; past this the counter gives
/// up (the program prints far more than it is sent).
const MAX_PENDING: usize = 64 * 1024 * 1024;

/// The lines asked for have all arrived.
pub struct Arrival {
    /// When the last of them was read.
    pub at: Instant,
    /// Their bytes, if capture was asked for.
    pub captured: Vec<u8>,
}

/// A request being served.
struct Active {
    lines: usize,
    left: usize,
    capture: bool,
    captured: Vec<u8>,
}

/// What the reading thread and the counter share.
struct State {
    /// Bytes read that no request has taken. Empty while a request is
    /// active: a new request takes these first.
    pending: Vec<u8>,
    active: Option<Active>,
    /// Why no request can be served any more (EOF, too much output).
    broken: Option<String>,
    done: Sender<Result<Arrival, String>>,
}

impl State {
    /// Takes `bytes` read at `at`: the active request's lines first, the
    /// rest kept.
    fn take(&mut self, bytes: &[u8], at: Instant) {
        let mut used = 0;
        if let Some(active) = &mut self.active {
            used = take_lines(bytes, &mut active.left);
            if active.capture {
                active.captured.extend_from_slice(&bytes[..used]);
            }
            if active.left == 0 {
                let active = self.active.take().expect("active");
                let _ = self.done.send(Ok(Arrival {
                    at,
                    captured: active.captured,
                }));
            }
        }
        self.pending.extend_from_slice(&bytes[used..]);
        if self.pending.len() > MAX_PENDING && self.broken.is_none() {
            self.pending.clear();
            self.break_with(format!(
                "more than {} MiB of output nobody asked for",
                MAX_PENDING >> 20
            ));
        }
    }

    /// No request can be served any more; the active one fails.
    fn break_with(&mut self, why: String) {
        if let Some(active) = self.active.take() {
            let _ = self.done.send(Err(format!(
                "{why} after {} of {} lines",
                active.lines - active.left,
                active.lines
            )));
        }
        self.broken = Some(why);
    }
}

/// Counts newlines on a stream in a thread: [`expect`](Self::expect) then
/// [`arrived`](Self::arrived) gives the instant the n-th next newline was
/// read.
pub struct LineCounter {
    state: Arc<Mutex<State>>,
    done: Receiver<Result<Arrival, String>>,
    /// Lines of the current request.
    wanted: usize,
    /// What the stream is, for error messages ("B's stdout").
    name: String,
}

impl LineCounter {
    /// Starts reading `source`; the thread ends at EOF or a read error.
    pub fn spawn(name: &str, mut source: impl Read + Send + 'static) -> LineCounter {
        let (done_tx, done) = mpsc::channel();
        let state = Arc::new(Mutex::new(State {
            pending: Vec::new(),
            active: None,
            broken: None,
            done: done_tx,
        }));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let read = source.read(&mut buf);
                let at = Instant::now();
                let mut state = lock(&shared);
                match read {
                    Ok(0) | Err(_) => {
                        state.break_with("the stream closed".to_owned());
                        return;
                    }
                    Ok(n) => state.take(&buf[..n], at),
                }
            }
        });
        LineCounter {
            state,
            done,
            wanted: 0,
            name: name.to_owned(),
        }
    }

    /// Starts counting the next `lines` lines; call before sending them so
    /// they are timed from the right moment.
    pub fn expect(&mut self, lines: usize) -> Result<(), String> {
        self.ask(lines, false)
    }

    /// Like [`expect`](Self::expect), and keeps the lines' bytes.
    pub fn capture(&mut self, lines: usize) -> Result<(), String> {
        self.ask(lines, true)
    }

    fn ask(&mut self, lines: usize, capture: bool) -> Result<(), String> {
        self.wanted = lines;
        let mut state = lock(&self.state);
        if state.active.is_some() {
            return Err(format!("{}: a request is still waiting", self.name));
        }
        let mut left = lines;
        let used = take_lines(&state.pending, &mut left);
        let captured = if capture {
            state.pending[..used].to_vec()
        } else {
            Vec::new()
        };
        state.pending.drain(..used);
        if left == 0 {
            let _ = state.done.send(Ok(Arrival {
                at: Instant::now(),
                captured,
            }));
            return Ok(());
        }
        if let Some(why) = &state.broken {
            return Err(format!(
                "{}: {why} after {} of {lines} lines",
                self.name,
                lines - left
            ));
        }
        state.active = Some(Active {
            lines,
            left,
            capture,
            captured,
        });
        Ok(())
    }

    /// Waits, at most `within`, until the lines asked for have arrived.
    pub fn arrived(&mut self, within: Duration) -> Result<Arrival, String> {
        match self.done.recv_timeout(within) {
            Ok(Ok(arrival)) => Ok(arrival),
            Ok(Err(e)) => Err(format!("{}: {e}", self.name)),
            Err(RecvTimeoutError::Timeout) => {
                let state = lock(&self.state);
                let seen = state
                    .active
                    .as_ref()
                    .map_or(self.wanted, |a| a.lines - a.left);
                Err(format!(
                    "{}: {seen} of {} lines arrived within {within:?}",
                    self.name, self.wanted
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("{}: the counter is gone", self.name))
            }
        }
    }

    /// Whole lines read that no request has taken, and the first of them:
    /// output the benchmark did not ask for.
    pub fn leftover(&self) -> (usize, Option<String>) {
        let state = lock(&self.state);
        let lines = state.pending.iter().filter(|&&b| b == b'\n').count();
        let first = state
            .pending
            .split(|&b| b == b'\n')
            .next()
            .filter(|_| lines > 0)
            .map(|l| String::from_utf8_lossy(&l[..l.len().min(100)]).into_owned());
        (lines, first)
    }
}

/// The state, even if a thread panicked holding it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes up to `wanted` lines from the front of `chunk`: returns how many
/// bytes they span and lowers `wanted` by the lines found.
fn take_lines(chunk: &[u8], wanted: &mut usize) -> usize {
    if *wanted == 0 {
        return 0;
    }
    let found = chunk.iter().filter(|&&b| b == b'\n').count();
    if found < *wanted {
        *wanted -= found;
        return chunk.len();
    }
    let mut left = *wanted;
    *wanted = 0;
    for (i, &b) in chunk.iter().enumerate() {
        if b == b'\n' {
            left -= 1;
            if left == 0 {
                return i + 1;
            }
        }
    }
    chunk.len()
}

/// `lines` lines of exactly `line_bytes` bytes including the newline. Each
/// starts with its number, so no line starts with `/` (a command in secure
/// mode) and every line differs from the others.
pub fn payload(lines: usize, line_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * line_bytes);
    for i in 0..lines {
        let start = out.len();
        write!(out, "{i:08} ").expect("write to a Vec");
        while out.len() - start < line_bytes - 1 {
            out.push(b'a' + (out.len() % 26) as u8);
        }
        out.push(b'\n');
    }
    out
}

/// Writes `bytes` and flushes.
pub fn push(sink: &mut impl Write, bytes: &[u8], what: &str) -> Result<(), String> {
    sink.write_all(bytes)
        .and_then(|()| sink.flush())
        .map_err(|e| format!("could not write to {what}: {e}"))
}
