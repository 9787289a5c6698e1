//! Lines on a pipe or socket: writing payloads of fixed-size lines, and
//! counting (or capturing) the lines that arrive on the other end.
//!
//! The counter runs on its own thread and must be told how many lines to
//! wait for *before* they are written: it then drains the stream while the
//! sender writes, so neither side ever blocks on a full pipe. It keeps any
//! bytes read past the lines asked for (a later line, or part of one) for
//! the next request, so requests line up exactly with what was sent.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes asked of the stream in one read.
const READ_CHUNK: usize = 256 * 1024;

/// What the counter is asked to wait for.
struct Request {
    lines: usize,
    capture: bool,
}

/// The lines asked for have all arrived.
pub struct Arrival {
    /// When the last of them was read.
    pub at: Instant,
    /// Their bytes, if capture was asked for.
    pub captured: Vec<u8>,
}

/// Counts newlines on a stream in a thread: [`expect`](Self::expect) then
/// [`arrived`](Self::arrived) gives the instant the n-th next newline was
/// read.
pub struct LineCounter {
    requests: Sender<Request>,
    done: Receiver<Arrival>,
    /// Lines of the current request seen so far, for error messages.
    progress: Arc<AtomicUsize>,
    /// Lines of the current request.
    wanted: usize,
    /// What the stream is, for error messages ("B's stdout").
    name: String,
}

impl LineCounter {
    /// Starts counting on `source`; the thread ends at EOF or when the
    /// counter is dropped.
    pub fn spawn(name: &str, mut source: impl Read + Send + 'static) -> LineCounter {
        let (requests, request_rx) = mpsc::channel::<Request>();
        let (done_tx, done) = mpsc::channel();
        let progress = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&progress);
        thread::spawn(move || {
            let mut buf = vec![0u8; READ_CHUNK];
            // Bytes read past the end of the previous request.
            let mut pending: Vec<u8> = Vec::new();
            while let Ok(request) = request_rx.recv() {
                let mut wanted = request.lines;
                let mut captured = Vec::new();
                seen.store(0, Ordering::Relaxed);
                let leftover = std::mem::take(&mut pending);
                let used = take_lines(&leftover, &mut wanted);
                if request.capture {
                    captured.extend_from_slice(&leftover[..used]);
                }
                pending.extend_from_slice(&leftover[used..]);
                while wanted > 0 {
                    let n = match source.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let used = take_lines(&buf[..n], &mut wanted);
                    if request.capture {
                        captured.extend_from_slice(&buf[..used]);
                    }
                    pending.extend_from_slice(&buf[used..n]);
                    seen.store(request.lines - wanted, Ordering::Relaxed);
                }
                let arrival = Arrival {
                    at: Instant::now(),
                    captured,
                };
                if done_tx.send(arrival).is_err() {
                    return;
                }
            }
        });
        LineCounter {
            requests,
            done,
            progress,
            wanted: 0,
            name: name.to_owned(),
        }
    }

    /// Starts counting the next `lines` lines; call before sending them so
    /// the counter drains the stream while the sender writes.
    pub fn expect(&mut self, lines: usize) -> Result<(), String> {
        self.ask(lines, false)
    }

    /// Like [`expect`](Self::expect), and keeps the lines' bytes.
    pub fn capture(&mut self, lines: usize) -> Result<(), String> {
        self.ask(lines, true)
    }

    fn ask(&mut self, lines: usize, capture: bool) -> Result<(), String> {
        self.wanted = lines;
        self.requests
            .send(Request { lines, capture })
            .map_err(|_| format!("{} closed", self.name))
    }

    /// Waits, at most `within`, until the lines asked for have arrived.
    pub fn arrived(&mut self, within: Duration) -> Result<Arrival, String> {
        match self.done.recv_timeout(within) {
            Ok(arrival) => Ok(arrival),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{}: {} of {} lines arrived within {:?}",
                self.name,
                self.progress.load(Ordering::Relaxed),
                self.wanted,
                within
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "{} closed after {} of {} lines",
                self.name,
                self.progress.load(Ordering::Relaxed),
                self.wanted
            )),
        }
    }
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
