//! Removing a member from a private room: the room's key changes, and the
//! one removed is not given the new one.
//!
//! A [`KeyRing`] is one member's view of a private room's keys: the
//! current one and a few before it, each an *epoch*, with the members
//! removed up to it. `/kick` makes a [`Rotation`]: the next epoch, a fresh
//! key, and every member removed so far, signed off by who made it. It is
//! sealed under the key it replaces, so only a holder of that key can have
//! made it, and handed to every remaining member over an authenticated
//! stream; a member that was away asks any member when it is back, and is
//! given the rotations since its key, oldest first. Each is checked
//! against the epoch it builds on:
//! - it is that epoch's next one (so nobody can skip ahead);
//! - its maker was not removed before it, and does not remove itself;
//! - it keeps every removal before it.
//!
//! Two members may remove someone at the same moment: two rotations of one
//! epoch. Every member settles on the same one (the one that removes more,
//! then the one whose topic sorts first), and whoever then holds removals
//! the winner lacks (the other kick) rotates again, so both removals
//! stand. A member removed by either is given neither key afterwards.
//!
//! Pure: no I/O and no randomness of its own; keys and nonces come in.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::room_key::{RoomKey, KEY_LEN, NONCE_LEN};

/// Epochs kept: the rotations a returning member can be brought through.
/// One away for longer needs a new invite.
pub const MAX_EPOCHS: usize = 16;

/// Members removed from one room at most; past it, no more can be.
pub const MAX_REMOVED: usize = 256;

/// What a rotation's seal is bound to, besides the key it replaces.
const ROTATION_LABEL: &[u8] = b"rust-p2p-chat rotation v1";

/// A change of a private room's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The epoch it starts.
    pub epoch: u64,
    /// The new key.
    pub key: RoomKey,
    /// Every member removed up to it (peer IDs).
    pub removed: BTreeSet<String>,
    /// Who made it.
    pub by: String,
}

#[derive(Serialize, Deserialize)]
struct RotationWire {
    epoch: u64,
    key: Vec<u8>,
    removed: Vec<String>,
    by: String,
}

impl Rotation {
    fn encode(&self) -> Vec<u8> {
        let wire = RotationWire {
            epoch: self.epoch,
            key: self.key.to_bytes().to_vec(),
            removed: self.removed.iter().cloned().collect(),
            by: self.by.clone(),
        };
        postcard::to_allocvec(&wire).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<Rotation> {
        let wire: RotationWire = postcard::from_bytes(bytes).ok()?;
        let key: [u8; KEY_LEN] = wire.key.try_into().ok()?;
        if wire.removed.len() > MAX_REMOVED {
            return None;
        }
        Some(Rotation {
            epoch: wire.epoch,
            key: RoomKey::from_bytes(key),
            removed: wire.removed.into_iter().collect(),
            by: wire.by,
        })
    }
}

/// A rotation as it travels: the topic of the key it replaces, and the
/// rotation sealed under that key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRotation {
    /// The topic id of the key it was sealed under.
    pub base: String,
    /// The sealed rotation.
    pub sealed: Vec<u8>,
}

/// A key of the room we know, and how it was made.
#[derive(Debug, Clone)]
struct Epoch {
    rotation: Rotation,
    /// How it was handed on (none for a key we started from).
    made: Option<SealedRotation>,
}

/// What an offered rotation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// We moved to another key. `removed`: members removed that we did
    /// not know of.
    Moved {
        /// Who made the key we moved to.
        by: String,
        /// Members removed that we had not known of.
        removed: Vec<String>,
    },
    /// We keep our key (it is as new, or wins); removals in what came
    /// are known now.
    Kept,
    /// It removes us.
    Removed {
        /// Who did.
        by: String,
    },
    /// Nothing in it was sealed under a key we hold as a valid next
    /// epoch.
    Refused,
}

/// What a member is told when it asks with the key it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catchup {
    /// It holds the current key.
    Same,
    /// The rotations that lead to the current key, oldest first.
    Rotations(Vec<SealedRotation>),
    /// It was removed.
    Removed,
    /// We know of no rotation: its key is of another room.
    Unknown,
}

/// One epoch as the key file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEpoch {
    /// The epoch.
    pub epoch: u64,
    /// Its key, in hex.
    pub key: String,
    /// Members removed up to it.
    pub removed: Vec<String>,
    /// Who made it (empty for a key we started from).
    pub by: String,
    /// How it was handed on.
    pub made: Option<SealedRotation>,
}

/// What a member tells those who ask about the room without the
/// current key: enough to answer them without the ring itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// The rotations that lead to the current key.
    pub chain: Vec<SealedRotation>,
    /// The topics of every key of the room we know.
    pub topics: BTreeSet<String>,
    /// Members removed.
    pub removed: BTreeSet<String>,
}

impl Answers {
    /// What `peer`, holding the key of topic `holding`, is told: as
    /// [`KeyRing::catch_up`], `None` for a key none of ours (it may be
    /// handed the room's key if the room is open).
    pub fn catch_up(&self, peer: &str, holding: Option<&str>) -> Option<Catchup> {
        if self.removed.contains(peer) {
            return Some(Catchup::Removed);
        }
        let holding = holding?;
        if !self.topics.contains(holding) || self.chain.is_empty() {
            return None;
        }
        Some(Catchup::Rotations(self.chain.clone()))
    }
}

/// One member's keys of one private room.
#[derive(Debug, Clone)]
pub struct KeyRing {
    me: String,
    /// Every key we know of the room, oldest first (a few epochs, with
    /// rotations that lost to another of their epoch): a rotation sealed
    /// under any of them can be checked.
    known: Vec<Epoch>,
    /// Which of `known` is the current key: the newest epoch, and of
    /// rotations of one epoch the one every member settles on.
    current: usize,
    /// Every removal we know of, whichever key it came with.
    known_removed: BTreeSet<String>,
}

impl KeyRing {
    /// A room whose key is `key`, at its first epoch, for member `me`.
    pub fn new(me: &str, key: RoomKey) -> KeyRing {
        KeyRing::resume(me, 0, key, BTreeSet::new())
    }

    /// A room at `epoch` with `key` and the members removed so far, as
    /// stored.
    pub fn resume(me: &str, epoch: u64, key: RoomKey, removed: BTreeSet<String>) -> KeyRing {
        let rotation = Rotation {
            epoch,
            key,
            removed: removed.clone(),
            by: String::new(),
        };
        KeyRing {
            me: me.to_owned(),
            known: vec![Epoch {
                rotation,
                made: None,
            }],
            current: 0,
            known_removed: removed,
        }
    }

    fn current(&self) -> &Rotation {
        &self.known[self.current].rotation
    }

    /// The current key.
    pub fn key(&self) -> &RoomKey {
        &self.current().key
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.current().epoch
    }

    /// Members removed, as far as we know.
    pub fn removed(&self) -> &BTreeSet<String> {
        &self.known_removed
    }

    /// Whether `peer` was removed.
    pub fn is_removed(&self, peer: &str) -> bool {
        self.known_removed.contains(peer)
    }

    /// Removes `who`: the next epoch with `fresh` as its key, sealed with
    /// `nonce` under the current key; the rotations to hand to the other
    /// members. `None` when `who` is us, already removed, or one too many.
    pub fn kick(
        &mut self,
        who: &str,
        fresh: RoomKey,
        nonce: [u8; NONCE_LEN],
    ) -> Option<Vec<SealedRotation>> {
        if who == self.me
            || self.known_removed.contains(who)
            || self.known_removed.len() >= MAX_REMOVED
        {
            return None;
        }
        self.known_removed.insert(who.to_owned());
        Some(self.rotate(fresh, nonce))
    }

    /// Whether we know of removals the current key does not keep out (two
    /// kicks at once): then [`rotate`](Self::rotate) is due.
    pub fn needs_rotation(&self) -> bool {
        !self.known_removed.contains(&self.me)
            && !self.known_removed.is_subset(&self.current().removed)
    }

    /// The next epoch with `fresh` as its key and every removal we know;
    /// the rotations to hand to the other members.
    pub fn rotate(&mut self, fresh: RoomKey, nonce: [u8; NONCE_LEN]) -> Vec<SealedRotation> {
        let base = self.current().clone();
        let rotation = Rotation {
            epoch: base.epoch + 1,
            key: fresh,
            removed: self.known_removed.clone(),
            by: self.me.clone(),
        };
        let sealed = SealedRotation {
            base: base.key.topic_id().to_owned(),
            sealed: base.key.seal(ROTATION_LABEL, &rotation.encode(), nonce),
        };
        self.known.push(Epoch {
            rotation,
            made: Some(sealed),
        });
        self.settle();
        self.chain()
    }

    /// The rotations that lead to the current key from the oldest we
    /// know, oldest first: whoever holds any key on the way can check
    /// them all.
    pub fn chain(&self) -> Vec<SealedRotation> {
        let mut chain = Vec::new();
        let mut at = self.current;
        while let Some(made) = &self.known[at].made {
            chain.push(made.clone());
            match self.find(&made.base) {
                Some(base) => at = base,
                None => break,
            }
        }
        chain.reverse();
        chain
    }

    fn find(&self, topic: &str) -> Option<usize> {
        self.known
            .iter()
            .position(|e| e.rotation.key.topic_id() == topic)
    }

    /// Picks the current key, and forgets the oldest epochs past
    /// [`MAX_EPOCHS`].
    fn settle(&mut self) {
        let newest = self
            .known
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| {
                a.rotation
                    .epoch
                    .cmp(&b.rotation.epoch)
                    .then_with(|| rank(&a.rotation).cmp(&rank(&b.rotation)))
            })
            .map_or(0, |(i, _)| i);
        let newest_epoch = self.known[newest].rotation.epoch;
        let key = self.known[newest].rotation.key.clone();
        self.known.retain(|e| {
            e.rotation.epoch + MAX_EPOCHS as u64 > newest_epoch || e.rotation.key == key
        });
        self.current = self
            .known
            .iter()
            .position(|e| e.rotation.key == key)
            .unwrap_or(0);
    }

    /// Rotations handed to us (a chain, oldest first): each one sealed
    /// under a key we hold, as its next epoch, is taken.
    pub fn offer(&mut self, rotations: &[SealedRotation]) -> Offered {
        let before = self.key().clone();
        let known_before = self.known_removed.clone();
        let mut taken = false;
        let mut removed_by = None;
        for offered in rotations {
            let Some(rotation) = self.check(offered) else {
                continue;
            };
            taken = true;
            self.known_removed.extend(rotation.removed.iter().cloned());
            if rotation.removed.contains(&self.me) {
                removed_by.get_or_insert(rotation.by.clone());
                continue;
            }
            if self.find(rotation.key.topic_id()).is_none() {
                self.known.push(Epoch {
                    rotation,
                    made: Some(offered.clone()),
                });
            }
        }
        if let Some(by) = removed_by {
            return Offered::Removed { by };
        }
        if !taken {
            return Offered::Refused;
        }
        self.settle();
        if self.key() == &before {
            return Offered::Kept;
        }
        Offered::Moved {
            by: self.current().by.clone(),
            removed: self
                .known_removed
                .difference(&known_before)
                .cloned()
                .collect(),
        }
    }

    /// The rotation in `offered`, if it opens under a key we hold and is
    /// a valid next epoch of it.
    fn check(&self, offered: &SealedRotation) -> Option<Rotation> {
        let base = &self.known[self.find(&offered.base)?].rotation;
        let rotation = base
            .key
            .open(ROTATION_LABEL, &offered.sealed)
            .ok()
            .and_then(|plain| Rotation::decode(&plain))?;
        let valid = rotation.epoch == base.epoch + 1
            && !base.removed.contains(&rotation.by)
            && !rotation.removed.contains(&rotation.by)
            && base.removed.is_subset(&rotation.removed);
        valid.then_some(rotation)
    }

    /// The ring as the key file keeps it: its epochs and the removals
    /// known.
    pub fn to_stored(&self) -> (Vec<StoredEpoch>, Vec<String>) {
        let epochs = self
            .known
            .iter()
            .map(|e| StoredEpoch {
                epoch: e.rotation.epoch,
                key: e.rotation.key.to_hex(),
                removed: e.rotation.removed.iter().cloned().collect(),
                by: e.rotation.by.clone(),
                made: e.made.clone(),
            })
            .collect();
        (epochs, self.known_removed.iter().cloned().collect())
    }

    /// A ring from what [`to_stored`](Self::to_stored) gave; `None` when
    /// a key does not parse or there is none.
    pub fn from_stored(me: &str, epochs: &[StoredEpoch], removed: &[String]) -> Option<KeyRing> {
        let known = epochs
            .iter()
            .map(|e| {
                Some(Epoch {
                    rotation: Rotation {
                        epoch: e.epoch,
                        key: RoomKey::from_hex(&e.key)?,
                        removed: e.removed.iter().cloned().collect(),
                        by: e.by.clone(),
                    },
                    made: e.made.clone(),
                })
            })
            .collect::<Option<Vec<Epoch>>>()?;
        if known.is_empty() {
            return None;
        }
        let mut ring = KeyRing {
            me: me.to_owned(),
            known,
            current: 0,
            known_removed: removed.iter().cloned().collect(),
        };
        ring.settle();
        Some(ring)
    }

    /// What the network answers for us to those who ask (see
    /// [`Answers`]).
    pub fn answers(&self) -> Answers {
        Answers {
            chain: self.chain(),
            topics: self
                .known
                .iter()
                .map(|e| e.rotation.key.topic_id().to_owned())
                .collect(),
            removed: self.known_removed.clone(),
        }
    }

    /// What a member asking with the key of topic `holding` is told;
    /// `peer` is who asks.
    pub fn catch_up(&self, peer: &str, holding: &str) -> Catchup {
        if self.known_removed.contains(peer) {
            return Catchup::Removed;
        }
        if holding == self.key().topic_id() {
            return Catchup::Same;
        }
        // Even for a key we do not know (a rotation of one epoch that
        // lost, or the asker is ahead): it opens what it can, and nothing
        // else opens for anyone without the keys.
        let chain = self.chain();
        if chain.is_empty() {
            return Catchup::Unknown;
        }
        Catchup::Rotations(chain)
    }
}

/// How rotations of one epoch rank: the one that removes more, then the
/// one whose topic sorts first, is the one every member settles on.
fn rank(rotation: &Rotation) -> (usize, std::cmp::Reverse<&str>) {
    (
        rotation.removed.len(),
        std::cmp::Reverse(rotation.key.topic_id()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RoomKey {
        RoomKey::from_bytes([n; 32])
    }

    #[test]
    fn a_kick_moves_the_others_to_a_key_the_removed_one_is_not_given() {
        let mut ann = KeyRing::new("ann", key(1));
        let mut bob = KeyRing::new("bob", key(1));
        let mut dan = KeyRing::new("dan", key(1));
        let rotation = ann.kick("bob", key(2), [0; 24]).unwrap();
        assert_eq!(rotation.len(), 1);
        assert_eq!(ann.key(), &key(2));
        assert_eq!(
            dan.offer(&rotation),
            Offered::Moved {
                by: "ann".into(),
                removed: vec!["bob".into()]
            }
        );
        assert_eq!(dan.key(), &key(2));
        // Bob, if handed it anyway, learns only that he is out.
        assert_eq!(bob.offer(&rotation), Offered::Removed { by: "ann".into() });
        assert_eq!(bob.key(), &key(1));
        // Asking later, bob is told he was removed; another member is
        // brought up to date.
        assert_eq!(dan.catch_up("bob", key(1).topic_id()), Catchup::Removed);
        let carol = KeyRing::new("carol", key(1));
        let mut carol_later = carol.clone();
        match ann.catch_up("carol", key(1).topic_id()) {
            Catchup::Rotations(rotations) => {
                carol_later.offer(&rotations);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(carol_later.key(), &key(2));
        assert_eq!(ann.catch_up("dan", key(2).topic_id()), Catchup::Same);
        assert_eq!(
            KeyRing::new("eve", key(9)).catch_up("dan", key(1).topic_id()),
            Catchup::Unknown
        );
    }

    #[test]
    fn rotations_that_skip_ahead_or_come_from_the_removed_are_refused() {
        let mut ann = KeyRing::new("ann", key(1));
        let mut dan = KeyRing::new("dan", key(1));
        let first = ann.kick("bob", key(2), [0; 24]).unwrap();
        dan.offer(&first);
        // Bob holds key 1 and makes "epoch 2, removing ann" sealed under
        // it: not the next epoch of key 1.
        let mut forged = KeyRing::resume("bob", 1, key(1), BTreeSet::new());
        let forged = forged.kick("ann", key(3), [0; 24]).unwrap();
        assert_eq!(dan.offer(&forged), Offered::Refused);
        // Nor can anything sealed under a key nobody here holds move us.
        let mut stranger = KeyRing::new("eve", key(7));
        let stray = stranger.kick("ann", key(8), [0; 24]).unwrap();
        assert_eq!(dan.offer(&stray), Offered::Refused);
        // Once removed at an epoch, bob cannot rotate from it.
        let mut bob_at_2 = KeyRing::resume("bob", 1, key(2), ["bob".into()].into());
        let from_removed = bob_at_2.rotate(key(4), [0; 24]);
        assert_eq!(dan.offer(&from_removed), Offered::Refused);
        assert_eq!(dan.key(), &key(2));
    }

    #[test]
    fn a_stored_ring_comes_back_as_it_was() {
        let mut ann = KeyRing::new("ann", key(1));
        ann.kick("bob", key(2), [0; 24]).unwrap();
        let (epochs, removed) = ann.to_stored();
        let back = KeyRing::from_stored("ann", &epochs, &removed).unwrap();
        assert_eq!(back.key(), &key(2));
        assert_eq!(back.epoch(), 1);
        assert!(back.is_removed("bob"));
        assert_eq!(back.chain(), ann.chain());
        assert!(KeyRing::from_stored("ann", &[], &removed).is_none());
    }

    #[test]
    fn two_kicks_at_once_both_stand() {
        let members = ["ann", "dan", "eve", "fay"];
        let mut rings: Vec<KeyRing> = members.iter().map(|m| KeyRing::new(m, key(1))).collect();
        let by_ann = rings[0].kick("bob", key(2), [1; 24]).unwrap();
        let by_dan = rings[1].kick("cat", key(3), [2; 24]).unwrap();
        let mut queue = vec![by_ann, by_dan];
        // Everyone hears everything, in this order, until nobody rotates.
        let mut fresh = 10u8;
        while let Some(rotation) = queue.pop() {
            for ring in rings.iter_mut() {
                ring.offer(&rotation);
                if ring.needs_rotation() {
                    fresh += 1;
                    queue.insert(0, ring.rotate(key(fresh), [fresh; 24]));
                }
            }
        }
        let final_key = rings[0].key().clone();
        for ring in &rings {
            assert_eq!(ring.key(), &final_key);
            assert!(ring.is_removed("bob") && ring.is_removed("cat"));
        }
    }
}
