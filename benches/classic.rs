//! Benchmark of both protocols between real processes on loopback, beside
//! `socat TCP-LISTEN:P STDIO` in the same run.
//!
//! Run with `cargo bench --bench classic`. Knobs (environment):
//! - `BENCH_LINES` (default 100000): 64-byte lines (messages) per
//!   throughput run;
//! - `BENCH_LINES_1K` (default `BENCH_LINES / 5`, so 20000): 1 KiB
//!   messages per run between two processes;
//! - `BENCH_RUNS` (default 5): runs whose median is reported;
//! - `BENCH_SAMPLES` (default 2000): latency samples each way;
//! - `BENCH_STARTS` (default 10): starts timed for the start-up figure;
//! - `BENCH_ONLY`: a comma-separated choice of `plain`, `secure`, `socat`
//!   (default all three).
//!
//! Sections, each printed as soon as it is measured:
//! 1. `plain`/`socat`: one program against a raw socket held by the
//!    benchmark (see `support::against_socket`), the program's plain mode
//!    and socat measured alike, with their ratio;
//! 2. `secure`/`plain`: two processes of the binary chatting, A listening
//!    and B connecting, stdin to stdout each way (see `support::pair`);
//! 3. start-up time to the `Listening on:` line (see `support::startup`);
//! 4. the secure mode against the bars of its issue, with the plain mode
//!    beside it. A missed bar is reported, and the run still succeeds.
//!
//! A line of N bytes is N-1 bytes of text and its newline, so "64 B" and
//! "1 KiB" messages are the same bytes on stdin in both modes. MB here is
//! MiB (VmRSS / 1024).

mod support;

use std::io::Write;

use support::against_socket::{self, Subject, LINE_BYTES};
use support::pair::{self, Load, Mode, PairFigures};
use support::process::socat_available;
use support::startup::{self, DataDir, StartUp};
use support::{env_usize, grouped, machine, mb};

/// The secure mode's bars, from the issue that asked for it.
const BAR_MESSAGES_PER_S: f64 = 500_000.0;
const BAR_P99_MS: f64 = 1.0;
const BAR_IDLE_RSS_MB: f64 = 12.0;
const BAR_START_UP_MS: f64 = 100.0;

/// What the environment asks for.
struct Knobs {
    lines: usize,
    lines_1k: usize,
    runs: usize,
    samples: usize,
    starts: usize,
    plain: bool,
    secure: bool,
    socat: bool,
}

impl Knobs {
    fn from_env() -> Result<Knobs, String> {
        let lines = env_usize("BENCH_LINES", 100_000).max(1);
        let (mut plain, mut secure, mut socat) = (true, true, true);
        if let Ok(only) = std::env::var("BENCH_ONLY") {
            (plain, secure, socat) = (false, false, false);
            for part in only.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part {
                    "plain" => plain = true,
                    "secure" => secure = true,
                    "socat" => socat = true,
                    other => {
                        return Err(format!(
                            "BENCH_ONLY: unknown section {other:?}; expected plain, secure or socat, comma-separated"
                        ))
                    }
                }
            }
        }
        Ok(Knobs {
            lines,
            lines_1k: env_usize("BENCH_LINES_1K", (lines / 5).max(1)).max(1),
            runs: env_usize("BENCH_RUNS", 5).max(1),
            samples: env_usize("BENCH_SAMPLES", 2_000).max(1),
            starts: env_usize("BENCH_STARTS", 10).max(1),
            plain,
            secure,
            socat,
        })
    }
}

/// What the run measured, for the summary at the end.
#[derive(Default)]
struct Results {
    secure_pair: Option<PairFigures>,
    plain_pair: Option<PairFigures>,
    secure_start: Option<StartUp>,
    plain_start: Option<StartUp>,
}

fn main() {
    let knobs = match Knobs::from_env() {
        Ok(knobs) => knobs,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    println!("{}", machine());
    let mut failures = 0;
    let mut fail = |section: &str, error: String| {
        failures += 1;
        println!("{section}: FAILED: {error}\n");
    };

    if knobs.plain || knobs.socat {
        against_a_socket(&knobs, &mut fail);
    }

    let mut results = Results::default();
    if knobs.secure || knobs.plain {
        println!(
            "Two processes on 127.0.0.1: A listens, B connects; a message is one line on the \
             sender's stdin\nand one `Peer: ` line on the receiver's stdout. Messages/s: median \
             of {} runs of {} x 64 B and {} x 1 KiB;\nlatency of single 64 B messages, {} samples \
             each way.",
            knobs.runs, knobs.lines, knobs.lines_1k, knobs.samples
        );
        let loads = [
            Load {
                bytes: 64,
                messages: knobs.lines,
            },
            Load {
                bytes: 1024,
                messages: knobs.lines_1k,
            },
        ];
        print_pair_header();
        for (mode, wanted) in [(Mode::Secure, knobs.secure), (Mode::Plain, knobs.plain)] {
            if !wanted {
                continue;
            }
            match pair::measure(mode, &loads, knobs.runs, knobs.samples) {
                Ok(figures) => {
                    print_pair_row(mode.name(), &figures);
                    match mode {
                        Mode::Secure => results.secure_pair = Some(figures),
                        Mode::Plain => results.plain_pair = Some(figures),
                    }
                }
                Err(e) => fail(&format!("{} pair", mode.name()), e),
            }
        }
        println!();
        measure_start_up(&knobs, &mut results, &mut fail);
        print_resources(&results);
        print_problems(&results);
    }

    if knobs.secure {
        print_bars(&results);
    }
    if failures > 0 {
        println!("\n{failures} section(s) failed; see above");
        std::process::exit(1);
    }
}

/// Section 1: the plain mode and socat against a raw socket.
fn against_a_socket(knobs: &Knobs, fail: &mut impl FnMut(&str, String)) {
    println!(
        "One program against a raw socket: {} lines of {LINE_BYTES} bytes per run, median of {} runs, {} latency samples\n",
        knobs.lines, knobs.runs, knobs.samples
    );
    let measure =
        |subject| against_socket::measure(subject, knobs.lines, knobs.runs, knobs.samples);
    let ours = if knobs.plain {
        measure(&Subject::Ours)
            .map_err(|e| fail("rust-p2p-chat --plain", e))
            .ok()
    } else {
        None
    };
    let socat = if !knobs.socat {
        None
    } else if socat_available() {
        measure(&Subject::Socat).map_err(|e| fail("socat", e)).ok()
    } else {
        println!("socat not found: install it (apt-get install socat) for the comparison\n");
        None
    };
    if ours.is_none() && socat.is_none() {
        return;
    }
    print_socket_header();
    if let Some(ours) = &ours {
        print_socket_row("rust-p2p-chat", ours);
    }
    if let Some(socat) = &socat {
        print_socket_row("socat", socat);
    }
    if let (Some(ours), Some(socat)) = (&ours, &socat) {
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
    if let Some(ours) = &ours {
        println!("\nidle RSS {:.1} MB (bar: <= 4 MB)", mb(ours.idle_rss_kib));
    }
    println!();
    let _ = std::io::stdout().flush();
}

fn print_socket_header() {
    println!(
        "{:<14} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "in lines/s", "out lines/s", "in p50", "in p99", "out p50", "out p99", "idle", "loaded"
    );
}

fn print_socket_row(name: &str, f: &against_socket::Figures) {
    println!(
        "{:<14} {:>12.0} {:>12.0} {:>7.0}us {:>7.0}us {:>7.0}us {:>7.0}us {:>6.1}MB {:>6.1}MB",
        name,
        f.inbound,
        f.outbound,
        f.in_latency.p50,
        f.in_latency.p99,
        f.out_latency.p50,
        f.out_latency.p99,
        mb(f.idle_rss_kib),
        mb(f.loaded_rss_kib),
    );
}

/// Section 3: start-up of a secure listener (with an identity on disk, and
/// creating one) and of a plain one.
fn measure_start_up(knobs: &Knobs, results: &mut Results, fail: &mut impl FnMut(&str, String)) {
    if knobs.secure {
        let measured = tempfile::Builder::new()
            .prefix("rust-p2p-chat-bench-")
            .tempdir()
            .map_err(|e| format!("could not create a temp dir: {e}"))
            .and_then(|dir| {
                let shared = dir.path().join("shared");
                // One start, not timed, creates the identity the timed
                // starts load.
                startup::measure(Mode::Secure, Some(DataDir::Shared(&shared)), 1)?;
                let existing =
                    startup::measure(Mode::Secure, Some(DataDir::Shared(&shared)), knobs.starts)?;
                let fresh = startup::measure(
                    Mode::Secure,
                    Some(DataDir::FreshUnder(dir.path())),
                    knobs.starts,
                )?;
                Ok((existing, fresh))
            });
        match measured {
            Ok((existing, fresh)) => {
                println!(
                    "secure start-up with a new identity: median {:.1} ms ({:.1}-{:.1} ms, {} starts)\n",
                    fresh.median_ms, fresh.min_ms, fresh.max_ms, fresh.starts
                );
                results.secure_start = Some(existing);
            }
            Err(e) => fail("secure start-up", e),
        }
    }
    if knobs.plain {
        match startup::measure(Mode::Plain, None, knobs.starts) {
            Ok(plain) => results.plain_start = Some(plain),
            Err(e) => fail("plain start-up", e),
        }
    }
}

fn print_pair_header() {
    println!(
        "\n{:<8} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "",
        "64 B A->B",
        "64 B B->A",
        "1 KiB A->B",
        "1 KiB B->A",
        "p50 A->B",
        "p99 A->B",
        "p50 B->A",
        "p99 B->A"
    );
}

fn print_pair_row(name: &str, f: &PairFigures) {
    let rate = |i: usize, a_to_b: bool| {
        f.throughput.get(i).map_or_else(
            || "-".to_owned(),
            |t| grouped(if a_to_b { t.a_to_b } else { t.b_to_a }),
        )
    };
    println!(
        "{:<8} {:>11} {:>11} {:>11} {:>11} {:>7.0}us {:>7.0}us {:>7.0}us {:>7.0}us",
        name,
        rate(0, true),
        rate(0, false),
        rate(1, true),
        rate(1, false),
        f.a_to_b.p50,
        f.a_to_b.p99,
        f.b_to_a.p50,
        f.b_to_a.p99,
    );
    let _ = std::io::stdout().flush();
}

fn print_resources(results: &Results) {
    println!(
        "{:<8} {:>9} {:>10} {:>9} {:>9} {:>22}",
        "", "idle RSS", "idle anon", "loaded A", "loaded B", "start-up median (range)"
    );
    let rows = [
        ("secure", &results.secure_pair, &results.secure_start),
        ("plain", &results.plain_pair, &results.plain_start),
    ];
    for (name, pair, start) in rows {
        if pair.is_none() && start.is_none() {
            continue;
        }
        let memory = |kib: fn(&PairFigures) -> u64| {
            pair.as_ref()
                .map_or_else(|| "-".to_owned(), |p| format!("{:.1}MB", mb(kib(p))))
        };
        let start = start.as_ref().map_or_else(
            || "-".to_owned(),
            |s| format!("{:.1}ms ({:.1}-{:.1})", s.median_ms, s.min_ms, s.max_ms),
        );
        println!(
            "{:<8} {:>9} {:>10} {:>9} {:>9} {:>22}",
            name,
            memory(|p| p.idle_rss_kib),
            memory(|p| p.idle_anon_kib),
            memory(|p| p.loaded_a_kib),
            memory(|p| p.loaded_b_kib),
            start
        );
    }
    println!(
        "(idle: A's VmRSS right after `Waiting for peer to connect...`, and its RssAnon, which \
         leaves out\n the mapped binary and libraries; loaded: VmHWM after all the load;\n \
         start-up: spawn to `Listening on:` read, identity already on disk, {} starts)",
        results
            .secure_start
            .as_ref()
            .or(results.plain_start.as_ref())
            .map_or(0, |s| s.starts)
    );
}

fn print_problems(results: &Results) {
    for (name, pair) in [
        ("secure", &results.secure_pair),
        ("plain", &results.plain_pair),
    ] {
        let Some(pair) = pair else { continue };
        for problem in &pair.problems {
            println!("{name} pair: PROBLEM: {problem}");
        }
    }
}

/// A bar a figure must meet.
enum Bar {
    AtLeast(f64),
    Below(f64),
    AtMost(f64),
}

impl Bar {
    fn met(&self, value: f64) -> bool {
        match *self {
            Bar::AtLeast(bar) => value >= bar,
            Bar::Below(bar) => value < bar,
            Bar::AtMost(bar) => value <= bar,
        }
    }

    fn show(&self, decimals: usize) -> String {
        let (sign, bar) = match *self {
            Bar::AtLeast(bar) => (">=", bar),
            Bar::Below(bar) => ("<", bar),
            Bar::AtMost(bar) => ("<=", bar),
        };
        format!("{sign} {}", figure(bar, decimals))
    }
}

/// One line of the bars table.
struct BarRow {
    name: &'static str,
    secure: Option<f64>,
    plain: Option<f64>,
    bar: Bar,
    decimals: usize,
}

/// A figure with `decimals` decimals; counts (0 decimals) grouped.
fn figure(value: f64, decimals: usize) -> String {
    if decimals == 0 {
        grouped(value)
    } else {
        format!("{value:.decimals$}")
    }
}

/// Section 4: the secure mode against its bars, the plain mode beside it.
fn print_bars(results: &Results) {
    let secure = results.secure_pair.as_ref();
    let plain = results.plain_pair.as_ref();
    let rate = |p: Option<&PairFigures>, a_to_b: bool| {
        p.and_then(|p| p.throughput.first())
            .map(|t| if a_to_b { t.a_to_b } else { t.b_to_a })
    };
    let p99_ms = |p: Option<&PairFigures>, a_to_b: bool| {
        p.map(|p| if a_to_b { p.a_to_b.p99 } else { p.b_to_a.p99 } / 1e3)
    };
    let idle_mb = |p: Option<&PairFigures>| p.map(|p| mb(p.idle_rss_kib));
    let start_ms = |s: &Option<StartUp>| s.as_ref().map(|s| s.median_ms);
    let rows = [
        BarRow {
            name: "64 B messages/s A->B",
            secure: rate(secure, true),
            plain: rate(plain, true),
            bar: Bar::AtLeast(BAR_MESSAGES_PER_S),
            decimals: 0,
        },
        BarRow {
            name: "64 B messages/s B->A",
            secure: rate(secure, false),
            plain: rate(plain, false),
            bar: Bar::AtLeast(BAR_MESSAGES_PER_S),
            decimals: 0,
        },
        BarRow {
            name: "p99 latency A->B (ms)",
            secure: p99_ms(secure, true),
            plain: p99_ms(plain, true),
            bar: Bar::Below(BAR_P99_MS),
            decimals: 3,
        },
        BarRow {
            name: "p99 latency B->A (ms)",
            secure: p99_ms(secure, false),
            plain: p99_ms(plain, false),
            bar: Bar::Below(BAR_P99_MS),
            decimals: 3,
        },
        BarRow {
            name: "idle RSS (MB)",
            secure: idle_mb(secure),
            plain: idle_mb(plain),
            bar: Bar::AtMost(BAR_IDLE_RSS_MB),
            decimals: 1,
        },
        BarRow {
            name: "start-up (ms)",
            secure: start_ms(&results.secure_start),
            plain: start_ms(&results.plain_start),
            bar: Bar::Below(BAR_START_UP_MS),
            decimals: 1,
        },
    ];
    println!(
        "\nThe secure mode against its bars (a miss is reported, not fatal); plain beside it:"
    );
    println!(
        "  {:<24} {:>12} {:>12} {:>6} {:>12}",
        "", "secure", "bar", "", "plain"
    );
    let mut missed = 0;
    for row in &rows {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| figure(v, row.decimals));
        let verdict = match row.secure {
            None => "n/a",
            Some(v) if row.bar.met(v) => "ok",
            Some(_) => "MISS",
        };
        if verdict != "ok" {
            missed += 1;
        }
        println!(
            "  {:<24} {:>12} {:>12} {:>6} {:>12}",
            row.name,
            show(row.secure),
            row.bar.show(row.decimals),
            verdict,
            show(row.plain)
        );
    }
    if missed == 0 {
        println!("all {} bars met", rows.len());
    } else {
        println!("{missed} of {} bars missed or not measured", rows.len());
    }
}
