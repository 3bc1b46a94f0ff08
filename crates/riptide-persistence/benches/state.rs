//! Benchmarks of the state layer (issue 4, item 9): invalidation propagation between two
//! instances, checkpoint create / restore at scale, and session gets from memory and
//! from spill files.
//!
//! Same method as `latency.rs`: every operation is timed on its own, the samples are
//! sorted and read as percentiles, and each figure is set against a reference measured in
//! the same run, the cases interleaved in short chunks in an order shuffled every round
//! (`riptide_test_support::interleave!` with `Order::Shuffle`), so noise from other processes on these shared cores hits every side
//! alike.
//!
//! 1. **Invalidation propagation** on one Redis (the bench's own `redis-server`): two
//!    instances, each a `RedisStore` connection + `DistributedSync` + an L1 cache
//!    attached with `attach_cache`. B holds the key in L1; A sets it. Measured from A's
//!    `set` returning to the moment B's sync handler sees the `Cache` message (a handler
//!    registered after `attach_cache`, so the L1 copy is already dropped then), and, as a
//!    second case, until B's `get` returns the new value (polling B, yielding between
//!    polls). Reference: a raw `redis` crate `PUBLISH` → message on a raw `SUBSCRIBE`
//!    connection, timestamped by the subscriber task, with the payload A sends. Context:
//!    the same on the embedded store (two instances in one process).
//! 2. **Session gets** on the embedded store with the tenant layer attached (as
//!    `StateManager` runs them): from memory; loading a spilled session back when the
//!    memory tier has room (first touch after `spill_all`); loading one back when the tier
//!    is full (every get also evicts the least recently used one, whose spill file the
//!    background writer writes, off the get — the steady state of a session set larger
//!    than `session_memory_limit_bytes`); and from
//!    the store (local copies forgotten). Reference: the memory get.
//! 3. **Checkpoints** of `CKPT_TENANTS` tenants (10,000) and `CKPT_SESSIONS` sessions
//!    (100,000) on the embedded store, and `CKPT_REDIS_TENANTS` / `CKPT_REDIS_SESSIONS`
//!    (a tenth of those) on Redis: create time (`CKPT_REPEAT` runs, 3), file size,
//!    list-and-verify, dry run against the live store, and restore into an empty store.
//!    Tenants are created through the real `TenantManager` (tenant, one API key, one
//!    usage record, storage charged); sessions are written with `SessionManager::import`,
//!    one batch per tenant, because `SessionManager::create` costs several durable
//!    commits per session (its rate is measured in section 2), and the tenant is charged
//!    the bytes the import reports. A sample is read back through `SessionManager::get`.
//!
//! Run: `cargo bench -p riptide-persistence --bench state`. `STATE_SCALE=0.2` runs a fifth
//! of the latency samples; `STATE_ONLY=sync,sessions,checkpoint` (any subset) picks
//! sections. Progress goes to stderr, the markdown report to stdout.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use riptide_persistence::cache::Invalidation;
use riptide_persistence::clock::system_clock;
use riptide_persistence::config::{self, EmbeddedConfig, RedisConfig, StateConfig, SyncConfig};
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::state::checkpoint::{CheckpointExtra, CheckpointManager, RecordKind};
use riptide_persistence::state::sessions::{Session, SessionCookie, SessionInit, SessionManager};
use riptide_persistence::store::Durability;
use riptide_persistence::store::embedded::EmbeddedStore;
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::sync::{DistributedSync, SyncBody, SyncEvent, SyncMessage};
use riptide_persistence::tenant::{
    BillingPlan, ResourceUsageRecord, TenantConfig, TenantIsolationLevel, TenantManager,
    TenantMetrics, TenantOwner,
};
use riptide_persistence::{CacheConfig, PersistentCacheManager, SharedStore, TenantId};
use tokio::sync::Notify;

mod common;
use common::{cpu_model, loadavg, proc_status_kib};
use riptide_test_support::interleave;
use riptide_test_support::percentiles::{Dist, Order, fmt_ns};

fn fmt_dur(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        fmt_ns(d.as_nanos() as u64)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale) as usize).max(100)
}

/// Resets the peak RSS (`VmHWM`) to the current RSS; false where the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A table row: a case's distribution against a reference's.
struct Row {
    case: String,
    dist: Dist,
    reference: Option<(String, Dist)>,
}

impl Row {
    fn new(case: impl Into<String>, ns: Vec<u64>) -> Self {
        Self {
            case: case.into(),
            dist: Dist::new(ns),
            reference: None,
        }
    }

    fn against(mut self, name: impl Into<String>, reference: &Dist) -> Self {
        self.reference = Some((name.into(), reference.clone()));
        self
    }

    fn markdown(&self) -> String {
        let (reference, r50, r99) = match &self.reference {
            Some((name, r)) => (
                format!("{name}: {} / {}", fmt_ns(r.p50()), fmt_ns(r.p99())),
                format!("{:.2}×", self.dist.p50() as f64 / r.p50().max(1) as f64),
                format!("{:.2}×", self.dist.p99() as f64 / r.p99().max(1) as f64),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            self.case,
            fmt_ns(self.dist.p50()),
            fmt_ns(self.dist.p99()),
            reference,
            r50,
            r99,
            self.dist.ns.len()
        )
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| case | p50 | p99 | reference, same run (p50 / p99) | ratio p50 | ratio p99 | samples |\n\
         |---|---|---|---|---|---|---|\n",
    );
    rows.iter().for_each(|r| s.push_str(&r.markdown()));
    s.push_str("\n| distribution | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} |\n",
            r.case,
            r.dist.tail_cells_at(&[0.50, 0.90, 0.99, 0.999, 1.0])
        ));
    }
    s
}

// ---------------------------------------------------------------- fixtures

/// Key prefix of the embedded stores (the Redis ones get unique prefixes).
const PREFIX: &str = "riptide";
/// The tenant of the invalidation section.
const TENANT: &str = "acme";
/// TTL of cache entries: nothing expires during a run.
const ONE_DAY: Duration = Duration::from_secs(86_400);

fn embedded() -> (SharedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = EmbeddedConfig {
        key_prefix: PREFIX.to_owned(),
        ..Default::default()
    };
    let store: SharedStore =
        EmbeddedStore::open(dir.path(), &cfg, system_clock()).expect("open embedded store");
    (store, dir)
}

/// A connection to the bench's own `redis-server` with key prefix `prefix`.
async fn redis_store(prefix: &str) -> SharedStore {
    let url = riptide_test_support::redis_server().url();
    let cfg = RedisConfig {
        key_prefix: prefix.to_owned(),
        ..Default::default()
    };
    Arc::new(
        RedisStore::connect_standalone(&url, &cfg)
            .await
            .expect("connect to the bench redis-server"),
    )
}

fn owner() -> TenantOwner {
    TenantOwner {
        id: "owner-1".into(),
        name: "Ada".into(),
        email: "ada@example.com".into(),
        organization: Some("Harbour Gazette".into()),
    }
}

fn tenant_config(id: &str) -> TenantConfig {
    TenantConfig {
        tenant_id: id.to_owned(),
        name: format!("Tenant {id}"),
        quotas: HashMap::from([
            ("operations_per_minute".to_owned(), 600),
            ("burst".to_owned(), 100),
        ]),
        isolation_level: TenantIsolationLevel::Standard,
        encryption_enabled: false,
        settings: HashMap::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

async fn tenant_manager(store: SharedStore, secrets: PathBuf) -> Arc<TenantManager> {
    Arc::new(
        TenantManager::with_store(
            store,
            config::TenancyConfig {
                secrets_dir: secrets,
                ..Default::default()
            },
            Arc::new(RwLock::new(TenantMetrics::new())),
            system_clock(),
        )
        .await
        .expect("tenant manager"),
    )
}

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn hex(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes * 2);
        while s.len() < bytes * 2 {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(bytes * 2);
        s
    }

    /// A 22-character URL-safe id, like `SessionManager`'s.
    fn session_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..22)
            .map(|_| ALPHABET[(self.next() % 64) as usize] as char)
            .collect()
    }
}

/// What a session of the benches holds: four cookies (two of them random tokens) and
/// three headers, as a logged-in scraping session would.
fn session_parts(rng: &mut Rng) -> (Vec<SessionCookie>, BTreeMap<String, String>) {
    let cookies = vec![
        SessionCookie {
            name: "session".into(),
            value: rng.hex(32),
            domain: Some(".example.com".into()),
            path: Some("/".into()),
        },
        SessionCookie {
            name: "csrftoken".into(),
            value: rng.hex(16),
            domain: None,
            path: None,
        },
        SessionCookie {
            name: "lang".into(),
            value: "en-GB".into(),
            domain: None,
            path: None,
        },
        SessionCookie {
            name: "_ga".into(),
            value: format!("GA1.2.{}.{}", rng.next() % 1_000_000_000, 1_790_000_000),
            domain: Some(".example.com".into()),
            path: None,
        },
    ];
    let headers = BTreeMap::from([
        (
            "user-agent".to_owned(),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 RipTide/1.0".to_owned(),
        ),
        ("accept-language".to_owned(), "en-GB,en;q=0.9".to_owned()),
        (
            "referer".to_owned(),
            "https://www.example.com/account/overview".to_owned(),
        ),
    ]);
    (cookies, headers)
}

fn session_init(rng: &mut Rng) -> SessionInit {
    let (cookies, headers) = session_parts(rng);
    SessionInit {
        cookies,
        headers,
        ttl: None,
    }
}

fn tenant_keys(store: &SharedStore, tenant: &str) -> ScopeKeys {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(tenant).expect("tenant id")),
    )
}

// ---------------------------------------------------------------- main

struct Settings {
    scale: f64,
    sections: Vec<String>,
    ckpt_tenants: usize,
    ckpt_sessions: usize,
    redis_tenants: usize,
    redis_sessions: usize,
    repeat: usize,
}

impl Settings {
    fn from_env() -> Self {
        let scale = std::env::var("STATE_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| *s > 0.0)
            .unwrap_or(1.0);
        let sections = std::env::var("STATE_ONLY")
            .unwrap_or_else(|_| "sync,sessions,checkpoint".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect();
        let ckpt_tenants = env_usize("CKPT_TENANTS", 10_000).max(1);
        let ckpt_sessions = env_usize("CKPT_SESSIONS", 100_000);
        Self {
            scale,
            sections,
            ckpt_tenants,
            ckpt_sessions,
            redis_tenants: env_usize("CKPT_REDIS_TENANTS", (ckpt_tenants / 10).max(1)).max(1),
            redis_sessions: env_usize("CKPT_REDIS_SESSIONS", ckpt_sessions / 10),
            repeat: env_usize("CKPT_REPEAT", 3).max(1),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }
}

fn main() {
    let settings = Arc::new(Settings::from_env());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let load_before = loadavg();
    // The latency sections run as a task on a worker, as a request handler would. The
    // checkpoint section runs on this thread (see `for_each_tenant`); it measures
    // seconds, not microseconds.
    let mut report = {
        let settings = settings.clone();
        runtime
            .block_on(async move { tokio::spawn(latency_sections(settings)).await })
            .expect("bench task")
    };
    if settings.runs("checkpoint") {
        report.push_str(&runtime.block_on(checkpoint_section(&settings)));
    }
    report.push_str(&format!(
        "Run: {:.0} s, load average {} before, {} after; {} × `{}`, STATE_SCALE={}; VmHWM {}.\n",
        started.elapsed().as_secs_f64(),
        load_before,
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        settings.scale,
        mib(proc_status_kib("VmHWM") * 1024),
    ));
    println!("{report}");
}

async fn latency_sections(settings: Arc<Settings>) -> String {
    let mut out = String::from("# State benchmarks (`benches/state.rs`)\n\n");
    if settings.runs("sync") {
        out.push_str(&invalidation_section(settings.scale).await);
    }
    if settings.runs("sessions") {
        out.push_str(&sessions_section(settings.scale).await);
    }
    out
}

// ---------------------------------------------------------------- 1. invalidation

/// When B's handler saw `Cache` messages, by store key.
#[derive(Default)]
struct Arrivals {
    seen: Mutex<Vec<(String, Instant)>>,
    notify: Notify,
}

impl Arrivals {
    /// Registers a handler on `sync` that timestamps every `Cache` key invalidation.
    /// Registered after `attach_cache`: handlers run in order, so the L1 copy is gone
    /// by the time the timestamp is taken.
    fn attach(sync: &DistributedSync) -> Arc<Self> {
        let arrivals = Arc::new(Self::default());
        let sink = arrivals.clone();
        sync.on_event(Arc::new(move |event| {
            if let SyncEvent::Message(SyncBody::Cache(Invalidation::Key { store_key })) = event {
                let at = Instant::now();
                sink.seen
                    .lock()
                    .expect("arrivals")
                    .push((store_key.clone(), at));
                sink.notify.notify_one();
            }
        }));
        arrivals
    }

    fn forget(&self, key: &str) {
        self.seen
            .lock()
            .expect("arrivals")
            .retain(|(k, _)| k != key);
    }

    /// When the invalidation of `key` arrived (waits for it, at most 2 s).
    async fn wait(&self, key: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            {
                let mut seen = self.seen.lock().expect("arrivals");
                if let Some(pos) = seen.iter().position(|(k, _)| k == key) {
                    return seen.remove(pos).1;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the invalidation of {key} never arrived");
            let _ = tokio::time::timeout(left, self.notify.notified()).await;
        }
    }
}

/// One instance: its sync layer and its cache (L1 on), attached.
struct Instance {
    sync: Arc<DistributedSync>,
    cache: Arc<PersistentCacheManager>,
}

async fn instance(store: SharedStore) -> Instance {
    let sync = DistributedSync::start(store.clone(), system_clock(), &SyncConfig::default())
        .await
        .expect("start sync");
    let cache =
        Arc::new(PersistentCacheManager::with_store(store, CacheConfig::default()).expect("cache"));
    sync.attach_cache(cache.clone());
    Instance { sync, cache }
}

fn entry_key(store: &SharedStore, key: &str) -> String {
    tenant_keys(store, TENANT).entry(&Namespace::of_key(key), &KeyHash::of(key))
}

fn cache_value(i: usize) -> Bytes {
    Bytes::from(format!(
        "{{\"version\":{i},\"body\":\"{}\"}}",
        "x".repeat(200)
    ))
}

/// One propagation sample: B holds `key` in L1; A sets a new value. Returns ns from A's
/// `set` returning to B's handler timestamp (0 when it arrived first), and records the
/// time from the `set` call and the `set` itself.
#[allow(clippy::too_many_arguments)]
async fn propagate(
    a: &Instance,
    b: &Instance,
    arrivals: &Arrivals,
    key: &str,
    store_key: &str,
    i: usize,
    side: &Mutex<(Vec<u64>, Vec<u64>)>,
    early: &AtomicU64,
) -> u64 {
    let v = cache_value(i);
    black_box(b.cache.get_bytes(key, TENANT).await.expect("B get"));
    arrivals.forget(store_key);
    let called = Instant::now();
    a.cache
        .set_bytes(key, v.clone(), TENANT, Some(ONE_DAY), None)
        .await
        .expect("A set");
    let returned = Instant::now();
    let at = arrivals.wait(store_key).await;
    let got = b.cache.get_bytes(key, TENANT).await.expect("B get");
    assert_eq!(
        got,
        Some(v),
        "B reads the new value once the message arrived"
    );
    {
        let mut side = side.lock().expect("side");
        side.0.push(at.duration_since(called).as_nanos() as u64);
        side.1
            .push(returned.duration_since(called).as_nanos() as u64);
    }
    match at.checked_duration_since(returned) {
        Some(d) => d.as_nanos() as u64,
        None => {
            early.fetch_add(1, Ordering::Relaxed);
            0
        }
    }
}

async fn invalidation_section(scale: f64) -> String {
    eprintln!("[state] invalidation propagation");
    let prefix = riptide_test_support::unique("sync");
    let a = instance(redis_store(&prefix).await).await;
    let b = instance(redis_store(&prefix).await).await;
    let arrivals_b = Arrivals::attach(&b.sync);
    let (estore, _edir) = embedded();
    let ea = instance(estore.clone()).await;
    let eb = instance(estore.clone()).await;
    let arrivals_eb = Arrivals::attach(&eb.sync);

    let key_h = "page:https://example.com/sync/handler";
    let key_p = "page:https://example.com/sync/poll";
    let store = a.cache.store().clone();
    let (skey_h, skey_p, skey_e) = (
        entry_key(&store, key_h),
        entry_key(&store, key_p),
        entry_key(&estore, key_h),
    );

    // The raw reference: a SUBSCRIBE connection whose task timestamps each message, and
    // a PUBLISH of the bytes A sends for one invalidation.
    let url = riptide_test_support::redis_server().url();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let raw_channel = format!("{prefix}:raw");
    let mut pubsub = client.get_async_pubsub().await.expect("raw pubsub");
    pubsub.subscribe(&raw_channel).await.expect("raw SUBSCRIBE");
    let (stamp_tx, stamp_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let subscriber = tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(m) = messages.next().await {
            let at = Instant::now();
            black_box(m.get_payload_bytes().len());
            if stamp_tx.send(at).is_err() {
                return;
            }
        }
    });
    let stamp_rx = tokio::sync::Mutex::new(stamp_rx);
    let publisher = client
        .get_connection_manager()
        .await
        .expect("raw publisher connection");
    let payload = SyncMessage::new(
        a.sync.id(),
        SyncBody::Cache(Invalidation::Key {
            store_key: skey_h.clone(),
        }),
    )
    .encode()
    .expect("encode");

    let side_redis = Mutex::new((Vec::new(), Vec::new()));
    let side_embedded = Mutex::new((Vec::new(), Vec::new()));
    let (early_redis, early_embedded) = (AtomicU64::new(0), AtomicU64::new(0));
    let polls = AtomicU64::new(0);
    let n = scaled(2_000, scale);
    let (a, b, ea, eb) = (&a, &b, &ea, &eb);
    let (arrivals_b, arrivals_eb) = (&*arrivals_b, &*arrivals_eb);
    let (skey_h, skey_p, skey_e) = (&skey_h, &skey_p, &skey_e);
    let (side_redis, side_embedded, early_redis, early_embedded, polls) = (
        &side_redis,
        &side_embedded,
        &early_redis,
        &early_embedded,
        &polls,
    );
    let (stamp_rx, publisher, raw_channel, payload) =
        (&stamp_rx, &publisher, &raw_channel, &payload);

    let redis_handler = |i: usize| async move {
        propagate(a, b, arrivals_b, key_h, skey_h, i, side_redis, early_redis).await
    };
    let redis_poll = |i: usize| async move {
        let v = cache_value(i);
        black_box(b.cache.get_bytes(key_p, TENANT).await.expect("B get"));
        arrivals_b.forget(skey_p);
        a.cache
            .set_bytes(key_p, v.clone(), TENANT, Some(ONE_DAY), None)
            .await
            .expect("A set");
        let returned = Instant::now();
        loop {
            let got = b.cache.get_bytes(key_p, TENANT).await.expect("B get");
            if got.as_ref() == Some(&v) {
                break;
            }
            polls.fetch_add(1, Ordering::Relaxed);
            assert!(
                returned.elapsed() < Duration::from_secs(2),
                "B never saw the new value"
            );
            tokio::task::yield_now().await;
        }
        returned.elapsed().as_nanos() as u64
    };
    let raw_pubsub = |_: usize| async move {
        let mut conn = publisher.clone();
        let mut stamps = stamp_rx.lock().await;
        let sent = Instant::now();
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(raw_channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .expect("raw PUBLISH");
        let at = tokio::time::timeout(Duration::from_secs(2), stamps.recv())
            .await
            .expect("raw message within 2 s")
            .expect("subscriber running");
        at.duration_since(sent).as_nanos() as u64
    };
    let embedded_handler = |i: usize| async move {
        propagate(
            ea,
            eb,
            arrivals_eb,
            key_h,
            skey_e,
            i,
            side_embedded,
            early_embedded,
        )
        .await
    };
    let [h, p, r, e] = interleave!(order: Order::Shuffle, n: n, chunk: 100, warm: 100;
        redis_handler, redis_poll, raw_pubsub, embedded_handler);
    subscriber.abort();
    let raw = Dist::new(r);
    let (from_call, set_time) = std::mem::take(&mut *side_redis.lock().expect("side"));
    let (e_from_call, e_set_time) = std::mem::take(&mut *side_embedded.lock().expect("side"));
    // The warm-up calls pushed side samples too: keep the measured ones.
    let tail = |v: Vec<u64>| v[v.len().saturating_sub(n)..].to_vec();
    let rows =
        vec![
        Row::new(
            "Redis: A's `set` returns → B's handler has the `Cache` message (B's L1 copy dropped)",
            h,
        )
        .against("raw PUBLISH → SUBSCRIBE", &raw),
        Row::new(
            "↳ Redis: A's `set` returns → B's `get` returns the new value (polling B)",
            p,
        )
        .against("raw PUBLISH → SUBSCRIBE", &raw),
        Row::new("↳ Redis: A's `set` called → B's handler (context)", tail(from_call))
            .against("raw PUBLISH → SUBSCRIBE", &raw),
        Row::new("↳ Redis: A's `set` itself, L1 on (context)", tail(set_time)),
        Row::new(
            "embedded, two instances in one process: A's `set` returns → B's handler (context)",
            e,
        ),
        Row::new("↳ embedded: A's `set` itself (context)", tail(e_set_time)),
        Row::new("↳ embedded: A's `set` called → B's handler (context)", tail(e_from_call)),
    ];
    let measured_polls = polls.load(Ordering::Relaxed);
    for s in [&a, &b, &ea, &eb] {
        s.sync.shutdown().await;
    }
    format!(
        "## Invalidation propagation between two instances\n\n\
         {n} samples per case, interleaved in chunks of 100, the order shuffled every round \
         (after 100 warm-up calls each). \
         Two `RedisStore` connections with one key prefix on the bench's `redis-server`, each with \
         `DistributedSync::start` (default `SyncConfig`) and a `PersistentCacheManager` (default \
         `CacheConfig`, L1 on) attached with `attach_cache`; a ~230-byte value; B reads the key \
         (an L1 hit) before every set. The raw reference publishes the exact bytes A sends \
         ({} bytes) on a `ConnectionManager` and timestamps the message in the task reading a \
         raw `get_async_pubsub` connection.\n\n{}\n\
         A's message arrived before its `set` had returned: {} times on Redis, {} embedded (counted as 0). \
         B's `get` was polled {:.2} extra times per sample on average before it returned the new value.\n\n",
        payload.len(),
        table(&rows),
        early_redis.load(Ordering::Relaxed),
        early_embedded.load(Ordering::Relaxed),
        measured_polls as f64 / (n + 100) as f64,
    )
}

// ---------------------------------------------------------------- 2. sessions

/// Sessions per manager in the session section.
const SESSION_POOL: usize = 1_000;
/// Tenants the sessions are spread over.
const SESSION_TENANTS: usize = 10;
/// Sessions the full memory tier holds (its limit is this many sessions' bytes).
const RESIDENT: u64 = 64;

fn session_cfg(spill: PathBuf, limit: u64) -> StateConfig {
    StateConfig {
        spill_dir: spill,
        session_memory_limit_bytes: limit,
        ..Default::default()
    }
}

/// Creates `count` sessions through `m`, spread over `tenants`; returns `(tenant, id)`
/// pairs and the time of each create.
async fn create_sessions(
    m: &SessionManager,
    tenants: &[String],
    count: usize,
    rng: &mut Rng,
    times: &mut Vec<u64>,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let tenant = &tenants[i % tenants.len()];
        let init = session_init(rng);
        let t = Instant::now();
        let s = m.create(tenant, init).await.expect("create session");
        times.push(t.elapsed().as_nanos() as u64);
        out.push((tenant.clone(), s.id));
    }
    out
}

async fn sessions_section(scale: f64) -> String {
    eprintln!("[state] sessions: memory vs spill");
    let (store, _dir) = embedded();
    let secrets = tempfile::tempdir().expect("temp dir");
    let spill = tempfile::tempdir().expect("temp dir");
    let tm = tenant_manager(store.clone(), secrets.path().to_path_buf()).await;
    let tenants: Vec<String> = (0..SESSION_TENANTS)
        .map(|i| format!("sess-{i:02}"))
        .collect();
    for t in &tenants {
        tm.create_tenant(tenant_config(t), owner(), BillingPlan::Professional)
            .await
            .expect("create tenant");
    }
    let mut rng = Rng(0x5eed_5e55);
    let probe = Session {
        id: rng.session_id(),
        tenant_id: tenants[0].clone(),
        cookies: session_parts(&mut rng).0,
        headers: session_parts(&mut rng).1,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        expires_at: Utc::now(),
        version: 1,
    };
    let per_session = probe.memory_bytes();

    let manager = |name: &str, limit: u64| {
        let m = SessionManager::new(
            store.clone(),
            system_clock(),
            &session_cfg(spill.path().join(name), limit),
        );
        m.attach_tenants(tm.clone()).expect("attach tenants");
        m
    };
    let roomy = 64 * 1024 * 1024;
    let mem = manager("memory", roomy);
    // Without the tenant layer: what the tenant check adds to a memory get.
    let bare = SessionManager::new(
        store.clone(),
        system_clock(),
        &session_cfg(spill.path().join("bare"), roomy),
    );
    let first = manager("first-touch", roomy);
    let full = manager("full", RESIDENT * per_session);
    let fromstore = manager("store", roomy);
    let mut create_roomy = Vec::new();
    let mut create_full = Vec::new();
    let mem_ids = create_sessions(&mem, &tenants, SESSION_POOL, &mut rng, &mut create_roomy).await;
    let bare_ids = create_sessions(&bare, &tenants, SESSION_POOL, &mut rng, &mut Vec::new()).await;
    let first_ids =
        create_sessions(&first, &tenants, SESSION_POOL, &mut rng, &mut create_roomy).await;
    let store_ids = create_sessions(
        &fromstore,
        &tenants,
        SESSION_POOL,
        &mut rng,
        &mut create_roomy,
    )
    .await;
    let full_ids = create_sessions(&full, &tenants, SESSION_POOL, &mut rng, &mut create_full).await;
    // The same sessions on Redis: what a get costs when the store is a round trip away.
    let rstore = redis_store(&riptide_test_support::unique("sess")).await;
    let rsecrets = tempfile::tempdir().expect("temp dir");
    let rtm = tenant_manager(rstore.clone(), rsecrets.path().to_path_buf()).await;
    for t in &tenants {
        rtm.create_tenant(tenant_config(t), owner(), BillingPlan::Professional)
            .await
            .expect("create tenant");
    }
    let redis_sessions = SessionManager::new(
        rstore.clone(),
        system_clock(),
        &session_cfg(spill.path().join("redis"), roomy),
    );
    redis_sessions
        .attach_tenants(rtm.clone())
        .expect("attach tenants");
    let mut create_redis = Vec::new();
    let redis_ids = create_sessions(
        &redis_sessions,
        &tenants,
        SESSION_POOL,
        &mut rng,
        &mut create_redis,
    )
    .await;
    // The floor of a spill load: the file work it does on the blocking pool.
    let raw_dir = spill.path().join("raw");
    std::fs::create_dir_all(&raw_dir).expect("raw dir");
    // A session's bytes exactly as the session layer stores and spills them.
    let (raw_tenant, raw_id) = &mem_ids[0];
    let raw_blob = store
        .get(&tenant_keys(&store, raw_tenant).record(&format!("session:{raw_id}")))
        .await
        .expect("read a stored session")
        .expect("the session is stored");
    let encoded_len = raw_blob.len();
    let full_before = full.figures();
    assert!(
        full_before.tiers.spilled_sessions >= (SESSION_POOL as u64 - RESIDENT - 1),
        "the full tier spilled what it could not hold: {full_before:?}"
    );

    let cursor = AtomicUsize::new(0);
    let respills = AtomicU64::new(0);
    let (mem, first, full, fromstore) = (&*mem, &*first, &*full, &*fromstore);
    let (mem_ids, first_ids, store_ids, full_ids) = (&mem_ids, &first_ids, &store_ids, &full_ids);
    let (cursor, respills) = (&cursor, &respills);
    let (bare, bare_ids) = (&*bare, &bare_ids);
    let memory_bare = |i: usize| async move {
        let (t, id) = &bare_ids[i % bare_ids.len()];
        let started = Instant::now();
        let s = bare.get(t, id).await.expect("get");
        let ns = started.elapsed().as_nanos() as u64;
        assert!(s.is_some());
        ns
    };
    let memory = |i: usize| async move {
        let (t, id) = &mem_ids[i % mem_ids.len()];
        let started = Instant::now();
        let s = mem.get(t, id).await.expect("get");
        let ns = started.elapsed().as_nanos() as u64;
        assert!(s.is_some());
        ns
    };
    // First touch after `spill_all`: every session of the pool is in a file, and memory
    // has room, so a get loads one back and evicts nothing. When the pool is used up,
    // everything is spilled again (untimed).
    let spill_room = |_: usize| async move {
        let k = cursor.fetch_add(1, Ordering::Relaxed);
        if k % first_ids.len() == 0 {
            let r = first.spill_all().await;
            assert_eq!(r.failed, 0);
            respills.fetch_add(1, Ordering::Relaxed);
        }
        let (t, id) = &first_ids[k % first_ids.len()];
        let started = Instant::now();
        let s = first.get(t, id).await.expect("get");
        let ns = started.elapsed().as_nanos() as u64;
        assert!(s.is_some());
        ns
    };
    // Full tier, sessions touched in a cycle longer than it holds: every get loads a
    // spilled session and queues the spill of the least recently used one.
    let spill_full = |i: usize| async move {
        let (t, id) = &full_ids[i % full_ids.len()];
        let started = Instant::now();
        let s = full.get(t, id).await.expect("get");
        let ns = started.elapsed().as_nanos() as u64;
        assert!(s.is_some());
        ns
    };
    let from_store = |i: usize| async move {
        let (t, id) = &store_ids[i % store_ids.len()];
        fromstore.forget(t, id).await.expect("forget");
        let started = Instant::now();
        let s = fromstore.get(t, id).await.expect("get");
        let ns = started.elapsed().as_nanos() as u64;
        assert!(s.is_some());
        ns
    };
    let (redis_sessions, redis_ids) = (&*redis_sessions, &redis_ids);
    let from_redis = |i: usize| async move {
        let (t, id) = &redis_ids[i % redis_ids.len()];
        redis_sessions.forget(t, id).await.expect("forget");
        let started = Instant::now();
        let s = redis_sessions.get(t, id).await.expect("get");
        let ns = started.elapsed().as_nanos() as u64;
        assert!(s.is_some());
        ns
    };
    let (raw_dir, raw_blob) = (&raw_dir, &raw_blob);
    let raw_file = |i: usize| async move {
        let path = raw_dir.join(format!("{}.session", i % 64));
        // Written and fsynced as a spill file is (untimed): unlinking a file whose blocks
        // are allocated costs more than unlinking one still only in the page cache.
        let (p, blob) = (path.clone(), raw_blob.clone());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&p)?;
            f.write_all(&blob)?;
            f.sync_all()
        })
        .await
        .expect("blocking task")
        .expect("write raw file");
        let started = Instant::now();
        let bytes = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)?;
            std::fs::remove_file(&path)?;
            Ok::<_, std::io::Error>(bytes)
        })
        .await
        .expect("blocking task")
        .expect("read and remove");
        let ns = started.elapsed().as_nanos() as u64;
        assert_eq!(bytes.len(), raw_blob.len());
        ns
    };
    let n = scaled(2_000, scale);
    let warm = 100;
    // Two groups, each with the memory get as its reference: the tiers that answer in
    // microseconds, and the spill cases, whose fsyncs leave kernel work behind that would
    // otherwise land in the microsecond cases' tails.
    let [m, bare_get, s, redis_get] = interleave!(order: Order::Shuffle, n: n, chunk: 50, warm: warm;
        memory, memory_bare, from_store, from_redis);
    let [m2, r, f, raw_io] = interleave!(order: Order::Shuffle, n: n, chunk: 50, warm: warm;
        memory, spill_room, spill_full, raw_file);

    let (mf, rf, ff, sf) = (
        mem.figures(),
        first.figures(),
        full.figures(),
        fromstore.figures(),
    );
    // Where in its chunk of 50 each slow memory get fell: the first get after another
    // case ran is the one that pays for whatever that case left behind.
    let slow: Vec<usize> = m
        .iter()
        .enumerate()
        .filter(|&(_, &ns)| ns > 50_000)
        .map(|(i, _)| i % 50)
        .collect();
    let slow_first = slow.iter().filter(|&&pos| pos == 0).count();
    let mem_dist = Dist::new(m);
    let mem2_dist = Dist::new(m2);
    let rows = vec![
        Row::new("session get, from memory", mem_dist.ns.clone()),
        Row::new(
            "↳ same, without the tenant layer attached (context)",
            bare_get,
        )
        .against("get from memory", &mem_dist),
        Row::new(
            "session get, from the store, embedded (local copies forgotten; context)",
            s,
        )
        .against("get from memory", &mem_dist),
        Row::new(
            "session get, from the store, Redis (local copies forgotten; context)",
            redis_get,
        )
        .against("get from memory", &mem_dist),
    ];
    let spill_rows = vec![
        Row::new(
            "session get, from memory (this group's reference)",
            mem2_dist.ns.clone(),
        ),
        Row::new(
            "session get, from spill, memory tier has room (first touch after `spill_all`)",
            r,
        )
        .against("get from memory", &mem2_dist),
        Row::new(
            format!(
                "session get, from spill, memory tier full ({RESIDENT} resident of {SESSION_POOL}): loads one, spills one"
            ),
            f,
        )
        .against("get from memory", &mem2_dist),
        Row::new(
            format!(
                "raw: `spawn_blocking` read + unlink of a fsynced {} B file (floor of a spill load; context)",
                raw_blob.len()
            ),
            raw_io,
        ),
    ];
    let create_rows = vec![
        Row::new(
            "`SessionManager::create`, embedded, memory tier has room",
            create_roomy,
        ),
        Row::new(
            "`SessionManager::create`, embedded, memory tier full (each spills one)",
            create_full,
        ),
        Row::new("`SessionManager::create`, Redis", create_redis),
    ];
    let loads = |before: u64, after: u64| after.saturating_sub(before);
    let section = format!(
        "## Session get from memory and from spill\n\n\
         One `SessionManager` per case on the embedded store (one on Redis for the context \
         row), tenant layer attached (every get checks its tenant through the \
         `TenantManager`'s record cache, as `StateManager` wires it); {SESSION_POOL} sessions \
         per manager over {SESSION_TENANTS} tenants, each with 4 cookies and 3 headers \
         ({per_session} B as the memory tier counts it, {encoded_len} B stored or spilled); \
         spill files in a temp dir on the VM's disk (each spill is write + fsync + rename + \
         directory fsync). Two groups of {n} samples per case, each interleaved in chunks \
         of 50 after {warm} warm-up calls each, the order shuffled every round; each group \
         has its own memory-get reference.\n\n\
         Memory tier and store:\n\n{}\n\
         Spill:\n\n{}\n\
         Creating the sessions (sequential, before the measurements; context):\n\n{}\n\
         Checks: the memory manager loaded {} sessions from spill (expected 0); the room \
         manager loaded {} and was re-spilled {} times; the full manager loaded {} and \
         spilled {} (expected about one each per get: {}), holding {} sessions in memory; \
         the store managers loaded {} and {} from spill (expected 0).\n\n\
         Memory gets (first group) over 50 µs: {} of {}, {} of them the first get of \
         their chunk.\n\n",
        table(&rows),
        table(&spill_rows),
        table(&create_rows),
        mf.loads_total,
        rf.loads_total,
        respills.load(Ordering::Relaxed),
        loads(full_before.loads_total, ff.loads_total),
        loads(full_before.spills_total, ff.spills_total),
        n + warm,
        ff.tiers.memory_sessions,
        sf.loads_total,
        redis_sessions.figures().loads_total,
        slow.len(),
        n,
        slow_first,
    );
    tm.shutdown().await;
    rtm.shutdown().await;
    section
}

// ---------------------------------------------------------------- 3. checkpoints

/// Tenants populated or read at once.
const POPULATE_CONCURRENCY: usize = 8;

/// Runs `f(i, id)` for every tenant id, [`POPULATE_CONCURRENCY`] at a time.
///
/// Not on tasks of their own: `TenantManager::create_api_key_by`'s future is not `Send`
/// as far as the compiler can prove (`api_keys::delete_lookups` awaits a
/// `stream::iter(..).map(|k| async move { .. }).buffer_unordered(..)`, which hits the
/// "implementation of `Send` is not general enough" limitation), so it cannot be spawned.
/// For the same reason the checkpoint section runs on the runtime's `block_on` thread.
async fn for_each_tenant<F, Fut>(ids: &[String], f: F)
where
    F: Fn(usize, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| f(i, id.clone()))
        .buffer_unordered(POPULATE_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Embedded,
    Redis,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded (redb)",
            Backend::Redis => "Redis",
        }
    }
}

/// A fresh, empty store of `backend` (and the temp dir it lives in, when embedded).
async fn fresh_store(backend: Backend) -> (SharedStore, Option<tempfile::TempDir>) {
    match backend {
        Backend::Embedded => {
            let (s, d) = embedded();
            (s, Some(d))
        }
        Backend::Redis => (redis_store(&riptide_test_support::unique("ck")).await, None),
    }
}

/// What one backend's checkpoint run measured.
struct CkptFigures {
    backend: Backend,
    tenants: usize,
    sessions: usize,
    populate_tenants: Duration,
    populate_sessions: Duration,
    session_bytes: u64,
    creates: Vec<Duration>,
    size: u64,
    /// Peak RSS growth of each create run (KiB), when the kernel lets the peak be reset.
    peak_rss_growth: Vec<Option<u64>>,
    list: Duration,
    dry_run: Duration,
    dry_changes: u64,
    restore: Duration,
    restore_objects: u64,
    /// The unit a restore is made of, same run: one durable write (embedded) or one
    /// `SET` round trip (Redis), measured just before and just after the restore.
    unit: (&'static str, Dist, Dist),
}

async fn checkpoint_section(settings: &Settings) -> String {
    let embedded = checkpoint_backend(
        Backend::Embedded,
        settings.ckpt_tenants,
        settings.ckpt_sessions,
        settings.repeat,
    )
    .await;
    let redis = checkpoint_backend(
        Backend::Redis,
        settings.redis_tenants,
        settings.redis_sessions,
        settings.repeat,
    )
    .await;
    let all = [embedded, redis];
    let mut s = String::from(
        "## Checkpoint and restore\n\n\
         Tenants through the real `TenantManager` (`create_tenant` Professional with 2 quota \
         overrides, one API key, one usage record flushed, session bytes charged with \
         `adjust_storage`); sessions written with `SessionManager::import` (see the bench's \
         docs), one batch per tenant, durable. Populating runs 8 tenants at a time. \
         Checkpoint create runs on the populated store; the dry run compares the checkpoint \
         with that same store (no changes expected); the restore goes into an empty store of \
         the same kind (a new temp dir / a new key prefix).\n\n",
    );
    s.push_str("| | ");
    s.push_str(
        &all.iter()
            .map(|f| {
                format!(
                    "{}: {} tenants, {} sessions",
                    f.backend.name(),
                    f.tenants,
                    f.sessions
                )
            })
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s.push_str(" |\n|---|");
    s.push_str(&"---|".repeat(all.len()));
    s.push('\n');
    let mut row = |label: &str, cell: &dyn Fn(&CkptFigures) -> String| {
        s.push_str(&format!("| {label} | "));
        s.push_str(&all.iter().map(cell).collect::<Vec<_>>().join(" | "));
        s.push_str(" |\n");
    };
    row("populate: tenants (`TenantManager`)", &|f| {
        format!(
            "{} ({})",
            fmt_dur(f.populate_tenants),
            per(f.populate_tenants, f.tenants, "tenant")
        )
    });
    row("populate: sessions (`import`)", &|f| {
        format!(
            "{} ({}); {:.0} B stored per session",
            fmt_dur(f.populate_sessions),
            per(f.populate_sessions, f.tenants, "tenant's batch"),
            f.session_bytes as f64 / f.sessions.max(1) as f64
        )
    });
    row("**checkpoint create**", &|f| {
        let mut sorted = f.creates.clone();
        sorted.sort();
        format!(
            "**{}** median of {} ({}); {}",
            fmt_dur(sorted[sorted.len() / 2]),
            sorted.len(),
            f.creates
                .iter()
                .map(|d| fmt_dur(*d))
                .collect::<Vec<_>>()
                .join(", "),
            per(sorted[sorted.len() / 2], f.tenants, "tenant")
        )
    });
    row("**checkpoint file size**", &|f| {
        format!(
            "**{}** ({} B; {:.0} B per tenant incl. its sessions; {:.0}% of the stored session bytes alone)",
            mib(f.size),
            f.size,
            f.size as f64 / f.tenants as f64,
            f.size as f64 * 100.0 / f.session_bytes.max(1) as f64
        )
    });
    row(
        "peak RSS growth during each create (first run includes filling the store's read cache)",
        &|f| {
            f.peak_rss_growth
                .iter()
                .map(|g| g.map_or_else(|| "n/a (clear_refs refused)".into(), |k| mib(k * 1024)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    row("list (reads and verifies every file)", &|f| {
        format!("{} for {} files", fmt_dur(f.list), f.creates.len())
    });
    row("dry run against the live store", &|f| {
        format!("{} ({} changes)", fmt_dur(f.dry_run), f.dry_changes)
    });
    row("**restore into an empty store**", &|f| {
        format!(
            "**{}** ({} objects written; {})",
            fmt_dur(f.restore),
            f.restore_objects,
            per(f.restore, f.tenants, "tenant")
        )
    });
    row(
        "restore unit, same run: p50 / p99 before, and after, the restore",
        &|f| {
            let (name, before, after) = &f.unit;
            let per_tenant =
                |d: &Dist| f.restore.as_nanos() as f64 / d.p50().max(1) as f64 / f.tenants as f64;
            format!(
                "{name}: {} / {}, and {} / {}; restore per tenant = {:.1} to {:.1} units' p50",
                fmt_ns(before.p50()),
                fmt_ns(before.p99()),
                fmt_ns(after.p50()),
                fmt_ns(after.p99()),
                per_tenant(before).min(per_tenant(after)),
                per_tenant(before).max(per_tenant(after)),
            )
        },
    );
    s.push('\n');
    s
}

fn per(total: Duration, count: usize, what: &str) -> String {
    format!(
        "{} per {what}",
        fmt_ns((total.as_nanos() / count.max(1) as u128) as u64)
    )
}

async fn checkpoint_backend(
    backend: Backend,
    tenants: usize,
    sessions: usize,
    repeat: usize,
) -> CkptFigures {
    eprintln!(
        "[state] checkpoint, {}: {tenants} tenants, {sessions} sessions",
        backend.name()
    );
    let (store, _dir) = fresh_store(backend).await;
    let secrets = tempfile::tempdir().expect("temp dir");
    let tm = tenant_manager(store.clone(), secrets.path().to_path_buf()).await;
    let ids: Vec<String> = (0..tenants).map(|i| format!("ck-{i:06}")).collect();

    // Tenants, through the manager.
    let started = Instant::now();
    let now = Utc::now();
    for_each_tenant(&ids, |i, id| populate_tenant(tm.clone(), i, id, now)).await;
    tm.flush_usage().await.expect("flush usage");
    let populate_tenants = started.elapsed();
    eprintln!(
        "[state]   {tenants} tenants in {}",
        fmt_dur(populate_tenants)
    );

    // Sessions, imported in bulk (one batch per tenant).
    let started = Instant::now();
    let session_bytes = Arc::new(AtomicU64::new(0));
    let layout = SessionLayout {
        per_tenant: sessions / tenants,
        extra: sessions % tenants,
        now_ms: Utc::now().timestamp_millis() as u64,
        ttl_ms: 3_600_000,
    };
    let spill = tempfile::tempdir().expect("temp dir");
    let importer = SessionManager::new(
        store.clone(),
        system_clock(),
        &session_cfg(spill.path().to_path_buf(), 64 * 1024 * 1024),
    );
    importer.attach_tenants(tm.clone()).expect("attach tenants");
    for_each_tenant(&ids, |i, id| {
        populate_sessions(
            importer.clone(),
            tm.clone(),
            session_bytes.clone(),
            layout,
            i,
            id,
        )
    })
    .await;
    let populate_sessions = started.elapsed();
    let session_bytes = session_bytes.load(Ordering::Relaxed);
    eprintln!(
        "[state]   {sessions} sessions in {}",
        fmt_dur(populate_sessions)
    );
    check_sessions_readable(store.clone(), tm.clone(), ids.clone(), layout.per_tenant).await;

    // Create, several times.
    let ckdir = tempfile::tempdir().expect("temp dir");
    let cfg = StateConfig {
        checkpoint_dir: ckdir.path().to_path_buf(),
        checkpoint_retention: repeat + 1,
        ..Default::default()
    };
    let ck = CheckpointManager::new(store.clone(), system_clock(), &cfg);
    // Sealed per tenant as the service does, unless CKPT_UNSEALED=1 (for the ratio).
    let sealed = std::env::var("CKPT_UNSEALED").map_or(true, |v| v != "1");
    if sealed {
        ck.seal_with(tm.data_keys().master().clone());
    }
    eprintln!("[state]   checkpoints sealed per tenant: {sealed}");
    let mut creates = Vec::new();
    let mut peak_rss_growth = Vec::new();
    let mut info = None;
    for run in 0..repeat {
        let reset = reset_peak_rss();
        let rss = proc_status_kib("VmRSS");
        let started = Instant::now();
        let made = ck
            .create(CheckpointExtra::default())
            .await
            .expect("checkpoint");
        creates.push(started.elapsed());
        peak_rss_growth.push(reset.then(|| proc_status_kib("VmHWM").saturating_sub(rss)));
        assert_eq!(
            (made.tenants, made.sessions),
            (tenants as u64, sessions as u64),
            "everything is in the checkpoint"
        );
        eprintln!(
            "[state]   checkpoint {run}: {} in {}",
            mib(made.size_bytes),
            fmt_dur(*creates.last().expect("one"))
        );
        info = Some(made);
    }
    let info = info.expect("at least one checkpoint");

    let started = Instant::now();
    let listed = ck.list().await.expect("list");
    let list = started.elapsed();
    assert!(listed.iter().all(|c| c.valid), "every checkpoint verifies");

    let started = Instant::now();
    let dry = ck.restore(&info.id, true).await.expect("dry run");
    let dry_run = started.elapsed();
    tm.shutdown().await;

    // Restore into an empty store of the same kind.
    let (target, _target_dir) = fresh_store(backend).await;
    let (unit_name, unit_before) = restore_unit(backend, &target).await;
    let ck2 = CheckpointManager::new(target.clone(), system_clock(), &cfg);
    if sealed {
        // A wiped store: the directory's keys file opens the tenants.
        ck2.seal_with(tm.data_keys().master().clone());
    }
    eprintln!("[state]   restoring into an empty store");
    let started = Instant::now();
    let applied = ck2.restore(&info.id, false).await.expect("restore");
    let restore = started.elapsed();
    assert_eq!(applied.counts(RecordKind::Tenant).create, tenants as u64);
    assert_eq!(applied.counts(RecordKind::Session).create, sessions as u64);
    let (_, unit_after) = restore_unit(backend, &target).await;
    check_restored(&store, &target, &ids).await;
    eprintln!("[state]   restored in {}", fmt_dur(restore));

    CkptFigures {
        backend,
        tenants,
        sessions,
        populate_tenants,
        populate_sessions,
        session_bytes,
        creates,
        size: info.size_bytes,
        peak_rss_growth,
        list,
        dry_run,
        dry_changes: dry.changes(),
        restore,
        restore_objects: applied.changes(),
        unit: (unit_name, unit_before, unit_after),
    }
}

/// One tenant through the manager: the tenant, an API key, a usage record.
async fn populate_tenant(tm: Arc<TenantManager>, i: usize, id: String, now: chrono::DateTime<Utc>) {
    tm.create_tenant(tenant_config(&id), owner(), BillingPlan::Professional)
        .await
        .expect("create tenant");
    tm.create_api_key_by("admin", &id, Some("ci"))
        .await
        .expect("API key");
    let usage = ResourceUsageRecord {
        operation_count: 1_000 + i as u64,
        data_bytes: 123_456 * i as u64,
        compute_time_ms: 77 * i as u64,
        storage_bytes: 0,
        timestamp: now,
    };
    tm.record_usage(&id, "api_request", usage)
        .await
        .expect("usage");
}

/// How the sessions are spread and timed.
#[derive(Clone, Copy)]
struct SessionLayout {
    /// Sessions of every tenant...
    per_tenant: usize,
    /// ... plus one for the first `extra` tenants.
    extra: usize,
    now_ms: u64,
    ttl_ms: u64,
}

/// Tenant number `i`'s sessions, written back in bulk through
/// `SessionManager::import` (records with TTL, index, ledger, registry), and its
/// `storage_bytes` charged with what the import stored.
async fn populate_sessions(
    sessions: Arc<SessionManager>,
    tm: Arc<TenantManager>,
    session_bytes: Arc<AtomicU64>,
    layout: SessionLayout,
    i: usize,
    id: String,
) {
    let count = layout.per_tenant + usize::from(i < layout.extra);
    if count == 0 {
        return;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    let batch: Vec<Session> = (0..count)
        .map(|s| {
            let (cookies, headers) = session_parts(&mut rng);
            let expires = layout.now_ms + layout.ttl_ms + s as u64;
            Session {
                id: rng.session_id(),
                tenant_id: id.clone(),
                cookies,
                headers,
                created_at: Utc::now(),
                updated_at: Utc::now(),
                expires_at: chrono::DateTime::from_timestamp_millis(expires as i64).expect("time"),
                version: 1,
            }
        })
        .collect();
    let report = sessions.import(batch).await.expect("import sessions");
    assert_eq!(report.imported, count as u64, "{report:?}");
    tm.adjust_storage(&id, report.bytes as i64)
        .await
        .expect("charge storage");
    session_bytes.fetch_add(report.bytes, Ordering::Relaxed);
}

/// Reads a sample of the written sessions back through a `SessionManager`: the layout
/// is the real one.
async fn check_sessions_readable(
    store: SharedStore,
    tm: Arc<TenantManager>,
    ids: Vec<String>,
    per_tenant: usize,
) {
    if per_tenant == 0 {
        return;
    }
    let spill = tempfile::tempdir().expect("temp dir");
    let m = SessionManager::new(
        store,
        system_clock(),
        &session_cfg(spill.path().to_path_buf(), 64 * 1024 * 1024),
    );
    m.attach_tenants(tm).expect("attach");
    for id in ids.iter().step_by((ids.len() / 50).max(1)) {
        let listed = m.list(id, 0, 5).await.expect("list sessions");
        assert!(!listed.is_empty(), "{id} has sessions");
        for summary in listed {
            let s = m.get(id, &summary.id).await.expect("get").expect("live");
            assert_eq!(s.cookies.len(), 4);
        }
    }
}

/// Compares a sample of restored records with the originals, byte for byte.
async fn check_restored(source: &SharedStore, target: &SharedStore, ids: &[String]) {
    for id in ids.iter().step_by((ids.len() / 50).max(1)) {
        let (a, b) = (tenant_keys(source, id), tenant_keys(target, id));
        assert_eq!(
            source.get(&a.record("meta")).await.expect("get"),
            target.get(&b.record("meta")).await.expect("get"),
            "tenant {id} restored"
        );
        let index = source
            .zset_range(&a.record("sessions"), 0, 3)
            .await
            .expect("index");
        for (sid, _) in index {
            let key = format!("session:{sid}");
            assert_eq!(
                source.get(&a.record(&key)).await.expect("get"),
                target.get(&b.record(&key)).await.expect("get"),
                "session {sid} restored"
            );
        }
    }
}

/// What a restore is made of, measured on the target store before the restore: one
/// durable 1 KB write (embedded) or one `SET` round trip through the store (Redis).
async fn restore_unit(backend: Backend, store: &SharedStore) -> (&'static str, Dist) {
    let value = vec![b'x'; 1024];
    let key = format!("{}:bench:unit", store.key_prefix());
    let mut ns = Vec::with_capacity(300);
    for i in 0..320 {
        let t = Instant::now();
        store
            .set(&key, &value, None, Durability::Durable)
            .await
            .expect("unit write");
        if i >= 20 {
            ns.push(t.elapsed().as_nanos() as u64);
        }
    }
    store.delete(&[key]).await.expect("delete");
    let name = match backend {
        Backend::Embedded => "one durable 1 KB `set`",
        Backend::Redis => "one 1 KB `set` round trip",
    };
    (name, Dist::new(ns))
}
