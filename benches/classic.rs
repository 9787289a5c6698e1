//! Benchmark of both protocols between real processes on loopback, beside
//! `socat TCP-LISTEN:P STDIO` in the same run, each with its history on
//! disk and without it.
//!
//! Run with `cargo bench --bench classic`. Knobs (environment):
//! - `BENCH_LINES` (default 100000): 64-byte lines (messages) per
//!   throughput run;
//! - `BENCH_LINES_1K` (default `BENCH_LINES / 5`, so 20000): 1 KiB
//!   messages per run between two processes;
//! - `BENCH_RUNS` (default 5): runs whose median is reported;
//! - `BENCH_SAMPLES` (default 2000): latency samples each way;
//! - `BENCH_STARTS` (default 10): starts timed for the start-up figure;
//! - `BENCH_ONLY`: a comma-separated choice of `plain`, `secure`,
//!   `nohistory`, `socat` (default all four);
//! - `BENCH_SAME_PAIRS=1`: every pair runs with `--no-history`, so the
//!   "history on/off" ratios compare two identical pairs: how far they
//!   stray from 1 is how far this machine's noise alone moves them.
//!
//! Every process of the binary gets a data dir under a temp dir, removed
//! at the end: a benchmark never writes into the user's real data
//! directory (the secure mode keeps its identity and history there, the
//! plain mode its history).
//!
//! Sections, each printed as soon as it is measured:
//! 1. `plain`/`socat`: one program against a raw socket held by the
//!    benchmark (see `support::against_socket`), the program's plain mode
//!    (`--no-history`, as socat keeps none, and with its history) and
//!    socat measured alike, taking turns, with their ratios;
//! 2. pairs: two processes of the binary chatting, A listening and B
//!    connecting, stdin to stdout each way (see `support::pair`). `secure`
//!    is the default, with its history in SQLite; `secure --no-history`
//!    (`nohistory`) keeps everything in memory; `plain` runs with
//!    `--no-history` and `plain +history` (both under `plain`) with its
//!    history in its data dir. Every pair runs with `--no-mdns`, which
//!    would otherwise put pairs side by side into one room. The pairs are
//!    measured together, their runs
//!    taking turns, each run followed by a wait until the pair that ran is
//!    quiet again, so the throughput with the history and without it come
//!    from the same stretch of time and neither slows the other; their
//!    ratio (history on / off) is printed for both message sizes and both
//!    ways, since the secure mode is held to keeping at least 80% of its
//!    `--no-history` throughput. Beside it,
//!    how long each pair kept working after a run's last line was shown
//!    (the history's writes and acknowledgements come after the display);
//! 3. start-up time to the `Listening on:` line of each pair's mode (see
//!    `support::startup`);
//! 4. the secure mode against the bars of its issues (the history ratio
//!    among them), with the plain mode beside it. A missed bar is
//!    reported, and the run still succeeds.
//!
//! A line of N bytes is N-1 bytes of text and its newline, so "64 B" and
//! "1 KiB" messages are the same bytes on stdin in both modes. MB here is
//! MiB (VmRSS / 1024).

mod support;

use std::io::Write;

use support::against_socket::{self, Subject, LINE_BYTES};
use support::pair::{self, Load, Mode, PairFigures};
use support::process::{self, socat_available};
use support::startup::{self, DataDir, StartUp};
use support::{env_usize, grouped, machine, mb};

/// The secure mode's bars.
const BAR_MESSAGES_PER_S: f64 = 500_000.0;
const BAR_P99_MS: f64 = 1.0;
const BAR_IDLE_RSS_MB: f64 = 12.0;
const BAR_START_UP_MS: f64 = 100.0;

/// Throughput with the history kept, as a share of the `--no-history`
/// figure, at least.
const BAR_HISTORY_RATIO: f64 = 0.80;

/// The pairs in the order they are measured and shown.
const PAIR_MODES: [Mode; 4] = [
    Mode::Secure,
    Mode::SecureNoHistory,
    Mode::Plain,
    Mode::PlainHistory,
];

/// What the environment asks for.
struct Knobs {
    lines: usize,
    lines_1k: usize,
    runs: usize,
    samples: usize,
    starts: usize,
    plain: bool,
    secure: bool,
    nohistory: bool,
    socat: bool,
}

impl Knobs {
    fn from_env() -> Result<Knobs, String> {
        let lines = env_usize("BENCH_LINES", 100_000).max(1);
        let (mut plain, mut secure, mut nohistory, mut socat) = (true, true, true, true);
        if let Ok(only) = std::env::var("BENCH_ONLY") {
            (plain, secure, nohistory, socat) = (false, false, false, false);
            for part in only.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part {
                    "plain" => plain = true,
                    "secure" => secure = true,
                    "nohistory" => nohistory = true,
                    "socat" => socat = true,
                    other => {
                        return Err(format!(
                            "BENCH_ONLY: unknown section {other:?}; expected plain, secure, nohistory or socat, comma-separated"
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
            nohistory,
            socat,
        })
    }

    /// Whether the pair of `mode` is to be measured.
    fn wants(&self, mode: Mode) -> bool {
        match mode {
            Mode::Secure => self.secure,
            Mode::SecureNoHistory => self.nohistory,
            Mode::Plain | Mode::PlainHistory => self.plain,
        }
    }
}

/// What the run measured, for the summary at the end.
#[derive(Default)]
struct Results {
    pairs: Vec<(Mode, PairFigures)>,
    starts: Vec<(Mode, StartUp)>,
}

impl Results {
    fn pair(&self, mode: Mode) -> Option<&PairFigures> {
        self.pairs.iter().find(|(m, _)| *m == mode).map(|(_, p)| p)
    }

    fn start(&self, mode: Mode) -> Option<&StartUp> {
        self.starts.iter().find(|(m, _)| *m == mode).map(|(_, s)| s)
    }
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
    if pair::same_pairs() {
        println!(
            "BENCH_SAME_PAIRS: every pair runs with --no-history; the history on/off ratios \
             below compare two identical pairs.\n"
        );
    }
    let mut failures = 0;
    let mut fail = |section: &str, error: String| {
        failures += 1;
        println!("{section}: FAILED: {error}\n");
    };

    if knobs.plain || knobs.socat {
        against_a_socket(&knobs, &mut fail);
    }

    let mut results = Results::default();
    let modes: Vec<Mode> = PAIR_MODES.into_iter().filter(|&m| knobs.wants(m)).collect();
    if !modes.is_empty() {
        println!(
            "Two processes on 127.0.0.1: A listens, B connects; a message is one line on the \
             sender's stdin\nand one `Peer: ` line on the receiver's stdout. Messages/s: median \
             of {} runs of {} x 64 B and {} x 1 KiB;\nlatency of single 64 B messages, {} samples \
             each way. The pairs' runs take turns (one pair loaded at a time,\nthe next run once \
             the last one's pair is quiet again); latency is measured pair after pair.",
            knobs.runs, knobs.lines, knobs.lines_1k, knobs.samples
        );
        let _ = std::io::stdout().flush();
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
        let measured = pair::measure_all(&modes, &loads, knobs.runs, knobs.samples);
        print_pair_header();
        let mut failed = Vec::new();
        for (mode, figures) in measured {
            match figures {
                Ok(figures) => {
                    print_pair_row(mode.name(), &figures);
                    results.pairs.push((mode, figures));
                }
                Err(e) => failed.push((mode, e)),
            }
        }
        println!();
        for (mode, e) in failed {
            fail(&format!("{} pair", mode.name()), e);
        }
        print_history_ratios(&results);
        measure_start_up(&knobs, &modes, &mut results, &mut fail);
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
        "One program against a raw socket: {} lines of {LINE_BYTES} bytes per run, median of {} runs, {} latency samples;\n\
         the programs take turns, each run followed by a wait until the program that ran is quiet again\n",
        knobs.lines, knobs.runs, knobs.samples
    );
    let mut subjects = Vec::new();
    if knobs.plain {
        subjects.push(("--no-history", Subject::Ours { history: false }, Some(4.0)));
        subjects.push(("+history", Subject::Ours { history: true }, Some(6.0)));
    }
    if knobs.socat {
        if socat_available() {
            subjects.push(("socat", Subject::Socat, None));
        } else {
            println!("socat not found: install it (apt-get install socat) for the comparison\n");
        }
    }
    if subjects.is_empty() {
        return;
    }
    let only: Vec<Subject> = subjects.iter().map(|&(_, subject, _)| subject).collect();
    let results = against_socket::measure_all(&only, knobs.lines, knobs.runs, knobs.samples);
    let mut measured = Vec::new();
    for ((name, _, idle_bar), result) in subjects.into_iter().zip(results) {
        match result {
            Ok(figures) => measured.push((name, figures, idle_bar)),
            Err(e) => fail(name, e),
        }
    }
    if measured.is_empty() {
        return;
    }
    print_socket_header();
    for (name, figures, _) in &measured {
        print_socket_row(name, figures);
    }
    let socat = measured
        .iter()
        .find(|(name, _, _)| *name == "socat")
        .map(|(_, figures, _)| figures);
    for (name, figures, idle_bar) in &measured {
        let Some(idle_bar) = idle_bar else { continue };
        println!();
        if let Some(socat) = socat {
            println!("ratio ({name} / socat):");
            println!(
                "  inbound throughput  {:.2}x   (bar: >= 0.5)",
                figures.inbound / socat.inbound
            );
            println!(
                "  outbound throughput {:.2}x   (bar: >= 0.5)",
                figures.outbound / socat.outbound
            );
            println!(
                "  inbound p99         {:.2}x   (bar: <= 1.5)",
                figures.in_latency.p99 / socat.in_latency.p99
            );
            println!(
                "  outbound p99        {:.2}x   (bar: <= 1.5)",
                figures.out_latency.p99 / socat.out_latency.p99
            );
        }
        println!(
            "{name}: idle RSS {:.1} MB (bar: <= {idle_bar} MB); quiet again {:.0} ms after a run (median)",
            mb(figures.idle_rss_kib),
            figures.quiet_after_ms
        );
    }
    for (name, figures, _) in &measured {
        for problem in &figures.problems {
            println!("{name}: {problem}");
        }
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

/// Section 3: start-up of a listener of each pair's mode, with its
/// identity on disk (and, for the secure mode, creating one).
fn measure_start_up(
    knobs: &Knobs,
    modes: &[Mode],
    results: &mut Results,
    fail: &mut impl FnMut(&str, String),
) {
    let dir = match tempfile::Builder::new()
        .prefix("rust-p2p-chat-bench-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            fail("start-up", format!("could not create a temp dir: {e}"));
            return;
        }
    };
    for &mode in modes {
        let shared = dir.path().join(mode.name().replace([' ', '+'], "-"));
        // One start, not timed, creates the identity (and the history)
        // the timed starts load.
        let existing = startup::measure(mode, DataDir::Shared(&shared), 1)
            .and_then(|_| startup::measure(mode, DataDir::Shared(&shared), knobs.starts));
        match existing {
            Ok(start) => results.starts.push((mode, start)),
            Err(e) => fail(&format!("{} start-up", mode.name()), e),
        }
    }
    if modes.contains(&Mode::Secure) {
        let fresh = dir.path().join("fresh");
        match startup::measure(Mode::Secure, DataDir::FreshUnder(&fresh), knobs.starts) {
            Ok(fresh) => println!(
                "secure start-up with a new identity: median {:.1} ms ({:.1}-{:.1} ms, {} starts)\n",
                fresh.median_ms, fresh.min_ms, fresh.max_ms, fresh.starts
            ),
            Err(e) => fail("secure start-up with a new identity", e),
        }
    }
}

/// Width of the first column of the pair tables.
const NAME_WIDTH: usize = 20;

fn print_pair_header() {
    println!(
        "\n{:<NAME_WIDTH$} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
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
        "{:<NAME_WIDTH$} {:>11} {:>11} {:>11} {:>11} {:>7.0}us {:>7.0}us {:>7.0}us {:>7.0}us",
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

/// Throughput with the history over throughput without it, for load
/// `index` (0: 64 B, 1: 1 KiB), one way.
fn history_ratio(results: &Results, plain: bool, index: usize, a_to_b: bool) -> Option<f64> {
    let (on, off) = if plain {
        (Mode::PlainHistory, Mode::Plain)
    } else {
        (Mode::Secure, Mode::SecureNoHistory)
    };
    let rate = |mode| {
        results
            .pair(mode)
            .and_then(|p| p.throughput.get(index))
            .map(|t| if a_to_b { t.a_to_b } else { t.b_to_a })
    };
    match (rate(on), rate(off)) {
        (Some(on), Some(off)) if off > 0.0 => Some(on / off),
        _ => None,
    }
}

/// The cost of the history: each mode's throughput with it over without
/// it, measured in the same run; and how long each pair kept working
/// after its runs.
fn print_history_ratios(results: &Results) {
    let rows: Vec<(&str, bool)> = [("secure", false), ("plain", true)]
        .into_iter()
        .filter(|&(_, plain)| history_ratio(results, plain, 0, true).is_some())
        .collect();
    if !rows.is_empty() {
        println!(
            "Throughput with the history / with --no-history (same run; bar for secure: >= {BAR_HISTORY_RATIO:.2}):"
        );
        println!(
            "{:<NAME_WIDTH$} {:>11} {:>11} {:>11} {:>11}",
            "", "64 B A->B", "64 B B->A", "1 KiB A->B", "1 KiB B->A"
        );
    }
    for &(name, plain) in &rows {
        let ratio = |index, a_to_b| {
            history_ratio(results, plain, index, a_to_b)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
        };
        println!(
            "{:<NAME_WIDTH$} {:>11} {:>11} {:>11} {:>11}",
            name,
            ratio(0, true),
            ratio(0, false),
            ratio(1, true),
            ratio(1, false)
        );
    }
    if results.pairs.is_empty() {
        return;
    }
    let quiet: Vec<String> = results
        .pairs
        .iter()
        .map(|(mode, p)| format!("{} {:.0} ms", mode.name(), p.quiet_after_ms))
        .collect();
    println!(
        "(quiet again after a run, median: {}; the time until a pair's processes used under \
         {} ms of CPU in every {} ms for {} ms)",
        quiet.join(", "),
        process::QUIET_CPU.as_millis(),
        process::QUIET_SLICE.as_millis(),
        process::QUIET_SPAN.as_millis()
    );
    println!();
}

fn print_resources(results: &Results) {
    println!(
        "{:<NAME_WIDTH$} {:>9} {:>10} {:>9} {:>9} {:>22}",
        "", "idle RSS", "idle anon", "loaded A", "loaded B", "start-up median (range)"
    );
    for mode in PAIR_MODES {
        let pair = results.pair(mode);
        let start = results.start(mode);
        if pair.is_none() && start.is_none() {
            continue;
        }
        let memory = |kib: fn(&PairFigures) -> u64| {
            pair.map_or_else(|| "-".to_owned(), |p| format!("{:.1}MB", mb(kib(p))))
        };
        let start = start.map_or_else(
            || "-".to_owned(),
            |s| format!("{:.1}ms ({:.1}-{:.1})", s.median_ms, s.min_ms, s.max_ms),
        );
        println!(
            "{:<NAME_WIDTH$} {:>9} {:>10} {:>9} {:>9} {:>22}",
            mode.name(),
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
        results.starts.first().map_or(0, |(_, s)| s.starts)
    );
}

fn print_problems(results: &Results) {
    for (mode, pair) in &results.pairs {
        for problem in &pair.problems {
            println!("{} pair: PROBLEM: {problem}", mode.name());
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
    let secure = results.pair(Mode::Secure);
    let plain = results.pair(Mode::Plain);
    let rate = |p: Option<&PairFigures>, a_to_b: bool| {
        p.and_then(|p| p.throughput.first())
            .map(|t| if a_to_b { t.a_to_b } else { t.b_to_a })
    };
    let p99_ms = |p: Option<&PairFigures>, a_to_b: bool| {
        p.map(|p| if a_to_b { p.a_to_b.p99 } else { p.b_to_a.p99 } / 1e3)
    };
    let idle_mb = |p: Option<&PairFigures>| p.map(|p| mb(p.idle_rss_kib));
    let start_ms = |s: Option<&StartUp>| s.map(|s| s.median_ms);
    let ratio_row = |name, index, a_to_b| BarRow {
        name,
        secure: history_ratio(results, false, index, a_to_b),
        plain: history_ratio(results, true, index, a_to_b),
        bar: Bar::AtLeast(BAR_HISTORY_RATIO),
        decimals: 2,
    };
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
            secure: start_ms(results.start(Mode::Secure)),
            plain: start_ms(results.start(Mode::Plain)),
            bar: Bar::Below(BAR_START_UP_MS),
            decimals: 1,
        },
        ratio_row("history on/off 64 B A->B", 0, true),
        ratio_row("history on/off 64 B B->A", 0, false),
        ratio_row("history on/off 1 KiB A->B", 1, true),
        ratio_row("history on/off 1 KiB B->A", 1, false),
    ];
    println!(
        "\nThe secure mode (with its history) against its bars (a miss is reported, not fatal); \
         plain (--no-history) beside it,\nand for the history on/off rows plain +history / plain:"
    );
    println!(
        "  {:<26} {:>12} {:>12} {:>6} {:>12}",
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
            "  {:<26} {:>12} {:>12} {:>6} {:>12}",
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
