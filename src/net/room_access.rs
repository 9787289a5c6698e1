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
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::fetch::{read_message, write_message};
use super::{Client, Error};
use crate::chat::room_key::{RoomAccess, RoomKey, KEY_LEN};

/// The protocol.
pub const ROOM_PROTOCOL: StreamProtocol = StreamProtocol::new("/rust-p2p-chat/room/2.0.0");

/// Largest question or answer, in bytes: a room name and a topic id, or a
/// key.
const MAX_MESSAGE: usize = 256;

/// How long a question may take.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Questions answered at once at most; more wait for their stream to be
/// taken (libp2p-stream drops streams nobody takes in time).
const MAX_ANSWERING: usize = 16;

/// The private rooms we are in, shared between the event loop (which
/// joins and leaves), the client (which marks a room invite-only) and the
/// task that answers.
pub type Rooms = Arc<Mutex<HashMap<String, RoomAccess>>>;

#[derive(Serialize, Deserialize)]
struct Question {
    room: String,
    /// The topic id of the key the asker holds for that name.
    holding: Option<String>,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    NotHere,
    Same,
    Key(Vec<u8>),
    ByInvitation,
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
        let question = Question {
            room: room.to_owned(),
            holding: holding.map(|k| k.topic_id().to_owned()),
        };
        let work = async {
            let stream = control.open_stream(peer, ROOM_PROTOCOL).await.ok()?;
            let mut stream = stream.compat();
            write_message(&mut stream, &question).await.ok()?;
            let reply: Reply = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
            match reply {
                Reply::NotHere => None,
                Reply::Same => Some(Answer::Same),
                Reply::ByInvitation => Some(Answer::ByInvitation),
                Reply::Key(bytes) => {
                    let bytes: [u8; KEY_LEN] = bytes.try_into().ok()?;
                    Some(Answer::Key(RoomKey::from_bytes(bytes)))
                }
            }
        };
        tokio::time::timeout(ASK_TIMEOUT, work).await.ok().flatten()
    }

    /// What we hold of the private room called `room`.
    pub fn room_access(&self, room: &str) -> Option<RoomAccess> {
        self.rooms.lock().ok()?.get(room).cloned()
    }

    /// From now on the room admits only key holders: we hand its key to
    /// no one who dials us, and our hellos tell the other members so.
    pub fn make_invite_only(&self, room: &str) {
        if let Ok(mut rooms) = self.rooms.lock() {
            if let Some(access) = rooms.get_mut(room) {
                access.invite_only = true;
            }
        }
    }
}

/// What we answer to `question`.
fn reply(rooms: &Rooms, question: &Question) -> Reply {
    let Some(access) = rooms
        .lock()
        .ok()
        .and_then(|r| r.get(&question.room).cloned())
    else {
        return Reply::NotHere;
    };
    if question.holding.as_deref() == Some(access.key.topic_id()) {
        Reply::Same
    } else if access.invite_only {
        Reply::ByInvitation
    } else {
        Reply::Key(access.key.to_bytes().to_vec())
    }
}

/// Answers, until the engine stops, about the private rooms we are in.
pub(super) async fn answer(mut incoming: libp2p_stream::IncomingStreams, rooms: Rooms) {
    let answering = Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERING));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((_peer, stream)) = incoming.next().await {
        // Reap the finished ones, so the set stays as small as the limit.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&answering).acquire_owned().await else {
            return;
        };
        let rooms = Arc::clone(&rooms);
        tasks.spawn(async move {
            let _permit = permit;
            let mut stream = stream.compat();
            let work = async {
                let question: Question = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
                write_message(&mut stream, &reply(&rooms, &question))
                    .await
                    .ok()?;
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

    #[test]
    fn a_member_hands_the_key_to_a_dialer_only_while_the_room_is_open() {
        let key = RoomKey::from_bytes([9; 32]);
        let rooms = Rooms::default();
        let ask = |holding: Option<&RoomKey>| Question {
            room: "lobby".into(),
            holding: holding.map(|k| k.topic_id().to_owned()),
        };
        assert!(matches!(reply(&rooms, &ask(None)), Reply::NotHere));
        rooms.lock().unwrap().insert(
            "lobby".into(),
            RoomAccess {
                key: key.clone(),
                invite_only: false,
            },
        );
        assert!(matches!(reply(&rooms, &ask(None)), Reply::Key(k) if k == key.to_bytes()));
        assert!(matches!(reply(&rooms, &ask(Some(&key))), Reply::Same));
        rooms.lock().unwrap().get_mut("lobby").unwrap().invite_only = true;
        assert!(matches!(reply(&rooms, &ask(None)), Reply::ByInvitation));
        let other = RoomKey::from_bytes([1; 32]);
        assert!(matches!(
            reply(&rooms, &ask(Some(&other))),
            Reply::ByInvitation
        ));
        assert!(matches!(reply(&rooms, &ask(Some(&key))), Reply::Same));
    }
}
