//! Members, presence and trust: who is in which room and by what name,
//! joins and leaves, and the loud warning when a nick or address the user
//! trusted answers with another key.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::kick::Taken;
use super::{fingerprint_of, name_label, short, RoomChat};
use crate::app::{Error, Role};
use crate::chat::delivery::Input;
use crate::chat::room::{is_public, Member, Roster};
use crate::chat::room_key::{RoomAccess, RoomKey};
use crate::chat::{Event, Notice};
use crate::identity;
use crate::net::room_access::Answer;
use crate::net::{self, NetEvent};
use crate::store::Check;

/// Members asked which private room of a name they are in, at most, when
/// `/join` names one.
const MAX_ROOM_QUESTIONS: usize = 8;

/// What asking a member about a private room of a name came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Joined {
    /// We moved to its room.
    Moved,
    /// We stayed where we were (the same room, or one we hold an invite
    /// to, or it is in none).
    Stayed,
    /// Its room is by invitation, and we hold no invite to it.
    Refused,
    /// We were removed from the room (by this member, as far as we know).
    Removed(String),
}

/// How long before a member that left our private room's topic without
/// an answer is asked once more.
const ASK_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// How long a member's join waits for its nick before it is shown.
const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

impl RoomChat {
    pub(super) async fn join(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
    ) -> Result<(), Error> {
        if !self.rooms.contains_key(room) {
            self.resume_room(events, room).await?;
            let access = self.access_for(room).await?;
            self.client.join(room, access.clone()).await?;
            if let Some(access) = access {
                let ring = self.ring_for(room, &access);
                self.keep_ring(room, ring);
                self.keep_key(events, room, access).await;
            }
            self.rooms.insert(room.to_owned(), Roster::default());
        }
        self.current = Some(room.to_owned());
        Ok(())
    }

    /// The key to join the private room called `room` with: the one of an
    /// invite we hold; else the one of the room of that name that the
    /// members we chat with are in (`/join side` then meets them there, not
    /// in a room of our own); else the one we had; else a new room's.
    async fn access_for(&self, room: &str) -> Result<Option<RoomAccess>, Error> {
        if is_public(room) {
            return Ok(None);
        }
        let stored = self.secure.room_keys.get(room).cloned();
        if stored.as_ref().is_some_and(|a| a.invite_only) {
            return Ok(stored);
        }
        if let Some(key) = self.key_among_members(room, stored.as_ref()).await {
            return Ok(Some(RoomAccess {
                key,
                invite_only: false,
            }));
        }
        match stored {
            Some(access) => Ok(Some(access)),
            None => Ok(Some(RoomAccess {
                key: new_room_key()?,
                invite_only: false,
            })),
        }
    }

    /// The key of the open private room called `room` that one of the
    /// members we chat with is in, if it is another than `ours`. Only
    /// members are asked; a peer met on the LAN is not.
    async fn key_among_members(&self, room: &str, ours: Option<&RoomAccess>) -> Option<RoomKey> {
        let mut asked = HashSet::new();
        for roster in self.rooms.values() {
            for (member, _) in roster.iter() {
                let Ok(peer) = member.parse::<PeerId>() else {
                    continue;
                };
                if !asked.insert(peer) || asked.len() > MAX_ROOM_QUESTIONS {
                    continue;
                }
                match self.client.ask_room(peer, room, ours.map(|a| &a.key)).await {
                    Some(Answer::Key(key)) => return Some(key),
                    Some(Answer::Same | Answer::Rotations(_)) => return None,
                    Some(Answer::ByInvitation | Answer::Removed) | None => {}
                }
            }
        }
        None
    }

    /// Records the key of a room we are in, so the next run is in the
    /// same room; a disk that refuses is said, and the chat goes on.
    async fn keep_key(&mut self, events: &mpsc::Sender<Event>, room: &str, access: RoomAccess) {
        if let Err(e) = self.secure.room_keys.set(room, access) {
            let _ = events
                .send(Event::Notice(Notice::Store(e.to_string())))
                .await;
        }
    }

    /// After dialling `peer`: joins the private room it is in under our
    /// current room's name (dialling a member is how a private room is
    /// joined), leaving the one of our own we started alone in. An error
    /// when that room is by invitation and we hold no invite to it.
    pub(super) async fn adopt_room_of(
        &mut self,
        events: &mpsc::Sender<Event>,
        peer: PeerId,
    ) -> Result<(), Error> {
        let Some(room) = self.current.clone() else {
            return Ok(());
        };
        if is_public(&room) {
            return Ok(());
        }
        match self.join_room_of(events, peer, &room).await {
            Joined::Refused => {
                self.client.disconnect(peer).await;
                Err(Error::ByInvitation(room))
            }
            Joined::Removed(by) => {
                self.client.disconnect(peer).await;
                Err(Error::Removed { room, by })
            }
            Joined::Moved | Joined::Stayed => Ok(()),
        }
    }

    /// Joins the open private room called `room` that `peer` is in, asking
    /// it which one that is, unless ours is by invitation (an invite we
    /// hold is not traded for another room).
    async fn join_room_of(
        &mut self,
        events: &mpsc::Sender<Event>,
        peer: PeerId,
        room: &str,
    ) -> Joined {
        let ours = self.client.room_access(room);
        let answer = self
            .client
            .ask_room(peer, room, ours.as_ref().map(|a| &a.key))
            .await;
        match answer {
            Some(Answer::Key(key)) if !ours.as_ref().is_some_and(|a| a.invite_only) => {
                let access = RoomAccess {
                    key,
                    invite_only: false,
                };
                if self.client.join(room, Some(access.clone())).await.is_err() {
                    return Joined::Stayed;
                }
                self.key_from.insert(room.to_owned(), peer);
                let ring = self.ring_for(room, &access);
                self.keep_ring(room, ring);
                self.keep_key(events, room, access).await;
                Joined::Moved
            }
            // The room's key changed while we were away.
            Some(Answer::Rotations(rotations)) => {
                match self.take_rotations(events, room, &rotations).await {
                    Taken::Moved => Joined::Moved,
                    Taken::Kept => Joined::Stayed,
                    Taken::Removed(by) => Joined::Removed(by),
                }
            }
            Some(Answer::Removed) => Joined::Removed(self.display_anywhere(&peer)),
            Some(Answer::ByInvitation) => Joined::Refused,
            _ => Joined::Stayed,
        }
    }

    /// The member we took our private room's key from left it for another
    /// room of that name: it had started alone in one of its own, we
    /// joined that one through it, and it has now joined the one it
    /// dialled into. We follow it there, or we would stay in a room it
    /// will never come back to. True when we did; a member that leaves for
    /// good is simply gone.
    async fn follow_the_founder(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: PeerId,
    ) -> bool {
        if is_public(room) || self.key_from.get(room) != Some(&peer) {
            return false;
        }
        self.join_room_of(events, peer, room).await == Joined::Moved
    }

    /// A member left our private room's topic: if that is because the
    /// room's key changed (a member was removed) and the rotation has not
    /// reached us yet, it hands it over when asked, and we follow. True
    /// when we moved (or learned we were removed).
    async fn followed_a_new_key(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: PeerId,
    ) -> bool {
        let member = self
            .rooms
            .get(room)
            .is_some_and(|r| r.contains(&peer.to_string()));
        let Some(ours) = self.client.room_access(room).filter(|_| member) else {
            return false;
        };
        let mut answer = self.client.ask_room(peer, room, Some(&ours.key)).await;
        if answer.is_none() {
            // It may be between keys: once more, a moment later.
            tokio::time::sleep(ASK_AGAIN_AFTER).await;
            answer = self.client.ask_room(peer, room, Some(&ours.key)).await;
        }
        match answer {
            Some(Answer::Rotations(rotations)) => {
                match self.take_rotations(events, room, &rotations).await {
                    Taken::Moved => true,
                    Taken::Kept => false,
                    Taken::Removed(by) => {
                        let text = Error::Removed {
                            room: room.to_owned(),
                            by,
                        }
                        .to_string();
                        let _ = events
                            .send(Event::Notice(Notice::ConnectionError(text)))
                            .await;
                        true
                    }
                }
            }
            Some(Answer::Removed) => {
                self.leave_removed(room).await;
                let text = Error::RemovedFrom(room.to_owned()).to_string();
                let _ = events
                    .send(Event::Notice(Notice::ConnectionError(text)))
                    .await;
                true
            }
            _ => false,
        }
    }

    pub(super) fn nick_of(&self, peer: &PeerId) -> Option<String> {
        let key = peer.to_string();
        self.rooms
            .values()
            .find_map(|r| r.get(&key).and_then(|m| m.nick.clone()))
    }

    /// How a peer is shown: as in the current room if it is there, else as
    /// in any room it is in.
    pub(super) fn display_anywhere(&self, peer: &PeerId) -> String {
        let key = peer.to_string();
        if let Some(roster) = self.current.as_ref().and_then(|r| self.rooms.get(r)) {
            if roster.contains(&key) {
                return roster.display(&key);
            }
        }
        self.rooms.values().find(|r| r.contains(&key)).map_or_else(
            || format!("Peer-{}", short(&fingerprint_of(peer))),
            |r| r.display(&key),
        )
    }

    /// Shows who a newly connected peer is, after a loud warning if the
    /// address we typed was trusted for another key. False when the front
    /// end is gone.
    pub(super) async fn introduce(&mut self, events: &mpsc::Sender<Event>, peer: PeerId) -> bool {
        let chat = ChatEvents(events);
        if !self.introduced.insert(peer) {
            return true;
        }
        let label = if self.first_peer == Some(peer) {
            self.label.clone()
        } else {
            None
        };
        if let Check::Changed {
            label,
            previous,
            was_trusted: true,
        } = self.secure.known.check(label.as_deref(), &peer)
        {
            let warning = Event::KeyChanged {
                label,
                previous: previous.to_string(),
                now: peer.to_string(),
            };
            if !chat.show(warning).await {
                return false;
            }
        }
        let identity = Event::PeerIdentity {
            peer_id: peer.to_string(),
            fingerprint: fingerprint_of(&peer),
            verified: self.secure.known.is_trusted(&peer),
        };
        if !chat.show(identity).await || !chat.show(Event::Encrypted).await {
            return false;
        }
        if let Err(e) = self.secure.known.record_seen(label.as_deref(), &peer) {
            return chat.show(Event::Notice(Notice::Store(e.to_string()))).await;
        }
        true
    }

    pub(super) async fn on_net_event(
        &mut self,
        events: &mpsc::Sender<Event>,
        event: NetEvent,
    ) -> bool {
        let chat_events = ChatEvents(events);
        match event {
            NetEvent::Connected {
                peer,
                addr,
                inbound,
            } => {
                if inbound {
                    if let Some(expected) = &self.secure.expect {
                        if !identity::matches_expected(expected, &peer) {
                            self.client.disconnect(peer).await;
                            let peer_id = peer.to_string();
                            return chat_events.notice(Notice::Unexpected { peer_id }).await;
                        }
                    }
                }
                // Files accepted from this peer go on where they stopped.
                self.resume_files(Some(&peer));
                if inbound && matches!(self.role, Role::Listen { .. }) {
                    // Announced when it joins our room: a connection alone
                    // (LAN discovery from a peer in a public room, a
                    // scanner) makes nobody a member.
                    let from = match net::relay_in(&addr) {
                        Some(relay) => Event::PeerConnectedVia {
                            relay: relay.to_string(),
                        },
                        None => Event::PeerConnected {
                            from: net::socket_addr(&addr)
                                .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
                        },
                    };
                    self.dialled_in.insert(peer, from);
                }
                true
            }
            NetEvent::Disconnected { peer } => {
                let key = peer.to_string();
                let in_a_room = self.rooms.values().any(|r| r.contains(&key));
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    if !self.member_left(events, &room, &key).await {
                        return false;
                    }
                }
                // The peer we connected to, gone before its first line
                // made it a member: said all the same, as the classic
                // chat says it.
                let introduced = self.introduced.contains(&peer);
                if !in_a_room
                    && introduced
                    && self.first_peer == Some(peer)
                    && events.send(Event::PeerDisconnected).await.is_err()
                {
                    return false;
                }
                self.introduced.remove(&peer);
                self.dialled_in.remove(&peer);
                self.end_if_deserted(events).await
            }
            NetEvent::Subscribed { peer, room } => {
                if !self.rooms.contains_key(&room) {
                    return true;
                }
                if !is_public(&room) {
                    // Anyone who learns a private room's topic can
                    // subscribe to it; a member is one whose messages open
                    // with the room's key. Our hello asks for its own.
                    return self.feed(events, Input::Hello { room }).await;
                }
                if !self.announce_dialled_in(events, &room, peer).await {
                    return false;
                }
                self.member_joined(events, &room, peer, None).await
            }
            NetEvent::Unsubscribed { peer, room } => {
                if self.follow_the_founder(events, &room, peer).await
                    || self.followed_a_new_key(events, &room, peer).await
                {
                    return true;
                }
                self.member_left(events, &room, &peer.to_string()).await
                    && self.end_if_deserted(events).await
            }
            NetEvent::Room {
                room,
                author,
                via,
                said,
                addrs,
            } => {
                self.on_room_said(events, room, author, via, said, addrs)
                    .await
            }
            NetEvent::Throttled { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events.notice(Notice::Throttled { who }).await
            }
            NetEvent::Banned { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events.notice(Notice::Banned { who }).await
            }
            NetEvent::Rejected { .. } => chat_events.notice(Notice::Malformed).await,
            // The chat watches no room without its key.
            NetEvent::Sealed { .. } => true,
            NetEvent::HolePunched { peer } => {
                let who = self.display_anywhere(&peer);
                let text = format!("Now connected to {who} directly (hole-punched)");
                events.send(Event::Info(text)).await.is_ok()
            }
            NetEvent::Relayed { addr, .. } => {
                let text = format!("Reachable through a relay at: {addr}");
                events.send(Event::Info(text)).await.is_ok()
            }
            NetEvent::RelayLost { relay, cause } => {
                let text = format!("relay {relay}: {cause}; asking it again shortly");
                chat_events.notice(Notice::ConnectionError(text)).await
            }
            NetEvent::Rotated {
                peer,
                room,
                rotations,
            } => self.on_rotated(events, peer, room, rotations).await,
            NetEvent::InviteOnly { room } => {
                if let Err(e) = self.secure.room_keys.make_invite_only(&room) {
                    return chat_events.notice(Notice::Store(e.to_string())).await;
                }
                true
            }
            NetEvent::NotPublished { room, cause } => {
                chat_events
                    .notice(Notice::NotSent(format!("#{room}: {cause}")))
                    .await
            }
            NetEvent::Slow { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events.notice(Notice::MemberSlow { who }).await
            }
            NetEvent::SlowDropped { peer } => {
                let who = self.display_anywhere(&peer);
                chat_events
                    .notice(Notice::ConnectionError(format!(
                        "{} read nothing for {} s; dropped it",
                        crate::chat::sanitize::inert(&who),
                        net::SLOW_DROP_AFTER.as_secs()
                    )))
                    .await
            }
        }
    }

    /// Shows the joins that waited long enough for a nick.
    pub(super) async fn announce_due(&mut self, events: &mpsc::Sender<Event>) -> bool {
        let now = Instant::now();
        let due: Vec<(String, PeerId)> = self
            .unannounced
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for slot in due {
            self.unannounced.remove(&slot);
            let (room, peer) = slot;
            let Some(roster) = self.rooms.get(&room) else {
                continue;
            };
            let key = peer.to_string();
            if !roster.contains(&key) {
                continue;
            }
            let event = Event::Joined {
                who: roster.display(&key),
                room,
                peer_id: key,
            };
            if events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Records a member (and its nick, when known); shows a join line the
    /// first time, a rename when the nick changed. Sends what was typed
    /// while alone once someone is here.
    pub(super) async fn member_joined(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: PeerId,
        nick: Option<Option<String>>,
    ) -> bool {
        // A member we knew by a nick that comes back without one (started
        // again without --name) keeps that nick until it says another:
        // renaming it to `Peer`, the name of the unnamed, would read as if
        // someone else had taken its place.
        let nick = match nick {
            Some(None) if self.nicks.contains_key(&peer) => None,
            nick => nick,
        };
        let key = peer.to_string();
        let trusted_owner = nick
            .as_ref()
            .and_then(|n| n.as_deref())
            .and_then(|nick| self.trusted_owner(nick, &peer));
        let impostor = trusted_owner.is_some();
        if let (Some(Some(nick)), Some(previous)) = (&nick, trusted_owner) {
            if self.warned.insert((nick.clone(), peer)) {
                let warning = Event::KeyChanged {
                    label: format!("the nick {nick}"),
                    previous: previous.to_string(),
                    now: peer.to_string(),
                };
                if events.send(warning).await.is_err() {
                    return false;
                }
            }
        }
        // A nick heard of this peer for the first time in this run.
        let first_nick = !self.nicks.contains_key(&peer) && matches!(nick, Some(Some(_)));
        if let Some(Some(known)) = &nick {
            self.nicks.insert(peer, known.clone());
        }
        let known_nick = nick
            .clone()
            .flatten()
            .or_else(|| self.nicks.get(&peer).cloned());
        let introduced = self.introduced.contains(&peer);
        let Some(roster) = self.rooms.get_mut(room) else {
            return true;
        };
        let was_alone = roster.is_empty();
        let slot = (room.to_owned(), peer);
        // Said after `Ready`, where the classic chat says who the peer is.
        let mut named = None;
        if !roster.contains(&key) {
            let member = Member {
                nick: known_nick.clone(),
                fingerprint: fingerprint_of(&peer),
                impostor,
            };
            roster.join(&key, member);
            let two_person = roster.len() == 1;
            if two_person && introduced && room == self.secure.room {
                // Two peers alone keep the classic lines: the connection
                // was announced already, and the peer shown as `Peer`; a
                // nick first heard with it is said as one it took.
                if first_nick {
                    named = Some(Event::Renamed {
                        old: "Peer".into(),
                        new: roster.display(&key),
                    });
                }
            } else if known_nick.is_none() {
                // Its hello (with its nick) is usually a moment behind:
                // announce it then, or when the wait is over.
                self.unannounced
                    .insert(slot, Instant::now() + ANNOUNCE_WAIT);
            } else {
                let event = Event::Joined {
                    who: roster.display(&key),
                    room: room.to_owned(),
                    peer_id: key.clone(),
                };
                if events.send(event).await.is_err() {
                    return false;
                }
            }
        } else if self.unannounced.contains_key(&slot) && known_nick.is_some() {
            self.unannounced.remove(&slot);
            roster.rename(&key, known_nick, impostor);
            let event = Event::Joined {
                who: roster.display(&key),
                room: room.to_owned(),
                peer_id: key.clone(),
            };
            if events.send(event).await.is_err() {
                return false;
            }
        } else if let Some(nick) = nick {
            let old = roster.display(&key);
            if roster.get(&key).map(|m| &m.nick) != Some(&nick) {
                roster.rename(&key, nick, impostor);
                let new = roster.display(&key);
                if old != new && events.send(Event::Renamed { old, new }).await.is_err() {
                    return false;
                }
            }
        }
        if was_alone && self.current.as_deref() == Some(room) && !self.ready {
            self.ready = true;
            if events.send(Event::Ready).await.is_err() {
                return false;
            }
        }
        if let Some(named) = named {
            if events.send(named).await.is_err() {
                return false;
            }
        }
        // Sends what was typed while alone, and greets a newcomer.
        let input = Input::MemberJoined {
            room: room.to_owned(),
            peer: key,
        };
        self.feed(events, input).await
    }

    /// Removes a member; shows a leave line (or the classic disconnect).
    pub(super) async fn member_left(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: &str,
    ) -> bool {
        // Its last lines, still being stored, are shown before it leaves.
        if !self.show_stored(events).await {
            return false;
        }
        let Some(roster) = self.rooms.get_mut(room) else {
            return true;
        };
        let who = roster.display(peer);
        if roster.leave(peer).is_none() {
            return true;
        }
        let never_announced = peer
            .parse::<PeerId>()
            .is_ok_and(|p| self.unannounced.remove(&(room.to_owned(), p)).is_some());
        let deserted = roster.is_empty();
        let input = Input::MemberLeft {
            room: room.to_owned(),
            peer: peer.to_owned(),
        };
        if !self.feed(events, input).await {
            return false;
        }
        let event = if deserted && self.current.as_deref() == Some(room) {
            Event::PeerDisconnected
        } else if never_announced {
            return true;
        } else {
            Event::Left {
                who,
                room: room.to_owned(),
                peer_id: peer.to_owned(),
            }
        };
        events.send(event).await.is_ok()
    }

    /// A peer that dialled our listener joined the room we show: the
    /// classic `Peer connected from:` line, and who it is, once, before
    /// anything else of it.
    pub(super) async fn announce_dialled_in(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        peer: PeerId,
    ) -> bool {
        // In a public room, peers that LAN discovery connected meet as
        // members joining, not as someone who dialled us.
        if self.current.as_deref() != Some(room)
            || is_public(room)
            || self.introduced.contains(&peer)
        {
            return true;
        }
        let Some(connected) = self.dialled_in.remove(&peer) else {
            return true;
        };
        events.send(connected).await.is_ok() && self.introduce(events, peer).await
    }

    /// The peer the user trusted for `nick`, when `peer` is another one.
    fn trusted_owner(&self, nick: &str, peer: &PeerId) -> Option<PeerId> {
        match self.secure.known.check(Some(&name_label(nick)), peer) {
            Check::Changed {
                previous,
                was_trusted: true,
                ..
            } => Some(previous),
            _ => None,
        }
    }
}

/// Sends events, for the few places that only notify.
struct ChatEvents<'a>(&'a mpsc::Sender<Event>);

impl ChatEvents<'_> {
    async fn show(&self, event: Event) -> bool {
        self.0.send(event).await.is_ok()
    }

    async fn notice(&self, notice: Notice) -> bool {
        self.show(Event::Notice(notice)).await
    }
}

/// A new private room's key, from the system's random source.
fn new_room_key() -> Result<RoomKey, Error> {
    super::kick::fresh_key().map(|(key, _)| key)
}
