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
                    self.start = end + 1;
                    self.scanned = 0;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
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
        let frame = to_frame(&self.buf[self.start..], self.max_line);
        self.clear();
        Some(frame)
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
