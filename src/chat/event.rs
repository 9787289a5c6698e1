//! What flows between a front end and the app: [`Command`]s in, [`Event`]s out.
//!
//! A front end (line mode, pipes, later a TUI or JSON) only speaks these two
//! types, which is what makes it replaceable. The words shown to a user live
//! here too, in [`Event::render`], so every front end says the same thing
//! and the classic mode's exact output lines are defined in one place.

use std::fmt;
use std::net::SocketAddr;

use super::line::Lines;
use super::sanitize::{push_inert, Inert};

/// What the user asks the app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send one line of text to the peer.
    Send(String),
    /// Send lines to the peer, in order: what a read of a pipe held, in
    /// one value rather than a command per line.
    SendLines(Lines),
    /// Lines said in a joined room, which need not be the current one,
    /// as they are: none is taken for a command (`--json`, `--web`).
    Say {
        /// The room.
        room: String,
        /// The lines.
        lines: Vec<String>,
    },
    /// A page of a room's history, for a program (`--json`, `--web`):
    /// answered by an [`Event::History`] with its [`HistoryPage`].
    History {
        /// The room (the current one by default).
        room: Option<String>,
        /// The lines just before this line's id; the latest when `None`.
        before: Option<String>,
        /// How many lines at most.
        limit: usize,
    },
}

impl Command {
    /// The lines it asks to send, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Command::Send(line) => (Some(line.as_str()), None),
            Command::SendLines(lines) => (None, Some(lines.iter())),
            Command::History { .. } | Command::Say { .. } => (None, None),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// What an engine read from the peer: the same for every protocol, so the
/// app runs a chat the same way over any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// One message, decoded lossily as UTF-8. Not yet made safe for a
    /// terminal: see [`crate::chat::sanitize`].
    Message(String),
    /// A message over the limit was dropped; reported once, when the limit
    /// was crossed.
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A frame that could not be decoded was dropped (secure protocol).
    Malformed,
    /// The peer said it is busy in another chat (secure protocol).
    Busy,
    /// The peer closed the connection or it broke off. Returned again on
    /// every later call.
    Disconnected,
}

/// Something that happened, for a front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The listener is bound.
    Listening {
        /// The address bound, with the real port when 0 was asked for.
        addr: SocketAddr,
    },
    /// The listener waits for a peer.
    Waiting,
    /// A connection attempt started.
    Connecting {
        /// The address as the user gave it.
        to: String,
    },
    /// Our connection attempt succeeded.
    Connected,
    /// A peer connected to our listener.
    PeerConnected {
        /// The peer's address.
        from: SocketAddr,
    },
    /// A peer reached us through a relay we hold a reservation at.
    PeerConnectedVia {
        /// The relay's peer ID.
        relay: String,
    },
    /// The chat is ready for typing.
    Ready,
    /// The peer sent a line. The text is as received (decoded lossily);
    /// it is made inert only when rendered.
    Message {
        /// The line, without its newline.
        text: String,
    },
    /// Several lines from the peer that arrived together, in order: the
    /// same as one [`Event::Message`] per line, without the cost of an
    /// event each when thousands arrive at once.
    Messages {
        /// The lines, oldest first, without newlines.
        texts: Vec<String>,
    },
    /// The peer went away, cleanly or not.
    PeerDisconnected,
    /// An invite into a private room (`/invite`), to give to someone.
    Invite {
        /// The ticket, as `--join` and the address prompt take it.
        ticket: String,
    },
    /// Our own identity, shown when a secure engine starts.
    OwnIdentity {
        /// Our peer ID.
        peer_id: String,
        /// Our fingerprint.
        fingerprint: String,
    },
    /// Who the peer is, proven by the secure handshake.
    PeerIdentity {
        /// The peer's ID.
        peer_id: String,
        /// The peer's fingerprint, to read out and compare.
        fingerprint: String,
        /// Whether the user marked this peer as verified earlier.
        verified: bool,
    },
    /// The chat is end-to-end encrypted.
    Encrypted,
    /// The identity behind an address (or name) the user trusted changed.
    /// Shown before anything that peer says.
    KeyChanged {
        /// The address or name.
        label: String,
        /// The peer ID trusted for it.
        previous: String,
        /// The peer ID now answering.
        now: String,
    },
    /// The safety number of this chat, for `/verify`.
    SafetyNumber {
        /// 60 digits in groups of five.
        number: String,
        /// The peer it is shared with.
        peer_id: String,
    },
    /// The peer was marked as verified (`/trust`).
    Trusted {
        /// The peer's ID.
        peer_id: String,
    },
    /// Help or a hint for the commands typed in a chat.
    Help(String),
    /// Lines from a room member, in the order its author sent them.
    Lines {
        /// How the author is shown (`Peer`, `Peer-XXXX`, a nick).
        from: String,
        /// The room, when it is not the current one.
        room: Option<String>,
        /// The lines.
        texts: Vec<String>,
        /// Who wrote them and where they sit in the author's stream: what
        /// a program reading the chat (`--json`) needs besides.
        origin: Option<Origin>,
    },
    /// Our lines of a room numbered below `through` in `session` are held
    /// by a member: for front ends that show our lines' state (see
    /// [`Event::Own`]).
    DeliveredThrough {
        /// The room.
        room: String,
        /// Our session.
        session: u64,
        /// The first line not known held.
        through: u64,
    },
    /// Lines kept from before, shown on start and by `/history`, marked
    /// so they are not taken for live ones.
    History {
        /// What is shown, oldest first.
        lines: Vec<HistoryLine>,
        /// Which page of which room, when a program asked for one.
        page: Option<HistoryPage>,
    },
    /// Lines we said in a room, as they go out: for front ends that show
    /// our own lines with their delivery state (`--json`, `--web`); a
    /// terminal shows them as they are typed instead.
    Own {
        /// The room, our peer ID, session and the lines' numbers.
        origin: Origin,
        /// The lines.
        texts: Vec<String>,
        /// Nobody else is in the room: they wait in the outbox.
        queued: bool,
    },
    /// The peers found on the LAN (`/nearby`).
    Nearby {
        /// One per peer.
        peers: Vec<NearbyLine>,
    },
    /// A direct message (`/msg`), seen only by us.
    Direct {
        /// How the author is shown.
        from: String,
        /// The text.
        text: String,
    },
    /// Someone joined a room.
    Joined {
        /// How they are shown.
        who: String,
        /// The room.
        room: String,
        /// Their peer ID.
        peer_id: String,
    },
    /// Someone left a room.
    Left {
        /// How they were shown.
        who: String,
        /// The room.
        room: String,
        /// Their peer ID.
        peer_id: String,
    },
    /// A member changed nick.
    Renamed {
        /// How they were shown.
        old: String,
        /// How they are shown now.
        new: String,
    },
    /// An answer to a command (`/rooms`, `/peers`, `/nick`, ...).
    Info(String),
    /// How the chat is doing (shown like an answer to a command).
    Status(Status),
    /// Something the user should know that is not part of the conversation.
    Notice(Notice),
    /// Something about a file transfer.
    File(crate::chat::transfer::FileEvent),
}

/// Who wrote a run of lines, where, and their numbers in the author's
/// stream (a line's id is `room:ROOM/AUTHOR/SESSION/NUMBER`, as the
/// history names it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The room.
    pub room: String,
    /// The author's peer ID.
    pub peer_id: String,
    /// The author's fingerprint.
    pub fingerprint: String,
    /// The author's session.
    pub session: u64,
    /// Each line's number, in order.
    pub numbers: Vec<u64>,
    /// When they were written, by the author's clock (ms since 1970).
    pub ts_ms: u64,
}

/// How the chat is doing: delivery and reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Nobody else is in the room and so many of our lines wait that
    /// input waits too.
    InputHeld {
        /// The room.
        room: String,
        /// Lines waiting.
        waiting: usize,
    },
    /// Our lines wait for an acknowledgement longer than they should.
    Undelivered {
        /// The room.
        room: String,
        /// Lines waiting.
        waiting: u64,
    },
    /// Every line of ours in the room reported undelivered now is.
    Delivered {
        /// The room.
        room: String,
    },
    /// The peer we connected to is gone: dialled again after a wait.
    Reconnecting {
        /// Its address, as typed.
        to: String,
        /// The wait.
        seconds: u64,
    },
    /// `/nick` took.
    NickSet {
        /// The new nick.
        nick: String,
    },
    /// `/join` took.
    NowIn {
        /// The room.
        room: String,
        /// Other members there now.
        members: usize,
        /// Whether it is a public room.
        public: bool,
    },
    /// `/leave` took.
    LeftRoom {
        /// The room left.
        room: String,
        /// The room we are in now, if any.
        now: Option<String>,
    },
    /// `/leave` named a room we are not in.
    NotInRoom {
        /// The room named.
        room: String,
    },
    /// `/rooms`: each room (current first-marked) with its other members.
    Rooms(Vec<RoomLine>),
    /// `/peers`: the connected peers.
    Peers(Vec<PeerLine>),
    /// `/members`: who holds the current room's key.
    Members {
        /// The room.
        room: String,
        /// Its key's epoch, in a room with keys.
        epoch: Option<u64>,
        /// Us first, then the others.
        members: Vec<MemberLine>,
    },
    /// `/msg` reached its peer.
    SentDirect {
        /// How the peer is shown.
        who: String,
        /// Why it was not kept in the history, if it was not.
        not_kept: Option<String>,
    },
}

/// A room as `/rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLine {
    /// Its name.
    pub name: String,
    /// Other members there.
    pub members: usize,
    /// Whether it is the current room.
    pub current: bool,
}

/// A member as `/members` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLine {
    /// How it is shown.
    pub who: String,
    /// Its peer ID.
    pub peer_id: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Whether the user marked it as verified.
    pub verified: bool,
    /// Whether it is us.
    pub me: bool,
}

/// A connected peer as `/peers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLine {
    /// How it is shown.
    pub who: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its address, when known.
    pub addr: Option<String>,
    /// The round-trip time, when measured.
    pub rtt: Option<std::time::Duration>,
    /// How it is reached: `direct`, `relayed via ID` or `direct
    /// (hole-punched)`.
    pub path: String,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::InputHeld { room, waiting } => write!(
                f,
                "No one else is in #{room} and {waiting} lines wait to be sent; more input is read once someone is back"
            ),
            Status::Undelivered { room, waiting } => write!(
                f,
                "{waiting} message(s) to #{room} not yet delivered; they are kept and sent when a member is back"
            ),
            Status::Delivered { room } => write!(f, "All your messages in #{room} are delivered"),
            Status::Reconnecting { to, seconds } => write!(
                f,
                "Reconnecting to {} in {seconds} s (messages you type meanwhile are kept)...",
                Inert(to)
            ),
            Status::NickSet { nick } => write!(f, "You are now known as {}", Inert(nick)),
            Status::NowIn {
                room,
                members,
                public,
            } => {
                let kind = if *public {
                    "a public room: peers on the LAN can find and join it"
                } else {
                    "a private room: only peers that dial a member join it"
                };
                write!(f, "Now in #{} ({members} other member(s); {kind})", Inert(room))
            }
            Status::LeftRoom { room, now } => match now {
                Some(now) => write!(f, "Left #{}; now in #{}", Inert(room), Inert(now)),
                None => write!(f, "Left #{}; you are in no room (/join one)", Inert(room)),
            },
            Status::NotInRoom { room } => write!(f, "you are not in #{}", Inert(room)),
            Status::Rooms(rooms) => {
                write!(f, "Rooms:")?;
                for room in rooms {
                    let mark = if room.current { "*" } else { " " };
                    write!(
                        f,
                        "\n {mark} #{} ({} other member(s))",
                        Inert(&room.name),
                        room.members
                    )?;
                }
                Ok(())
            }
            Status::Peers(peers) => {
                write!(f, "Peers connected: {}", peers.len())?;
                for peer in peers {
                    let addr = peer.addr.as_deref().unwrap_or("?");
                    write!(
                        f,
                        "\n  {}  {}  {}  ",
                        Inert(&peer.who),
                        peer.fingerprint,
                        Inert(addr)
                    )?;
                    match peer.rtt {
                        Some(rtt) => write!(f, "{:.1} ms", rtt.as_secs_f64() * 1e3)?,
                        None => write!(f, "?")?,
                    }
                    write!(f, "  {}", Inert(&peer.path))?;
                }
                Ok(())
            }
            Status::Members {
                room,
                epoch,
                members,
            } => {
                write!(
                    f,
                    "Members of #{} holding its current key",
                    Inert(super::room::room_name(room))
                )?;
                if let Some(epoch) = epoch {
                    write!(f, " (epoch {epoch})")?;
                }
                write!(f, ":")?;
                for member in members {
                    let who = if member.me { "you" } else { &member.who };
                    write!(f, "\n  {}  {}", Inert(who), member.fingerprint)?;
                    if member.verified {
                        write!(f, ", verified")?;
                    }
                }
                Ok(())
            }
            Status::SentDirect { who, not_kept } => match not_kept {
                None => write!(f, "Sent to {} only", Inert(who)),
                Some(cause) => write!(f, "Sent to {} only (not kept: {})", Inert(who), Inert(cause)),
            },
        }
    }
}

/// How our own lines are named in a history: the chat's `/history` and
/// `rust-p2p-chat history` alike.
pub const YOU: &str = "You";

/// Which page of a room's history an [`Event::History`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The room.
    pub room: String,
    /// The lines are those just before this line's id; the latest when
    /// `None`.
    pub before: Option<String>,
    /// Whether older lines may be kept.
    pub more: bool,
}

/// One line of [`Event::History`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    /// When its author wrote it, as `HH:MM` or a date and time.
    pub when: String,
    /// How its author is shown ([`YOU`] for ours).
    pub from: String,
    /// The text.
    pub text: String,
    /// For our own lines: `queued`, `sent` or `delivered`.
    pub status: Option<String>,
    /// Its id, where it was kept (see [`Origin`]), with the room, author
    /// and time a program needs besides.
    pub kept: Option<KeptLine>,
}

/// What the store knows of a line of history, besides what is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLine {
    /// Its id: `room:ROOM/AUTHOR/SESSION/NUMBER`.
    pub id: String,
    /// The room, for room lines.
    pub room: Option<String>,
    /// The author's peer ID.
    pub author: String,
    /// The author's fingerprint, when the ID is a peer's.
    pub fingerprint: Option<String>,
    /// When it was written, by its author's clock (ms since 1970).
    pub ts_ms: u64,
}

/// One peer of [`Event::Nearby`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearbyLine {
    /// Its short fingerprint.
    pub fingerprint: String,
    /// Where it is, when known.
    pub addr: Option<String>,
    /// The public rooms it is in (room names, without the mark), when
    /// known.
    pub public_rooms: Vec<String>,
    /// Whether its rooms are known (only once connected).
    pub rooms_known: bool,
}

/// A notice: a dropped line, a refused peer, a connection error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A command from a program (`--json`) that cannot be carried out.
    BadCommand(String),
    /// The peer sent a line over the limit; it was dropped.
    IncomingTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A command the user typed is over the limit; it was not run.
    OutgoingTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A line the user typed is over the limit: it goes out in pieces of
    /// at most the limit, each a line of its own.
    OutgoingInPieces {
        /// The limit in bytes.
        limit: usize,
    },
    /// A second peer tried to connect during a chat and was told so.
    TurnedAway {
        /// That peer's address.
        from: SocketAddr,
    },
    /// The connection failed during a chat.
    ConnectionError(String),
    /// The peer sent a frame that could not be decoded; it was dropped.
    Malformed,
    /// The peer we reached is busy in another chat.
    PeerBusy,
    /// The peer has not read what we sent for a while.
    PeerSlow {
        /// Seconds without progress so far.
        seconds: u64,
    },
    /// A peer with another identity than the one expected was turned away.
    Unexpected {
        /// Its peer ID.
        peer_id: String,
    },
    /// Known peers could not be recorded.
    Store(String),
    /// The history could not be written: what arrives is shown but not
    /// acknowledged until it is stored.
    HistoryFailed(String),
    /// The history could not be opened: this chat is not kept.
    HistoryUnavailable(String),
    /// The disk holding the history is full: received lines are shown but
    /// not stored (nor acknowledged), and are tried again. Said once, not
    /// for every write refused.
    HistoryFull {
        /// Lines waiting to be stored when it was said.
        unstored: usize,
    },
    /// Writes to the history succeed again after [`Notice::HistoryFull`]
    /// or [`Notice::HistoryFailed`]: what waited is stored.
    HistoryResumed,
    /// A member sends faster than allowed; some of its messages dropped.
    Throttled {
        /// How it is shown.
        who: String,
    },
    /// A member kept flooding and was disconnected.
    Banned {
        /// How it was shown.
        who: String,
    },
    /// Messages from a member never arrived.
    Lost {
        /// How it is shown.
        who: String,
        /// How many.
        count: u64,
    },
    /// Messages reported as never arrived came after all; they follow.
    Recovered {
        /// How their author is shown.
        who: String,
        /// How many.
        count: u64,
    },
    /// Our input ended and some of our lines wait for an acknowledgement
    /// before the program ends.
    Delivering {
        /// Lines not yet acknowledged.
        waiting: u64,
    },
    /// Something typed could not be sent.
    NotSent(String),
    /// What we type is kept until someone is in the room to take it (said
    /// once each time we find ourselves alone, not for every line).
    Queued {
        /// The room.
        room: String,
    },
    /// A room member is not taking what we send.
    MemberSlow {
        /// How it is shown.
        who: String,
    },
}

impl Event {
    /// Appends the line a user sees for this event, without a newline.
    ///
    /// ```
    /// use rust_p2p_chat::chat::Event;
    ///
    /// let mut out = String::new();
    /// Event::Message { text: "hi \x1b[31m".into() }.render(&mut out);
    /// assert_eq!(out, "Peer: hi ^[[31m");
    /// ```
    pub fn render(&self, out: &mut String) {
        use fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = match self {
            Event::Message { text } => {
                out.push_str("Peer: ");
                push_inert(out, text);
                Ok(())
            }
            Event::Messages { texts } => {
                for (i, text) in texts.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str("Peer: ");
                    push_inert(out, text);
                }
                Ok(())
            }
            Event::Listening { addr } => write!(out, "Listening on: {addr}"),
            Event::Waiting => write!(out, "Waiting for peer to connect..."),
            Event::Connecting { to } => write!(out, "Connecting to {to}..."),
            Event::Connected => write!(out, "Connected to peer!"),
            Event::PeerConnected { from } => write!(out, "Peer connected from: {from}"),
            Event::PeerConnectedVia { relay } => {
                write!(out, "Peer connected through the relay {}", Inert(relay))
            }
            Event::Ready => write!(
                out,
                "Type messages and press Enter to send (Ctrl+C to exit)"
            ),
            Event::PeerDisconnected => write!(out, "Peer disconnected"),
            Event::Invite { ticket } => write!(out, "Invite: {ticket}"),
            Event::OwnIdentity {
                peer_id,
                fingerprint,
            } => write!(out, "Your identity: {peer_id} (fingerprint {fingerprint})"),
            Event::PeerIdentity {
                peer_id,
                fingerprint,
                verified,
            } => write!(
                out,
                "Peer identity: {peer_id} (fingerprint {fingerprint}){}",
                if *verified { ", verified" } else { "" }
            ),
            Event::Encrypted => write!(
                out,
                "The chat is end-to-end encrypted (Noise, Ed25519 identities); type /verify to compare safety numbers"
            ),
            Event::KeyChanged {
                label,
                previous,
                now,
            } => write!(
                out,
                "WARNING: THE IDENTITY OF {} HAS CHANGED!\n\
                 WARNING: you trusted {previous}, but {now} answered.\n\
                 WARNING: someone may be impersonating your peer. Compare safety numbers (/verify) before trusting it (/trust).",
                Inert(label)
            ),
            Event::SafetyNumber { number, .. } => write!(
                out,
                "Safety number: {number}\n(your peer sees the same number only if no one is in between; compare it out of band, then /trust)"
            ),
            Event::Trusted { peer_id } => write!(out, "Marked {peer_id} as verified"),
            Event::Help(text) | Event::Info(text) => write!(out, "{text}"),
            Event::Status(status) => write!(out, "{status}"),
            Event::Lines {
                from, room, texts, ..
            } => {
                for (i, text) in texts.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    if let Some(room) = room {
                        out.push('#');
                        out.push_str(room);
                        out.push(' ');
                    }
                    push_inert(out, from);
                    out.push_str(": ");
                    push_inert(out, text);
                }
                Ok(())
            }
            Event::DeliveredThrough { room, .. } => {
                write!(out, "All your messages in #{} are delivered", Inert(room))
            }
            Event::Own { texts, .. } => {
                for (i, text) in texts.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str(YOU);
                    out.push_str(": ");
                    push_inert(out, text);
                }
                Ok(())
            }
            Event::History { lines, .. } => {
                if lines.is_empty() {
                    out.push_str("(no history kept here yet)");
                    return;
                }
                let _ = write!(out, "--- {} line(s) from history ---", lines.len());
                for line in lines {
                    out.push_str("\n[history ");
                    push_inert(out, &line.when);
                    out.push_str("] ");
                    push_inert(out, &line.from);
                    out.push_str(": ");
                    push_inert(out, &line.text);
                    if let Some(status) = &line.status {
                        out.push_str(" (");
                        push_inert(out, status);
                        out.push(')');
                    }
                }
                out.push_str("\n--- end of history ---");
                Ok(())
            }
            Event::Nearby { peers } => {
                if peers.is_empty() {
                    out.push_str("No peers found on the LAN (yet; discovery asks every few seconds, and --no-mdns turns it off)");
                    return;
                }
                out.push_str("Peers on the LAN:");
                for peer in peers {
                    let _ = write!(out, "\n  Peer-{}", Inert(&peer.fingerprint));
                    if let Some(addr) = &peer.addr {
                        let _ = write!(out, " at {}", Inert(addr));
                    }
                    if !peer.rooms_known {
                        out.push_str(": public rooms not known (join a public room to connect)");
                    } else if peer.public_rooms.is_empty() {
                        out.push_str(": in no public room");
                    } else {
                        out.push_str(": public ");
                        for (i, room) in peer.public_rooms.iter().enumerate() {
                            if i > 0 {
                                out.push_str(", ");
                            }
                            out.push('#');
                            push_inert(out, room);
                        }
                        out.push_str(" (/join NAME --public)");
                    }
                }
                Ok(())
            }
            Event::Direct { from, text } => {
                out.push_str("[direct] ");
                push_inert(out, from);
                out.push_str(": ");
                push_inert(out, text);
                Ok(())
            }
            Event::Joined { who, room, .. } => write!(out, "{} joined #{room}", Inert(who)),
            Event::Left { who, room, .. } => write!(out, "{} left #{room}", Inert(who)),
            Event::Renamed { old, new } => {
                write!(out, "{} is now known as {}", Inert(old), Inert(new))
            }
            Event::Notice(notice) => write!(out, "{notice}"),
            Event::File(event) => write!(out, "{event}"),
        };
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.render(&mut out);
        f.write_str(&out)
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::BadCommand(reason) => write!(f, "Not done: {}", Inert(reason)),
            Notice::IncomingTooLong { limit } => write!(
                f,
                "Dropped a message from peer: longer than the {limit}-byte line limit"
            ),
            Notice::OutgoingTooLong { limit } => write!(
                f,
                "Not run: your command is longer than the {limit}-byte line limit"
            ),
            Notice::OutgoingInPieces { limit } => write!(
                f,
                "Your line is longer than the {limit}-byte line limit: it goes out in pieces of at most {limit} bytes"
            ),
            Notice::TurnedAway { from } => {
                write!(f, "Turned away {from}: already in a chat")
            }
            Notice::ConnectionError(cause) => {
                write!(f, "Connection error: {}", Inert(cause))
            }
            Notice::Malformed => write!(f, "Dropped a frame from peer: it could not be decoded"),
            Notice::PeerBusy => write!(f, "The peer is busy in another chat; try again later"),
            Notice::PeerSlow { seconds } => write!(
                f,
                "The peer has not read what you sent for {seconds} s; it will be dropped if it does not catch up"
            ),
            Notice::Unexpected { peer_id } => {
                write!(f, "Turned away {peer_id}: not the identity expected")
            }
            Notice::Store(cause) => write!(f, "Could not record known peers: {}", Inert(cause)),
            Notice::HistoryFailed(cause) => write!(
                f,
                "History not kept: {}; what arrives is shown but not acknowledged until it can be stored (tried again every second)",
                Inert(cause)
            ),
            Notice::HistoryUnavailable(cause) => write!(
                f,
                "History not kept: {}; this chat is shown but not stored",
                Inert(cause)
            ),
            Notice::HistoryFull { unstored } => write!(
                f,
                "history: the disk is full; {unstored} line(s) not stored yet, will retry"
            ),
            Notice::HistoryResumed => write!(f, "history: storing again"),
            Notice::Throttled { who } => write!(
                f,
                "{} sends faster than allowed: some of its messages were dropped",
                Inert(who)
            ),
            Notice::Banned { who } => write!(
                f,
                "{} kept flooding the room: disconnected and refused from now on",
                Inert(who)
            ),
            Notice::Lost { who, count } => write!(
                f,
                "{count} message(s) from {} never arrived",
                Inert(who)
            ),
            Notice::Recovered { who, count } => write!(
                f,
                "{count} message(s) from {} reported as never arrived came late:",
                Inert(who)
            ),
            Notice::Delivering { waiting } => write!(
                f,
                "Waiting for {waiting} line(s) to be acknowledged before ending (Ctrl+C ends now; they stay queued for the next run)"
            ),
            Notice::NotSent(cause) => write!(f, "Not sent: {}", Inert(cause)),
            Notice::Queued { room } => write!(
                f,
                "Queued: no one else is in #{room}; it is sent when someone comes"
            ),
            Notice::MemberSlow { who } => write!(
                f,
                "{} has not read what you sent; it will be dropped if it does not catch up",
                Inert(who)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_lines_are_exact() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let cases = [
            (Event::Listening { addr }, "Listening on: 0.0.0.0:8080"),
            (Event::Waiting, "Waiting for peer to connect..."),
            (
                Event::Connecting {
                    to: "127.0.0.1:8080".into(),
                },
                "Connecting to 127.0.0.1:8080...",
            ),
            (Event::Connected, "Connected to peer!"),
            (
                Event::PeerConnected { from: peer },
                "Peer connected from: 127.0.0.1:5555",
            ),
            (
                Event::PeerConnectedVia {
                    relay: "12D3KooWRelay".into(),
                },
                "Peer connected through the relay 12D3KooWRelay",
            ),
            (
                Event::Ready,
                "Type messages and press Enter to send (Ctrl+C to exit)",
            ),
            (
                Event::Message {
                    text: "hello".into(),
                },
                "Peer: hello",
            ),
            (Event::PeerDisconnected, "Peer disconnected"),
        ];
        for (event, line) in cases {
            assert_eq!(event.to_string(), line);
        }
    }

    #[test]
    fn a_full_disk_and_its_end_are_said_plainly() {
        let full = Event::Notice(Notice::HistoryFull { unstored: 12 });
        assert_eq!(
            full.to_string(),
            "history: the disk is full; 12 line(s) not stored yet, will retry"
        );
        let again = Event::Notice(Notice::HistoryResumed);
        assert_eq!(again.to_string(), "history: storing again");
    }

    #[test]
    fn notices_name_the_limit() {
        let event = Event::Notice(Notice::IncomingTooLong { limit: 1024 });
        assert!(event.to_string().contains("1024-byte"));
    }
}
