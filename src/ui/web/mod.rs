//! The browser front end (`--web`): the chat in a page served on
//! 127.0.0.1, speaking the JSON API of [`crate::chat::api`] over a
//! WebSocket.
//!
//! A web server on the loopback interface is still reachable by every
//! page the user's browser opens, so it trusts nothing a browser sends
//! without proof:
//! - a random token of 128 bits, in the link printed at start (after `#`,
//!   so loading the page never sends it, and the page takes it out of the
//!   address bar), is required for the WebSocket, which carries
//!   everything there is to read or do; without it the answer is 401 and
//!   nothing else. A new token is made for every run, except with a
//!   fixed port (`--web PORT`), where it is kept so that a bookmark or a
//!   page left open works again after a restart;
//! - the `Host` header must name this server (`127.0.0.1:PORT` or
//!   `localhost:PORT`), which defeats DNS rebinding;
//! - the WebSocket's `Origin` must be this page's own, so another site
//!   cannot drive the chat even with the token;
//! - a strict Content-Security-Policy allows no inline script and no
//!   other origin, and the page inserts peer text as text only.
//!
//! The page's files are embedded in the binary. What the app says goes
//! into a feed bounded in bytes, which every page reads at its own pace;
//! the app never waits for a page. Every frame of the feed is numbered
//! (`seq`), so a page that reconnects reads on from where it was; one that
//! fell too far behind, or finds a restarted chat, is told so (`gap`) and
//! reloads what it shows from the history.

mod feed;
pub mod upload;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use self::feed::{Cursor, Feed};
use crate::chat::api::{events_of, ApiCommand, ApiEvent};
use crate::chat::{Command, Event};
use crate::private_file::Replace;

/// Pages open at once, at most (each a WebSocket).
pub const MAX_PAGES: usize = 8;

/// Bytes of events kept for pages still reading them.
pub const FEED_BYTES: usize = 8 << 20;

/// Events a page that opens is shown from before it opened (what the chat
/// said while no page was open: how it started, files offered).
const REPLAY: usize = 200;

/// The longest frame a page is sent: a longer event (a `/history` of
/// thousands of long lines) is refused with an error instead, so neither
/// the feed nor the page holds it.
pub const MAX_FRAME: usize = FEED_BYTES / 4;

/// The name of the token's file in the data directory.
const TOKEN_FILE: &str = "web-token";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Nothing but this server's own files; no inline script or style, no
/// frames, no forms posting elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// How the front end is set up.
pub struct Options {
    /// The longest line (`--max-line`): commands are read up to what one
    /// holds.
    pub max_line: usize,
    /// Where files picked in the page are written before they are offered
    /// (see [`upload`]).
    pub uploads: std::path::PathBuf,
    /// The largest of them (`--max-file`).
    pub max_upload: u64,
}

/// The secret a page proves it was opened from the printed link with.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The token for a run serving on `port`: a new one for any port (0),
    /// the one kept in `dir` for a fixed port (see [`Token::load_or_create`]).
    ///
    /// # Errors
    ///
    /// As [`Token::load_or_create`].
    pub fn for_port(dir: &Path, port: u16) -> io::Result<Token> {
        if port == 0 {
            return Token::random();
        }
        Token::load_or_create(dir)
    }

    fn random() -> io::Result<Token> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(io::Error::other)?;
        Ok(Token(data_encoding::HEXLOWER.encode(&bytes)))
    }

    /// The token kept in `dir`, made on first use (128 random bits, in a
    /// file only the user can read). It is kept so a page left open, or a
    /// bookmark, still works after the chat restarts on the same port.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or written, or no randomness is
    /// available.
    pub fn load_or_create(dir: &Path) -> io::Result<Token> {
        let path = dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if is_token(text.trim()) => return Ok(Token(text.trim().to_owned())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let token = Token::random()?;
        crate::private_file::write_private_file(&path, token.0.as_bytes(), Replace::Atomically)?;
        Ok(token)
    }

    /// The token as the link carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, in time that does not tell how much
    /// of it was right.
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn is_token(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Binds the server's port on 127.0.0.1 only (0: any free port).
///
/// # Errors
///
/// When the port cannot be bound.
pub async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
}

/// The link to the page.
pub fn url(port: u16, token: &Token) -> String {
    format!("http://127.0.0.1:{port}/#{}", token.as_str())
}

/// A file in `dir`, readable by the user alone, that sends a browser on to
/// `link`: what a browser is told to open, so the token is never on a
/// command line another user could read.
///
/// # Errors
///
/// When the file cannot be written.
pub fn opener(dir: &Path, link: &str) -> io::Result<std::path::PathBuf> {
    let path = dir.join("web-open.html");
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
         <meta http-equiv=\"refresh\" content=\"0; url={link}\"><title>rust-p2p-chat</title>\
         <p><a href=\"{link}\">Open the chat</a></p>\n"
    );
    crate::private_file::write_private_file(&path, page.as_bytes(), Replace::Atomically)?;
    Ok(path)
}

/// What every request handler shares.
struct Hub {
    token: Token,
    port: u16,
    /// This run's name for the feed's numbers: a page that reconnects
    /// with numbers of another run reads from the start.
    epoch: String,
    feed: Feed,
    /// Our identity: the first thing every page is told.
    hello: Mutex<Option<Utf8Bytes>>,
    commands: mpsc::Sender<Command>,
    pages: Arc<Semaphore>,
    longest_command: usize,
    uploads: std::path::PathBuf,
    max_upload: u64,
    uploading: Semaphore,
}

/// Runs `app` with the browser front end serving on `listener`: events
/// go to every open page, commands come from any. Returns when the app
/// does; the server and every page's task end with it.
pub async fn run<F: Future>(
    app: F,
    listener: TcpListener,
    token: Token,
    options: Options,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
) -> io::Result<F::Output> {
    let Options {
        max_line,
        uploads,
        max_upload,
    } = options;
    let port = listener.local_addr()?.port();
    let epoch = Token::random()?.0[..16].to_owned();
    let hub = Arc::new(Hub {
        token,
        port,
        epoch,
        feed: Feed::new(FEED_BYTES),
        hello: Mutex::new(None),
        commands,
        pages: Arc::new(Semaphore::new(MAX_PAGES)),
        longest_command: max_line.saturating_mul(6).saturating_add(4096),
        uploads,
        max_upload,
        uploading: Semaphore::new(upload::AT_ONCE),
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .route("/ws", get(socket))
        .route("/upload", axum::routing::post(receive_upload))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(hub.clone(), guard))
        .with_state(hub.clone());
    let mut tasks = JoinSet::new();
    let old = hub.uploads.clone();
    tasks.spawn_blocking(move || upload::forget_old(&old));
    tasks.spawn(pump(events, hub.clone()));
    tasks.spawn(async move {
        // A server that stops accepting (it does not on its own) leaves
        // the chat running; the pages show they lost it.
        let _ = axum::serve(listener, router).await;
    });
    let out = app.await;
    // The server stops accepting here; the pages' connections (tasks of
    // the server's own) end with the runtime, which the binary shuts down
    // right after, and each page shows it lost the chat.
    tasks.shutdown().await;
    Ok(out)
}

/// Hands the app's events to the pages, as JSON.
async fn pump(mut events: mpsc::Receiver<Event>, hub: Arc<Hub>) {
    while let Some(event) = events.recv().await {
        for api in events_of(&event) {
            if matches!(api, ApiEvent::Hello { .. }) {
                if let Ok(mut hello) = hub.hello.lock() {
                    *hello = frame_of(&api, None);
                }
            }
            hub.feed.push(|seq| frame_of(&api, Some(seq)));
        }
    }
}

/// An event as the page reads it: the API's JSON with, for an event of
/// the feed, its number (`seq`), and for an invite the modules of its QR
/// code, which the page draws. One longer than [`MAX_FRAME`] becomes an
/// error saying so.
fn frame_of(api: &ApiEvent, seq: Option<u64>) -> Option<Utf8Bytes> {
    let mut value = serde_json::to_value(api).ok()?;
    let object = value.as_object_mut()?;
    if let ApiEvent::Invite { ticket } = api {
        if let Some(rows) = super::qr::modules(ticket) {
            object.insert("qr".into(), rows.into());
        }
    }
    if let Some(seq) = seq {
        object.insert("seq".into(), seq.into());
    }
    let mut out = Vec::new();
    crate::chat::json::to_writer(&mut out, &value).ok()?;
    if out.len() > MAX_FRAME {
        let refusal = serde_json::json!({
            "type": "error",
            "text": format!("an event of {} bytes is too long to show here (ask for less history)", out.len()),
            "seq": seq,
        });
        out.clear();
        crate::chat::json::to_writer(&mut out, &refusal).ok()?;
    }
    String::from_utf8(out).ok().map(Utf8Bytes::from)
}

/// Refuses a request for another host (DNS rebinding) or with a method
/// other than GET, and sets the headers that keep the page to itself.
async fn guard(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let host_ok = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| hub.own_host(host));
    let mut response = if !host_ok {
        (
            StatusCode::FORBIDDEN,
            "this server answers only as 127.0.0.1 or localhost\n",
        )
            .into_response()
    } else if request.method() != Method::GET
        && !(request.method() == Method::POST && request.uri().path() == "/upload")
    {
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

impl Hub {
    fn own_host(&self, host: &str) -> bool {
        let port = self.port.to_string();
        ["127.0.0.1", "localhost"].iter().any(|name| {
            // A browser leaves the default port out.
            (host == *name && self.port == 80)
                || host.strip_prefix(name).and_then(|r| r.strip_prefix(':')) == Some(&port)
        })
    }

    /// Lets in a request with the token (401 otherwise) from this server's
    /// own page (403 otherwise).
    #[allow(clippy::result_large_err)]
    fn admit(&self, token: Option<&str>, headers: &HeaderMap) -> Result<(), Response> {
        if !token.is_some_and(|t| self.token.matches(t)) {
            return Err((StatusCode::UNAUTHORIZED, "a valid token is required\n").into_response());
        }
        let origin_ok = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|origin| self.own_origin(origin));
        if !origin_ok {
            return Err((
                StatusCode::FORBIDDEN,
                "this is for this server's page only\n",
            )
                .into_response());
        }
        Ok(())
    }

    fn own_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.own_host(host))
    }

    /// Carries out a page's command; what to tell that page alone, if
    /// anything.
    async fn take(&self, text: &str) -> Option<Utf8Bytes> {
        match ApiCommand::parse(text).and_then(|c| c.commands()) {
            Ok(commands) => {
                for command in commands {
                    if self.commands.send(command).await.is_err() {
                        return None;
                    }
                }
                None
            }
            Err(e) => frame_of(
                &ApiEvent::Error {
                    text: e.to_string(),
                },
                None,
            ),
        }
    }
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// A field of a query (`token=HEX`, `since=EPOCH:SEQ`): neither needs
/// decoding.
fn query_field<'a>(query: Option<&'a str>, field: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(field)?.strip_prefix('='))
}

/// Where a page that reconnects left off: the run's epoch and the number
/// of the next frame it wants.
fn since_in(query: Option<&str>) -> Option<(String, u64)> {
    let (epoch, seq) = query_field(query, "since")?.split_once(':')?;
    Some((epoch.to_owned(), seq.parse().ok()?))
}

async fn socket(State(hub): State<Arc<Hub>>, headers: HeaderMap, request: Request) -> Response {
    let query = request.uri().query();
    if let Err(refusal) = hub.admit(query_field(query, "token"), &headers) {
        return refusal;
    }
    let since = since_in(query);
    let Ok(permit) = hub.pages.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many pages open\n").into_response();
    };
    let upgrade = {
        use axum::extract::FromRequestParts;
        let (mut parts, _) = request.into_parts();
        match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        }
    };
    let longest = hub.longest_command;
    upgrade
        .max_message_size(longest)
        .max_frame_size(longest)
        .on_upgrade(move |ws| page(ws, hub, since, permit))
}

/// `POST /upload?name=NAME[&to=NICK]`: a file picked in the page, its
/// bytes the body; written (see [`upload`]) and then offered with `/send`.
/// Answered with the path offered, or why not.
async fn receive_upload(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    axum::extract::Query(asked): axum::extract::Query<UploadQuery>,
    body: axum::body::Body,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if let Err(refusal) = hub.admit(token, &headers) {
        return refusal;
    }
    let Ok(_slot) = hub.uploading.try_acquire() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "another upload is under way\n",
        )
            .into_response();
    };
    let path = match upload::receive(&hub.uploads, &asked.name, body, hub.max_upload).await {
        Ok(path) => path,
        Err(e) => return (e.status(), format!("{e}\n")).into_response(),
    };
    let offer = ApiCommand::SendFile {
        to: asked.to.filter(|to| !to.is_empty()),
        path: path.display().to_string(),
    };
    match offer.commands() {
        Ok(commands) => {
            for command in commands {
                if hub.commands.send(command).await.is_err() {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
            (StatusCode::OK, path.display().to_string()).into_response()
        }
        Err(e) => {
            if let Some(dir) = path.parent() {
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    }
}

/// What `POST /upload` is asked.
#[derive(serde::Deserialize)]
struct UploadQuery {
    /// The file's name, as the browser gives it.
    name: String,
    /// To whom, by nick (the only other member when none).
    #[serde(default)]
    to: Option<String>,
}

/// One open page: its commands in, the feed out, until either side ends.
///
/// It is first told who we are (`hello`), then where the feed stands:
/// `{"type":"feed","epoch":E,"live":N,"gap":G}`. Frames numbered below
/// `live` that follow were said before the page connected; `gap` says it
/// may have missed some (a new page, a restarted chat, or one that fell
/// too far behind) and should reload what it shows from the history.
async fn page(
    mut ws: WebSocket,
    hub: Arc<Hub>,
    since: Option<(String, u64)>,
    _permit: OwnedSemaphorePermit,
) {
    let resumed = since
        .filter(|(epoch, _)| *epoch == hub.epoch)
        .and_then(|(_, seq)| hub.feed.cursor_at(seq).map(|cursor| (cursor, seq)));
    let (mut cursor, live, gap): (Cursor, u64, bool) = match resumed {
        Some((cursor, seq)) => (cursor, seq, false),
        None => {
            let (cursor, next) = hub.feed.cursor(REPLAY);
            (cursor, next, true)
        }
    };
    let hello = hub.hello.lock().ok().and_then(|h| h.clone());
    let marker = serde_json::json!({
        "type": "feed",
        "epoch": hub.epoch,
        "live": live,
        "gap": gap,
    });
    for frame in hello
        .into_iter()
        .chain(Some(Utf8Bytes::from(marker.to_string())))
    {
        if ws.send(Message::Text(frame)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = hub.take(text.as_str()).await {
                        if ws.send(Message::Text(reply)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let refusal = frame_of(
                        &ApiEvent::Error {
                            text: "commands are JSON text".into(),
                        },
                        None,
                    );
                    if let Some(refusal) = refusal {
                        if ws.send(Message::Text(refusal)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            frames = cursor.next(&hub.feed) => match frames {
                Ok(frames) => {
                    for frame in frames {
                        if ws.send(Message::Text(frame)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(feed::Behind) => {
                    // "Try again later": the page reconnects and reloads
                    // from the history what it missed.
                    let close = CloseFrame {
                        code: 1013,
                        reason: Utf8Bytes::from_static("fell behind"),
                    };
                    let _ = ws.send(Message::Close(Some(close))).await;
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins_are_this_server_only() {
        let (commands, _rx) = mpsc::channel(1);
        let hub = Hub {
            token: Token("0123456789abcdef0123456789abcdef".into()),
            port: 8123,
            epoch: "e".into(),
            feed: Feed::new(1),
            hello: Mutex::new(None),
            commands,
            pages: Arc::new(Semaphore::new(1)),
            longest_command: 1,
            uploads: std::path::PathBuf::new(),
            max_upload: 0,
            uploading: Semaphore::new(1),
        };
        for good in ["127.0.0.1:8123", "localhost:8123"] {
            assert!(hub.own_host(good), "{good}");
            assert!(hub.own_origin(&format!("http://{good}")), "{good}");
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:81234",
            "127.0.0.1:812",
            "evil.example:8123",
            "localhost.evil.example:8123",
            "127.0.0.1:8123.evil.example",
            "",
        ] {
            assert!(!hub.own_host(bad), "{bad}");
        }
        assert!(!hub.own_origin("https://127.0.0.1:8123"));
        assert!(!hub.own_origin("null"));
        assert!(hub.token.matches("0123456789abcdef0123456789abcdef"));
        assert!(!hub.token.matches("0123456789abcdef0123456789abcdee"));
        assert!(!hub.token.matches(""));
        assert_eq!(query_field(Some("a=1&token=xyz"), "token"), Some("xyz"));
        assert_eq!(query_field(Some("tokens=xyz"), "token"), None);
        assert_eq!(query_field(None, "token"), None);
        assert_eq!(
            since_in(Some("token=x&since=ab:42")),
            Some(("ab".into(), 42))
        );
        assert_eq!(since_in(Some("since=ab")), None);
    }

    #[test]
    fn a_token_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Token::for_port(dir.path(), 8123).expect("made");
        assert!(is_token(first.as_str()));
        let again = Token::for_port(dir.path(), 8123).expect("read");
        assert_eq!(first.as_str(), again.as_str());
        // Any port: a token of this run only.
        let fresh = Token::for_port(dir.path(), 0).expect("made");
        assert!(is_token(fresh.as_str()));
        assert_ne!(fresh.as_str(), first.as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_invite_carries_its_qr_modules() {
        let frame = frame_of(
            &ApiEvent::Invite {
                ticket: "CHATABC".into(),
            },
            Some(7),
        )
        .expect("a frame");
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        let rows = value["qr"].as_array().expect("rows");
        assert!(rows.len() >= 21);
        assert!(rows
            .iter()
            .all(|r| r.as_str().is_some_and(|r| r.len() == rows.len())));
        assert_eq!(value["seq"], 7);
    }

    #[test]
    fn an_event_too_long_for_a_page_becomes_an_error() {
        let frame = frame_of(
            &ApiEvent::Notice {
                level: crate::chat::api::Level::Info,
                text: "x".repeat(MAX_FRAME),
            },
            Some(3),
        )
        .expect("a frame");
        assert!(frame.len() < 1024);
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        assert_eq!(value["type"], "error");
        assert_eq!(value["seq"], 3);
    }
}
