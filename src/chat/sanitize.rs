//! Rendering peer text inert before it reaches a terminal.
//!
//! A peer controls every byte it sends. Written raw, an `ESC` starts a
//! control sequence that can clear the screen, move the cursor over our own
//! output, retitle the window or (OSC 52) set the clipboard. So every
//! character that a terminal would interpret instead of print is replaced by
//! a visible spelling of itself: C0 controls (except tab) and DEL in caret
//! notation (`^[`, `^?`), C1 controls and the Unicode bidirectional
//! overrides as `\u{..}` escapes. The result is safe on a terminal and in a
//! pipe alike, and a reader can still see what was sent.
//!
//! The common case, printable ASCII, is copied in one go; only the slow path
//! looks at characters one by one.

use std::fmt;

/// Appends `text` to `out` with every control character made visible.
///
/// ```
/// use rust_p2p_chat::chat::sanitize::push_inert;
///
/// let mut out = String::new();
/// push_inert(&mut out, "hi\x1b]52;c;ZXZpbA==\x07 there\tyou");
/// assert_eq!(out, "hi^[]52;c;ZXZpbA==^G there\tyou");
/// ```
pub fn push_inert(out: &mut String, text: &str) {
    let safe = plain_prefix(text.as_bytes());
    out.push_str(&text[..safe]);
    for c in text[safe..].chars() {
        push_char_inert(out, c);
    }
}

/// `text` with every control character made visible, as a new string.
///
/// ```
/// use rust_p2p_chat::chat::sanitize::inert;
///
/// assert_eq!(inert("\x1b[2Jgone?"), "^[[2Jgone?");
/// assert_eq!(inert("caf\u{e9} \u{202e}txt.exe"), "caf\u{e9} \\u{202e}txt.exe");
/// ```
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_inert(&mut out, text);
    out
}

/// A wrapper whose `Display` renders the text inert.
///
/// ```
/// use rust_p2p_chat::chat::sanitize::Inert;
///
/// assert_eq!(format!("Peer: {}", Inert("\x07bell")), "Peer: ^Gbell");
/// ```
pub struct Inert<'a>(pub &'a str);

impl fmt::Display for Inert<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(self.0.len());
        push_inert(&mut out, self.0);
        f.write_str(&out)
    }
}

/// Length of the leading run of bytes that need no escaping, checked eight
/// bytes at a time: a word holds only printable ASCII when no byte is below
/// 0x20, none is 0x7f and none has the high bit set.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut checked = 0;
    for word in words.by_ref() {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        let v = u64::from_le_bytes(array);
        let below_space = v.wrapping_sub(ONES * 0x20) & !v;
        let del = {
            let x = v ^ (ONES * 0x7f);
            x.wrapping_sub(ONES) & !x
        };
        if (v | below_space | del) & HIGH != 0 {
            break;
        }
        checked += 8;
    }
    checked
        + bytes[checked..]
            .iter()
            .position(|&b| !is_plain_ascii(b))
            .unwrap_or(bytes.len() - checked)
}

/// True when the byte is printable ASCII or a tab: nothing to escape.
fn is_plain_ascii(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

fn push_char_inert(out: &mut String, c: char) {
    match c {
        '\t' => out.push('\t'),
        // C0 controls: caret notation, `^@` to `^_`.
        '\0'..='\x1f' => {
            out.push('^');
            out.push(char::from(c as u8 + 0x40));
        }
        '\x7f' => out.push_str("^?"),
        // C1 controls (a single-character CSI is U+009B), and the invisible
        // characters that reorder or hide text (bidi overrides, isolates).
        '\u{80}'..='\u{9f}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_prefix_matches_a_byte_by_byte_scan() {
        let naive = |b: &[u8]| {
            b.iter()
                .position(|&c| !is_plain_ascii(c))
                .unwrap_or(b.len())
        };
        let specials = [0u8, 0x09, 0x1b, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xc2, 0xff];
        for len in 0..20 {
            for at in 0..=len {
                for &special in &specials {
                    let mut bytes = vec![b'a'; len];
                    if at < len {
                        bytes[at] = special;
                    }
                    assert_eq!(plain_prefix(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn plain_text_is_unchanged() {
        let text = "Hello, world! 1234 ~`{}|";
        assert_eq!(inert(text), text);
    }

    #[test]
    fn unicode_text_is_unchanged() {
        let text = "Grüße, 世界 🌍 — ok";
        assert_eq!(inert(text), text);
    }

    #[test]
    fn tab_is_kept() {
        assert_eq!(inert("a\tb"), "a\tb");
    }

    #[test]
    fn every_c0_control_is_caret_escaped() {
        for b in 0u8..0x20 {
            if b == b'\t' {
                continue;
            }
            let s = char::from(b).to_string();
            let out = inert(&s);
            assert_eq!(out, format!("^{}", char::from(b + 0x40)), "byte {b:#x}");
            assert!(out.bytes().all(|b| (0x20..0x7f).contains(&b)));
        }
    }

    #[test]
    fn del_is_escaped() {
        assert_eq!(inert("\x7f"), "^?");
    }

    #[test]
    fn c1_controls_are_escaped() {
        assert_eq!(inert("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(inert("\u{85}"), "\\u{85}");
    }

    #[test]
    fn escape_sequences_are_inert() {
        let hostile = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;aGk=\x1b\\\r";
        let out = inert(hostile);
        assert!(!out.contains('\x1b'));
        assert!(!out.contains('\x07'));
        assert!(!out.contains('\r'));
        assert_eq!(out, "^[[2J^[[H^[]0;pwned^G^[]52;c;aGk=^[\\^M");
    }

    #[test]
    fn bidi_overrides_are_escaped() {
        assert_eq!(inert("a\u{202e}b\u{2066}c"), "a\\u{202e}b\\u{2066}c");
    }

    #[test]
    fn push_appends() {
        let mut out = String::from("Peer: ");
        push_inert(&mut out, "x\x1by");
        assert_eq!(out, "Peer: x^[y");
    }
}
