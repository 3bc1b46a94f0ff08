//! Criterion benchmarks of the cache: the five cases of DESIGN.md "Performance budgets"
//! that belong to this crate, each beside its reference in the same group.
//!
//! Criterion gives means and medians; the budgets are about p50/p99, which the `latency`
//! target measures. Run: `cargo bench -p riptide-persistence --bench cache`.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use common::{BATCH, CODECS, KEYS, PAGE_KEYS, PAGE_LEN, TENANT};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Short runs: the whole target takes a few minutes on two shared cores.
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// A counter for rotating over keys inside `iter` closures.
fn counter() -> impl Fn() -> usize {
    let c = Cell::new(0usize);
    move || {
        let i = c.get();
        c.set(i.wrapping_add(1));
        i
    }
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let redis = rt.block_on(common::redis_fixture());
    let with_l1 = common::cache(&redis.store, common::cache_config(true));
    let without_l1 = common::cache(&redis.store, common::cache_config(false));
    let keys = rt.block_on(common::fill(&with_l1));
    let store_keys: Vec<String> = keys.iter().map(|k| common::store_key(k)).collect();

    // 1. L1 hit, beside a bare moka get of the same bytes.
    {
        let moka: moka::sync::Cache<String, Bytes> = moka::sync::Cache::builder()
            .max_capacity(64 * 1024 * 1024)
            .weigher(|_, v: &Bytes| u32::try_from(v.len() + 128).unwrap_or(u32::MAX))
            .build();
        for (i, k) in keys.iter().enumerate() {
            moka.insert(k.clone(), common::value(i));
        }
        let mut g = c.benchmark_group("get_l1_hit_1kb");
        configure(&mut g);
        let next = counter();
        g.bench_function("cache_get_bytes", |b| {
            b.to_async(&rt).iter(|| {
                let k = &keys[next() % KEYS];
                let cache = &with_l1;
                async move { black_box(cache.get_bytes(k, TENANT).await.unwrap()) }
            })
        });
        g.bench_function("moka_get", |b| {
            b.iter(|| black_box(moka.get(&keys[next() % KEYS])))
        });
        g.finish();
    }

    // 2. L1 miss on Redis, beside a raw GET of the same stored bytes.
    {
        let mut g = c.benchmark_group("get_l1_miss_redis_1kb");
        configure(&mut g);
        let next = counter();
        g.bench_function("cache_get_bytes", |b| {
            b.to_async(&rt).iter(|| {
                let k = &keys[next() % KEYS];
                let cache = &without_l1;
                async move { black_box(cache.get_bytes(k, TENANT).await.unwrap()) }
            })
        });
        g.bench_function("raw_redis_get", |b| {
            b.to_async(&rt).iter(|| {
                let k = &store_keys[next() % KEYS];
                let mut conn = redis.raw.clone();
                async move {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(k)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    black_box(v)
                }
            })
        });
        g.finish();
    }

    // 3. L1 miss on the embedded store, beside the store's own get.
    let (embedded, _dir) = {
        let _guard = rt.enter();
        common::embedded()
    };
    {
        let cache = common::cache(&embedded, common::cache_config(false));
        rt.block_on(common::fill(&cache));
        let mut g = c.benchmark_group("get_l1_miss_embedded_1kb");
        configure(&mut g);
        let next = counter();
        g.bench_function("cache_get_bytes", |b| {
            b.to_async(&rt).iter(|| {
                let k = &keys[next() % KEYS];
                let cache = &cache;
                async move { black_box(cache.get_bytes(k, TENANT).await.unwrap()) }
            })
        });
        g.bench_function("store_get", |b| {
            b.to_async(&rt).iter(|| {
                let k = &store_keys[next() % KEYS];
                let store = &embedded;
                async move { black_box(store.get(k).await.unwrap()) }
            })
        });
        g.finish();
    }

    // 4. Batch get of 100 keys on Redis (L1 off), beside one raw GET and a raw MGET.
    {
        let batches: Vec<&[String]> = keys.chunks_exact(BATCH).collect();
        let store_batches: Vec<&[String]> = store_keys.chunks_exact(BATCH).collect();
        let mut g = c.benchmark_group("get_batch_100x1kb_redis");
        configure(&mut g);
        let next = counter();
        g.bench_function("cache_get_batch_bytes", |b| {
            b.to_async(&rt).iter(|| {
                let batch = batches[next() % batches.len()];
                let cache = &without_l1;
                async move { black_box(cache.get_batch_bytes(batch, TENANT).await.unwrap()) }
            })
        });
        g.bench_function("raw_redis_get_one", |b| {
            b.to_async(&rt).iter(|| {
                let k = &store_keys[next() % KEYS];
                let mut conn = redis.raw.clone();
                async move {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(k)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    black_box(v)
                }
            })
        });
        g.bench_function("raw_redis_mget_100", |b| {
            b.to_async(&rt).iter(|| {
                let batch = store_batches[next() % store_batches.len()];
                let mut conn = redis.raw.clone();
                async move {
                    let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                        .arg(batch)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    black_box(v)
                }
            })
        });
        g.finish();
    }

    // 5. Set of a 50 KB HTML page (embedded, L1 off): LZ4, Zstd, no compression.
    {
        let page = Bytes::from(common::html_page(PAGE_LEN));
        let mut g = c.benchmark_group("set_50kb_html_embedded");
        configure(&mut g);
        g.throughput(Throughput::Bytes(page.len() as u64));
        let mut sizes = Vec::new();
        for (name, algo) in CODECS {
            let cache = common::cache(&embedded, common::set_config(algo));
            let page_keys = common::page_keys(name);
            // Written once up front, so its stored size can be read even when a filter
            // skips this benchmark.
            rt.block_on(cache.set_bytes(
                &page_keys[0],
                page.clone(),
                TENANT,
                Some(common::ONE_DAY),
                None,
            ))
            .unwrap();
            let next = counter();
            g.bench_function(name, |b| {
                b.to_async(&rt).iter(|| {
                    let k = &page_keys[next() % PAGE_KEYS];
                    let (cache, page) = (&cache, page.clone());
                    async move {
                        cache
                            .set_bytes(k, page, TENANT, Some(common::ONE_DAY), None)
                            .await
                            .unwrap()
                    }
                })
            });
            sizes.push((
                name,
                rt.block_on(common::stored_len(&embedded, &page_keys[0])),
            ));
        }
        g.finish();
        for (name, stored) in sizes {
            println!(
                "set_50kb_html_embedded/{name}: page {} B, stored {stored} B ({:.1}%)",
                page.len(),
                stored as f64 * 100.0 / page.len() as f64
            );
        }
    }
}

criterion_group!(cache_benches, benches);
criterion_main!(cache_benches);
