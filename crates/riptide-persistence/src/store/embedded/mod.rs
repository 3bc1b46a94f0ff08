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
//!   [`ScopeKeys::entry`] builds) with the put's namespace; any other key is refused with
//!   [`StoreError::Backend`], so a batch can never touch another scope.
//!
//! Table layout: see `tables.rs`. Cache accounting: see `cache.rs`. Background tasks:
//! see `sweeper.rs`.

mod cache;
mod sweeper;
mod tables;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadOnlyTable, ReadableDatabase, WriteTransaction};
use tokio_util::sync::CancellationToken;

use self::tables::{CacheTables, KV, KvTables};
use crate::clock::SharedClock;
use crate::config::EmbeddedConfig;
use crate::keys::ScopeKeys;
use crate::store::{
    CachePut, Durability, PutOutcome, RemoveOutcome, ScopeUsage, Store, StoreError, StoreKind,
    StoreResult,
};

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
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/riptide.redb` with `cfg.page_cache_bytes` of page cache and
    /// starts the sweeper and the flusher on the current tokio runtime.
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
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("data dir {}: {e}", dir.display())))?;
        let db = open_database(&dir.join(DB_FILE), cfg.page_cache_bytes)?;
        let inner = Arc::new(Inner {
            db,
            clock,
            key_prefix: cfg.key_prefix.clone(),
            sweep_batch: cfg.sweep_batch.max(1),
            lazy_commits: AtomicU64::new(0),
            durable_through: AtomicU64::new(0),
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
        let tx = self.db.begin_read().ctx("begin read transaction")?;
        tx.open_table(KV).ctx("open table kv")
    }
}

/// Opens the database, retrying briefly while the file is still held by a store of this
/// process that was just dropped (its last background commit keeps it open until done).
fn open_database(path: &Path, cache_bytes: usize) -> StoreResult<Database> {
    let deadline = std::time::Instant::now() + OPEN_RETRY;
    loop {
        match Database::builder().set_cache_size(cache_bytes).create(path) {
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
impl Store for EmbeddedStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Embedded
    }

    fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.read_kv().map(drop)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        let table = self.inner.read_kv()?;
        match table.get(key).ctx("read value")? {
            Some(raw) => live_payload(raw.value(), self.inner.clock.now_ms()),
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        let table = self.inner.read_kv()?;
        let now = self.inner.clock.now_ms();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(match table.get(key.as_str()).ctx("read value")? {
                Some(raw) => live_payload(raw.value(), now)?,
                None => None,
            });
        }
        Ok(out)
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<()> {
        check_ttl(ttl_ms)?;
        let key = key.to_owned();
        let value = Bytes::copy_from_slice(value);
        self.write(durability, move |tx, now| {
            KvTables::open(tx)?.put(&key, &value, expires_at(now, ttl_ms))
        })
        .await
    }

    async fn set_many(
        &self,
        entries: &[(String, Bytes, Option<u64>)],
        durability: Durability,
    ) -> StoreResult<()> {
        for (_, _, ttl_ms) in entries {
            check_ttl(*ttl_ms)?;
        }
        let entries = entries.to_vec();
        self.write(durability, move |tx, now| {
            let mut tables = KvTables::open(tx)?;
            for (key, value, ttl_ms) in &entries {
                tables.put(key, value, expires_at(now, *ttl_ms))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<u64> {
        let keys = keys.to_vec();
        self.write(Durability::Durable, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            cache::delete(&mut tables, &keys, now)
        })
        .await
    }

    async fn cache_put(
        &self,
        scope: &ScopeKeys,
        puts: &[CachePut],
        budget_bytes: Option<u64>,
    ) -> StoreResult<PutOutcome> {
        let puts = cache::prepare_puts(scope.base(), puts)?;
        let needed = cache::batch_size(&puts);
        if let Some(budget) = budget_bytes
            && needed > budget
        {
            return Err(StoreError::OverBudget { needed, budget });
        }
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            cache::put(&mut tables, &base, &puts, budget_bytes, now)
        })
        .await
    }

    async fn cache_remove(&self, scope: &ScopeKeys, keys: &[String]) -> StoreResult<RemoveOutcome> {
        let keys = keys.to_vec();
        self.cache_remove_with(scope, move |_, _| Ok(keys)).await
    }

    async fn cache_remove_tag(&self, scope: &ScopeKeys, tag: &str) -> StoreResult<RemoveOutcome> {
        let tag = tag.to_owned();
        self.cache_remove_with(scope, move |tables, base| tables.tagged(base, &tag))
            .await
    }

    async fn cache_remove_namespace(
        &self,
        scope: &ScopeKeys,
        namespace: &str,
    ) -> StoreResult<RemoveOutcome> {
        let prefix = format!("{}:c:{namespace}:", scope.base());
        self.cache_remove_with(scope, move |tables, _| tables.with_prefix(&prefix))
            .await
    }

    async fn cache_clear(&self, scope: &ScopeKeys) -> StoreResult<RemoveOutcome> {
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let (removed, usage) = cache::ScopeTxn::begin(&mut tables, &base, now)?.clear()?;
            Ok(RemoveOutcome {
                removed,
                used_bytes: usage.bytes,
                entries: usage.entries,
            })
        })
        .await
    }

    async fn cache_usage(&self, scope: &ScopeKeys) -> StoreResult<ScopeUsage> {
        // Read-only when nothing in the scope has expired, the usual case.
        if let Some(usage) = cache::usage_if_clean(&self.inner.db, scope.base(), &self.inner.clock)?
        {
            return Ok(usage);
        }
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let scope = cache::ScopeTxn::begin(&mut tables, &base, now)?;
            let usage = scope.finish()?;
            Ok(ScopeUsage {
                used_bytes: usage.bytes,
                entries: usage.entries,
            })
        })
        .await
    }
}

impl EmbeddedStore {
    /// Removes the scope's entries that `select` lists, with accounting, in one
    /// transaction (after dropping the scope's expired entries).
    async fn cache_remove_with<F>(&self, scope: &ScopeKeys, select: F) -> StoreResult<RemoveOutcome>
    where
        F: FnOnce(&CacheTables<'_>, &str) -> StoreResult<Vec<String>> + Send + 'static,
    {
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let mut scope = cache::ScopeTxn::begin(&mut tables, &base, now)?;
            let keys = select(scope.tables(), &base)?;
            let mut removed = 0;
            for key in &keys {
                if scope.remove(key)? {
                    removed += 1;
                }
            }
            let usage = scope.finish()?;
            Ok(RemoveOutcome {
                removed,
                used_bytes: usage.bytes,
                entries: usage.entries,
            })
        })
        .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! The store's own tests; shared fixtures for the cache and sweeper tests too.

    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::{KeyHash, Namespace, Scope};
    use crate::tenant_id::TenantId;

    /// A fixed start time, far from 0.
    pub(crate) const T0: u64 = 1_700_000_000_000;

    /// Background tasks that never run during a test unless it asks for them.
    pub(crate) fn quiet_config() -> EmbeddedConfig {
        EmbeddedConfig {
            sweep_interval_ms: 3_600_000,
            flush_interval_ms: 3_600_000,
            page_cache_bytes: 4 * 1024 * 1024,
            ..EmbeddedConfig::default()
        }
    }

    pub(crate) struct Fixture {
        pub dir: tempfile::TempDir,
        pub clock: Arc<ManualClock>,
        pub store: Arc<EmbeddedStore>,
    }

    pub(crate) fn fixture_with(cfg: &EmbeddedConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let store = EmbeddedStore::open(dir.path(), cfg, clock.clone()).unwrap();
        Fixture { dir, clock, store }
    }

    pub(crate) fn fixture() -> Fixture {
        fixture_with(&quiet_config())
    }

    pub(crate) fn tenant(id: &str) -> ScopeKeys {
        ScopeKeys::new("riptide", &Scope::Tenant(TenantId::parse(id).unwrap()))
    }

    pub(crate) fn entry_key(scope: &ScopeKeys, ns: &str, name: &str) -> String {
        scope.entry(&Namespace::parse(ns).unwrap(), &KeyHash::of(name))
    }

    /// A cache put of `len` bytes of `name`'s first byte.
    pub(crate) fn cput(
        scope: &ScopeKeys,
        ns: &str,
        name: &str,
        len: usize,
        ttl_ms: Option<u64>,
        tags: &[&str],
    ) -> CachePut {
        CachePut {
            key: entry_key(scope, ns, name),
            namespace: ns.to_owned(),
            value: Bytes::from(vec![name.as_bytes()[0]; len]),
            ttl_ms,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn set_get_and_missing() {
        let f = fixture();
        assert_eq!(f.store.kind(), StoreKind::Embedded);
        assert_eq!(f.store.key_prefix(), "riptide");
        f.store.ping().await.unwrap();
        f.store
            .set("k", b"hello", None, Durability::Durable)
            .await
            .unwrap();
        assert_eq!(
            f.store.get("k").await.unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(f.store.get("nope").await.unwrap(), None);
        f.store
            .set("k", b"", None, Durability::Cache)
            .await
            .unwrap();
        assert_eq!(f.store.get("k").await.unwrap().as_deref(), Some(&b""[..]));
    }

    #[tokio::test]
    async fn ttl_expires_to_the_millisecond() {
        let f = fixture();
        f.store
            .set("short", b"v", Some(250), Durability::Cache)
            .await
            .unwrap();
        f.store
            .set("long", b"v", Some(60_000), Durability::Cache)
            .await
            .unwrap();
        f.clock.advance_ms(249);
        assert!(f.store.get("short").await.unwrap().is_some());
        f.clock.advance_ms(1);
        assert_eq!(f.store.get("short").await.unwrap(), None);
        let many = f
            .store
            .get_many(&["short".into(), "long".into()])
            .await
            .unwrap();
        assert_eq!(many, vec![None, Some(Bytes::from_static(b"v"))]);
    }

    #[tokio::test]
    async fn rewriting_a_value_replaces_its_ttl() {
        let f = fixture();
        f.store
            .set("k", b"1", Some(100), Durability::Cache)
            .await
            .unwrap();
        f.store
            .set("k", b"2", None, Durability::Cache)
            .await
            .unwrap();
        f.clock.advance_ms(1_000);
        assert_eq!(f.store.sweep_now().unwrap(), 0);
        assert_eq!(f.store.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn ttl_of_zero_is_refused() {
        let f = fixture();
        let err = f
            .store
            .set("k", b"v", Some(0), Durability::Cache)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        let batch = vec![
            ("a".to_owned(), Bytes::from_static(b"1"), None),
            ("b".to_owned(), Bytes::new(), Some(0)),
        ];
        assert!(matches!(
            f.store.set_many(&batch, Durability::Cache).await,
            Err(StoreError::Backend(_))
        ));
        assert_eq!(
            f.store.get("a").await.unwrap(),
            None,
            "nothing of a refused batch is written"
        );
        let scope = tenant("acme");
        let put = cput(&scope, "ns", "x", 1, Some(0), &[]);
        assert!(matches!(
            f.store.cache_put(&scope, &[put], None).await,
            Err(StoreError::Backend(_))
        ));
    }

    #[tokio::test]
    async fn get_many_and_set_many_keep_order() {
        let f = fixture();
        let batch: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|k| ((*k).to_owned(), Bytes::from(k.repeat(3)), None))
            .collect();
        f.store.set_many(&batch, Durability::Durable).await.unwrap();
        let keys: Vec<String> = ["c", "missing", "a", "b", "a"]
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
        let got = f.store.get_many(&keys).await.unwrap();
        let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
        assert_eq!(
            got,
            vec![
                Some(&b"ccc"[..]),
                None,
                Some(b"aaa"),
                Some(b"bbb"),
                Some(b"aaa")
            ]
        );
        assert!(f.store.get_many(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn delete_counts_live_values_once() {
        let f = fixture();
        f.store
            .set("a", b"1", None, Durability::Durable)
            .await
            .unwrap();
        f.store
            .set("b", b"2", Some(10), Durability::Durable)
            .await
            .unwrap();
        f.clock.advance_ms(10);
        let keys: Vec<String> = ["a", "b", "c", "a"]
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
        assert_eq!(f.store.delete(&keys).await.unwrap(), 1);
        assert_eq!(f.store.get("a").await.unwrap(), None);
        assert_eq!(
            f.store.sweep_now().unwrap(),
            0,
            "the expired value went with its index row"
        );
    }

    #[tokio::test]
    async fn reopen_after_drop_keeps_data() {
        let f = fixture();
        let scope = tenant("acme");
        f.store
            .set("durable", b"d", None, Durability::Durable)
            .await
            .unwrap();
        let put = cput(&scope, "ns", "x", 10, Some(60_000), &["t"]);
        f.store
            .cache_put(&scope, std::slice::from_ref(&put), None)
            .await
            .unwrap();
        let weak = Arc::downgrade(&f.store.inner);
        drop(f.store);
        assert!(
            weak.upgrade().is_none(),
            "no background task keeps the store alive"
        );

        let store = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap();
        assert_eq!(
            store.get("durable").await.unwrap().as_deref(),
            Some(&b"d"[..])
        );
        assert_eq!(store.get(&put.key).await.unwrap(), Some(put.value));
        let usage = store.cache_usage(&scope).await.unwrap();
        assert_eq!(
            usage,
            ScopeUsage {
                used_bytes: 10,
                entries: 1
            }
        );
        assert_eq!(
            store.cache_remove_tag(&scope, "t").await.unwrap().removed,
            1
        );
    }

    #[tokio::test]
    async fn a_second_open_of_a_live_store_is_refused() {
        let f = fixture();
        let err = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err}");
    }

    #[test]
    fn open_outside_a_runtime_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            EmbeddedStore::open(dir.path(), &quiet_config(), ManualClock::new(T0)).unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err}");
    }

    #[tokio::test]
    async fn flush_tracks_non_durable_commits() {
        let f = fixture();
        let inner = &f.store.inner;
        assert!(!inner.flush().unwrap(), "nothing to flush after open");
        f.store
            .set("c", b"1", None, Durability::Cache)
            .await
            .unwrap();
        assert!(inner.flush().unwrap());
        assert!(!inner.flush().unwrap());
        f.store
            .set("c", b"2", None, Durability::Cache)
            .await
            .unwrap();
        f.store
            .set("d", b"3", None, Durability::Durable)
            .await
            .unwrap();
        assert!(
            !inner.flush().unwrap(),
            "a durable write covers earlier cache writes"
        );
    }
}
