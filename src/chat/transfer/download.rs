//! The receiving side of one transfer, as a state machine without I/O:
//! which pieces to ask for, which arrived whole, when it is done.
//!
//! The app feeds it the sender's piece hashes, asks it what to want next,
//! checks each piece that arrives against [`Download::expected`] (off the
//! chat's thread: hashing a piece takes a while) and reports the verdict.
//! Keeping it pure is what lets a corrupt piece, a lying sender and a
//! resume after a crash be tested exactly, without a network.

use std::collections::VecDeque;

use super::tree::{self, Cv};

/// Pieces asked for and not yet arrived, at most: what a transfer holds
/// in flight (a piece is [`super::PIECE_LEN`] bytes), enough to keep a
/// fast link busy while a piece is checked and written.
pub const WINDOW: usize = 8;

/// Corrupt pieces a transfer forgives before it gives the sender up.
pub const MAX_BAD_PIECES: u32 = 8;

/// Which pieces of a file are held, verified: a bitmap, kept with the
/// transfer so that a resumed one asks only for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Have {
    bits: Vec<u8>,
    pieces: u64,
}

impl Have {
    /// None of `pieces`.
    pub fn none(pieces: u64) -> Have {
        Have {
            bits: vec![0; bitmap_len(pieces)],
            pieces,
        }
    }

    /// The bitmap as stored; `None` if it is not one of `pieces` pieces.
    pub fn from_bytes(pieces: u64, bits: Vec<u8>) -> Option<Have> {
        (bits.len() == bitmap_len(pieces)).then_some(Have { bits, pieces })
    }

    /// The bitmap, to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Whether piece `index` is held.
    pub fn contains(&self, index: u64) -> bool {
        index < self.pieces
            && self
                .bits
                .get((index / 8) as usize)
                .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }

    fn set(&mut self, index: u64, held: bool) {
        if index >= self.pieces {
            return;
        }
        if let Some(byte) = self.bits.get_mut((index / 8) as usize) {
            if held {
                *byte |= 1 << (index % 8);
            } else {
                *byte &= !(1 << (index % 8));
            }
        }
    }

    /// How many pieces are held.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    /// The pieces held, in order.
    pub fn held(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.pieces).filter(|&i| self.contains(i))
    }
}

fn bitmap_len(pieces: u64) -> usize {
    usize::try_from(pieces.div_ceil(8)).unwrap_or(usize::MAX)
}

/// Why a transfer cannot go on with this sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// The piece hashes do not make the hash the file was offered with.
    #[error("the sender's piece hashes do not match the file it offered")]
    RootMismatch,
    /// Piece hashes out of order or too many.
    #[error("the sender sent piece hashes out of order")]
    BadHashes,
    /// A piece that was not asked for, or of the wrong length.
    #[error("the sender sent what was not asked for (piece {index})")]
    Unasked {
        /// The piece.
        index: u64,
    },
    /// Too many pieces failed their check.
    #[error("the sender sent {0} corrupt pieces")]
    TooManyBad(u32),
}

/// One file being received.
#[derive(Debug)]
pub struct Download {
    size: u64,
    root: Cv,
    pieces: u64,
    cvs: Vec<Cv>,
    have: Have,
    /// Asked for and not arrived, in the order asked.
    asked: VecDeque<u64>,
    /// Arrived and being checked.
    checking: Vec<u64>,
    /// Corrupt on arrival: asked for again before anything else.
    again: VecDeque<u64>,
    /// No piece below it is missing and unasked, but for `again`.
    cursor: u64,
    bad: u32,
}

impl Download {
    /// A download of a file of `size` bytes whose BLAKE3 hash is `root`,
    /// holding the pieces in `have` already (none for a new one).
    pub fn new(size: u64, root: Cv, have: Option<Have>) -> Download {
        let pieces = tree::piece_count(size);
        let have = have
            .filter(|h| h.pieces == pieces)
            .unwrap_or_else(|| Have::none(pieces));
        Download {
            size,
            root,
            pieces,
            cvs: Vec::new(),
            have,
            asked: VecDeque::new(),
            checking: Vec::new(),
            again: VecDeque::new(),
            cursor: 0,
            bad: 0,
        }
    }

    /// The number of pieces.
    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    /// Takes the sender's piece hashes from `first` on, in order; once all
    /// are in, checks that they make the offered hash.
    ///
    /// # Errors
    ///
    /// [`DownloadError::BadHashes`] when out of order or too many,
    /// [`DownloadError::RootMismatch`] when they do not make the hash.
    pub fn add_cvs(&mut self, first: u64, cvs: &[Cv]) -> Result<(), DownloadError> {
        let total = self.cvs.len() as u64 + cvs.len() as u64;
        if first != self.cvs.len() as u64 || total > self.pieces {
            return Err(DownloadError::BadHashes);
        }
        self.cvs.extend_from_slice(cvs);
        if self.ready() {
            let root = tree::root(self.size, &self.cvs).map_err(|_| DownloadError::BadHashes)?;
            if *root.as_bytes() != self.root {
                self.cvs.clear();
                return Err(DownloadError::RootMismatch);
            }
        }
        Ok(())
    }

    /// Whether every piece hash is in (and they make the offered hash).
    pub fn ready(&self) -> bool {
        self.cvs.len() as u64 == self.pieces
    }

    /// The hash piece `index` must have, once the hashes are in.
    pub fn expected(&self, index: u64) -> Option<Cv> {
        self.cvs.get(usize::try_from(index).ok()?).copied()
    }

    /// Pieces to ask for now: the corrupt ones first, then the next
    /// missing ones, up to [`WINDOW`] in flight. Nothing before the hashes
    /// are in.
    pub fn next_wants(&mut self) -> Vec<u64> {
        let mut wants = Vec::new();
        if !self.ready() {
            return wants;
        }
        while self.asked.len() + self.checking.len() < WINDOW {
            let next = match self.again.pop_front() {
                Some(index) => index,
                None => {
                    while self.cursor < self.pieces && self.have.contains(self.cursor) {
                        self.cursor += 1;
                    }
                    if self.cursor >= self.pieces {
                        break;
                    }
                    self.cursor += 1;
                    self.cursor - 1
                }
            };
            self.asked.push_back(next);
            wants.push(next);
        }
        wants
    }

    /// A piece arrived with `len` bytes: to be checked against the hash
    /// returned, if it was asked for (and has not arrived already) and has
    /// its length.
    ///
    /// # Errors
    ///
    /// [`DownloadError::Unasked`]: the sender is to be cut off.
    pub fn arrived(&mut self, index: u64, len: usize) -> Result<Cv, DownloadError> {
        let fits = tree::piece_len(self.size, index) == Some(len as u64);
        let asked = self.asked.iter().position(|&i| i == index);
        match (self.expected(index), asked) {
            (Some(cv), Some(at)) if fits => {
                self.asked.remove(at);
                self.checking.push(index);
                Ok(cv)
            }
            _ => Err(DownloadError::Unasked { index }),
        }
    }

    /// A piece passed its check (and is written).
    pub fn verified(&mut self, index: u64) {
        self.checking.retain(|&i| i != index);
        self.have.set(index, true);
    }

    /// A piece failed its check: it is asked for again first.
    ///
    /// # Errors
    ///
    /// [`DownloadError::TooManyBad`] after [`MAX_BAD_PIECES`] of them.
    pub fn corrupt(&mut self, index: u64) -> Result<(), DownloadError> {
        self.checking.retain(|&i| i != index);
        self.bad += 1;
        if self.bad > MAX_BAD_PIECES {
            return Err(DownloadError::TooManyBad(self.bad));
        }
        self.again.push_back(index);
        Ok(())
    }

    /// A piece thought held is not (it failed a check on disk after a
    /// restart): it is asked for again.
    pub fn forget(&mut self, index: u64) {
        self.have.set(index, false);
        self.cursor = self.cursor.min(index);
    }

    /// Forgets what was asked: the stream it was asked on is gone.
    pub fn interrupted(&mut self) {
        self.asked.clear();
        self.checking.clear();
        self.again.clear();
        self.cursor = 0;
        self.cvs.clear();
    }

    /// Whether every piece is held.
    pub fn complete(&self) -> bool {
        self.have.count() == self.pieces
    }

    /// The pieces held.
    pub fn have(&self) -> &Have {
        &self.have
    }

    /// Bytes held, verified: every piece is whole but the last. Asked for
    /// after every piece, so counted from the bitmap, not piece by piece.
    pub fn verified_bytes(&self) -> u64 {
        let whole = self.have.count().saturating_mul(super::PIECE_LEN);
        let last = self.pieces.saturating_sub(1);
        if self.have.contains(last) {
            let short =
                super::PIECE_LEN - tree::piece_len(self.size, last).unwrap_or(super::PIECE_LEN);
            whole.saturating_sub(short)
        } else {
            whole
        }
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::transfer::PIECE_LEN;

    fn file(size: u64) -> Vec<u8> {
        (0..size).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn cvs_of(data: &[u8]) -> Vec<Cv> {
        let size = data.len() as u64;
        (0..tree::piece_count(size))
            .map(|i| {
                let start = (i * PIECE_LEN) as usize;
                let end = (start + PIECE_LEN as usize).min(data.len());
                tree::piece_cv(size, i, &data[start..end]).expect("a piece")
            })
            .collect()
    }

    /// Runs a download to the end, corrupting the pieces `corrupt` names
    /// the first time they are sent; returns how many pieces were sent.
    fn run(size: u64, have: Option<Have>, mut corrupt: Vec<u64>) -> (Download, u64) {
        let data = file(size);
        let root = *blake3::hash(&data).as_bytes();
        let mut download = Download::new(size, root, have);
        download.add_cvs(0, &cvs_of(&data)).expect("hashes fit");
        let mut sent = 0;
        for _ in 0..10_000 {
            let wants = download.next_wants();
            if wants.is_empty() {
                break;
            }
            for index in wants {
                sent += 1;
                let start = (index * PIECE_LEN) as usize;
                let end = (start + PIECE_LEN as usize).min(data.len());
                let mut piece = data[start..end].to_vec();
                if let Some(at) = corrupt.iter().position(|&c| c == index) {
                    corrupt.remove(at);
                    if let Some(byte) = piece.last_mut() {
                        *byte ^= 1;
                    }
                }
                match download.arrived(index, piece.len()) {
                    Ok(cv) if tree::check_piece(size, index, &piece, &cv).is_ok() => {
                        download.verified(index)
                    }
                    Ok(_) => download.corrupt(index).expect("a few are forgiven"),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        (download, sent)
    }

    #[test]
    fn every_size_completes_with_each_piece_sent_once() {
        for size in [
            0,
            1,
            PIECE_LEN - 1,
            PIECE_LEN,
            PIECE_LEN + 1,
            3 * PIECE_LEN + 5,
        ] {
            let (download, sent) = run(size, None, Vec::new());
            assert!(download.complete(), "size {size}");
            assert_eq!(sent, tree::piece_count(size), "size {size}");
            assert_eq!(download.verified_bytes(), size);
        }
    }

    #[test]
    fn a_corrupt_piece_is_asked_for_again_at_once() {
        let size = 20 * PIECE_LEN + 3;
        let (download, sent) = run(size, None, vec![2, 2, 17]);
        assert!(download.complete());
        assert_eq!(sent, tree::piece_count(size) + 3);
    }

    #[test]
    fn a_sender_that_keeps_lying_is_given_up() {
        let size = 2 * PIECE_LEN;
        let data = file(size);
        let mut download = Download::new(size, *blake3::hash(&data).as_bytes(), None);
        download.add_cvs(0, &cvs_of(&data)).expect("hashes fit");
        let mut result = Ok(());
        for _ in 0..=MAX_BAD_PIECES {
            let wants = download.next_wants();
            for &index in &wants {
                download.arrived(index, PIECE_LEN as usize).expect("asked");
            }
            result = download.corrupt(wants[0]);
            for other in wants.into_iter().skip(1) {
                download.verified(other);
            }
        }
        assert_eq!(result, Err(DownloadError::TooManyBad(MAX_BAD_PIECES + 1)));
    }

    #[test]
    fn a_resumed_download_asks_only_for_what_it_lacks() {
        let size = 10 * PIECE_LEN;
        let mut have = Have::none(10);
        for i in [0, 1, 2, 3, 7] {
            have.set(i, true);
        }
        let stored = Have::from_bytes(10, have.as_bytes().to_vec());
        let (download, sent) = run(size, stored, Vec::new());
        assert!(download.complete());
        assert_eq!(sent, 5);
    }

    #[test]
    fn hashes_that_do_not_make_the_offered_hash_are_refused() {
        let size = 3 * PIECE_LEN;
        let data = file(size);
        let mut cvs = cvs_of(&data);
        cvs.swap(0, 1);
        let mut download = Download::new(size, *blake3::hash(&data).as_bytes(), None);
        assert_eq!(download.add_cvs(0, &cvs), Err(DownloadError::RootMismatch));
        assert!(download.next_wants().is_empty());
        let mut download = Download::new(size, *blake3::hash(&data).as_bytes(), None);
        assert_eq!(download.add_cvs(1, &cvs), Err(DownloadError::BadHashes));
    }

    #[test]
    fn unasked_and_overlong_pieces_cut_the_sender_off() {
        let size = PIECE_LEN + 10;
        let data = file(size);
        let mut download = Download::new(size, *blake3::hash(&data).as_bytes(), None);
        download.add_cvs(0, &cvs_of(&data)).expect("hashes fit");
        assert!(download.arrived(0, PIECE_LEN as usize).is_err());
        let wants = download.next_wants();
        assert_eq!(wants, [0, 1]);
        assert!(download.arrived(1, 11).is_err());
        assert!(download.arrived(5, 10).is_err());
        assert!(download.arrived(1, 10).is_ok());
        // Once arrived, the same piece again was not asked for.
        assert!(download.arrived(1, 10).is_err());
    }

    #[test]
    fn no_more_than_a_window_is_in_flight() {
        let size = 100 * PIECE_LEN;
        let data = file(size);
        let mut download = Download::new(size, *blake3::hash(&data).as_bytes(), None);
        download.add_cvs(0, &cvs_of(&data)).expect("hashes fit");
        assert_eq!(download.next_wants().len(), WINDOW);
        assert!(download.next_wants().is_empty());
        download.arrived(0, PIECE_LEN as usize).expect("asked");
        assert!(
            download.next_wants().is_empty(),
            "a piece being checked is in flight"
        );
        download.verified(0);
        assert_eq!(download.next_wants(), [WINDOW as u64]);
    }
}
