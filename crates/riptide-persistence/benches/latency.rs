//! Latency percentiles of the cache, against the DESIGN.md "Performance budgets".
//!
//! Criterion reports means and medians; the budgets are about p50 and p99. So this target
//! times every operation on its own (`Instant` around each `await`), sorts the samples and
//! reads the percentiles. Each budget is a ratio against a reference measured in the same
//! run, and the cases of one comparison run interleaved in short chunks, the order rotating
//! every round (A B C, B C A, C A B, ...), so that noise from other processes on these
//! shared cores hits every side alike.
//!
//! Run: `cargo bench -p riptide-persistence --bench latency`. `LATENCY_SCALE=0.2` runs
//! a fifth of the samples (a quick look); `LATENCY_SCALE=3` three times as many.
//!
//! Prints markdown: the budget table, the tail of every distribution, stored sizes of the
//! 50 KB page per codec, and a breakdown of the per-call key work a cache get does before
//! it reaches L1 or the store.

mod common;
use riptide_test_support::interleave;

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use common::{BATCH, CODECS, KEYS, PAGE_KEYS, PAGE_LEN, TENANT, cpu_model, loadavg, scaled};
use riptide_persistence::TenantId;
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_test_support::percentiles::{Dist, fmt_ns};

/// A budget row's limit.
enum Budget {
    /// p99 at most this many nanoseconds.
    P99Abs(u64),
    /// p50 and p99 at most this multiple of the reference's.
    Ratio(f64),
    /// No budget: shown for information.
    None,
}

struct Row {
    case: String,
    dist: Dist,
    reference: Option<(String, Dist)>,
    budget_text: &'static str,
    budget: Budget,
    samples: usize,
}

fn missed(by: f64) -> String {
    format!("missed by {:.1}%", (by - 1.0) * 100.0)
}

impl Row {
    fn ratios(&self) -> Option<(f64, f64)> {
        self.reference.as_ref().map(|(_, r)| {
            (
                self.dist.p50() as f64 / r.p50() as f64,
                self.dist.p99() as f64 / r.p99() as f64,
            )
        })
    }

    fn verdict(&self) -> String {
        match self.budget {
            Budget::P99Abs(limit) => {
                let p99 = self.dist.p99();
                if p99 <= limit {
                    "holds".into()
                } else {
                    format!("p99 {}", missed(p99 as f64 / limit as f64))
                }
            }
            Budget::Ratio(limit) => {
                let (r50, r99) = self.ratios().expect("a ratio budget has a reference");
                match (r50 <= limit, r99 <= limit) {
                    (true, true) => "holds".into(),
                    (false, true) => format!("p50 {}; p99 holds", missed(r50 / limit)),
                    (true, false) => format!("p50 holds; p99 {}", missed(r99 / limit)),
                    (false, false) => {
                        format!("p50 {}; p99 {}", missed(r50 / limit), missed(r99 / limit))
                    }
                }
            }
            Budget::None => "no budget (info)".into(),
        }
    }

    fn markdown(&self) -> String {
        let (reference, r50, r99) = match (&self.reference, self.ratios()) {
            (Some((name, r)), Some((r50, r99))) => (
                format!("{name}: {} / {}", fmt_ns(r.p50()), fmt_ns(r.p99())),
                format!("{r50:.2}×"),
                format!("{r99:.2}×"),
            ),
            _ => ("—".into(), "—".into(), "—".into()),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.case,
            fmt_ns(self.dist.p50()),
            fmt_ns(self.dist.p99()),
            reference,
            r50,
            r99,
            self.budget_text,
            self.verdict()
        )
    }
}

fn main() {
    let scale: f64 = std::env::var("LATENCY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The measuring loop runs as a task on a worker, as a request handler would.
    let report = runtime
        .block_on(async move { tokio::spawn(run(scale)).await })
        .expect("bench task");
    println!("{report}");
}

async fn run(scale: f64) -> String {
    let load_before = loadavg();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut out = String::new();

    let timer = timer_overhead();

    // ---- Redis: L1 hit, L1 miss, batch ----
    let redis = common::redis_fixture().await;
    let with_l1 = common::cache(&redis.store, common::cache_config(true));
    let without_l1 = common::cache(&redis.store, common::cache_config(false));
    let keys = common::fill(&with_l1).await;
    let store_keys: Vec<String> = keys.iter().map(|k| common::store_key(k)).collect();

    // 1. L1 hit against a bare moka get of the same bytes.
    {
        let moka: moka::sync::Cache<String, Bytes> = moka::sync::Cache::builder()
            .max_capacity(64 * 1024 * 1024)
            .weigher(|_, v: &Bytes| u32::try_from(v.len() + 128).unwrap_or(u32::MAX))
            .build();
        for (i, k) in keys.iter().enumerate() {
            moka.insert(k.clone(), common::value(i));
        }
        let (cache, keys, moka) = (&with_l1, &keys, &moka);
        let l1_get = |i: usize| async move {
            let v = cache.get_bytes(&keys[i % KEYS], TENANT).await;
            black_box(v.expect("l1 get").expect("l1 hit"));
        };
        let moka_get = |i: usize| async move {
            black_box(moka.get(&keys[i % KEYS]).expect("moka hit"));
        };
        let [a, b] =
            interleave!(n: scaled(200_000, scale), chunk: 1_000, warm: 20_000; l1_get, moka_get);
        let (entries, _) = cache.l1_usage();
        assert!(entries >= KEYS as u64 / 2, "L1 holds the keys ({entries})");
        let share_over =
            |ns: &[u64]| ns.iter().filter(|&&n| n > 2_000).count() as f64 * 100.0 / ns.len() as f64;
        notes.push(format!(
            "L1 hit: {:.2}% of cache gets and {:.2}% of bare moka gets took over 2 µs \
             (moka's sync cache drains its read log on the reading thread every 64 reads: 1.56%).",
            share_over(&a),
            share_over(&b)
        ));
        rows.push(Row {
            samples: a.len(),
            case: "cache get, L1 hit, 1 KB".into(),
            dist: Dist::new(a),
            reference: Some(("moka get".into(), Dist::new(b))),
            budget_text: "p99 ≤ 2 µs",
            budget: Budget::P99Abs(2_000),
        });
    }

    // 2. L1 miss on Redis against a raw GET of the same stored bytes; and
    // 4. a batch get of 100 keys against one raw GET (with a raw MGET for context).
    let raw_get_dist = {
        let (cache, keys, store_keys) = (&without_l1, &keys, &store_keys);
        let raw = &redis.raw;
        let miss_get = |i: usize| async move {
            let v = cache.get_bytes(&keys[i % KEYS], TENANT).await;
            black_box(v.expect("redis get").expect("stored"));
        };
        let raw_get = |i: usize| {
            let mut conn = raw.clone();
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&store_keys[i % KEYS])
                    .query_async(&mut conn)
                    .await
                    .expect("raw GET");
                black_box(v.expect("stored"));
            }
        };
        let pool1 = common::cache(&common::redis_store(1).await, common::cache_config(false));
        let pool1 = &pool1;
        let miss_get_pool1 = |i: usize| async move {
            let v = pool1.get_bytes(&keys[i % KEYS], TENANT).await;
            black_box(v.expect("redis get").expect("stored"));
        };
        let [a, b, c] = interleave!(n: scaled(20_000, scale), chunk: 200, warm: 2_000;
            miss_get, raw_get, miss_get_pool1);
        let raw_dist = Dist::new(b);
        rows.push(Row {
            samples: a.len(),
            case: "cache get, L1 miss, Redis, 1 KB".into(),
            dist: Dist::new(a),
            reference: Some(("raw `redis` GET".into(), Dist::new(raw_dist.ns.clone()))),
            budget_text: "p50, p99 ≤ 1.1× raw GET",
            budget: Budget::Ratio(1.1),
        });
        rows.push(Row {
            samples: c.len(),
            case: "↳ same, store with `pool_size: 1` (context)".into(),
            dist: Dist::new(c),
            reference: Some(("raw `redis` GET".into(), Dist::new(raw_dist.ns.clone()))),
            budget_text: "(as above)",
            budget: Budget::Ratio(1.1),
        });
        raw_dist
    };
    {
        let batches: Vec<&[String]> = keys.chunks_exact(BATCH).collect();
        let store_batches: Vec<&[String]> = store_keys.chunks_exact(BATCH).collect();
        let (cache, batches, store_batches, store_keys) =
            (&without_l1, &batches, &store_batches, &store_keys);
        let raw = &redis.raw;
        let batch_get = |i: usize| async move {
            let v = cache
                .get_batch_bytes(batches[i % batches.len()], TENANT)
                .await
                .expect("batch get");
            assert!(v.iter().all(Option::is_some));
            black_box(v);
        };
        let raw_get = |i: usize| {
            let mut conn = raw.clone();
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&store_keys[i % KEYS])
                    .query_async(&mut conn)
                    .await
                    .expect("raw GET");
                black_box(v.expect("stored"));
            }
        };
        let raw_mget = |i: usize| {
            let mut conn = raw.clone();
            async move {
                let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(store_batches[i % store_batches.len()])
                    .query_async(&mut conn)
                    .await
                    .expect("raw MGET");
                black_box(v);
            }
        };
        let [a, b, c] = interleave!(n: scaled(5_000, scale), chunk: 100, warm: 300; batch_get, raw_get, raw_mget);
        rows.push(Row {
            samples: a.len(),
            case: "batch get, 100 × 1 KB, Redis, L1 off".into(),
            dist: Dist::new(a),
            reference: Some(("raw `redis` GET (one key)".into(), Dist::new(b))),
            budget_text: "≤ 3× one GET",
            budget: Budget::Ratio(3.0),
        });
        let mget = Dist::new(c);
        rows.push(Row {
            samples: mget.ns.len(),
            case: "raw `redis` MGET, 100 × 1 KB (context)".into(),
            reference: Some(("raw `redis` GET".into(), Dist::new(raw_get_dist.ns.clone()))),
            dist: mget,
            budget_text: "—",
            budget: Budget::None,
        });
    }

    // ---- Embedded ----
    let (embedded, _dir) = common::embedded();
    // 3. L1 miss on the embedded store against the store's own get.
    {
        let cache = common::cache(&embedded, common::cache_config(false));
        let keys = common::fill(&cache).await;
        let (cache, keys, store, store_keys) = (&cache, &keys, &embedded, &store_keys);
        let miss_get = |i: usize| async move {
            let v = cache.get_bytes(&keys[i % KEYS], TENANT).await;
            black_box(v.expect("embedded get").expect("stored"));
        };
        let store_get = |i: usize| async move {
            let v = store.get(&store_keys[i % KEYS]).await;
            black_box(v.expect("store get").expect("stored"));
        };
        let [a, b] =
            interleave!(n: scaled(20_000, scale), chunk: 500, warm: 2_000; miss_get, store_get);
        rows.push(Row {
            samples: a.len(),
            case: "cache get, L1 miss, embedded, 1 KB".into(),
            dist: Dist::new(a),
            reference: Some(("`store.get` (redb)".into(), Dist::new(b))),
            budget_text: "p99 ≤ 20 µs",
            budget: Budget::P99Abs(20_000),
        });
    }

    // 5. Sets of a 50 KB HTML page: LZ4, Zstd, and no compression as the reference.
    let page = Bytes::from(common::html_page(PAGE_LEN));
    let mut sizes = Vec::new();
    {
        let caches: Vec<_> = CODECS
            .iter()
            .map(|(_, algo)| common::cache(&embedded, common::set_config(*algo)))
            .collect();
        let page_keys: Vec<Vec<String>> = CODECS
            .iter()
            .map(|(name, _)| common::page_keys(name))
            .collect();
        let (caches, page_keys, page) = (&caches, &page_keys, &page);
        let set = |c: usize, i: usize| async move {
            caches[c]
                .set_bytes(
                    &page_keys[c][i % PAGE_KEYS],
                    page.clone(),
                    TENANT,
                    Some(common::ONE_DAY),
                    None,
                )
                .await
                .expect("set 50 KB page");
        };
        let set_lz4 = |i: usize| set(0, i);
        let set_zstd = |i: usize| set(1, i);
        let set_none = |i: usize| set(2, i);
        let [a, b, c] =
            interleave!(n: scaled(2_000, scale), chunk: 50, warm: 100; set_lz4, set_zstd, set_none);
        let none = Dist::new(c);
        for (name, dist) in [("LZ4", a), ("Zstd (level 3)", b)] {
            rows.push(Row {
                samples: dist.len(),
                case: format!("set 50 KB HTML, {name}, embedded"),
                dist: Dist::new(dist),
                reference: Some(("set, no compression".into(), Dist::new(none.ns.clone()))),
                budget_text: "—",
                budget: Budget::None,
            });
        }
        rows.push(Row {
            samples: none.ns.len(),
            case: "set 50 KB HTML, no compression, embedded".into(),
            dist: none,
            reference: None,
            budget_text: "—",
            budget: Budget::None,
        });
        for (c, (name, _)) in CODECS.iter().enumerate() {
            let stored = common::stored_len(&embedded, &page_keys[c][0]).await;
            let got = caches[c]
                .get_bytes(&page_keys[c][0], TENANT)
                .await
                .expect("get page")
                .expect("page stored");
            assert_eq!(got, *page, "{name} round-trips the page");
            sizes.push((*name, stored));
        }
    }

    // Breakdown: the key work every get does before it reaches L1 or the store,
    // replicated with the crate's public key API.
    let breakdown = key_work_breakdown(&keys);

    let load_after = loadavg();
    out.push_str("## Latency (p50 / p99, sequential, one operation at a time)\n\n");
    out.push_str(&format!(
        "CPU: {} × {} · tokio multi-thread runtime, 2 workers · load average before {} / after {} · \
         Instant overhead ~{} ns/sample · wall time {:.1} s · LATENCY_SCALE={scale}\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_before,
        load_after,
        timer,
        started.elapsed().as_secs_f64()
    ));
    out.push_str(
        "| case | p50 | p99 | reference (p50 / p99) | ratio p50 | ratio p99 | budget | verdict |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in &rows {
        out.push_str(&r.markdown());
        out.push('\n');
    }
    out.push_str("\nSamples per case: ");
    out.push_str(
        &rows
            .iter()
            .map(|r| format!("{} {}", r.case, r.samples))
            .collect::<Vec<_>>()
            .join("; "),
    );
    for note in &notes {
        out.push_str("\n\n");
        out.push_str(note);
    }
    out.push_str("\n\n## Tail detail\n\n");
    out.push_str("| distribution | p50 | p90 | p95 | p98 | p99 | p99.9 | max |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in &rows {
        let mut dists = vec![(r.case.clone(), &r.dist)];
        if let Some((name, d)) = &r.reference {
            dists.push((format!("↳ {name}"), d));
        }
        for (name, d) in dists {
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                fmt_ns(d.p50()),
                fmt_ns(d.p(0.90)),
                fmt_ns(d.p(0.95)),
                fmt_ns(d.p(0.98)),
                fmt_ns(d.p99()),
                fmt_ns(d.p(0.999)),
                fmt_ns(d.p(1.0)),
            ));
        }
    }
    out.push_str("\n## Stored size of the 50 KB HTML page\n\n");
    out.push_str("| codec | payload | stored (envelope) | stored / payload |\n|---|---|---|---|\n");
    for (name, stored) in &sizes {
        out.push_str(&format!(
            "| {name} | {} B | {stored} B | {:.1}% |\n",
            page.len(),
            *stored as f64 * 100.0 / page.len() as f64
        ));
    }
    out.push_str("\n## Per-call key work of a get (public key API, replicated)\n\n");
    out.push_str("| step | p50 | p99 |\n|---|---|---|\n");
    for (name, d) in &breakdown {
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            fmt_ns(d.p50()),
            fmt_ns(d.p99())
        ));
    }
    out
}

/// Median cost of timing one sample (`Instant::now` + `elapsed`), in ns.
fn timer_overhead() -> u64 {
    let mut ns = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = Instant::now();
        ns.push(black_box(t.elapsed()).as_nanos() as u64);
    }
    Dist::new(ns).p50()
}

/// Times, per call, what `get_entry` computes from `(key, tenant)` before the lookup:
/// the tenant parse, the scope's key base, the namespace, the store key and the L1 key.
fn key_work_breakdown(keys: &[String]) -> Vec<(String, Dist)> {
    const N: usize = 100_000;
    let mut steps: Vec<(String, Dist)> = Vec::new();
    let mut time = |name: &str, f: &mut dyn FnMut(usize)| {
        for i in 0..10_000 {
            f(i);
        }
        let mut ns = Vec::with_capacity(N);
        for i in 0..N {
            let t = Instant::now();
            f(i);
            ns.push(t.elapsed().as_nanos() as u64);
        }
        steps.push((name.to_owned(), Dist::new(ns)));
    };
    let scope = Scope::Tenant(TenantId::parse(TENANT).expect("tenant"));
    let scope_keys = ScopeKeys::new(common::PREFIX, &scope);
    time("`TenantId::parse` + `Scope` clone", &mut |_| {
        let s = Scope::Tenant(TenantId::parse(black_box(TENANT)).expect("tenant"));
        black_box(s.clone());
    });
    time("`ScopeKeys::new` (format!)", &mut |_| {
        black_box(ScopeKeys::new(black_box(common::PREFIX), &scope));
    });
    time("`Namespace::of_key` (String)", &mut |i| {
        black_box(Namespace::of_key(&keys[i % KEYS]));
    });
    time("`KeyHash::of` + `entry` (blake3 + format!)", &mut |i| {
        let k = &keys[i % KEYS];
        let ns = Namespace::of_key(k);
        black_box(scope_keys.entry(&ns, &KeyHash::of(k)));
    });
    let store_keys: Vec<String> = keys.iter().map(|k| common::store_key(k)).collect();
    time("L1 key: blake3 of the store key", &mut |i| {
        black_box(blake3::hash(store_keys[i % KEYS].as_bytes()));
    });
    time("all of the above, as `get_entry` does them", &mut |i| {
        let k = &keys[i % KEYS];
        let scope = Scope::Tenant(TenantId::parse(black_box(TENANT)).expect("tenant"));
        let sk = ScopeKeys::new(common::PREFIX, &scope);
        let ns = Namespace::of_key(k);
        let store_key = sk.entry(&ns, &KeyHash::of(k));
        let l1 = blake3::hash(store_key.as_bytes());
        black_box((scope.clone(), ns, store_key, l1));
    });
    steps
}
