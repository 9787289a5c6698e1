//! JSON that is safe to print.
//!
//! serde_json escapes only what JSON requires: `"`, `\` and the C0
//! controls. DEL, the C1 controls and the invisible characters of
//! [`super::sanitize`] stay raw inside strings, so `history --json | less`
//! or `jq -r` would hand a peer's U+009B (a one-character CSI) or U+202E
//! (right-to-left override) straight to a terminal. Here each of them is
//! written as a `\uXXXX` escape instead, as a surrogate pair above U+FFFF:
//! the output is still valid JSON, decodes to the very same text, and holds
//! no character that a terminal would act on or that a reader could not see.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

use super::sanitize::is_invisible;

/// Writes `value` as compact JSON to `writer`, with every control and
/// invisible character in its strings escaped.
///
/// ```
/// use rust_p2p_chat::chat::json;
///
/// let mut out = Vec::new();
/// json::to_writer(&mut out, &serde_json::json!({"text": "a\u{9b}b\u{202e}c"}))?;
/// assert_eq!(String::from_utf8(out)?, r#"{"text":"a\u009bb\u202ec"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_writer<W, T>(writer: W, value: &T) -> serde_json::Result<()>
where
    W: io::Write,
    T: Serialize + ?Sized,
{
    let mut serializer = serde_json::Serializer::with_formatter(writer, InertFormatter);
    value.serialize(&mut serializer)
}

/// serde_json's compact formatter, except that string contents are
/// written with the characters a terminal would act on or hide escaped.
struct InertFormatter;

impl Formatter for InertFormatter {
    // serde_json hands over each run of a string that JSON lets through
    // unescaped; `"`, `\` and C0 controls have been escaped already.
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if c.is_control() || is_invisible(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> String {
        let mut out = Vec::new();
        to_writer(&mut out, text).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("the output is UTF-8")
    }

    fn must_escape(c: char) -> bool {
        c.is_control() || is_invisible(c)
    }

    /// Every character the sanitizer does not print as it is, a few of
    /// each kind, with ordinary text around them.
    const HOSTILE: &str = "del\x7f csi\u{9b}31m nel\u{85} esc\x1b[2J bell\x07 \
        rlo\u{202e}txt lrm\u{200e} isolate\u{2066}x\u{2069} zwj\u{200d} \
        shy\u{ad} bom\u{feff} line\u{2028}para\u{2029} vs\u{fe0f} \
        tag\u{e0001}\u{e0041}\u{e007f} vs17\u{e0100} hieroglyph\u{1343f} tab\t";

    #[test]
    fn hostile_text_round_trips() {
        let json = encode(HOSTILE);
        let back: String = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back, HOSTILE);
    }

    #[test]
    fn no_control_or_invisible_character_is_written_raw() {
        let json = encode(HOSTILE);
        let raw: Vec<char> = json.chars().filter(|&c| must_escape(c)).collect();
        assert!(raw.is_empty(), "raw in {json:?}: {raw:?}");
    }

    #[test]
    fn escapes_are_four_hex_digits_and_surrogate_pairs() {
        assert_eq!(encode("\x7f"), r#""\u007f""#);
        assert_eq!(encode("\u{9b}"), r#""\u009b""#);
        assert_eq!(encode("a\u{202e}b"), r#""a\u202eb""#);
        assert_eq!(encode("\u{e0041}"), r#""\udb40\udc41""#);
        assert_eq!(encode("\u{e01ef}"), r#""\udb40\uddef""#);
    }

    #[test]
    fn every_escaped_character_round_trips() {
        for c in (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| must_escape(c))
        {
            let json = encode(&format!("x{c}y"));
            assert!(!json.contains(c), "{:#x} raw in {json:?}", c as u32);
            let back: String = serde_json::from_str(&json).expect("valid JSON");
            assert_eq!(back, format!("x{c}y"), "{:#x}", c as u32);
        }
    }

    #[test]
    fn ordinary_text_is_written_as_it_is() {
        let text = "Grüße, 世界 🌍, \"quoted\" and back\\slash";
        assert_eq!(encode(text), serde_json::to_string(text).expect("JSON"));
        assert_eq!(encode("日本語 🌍"), "\"日本語 🌍\"");
    }

    #[test]
    fn keys_are_escaped_too() {
        let object = serde_json::json!({ "k\u{202e}": "v" });
        let mut out = Vec::new();
        to_writer(&mut out, &object).expect("writing to a Vec cannot fail");
        assert_eq!(String::from_utf8(out).expect("UTF-8"), r#"{"k\u202e":"v"}"#);
    }
}
