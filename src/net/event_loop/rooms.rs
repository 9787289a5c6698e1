//! Room messages as they arrive: who may send them, whether they open
//! with the room's key, and what gossipsub is told to do with them.

use super::*;

impl EventLoop {
    /// Tells gossipsub what to do with a message held for validation.
    pub(super) fn judge(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance);
    }

    /// Checks a room message and tells gossipsub whether to pass it on.
    pub(super) fn on_room_message(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let (Some(author), Some(room)) = (
            message.source,
            self.topic_rooms.get(&message.topic).cloned(),
        ) else {
            self.judge(&id, &source, gossipsub::MessageAcceptance::Reject);
            return;
        };
        // A message costs at least its bytes: one its author has no room
        // for is refused before it is decoded, so a flood is turned away
        // at the price of counting it.
        let now = Instant::now();
        let rate = self.rates.entry(author).or_default();
        if !rate.has_room(now, message.data.len()) {
            let admit = rate.take(now, message.data.len());
            self.refuse(&id, &source, author, admit);
            return;
        }
        if self.watched.contains(&room) {
            self.judge(&id, &source, gossipsub::MessageAcceptance::Ignore);
            self.emit(NetEvent::Sealed {
                author,
                data: message.data,
            });
            return;
        }
        let size = message.data.len();
        let opened = match self.keys.get(&room) {
            Some(key) => room_frame::open(&message.data, &author, key),
            None => Ok(message.data),
        };
        let frame = match opened.and_then(|data| RoomFrame::decode(&data)) {
            Ok(frame) => frame,
            Err(_) => {
                // Lowers the score of the peer that passed it on.
                self.judge(&id, &source, gossipsub::MessageAcceptance::Reject);
                self.emit(NetEvent::Rejected { peer: author });
                return;
            }
        };
        if let room_frame::Body::Hello {
            invite_only: true, ..
        } = &frame.body
        {
            self.learn_invite_only(&room);
        }
        let (said, addrs) = frame.into_said();
        let lines = match &said {
            Said::Lines { texts, .. } => texts.len(),
            _ => 0,
        };
        let cost = size + lines * LINE_OVERHEAD;
        let rate = self.rates.entry(author).or_default();
        let admit = rate.take(now, cost);
        if admit != Admit::Yes {
            self.refuse(&id, &source, author, admit);
            return;
        }
        // Taken; its lines passed on only within what an author may have
        // us keep. What else it says (hello, have, leave) is always passed
        // on: a member may hear it only through us, and nothing fetches it.
        let lines_said = matches!(said, Said::Lines { .. });
        let acceptance = if !lines_said || rate.pass_on(now, size) {
            gossipsub::MessageAcceptance::Accept
        } else {
            gossipsub::MessageAcceptance::Ignore
        };
        self.judge(&id, &source, acceptance);
        self.emit(NetEvent::Room {
            room,
            author,
            via: source,
            said,
            addrs,
        });
    }

    /// Another member said the room admits only key holders: so do we
    /// from now on, and the app records it.
    pub(super) fn learn_invite_only(&mut self, room: &str) {
        let learned = self.rooms.lock().ok().and_then(|mut rooms| {
            let shared = rooms.get_mut(room)?;
            Some(!std::mem::replace(&mut shared.access.invite_only, true))
        });
        if learned == Some(true) {
            self.emit(NetEvent::InviteOnly {
                room: room.to_owned(),
            });
        }
    }

    /// An encoded frame as it goes out in `room`: sealed under the room's
    /// key when it has one.
    pub(super) fn sealed(&mut self, room: &str, data: Vec<u8>) -> Vec<u8> {
        let Some(key) = self.keys.get(room) else {
            return data;
        };
        self.nonce_counter += 1;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        nonce[16..].copy_from_slice(&self.nonce_counter.to_be_bytes());
        room_frame::seal(&data, self.swarm.local_peer_id(), key, nonce)
    }

    /// A room message over its author's rate: dropped, and the author told
    /// of or banned as `admit` says.
    pub(super) fn refuse(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        author: PeerId,
        admit: Admit,
    ) {
        self.judge(id, source, gossipsub::MessageAcceptance::Ignore);
        match admit {
            Admit::FirstDrop => self.emit(NetEvent::Throttled { peer: author }),
            Admit::Ban => {
                self.banned.insert(author);
                self.swarm.behaviour_mut().gossipsub.blacklist_peer(&author);
                let _ = self.swarm.disconnect_peer_id(author);
                self.emit(NetEvent::Banned { peer: author });
            }
            Admit::Yes | Admit::Drop => {}
        }
    }
}
