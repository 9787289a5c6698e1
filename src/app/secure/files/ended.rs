//! How transfers go on and end: progress said at every tenth, and what
//! each task's end means for the transfer and the user.

use std::time::Instant;

use libp2p::PeerId;

use super::super::RoomChat;
use super::tasks::{Progress, Received, Served};
use super::{file_event, Ended, Known, MIN_RATE_SPAN, RATE_SPAN};
use crate::chat::transfer::{FileEvent, TransferState};
use crate::chat::Event;
use crate::store::TransferUpdate;

impl RoomChat {
    /// A report of how far a transfer is: said at every tenth.
    pub(in crate::app::secure) fn on_file_progress(&mut self, progress: Progress) -> Option<Event> {
        let known = self.files.known.get_mut(&progress.number)?;
        known.done = progress.done;
        known.told_paused = false;
        match known.sample {
            // The first report of this run: the rate is taken from here.
            None => known.sample = Some((Instant::now(), progress.done)),
            Some((at, bytes)) => {
                let elapsed = at.elapsed();
                if elapsed >= MIN_RATE_SPAN {
                    let moved = progress.done.saturating_sub(bytes);
                    known.rate = (moved as f64 / elapsed.as_secs_f64()) as u64;
                }
                if elapsed >= RATE_SPAN {
                    known.sample = Some((Instant::now(), progress.done));
                }
            }
        }
        if known.resuming {
            known.resuming = false;
            known.decile =
                (u128::from(progress.done) * 10 / u128::from(known.transfer.size.max(1))) as u64;
            return file_event(FileEvent::Receiving {
                number: progress.number,
                name: known.transfer.name.clone(),
                size: known.transfer.size,
                held: progress.done,
            });
        }
        let size = known.transfer.size.max(1);
        let decile = (u128::from(progress.done) * 10 / u128::from(size)) as u64;
        if decile <= known.decile || decile >= 10 {
            return None;
        }
        known.decile = decile;
        file_event(FileEvent::Progress {
            number: progress.number,
            name: known.transfer.name.clone(),
            done: progress.done,
            size: known.transfer.size,
            rate: known.rate,
            outgoing: known.transfer.outgoing,
        })
    }

    /// A transfer's task ended.
    pub(in crate::app::secure) async fn on_file_ended(&mut self, ended: Ended) -> Option<Event> {
        match ended {
            Ended::NotOffered { name, reason } => {
                file_event(FileEvent::NotOffered { name, reason })
            }
            Ended::Offered {
                number,
                cvs,
                result,
            } => {
                let transfer = self.secure.store.transfer(number).await.ok()??;
                let (name, size, peer) =
                    (transfer.name.clone(), transfer.size, transfer.peer.clone());
                // Known already when the receiver asked for it at once.
                self.files
                    .known
                    .entry(number)
                    .or_insert_with(|| Known::new(transfer));
                match result {
                    Ok(()) => {
                        if let Ok(mut known) = self.files.cvs.lock() {
                            known.insert(number, cvs);
                        }
                        let to = peer
                            .parse::<PeerId>()
                            .map_or(peer, |p| self.display_anywhere(&p));
                        file_event(FileEvent::OfferSent {
                            number,
                            to,
                            name,
                            size,
                        })
                    }
                    Err(reason) => {
                        self.end_transfer(number, TransferState::Failed).await;
                        file_event(FileEvent::NotOffered { name, reason })
                    }
                }
            }
            Ended::Served(number, served) => {
                self.files.running.remove(&number);
                let known = self.files.known.get(&number)?;
                let name = known.transfer.name.clone();
                let peer = known.transfer.peer.parse::<PeerId>().ok()?;
                let moved = match &served {
                    Served::Done { moved }
                    | Served::Cancelled { moved }
                    | Served::Interrupted { moved } => Some(*moved),
                    Served::Failed { .. } => None,
                };
                if let Some(moved) = moved {
                    if let Some(known) = self.files.known.get_mut(&number) {
                        known.transfer.moved = moved;
                    }
                    let update = TransferUpdate {
                        moved: Some(moved),
                        ..TransferUpdate::default()
                    };
                    let _ = self.secure.store.update_transfer(number, update).await;
                }
                match served {
                    Served::Done { .. } => {
                        self.end_transfer(number, TransferState::Done).await;
                        file_event(FileEvent::Sent {
                            number,
                            name,
                            to: self.display_anywhere(&peer),
                        })
                    }
                    Served::Cancelled { .. } => {
                        self.end_transfer(number, TransferState::Cancelled).await;
                        file_event(FileEvent::Cancelled {
                            number,
                            name,
                            by: Some(self.display_anywhere(&peer)),
                        })
                    }
                    Served::Interrupted { .. } => {
                        let known = self.files.known.get_mut(&number)?;
                        if known.told_paused {
                            return None;
                        }
                        known.told_paused = true;
                        file_event(FileEvent::Paused {
                            number,
                            name,
                            done: known.done,
                            size: known.transfer.size,
                        })
                    }
                    Served::Failed { reason } => {
                        self.end_transfer(number, TransferState::Failed).await;
                        file_event(FileEvent::Failed {
                            number,
                            name,
                            reason,
                        })
                    }
                }
            }
            Ended::Received(number, received) => {
                self.files.running.remove(&number);
                let known = self.files.known.get_mut(&number)?;
                let name = known.transfer.name.clone();
                let size = known.transfer.size;
                match received {
                    Received::Done { path } => {
                        // The task recorded the path and the state before
                        // telling the sender.
                        known.transfer.path = Some(path.display().to_string());
                        known.done = size;
                        self.end_transfer(number, TransferState::Done).await;
                        file_event(FileEvent::Received {
                            number,
                            name,
                            size,
                            path: path.display().to_string(),
                        })
                    }
                    Received::Cancelled => {
                        let by = known.transfer.peer.parse::<PeerId>().ok();
                        self.end_transfer(number, TransferState::Cancelled).await;
                        file_event(FileEvent::Cancelled {
                            number,
                            name,
                            by: by.map(|p| self.display_anywhere(&p)),
                        })
                    }
                    // Asked again by the next round of resumes, from
                    // where the store says the part file is.
                    Received::Busy => {
                        self.refresh_transfer(number).await;
                        None
                    }
                    Received::Paused { held } => {
                        known.done = held;
                        known.sample = None;
                        known.rate = 0;
                        known.resuming = true;
                        let told = std::mem::replace(&mut known.told_paused, true);
                        self.refresh_transfer(number).await;
                        if told {
                            return None;
                        }
                        file_event(FileEvent::Paused {
                            number,
                            name,
                            done: held,
                            size,
                        })
                    }
                    Received::Unplaced { part, reason } => {
                        // Never removed: all of it is there, verified. The
                        // sender is told the transfer is over.
                        known.transfer.state = TransferState::Failed;
                        known.transfer.path = None;
                        let update = TransferUpdate {
                            state: Some(TransferState::Failed),
                            ..TransferUpdate::default()
                        };
                        let _ = self.secure.store.update_transfer(number, update).await;
                        self.tell_cancelled(number);
                        file_event(FileEvent::Failed {
                            number,
                            name,
                            reason: format!(
                                "{reason}; the whole file, verified, is in {}",
                                part.display()
                            ),
                        })
                    }
                    Received::Failed { reason } => {
                        // The sender is told, or it would keep the file
                        // offered for ever.
                        self.tell_cancelled(number);
                        self.end_transfer(number, TransferState::Failed).await;
                        file_event(FileEvent::Failed {
                            number,
                            name,
                            reason,
                        })
                    }
                }
            }
        }
    }

    /// Takes what the store holds of a transfer being received (its part
    /// file, the pieces held, the bytes moved): a task records them as it
    /// goes, and the next try starts from there.
    async fn refresh_transfer(&mut self, number: u64) {
        if let Ok(Some(stored)) = self.secure.store.transfer(number).await {
            if let Some(known) = self.files.known.get_mut(&number) {
                known.transfer.path = stored.path;
                known.transfer.have = stored.have;
                known.transfer.moved = stored.moved;
            }
        }
    }
}
