//! Room keys: what makes a private room readable by its members only.
//!
//! A private room has a random 256-bit key, made by whoever creates it and
//! handed to others only by a member (an invite, or an answer over an
//! authenticated stream). Two things are derived from it with HKDF-SHA256,
//! each under a label of its own so that neither reveals the other or the
//! key: the room's topic on the network (so two rooms of one name never
//! meet, and the topic says nothing of the name), and the key that seals
//! every room message with XChaCha20-Poly1305. The 24-byte nonce is random
//! per message, which is safe for any number of messages under one key;
//! the caller draws it (this module does no I/O), and what the message is
//! bound to (its header) goes in as associated data.
//!
//! Forwarding peers therefore see only ciphertext and a header of numbers,
//! and a peer that learns the topic but not the key reads nothing and
//! cannot post: what it seals fails to open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// Bytes of a room key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce.
pub const NONCE_LEN: usize = 24;
/// Bytes a sealed message has beyond its plaintext: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;
/// Bytes of a topic identifier (shown in hex).
const TOPIC_ID_LEN: usize = 16;

const TOPIC_LABEL: &[u8] = b"rust-p2p-chat room topic v1";
const SEAL_LABEL: &[u8] = b"rust-p2p-chat room messages v1";

/// A sealed message did not open: another key, or altered on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a room message that does not open with the room's key")]
pub struct NotOpened;

/// What a member holds of a private room: its key, and whether the room
/// admits only those who hold it (once a member has handed out an
/// invite), or also whoever dials a member, as a two-peer chat does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAccess {
    /// The room's key.
    pub key: RoomKey,
    /// Members hand the key to no one who dials them.
    pub invite_only: bool,
}

/// A room's key, with what is derived from it.
#[derive(Clone)]
pub struct RoomKey {
    secret: [u8; KEY_LEN],
    topic: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for RoomKey {
    // The key itself never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKey")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RoomKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

impl Eq for RoomKey {}

impl RoomKey {
    /// The key of these 32 bytes (random ones make a new room).
    ///
    /// ```
    /// use rust_p2p_chat::chat::room_key::RoomKey;
    ///
    /// let key = RoomKey::from_bytes([7; 32]);
    /// let sealed = key.seal(b"header", b"hello", [1; 24]);
    /// assert_eq!(key.open(b"header", &sealed).unwrap(), b"hello");
    /// assert!(RoomKey::from_bytes([8; 32]).open(b"header", &sealed).is_err());
    /// assert!(key.open(b"other header", &sealed).is_err());
    /// assert_ne!(key.topic_id(), RoomKey::from_bytes([8; 32]).topic_id());
    /// ```
    pub fn from_bytes(secret: [u8; KEY_LEN]) -> RoomKey {
        let hkdf = Hkdf::<Sha256>::new(None, &secret);
        let mut topic = [0u8; TOPIC_ID_LEN];
        let mut seal = [0u8; KEY_LEN];
        // Both lengths are far below HKDF-SHA256's limit of 8,160 bytes.
        let expanded = hkdf
            .expand(TOPIC_LABEL, &mut topic)
            .and_then(|()| hkdf.expand(SEAL_LABEL, &mut seal));
        debug_assert!(expanded.is_ok());
        let topic = topic.iter().map(|b| format!("{b:02x}")).collect();
        let cipher = XChaCha20Poly1305::new(&seal.into());
        RoomKey {
            secret,
            topic,
            cipher,
        }
    }

    /// The key's bytes, to store or to hand to a member.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.secret
    }

    /// The room's identifier on the network: 32 hex digits that name the
    /// room without revealing its key or its name.
    pub fn topic_id(&self) -> &str {
        &self.topic
    }

    /// `plaintext` sealed under the room's key with `nonce` (random per
    /// message), bound to `header`: the nonce, then the ciphertext and
    /// its tag.
    pub fn seal(&self, header: &[u8], plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let payload = Payload {
            msg: plaintext,
            aad: header,
        };
        // Encryption fails only for a plaintext over 256 GiB, which no
        // room message (at most a few MiB) comes near.
        if let Ok(sealed) = self.cipher.encrypt(XNonce::from_slice(&nonce), payload) {
            out.extend_from_slice(&sealed);
        }
        out
    }

    /// The plaintext of a message [`seal`](Self::seal)ed under this key
    /// and bound to `header`.
    pub fn open(&self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NotOpened> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(NotOpened);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: header,
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| NotOpened)
    }

    /// The key in hex, as the key file keeps it.
    pub fn to_hex(&self) -> String {
        self.secret.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A key from [`to_hex`](Self::to_hex)'s text.
    pub fn from_hex(text: &str) -> Option<RoomKey> {
        let text = text.trim();
        if text.len() != KEY_LEN * 2 || !text.is_ascii() {
            return None;
        }
        let mut secret = [0u8; KEY_LEN];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(RoomKey::from_bytes(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sealed_message_shows_nothing_of_its_text_and_opens_only_as_sealed() {
        let key = RoomKey::from_bytes([3; 32]);
        let text = b"meet at the station at noon";
        let sealed = key.seal(b"h", text, [9; 24]);
        assert_eq!(sealed.len(), text.len() + SEAL_OVERHEAD);
        assert!(!sealed.windows(4).any(|w| w == b"meet"));
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(key.open(b"h", &altered), Err(NotOpened));
        assert_eq!(key.open(b"h", &sealed[..10]), Err(NotOpened));
        assert_eq!(key.open(b"h", &sealed).unwrap(), text);
    }

    #[test]
    fn the_topic_is_the_same_for_one_key_and_says_nothing_of_it() {
        let key = RoomKey::from_bytes([5; 32]);
        assert_eq!(key.topic_id(), RoomKey::from_bytes([5; 32]).topic_id());
        assert_eq!(key.topic_id().len(), 32);
        assert!(!key.topic_id().contains(&key.to_hex()[..8]));
        assert!(!format!("{key:?}").contains(&key.to_hex()[..8]));
    }

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        let key = RoomKey::from_bytes([0xab; 32]);
        assert_eq!(RoomKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert_eq!(RoomKey::from_hex(&key.to_hex()[1..]), None);
        assert_eq!(RoomKey::from_hex(&"zz".repeat(32)), None);
        assert_eq!(RoomKey::from_hex(&"é".repeat(32)), None);
    }

    proptest! {
        #[test]
        fn whatever_arrives_opens_only_if_it_was_sealed(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let key = RoomKey::from_bytes([1; 32]);
            prop_assert!(key.open(b"", &data).is_err());
        }
    }
}
