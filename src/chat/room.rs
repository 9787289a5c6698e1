//! Rooms, members and names: the pure state of a group chat.
//!
//! Everything here is data and decisions, no I/O, so the rules (what a
//! valid name is, how a member is shown, which messages are new and in
//! order) are tested without a network. The app feeds in what the network
//! reports and shows what comes out.
//!
//! Messages are identified by author, session and sequence number, never by
//! their text: two identical lines are two messages. A session is one run
//! of the author's program (a random number chosen at start), so sequence
//! numbers may restart without being mistaken for replays.

use std::collections::BTreeMap;

/// The room joined when none is named.
pub const DEFAULT_ROOM: &str = "lobby";

/// Longest room or nick name, in bytes.
pub const MAX_NAME: usize = 32;

/// Why a room or nick name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("a {0} name cannot be empty")]
    Empty(&'static str),
    /// Too long.
    #[error("a {what} name is at most {MAX_NAME} bytes; '{name}' is longer")]
    TooLong {
        /// Room or nick.
        what: &'static str,
        /// The name, made inert.
        name: String,
    },
    /// A character outside the allowed set.
    #[error("a {what} name may use letters, digits, '-', '_' and '.'; '{name}' has others")]
    BadCharacter {
        /// Room or nick.
        what: &'static str,
        /// The name, made inert.
        name: String,
    },
    /// A nick that would read as the label of an unnamed peer.
    #[error("'{0}' is how unnamed peers are shown; choose another nick")]
    Reserved(String),
}

fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(what));
    }
    let shown = || super::sanitize::inert(&name.chars().take(64).collect::<String>());
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong {
            what,
            name: shown(),
        });
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(NameError::BadCharacter {
            what,
            name: shown(),
        });
    }
    Ok(())
}

/// Checks a room name: 1 to 32 letters, digits, `-`, `_` or `.`.
///
/// ```
/// use rust_p2p_chat::chat::room::check_room;
///
/// assert!(check_room("lobby").is_ok());
/// assert!(check_room("rust-dev_2.0").is_ok());
/// assert!(check_room("no spaces").is_err());
/// assert!(check_room("").is_err());
/// ```
pub fn check_room(name: &str) -> Result<(), NameError> {
    check_name("room", name)
}

/// How a public room is told apart from a private one of the same name:
/// its key starts with this mark (`+lan`), which no room name can hold.
/// A private room (the default) is joined only by peers that dial one of
/// its members; a public one is also met through LAN discovery. The two
/// never mix: `lobby` and `+lobby` are different rooms, on different
/// topics, with different histories.
pub const PUBLIC_MARK: char = '+';

/// The key of the public room called `name`.
///
/// ```
/// use rust_p2p_chat::chat::room::{public_room, is_public, room_name};
///
/// assert_eq!(public_room("lan"), "+lan");
/// assert!(is_public("+lan") && !is_public("lan"));
/// assert_eq!(room_name("+lan"), "lan");
/// ```
pub fn public_room(name: &str) -> String {
    format!("{PUBLIC_MARK}{name}")
}

/// Whether a room key names a public room.
pub fn is_public(room: &str) -> bool {
    room.starts_with(PUBLIC_MARK)
}

/// The name of a room, without the public mark.
pub fn room_name(room: &str) -> &str {
    room.strip_prefix(PUBLIC_MARK).unwrap_or(room)
}

/// Checks a room key: a room name, or `+` and a room name for a public
/// room.
///
/// ```
/// use rust_p2p_chat::chat::room::check_room_key;
///
/// assert!(check_room_key("lobby").is_ok());
/// assert!(check_room_key("+lobby").is_ok());
/// assert!(check_room_key("++lobby").is_err());
/// ```
pub fn check_room_key(room: &str) -> Result<(), NameError> {
    check_room(room_name(room))
}

/// Checks a nick: like a room name, and not `Peer` or `Peer-...`, which
/// are how unnamed peers are shown.
///
/// ```
/// use rust_p2p_chat::chat::room::check_nick;
///
/// assert!(check_nick("alice").is_ok());
/// assert!(check_nick("Peer-1A2B").is_err());
/// assert!(check_nick("al\u{1b}ice").is_err());
/// ```
pub fn check_nick(name: &str) -> Result<(), NameError> {
    check_name("nick", name)?;
    let lower = name.to_lowercase();
    if lower == "peer" || lower.starts_with("peer-") {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// A member of a room, as far as we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its nick, if it chose one.
    pub nick: Option<String>,
    /// Its fingerprint (`XXXX XXXX XXXX XXXX`).
    pub fingerprint: String,
    /// True when the nick is bound, in the user's known peers, to another
    /// key that the user trusted.
    pub impostor: bool,
}

/// The other members of one room, keyed by peer ID.
#[derive(Debug, Default, Clone)]
pub struct Roster {
    members: BTreeMap<String, Member>,
}

impl Roster {
    /// Adds a member; true if it was not there before.
    pub fn join(&mut self, peer: &str, member: Member) -> bool {
        self.members.insert(peer.to_owned(), member).is_none()
    }

    /// Removes a member; the member if it was there.
    pub fn leave(&mut self, peer: &str) -> Option<Member> {
        self.members.remove(peer)
    }

    /// Changes a member's nick; the old one if the member is known.
    pub fn rename(
        &mut self,
        peer: &str,
        nick: Option<String>,
        impostor: bool,
    ) -> Option<Option<String>> {
        let member = self.members.get_mut(peer)?;
        member.impostor = impostor;
        Some(std::mem::replace(&mut member.nick, nick))
    }

    /// The member, if present.
    pub fn get(&self, peer: &str) -> Option<&Member> {
        self.members.get(peer)
    }

    /// Whether the peer is a member.
    pub fn contains(&self, peer: &str) -> bool {
        self.members.contains_key(peer)
    }

    /// How many other members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether we are alone.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Peer IDs and members, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Member)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How a member is shown: its nick (with a fingerprint suffix when
    /// another member uses the same nick, and a mark when the nick belongs
    /// to a key the user trusted and this is another key); without a nick,
    /// `Peer` when it is the only other member (the classic text), else
    /// `Peer-XXXX`.
    ///
    /// ```
    /// use rust_p2p_chat::chat::room::{Member, Roster};
    ///
    /// let member = |nick: Option<&str>, fp: &str| Member {
    ///     nick: nick.map(String::from),
    ///     fingerprint: fp.into(),
    ///     impostor: false,
    /// };
    /// let mut roster = Roster::default();
    /// roster.join("a", member(None, "1A2B 3C4D 5E6F 7A8B"));
    /// assert_eq!(roster.display("a"), "Peer");
    /// roster.join("b", member(Some("bob"), "9999 0000 1111 2222"));
    /// assert_eq!(roster.display("a"), "Peer-1A2B");
    /// roster.join("c", member(Some("bob"), "3333 4444 5555 6666"));
    /// assert_eq!(roster.display("c"), "bob#3333");
    /// ```
    pub fn display(&self, peer: &str) -> String {
        let Some(member) = self.members.get(peer) else {
            return "Peer".into();
        };
        let short = short_fingerprint(&member.fingerprint);
        match &member.nick {
            None if self.members.len() <= 1 => "Peer".into(),
            None => format!("Peer-{short}"),
            Some(nick) => {
                let shared = self
                    .members
                    .iter()
                    .any(|(other, m)| other != peer && m.nick.as_deref() == Some(nick));
                let mut shown = if shared {
                    format!("{nick}#{short}")
                } else {
                    nick.clone()
                };
                if member.impostor {
                    shown.push_str("(not the trusted one!)");
                }
                shown
            }
        }
    }

    /// The peer IDs whose display name or nick is `name` (a nick may be
    /// shared; `nick#XXXX` and `Peer-XXXX` pick one).
    pub fn find(&self, name: &str) -> Vec<String> {
        self.members
            .keys()
            .filter(|peer| {
                let member = &self.members[*peer];
                self.display(peer) == name
                    || peer.as_str() == name
                    || member.nick.as_deref() == Some(name)
                    || format!("Peer-{}", short_fingerprint(&member.fingerprint)) == name
            })
            .cloned()
            .collect()
    }
}

/// The first four hex digits of a fingerprint.
pub fn short_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(4)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_room(&"r".repeat(32)).is_ok());
        assert!(matches!(
            check_room(&"r".repeat(33)),
            Err(NameError::TooLong { .. })
        ));
        assert!(matches!(check_nick("peer"), Err(NameError::Reserved(_))));
        assert!(check_nick("peerless").is_ok());
        assert!(check_nick("zoë").is_ok());
        let err = check_nick("a\u{202e}b").unwrap_err().to_string();
        assert!(!err.contains('\u{202e}'), "{err}");
    }

    #[test]
    fn display_names_follow_the_room() {
        let mut roster = Roster::default();
        let fp = "ABCD 0000 0000 0000";
        roster.join(
            "x",
            Member {
                nick: Some("alice".into()),
                fingerprint: fp.into(),
                impostor: true,
            },
        );
        assert_eq!(roster.display("x"), "alice(not the trusted one!)");
        assert_eq!(roster.find("alice"), vec!["x".to_string()]);
        assert_eq!(roster.rename("x", None, false), Some(Some("alice".into())));
        assert_eq!(roster.display("x"), "Peer");
        assert_eq!(roster.find("Peer-ABCD"), vec!["x".to_string()]);
    }
}
