//! The chat as a program sees it: commands in and events out as JSON
//! objects, one per line, tagged by `"type"` (`--json`; documented in
//! `docs/api.md`).
//!
//! Both are plain data built from the chat's own [`Command`] lines and
//! [`Event`]s, so any front end speaking them drives the same chat a
//! person does: a command becomes the line a person would type, an event
//! the data behind the line a person would read. Peer text travels as a
//! JSON string, never rendered: a program gets exactly what was said, and
//! nothing in it can act on a terminal.
//!
//! [`Command`]: crate::chat::Command

use serde::{Deserialize, Serialize};

use super::event::{Command, Event, HistoryLine, Notice, Origin, Status, YOU};
use super::transfer::FileEvent;

/// The version of this API, said in [`ApiEvent::Hello`]. Additions (new
/// event types, new optional fields) keep it; changes to what exists
/// raise it.
pub const API_VERSION: u32 = 2;

/// A command a program sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApiCommand {
    /// Say `text` (each of its lines) in `room`, or the current room.
    /// Naming a room does not change which is current.
    Send {
        /// The room (joined already).
        #[serde(default)]
        room: Option<String>,
        /// What to say.
        text: String,
    },
    /// Join a room, or make a joined one the current one.
    Join {
        /// The room.
        room: String,
        /// The public room of that name.
        #[serde(default)]
        public: bool,
    },
    /// Leave a room (the current one by default).
    Leave {
        /// The room.
        #[serde(default)]
        room: Option<String>,
    },
    /// Choose a nick.
    Nick {
        /// The nick.
        name: String,
    },
    /// A direct message to one member.
    Msg {
        /// The member, by nick.
        to: String,
        /// What to say.
        text: String,
    },
    /// An invite into the current private room.
    Invite {
        /// How long it is valid, in seconds.
        #[serde(default)]
        valid_secs: Option<u64>,
    },
    /// Mark a member as verified.
    Trust {
        /// The member (the only other one by default).
        #[serde(default)]
        who: Option<String>,
    },
    /// Offer a file.
    SendFile {
        /// To whom (the only other member by default).
        #[serde(default)]
        to: Option<String>,
        /// The file.
        path: String,
    },
    /// Take a file offered.
    Accept {
        /// The transfer's number.
        transfer: u64,
    },
    /// Decline a file offered.
    Reject {
        /// The transfer's number.
        transfer: u64,
    },
    /// Stop a transfer.
    Cancel {
        /// The transfer's number.
        transfer: u64,
    },
    /// Lines kept of a room: the latest, or those just before a line.
    History {
        /// The room (the current one by default).
        #[serde(default)]
        room: Option<String>,
        /// The id of the line to page back from.
        #[serde(default)]
        before: Option<String>,
        /// How many (50 by default, 1,000 at most).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Who is in the current room.
    Members {},
    /// A line exactly as a person types it: a slash command, or text said
    /// in the current room.
    Command {
        /// The line.
        line: String,
    },
    /// The connected peers.
    Peers {},
    /// The rooms joined.
    Rooms {},
    /// End the chat once what was said is delivered.
    Quit {},
}

/// Why a command cannot be carried out as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Not a command object of this API.
    #[error("not a command: {0}")]
    Malformed(String),
    /// A name with spaces or line breaks (rooms, nicks, members).
    #[error("{field} may not hold spaces or line breaks")]
    BadName {
        /// Which field.
        field: &'static str,
    },
}

fn name<'a>(field: &'static str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(ApiError::BadName { field });
    }
    Ok(value)
}

/// A line of text as typed: one that starts with `/` is escaped, so it is
/// said, not taken for a command.
fn said(text: &str) -> String {
    if text.starts_with('/') {
        format!("/{text}")
    } else {
        text.to_owned()
    }
}

impl ApiCommand {
    /// Parses one line of input.
    ///
    /// ```
    /// use rust_p2p_chat::chat::api::ApiCommand;
    ///
    /// use rust_p2p_chat::chat::Command;
    ///
    /// let command = ApiCommand::parse(r#"{"type":"send","text":"hi"}"#).unwrap();
    /// assert_eq!(command.commands().unwrap(), [Command::Send("hi".into())]);
    /// assert!(ApiCommand::parse(r#"{"type":"shout"}"#).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`ApiError::Malformed`] with serde's reason.
    pub fn parse(line: &str) -> Result<ApiCommand, ApiError> {
        serde_json::from_str(line).map_err(|e| ApiError::Malformed(e.to_string()))
    }

    /// What the chat is asked: mostly the lines a person would type for
    /// it.
    ///
    /// # Errors
    ///
    /// [`ApiError::BadName`] for a name that would not survive being typed.
    pub fn commands(&self) -> Result<Vec<Command>, ApiError> {
        if let ApiCommand::History {
            room,
            before,
            limit,
        } = self
        {
            if let Some(room) = room {
                name("room", room)?;
            }
            return Ok(vec![Command::History {
                room: room.clone(),
                before: before.clone(),
                limit: limit.unwrap_or(HISTORY_DEFAULT),
            }]);
        }
        if let ApiCommand::Send {
            room: Some(room),
            text,
        } = self
        {
            return Ok(vec![Command::Say {
                room: name("room", room)?.to_owned(),
                lines: text
                    .split('\n')
                    .map(|l| l.trim_end_matches('\r').to_owned())
                    .collect(),
            }]);
        }
        Ok(self.typed_lines()?.into_iter().map(Command::Send).collect())
    }

    fn typed_lines(&self) -> Result<Vec<String>, ApiError> {
        let one = |line: String| Ok(vec![line]);
        match self {
            ApiCommand::Send { text, .. } => Ok(text
                .split('\n')
                .map(|l| said(l.trim_end_matches('\r')))
                .collect()),
            ApiCommand::Join { room, public } => one(format!(
                "/join {}{}",
                name("room", room)?,
                if *public { " --public" } else { "" }
            )),
            ApiCommand::Leave { room } => match room {
                Some(room) => one(format!("/leave {}", name("room", room)?)),
                None => one("/leave".into()),
            },
            ApiCommand::Nick { name: nick } => one(format!("/nick {}", name("name", nick)?)),
            ApiCommand::Msg { to, text } => {
                let to = name("to", to)?;
                Ok(text
                    .split('\n')
                    .map(|l| format!("/msg {to} {}", l.trim_end_matches('\r')))
                    .collect())
            }
            ApiCommand::Invite { valid_secs } => match valid_secs {
                Some(secs) => one(format!("/invite --valid {secs}s")),
                None => one("/invite".into()),
            },
            ApiCommand::Trust { who } => match who {
                Some(who) => one(format!("/trust {}", name("who", who)?)),
                None => one("/trust".into()),
            },
            ApiCommand::SendFile { to, path } => {
                if path.contains('\n') {
                    return Err(ApiError::BadName { field: "path" });
                }
                match to {
                    Some(to) => one(format!("/send {} {path}", name("to", to)?)),
                    None => one(format!("/send {path}")),
                }
            }
            ApiCommand::Accept { transfer } => one(format!("/accept {transfer}")),
            ApiCommand::Reject { transfer } => one(format!("/reject {transfer}")),
            ApiCommand::Cancel { transfer } => one(format!("/cancel {transfer}")),
            ApiCommand::History { .. } => Ok(Vec::new()),
            ApiCommand::Members {} => one("/members".into()),
            ApiCommand::Command { line } => {
                if line.contains('\n') {
                    return Err(ApiError::BadName { field: "line" });
                }
                one(line.clone())
            }
            ApiCommand::Peers {} => one("/peers".into()),
            ApiCommand::Rooms {} => one("/rooms".into()),
            ApiCommand::Quit {} => one("/quit".into()),
        }
    }
}

/// Lines a `history` command asks for unless told.
const HISTORY_DEFAULT: usize = 50;

/// How much a notice matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// How things stand; an answer to a command.
    Info,
    /// Something went wrong or was refused.
    Warning,
}

/// One connected peer of [`ApiEvent::Peers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiPeer {
    /// How it is shown.
    pub nick: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its address, when known.
    pub addr: Option<String>,
    /// The round trip, in milliseconds, when measured.
    pub rtt_ms: Option<u64>,
    /// `direct`, `relayed via ID` or `direct (hole-punched)`.
    pub path: String,
}

/// A line someone said, in [`ApiEvent::Line`] and [`ApiEvent::History`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiLine {
    /// The room (none in the plain protocol).
    pub room: Option<String>,
    /// Its id: `room:ROOM/AUTHOR/SESSION/NUMBER`, as the history names it
    /// (none in the plain protocol).
    pub id: Option<String>,
    /// The author's peer ID (none in the plain protocol).
    pub author: Option<String>,
    /// How the author is shown.
    pub nick: String,
    /// The author's fingerprint.
    pub fingerprint: Option<String>,
    /// When it was written, by its author's clock (ms since 1970).
    pub ts_ms: Option<u64>,
    /// The text, exactly as said.
    pub text: String,
    /// Shown from the history rather than just said.
    #[serde(default)]
    pub history: bool,
    /// Ours: `queued`, `sent` or `delivered`; `null` for others' lines.
    #[serde(default)]
    pub status: Option<String>,
}

/// A member of a room, in [`ApiEvent::Members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMember {
    /// How it is shown.
    pub nick: String,
    /// Its peer ID.
    pub peer_id: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Marked as verified.
    pub verified: bool,
    /// Us.
    pub me: bool,
}

/// A room joined, in [`ApiEvent::Rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRoom {
    /// Its name.
    pub name: String,
    /// Other members there.
    pub members: usize,
    /// The current room.
    pub current: bool,
}

/// An event a program reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiEvent {
    /// Who we are; the first event of a secure chat.
    Hello {
        /// [`API_VERSION`].
        api: u32,
        /// The program's version.
        version: String,
        /// Our peer ID.
        peer_id: String,
        /// Our fingerprint.
        fingerprint: String,
    },
    /// A line someone said, or we said (with its `status`).
    Line(ApiLine),
    /// Lines kept from before (`history`, and on start): oldest first.
    History {
        /// The room, when a program asked for a page of one.
        room: Option<String>,
        /// The page is of the lines just before this one.
        before: Option<String>,
        /// Whether older lines may be kept.
        more: bool,
        /// The lines.
        lines: Vec<ApiLine>,
    },
    /// A direct message to us.
    Direct {
        /// How its author is shown.
        nick: String,
        /// The text.
        text: String,
    },
    /// Someone joined a room.
    MemberJoined {
        /// The room.
        room: String,
        /// Their peer ID.
        peer_id: String,
        /// How they are shown.
        nick: String,
    },
    /// Someone left a room.
    MemberLeft {
        /// The room.
        room: String,
        /// Their peer ID.
        peer_id: String,
        /// How they were shown.
        nick: String,
    },
    /// Our lines in a room are stored by a member: all of them, or (with
    /// `session` and `through`) those of that session numbered below
    /// `through`, as their ids number them.
    Delivered {
        /// The room.
        room: String,
        /// Our session, as line ids write it (16 hex digits).
        #[serde(default)]
        session: Option<String>,
        /// The first line not known held.
        #[serde(default)]
        through: Option<u64>,
    },
    /// Who is in the current room (`members`).
    Members {
        /// The room.
        room: String,
        /// Us first.
        members: Vec<ApiMember>,
    },
    /// The rooms joined (`rooms`).
    Rooms {
        /// Them.
        rooms: Vec<ApiRoom>,
    },
    /// The safety number of the chat with a member (`/verify`).
    SafetyNumber {
        /// 60 digits in groups of five.
        number: String,
        /// The member's peer ID (what `trust` takes to mark it verified).
        peer_id: String,
    },
    /// A member was marked as verified (`trust`).
    Trusted {
        /// Its peer ID.
        peer_id: String,
    },
    /// The connected peers (`peers`).
    Peers {
        /// Them.
        peers: Vec<ApiPeer>,
    },
    /// An invite (`invite`).
    Invite {
        /// The ticket.
        ticket: String,
    },
    /// Something about a file transfer, with the line a person reads.
    Transfer {
        /// What happened: `offered`, `offer_refused`, `offer_sent`,
        /// `not_offered`, `receiving`, `progress`, `received`, `sent`,
        /// `declined`, `cancelled`, `paused`, `failed`, `list`.
        event: String,
        /// The transfer's number, where there is one.
        number: Option<u64>,
        /// The file's name, where there is one.
        name: Option<String>,
        /// Its size, where known.
        size: Option<u64>,
        /// Bytes so far, where known.
        done: Option<u64>,
        /// Where a received file is.
        path: Option<String>,
        /// The line a person reads.
        text: String,
    },
    /// How things stand, an answer, or a warning, as a person reads it.
    Notice {
        /// How much it matters.
        level: Level,
        /// The text.
        text: String,
    },
    /// A command could not be carried out as sent.
    Error {
        /// Why.
        text: String,
    },
}

fn notice(level: Level, event: &Event) -> ApiEvent {
    ApiEvent::Notice {
        level,
        text: event.to_string(),
    }
}

fn transfer(event: &FileEvent) -> ApiEvent {
    let (kind, number, name, size, done, path) = match event {
        FileEvent::Offered {
            number, name, size, ..
        } => (
            "offered",
            Some(*number),
            Some(name),
            Some(*size),
            None,
            None,
        ),
        FileEvent::OfferRefused { name, size, .. } => {
            ("offer_refused", None, Some(name), Some(*size), None, None)
        }
        FileEvent::OfferSent {
            number, name, size, ..
        } => (
            "offer_sent",
            Some(*number),
            Some(name),
            Some(*size),
            None,
            None,
        ),
        FileEvent::NotOffered { name, .. } => ("not_offered", None, Some(name), None, None, None),
        FileEvent::Receiving {
            number,
            name,
            size,
            held,
        } => (
            "receiving",
            Some(*number),
            Some(name),
            Some(*size),
            Some(*held),
            None,
        ),
        FileEvent::Progress {
            number,
            name,
            done,
            size,
            ..
        } => (
            "progress",
            Some(*number),
            Some(name),
            Some(*size),
            Some(*done),
            None,
        ),
        FileEvent::Received {
            number,
            name,
            size,
            path,
        } => (
            "received",
            Some(*number),
            Some(name),
            Some(*size),
            Some(*size),
            Some(path.clone()),
        ),
        FileEvent::Sent { number, name, .. } => {
            ("sent", Some(*number), Some(name), None, None, None)
        }
        FileEvent::Declined { number, name, .. } => {
            ("declined", Some(*number), Some(name), None, None, None)
        }
        FileEvent::Cancelled { number, name, .. } => {
            ("cancelled", Some(*number), Some(name), None, None, None)
        }
        FileEvent::Paused {
            number,
            name,
            done,
            size,
        } => (
            "paused",
            Some(*number),
            Some(name),
            Some(*size),
            Some(*done),
            None,
        ),
        FileEvent::Failed { number, name, .. } => {
            ("failed", Some(*number), Some(name), None, None, None)
        }
        FileEvent::List(_) => ("list", None, None, None, None, None),
    };
    ApiEvent::Transfer {
        event: kind.into(),
        number,
        name: name.cloned(),
        size,
        done,
        path,
        text: event.to_string(),
    }
}

/// The API's events for one of the chat's: most are one, a run of lines is
/// one per line, and a few (the prompt's own lines) are none.
///
/// ```
/// use rust_p2p_chat::chat::api::{events_of, ApiEvent};
/// use rust_p2p_chat::chat::Event;
///
/// let events = events_of(&Event::Message { text: "hi \x1b[31m".into() });
/// let ApiEvent::Line(line) = &events[0] else { panic!() };
/// assert_eq!(line.text, "hi \x1b[31m");
/// ```
pub fn events_of(event: &Event) -> Vec<ApiEvent> {
    let plain_line = |text: &String| {
        ApiEvent::Line(ApiLine {
            room: None,
            id: None,
            author: None,
            nick: "Peer".into(),
            fingerprint: None,
            ts_ms: None,
            text: text.clone(),
            history: false,
            status: None,
        })
    };
    match event {
        Event::OwnIdentity {
            peer_id,
            fingerprint,
        } => vec![ApiEvent::Hello {
            api: API_VERSION,
            version: env!("CARGO_PKG_VERSION").into(),
            peer_id: peer_id.clone(),
            fingerprint: fingerprint.clone(),
        }],
        Event::Message { text } => vec![plain_line(text)],
        Event::Messages { texts } => texts.iter().map(plain_line).collect(),
        Event::Lines {
            from,
            room,
            texts,
            origin,
        } => live_lines(from, room.as_ref(), texts, origin.as_ref())
            .into_iter()
            .map(ApiEvent::Line)
            .collect(),
        Event::Own {
            origin,
            texts,
            queued,
        } => live_lines(YOU, None, texts, Some(origin))
            .into_iter()
            .map(|line| {
                ApiEvent::Line(ApiLine {
                    status: Some(if *queued { "queued" } else { "sent" }.into()),
                    ..line
                })
            })
            .collect(),
        Event::History { lines, page } => vec![ApiEvent::History {
            room: page.as_ref().map(|p| p.room.clone()).or_else(|| {
                lines
                    .first()
                    .and_then(|l| l.kept.as_ref())
                    .and_then(|k| k.room.clone())
            }),
            before: page.as_ref().and_then(|p| p.before.clone()),
            more: page.as_ref().is_none_or(|p| p.more),
            lines: lines.iter().map(history_line).collect(),
        }],
        Event::Direct { from, text } => vec![ApiEvent::Direct {
            nick: from.clone(),
            text: text.clone(),
        }],
        Event::Joined { who, room, peer_id } => vec![ApiEvent::MemberJoined {
            room: room.clone(),
            peer_id: peer_id.clone(),
            nick: who.clone(),
        }],
        Event::Left { who, room, peer_id } => vec![ApiEvent::MemberLeft {
            room: room.clone(),
            peer_id: peer_id.clone(),
            nick: who.clone(),
        }],
        Event::Status(Status::Delivered { room }) => vec![ApiEvent::Delivered {
            room: room.clone(),
            session: None,
            through: None,
        }],
        Event::DeliveredThrough {
            room,
            session,
            through,
        } => vec![ApiEvent::Delivered {
            room: room.clone(),
            session: Some(format!("{session:016x}")),
            through: Some(*through),
        }],
        Event::Status(Status::Peers(peers)) => vec![ApiEvent::Peers {
            peers: peers
                .iter()
                .map(|p| ApiPeer {
                    nick: p.who.clone(),
                    fingerprint: p.fingerprint.clone(),
                    addr: p.addr.clone(),
                    rtt_ms: p.rtt.map(|d| d.as_millis() as u64),
                    path: p.path.clone(),
                })
                .collect(),
        }],
        Event::Status(Status::Members { room, members, .. }) => vec![ApiEvent::Members {
            room: room.clone(),
            members: members
                .iter()
                .map(|m| ApiMember {
                    nick: m.who.clone(),
                    peer_id: m.peer_id.clone(),
                    fingerprint: m.fingerprint.clone(),
                    verified: m.verified,
                    me: m.me,
                })
                .collect(),
        }],
        Event::Status(Status::Rooms(rooms)) => vec![ApiEvent::Rooms {
            rooms: rooms
                .iter()
                .map(|r| ApiRoom {
                    name: r.name.clone(),
                    members: r.members,
                    current: r.current,
                })
                .collect(),
        }],
        Event::Trusted { peer_id } => vec![ApiEvent::Trusted {
            peer_id: peer_id.clone(),
        }],
        Event::SafetyNumber { number, peer_id } => vec![ApiEvent::SafetyNumber {
            number: number.clone(),
            peer_id: peer_id.clone(),
        }],
        Event::Invite { ticket } => vec![ApiEvent::Invite {
            ticket: ticket.clone(),
        }],
        Event::File(file) => vec![transfer(file)],
        Event::Notice(Notice::BadCommand(reason)) => vec![ApiEvent::Error {
            text: reason.clone(),
        }],
        // The line editor's own: nothing for a program.
        Event::Ready => Vec::new(),
        Event::Notice(_) | Event::KeyChanged { .. } => vec![notice(Level::Warning, event)],
        _ => vec![notice(Level::Info, event)],
    }
}

/// Lines just said as the API gives them.
fn live_lines(
    from: &str,
    room: Option<&String>,
    texts: &[String],
    origin: Option<&Origin>,
) -> Vec<ApiLine> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let number = origin.and_then(|o| o.numbers.get(i));
            ApiLine {
                room: origin.map(|o| o.room.clone()).or(room.cloned()),
                id: origin
                    .zip(number)
                    .map(|(o, n)| format!("room:{}/{}/{:016x}/{n}", o.room, o.peer_id, o.session)),
                author: origin.map(|o| o.peer_id.clone()),
                nick: from.to_owned(),
                fingerprint: origin.map(|o| o.fingerprint.clone()),
                ts_ms: origin.map(|o| o.ts_ms),
                text: text.clone(),
                history: false,
                status: None,
            }
        })
        .collect()
}

/// A line of history as the API gives it.
fn history_line(line: &HistoryLine) -> ApiLine {
    let kept = line.kept.as_ref();
    ApiLine {
        room: kept.and_then(|k| k.room.clone()),
        id: kept.map(|k| k.id.clone()),
        author: kept.map(|k| k.author.clone()),
        nick: line.from.clone(),
        fingerprint: kept.and_then(|k| k.fingerprint.clone()),
        ts_ms: kept.map(|k| k.ts_ms),
        text: line.text.clone(),
        history: true,
        status: line.status.clone(),
    }
}

#[cfg(test)]
mod tests;
