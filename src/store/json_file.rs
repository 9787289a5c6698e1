//! The small JSON files of the data directory (known peers, room keys):
//! read with a bound on their size, written whole and private.

use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

use super::Error;
use crate::private_file::{create_private_dir, open_if_exists, write_private_file, Replace};

/// The file's bytes, `None` if it does not exist. Reads no more than
/// `max` bytes: a larger file is refused as not ours.
pub(super) fn read(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    let read_error = |cause| Error::Read {
        path: path.to_owned(),
        cause,
    };
    let Some(file) = open_if_exists(path).map_err(read_error)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            reason: format!("it is larger than {max} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Writes `value` as the file at `path` in `dir`, atomically and readable
/// by the user alone, creating `dir` (private) if needed.
pub(super) fn write(dir: &Path, path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let write_error = |cause| Error::Write {
        path: path.to_owned(),
        cause,
    };
    create_private_dir(dir).map_err(|cause| Error::CreateDir {
        path: dir.to_owned(),
        cause,
    })?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| write_error(io::Error::other(e)))?;
    write_private_file(path, &bytes, Replace::Atomically).map_err(write_error)
}
