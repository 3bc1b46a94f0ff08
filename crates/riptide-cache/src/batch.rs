//! Batch reads and writes: several keys of one scope in one store round trip, L1 first.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::envelope::{self, CacheMetadata, Codec, Entry};
use super::json::{decode_json, encode_json};
use super::manager::{Placed, PutItem};
use super::stats::{Op, OpResult};
use super::{CacheResult, PersistentCacheManager};
use riptide_store::keys::{AsScope, ScopeKeys};

impl PersistentCacheManager {
    /// Values of several keys of one scope: L1 first, then one store round trip.
    pub async fn get_batch<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: &[K],
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<Vec<Option<T>>> {
        let entries = self.get_batch_entries(keys, scope).await?;
        entries
            .into_iter()
            .map(|e| e.map(|e| decode_json(&e.payload)).transpose())
            .collect()
    }

    /// Stored bytes of several keys of one scope, in one store round trip.
    pub async fn get_batch_bytes<K: AsRef<str>>(
        &self,
        keys: &[K],
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<Vec<Option<Bytes>>> {
        let entries = self.get_batch_entries(keys, scope).await?;
        Ok(entries.into_iter().map(|e| e.map(|e| e.payload)).collect())
    }

    /// Entries of several keys of one scope, in one store round trip.
    pub async fn get_batch_entries<K: AsRef<str>>(
        &self,
        keys: &[K],
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<Vec<Option<Entry>>> {
        let start = Instant::now();
        let scope = scope.as_scope()?;
        let scope_keys = ScopeKeys::new(self.store.key_prefix(), &scope);
        let stats = self.scope_stats(&scope);
        let now = self.clock.now_ms();
        let placed: Vec<Placed> = keys
            .iter()
            .map(|k| self.place(&scope_keys, &scope, k.as_ref()))
            .collect();
        let mut out: Vec<Option<Entry>> = placed
            .iter()
            .map(|p| self.l1.get(&p.l1, now).map(|v| v.entry.clone()))
            .collect();
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let store_keys: Vec<String> = missing
                .iter()
                .map(|&i| placed[i].store_key.clone())
                .collect();
            let found = match self.store.get_many(&store_keys).await {
                Ok(found) => found,
                Err(e) => {
                    self.stats
                        .record(&stats, Op::GetBatch, OpResult::Error, start.elapsed(), 1);
                    return Err(e.into());
                }
            };
            let sealed = found.iter().flatten().any(|b| envelope::is_sealed(b));
            let key = match self.read_key(&scope, sealed).await {
                Ok(key) => key,
                Err(e) => {
                    self.stats
                        .record(&stats, Op::GetBatch, OpResult::Error, start.elapsed(), 1);
                    return Err(e);
                }
            };
            for (&i, bytes) in missing.iter().zip(found) {
                let entry = match bytes {
                    Some(b) => {
                        self.decode_stored(&placed[i].store_key, &b, now, key.as_ref())
                            .await
                    }
                    None => None,
                };
                if let Some(e) = &entry {
                    self.remember(&placed[i], e.clone(), now, &stats);
                }
                out[i] = entry;
            }
        }
        let hits = out.iter().filter(|e| e.is_some()).count() as u64;
        let elapsed = start.elapsed();
        if hits > 0 {
            self.stats
                .record(&stats, Op::GetBatch, OpResult::Hit, elapsed, hits);
        }
        if hits < out.len() as u64 {
            self.stats.record(
                &stats,
                Op::GetBatch,
                OpResult::Miss,
                elapsed,
                out.len() as u64 - hits,
            );
        }
        Ok(out)
    }

    /// Stores several JSON values of one scope in one store round trip.
    pub async fn set_batch<K: AsRef<str>, V: Serialize>(
        &self,
        entries: &[(K, V)],
        scope: &(impl AsScope + ?Sized),
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
    ) -> CacheResult<()> {
        let items = entries
            .iter()
            .map(|(k, v)| {
                Ok(PutItem {
                    key: k.as_ref().to_owned(),
                    payload: encode_json(v)?,
                    codec: Codec::Json,
                    ttl,
                    metadata: metadata.clone(),
                })
            })
            .collect::<CacheResult<Vec<_>>>()?;
        self.put(scope.as_scope()?.into_owned(), items, Op::SetBatch)
            .await
    }

    /// Stores several raw values of one scope in one store round trip.
    pub async fn set_batch_bytes<K: AsRef<str>>(
        &self,
        entries: &[(K, Bytes)],
        scope: &(impl AsScope + ?Sized),
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
    ) -> CacheResult<()> {
        let items = entries
            .iter()
            .map(|(k, v)| PutItem {
                key: k.as_ref().to_owned(),
                payload: v.clone(),
                codec: Codec::Raw,
                ttl,
                metadata: metadata.clone(),
            })
            .collect();
        self.put(scope.as_scope()?.into_owned(), items, Op::SetBatch)
            .await
    }
}
