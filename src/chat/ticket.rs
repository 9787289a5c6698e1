//! Invites: one line of text that lets its holder into a private room.
//!
//! A ticket is the kind prefix `CHAT` and then the base32 of a small
//! binary encoding, so it survives any chat, mail or QR code a person
//! copies it through (no spaces, no punctuation, one case):
//!
//! ```text
//! byte 0      version (high 4 bits) and flags (low 4: bit 0, an expiry)
//! byte 1      n, the room name's length; then n bytes of the name
//! 32 bytes    the room key
//! 16 bytes    the inviter: a digest of its peer ID (see `inviter_digest`)
//! 4 bytes     expiry, seconds since 1970 (when flagged)
//! 7 or 19     per address: a tag (4: IPv4, 6: IPv6), the IP, the port
//! 2+n         per address through a relay: tag 16, n, n bytes of its
//!             multiaddr (the relay's, `/p2p-circuit`, the inviter's ID)
//! 2 bytes     a checksum of all the above
//! ```
//!
//! The inviter is a 128-bit digest rather than the 38-byte peer ID so that
//! a ticket with two addresses fits in 120 characters; finding another
//! identity with the same digest takes about 2^128 tries. The checksum
//! turns a ticket cut short or mistyped into a clear error rather than a
//! room nobody is in. The expiry is kept by the joining program: the key a
//! ticket carries is the room's, so whoever holds it can read the room
//! until a kick changes the key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};

use super::room::check_room;
use super::room_key::{RoomKey, KEY_LEN};

/// What every ticket starts with.
pub const PREFIX: &str = "CHAT";
/// The encoding this program writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the inviter's digest.
pub const INVITER_LEN: usize = 16;
/// Addresses a ticket carries at most.
pub const MAX_ADDRS: usize = 8;
/// Longest text read as a ticket; anything longer is refused unread.
pub const MAX_TICKET_TEXT: usize = 512;

const FLAG_EXPIRES: u8 = 1;
const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;
const TAG_RELAYED: u8 = 16;
/// Addresses through relays a ticket carries at most.
pub const MAX_RELAYED: usize = 2;
const CHECKSUM_LEN: usize = 2;
const CHECKSUM_CONTEXT: &[u8] = b"rust-p2p-chat ticket v1";
const INVITER_CONTEXT: &[u8] = b"rust-p2p-chat inviter v1";

/// Why a text is not a usable ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Does not start with the prefix.
    #[error("not an invite: an invite starts with {PREFIX}")]
    Prefix,
    /// Longer than any ticket.
    #[error("not an invite: {0} characters is far longer than an invite")]
    TooLong(usize),
    /// Characters outside base32.
    #[error("the invite has characters an invite does not use (letters and the digits 2-7): was it changed when copied?")]
    NotBase32,
    /// Cut short.
    #[error("the invite is incomplete: was it cut short when copied?")]
    Truncated,
    /// The checksum does not match.
    #[error(
        "the invite is damaged or incomplete (its checksum does not match): copy it whole again"
    )]
    Damaged,
    /// Written by a newer program.
    #[error("the invite is of version {0}, made by a newer rust-p2p-chat: update this one")]
    Version(u8),
    /// A field that cannot be.
    #[error("the invite is not valid: {0}")]
    Invalid(&'static str),
}

/// An invite into a private room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The room's name.
    pub room: String,
    /// The room's key.
    pub key: RoomKey,
    /// Digest of the inviter's peer ID ([`inviter_digest`]).
    pub inviter: [u8; INVITER_LEN],
    /// Where the inviter listens, best first.
    pub addrs: Vec<SocketAddr>,
    /// Where it can be reached through relays: multiaddr bytes, opaque
    /// here (at most [`MAX_RELAYED`], each under 256 bytes).
    pub relayed: Vec<Vec<u8>>,
    /// When the invite stops being valid, seconds since 1970.
    pub expires: Option<u32>,
}

/// The digest a ticket names its inviter by: of its peer ID's bytes.
pub fn inviter_digest(peer_id: &[u8]) -> [u8; INVITER_LEN] {
    let digest = Sha256::new()
        .chain_update(INVITER_CONTEXT)
        .chain_update(peer_id)
        .finalize();
    let mut out = [0u8; INVITER_LEN];
    out.copy_from_slice(&digest[..INVITER_LEN]);
    out
}

/// Whether `text` is meant as a ticket rather than an address: it starts
/// with the prefix and has nothing an address has.
pub fn looks_like_ticket(text: &str) -> bool {
    let text = text.trim();
    text.get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
        && !text.contains([':', '/', '.', '[', ' '])
}

fn checksum(data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(CHECKSUM_CONTEXT)
        .chain_update(data)
        .finalize();
    [digest[0], digest[1]]
}

impl Ticket {
    /// The ticket as text.
    ///
    /// ```
    /// use rust_p2p_chat::chat::room_key::RoomKey;
    /// use rust_p2p_chat::chat::ticket::Ticket;
    ///
    /// let ticket = Ticket {
    ///     room: "family".into(),
    ///     key: RoomKey::from_bytes([7; 32]),
    ///     inviter: [1; 16],
    ///     addrs: vec!["192.168.1.20:9000".parse().unwrap(), "203.0.113.7:9000".parse().unwrap()],
    ///     relayed: Vec::new(),
    ///     expires: None,
    /// };
    /// let text = ticket.encode();
    /// assert!(text.starts_with("CHAT") && text.len() <= 120);
    /// assert_eq!(Ticket::decode(&text), Ok(ticket));
    /// ```
    pub fn encode(&self) -> String {
        let mut data = Vec::with_capacity(96);
        let flags = if self.expires.is_some() {
            FLAG_EXPIRES
        } else {
            0
        };
        data.push(VERSION << 4 | flags);
        data.push(self.room.len() as u8);
        data.extend_from_slice(self.room.as_bytes());
        data.extend_from_slice(&self.key.to_bytes());
        data.extend_from_slice(&self.inviter);
        if let Some(expires) = self.expires {
            data.extend_from_slice(&expires.to_be_bytes());
        }
        for addr in self.addrs.iter().take(MAX_ADDRS) {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    data.push(TAG_V4);
                    data.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    data.push(TAG_V6);
                    data.extend_from_slice(&ip.octets());
                }
            }
            data.extend_from_slice(&addr.port().to_be_bytes());
        }
        for relayed in self.relayed.iter().take(MAX_RELAYED) {
            if let Ok(len) = u8::try_from(relayed.len()) {
                data.push(TAG_RELAYED);
                data.push(len);
                data.extend_from_slice(relayed);
            }
        }
        let sum = checksum(&data);
        data.extend_from_slice(&sum);
        format!("{PREFIX}{}", BASE32_NOPAD.encode(&data))
    }

    /// A ticket from its text (either case; spaces and line breaks around
    /// it are ignored).
    pub fn decode(text: &str) -> Result<Ticket, TicketError> {
        let text = text.trim();
        if text.len() > MAX_TICKET_TEXT {
            return Err(TicketError::TooLong(text.len()));
        }
        let body = match text.get(..PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => &text[PREFIX.len()..],
            _ => return Err(TicketError::Prefix),
        };
        let upper = body.to_ascii_uppercase();
        let data = match BASE32_NOPAD.decode(upper.as_bytes()) {
            Ok(data) => data,
            // A length base32 cannot end at, or stray bits at the end, is a
            // ticket cut short.
            Err(e)
                if matches!(
                    e.kind,
                    data_encoding::DecodeKind::Length | data_encoding::DecodeKind::Trailing
                ) =>
            {
                return Err(TicketError::Truncated)
            }
            Err(_) => return Err(TicketError::NotBase32),
        };
        let min = 2 + KEY_LEN + INVITER_LEN + CHECKSUM_LEN;
        if data.len() < min {
            return Err(TicketError::Truncated);
        }
        let (data, sum) = data.split_at(data.len() - CHECKSUM_LEN);
        if checksum(data) != sum {
            return Err(TicketError::Damaged);
        }
        let version = data[0] >> 4;
        if version != VERSION {
            return Err(TicketError::Version(version));
        }
        Reader(data).ticket()
    }

    /// Whether the invite has expired at `now` (seconds since 1970).
    pub fn expired(&self, now_secs: u64) -> bool {
        self.expires.is_some_and(|e| u64::from(e) <= now_secs)
    }
}

/// Reads the fields of a ticket whose checksum and version are good.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Invalid("a field runs past its end"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TicketError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn ticket(mut self) -> Result<Ticket, TicketError> {
        let [head] = self.array::<1>()?;
        let flags = head & 0x0f;
        if flags & !FLAG_EXPIRES != 0 {
            return Err(TicketError::Invalid("unknown flags"));
        }
        let [len] = self.array::<1>()?;
        let room = std::str::from_utf8(self.take(usize::from(len))?)
            .map_err(|_| TicketError::Invalid("the room name is not text"))?
            .to_owned();
        check_room(&room).map_err(|_| TicketError::Invalid("the room name"))?;
        let key = RoomKey::from_bytes(self.array::<KEY_LEN>()?);
        let inviter = self.array::<INVITER_LEN>()?;
        let expires = if flags & FLAG_EXPIRES != 0 {
            Some(u32::from_be_bytes(self.array::<4>()?))
        } else {
            None
        };
        let mut addrs = Vec::new();
        let mut relayed = Vec::new();
        while !self.0.is_empty() {
            if addrs.len() == MAX_ADDRS || relayed.len() > MAX_RELAYED {
                return Err(TicketError::Invalid("too many addresses"));
            }
            let ip = match self.array::<1>()? {
                [TAG_V4] => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
                [TAG_V6] => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
                [TAG_RELAYED] => {
                    let [len] = self.array::<1>()?;
                    relayed.push(self.take(usize::from(len))?.to_vec());
                    continue;
                }
                _ => return Err(TicketError::Invalid("an address of an unknown kind")),
            };
            let port = u16::from_be_bytes(self.array::<2>()?);
            if port == 0 {
                return Err(TicketError::Invalid("an address without a port"));
            }
            addrs.push(SocketAddr::new(ip, port));
        }
        if addrs.is_empty() && relayed.is_empty() {
            return Err(TicketError::Invalid("no address to reach the inviter at"));
        }
        if relayed.len() > MAX_RELAYED {
            return Err(TicketError::Invalid("too many addresses"));
        }
        Ok(Ticket {
            room,
            key,
            inviter,
            addrs,
            relayed,
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticket(room: &str, addrs: &[&str], expires: Option<u32>) -> Ticket {
        Ticket {
            room: room.into(),
            key: RoomKey::from_bytes([0x5a; 32]),
            inviter: inviter_digest(b"a peer id"),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            relayed: Vec::new(),
            expires,
        }
    }

    #[test]
    fn a_ticket_with_two_addresses_fits_in_120_characters_and_round_trips() {
        for room in ["lobby", "family"] {
            let t = ticket(room, &["192.168.178.20:51234", "203.0.113.99:51234"], None);
            let text = t.encode();
            assert!(text.len() <= 120, "{} characters: {text}", text.len());
            assert!(text
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            assert!(looks_like_ticket(&text));
            assert_eq!(Ticket::decode(&text), Ok(t.clone()));
            assert_eq!(
                Ticket::decode(&format!(" {}\n", text.to_lowercase())),
                Ok(t)
            );
        }
        let t = ticket(
            "x",
            &["[2001:db8::1]:9000", "10.0.0.1:1"],
            Some(1_900_000_000),
        );
        assert_eq!(Ticket::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn damaged_tickets_say_what_is_wrong() {
        let text = ticket("lobby", &["10.1.2.3:9000", "10.1.2.4:9000"], None).encode();
        assert_eq!(
            Ticket::decode(&text[..text.len() - 1]),
            Err(TicketError::Truncated)
        );
        for cut in [4, 20, 60, 100, text.len() - 8] {
            let err = Ticket::decode(&text[..cut]).unwrap_err();
            assert!(
                matches!(err, TicketError::Truncated | TicketError::Damaged),
                "cut at {cut}: {err:?}"
            );
        }
        assert_eq!(Ticket::decode(&text[1..]), Err(TicketError::Prefix));
        assert_eq!(Ticket::decode("10.1.2.3:9000"), Err(TicketError::Prefix));
        let mut typo = text.clone().into_bytes();
        typo[50] = if typo[50] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Ticket::decode(std::str::from_utf8(&typo).unwrap()),
            Err(TicketError::Damaged)
        );
        assert_eq!(
            Ticket::decode(&format!("{}1{}", &text[..30], &text[31..])),
            Err(TicketError::NotBase32)
        );
        let garbage = "CHAT".to_owned() + &"Q".repeat(10_000);
        assert_eq!(Ticket::decode(&garbage), Err(TicketError::TooLong(10_004)));
    }

    #[test]
    fn a_newer_version_is_named() {
        let mut data = vec![2 << 4, 1, b'a'];
        data.extend_from_slice(&[0; KEY_LEN + INVITER_LEN]);
        data.extend_from_slice(&[TAG_V4, 10, 0, 0, 1, 0, 80]);
        let sum = checksum(&data);
        data.extend_from_slice(&sum);
        let text = format!("{PREFIX}{}", BASE32_NOPAD.encode(&data));
        assert_eq!(Ticket::decode(&text), Err(TicketError::Version(2)));
    }

    #[test]
    fn expiry_is_kept_and_checked() {
        let t = ticket("lobby", &["10.0.0.1:9"], Some(1000));
        assert!(!t.expired(999));
        assert!(t.expired(1000));
        assert!(!ticket("lobby", &["10.0.0.1:9"], None).expired(u64::MAX));
    }

    #[test]
    fn addresses_are_told_from_tickets() {
        assert!(!looks_like_ticket("127.0.0.1:9000"));
        assert!(!looks_like_ticket("chat.example.org:9000"));
        assert!(!looks_like_ticket("/ip4/1.2.3.4/tcp/9"));
        assert!(looks_like_ticket("chatABCDEF"));
    }

    proptest! {
        #[test]
        fn no_text_makes_decoding_panic(text in ".{0,300}") {
            let _ = Ticket::decode(&text);
        }

        #[test]
        fn no_checksummed_bytes_make_decoding_panic(body in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut data = body;
            if let Some(first) = data.first_mut() {
                *first = (VERSION << 4) | (*first & 0x0f);
            }
            let sum = checksum(&data);
            data.extend_from_slice(&sum);
            let _ = Ticket::decode(&format!("{PREFIX}{}", BASE32_NOPAD.encode(&data)));
        }

        #[test]
        fn every_ticket_round_trips(
            key in any::<[u8; 32]>(),
            ports in proptest::collection::vec(1u16.., 1..4),
            expires in proptest::option::of(any::<u32>()),
        ) {
            let t = Ticket {
                room: "r".into(),
                key: RoomKey::from_bytes(key),
                inviter: [3; 16],
                addrs: ports.iter().map(|p| SocketAddr::from(([10, 0, 0, 1], *p))).collect(),
                relayed: vec![vec![7; 90]; ports.len() % 3],
                expires,
            };
            prop_assert_eq!(Ticket::decode(&t.encode()), Ok(t));
        }
    }
}
