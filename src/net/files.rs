//! The file protocol: offers, and the pieces of an accepted file.
//!
//! Files travel on a stream protocol of their own, [`FILE_PROTOCOL`], so a
//! transfer never sits in the chat's stream: each is a Yamux stream with
//! its own flow control, and the receiver asks for pieces a few at a time
//! (see `chat::transfer`), which bounds what either side holds.
//!
//! A stream opens with one [`Control`] frame that says what it is for: an
//! offer (answered [`Control::Taken`] or [`Control::Refused`]), a
//! rejection or a cancellation (answered [`Control::Taken`]), or a `Get`
//! for an accepted file, after which the sender names every piece's hash
//! and answers each `Want` with that piece.
//!
//! A frame is a 4-byte big-endian length, a 1-byte kind and the body:
//! kind 0 is a postcard-encoded [`Control`] of at most [`MAX_CONTROL`]
//! bytes; kind 1 is a piece: its 8-byte index and at most
//! [`MAX_PIECE_DATA`] bytes of the file. A length is checked against the
//! limit of its kind before anything is allocated.

use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use super::{Client, Error};

/// The file protocol.
pub const FILE_PROTOCOL: StreamProtocol = StreamProtocol::new("/rust-p2p-chat/file/1.0.0");

/// The largest control frame's body, in bytes: a batch of
/// [`MAX_CVS_PER_FRAME`] piece hashes and its framing fit.
pub const MAX_CONTROL: usize = 64 * 1024;

/// Piece hashes one [`Control::Cvs`] frame carries at most.
pub const MAX_CVS_PER_FRAME: usize = 1024;

/// The most file data one piece frame carries.
pub const MAX_PIECE_DATA: usize = crate::chat::transfer::PIECE_LEN as usize;

/// The longest name an offer carries, in bytes (the receiver cuts it
/// further to what a file system takes).
pub const MAX_OFFERED_NAME: usize = 4 * 1024;

/// The longest reason a refusal carries, in bytes.
pub const MAX_REASON: usize = 512;

const KIND_CONTROL: u8 = 0;
const KIND_PIECE: u8 = 1;

/// What a control frame says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// A file offered: its transfer id (the sender's), name, size and
    /// BLAKE3 hash.
    Offer {
        /// The transfer, as the sender numbers it.
        id: u64,
        /// The file's name, as the sender has it (unchecked).
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Its BLAKE3 hash.
        root: [u8; 32],
    },
    /// The receiver asks for an accepted file's piece hashes, then pieces.
    Get {
        /// The transfer.
        id: u64,
        /// The hash it was offered with.
        root: [u8; 32],
    },
    /// Piece hashes, from piece `first` on.
    Cvs {
        /// Index of the first.
        first: u64,
        /// The hashes.
        cvs: Vec<[u8; 32]>,
    },
    /// The receiver wants a piece.
    Want {
        /// Its index.
        index: u64,
    },
    /// The receiver holds the whole file, verified.
    Done {
        /// The transfer.
        id: u64,
    },
    /// The receiver declines an offer.
    Reject {
        /// The transfer.
        id: u64,
    },
    /// Either side stops a transfer.
    Cancel {
        /// The transfer.
        id: u64,
    },
    /// Understood.
    Taken,
    /// Not now: the sender is sending as many files as it sends at once;
    /// ask again later.
    Busy,
    /// Refused, and why.
    Refused {
        /// Why, for the other side's user (unchecked).
        reason: String,
    },
}

/// One frame as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A control frame.
    Control(Control),
    /// A piece of the file.
    Piece {
        /// Its index.
        index: u64,
        /// Its bytes.
        data: Vec<u8>,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A frame over its kind's limit.
    #[error("a frame of {len} bytes is over the limit")]
    TooLong {
        /// The length it declared.
        len: usize,
    },
    /// A frame of no kind we know, or a body that does not decode.
    #[error("a malformed frame")]
    Malformed,
    /// A control frame to send does not encode (or is over the limit).
    #[error("a control frame over the limit")]
    Unsendable,
}

/// Encodes one control frame, length and kind first.
pub fn encode_control(control: &Control) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_stdvec(control).map_err(|_| FrameError::Unsendable)?;
    if body.len() > MAX_CONTROL {
        return Err(FrameError::Unsendable);
    }
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.extend_from_slice(&frame_len(1 + body.len()).to_be_bytes());
    frame.push(KIND_CONTROL);
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The header of a piece frame whose data is `len` bytes.
fn piece_header(index: u64, len: usize) -> [u8; 13] {
    let mut header = [0u8; 13];
    header[..4].copy_from_slice(&frame_len(1 + 8 + len).to_be_bytes());
    header[4] = KIND_PIECE;
    header[5..].copy_from_slice(&index.to_be_bytes());
    header
}

fn frame_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes a frame's body (after its length): what arbitrary bytes from
/// a peer decode to, or why not. Never panics.
pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
    match body.split_first() {
        Some((&KIND_CONTROL, rest)) => postcard::from_bytes(rest)
            .map(Frame::Control)
            .map_err(|_| FrameError::Malformed),
        Some((&KIND_PIECE, rest)) if rest.len() >= 8 && rest.len() - 8 <= MAX_PIECE_DATA => {
            let (index, data) = rest.split_at(8);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(index);
            Ok(Frame::Piece {
                index: u64::from_be_bytes(bytes),
                data: data.to_vec(),
            })
        }
        _ => Err(FrameError::Malformed),
    }
}

/// The longest frame body of any kind.
const MAX_BODY: usize = 1 + 8 + MAX_PIECE_DATA;

/// Reads one frame; a control frame over [`MAX_CONTROL`] or a piece over
/// [`MAX_PIECE_DATA`] is refused before it is read.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_BODY {
        return Err(FrameError::TooLong { len });
    }
    let mut kind = [0u8; 1];
    reader.read_exact(&mut kind).await?;
    if kind[0] == KIND_CONTROL && len - 1 > MAX_CONTROL {
        return Err(FrameError::TooLong { len });
    }
    if kind[0] == KIND_PIECE && len >= 9 {
        let mut index = [0u8; 8];
        reader.read_exact(&mut index).await?;
        // Read where the bytes stay, into memory not first zeroed: a piece
        // is large, and this runs on the chat's thread.
        let want = len - 9;
        let mut data = Vec::with_capacity(want);
        (&mut *reader)
            .take(want as u64)
            .read_to_end(&mut data)
            .await?;
        if data.len() != want {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        return Ok(Frame::Piece {
            index: u64::from_be_bytes(index),
            data,
        });
    }
    let mut body = vec![0u8; len];
    body[0] = kind[0];
    reader.read_exact(&mut body[1..]).await?;
    decode_body(&body)
}

async fn write_control<W: AsyncWrite + Unpin>(
    writer: &mut W,
    control: &Control,
) -> Result<(), FrameError> {
    let frame = encode_control(control)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

async fn write_piece<W: AsyncWrite + Unpin>(
    writer: &mut W,
    index: u64,
    data: &[u8],
) -> Result<(), FrameError> {
    if data.len() > MAX_PIECE_DATA {
        return Err(FrameError::TooLong { len: data.len() });
    }
    writer.write_all(&piece_header(index, data.len())).await?;
    writer.write_all(data).await?;
    writer.flush().await?;
    Ok(())
}

/// One file stream: frames in and out.
pub struct FileStream {
    peer: PeerId,
    stream: Compat<libp2p::Stream>,
}

impl FileStream {
    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Sends a control frame.
    pub async fn send(&mut self, control: &Control) -> Result<(), FrameError> {
        write_control(&mut self.stream, control).await
    }

    /// Sends a piece of the file.
    pub async fn send_piece(&mut self, index: u64, data: &[u8]) -> Result<(), FrameError> {
        write_piece(&mut self.stream, index, data).await
    }

    /// Reads the next frame (see [`FileReader::recv`]).
    pub async fn recv(&mut self) -> Result<Frame, FrameError> {
        read_frame(&mut self.stream).await
    }

    /// Closes our side of the stream.
    pub async fn close(&mut self) -> Result<(), FrameError> {
        self.stream.shutdown().await?;
        Ok(())
    }

    /// The stream as a reading half and a writing half, to read frames in
    /// one task while another writes.
    pub fn split(self) -> (FileReader, FileWriter) {
        let (reader, writer) = tokio::io::split(self.stream);
        (FileReader { reader }, FileWriter { writer })
    }
}

/// The reading half of a [`FileStream`].
pub struct FileReader {
    reader: ReadHalf<Compat<libp2p::Stream>>,
}

impl FileReader {
    /// Reads the next frame; a control frame over [`MAX_CONTROL`] or a
    /// piece over [`MAX_PIECE_DATA`] is refused before it is read. Not
    /// cancel-safe: a frame half read is lost.
    pub async fn recv(&mut self) -> Result<Frame, FrameError> {
        read_frame(&mut self.reader).await
    }
}

/// The writing half of a [`FileStream`].
pub struct FileWriter {
    writer: WriteHalf<Compat<libp2p::Stream>>,
}

impl FileWriter {
    /// Sends a control frame.
    pub async fn send(&mut self, control: &Control) -> Result<(), FrameError> {
        write_control(&mut self.writer, control).await
    }

    /// Sends a piece of the file.
    pub async fn send_piece(&mut self, index: u64, data: &[u8]) -> Result<(), FrameError> {
        write_piece(&mut self.writer, index, data).await
    }

    /// Closes our side of the stream.
    pub async fn close(&mut self) -> Result<(), FrameError> {
        self.writer.shutdown().await?;
        Ok(())
    }
}

impl Client {
    /// Opens a file stream with a connected peer.
    pub async fn open_file_stream(&mut self, peer: PeerId) -> Result<FileStream, Error> {
        let stream = self
            .control
            .open_stream(peer, FILE_PROTOCOL)
            .await
            .map_err(|e| Error::OpenChat {
                peer,
                cause: e.to_string(),
            })?;
        Ok(FileStream {
            peer,
            stream: stream.compat(),
        })
    }

    /// Starts accepting file streams.
    pub fn accept_file_streams(&mut self) -> Result<FileStreams, Error> {
        let inner = self
            .control
            .accept(FILE_PROTOCOL)
            .map_err(|_| Error::AlreadyAccepting)?;
        Ok(FileStreams { inner })
    }
}

/// File streams peers open with us, in the order they arrive. Must be
/// polled continually: libp2p drops incoming streams that wait too long.
pub struct FileStreams {
    inner: libp2p_stream::IncomingStreams,
}

impl FileStreams {
    /// The next stream a peer opened. Cancel-safe.
    pub async fn next(&mut self) -> Option<FileStream> {
        let (peer, stream) = self.inner.next().await?;
        Some(FileStream {
            peer,
            stream: stream.compat(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_control_frame_round_trips() {
        let offer = Control::Offer {
            id: 7,
            name: "a.txt".into(),
            size: 3,
            root: [9; 32],
        };
        let frame = encode_control(&offer).expect("encodes");
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode_body(&frame[4..]).ok(), Some(Frame::Control(offer)));
    }

    #[test]
    fn a_piece_header_names_its_index_and_length() {
        let header = piece_header(5, 100);
        assert_eq!(
            u32::from_be_bytes([header[0], header[1], header[2], header[3]]),
            109
        );
        let mut body = header[4..].to_vec();
        body.extend_from_slice(&[1; 100]);
        assert_eq!(
            decode_body(&body).ok(),
            Some(Frame::Piece {
                index: 5,
                data: vec![1; 100]
            })
        );
    }

    #[test]
    fn a_full_batch_of_piece_hashes_fits_a_control_frame() {
        let cvs = Control::Cvs {
            first: u64::MAX,
            cvs: vec![[0xff; 32]; MAX_CVS_PER_FRAME],
        };
        assert!(encode_control(&cvs).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body(&bytes);
        }

        #[test]
        fn controls_round_trip(id in any::<u64>(), name in ".{0,40}", size in any::<u64>(), index in any::<u64>()) {
            for control in [
                Control::Offer { id, name: name.clone(), size, root: [1; 32] },
                Control::Get { id, root: [2; 32] },
                Control::Want { index },
                Control::Cvs { first: index, cvs: vec![[3; 32]; 3] },
                Control::Done { id },
                Control::Reject { id },
                Control::Cancel { id },
                Control::Taken,
                Control::Busy,
                Control::Refused { reason: name.clone() },
            ] {
                let frame = encode_control(&control).expect("encodes");
                prop_assert_eq!(decode_body(&frame[4..]).ok(), Some(Frame::Control(control)));
            }
        }
    }
}
