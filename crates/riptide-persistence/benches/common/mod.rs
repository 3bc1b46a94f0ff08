//! Fixtures shared by the `cache` (criterion) and the percentile benches (`latency`,
//! `tenants`, `state`).
//!
//! Everything here is deterministic: the same keys, values and HTML page in every run,
//! so runs on different days compare. Redis is always the bench's own `redis-server`
//! (started by `riptide_test_support::redis_server` on a free loopback port, killed when
//! the bench exits); the embedded store lives in a temp dir removed on drop.

// Each bench target uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use riptide_persistence::clock::system_clock;
use riptide_persistence::config::{EmbeddedConfig, RedisConfig};
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::store::embedded::EmbeddedStore;
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::{
    CacheConfig, CompressionAlgorithm, PersistentCacheManager, SharedStore, TenantId,
};

/// Tenant every bench key belongs to (the API's usual, tenant-scoped path).
pub const TENANT: &str = "acme";
/// Key prefix of the bench's stores.
pub const PREFIX: &str = "bench";
/// Size of the small values (1 KB; at the 1 KB compression threshold, so stored raw).
pub const VALUE_LEN: usize = 1024;
/// Distinct keys the single-key gets cycle through.
pub const KEYS: usize = 1024;
/// Keys of one batch get.
pub const BATCH: usize = 100;
/// Size of the HTML page of the set benchmarks.
pub const PAGE_LEN: usize = 50 * 1024;
/// Distinct keys the 50 KB sets rotate over (per codec).
pub const PAGE_KEYS: usize = 32;

/// A small xorshift64* generator: deterministic data without a new dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "river",
    "tide",
    "harbour",
    "current",
    "estuary",
    "sediment",
    "salinity",
    "delta",
    "flood",
    "basin",
    "channel",
    "erosion",
    "lagoon",
    "marsh",
    "mooring",
    "pilot",
    "vessel",
    "cargo",
    "container",
    "crane",
    "quay",
    "berth",
    "draught",
    "keel",
    "ballast",
    "buoy",
    "beacon",
    "lighthouse",
    "surveyor",
    "chart",
    "sounding",
    "depth",
    "fathom",
    "knot",
    "bearing",
    "latitude",
    "longitude",
    "meridian",
    "compass",
    "sextant",
    "navigation",
    "forecast",
    "pressure",
    "gale",
    "squall",
    "swell",
    "breaker",
    "shoal",
    "reef",
    "atoll",
    "archipelago",
    "council",
    "ministry",
    "budget",
    "report",
    "committee",
    "inquiry",
    "survey",
    "research",
    "university",
    "laboratory",
    "measurement",
    "analysis",
    "dataset",
    "model",
    "simulation",
    "climate",
    "temperature",
    "rainfall",
    "drought",
    "reservoir",
    "irrigation",
    "agriculture",
    "fishery",
    "quota",
    "catch",
    "species",
    "habitat",
    "conservation",
    "restoration",
    "policy",
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
    "was",
    "were",
    "from",
    "at",
    "which",
    "their",
    "has",
    "have",
    "been",
    "more",
    "than",
    "about",
    "after",
    "before",
    "during",
    "while",
    "because",
    "although",
    "however",
    "between",
    "several",
    "many",
    "most",
    "some",
    "each",
    "every",
    "new",
    "old",
    "local",
    "regional",
    "national",
    "annual",
    "average",
    "higher",
    "lower",
    "rising",
    "falling",
    "recorded",
    "expected",
    "reported",
    "estimated",
    "announced",
    "confirmed",
    "proposed",
    "approved",
];

const TOPICS: &[&str] = &[
    "news",
    "science",
    "economy",
    "environment",
    "transport",
    "politics",
    "weather",
    "sport",
];

/// A realistic ~50 KB article page: head with meta and styles, navigation, headings,
/// paragraphs of varied words, numbers, dates and links, a data table and a footer.
/// Varied enough that LZ4 and Zstd have real work to do (not one repeated line).
pub fn html_page(len: usize) -> String {
    let mut rng = Rng::new(0x5eed_cafe);
    let mut s = String::with_capacity(len + 4096);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str("<title>Tidal rivers report 2024 | The Harbour Gazette</title>\n");
    s.push_str("<link rel=\"stylesheet\" href=\"/static/css/site.4f9a1c.css\">\n");
    s.push_str("<style>.article p{line-height:1.6;margin:0 0 1em}.byline{color:#666}</style>\n");
    s.push_str("</head>\n<body class=\"article-page\">\n<nav class=\"site-nav\"><ul>\n");
    for t in TOPICS {
        s.push_str(&format!("<li><a href=\"/{t}/\">{t}</a></li>\n"));
    }
    s.push_str("</ul></nav>\n<main><article class=\"article\">\n");
    s.push_str("<h1>Tidal rivers report: what the new measurements show</h1>\n");
    s.push_str("<p class=\"byline\">By the data desk, updated 14 March 2024</p>\n");
    let mut para = 0u32;
    while s.len() < len.saturating_sub(600) {
        para += 1;
        if para.is_multiple_of(7) {
            s.push_str(&format!(
                "<h2 id=\"section-{para}\">{} {} and {}</h2>\n",
                capitalise(rng.pick(WORDS)),
                rng.pick(WORDS),
                rng.pick(WORDS)
            ));
        }
        if para.is_multiple_of(11) {
            s.push_str("<table class=\"data\"><tr><th>Station</th><th>Level (m)</th><th>Change</th></tr>\n");
            for _ in 0..4 {
                s.push_str(&format!(
                    "<tr><td>{} {}</td><td>{}.{:02}</td><td>{:+}.{}%</td></tr>\n",
                    capitalise(rng.pick(WORDS)),
                    rng.below(90) + 10,
                    rng.below(12),
                    rng.below(100),
                    rng.below(40) as i64 - 20,
                    rng.below(10)
                ));
            }
            s.push_str("</table>\n");
        }
        s.push_str("<p>");
        let sentences = 3 + rng.below(4);
        for _ in 0..sentences {
            let words = 8 + rng.below(14);
            for w in 0..words {
                let word = rng.pick(WORDS);
                if w == 0 {
                    s.push_str(&capitalise(word));
                } else {
                    s.push(' ');
                    match rng.below(20) {
                        0 => s.push_str(&format!("{}", rng.below(100_000))),
                        1 => s.push_str(&format!(
                            "<a href=\"/{}/{}-{}-{}\">{word}</a>",
                            rng.pick(TOPICS),
                            word,
                            rng.pick(WORDS),
                            rng.below(9_999)
                        )),
                        2 => s.push_str(&format!("{}.{} per cent", rng.below(100), rng.below(10))),
                        3 => s.push_str(&format!("<strong>{word}</strong>")),
                        _ => s.push_str(word),
                    }
                }
            }
            s.push_str(". ");
        }
        s.push_str("</p>\n");
    }
    s.push_str("</article></main>\n<footer><p>&copy; 2024 The Harbour Gazette. ");
    s.push_str("All rights reserved.</p><p><a href=\"/privacy\">Privacy</a> ");
    s.push_str("<a href=\"/terms\">Terms</a></p></footer>\n</body>\n</html>\n");
    // Pad with a comment to hit the exact size, so every run stores the same length.
    if s.len() < len {
        let pad = len - s.len();
        let comment = "<!-- riptide bench padding -->";
        let mut tail = String::new();
        while tail.len() < pad {
            tail.push_str(comment);
        }
        tail.truncate(pad);
        s.push_str(&tail);
    }
    s.truncate(len);
    s
}

fn capitalise(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// A 1 KB text value, different per `i`.
pub fn value(i: usize) -> Bytes {
    let mut rng = Rng::new(i as u64 + 1);
    let mut s = String::with_capacity(VALUE_LEN + 16);
    while s.len() < VALUE_LEN {
        s.push_str(rng.pick(WORDS));
        s.push(' ');
    }
    s.truncate(VALUE_LEN);
    Bytes::from(s)
}

/// The caller's key number `i` (namespace `page`).
pub fn key(i: usize) -> String {
    format!("page:https://example.com/articles/{i}")
}

/// The store key a cache over a store with prefix [`PREFIX`] writes `key` of [`TENANT`] to.
pub fn store_key(key: &str) -> String {
    ScopeKeys::new(PREFIX, &scope()).entry(&Namespace::of_key(key), &KeyHash::of(key))
}

/// The bench tenant's scope.
pub fn scope() -> Scope {
    Scope::Tenant(TenantId::parse(TENANT).expect("valid tenant id"))
}

/// Cache settings: the defaults, with L1 on or off.
///
/// With L1 on, the staleness bound is raised from 5 s to 1 h: it is only the TTL of L1
/// entries (the get path is the same), and at 5 s the entries filled before a long
/// measurement would age out in the middle of it and turn hits into store round trips.
pub fn cache_config(l1: bool) -> CacheConfig {
    let defaults = CacheConfig::default();
    CacheConfig {
        l1_capacity_bytes: if l1 { defaults.l1_capacity_bytes } else { 0 },
        l1_max_staleness_ms: if l1 {
            3_600_000
        } else {
            defaults.l1_max_staleness_ms
        },
        ..defaults
    }
}

/// Cache settings for the 50 KB sets: L1 off (a set still fills L1 otherwise; that is
/// not what is measured), compression as given.
pub fn set_config(algo: Option<CompressionAlgorithm>) -> CacheConfig {
    CacheConfig {
        l1_capacity_bytes: 0,
        enable_compression: algo.is_some(),
        compression_algorithm: algo.unwrap_or_default(),
        ..Default::default()
    }
}

/// The Redis fixtures: the store, and a raw connection for the reference GETs.
pub struct RedisFixture {
    /// The store under test (default pool size).
    pub store: SharedStore,
    /// A raw `redis` crate connection to the same server.
    pub raw: ConnectionManager,
}

/// Connects to the bench's own `redis-server`, started on first use.
pub async fn redis_fixture() -> RedisFixture {
    let url = riptide_test_support::redis_server().url();
    let store = redis_store(RedisConfig::default().pool_size).await;
    let raw = redis::Client::open(url.as_str())
        .expect("redis url")
        .get_connection_manager()
        .await
        .expect("raw connection to the bench redis-server");
    RedisFixture { store, raw }
}

/// A store on the bench's own `redis-server` with `pool_size` connections.
pub async fn redis_store(pool_size: usize) -> SharedStore {
    let url = riptide_test_support::redis_server().url();
    let cfg = RedisConfig {
        key_prefix: PREFIX.to_owned(),
        pool_size,
        ..Default::default()
    };
    Arc::new(
        RedisStore::connect_standalone(&url, &cfg)
            .await
            .expect("connect the store to the bench redis-server"),
    )
}

/// An embedded store in a fresh temp dir (must be called inside a tokio runtime).
pub fn embedded() -> (SharedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = EmbeddedConfig {
        key_prefix: PREFIX.to_owned(),
        ..Default::default()
    };
    let store: SharedStore =
        EmbeddedStore::open(dir.path(), &cfg, system_clock()).expect("open embedded store");
    (store, dir)
}

/// A cache over `store`.
pub fn cache(store: &SharedStore, config: CacheConfig) -> PersistentCacheManager {
    PersistentCacheManager::with_store(store.clone(), config).expect("valid cache config")
}

/// Writes the [`KEYS`] 1 KB values through `cache` (no TTL: nothing expires mid-run) and
/// returns the caller keys.
pub async fn fill(cache: &PersistentCacheManager) -> Vec<String> {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let entries: Vec<(String, Bytes)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), value(i)))
        .collect();
    for chunk in entries.chunks(BATCH) {
        cache
            .set_batch_bytes(chunk, TENANT, Some(ONE_DAY), None)
            .await
            .expect("fill the cache");
    }
    for k in &keys {
        let got = cache.get_bytes(k, TENANT).await.expect("get");
        assert_eq!(got.map(|v| v.len()), Some(VALUE_LEN), "{k} was stored");
    }
    keys
}

/// TTL of the bench entries: long enough that nothing expires during a run.
pub const ONE_DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The bytes the store holds for `key` (the encoded envelope).
pub async fn stored_len(store: &SharedStore, key: &str) -> usize {
    store
        .get(&store_key(key))
        .await
        .expect("read the stored entry")
        .expect("the entry is stored")
        .len()
}

/// The three codecs of the 50 KB set benchmarks: name and compression.
pub const CODECS: [(&str, Option<CompressionAlgorithm>); 3] = [
    ("lz4", Some(CompressionAlgorithm::Lz4)),
    ("zstd", Some(CompressionAlgorithm::Zstd)),
    ("none", None),
];

/// The keys of the 50 KB page sets of codec `name`.
pub fn page_keys(name: &str) -> Vec<String> {
    (0..PAGE_KEYS)
        .map(|i| format!("html:{name}:https://example.com/long-read/{i}"))
        .collect()
}

/// `n` scaled by `scale`, at least 200.
pub fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale) as usize).max(200)
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The CPU model as `/proc/cpuinfo` names it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// Median cost of timing one sample (`Instant::now` + `elapsed`), in ns.
pub fn timer_overhead() -> u64 {
    let mut ns = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = std::time::Instant::now();
        ns.push(std::hint::black_box(t.elapsed()).as_nanos() as u64);
    }
    riptide_test_support::percentiles::Dist::new(ns).p50()
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`, `RssAnon`, `RssFile`), or 0
/// where there is none.
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
