//! Classic-mode benchmark: the plain protocol between two processes on
//! loopback, beside `socat TCP-LISTEN:P STDIO` in the same run.
//!
//! Run with `cargo bench --bench classic`. `BENCH_LINES` (default 100000)
//! sets the lines per throughput run, `BENCH_RUNS` (default 5) the runs whose
//! median is reported, `BENCH_SAMPLES` (default 2000) the latency samples.
//!
//! For each program under test the benchmark starts it listening, connects
//! one TCP socket to it, and measures:
//! - inbound: lines written to the socket until all are read from the
//!   program's stdout (a pipe);
//! - outbound: lines written to the program's stdin (a pipe) until all are
//!   read from the socket;
//! - one-way latency of single lines both ways, timed with one clock;
//! - RSS while listening (idle) and its peak after the load (loaded).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

const LINE_BYTES: usize = 64;
/// Longest any single measurement may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    let lines = env_usize("BENCH_LINES", 100_000);
    let runs = env_usize("BENCH_RUNS", 5).max(1);
    let samples = env_usize("BENCH_SAMPLES", 2_000).max(1);
    println!("{}", machine());
    println!("{lines} lines of {LINE_BYTES} bytes per run, median of {runs} runs, {samples} latency samples\n");

    let ours = measure(&Subject::Ours, lines, runs, samples);
    let socat = if socat_available() {
        Some(measure(&Subject::Socat, lines, runs, samples))
    } else {
        println!("socat not found: install it (apt-get install socat) for the comparison\n");
        None
    };

    print_row_header();
    print_row("rust-p2p-chat", &ours);
    if let Some(socat) = &socat {
        print_row("socat", socat);
        println!();
        println!("ratio (ours / socat):");
        println!(
            "  inbound throughput  {:.2}x   (bar: >= 0.5)",
            ours.inbound / socat.inbound
        );
        println!(
            "  outbound throughput {:.2}x   (bar: >= 0.5)",
            ours.outbound / socat.outbound
        );
        println!(
            "  inbound p99         {:.2}x   (bar: <= 1.5)",
            ours.in_latency.p99 / socat.in_latency.p99
        );
        println!(
            "  outbound p99        {:.2}x   (bar: <= 1.5)",
            ours.out_latency.p99 / socat.out_latency.p99
        );
    }
    println!(
        "\nidle RSS {:.1} MB (bar: <= 4 MB)",
        ours.idle_rss_kib as f64 / 1024.0
    );
}

enum Subject {
    Ours,
    Socat,
}

struct Figures {
    /// Lines per second, socket to stdout.
    inbound: f64,
    /// Lines per second, stdin to socket.
    outbound: f64,
    in_latency: Latency,
    out_latency: Latency,
    idle_rss_kib: u64,
    loaded_rss_kib: u64,
}

struct Latency {
    /// Microseconds.
    p50: f64,
    p99: f64,
}

fn measure(subject: &Subject, lines: usize, runs: usize, samples: usize) -> Figures {
    let mut target = Target::start(subject);
    let idle_rss_kib = status_kib(target.child.id(), "VmRSS:");
    let mut socket = target.connect(subject);
    let mut inbound_rx = LineCounter::spawn(target.stdout.take().expect("stdout taken once"));
    let mut outbound_rx = LineCounter::spawn(socket.try_clone().expect("clone socket"));
    let stdin = target.child.stdin.as_mut().expect("stdin piped");

    let payload = payload(lines);
    // Warm up both directions once before measuring.
    let warm = lines.min(1000);
    inbound_rx.expect(warm);
    push_socket(&mut socket, &payload[..warm * LINE_BYTES]);
    inbound_rx.arrived();
    outbound_rx.expect(warm);
    push_stdin(stdin, &payload[..warm * LINE_BYTES]);
    outbound_rx.arrived();

    let mut inbound = Vec::with_capacity(runs);
    let mut outbound = Vec::with_capacity(runs);
    for _ in 0..runs {
        inbound_rx.expect(lines);
        let start = Instant::now();
        push_socket(&mut socket, &payload);
        let end = inbound_rx.arrived();
        inbound.push(lines as f64 / (end - start).as_secs_f64());

        outbound_rx.expect(lines);
        let start = Instant::now();
        push_stdin(stdin, &payload);
        let end = outbound_rx.arrived();
        outbound.push(lines as f64 / (end - start).as_secs_f64());
    }

    let line = &payload[..LINE_BYTES];
    let mut in_samples = Vec::with_capacity(samples);
    let mut out_samples = Vec::with_capacity(samples);
    for _ in 0..samples {
        inbound_rx.expect(1);
        let start = Instant::now();
        push_socket(&mut socket, line);
        in_samples.push((inbound_rx.arrived() - start).as_secs_f64() * 1e6);
        outbound_rx.expect(1);
        let start = Instant::now();
        push_stdin(stdin, line);
        out_samples.push((outbound_rx.arrived() - start).as_secs_f64() * 1e6);
    }
    let loaded_rss_kib = status_kib(target.child.id(), "VmHWM:");
    drop(socket);
    target.stop();

    Figures {
        inbound: median(&mut inbound),
        outbound: median(&mut outbound),
        in_latency: latency(&mut in_samples),
        out_latency: latency(&mut out_samples),
        idle_rss_kib,
        loaded_rss_kib,
    }
}

/// A program under test, listening on a loopback port.
struct Target {
    child: Child,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    port: u16,
}

impl Target {
    fn start(subject: &Subject) -> Target {
        match subject {
            Subject::Ours => {
                let mut child = Command::new(env!("CARGO_BIN_EXE_rust-p2p-chat"))
                    .args(["--plain", "--listen", "0"])
                    .env("NO_COLOR", "1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start rust-p2p-chat");
                let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
                let listening = read_status(&mut stdout, "Listening on: ");
                let port = listening
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse().ok())
                    .expect("port in the Listening line");
                read_status(&mut stdout, "Waiting for peer");
                Target {
                    child,
                    stdout: Some(stdout),
                    port,
                }
            }
            Subject::Socat => {
                let port = free_port();
                let child = Command::new("socat")
                    .args([
                        &format!("TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1"),
                        "STDIO",
                    ])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start socat");
                let mut child = child;
                let stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
                wait_listening(port);
                Target {
                    child,
                    stdout: Some(stdout),
                    port,
                }
            }
        }
    }

    fn connect(&mut self, subject: &Subject) -> TcpStream {
        let socket = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        socket.set_nodelay(true).expect("nodelay");
        if let Subject::Ours = subject {
            let stdout = self.stdout.as_mut().expect("stdout present");
            read_status(stdout, "Type messages");
        }
        socket
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads status lines until one starts with `prefix`, at most 20 lines.
fn read_status(stdout: &mut impl BufRead, prefix: &str) -> String {
    for _ in 0..20 {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read status line");
        assert!(n > 0, "program closed stdout before printing {prefix:?}");
        if line.starts_with(prefix) {
            return line;
        }
    }
    panic!("no status line starting with {prefix:?}");
}

/// Counts newlines on a stream in a thread: `expect(n)` then `arrived()`
/// gives the instant the n-th next newline was read.
struct LineCounter {
    requests: Sender<usize>,
    done: Receiver<Instant>,
}

impl LineCounter {
    fn spawn(mut source: impl Read + Send + 'static) -> LineCounter {
        let (requests, request_rx) = mpsc::channel::<usize>();
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut surplus = 0usize;
            while let Ok(mut wanted) = request_rx.recv() {
                let used = surplus.min(wanted);
                surplus -= used;
                wanted -= used;
                while wanted > 0 {
                    let n = match source.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let found = memchr_count(&buf[..n]);
                    let used = found.min(wanted);
                    wanted -= used;
                    surplus += found - used;
                }
                if done_tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
        LineCounter { requests, done }
    }

    /// Starts counting the next `lines` lines; call before sending them so
    /// the counter drains the stream while the sender writes.
    fn expect(&mut self, lines: usize) {
        self.requests.send(lines).expect("line counter alive");
    }

    /// The instant the lines asked for by `expect` had all arrived.
    fn arrived(&mut self) -> Instant {
        self.done
            .recv_timeout(DEADLINE)
            .expect("lines arrived before the deadline")
    }
}

fn memchr_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn push_socket(socket: &mut TcpStream, bytes: &[u8]) {
    socket.write_all(bytes).expect("write to socket");
}

fn push_stdin(stdin: &mut ChildStdin, bytes: &[u8]) {
    stdin.write_all(bytes).expect("write to stdin");
    stdin.flush().expect("flush stdin");
}

/// `lines` lines of exactly LINE_BYTES bytes including the newline.
fn payload(lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * LINE_BYTES);
    for i in 0..lines {
        let start = out.len();
        write!(out, "{i:08} ").expect("write to vec");
        while out.len() - start < LINE_BYTES - 1 {
            out.push(b'a' + (out.len() % 26) as u8);
        }
        out.push(b'\n');
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts on the port, probing with a connection
/// that is never used (socat is started without `fork`, so probing would
/// consume its one connection): look in /proc/net/tcp instead.
fn wait_listening(port: u16) {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    for _ in 0..500 {
        if std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| t.contains(&needle)) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("socat did not listen on port {port}");
}

fn socat_available() -> bool {
    Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn status_kib(pid: u32, key: &str) -> u64 {
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn latency(samples: &mut [f64]) -> Latency {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn print_row_header() {
    println!(
        "{:<14} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "in lines/s", "out lines/s", "in p50", "in p99", "out p50", "out p99", "idle", "loaded"
    );
}

fn print_row(name: &str, f: &Figures) {
    println!(
        "{:<14} {:>12.0} {:>12.0} {:>7.0}us {:>7.0}us {:>7.0}us {:>7.0}us {:>6.1}MB {:>6.1}MB",
        name,
        f.inbound,
        f.outbound,
        f.in_latency.p50,
        f.in_latency.p99,
        f.out_latency.p50,
        f.out_latency.p99,
        f.idle_rss_kib as f64 / 1024.0,
        f.loaded_rss_kib as f64 / 1024.0,
    );
}

fn machine() -> String {
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

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
