//! The command line: flags (clap) and the classic interactive prompts.
//!
//! The prompts read answers as lines from any `BufRead`, so they work the
//! same on a terminal and on a pipe (`printf '\n9001\n' | rust-p2p-chat`),
//! and they are tested without a terminal. An invalid answer gets a
//! one-line explanation and the same question again; so does a port that
//! cannot be listened on, which is tried at the prompt (where the user can
//! still pick another) rather than found later, when it would end the
//! program.

use std::io::{self, BufRead, Write};
use std::net::{Ipv4Addr, TcpListener};

use clap::Parser;

use crate::app::Role;
use std::path::PathBuf;

use crate::chat::address::{parse_listen_port, DialTarget, DEFAULT_PORT};
use crate::chat::describe_io;
use crate::chat::line::DEFAULT_MAX_LINE;

/// Longest prompt answer read; the rest of a longer line is skipped.
const MAX_ANSWER: usize = 1024;

/// Invalid answers tolerated before the prompts give up (a script feeding
/// wrong answers would otherwise loop forever).
const MAX_ATTEMPTS: usize = 20;

/// A serverless peer-to-peer chat: two peers talk directly, end-to-end
/// encrypted (or in plain text with --plain).
///
/// With no flags it asks whether to listen or whom to connect to.
#[derive(Debug, Parser)]
#[command(name = "rust-p2p-chat", version, about)]
pub struct Args {
    /// What to do instead of chatting.
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// Listen for peers on 0.0.0.0:PORT (default 8080; 0 picks a free
    /// port). With --connect (secure mode), a joining peer also accepts
    /// others.
    #[arg(
        short,
        long,
        value_name = "PORT",
        num_args = 0..=1,
        default_missing_value = "8080"
    )]
    pub listen: Option<u16>,

    /// Connect to a peer at `HOST:PORT` (IPv4, `[IPv6]:PORT` or a host
    /// name), or at a multiaddr such as `/ip4/1.2.3.4/tcp/9000/p2p/PEER_ID`.
    #[arg(
        short,
        long,
        value_name = "HOST:PORT",
        help = "Connect to a peer at HOST:PORT (IPv4, [IPv6] or a host name), or at a multiaddr such as /ip4/1.2.3.4/tcp/9000/p2p/PEER_ID"
    )]
    pub connect: Option<DialTarget>,

    /// Join a private room with an invite (`Invite: CHAT...`, from a
    /// member's /invite): its room, its key and where to reach the member.
    #[arg(
        long,
        value_name = "TICKET",
        conflicts_with_all = ["connect", "plain", "room", "public"],
        value_parser = parse_ticket
    )]
    pub join: Option<DialTarget>,

    /// Use the plain protocol: one UTF-8 line per message, unencrypted, as
    /// `nc` and older programs speak it.
    #[arg(long)]
    pub plain: bool,

    /// Speak JSON on stdin and stdout, one object per line, for programs
    /// (see docs/api.md): no prompts, no colour, no line editor. Needs
    /// --listen or --connect.
    #[arg(long, conflicts_with = "web")]
    pub json: bool,

    /// Chat in the browser: serve the chat's page on 127.0.0.1:PORT (0 or
    /// nothing: a free port) and print its link. Without --listen or
    /// --connect, listens on a free port.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "0",
          conflicts_with = "plain")]
    pub web: Option<u16>,

    /// With --web, open the page in the default browser.
    #[arg(long, requires = "web")]
    pub open: bool,

    /// Chat only with this peer (peer ID or fingerprint); any other is
    /// refused.
    #[arg(long, value_name = "PEER_ID_OR_FINGERPRINT", conflicts_with = "plain")]
    pub expect: Option<String>,

    /// The room to join (secure mode).
    #[arg(long, value_name = "NAME", default_value = crate::chat::room::DEFAULT_ROOM,
          conflicts_with = "plain", value_parser = parse_room)]
    pub room: String,

    /// Your nick, shown to others (secure mode).
    #[arg(long, value_name = "NICK", conflicts_with = "plain", value_parser = parse_nick)]
    pub name: Option<String>,

    /// A relay to be reachable through, as it prints it
    /// (`/ip4/ADDR/tcp/PORT/p2p/RELAY_ID`): peers that cannot dial this
    /// machine (it is behind a NAT) reach it there. Repeatable; remembered
    /// in the data directory, so later runs use it without the flag.
    #[arg(long, value_name = "MULTIADDR", conflicts_with = "plain", value_parser = parse_relay)]
    pub relay: Vec<String>,

    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,

    /// Where files you accept land (default: your download folder's
    /// `rust-p2p-chat` folder).
    #[arg(long, value_name = "DIR", conflicts_with = "plain")]
    pub download_dir: Option<PathBuf>,

    /// The largest file accepted, in bytes or with a unit (K, M, G, T:
    /// powers of 1024); larger offers are refused.
    #[arg(long, value_name = "SIZE", default_value = "4G", conflicts_with = "plain",
          value_parser = parse_size)]
    pub max_file: u64,

    /// Accept files from peers you have /trust-ed without asking (for
    /// scripts).
    #[arg(long, conflicts_with = "plain")]
    pub accept_files_from_trusted: bool,

    /// Make the room public: peers on the LAN find it (mDNS) and may join.
    /// Without it the room is private: only peers that dial a member's
    /// address join it.
    #[arg(long, conflicts_with = "plain")]
    pub public: bool,

    /// Keep no history on disk: messages live in memory for this run only
    /// (the newest 32 MiB of text).
    #[arg(long)]
    pub no_history: bool,

    /// How far back, in hours, room members reconcile what they hold when
    /// they meet again.
    #[arg(long, value_name = "HOURS", default_value_t = 168, value_parser = clap::value_parser!(u32).range(1..=87_600))]
    pub sync_window: u32,

    /// Where the identity key, known peers and message history are kept
    /// (default: the platform's data directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Longest line accepted from the peer, and sent to it as one, in
    /// bytes; a longer line of ours goes in pieces of this size (in a
    /// room, of 128 KiB at most).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE, value_parser = parse_max_line)]
    pub max_line: usize,

    /// Write diagnostics (what the program and its network library do;
    /// never message text or keys) to this file, at the level RUST_LOG
    /// says (`info` when unset).
    #[arg(long, value_name = "PATH", global = true)]
    pub log_file: Option<PathBuf>,
}

impl Args {
    /// The role the flags ask for, if any. With both `--connect` and
    /// `--listen`, the role is to connect; [`Args::also_listen`] says where
    /// to listen as well.
    pub fn role(&self) -> Option<Role> {
        match (self.connect.as_ref().or(self.join.as_ref()), self.listen) {
            (Some(addr), _) => Some(Role::Connect(addr.clone())),
            (None, Some(port)) => Some(Role::Listen { port }),
            (None, None) => None,
        }
    }

    /// The port to listen on besides connecting.
    pub fn also_listen(&self) -> Option<u16> {
        self.connect
            .as_ref()
            .or(self.join.as_ref())
            .and(self.listen)
    }
}

/// Subcommands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Subcommand {
    /// Print our peer ID and fingerprint (creating the identity on first
    /// use) and exit.
    Id,
    /// Print the stored history and exit (works while a chat runs).
    History(HistoryArgs),
    /// Run a relay node, through which peers behind NATs meet (its data
    /// directory, for its key, is the chat's `relay/` unless --data-dir).
    Relay(RelayArgs),
    /// Find out how reachable this machine is, and say what to do (exit 0
    /// when reachable directly or through a relay, 1 when not).
    Doctor(DoctorArgs),
}

/// `rust-p2p-chat doctor`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DoctorArgs {
    /// A relay to test with (besides those the chat remembers), as it
    /// prints it: /ip4/ADDR/tcp/PORT/p2p/RELAY_ID. Repeatable.
    #[arg(long = "relay", value_name = "MULTIADDR", value_parser = parse_relay)]
    pub relays: Vec<String>,
    /// Seconds to spend finding out.
    #[arg(long, value_name = "SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(3..=300))]
    pub seconds: u64,
}

/// `rust-p2p-chat relay`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RelayArgs {
    /// The TCP port to listen on, on every interface (0 picks a free one).
    #[arg(short, long, value_name = "PORT", default_value_t = 4001)]
    pub listen: u16,
    /// An address peers reach this relay at, beside those it listens on
    /// (a public address with a forwarded port), as a multiaddr such as
    /// /ip4/203.0.113.7/tcp/4001; repeatable.
    #[arg(long = "external-addr", value_name = "MULTIADDR")]
    pub external: Vec<String>,
    /// Peers that may hold a reservation at once.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_reservations: usize,
    /// Circuits (relayed chats) open at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_circuits: usize,
    /// Circuits per peer at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_circuits_per_peer: usize,
    /// Minutes a circuit lasts (the peers then open another).
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub circuit_minutes: u64,
    /// MiB a circuit carries before it is closed (and opened again).
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub circuit_mib: u64,
    /// Reservations one IP address may make at once, and again each minute
    /// after (peers behind one NAT share an address).
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub reservations_per_ip: u32,
}

/// `rust-p2p-chat history`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct HistoryArgs {
    /// Only this room.
    #[arg(long, value_name = "NAME", conflicts_with = "peer")]
    pub room: Option<String>,
    /// Only messages with this peer (its peer ID, or HOST:PORT in plain mode).
    #[arg(long, value_name = "ID")]
    pub peer: Option<String>,
    /// The last N messages.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// A size as typed: bytes, or a number and K, M, G or T (powers of 1024).
///
/// ```
/// use rust_p2p_chat::cli::parse_size;
///
/// assert_eq!(parse_size("4G"), Ok(4 << 30));
/// assert_eq!(parse_size("1000"), Ok(1000));
/// assert!(parse_size("4X").is_err());
/// ```
pub fn parse_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let (number, shift) = match value.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{value}: the unit is K, M, G or T")),
            };
            (&value[..at], shift)
        }
        _ => (value, 0),
    };
    let number: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{value}: not a size (e.g. 4G, 500M, 1000000)"))?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{value}: too large"))
}

fn parse_relay(value: &str) -> Result<String, String> {
    use libp2p::multiaddr::{Multiaddr, Protocol};
    let addr: Multiaddr = value.parse().map_err(|e| format!("not a multiaddr: {e}"))?;
    let has = |want: fn(&Protocol) -> bool| addr.iter().any(|p| want(&p));
    if !has(|p| matches!(p, Protocol::Tcp(_)))
        || !matches!(addr.iter().last(), Some(Protocol::P2p(_)))
    {
        return Err(
            "a relay's address is /ip4/ADDR/tcp/PORT/p2p/RELAY_ID, as `rust-p2p-chat relay` prints it"
                .into(),
        );
    }
    Ok(value.to_owned())
}

fn parse_ticket(value: &str) -> Result<DialTarget, String> {
    crate::chat::ticket::Ticket::decode(value)
        .map(|t| DialTarget::Invite(Box::new(t)))
        .map_err(|e| e.to_string())
}

fn parse_room(value: &str) -> Result<String, String> {
    crate::chat::room::check_room(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_nick(value: &str) -> Result<String, String> {
    crate::chat::room::check_nick(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

/// The largest `--max-line` accepted: 1 GiB.
const MAX_LINE_LIMIT: usize = 1 << 30;

fn parse_max_line(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        // At least one character of UTF-8 (4 bytes at most), so that a
        // longer line is cut in pieces between characters.
        Ok(n) if (4..=MAX_LINE_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of bytes from 4 to {MAX_LINE_LIMIT}"
        )),
    }
}

/// Why the prompts did not produce a role.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// Input ended before a valid answer was given.
    #[error("no answer at the prompt: standard input ended")]
    NoAnswer,
    /// Too many invalid answers in a row.
    #[error("no valid answer after {MAX_ATTEMPTS} attempts")]
    TooManyAttempts,
    /// The terminal could not be read or written. The cause is said in
    /// the message and not given as the `source()`, so a printer that
    /// follows the chain of sources does not say it twice.
    #[error("could not use the terminal: {}", describe_io(.0))]
    Io(io::Error),
}

impl From<io::Error> for PromptError {
    fn from(error: io::Error) -> Self {
        PromptError::Io(error)
    }
}

/// Shows the banner and asks whether to listen or connect. A port to
/// listen on is checked by binding it on 0.0.0.0 (see [`can_listen`]); one
/// that is taken is explained and asked again.
///
/// When `echo_newline` is set (input is not a terminal, so the answer is not
/// echoed), a newline follows each answer so later lines start on their own.
///
/// ```
/// use rust_p2p_chat::{app::Role, cli::prompt_role};
///
/// let mut input = &b"\n0\n"[..];
/// let mut output = Vec::new();
/// let role = prompt_role(&mut input, &mut output, true)?;
/// assert_eq!(role, Role::Listen { port: 0 });
/// # Ok::<(), rust_p2p_chat::cli::PromptError>(())
/// ```
pub fn prompt_role(
    input: &mut impl BufRead,
    out: &mut impl Write,
    echo_newline: bool,
) -> Result<Role, PromptError> {
    prompt_role_with(input, out, echo_newline, can_listen)
}

/// [`prompt_role`], with `can_listen` deciding whether a port may be
/// listened on (an error is explained and the port asked again).
///
/// ```
/// use std::io;
/// use rust_p2p_chat::{app::Role, cli::prompt_role_with};
///
/// let taken = |port| match port {
///     9000 => Err(io::Error::from(io::ErrorKind::AddrInUse)),
///     _ => Ok(()),
/// };
/// let mut input = &b"\n9000\n9001\n"[..];
/// let mut output = Vec::new();
/// let role = prompt_role_with(&mut input, &mut output, true, taken)?;
/// assert_eq!(role, Role::Listen { port: 9001 });
/// assert!(String::from_utf8_lossy(&output).contains("port 9000 is in use"));
/// # Ok::<(), rust_p2p_chat::cli::PromptError>(())
/// ```
pub fn prompt_role_with(
    input: &mut impl BufRead,
    out: &mut impl Write,
    echo_newline: bool,
    can_listen: impl Fn(u16) -> io::Result<()>,
) -> Result<Role, PromptError> {
    writeln!(out, "P2P Chat Application")?;
    writeln!(out, "Usage:")?;
    writeln!(
        out,
        "  1. Start as server: just press Enter when prompted for address"
    )?;
    writeln!(
        out,
        "  2. Connect to peer: enter address as ip:port (e.g., 127.0.0.1:8080)"
    )?;
    writeln!(out)?;
    let answer = ask(
        input,
        out,
        echo_newline,
        "Enter peer address (or press Enter to start as server): ",
        |answer| {
            if answer.trim().is_empty() {
                Ok(None)
            } else {
                answer.parse::<DialTarget>().map(Some)
            }
        },
    )?;
    if let Some(addr) = answer {
        return Ok(Role::Connect(addr));
    }
    let question = format!("Enter port to listen on (default {DEFAULT_PORT}): ");
    let port = ask(input, out, echo_newline, &question, |answer| {
        let port = parse_listen_port(answer).map_err(|e| e.to_string())?;
        can_listen(port).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => {
                format!("port {port} is in use: choose another, or 0 for any free port")
            }
            _ => format!("cannot listen on port {port}: {}", describe_io(&e)),
        })?;
        Ok::<_, String>(port)
    })?;
    Ok(Role::Listen { port })
}

/// Whether `port` can be listened on: binds it on 0.0.0.0, as the chat
/// will, and lets it go at once. Port 0 (any free port) always can. The
/// port may still be taken between this check and the chat's own bind;
/// that rare case ends the program with the bind error.
pub fn can_listen(port: u16) -> io::Result<()> {
    if port == 0 {
        return Ok(());
    }
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map(drop)
}

fn ask<T, E: std::fmt::Display>(
    input: &mut impl BufRead,
    out: &mut impl Write,
    echo_newline: bool,
    question: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, PromptError> {
    for _ in 0..MAX_ATTEMPTS {
        write!(out, "{question}")?;
        out.flush()?;
        let answer = read_answer(input)?.ok_or(PromptError::NoAnswer)?;
        if echo_newline {
            writeln!(out)?;
        }
        match parse(&answer) {
            Ok(value) => return Ok(value),
            Err(e) => writeln!(out, "{e}")?,
        }
    }
    Err(PromptError::TooManyAttempts)
}

/// Reads one answer line, at most [`MAX_ANSWER`] bytes of it; `None` at EOF.
fn read_answer(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = io::Read::take(&mut *input, MAX_ANSWER as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && n == MAX_ANSWER {
        // Skip the rest of an overlong line; the answer will be rejected.
        let mut rest = Vec::new();
        input.read_until(b'\n', &mut rest)?;
    }
    Ok(Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_error_says_its_cause_once() {
        let error = PromptError::from(io::Error::from_raw_os_error(5));
        assert!(std::error::Error::source(&error).is_none(), "{error}");
        assert_eq!(
            error.to_string(),
            "could not use the terminal: Input/output error"
        );
    }

    /// The prompts, with every port free.
    fn run(input: &str) -> (Result<Role, PromptError>, String) {
        run_checked(input, |_| Ok(()))
    }

    /// The prompts, with `can_listen` saying which ports are free.
    fn run_checked(
        input: &str,
        can_listen: impl Fn(u16) -> io::Result<()>,
    ) -> (Result<Role, PromptError>, String) {
        let mut input = input.as_bytes();
        let mut out = Vec::new();
        let role = prompt_role_with(&mut input, &mut out, false, can_listen);
        (role, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_port_that_cannot_be_listened_on_is_explained_and_asked_again() {
        let (role, out) = run_checked("\n9000\n80\n9001\n", |port| match port {
            9000 => Err(io::ErrorKind::AddrInUse.into()),
            80 => Err(io::ErrorKind::PermissionDenied.into()),
            _ => Ok(()),
        });
        assert_eq!(role.unwrap(), Role::Listen { port: 9001 });
        assert!(out.contains("port 9000 is in use: "), "{out}");
        assert!(
            out.contains("cannot listen on port 80: permission denied"),
            "{out}"
        );
        assert_eq!(out.matches("Enter port to listen on").count(), 3);
    }

    #[test]
    fn a_port_in_use_here_is_asked_again() {
        let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let busy = holder.local_addr().unwrap().port();
        let input = format!("\n{busy}\n0\n");
        let mut out = Vec::new();
        let role = prompt_role(&mut input.as_bytes(), &mut out, false);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(role.unwrap(), Role::Listen { port: 0 });
        assert!(out.contains(&format!("port {busy} is in use: ")), "{out}");
    }

    #[test]
    fn banner_and_first_prompt_are_exact() {
        let (_, out) = run("");
        assert_eq!(
            out,
            "P2P Chat Application\nUsage:\n  1. Start as server: just press Enter when prompted for address\n  2. Connect to peer: enter address as ip:port (e.g., 127.0.0.1:8080)\n\nEnter peer address (or press Enter to start as server): "
        );
    }

    #[test]
    fn enter_then_enter_listens_on_8080() {
        let (role, out) = run("\n\n");
        assert_eq!(role.unwrap(), Role::Listen { port: 8080 });
        assert!(out.ends_with("Enter port to listen on (default 8080): "));
    }

    #[test]
    fn address_answer_connects() {
        let (role, _) = run("127.0.0.1:9000\r\n");
        assert_eq!(
            role.unwrap(),
            Role::Connect("127.0.0.1:9000".parse().unwrap())
        );
    }

    #[test]
    fn invalid_answers_are_explained_and_asked_again() {
        let (role, out) = run("127.0.0.1:99999\nlocalhost\n\nport\n7000\n");
        assert_eq!(role.unwrap(), Role::Listen { port: 7000 });
        assert!(out.contains("invalid port '99999'"));
        assert!(out.contains("'localhost' has no port"));
        assert!(out.contains("invalid port 'port'"));
        assert_eq!(out.matches("Enter peer address").count(), 3);
        assert_eq!(out.matches("Enter port to listen on").count(), 2);
    }

    #[test]
    fn eof_at_a_prompt_is_an_error() {
        let (role, _) = run("\n");
        assert!(matches!(role, Err(PromptError::NoAnswer)));
    }

    #[test]
    fn endless_wrong_answers_give_up() {
        let (role, _) = run(&"nonsense\n".repeat(100));
        assert!(matches!(role, Err(PromptError::TooManyAttempts)));
    }

    #[test]
    fn overlong_answer_is_rejected_and_skipped() {
        let input = format!("{}\n127.0.0.1:1\n", "x".repeat(5000));
        let (role, _) = run(&input);
        assert_eq!(role.unwrap(), Role::Connect("127.0.0.1:1".parse().unwrap()));
    }

    #[test]
    fn data_dir_help_names_everything_kept_there() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            help.contains("identity key, known peers and message history"),
            "{help}"
        );
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from(["x", "--listen"]).unwrap();
        assert_eq!(args.role(), Some(Role::Listen { port: 8080 }));
        let args = Args::try_parse_from(["x", "-l", "0", "--plain"]).unwrap();
        assert_eq!(args.role(), Some(Role::Listen { port: 0 }));
        let args = Args::try_parse_from(["x", "-c", "[::1]:5"]).unwrap();
        assert_eq!(args.role(), Some(Role::Connect("[::1]:5".parse().unwrap())));
        assert!(Args::try_parse_from(["x", "-c", "nowhere"]).is_err());
        let both = Args::try_parse_from(["x", "-l", "1", "-c", "h:1"]).unwrap();
        assert_eq!(both.role(), Some(Role::Connect("h:1".parse().unwrap())));
        assert_eq!(both.also_listen(), Some(1));
        assert!(Args::try_parse_from(["x", "--room", "bad name"]).is_err());
        assert!(Args::try_parse_from(["x", "--name", "Peer-1234"]).is_err());
        assert!(Args::try_parse_from(["x", "--plain", "--room", "r"]).is_err());
        assert!(Args::try_parse_from(["x", "--max-line", "0"]).is_err());
    }
}
