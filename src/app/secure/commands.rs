//! Slash commands in the secure chat.

use std::net::{IpAddr, SocketAddr};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::direct::DIRECT_TIMEOUT;
use super::{fingerprint_of, name_label, own_identity, short, RoomChat};
use crate::chat::command::{self, Input as Typed};
use crate::chat::delivery::Input;
use crate::chat::event::{MemberLine, PeerLine, RoomLine, Status, YOU};
use crate::chat::room::{check_nick, check_room_key, is_public, public_room, room_name, Roster};
use crate::chat::safety::safety_number;
use crate::chat::ticket::{inviter_digest, Ticket, MAX_RELAYED};
use crate::chat::{Event, NearbyLine, Notice};
use crate::identity;
use crate::net;

/// The one member of `found` (peer IDs) that `who` names; `none` starts
/// the error when there is none.
fn one_member(found: &[String], who: &str, none: &str) -> Result<PeerId, String> {
    let shown = crate::chat::sanitize::inert(who);
    match found {
        [one] => one.parse().map_err(|_| "unknown peer".into()),
        [] => Err(format!("{none} is called {shown}")),
        _ => Err(format!(
            "several members are called {shown}: add the #XXXX suffix shown"
        )),
    }
}

/// Addresses an invite carries at most: the best few, so it stays short.
const INVITE_ADDRS: usize = 4;

/// Lines `/history` shows unless told.
const HISTORY_DEFAULT: usize = 50;

impl RoomChat {
    pub(super) async fn on_command(
        &mut self,
        events: &mpsc::Sender<Event>,
        input: Typed<'_>,
    ) -> Option<Event> {
        let info = |text: String| Some(Event::Info(text));
        match input {
            Typed::Text(_) | Typed::Quit => None,
            Typed::Help => Some(Event::Help(command::HELP.into())),
            Typed::Unknown(word) => Some(Event::Help(command::unknown_hint(word))),
            Typed::Usage(usage) => Some(Event::Help(format!("Usage: {usage}"))),
            Typed::Id => Some(own_identity(&self.secure.identity)),
            Typed::Nick(nick) => {
                if let Err(e) = check_nick(nick) {
                    return info(e.to_string());
                }
                self.secure.nick = Some(nick.to_owned());
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    self.feed(events, Input::Hello { room }).await;
                }
                Some(Event::Status(Status::NickSet {
                    nick: nick.to_owned(),
                }))
            }
            Typed::Join { room, public } => {
                if let Err(e) = check_room_key(room) {
                    return info(e.to_string());
                }
                let room = if public && !is_public(room) {
                    public_room(room)
                } else {
                    room.to_owned()
                };
                if self.join(events, &room).await.is_err() {
                    return info("the network engine has stopped".into());
                }
                self.feed(events, Input::Hello { room: room.clone() }).await;
                let members = self.rooms.get(&room).map_or(0, Roster::len);
                let public = is_public(&room);
                Some(Event::Status(Status::NowIn {
                    room,
                    members,
                    public,
                }))
            }
            Typed::Nearby => {
                let peers = self
                    .client
                    .nearby()
                    .await
                    .into_iter()
                    .map(|nearby| NearbyLine {
                        fingerprint: short(&fingerprint_of(&nearby.peer)),
                        addr: shown_addr(nearby.addr.as_ref()),
                        public_rooms: nearby
                            .public_rooms
                            .iter()
                            .map(|r| room_name(r).to_owned())
                            .collect(),
                        rooms_known: nearby.connected,
                    })
                    .collect();
                Some(Event::Nearby { peers })
            }
            Typed::Leave(room) => {
                let Some(room) = room.map(str::to_owned).or_else(|| self.current.clone()) else {
                    return info("you are in no room".into());
                };
                if self.rooms.remove(&room).is_none() {
                    return Some(Event::Status(Status::NotInRoom { room }));
                }
                // Says goodbye before leaving the topic.
                self.feed(events, Input::Left { room: room.clone() }).await;
                let _ = self.client.leave(&room).await;
                if self.current.as_deref() == Some(room.as_str()) {
                    self.current = self.rooms.keys().next().cloned();
                }
                let now = self.current.clone();
                Some(Event::Status(Status::LeftRoom { room, now }))
            }
            Typed::Rooms => {
                let rooms = self
                    .rooms
                    .iter()
                    .map(|(name, roster)| RoomLine {
                        name: name.clone(),
                        members: roster.len(),
                        current: self.current.as_deref() == Some(name),
                    })
                    .collect();
                Some(Event::Status(Status::Rooms(rooms)))
            }
            Typed::History(count) => {
                let Some(room) = self.current.clone() else {
                    return info("you are in no room".into());
                };
                let limit = count.unwrap_or(HISTORY_DEFAULT).min(100_000);
                Some(self.history_event(&room, limit).await)
            }
            Typed::Invite { valid } => self.invite(events, valid).await,
            Typed::SendFile(args) => self.send_file(args),
            Typed::Accept(number) => self.accept_file(number).await,
            Typed::Reject(number) => self.reject_file(number).await,
            Typed::Cancel(number) => self.cancel_file(number).await,
            Typed::Files => self.list_files(),
            Typed::Kick(who) => self.kick(events, who).await,
            Typed::Members => Some(self.members_event()),
            Typed::Peers => {
                let peers = self
                    .client
                    .peers()
                    .await
                    .into_iter()
                    .map(|p| PeerLine {
                        who: self.display_anywhere(&p.peer),
                        fingerprint: fingerprint_of(&p.peer),
                        addr: shown_addr(p.addr.as_ref()),
                        rtt: p.rtt,
                        path: p.path.to_string(),
                    })
                    .collect();
                Some(Event::Status(Status::Peers(peers)))
            }
            Typed::Msg { to, text } => {
                let peer = match self.resolve(to) {
                    Ok(peer) => peer,
                    Err(e) => return info(e),
                };
                let mut client = self.client.clone();
                let text = text.to_owned();
                let kept = text.clone();
                let result = tokio::time::timeout(DIRECT_TIMEOUT, async move {
                    let mut session = client.open_chat(peer).await?;
                    session.send(&text).await?;
                    let (_, mut outgoing) = session.split();
                    outgoing.close().await
                })
                .await;
                match result {
                    Ok(Ok(())) => {
                        let me = self.client.local_peer_id();
                        let who = self.display_anywhere(&peer);
                        let not_kept = self
                            .store_direct(peer, me, kept, true)
                            .await
                            .map(|e| e.to_string());
                        Some(Event::Status(Status::SentDirect { who, not_kept }))
                    }
                    Ok(Err(e)) => Some(Event::Notice(Notice::NotSent(e.to_string()))),
                    Err(_) => Some(Event::Notice(Notice::NotSent("timed out".into()))),
                }
            }
            Typed::Verify(who) => {
                let peer = match self.target(who) {
                    Ok(peer) => peer,
                    Err(e) => return info(e),
                };
                match identity::peer_key_bytes(&peer) {
                    Some(theirs) => Some(Event::SafetyNumber {
                        number: safety_number(&self.secure.identity.public_key_bytes(), &theirs),
                        peer_id: peer.to_string(),
                    }),
                    None => info("this peer's key type has no safety number".into()),
                }
            }
            Typed::Trust(who) => {
                let peer = match self.target(who) {
                    Ok(peer) => peer,
                    Err(e) => return info(e),
                };
                let mut result = Ok(());
                if self.first_peer == Some(peer) {
                    result = self.secure.known.trust(self.label.as_deref(), &peer);
                }
                if result.is_ok() {
                    result = self.secure.known.trust(None, &peer);
                }
                if let (Ok(()), Some(nick)) = (&result, self.nick_of(&peer)) {
                    result = self.secure.known.trust(Some(&name_label(&nick)), &peer);
                }
                for roster in self.rooms.values_mut() {
                    if let Some(member) = roster.get(&peer.to_string()).cloned() {
                        roster.rename(&peer.to_string(), member.nick, false);
                    }
                }
                match result {
                    Ok(()) => Some(Event::Trusted {
                        peer_id: peer.to_string(),
                    }),
                    Err(e) => Some(Event::Notice(Notice::Store(e.to_string()))),
                }
            }
        }
    }

    /// The member a command names, or the only other member of the room.
    pub(super) fn target(&self, who: Option<&str>) -> Result<PeerId, String> {
        match who {
            Some(who) => self.resolve(who),
            None => {
                let roster = self
                    .current
                    .as_ref()
                    .and_then(|r| self.rooms.get(r))
                    .ok_or("you are in no room")?;
                let mut members = roster.iter();
                match (members.next(), members.next()) {
                    (Some((peer, _)), None) => peer.parse().map_err(|_| "unknown peer".into()),
                    // The peer we connected to, before it shows in the room.
                    (None, _)
                        if self
                            .first_peer
                            .is_some_and(|p| self.introduced.contains(&p)) =>
                    {
                        self.first_peer.ok_or_else(|| "no one else is here".into())
                    }
                    (None, _) => Err("no one else is here".into()),
                    _ => Err("there are several members here: name one".into()),
                }
            }
        }
    }

    /// A member by display name or nick, in any room.
    /// `/members`: who holds the current room's key (whose messages open
    /// with it), with fingerprints and verified marks.
    fn members_event(&self) -> Event {
        let Some((room, roster)) = self
            .current
            .as_ref()
            .and_then(|r| Some((r, self.rooms.get(r)?)))
        else {
            return Event::Info("you are in no room".into());
        };
        let me = self.client.local_peer_id();
        let mut members = vec![MemberLine {
            who: YOU.into(),
            peer_id: me.to_string(),
            fingerprint: fingerprint_of(&me),
            verified: false,
            me: true,
        }];
        for (member, _) in roster.iter() {
            let Ok(peer) = member.parse::<PeerId>() else {
                continue;
            };
            members.push(MemberLine {
                who: roster.display(member),
                peer_id: member.to_owned(),
                fingerprint: fingerprint_of(&peer),
                verified: self.secure.known.is_trusted(&peer),
                me: false,
            });
        }
        Event::Status(Status::Members {
            room: room.clone(),
            epoch: self.rings.get(room).map(|r| r.epoch()),
            members,
        })
    }

    /// The member of `room` called `who`.
    pub(super) fn resolve_in(&self, room: &str, who: &str) -> Result<PeerId, String> {
        let found = self
            .rooms
            .get(room)
            .map(|r| r.find(who))
            .unwrap_or_default();
        one_member(&found, who, &format!("no member of #{room}"))
    }

    fn resolve(&self, who: &str) -> Result<PeerId, String> {
        let mut found: Vec<String> = Vec::new();
        for roster in self.rooms.values() {
            for peer in roster.find(who) {
                if !found.contains(&peer) {
                    found.push(peer);
                }
            }
        }
        one_member(&found, who, "no member")
    }

    /// Shows the last `limit` lines kept of a room, marked as history
    /// (on start, nothing when there are none).
    pub(super) async fn show_history(
        &mut self,
        events: &mpsc::Sender<Event>,
        room: &str,
        limit: usize,
    ) -> bool {
        match self.history_event(room, limit).await {
            Event::History { lines, .. }
                if lines.is_empty() && limit == super::HISTORY_ON_START =>
            {
                true
            }
            event => events.send(event).await.is_ok(),
        }
    }
}

/// A peer's address as `/peers` and `/nearby` show it: `IP:PORT`, when
/// it has one.
fn shown_addr(addr: Option<&Multiaddr>) -> Option<String> {
    addr.and_then(net::socket_addr).map(|a| a.to_string())
}

impl RoomChat {
    /// `/invite`: a ticket into the current private room. From then on the
    /// room admits only those who hold its key, and our hello tells the
    /// other members so.
    async fn invite(&mut self, events: &mpsc::Sender<Event>, valid: Option<u64>) -> Option<Event> {
        let info = |text: String| Some(Event::Info(text));
        let Some(room) = self.current.clone() else {
            return info("you are in no room".into());
        };
        if is_public(&room) {
            return info(format!(
                "#{} is public: peers on the LAN join it without an invite",
                room_name(&room)
            ));
        }
        let Some(access) = self.client.room_access(&room) else {
            return info(format!("#{room} has no key yet"));
        };
        let listening = self.client.listen_addrs().await;
        let addrs = invite_addrs(&listening);
        let relayed = relayed_addrs(&listening, self.client.local_peer_id());
        if addrs.is_empty() && relayed.is_empty() {
            return info(
                "an invite needs an address to reach you at, and this chat listens on none".into(),
            );
        }
        self.client.make_invite_only(&room);
        if let Err(e) = self.secure.room_keys.make_invite_only(&room) {
            let _ = events
                .send(Event::Notice(Notice::Store(e.to_string())))
                .await;
        }
        self.feed(events, Input::Hello { room: room.clone() }).await;
        let now = super::super::now_ms() / 1000;
        let expires = valid.map(|v| u32::try_from(now.saturating_add(v)).unwrap_or(u32::MAX));
        let ticket = Ticket {
            room: room.clone(),
            key: access.key,
            inviter: inviter_digest(&self.client.local_peer_id().to_bytes()),
            addrs,
            relayed,
            expires,
        };
        let until = match expires {
            Some(at) => format!(
                ", until {} (UTC)",
                super::super::history_when(u64::from(at) * 1000)
            ),
            None => String::new(),
        };
        let shown = events
            .send(Event::Invite {
                ticket: ticket.encode(),
            })
            .await
            .is_ok();
        shown.then(|| {
            Event::Info(format!(
                "Whoever has this invite can join #{room} and read it{until}: give it only to whom you invite (rust-p2p-chat --join TICKET). #{room} now admits invited peers only."
            ))
        })
    }
}

/// Where an invite says we are reached through relays: at most
/// [`MAX_RELAYED`] circuit addresses, each ending in our peer ID, those
/// of relays on public addresses first.
fn relayed_addrs(listening: &[Multiaddr], me: PeerId) -> Vec<Vec<u8>> {
    let mut relayed: Vec<&Multiaddr> = listening.iter().filter(|a| net::is_relayed(a)).collect();
    relayed.sort_by_key(|a| net::socket_addr(a).is_some_and(|s| s.ip().is_loopback()));
    relayed
        .into_iter()
        .map(|a| match net::peer_in(a) {
            Some(peer) if peer == me => a.to_vec(),
            _ => a
                .clone()
                .with(libp2p::multiaddr::Protocol::P2p(me))
                .to_vec(),
        })
        .filter(|bytes| bytes.len() <= usize::from(u8::MAX))
        .take(MAX_RELAYED)
        .collect()
}

/// The addresses an invite gives, best first: public ones, then the
/// LAN's, then this machine's own (for a peer on the same machine).
fn invite_addrs(listening: &[Multiaddr]) -> Vec<SocketAddr> {
    let rank = |ip: &IpAddr| match ip {
        ip if ip.is_loopback() => 2,
        IpAddr::V4(v4) if v4.is_private() => 1,
        IpAddr::V6(v6) if v6.is_unique_local() => 1,
        _ => 0,
    };
    let mut addrs: Vec<SocketAddr> = listening
        .iter()
        .filter(|a| !net::is_relayed(a))
        .filter_map(net::socket_addr)
        .filter(|a| {
            !a.ip().is_unspecified()
                && !matches!(a.ip(), IpAddr::V4(v4) if v4.is_link_local())
                && !matches!(a.ip(), IpAddr::V6(v6) if v6.is_unicast_link_local())
        })
        .collect();
    addrs.sort_by_key(|a| rank(&a.ip()));
    addrs.dedup();
    addrs.truncate(INVITE_ADDRS);
    addrs
}
