//! One running program per data directory.
//!
//! Two programs writing one history would each number their own lines from
//! the same persistent session and acknowledge messages the other stored,
//! so the second one is refused at start instead. The guard is an exclusive
//! advisory lock on the file `lock` in the data directory, taken with
//! [`File::try_lock`]: the operating system drops it when the holder exits,
//! however it exits (a crash or `kill -9` included), so there is no stale
//! lock to clean up by hand. The process ID written into the file is only a
//! hint for a person looking; the lock, not the file's contents, decides.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Error;
use crate::private_file::{create_private_dir, private_file_options};

/// The name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// Proof that this process is the only one using a data directory. The
/// directory stays locked until this is dropped.
///
/// ```
/// use rust_p2p_chat::store::{DirLock, Error};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let lock = DirLock::acquire(dir.path())?;
/// assert!(matches!(DirLock::acquire(dir.path()), Err(Error::Locked { .. })));
/// drop(lock);
/// DirLock::acquire(dir.path())?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DirLock {
    /// Held open for the lock's sake; closing it releases the lock.
    _file: File,
    path: PathBuf,
}

/// Profiles of a data directory in use that [`DirLock::acquire_profile`]
/// tries, at most (numbered from 2: the data directory itself is the
/// first).
pub const MAX_PROFILES: u32 = 16;

/// Where the profiles of a data directory live, inside it.
pub const PROFILES_DIR: &str = "profiles";

impl DirLock {
    /// Locks `dir` (creating it, private to the user, if it is missing) for
    /// this process, or says that another process has it.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another process holds the directory;
    /// [`Error::CreateDir`] or [`Error::Lock`] when the directory or the
    /// lock file cannot be made or locked.
    pub fn acquire(dir: &Path) -> Result<DirLock, Error> {
        create_private_dir(dir).map_err(|cause| Error::CreateDir {
            path: dir.to_owned(),
            cause,
        })?;
        let path = dir.join(LOCK_FILE);
        let lock_error = |cause| Error::Lock {
            path: path.clone(),
            cause,
        };
        // Not truncated on open: until the lock is ours, the PID in the
        // file belongs to whoever holds it.
        let mut file = private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_owned(),
                })
            }
            Err(TryLockError::Error(source)) => return Err(lock_error(source)),
        }
        // The PID is informational only, so failing to write it is not
        // worth refusing to start over.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DirLock { _file: file, path })
    }

    /// Locks `base`, or when another program holds it, the first free
    /// profile `base/profiles/N` (N from 2 to [`MAX_PROFILES`]): so two
    /// chats started on one machine with no flags each get an identity and
    /// a history of their own. Returns the lock, the directory locked and,
    /// for a profile, its number.
    ///
    /// # Errors
    ///
    /// As [`DirLock::acquire`]; [`Error::Locked`] (for `base`) when every
    /// profile is in use too.
    pub fn acquire_profile(base: &Path) -> Result<(DirLock, PathBuf, Option<u32>), Error> {
        match DirLock::acquire(base) {
            Ok(lock) => return Ok((lock, base.to_owned(), None)),
            Err(Error::Locked { .. }) => {}
            Err(e) => return Err(e),
        }
        for n in 2..=MAX_PROFILES {
            let dir = base.join(PROFILES_DIR).join(n.to_string());
            match DirLock::acquire(&dir) {
                Ok(lock) => return Ok((lock, dir, Some(n))),
                Err(Error::Locked { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Locked {
            path: base.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));

        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Locked { path } if path == dir.path()),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("already running"), "{message}");
        assert!(message.contains("--data-dir"), "{message}");

        // The refused attempt did not disturb the holder's PID.
        let pid = std::process::id().to_string();
        let contents = fs::read_to_string(first.path()).unwrap();
        assert_eq!(contents.trim(), pid);

        drop(first);
        let again = DirLock::acquire(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(again.path()).unwrap().trim(), pid);
    }

    #[test]
    fn a_directory_in_use_hands_out_the_next_free_profile() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("data");
        let (_first, first_dir, first_n) = DirLock::acquire_profile(&base).unwrap();
        assert_eq!((first_dir.as_path(), first_n), (base.as_path(), None));
        let (second, second_dir, second_n) = DirLock::acquire_profile(&base).unwrap();
        assert_eq!(second_n, Some(2));
        assert_eq!(second_dir, base.join("profiles").join("2"));
        let (_third, _, third_n) = DirLock::acquire_profile(&base).unwrap();
        assert_eq!(third_n, Some(3));
        // A profile let go is handed out again.
        drop(second);
        let (_again, _, again_n) = DirLock::acquire_profile(&base).unwrap();
        assert_eq!(again_n, Some(2));
        // An explicit directory in use is still refused.
        assert!(matches!(DirLock::acquire(&base), Err(Error::Locked { .. })));
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a").join("b");
        let _lock = DirLock::acquire(&data).unwrap();
        assert!(data.join(LOCK_FILE).is_file());
    }

    #[test]
    fn an_old_pid_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), "999999999999\nleft over\n").unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        let contents = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(contents, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::write(&data, b"not a directory").unwrap();
        let err = DirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");

        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(LOCK_FILE)).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Lock { .. }), "{err:?}");
        let message = err.to_string();
        let path = dir.path().join(LOCK_FILE).display().to_string();
        assert!(message.contains(&path), "{message}");
    }
}
