//! The embedded store: one `redb` file, `<dir>/riptide.redb`, for a single process.
//!
//! - Reads run inline on the caller's task: a redb read transaction takes microseconds
//!   and never waits for a writer.
//! - Every write transaction runs on tokio's blocking pool, so an fsync never stalls a
//!   runtime worker. redb runs one write transaction at a time, which is what makes the
//!   `cache_*` methods atomic per scope.
//! - [`Durability::Cache`] commits are non-durable (redb `Durability::None`: visible at
//!   once, written to disk by the next durable commit). [`Durability::Durable`] commits
//!   are redb `Durability::Immediate` (fsync before `commit` returns). The flusher makes an
//!   empty durable commit every `flush_interval_ms` when a non-durable commit happened
//!   since the last durable one; that bounds what a crash loses and lets redb reuse freed
//!   pages. redb also makes pending non-durable commits durable when the file is closed,
//!   so a store that is dropped (not crashed) restarts warm.
//! - TTLs come from the injected clock and are checked on every read; the sweeper
//!   deletes expired values in the background, `sweep_batch` per transaction.
//! - A TTL of `Some(0)` is refused with [`StoreError::Backend`], which is what Redis
//!   answers for `PX 0`.
//! - `set` and `set_many` on a key that is also a cache entry do not update the cache
//!   accounting: callers write cache entries with the `cache_*` methods. `delete` does
//!   keep the accounting exact, and commits durably (it may delete durable records).
//! - A `cache_put` key must have the form `<scope base>:c:<namespace>:<hash>` (what
//!   [`ScopeKeys::entry`](crate::keys::ScopeKeys::entry) builds) with the put's namespace; any other key is refused with
//!   [`StoreError::Backend`], so a batch can never touch another scope.
//! - `set_if_absent` and `compare_and_swap` read and write in one write transaction
//!   (`records.rs`); sorted sets (`zset.rs`) and counters records (`counters.rs`) have
//!   tables of their own and always commit durably. `delete` removes a key's value,
//!   sorted set and counters record alike (and, for a dedupe key, the batch ids applied
//!   under it).
//! - The GCRA rate limiter (`rate.rs`) keeps its state **in memory**, not in redb, so a
//!   quota check costs well under a microsecond: the store belongs to one process, so the
//!   in-memory state is authoritative. A restart refills every bucket, which only ever
//!   admits more than the limit allows over the restart, never less. Override records
//!   are counters records in redb, cached in memory and dropped from the cache by every
//!   write of this store to them.
//! - Leases (`lease.rs`) keep the holding at the lease key and the fencing counter at
//!   `<key>:fence` as `kv` values, written in one durable transaction, so a fencing
//!   token never repeats, not even across a restart or a crash; the holding's TTL comes
//!   from the injected clock. A step that changes nothing is answered by a read.
//! - Publish/subscribe (`pubsub.rs`) is in process: one bounded `tokio` broadcast channel
//!   per channel with subscribers, a forwarder task per subscription into its bounded
//!   queue, and [`crate::SubscriptionEvent::Resubscribed`] when a slow subscriber
//!   lost messages. Nothing of it touches redb.
//!
//! Table layout: see `tables.rs`. Cache accounting: see `cache.rs`. Background tasks:
//! see `sweeper.rs`.

mod atomic;
mod cache;
mod cache_index;
mod coordination;
mod counters;
mod fenced;
mod kv;
mod lease;
mod pubsub;
mod rate;
mod records;
mod sweeper;
mod tables;
mod zset;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::backends::FileBackend;
use redb::{
    Database, Key, ReadOnlyTable, ReadableDatabase, TableDefinition, Value, WriteTransaction,
};
use tokio_util::sync::CancellationToken;

use self::pubsub::PubSub;
use self::rate::RateState;
use self::tables::KV;
use crate::clock::SharedClock;
use crate::config::EmbeddedConfig;
use crate::{Backend, Durability, StoreError, StoreKind, StoreResult};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "riptide.redb";

/// How long `open` keeps trying while a just-dropped store of the same file finishes
/// its last background transaction.
const OPEN_RETRY: Duration = Duration::from_secs(2);

/// The embedded `redb` store. Create it with [`EmbeddedStore::open`]; dropping the last
/// handle stops its background tasks and closes the file.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// Stops the sweeper and the flusher; cancelled in `Drop`.
    shutdown: CancellationToken,
}

/// What the store and its background tasks share. The tasks hold only a `Weak` to it.
struct Inner {
    db: Database,
    clock: SharedClock,
    key_prefix: String,
    sweep_batch: usize,
    /// Non-durable commits made so far.
    lazy_commits: AtomicU64,
    /// How many of `lazy_commits` a durable commit has persisted.
    durable_through: AtomicU64,
    /// The rate limiter's in-memory state and override cache (see `rate.rs`).
    rate: RateState,
    /// The in-process publish/subscribe channels (see `pubsub.rs`).
    pubsub: PubSub,
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/riptide.redb` with `cfg.page_cache_bytes` of page cache and
    /// starts the sweeper and the flusher on the current tokio runtime. `dir` is created
    /// (or narrowed) to mode `0700` and the file to `0600` (see [`crate::private_fs`]).
    ///
    /// Fails with [`StoreError::Config`] outside a tokio runtime, when `dir` cannot be
    /// created, or when the file is already open (by another process, or by a store of
    /// this process that is still alive).
    pub fn open(
        dir: &Path,
        cfg: &EmbeddedConfig,
        clock: SharedClock,
    ) -> StoreResult<Arc<EmbeddedStore>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Config("the embedded store must be opened inside a tokio runtime".into())
        })?;
        crate::private_fs::create_dir(dir)
            .map_err(|e| StoreError::Config(format!("data dir {}: {e}", dir.display())))?;
        let db = open_database(&dir.join(DB_FILE), cfg.page_cache_bytes)?;
        let inner = Arc::new(Inner {
            db,
            clock,
            key_prefix: cfg.key_prefix.clone(),
            sweep_batch: cfg.sweep_batch.max(1),
            lazy_commits: AtomicU64::new(0),
            durable_through: AtomicU64::new(0),
            rate: RateState::default(),
            pubsub: PubSub::default(),
        });
        inner.transact(Durability::Durable, |tx, _| tables::create_all(tx))?;
        let shutdown = CancellationToken::new();
        sweeper::spawn(&runtime, &inner, cfg, &shutdown);
        Ok(Arc::new(EmbeddedStore { inner, shutdown }))
    }

    /// Runs one full sweep now, on the calling thread (it blocks), and returns how many
    /// expired values it deleted. For tests and benchmarks; the sweeper does the same in
    /// the background.
    pub fn sweep_now(&self) -> StoreResult<u64> {
        self.inner.prune_memory();
        self.inner.sweep_all()
    }

    /// Runs `f` in a write transaction on the blocking pool (see [`Inner::transact`]).
    async fn write<T, F>(&self, durability: Durability, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction, u64) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // Runs to completion even if the caller stops waiting, so a write is all or nothing.
        tokio::task::spawn_blocking(move || inner.transact(durability, f))
            .await
            .map_err(|e| backend(&format!("write task failed: {e}")))?
    }

    /// As [`EmbeddedStore::write`] for a write that may change the counters records
    /// `keys` (passed on to `f`): after the transaction ends, still on the blocking pool,
    /// drops them from the rate limiter's override cache.
    async fn write_invalidating<T, F>(
        &self,
        durability: Durability,
        keys: Vec<String>,
        f: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction, u64, &[String]) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let result = inner.transact(durability, |tx, now| f(tx, now, &keys));
            for key in &keys {
                inner.rate.forget_record(key);
            }
            result
        })
        .await
        .map_err(|e| backend(&format!("write task failed: {e}")))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("key_prefix", &self.inner.key_prefix)
            .finish()
    }
}

impl Inner {
    /// Runs `f(tx, now)` in one write transaction and commits it with `durability`; an
    /// error from `f` aborts the transaction, so nothing of it is written.
    fn transact<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction, u64) -> StoreResult<T>,
    ) -> StoreResult<T> {
        // Every non-durable commit counted now has finished before this transaction
        // begins, so a durable commit of this transaction persists it.
        let covered = self.lazy_commits.load(Ordering::Acquire);
        let mut tx = self.db.begin_write().ctx("begin write transaction")?;
        if durability == Durability::Cache {
            tx.set_durability(redb::Durability::None)
                .ctx("set durability")?;
        }
        let value = match f(&tx, self.clock.now_ms()) {
            Ok(value) => value,
            Err(e) => {
                if let Err(abort) = tx.abort() {
                    tracing::warn!(error = %abort, "embedded store: abort failed");
                }
                return Err(e);
            }
        };
        tx.commit().ctx("commit")?;
        match durability {
            Durability::Cache => {
                self.lazy_commits.fetch_add(1, Ordering::AcqRel);
            }
            Durability::Durable => {
                self.durable_through.fetch_max(covered, Ordering::AcqRel);
            }
        }
        Ok(value)
    }

    /// Makes every non-durable commit so far durable, with an empty durable commit, if
    /// there is any. Returns whether it committed.
    fn flush(&self) -> StoreResult<bool> {
        if self.lazy_commits.load(Ordering::Acquire) <= self.durable_through.load(Ordering::Acquire)
        {
            return Ok(false);
        }
        self.transact(Durability::Durable, |_, _| Ok(()))?;
        Ok(true)
    }

    /// The `kv` table in a fresh read transaction (the table keeps the transaction alive).
    fn read_kv(&self) -> StoreResult<ReadOnlyTable<&'static str, &'static [u8]>> {
        self.read_table(KV, "kv")
    }

    /// Table `def` (named `name`) in a fresh read transaction.
    fn read_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
        name: &str,
    ) -> StoreResult<ReadOnlyTable<K, V>> {
        let tx = self.db.begin_read().ctx("begin read transaction")?;
        tx.open_table(def).ctx(&format!("open table {name}"))
    }

    /// Drops the rate limiter's in-memory entries that no longer matter (see `rate.rs`).
    fn prune_memory(&self) {
        self.rate.prune(self.clock.now_ms());
    }
}

/// Opens the database, retrying briefly while the file is still held by a store of this
/// process that was just dropped (its last background commit keeps it open until done).
///
/// The file is opened here, not by redb, so that it is created with mode `0600` (and an
/// older, wider one narrowed) before anything is written to it: redb's own `create`
/// would leave it to the umask. An empty file is what redb initializes a new database in.
fn open_database(path: &Path, cache_bytes: usize) -> StoreResult<Database> {
    let deadline = std::time::Instant::now() + OPEN_RETRY;
    loop {
        let file = crate::private_fs::open_or_create(path)
            .map_err(|e| StoreError::Config(format!("open {}: {e}", path.display())))?;
        let backend = FileBackend::new(file).ctx(&format!("open {}", path.display()))?;
        match Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)
        {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Config(format!(
                    "{} is already open (another process, or another store in this one)",
                    path.display()
                )));
            }
            Err(e) => return Err(e).ctx(&format!("open {}", path.display())),
        }
    }
}

/// Refuses a TTL of 0 ms (Redis refuses `PX 0` too).
fn check_ttl(ttl_ms: Option<u64>) -> StoreResult<()> {
    if ttl_ms == Some(0) {
        Err(backend("a TTL of 0 ms is refused"))
    } else {
        Ok(())
    }
}

/// Expiry in ms since the epoch for a TTL starting at `now` (0: none). Capped below
/// `u64::MAX`, which ranks entries without TTL in the eviction order.
fn expires_at(now: u64, ttl_ms: Option<u64>) -> u64 {
    match ttl_ms {
        Some(ttl) => now.saturating_add(ttl).min(u64::MAX - 1),
        None => 0,
    }
}

/// The payload of a stored value if it is still live at `now`.
fn live_payload(raw: &[u8], now: u64) -> StoreResult<Option<Bytes>> {
    let (expires_at, payload) = tables::split_value(raw)?;
    Ok(tables::is_live(expires_at, now).then(|| Bytes::copy_from_slice(payload)))
}

/// A [`StoreError::Backend`] naming this store.
fn backend(msg: &str) -> StoreError {
    StoreError::Backend(format!("embedded store: {msg}"))
}

/// Maps redb errors to [`StoreError`] with context: I/O failures are
/// [`StoreError::Unavailable`] (retryable), the rest [`StoreError::Backend`].
trait RedbResultExt<T> {
    fn ctx(self, what: &str) -> StoreResult<T>;
}

impl<T, E: Into<redb::Error>> RedbResultExt<T> for Result<T, E> {
    fn ctx(self, what: &str) -> StoreResult<T> {
        self.map_err(|e| match e.into() {
            e @ (redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed) => {
                StoreError::Unavailable(format!("embedded store: {what}: {e}"))
            }
            e => backend(&format!("{what}: {e}")),
        })
    }
}

#[async_trait]
impl Backend for EmbeddedStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Embedded
    }

    fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.read_kv().map(drop)
    }
}

#[cfg(test)]
pub(super) mod tests;
