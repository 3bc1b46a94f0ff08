//! `counters_get_applied`: a record's counters and whether given batch ids were applied
//! to it, read as one moment's state (what usage reads rely on to add pending usage
//! exactly once while a flush is writing it).

use super::{SHORT_TTL_MS, open, sleep_past_short_ttl, tenant_keys};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    flags_say_which_batches_the_counters_hold,
    counters_and_flags_agree_under_concurrent_writes,
);

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn flags_say_which_batches_the_counters_hold(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (c, dedupe) = (keys.record("usage"), keys.record("usage-applied"));
    let read = store
        .counters_get_applied(&c, &dedupe, &ids(&["a", "b"]))
        .await
        .unwrap();
    assert!(read.counters.is_empty());
    assert_eq!(
        read.applied,
        [false, false],
        "nothing applied to an absent record"
    );
    let one = [("n".to_owned(), 1)];
    assert!(
        store
            .counters_add_once(&c, &dedupe, "a", &one, 60_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .counters_add_once(&c, &dedupe, "short", &one, SHORT_TTL_MS)
            .await
            .unwrap()
    );
    let read = store
        .counters_get_applied(&c, &dedupe, &ids(&["b", "a", "short"]))
        .await
        .unwrap();
    assert_eq!(read.counters, [("n".to_owned(), 2)]);
    assert_eq!(read.applied, [false, true, true]);
    // No ids: just the counters.
    let read = store.counters_get_applied(&c, &dedupe, &[]).await.unwrap();
    assert_eq!((read.counters.len(), read.applied.len()), (1, 0));
    // An id past its window is forgotten, as counters_add_once would forget it.
    sleep_past_short_ttl().await;
    let read = store
        .counters_get_applied(&c, &dedupe, &ids(&["a", "short"]))
        .await
        .unwrap();
    assert_eq!(read.applied, [true, false]);
}

async fn counters_and_flags_agree_under_concurrent_writes(b: Backend) {
    const BATCHES: usize = 60;
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (c, dedupe) = (keys.record("race"), keys.record("race-applied"));
    let all: Vec<String> = (0..BATCHES).map(|i| format!("batch-{i}")).collect();
    let writer = {
        let (store, c, dedupe, all) = (store.clone(), c.clone(), dedupe.clone(), all.clone());
        tokio::spawn(async move {
            for id in &all {
                let one = [("n".to_owned(), 1)];
                store
                    .counters_add_once(&c, &dedupe, id, &one, 60_000)
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    loop {
        let done = writer.is_finished();
        let read = store.counters_get_applied(&c, &dedupe, &all).await.unwrap();
        let n = read
            .counters
            .iter()
            .find(|(f, _)| f == "n")
            .map_or(0, |(_, v)| *v);
        let applied = read.applied.iter().filter(|f| **f).count() as i64;
        assert_eq!(
            n, applied,
            "the counters hold exactly the batches flagged applied"
        );
        reads += 1;
        if done {
            assert_eq!(n, BATCHES as i64);
            break;
        }
    }
    writer.await.unwrap();
    assert!(reads > 1);
}
