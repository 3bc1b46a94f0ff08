//! Large entries are encoded and decoded off the async workers (issue 9): on a
//! single-threaded runtime, a task writing or reading a large entry gives the thread
//! back at once instead of holding it for the whole compression or decompression.
//!
//! The measure: spawn the large operation, then yield once. The yield lets the
//! operation run up to its first await; it returns when that poll ends. Done inline,
//! that poll does all the work (the embedded store's reads do not yield), so the yield
//! takes about as long as the whole operation; done on the blocking pool, it takes
//! microseconds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use riptide_persistence::{CacheConfig, PersistentCacheManager};

use super::support::{Backend, cache, tenant};

/// Compressible but not trivially so: decompressing it is real work.
fn page(len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("<p>paragraph {i} about tides, {}</p>\n", i * 7919 % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    Bytes::from(out)
}

/// How long one yield of this thread took while `op` started, and how long `op` took.
async fn stall_while<F>(op: F) -> (Duration, Duration)
where
    F: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let task = tokio::spawn(op);
    let before = Instant::now();
    tokio::task::yield_now().await;
    let stall = before.elapsed();
    task.await.unwrap();
    (stall, start.elapsed())
}

#[tokio::test(flavor = "current_thread")]
async fn large_entries_do_not_hold_the_async_thread() {
    let config = CacheConfig {
        // Every read decodes from the store.
        l1_capacity_bytes: 0,
        max_entry_size_bytes: 32 << 20,
        ..Default::default()
    };
    let (cache, _s) = cache(Backend::Embedded, config).await;
    let cache = std::sync::Arc::new(cache);
    let t = tenant();
    let big = page(8 << 20);

    let (writer, (t1, value)) = (cache.clone(), (t.clone(), big.clone()));
    let (stall, total) = stall_while(async move {
        writer
            .set_bytes("big", value, &t1, None, None)
            .await
            .unwrap();
    })
    .await;
    assert!(
        stall * 4 < total,
        "set: the thread was held {stall:?} of {total:?}"
    );

    let (reader, t2, expected) = (cache.clone(), t.clone(), big.clone());
    let (stall, total) = stall_while(async move {
        let got = reader.get_bytes("big", &t2).await.unwrap();
        assert_eq!(got, Some(expected));
    })
    .await;
    assert!(
        stall * 4 < total,
        "get: the thread was held {stall:?} of {total:?}"
    );

    // Batches too, and a fresh manager (empty L1) reads them back intact.
    let entries: Vec<(String, Bytes)> = (0..3)
        .map(|i| (format!("b{i}"), page((1 << 20) + i)))
        .collect();
    cache
        .set_batch_bytes(&entries, &t, None, None)
        .await
        .unwrap();
    let fresh =
        PersistentCacheManager::with_store(cache.store().clone(), cache.config().clone()).unwrap();
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let got = fresh.get_batch_bytes(&keys, &t).await.unwrap();
    let want: Vec<Option<Bytes>> = entries.iter().map(|(_, v)| Some(v.clone())).collect();
    assert_eq!(got, want);
}
