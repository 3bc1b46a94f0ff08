//! The access popularity counter: top-K order and bounds, and its persistence on every
//! backend (a round trip through the store, instances adding up, the store record
//! trimmed to K, a forgotten tenant gone).

use riptide_persistence::cache::popularity::{MAX_URL_BYTES, Popularity, PopularityConfig};
use riptide_persistence::clock::system_clock;
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::tenant::crypto::MasterKey;
use riptide_persistence::tenant::data_keys::TenantKeys;
use riptide_persistence::{SharedStore, TenantId};

use super::support::{Backend, on_every_backend, store, tenant};

fn counter(store: &SharedStore, k: usize, tenants: usize) -> Popularity {
    let config = PopularityConfig {
        top_k_per_tenant: k,
        max_tenants: tenants,
    };
    Popularity::new(store.clone(), system_clock(), config).expect("valid bounds")
}

fn id() -> TenantId {
    TenantId::parse(&tenant()).expect("valid id")
}

fn hit(p: &Popularity, t: &TenantId, url: &str, times: usize) {
    for _ in 0..times {
        p.record_access(t, url);
    }
}

fn urls_of(p: &Popularity, t: &TenantId) -> Vec<(String, u64)> {
    p.top_of(t, usize::MAX)
        .into_iter()
        .map(|e| (e.url, e.count))
        .collect()
}

#[tokio::test]
async fn top_k_keeps_the_most_counted_within_its_bounds() {
    let ts = store(Backend::Embedded).await;
    let p = counter(&ts.store, 3, 2);
    let (a, b, c) = (id(), id(), id());
    hit(&p, &a, "https://a/1", 10);
    hit(&p, &a, "https://a/2", 6);
    hit(&p, &a, "https://a/3", 2);
    hit(&p, &b, "https://b/1", 8);
    // Tenant a is full: a new URL replaces the least counted, inheriting its count.
    hit(&p, &a, "https://a/4", 1);
    assert_eq!(
        urls_of(&p, &a),
        [
            ("https://a/1".into(), 10),
            ("https://a/2".into(), 6),
            ("https://a/4".into(), 3)
        ]
    );
    // A third tenant is refused: two are tracked at most.
    hit(&p, &c, "https://c/1", 5);
    assert!(urls_of(&p, &c).is_empty());
    // So is a URL longer than the limit.
    p.record_access(&a, &"x".repeat(MAX_URL_BYTES + 1));
    let stats = p.stats();
    assert_eq!((stats.tenants, stats.urls, stats.refused), (2, 4, 6));

    // The global ranking interleaves tenants by count.
    let global: Vec<(String, u64)> = p
        .top(3)
        .into_iter()
        .map(|e| (format!("{}|{}", e.tenant_id, e.url), e.count))
        .collect();
    assert_eq!(
        global,
        [
            (format!("{a}|https://a/1"), 10),
            (format!("{b}|https://b/1"), 8),
            (format!("{a}|https://a/2"), 6)
        ]
    );
    assert!(p.top(0).is_empty());
    assert_eq!(p.top(100).len(), 4);
}

async fn counts_survive_a_restart(b: Backend) {
    let ts = store(b).await;
    let (t, other) = (id(), id());
    let first = counter(&ts.store, 10, 100);
    hit(&first, &t, "https://example.com/a", 5);
    hit(&first, &t, "https://example.com/b", 2);
    hit(&first, &other, "https://example.com/c", 1);
    let report = first.persist().await;
    assert_eq!((report.written, report.failed.len()), (2, 0), "{report:?}");
    // Nothing new: the next persist writes nothing.
    assert_eq!(first.persist().await.written, 0);
    drop(first);

    let restarted = counter(&ts.store, 10, 100);
    assert_eq!(restarted.load().await.expect("load"), 2);
    assert_eq!(
        urls_of(&restarted, &t),
        [
            ("https://example.com/a".into(), 5),
            ("https://example.com/b".into(), 2)
        ]
    );
    assert_eq!(urls_of(&restarted, &other).len(), 1);

    // Counting goes on from the loaded totals and is persisted as increments.
    hit(&restarted, &t, "https://example.com/b", 4);
    assert_eq!(restarted.top_of(&t, 1)[0].count, 6);
    restarted.persist().await;
    let again = counter(&ts.store, 10, 100);
    again.load().await.expect("load");
    assert_eq!(again.top_of(&t, 1)[0].url, "https://example.com/b");
    assert_eq!(again.top_of(&t, 1)[0].count, 6);

    // A forgotten tenant is gone from the store too.
    again.forget(&t).await.expect("forget");
    let fresh = counter(&ts.store, 10, 100);
    assert_eq!(fresh.load().await.expect("load"), 1);
    assert!(urls_of(&fresh, &t).is_empty());
}

async fn instances_add_up_and_the_record_stays_bounded(b: Backend) {
    let ts = store(b).await;
    let t = id();
    let (one, two) = (counter(&ts.store, 4, 100), counter(&ts.store, 4, 100));
    hit(&one, &t, "https://shared/", 3);
    hit(&two, &t, "https://shared/", 4);
    for i in 0..3 {
        hit(&one, &t, &format!("https://one/{i}"), 2);
        hit(&two, &t, &format!("https://two/{i}"), 1);
    }
    assert!(one.persist().await.failed.is_empty());
    assert!(two.persist().await.failed.is_empty());
    // The second persist read the merged record back: the shared URL counts 7 there.
    assert_eq!(
        two.top_of(&t, 1)[0],
        riptide_persistence::cache::popularity::Popular {
            tenant_id: t.clone(),
            url: "https://shared/".into(),
            count: 7
        }
    );
    // 7 URLs were written, more than 4 + 4/4: the record was trimmed to the top 4.
    let keys = ScopeKeys::new(ts.store.key_prefix(), &Scope::Tenant(t.clone()));
    let mut stored = ts
        .store
        .counters_get(&keys.record("pop"))
        .await
        .expect("record");
    stored.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(
        stored,
        [
            ("https://shared/".into(), 7),
            ("https://one/0".into(), 2),
            ("https://one/1".into(), 2),
            ("https://one/2".into(), 2)
        ]
    );
}

/// An encrypted tenant's URLs are sealed in the store, add up across instances, open
/// with its data key, and are shredded when the key is deleted; a standard tenant's
/// stay plain.
async fn encrypted_tenants_urls_are_sealed_and_shredded(b: Backend) {
    let ts = store(b).await;
    let keys = TenantKeys::new(ts.store.clone(), MasterKey::generate());
    let (secret, plain) = (id(), id());
    keys.create(&secret).await.expect("data key");
    let sealed = || counter(&ts.store, 10, 100).with_sealing(keys.clone());
    let (one, two) = (sealed(), sealed());
    hit(&one, &secret, "https://private.example/report", 3);
    hit(&two, &secret, "https://private.example/report", 4);
    hit(&one, &plain, "https://public.example/", 1);
    assert!(one.persist().await.failed.is_empty());
    assert!(two.persist().await.failed.is_empty());

    let record = |t: &TenantId| {
        ScopeKeys::new(ts.store.key_prefix(), &Scope::Tenant(t.clone())).record("pop")
    };
    let stored = ts
        .store
        .counters_get(&record(&secret))
        .await
        .expect("record");
    assert_eq!(
        stored.len(),
        1,
        "both instances counted the same field: {stored:?}"
    );
    assert!(!stored[0].0.contains("private"), "{stored:?}");
    assert_eq!(stored[0].1, 7);
    let stored = ts
        .store
        .counters_get(&record(&plain))
        .await
        .expect("record");
    assert_eq!(stored, [("https://public.example/".to_owned(), 1)]);

    let restarted = sealed();
    assert_eq!(restarted.load().await.expect("load"), 2);
    assert_eq!(
        urls_of(&restarted, &secret),
        [("https://private.example/report".into(), 7)]
    );

    // The data key is destroyed (the tenant deleted): nothing of it opens any more.
    keys.delete(&secret).await.expect("delete");
    let after = sealed();
    assert_eq!(after.load().await.expect("load"), 1);
    assert!(urls_of(&after, &secret).is_empty());
}

on_every_backend!(
    counts_survive_a_restart,
    instances_add_up_and_the_record_stays_bounded,
    encrypted_tenants_urls_are_sealed_and_shredded
);
