//! What a room message carries on gossipsub.
//!
//! A gossipsub message is a fixed 18-byte header (the sender's session, a
//! kind byte, a sequence number, big-endian, and an attempt byte) followed
//! by a postcard body. The header alone makes the message id, with the
//! author's peer ID: ids are author + session + kind + sequence, never a
//! hash of the text, so a repeated line is a new message and a replayed
//! one is the same message. The attempt byte lets a publish that found
//! every queue full be tried again under a fresh gossipsub id; receivers
//! drop the copy they already have by its sequence number.
//! Typed lines travel in batches (one gossipsub message per burst of
//! input), each line numbered `first + i`, which is what lets a room move
//! hundreds of thousands of lines a second.

use libp2p::gossipsub::{self, MessageId, TopicHash};
use serde::{Deserialize, Serialize};

use libp2p::{Multiaddr, PeerId};

use crate::chat::delivery::{Held, Said};

use crate::chat::room::{check_nick, check_room_key, is_public};
use crate::chat::room_key::{RoomKey, NONCE_LEN, SEAL_OVERHEAD};

/// Topic names are this prefix and the room name (public rooms), or
/// [`PRIVATE_TOPIC`] and the key's topic id (private ones).
pub const TOPIC_PREFIX: &str = "rust-p2p-chat/room/";

/// What a private room's topic has after [`TOPIC_PREFIX`].
pub const PRIVATE_TOPIC: &str = "k/";

const HEADER: usize = 18;

/// Where the attempt byte is in an encoded frame.
pub const ATTEMPT_BYTE: usize = 17;

/// Kind byte of a batch of lines.
const KIND_LINES: u8 = 0;
/// Kind byte of a hello (presence, nick, addresses).
const KIND_HELLO: u8 = 1;
/// Kind byte of a goodbye.
const KIND_LEAVE: u8 = 2;
/// Kind byte of an acknowledgement of stored lines.
const KIND_HAVE: u8 = 3;

/// Authors' sessions one message may list as held.
pub const MAX_HOLDINGS: usize = crate::chat::delivery::MAX_HOLDINGS;

/// Addresses one hello carries at most.
pub const MAX_HELLO_ADDRS: usize = 16;

/// The gossipsub topic of a room. A public room's topic is its name, so
/// everyone on the LAN who joins it meets. A private room's topic is
/// derived from its key (see [`RoomKey::topic_id`]), so two private rooms
/// of one name (every chat is `lobby` unless named) never mix, and the
/// topic tells nothing of the name to whoever sees it.
pub fn topic(room: &str, key: Option<&RoomKey>) -> gossipsub::IdentTopic {
    match key {
        Some(key) if !is_public(room) => private_topic(key.topic_id()),
        _ => gossipsub::IdentTopic::new(format!("{TOPIC_PREFIX}{room}")),
    }
}

/// The topic of the private room whose key has this topic id (see
/// [`RoomKey::topic_id`]).
pub fn private_topic(topic_id: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("{TOPIC_PREFIX}{PRIVATE_TOPIC}{topic_id}"))
}

/// The public room a topic names, if it names one (a public room's key
/// keeps its mark, see [`crate::chat::room::PUBLIC_MARK`]); a private
/// room's topic names no room.
pub fn room_of(topic: &TopicHash) -> Option<String> {
    let room = topic.as_str().strip_prefix(TOPIC_PREFIX)?;
    if !is_public(room) {
        return None;
    }
    check_room_key(room).ok()?;
    Some(room.to_owned())
}

/// A frame's encoding, its body sealed under a private room's `key`:
/// the header stays readable (gossipsub names a message by it, see
/// [`message_id`]), and it is bound to the seal with the author, all but
/// the attempt byte (which a retry changes).
pub fn seal(data: &[u8], author: &PeerId, key: &RoomKey, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    if data.len() < HEADER {
        return data.to_vec();
    }
    let (header, body) = data.split_at(HEADER);
    let mut out = Vec::with_capacity(data.len() + SEAL_OVERHEAD);
    out.extend_from_slice(header);
    out.extend_from_slice(&key.seal(&bound(author, header), body, nonce));
    out
}

/// The encoding of a frame [`seal`]ed under `key` by `author`.
pub fn open(data: &[u8], author: &PeerId, key: &RoomKey) -> Result<Vec<u8>, FrameError> {
    if data.len() < HEADER {
        return Err(FrameError::Malformed);
    }
    let (header, sealed) = data.split_at(HEADER);
    let body = key
        .open(&bound(author, header), sealed)
        .map_err(|_| FrameError::NotOpened)?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    Ok(out)
}

/// What a sealed body is bound to.
fn bound(author: &PeerId, header: &[u8]) -> Vec<u8> {
    let mut bound = author.to_bytes();
    bound.extend_from_slice(&header[..ATTEMPT_BYTE]);
    bound
}

/// A room message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomFrame {
    /// The author's session (one run of its program).
    pub session: u64,
    /// For lines, the first line's number; else a counter.
    pub seq: u64,
    /// Which try at publishing this is (not part of its identity).
    pub attempt: u8,
    /// What it says.
    pub body: Body,
}

/// The body of a room message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Lines typed, in order, numbered from the frame's `seq`.
    Lines {
        /// The author's clock, milliseconds since 1970.
        sent_ms: u64,
        /// The author's nick.
        nick: Option<String>,
        /// The lines.
        texts: Vec<String>,
    },
    /// "I am here": the author's nick and where it can be reached. Sent on
    /// joining, on a nick change, and when a new member appears.
    Hello {
        /// The author's nick.
        nick: Option<String>,
        /// Addresses it listens on, as multiaddr bytes.
        addrs: Vec<Vec<u8>>,
        /// The number its next line in this room will have: a member that
        /// has fewer lines of it missed the last ones, and fetches them.
        next: u64,
        /// What it holds of recent authors' lines (see [`Body::Have`]),
        /// so a member back from a partition learns what it missed even
        /// from authors who are gone.
        have: Vec<Holding>,
        /// The room admits only those who hold its key: a member hands
        /// the key to no peer that dials it (see
        /// [`room_access`](super::room_access)).
        invite_only: bool,
    },
    /// "I am leaving this room."
    Leave,
    /// "I have stored every line below `next` of these sessions": an
    /// author marks its lines delivered, and a member that has fewer
    /// fetches the rest from the sender of this.
    Have {
        /// The sessions.
        have: Vec<Holding>,
    },
}

/// Every line below `next` of one author's session is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The author's peer ID, as bytes.
    pub author: Vec<u8>,
    /// The author's session.
    pub session: u64,
    /// One past the last line held.
    pub next: u64,
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Lines { .. } => KIND_LINES,
            Body::Hello { .. } => KIND_HELLO,
            Body::Leave => KIND_LEAVE,
            Body::Have { .. } => KIND_HAVE,
        }
    }
}

/// Why a room message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its header, or the body does not decode.
    #[error("malformed room message")]
    Malformed,
    /// The header's kind does not match the body.
    #[error("room message header and body disagree")]
    Inconsistent,
    /// A nick that is not valid.
    #[error("room message with an invalid nick")]
    BadNick,
    /// More addresses than allowed.
    #[error("room message over the size limit")]
    TooLarge,
    /// Sealed under another key (or none), or altered on the way.
    #[error("room message that does not open with the room's key")]
    NotOpened,
}

impl RoomFrame {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 64);
        out.extend_from_slice(&self.session.to_be_bytes());
        out.push(self.body.kind());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.attempt);
        // Encoding plain data into a Vec cannot fail.
        postcard::to_extend(&self.body, out).unwrap_or_default()
    }

    /// Decodes and checks a frame. Its size is bounded by gossipsub's
    /// limit; lines longer than the user's limit are for the app to drop,
    /// so that the rest of their batch is still shown.
    pub fn decode(data: &[u8]) -> Result<RoomFrame, FrameError> {
        if data.len() < HEADER {
            return Err(FrameError::Malformed);
        }
        let mut session = [0u8; 8];
        session.copy_from_slice(&data[..8]);
        let kind = data[8];
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&data[9..17]);
        let attempt = data[17];
        let body: Body =
            postcard::from_bytes(&data[HEADER..]).map_err(|_| FrameError::Malformed)?;
        if body.kind() != kind {
            return Err(FrameError::Inconsistent);
        }
        match &body {
            Body::Lines { nick, .. } => check_optional_nick(nick.as_deref())?,
            Body::Hello {
                nick, addrs, have, ..
            } => {
                if addrs.len() > MAX_HELLO_ADDRS || addrs.iter().any(|a| a.len() > 256) {
                    return Err(FrameError::TooLarge);
                }
                check_holdings(have)?;
                check_optional_nick(nick.as_deref())?;
            }
            Body::Have { have } => check_holdings(have)?,
            Body::Leave => {}
        }
        Ok(RoomFrame {
            session: u64::from_be_bytes(session),
            seq: u64::from_be_bytes(seq),
            attempt,
            body,
        })
    }
}

fn check_holdings(have: &[Holding]) -> Result<(), FrameError> {
    if have.len() > MAX_HOLDINGS || have.iter().any(|h| h.author.len() > 64) {
        return Err(FrameError::TooLarge);
    }
    Ok(())
}

fn check_optional_nick(nick: Option<&str>) -> Result<(), FrameError> {
    match nick {
        Some(nick) => check_nick(nick).map_err(|_| FrameError::BadNick),
        None => Ok(()),
    }
}

/// Whether encoded frame data carries typed lines (not a hello or leave).
pub fn is_lines(data: &[u8]) -> bool {
    data.get(8) == Some(&KIND_LINES)
}

/// Gossipsub message ids: the author, the room and the header, never the
/// text (sequence numbers count per room).
pub fn message_id(message: &gossipsub::Message) -> MessageId {
    let mut id = message.source.map(|p| p.to_bytes()).unwrap_or_default();
    id.extend_from_slice(message.topic.as_str().as_bytes());
    id.push(0);
    id.extend_from_slice(&message.data[..message.data.len().min(HEADER)]);
    MessageId::new(&id)
}

impl RoomFrame {
    /// The frame that says `said`; a hello also gives `addrs`, where we
    /// can be reached.
    pub fn saying(said: Said, addrs: &[Multiaddr]) -> RoomFrame {
        let (session, seq, body) = match said {
            Said::Lines {
                session,
                first,
                sent_ms,
                nick,
                texts,
            } => (
                session,
                first,
                Body::Lines {
                    sent_ms,
                    nick,
                    texts,
                },
            ),
            Said::Hello {
                session,
                seq,
                nick,
                next,
                have,
            } => (
                session,
                seq,
                Body::Hello {
                    nick,
                    addrs: addrs
                        .iter()
                        .take(MAX_HELLO_ADDRS)
                        .map(|a| a.to_vec())
                        .collect(),
                    next,
                    have: holdings(have),
                    invite_only: false,
                },
            ),
            Said::Have { session, seq, have } => (
                session,
                seq,
                Body::Have {
                    have: holdings(have),
                },
            ),
            Said::Leave { session, seq } => (session, seq, Body::Leave),
        };
        RoomFrame {
            session,
            seq,
            attempt: 0,
            body,
        }
    }

    /// What the frame says, and the addresses a hello gives (authors that
    /// are not peer IDs, and addresses that do not parse, are left out).
    pub fn into_said(self) -> (Said, Vec<Multiaddr>) {
        let RoomFrame {
            session, seq, body, ..
        } = self;
        match body {
            Body::Lines {
                sent_ms,
                nick,
                texts,
            } => (
                Said::Lines {
                    session,
                    first: seq,
                    sent_ms,
                    nick,
                    texts,
                },
                Vec::new(),
            ),
            Body::Hello {
                nick,
                addrs,
                next,
                have,
                ..
            } => (
                Said::Hello {
                    session,
                    seq,
                    nick,
                    next,
                    have: held(have),
                },
                addrs
                    .into_iter()
                    .filter_map(|a| Multiaddr::try_from(a).ok())
                    .collect(),
            ),
            Body::Have { have } => (
                Said::Have {
                    session,
                    seq,
                    have: held(have),
                },
                Vec::new(),
            ),
            Body::Leave => (Said::Leave { session, seq }, Vec::new()),
        }
    }
}

/// Holdings on the wire: authors as peer ID bytes.
fn holdings(have: Vec<Held>) -> Vec<Holding> {
    have.into_iter()
        .filter_map(|h| {
            let author: PeerId = h.author.parse().ok()?;
            Some(Holding {
                author: author.to_bytes(),
                session: h.session,
                next: h.next,
            })
        })
        .take(MAX_HOLDINGS)
        .collect()
}

/// Holdings from the wire.
fn held(have: Vec<Holding>) -> Vec<Held> {
    have.into_iter()
        .filter_map(|h| {
            let author = PeerId::from_bytes(&h.author).ok()?;
            Some(Held {
                author: author.to_string(),
                session: h.session,
                next: h.next,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> RoomFrame {
        RoomFrame {
            session: 7,
            seq: 1,
            attempt: 0,
            body: Body::Lines {
                sent_ms: 5,
                nick: Some("alice".into()),
                texts: texts.iter().map(|t| t.to_string()).collect(),
            },
        }
    }

    #[test]
    fn frames_round_trip() {
        for frame in [
            lines(&["a", "a", ""]),
            RoomFrame {
                session: 1,
                seq: 9,
                attempt: 1,
                body: Body::Hello {
                    nick: None,
                    addrs: vec![vec![1, 2, 3]],
                    next: 4,
                    have: vec![Holding {
                        author: vec![7; 38],
                        session: 3,
                        next: 12,
                    }],
                    invite_only: true,
                },
            },
            RoomFrame {
                session: 1,
                seq: 11,
                attempt: 0,
                body: Body::Have { have: Vec::new() },
            },
            RoomFrame {
                session: 1,
                seq: 10,
                attempt: 0,
                body: Body::Leave,
            },
        ] {
            assert_eq!(RoomFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        assert_eq!(RoomFrame::decode(&[0; 5]), Err(FrameError::Malformed));
        let mut data = lines(&["x"]).encode();
        data[8] = KIND_LEAVE;
        assert_eq!(RoomFrame::decode(&data), Err(FrameError::Inconsistent));
        let many_addrs = RoomFrame {
            session: 1,
            seq: 1,
            attempt: 0,
            body: Body::Hello {
                nick: None,
                addrs: vec![vec![0]; 17],
                next: 1,
                have: Vec::new(),
                invite_only: false,
            },
        };
        assert_eq!(
            RoomFrame::decode(&many_addrs.encode()),
            Err(FrameError::TooLarge)
        );
        let many_holdings = RoomFrame {
            session: 1,
            seq: 1,
            attempt: 0,
            body: Body::Have {
                have: vec![
                    Holding {
                        author: vec![1],
                        session: 1,
                        next: 1
                    };
                    MAX_HOLDINGS + 1
                ],
            },
        };
        assert_eq!(
            RoomFrame::decode(&many_holdings.encode()),
            Err(FrameError::TooLarge)
        );
        assert_eq!(
            RoomFrame::decode(&many_addrs.encode()),
            Err(FrameError::TooLarge)
        );
        let mut bad_nick = lines(&["x"]);
        if let Body::Lines { nick, .. } = &mut bad_nick.body {
            *nick = Some("evil\u{1b}[2J".into());
        }
        assert_eq!(
            RoomFrame::decode(&bad_nick.encode()),
            Err(FrameError::BadNick)
        );
    }

    #[test]
    fn ids_depend_on_author_and_header_not_text() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let msg = |frame: &RoomFrame| gossipsub::Message {
            source: Some(peer),
            data: frame.encode(),
            sequence_number: None,
            topic: topic("+lobby", None).hash(),
        };
        let a = lines(&["same"]);
        let mut b = lines(&["same"]);
        b.seq = 2;
        assert_ne!(message_id(&msg(&a)), message_id(&msg(&b)));
        assert_eq!(message_id(&msg(&a)), message_id(&msg(&lines(&["other"]))));
        let mut elsewhere = msg(&a);
        elsewhere.topic = topic("+side", None).hash();
        assert_ne!(message_id(&msg(&a)), message_id(&elsewhere));
    }

    #[test]
    fn private_rooms_of_one_name_have_a_topic_per_key_that_names_no_room() {
        let (a, b) = (RoomKey::from_bytes([1; 32]), RoomKey::from_bytes([2; 32]));
        assert_ne!(
            topic("lobby", Some(&a)).hash(),
            topic("lobby", Some(&b)).hash()
        );
        assert_eq!(
            topic("lobby", Some(&a)).hash(),
            topic("side", Some(&a)).hash()
        );
        assert_eq!(topic("+lan", Some(&a)).hash(), topic("+lan", None).hash());
        assert!(!topic("lobby", Some(&a)).hash().as_str().contains("lobby"));
        assert_eq!(
            room_of(&topic("+lan", None).hash()).as_deref(),
            Some("+lan")
        );
        assert_eq!(room_of(&topic("lobby", Some(&a)).hash()), None);
        let hash = |s: &str| TopicHash::from_raw(format!("{TOPIC_PREFIX}{s}"));
        assert_eq!(room_of(&hash("lobby")), None);
        assert_eq!(room_of(&hash("+lan/x")), None);
        assert_eq!(room_of(&hash("+bad name")), None);
    }

    #[test]
    fn a_sealed_frame_opens_only_with_its_key_author_and_header() {
        let key = RoomKey::from_bytes([4; 32]);
        let [ann, bob] = [(); 2].map(|()| {
            libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id()
        });
        let plain = lines(&["the secret plan"]).encode();
        let sealed = seal(&plain, &ann, &key, [6; NONCE_LEN]);
        assert_eq!(
            sealed[..HEADER],
            plain[..HEADER],
            "the header stays readable"
        );
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&sealed, &ann, &key), Ok(plain.clone()));
        assert_eq!(
            open(&sealed, &ann, &RoomKey::from_bytes([5; 32])),
            Err(FrameError::NotOpened)
        );
        assert_eq!(open(&sealed, &bob, &key), Err(FrameError::NotOpened));
        let mut retried = sealed.clone();
        retried[ATTEMPT_BYTE] = 3;
        let mut expected = plain.clone();
        expected[ATTEMPT_BYTE] = 3;
        assert_eq!(
            open(&retried, &ann, &key),
            Ok(expected),
            "a retry still opens"
        );
        let mut renumbered = sealed;
        renumbered[16] ^= 1;
        assert_eq!(open(&renumbered, &ann, &key), Err(FrameError::NotOpened));
        assert_eq!(open(&plain, &ann, &key), Err(FrameError::NotOpened));
        assert_eq!(open(&[0; 3], &ann, &key), Err(FrameError::Malformed));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// What decoding may allocate beyond a multiple of its input:
        /// serde's first allocation for a sequence of unknown length.
        const DECODE_SLACK: usize = 1024 * 1024 + 4096;

        fn holding() -> impl Strategy<Value = Holding> {
            (
                proptest::collection::vec(any::<u8>(), 0..=64),
                any::<u64>(),
                any::<u64>(),
            )
                .prop_map(|(author, session, next)| Holding {
                    author,
                    session,
                    next,
                })
        }

        fn nick() -> impl Strategy<Value = Option<String>> {
            proptest::option::of("[a-z][a-z0-9_-]{0,15}")
        }

        fn body() -> impl Strategy<Value = Body> {
            prop_oneof![
                (
                    any::<u64>(),
                    nick(),
                    proptest::collection::vec(".{0,40}", 0..20)
                )
                    .prop_map(|(sent_ms, nick, texts)| Body::Lines {
                        sent_ms,
                        nick,
                        texts
                    }),
                (
                    nick(),
                    proptest::collection::vec(
                        proptest::collection::vec(any::<u8>(), 0..=256),
                        0..=MAX_HELLO_ADDRS
                    ),
                    any::<u64>(),
                    proptest::collection::vec(holding(), 0..=MAX_HOLDINGS)
                )
                    .prop_map(|(nick, addrs, next, have)| Body::Hello {
                        nick,
                        addrs,
                        next,
                        have,
                        invite_only: next % 2 == 0,
                    }),
                Just(Body::Leave),
                proptest::collection::vec(holding(), 0..=MAX_HOLDINGS)
                    .prop_map(|have| Body::Have { have }),
            ]
        }

        proptest! {
            #[test]
            fn every_valid_frame_round_trips(
                session in any::<u64>(),
                seq in any::<u64>(),
                attempt in any::<u8>(),
                body in body(),
            ) {
                let frame = RoomFrame { session, seq, attempt, body };
                prop_assert_eq!(RoomFrame::decode(&frame.encode()), Ok(frame));
            }

            #[test]
            fn arbitrary_bytes_decode_to_a_frame_or_an_error_never_a_panic(
                data in proptest::collection::vec(any::<u8>(), 0..2048),
            ) {
                if let Ok(frame) = RoomFrame::decode(&data) {
                    // Whatever decodes keeps within the limits it checks.
                    if let Body::Hello { addrs, have, .. } = &frame.body {
                        prop_assert!(addrs.len() <= MAX_HELLO_ADDRS);
                        prop_assert!(have.len() <= MAX_HOLDINGS);
                    }
                }
            }

            /// Whatever a room message holds, decoding it allocates at
            /// most what the format allows for its size: a declared count
            /// or length is never taken on trust (serde preallocates at
            /// most 1 MiB for a sequence it has not read yet).
            #[test]
            fn decoding_arbitrary_bytes_allocates_within_their_size(
                bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            ) {
                let (_, peak) = crate::test_alloc::peak_during(|| RoomFrame::decode(&bytes));
                prop_assert!(
                    peak <= DECODE_SLACK + 64 * bytes.len(),
                    "{} bytes allocated {} at once", bytes.len(), peak
                );
            }

            #[test]
            fn a_valid_frame_cut_short_or_with_a_byte_changed_never_panics(
                body in body(),
                cut in any::<prop::sample::Index>(),
                flip in any::<prop::sample::Index>(),
                byte in any::<u8>(),
            ) {
                let data = RoomFrame { session: 1, seq: 2, attempt: 0, body }.encode();
                let _ = RoomFrame::decode(&data[..cut.index(data.len() + 1)]);
                let mut changed = data.clone();
                let at = flip.index(changed.len());
                changed[at] = byte;
                let _ = RoomFrame::decode(&changed);
            }
        }
    }
}
