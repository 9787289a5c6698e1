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
  /msg NICK TEXT    a direct message that only NICK sees
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
        "/id" => Input::Id,
        "/help" | "/?" => Input::Help,
        "/quit" | "/exit" => Input::Quit,
        _ => Input::Unknown(word),
    }
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
    fn history_takes_an_optional_count() {
        assert_eq!(parse("/history"), Input::History(None));
        assert_eq!(parse("/history 5"), Input::History(Some(5)));
        assert!(matches!(parse("/history x"), Input::Usage(_)));
        assert!(matches!(parse("/history 0"), Input::Usage(_)));
    }
}
