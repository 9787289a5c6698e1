//! Our identity on disk, and telling peers apart by theirs.
//!
//! A peer is its Ed25519 key: the libp2p [`PeerId`] is derived from it, and
//! people compare the short [`fingerprint`] of it. So the key file is the
//! one thing here that must never be lost, replaced or leaked: it is created
//! once, atomically (a temporary file, private from its first byte, synced
//! and then linked into place, so a crash leaves either no key or a whole
//! one, and two first runs cannot end with different keys), and afterwards
//! only read. A key file that others can read, or that is not a valid key,
//! is refused with the fix to apply rather than repaired or replaced: either
//! would silently give the user a new identity that their peers would see
//! as a changed key.
//!
//! The key file is written as every private file of the data directory is
//! (see `private_file`, shared with [`store`](crate::store)).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;

use crate::chat::describe_io;
use crate::chat::safety::{fingerprint, normalize_fingerprint};
use crate::private_file::{create_private_dir, open_if_exists, write_private_file, Replace};

/// The name of the key file inside the data directory.
pub const KEY_FILE: &str = "identity.key";

/// The largest key file read. A protobuf-encoded Ed25519 keypair is 68
/// bytes; anything much larger is not a key, and is not read into memory.
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// The multihash code of an inline ("identity") hash: the peer ID holds the
/// encoded public key itself rather than a digest of it.
const IDENTITY_MULTIHASH_CODE: u64 = 0;

/// What went wrong loading or creating our identity. Every message names
/// the file, the cause and what to do about it. An I/O cause is said in the
/// message and kept in a `cause` field, not given as the `source()`, so a
/// printer that follows the chain of sources does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory did not exist and could not be created, or
    /// something that is not a directory is in its place.
    #[error(
        "could not create the data directory {}: {}; \
         check the path and that you can write to its parent",
        .path.display(), describe_io(.cause)
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// The key file exists but could not be read.
    #[error(
        "could not read the key file {}: {}; check that it is a readable file owned by you",
        .path.display(), describe_io(.cause)
    )]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// The key file can be read or written by other users. It is refused,
    /// not fixed: whoever could read it may have copied the key.
    #[error(
        "the key file {shown} is accessible by other users (mode {mode:04o}); \
         run `chmod 600 {shown}` and, if others may have read it, consider it compromised",
        shown = .path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a valid protobuf-encoded Ed25519 keypair. It is
    /// left as it is.
    #[error(
        "the key file {} is not a valid identity key ({reason}); it was left untouched: \
         restore it from a backup, or move it away to create a new identity \
         (peers will then see a new key)",
        .path.display()
    )]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A new key file could not be written.
    #[error(
        "could not write the key file {}: {}; \
         check that the data directory is writable and not full",
        .path.display(), describe_io(.cause)
    )]
    Write {
        /// The key file.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
}

/// Our own identity: the Ed25519 keypair that libp2p authenticates us with.
///
/// ```
/// use rust_p2p_chat::identity::Identity;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let first = Identity::load_or_create(dir.path())?;
/// let again = Identity::load_or_create(dir.path())?;
/// assert_eq!(first.peer_id(), again.peer_id());
/// assert_eq!(first.fingerprint().len(), 19);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Identity {
    keypair: Keypair,
    /// The public half, checked to be Ed25519 when the key was loaded.
    public_key: [u8; 32],
}

impl std::fmt::Debug for Identity {
    /// Shows who we are, never the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Identity {
    /// Loads the Ed25519 key from `dir/identity.key`, or creates it (and
    /// `dir`, mode 0700) on first run.
    ///
    /// A new key file is written with mode 0600 from its creation, synced,
    /// and linked into place; an existing file is never replaced. A key file
    /// that other users can access, or that is not a valid Ed25519 key, is
    /// an error, and the file is left as it is.
    pub fn load_or_create(dir: &Path) -> Result<Identity, Error> {
        create_private_dir(dir).map_err(|cause| Error::CreateDir {
            path: dir.to_owned(),
            cause,
        })?;
        let path = dir.join(KEY_FILE);
        if let Some(identity) = Self::load(&path)? {
            return Ok(identity);
        }
        let keypair = Keypair::generate_ed25519();
        let encoded = keypair.to_protobuf_encoding().map_err(|e| Error::Write {
            path: path.clone(),
            cause: io::Error::other(e.to_string()),
        })?;
        match write_private_file(&path, &encoded, Replace::Never) {
            Ok(()) => Self::from_keypair(keypair, &path),
            // Another run created the key between our look and our write:
            // theirs is the identity now.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Self::load(&path)?.ok_or_else(|| Error::Read {
                    path: path.clone(),
                    cause: io::Error::from(io::ErrorKind::NotFound),
                })
            }
            Err(cause) => Err(Error::Write { path, cause }),
        }
    }

    /// Reads the key file; `None` if there is none yet.
    fn load(path: &Path) -> Result<Option<Identity>, Error> {
        let read_error = |cause| Error::Read {
            path: path.to_owned(),
            cause,
        };
        let Some(file) = open_if_exists(path).map_err(read_error)? else {
            return Ok(None);
        };
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                reason: "it is not a regular file".into(),
            });
        }
        check_private(path, &metadata)?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_owned(),
            reason,
        };
        if bytes.is_empty() {
            return Err(corrupt("the file is empty".into()));
        }
        if bytes.len() as u64 > MAX_KEY_FILE_LEN {
            return Err(corrupt(format!(
                "it is larger than {MAX_KEY_FILE_LEN} bytes"
            )));
        }
        let keypair = Keypair::from_protobuf_encoding(&bytes)
            .map_err(|_| corrupt("not a protobuf-encoded Ed25519 keypair".into()))?;
        Self::from_keypair(keypair, path).map(Some)
    }

    fn from_keypair(keypair: Keypair, path: &Path) -> Result<Identity, Error> {
        let public_key = ed25519_bytes(keypair.public()).ok_or_else(|| Error::Corrupt {
            path: path.to_owned(),
            reason: "the key is not an Ed25519 key".into(),
        })?;
        Ok(Identity {
            keypair,
            public_key,
        })
    }

    /// The keypair, for libp2p to authenticate us with.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// Our peer ID, derived from the public key.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The 32 bytes of our Ed25519 public key, as fingerprints and safety
    /// numbers are computed from.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.public_key
    }

    /// Our fingerprint, `XXXX XXXX XXXX XXXX`, for people to compare.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key)
    }
}

/// The platform's data directory for this program (on Linux
/// `~/.local/share/rust-p2p-chat`); `None` when there is no home directory.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "rust-p2p-chat").map(|dirs| dirs.data_dir().to_owned())
}

/// The 32 Ed25519 public key bytes inside a peer ID, or `None` if the peer
/// ID does not hold an Ed25519 key.
///
/// An Ed25519 peer ID carries its whole public key (an inline multihash),
/// so a peer's fingerprint can be known from its ID alone.
///
/// ```
/// use libp2p::identity::Keypair;
/// use rust_p2p_chat::identity::peer_key_bytes;
///
/// let key = Keypair::generate_ed25519();
/// let bytes = peer_key_bytes(&key.public().to_peer_id()).unwrap();
/// assert_eq!(bytes, key.public().try_into_ed25519().unwrap().to_bytes());
/// ```
pub fn peer_key_bytes(peer: &PeerId) -> Option<[u8; 32]> {
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH_CODE {
        return None;
    }
    ed25519_bytes(PublicKey::try_decode_protobuf(multihash.digest()).ok()?)
}

/// The fingerprint of a peer, from its ID; `None` if the ID does not hold
/// an Ed25519 key.
pub fn peer_fingerprint(peer: &PeerId) -> Option<String> {
    peer_key_bytes(peer).map(|key| fingerprint(&key))
}

/// Whether `expected`, as a user typed it, names `peer`: either its peer ID
/// or its fingerprint, with or without spaces or colons, in any case.
///
/// ```
/// use libp2p::identity::Keypair;
/// use rust_p2p_chat::identity::{matches_expected, peer_fingerprint};
///
/// let peer = Keypair::generate_ed25519().public().to_peer_id();
/// let fp = peer_fingerprint(&peer).unwrap();
/// assert!(matches_expected(&peer.to_string(), &peer));
/// assert!(matches_expected(&fp.to_lowercase().replace(' ', ""), &peer));
/// assert!(!matches_expected("0000 0000 0000 0000", &peer));
/// ```
pub fn matches_expected(expected: &str, peer: &PeerId) -> bool {
    let expected = expected.trim();
    if expected.is_empty() {
        return false;
    }
    if let Ok(id) = expected.parse::<PeerId>() {
        return id == *peer;
    }
    peer_fingerprint(peer)
        .is_some_and(|fp| normalize_fingerprint(&fp) == normalize_fingerprint(expected))
}

/// The raw Ed25519 bytes of a public key, `None` for other key types.
fn ed25519_bytes(key: PublicKey) -> Option<[u8; 32]> {
    key.try_into_ed25519().ok().map(|key| key.to_bytes())
}

/// Refuses a key file that anyone but its owner can access.
#[cfg(unix)]
fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;

    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &fs::Metadata) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Writes a key file by hand, private, as a user restoring one would.
    fn write_key_file(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join(KEY_FILE);
        fs::write(&path, bytes).unwrap();
        #[cfg(unix)]
        set_mode(&path, 0o600);
        path
    }

    #[test]
    fn the_cause_is_said_once() {
        // `main` prints an error's chain of sources after its message; the
        // message already names the cause, in plain words.
        let denied = || io::Error::from_raw_os_error(13);
        let path = PathBuf::from("/x/identity.key");
        let errors = [
            Error::CreateDir {
                path: path.clone(),
                cause: denied(),
            },
            Error::Read {
                path: path.clone(),
                cause: denied(),
            },
            Error::Write {
                path,
                cause: denied(),
            },
        ];
        for error in errors {
            assert!(std::error::Error::source(&error).is_none(), "{error}");
            assert_eq!(error.to_string().matches("permission denied").count(), 1);
        }
    }

    #[test]
    fn key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = Identity::load_or_create(&data).unwrap();
        let bytes = fs::read(data.join(KEY_FILE)).unwrap();
        let second = Identity::load_or_create(&data).unwrap();
        assert_eq!(first.peer_id(), second.peer_id());
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(fs::read(data.join(KEY_FILE)).unwrap(), bytes);
    }

    #[test]
    fn different_dirs_give_different_identities() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Identity::load_or_create(a.path()).unwrap();
        let b = Identity::load_or_create(b.path()).unwrap();
        assert_ne!(a.peer_id(), b.peer_id());
    }

    #[test]
    fn only_the_key_file_is_left_in_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE]);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_0600_and_new_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested").join("data");
        Identity::load_or_create(&data).unwrap();
        assert_eq!(mode(&data.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("nested")), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_dir_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(mode(dir.path()), 0o755);
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
    }

    #[test]
    fn the_key_is_ed25519_and_matches_the_peer_id() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::load_or_create(dir.path()).unwrap();
        let public = identity.keypair().public();
        assert_eq!(public.to_peer_id(), identity.peer_id());
        assert_eq!(
            public.try_into_ed25519().unwrap().to_bytes(),
            identity.public_key_bytes()
        );
        assert_eq!(
            identity.fingerprint(),
            fingerprint(&identity.public_key_bytes())
        );
        assert_eq!(
            peer_key_bytes(&identity.peer_id()),
            Some(identity.public_key_bytes())
        );
    }

    #[test]
    fn a_key_written_by_libp2p_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let keypair = Keypair::generate_ed25519();
        write_key_file(dir.path(), &keypair.to_protobuf_encoding().unwrap());
        let identity = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(identity.peer_id(), keypair.public().to_peer_id());
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::load_or_create(dir.path()).unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains(&identity.peer_id().to_string()));
        let pair = identity.keypair().clone().try_into_ed25519().unwrap();
        let secret_hex: String = pair.to_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.to_lowercase().contains(&secret_hex));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        set_mode(&path, 0o644);
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::Permissions { mode: 0o644, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("644"), "{message}");
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
        assert_eq!(mode(&path), 0o644, "the mode must not be fixed silently");
    }

    #[cfg(unix)]
    #[test]
    fn any_group_or_other_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        for mode in [0o640, 0o620, 0o610, 0o604, 0o602, 0o601] {
            set_mode(&path, mode);
            let err = Identity::load_or_create(dir.path()).unwrap_err();
            assert!(matches!(err, Error::Permissions { .. }), "{mode:o}: {err}");
        }
        set_mode(&path, 0o400);
        Identity::load_or_create(dir.path()).unwrap();
    }

    #[test]
    fn a_garbage_key_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"this is not a key\n";
        let path = write_key_file(dir.path(), garbage);
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("left untouched"), "{message}");
        assert_eq!(fs::read(&path).unwrap(), garbage);
    }

    #[test]
    fn an_empty_key_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key_file(dir.path(), b"");
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if reason.contains("empty")),
            "{err:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_truncated_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let encoded = Keypair::generate_ed25519().to_protobuf_encoding().unwrap();
        write_key_file(dir.path(), &encoded[..encoded.len() - 1]);
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn a_key_file_over_the_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let at_limit = vec![0u8; MAX_KEY_FILE_LEN as usize];
        write_key_file(dir.path(), &at_limit);
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if !reason.contains("larger")),
            "{err:?}"
        );

        let over = vec![0u8; MAX_KEY_FILE_LEN as usize + 1];
        let path = write_key_file(dir.path(), &over);
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if reason.contains("larger")),
            "{err:?}"
        );
        assert_eq!(fs::read(&path).unwrap().len(), over.len());
    }

    #[test]
    fn a_directory_in_place_of_the_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(KEY_FILE)).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. } | Error::Read { .. }),
            "{err:?}"
        );
        assert!(dir.path().join(KEY_FILE).is_dir());
    }

    #[test]
    fn a_file_in_place_of_the_data_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::write(&data, b"").unwrap();
        let err = Identity::load_or_create(&data).unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&data.display().to_string()), "{message}");
        assert!(message.contains("not a directory"), "{message}");
        assert!(data.is_file());
    }

    #[test]
    fn a_data_dir_under_a_file_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = Identity::load_or_create(&file.join("data")).unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
        assert!(!err.to_string().contains("os error"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn an_unwritable_dir_is_a_write_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o500);
        let result = Identity::load_or_create(dir.path());
        set_mode(dir.path(), 0o700);
        // Root can write anyway; everyone else must get a clear error.
        if let Err(err) = result {
            assert!(matches!(err, Error::Write { .. }), "{err:?}");
            assert!(err.to_string().contains("permission denied"), "{err}");
        }
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        fs::write(&path, b"first").unwrap();
        let err = write_private_file(&path, b"second", Replace::Never).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no litter");
    }

    #[test]
    fn a_file_can_be_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        write_private_file(&path, b"first", Replace::Atomically).unwrap();
        write_private_file(&path, b"second", Replace::Atomically).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no litter");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn matches_expected_by_peer_id_or_fingerprint() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let other = Keypair::generate_ed25519().public().to_peer_id();
        let fp = peer_fingerprint(&peer).unwrap();

        assert!(matches_expected(&peer.to_string(), &peer));
        assert!(matches_expected(&format!("  {peer}\n"), &peer));
        assert!(matches_expected(&fp, &peer));
        assert!(matches_expected(&fp.replace(' ', ""), &peer));
        assert!(matches_expected(&fp.to_lowercase(), &peer));
        assert!(matches_expected(
            &fp.replace(' ', ":").to_lowercase(),
            &peer
        ));

        assert!(!matches_expected(&other.to_string(), &peer));
        assert!(!matches_expected(&peer_fingerprint(&other).unwrap(), &peer));
        assert!(!matches_expected("", &peer));
        assert!(!matches_expected("   ", &peer));
        assert!(
            !matches_expected(&fp[..14], &peer),
            "a prefix is not a match"
        );
        assert!(!matches_expected(&format!("{fp} 0"), &peer));
    }

    #[test]
    fn peers_without_an_ed25519_key_have_no_fingerprint() {
        // A random peer ID is an inline hash of 32 random bytes, not a key.
        let peer = PeerId::random();
        assert_eq!(peer_key_bytes(&peer), None);
        assert_eq!(peer_fingerprint(&peer), None);
        assert!(matches_expected(&peer.to_string(), &peer));
        assert!(!matches_expected("0000 0000 0000 0000", &peer));
    }

    #[test]
    fn default_data_dir_names_the_program() {
        if let Some(dir) = default_data_dir() {
            assert!(dir.to_string_lossy().contains("rust-p2p-chat"), "{dir:?}");
        }
    }
}
