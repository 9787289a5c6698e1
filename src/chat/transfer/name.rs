//! File names for received files.
//!
//! The name in a file offer is chosen by the sending peer, who may be hostile.
//! Whatever it says, the receiver must only ever create one plain file inside
//! the download directory it picked itself, and showing the name must not be
//! able to drive the terminal or disguise the file's type. So the name is
//! reduced to a single path component that is harmless on every platform we
//! might write to (Unix and Windows rules are both applied, because a name
//! that is fine here may be copied elsewhere later) and readable as-is.
//!
//! Everything works on `&str`, which is already valid UTF-8, so no decoding
//! step can fail; the byte limit is applied on char boundaries.

/// Longest name in bytes that common filesystems (ext4, APFS, NTFS in UTF-16
/// units for most text) accept for a single component.
pub const MAX_NAME_BYTES: usize = 255;

/// Used when nothing usable is left, so the receiver never has to invent a
/// name itself or fail the transfer over it.
pub const FALLBACK_NAME: &str = "file";

/// Longer "extensions" are more likely part of the name than a type marker,
/// and keeping them would leave too little room for the stem.
const MAX_EXT_BYTES: usize = 16;

/// Turns a peer-offered file name into one safe to create in the download
/// directory.
///
/// Names come from a hostile peer: a sender must never choose where anything
/// lands, so only the last path component survives, and it can never be `.`,
/// `..`, a hidden dot file, something that looks like a command-line option,
/// a Windows device name, or longer than a filesystem allows. Characters that
/// could steer a terminal (ESC and other controls), reorder or hide text
/// (bidi overrides, zero-width and other format characters, used to make
/// `evil\u{202E}gpj.exe` display as `evilexe.jpg`) or that Windows refuses
/// are replaced with `_` rather than dropped, so the user can still see that
/// something was there.
///
/// The result is never empty (it falls back to [`FALLBACK_NAME`]), is at most
/// [`MAX_NAME_BYTES`] bytes, and applying the function again changes nothing,
/// so callers may sanitise defensively at every layer.
pub fn safe_name(offered: &str) -> String {
    // Both separators count everywhere: a Unix receiver may later hand the
    // name to something that treats `\` as a separator.
    let last = offered.rsplit(['/', '\\']).next().unwrap_or_default();
    let replaced: String = last
        .chars()
        .map(|c| if is_unwanted(c) { '_' } else { c })
        .collect();
    let trimmed = trim_end(trim_start(&replaced));
    let prefixed = if is_reserved(trimmed) {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    let fitted = if prefixed.len() > MAX_NAME_BYTES {
        fit(&prefixed, "")
    } else {
        prefixed
    };
    // Cutting can expose dots or spaces that were inside the name.
    let name = trim_end(&fitted);
    if name.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        name.to_owned()
    }
}

/// The `n`-th alternative for `name` when a file of that name already exists:
/// `report.pdf` becomes `report (1).pdf`, `archive` becomes `archive (1)`.
///
/// The number goes before the extension so the file still opens with the
/// same program. `n == 0` gives `name` itself, so callers can try
/// `numbered(name, 0)`, `numbered(name, 1)`, … in one loop. The stem is cut
/// when needed to stay within [`MAX_NAME_BYTES`]. Meant for names that came
/// out of [`safe_name`]; for those the result is again a fixed point of
/// [`safe_name`].
pub fn numbered(name: &str, n: u32) -> String {
    // A leading space would be stripped again by `safe_name`.
    let name = if name.is_empty() { FALLBACK_NAME } else { name };
    if n == 0 {
        return name.to_owned();
    }
    fit(name, &format!(" ({n})"))
}

/// Builds `stem + insert + ext` within [`MAX_NAME_BYTES`], shortening only the
/// stem, because the extension is what tells the system what the file is.
fn fit(name: &str, insert: &str) -> String {
    let (stem, ext) = split_ext(name);
    let budget = MAX_NAME_BYTES.saturating_sub(insert.len() + ext.len());
    format!("{}{insert}{ext}", floor_to_char_boundary(stem, budget))
}

/// Splits off `.ext` (dot included) if there is a short, non-empty one that
/// is not the whole name.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        // `rfind` returns the position of an ASCII '.', always a char boundary.
        Some(dot) if dot > 0 && (2..=MAX_EXT_BYTES + 1).contains(&(name.len() - dot)) => {
            name.split_at(dot)
        }
        _ => (name, ""),
    }
}

/// Longest prefix of `s` of at most `max` bytes that is still valid UTF-8:
/// how a peer's text is cut to a bound.
pub fn floor_to_char_boundary(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    // Terminates: 0 is always a boundary.
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Hidden files (`.bashrc`), `.`/`..`, and names a shell tool would read as an
/// option (`-rf`) all start with these.
fn trim_start(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '.' || c == '-' || c.is_whitespace())
}

/// Windows silently drops trailing dots and spaces, so `a.txt.` and `a.txt`
/// would collide there, and trailing spaces are invisible to the user.
fn trim_end(s: &str) -> &str {
    s.trim_end_matches(|c: char| c == '.' || c.is_whitespace())
}

/// Windows maps these names to devices regardless of extension (`con.txt`
/// is the console), and ignores trailing spaces before the extension.
fn is_reserved(name: &str) -> bool {
    let first = name.split('.').next().unwrap_or_default().trim_end();
    let upper = first.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => upper
            .strip_prefix("COM")
            .or_else(|| upper.strip_prefix("LPT"))
            .is_some_and(|rest| {
                let mut chars = rest.chars();
                matches!(
                    (chars.next(), chars.next()),
                    (Some('0'..='9' | '¹' | '²' | '³'), None)
                )
            }),
    }
}

/// Characters that must not reach the file system or a terminal unchanged.
fn is_unwanted(c: char) -> bool {
    // `is_control` is exactly general category Cc: C0, DEL and C1, which
    // covers ESC, NEL and the C1 CSI.
    c.is_control() || is_invisible(c) || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// General category Cf (format characters, which include all bidi controls)
/// plus other characters that render as nothing, so a name cannot hide
/// or reorder parts of itself. Hand-written to avoid a Unicode-table crate;
/// Cf changes rarely and the extra ranges are deliberately generous.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        // Category Cf (Unicode 16).
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            // Tags, including the unassigned ones in the block.
            | '\u{E0000}'..='\u{E007F}'
            // Not Cf, but invisible or line-breaking: line/paragraph
            // separators, combining grapheme joiner, Hangul fillers, Khmer
            // inherent vowels, Mongolian and general variation selectors.
            | '\u{2028}'..='\u{2029}'
            | '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180D}'
            | '\u{180F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_only_the_last_component() {
        assert_eq!(safe_name("../../x"), "x");
        assert_eq!(safe_name("/etc/passwd"), "passwd");
        assert_eq!(safe_name("a/b"), "b");
        assert_eq!(safe_name("C:\\Windows\\evil.dll"), "evil.dll");
        assert_eq!(safe_name("..\\..\\x"), "x");
        assert_eq!(safe_name("a/"), FALLBACK_NAME);
        assert_eq!(safe_name("a/.."), FALLBACK_NAME);
    }

    #[test]
    fn strips_leading_dots_and_dashes() {
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("-rf"), "rf");
        assert_eq!(safe_name("--help"), "help");
        assert_eq!(safe_name(" .-. x"), "x");
    }

    #[test]
    fn dot_names_fall_back() {
        assert_eq!(safe_name(""), FALLBACK_NAME);
        assert_eq!(safe_name("."), FALLBACK_NAME);
        assert_eq!(safe_name(".."), FALLBACK_NAME);
        assert_eq!(safe_name("..."), FALLBACK_NAME);
        assert_eq!(safe_name(" \t "), "_");
        assert_eq!(safe_name("   "), FALLBACK_NAME);
    }

    #[test]
    fn strips_trailing_dots_and_spaces() {
        assert_eq!(safe_name("name. . ."), "name");
        assert_eq!(safe_name("file.txt   "), "file.txt");
    }

    #[test]
    fn escape_sequences_cannot_reach_a_terminal() {
        assert_eq!(safe_name("\x1b[2J name"), "_[2J name");
        assert_eq!(safe_name("\x1b[31mred"), "_[31mred");
        // C1 CSI and DEL.
        assert_eq!(safe_name("a\u{9b}2Jb\u{7f}"), "a_2Jb_");
        assert_eq!(safe_name("line\nbreak\r"), "line_break_");
    }

    #[test]
    fn bidi_and_invisible_characters_are_replaced() {
        assert_eq!(safe_name("evil\u{202E}gpj.exe"), "evil_gpj.exe");
        assert_eq!(safe_name("a\u{2067}b\u{200F}c"), "a_b_c");
        assert_eq!(safe_name("a\u{200B}b\u{FEFF}c\u{AD}d"), "a_b_c_d");
        assert_eq!(safe_name("x\u{FE0F}\u{E0041}\u{2028}y"), "x___y");
    }

    #[test]
    fn windows_forbidden_characters_are_replaced() {
        assert_eq!(safe_name("what?<>:\"|*.txt"), "what_______.txt");
    }

    #[test]
    fn windows_device_names_get_a_prefix() {
        assert_eq!(safe_name("CON"), "_CON");
        assert_eq!(safe_name("con.txt"), "_con.txt");
        assert_eq!(safe_name("CON  "), "_CON");
        assert_eq!(safe_name("con .txt"), "_con .txt");
        assert_eq!(safe_name("Com1.tar.gz"), "_Com1.tar.gz");
        assert_eq!(safe_name("lpt9"), "_lpt9");
        assert_eq!(safe_name("nul.x"), "_nul.x");
        assert_eq!(safe_name("COM10"), "COM10");
        assert_eq!(safe_name("console"), "console");
        assert_eq!(safe_name("icon.png"), "icon.png");
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let long = format!("{}.txt", "a".repeat(9_996));
        assert_eq!(long.len(), 10_000);
        let safe = safe_name(&long);
        assert_eq!(safe.len(), MAX_NAME_BYTES);
        assert!(safe.ends_with("aaa.txt"));

        // Two-byte chars: the cut must land on a char boundary.
        let wide = format!("{}.pdf", "é".repeat(5_000));
        let safe = safe_name(&wide);
        assert!(safe.len() <= MAX_NAME_BYTES);
        assert!(safe.ends_with("é.pdf"));

        // An overlong "extension" is not kept.
        let no_ext = format!("a.{}", "b".repeat(300));
        assert_eq!(safe_name(&no_ext).len(), MAX_NAME_BYTES);

        // Dots exposed by the cut are trimmed.
        let dotted = format!("a{}.{}", ".".repeat(300), "x".repeat(20));
        assert_eq!(safe_name(&dotted), "a");
    }

    #[test]
    fn ordinary_names_are_kept() {
        assert_eq!(safe_name("holiday photo.jpg"), "holiday photo.jpg");
        assert_eq!(safe_name("résumé.pdf"), "résumé.pdf");
        assert_eq!(
            safe_name("日本語 ファイル.tar.gz"),
            "日本語 ファイル.tar.gz"
        );
        assert_eq!(
            safe_name("my_file-v2 (final).docx"),
            "my_file-v2 (final).docx"
        );
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("archive", 1), "archive (1)");
        assert_eq!(numbered("archive.tar.gz", 2), "archive.tar (2).gz");
        assert_eq!(numbered("report.pdf", 0), "report.pdf");
        assert_eq!(numbered("", 3), "file (3)");

        let long = safe_name(&format!("{}.pdf", "é".repeat(500)));
        let n = numbered(&long, u32::MAX);
        assert!(n.len() <= MAX_NAME_BYTES);
        assert!(n.ends_with("é (4294967295).pdf"));

        let long = "x".repeat(MAX_NAME_BYTES);
        let n = numbered(&long, 7);
        assert_eq!(n.len(), MAX_NAME_BYTES);
        assert!(n.ends_with("x (7)"));
    }

    /// Mostly hostile characters, with enough length to exercise the cut.
    fn hostile_string() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            3 => any::<char>(),
            2 => prop::sample::select(vec![
                '.', '-', ' ', '/', '\\', '\x1b', '\u{202E}', '\u{200B}', ':', '?', 'é', '日', 'a',
                'c', 'o', 'n', '\t', '\u{a0}', '\u{E0041}',
            ]),
        ];
        prop::collection::vec(ch, 0..400).prop_map(|v| v.into_iter().collect())
    }

    fn assert_safe(s: &str) {
        assert!(!s.is_empty());
        assert!(s.len() <= MAX_NAME_BYTES);
        assert!(!s.contains(['/', '\\']));
        assert!(!s.chars().any(|c| c < ' '));
        assert!(!s.starts_with(['.', '-']));
    }

    proptest! {
        #[test]
        fn safe_name_is_safe_and_idempotent(x in prop_oneof![any::<String>(), hostile_string()]) {
            let s = safe_name(&x);
            assert_safe(&s);
            prop_assert_eq!(safe_name(&s), s);
        }

        #[test]
        fn numbered_stays_safe(x in hostile_string(), n in any::<u32>()) {
            let s = safe_name(&x);
            let alt = numbered(&s, n);
            assert_safe(&alt);
            prop_assert_eq!(safe_name(&alt), alt.clone());
            if n > 0 {
                prop_assert_ne!(alt, s);
            }
        }
    }
}
