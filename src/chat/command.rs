//! Slash commands typed in a secure chat.
//!
//! A line that starts with `/` is a command, not a message; `//` escapes
//! it, so `//shrug` sends `/shrug`. Parsing is pure so every front end and
//! the app agree on it. The plain protocol sends every line as it is (the
//! classic mode has no commands).

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// A message to send.
    Text(&'a str),
    /// `/verify [NICK]`: show the safety number with a member.
    Verify(Option<&'a str>),
    /// `/trust [NICK]`: mark a member as verified.
    Trust(Option<&'a str>),
    /// `/nick NAME`: choose a nick.
    Nick(&'a str),
    /// `/join ROOM [--public]`: join a room (or switch to it); with
    /// `--public`, the public room of that name.
    Join {
        /// The room's name.
        room: &'a str,
        /// Whether the public room is meant.
        public: bool,
    },
    /// `/nearby`: the peers found on the LAN and their public rooms.
    Nearby,
    /// `/leave [ROOM]`: leave a room (the current one by default).
    Leave(Option<&'a str>),
    /// `/rooms`: list the rooms joined.
    Rooms,
    /// `/peers`: list the peers connected.
    Peers,
    /// `/history [N]`: the last N stored lines of the current room.
    History(Option<usize>),
    /// `/msg NICK TEXT`: a direct message to one member.
    Msg {
        /// The member.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
    /// `/invite [--valid DURATION]`: an invite into the current private
    /// room, valid for that long (seconds) or until the room's key
    /// changes.
    Invite {
        /// How long it is valid, in seconds.
        valid: Option<u64>,
    },
    /// `/kick NICK`: remove a member from the current private room.
    Kick(&'a str),
    /// `/members`: who holds the current room's key.
    Members,
    /// `/send [NICK] PATH`: offer a file (the words as typed: the app
    /// tells a member from a path).
    SendFile(&'a str),
    /// `/accept N`: take a file offered.
    Accept(u64),
    /// `/reject N`: decline a file offered.
    Reject(u64),
    /// `/cancel N`: stop a transfer.
    Cancel(u64),
    /// `/files`: the transfers and where they stand.
    Files,
    /// A command without its required argument.
    Usage(&'static str),
    /// `/id`: show our own identity.
    Id,
    /// `/help`: list the commands.
    Help,
    /// `/quit`: end the chat.
    Quit,
    /// A command we do not know.
    Unknown(&'a str),
}

impl Input<'_> {
    /// Whether the line asks for anything but text to send.
    ///
    /// ```
    /// use rust_p2p_chat::chat::command::parse;
    ///
    /// assert!(parse("/nick bob").is_command());
    /// assert!(parse("/frobnicate").is_command());
    /// assert!(!parse("//nick").is_command());
    /// assert!(!parse("hello").is_command());
    /// ```
    pub fn is_command(&self) -> bool {
        !matches!(self, Input::Text(_))
    }
}

/// The commands, one per line, as `/help` shows them.
pub const HELP: &str = "Commands:
  /nick NAME        choose your nick
  /join ROOM        join a private room, or switch to one joined
  /join ROOM --public  join the public room ROOM, which LAN peers can find
  /leave [ROOM]     leave a room (the current one by default)
  /rooms            the rooms you are in, with how many others are in each
  /nearby           peers found on the LAN, and their public rooms
  /peers            connected peers: nick, fingerprint, address, round trip
  /history [N]      the last N lines kept of this room (default 50)
  /invite [--valid 1h]  an invite into this room, to give to someone
                    (from then on the room admits invited peers only)
  /kick NICK        remove a member: the room gets a new key it is not given
  /members          who holds this room's key, with fingerprints
  /msg NICK TEXT    a direct message that only NICK sees
  /send [NICK] PATH offer a file (to NICK, in a room of more than two)
  /accept N         receive file N offered to you; /reject N declines it
  /cancel N         stop transfer N, either way
  /files            transfers, with their state and progress
  /verify [NICK]    the safety number to compare with a member
  /trust [NICK]     mark a member as verified (after comparing)
  /id               your own identity
  /quit             leave
  /help             this list
  //text            send a line that starts with /";

/// Parses one typed line.
///
/// ```
/// use rust_p2p_chat::chat::command::{parse, Input};
///
/// assert_eq!(parse("hello"), Input::Text("hello"));
/// assert_eq!(parse("/verify"), Input::Verify(None));
/// assert_eq!(parse("/msg bob hi there"), Input::Msg { to: "bob", text: "hi there" });
/// assert_eq!(parse("//verify"), Input::Text("/verify"));
/// assert_eq!(parse("/frobnicate now"), Input::Unknown("/frobnicate"));
/// ```
pub fn parse(line: &str) -> Input<'_> {
    let Some(rest) = line.strip_prefix('/') else {
        return Input::Text(line);
    };
    if rest.starts_with('/') {
        return Input::Text(rest);
    }
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or(line);
    let arg = words.next();
    match word {
        "/verify" => Input::Verify(arg),
        "/trust" => Input::Trust(arg),
        "/nick" => arg.map_or(Input::Usage("/nick NAME"), Input::Nick),
        "/join" => match (arg, words.next(), words.next()) {
            (Some(room), None, None) => Input::Join {
                room,
                public: false,
            },
            (Some(room), Some("--public"), None) | (Some("--public"), Some(room), None) => {
                Input::Join { room, public: true }
            }
            _ => Input::Usage("/join ROOM [--public]"),
        },
        "/nearby" => Input::Nearby,
        "/leave" => Input::Leave(arg),
        "/rooms" => Input::Rooms,
        "/peers" => Input::Peers,
        "/history" => match arg.map(str::parse::<usize>) {
            None => Input::History(None),
            Some(Ok(n)) if n > 0 => Input::History(Some(n)),
            Some(_) => Input::Usage("/history [N], N a number of lines"),
        },
        "/msg" => match arg {
            Some(to) => {
                // The text is everything after the nick, as typed.
                let after_cmd = line[word.len()..].trim_start();
                let text = after_cmd[to.len()..].trim_start();
                if text.is_empty() {
                    Input::Usage("/msg NICK TEXT")
                } else {
                    Input::Msg { to, text }
                }
            }
            None => Input::Usage("/msg NICK TEXT"),
        },
        "/invite" => match (arg, words.next(), words.next()) {
            (None, None, None) => Input::Invite { valid: None },
            (Some("--valid"), Some(duration), None) => match parse_duration(duration) {
                Some(valid) => Input::Invite { valid: Some(valid) },
                None => Input::Usage(INVITE_USAGE),
            },
            _ => Input::Usage(INVITE_USAGE),
        },
        "/kick" => arg.map_or(Input::Usage("/kick NICK"), Input::Kick),
        "/members" => Input::Members,
        "/send" => {
            let rest = line[word.len()..].trim();
            if rest.is_empty() {
                Input::Usage("/send [NICK] PATH")
            } else {
                Input::SendFile(rest)
            }
        }
        "/accept" => number(arg, words.next()).map_or(Input::Usage("/accept N"), Input::Accept),
        "/reject" => number(arg, words.next()).map_or(Input::Usage("/reject N"), Input::Reject),
        "/cancel" => number(arg, words.next()).map_or(Input::Usage("/cancel N"), Input::Cancel),
        "/files" => Input::Files,
        "/id" => Input::Id,
        "/help" | "/?" => Input::Help,
        "/quit" | "/exit" => Input::Quit,
        _ => Input::Unknown(word),
    }
}

/// A transfer's number, the one word after a command.
fn number(arg: Option<&str>, more: Option<&str>) -> Option<u64> {
    match (arg, more) {
        (Some(n), None) => n.parse().ok(),
        _ => None,
    }
}

const INVITE_USAGE: &str =
    "/invite [--valid DURATION], DURATION a number and s, m, h or d (e.g. 30m, 1h, 7d; at most 365d)";

/// Longest validity of an invite, in seconds: a year.
pub const MAX_INVITE_VALID: u64 = 365 * 24 * 3600;

/// A duration typed as a number and a unit (`90s`, `30m`, `1h`, `7d`), in
/// seconds; at most [`MAX_INVITE_VALID`].
///
/// ```
/// use rust_p2p_chat::chat::command::parse_duration;
///
/// assert_eq!(parse_duration("1h"), Some(3600));
/// assert_eq!(parse_duration("30m"), Some(1800));
/// assert_eq!(parse_duration("0h"), None);
/// assert_eq!(parse_duration("400d"), None);
/// assert_eq!(parse_duration("1 h"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<u64> {
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 24 * 3600,
        _ => return None,
    };
    let number: u64 = text[..text.len() - 1].parse().ok()?;
    let seconds = number.checked_mul(unit)?;
    (1..=MAX_INVITE_VALID).contains(&seconds).then_some(seconds)
}

/// The hint shown for an unknown command.
pub fn unknown_hint(word: &str) -> String {
    format!(
        "Unknown command {}: /help lists the commands; start a line with // to send it as text",
        super::sanitize::inert(word)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_commands_take_a_path_or_a_number() {
        assert_eq!(
            parse("/send  bob my file.txt "),
            Input::SendFile("bob my file.txt")
        );
        assert_eq!(parse("/send"), Input::Usage("/send [NICK] PATH"));
        assert_eq!(parse("/accept 3"), Input::Accept(3));
        assert_eq!(parse("/accept x"), Input::Usage("/accept N"));
        assert_eq!(parse("/reject 1 2"), Input::Usage("/reject N"));
        assert_eq!(parse("/cancel 9"), Input::Cancel(9));
        assert_eq!(parse("/files"), Input::Files);
    }

    #[test]
    fn commands_take_trailing_words_and_escape_with_a_double_slash() {
        assert_eq!(parse("/trust  "), Input::Trust(None));
        assert_eq!(parse("/trust bob"), Input::Trust(Some("bob")));
        assert_eq!(parse("/nick"), Input::Usage("/nick NAME"));
        assert_eq!(parse("/msg bob"), Input::Usage("/msg NICK TEXT"));
        assert_eq!(
            parse("/msg bob  two  spaces"),
            Input::Msg {
                to: "bob",
                text: "two  spaces"
            }
        );
        assert_eq!(parse("/leave"), Input::Leave(None));
        assert_eq!(
            parse("/join lan --public"),
            Input::Join {
                room: "lan",
                public: true
            }
        );
        assert_eq!(
            parse("/join lan"),
            Input::Join {
                room: "lan",
                public: false
            }
        );
        assert!(matches!(parse("/join lan --loud"), Input::Usage(_)));
        assert_eq!(parse("/nearby"), Input::Nearby);
        assert_eq!(parse("/quit now"), Input::Quit);
        assert_eq!(parse("/"), Input::Unknown("/"));
        assert_eq!(parse("//"), Input::Text("/"));
        assert_eq!(parse(" /verify"), Input::Text(" /verify"));
        assert_eq!(parse(""), Input::Text(""));
    }

    #[test]
    fn the_hint_renders_control_characters_inert() {
        assert!(unknown_hint("/\x1b[2J").contains("^["));
    }

    #[test]
    fn invite_takes_an_optional_validity() {
        assert_eq!(parse("/invite"), Input::Invite { valid: None });
        assert_eq!(
            parse("/invite --valid 2h"),
            Input::Invite { valid: Some(7200) }
        );
        assert!(matches!(parse("/invite --valid"), Input::Usage(_)));
        assert!(matches!(parse("/invite --valid soon"), Input::Usage(_)));
        assert!(matches!(parse("/invite bob"), Input::Usage(_)));
    }

    #[test]
    fn history_takes_an_optional_count() {
        assert_eq!(parse("/history"), Input::History(None));
        assert_eq!(parse("/history 5"), Input::History(Some(5)));
        assert!(matches!(parse("/history x"), Input::Usage(_)));
        assert!(matches!(parse("/history 0"), Input::Usage(_)));
    }
}
