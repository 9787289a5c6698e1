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
    /// `/verify`: show the safety number of the chat.
    Verify,
    /// `/trust`: mark the peer as verified.
    Trust,
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
  /verify   show the safety number to compare with your peer
  /trust    mark the peer as verified (after comparing safety numbers)
  /id       show your own identity
  /quit     end the chat
  /help     this list
  //text    send a line that starts with /";

/// Parses one typed line.
///
/// ```
/// use rust_p2p_chat::chat::command::{parse, Input};
///
/// assert_eq!(parse("hello"), Input::Text("hello"));
/// assert_eq!(parse("/verify"), Input::Verify);
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
    let word = line.split_whitespace().next().unwrap_or(line);
    match word {
        "/verify" => Input::Verify,
        "/trust" => Input::Trust,
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
        assert_eq!(parse("/trust  "), Input::Trust);
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
}
