//! The disk side of receiving files.
//!
//! File names and sizes arrive from a peer we must assume is hostile, so this
//! module is shaped to leave that peer no say over *where* anything lands:
//!
//! * Every file lives directly in one folder. Operations go through a file
//!   descriptor for that folder and a single path component, so no `..`, no
//!   absolute path and no intermediate symlink can steer a write elsewhere.
//! * Nothing is followed and nothing is overwritten. Part files are created
//!   with `O_EXCL|O_NOFOLLOW`, reopened with `O_NOFOLLOW`, and moved to their
//!   final name with `RENAME_NOREPLACE` (or `link`, which also never
//!   replaces). Anything already at a name, a planted symlink included, is
//!   left alone and we pick another name instead.
//! * Owner-only: a folder we create is 0700 and part files are 0600, so other
//!   local users can neither read half-received files nor plant their own.
//!
//! The folder itself may be a symlink: the local user chose it, not the peer.
//! Likewise a file being *sent* is opened following links, because the local
//! user picked it.
#![cfg(unix)]

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// How many alternative names [`Downloads::finish`] tries before giving up.
const MAX_ALTERNATIVES: u32 = 999;

/// Why a file could not be received into, or sent from, the disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The download folder is not a folder.
    #[error("{}: not a directory; choose another download folder", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file to send is not a plain file.
    #[error("{}: not a regular file", path.display())]
    NotARegularFile {
        /// The path.
        path: PathBuf,
    },
    /// Something already at a part file's name (a planted link, say).
    #[error("{}: a file is in the way (not following a link); move it away and retry", path.display())]
    InTheWay {
        /// The path.
        path: PathBuf,
    },
    /// Every alternative name is taken.
    #[error("{}: no free name after {MAX_ALTERNATIVES} tries; tidy the download folder", path.display())]
    NoFreeName {
        /// The name asked for, in the folder.
        path: PathBuf,
    },
    /// A file being sent changed after it was offered.
    #[error("{}: changed since it was offered; offer it again", path.display())]
    Changed {
        /// The path.
        path: PathBuf,
    },
    /// A part file is not the size its transfer says.
    #[error("{}: is {actual} bytes, expected {expected}; the transfer must start over", path.display())]
    WrongSize {
        /// The path.
        path: PathBuf,
        /// Its size.
        actual: u64,
        /// The size expected.
        expected: u64,
    },
    /// A part file belongs to someone else.
    #[error("{}: owned by another user; not touching it", path.display())]
    NotOwned {
        /// The path.
        path: PathBuf,
    },
    /// A part file recorded outside the download folder.
    #[error("{}: not directly inside the download folder {}", path.display(), dir.display())]
    OutsideFolder {
        /// The path.
        path: PathBuf,
        /// The folder.
        dir: PathBuf,
    },
    /// A name that is not one plain path component.
    #[error("{name:?}: not a plain file name")]
    BadName {
        /// The name.
        name: String,
    },
    /// The system refused.
    #[error("{}: {}", path.display(), crate::chat::describe_io(source))]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl DiskError {
    fn io(path: &Path, source: impl Into<io::Error>) -> DiskError {
        DiskError::Io {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// The folder files are received into, made owner-only (0700) if it does not exist.
#[derive(Debug, Clone)]
pub struct Downloads {
    dir: PathBuf,
}

impl Downloads {
    /// Opens the download folder, creating it (and missing parents) if needed.
    ///
    /// Only a folder we create is forced to 0700: an existing one was set up
    /// by the user, whose choice of permissions we respect.
    pub fn open(dir: &Path) -> Result<Downloads, DiskError> {
        // Create before checking rather than check-then-create, so we know
        // for certain whether the folder is ours to chmod.
        let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|e| DiskError::io(parent, e))?;
                }
                match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                    Ok(()) => true,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(DiskError::io(dir, e)),
                }
            }
            Err(e) => return Err(DiskError::io(dir, e)),
        };
        let downloads = Downloads {
            dir: dir.to_owned(),
        };
        if created {
            // The umask may have stripped bits from 0700; set it exactly.
            // Through a NOFOLLOW handle, in case the name was swapped for a
            // link in the instant since we made it.
            let fd = rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| DiskError::io(dir, e))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
                .map_err(|e| DiskError::io(dir, e))?;
        } else {
            // Follows a symlink on purpose: pointing the folder elsewhere is
            // something users do.
            let meta = std::fs::metadata(dir).map_err(|e| DiskError::io(dir, e))?;
            if !meta.is_dir() {
                return Err(DiskError::NotADirectory {
                    path: dir.to_owned(),
                });
            }
        }
        Ok(downloads)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes free for us in the folder (statvfs `f_bavail * f_frsize`).
    ///
    /// `f_bavail` rather than `f_bfree`: blocks reserved for root are not
    /// ours to promise to a peer.
    pub fn free_bytes(&self) -> Result<u64, DiskError> {
        let st = rustix::fs::fstatvfs(self.dir_fd()?).map_err(|e| DiskError::io(&self.dir, e))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// A new part file for transfer `id`, mode 0600, `size` bytes long.
    ///
    /// The length is set with `set_len`, so space is claimed lazily and the
    /// file may be sparse; check [`Downloads::free_bytes`] before accepting.
    /// Fails with [`DiskError::InTheWay`] if anything at all exists at the
    /// name, a planted symlink included.
    pub fn create_part(&self, id: u64, size: u64) -> Result<(File, PathBuf), DiskError> {
        let name = part_name(id);
        let path = self.dir.join(&name);
        let dir = self.dir_fd()?;
        let fd = rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::EXIST | Errno::LOOP => DiskError::InTheWay { path: path.clone() },
            e => DiskError::io(&path, e),
        })?;
        let file = File::from(fd);
        // Everything past the create is undone on failure: the file is ours,
        // and a half-made part file would only block the next attempt.
        let setup = || -> io::Result<()> {
            // The umask can only remove bits, but an odd one (say 0277) would
            // leave a file we cannot reopen for writing on resume.
            rustix::fs::fchmod(&file, Mode::from_raw_mode(0o600))?;
            file.set_len(size)
        };
        if let Err(e) = setup() {
            let _ = rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty());
            return Err(DiskError::io(&path, e));
        }
        Ok((file, path))
    }

    /// Removes transfer `id`'s part file, if there is one: the transfer
    /// ended without a file.
    pub fn remove_part(&self, id: u64) -> Result<(), DiskError> {
        let name = part_name(id);
        let dir = self.dir_fd()?;
        match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(DiskError::io(&self.dir.join(name), e)),
        }
    }

    /// Reopens an existing part file for a resumed transfer.
    ///
    /// Refuses unless it is a regular file directly in the folder, owned by
    /// us, of exactly `size` bytes: anything else means the file is not the
    /// one we left there, and writing into it could damage something else.
    pub fn reopen_part(&self, path: &Path, size: u64) -> Result<File, DiskError> {
        let name = self.name_in_folder(path)?;
        let dir = self.dir_fd()?;
        // NONBLOCK so a FIFO or device planted at the name cannot hang the
        // open; it is cleared again once we know this is a regular file.
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => DiskError::InTheWay {
                path: path.to_owned(),
            },
            Errno::ISDIR => DiskError::NotARegularFile {
                path: path.to_owned(),
            },
            e => DiskError::io(path, e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| DiskError::io(path, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(DiskError::NotARegularFile {
                path: path.to_owned(),
            });
        }
        if st.st_uid != our_uid().map_err(|e| DiskError::io(path, e))? {
            return Err(DiskError::NotOwned {
                path: path.to_owned(),
            });
        }
        let actual = u64::try_from(st.st_size).unwrap_or(0);
        if actual != size {
            return Err(DiskError::WrongSize {
                path: path.to_owned(),
                actual,
                expected: size,
            });
        }
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| DiskError::io(path, e))?;
        rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)
            .map_err(|e| DiskError::io(path, e))?;
        Ok(File::from(fd))
    }

    /// Moves a complete part file to its final name in the folder, never
    /// replacing anything, and returns the final path.
    ///
    /// Tries `name`, then `alternatives(name, n)` for n = 1..=999. Flush the
    /// data first (`File::sync_all`) if it must survive a crash.
    pub fn finish(
        &self,
        part: &Path,
        name: &str,
        alternatives: impl Fn(&str, u32) -> String,
    ) -> Result<PathBuf, DiskError> {
        self.finish_with(part, name, alternatives, true)
    }

    /// [`Downloads::finish`], with the rename path switchable so tests can
    /// reach the link fallback on filesystems that do support NOREPLACE.
    fn finish_with(
        &self,
        part: &Path,
        name: &str,
        alternatives: impl Fn(&str, u32) -> String,
        mut use_rename: bool,
    ) -> Result<PathBuf, DiskError> {
        // The caller sanitised `name`, but a slip there must not become a
        // path traversal here.
        check_name(name)?;
        let part_name = self.name_in_folder(part)?;
        let dir = self.dir_fd()?;
        for n in 0..=MAX_ALTERNATIVES {
            let owned;
            let candidate = if n == 0 {
                name
            } else {
                owned = alternatives(name, n);
                check_name(&owned)?;
                owned.as_str()
            };
            if use_rename {
                match rustix::fs::renameat_with(
                    &dir,
                    part_name,
                    &dir,
                    candidate,
                    RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => return Ok(self.dir.join(candidate)),
                    Err(Errno::EXIST) => continue,
                    // Filesystems without RENAME_NOREPLACE (some network and
                    // FUSE ones) say EINVAL; kernels without renameat2, ENOSYS.
                    // Once told, stop asking for the remaining candidates.
                    Err(Errno::INVAL | Errno::NOSYS) => use_rename = false,
                    Err(e) => return Err(DiskError::io(part, e)),
                }
            }
            // link(2) never replaces an existing name and never follows a
            // symlink at the target, which is exactly the guarantee we lost.
            match rustix::fs::linkat(&dir, part_name, &dir, candidate, AtFlags::empty()) {
                Ok(()) => {
                    // The file is delivered at this point. Failing now would
                    // make the caller retry and deliver it twice, so a part
                    // name we could not remove is left as a harmless extra
                    // link to the same (hidden) file.
                    let _ = rustix::fs::unlinkat(&dir, part_name, AtFlags::empty());
                    return Ok(self.dir.join(candidate));
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(DiskError::io(part, e)),
            }
        }
        Err(DiskError::NoFreeName {
            path: self.dir.join(name),
        })
    }

    /// A fresh handle on the folder for each operation, so a part file and
    /// its final name are always resolved against the same directory.
    fn dir_fd(&self) -> Result<OwnedFd, DiskError> {
        rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR => DiskError::NotADirectory {
                path: self.dir.clone(),
            },
            e => DiskError::io(&self.dir, e),
        })
    }

    /// The single file-name component of `path`, if it names something
    /// directly in the folder.
    fn name_in_folder<'a>(&self, path: &'a Path) -> Result<&'a OsStr, DiskError> {
        let outside = || DiskError::OutsideFolder {
            path: path.to_owned(),
            dir: self.dir.clone(),
        };
        match (path.parent(), path.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) if parent == self.dir => Ok(name),
            _ => Err(outside()),
        }
    }
}

/// Writes all of `data` at `offset`.
pub fn write_at(file: &File, offset: u64, data: &[u8]) -> Result<(), DiskError> {
    // std's write_all_at already loops over short writes and EINTR.
    file.write_all_at(data, offset)
        .map_err(|e| DiskError::io(Path::new("<part file>"), e))
}

/// Starts writing `len` bytes of `file` from `offset` to the disk without
/// waiting for it, so that the sync before a received file takes its name
/// waits only for the last of it instead of the whole file. Best effort:
/// where it cannot be done, the final sync does it all.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: sync_file_range takes the descriptor of a file we hold
        // open for the whole call, and plain integers; it touches no
        // memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Bytes free for us where a download folder `dir` is or would be made
/// (on the nearest folder above it that exists): for answering an offer
/// without making the folder before anything is accepted.
pub fn free_bytes_for(dir: &Path) -> Result<u64, DiskError> {
    let existing = dir
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.is_dir())
        .unwrap_or(Path::new("."));
    let st = rustix::fs::statvfs(existing).map_err(|e| DiskError::io(existing, e))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
    file.read_exact_at(buf, offset)
        .map_err(|e| DiskError::io(Path::new("<open file>"), e))
}

/// Opens a file to send; returns it, its size and its mtime (ns since the epoch).
///
/// Symlinks are followed: the local user chose this file. It must be a
/// regular file, since a FIFO or device has no stable size to offer.
pub fn open_source(path: &Path) -> Result<(File, u64, i128), DiskError> {
    // NONBLOCK so opening a FIFO cannot hang waiting for a writer.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| DiskError::io(path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| DiskError::io(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(DiskError::NotARegularFile {
            path: path.to_owned(),
        });
    }
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| DiskError::io(path, e))?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK).map_err(|e| DiskError::io(path, e))?;
    let (size, mtime) = stamp(&st);
    Ok((File::from(fd), size, mtime))
}

/// Size and mtime of an already open source again, so a resumed send can
/// tell the file changed (compare with what [`open_source`] returned, and
/// report [`DiskError::Changed`] if they differ).
pub fn source_stamp(file: &File) -> Result<(u64, i128), DiskError> {
    let st = rustix::fs::fstat(file).map_err(|e| DiskError::io(Path::new("<source file>"), e))?;
    Ok(stamp(&st))
}

fn stamp(st: &rustix::fs::Stat) -> (u64, i128) {
    let size = u64::try_from(st.st_size).unwrap_or(0);
    // Field types differ between architectures; i128 holds every one of
    // them, and ns since the epoch, without overflow.
    let mtime = i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec);
    (size, mtime)
}

/// Part files are hidden (leading dot) and carry the transfer id, so a
/// resumed transfer can find its own and nobody mistakes one for a finished
/// download.
fn part_name(id: u64) -> String {
    format!(".rust-p2p-chat-{id:016x}.part")
}

fn check_name(name: &str) -> Result<(), DiskError> {
    // NUL matters too: rustix reports it as EINVAL, which `finish` would
    // otherwise mistake for "NOREPLACE unsupported".
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(DiskError::BadName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The owner a part file we created has: our effective uid.
fn our_uid() -> io::Result<u32> {
    Ok(rustix::process::geteuid().as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn alt(name: &str, n: u32) -> String {
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
            _ => format!("{name} ({n})"),
        }
    }

    fn setup() -> (tempfile::TempDir, Downloads) {
        let tmp = tempfile::tempdir().unwrap();
        let d = Downloads::open(&tmp.path().join("dl")).unwrap();
        (tmp, d)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn open_creates_owner_only_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/dl");
        let d = Downloads::open(&dir).unwrap();
        assert_eq!(d.dir(), dir);
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o700);
        // Existing folders are accepted as they are.
        Downloads::open(&dir).unwrap();
    }

    #[test]
    fn open_accepts_symlinked_dir_rejects_file() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        symlink(&real, &link).unwrap();
        Downloads::open(&link).unwrap();

        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            Downloads::open(&file),
            Err(DiskError::NotADirectory { .. })
        ));
    }

    #[test]
    fn free_bytes_positive() {
        let (_tmp, d) = setup();
        assert!(d.free_bytes().unwrap() > 0);
    }

    #[test]
    fn create_part_mode_and_size() {
        let (_tmp, d) = setup();
        let (_f, path) = d.create_part(0x0123abcd, 12345).unwrap();
        assert_eq!(
            path.file_name().unwrap(),
            ".rust-p2p-chat-000000000123abcd.part"
        );
        assert_eq!(path.parent().unwrap(), d.dir());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 12345);
        // A second create for the same id must not reuse the file.
        assert!(matches!(
            d.create_part(0x0123abcd, 1),
            Err(DiskError::InTheWay { .. })
        ));
    }

    #[test]
    fn create_part_refuses_planted_symlink() {
        let (tmp, d) = setup();
        let target = tmp.path().join("victim");
        std::fs::write(&target, b"precious").unwrap();
        symlink(&target, d.dir().join(part_name(7))).unwrap();
        assert!(matches!(
            d.create_part(7, 100),
            Err(DiskError::InTheWay { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A dangling link must not be followed into creating its target.
        let missing = tmp.path().join("missing");
        symlink(&missing, d.dir().join(part_name(8))).unwrap();
        assert!(d.create_part(8, 100).is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn reopen_part_happy_path() {
        let (_tmp, d) = setup();
        let (f, path) = d.create_part(1, 10).unwrap();
        write_at(&f, 3, b"abc").unwrap();
        drop(f);
        let f = d.reopen_part(&path, 10).unwrap();
        let mut buf = [0u8; 3];
        read_at(&f, 3, &mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        write_at(&f, 0, b"z").unwrap();
    }

    #[test]
    fn reopen_part_refuses_symlink_dir_wrong_size_outside() {
        let (tmp, d) = setup();
        let target = tmp.path().join("victim");
        std::fs::write(&target, b"0123456789").unwrap();
        let link = d.dir().join("link.part");
        symlink(&target, &link).unwrap();
        assert!(matches!(
            d.reopen_part(&link, 10),
            Err(DiskError::InTheWay { .. })
        ));

        let sub = d.dir().join("sub.part");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            d.reopen_part(&sub, 0),
            Err(DiskError::NotARegularFile { .. })
        ));

        let (_f, path) = d.create_part(2, 10).unwrap();
        assert!(matches!(
            d.reopen_part(&path, 11),
            Err(DiskError::WrongSize {
                actual: 10,
                expected: 11,
                ..
            })
        ));

        assert!(matches!(
            d.reopen_part(&target, 10),
            Err(DiskError::OutsideFolder { .. })
        ));
        let sneaky = d.dir().join("..").join("victim");
        assert!(matches!(
            d.reopen_part(&sneaky, 10),
            Err(DiskError::OutsideFolder { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"0123456789");
    }

    #[test]
    fn finish_free_name() {
        let (_tmp, d) = setup();
        let (f, part) = d.create_part(3, 2).unwrap();
        write_at(&f, 0, b"hi").unwrap();
        let done = d.finish(&part, "hello.txt", alt).unwrap();
        assert_eq!(done, d.dir().join("hello.txt"));
        assert_eq!(std::fs::read(&done).unwrap(), b"hi");
        assert!(!part.exists());
    }

    #[test]
    fn finish_existing_name_gets_alternative() {
        let (_tmp, d) = setup();
        std::fs::write(d.dir().join("a.txt"), b"old").unwrap();
        std::fs::write(d.dir().join("a (1).txt"), b"old1").unwrap();
        let (f, part) = d.create_part(4, 3).unwrap();
        write_at(&f, 0, b"new").unwrap();
        let done = d.finish(&part, "a.txt", alt).unwrap();
        assert_eq!(done, d.dir().join("a (2).txt"));
        assert_eq!(std::fs::read(&done).unwrap(), b"new");
        assert_eq!(std::fs::read(d.dir().join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(d.dir().join("a (1).txt")).unwrap(), b"old1");
    }

    #[test]
    fn finish_does_not_follow_planted_symlink() {
        let (tmp, d) = setup();
        let target = tmp.path().join("victim");
        std::fs::write(&target, b"precious").unwrap();
        let link = d.dir().join("x.bin");
        symlink(&target, &link).unwrap();
        let missing = tmp.path().join("missing");
        symlink(&missing, d.dir().join("x (1).bin")).unwrap();

        let (f, part) = d.create_part(5, 3).unwrap();
        write_at(&f, 0, b"new").unwrap();
        let done = d.finish(&part, "x.bin", alt).unwrap();
        assert_eq!(done, d.dir().join("x (2).bin"));
        assert_eq!(std::fs::read(&done).unwrap(), b"new");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!missing.exists());
    }

    #[test]
    fn finish_link_fallback_never_replaces() {
        let (tmp, d) = setup();
        let target = tmp.path().join("victim");
        std::fs::write(&target, b"precious").unwrap();
        symlink(&target, d.dir().join("f.txt")).unwrap();
        std::fs::write(d.dir().join("f (1).txt"), b"old").unwrap();
        let (f, part) = d.create_part(11, 3).unwrap();
        write_at(&f, 0, b"new").unwrap();
        let done = d.finish_with(&part, "f.txt", alt, false).unwrap();
        assert_eq!(done, d.dir().join("f (2).txt"));
        assert_eq!(std::fs::read(&done).unwrap(), b"new");
        assert!(!part.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(std::fs::read(d.dir().join("f (1).txt")).unwrap(), b"old");
    }

    #[test]
    fn finish_rejects_bad_names() {
        let (_tmp, d) = setup();
        let (_f, part) = d.create_part(6, 1).unwrap();
        for bad in ["../x", "a/b", ".", "..", "", "a\0b"] {
            assert!(
                matches!(d.finish(&part, bad, alt), Err(DiskError::BadName { .. })),
                "{bad:?}"
            );
        }
        // A careless `alternatives` is checked too.
        std::fs::write(d.dir().join("y"), b"").unwrap();
        assert!(matches!(
            d.finish(&part, "y", |_, _| "../y".to_owned()),
            Err(DiskError::BadName { .. })
        ));
        assert!(part.exists());
    }

    #[test]
    fn finish_gives_up_after_999() {
        let (_tmp, d) = setup();
        std::fs::write(d.dir().join("full"), b"").unwrap();
        std::fs::write(d.dir().join("full-alt"), b"").unwrap();
        let (_f, part) = d.create_part(9, 1).unwrap();
        assert!(matches!(
            d.finish(&part, "full", |_, _| "full-alt".to_owned()),
            Err(DiskError::NoFreeName { .. })
        ));
        assert!(part.exists());
    }

    #[test]
    fn write_read_round_trip() {
        let (_tmp, d) = setup();
        let (f, _path) = d.create_part(10, 1 << 20).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        write_at(&f, 500_000, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        read_at(&f, 500_000, &mut back).unwrap();
        assert_eq!(back, data);
        let mut past = [0u8; 10];
        assert!(read_at(&f, (1 << 20) - 5, &mut past).is_err());
    }

    #[test]
    fn open_source_regular_and_stamp() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s");
        std::fs::write(&p, b"12345").unwrap();
        let (f, size, mtime) = open_source(&p).unwrap();
        assert_eq!(size, 5);
        assert_eq!(source_stamp(&f).unwrap(), (5, mtime));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all_at(b"6", 5)
            .unwrap();
        assert_ne!(source_stamp(&f).unwrap().0, size);
    }

    #[test]
    fn open_source_refuses_directory() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_source(tmp.path()),
            Err(DiskError::NotARegularFile { .. })
        ));
    }
}
