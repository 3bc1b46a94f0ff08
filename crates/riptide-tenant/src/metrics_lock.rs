//! The tenant metrics as the caller shares them: the seed's origin passes
//! `Arc<tokio::sync::RwLock<TenantMetrics>>`, the service an
//! `Arc<std::sync::RwLock<TenantMetrics>>`; the tenant layer takes either and records
//! into the very value the caller reads.
//!
//! Every [`TenantMetrics`] method takes `&self`, so the layer only ever takes the read
//! lock, and never across an `.await`. A tokio lock is tried without waiting (a
//! synchronous caller cannot wait on it): while someone holds it for writing, which a
//! type with only `&self` methods never needs, recordings are skipped and counted in
//! [`SharedTenantMetrics::skipped`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use super::metrics::TenantMetrics;

/// The caller's tenant metrics behind either kind of `RwLock`.
#[derive(Clone)]
pub struct SharedTenantMetrics {
    lock: Lock,
    skipped: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Lock {
    Std(Arc<std::sync::RwLock<TenantMetrics>>),
    Tokio(Arc<tokio::sync::RwLock<TenantMetrics>>),
}

impl SharedTenantMetrics {
    /// Runs `f` on the metrics. A poisoned std lock is recovered (the metrics are
    /// atomics and single-step maps, consistent after any panic).
    pub fn with<R>(&self, f: impl FnOnce(&TenantMetrics) -> R) -> Option<R> {
        match &self.lock {
            Lock::Std(lock) => Some(f(&lock.read().unwrap_or_else(PoisonError::into_inner))),
            Lock::Tokio(lock) => match lock.try_read() {
                Ok(guard) => Some(f(&guard)),
                Err(_) => {
                    if self.skipped.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            "tenant metrics are write-locked by their owner: recordings are \
                             skipped while the lock is held"
                        );
                    }
                    None
                }
            },
        }
    }

    /// Recordings skipped because the caller held a tokio lock for writing.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn of(lock: Lock) -> Self {
        Self {
            lock,
            skipped: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl From<Arc<std::sync::RwLock<TenantMetrics>>> for SharedTenantMetrics {
    fn from(lock: Arc<std::sync::RwLock<TenantMetrics>>) -> Self {
        Self::of(Lock::Std(lock))
    }
}

impl From<Arc<tokio::sync::RwLock<TenantMetrics>>> for SharedTenantMetrics {
    fn from(lock: Arc<tokio::sync::RwLock<TenantMetrics>>) -> Self {
        Self::of(Lock::Tokio(lock))
    }
}

impl Default for SharedTenantMetrics {
    fn default() -> Self {
        Arc::new(std::sync::RwLock::new(TenantMetrics::new())).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_store::tenant_id::TenantId;

    fn tenant() -> TenantId {
        TenantId::parse("t1").unwrap()
    }

    #[test]
    fn records_into_the_callers_std_lock() {
        let lock = Arc::new(std::sync::RwLock::new(TenantMetrics::new()));
        let shared = SharedTenantMetrics::from(lock.clone());
        shared.with(|m| m.record_operation(&tenant(), "extract", 3));
        let row = lock.read().unwrap().tenant(&tenant()).unwrap();
        assert_eq!(row.by_operation.get("extract"), Some(&3));
    }

    #[tokio::test]
    async fn records_into_the_callers_tokio_lock_and_skips_while_it_is_written() {
        let lock = Arc::new(tokio::sync::RwLock::new(TenantMetrics::new()));
        let shared = SharedTenantMetrics::from(lock.clone());
        shared.with(|m| m.record_operation(&tenant(), "extract", 2));
        let row = lock.read().await.tenant(&tenant()).unwrap();
        assert_eq!(row.by_operation.get("extract"), Some(&2));

        let held = lock.write().await;
        assert_eq!(
            shared.with(|m| m.record_operation(&tenant(), "extract", 1)),
            None
        );
        assert_eq!(shared.skipped(), 1);
        drop(held);
        shared.with(|m| m.record_operation(&tenant(), "extract", 1));
        let row = lock.read().await.tenant(&tenant()).unwrap();
        assert_eq!(row.by_operation.get("extract"), Some(&3));
    }
}
