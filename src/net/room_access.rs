//! Which private room a member means by a name, and who may have its key.
//!
//! Every chat is a room, `lobby` unless named, and many private rooms
//! share a name; each is told apart by its key (see
//! [`room_frame::topic`](super::room_frame::topic)). A peer that dials a
//! member asks it on this stream protocol about the room of that name,
//! saying which key it holds, if any (by the key's topic id, which says
//! nothing of the key). The member answers:
//! - that the asker holds the room's key already;
//! - the key itself, over this authenticated, encrypted stream, when the
//!   room admits whoever dials a member (a two-peer chat, as the classic
//!   program did: the listener accepts whoever connects);
//! - that the room is by invitation, once any member has handed out an
//!   invite: then only a key holder is in;
//! - or nothing, when it is in no private room of that name.
//!
//! One length-prefixed postcard question and one answer, both bounded in
//! size and time. Discovery never asks, so a peer met only through the LAN
//! learns nothing of anyone's private rooms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::fetch::{read_message, write_message};
use super::{Client, Error, NetEvent};
use crate::chat::membership::{Answers, Catchup, SealedRotation};
use crate::chat::room_key::{RoomAccess, RoomKey, KEY_LEN};

/// The protocol.
pub const ROOM_PROTOCOL: StreamProtocol = StreamProtocol::new("/rust-p2p-chat/room/2.0.0");

/// Largest question or answer, in bytes: a room name and a topic id, a
/// key, or the rotations of a room's key (at most 16, each a key and up
/// to 256 removed members' peer IDs).
const MAX_MESSAGE: usize = 256 * 1024;

/// How long a question may take.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Questions answered at once at most; more wait for their stream to be
/// taken (libp2p-stream drops streams nobody takes in time).
const MAX_ANSWERING: usize = 16;

/// The private rooms we are in, shared between the event loop (which
/// joins and leaves), the client (which marks a room invite-only and
/// keeps what to tell members that come back) and the task that answers.
pub type Rooms = Arc<Mutex<HashMap<String, Shared>>>;

/// What is known of one private room to answer about it.
#[derive(Debug, Clone)]
pub struct Shared {
    pub(super) access: RoomAccess,
    pub(super) answers: Answers,
}

#[derive(Serialize, Deserialize)]
enum Question {
    /// Which room of this name are you in? I hold the key of this topic.
    Ask {
        room: String,
        holding: Option<String>,
    },
    /// The room's key changed: here is how.
    Rotated {
        room: String,
        rotations: Vec<SealedRotation>,
    },
}

#[derive(Serialize, Deserialize)]
enum Reply {
    NotHere,
    Same,
    Key(Vec<u8>),
    ByInvitation,
    Rotations(Vec<SealedRotation>),
    Removed,
    Taken,
}

/// What a member said of the private room of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// We hold its key already.
    Same,
    /// Its key: the room admits whoever dials a member.
    Key(RoomKey),
    /// It admits only key holders, and we hold another key or none.
    ByInvitation,
    /// Its key changed since the one we hold: how.
    Rotations(Vec<SealedRotation>),
    /// We were removed from it.
    Removed,
}

impl Client {
    /// Asks `peer` about the private room called `room`, saying which key
    /// we hold for that name; `None` when it is in none or does not
    /// answer.
    pub async fn ask_room(
        &self,
        peer: PeerId,
        room: &str,
        holding: Option<&RoomKey>,
    ) -> Option<Answer> {
        let mut control = self.control.clone();
        let question = Question::Ask {
            room: room.to_owned(),
            holding: holding.map(|k| k.topic_id().to_owned()),
        };
        let work = async {
            let stream = control.open_stream(peer, ROOM_PROTOCOL).await.ok()?;
            let mut stream = stream.compat();
            write_message(&mut stream, &question).await.ok()?;
            let reply: Reply = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
            match reply {
                Reply::NotHere | Reply::Taken => None,
                Reply::Same => Some(Answer::Same),
                Reply::ByInvitation => Some(Answer::ByInvitation),
                Reply::Removed => Some(Answer::Removed),
                Reply::Rotations(rotations) => Some(Answer::Rotations(rotations)),
                Reply::Key(bytes) => {
                    let bytes: [u8; KEY_LEN] = bytes.try_into().ok()?;
                    Some(Answer::Key(RoomKey::from_bytes(bytes)))
                }
            }
        };
        tokio::time::timeout(ASK_TIMEOUT, work).await.ok().flatten()
    }

    /// Hands `peer` the rotations of the room's key (a member was
    /// removed); true once it has them.
    pub async fn hand_rotations(
        &self,
        peer: PeerId,
        room: &str,
        rotations: Vec<SealedRotation>,
    ) -> bool {
        let mut control = self.control.clone();
        let question = Question::Rotated {
            room: room.to_owned(),
            rotations,
        };
        let work = async {
            let stream = control.open_stream(peer, ROOM_PROTOCOL).await.ok()?;
            let mut stream = stream.compat();
            write_message(&mut stream, &question).await.ok()?;
            let reply: Reply = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
            matches!(reply, Reply::Taken).then_some(())
        };
        tokio::time::timeout(ASK_TIMEOUT, work)
            .await
            .ok()
            .flatten()
            .is_some()
    }

    /// Keeps what to tell members that ask about `room` without its
    /// current key (see [`Answers`]).
    pub fn set_answers(&self, room: &str, answers: Answers) {
        if let Ok(mut rooms) = self.rooms.lock() {
            if let Some(shared) = rooms.get_mut(room) {
                shared.answers = answers;
            }
        }
    }

    /// What we hold of the private room called `room`.
    pub fn room_access(&self, room: &str) -> Option<RoomAccess> {
        Some(self.rooms.lock().ok()?.get(room)?.access.clone())
    }

    /// From now on the room admits only key holders: we hand its key to
    /// no one who dials us, and our hellos tell the other members so.
    pub fn make_invite_only(&self, room: &str) {
        if let Ok(mut rooms) = self.rooms.lock() {
            if let Some(shared) = rooms.get_mut(room) {
                shared.access.invite_only = true;
            }
        }
    }
}

/// What we answer `peer`, who asks about `room` holding the key of topic
/// `holding`.
fn reply(rooms: &Rooms, peer: &PeerId, room: &str, holding: Option<&str>) -> Reply {
    let Some(shared) = rooms.lock().ok().and_then(|r| r.get(room).cloned()) else {
        return Reply::NotHere;
    };
    if holding == Some(shared.access.key.topic_id()) {
        return Reply::Same;
    }
    match shared.answers.catch_up(&peer.to_string(), holding) {
        Some(Catchup::Removed) => Reply::Removed,
        Some(Catchup::Rotations(rotations)) => Reply::Rotations(rotations),
        Some(Catchup::Same | Catchup::Unknown) | None if shared.access.invite_only => {
            Reply::ByInvitation
        }
        Some(Catchup::Same | Catchup::Unknown) | None => {
            Reply::Key(shared.access.key.to_bytes().to_vec())
        }
    }
}

/// Answers, until the engine stops, about the private rooms we are in;
/// rotations handed to us go to the app as
/// [`NetEvent::Rotated`](super::NetEvent::Rotated).
pub(super) async fn answer(
    mut incoming: libp2p_stream::IncomingStreams,
    rooms: Rooms,
    events: mpsc::Sender<NetEvent>,
) {
    let answering = Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERING));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((peer, stream)) = incoming.next().await {
        // Reap the finished ones, so the set stays as small as the limit.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&answering).acquire_owned().await else {
            return;
        };
        let rooms = Arc::clone(&rooms);
        let events = events.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut stream = stream.compat();
            let work = async {
                let question: Question = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
                let answer = match question {
                    Question::Ask { room, holding } => {
                        reply(&rooms, &peer, &room, holding.as_deref())
                    }
                    Question::Rotated { room, rotations } => {
                        let rotated = NetEvent::Rotated {
                            peer,
                            room,
                            rotations,
                        };
                        events.send(rotated).await.ok()?;
                        Reply::Taken
                    }
                };
                write_message(&mut stream, &answer).await.ok()?;
                tokio::io::AsyncWriteExt::shutdown(&mut stream).await.ok()
            };
            let _ = tokio::time::timeout(ASK_TIMEOUT, work).await;
        });
    }
}

/// Starts answering on `control`.
pub(super) fn accept(
    control: &mut libp2p_stream::Control,
) -> Result<libp2p_stream::IncomingStreams, Error> {
    control
        .accept(ROOM_PROTOCOL)
        .map_err(|_| Error::AlreadyAccepting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::membership::KeyRing;

    #[test]
    fn a_member_hands_the_key_to_a_dialer_only_while_the_room_is_open() {
        let key = RoomKey::from_bytes([9; 32]);
        let rooms = Rooms::default();
        let peer = PeerId::random();
        let ask = |holding: Option<&RoomKey>| {
            reply(&rooms, &peer, "lobby", holding.map(|k| k.topic_id()))
        };
        assert!(matches!(ask(None), Reply::NotHere));
        rooms.lock().unwrap().insert(
            "lobby".into(),
            Shared {
                access: RoomAccess {
                    key: key.clone(),
                    invite_only: false,
                },
                answers: Answers::default(),
            },
        );
        assert!(matches!(ask(None), Reply::Key(k) if k == key.to_bytes()));
        assert!(matches!(ask(Some(&key)), Reply::Same));
        rooms
            .lock()
            .unwrap()
            .get_mut("lobby")
            .unwrap()
            .access
            .invite_only = true;
        assert!(matches!(ask(None), Reply::ByInvitation));
        let other = RoomKey::from_bytes([1; 32]);
        assert!(matches!(ask(Some(&other)), Reply::ByInvitation));
        assert!(matches!(ask(Some(&key)), Reply::Same));
    }

    #[test]
    fn a_member_back_is_brought_up_to_date_and_a_removed_one_is_told() {
        let old = RoomKey::from_bytes([1; 32]);
        let mut ring = KeyRing::new("me", old.clone());
        let (bob, cat) = (PeerId::random(), PeerId::random());
        ring.kick(&bob.to_string(), RoomKey::from_bytes([2; 32]), [0; 24])
            .unwrap();
        let rooms = Rooms::default();
        rooms.lock().unwrap().insert(
            "lobby".into(),
            Shared {
                access: RoomAccess {
                    key: ring.key().clone(),
                    invite_only: true,
                },
                answers: ring.answers(),
            },
        );
        assert!(matches!(
            reply(&rooms, &cat, "lobby", Some(old.topic_id())),
            Reply::Rotations(r) if r == ring.chain()
        ));
        assert!(matches!(
            reply(&rooms, &bob, "lobby", Some(old.topic_id())),
            Reply::Removed
        ));
        assert!(matches!(
            reply(&rooms, &cat, "lobby", None),
            Reply::ByInvitation
        ));
    }
}
