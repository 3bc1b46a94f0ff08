//! Cache-aside with single-flight: `get_or_load`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::LoadError;
use super::envelope::{CacheMetadata, Codec};
use super::json::{decode_json, encode_json};
use super::manager::{PersistentCacheManager, PutItem};
use super::single_flight::{FlightEnd, Role};
use super::stats::{Op, OpResult};
use super::{CacheError, CacheResult};
use riptide_store::keys::{AsScope, ScopeKeys};

/// Where a `get_or_load` value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupSource {
    /// It was in the cache.
    Hit,
    /// This call ran the loader.
    Loaded,
    /// Another concurrent call ran the loader and this one shared its result.
    Coalesced,
}

impl LookupSource {
    /// `HIT` or `MISS`, for an `X-Cache` header.
    pub fn as_header(&self) -> &'static str {
        match self {
            LookupSource::Hit => "HIT",
            LookupSource::Loaded | LookupSource::Coalesced => "MISS",
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Lookup<T> {
    /// The value.
    pub value: T,
    /// Hit, loaded by this call, or shared from a concurrent load.
    pub source: LookupSource,
}

/// Times a follower that saw its leader vanish competes again before giving up.
const MAX_ABANDONED_RETRIES: usize = 3;

impl PersistentCacheManager {
    /// The bytes of `key`; on a miss runs `loader` once for all concurrent callers of the
    /// same key on this instance, stores its result (raw codec) and returns it. Callers
    /// that wait on another's load give up after `load_timeout_ms`; a failed load fails
    /// every waiter with [`CacheError::LoadFailed`].
    pub async fn get_or_load_bytes<F, Fut, E>(
        &self,
        key: &str,
        scope: &(impl AsScope + ?Sized),
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
        loader: F,
    ) -> CacheResult<Lookup<Bytes>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.coalesced(key, scope, ttl, metadata, Codec::Raw, async move || {
            loader().await.map_err(shared)
        })
        .await
    }

    /// Typed `get_or_load`: the loader's value is stored as JSON.
    pub async fn get_or_load<T, F, Fut, E>(
        &self,
        key: &str,
        scope: &(impl AsScope + ?Sized),
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
        loader: F,
    ) -> CacheResult<Lookup<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let found = self
            .coalesced(key, scope, ttl, metadata, Codec::Json, async move || {
                let value = loader().await.map_err(shared)?;
                encode_json(&value).map_err(shared)
            })
            .await?;
        Ok(Lookup {
            value: decode_json(&found.value)?,
            source: found.source,
        })
    }

    async fn coalesced<L>(
        &self,
        key: &str,
        scope: &(impl AsScope + ?Sized),
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
        codec: Codec,
        load: L,
    ) -> CacheResult<Lookup<Bytes>>
    where
        L: AsyncFnOnce() -> Result<Bytes, LoadError>,
    {
        let scope = scope.as_scope()?;
        let keys = ScopeKeys::new(self.store.key_prefix(), &scope);
        let placed = self.place(&keys, &scope, key);
        let mut load = Some(load);
        for _ in 0..=MAX_ABANDONED_RETRIES {
            // The tenant is parsed and the key placed once, above, for every round.
            if let Some(e) = self.get_placed(Instant::now(), placed.clone()).await? {
                return Ok(Lookup {
                    value: e.payload,
                    source: LookupSource::Hit,
                });
            }
            let follower = match self.flights.join(placed.l1) {
                Role::Follower(f) => f,
                Role::Leader(permit) => {
                    // A previous leader fills L1 before it ends its flight, so this check
                    // closes the gap between our miss and our joining.
                    if let Some(v) = self.l1.get(&placed.l1, self.clock.now_ms()) {
                        permit.finish(FlightEnd::Done(v.entry.payload.clone()));
                        return Ok(Lookup {
                            value: v.entry.payload.clone(),
                            source: LookupSource::Hit,
                        });
                    }
                    let Some(load) = load.take() else {
                        return Err(CacheError::LoadFailed {
                            key: key.to_owned(),
                            source: shared("loader already consumed"),
                        });
                    };
                    let stats = self.scope_stats(&scope);
                    let start = Instant::now();
                    let loaded = load().await;
                    let result = if loaded.is_ok() {
                        OpResult::Ok
                    } else {
                        OpResult::Error
                    };
                    self.stats
                        .record(&stats, Op::Load, result, start.elapsed(), 1);
                    return match loaded {
                        Ok(value) => {
                            let item = PutItem {
                                key: key.to_owned(),
                                payload: value.clone(),
                                codec,
                                ttl,
                                metadata,
                            };
                            if let Err(e) = self
                                .put(scope.clone().into_owned(), vec![item], Op::Set)
                                .await
                            {
                                // The caller still gets its value; the failure is counted
                                // (stats/metrics errors) and logged.
                                tracing::warn!(tenant.id = scope.label(), error = %e, "storing a loaded value failed");
                            }
                            permit.finish(FlightEnd::Done(value.clone()));
                            Ok(Lookup {
                                value,
                                source: LookupSource::Loaded,
                            })
                        }
                        Err(source) => {
                            permit.finish(FlightEnd::Failed(source.clone()));
                            Err(CacheError::LoadFailed {
                                key: key.to_owned(),
                                source,
                            })
                        }
                    };
                }
            };
            let timeout = Duration::from_millis(self.config.load_timeout_ms);
            match follower.wait(timeout).await {
                FlightEnd::Done(value) => {
                    return Ok(Lookup {
                        value,
                        source: LookupSource::Coalesced,
                    });
                }
                FlightEnd::Failed(source) => {
                    return Err(CacheError::LoadFailed {
                        key: key.to_owned(),
                        source,
                    });
                }
                FlightEnd::TimedOut => {
                    return Err(CacheError::LoadTimeout {
                        key: key.to_owned(),
                        waited_ms: self.config.load_timeout_ms,
                    });
                }
                FlightEnd::Abandoned => continue,
            }
        }
        Err(CacheError::LoadFailed {
            key: key.to_owned(),
            source: shared("every concurrent loader of this key was cancelled"),
        })
    }
}

/// A loader's error, shared between the callers of one flight without losing its type.
fn shared(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LoadError {
    Arc::from(e.into())
}
