//! The browser front end: `cargo bench --bench web`.
//!
//! A terminal peer A (release build, lines on its stdin) and a peer W
//! with `--web`, whose page is open in headless Chromium (chromedriver;
//! skipped, saying so, where they are missing). A types `WEB_LINES` lines
//! (default 200), one every 25 ms; the page notes when each line's node
//! enters its DOM (a MutationObserver, `performance.timeOrigin +
//! performance.now()`), and the time from the write to A's stdin to that
//! is each line's latency (one machine, one clock).
//!
//! The web front end's memory: W's RSS after the lines, against a peer
//! running the same chat with the pipe front end instead (the same lines,
//! the same history), and W's RSS before its page opened.

mod support;

// The tests' browser; the benchmark uses part of it.
#[allow(dead_code)]
#[path = "../tests/common/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::process::{read_status, status_kib, Running};

/// The longest any wait of the benchmark may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How often A types a line.
const TYPE_EVERY: Duration = Duration::from_millis(25);

/// `path` as the `&str` a command line takes.
fn utf8(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("web benchmark failed: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("web benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// A listening terminal peer: it, its stdin, and its port.
fn listener(
    dir: &Path,
) -> Result<
    (
        Running,
        std::process::ChildStdin,
        u16,
        Box<dyn BufRead + Send>,
    ),
    String,
> {
    let mut a = Running::ours(
        "terminal peer A",
        &[
            "--listen",
            "0",
            "--data-dir",
            utf8(dir),
            "--no-mdns",
            "--name",
            "ann",
        ],
    )?;
    let stdin = a.take_stdin()?;
    let out = BufReader::new(a.take_stdout()?);
    let status = read_status(out, "Listening on: 0.0.0.0:", TIMEOUT)?;
    let port = status
        .line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in {:?}", status.line))?;
    Ok((a, stdin, port, Box::new(status.rest)))
}

/// Reads `out` on a thread until it ends, so the process never blocks on
/// a full pipe.
fn drain(out: impl BufRead + Send + 'static) {
    std::thread::spawn(move || {
        for line in out.lines() {
            if line.is_err() {
                break;
            }
        }
    });
}

/// Types the numbered lines into A, one every [`TYPE_EVERY`]; when each
/// was written.
async fn type_lines(
    stdin: &mut std::process::ChildStdin,
    lines: usize,
) -> Result<Vec<f64>, String> {
    let mut sent = Vec::with_capacity(lines);
    for i in 0..lines {
        sent.push(now_ms());
        writeln!(stdin, "lat {i}").map_err(|e| format!("A's stdin: {e}"))?;
        stdin.flush().map_err(|e| format!("A's stdin: {e}"))?;
        tokio::time::sleep(TYPE_EVERY).await;
    }
    Ok(sent)
}

async fn run() -> Result<(), String> {
    let lines = support::env_usize("WEB_LINES", 200);
    println!("{}", support::machine());
    println!("load average before: {}", support::load_average());

    // The pipe front end, for its memory.
    let (a_dir, p_dir) = (
        tempfile::tempdir().map_err(|e| e.to_string())?,
        tempfile::tempdir().map_err(|e| e.to_string())?,
    );
    let (a, mut a_in, port, a_out) = listener(a_dir.path())?;
    drain(a_out);
    let target = format!("127.0.0.1:{port}");
    let mut pipe = Running::ours(
        "pipe peer P",
        &[
            "--connect",
            &target,
            "--data-dir",
            utf8(p_dir.path()),
            "--no-mdns",
        ],
    )?;
    let p_out = BufReader::new(pipe.take_stdout()?);
    let ready = read_status(p_out, "Type messages", TIMEOUT)?;
    drain(ready.rest);
    type_lines(&mut a_in, lines).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pipe_rss = status_kib(pipe.pid(), "VmRSS");
    drop(pipe);
    drop(a);

    // The web front end.
    let (a_dir, w_dir) = (
        tempfile::tempdir().map_err(|e| e.to_string())?,
        tempfile::tempdir().map_err(|e| e.to_string())?,
    );
    let (a, mut a_in, port, a_out) = listener(a_dir.path())?;
    let target = format!("127.0.0.1:{port}");
    let mut web = Running::ours(
        "web peer W",
        &[
            "--web",
            "0",
            "--connect",
            &target,
            "--data-dir",
            utf8(w_dir.path()),
            "--no-mdns",
        ],
    )?;
    let w_out = BufReader::new(web.take_stdout()?);
    let link = read_status(w_out, "Web UI: ", TIMEOUT)?;
    drain(link.rest);
    let link = link.line.trim().trim_start_matches("Web UI: ").to_owned();
    let ready = read_status(a_out, "Type messages", TIMEOUT)?;
    drain(ready.rest);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed_rss = status_kib(web.pid(), "VmRSS");

    let Some(page) = browser::Browser::start(1280, 800).await else {
        return Ok(());
    };
    page.client.goto(&link).await.map_err(|e| e.to_string())?;
    page.wait_until(
        "return document.querySelector('#conn')?.dataset.state === 'connected' && document.querySelectorAll('#rooms .room').length > 0",
        TIMEOUT,
        "the page",
    )
    .await;
    // Each numbered line's arrival in the DOM, by the page's clock (the
    // machine's: the same as ours).
    page.js(
        "window.__arrived = {}; new MutationObserver((records) => { const t = performance.timeOrigin + performance.now(); for (const r of records) for (const n of r.addedNodes) { const text = n.querySelector?.('.text')?.textContent ?? ''; const m = /^lat (\\d+)$/.exec(text); if (m && !(m[1] in window.__arrived)) window.__arrived[m[1]] = t; } }).observe(document.querySelector('#log'), { childList: true, subtree: true }); return true",
    )
    .await;
    let sent = type_lines(&mut a_in, lines).await?;
    page.wait_until(
        &format!("return Object.keys(window.__arrived).length >= {lines}"),
        TIMEOUT,
        "every line in the page",
    )
    .await;
    let arrived: std::collections::HashMap<String, f64> =
        serde_json::from_value(page.js("return window.__arrived").await)
            .map_err(|e| e.to_string())?;
    let mut samples: Vec<f64> = sent
        .iter()
        .enumerate()
        .filter_map(|(i, at)| arrived.get(&i.to_string()).map(|t| (t - at) * 1e3))
        .collect();
    let web_rss = status_kib(web.pid(), "VmRSS");
    page.quit().await;
    drop(web);
    drop(a);

    let latency = support::latency(&mut samples);
    println!();
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| line typed at a terminal peer to its node in the page's DOM ({} lines, one per {} ms) | p50 {:.1} ms, p99 {:.1} ms |",
        samples.len(),
        TYPE_EVERY.as_millis(),
        latency.p50 / 1e3,
        latency.p99 / 1e3
    );
    println!(
        "| RSS of the --web peer after them, page open | {:.1} MB |",
        support::mb(web_rss)
    );
    println!(
        "| RSS of a pipe peer after the same lines | {:.1} MB |",
        support::mb(pipe_rss)
    );
    println!(
        "| the web front end's extra RSS | {:+.1} MB (before its page opened: {:.1} MB) |",
        support::mb(web_rss) - support::mb(pipe_rss),
        support::mb(closed_rss)
    );
    println!("load average after: {}", support::load_average());
    Ok(())
}
