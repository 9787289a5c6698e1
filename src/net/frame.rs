//! The chat stream's frames: a 4-byte big-endian length, then a postcard
//! encoded `Frame`.
//!
//! Like the line codec, the reader checks a frame is complete before it
//! parses it, and never holds more than one frame's limit of a peer's
//! bytes: a length over the limit is reported once as
//! [`Received::TooLong`] and the frame's bytes are then skipped as they
//! arrive, without being buffered. A frame that does not decode is dropped
//! ([`Received::Malformed`]) and the stream goes on, since the length
//! prefix keeps the framing intact. The writer appends frames to one buffer
//! and writes it in big pieces, so a burst of small messages costs few
//! writes (and few Noise frames); `flush` is cancel-safe.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::chat::Received;

/// Bytes of the length prefix.
const HEADER: usize = 4;

/// Bytes a frame may carry beyond its text: tag, sequence number, time,
/// and the text's length.
pub const FRAME_OVERHEAD: usize = 32;

/// Bytes asked of the stream in one read, at most...
const READ_CHUNK: usize = 64 * 1024;

/// ... and at first: a stream that sends nothing (or little) costs this
/// much, not a whole chunk, however many are open; the size doubles with
/// each read that fills it.
const FIRST_READ: usize = 1024;

/// The write buffer is written out once it holds this much.
const WRITE_BATCH: usize = 64 * 1024;

/// What travels on the chat stream (the encoding side).
#[derive(Debug, Serialize)]
enum FrameOut<'a> {
    Message {
        seq: u64,
        sent_ms: u64,
        text: &'a str,
    },
    Busy,
}

/// The same frames, decoded. The text is taken as bytes and decoded
/// lossily, so a peer's invalid UTF-8 shows as U+FFFD instead of costing
/// the whole message.
#[derive(Debug, Deserialize)]
enum FrameIn<'a> {
    Message {
        seq: u64,
        // Decoded to keep the format whole; not shown yet.
        #[allow(dead_code)]
        sent_ms: u64,
        #[serde(borrow)]
        text: &'a [u8],
    },
    Busy,
}

/// Reads frames from a stream, holding at most one frame's limit.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    /// Bytes of an oversized frame still to be skipped.
    skip: usize,
    max_text: usize,
    /// Highest sequence number seen; older or repeated ones are dropped.
    last_seq: u64,
    eof: bool,
    /// What the next read asks for (see [`FIRST_READ`]).
    read_size: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that accepts texts of up to `max_text` bytes.
    pub fn new(inner: R, max_text: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            start: 0,
            skip: 0,
            max_text,
            last_seq: 0,
            eof: false,
            read_size: FIRST_READ,
        }
    }

    /// The next thing the peer sent. Cancel-safe: bytes read stay in the
    /// reader. After the end it returns `Disconnected` again.
    pub async fn next(&mut self) -> io::Result<Received> {
        loop {
            if let Some(received) = self.try_next() {
                return Ok(received);
            }
            if self.eof {
                return Ok(Received::Disconnected);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(self.read_size);
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) => self.eof = true,
                Ok(n) if n >= self.read_size => {
                    self.read_size = (self.read_size * 2).min(READ_CHUNK);
                }
                Ok(_) => {}
                Err(e) => {
                    self.eof = true;
                    return Err(e);
                }
            }
        }
    }

    /// What is already read, without waiting.
    pub fn try_next(&mut self) -> Option<Received> {
        loop {
            let available = self.buf.len() - self.start;
            if self.skip > 0 {
                let n = self.skip.min(available);
                self.start += n;
                self.skip -= n;
                if self.skip > 0 {
                    return None;
                }
                continue;
            }
            if available < HEADER {
                return None;
            }
            let mut len = [0u8; HEADER];
            len.copy_from_slice(&self.buf[self.start..self.start + HEADER]);
            let len = u32::from_be_bytes(len) as usize;
            if len > self.max_text + FRAME_OVERHEAD {
                self.start += HEADER;
                self.skip = len;
                return Some(Received::TooLong {
                    limit: self.max_text,
                });
            }
            if available < HEADER + len {
                return None;
            }
            let body = self.start + HEADER;
            self.start = body + len;
            let decoded = postcard::from_bytes::<FrameIn<'_>>(&self.buf[body..body + len]);
            let received = match decoded {
                Ok(FrameIn::Message { seq, text, .. }) => {
                    if seq <= self.last_seq {
                        // A replayed or reordered frame: a stream cannot do
                        // that by itself, so the peer is misbehaving.
                        Received::Malformed
                    } else if text.len() > self.max_text {
                        self.last_seq = seq;
                        Received::TooLong {
                            limit: self.max_text,
                        }
                    } else {
                        self.last_seq = seq;
                        Received::Message(String::from_utf8_lossy(text).into_owned())
                    }
                }
                Ok(FrameIn::Busy) => Received::Busy,
                Err(_) => Received::Malformed,
            };
            return Some(received);
        }
    }
}

/// Writes frames through one buffer.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
    seq: u64,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer with an empty buffer.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            // Grown as frames are queued: a stream that never writes
            // costs nothing here.
            buf: Vec::new(),
            written: 0,
            seq: 0,
        }
    }

    /// Adds a message; it is written when the buffer fills or on `flush`.
    pub async fn queue(&mut self, text: &str, sent_ms: u64) -> io::Result<()> {
        self.seq += 1;
        let frame = FrameOut::Message {
            seq: self.seq,
            sent_ms,
            text,
        };
        self.append(&frame)?;
        if self.buf.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Tells the peer we are busy.
    pub async fn busy(&mut self) -> io::Result<()> {
        self.append(&FrameOut::Busy)?;
        self.flush().await
    }

    fn append(&mut self, frame: &FrameOut<'_>) -> io::Result<()> {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER]);
        let buf = std::mem::take(&mut self.buf);
        self.buf = postcard::to_extend(frame, buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let len = u32::try_from(self.buf.len() - at - HEADER)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.buf[at..at + HEADER].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Writes everything queued. Cancel-safe: what was written is
    /// remembered, so calling it again goes on where it stopped.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.written < self.buf.len() {
            let n = self.inner.write(&self.buf[self.written..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > 4 * WRITE_BATCH {
            self.buf.shrink_to(WRITE_BATCH);
        }
        self.inner.flush().await
    }

    /// Writes everything queued and closes our direction of the stream.
    pub async fn close(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames_of(bytes: Vec<u8>, max_text: usize) -> Vec<Received> {
        let mut reader = FrameReader::new(&bytes[..], max_text);
        let mut out = Vec::new();
        for _ in 0..1000 {
            match reader.next().await.unwrap() {
                Received::Disconnected => return out,
                other => out.push(other),
            }
        }
        panic!("no end");
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    async fn written(texts: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = FrameWriter::new(&mut out);
        for text in texts {
            writer.queue(text, 1).await.unwrap();
        }
        writer.flush().await.unwrap();
        out
    }

    #[test]
    fn messages_round_trip_whatever_the_segmentation() {
        rt().block_on(async {
            let bytes = written(&["hello", "", "same", "same", "caf\u{e9}"]).await;
            let want: Vec<Received> = ["hello", "", "same", "same", "caf\u{e9}"]
                .iter()
                .map(|t| Received::Message(t.to_string()))
                .collect();
            assert_eq!(frames_of(bytes.clone(), 100).await, want);
            // One byte at a time through a duplex pipe.
            let (mut tx, rx) = tokio::io::duplex(1);
            let feeder = async move {
                for b in bytes {
                    tx.write_all(&[b]).await.unwrap();
                }
            };
            let mut reader = FrameReader::new(rx, 100);
            let reading = async {
                let mut got = Vec::new();
                while let Received::Message(t) = reader.next().await.unwrap() {
                    got.push(Received::Message(t));
                }
                got
            };
            let ((), got) = tokio::join!(feeder, reading);
            assert_eq!(got, want);
        });
    }

    #[test]
    fn an_oversized_frame_is_skipped_unbuffered_and_the_stream_goes_on() {
        rt().block_on(async {
            let mut writer = FrameWriter::new(Vec::new());
            writer.queue("before", 0).await.unwrap();
            writer.flush().await.unwrap();
            writer.inner.extend_from_slice(&(10_000u32).to_be_bytes());
            writer.inner.extend(std::iter::repeat_n(7u8, 10_000));
            writer.queue("after", 0).await.unwrap();
            writer.flush().await.unwrap();
            assert_eq!(
                frames_of(writer.inner, 64).await,
                [
                    Received::Message("before".into()),
                    Received::TooLong { limit: 64 },
                    Received::Message("after".into()),
                ]
            );
        });
    }

    #[test]
    fn a_replayed_sequence_number_is_dropped() {
        rt().block_on(async {
            let twice = [written(&["one"]).await, written(&["again"]).await].concat();
            assert_eq!(
                frames_of(twice, 64).await,
                [Received::Message("one".into()), Received::Malformed]
            );
        });
    }

    #[test]
    fn a_long_text_within_the_frame_limit_is_still_too_long() {
        rt().block_on(async {
            let bytes = written(&[&"a".repeat(70)]).await;
            assert_eq!(
                frames_of(bytes, 64).await,
                [Received::TooLong { limit: 64 }]
            );
        });
    }

    #[test]
    fn garbage_and_invalid_utf8_do_not_end_the_stream() {
        rt().block_on(async {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&3u32.to_be_bytes());
            bytes.extend_from_slice(&[0xff, 0xff, 0xff]);
            // A message whose text is invalid UTF-8: tag 0, seq 1, time 0,
            // length 2, bytes.
            let body = [0u8, 1, 0, 2, 0xc3, 0x28];
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
            assert_eq!(
                frames_of(bytes, 64).await,
                [Received::Malformed, Received::Message("\u{fffd}(".into())]
            );
        });
    }

    #[test]
    fn busy_is_a_frame_of_its_own() {
        rt().block_on(async {
            let mut out = Vec::new();
            FrameWriter::new(&mut out).busy().await.unwrap();
            assert_eq!(frames_of(out, 64).await, [Received::Busy]);
        });
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a peer sends, the reader ends, never panics, and
            /// hands on no text over the limit.
            #[test]
            fn arbitrary_bytes_never_panic_nor_pass_an_oversized_text(
                bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                max_text in 1usize..512,
            ) {
                for received in rt().block_on(frames_of(bytes, max_text)) {
                    if let Received::Message(text) = received {
                        // Lossy decoding may grow a text by a replacement
                        // character (3 bytes) per invalid byte.
                        prop_assert!(text.chars().count() <= max_text);
                    }
                }
            }

            /// Reading arbitrary bytes holds at most a read's worth beyond
            /// one frame of the limit, whatever lengths the peer declares.
            #[test]
            fn reading_arbitrary_bytes_allocates_within_a_frame_and_a_read(
                bytes in proptest::collection::vec(any::<u8>(), 0..8192),
                max_text in 1usize..512,
            ) {
                let (_, peak) =
                    crate::test_alloc::peak_during(|| rt().block_on(frames_of(bytes, max_text)));
                let bound = 2 * (READ_CHUNK + max_text + FRAME_OVERHEAD) + 64 * 1024;
                prop_assert!(peak <= bound, "{peak} over {bound}");
            }

            /// Texts written by our writer come back as written, in order.
            #[test]
            fn written_texts_are_read_back_in_order(
                texts in proptest::collection::vec(".{0,64}", 0..32),
            ) {
                let read = rt().block_on(async {
                    let mut buf = Vec::new();
                    let mut writer = FrameWriter::new(&mut buf);
                    for text in &texts {
                        writer.queue(text, 1).await.expect("write to memory");
                    }
                    writer.flush().await.expect("flush to memory");
                    frames_of(buf, 1024).await
                });
                let back: Vec<String> = read
                    .into_iter()
                    .filter_map(|r| match r {
                        Received::Message(text) => Some(text),
                        _ => None,
                    })
                    .collect();
                prop_assert_eq!(back, texts);
            }
        }
    }
}
