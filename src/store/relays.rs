//! The relays a chat was told to use (`--relay`), remembered in the data
//! directory so the next run reserves at them without the flag: a peer
//! behind a NAT stays reachable the way it was set up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{json_file, Error};

/// The file's name in the data directory.
pub const RELAYS_FILE: &str = "relays.json";

/// Relays remembered at most (the newest).
pub const MAX_RELAYS: usize = 8;

/// Largest file read.
const MAX_FILE_LEN: u64 = 64 * 1024;

#[derive(Serialize, Deserialize, Default)]
struct FileFormat {
    relays: Vec<String>,
}

/// The relays remembered, as typed (multiaddrs).
#[derive(Debug)]
pub struct Relays {
    dir: PathBuf,
    path: PathBuf,
    relays: Vec<String>,
}

impl Relays {
    /// Reads `dir/relays.json`; a missing file is none.
    pub fn open(dir: &Path) -> Result<Relays, Error> {
        let path = dir.join(RELAYS_FILE);
        let relays = match json_file::read(&path, MAX_FILE_LEN)? {
            Some(bytes) => {
                let file: FileFormat =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                file.relays
            }
            None => Vec::new(),
        };
        Ok(Relays {
            dir: dir.to_owned(),
            path,
            relays,
        })
    }

    /// The relays remembered, oldest first.
    pub fn list(&self) -> &[String] {
        &self.relays
    }

    /// Remembers `given` (the newest last), writing the file if that
    /// changed it.
    pub fn remember(&mut self, given: &[String]) -> Result<(), Error> {
        let mut relays = self.relays.clone();
        for relay in given {
            relays.retain(|r| r != relay);
            relays.push(relay.clone());
        }
        let excess = relays.len().saturating_sub(MAX_RELAYS);
        relays.drain(..excess);
        if relays == self.relays {
            return Ok(());
        }
        self.relays = relays;
        let file = FileFormat {
            relays: self.relays.clone(),
        };
        json_file::write(&self.dir, &self.path, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_given_once_are_remembered_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut relays = Relays::open(dir.path()).unwrap();
        assert!(relays.list().is_empty());
        relays
            .remember(&["/ip4/203.0.113.7/tcp/4001/p2p/a".into()])
            .unwrap();
        relays
            .remember(&[
                "/ip4/203.0.113.8/tcp/4001/p2p/b".into(),
                "/ip4/203.0.113.7/tcp/4001/p2p/a".into(),
            ])
            .unwrap();
        let again = Relays::open(dir.path()).unwrap();
        assert_eq!(
            again.list(),
            [
                "/ip4/203.0.113.8/tcp/4001/p2p/b",
                "/ip4/203.0.113.7/tcp/4001/p2p/a"
            ]
        );
        let mut many = again;
        let lots: Vec<String> = (0..20)
            .map(|i| format!("/ip4/203.0.113.{i}/tcp/1/p2p/x"))
            .collect();
        many.remember(&lots).unwrap();
        assert_eq!(many.list().len(), MAX_RELAYS);
        assert_eq!(many.list().last().unwrap(), "/ip4/203.0.113.19/tcp/1/p2p/x");
    }
}
