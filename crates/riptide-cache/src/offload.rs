//! Envelope work off the async workers: compressing, decompressing, sealing and opening
//! large entries on tokio's blocking pool (DESIGN.md: work on untrusted input runs off
//! the async workers, so one tenant's large pages cannot stall another tenant's request).
//!
//! What counts is the number of bytes the work touches, against [`OFFLOAD_BYTES`]:
//!
//! - **encoding** (a set): the payload's length, since compression and sealing both
//!   read all of it;
//! - **decoding** (a get that reads the store): the stored length for parsing the
//!   metadata and opening a sealed payload, then the length the compressed payload
//!   declares for decompressing it. The second is checked separately because a small
//!   stored entry can decompress to a large one (up to `max_entry_size_bytes`), and for
//!   a sealed entry the declared length is only readable once it is opened.
//!
//! Below the threshold the work runs inline: handing it to the blocking pool and back
//! costs a few microseconds, more than the work itself.

use std::sync::Arc;

use bytes::Bytes;

use super::envelope::{self, CacheMetadata, Codec, Seal, Unreadable};
use super::sealing::{SealError, SealingKey};
use super::{CacheError, CacheResult};
use crate::config::CacheConfig;
use riptide_store::keys::Scope;

/// Envelope work touching more bytes than this runs on the blocking pool. LZ4, Zstd at
/// low levels and AES-GCM all take tens of microseconds for 64 KiB on the machines we
/// measure on: about the longest a request should hold an async worker for it, and ten
/// times what the hand-off to the blocking pool costs.
pub(super) const OFFLOAD_BYTES: usize = 64 * 1024;

/// Runs `work` on the blocking pool when `cost` passes [`OFFLOAD_BYTES`], else inline.
/// `Err` only when the blocking task could not finish (it panicked, or the runtime is
/// shutting down).
async fn run<T: Send + 'static>(
    cost: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    if cost <= OFFLOAD_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("envelope task failed: {e}"))
}

/// What encoding one entry needs (cloned into the blocking task when it runs there).
pub(super) struct ToEncode<'a> {
    pub(super) payload: &'a Bytes,
    pub(super) codec: Codec,
    pub(super) created_ms: u64,
    pub(super) expires_ms: Option<u64>,
    pub(super) metadata: Option<&'a CacheMetadata>,
    pub(super) settings: &'a Arc<CacheConfig>,
    pub(super) key: Option<&'a Arc<dyn SealingKey>>,
    pub(super) store_key: &'a str,
}

/// Builds the stored envelope of one entry (compressed, and sealed with `key` when
/// given), on the blocking pool when the payload is large.
pub(super) async fn encode_entry(e: ToEncode<'_>, scope: &Scope) -> CacheResult<Bytes> {
    let (payload, codec, created, expires) =
        (e.payload.clone(), e.codec, e.created_ms, e.expires_ms);
    let (metadata, settings) = (e.metadata.cloned(), Arc::clone(e.settings));
    let (key, store_key) = (e.key.cloned(), e.store_key.to_owned());
    let encoded = run(payload.len(), move || {
        let seal = key.as_deref().map(|key| Seal {
            key,
            store_key: &store_key,
        });
        envelope::encode_with(
            &payload,
            codec,
            created,
            expires,
            metadata.as_ref(),
            &settings,
            seal,
        )
    })
    .await;
    match encoded {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(SealError)) => Err(CacheError::Sealing(format!(
            "{}: {SealError}",
            scope.label()
        ))),
        Err(failed) => Err(CacheError::Sealing(format!("{}: {failed}", scope.label()))),
    }
}

/// Decodes stored bytes of at most `max_len` decoded bytes, opening sealed ones with
/// `key`, each step on the blocking pool when it is large (see the module docs).
pub(super) async fn decode_entry(
    max_len: usize,
    store_key: &str,
    bytes: &Bytes,
    key: Option<&Arc<dyn SealingKey>>,
) -> Result<envelope::Entry, Unreadable> {
    let failed = |e: String| Err(Unreadable::Corrupt(e));
    if bytes.len() > OFFLOAD_BYTES {
        let (bytes, key, store_key) = (bytes.clone(), key.cloned(), store_key.to_owned());
        return run(bytes.len(), move || {
            let seal = key.as_deref().map(|key| Seal {
                key,
                store_key: &store_key,
            });
            envelope::decode_with(&bytes, max_len, seal)
        })
        .await
        .unwrap_or_else(failed);
    }
    let seal = key.map(|key| Seal {
        key: key.as_ref(),
        store_key,
    });
    let opened = envelope::open_with(bytes, seal)?;
    run(opened.decompressed_len().min(max_len), move || {
        opened.finish(max_len)
    })
    .await
    .unwrap_or_else(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::test_key::TestKey;

    #[tokio::test(flavor = "current_thread")]
    async fn only_work_past_the_threshold_leaves_the_async_thread() {
        let here = std::thread::current().id();
        let at = |cost| run(cost, || std::thread::current().id());
        assert_eq!(at(OFFLOAD_BYTES).await.unwrap(), here);
        assert_ne!(at(OFFLOAD_BYTES + 1).await.unwrap(), here);
    }

    #[test]
    fn a_small_stored_entry_declares_its_large_decompressed_size() {
        // 4 MiB of one byte: LZ4 stores it in a few KiB; decoding it is 4 MiB of work.
        let payload = vec![b'a'; 4 << 20];
        let key = TestKey::generate();
        let cfg = CacheConfig::default();
        for seal in [
            None,
            Some(Seal {
                key: &key,
                store_key: "k",
            }),
        ] {
            let stored =
                envelope::encode_with(&payload, Codec::Raw, 0, None, None, &cfg, seal).unwrap();
            assert!(stored.len() < OFFLOAD_BYTES, "{}", stored.len());
            let opened = envelope::open_with(&stored, seal).unwrap();
            assert_eq!(opened.decompressed_len(), payload.len());
            assert_eq!(opened.finish(8 << 20).unwrap().payload.len(), payload.len());
        }
    }
}
