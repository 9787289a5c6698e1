//! Removing a member: carries out what a room's [`KeyRing`] decides. The
//! ring (in the core) says which key is the room's and what to hand on;
//! this moves the chat to that key's topic, keeps the keys on disk, hands
//! the rotations to every remaining member over an authenticated stream,
//! and says who was removed and by whom.

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::RoomChat;
use crate::app::Error;
use crate::chat::membership::{KeyRing, Offered, SealedRotation};
use crate::chat::room::is_public;
use crate::chat::room_key::{RoomAccess, RoomKey, KEY_LEN, NONCE_LEN};
use crate::chat::{Event, Notice};

/// What taking rotations came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Taken {
    /// We moved to another key of the room.
    Moved,
    /// Nothing changed.
    Kept,
    /// We were removed from the room, by this member.
    Removed(String),
}

impl RoomChat {
    /// The key ring of a private room we join with `access`: as stored
    /// when its key is the stored one, else a ring of that one key.
    pub(super) fn ring_for(&self, room: &str, access: &RoomAccess) -> KeyRing {
        let me = self.client.local_peer_id().to_string();
        self.secure
            .room_keys
            .ring(room, &me)
            .filter(|ring| ring.key() == &access.key)
            .unwrap_or_else(|| KeyRing::new(&me, access.key.clone()))
    }

    /// Starts keeping `ring` for `room`, and tells the network what to
    /// answer members that come back.
    pub(super) fn keep_ring(&mut self, room: &str, ring: KeyRing) {
        self.client.set_answers(room, ring.answers());
        self.rings.insert(room.to_owned(), ring);
    }

    /// `/kick NICK`: removes a member of the current private room.
    pub(super) async fn kick(&mut self, events: &mpsc::Sender<Event>, who: &str) -> Option<Event> {
        let info = |text: String| Some(Event::Info(text));
        let Some(room) = self.current.clone() else {
            return info("you are in no room".into());
        };
        if is_public(&room) {
            return info("a public room has no key: no one can be kept out of it".into());
        }
        let peer = match self.resolve_in(&room, who) {
            Ok(peer) => peer,
            Err(e) => return info(e),
        };
        let shown = self.display_anywhere(&peer);
        let (fresh, nonce) = match fresh_key() {
            Ok(fresh) => fresh,
            Err(e) => return info(e.to_string()),
        };
        let Some(ring) = self.rings.get_mut(&room) else {
            return info(format!("#{room} has no key yet"));
        };
        let Some(rotations) = ring.kick(&peer.to_string(), fresh, nonce) else {
            return info(format!("{shown} cannot be removed from #{room}"));
        };
        // Handed on first: a member that sees us leave the old key's topic
        // before the rotation reaches it asks us for it.
        self.hand_on(&room, rotations);
        if !self.move_to_ring_key(events, &room).await {
            return None;
        }
        let _ = self.member_left(events, &room, &peer.to_string()).await;
        info(format!(
            "You removed {shown} from #{room}: the room has a new key, and {shown} reads nothing said from now on"
        ))
    }

    /// Rotations a member handed us. False once the display is gone.
    pub(super) async fn on_rotated(
        &mut self,
        events: &mpsc::Sender<Event>,
        peer: PeerId,
        room: String,
        rotations: Vec<SealedRotation>,
    ) -> bool {
        if !self.rooms.contains_key(&room) {
            return true;
        }
        // Only a member hands on rotations; the ring checks what they say.
        if !self.rooms[&room].contains(&peer.to_string()) {
            return true;
        }
        match self.take_rotations(events, &room, &rotations).await {
            Taken::Removed(by) => {
                let text = Error::Removed { room, by }.to_string();
                events
                    .send(Event::Notice(Notice::ConnectionError(text)))
                    .await
                    .is_ok()
            }
            Taken::Moved | Taken::Kept => true,
        }
    }

    /// Offers `rotations` to the room's ring and carries out what it
    /// decides: moving to its key, saying who was removed, rotating again
    /// when we know removals its key lacks, or leaving a room we were
    /// removed from.
    pub(super) async fn take_rotations(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        rotations: &[SealedRotation],
    ) -> Taken {
        let Some(ring) = self.rings.get_mut(room) else {
            return Taken::Kept;
        };
        let offered = ring.offer(rotations);
        let again = if ring.needs_rotation() {
            match fresh_key() {
                Ok((fresh, nonce)) => Some(ring.rotate(fresh, nonce)),
                Err(_) => None,
            }
        } else {
            None
        };
        let taken = match offered {
            Offered::Removed { by } => {
                let by = self.shown_id(&by);
                self.leave_removed(room).await;
                return Taken::Removed(by);
            }
            Offered::Moved { by, removed } => {
                let by = self.shown_id(&by);
                for gone in removed {
                    let who = self.shown_id(&gone);
                    let _ = self.member_left(events, room, &gone).await;
                    let text = format!("{who} was removed from #{room} by {by}");
                    let _ = events.send(Event::Info(text)).await;
                }
                Taken::Moved
            }
            Offered::Kept | Offered::Refused => Taken::Kept,
        };
        if taken == Taken::Moved || again.is_some() {
            self.move_to_ring_key(events, room).await;
        }
        if let Some(again) = again {
            self.hand_on(room, again);
        }
        taken
    }

    /// Moves the chat to the ring's current key of `room` (its topic),
    /// keeps the keys on disk, and tells the network what to answer.
    /// False once the engine is gone.
    async fn move_to_ring_key(&mut self, events: &mpsc::Sender<Event>, room: &str) -> bool {
        let Some(ring) = self.rings.get(room).cloned() else {
            return true;
        };
        let invite_only = self.client.room_access(room).is_some_and(|a| a.invite_only);
        let access = RoomAccess {
            key: ring.key().clone(),
            invite_only,
        };
        // What to tell members that ask comes first: they ask as soon as
        // they see us leave the old key's topic.
        self.client.set_answers(room, ring.answers());
        if self.client.join(room, Some(access)).await.is_err() {
            return false;
        }
        if let Err(e) = self.secure.room_keys.set_ring(room, &ring, invite_only) {
            let _ = events
                .send(Event::Notice(Notice::Store(e.to_string())))
                .await;
        }
        true
    }

    /// Hands `rotations` to every member of `room` the ring does not know
    /// as removed, each on a task of the chat's own.
    fn hand_on(&mut self, room: &str, rotations: Vec<SealedRotation>) {
        let Some(ring) = self.rings.get(room) else {
            return;
        };
        let peers: Vec<PeerId> = self
            .rooms
            .get(room)
            .map(|roster| {
                roster
                    .iter()
                    .filter(|(member, _)| !ring.is_removed(member))
                    .filter_map(|(member, _)| member.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for peer in peers {
            let client = self.client.clone();
            let room = room.to_owned();
            let rotations = rotations.clone();
            self.tasks.spawn(async move {
                client.hand_rotations(peer, &room, rotations).await;
            });
        }
    }

    /// We were removed from `room`: we leave it and forget its key.
    pub(super) async fn leave_removed(&mut self, room: &str) {
        self.rings.remove(room);
        self.rooms.remove(room);
        let _ = self.client.leave(room).await;
        let _ = self.secure.room_keys.forget(room);
        if self.current.as_deref() == Some(room) {
            self.current = self.rooms.keys().next().cloned();
        }
    }

    /// Whether lines from `author` in `room` are refused: it was removed.
    pub(super) fn removed_from(&self, room: &str, author: &PeerId) -> bool {
        self.rings
            .get(room)
            .is_some_and(|ring| ring.is_removed(&author.to_string()))
    }

    /// How a member named by its peer ID text is shown.
    fn shown_id(&self, peer: &str) -> String {
        match peer.parse::<PeerId>() {
            Ok(peer) if peer == self.client.local_peer_id() => "you".to_owned(),
            // By the nick it had, if it left the room's roster already.
            Ok(peer) => match self.nicks.get(&peer) {
                Some(nick) if !self.rooms.values().any(|r| r.contains(&peer.to_string())) => {
                    crate::chat::sanitize::inert(nick)
                }
                _ => self.display_anywhere(&peer),
            },
            Err(_) => crate::chat::sanitize::inert(peer),
        }
    }
}

/// A fresh key and nonce from the system's random source.
pub(super) fn fresh_key() -> Result<(RoomKey, [u8; NONCE_LEN]), Error> {
    let mut key = [0u8; KEY_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut key)
        .and_then(|()| getrandom::fill(&mut nonce))
        .map_err(|e| Error::NoRandomness(e.to_string()))?;
    Ok((RoomKey::from_bytes(key), nonce))
}
