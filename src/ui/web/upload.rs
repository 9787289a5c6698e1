//! Files picked in the page: a browser cannot hand over a path, so the
//! page sends the file's bytes (`POST /upload`), which are written to the
//! data directory's `uploads` folder and then offered as a file on disk
//! is (`/send`).
//!
//! The request proves itself as the WebSocket does: the token (in the
//! `Authorization` header, never in a URL), the page's own `Origin`, and
//! the `Host` every request is checked for. The body is written as it
//! arrives, never held whole, and cut off past `--max-file`. Each upload
//! gets a folder of its own (0700, a random name) so the offer carries
//! the file's own name; the folder is kept a week, for the receiver to
//! resume, and older ones are removed when the next `--web` starts.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::StatusCode;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::chat::transfer::safe_name;

/// How long an upload is kept for its transfer to finish or resume.
pub const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Uploads written at once, at most.
pub const AT_ONCE: usize = 2;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Over the limit.
    #[error("the file is over the {limit}-byte limit (--max-file)")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The browser stopped sending.
    #[error("the upload broke off: {0}")]
    BrokenOff(String),
    /// The disk refused.
    #[error("the file could not be written: {0}")]
    Disk(#[from] io::Error),
}

impl UploadError {
    /// The status a page is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::BrokenOff(_) => StatusCode::BAD_REQUEST,
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Disk(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

/// Writes `body` as a file called (safely) `name` in a new folder of
/// `uploads`, at most `limit` bytes; its path.
///
/// # Errors
///
/// See [`UploadError`]; nothing is left behind on any of them.
pub async fn receive(
    uploads: &Path,
    name: &str,
    body: Body,
    limit: u64,
) -> Result<PathBuf, UploadError> {
    let name = safe_name(name);
    let mut folder = [0u8; 8];
    getrandom::fill(&mut folder).map_err(io::Error::other)?;
    let dir = uploads.join(data_encoding::HEXLOWER.encode(&folder));
    crate::private_file::create_private_dir(&dir)?;
    let path = dir.join(&name);
    let written = write(&path, body, limit).await;
    if written.is_err() {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    written.map(|()| path)
}

async fn write(path: &Path, body: Body, limit: u64) -> Result<(), UploadError> {
    let file = crate::private_file::private_file_options()
        .write(true)
        .create_new(true)
        .open(path)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UploadError::BrokenOff(e.to_string()))?;
        total = total.saturating_add(chunk.len() as u64);
        if total > limit {
            return Err(UploadError::TooLarge { limit });
        }
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

/// Removes uploads older than [`KEEP`] (best effort: what cannot be read
/// or removed stays).
pub fn forget_old(uploads: &Path) {
    let Ok(entries) = std::fs::read_dir(uploads) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > KEEP);
        // Only the folders this module makes: 16 hex digits.
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if old && ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn an_upload_lands_under_a_safe_name_and_one_too_large_leaves_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = receive(dir.path(), "../../etc/pass wd", Body::from("hello"), 10)
            .await
            .expect("written");
        assert!(path.starts_with(dir.path()));
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("pass wd"));
        assert_eq!(std::fs::read(&path).expect("read"), b"hello");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("there")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let refused = receive(dir.path(), "big.bin", Body::from(vec![0u8; 11]), 10).await;
        assert!(matches!(refused, Err(UploadError::TooLarge { limit: 10 })));
        // Only the first upload's folder is left.
        assert_eq!(std::fs::read_dir(dir.path()).expect("listed").count(), 1);
        forget_old(dir.path());
        assert!(path.exists(), "a new upload is kept");
    }
}
