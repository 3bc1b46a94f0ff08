//! The high-water mark: the longest chain this instance has seen (its length and head
//! hash), kept in memory and in a `0600` file outside the store, and published as the
//! gauges `audit_chain_length` and `audit_chain_head_hash48`. A chain found shorter
//! than it, or with another record at that length, was truncated or rewritten, and
//! [`AuditLog::verify`] says so; a head below it stops appends (fail closed).
//!
//! [`AuditLog::verify`]: super::AuditLog::verify

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use riptide_store::private_fs;

/// File name of the high-water mark under `tenant.secrets_dir`.
pub const HIGH_WATER_FILE: &str = "audit_high_water";

/// Gauge: the length of the audit chain (the newest sequence number) last seen.
pub const LENGTH_GAUGE: &str = "audit_chain_length";

/// Gauge: the first 48 bits of the head hash last seen, as an integer (exact in a
/// float), so a scraper can tell a rewritten head from the one it saw before.
pub const HEAD_GAUGE: &str = "audit_chain_head_hash48";

/// The end of a chain: its length (the newest sequence number) and that record's hash.
/// Also what checkpoints carry as their audit anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    /// The newest sequence number (0 for an empty chain).
    pub length: u64,
    /// The newest record's hash.
    pub head_hash: String,
}

/// The highest [`ChainTip`] seen, in memory and (when given a path) on disk.
#[derive(Debug)]
pub(super) struct HighWater {
    mark: Mutex<Option<ChainTip>>,
    file: Option<PathBuf>,
    /// One file write at a time, so a lower mark never replaces a higher one.
    writing: tokio::sync::Mutex<()>,
}

impl HighWater {
    /// A mark kept in memory only.
    pub(super) fn in_memory() -> Self {
        Self {
            mark: Mutex::new(None),
            file: None,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// A mark kept in `file` too, starting from what it holds. An unreadable file is
    /// logged and ignored (the next append rewrites it).
    pub(super) fn in_file(file: PathBuf) -> Self {
        let mark = read(&file);
        if let Some(m) = &mark {
            publish(m);
        }
        Self {
            mark: Mutex::new(mark),
            file: Some(file),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// The highest tip seen.
    pub(super) fn get(&self) -> Option<ChainTip> {
        self.mark.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Raises the mark to `tip` when it is longer than the mark (never lowers it).
    pub(super) async fn observe(&self, tip: ChainTip) {
        {
            let mut mark = self.mark.lock().unwrap_or_else(|e| e.into_inner());
            if mark.as_ref().is_some_and(|m| m.length >= tip.length) {
                return;
            }
            *mark = Some(tip.clone());
        }
        publish(&tip);
        let Some(file) = self.file.clone() else {
            return;
        };
        let _one = self.writing.lock().await;
        let written = tokio::task::spawn_blocking(move || {
            // Another process (or an older write) may hold a higher mark already.
            if read(&file).is_some_and(|m| m.length >= tip.length) {
                return Ok(());
            }
            let json = serde_json::to_vec(&tip).unwrap_or_default();
            private_fs::write_atomic(&file, &json)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not write the audit high-water mark"),
            Err(e) => tracing::error!(error = %e, "the audit high-water mark writer failed"),
        }
    }
}

fn read(file: &Path) -> Option<ChainTip> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %file.display(), error = %e, "cannot read the audit high-water mark");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| {
            tracing::error!(path = %file.display(), error = %e, "the audit high-water mark is unreadable; ignored");
        })
        .ok()
}

fn publish(tip: &ChainTip) {
    metrics::gauge!(LENGTH_GAUGE).set(tip.length as f64);
    metrics::gauge!(HEAD_GAUGE).set(hash48(&tip.head_hash) as f64);
}

/// The first 12 hex digits of `hash` as an integer (0 when not hex).
pub fn hash48(hash: &str) -> u64 {
    hash.get(..12)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_mark_only_rises_and_survives_in_its_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(HIGH_WATER_FILE);
        let hw = HighWater::in_file(path.clone());
        assert_eq!(hw.get(), None);
        let tip = |length, h: &str| ChainTip {
            length,
            head_hash: h.repeat(64),
        };
        hw.observe(tip(5, "a")).await;
        hw.observe(tip(3, "b")).await;
        assert_eq!(hw.get(), Some(tip(5, "a")));
        let again = HighWater::in_file(path.clone());
        assert_eq!(again.get(), Some(tip(5, "a")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(hash48("0000000000ff99"), 255);
    }
}
