//! The keys of the private rooms we are in, kept like the identity key:
//! in the data directory, readable by the user alone (0600), written whole
//! or not at all. A room's key outlives the run, so a restarted member is
//! in the same room as before, and a member that rejoins is recognised by
//! the key it holds.
//!
//! A file that is not valid is refused and left as it is, as the known
//! peers file is: losing the keys would silently move every room.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{json_file, Error};
use crate::chat::membership::{KeyRing, StoredEpoch};
use crate::chat::room_key::{RoomAccess, RoomKey};

/// The file's name in the data directory.
pub const ROOM_KEYS_FILE: &str = "room_keys.json";

/// Rooms remembered at most; past it, a new room's key is kept for the
/// run only.
pub const MAX_ROOMS: usize = 1_000;

/// Largest file read.
const MAX_FILE_LEN: u64 = 1024 * 1024;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    rooms: BTreeMap<String, StoredRoom>,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredRoom {
    key: String,
    #[serde(default)]
    invite_only: bool,
    /// Its keys by epoch, once a member was removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    epochs: Vec<StoredEpoch>,
    /// Members removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
}

/// The private rooms' keys, as on disk.
#[derive(Debug)]
pub struct RoomKeys {
    dir: PathBuf,
    path: PathBuf,
    rooms: BTreeMap<String, RoomAccess>,
    /// The keys by epoch and the removals of rooms that removed a member.
    rings: BTreeMap<String, (Vec<StoredEpoch>, Vec<String>)>,
}

impl RoomKeys {
    /// Reads `dir/room_keys.json`; a missing file is no rooms.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(ROOM_KEYS_FILE);
        let mut keys = RoomKeys {
            dir: dir.to_owned(),
            path,
            rooms: BTreeMap::new(),
            rings: BTreeMap::new(),
        };
        let Some(bytes) = json_file::read(&keys.path, MAX_FILE_LEN)? else {
            return Ok(keys);
        };
        let corrupt = |reason: String| Error::Corrupt {
            path: keys.path.clone(),
            reason,
        };
        let file: FileFormat =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {}, but this program reads version {FORMAT_VERSION}",
                file.version
            )));
        }
        for (room, stored) in file.rooms {
            let key = RoomKey::from_hex(&stored.key)
                .ok_or_else(|| corrupt(format!("the key of #{room} is not 64 hex digits")))?;
            if !stored.epochs.is_empty() {
                keys.rings
                    .insert(room.clone(), (stored.epochs, stored.removed));
            }
            keys.rooms.insert(
                room,
                RoomAccess {
                    key,
                    invite_only: stored.invite_only,
                },
            );
        }
        Ok(keys)
    }

    /// What we hold of the private room called `room`.
    pub fn get(&self, room: &str) -> Option<&RoomAccess> {
        self.rooms.get(room)
    }

    /// Records the room's key (and whether it is by invitation), and
    /// writes the file when that changed anything.
    pub fn set(&mut self, room: &str, access: RoomAccess) -> Result<(), Error> {
        if self.rooms.get(room) == Some(&access) {
            return Ok(());
        }
        if !self.rooms.contains_key(room) && self.rooms.len() >= MAX_ROOMS {
            return Ok(());
        }
        if self.rooms.get(room).is_some_and(|a| a.key != access.key) {
            // Another room of that name: its keys are not ours.
            self.rings.remove(room);
        }
        self.rooms.insert(room.to_owned(), access);
        self.save()
    }

    /// The room's keys by epoch, for member `me`: as stored, or its one
    /// key.
    pub fn ring(&self, room: &str, me: &str) -> Option<KeyRing> {
        let access = self.rooms.get(room)?;
        let stored = self
            .rings
            .get(room)
            .and_then(|(epochs, removed)| KeyRing::from_stored(me, epochs, removed))
            .filter(|ring| ring.key() == &access.key);
        Some(stored.unwrap_or_else(|| KeyRing::new(me, access.key.clone())))
    }

    /// Records the room's keys after a member was removed (its current
    /// key becomes the room's key).
    pub fn set_ring(&mut self, room: &str, ring: &KeyRing, invite_only: bool) -> Result<(), Error> {
        if !self.rooms.contains_key(room) && self.rooms.len() >= MAX_ROOMS {
            return Ok(());
        }
        self.rooms.insert(
            room.to_owned(),
            RoomAccess {
                key: ring.key().clone(),
                invite_only,
            },
        );
        self.rings.insert(room.to_owned(), ring.to_stored());
        self.save()
    }

    /// Forgets the room (we were removed from it).
    pub fn forget(&mut self, room: &str) -> Result<(), Error> {
        if self.rooms.remove(room).is_none() {
            return Ok(());
        }
        self.rings.remove(room);
        self.save()
    }

    /// Marks the room as admitting only key holders.
    pub fn make_invite_only(&mut self, room: &str) -> Result<(), Error> {
        match self.rooms.get(room) {
            Some(access) if !access.invite_only => {
                let access = RoomAccess {
                    key: access.key.clone(),
                    invite_only: true,
                };
                self.set(room, access)
            }
            _ => Ok(()),
        }
    }

    fn save(&self) -> Result<(), Error> {
        let file = FileFormat {
            version: FORMAT_VERSION,
            rooms: self
                .rooms
                .iter()
                .map(|(room, access)| {
                    let (epochs, removed) = self.rings.get(room).cloned().unwrap_or_default();
                    let stored = StoredRoom {
                        key: access.key.to_hex(),
                        invite_only: access.invite_only,
                        epochs,
                        removed,
                    };
                    (room.clone(), stored)
                })
                .collect(),
        };
        json_file::write(&self.dir, &self.path, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(byte: u8, invite_only: bool) -> RoomAccess {
        RoomAccess {
            key: RoomKey::from_bytes([byte; 32]),
            invite_only,
        }
    }

    #[test]
    fn keys_outlive_the_run_in_a_file_only_the_user_reads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut keys = RoomKeys::open(&data).unwrap();
        assert!(keys.get("lobby").is_none());
        keys.set("lobby", access(1, false)).unwrap();
        keys.set("family", access(2, false)).unwrap();
        keys.make_invite_only("family").unwrap();
        let again = RoomKeys::open(&data).unwrap();
        assert_eq!(again.get("lobby"), Some(&access(1, false)));
        assert_eq!(again.get("family"), Some(&access(2, true)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(ROOM_KEYS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_damaged_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROOM_KEYS_FILE);
        std::fs::write(&path, br#"{"version":1,"rooms":{"lobby":{"key":"abc"}}}"#).unwrap();
        let err = RoomKeys::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("#lobby"), "{err}");
        std::fs::write(&path, b"not json").unwrap();
        assert!(RoomKeys::open(dir.path()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"not json");
    }
}
