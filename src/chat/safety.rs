//! Fingerprints and safety numbers: identities people can compare.
//!
//! A peer ID is long and made for machines. People verify each other by
//! reading out something short: a [`fingerprint`] names one identity (16 hex
//! digits, grouped), and a [`safety_number`] names a *pair* of identities, so
//! both ends of a chat compute the same 60 digits and can compare them out of
//! band (in person, on a call). If a man in the middle sits between them, the
//! numbers differ. Both are plain functions of public key bytes: no I/O.

use sha2::{Digest, Sha256, Sha512};

/// Domain separation, so these hashes never collide with another use of
/// the same key bytes.
const FINGERPRINT_CONTEXT: &[u8] = b"rust-p2p-chat fingerprint v1";
const SAFETY_CONTEXT: &[u8] = b"rust-p2p-chat safety number v1";

/// A short, readable fingerprint of a public key: `XXXX XXXX XXXX XXXX`.
///
/// ```
/// use rust_p2p_chat::chat::safety::fingerprint;
///
/// let fp = fingerprint(&[7u8; 32]);
/// assert_eq!(fp.len(), 19);
/// assert_eq!(fp, fingerprint(&[7u8; 32]));
/// assert_ne!(fp, fingerprint(&[8u8; 32]));
/// ```
pub fn fingerprint(public_key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(FINGERPRINT_CONTEXT)
        .chain_update(public_key)
        .finalize();
    let hex: Vec<String> = digest[..8]
        .chunks(2)
        .map(|pair| format!("{:02X}{:02X}", pair[0], pair[1]))
        .collect();
    hex.join(" ")
}

/// The safety number of two identities: 60 digits in 12 groups of 5, the
/// same whichever side computes it.
///
/// ```
/// use rust_p2p_chat::chat::safety::safety_number;
///
/// let (alice, bob) = ([1u8; 32], [2u8; 32]);
/// assert_eq!(safety_number(&alice, &bob), safety_number(&bob, &alice));
/// assert_eq!(safety_number(&alice, &bob).len(), 12 * 5 + 11);
/// ```
pub fn safety_number(ours: &[u8], theirs: &[u8]) -> String {
    let (first, second) = if ours <= theirs {
        (ours, theirs)
    } else {
        (theirs, ours)
    };
    let digest = Sha512::new()
        .chain_update(SAFETY_CONTEXT)
        .chain_update((first.len() as u32).to_be_bytes())
        .chain_update(first)
        .chain_update((second.len() as u32).to_be_bytes())
        .chain_update(second)
        .finalize();
    let groups: Vec<String> = digest[..60]
        .chunks(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", value % 100_000)
        })
        .collect();
    groups.join(" ")
}

/// A fingerprint as typed by a person, in the form [`fingerprint`] writes:
/// whitespace and colons dropped, letters upper-cased. Compare two
/// normalised strings to tell whether they name the same key.
///
/// ```
/// use rust_p2p_chat::chat::safety::normalize_fingerprint;
///
/// assert_eq!(normalize_fingerprint("ab12 cd34:ef56 7890"), "AB12CD34EF567890");
/// assert_eq!(
///     normalize_fingerprint("AB12 CD34 EF56 7890"),
///     normalize_fingerprint("ab12cd34ef567890"),
/// );
/// ```
pub fn normalize_fingerprint(typed: &str) -> String {
    typed
        .chars()
        .filter(|&c| !c.is_whitespace() && c != ':')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_four_groups_of_four_uppercase_hex_digits() {
        for key in [&[0u8; 32][..], &[0xff; 32], b"some key", b""] {
            let fp = fingerprint(key);
            assert_eq!(fp.len(), 19, "{fp}");
            let groups: Vec<&str> = fp.split(' ').collect();
            assert_eq!(groups.len(), 4, "{fp}");
            let upper_hex = |c: char| matches!(c, '0'..='9' | 'A'..='F');
            assert!(
                groups
                    .iter()
                    .all(|g| g.len() == 4 && g.chars().all(upper_hex)),
                "{fp}"
            );
        }
    }

    #[test]
    fn fingerprint_is_stable_and_key_specific() {
        assert_eq!(fingerprint(&[1u8; 32]), fingerprint(&[1u8; 32]));
        assert_ne!(fingerprint(&[1u8; 32]), fingerprint(&[2u8; 32]));
    }

    #[test]
    fn v1_numbers_do_not_change() {
        // People compare these across installs and versions: any change to
        // the hash, the context strings or the layout breaks every
        // comparison. The values were computed independently (Python
        // hashlib) from the v1 definition.
        assert_eq!(fingerprint(&[7u8; 32]), "6FCC 4109 37A6 7102");
        assert_eq!(
            safety_number(&[1u8; 32], &[2u8; 32]),
            "36808 70599 47313 85959 96410 62647 74113 59310 25367 40567 60770 14844"
        );
    }

    #[test]
    fn safety_number_is_twelve_groups_of_five_digits() {
        let number = safety_number(&[1u8; 32], &[2u8; 32]);
        assert_eq!(number.len(), 12 * 5 + 11);
        let groups: Vec<&str> = number.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups
            .iter()
            .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
    }

    #[test]
    fn safety_number_is_symmetric_and_pair_specific() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert_ne!(safety_number(&a, &b), safety_number(&a, &c));
        assert_ne!(safety_number(&a, &b), safety_number(&c, &b));
    }

    #[test]
    fn safety_number_of_a_key_with_itself_is_well_formed() {
        let number = safety_number(&[9u8; 32], &[9u8; 32]);
        assert_eq!(number.split(' ').count(), 12);
    }

    #[test]
    fn keys_are_length_delimited() {
        // Moving a byte from one key to the other changes the number.
        assert_ne!(safety_number(b"ab", b"c"), safety_number(b"a", b"bc"));
    }

    #[test]
    fn normalize_drops_spaces_and_colons_and_uppercases() {
        assert_eq!(
            normalize_fingerprint("ab12 cd34 ef56 7890"),
            "AB12CD34EF567890"
        );
        assert_eq!(normalize_fingerprint("AB:12:cd:34"), "AB12CD34");
        assert_eq!(normalize_fingerprint("  ab12\tcd34\n"), "AB12CD34");
        assert_eq!(normalize_fingerprint(""), "");
    }

    #[test]
    fn normalize_matches_a_fingerprint_however_it_is_typed() {
        let fp = fingerprint(&[5u8; 32]);
        let canonical = normalize_fingerprint(&fp);
        assert_eq!(canonical.len(), 16);
        assert_eq!(normalize_fingerprint(&fp.to_lowercase()), canonical);
        assert_eq!(normalize_fingerprint(&fp.replace(' ', "")), canonical);
        assert_eq!(normalize_fingerprint(&fp.replace(' ', ":")), canonical);
        assert_ne!(normalize_fingerprint(&fingerprint(&[6u8; 32])), canonical);
    }

    #[test]
    fn normalize_keeps_other_characters_so_they_do_not_match() {
        // A typo must not turn into a match by being silently dropped.
        assert_eq!(normalize_fingerprint("AB-12"), "AB-12");
    }
}
