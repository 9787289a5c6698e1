//! The `rust-p2p-chat` binary: parse the command line, ask the prompts,
//! pick a front end, run the app, and map the outcome to an exit code
//! (0 normal, 1 runtime error, 2 usage error).

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::sync::mpsc;

use rust_p2p_chat::app::{self, Options, PlainHistory, Protocol, Shutdown};
use rust_p2p_chat::cli::{
    prompt_role, Args, DoctorArgs, HistoryArgs, PromptError, RelayArgs, Subcommand,
};
use rust_p2p_chat::identity::{self, Identity};
use rust_p2p_chat::store::{DirLock, Filter, History, KnownPeers, Relays, RoomKeys, Store};
use rust_p2p_chat::ui::{json, pipe, terminal, web, Style};

fn main() -> ExitCode {
    rust_p2p_chat::app::one_heap();
    let args = Args::parse();
    init_diagnostics(args.log_file.as_deref());
    if args.plain && args.connect.is_some() && args.listen.is_some() {
        eprintln!("error: --plain cannot listen and connect at once: give --listen or --connect");
        return ExitCode::from(2);
    }
    match &args.command {
        Some(Subcommand::Id) => {
            return match show_identity(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Some(Subcommand::History(history)) => {
            return match show_history(&args, history) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Some(Subcommand::Doctor(doctor)) => {
            return match run_doctor(&args, doctor) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(e),
            }
        }
        Some(Subcommand::Relay(relay)) => {
            return match run_relay(&args, relay) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        None => {}
    }
    // The data directory is locked before any prompt: a second chat on
    // one machine learns at once that it runs on a profile of its own.
    let data = if args.plain {
        None
    } else {
        match lock_data_dir(&args) {
            Ok(data) => Some(data),
            Err(e) => return fail(e),
        }
    };
    let role = match args.role() {
        Some(role) => role,
        None if args.web.is_some() => rust_p2p_chat::app::Role::Listen { port: 0 },
        None if args.json => {
            eprintln!("error: --json asks nothing: give --listen PORT or --connect ADDRESS");
            return ExitCode::from(2);
        }
        None => {
            let echo_newline = !io::stdin().is_terminal();
            match prompt_role(&mut io::stdin().lock(), &mut io::stdout(), echo_newline) {
                Ok(role) => role,
                Err(e @ (PromptError::NoAnswer | PromptError::TooManyAttempts)) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
                Err(e) => return fail(e.into()),
            }
        }
    };
    let (protocol, _lock, dir) = match data {
        None => match plain_history(&args) {
            Ok(history) => (Protocol::Plain(history), None, None),
            Err(e) => return fail(e),
        },
        Some((dir, lock)) => match secure_protocol(&args, &dir) {
            Ok(protocol) => (protocol, Some(lock), Some(dir)),
            Err(e) => return fail(e),
        },
    };
    let options = Options {
        role,
        max_line: args.max_line,
        protocol,
    };
    let front = if args.json {
        Front::Json
    } else if let Some(port) = args.web {
        let Some(dir) = &dir else {
            return fail(anyhow::anyhow!("--web needs the secure mode"));
        };
        match web::Token::for_port(dir, port) {
            Ok(token) => Front::Web {
                port,
                token,
                open: args.open.then(|| dir.clone()),
                uploads: dir.join("uploads"),
                max_upload: args.max_file,
            },
            Err(e) => {
                return fail(anyhow::Error::from(e).context("could not keep the page's token"))
            }
        }
    } else {
        Front::Text
    };
    match run(options, front) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// The data directory: `--data-dir`, or the platform's.
fn data_dir(args: &Args) -> anyhow::Result<std::path::PathBuf> {
    match &args.data_dir {
        Some(dir) => Ok(dir.clone()),
        None => identity::default_data_dir()
            .context("no data directory found for this user: give one with --data-dir DIR"),
    }
}

/// The data directory of a secure chat, and the lock that keeps a second
/// program off it (held until we exit). `--data-dir` is used as given, and
/// refused when in use; the default one, when in use, hands out the next
/// free profile inside it, and says so.
fn lock_data_dir(args: &Args) -> anyhow::Result<(std::path::PathBuf, DirLock)> {
    if let Some(dir) = &args.data_dir {
        return Ok((dir.clone(), DirLock::acquire(dir)?));
    }
    let base = data_dir(args)?;
    let (lock, dir, profile) = DirLock::acquire_profile(&base)?;
    if let Some(n) = profile {
        eprintln!(
            "Another rust-p2p-chat is using {}; this one runs as profile {n}, with its own identity and history ({})",
            base.display(),
            dir.display()
        );
    }
    Ok((dir, lock))
}

/// The secure protocol, on the data directory `dir`.
fn secure_protocol(args: &Args, dir: &std::path::Path) -> anyhow::Result<Protocol> {
    let dir = dir.to_owned();
    let identity = Identity::load_or_create(&dir)?;
    let known = KnownPeers::open(&dir)?;
    let room_keys = RoomKeys::open(&dir)?;
    let history = if args.no_history {
        History::in_memory()?
    } else {
        History::open(&dir)?
    };
    let store = Store::spawn(history).context("could not start the history store")?;
    let room = if args.public {
        rust_p2p_chat::chat::room::public_room(&args.room)
    } else {
        args.room.clone()
    };
    let mut protocol = Protocol::secure(identity, known, room_keys, room, store);
    if let Protocol::Secure(secure) = &mut protocol {
        secure.expect = args.expect.clone();
        secure.nick = args.name.clone();
        secure.mdns = !args.no_mdns;
        // Front ends for programs and the browser show our own lines with
        // their delivery state.
        secure.echo_own = args.json || args.web.is_some();
        secure.also_listen = args.also_listen();
        secure.sync_window = std::time::Duration::from_secs(u64::from(args.sync_window) * 3600);
        secure.files = rust_p2p_chat::app::FileOptions {
            download_dir: args
                .download_dir
                .clone()
                .unwrap_or_else(|| rust_p2p_chat::app::FileOptions::default_dir(&dir)),
            max_file: args.max_file,
            accept_from_trusted: args.accept_files_from_trusted,
        };
        // Relays given once are reserved at on every later run.
        let mut remembered = Relays::open(&dir)?;
        remembered.remember(&args.relay)?;
        secure.relays = remembered
            .list()
            .iter()
            .map(|a| relay_addr(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
    }
    Ok(protocol)
}

/// The plain protocol's history: the data directory's, shared with other
/// plain chats (it has no identity to guard), opened when a chat starts;
/// or none.
fn plain_history(args: &Args) -> anyhow::Result<Option<PlainHistory>> {
    if args.no_history {
        return Ok(None);
    }
    Ok(Some(PlainHistory::Dir(data_dir(args)?)))
}

/// `rust-p2p-chat history`: what the store holds, as text or JSON lines.
fn show_history(args: &Args, options: &HistoryArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let history = History::open_read_only(&data_dir(args)?)?;
    let filter = Filter {
        room: options.room.clone(),
        peer: options.peer.clone(),
    };
    let messages = history.query(&filter, options.limit)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for message in messages {
        if options.json {
            let object = serde_json::json!({
                "id": message.id,
                "conversation": message.conversation,
                "room": message.room,
                "peer": message.peer,
                "author": message.author,
                "name": message.name,
                "ts": rust_p2p_chat::store::rfc3339(message.ts_ms),
                "text": message.text,
                "status": message.status.as_str(),
                "outgoing": message.outgoing,
                "session": format!("{:016x}", message.session),
                "line": message.line,
            });
            // Peer text may hold what a terminal would act on (DEL, C1,
            // bidi controls): those are escaped, not written raw.
            rust_p2p_chat::chat::json::to_writer(&mut out, &object)?;
            writeln!(out)?;
        } else {
            let place = message
                .room
                .as_ref()
                .map_or_else(|| message.conversation.clone(), |room| format!("#{room}"));
            let who = if message.outgoing {
                rust_p2p_chat::chat::event::YOU.to_owned()
            } else {
                message
                    .name
                    .clone()
                    .unwrap_or_else(|| message.author.clone())
            };
            let status = if message.outgoing {
                format!(" [{}]", message.status.as_str())
            } else {
                String::new()
            };
            writeln!(
                out,
                "{} {} {}: {}{status}",
                rust_p2p_chat::store::rfc3339(message.ts_ms),
                rust_p2p_chat::chat::sanitize::inert(&place),
                rust_p2p_chat::chat::sanitize::inert(&who),
                rust_p2p_chat::chat::sanitize::inert(&message.text),
            )?;
        }
    }
    if options.room.is_none() {
        show_transfers(&history, options, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// The file transfers `history` lists after the lines (all, or a peer's).
fn show_transfers(
    history: &History,
    options: &HistoryArgs,
    out: &mut impl io::Write,
) -> anyhow::Result<()> {
    use rust_p2p_chat::chat::sanitize::inert;
    for t in history.transfers()? {
        if options.peer.as_ref().is_some_and(|peer| *peer != t.peer) {
            continue;
        }
        let hash = blake3::Hash::from_bytes(t.root).to_hex();
        let direction = if t.outgoing { "out" } else { "in" };
        if options.json {
            let object = serde_json::json!({
                "transfer": t.number,
                "id": format!("{:016x}", t.id),
                "direction": direction,
                "peer": t.peer,
                "name": t.name,
                "size": t.size,
                "hash": hash.as_str(),
                "state": t.state.as_str(),
                "path": t.path,
                "moved": t.moved,
                "ts": rust_p2p_chat::store::rfc3339(t.ts_ms),
            });
            rust_p2p_chat::chat::json::to_writer(&mut *out, &object)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{} file {} {} {} \"{}\" ({} bytes, BLAKE3 {hash}) {}",
                rust_p2p_chat::store::rfc3339(t.ts_ms),
                t.number,
                if t.outgoing { "to" } else { "from" },
                t.peer,
                inert(&t.name),
                t.size,
                t.state.as_str(),
            )?;
        }
    }
    Ok(())
}

/// `rust-p2p-chat id`.
fn show_identity(args: &Args) -> anyhow::Result<()> {
    let identity = Identity::load_or_create(&data_dir(args)?)?;
    println!("Peer ID: {}", identity.peer_id());
    println!("Fingerprint: {}", identity.fingerprint());
    Ok(())
}

/// A relay's address as `--relay` takes it: a multiaddr ending in the
/// relay's peer ID.
fn relay_addr(text: &str) -> anyhow::Result<libp2p::Multiaddr> {
    let addr = rust_p2p_chat::net::parse_multiaddr(text)?;
    if rust_p2p_chat::net::peer_in(&addr).is_none() {
        anyhow::bail!(
            "--relay {text}: a relay's address ends in /p2p/RELAY_ID, as `rust-p2p-chat relay` prints it"
        );
    }
    Ok(addr)
}

/// `rust-p2p-chat doctor`: how reachable this machine is, in plain
/// words; true when reachable directly or through a relay.
fn run_doctor(args: &Args, doctor: &DoctorArgs) -> anyhow::Result<bool> {
    let mut given = doctor.relays.clone();
    if let Ok(dir) = data_dir(args) {
        if let Ok(remembered) = Relays::open(&dir) {
            for relay in remembered.list() {
                if !given.contains(relay) {
                    given.push(relay.clone());
                }
            }
        }
    }
    let relays = given
        .iter()
        .map(|a| relay_addr(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    println!(
        "Finding out how peers elsewhere can reach this machine (up to {} s)...",
        doctor.seconds
    );
    let findings = runtime.block_on(rust_p2p_chat::net::doctor::diagnose(
        &relays,
        std::time::Duration::from_secs(doctor.seconds),
    ))?;
    let list = |addrs: &[libp2p::Multiaddr]| {
        addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("Listening here on: {}", list(&findings.listening));
    if relays.is_empty() {
        println!("No relay to test with: whether peers elsewhere can reach this machine cannot be found out from here.");
    }
    if !findings.observed.is_empty() {
        println!("Relays see this machine at: {}", list(&findings.observed));
    }
    for addr in &findings.reachable {
        println!("Reachable directly at {addr}: a relay dialled it back.");
    }
    for (addr, cause) in &findings.unreachable {
        println!("Not reachable directly at {addr}: {cause} (behind a NAT or a firewall).");
    }
    if !relays.is_empty() && findings.reachable.is_empty() && findings.unreachable.is_empty() {
        println!(
            "Not known to be reachable directly: no relay could dial this machine back within {} s (a NAT or a firewall drops what it did not ask for).",
            doctor.seconds
        );
    }
    for addr in &findings.reserved {
        println!("Reachable through a relay at: {addr}");
    }
    for (relay, cause) in &findings.relay_errors {
        println!("Relay {relay} could not be used: {cause}");
    }
    match &findings.mdns {
        Ok(()) => println!("LAN discovery (mDNS) can run here."),
        Err(cause) => println!("LAN discovery (mDNS) cannot run here: {cause}."),
    }
    let reachable = findings.reachable();
    if !findings.reachable.is_empty() {
        println!("Verdict: reachable directly. Peers can connect to this machine's address.");
    } else if !findings.reserved.is_empty() {
        println!("Verdict: reachable through a relay. Start the chat with --relay (it is remembered), and invites carry the relay's address; two peers behind easy NATs then go direct by hole punching, behind a symmetric NAT they stay relayed.");
    } else {
        println!("Verdict: not reachable from elsewhere. Either forward a TCP port to this machine and start with --listen PORT, or run `rust-p2p-chat relay` on a machine with a public address and start the chat with --relay ADDRESS.");
    }
    println!("More detail: RUST_LOG=libp2p=debug rust-p2p-chat doctor ...");
    Ok(reachable)
}

/// `rust-p2p-chat relay`: a relay node with a key of its own, until
/// killed.
fn run_relay(args: &Args, relay: &RelayArgs) -> anyhow::Result<()> {
    use rust_p2p_chat::net::relay_node::{self, RelayConfig};
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => data_dir(args)?.join("relay"),
    };
    let _lock = DirLock::acquire(&dir)?;
    let identity = Identity::load_or_create(&dir)?;
    let external = relay
        .external
        .iter()
        .map(|a| rust_p2p_chat::net::parse_multiaddr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let config = RelayConfig {
        port: relay.listen,
        external,
        max_reservations: relay.max_reservations,
        max_circuits: relay.max_circuits,
        max_circuits_per_peer: relay.max_circuits_per_peer,
        circuit_duration: std::time::Duration::from_secs(relay.circuit_minutes * 60),
        circuit_bytes: relay.circuit_mib * 1024 * 1024,
        reservations_per_ip: relay.reservations_per_ip,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    println!("Relay identity: {}", identity.peer_id());
    runtime.block_on(relay_node::run_relay(
        identity.keypair().clone(),
        config,
        |addr| {
            use std::io::Write as _;
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "Relay listening on: {addr}");
            let _ = out.flush();
        },
    ))?;
    Ok(())
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(1)
}

/// Which front end runs the chat.
enum Front {
    /// A terminal with a line editor, or pipes.
    Text,
    /// JSON lines on stdin and stdout.
    Json,
    /// A page in the browser.
    Web {
        port: u16,
        token: web::Token,
        /// With `--open`: the data directory, where the page's opener is
        /// written.
        open: Option<std::path::PathBuf>,
        /// Where files picked in the page are written.
        uploads: std::path::PathBuf,
        /// The largest of them.
        max_upload: u64,
    },
}

/// Opens the page in the default browser, without waiting for it: through
/// a file in `dir` that leads on to `link`, so the token is on no command
/// line.
fn open_in_browser(dir: &std::path::Path, link: &str) {
    let page = match web::opener(dir, link) {
        Ok(page) => page,
        Err(e) => {
            eprintln!("warning: could not open a browser ({e}); open the link above");
            return;
        }
    };
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        // Reaped on a thread of its own: the opener may outlive a moment.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(e) => {
            eprintln!("warning: could not open a browser ({opener}: {e}); open the link above")
        }
    }
}

fn run(options: Options, front: Front) -> anyhow::Result<()> {
    let json = matches!(front, Front::Json);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let interactive = !json && io::stdin().is_terminal() && io::stdout().is_terminal();
    let (shutdown, shutdown_rx) = Shutdown::new();
    let (commands_tx, commands_rx) = mpsc::channel(app::COMMAND_QUEUE);
    let (events_tx, events_rx) = mpsc::channel(app::EVENT_QUEUE);

    let result = runtime.block_on(async {
        let signals = spawn_signal_handler(shutdown.clone())?;
        let result = async {
            if let Front::Web {
                port,
                token,
                open,
                uploads,
                max_upload,
            } = front
            {
                let listener = web::bind(port)
                    .await
                    .with_context(|| format!("could not serve the page on 127.0.0.1:{port}"))?;
                let link = web::url(listener.local_addr()?.port(), &token);
                println!("Web UI: {link}");
                println!("Open it in a browser on this machine; Ctrl+C ends the chat.");
                io::stdout().flush()?;
                if let Some(dir) = open {
                    open_in_browser(&dir, &link);
                }
                let page = web::Options {
                    max_line: options.max_line,
                    uploads,
                    max_upload,
                };
                let app = app::run(options, commands_rx, events_tx, shutdown_rx);
                web::run(app, listener, token, page, commands_tx, events_rx)
                    .await
                    .context("the web server failed")?
                    .map_err(anyhow::Error::from)
            } else if interactive {
                let app = app::run(options, commands_rx, events_tx, shutdown_rx);
                let style = Style::detect(true);
                terminal::run(app, commands_tx, events_rx, shutdown, style)
                    .await
                    .context("terminal failed")?
                    .map_err(anyhow::Error::from)
            } else {
                let (input, output) = if json {
                    let input =
                        json::spawn_input(options.max_line, commands_tx, events_tx.downgrade())
                            .context("could not start the input thread")?;
                    let output = json::spawn_output(events_rx, shutdown)
                        .context("could not start the output thread")?;
                    (input, output)
                } else {
                    let style = Style::detect(io::stdout().is_terminal());
                    let how = pipe::Input {
                        max_line: options.max_line,
                        piece: options.longest_sent(),
                        commands: !options.protocol.is_plain(),
                    };
                    let input = pipe::spawn_input(how, commands_tx, events_tx.downgrade())
                        .context("could not start the input thread")?;
                    let output = pipe::spawn_output(events_rx, style, shutdown)
                        .context("could not start the output thread")?;
                    (input, output)
                };
                let result = app::run(options, commands_rx, events_tx, shutdown_rx).await;
                // The app dropped its event sender: the output thread drains
                // what is left and ends.
                let _ = output.join();
                // The input thread ends at end of input, or at its next read
                // now that the app is gone; one still blocked in a read of
                // stdin cannot be woken (see `pipe::spawn_input`), so it is
                // joined only if it has ended, and otherwise ends with the
                // process, which holds nothing it would lose.
                if input.is_finished() {
                    let _ = input.join();
                }
                result.map_err(anyhow::Error::from)
            }
        }
        .await;
        // The app is over: nothing is left for a signal to stop.
        signals.abort();
        result
    });
    // The app is over; whatever is left on the runtime is not waited for.
    runtime.shutdown_background();
    result
}

/// Ctrl+C (outside the line editor, which handles its own) and SIGTERM ask
/// for a clean shutdown, until the returned task is aborted.
fn spawn_signal_handler(shutdown: Shutdown) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("could not handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("could not handle SIGTERM")?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        shutdown.trigger();
    }))
}

/// Diagnostics (ours and libp2p's) go to stderr when `RUST_LOG` asks for
/// them, as in `RUST_LOG=libp2p_gossipsub=debug`; without it, nothing is
/// logged and the chat's output stays the chat's.
/// A log file is appended to, and readable by the user alone when it is
/// created (it names peers and addresses).
fn log_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn init_diagnostics(log_file: Option<&std::path::Path>) {
    let filter = match (
        tracing_subscriber::EnvFilter::try_from_default_env(),
        log_file,
    ) {
        (Ok(filter), _) => filter,
        (Err(_), Some(_)) => tracing_subscriber::EnvFilter::new("info"),
        (Err(_), None) => return,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match log_file {
        Some(path) => match log_options().open(path) {
            Ok(file) => {
                let _ = builder.with_writer(std::sync::Mutex::new(file)).try_init();
            }
            Err(e) => eprintln!("warning: --log-file {}: {e}", path.display()),
        },
        None => {
            let _ = builder.with_writer(io::stderr).try_init();
        }
    }
}
