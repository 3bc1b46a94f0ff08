//! API keys on every backend: create, authenticate, list, revoke (here and on a second
//! instance within a second), rotate with an overlap on an injected clock, tenant
//! isolation, `delete_all`, the pepper, and malformed keys refused before the store.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use riptide_persistence::clock::{ManualClock, SharedClock, system_clock};
use riptide_persistence::config::{RedisConfig, TenancyConfig};
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::tenant::TenantError;
use riptide_persistence::tenant::api_keys::{ApiKeys, KEY_ID_LEN, LAST_USED_INTERVAL_MS};
use riptide_persistence::tenant::secrets::{
    API_KEY_PEPPER_FILE, load_or_create_secret, load_pepper,
};
use riptide_persistence::{SharedStore, TenantId};
use riptide_test_support::{start_redis_server, unique};

use crate::support::{Backend, on_every_backend, store, store_with_clock};

on_every_backend!(
    created_key_authenticates_to_its_tenant,
    list_never_shows_the_secret_or_its_hash,
    malformed_keys_are_invalid,
    revoke_applies_here_at_once_and_on_another_instance_within_a_second,
    rotate_overlaps_then_only_the_new_key_works,
    another_tenant_cannot_see_revoke_or_rotate_a_key,
    delete_all_removes_every_key_and_record,
    a_different_pepper_cannot_authenticate,
    last_used_is_written_at_most_once_a_minute,
);

const OVERLAP_SECONDS: u64 = 3_600;

fn pepper(byte: u8) -> Vec<u8> {
    vec![byte; 32]
}

fn config() -> TenancyConfig {
    TenancyConfig {
        api_key_rotation_overlap_seconds: OVERLAP_SECONDS,
        ..Default::default()
    }
}

fn api_keys(store: &SharedStore, clock: SharedClock) -> ApiKeys {
    ApiKeys::new(store.clone(), clock, pepper(7), &config())
}

/// A new tenant id with a stand-in tenant record (see [`crate::support::stand_in_tenant`]).
async fn new_tenant(store: &SharedStore) -> TenantId {
    crate::support::stand_in_tenant(store).await
}

fn scope(store: &SharedStore, t: &TenantId) -> ScopeKeys {
    ScopeKeys::new(store.key_prefix(), &Scope::Tenant(t.clone()))
}

/// The key record exactly as stored.
async fn raw_record(store: &SharedStore, t: &TenantId, key_id: &str) -> Option<serde_json::Value> {
    let bytes = store
        .get(&scope(store, t).record(&format!("key:{key_id}")))
        .await
        .expect("get record")?;
    Some(serde_json::from_slice(&bytes).expect("record is JSON"))
}

fn lookup_key(store: &SharedStore, hash_hex: &str) -> String {
    format!("{}:apikey:{hash_hex}", store.key_prefix())
}

fn is_invalid(r: &Result<impl std::fmt::Debug, TenantError>) -> bool {
    matches!(r, Err(TenantError::InvalidApiKey))
}

async fn created_key_authenticates_to_its_tenant(b: Backend) {
    let ts = store(b).await;
    let keys = api_keys(&ts.store, system_clock());
    let t = new_tenant(&ts.store).await;
    let created = keys.create(&t, Some("ci deploy")).await.expect("create");

    let secret = &created.secret;
    let rest = secret.strip_prefix("rt_").expect("the configured prefix");
    assert_eq!(&rest[..KEY_ID_LEN], created.key_id);
    let random = URL_SAFE_NO_PAD
        .decode(&rest[KEY_ID_LEN + 1..])
        .expect("base64url body");
    assert_eq!(random.len(), 32, "256 bits of randomness");
    assert_eq!(created.display_prefix, format!("rt_{}…", created.key_id));
    assert!(
        !format!("{created:?}").contains(&rest[KEY_ID_LEN + 1..]),
        "Debug shows the secret"
    );

    let auth = keys.authenticate(secret).await.expect("authenticate");
    assert_eq!(auth.tenant_id, t);
    assert_eq!(auth.key_id, created.key_id);
    // Again, from the in-process cache.
    assert_eq!(keys.authenticate(secret).await.expect("cached"), auth);
    // A fresh instance (no cache) agrees.
    let other = api_keys(&ts.store, system_clock());
    assert_eq!(
        other.authenticate(secret).await.expect("second instance"),
        auth
    );

    // Two keys of one tenant are distinct and both work.
    let second = keys.create(&t, None).await.expect("second key");
    assert_ne!(second.secret, created.secret);
    assert_ne!(second.key_id, created.key_id);
    assert_eq!(
        keys.authenticate(&second.secret)
            .await
            .expect("second")
            .key_id,
        second.key_id
    );

    // Labels are checked.
    let r = keys.create(&t, Some(&"l".repeat(201))).await;
    assert!(
        matches!(r, Err(TenantError::InvalidField { field: "label", .. })),
        "{r:?}"
    );
    let r = keys.create(&t, Some("tab\there")).await;
    assert!(
        matches!(r, Err(TenantError::InvalidField { field: "label", .. })),
        "{r:?}"
    );
}

async fn list_never_shows_the_secret_or_its_hash(b: Backend) {
    let ts = store(b).await;
    let keys = api_keys(&ts.store, system_clock());
    let t = new_tenant(&ts.store).await;
    let a = keys.create(&t, Some("a")).await.expect("create a");
    let c = keys.create(&t, Some("c")).await.expect("create c");

    let list = keys.list(&t).await.expect("list");
    assert_eq!(list.len(), 2);
    let ids: Vec<&str> = list.iter().map(|k| k.key_id.as_str()).collect();
    assert!(
        ids.contains(&a.key_id.as_str()) && ids.contains(&c.key_id.as_str()),
        "{ids:?}"
    );
    let info = list
        .iter()
        .find(|k| k.key_id == a.key_id)
        .expect("a listed");
    assert_eq!(info.label.as_deref(), Some("a"));
    assert_eq!(info.display_prefix, a.display_prefix);
    assert_eq!(info.created_at, a.created_at);
    assert!(info.last_used_at.is_none() && info.expires_at.is_none() && info.revoked_at.is_none());

    let listed = serde_json::to_string(&list).expect("serialize") + &format!("{list:?}");
    for created in [&a, &c] {
        let record = raw_record(&ts.store, &t, &created.key_id)
            .await
            .expect("record stored");
        let hash = record["hash_hex"].as_str().expect("hash_hex").to_owned();
        assert_eq!(hash.len(), 64);
        assert!(!listed.contains(&hash), "the list shows a hash");
        assert!(!listed.contains(&created.secret), "the list shows a secret");
        let body = &created.secret[created.secret.len() - 43..];
        assert!(
            !listed.contains(body),
            "the list shows the secret's random part"
        );
        // The store holds neither the secret nor its random part.
        assert!(!record.to_string().contains(body));
        let lookup = ts
            .store
            .get(&lookup_key(&ts.store, &hash))
            .await
            .expect("get")
            .expect("lookup stored");
        let lookup = String::from_utf8(lookup.to_vec()).expect("utf-8");
        assert!(!lookup.contains(body));
        assert!(
            lookup.contains(t.as_str()) && lookup.contains(&created.key_id),
            "{lookup}"
        );
    }
    let one = keys.get(&t, &a.key_id).await.expect("get one");
    assert_eq!(&one, info);
}

async fn malformed_keys_are_invalid(b: Backend) {
    let ts = store(b).await;
    let keys = api_keys(&ts.store, system_clock());
    let t = new_tenant(&ts.store).await;
    let good = keys.create(&t, None).await.expect("create").secret;
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for bad in [
        String::new(),
        "garbage".to_owned(),
        "rt_".to_owned(),
        good.replacen("rt_", "sk_", 1),
        format!("{good}x"),
        good[..good.len() - 1].to_owned(),
        format!("rt_{}", "a".repeat(10_000)),
        "x".repeat(1 << 20),
        good.replace('_', "."),
        format!("{good}\n"),
        "rt_ÄÄÄÄÄÄÄÄÄÄÄÄ_".to_owned() + &"a".repeat(43),
        // Well formed but unknown: a store lookup, then refused (and cached as refused).
        flipped,
    ] {
        let r = keys.authenticate(&bad).await;
        assert!(is_invalid(&r), "{:?}: {r:?}", bad.get(..40));
        let r = keys.authenticate(&bad).await;
        assert!(is_invalid(&r), "{:?} (again): {r:?}", bad.get(..40));
    }
    assert!(keys.authenticate(&good).await.is_ok());
}

/// Malformed keys never reach the store: with the server killed, they are still
/// refused as `InvalidApiKey`, while a well-formed key reports the store's outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_refused_without_a_store_round_trip() {
    let server = start_redis_server();
    let cfg = RedisConfig {
        key_prefix: unique("p"),
        pool_size: 1,
        ..Default::default()
    };
    let store: SharedStore = Arc::new(
        RedisStore::connect_standalone(&server.url(), &cfg)
            .await
            .expect("connect"),
    );
    let keys = api_keys(&store, system_clock());
    let t = new_tenant(&store).await;
    let good = keys.create(&t, None).await.expect("create").secret;
    server.kill();

    for bad in [
        "garbage".to_owned(),
        good.replacen("rt_", "xx_", 1),
        format!("{good}{good}"),
        "y".repeat(100_000),
    ] {
        let r = keys.authenticate(&bad).await;
        assert!(is_invalid(&r), "{r:?}");
    }
    // A well-formed key that is not cached needs the store, which is down.
    let unknown = format!(
        "rt_{}_{}",
        "a".repeat(KEY_ID_LEN),
        URL_SAFE_NO_PAD.encode([1u8; 32])
    );
    let r = keys.authenticate(&unknown).await;
    assert!(
        matches!(&r, Err(TenantError::Store(e)) if e.is_retryable()),
        "{r:?}"
    );
}

async fn revoke_applies_here_at_once_and_on_another_instance_within_a_second(b: Backend) {
    let ts = store(b).await;
    let here = api_keys(&ts.store, system_clock());
    let there = api_keys(&ts.store, system_clock());
    let t = new_tenant(&ts.store).await;
    let created = here.create(&t, None).await.expect("create");
    let keep = here.create(&t, None).await.expect("create another");
    // Both instances have the key cached as valid.
    assert!(here.authenticate(&created.secret).await.is_ok());
    assert!(there.authenticate(&created.secret).await.is_ok());

    here.revoke(&t, &created.key_id).await.expect("revoke");
    assert!(
        is_invalid(&here.authenticate(&created.secret).await),
        "same instance, at once"
    );
    // Revoking again is a no-op.
    here.revoke(&t, &created.key_id)
        .await
        .expect("revoke again");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        is_invalid(&there.authenticate(&created.secret).await),
        "other instance after 1.1 s"
    );
    assert!(is_invalid(
        &api_keys(&ts.store, system_clock())
            .authenticate(&created.secret)
            .await
    ));
    // The other key is untouched.
    assert!(there.authenticate(&keep.secret).await.is_ok());

    let info = here.get(&t, &created.key_id).await.expect("still listed");
    assert!(info.revoked_at.is_some());
    let record = raw_record(&ts.store, &t, &created.key_id)
        .await
        .expect("record kept");
    let hash = record["hash_hex"].as_str().expect("hash");
    assert!(
        ts.store
            .get(&lookup_key(&ts.store, hash))
            .await
            .expect("get")
            .is_none(),
        "lookup record deleted"
    );

    let r = here.revoke(&t, "aaaaaaaaaaaa").await;
    assert!(matches!(r, Err(TenantError::NotFound { .. })), "{r:?}");
    let r = here.rotate(&t, &created.key_id).await;
    assert!(
        matches!(
            r,
            Err(TenantError::InvalidField {
                field: "key_id",
                ..
            })
        ),
        "{r:?}"
    );
}

async fn rotate_overlaps_then_only_the_new_key_works(b: Backend) {
    let manual = ManualClock::new(1_795_000_000_000);
    let clock: SharedClock = manual.clone();
    // Redis keeps its own clock for TTLs; keys never use store TTLs: expiry is checked
    // against this injected clock.
    let ts = store_with_clock(b, clock.clone()).await;
    let keys = api_keys(&ts.store, clock.clone());
    let t = new_tenant(&ts.store).await;
    let old = keys.create(&t, Some("prod")).await.expect("create");
    assert!(
        keys.authenticate(&old.secret).await.is_ok(),
        "cached as valid before the rotation"
    );

    let new = keys.rotate(&t, &old.key_id).await.expect("rotate");
    assert_ne!(new.key_id, old.key_id);
    assert!(
        keys.authenticate(&old.secret).await.is_ok(),
        "old key works during the overlap"
    );
    assert!(
        keys.authenticate(&new.secret).await.is_ok(),
        "new key works"
    );
    let listed = keys.list(&t).await.expect("list");
    assert_eq!(listed.len(), 2);
    let old_info = listed
        .iter()
        .find(|k| k.key_id == old.key_id)
        .expect("old listed");
    let expected_expiry = old.created_at + chrono::Duration::seconds(OVERLAP_SECONDS as i64);
    assert_eq!(old_info.expires_at, Some(expected_expiry));
    let new_info = listed
        .iter()
        .find(|k| k.key_id == new.key_id)
        .expect("new listed");
    assert_eq!(
        new_info.label.as_deref(),
        Some("prod"),
        "the label carries over"
    );
    assert!(new_info.expires_at.is_none());

    manual.advance_ms(OVERLAP_SECONDS * 1_000 - 1);
    assert!(
        keys.authenticate(&old.secret).await.is_ok(),
        "1 ms before the end of the overlap"
    );
    manual.advance_ms(1);
    assert!(
        is_invalid(&keys.authenticate(&old.secret).await),
        "old key fails after the overlap"
    );
    assert!(is_invalid(
        &api_keys(&ts.store, clock.clone())
            .authenticate(&old.secret)
            .await
    ));
    assert!(
        keys.authenticate(&new.secret).await.is_ok(),
        "new key still works"
    );
    assert!(
        !old_info.is_active_at(
            chrono::DateTime::from_timestamp_millis(manual_now(&clock)).expect("time")
        )
    );

    let r = keys.rotate(&t, &old.key_id).await;
    assert!(
        matches!(
            r,
            Err(TenantError::InvalidField {
                field: "key_id",
                ..
            })
        ),
        "an expired key: {r:?}"
    );
}

fn manual_now(clock: &SharedClock) -> i64 {
    i64::try_from(clock.now_ms()).expect("ms fit i64")
}

async fn another_tenant_cannot_see_revoke_or_rotate_a_key(b: Backend) {
    let ts = store(b).await;
    let keys = api_keys(&ts.store, system_clock());
    let owner = new_tenant(&ts.store).await;
    let intruder = new_tenant(&ts.store).await;
    let created = keys.create(&owner, None).await.expect("create");

    assert!(keys.list(&intruder).await.expect("list").is_empty());
    for r in [
        keys.revoke(&intruder, &created.key_id).await.map(|_| ()),
        keys.rotate(&intruder, &created.key_id).await.map(|_| ()),
        keys.get(&intruder, &created.key_id).await.map(|_| ()),
    ] {
        assert!(
            matches!(
                r,
                Err(TenantError::NotFound {
                    what: "api key",
                    ..
                })
            ),
            "{r:?}"
        );
    }
    // Malformed ids are just not found, never a key.
    for bad in [
        "",
        "../keys",
        "AAAAAAAAAAAA",
        "aaaa:aaaaaaa",
        &"a".repeat(500),
    ] {
        let r = keys.revoke(&owner, bad).await;
        assert!(
            matches!(r, Err(TenantError::NotFound { .. })),
            "{bad:?}: {r:?}"
        );
    }
    let auth = keys
        .authenticate(&created.secret)
        .await
        .expect("still valid");
    assert_eq!(auth.tenant_id, owner);
    assert_eq!(keys.list(&owner).await.expect("list").len(), 1);
    assert!(keys.list(&intruder).await.expect("list").is_empty());
}

async fn delete_all_removes_every_key_and_record(b: Backend) {
    let ts = store(b).await;
    let keys = api_keys(&ts.store, system_clock());
    let t = new_tenant(&ts.store).await;
    let other = new_tenant(&ts.store).await;
    let survivor = keys.create(&other, None).await.expect("other tenant's key");
    let mut created = Vec::new();
    for i in 0..3 {
        created.push(
            keys.create(&t, Some(&format!("k{i}")))
                .await
                .expect("create"),
        );
    }
    keys.revoke(&t, &created[0].key_id)
        .await
        .expect("revoke one");
    let _rotated = keys
        .rotate(&t, &created[1].key_id)
        .await
        .expect("rotate one");
    for c in &created[1..] {
        assert!(keys.authenticate(&c.secret).await.is_ok());
    }
    let mut hashes = Vec::new();
    for c in &created {
        let record = raw_record(&ts.store, &t, &c.key_id).await.expect("record");
        hashes.push(record["hash_hex"].as_str().expect("hash").to_owned());
    }

    assert_eq!(keys.delete_all(&t).await.expect("delete_all"), 4);
    for c in &created {
        assert!(
            is_invalid(&keys.authenticate(&c.secret).await),
            "same instance, at once"
        );
        assert!(
            raw_record(&ts.store, &t, &c.key_id).await.is_none(),
            "record deleted"
        );
    }
    for h in &hashes {
        assert!(
            ts.store
                .get(&lookup_key(&ts.store, h))
                .await
                .expect("get")
                .is_none(),
            "lookup deleted"
        );
    }
    assert_eq!(
        ts.store
            .zset_len(&scope(&ts.store, &t).record("keys"))
            .await
            .expect("len"),
        0
    );
    assert!(keys.list(&t).await.expect("list").is_empty());
    assert_eq!(keys.delete_all(&t).await.expect("again"), 0);
    // Other tenants keep theirs.
    assert!(keys.authenticate(&survivor.secret).await.is_ok());
    assert_eq!(keys.list(&other).await.expect("list").len(), 1);
}

async fn a_different_pepper_cannot_authenticate(b: Backend) {
    let ts = store(b).await;
    let keys = api_keys(&ts.store, system_clock());
    let t = new_tenant(&ts.store).await;
    let created = keys.create(&t, None).await.expect("create");
    let other = ApiKeys::new(ts.store.clone(), system_clock(), pepper(8), &config());
    assert!(is_invalid(&other.authenticate(&created.secret).await));
    // The same pepper on a new instance (a restart) works.
    let same = ApiKeys::new(ts.store.clone(), system_clock(), pepper(7), &config());
    assert!(same.authenticate(&created.secret).await.is_ok());
    // A pepper that is too short is refused outright.
    let weak = ApiKeys::new(ts.store.clone(), system_clock(), vec![1u8; 8], &config());
    assert!(matches!(
        weak.authenticate(&created.secret).await,
        Err(TenantError::Crypto(_))
    ));
    assert!(matches!(
        weak.create(&t, None).await,
        Err(TenantError::Crypto(_))
    ));
}

async fn last_used_is_written_at_most_once_a_minute(b: Backend) {
    let manual = ManualClock::new(1_795_000_000_000);
    let clock: SharedClock = manual.clone();
    let ts = store_with_clock(b, clock.clone()).await;
    let keys = api_keys(&ts.store, clock.clone());
    let t = new_tenant(&ts.store).await;
    let created = keys.create(&t, None).await.expect("create");
    assert!(
        keys.get(&t, &created.key_id)
            .await
            .expect("get")
            .last_used_at
            .is_none()
    );

    keys.authenticate(&created.secret).await.expect("auth");
    let first = keys
        .get(&t, &created.key_id)
        .await
        .expect("get")
        .last_used_at
        .expect("recorded");
    assert_eq!(first, created.created_at);

    manual.advance_ms(LAST_USED_INTERVAL_MS / 2);
    keys.authenticate(&created.secret).await.expect("auth");
    let second = keys
        .get(&t, &created.key_id)
        .await
        .expect("get")
        .last_used_at;
    assert_eq!(second, Some(first), "not rewritten within a minute");

    manual.advance_ms(LAST_USED_INTERVAL_MS / 2);
    keys.authenticate(&created.secret).await.expect("auth");
    let third = keys
        .get(&t, &created.key_id)
        .await
        .expect("get")
        .last_used_at
        .expect("recorded");
    assert_eq!(
        (third - first).num_milliseconds(),
        LAST_USED_INTERVAL_MS as i64
    );
}

/// The pepper: created once with mode 0600 and reused; a configured one wins and
/// must be long enough; keys survive a "restart" that reloads the generated pepper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pepper_is_created_once_reused_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets_dir = dir.path().join("secrets");
    let cfg = TenancyConfig {
        secrets_dir: secrets_dir.clone(),
        ..config()
    };

    let first = load_pepper(&cfg.api_key_pepper, &cfg.secrets_dir).expect("generated");
    assert_eq!(first.len(), 32);
    let path = secrets_dir.join(API_KEY_PEPPER_FILE);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
    }
    assert_eq!(
        load_pepper(&cfg.api_key_pepper, &cfg.secrets_dir).expect("reused"),
        first
    );
    let (again, created) =
        load_or_create_secret(&secrets_dir, API_KEY_PEPPER_FILE, 32).expect("generic");
    assert!(!created);
    assert_eq!(again, first);
    let (other, created) =
        load_or_create_secret(&secrets_dir, "master.key", 32).expect("another secret");
    assert!(created);
    assert_ne!(other, first);

    let too_short = TenancyConfig {
        api_key_pepper: STANDARD.encode([3u8; 31]),
        ..cfg.clone()
    };
    let r = load_pepper(&too_short.api_key_pepper, &too_short.secrets_dir);
    assert!(
        matches!(
            r,
            Err(TenantError::InvalidField {
                field: "tenant.api_key_pepper",
                ..
            })
        ),
        "{r:?}"
    );
    let configured = TenancyConfig {
        api_key_pepper: STANDARD.encode([3u8; 48]),
        ..cfg.clone()
    };
    assert_eq!(
        load_pepper(&configured.api_key_pepper, &configured.secrets_dir).expect("configured"),
        vec![3u8; 48]
    );

    // Keys made under the generated pepper authenticate after a reload of it.
    let ts = store(Backend::Embedded).await;
    let before = ApiKeys::new(ts.store.clone(), system_clock(), first, &cfg);
    let t = new_tenant(&ts.store).await;
    let created = before.create(&t, None).await.expect("create");
    let after = ApiKeys::new(
        ts.store.clone(),
        system_clock(),
        load_pepper(&cfg.api_key_pepper, &cfg.secrets_dir).expect("reload"),
        &cfg,
    );
    assert_eq!(
        after
            .authenticate(&created.secret)
            .await
            .expect("auth")
            .tenant_id,
        t
    );
}
