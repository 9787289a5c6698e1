//! [`Browser`]: headless Chromium driven through WebDriver (chromedriver),
//! for the tests of the page `--web` serves; and a bare HTTP request, for
//! what a browser would never send.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::{utf8, TIMEOUT};

/// Where the browser and its driver are looked for.
const DRIVERS: &[&str] = &[
    "chromedriver",
    "/usr/bin/chromedriver",
    "/usr/lib/chromium/chromedriver",
];
const BROWSERS: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A headless browser with one window, and the driver behind it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium at `width`×`height` under chromedriver; `None`
    /// (having said why) where either is not installed.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let driver = DRIVERS.iter().find(|d| runs(d));
        let browser = BROWSERS.iter().find(|b| std::path::Path::new(b).exists());
        let (Some(driver), Some(browser)) = (driver, browser) else {
            eprintln!(
                "skipped: chromium and chromedriver are not installed (.ci/run installs them as root)"
            );
            return None;
        };
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A process group of its own: the browser it starts is in it too,
        // and goes with it even when a test panics.
        let mut driver = Command::new(driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("temp dir");
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": browser,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", utf8(profile.path())),
                ],
            }),
        );
        let started = Instant::now();
        let client = loop {
            let connected = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match connected {
                Ok(client) => break client,
                Err(e) if started.elapsed() > TIMEOUT => {
                    let _ = driver.kill();
                    panic!("no WebDriver session: {e}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let browser = Browser {
            client,
            driver,
            _profile: profile,
        };
        browser.set_viewport(width, height).await;
        Some(browser)
    }

    /// Makes the page's viewport `width`×`height` (the window is larger by
    /// whatever the browser draws around the page).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        for _ in 0..3 {
            let inner = self
                .js("return [window.innerWidth, window.innerHeight]")
                .await;
            let (w, h) = (
                inner[0].as_u64().unwrap_or(0) as u32,
                inner[1].as_u64().unwrap_or(0) as u32,
            );
            if (w, h) == (width, height) {
                return;
            }
            let (outer_w, outer_h) = self.client.get_window_size().await.expect("a window");
            let (outer_w, outer_h) = (outer_w as u32, outer_h as u32);
            self.client
                .set_window_size(
                    outer_w + width - w.min(outer_w + width),
                    outer_h + height - h.min(outer_h + height),
                )
                .await
                .expect("resized");
        }
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns true, for at most `limit`.
    pub async fn wait_until(&self, script: &str, limit: Duration, what: &str) {
        let started = Instant::now();
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            if started.elapsed() > limit {
                let state = self
                    .js("return document.querySelector('#conn')?.textContent + ' | ' + document.querySelector('#log')?.innerText.slice(-2000)")
                    .await;
                panic!("waited {limit:?} for {what}; the page shows: {state}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The texts of the lines people said in the room shown, in order.
    pub async fn said(&self) -> Vec<String> {
        let texts = self
            .js("return [...document.querySelectorAll('#log .room-log:not([hidden]) .line:not(.system) .text')].map(e => e.textContent)")
            .await;
        serde_json::from_value(texts).expect("a list of texts")
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("{css} not clicked: {e}"));
    }

    /// Types `text` into the message box and presses Enter.
    pub async fn type_line(&self, text: &str) {
        let input = self
            .client
            .find(Locator::Css("#message"))
            .await
            .expect("the message box");
        input
            .send_keys(&format!("{text}\u{e007}"))
            .await
            .expect("typed");
    }

    /// A PNG of the window, written to `name` in the tests' own temporary
    /// directory; its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the session, then the driver and the browser (see `Drop`).
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver, the browser and its helpers: their whole group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A GET of `path` from 127.0.0.1:`port` with these extra header lines;
/// the status code and the response's head.
pub fn http_get(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    http_request(port, "GET", path, headers)
}

/// A request without a body (`Content-Length: 0` for a POST); the status
/// code and the response's head.
pub fn http_request(port: u16, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("connection:"))
    {
        request.push_str("Connection: close\r\n");
    }
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = Vec::new();
    // A WebSocket upgrade stays open: its head is all there is to read.
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head)
}
