//! Property test: whatever one tenant does, another tenant's data is untouched, on every
//! backend. A model (a map) says what each tenant must read after every operation.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use riptide_persistence::keys::Namespace;
use riptide_persistence::{
    CacheConfig, CacheError, CacheMetadata, PersistentCacheManager, Scope, cache::scope_of,
};

use super::support::{Backend, store};

const KEYS: [&str; 5] = ["a:1", "a:2", "b:1", "b:2", "plain"];
const TAGS: [&str; 2] = ["x", "y"];
/// Index 3 is the global scope (no tenant).
const SCOPES: usize = 4;

#[derive(Debug, Clone)]
enum Step {
    Set {
        scope: usize,
        key: usize,
        value: u32,
        tag: Option<usize>,
    },
    Delete {
        scope: usize,
        key: usize,
    },
    InvalidateTag {
        scope: usize,
        tag: usize,
    },
    InvalidateNamespace {
        scope: usize,
        ns: &'static str,
    },
    Clear {
        scope: usize,
    },
    BadTenant {
        raw: String,
        key: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..SCOPES, 0..KEYS.len(), any::<u32>(), proptest::option::of(0..TAGS.len()))
            .prop_map(|(scope, key, value, tag)| Step::Set { scope, key, value, tag }),
        1 => (0..SCOPES, 0..KEYS.len()).prop_map(|(scope, key)| Step::Delete { scope, key }),
        1 => (0..SCOPES, 0..TAGS.len()).prop_map(|(scope, tag)| Step::InvalidateTag { scope, tag }),
        1 => (0..SCOPES, prop_oneof![Just("a"), Just("b"), Just("default")])
            .prop_map(|(scope, ns)| Step::InvalidateNamespace { scope, ns }),
        1 => (0..SCOPES).prop_map(|scope| Step::Clear { scope }),
        1 => (any::<String>(), 0..KEYS.len()).prop_map(|(raw, key)| Step::BadTenant { raw, key }),
    ]
}

type Model = HashMap<(usize, usize), (u32, Option<usize>)>;

async fn run_case(cache: &PersistentCacheManager, steps: Vec<Step>) {
    let tenants: Vec<Option<String>> = (0..SCOPES)
        .map(|i| (i < 3).then(|| riptide_test_support::unique("iso")))
        .collect();
    // The global scope is shared by all cases on this store: start it empty.
    cache.clear(&Scope::Global).await.unwrap();
    let t = |i: usize| tenants[i].as_deref();
    // The typed scope of each index, for the calls that take one.
    let s = |i: usize| scope_of(t(i)).unwrap();
    let mut model: Model = HashMap::new();
    for step in steps {
        match step.clone() {
            Step::Set {
                scope,
                key,
                value,
                tag,
            } => {
                let meta = tag.map(|g| CacheMetadata::with_tags([TAGS[g]]));
                cache
                    .set(KEYS[key], &value, t(scope), None, meta)
                    .await
                    .unwrap();
                model.insert((scope, key), (value, tag));
            }
            Step::Delete { scope, key } => {
                let existed = cache.delete(KEYS[key], &s(scope)).await.unwrap();
                assert_eq!(existed, model.remove(&(scope, key)).is_some(), "{step:?}");
            }
            Step::InvalidateTag { scope, tag } => {
                let n = cache.invalidate_tag(TAGS[tag], &s(scope)).await.unwrap();
                let before = model.len();
                model.retain(|&(s, _), &mut (_, g)| !(s == scope && g == Some(tag)));
                assert_eq!(n as usize, before - model.len(), "{step:?}");
            }
            Step::InvalidateNamespace { scope, ns } => {
                let n = cache.invalidate_namespace(ns, &s(scope)).await.unwrap();
                let before = model.len();
                model.retain(|&(s, k), _| {
                    !(s == scope && Namespace::of_key(KEYS[k]).as_str() == ns)
                });
                assert_eq!(n as usize, before - model.len(), "{step:?}");
            }
            Step::Clear { scope } => {
                cache.clear(&s(scope)).await.unwrap();
                model.retain(|&(s, _), _| s != scope);
            }
            Step::BadTenant { raw, key } => {
                if riptide_persistence::tenant_id::is_valid_tenant_id(&raw) {
                    continue;
                }
                let set = cache.set(KEYS[key], &1u32, Some(&raw), None, None).await;
                assert!(matches!(set, Err(CacheError::Invalid(_))), "{raw:?}");
                assert!(matches!(
                    cache.clear(&raw).await,
                    Err(CacheError::Invalid(_))
                ));
            }
        }
        for scope in 0..SCOPES {
            for (key, name) in KEYS.iter().enumerate() {
                let got: Option<u32> = cache.get(name, t(scope)).await.unwrap();
                let want = model.get(&(scope, key)).map(|(v, _)| *v);
                assert_eq!(got, want, "scope {scope} key {name} after {step:?}");
            }
        }
    }
    for (scope, tenant) in tenants.iter().enumerate() {
        let usage = cache
            .usage(&scope_of(tenant.as_deref()).unwrap())
            .await
            .unwrap();
        let live = model.keys().filter(|(s, _)| *s == scope).count() as u64;
        assert_eq!(usage.entries, live, "scope {scope}");
    }
}

fn check_backend(backend: Backend, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ts = rt.block_on(store(backend));
    // L1 off: every read goes to the store, so the store's isolation is what is tested.
    let cfg = CacheConfig {
        l1_capacity_bytes: 0,
        ..Default::default()
    };
    let cache = PersistentCacheManager::with_store(ts.store.clone(), cfg).unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..25), |steps| {
            rt.block_on(run_case(&cache, steps));
            Ok(())
        })
        .unwrap();
}

#[test]
fn tenants_are_isolated_on_the_embedded_store() {
    check_backend(Backend::Embedded, 48);
}

#[test]
fn tenants_are_isolated_on_redis() {
    check_backend(Backend::Redis, 32);
}

#[test]
fn tenants_are_isolated_on_redis_cluster() {
    check_backend(Backend::Cluster, 16);
}
