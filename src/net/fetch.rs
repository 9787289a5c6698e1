//! Fetching room lines a member missed, from a peer that has them.
//!
//! gossipsub is not reliable: under a burst its bounded queues drop
//! messages. A member that sees a gap in an author's sequence numbers asks
//! a peer (the author first) for the missing range on this stream protocol:
//! one length-prefixed postcard request, one length-prefixed postcard reply,
//! both bounded in size and time.

use std::io;
use std::time::Duration;

use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use super::{Client, Error};
use crate::chat::delivery::{FetchAsk, Fetched, StreamId};
use crate::chat::line::DEFAULT_MAX_LINE;

/// The fetch protocol.
pub const FETCH_PROTOCOL: StreamProtocol = StreamProtocol::new("/rust-p2p-chat/fetch/2.0.0");

/// Largest request accepted, in bytes.
const MAX_REQUEST: usize = 4 * 1024;

/// Text one fetch is answered with at most (but at least one line): the
/// member asks again for the rest, so a catch-up of any size costs this
/// much at a time, on both sides.
pub const MAX_FETCH_BYTES: usize = 1024 * 1024;

/// Largest reply accepted, in bytes: [`MAX_FETCH_BYTES`] of text, or one
/// line of the default longest, and the framing of as many lines as a
/// reply holds.
pub const MAX_REPLY: usize = 2 * MAX_FETCH_BYTES + DEFAULT_MAX_LINE;

/// How long a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines asked for: `from..=to` of one author's session in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The room.
    pub room: String,
    /// The author's peer ID, as bytes.
    pub author: Vec<u8>,
    /// The author's session.
    pub session: u64,
    /// First line wanted.
    pub from: u64,
    /// Last line wanted.
    pub to: u64,
}

/// The lines given: numbered from `first` (the first kept in the range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FetchReply {
    /// Sequence number of the first line.
    pub first: u64,
    /// The lines.
    pub texts: Vec<String>,
    /// When each line was written, by its author's clock (ms since 1970),
    /// one per line: a member new to a room shows what was said before it
    /// came as history, with its time.
    pub sent_ms: Vec<u64>,
    /// The nick the author gave with these lines, if the member answering
    /// knows it (unchecked: the asker checks it like any nick).
    pub nick: Option<String>,
}

impl From<FetchReply> for Fetched {
    fn from(reply: FetchReply) -> Fetched {
        Fetched {
            first: reply.first,
            texts: reply.texts,
            sent_ms: reply.sent_ms,
            nick: reply.nick,
        }
    }
}

impl From<Fetched> for FetchReply {
    fn from(lines: Fetched) -> FetchReply {
        FetchReply {
            first: lines.first,
            texts: lines.texts,
            sent_ms: lines.sent_ms,
            nick: lines.nick,
        }
    }
}

impl FetchRequest {
    /// The request for lines `from..=to` of a stream, if its author is a
    /// peer ID.
    pub fn asking(stream: &StreamId, from: u64, to: u64) -> Option<FetchRequest> {
        let author: PeerId = stream.author.parse().ok()?;
        Some(FetchRequest {
            room: stream.room.clone(),
            author: author.to_bytes(),
            session: stream.session,
            from,
            to,
        })
    }

    /// The author as a peer ID, if the bytes are one.
    pub fn author(&self) -> Option<PeerId> {
        PeerId::from_bytes(&self.author).ok()
    }

    /// The stream asked for, if the author is a peer ID.
    pub fn stream(&self) -> Option<StreamId> {
        let author = self.author()?;
        Some(StreamId::new(
            self.room.clone(),
            author.to_string(),
            self.session,
        ))
    }
}

impl Client {
    /// Asks `peer` for missing lines.
    pub async fn fetch(
        &mut self,
        peer: PeerId,
        request: &FetchRequest,
    ) -> Result<FetchReply, Error> {
        let failed = |cause: String| Error::OpenChat { peer, cause };
        let work = async {
            let stream = self
                .control
                .open_stream(peer, FETCH_PROTOCOL)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let mut stream = stream.compat();
            write_message(&mut stream, request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            read_message(&mut stream, MAX_REPLY)
                .await
                .map_err(|e| failed(e.to_string()))
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| failed("timed out".into()))?
    }

    /// Asks for missing lines: each peer named in turn (the author first:
    /// it has all it sent), until one has some. `None` when nobody had any.
    pub async fn fetch_missing(&mut self, ask: &FetchAsk) -> Option<Fetched> {
        let request = FetchRequest::asking(&ask.stream, ask.from, ask.to)?;
        for peer in &ask.ask {
            let Ok(peer) = peer.parse::<PeerId>() else {
                continue;
            };
            if let Ok(reply) = self.fetch(peer, &request).await {
                if !reply.texts.is_empty() {
                    return Some(reply.into());
                }
            }
        }
        None
    }

    /// Starts answering fetches.
    pub fn accept_fetches(&mut self) -> Result<FetchRequests, Error> {
        let inner = self
            .control
            .accept(FETCH_PROTOCOL)
            .map_err(|_| Error::AlreadyAccepting)?;
        Ok(FetchRequests { inner })
    }
}

/// Fetch requests from peers, in the order they arrive.
pub struct FetchRequests {
    inner: libp2p_stream::IncomingStreams,
}

impl FetchRequests {
    /// The next request and the stream to answer it on.
    pub async fn next(&mut self) -> Option<(PeerId, Fetch)> {
        let (peer, stream) = self.inner.next().await?;
        Some((
            peer,
            Fetch {
                stream: stream.compat(),
            },
        ))
    }
}

/// One fetch to answer.
pub struct Fetch {
    stream: Compat<libp2p::Stream>,
}

impl Fetch {
    /// Reads the request: lines `from..=to` of a stream. A request whose
    /// author is not a peer ID is answered with nothing, at once, and
    /// `None` is returned.
    pub async fn request(&mut self) -> io::Result<Option<(StreamId, u64, u64)>> {
        let request: FetchRequest =
            tokio::time::timeout(FETCH_TIMEOUT, read_message(&mut self.stream, MAX_REQUEST))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        match request.stream() {
            Some(stream) => Ok(Some((stream, request.from, request.to))),
            None => {
                self.send(&FetchReply::default()).await?;
                Ok(None)
            }
        }
    }

    /// Sends the lines asked for and closes the stream.
    pub async fn reply(mut self, lines: Fetched) -> io::Result<()> {
        self.send(&FetchReply::from(lines)).await
    }

    async fn send(&mut self, reply: &FetchReply) -> io::Result<()> {
        tokio::time::timeout(FETCH_TIMEOUT, async {
            write_message(&mut self.stream, reply).await?;
            self.stream.shutdown().await
        })
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }
}

pub(super) async fn write_message<T: Serialize>(
    stream: &mut (impl tokio::io::AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    let body = postcard::to_allocvec(message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let len =
        u32::try_from(body.len()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await
}

/// Reads one length-prefixed message of at most `max` bytes: the length is
/// checked before anything is allocated.
pub(super) async fn read_message<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    max: usize,
) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_oversized_ones_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let reply = FetchReply {
                first: 3,
                texts: vec!["a".into(), "a".into()],
                sent_ms: vec![1, 2],
                nick: Some("ann".into()),
            };
            let mut buf = Vec::new();
            write_message(&mut buf, &reply).await.unwrap();
            let back: FetchReply = read_message(&mut &buf[..], 1024).await.unwrap();
            assert_eq!(back, reply);
            let refused: io::Result<FetchReply> = read_message(&mut &buf[..], 4).await;
            assert!(refused.is_err());
        });
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn rt() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
        }

        proptest! {
            /// A request or an answer of arbitrary bytes is refused or
            /// decoded, never a panic, and nothing past the limit is read.
            #[test]
            fn arbitrary_bytes_are_refused_or_decoded_never_a_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                max in 0usize..1024,
            ) {
                rt().block_on(async {
                    let declared = bytes
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                    let reply: io::Result<FetchReply> = read_message(&mut &bytes[..], max).await;
                    if declared.is_some_and(|len| len > max) {
                        assert!(reply.is_err(), "read past the limit");
                    }
                    let _: io::Result<FetchRequest> = read_message(&mut &bytes[..], max).await;
                });
            }

            /// Reading a message of arbitrary bytes allocates at most the
            /// limit asked for and what serde may set aside for a sequence
            /// it has not read yet (1 MiB), whatever length it declares.
            #[test]
            fn reading_arbitrary_bytes_allocates_within_the_limit(
                bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                max in 0usize..4096,
            ) {
                let (_, peak) = crate::test_alloc::peak_during(|| {
                    rt().block_on(async {
                        let _: io::Result<FetchReply> = read_message(&mut &bytes[..], max).await;
                    })
                });
                // The runtime's own allocations, for a current-thread one,
                // stay under a few KiB.
                prop_assert!(peak <= max + (1 << 20) + 64 * 1024, "{peak} with a limit of {max}");
            }

            #[test]
            fn answers_round_trip(
                first in any::<u64>(),
                texts in proptest::collection::vec(".{0,64}", 0..32),
                nick in proptest::option::of("[a-z]{1,16}"),
            ) {
                let sent_ms = (0..texts.len() as u64).collect();
                let reply = FetchReply { first, texts, sent_ms, nick };
                let back: FetchReply = rt().block_on(async {
                    let mut buf = Vec::new();
                    write_message(&mut buf, &reply).await.expect("write to memory");
                    read_message(&mut &buf[..], 1 << 20).await.expect("read back")
                });
                prop_assert_eq!(back, reply);
            }
        }
    }
}
