//! Bounded splitting of a byte stream into newline-terminated lines.
//!
//! Both ends of the plain protocol need the same thing: bytes arrive in
//! arbitrary pieces (TCP segments, pipe reads) and must come out as whole
//! lines, one message each, whatever the segmentation. The splitter does no
//! I/O: the caller feeds it the bytes it read and takes lines out, so the
//! socket codec and the stdin reader share one tested piece of logic.
//!
//! Like mini-redis's frame parser it first checks for a complete line and
//! only then takes it. A peer that never sends a newline can make us hold at
//! most `max_line` (+1 for a trailing `\r`) bytes: past that the line is
//! reported as [`Frame::TooLong`] once, the splitter switches to discarding,
//! and it drops everything up to the next newline without buffering it.
//!
//! Our own input is split [`in_pieces`](LineSplitter::in_pieces) instead:
//! a line over the limit comes out as [`Frame::Piece`]s of at most
//! `max_line` bytes, cut between characters, and its last part as a
//! [`Frame::Line`], so a paste of any size is sent whole while no more than
//! one piece of it is ever held.

use std::borrow::Cow;

/// The default limit on one line's length in bytes, newline excluded.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// What the splitter produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `\n` or `\r\n`, decoded as UTF-8 with
    /// invalid sequences replaced by U+FFFD.
    Line(String),
    /// A line crossed the limit; it is being dropped. Reported once per line,
    /// as soon as the limit is crossed.
    TooLong {
        /// The limit that was crossed, in bytes.
        limit: usize,
    },
    /// A part of a line longer than the limit (only from a splitter made
    /// [`in_pieces`](LineSplitter::in_pieces)): at most the limit in bytes,
    /// cut between characters. More follows: further pieces, then the
    /// line's last part as a [`Frame::Line`].
    Piece {
        /// The part's text.
        text: String,
        /// Whether it is the line's first part.
        first: bool,
    },
}

/// Splits bytes into lines, holding at most `max_line + 1` bytes of an
/// unfinished line.
///
/// ```
/// use rust_p2p_chat::chat::line::{Frame, LineSplitter};
///
/// let mut lines = LineSplitter::new(16);
/// lines.push(b"hel");
/// assert_eq!(lines.next_frame(), None);
/// lines.push(b"lo\r\nwor");
/// assert_eq!(lines.next_frame(), Some(Frame::Line("hello".into())));
/// assert_eq!(lines.next_frame(), None);
/// assert_eq!(lines.finish(), Some(Frame::Line("wor".into())));
/// ```
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    start: usize,
    /// Bytes after `start` already known to hold no newline.
    scanned: usize,
    max_line: usize,
    discarding: bool,
    /// Lines over the limit come out in pieces rather than dropped.
    pieces: bool,
    /// A piece of the current line has come out.
    in_long_line: bool,
}

impl LineSplitter {
    /// A splitter that accepts lines of up to `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
            discarding: false,
            pieces: false,
            in_long_line: false,
        }
    }

    /// A splitter that hands a line over `max_line` bytes on in pieces of
    /// at most that many (see [`Frame::Piece`]), holding no more of it.
    ///
    /// ```
    /// use rust_p2p_chat::chat::line::{Frame, LineSplitter};
    ///
    /// let mut lines = LineSplitter::in_pieces(4);
    /// lines.push("abcéfgh\nok\n".as_bytes());
    /// let piece = |text: &str, first| Some(Frame::Piece { text: text.into(), first });
    /// // `é` takes two bytes: it is not cut in half.
    /// assert_eq!(lines.next_frame(), piece("abc", true));
    /// assert_eq!(lines.next_frame(), piece("éfg", false));
    /// assert_eq!(lines.next_frame(), Some(Frame::Line("h".into())));
    /// assert_eq!(lines.next_frame(), Some(Frame::Line("ok".into())));
    /// ```
    pub fn in_pieces(max_line: usize) -> Self {
        Self {
            pieces: true,
            ..Self::new(max_line)
        }
    }

    /// The limit on one line's length, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes held that are not yet part of a returned frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && (self.start >= self.buf.len() / 2 || self.buf.is_empty()) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if the bytes pushed so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let from = self.start + self.scanned;
            match memchr::memchr(b'\n', &self.buf[from..]) {
                Some(offset) => {
                    let end = from + offset;
                    let line_start = self.start;
                    if self.pieces && content_len(&self.buf[line_start..end]) > self.max_line {
                        // Up to the newline is known: the next call finds
                        // it at once, rather than scanning the line again.
                        self.scanned = end - self.start;
                        return Some(self.take_piece());
                    }
                    self.start = end + 1;
                    self.scanned = 0;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    self.in_long_line = false;
                    let frame = to_frame(&self.buf[line_start..end], self.max_line);
                    self.compact_if_empty();
                    return Some(frame);
                }
                None => {
                    self.scanned = self.buf.len() - self.start;
                    if self.discarding {
                        self.clear();
                        return None;
                    }
                    // One byte more than the limit may be a `\r` before
                    // the newline still to come.
                    if self.pieces && self.pending() > self.max_line + 1 {
                        return Some(self.take_piece());
                    }
                    if self.pending() > self.max_line + 1 {
                        self.clear();
                        self.discarding = true;
                        return Some(Frame::TooLong {
                            limit: self.max_line,
                        });
                    }
                    return None;
                }
            }
        }
    }

    /// Ends the stream: an unfinished last line (no newline before EOF) is
    /// still a message and is returned.
    pub fn finish(&mut self) -> Option<Frame> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        let discarding = std::mem::replace(&mut self.discarding, false);
        if discarding || self.pending() == 0 {
            self.clear();
            return None;
        }
        if self.pieces && content_len(&self.buf[self.start..]) > self.max_line {
            return Some(self.take_piece());
        }
        self.in_long_line = false;
        let frame = to_frame(&self.buf[self.start..], self.max_line);
        self.clear();
        Some(frame)
    }

    /// Takes the next piece of a line known to be longer than the limit.
    fn take_piece(&mut self) -> Frame {
        let rest = &self.buf[self.start..];
        let cut = char_boundary(rest, self.max_line);
        let text = decode(&rest[..cut]);
        self.start += cut;
        // What was known to hold no newline, counted from the new start.
        self.scanned = self.scanned.saturating_sub(cut);
        let first = !std::mem::replace(&mut self.in_long_line, true);
        Frame::Piece { text, first }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        // Give back a large allocation left by a long line.
        if self.buf.capacity() > 4 * SHRINK_TO {
            self.buf.shrink_to(SHRINK_TO);
        }
    }

    fn compact_if_empty(&mut self) {
        if self.start == self.buf.len() {
            self.clear();
        }
    }
}

/// Capacity kept after a long line has been consumed.
const SHRINK_TO: usize = 64 * 1024;

/// A line's length without a trailing `\r`.
fn content_len(line: &[u8]) -> usize {
    match line {
        [.., b'\r'] => line.len() - 1,
        _ => line.len(),
    }
}

/// Where to cut `bytes` to keep at most `max` of them without cutting a
/// UTF-8 character in two: `max` itself where a character starts there
/// (or the text is not UTF-8 there), else up to 3 bytes before it. At
/// least one byte, so that a cut always makes progress.
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let max = max.clamp(1, bytes.len().max(1));
    if max >= bytes.len() {
        return bytes.len();
    }
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    (max.saturating_sub(3).max(1)..=max)
        .rev()
        .find(|&cut| !is_continuation(bytes[cut]))
        .unwrap_or(max)
}

/// `text` in pieces of at most `max` bytes, cut between characters: how
/// a line over the limit that is already whole (typed, or from the JSON
/// API or the page) goes out.
///
/// ```
/// use rust_p2p_chat::chat::line::pieces;
///
/// assert_eq!(pieces("abcéfgh", 4).collect::<Vec<_>>(), ["abc", "éfg", "h"]);
/// assert_eq!(pieces("", 4).collect::<Vec<_>>(), [""]);
/// ```
pub fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let now = rest?;
        if now.len() <= max {
            rest = None;
            return Some(now);
        }
        let mut cut = char_boundary(now.as_bytes(), max);
        // A character wider than `max` goes whole rather than in halves.
        while !now.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, more) = now.split_at(cut);
        rest = Some(more);
        Some(piece)
    })
}

/// A line's bytes (newline removed) as a frame: a trailing `\r` is
/// dropped, the length checked, the text decoded.
fn to_frame(mut line: &[u8], max_line: usize) -> Frame {
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if line.len() > max_line {
        Frame::TooLong { limit: max_line }
    } else {
        Frame::Line(decode(line))
    }
}

fn decode(line: &[u8]) -> String {
    // Valid UTF-8 is the common case and has the faster check.
    if let Ok(text) = std::str::from_utf8(line) {
        return text.to_owned();
    }
    match String::from_utf8_lossy(line) {
        Cow::Borrowed(text) => text.to_owned(),
        Cow::Owned(text) => text,
    }
}

/// Lines in one buffer: their texts end to end, and where each ends. A
/// batch of lines moves as one value with two allocations, not one per
/// line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    text: String,
    ends: Vec<usize>,
}

impl Lines {
    /// Adds a line (without its newline) at the end.
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends.push(self.text.len());
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// What the lines hold: their text and where each ends, in bytes.
    pub fn bytes(&self) -> usize {
        self.text.len() + self.ends.len() * std::mem::size_of::<usize>()
    }

    /// The lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = self.text.get(start..end).unwrap_or_default();
            start = end;
            line
        })
    }

    /// Moves `other`'s lines to the end of these.
    pub fn append(&mut self, other: &mut Lines) {
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|end| end + base));
        other.text.clear();
        other.ends.clear();
    }

    /// The lines as strings, at most `max` to a batch.
    pub fn into_batches(self, max: usize) -> Vec<Vec<String>> {
        let mut start = 0;
        self.ends
            .chunks(max.max(1))
            .map(|ends| {
                ends.iter()
                    .map(|&end| {
                        let line = self.text.get(start..end).unwrap_or_default().to_owned();
                        start = end;
                        line
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Option<Frame> {
        Some(Frame::Line(s.to_owned()))
    }

    fn all_frames(splitter: &mut LineSplitter) -> Vec<Frame> {
        std::iter::from_fn(|| splitter.next_frame()).collect()
    }

    #[test]
    fn splits_lines_whatever_the_segmentation() {
        let input = b"one\ntwo\r\nthree\n\nfour\n";
        for chunk in 1..input.len() {
            let mut s = LineSplitter::new(100);
            let mut frames = Vec::new();
            for piece in input.chunks(chunk) {
                s.push(piece);
                frames.extend(all_frames(&mut s));
            }
            let expected: Vec<Frame> = ["one", "two", "three", "", "four"]
                .iter()
                .map(|t| Frame::Line((*t).to_owned()))
                .collect();
            assert_eq!(frames, expected, "chunk size {chunk}");
            assert_eq!(s.finish(), None);
        }
    }

    #[test]
    fn line_at_the_limit_passes() {
        let mut s = LineSplitter::new(8);
        s.push(b"12345678\n12345678\r\n");
        assert_eq!(s.next_frame(), line("12345678"));
        assert_eq!(s.next_frame(), line("12345678"));
    }

    #[test]
    fn line_over_the_limit_in_one_piece_is_reported() {
        let mut s = LineSplitter::new(8);
        s.push(b"123456789\nok\n");
        assert_eq!(s.next_frame(), Some(Frame::TooLong { limit: 8 }));
        assert_eq!(s.next_frame(), line("ok"));
    }

    #[test]
    fn endless_line_is_reported_once_and_discarded_without_buffering() {
        let mut s = LineSplitter::new(1000);
        let chunk = [b'x'; 300];
        let mut reports = 0;
        for _ in 0..10_000 {
            s.push(&chunk);
            for frame in all_frames(&mut s) {
                assert_eq!(frame, Frame::TooLong { limit: 1000 });
                reports += 1;
            }
            assert!(s.pending() <= 1001 + chunk.len());
            assert!(s.buf.capacity() <= 8 * SHRINK_TO);
        }
        assert_eq!(reports, 1);
        s.push(b"xxx\nafter\n");
        assert_eq!(s.next_frame(), line("after"));
        assert_eq!(s.next_frame(), None);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut s = LineSplitter::new(100);
        s.push(b"ok \xff\xfe end\n");
        assert_eq!(s.next_frame(), line("ok \u{fffd}\u{fffd} end"));
    }

    #[test]
    fn multibyte_character_split_across_pushes_survives() {
        let mut s = LineSplitter::new(100);
        let text = "größe\n".as_bytes();
        s.push(&text[..3]);
        assert_eq!(s.next_frame(), None);
        s.push(&text[3..]);
        assert_eq!(s.next_frame(), line("größe"));
    }

    #[test]
    fn finish_returns_unterminated_last_line() {
        let mut s = LineSplitter::new(100);
        s.push(b"a\npartial");
        assert_eq!(s.next_frame(), line("a"));
        assert_eq!(s.finish(), line("partial"));
        assert_eq!(s.finish(), None);
    }

    /// What a splitter in pieces hands on for `input` pushed in chunks of
    /// `chunk` bytes: each line put back together from its parts, and
    /// the most it held at once.
    fn rejoined(input: &[u8], max: usize, chunk: usize) -> (Vec<String>, usize) {
        let mut s = LineSplitter::in_pieces(max);
        let mut lines = Vec::new();
        let mut current: Option<String> = None;
        let mut held = 0;
        let mut take = |frame: Frame| match frame {
            Frame::Piece { text, first } => {
                assert!(text.len() <= max.max(1), "a piece of {}", text.len());
                assert_eq!(first, current.is_none(), "first flag");
                current.get_or_insert_with(String::new).push_str(&text);
            }
            Frame::Line(text) => {
                let mut line = current.take().unwrap_or_default();
                line.push_str(&text);
                lines.push(line);
            }
            Frame::TooLong { .. } => panic!("a splitter in pieces refused a line"),
        };
        for part in input.chunks(chunk.max(1)) {
            s.push(part);
            held = held.max(s.pending());
            std::iter::from_fn(|| s.next_frame()).for_each(&mut take);
        }
        std::iter::from_fn(|| s.finish()).for_each(&mut take);
        (lines, held)
    }

    #[test]
    fn long_lines_in_pieces_come_whole_whatever_the_segmentation() {
        let input = "short\nä long line, ünïcødé all along\r\n\nexactly8\r\nend";
        for max in [4, 5, 8, 9] {
            for chunk in 1..input.len() {
                let (lines, held) = rejoined(input.as_bytes(), max, chunk);
                let expected = [
                    "short",
                    "ä long line, ünïcødé all along",
                    "",
                    "exactly8",
                    "end",
                ];
                assert_eq!(lines, expected, "max {max}, chunk {chunk}");
                assert!(held <= max + 1 + chunk, "held {held} at max {max}");
            }
        }
    }

    #[test]
    fn a_line_at_the_limit_with_a_carriage_return_is_one_line_in_pieces_mode() {
        let mut s = LineSplitter::in_pieces(8);
        s.push(b"12345678\r");
        assert_eq!(s.next_frame(), None);
        s.push(b"\n");
        assert_eq!(s.next_frame(), line("12345678"));
    }

    #[test]
    fn an_endless_line_in_pieces_holds_one_piece() {
        let mut s = LineSplitter::in_pieces(1000);
        let chunk = [b'x'; 300];
        let mut out = 0;
        for _ in 0..10_000 {
            s.push(&chunk);
            for frame in all_frames(&mut s) {
                let Frame::Piece { text, first } = frame else {
                    panic!("{frame:?}");
                };
                assert_eq!(first, out == 0);
                out += text.len();
            }
            assert!(s.pending() <= 1001 + chunk.len());
            assert!(s.buf.capacity() <= 8 * SHRINK_TO);
        }
        s.push(b"\nafter\n");
        let Some(Frame::Line(last)) = s.next_frame() else {
            panic!("the line's last part");
        };
        assert_eq!(out + last.len(), 3_000_000);
        assert_eq!(s.next_frame(), line("after"));
    }

    #[test]
    fn pieces_of_a_whole_text_rejoin_and_keep_characters() {
        for max in 1..12 {
            let text = "añ🦀b\u{202e}c";
            let parts: Vec<&str> = pieces(text, max).collect();
            assert_eq!(parts.concat(), text, "max {max}");
            for part in &parts {
                // Only a character wider than `max` makes a longer piece.
                assert!(
                    part.len() <= max || part.chars().count() == 1,
                    "{part:?} at {max}"
                );
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever is typed or piped, and however it is read, lines
            /// in pieces rejoin to the lines given, and no more than a
            /// piece and a read is held.
            #[test]
            fn lines_in_pieces_rejoin(
                lines in proptest::collection::vec("[^\n\r]{0,40}", 1..8),
                max in 1usize..16,
                chunk in 1usize..32,
            ) {
                let input = lines.join("\n") + "\n";
                let (out, held) = rejoined(input.as_bytes(), max.max(4), chunk);
                prop_assert_eq!(out, lines);
                prop_assert!(held <= max.max(4) + 1 + chunk);
            }

            /// Arbitrary bytes never panic, and every piece keeps to the
            /// limit.
            #[test]
            fn arbitrary_bytes_in_pieces_keep_to_the_limit(
                bytes in proptest::collection::vec(any::<u8>(), 0..512),
                max in 1usize..64,
                chunk in 1usize..64,
            ) {
                let mut s = LineSplitter::in_pieces(max);
                for part in bytes.chunks(chunk) {
                    s.push(part);
                    while let Some(frame) = s.next_frame() {
                        if let Frame::Piece { text, .. } = frame {
                            // Lossy decoding makes an invalid byte 3.
                            prop_assert!(text.chars().count() <= max);
                        }
                    }
                    prop_assert!(s.pending() <= max + 1 + chunk);
                }
                while s.finish().is_some() {}
            }
        }
    }

    #[test]
    fn finish_while_discarding_returns_nothing() {
        let mut s = LineSplitter::new(4);
        s.push(b"123456789");
        assert_eq!(s.next_frame(), Some(Frame::TooLong { limit: 4 }));
        s.push(b"more");
        assert_eq!(s.next_frame(), None);
        assert_eq!(s.finish(), None);
    }
}
