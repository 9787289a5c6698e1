//! Which private room a member means by a name.
//!
//! Every chat is a room, `lobby` unless named, and many private rooms
//! share a name; each is told apart by its founder (see
//! [`room_frame::topic`](super::room_frame::topic)). A peer that dials a
//! member, which is how a private room is joined, asks it on this stream
//! protocol which room of that name it is in, and joins that one: one
//! length-prefixed postcard request (the name), one reply (the founder's
//! peer ID, or nothing when the member is in no private room of that
//! name), both bounded in size and time. Discovery never asks, so a peer
//! met only through the LAN learns nothing of anyone's private rooms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::fetch::{read_message, write_message};
use super::{Client, Error};

/// The protocol.
pub const ROOM_PROTOCOL: StreamProtocol = StreamProtocol::new("/rust-p2p-chat/room/1.0.0");

/// Largest request or reply, in bytes: a room name, or a peer ID.
const MAX_MESSAGE: usize = 256;

/// How long a question may take.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Questions answered at once at most; more wait for their stream to be
/// taken (libp2p-stream drops streams nobody takes in time).
const MAX_ANSWERING: usize = 16;

/// The founder of each private room we are in, shared between the event
/// loop (which joins and leaves) and the task that answers.
pub type Founders = Arc<Mutex<HashMap<String, PeerId>>>;

impl Client {
    /// Asks `peer` which private room called `room` it is in: its
    /// founder, or `None` when it is in none or does not answer.
    pub async fn room_founder(&self, peer: PeerId, room: &str) -> Option<PeerId> {
        let mut control = self.control.clone();
        let work = async {
            let stream = control.open_stream(peer, ROOM_PROTOCOL).await.ok()?;
            let mut stream = stream.compat();
            write_message(&mut stream, &room.to_owned()).await.ok()?;
            let founder: Option<Vec<u8>> = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
            PeerId::from_bytes(&founder?).ok()
        };
        tokio::time::timeout(ASK_TIMEOUT, work).await.ok().flatten()
    }

    /// The founder of the private room called `room` that we are in.
    pub fn founder_of(&self, room: &str) -> Option<PeerId> {
        self.founders.lock().ok()?.get(room).copied()
    }
}

/// Answers, until the engine stops, which private room of a name we are
/// in.
pub(super) async fn answer(mut incoming: libp2p_stream::IncomingStreams, founders: Founders) {
    let answering = Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERING));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((_peer, stream)) = incoming.next().await {
        // Reap the finished ones, so the set stays as small as the limit.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&answering).acquire_owned().await else {
            return;
        };
        let founders = Arc::clone(&founders);
        tasks.spawn(async move {
            let _permit = permit;
            let mut stream = stream.compat();
            let work = async {
                let room: String = read_message(&mut stream, MAX_MESSAGE).await.ok()?;
                let founder = founders
                    .lock()
                    .ok()
                    .and_then(|f| f.get(&room).copied())
                    .map(|p| p.to_bytes());
                write_message(&mut stream, &founder).await.ok()?;
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
