//! Verifying a file piece by piece against its plain BLAKE3 hash.
//!
//! The offer names a file by its ordinary BLAKE3 hash (what `b3sum` prints),
//! so users can compare it with tools they already have. To avoid trusting a
//! whole file until the last byte arrives, the file is cut into pieces of
//! [`PIECE_LEN`] bytes. Because that is a power of two number of BLAKE3
//! chunks, every piece is a complete subtree of the BLAKE3 tree (the last one
//! may be short but still sits on the right edge), so each piece has a
//! chaining value (CV) and the CVs merge into the file hash with no extra
//! hashing scheme. The receiver first checks that the list of piece CVs
//! merges to the offered hash, then checks each piece as it arrives against
//! its CV, and can reject a bad piece after at most one piece of data.
//!
//! This uses `blake3::hazmat`, whose functions give garbage (or panic) when
//! the tree shape is wrong. All shape decisions are therefore kept here, every
//! input a peer controls is checked before it reaches `hazmat`, and the tests
//! compare against `blake3::hash` of the whole input.
//!
//! A zero-byte file has one piece of zero bytes, so that every file has at
//! least one CV and the protocol needs no special case for empty files.

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};
use blake3::Hasher;

/// Bytes per piece: 1024 BLAKE3 chunks. Large enough that the CV list is
/// small (32 bytes per MiB), small enough that a corrupt piece wastes little.
pub const PIECE_LEN: u64 = 1 << 20;

/// A piece's chaining value, or for a single-piece file the file hash itself.
pub type Cv = [u8; 32];

/// Why a piece or a list of piece CVs was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("piece {index} does not exist: the file has {count} pieces")]
    PieceOutOfRange { index: u64, count: u64 },
    #[error("piece {index} has {actual} bytes, expected {expected}")]
    PieceLength {
        index: u64,
        expected: u64,
        actual: u64,
    },
    #[error("piece {index} does not match its chaining value")]
    PieceMismatch { index: u64 },
    #[error("got {actual} piece chaining values, a file of {size} bytes has {expected}")]
    CvCount {
        size: u64,
        expected: u64,
        actual: u64,
    },
    #[error("the piece chaining values do not merge to the offered file hash")]
    RootMismatch,
}

/// Number of pieces in a file of `size` bytes; at least 1, because a
/// zero-byte file has one empty piece.
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_LEN).max(1)
}

/// Length of piece `index` of a file of `size` bytes, or `None` if there is
/// no such piece. Every piece but the last is [`PIECE_LEN`] long.
pub fn piece_len(size: u64, index: u64) -> Option<u64> {
    let count = piece_count(size);
    if index >= count {
        None
    } else if index + 1 == count {
        // index < count <= 2^44, so this cannot overflow.
        Some(size - index * PIECE_LEN)
    } else {
        Some(PIECE_LEN)
    }
}

/// Hashes one piece incrementally, so a sender can compute CVs while reading
/// the file in buffers of any size.
///
/// It never feeds `hazmat` more bytes than the piece can hold (which would
/// panic inside `blake3`); surplus input is only counted, and
/// [`finish`](Self::finish) then reports the wrong length.
#[derive(Clone, Debug)]
pub struct PieceHasher {
    hasher: Hasher,
    index: u64,
    expected: u64,
    seen: u64,
    only_piece: bool,
}

impl PieceHasher {
    /// Starts hashing piece `index` of a file of `size` bytes.
    pub fn new(size: u64, index: u64) -> Result<Self, TreeError> {
        let count = piece_count(size);
        let expected = piece_len(size, index).ok_or(TreeError::PieceOutOfRange { index, count })?;
        let mut hasher = Hasher::new();
        // The chunk counter is part of every chunk's hash, so the piece must
        // know where it sits. index < count, so this cannot overflow, and it
        // is a multiple of the chunk length as hazmat requires.
        hasher.set_input_offset(index * PIECE_LEN);
        Ok(Self {
            hasher,
            index,
            expected,
            seen: 0,
            only_piece: count == 1,
        })
    }

    /// Adds the next bytes of the piece.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        let room = self.expected.saturating_sub(self.seen);
        let take = usize::try_from(room).map_or(data.len(), |room| room.min(data.len()));
        self.hasher.update(data.get(..take).unwrap_or_default());
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.seen = self.seen.saturating_add(len);
        self
    }

    /// The piece's CV, or an error if the bytes given were not exactly the
    /// piece's length.
    ///
    /// For a single-piece file the "CV" is the file's root hash
    /// (`blake3::hash` of the data): such a piece has no parent node, so its
    /// non-root CV appears nowhere in the tree and could not be checked
    /// against the offered hash.
    pub fn finish(&self) -> Result<Cv, TreeError> {
        if self.seen != self.expected {
            return Err(TreeError::PieceLength {
                index: self.index,
                expected: self.expected,
                actual: self.seen,
            });
        }
        if self.only_piece {
            Ok(*self.hasher.finalize().as_bytes())
        } else {
            // Not empty: only the last piece of a zero-byte file is empty,
            // and that file has one piece. hazmat panics on empty subtrees.
            Ok(self.hasher.finalize_non_root())
        }
    }
}

/// The CV of piece `index` of a file of `size` bytes, whose contents are
/// `data`. For a single-piece file this is the file hash; see
/// [`PieceHasher::finish`].
pub fn piece_cv(size: u64, index: u64, data: &[u8]) -> Result<Cv, TreeError> {
    PieceHasher::new(size, index)?.update(data).finish()
}

/// Merges the CVs of all pieces of a file of `size` bytes into the file's
/// BLAKE3 hash, which equals `blake3::hash` of the whole file.
pub fn root(size: u64, cvs: &[Cv]) -> Result<blake3::Hash, TreeError> {
    let expected = piece_count(size);
    if u64::try_from(cvs.len()).ok() != Some(expected) {
        return Err(TreeError::CvCount {
            size,
            expected,
            actual: u64::try_from(cvs.len()).unwrap_or(u64::MAX),
        });
    }
    Ok(match cvs {
        [only] => blake3::Hash::from(*only),
        _ => {
            let (left, right) = split(cvs);
            merge_subtrees_root(&subtree_cv(left), &subtree_cv(right), Mode::Hash)
        }
    })
}

/// Checks a received CV list against the hash from the offer.
pub fn check_cvs(size: u64, cvs: &[Cv], expected: &blake3::Hash) -> Result<(), TreeError> {
    // blake3::Hash compares in constant time.
    if root(size, cvs)? == *expected {
        Ok(())
    } else {
        Err(TreeError::RootMismatch)
    }
}

/// Checks a received piece against its CV from a list already accepted by
/// [`check_cvs`].
pub fn check_piece(size: u64, index: u64, data: &[u8], expected: &Cv) -> Result<(), TreeError> {
    let count = piece_count(size);
    let want = piece_len(size, index).ok_or(TreeError::PieceOutOfRange { index, count })?;
    let actual = u64::try_from(data.len()).unwrap_or(u64::MAX);
    if actual != want {
        return Err(TreeError::PieceLength {
            index,
            expected: want,
            actual,
        });
    }
    if piece_cv(size, index, data)? == *expected {
        Ok(())
    } else {
        Err(TreeError::PieceMismatch { index })
    }
}

/// BLAKE3's tree is left-balanced: the left subtree holds the largest power
/// of two of chunks strictly less than the total. With whole pieces being a
/// power of two of chunks, that is the largest power of two of pieces
/// strictly less than the piece count. Needs at least two CVs, so both
/// halves are non-empty.
fn split(cvs: &[Cv]) -> (&[Cv], &[Cv]) {
    let n = cvs.len();
    let left = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
    cvs.split_at(left)
}

fn subtree_cv(cvs: &[Cv]) -> Cv {
    match cvs {
        // Unreachable: `root` rejects empty lists and `split` never returns
        // an empty half. Answering garbage rather than panicking still makes
        // the root check fail.
        [] => [0; 32],
        [only] => *only,
        _ => {
            let (left, right) = split(cvs);
            merge_subtrees_non_root(&subtree_cv(left), &subtree_cv(right), Mode::Hash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: u64 = PIECE_LEN;
    const SIZES: [u64; 12] = [
        0,
        1,
        1023,
        1024,
        1025,
        P - 1,
        P,
        P + 1,
        2 * P,
        3 * P + 5,
        5 * P,
        7 * P + 1,
    ];

    /// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce
    /// and no piece looks like another.
    fn data(len: u64, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(len as usize);
        while (out.len() as u64) < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            let want = (len as usize - out.len()).min(8);
            out.extend_from_slice(&word[..want]);
        }
        out
    }

    fn pieces(bytes: &[u8]) -> Vec<&[u8]> {
        if bytes.is_empty() {
            vec![bytes]
        } else {
            bytes.chunks(P as usize).collect()
        }
    }

    fn cvs(size: u64, bytes: &[u8]) -> Vec<Cv> {
        pieces(bytes)
            .iter()
            .enumerate()
            .map(|(i, piece)| piece_cv(size, i as u64, piece).expect("valid piece"))
            .collect()
    }

    #[test]
    fn piece_geometry() {
        assert_eq!(piece_count(0), 1);
        assert_eq!(piece_len(0, 0), Some(0));
        assert_eq!(piece_len(0, 1), None);
        assert_eq!(piece_count(P), 1);
        assert_eq!(piece_count(P + 1), 2);
        assert_eq!(piece_len(P + 1, 0), Some(P));
        assert_eq!(piece_len(P + 1, 1), Some(1));
        assert_eq!(piece_len(P + 1, 2), None);
        assert_eq!(piece_count(u64::MAX), 1 << 44);
        assert_eq!(piece_len(u64::MAX, (1 << 44) - 1), Some(P - 1));
        assert_eq!(piece_len(u64::MAX, u64::MAX), None);
    }

    #[test]
    fn pieces_merge_to_the_plain_hash() {
        for (seed, size) in SIZES.into_iter().enumerate() {
            let bytes = data(size, seed as u64);
            let cvs = cvs(size, &bytes);
            assert_eq!(cvs.len() as u64, piece_count(size));
            let hash = blake3::hash(&bytes);
            assert_eq!(root(size, &cvs), Ok(hash), "size {size}");
            assert_eq!(check_cvs(size, &cvs, &hash), Ok(()));
            for (i, piece) in pieces(&bytes).into_iter().enumerate() {
                assert_eq!(check_piece(size, i as u64, piece, &cvs[i]), Ok(()));
            }
        }
    }

    #[test]
    fn single_piece_cv_is_the_file_hash() {
        for size in [0, 1, P] {
            let bytes = data(size, 99);
            let cv = piece_cv(size, 0, &bytes).expect("valid piece");
            assert_eq!(cv, *blake3::hash(&bytes).as_bytes());
        }
    }

    #[test]
    fn corrupted_pieces_are_rejected() {
        for (seed, size) in SIZES.into_iter().enumerate().filter(|(_, s)| *s > 0) {
            let mut bytes = data(size, seed as u64);
            let cvs = cvs(size, &bytes);
            let starts: Vec<usize> = (0..cvs.len()).map(|i| i * P as usize).collect();
            for (i, start) in starts.into_iter().enumerate() {
                let end = (start + P as usize).min(bytes.len());
                // Flip a byte in the middle of the piece, then restore it.
                let at = start + (end - start) / 2;
                bytes[at] ^= 0x40;
                let piece = &bytes[start..end];
                assert_eq!(
                    check_piece(size, i as u64, piece, &cvs[i]),
                    Err(TreeError::PieceMismatch { index: i as u64 }),
                    "size {size} piece {i}"
                );
                bytes[at] ^= 0x40;
            }
        }
    }

    #[test]
    fn pieces_are_bound_to_their_position() {
        let size = 2 * P;
        let bytes = data(size, 7);
        let cvs = cvs(size, &bytes);
        let first = &bytes[..P as usize];
        assert!(check_piece(size, 1, first, &cvs[0]).is_err());
        assert!(check_piece(size, 1, first, &cvs[1]).is_err());
        // The same bytes as a one-piece file hash differently again.
        assert_ne!(piece_cv(P, 0, first), Ok(cvs[0]));
    }

    #[test]
    fn tampered_cv_lists_are_rejected() {
        let size = 3 * P + 5;
        let bytes = data(size, 3);
        let hash = blake3::hash(&bytes);
        let good = cvs(size, &bytes);

        for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 3)] {
            let mut swapped = good.clone();
            swapped.swap(a, b);
            assert_ne!(root(size, &swapped), Ok(hash));
            assert_eq!(
                check_cvs(size, &swapped, &hash),
                Err(TreeError::RootMismatch)
            );
        }
        let mut flipped = good.clone();
        flipped[3][0] ^= 1;
        assert_eq!(
            check_cvs(size, &flipped, &hash),
            Err(TreeError::RootMismatch)
        );
        assert_eq!(
            root(size, &good[..3]),
            Err(TreeError::CvCount {
                size,
                expected: 4,
                actual: 3
            })
        );
        assert!(root(size, &[]).is_err());
        assert!(root(0, &[]).is_err());
    }

    #[test]
    fn wrong_lengths_and_indices_are_errors_not_panics() {
        let size = 2 * P + 10;
        let bytes = data(size, 5);
        let cvs = cvs(size, &bytes);
        let first = &bytes[..P as usize];
        assert_eq!(
            check_piece(size, 0, &first[..10], &cvs[0]),
            Err(TreeError::PieceLength {
                index: 0,
                expected: P,
                actual: 10
            })
        );
        assert!(check_piece(size, 2, first, &cvs[2]).is_err());
        assert!(check_piece(size, 1, &[], &cvs[1]).is_err());
        assert_eq!(
            check_piece(size, 3, &[], &cvs[0]),
            Err(TreeError::PieceOutOfRange { index: 3, count: 3 })
        );
        assert!(check_piece(u64::MAX, u64::MAX, &[], &cvs[0]).is_err());
        assert!(piece_cv(size, 1, &[]).is_err());

        // More than a piece holds would panic inside blake3 if passed on.
        let mut hasher = PieceHasher::new(size, 2).expect("piece exists");
        hasher.update(&bytes[..100]);
        assert_eq!(
            hasher.finish(),
            Err(TreeError::PieceLength {
                index: 2,
                expected: 10,
                actual: 100
            })
        );
        assert!(PieceHasher::new(size, 3).is_err());
    }

    #[test]
    fn incremental_hashing_matches() {
        for (seed, size) in [(1, 1), (2, P - 1), (3, P), (4, 3 * P + 5)] {
            let bytes = data(size, seed);
            for (i, piece) in pieces(&bytes).into_iter().enumerate() {
                let whole = piece_cv(size, i as u64, piece);
                for step in [1, 7, 1000, 1025, 65_537] {
                    // Byte-at-a-time over a whole MiB is slow in debug builds.
                    if step == 1 && piece.len() > 4096 {
                        continue;
                    }
                    let mut hasher = PieceHasher::new(size, i as u64).expect("piece exists");
                    for buf in piece.chunks(step) {
                        hasher.update(buf);
                    }
                    assert_eq!(hasher.finish(), whole, "size {size} piece {i} step {step}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn piece_lengths_add_up(size in any::<u64>()) {
            let count = piece_count(size);
            let last = piece_len(size, count - 1);
            prop_assert!(count >= 1);
            prop_assert_eq!(piece_len(size, count), None);
            prop_assert_eq!(Some(size - (count - 1) * PIECE_LEN), last);
            prop_assert!(last <= Some(PIECE_LEN));
            prop_assert!(size == 0 || last > Some(0));
            if count > 1 {
                prop_assert_eq!(piece_len(size, 0), Some(PIECE_LEN));
            }
        }
    }
}
