//! Checkpoint files on disk: ids, resolving an id to its file, listing and pruning.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::error::io_err;
use super::{CheckpointError, CheckpointInfo, format};

/// Longest accepted checkpoint id.
const MAX_ID_LEN: usize = 128;
/// Temp files older than this are leftovers of a crash and are removed.
const STALE_TEMP: Duration = Duration::from_secs(3_600);
/// File name extension of checkpoints.
pub(super) const EXTENSION: &str = ".ckpt";

/// True for `[0-9A-Za-z_.-]{1,128}`: a key id, session id or other key segment.
pub(crate) fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// True for `YYYY-MM`.
pub(crate) fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// True when `id` may name a checkpoint.
pub(super) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A new, sortable id: UTC creation time to the millisecond and 32 random bits.
pub(super) fn new_id(now_ms: u64) -> String {
    let at = DateTime::from_timestamp_millis(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .unwrap_or(DateTime::UNIX_EPOCH);
    let suffix: u32 = rand::rng().random();
    format!("{}-{suffix:08x}", at.format("%Y%m%dT%H%M%S%3fZ"))
}

/// The creation time encoded in an id made by [`new_id`].
pub(super) fn time_of_id(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%3fZ")
        .ok()
        .map(|t| t.and_utc())
}

pub(super) fn datetime(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Checks `id` and finds its file: a regular file `<dir>/<id>.ckpt`.
pub(super) fn resolve(dir: &Path, id: &str) -> Result<(String, PathBuf), CheckpointError> {
    let bare = id.strip_suffix(EXTENSION).unwrap_or(id);
    if !is_valid_id(bare) {
        return Err(CheckpointError::InvalidId(
            riptide_store::tenant_id::truncate_for_error(id),
        ));
    }
    let path = dir.join(format!("{bare}{EXTENSION}"));
    let unknown = || CheckpointError::UnknownId {
        id: bare.to_owned(),
        dir: dir.display().to_string(),
    };
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => Ok((bare.to_owned(), path)),
        Ok(_) => Err(unknown()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(unknown()),
        Err(e) => Err(CheckpointError::Read {
            id: bare.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Checkpoint ids in `dir` (file names `<valid id>.ckpt`, regular files).
fn ids_in(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(EXTENSION)) else {
            continue;
        };
        if is_valid_id(id) && entry.file_type()?.is_file() {
            ids.push(id.to_owned());
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

pub(super) fn list_dir(dir: &Path) -> Result<Vec<CheckpointInfo>, CheckpointError> {
    let ids = ids_in(dir).map_err(io_err(format!("list {}", dir.display())))?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let path = dir.join(format!("{id}{EXTENSION}"));
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match format::verify(&path) {
                Ok(v) => CheckpointInfo {
                    created_at: datetime(v.header.created_at_ms),
                    size_bytes: v.size,
                    tenants: v.footer.tenants,
                    sessions: v.footer.sessions,
                    valid: true,
                    problem: None,
                    id,
                },
                Err(problem) => {
                    let created_at = format::peek_header(&path)
                        .map(|h| datetime(h.created_at_ms))
                        .or_else(|| time_of_id(&id))
                        .unwrap_or(DateTime::UNIX_EPOCH);
                    CheckpointInfo {
                        problem: Some(CheckpointError::from_problem(&id, problem).to_string()),
                        created_at,
                        size_bytes: size,
                        tenants: 0,
                        sessions: 0,
                        valid: false,
                        id,
                    }
                }
            }
        })
        .collect())
}

pub(super) fn prune_dir(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let mut removed = 0;
    // Only files named like the checkpoints this code writes are pruned: a file an
    // operator copied in under another name is listed, never deleted.
    let generated = ids_in(dir)?
        .into_iter()
        .filter(|id| time_of_id(id).is_some());
    for id in generated.skip(keep) {
        match std::fs::remove_file(dir.join(format!("{id}{EXTENSION}"))) {
            Ok(()) => removed += 1,
            // Pruned concurrently by another create.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let now = SystemTime::now();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_temp = name
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.ends_with(".ckpt.tmp"));
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP));
        if is_temp && stale {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a stale checkpoint temp file")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_validate() {
        let a = new_id(1_795_000_000_000);
        let b = new_id(1_795_000_000_001);
        assert!(a < b, "{a} < {b}");
        assert!(is_valid_id(&a), "{a}");
        assert_eq!(time_of_id(&a), Some(datetime(1_795_000_000_000)));
        for bad in [
            "",
            "../x",
            "a/b",
            "a.b",
            "..",
            "a b",
            "x\0",
            &"a".repeat(129),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn segments_and_months() {
        assert!(is_segment("k7x2mq4ab9cd") && is_segment("s-1_2.3"));
        assert!(!is_segment("") && !is_segment("a:b") && !is_segment("a{b}"));
        assert!(is_month("2026-11") && !is_month("2026-1") && !is_month("2026/11"));
    }

    #[test]
    fn resolve_refuses_traversal_and_unknown_ids() {
        let dir = tempfile::tempdir().expect("dir");
        for bad in [
            "../db",
            "../../etc/passwd",
            "a/b.ckpt",
            ".hidden",
            "x.ckpt.tmp",
            "a\\b",
        ] {
            assert!(
                matches!(resolve(dir.path(), bad), Err(CheckpointError::InvalidId(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            resolve(dir.path(), "nope"),
            Err(CheckpointError::UnknownId { .. })
        ));
        std::fs::create_dir_all(dir.path().join("dir.ckpt")).expect("mkdir");
        assert!(matches!(
            resolve(dir.path(), "dir"),
            Err(CheckpointError::UnknownId { .. })
        ));
        std::fs::write(dir.path().join("ok.ckpt"), b"x").expect("write");
        let (id, path) = resolve(dir.path(), "ok.ckpt").expect("found");
        assert_eq!((id.as_str(), path), ("ok", dir.path().join("ok.ckpt")));
    }
}
