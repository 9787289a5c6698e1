//! Direct messages (`/msg`): one peer to one peer on the two-peer stream
//! protocol, outside any room.

use std::collections::hash_map::{Entry, HashMap};

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::RoomChat;
use crate::app::{now_ms, Error};
use crate::chat::delivery::refused::Refused;
use crate::chat::{Event, Received};
use crate::store::{self, Batch, Status};

/// Direct messages waiting to be shown.
const DIRECT_QUEUE: usize = 256;

/// Direct-message streams read at once, from everyone; more are closed
/// at once...
const MAX_DIRECT_STREAMS: usize = 16;

/// ... and from one peer.
const MAX_DIRECT_STREAMS_PER_PEER: usize = 4;

/// How long a direct message may take to be delivered.
pub(super) const DIRECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl RoomChat {
    /// Accepts direct-message streams and hands their messages on. The
    /// task and each stream's are the chat's: they end with it.
    pub(super) fn accept_direct(&mut self) -> Result<mpsc::Receiver<(PeerId, String)>, Error> {
        let mut chats = self.client.accept_chats()?;
        let (tx, rx) = mpsc::channel(DIRECT_QUEUE);
        self.tasks.spawn(async move {
            let mut streams = tokio::task::JoinSet::new();
            let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
            while let Some(session) = chats.next().await {
                while let Some(ended) = streams.try_join_next() {
                    if let Ok(peer) = ended {
                        if let Entry::Occupied(mut open) = per_peer.entry(peer) {
                            *open.get_mut() -= 1;
                            if *open.get() == 0 {
                                open.remove();
                            }
                        }
                    }
                }
                let peer = session.peer();
                let open = per_peer.entry(peer).or_default();
                if streams.len() >= MAX_DIRECT_STREAMS || *open >= MAX_DIRECT_STREAMS_PER_PEER {
                    // Dropped: the stream is closed.
                    continue;
                }
                *open += 1;
                let tx = tx.clone();
                streams.spawn(async move {
                    let (mut incoming, _outgoing) = session.split();
                    // A direct stream carries a few messages; bounded in time.
                    let _ = tokio::time::timeout(DIRECT_TIMEOUT, async {
                        while let Ok(Received::Message(text)) = incoming.next().await {
                            if tx.send((peer, text)).await.is_err() {
                                return;
                            }
                        }
                    })
                    .await;
                    peer
                });
            }
        });
        Ok(rx)
    }

    /// A direct message came: kept, then shown. False once the display is
    /// gone.
    pub(super) async fn on_direct(
        &mut self,
        events: &mpsc::Sender<Event>,
        peer: PeerId,
        text: String,
    ) -> bool {
        let from = self.display_anywhere(&peer);
        if let Some(e) = self.store_direct(peer, peer, text.clone(), false).await {
            let notice = self.direct_refused.failed(&crate::app::failure(&e));
            if let Some(notice) = notice {
                if events.send(Event::Notice(notice)).await.is_err() {
                    return false;
                }
            }
        }
        events.send(Event::Direct { from, text }).await.is_ok()
    }

    /// Keeps a direct message, sent (delivered: its stream was closed
    /// cleanly by both ends) or received, in the conversation with `peer`.
    /// Direct messages are numbered locally, per conversation and author.
    pub(super) async fn store_direct(
        &mut self,
        peer: PeerId,
        author: PeerId,
        text: String,
        outgoing: bool,
    ) -> Option<store::Error> {
        let conversation = format!("peer:{peer}");
        let author = author.to_string();
        let session = self.session;
        let batch = Batch {
            conversation: conversation.clone(),
            room: None,
            peer: Some(peer.to_string()),
            author: author.clone(),
            session,
            first_line: 0,
            name: if outgoing {
                self.secure.nick.clone()
            } else {
                self.nicks.get(&peer).cloned()
            },
            ts_ms: now_ms(),
            texts: vec![text],
            outgoing,
            status: if outgoing {
                Status::Sent
            } else {
                Status::Received
            },
        };
        self.secure.store.store_direct(batch).await.err()
    }
}

/// Kept refused direct messages: none are (they are shown), but a
/// failing store is said once.
pub(super) type DirectRefused = Refused<crate::chat::delivery::Lines>;
