//! The browser front end (`--web`), driven in headless Chromium through
//! WebDriver: what a person does in the page reaches a terminal peer and
//! back, what a peer sends stays text, and the server answers no one but
//! its own page. Skipped, saying so, where Chromium or chromedriver is not
//! installed (`.ci/run` installs both as root).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::{http_get, http_request, Browser};
use common::{data_dir, utf8, Peer, TIMEOUT};
use fantoccini::Locator;

/// A `--web` peer with its data in `dir` that dials 127.0.0.1:`port`,
/// serving on `web_port` (0: any); it and the page's link.
fn web_peer(dir: &std::path::Path, port: u16, web_port: u16) -> (Peer, String) {
    web_peer_with(dir, port, web_port, &[])
}

/// [`web_peer`] with `extra` flags.
fn web_peer_with(
    dir: &std::path::Path,
    port: u16,
    web_port: u16,
    extra: &[&str],
) -> (Peer, String) {
    let target = format!("127.0.0.1:{port}");
    let web_port = web_port.to_string();
    let mut args = vec![
        "--web",
        &web_port,
        "--connect",
        &target,
        "--data-dir",
        utf8(dir),
        "--no-mdns",
    ];
    args.extend_from_slice(extra);
    let mut peer = Peer::start(&args);
    let link = peer.expect_prefix("Web UI: ");
    let link = link.trim_start_matches("Web UI: ").to_owned();
    (peer, link)
}

/// The port of a page's link.
fn port_of_link(link: &str) -> u16 {
    link.trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {link}"))
}

/// The numbered lines (`line 00042`) the page shows, in order.
async fn numbered(page: &Browser) -> Vec<String> {
    let said = page.said().await;
    said.into_iter()
        .filter(|t| t.starts_with("line "))
        .collect()
}

/// `line 00000` to the line before `count`.
fn numbers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("line {i:05}")).collect()
}

/// A browser with the page at `link` open and connected; `None` where
/// there is no browser (said by [`Browser::start`]).
async fn open_page(link: &str) -> Option<Browser> {
    let page = Browser::start(1280, 800).await?;
    page.client.goto(link).await.expect("page loads");
    page.wait_until(CONNECTED, TIMEOUT, "the WebSocket").await;
    Some(page)
}

const CONNECTED: &str = "return document.querySelector('#conn')?.dataset.state === 'connected'";

#[tokio::test(flavor = "current_thread")]
async fn the_page_chats_with_a_terminal_peer_and_answers_only_its_own_page() {
    let (a, b) = (data_dir(), data_dir());
    let (mut ann, port, _) = Peer::secure_listen(a.path(), &[]);
    let (_web, link) = web_peer(b.path(), port, 0);
    ann.expect_secure_chat();
    let web_port = port_of_link(&link);
    let token = link.rsplit('#').next().expect("a token").to_owned();
    assert_eq!(token.len(), 32, "128 bits in hex: {link}");

    // The server, asked as a browser never would.
    let own = format!("Origin: http://127.0.0.1:{web_port}");
    let upgrade = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        upgrade
            .iter()
            .chain(extra)
            .map(|h| (*h).to_owned())
            .collect()
    };
    let get = |path: &str, headers: Vec<String>| {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        http_get(web_port, path, &headers).0
    };
    assert_eq!(get("/ws", with(&[&own])), 401, "no token");
    assert_eq!(
        get("/ws?token=00000000000000000000000000000000", with(&[&own])),
        401
    );
    let ws = format!("/ws?token={token}");
    assert_eq!(get(&ws, with(&["Origin: http://evil.example"])), 403);
    assert_eq!(get(&ws, with(&[])), 403, "no Origin");
    let rebound = format!("Host: evil.example:{web_port}");
    assert_eq!(get(&ws, with(&[&own, &rebound])), 403, "DNS rebinding");
    assert_eq!(get("/", vec![rebound.clone()]), 403);
    assert_eq!(get(&ws, with(&[&own])), 101, "the page's own upgrade");
    let (status, head) = http_get(web_port, "/", &[]);
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{head}"
    );
    assert!(!head.contains("unsafe-inline"), "{head}");

    let Some(page) = Browser::start(1280, 800).await else {
        return;
    };
    // Without its token the page shows how to get in, and nothing else.
    let bare = link.split('#').next().expect("the link");
    page.client.goto(bare).await.expect("page loads");
    page.wait_until(
        "return document.querySelector('#conn')?.dataset.state === 'no-token'",
        TIMEOUT,
        "the page to ask for its token",
    )
    .await;
    assert!(page.said().await.is_empty());

    page.client.goto(&link).await.expect("page loads");
    page.wait_until(CONNECTED, TIMEOUT, "the WebSocket").await;

    // A line typed in the page reaches the terminal peer.
    page.type_line("hello from the page").await;
    ann.expect_line("Peer: hello from the page");
    // ... and is shown as ours, delivered once the peer holds it.
    page.wait_until(
        "return [...document.querySelectorAll('#log .line.own')].some(l => l.querySelector('.text')?.textContent === 'hello from the page' && l.querySelector('.status')?.dataset.status === 'delivered')",
        TIMEOUT,
        "our line, delivered",
    )
    .await;

    // What the peer sends shows as the characters it sent, and runs
    // nothing.
    let hostile = [
        "<img src=x onerror=\"window.__pwned=1\">",
        "<script>window.__pwned=2</script>",
        "<a href=\"javascript:window.__pwned=3\">click</a> & &amp;",
        "\u{202e}reversed \u{1b}[31mred",
    ];
    for text in hostile {
        ann.send(text);
    }
    page.wait_until(
        "return document.querySelectorAll('#log .line:not(.system):not(.own)').length >= 4",
        TIMEOUT,
        "the peer's lines",
    )
    .await;
    let said = page.said().await;
    assert_eq!(said[said.len() - 4..said.len() - 1], hostile[..3]);
    // Controls and bidi overrides are shown by name, as in a terminal.
    assert_eq!(said[said.len() - 1], "\\u{202e}reversed ^[[31mred");
    assert_eq!(page.js("return window.__pwned === undefined").await, true);
    assert_eq!(
        page.js("return document.querySelectorAll('#log img, #log script, #log a').length")
            .await,
        0
    );

    // A slash command typed in the page works as it does in a terminal.
    page.type_line("/nick wendy").await;
    ann.expect_line("Peer is now known as wendy");
    page.type_line("second line").await;
    ann.expect_line("wendy: second line");

    page.screenshot("web-1280x800.png").await;
    page.set_viewport(360, 740).await;
    page.wait_until(
        "return window.innerWidth <= 400 && document.documentElement.scrollWidth <= window.innerWidth",
        TIMEOUT,
        "the page to fit 360 px without scrolling sideways",
    )
    .await;
    page.screenshot("web-360x740.png").await;
    page.quit().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_lines_all_shows_in_order_and_ten_thousand_scroll_back() {
    let (a, b) = (data_dir(), data_dir());
    let (mut ann, port, _) = Peer::secure_listen(a.path(), &[]);
    let (_web, link) = web_peer(b.path(), port, 0);
    ann.expect_secure_chat();
    let Some(page) = open_page(&link).await else {
        return;
    };
    // The page asks for what it shows once connected: let that settle
    // before the burst.
    page.wait_until(
        "return document.querySelectorAll('#rooms .room').length > 0",
        TIMEOUT,
        "the room list",
    )
    .await;

    let burst: String = (0..1_000).map(|i| format!("line {i:05}\n")).collect();
    ann.send_bytes(burst.as_bytes());
    page.wait_until(
        "return [...document.querySelectorAll('#log .line:not(.system) .text')].filter(e => e.textContent.startsWith('line ')).length >= 1000",
        Duration::from_secs(60),
        "a thousand lines",
    )
    .await;
    assert_eq!(numbered(&page).await, numbers(1_000));
    // Still responsive: a frame is drawn at once, and a line typed goes out.
    let frame_ms = page
        .client
        .execute_async(
            "const done = arguments[0]; const t = performance.now(); requestAnimationFrame(() => done(performance.now() - t));",
            Vec::new(),
        )
        .await
        .expect("a frame");
    assert!(
        frame_ms.as_f64().is_some_and(|ms| ms < 1_000.0),
        "{frame_ms}"
    );
    page.type_line("still here").await;
    ann.expect_line("Peer: still here");

    // Nine thousand more make a history of ten thousand, which the page,
    // opened afresh, loads back page by page as it is scrolled up.
    let more: String = (1_000..10_000).map(|i| format!("line {i:05}\n")).collect();
    ann.send_bytes(more.as_bytes());
    page.wait_until(
        "return [...document.querySelectorAll('#log .line:not(.system) .text')].some(e => e.textContent === 'line 09999')",
        Duration::from_secs(60),
        "the last line",
    )
    .await;
    page.client.goto(&link).await.expect("page loads again");
    page.wait_until(
        "return [...document.querySelectorAll('#log .line:not(.system) .text')].some(e => e.textContent === 'line 09999')",
        TIMEOUT,
        "the latest lines from the history",
    )
    .await;
    let scrolled = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let top = page
                .js("const log = document.querySelector('#log .room-log:not([hidden])') || document.querySelector('#log'); for (const el of [log, document.querySelector('#log')]) { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); } return [...document.querySelectorAll('#log .line:not(.system) .text')].some(e => e.textContent === 'line 00000')")
                .await;
            if top == serde_json::Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        scrolled.is_ok(),
        "the history did not scroll back to its start"
    );
    let said = numbered(&page).await;
    assert_eq!(said.len(), 10_000);
    assert!(
        said == numbers(10_000),
        "the history came back out of order"
    );
    page.quit().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_reconnects_when_the_chat_restarts() {
    let (a, b) = (data_dir(), data_dir());
    let (mut ann, port, _) = Peer::secure_listen(a.path(), &[]);
    // A fixed port keeps its token: the same link works after a restart.
    let fixed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (mut web, link) = web_peer(b.path(), port, fixed);
    ann.expect_secure_chat();
    let Some(page) = open_page(&link).await else {
        return;
    };
    ann.send("before the restart");
    page.wait_until(
        "return [...document.querySelectorAll('#log .text')].some(e => e.textContent === 'before the restart')",
        TIMEOUT,
        "the first line",
    )
    .await;

    web.kill_9();
    ann.expect_line("Peer disconnected");
    page.wait_until(
        "return document.querySelector('#conn')?.dataset.state === 'reconnecting'",
        TIMEOUT,
        "the page to notice",
    )
    .await;
    // The same port and data: the same link works again.
    let (_web, again) = web_peer(b.path(), port, fixed);
    assert_eq!(again, link);
    ann.expect_secure_chat();
    page.wait_until(CONNECTED, TIMEOUT, "the WebSocket again")
        .await;
    ann.send("after the restart");
    page.wait_until(
        "return [...document.querySelectorAll('#log .text')].some(e => e.textContent === 'after the restart')",
        TIMEOUT,
        "a line after the restart",
    )
    .await;
    page.type_line("back again").await;
    ann.expect_line("Peer: back again");
    page.quit().await;
}

#[tokio::test(flavor = "current_thread")]
async fn verify_invite_and_files_work_from_the_page() {
    let (a, b, downloads, ann_downloads) = (data_dir(), data_dir(), data_dir(), data_dir());
    let (mut ann, port, _) = Peer::secure_listen(
        a.path(),
        &[
            "--name",
            "ann",
            "--download-dir",
            utf8(ann_downloads.path()),
        ],
    );
    let (_web, link) = web_peer_with(
        b.path(),
        port,
        0,
        &["--download-dir", utf8(downloads.path())],
    );
    ann.expect_secure_chat();
    let Some(page) = open_page(&link).await else {
        return;
    };
    page.wait_until(
        "return [...document.querySelectorAll('#members .member')].some(m => m.textContent.includes('ann'))",
        TIMEOUT,
        "ann among the members",
    )
    .await;

    // The safety number, large, the same as the terminal's; marking the
    // member verified shows in the member list.
    page.click("#verify-button").await;
    page.wait_until(
        "return document.querySelector('#verify').open && /^(\\d{5} ){11}\\d{5}$/.test(document.querySelector('#safety-number').textContent.replace(/\\s+/g, ' ').trim())",
        TIMEOUT,
        "the safety number",
    )
    .await;
    page.screenshot("web-verify.png").await;
    let shown = page
        .js("return document.querySelector('#safety-number').textContent.replace(/\\s+/g, ' ').trim()")
        .await;
    ann.send("/verify");
    let theirs = ann.expect_prefix("Safety number: ");
    assert_eq!(
        theirs.trim_start_matches("Safety number: "),
        shown.as_str().expect("text")
    );
    page.click("#mark-verified").await;
    page.wait_until(
        "return [...document.querySelectorAll('#members .member')].some(m => m.textContent.includes('ann') && m.querySelector('.verified'))",
        TIMEOUT,
        "ann marked verified",
    )
    .await;

    // An invite: its ticket as text and as a QR code.
    page.click("#invite-button").await;
    page.wait_until(
        "return document.querySelector('#invite').open && document.querySelector('#ticket').value.length > 20 && document.querySelectorAll('#qr svg rect').length > 50",
        TIMEOUT,
        "the invite",
    )
    .await;
    page.screenshot("web-invite.png").await;
    page.js("document.querySelector('#invite').close(); return true")
        .await;

    // A file offered by the terminal peer, accepted in the page.
    let offered = a.path().join("notes.txt");
    std::fs::write(&offered, b"from ann\n").expect("written");
    ann.send(&format!("/send {}", utf8(&offered)));
    page.wait_until(
        "return !!document.querySelector('#transfers .transfer button.accept')",
        TIMEOUT,
        "the offer",
    )
    .await;
    page.click("#transfers .transfer button.accept").await;
    ann.expect_prefix("Sent \"notes.txt\"");
    let received = downloads.path().join("notes.txt");
    let landed = std::time::Instant::now();
    while !received.exists() && landed.elapsed() < TIMEOUT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read(&received).expect("received"), b"from ann\n");

    // A file sent from the page, by its path.
    let sent = b.path().join("report.txt");
    std::fs::write(&sent, b"from the page\n").expect("written");
    let path = page
        .client
        .find(Locator::Css("#file-path"))
        .await
        .expect("the path box");
    path.send_keys(utf8(&sent)).await.expect("typed");
    page.click("#send-file-form button[type=submit]").await;
    let offer = ann.expect_prefix("Peer offers \"report.txt\"");
    assert!(offer.contains("/accept"), "{offer}");

    // A file picked in the page: its bytes go to the chat, which offers
    // it under its own name, and it arrives whole.
    let picked = b.path().join("picked photo.jpg");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&picked, &bytes).expect("written");
    page.client
        .find(Locator::Css("#file-pick"))
        .await
        .expect("the file picker")
        .send_keys(utf8(&picked))
        .await
        .expect("picked");
    page.click("#send-file-form button[type=submit]").await;
    let offer = ann.expect_prefix("Peer offers \"picked photo.jpg\"");
    let number = offer
        .rsplit("/reject ")
        .next()
        .expect("a number")
        .trim()
        .to_owned();
    ann.send(&format!("/accept {number}"));
    let received = ann.expect_prefix("Received \"picked photo.jpg\"");
    let landed = received
        .rsplit("-> ")
        .next()
        .expect("a path")
        .trim()
        .to_owned();
    assert!(landed.starts_with(utf8(ann_downloads.path())), "{landed}");
    assert_eq!(std::fs::read(&landed).expect("received"), bytes);
    // Without the token, or from another origin, nothing is taken.
    let web_port = port_of_link(&link);
    let token = link.rsplit('#').next().expect("a token");
    let own = format!("Origin: http://127.0.0.1:{web_port}");
    let auth = format!("Authorization: Bearer {token}");
    for (headers, status) in [
        (vec![own.as_str()], 401),
        (vec![auth.as_str()], 403),
        (vec!["Origin: http://evil.example", auth.as_str()], 403),
    ] {
        assert_eq!(
            http_request(web_port, "POST", "/upload?name=x.txt", &headers).0,
            status,
            "{headers:?}"
        );
    }
    page.screenshot("web-files.png").await;
    page.quit().await;
}
