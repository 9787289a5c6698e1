//! Rendering peer text inert before it reaches a terminal.
//!
//! A peer controls every byte it sends. Written raw, an `ESC` starts a
//! control sequence that can clear the screen, move the cursor over our own
//! output, retitle the window or (OSC 52) set the clipboard. So every
//! character that a terminal would interpret instead of print is replaced by
//! a visible spelling of itself: C0 controls (except tab) and DEL in caret
//! notation (`^[`, `^?`), C1 controls as `\u{..}` escapes.
//!
//! Characters that print nothing are spelled out the same way, because what
//! a reader cannot see can still change what they read: every format
//! character (general category Cf: the bidi marks, embeddings, overrides
//! and isolates that reorder a line, the zero-width spaces and joiners, the
//! soft hyphen, the byte order mark), the line and paragraph separators
//! (Zl, Zp), the variation selectors, and the tag characters U+E0000 to
//! U+E007F, which can carry a whole hidden message. See [`is_invisible`].
//! That includes the zero-width joiner and the emoji presentation selector,
//! so a joined emoji such as 👩‍💻 shows as its parts with `\u{200d}` between
//! them, and the zero-width non-joiner some Persian spellings use shows as
//! `\u{200c}`: a chat where a name or a line can be made to look like
//! another is worse than one that shows such text a little awkwardly.
//!
//! The result is safe on a terminal and in a pipe alike, and a reader can
//! still see what was sent. The common case, printable ASCII, is copied in
//! one go; only the slow path looks at characters one by one.

use std::fmt;

/// Appends `text` to `out` with every control and invisible character made
/// visible.
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

/// `text` with every control and invisible character made visible, as a new
/// string.
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
        // C1 controls: a single-character CSI is U+009B.
        '\u{80}'..='\u{9f}' => push_escaped(out, c),
        c if is_invisible(c) => push_escaped(out, c),
        _ => out.push(c),
    }
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(out, "\\u{{{:x}}}", c as u32);
}

/// Code points that print nothing, as sorted, disjoint, inclusive ranges:
/// general category Cf as of Unicode 16.0, the line and paragraph
/// separators, the variation selectors and the tag block. Neighbouring
/// ranges are merged, so this is not a copy of the Unicode tables.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00ad, 0x00ad),   // soft hyphen
    (0x0600, 0x0605),   // Arabic number signs
    (0x061c, 0x061c),   // Arabic letter mark
    (0x06dd, 0x06dd),   // Arabic end of ayah
    (0x070f, 0x070f),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound and piastre marks above
    (0x08e2, 0x08e2),   // Arabic disputed end of ayah
    (0x180e, 0x180e),   // Mongolian vowel separator
    (0x200b, 0x200f),   // zero-width space, non-joiner, joiner; LRM, RLM
    (0x2028, 0x202e),   // line and paragraph separators; bidi embeddings, overrides
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x206f),   // bidi isolates, deprecated format characters
    (0xfe00, 0xfe0f),   // variation selectors
    (0xfeff, 0xfeff),   // zero-width no-break space (byte order mark)
    (0xfff9, 0xfffb),   // interlinear annotation
    (0x110bd, 0x110bd), // Kaithi number sign
    (0x110cd, 0x110cd), // Kaithi number sign above
    (0x13430, 0x1343f), // Egyptian hieroglyph format controls
    (0x1bca0, 0x1bca3), // shorthand format controls
    (0x1d173, 0x1d17a), // musical symbol begin and end controls
    (0xe0000, 0xe007f), // tags
    (0xe0100, 0xe01ef), // variation selectors supplement
];

/// True for a character that prints nothing but can change how the text
/// around it reads: a format character (bidi controls, zero-width
/// characters and the like), a line or paragraph separator, a variation
/// selector, or a tag character. Controls (C0, DEL, C1) are not included;
/// see [`char::is_control`].
///
/// ```
/// use rust_p2p_chat::chat::sanitize::is_invisible;
///
/// assert!(is_invisible('\u{202e}')); // right-to-left override
/// assert!(is_invisible('\u{2028}')); // line separator
/// assert!(is_invisible('\u{e0041}')); // tag latin capital letter A
/// assert!(!is_invisible('a'));
/// assert!(!is_invisible('\u{1b}'));
/// ```
pub fn is_invisible(c: char) -> bool {
    let cp = u32::from(c);
    // Everything below the soft hyphen is ASCII, a control or a visible
    // Latin-1 character: most text never reaches the search.
    if cp < 0xad {
        return false;
    }
    INVISIBLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
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

    /// General category Cf (format) in Unicode 16.0, range by range as
    /// `DerivedGeneralCategory.txt` lists it. Unicode 16.0 added none; 15.0
    /// grew the Egyptian hieroglyph controls to U+1343F.
    const FORMAT: &[(u32, u32)] = &[
        (0x00ad, 0x00ad),
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x180e, 0x180e),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x2064),
        (0x2066, 0x206f),
        (0xfeff, 0xfeff),
        (0xfff9, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0001, 0xe0001),
        (0xe0020, 0xe007f),
    ];

    /// The rest of what must be shown escaped: the line and paragraph
    /// separators (Zl, Zp), the variation selectors, and the whole tag
    /// block (U+E0000 is unassigned but still hides text).
    const OTHER_INVISIBLE: &[(u32, u32)] = &[
        (0x2028, 0x2029),
        (0xfe00, 0xfe0f),
        (0xe0000, 0xe007f),
        (0xe0100, 0xe01ef),
    ];

    fn spec_chars(ranges: &[(u32, u32)]) -> impl Iterator<Item = char> + '_ {
        ranges
            .iter()
            .flat_map(|&(lo, hi)| lo..=hi)
            .map(|cp| char::from_u32(cp).unwrap_or_else(|| panic!("{cp:#x} is not a char")))
    }

    fn escaped(c: char) -> String {
        format!("\\u{{{:x}}}", c as u32)
    }

    #[test]
    fn the_lookup_table_is_sorted_and_disjoint() {
        // The binary search in `is_invisible` relies on it.
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:x?}");
        }
    }

    #[test]
    fn every_format_character_is_escaped() {
        let mut count = 0;
        for c in spec_chars(FORMAT) {
            assert_eq!(inert(&format!("a{c}b")), format!("a{}b", escaped(c)));
            count += 1;
        }
        assert_eq!(count, 170, "the Cf table lost or gained a character");
    }

    #[test]
    fn separators_variation_selectors_and_tags_are_escaped() {
        for c in spec_chars(OTHER_INVISIBLE) {
            assert_eq!(inert(&c.to_string()), escaped(c));
        }
    }

    #[test]
    fn the_neighbours_of_every_escaped_range_are_kept() {
        let all: Vec<(u32, u32)> = FORMAT.iter().chain(OTHER_INVISIBLE).copied().collect();
        let listed = |cp: u32| all.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp));
        for &(lo, hi) in &all {
            for cp in [lo - 1, hi + 1] {
                let Some(c) = char::from_u32(cp) else {
                    continue;
                };
                if listed(cp) || c.is_control() {
                    continue;
                }
                assert_eq!(inert(&c.to_string()), c.to_string(), "{cp:#x}");
            }
        }
    }

    #[test]
    fn text_in_many_scripts_is_unchanged() {
        for text in [
            "Ελληνικά, русский, עברית, مرحبا, नमस्ते, ไทย, 한국어, 日本語",
            "e\u{301} n\u{303}: combining marks are letters' business",
            "🌍🎉👍🏽 one emoji each, skin tone included",
        ] {
            assert_eq!(inert(text), text);
        }
    }

    #[test]
    fn joiners_and_emoji_selectors_are_shown() {
        // Zero-width joiner and the emoji presentation selector are
        // invisible too: a joined emoji shows its parts and the joins.
        assert_eq!(
            inert("\u{1f469}\u{200d}\u{1f4bb} \u{2764}\u{fe0f}"),
            "\u{1f469}\\u{200d}\u{1f4bb} \u{2764}\\u{fe0f}"
        );
    }

    #[test]
    fn hidden_tag_text_is_spelled_out() {
        // "hi" in tag characters: invisible on most terminals.
        assert_eq!(inert("ok\u{e0068}\u{e0069}"), "ok\\u{e0068}\\u{e0069}");
    }

    #[test]
    fn push_appends() {
        let mut out = String::from("Peer: ");
        push_inert(&mut out, "x\x1by");
        assert_eq!(out, "Peer: x^[y");
    }
}
