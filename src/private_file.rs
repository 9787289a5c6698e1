//! Files and directories that only the user may read: the key file, the
//! history database, the known peers file and the lock all live in one
//! data directory under the same rules, and this module is those rules.
//!
//! It stands on its own, below both [`identity`](crate::identity) and
//! [`store`](crate::store), and imports nothing of ours: the store is an
//! engine and may not import `identity`, and `identity` (keys on disk) has
//! no business importing the store. Both import this instead.
//!
//! A private file is created private (0600 from its first byte, never
//! chmod-ed afterwards, so there is no moment when others may read it), and
//! a new directory is 0700. A file written whole goes through a temporary
//! file beside it, synced and then moved or linked into place, so a crash
//! leaves the old file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Options for opening a file of the data directory: one that is created
/// is readable and writable by the user alone.
pub(crate) fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates `path` as an empty file only the user can read, unless it exists.
pub(crate) fn create_private_file(path: &Path) -> io::Result<()> {
    match private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens a file of the data directory; `None` when it does not exist yet.
pub(crate) fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and any missing parents, private to the user (0700), or
/// checks that it is a directory if it exists. An existing directory's mode
/// is left as the user set it.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "it exists but is not a directory",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Whether [`write_private_file`] may replace a file already at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Replace it atomically: readers see the old or the new file whole.
    Atomically,
    /// Never: fail with [`io::ErrorKind::AlreadyExists`] instead.
    Never,
}

/// Writes `bytes` to `path` as a file only the user can read (0600 from its
/// creation), so that it appears whole or not at all: the bytes go to a
/// temporary file in the same directory, which is synced and then moved
/// into place.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8], replace: Replace) -> io::Result<()> {
    let (temp_path, temp) = create_temp_beside(path)?;
    let written = fill_and_place(temp, &temp_path, path, bytes, replace);
    if written.is_err() || replace == Replace::Never {
        // After a link the temporary name is a second name of the file;
        // after a failure it is litter. Neither is worth an error of its own.
        let _ = fs::remove_file(&temp_path);
    }
    written?;
    sync_parent(path);
    Ok(())
}

fn fill_and_place(
    mut temp: File,
    temp_path: &Path,
    path: &Path,
    bytes: &[u8],
    replace: Replace,
) -> io::Result<()> {
    temp.write_all(bytes)?;
    temp.sync_all()?;
    drop(temp);
    match replace {
        Replace::Atomically => fs::rename(temp_path, path),
        Replace::Never => link_new(temp_path, path),
    }
}

/// Gives the file at `temp` the name `path`, failing if `path` exists.
fn link_new(temp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        // Some file systems have no hard links. A rename cannot refuse to
        // replace, so look first: the window left is the one between two
        // system calls.
        Err(_) if path.symlink_metadata().is_ok() => {
            Err(io::Error::from(io::ErrorKind::AlreadyExists))
        }
        Err(_) => fs::rename(temp, path),
    }
}

/// Creates a new, private temporary file in the directory of `path`.
fn create_temp_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    const ATTEMPTS: u32 = 100;

    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last_error = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..ATTEMPTS {
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp_path = dir.join(format!(".{name}.tmp-{}-{count}", std::process::id()));
        match private_file_options()
            .write(true)
            .create_new(true)
            .open(&temp_path)
        {
            Ok(file) => return Ok((temp_path, file)),
            // A stale file of an earlier run under the same process ID.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_error)
}

/// Syncs the directory holding `path`, so the new name survives a crash.
/// Best effort: the data is already safe in the file, and some systems
/// cannot sync a directory.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
