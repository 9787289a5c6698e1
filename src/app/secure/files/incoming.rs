//! What peers open file streams for: offers, asks for the pieces of a
//! file we offered, rejections and cancellations.

use std::path::PathBuf;

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::super::RoomChat;
use super::{
    file_event, tasks, Ended, Known, MAX_PENDING_OFFERS, MAX_PENDING_OFFERS_PER_PEER, MAX_RUNNING,
};
use crate::chat::transfer::name::floor_to_char_boundary;
use crate::chat::transfer::{human_size, safe_name, Cv, FileEvent, TransferState};
use crate::chat::Event;
use crate::net::files::{Control, FileStream, MAX_OFFERED_NAME};
use crate::store::{Transfer, TransferUpdate};

impl RoomChat {
    /// A peer opened a file stream: `control` is what it is for.
    pub(in crate::app::secure) async fn on_file_stream(
        &mut self,
        events: &mpsc::Sender<Event>,
        stream: FileStream,
        control: Control,
    ) -> Option<Event> {
        let peer = stream.peer();
        match control {
            Control::Offer {
                id,
                name,
                size,
                root,
            } => self.on_offer(events, stream, id, name, size, root).await,
            Control::Get { id, root } => {
                let found = self.files.find(&peer, id, true).filter(|n| {
                    self.files
                        .known
                        .get(n)
                        .is_some_and(|k| k.transfer.root == root)
                });
                // Offered a moment ago, the offer's answer not yet taken in
                // here: the store knows it.
                let found = match found {
                    Some(number) => Some(number),
                    None => self.stored_offer(&peer, id, root).await,
                };
                let Some(number) = found else {
                    let reason = "no such transfer".to_owned();
                    self.tasks
                        .spawn(tasks::answer(stream, Control::Refused { reason }));
                    return None;
                };
                self.serve_file(number, stream).await
            }
            Control::Reject { id } => {
                let number = self.files.find(&peer, id, true);
                self.tasks.spawn(tasks::answer(stream, Control::Taken));
                let number = number?;
                let known = self.files.known.get(&number)?;
                if known.transfer.state != TransferState::Offered {
                    return None;
                }
                let name = known.transfer.name.clone();
                self.end_transfer(number, TransferState::Rejected).await;
                file_event(FileEvent::Declined {
                    number,
                    who: self.display_anywhere(&peer),
                    name,
                })
            }
            Control::Cancel { id } => {
                let number = self
                    .files
                    .find(&peer, id, true)
                    .or_else(|| self.files.find(&peer, id, false));
                self.tasks.spawn(tasks::answer(stream, Control::Taken));
                let number = number?;
                let known = self.files.known.get(&number)?;
                if known.transfer.state.ended() {
                    return None;
                }
                let name = known.transfer.name.clone();
                self.end_transfer(number, TransferState::Cancelled).await;
                file_event(FileEvent::Cancelled {
                    number,
                    name,
                    by: Some(self.display_anywhere(&peer)),
                })
            }
            _ => None,
        }
    }

    /// An offer of ours to `peer` that the store holds and this chat does
    /// not know yet, taken in.
    async fn stored_offer(&mut self, peer: &PeerId, id: u64, root: Cv) -> Option<u64> {
        let stored = self.secure.store.unfinished_transfers().await.ok()?;
        let key = peer.to_string();
        let transfer = stored
            .into_iter()
            .find(|t| t.outgoing && t.peer == key && t.id == id && t.root == root)?;
        let number = transfer.number;
        self.files.known.insert(number, Known::new(transfer));
        Some(number)
    }

    /// Whether `peer` shares a room with us (or is the peer we chat with).
    fn shares_a_room(&self, peer: &PeerId) -> bool {
        let key = peer.to_string();
        self.first_peer.as_ref() == Some(peer) || self.rooms.values().any(|r| r.contains(&key))
    }

    async fn on_offer(
        &mut self,
        events: &mpsc::Sender<Event>,
        stream: FileStream,
        id: u64,
        offered: String,
        size: u64,
        root: Cv,
    ) -> Option<Event> {
        let peer = stream.peer();
        let who = self.display_anywhere(&peer);
        let cut = floor_to_char_boundary(&offered, MAX_OFFERED_NAME);
        let name = safe_name(cut);
        let refuse = |reason: String| Control::Refused { reason };
        if !self.shares_a_room(&peer) {
            let reason = "files are taken from members of a room only".to_owned();
            self.tasks.spawn(tasks::answer(stream, refuse(reason)));
            return None;
        }
        if let Some(number) = self.files.find(&peer, id, false) {
            // Offered again (the answer was lost): the same transfer.
            self.tasks.spawn(tasks::answer(stream, Control::Taken));
            let _ = number;
            return None;
        }
        let offered_here =
            |k: &&Known| !k.transfer.outgoing && k.transfer.state == TransferState::Offered;
        let pending = self.files.known.values().filter(offered_here).count();
        let key = peer.to_string();
        let from_peer = self
            .files
            .known
            .values()
            .filter(offered_here)
            .filter(|k| k.transfer.peer == key)
            .count();
        let limit = self.files.options.max_file;
        // Nothing is made on the disk for an offer, not even the folder.
        let free = crate::store::downloads::free_bytes_for(&self.files.options.download_dir)
            .map_err(|e| e.to_string());
        let refused = if size > limit {
            Some(format!("larger than the {} limit", human_size(limit)))
        } else if pending >= MAX_PENDING_OFFERS || from_peer >= MAX_PENDING_OFFERS_PER_PEER {
            Some(format!(
                "{} offers are waiting already",
                pending.max(from_peer)
            ))
        } else {
            match free {
                Ok(free) if free < size => Some(format!("only {} free", human_size(free))),
                Ok(_) => None,
                Err(reason) => Some(reason),
            }
        };
        if let Some(reason) = refused {
            self.tasks
                .spawn(tasks::answer(stream, refuse(reason.clone())));
            return file_event(FileEvent::OfferRefused {
                who,
                name,
                size,
                reason,
            });
        }
        let transfer = Transfer {
            number: 0,
            id,
            outgoing: false,
            peer: peer.to_string(),
            name: name.clone(),
            size,
            root,
            path: None,
            stamp: None,
            state: TransferState::Offered,
            have: None,
            moved: 0,
            ts_ms: crate::app::now_ms(),
        };
        let number = match self.secure.store.add_transfer(transfer.clone()).await {
            Ok((number, true)) => number,
            // An id this peer used for a transfer that is over.
            Ok((_, false)) => {
                let reason = "that transfer is over; offer the file again".to_owned();
                self.tasks.spawn(tasks::answer(stream, refuse(reason)));
                return None;
            }
            Err(e) => {
                self.tasks
                    .spawn(tasks::answer(stream, refuse(e.to_string())));
                return None;
            }
        };
        self.tasks.spawn(tasks::answer(stream, Control::Taken));
        self.files
            .known
            .insert(number, Known::new(Transfer { number, ..transfer }));
        let offered = FileEvent::Offered {
            number,
            who,
            name,
            size,
        };
        if self.files.options.accept_from_trusted && self.secure.known.is_trusted(&peer) {
            // Shown, then taken as if `/accept` was typed.
            if events.send(Event::File(offered)).await.is_err() {
                return None;
            }
            return self.accept_file(number).await;
        }
        file_event(offered)
    }

    async fn serve_file(&mut self, number: u64, stream: FileStream) -> Option<Event> {
        let known = self.files.known.get(&number)?;
        let t = &known.transfer;
        let refused = t
            .state
            .ended()
            .then(|| format!("the transfer is {}", t.state.as_str()));
        // Asked again while we still serve it: the receiver's old stream
        // is gone (it runs one fetch per file), so this one takes over.
        if let Some(old) = self.files.running.remove(&number) {
            old.abort();
        }
        if self.files.running_each_way(true) >= MAX_RUNNING {
            self.tasks.spawn(tasks::answer(stream, Control::Busy));
            return None;
        }
        if let Some(reason) = refused {
            self.tasks
                .spawn(tasks::answer(stream, Control::Refused { reason }));
            return None;
        }
        let path = t.path.clone()?;
        let job = tasks::Serve {
            number,
            path: PathBuf::from(path),
            size: t.size,
            stamp: t.stamp,
            cvs: std::sync::Arc::clone(&self.files.cvs),
            moved: t.moved,
            store: self.secure.store.clone(),
            progress: self.files.progress_tx.clone(),
        };
        let first = t.state == TransferState::Offered;
        let handle = self
            .files
            .work
            .spawn(async move { Ended::Served(number, tasks::serve(job, stream).await) });
        self.files.running.insert(number, handle);
        if first {
            let update = TransferUpdate {
                state: Some(TransferState::Accepted),
                ..TransferUpdate::default()
            };
            let _ = self.secure.store.update_transfer(number, update).await;
            if let Some(known) = self.files.known.get_mut(&number) {
                known.transfer.state = TransferState::Accepted;
            }
        }
        None
    }
}
