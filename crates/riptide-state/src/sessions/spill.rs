//! Spill files: `<spill_dir>/<tenant>/<id>.session`, holding exactly the bytes of the
//! store record (see `codec`), so a sealed tenant's files are sealed too.
//!
//! Writes are atomic: a temporary file in the same directory (mode `0600`), written and
//! fsynced ([`write_temp`]), renamed over the final name ([`publish`]), then the
//! directory fsynced ([`sync_dir`]). Directories are created with mode `0700`; files and
//! directories are made by [`riptide_store::private_fs`], like everything else RipTide writes. Tenant
//! ids and session ids are validated before they get here (`[a-z0-9_-]` and
//! `[A-Za-z0-9_-]`), so a path never leaves its directory.
//!
//! The functions are blocking; [`SpillDir::run`] moves them off the async threads.
//! Operations on final file names of one manager are serialized by [`SpillDir::io`],
//! so "check the spill index, then touch the file" is atomic with respect to other file
//! operations. The fsyncs happen outside it: a temporary file is nobody else's, and the
//! directory fsync only makes a rename durable. So whoever waits for the lock (a request
//! loading a session back, or removing a stale file) waits for a rename, an unlink or a
//! read, never for an fsync.

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::codec::MAX_ENCODED_LEN;
use super::error::{SessionError, SessionResult};
use super::memory::SessionKey;
use riptide_store::private_fs;

/// Extension of spill files.
pub(crate) const EXTENSION: &str = "session";

/// The spill directory of one manager.
pub(crate) struct SpillDir {
    root: PathBuf,
    /// Serializes file operations (see the module docs).
    pub io: tokio::sync::Mutex<()>,
}

impl SpillDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            io: tokio::sync::Mutex::new(()),
        }
    }

    /// The root directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`.
    pub(crate) fn path(&self, key: &SessionKey) -> PathBuf {
        self.root
            .join(key.tenant.as_str())
            .join(format!("{}.{EXTENSION}", key.id))
    }

    /// Runs blocking file work on tokio's blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        path: PathBuf,
        work: impl FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
    ) -> SessionResult<T> {
        let shown = path.clone();
        tokio::task::spawn_blocking(move || work(&path))
            .await
            .map_err(|e| SessionError::Io {
                path: shown.clone(),
                source: std::io::Error::other(format!("file task failed: {e}")),
            })?
            .map_err(|source| SessionError::Io {
                path: shown,
                source,
            })
    }
}

/// Writes `bytes` to `path` atomically (see the module docs); returns the bytes written.
#[cfg(test)]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<u64> {
    let tmp = write_temp(path, bytes)?;
    publish(&tmp, path)?;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("spill path has no directory"))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Writes `bytes` to a new temporary file beside `path` (creating the directory) and
/// fsyncs it; returns the temporary file's path. Nothing else ever opens it. Modes
/// `0600` and `0700` (see [`riptide_store::private_fs`]): a spill file holds a session's
/// cookies and headers.
pub(crate) fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    // The spill root too (`<root>/<tenant>/<id>.session`): it may predate RipTide, open
    // to others; a stat per write is nothing next to the fsync.
    if let Some(root) = path.parent().and_then(Path::parent) {
        private_fs::create_dir(root)?;
    }
    private_fs::write_temp(path, bytes)
}

/// Renames the temporary file `tmp` over `path` (removing `tmp` when that fails).
pub(crate) fn publish(tmp: &Path, path: &Path) -> std::io::Result<()> {
    fs::rename(tmp, path).inspect_err(|_| discard(tmp))
}

/// Removes a temporary file, logging a failure.
pub(crate) fn discard(tmp: &Path) {
    private_fs::discard(tmp);
}

/// Fsyncs a directory, so the renames in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    private_fs::sync_dir(dir)
}

/// The contents of `path`; `None` when it does not exist. A file larger than any
/// session could be is refused.
pub(crate) fn read(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_ENCODED_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(std::io::Error::other("larger than any session"));
    }
    Ok(Some(bytes))
}

/// The first `len` bytes of `path` (fewer when shorter); `None` when it does not exist.
pub(crate) fn read_head(path: &Path, len: usize) -> std::io::Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Removes `path`; returns whether it existed.
pub(crate) fn remove(path: &Path) -> std::io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes directory `dir` and what it holds (a deleted tenant's spill files); an
/// absent directory is fine.
pub(crate) fn remove_dir(dir: &Path) -> std::io::Result<bool> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Up to `limit` entry names of directory `dir` in name order, after `after` (when
/// given); an absent directory has none. Reads at most `max_scan` entries.
pub(crate) fn list_after(
    dir: &Path,
    after: Option<&str>,
    limit: usize,
    max_scan: usize,
) -> std::io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries.take(max_scan) {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if after.is_none_or(|a| name.as_str() > a) {
            names.push(name);
        }
    }
    names.sort();
    names.truncate(limit);
    Ok(names)
}

/// Removes `dir` when it is empty (a tenant directory whose sessions are all gone).
pub(crate) fn remove_dir_if_empty(dir: &Path) {
    // Fails (and is meant to) when the directory is not empty.
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme").join("abc.session");
        assert_eq!(read(&path).unwrap(), None);
        assert_eq!(write_atomic(&path, b"hello").unwrap(), 5);
        assert_eq!(write_atomic(&path, b"hello2").unwrap(), 6);
        assert_eq!(read(&path).unwrap().as_deref(), Some(&b"hello2"[..]));
        assert_eq!(read_head(&path, 3).unwrap().as_deref(), Some(&b"hel"[..]));
        let names = list_after(&dir.path().join("acme"), None, 10, 100).unwrap();
        assert_eq!(
            names,
            vec!["abc.session".to_owned()],
            "no temporary files left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        remove_dir_if_empty(&dir.path().join("acme"));
        assert!(!dir.path().join("acme").exists());
    }

    #[test]
    fn listing_pages_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["a", "b", "c"] {
            fs::create_dir(dir.path().join(n)).unwrap();
        }
        assert_eq!(
            list_after(dir.path(), Some("a"), 1, 100).unwrap(),
            vec!["b".to_owned()]
        );
        assert!(
            list_after(&dir.path().join("none"), None, 1, 100)
                .unwrap()
                .is_empty()
        );
    }
}
