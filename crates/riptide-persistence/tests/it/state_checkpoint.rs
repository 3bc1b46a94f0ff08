//! Checkpoints on every backend: populate through a real `TenantManager`, checkpoint,
//! wipe what was exported, restore, and compare everything; dry runs, listing,
//! retention and refusals of damaged files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{Datelike, Utc};
use riptide_persistence::clock::{ManualClock, SharedClock, system_clock};
use riptide_persistence::config::StateConfig;
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::state::checkpoint::{
    CheckpointError, CheckpointExtra, CheckpointManager, KindCounts, RecordKind,
};
use riptide_persistence::store::Durability;
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{
    BillingPlan, ResourceUsageRecord, TenantError, TenantManager, TenantUpdate,
};
use riptide_persistence::{CacheConfig, PersistentCacheManager, SharedStore, TenantId};

use super::support::{Backend, on_every_backend, store};
use super::tenant_lifecycle::{manager, owner, section, tenant_config};

on_every_backend!(
    round_trip_restores_everything,
    dry_run_reports_changes_and_writes_nothing,
    list_retention_and_refusals,
    empty_store_checkpoints_and_restores,
);

const PAGE: &str = "<p>confidential quarterly numbers, do not leak</p>";
const SESSION_TTL_MS: u64 = 600_000;

fn state_cfg(dir: &Path, retention: usize) -> StateConfig {
    StateConfig {
        checkpoint_dir: dir.to_path_buf(),
        checkpoint_retention: retention,
        ..Default::default()
    }
}

fn scope(store: &SharedStore, tenant: &str) -> ScopeKeys {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(tenant).unwrap()),
    )
}

fn usage(ops: u64, at: chrono::DateTime<Utc>) -> ResourceUsageRecord {
    ResourceUsageRecord {
        operation_count: ops,
        data_bytes: ops * 100,
        compute_time_ms: ops * 3,
        storage_bytes: 0,
        timestamp: at,
    }
}

/// A session in the session layer's layout: record `session:<id>` with a TTL, index
/// `sessions` scored by expiry ms.
async fn put_session(store: &SharedStore, tenant: &str, id: &str, value: &[u8], expires_ms: i64) {
    let keys = scope(store, tenant);
    store
        .set(
            &keys.record(&format!("session:{id}")),
            value,
            Some(SESSION_TTL_MS),
            Durability::Durable,
        )
        .await
        .unwrap();
    store
        .zset_add(&keys.record("sessions"), &[(id.to_owned(), expires_ms)])
        .await
        .unwrap();
}

/// What `populate` made.
struct World {
    /// Tenant ids: plain, encrypted, basic.
    tenants: Vec<String>,
    encrypted: String,
    /// A working API key of the plain tenant.
    secret: String,
    /// One of its key ids.
    key_id: String,
}

/// Three tenants through the manager: quotas, API keys (one revoked), usage in two
/// months (flushed), storage, an encrypted tenant with a sealed cache value, and
/// sessions (one expired in the index only).
async fn populate(m: &TenantManager, store: &SharedStore, cache: &PersistentCacheManager) -> World {
    let mut plain_cfg = tenant_config("");
    plain_cfg.quotas.insert("operations_per_minute".into(), 120);
    plain_cfg.quotas.insert("storage_bytes".into(), 1_000_000);
    let plain = m
        .create_tenant(plain_cfg, owner(), BillingPlan::Professional)
        .await
        .unwrap();
    let mut enc_cfg = tenant_config("");
    enc_cfg.encryption_enabled = true;
    let encrypted = m
        .create_tenant(enc_cfg, owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let basic = m
        .create_tenant(tenant_config(""), owner(), BillingPlan::Basic)
        .await
        .unwrap();

    let key = m
        .create_api_key_by("admin", &plain, Some("ci"))
        .await
        .unwrap();
    let revoked = m.create_api_key_by("admin", &plain, None).await.unwrap();
    m.revoke_api_key_by("admin", &plain, &revoked.key_id)
        .await
        .unwrap();
    m.create_api_key_by("admin", &encrypted, Some("enc"))
        .await
        .unwrap();
    m.authenticate(&key.secret).await.unwrap();

    let now = Utc::now();
    let last_month = now - chrono::Duration::days(40);
    for t in [&plain, &encrypted, &basic] {
        m.record_usage(t, "api_request", usage(3, now))
            .await
            .unwrap();
    }
    m.record_usage(&plain, "extract", usage(7, last_month))
        .await
        .unwrap();
    m.flush_usage().await.unwrap();
    m.adjust_storage(&plain, 4_096).await.unwrap();

    cache
        .set("extract:report", &PAGE, Some(&encrypted), None, None)
        .await
        .unwrap();
    assert_eq!(
        cache
            .get::<String>("extract:report", Some(&encrypted))
            .await
            .unwrap()
            .as_deref(),
        Some(PAGE)
    );

    let expires = Utc::now().timestamp_millis() + SESSION_TTL_MS as i64;
    put_session(
        store,
        &encrypted,
        "s-enc-1",
        b"\x00sealed\xffbytes",
        expires,
    )
    .await;
    put_session(store, &basic, "s-1", br#"{"cookies":{"a":"1"}}"#, expires).await;
    put_session(
        store,
        &basic,
        "s-2",
        br#"{"headers":{"x":"y"}}"#,
        expires + 1,
    )
    .await;
    // Expired: in the index only; never checkpointed.
    store
        .zset_add(
            &scope(store, &basic).record("sessions"),
            &[("s-old".to_owned(), Utc::now().timestamp_millis() - 1_000)],
        )
        .await
        .unwrap();

    // Whatever the cache recorded for usage is flushed too: nothing pending remains to
    // change the store behind the test's back.
    m.flush_usage().await.unwrap();
    World {
        tenants: vec![plain.clone(), encrypted.clone(), basic],
        encrypted,
        secret: key.secret,
        key_id: key.key_id,
    }
}

/// An exported object's value, read independently of the checkpoint code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Snap {
    Bytes(Vec<u8>),
    Counters(BTreeMap<String, i64>),
    Zset(Vec<(String, i64)>),
    Score(i64),
}

/// Everything a checkpoint exports of `tenants`, keyed by store key (registry entries
/// as `<registry>#<id>`). Absent objects are left out.
async fn snapshot(store: &SharedStore, tenants: &[String]) -> BTreeMap<String, Snap> {
    let mut out = BTreeMap::new();
    let registry = format!("{}:tenants", store.key_prefix());
    for t in tenants {
        let keys = scope(store, t);
        if let Some(s) = store.zset_score(&registry, t).await.unwrap() {
            out.insert(format!("{registry}#{t}"), Snap::Score(s));
        }
        let mut records = vec![keys.record("meta"), keys.record("dek")];
        let index = store
            .zset_range(&keys.record("keys"), 0, 10_000)
            .await
            .unwrap();
        records.extend(
            index
                .iter()
                .map(|(id, _)| keys.record(&format!("key:{id}"))),
        );
        let sessions = store
            .zset_range_by_score(
                &keys.record("sessions"),
                Utc::now().timestamp_millis(),
                i64::MAX,
                10_000,
            )
            .await
            .unwrap();
        records.extend(
            sessions
                .iter()
                .map(|(id, _)| keys.record(&format!("session:{id}"))),
        );
        for key in records {
            if let Some(v) = store.get(&key).await.unwrap() {
                if key.contains(":key:") {
                    let hash = serde_json::from_slice::<serde_json::Value>(&v).unwrap()["hash_hex"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    let lookup = format!("{}:apikey:{hash}", store.key_prefix());
                    if let Some(l) = store.get(&lookup).await.unwrap() {
                        out.insert(lookup, Snap::Bytes(l.to_vec()));
                    }
                }
                out.insert(key, Snap::Bytes(v.to_vec()));
            }
        }
        let months = store
            .zset_range(&keys.record("usage_months"), 0, 10_000)
            .await
            .unwrap();
        let mut counters = vec![keys.record("q"), keys.record("storage")];
        counters.extend(
            months
                .iter()
                .map(|(m, _)| keys.record(&format!("usage:{m}"))),
        );
        for key in counters {
            let fields = store.counters_get(&key).await.unwrap();
            if !fields.is_empty() {
                out.insert(key, Snap::Counters(fields.into_iter().collect()));
            }
        }
        for (name, members) in [
            ("keys", index),
            ("usage_months", months),
            ("sessions", sessions),
        ] {
            if !members.is_empty() {
                out.insert(keys.record(name), Snap::Zset(members));
            }
        }
    }
    out
}

/// Deletes every object of `snap` (one key per call: they live on several slots).
async fn wipe(store: &SharedStore, snap: &BTreeMap<String, Snap>) {
    for (key, value) in snap {
        match (value, key.split_once('#')) {
            (Snap::Score(_), Some((registry, id))) => {
                assert_eq!(
                    store.zset_remove(registry, &[id.to_owned()]).await.unwrap(),
                    1
                );
            }
            _ => {
                assert_eq!(
                    store.delete(std::slice::from_ref(key)).await.unwrap(),
                    1,
                    "{key}"
                );
            }
        }
    }
}

/// A second tenant manager over the same store and secrets (as after a restart), with
/// a fresh cache attached: nothing cached in process.
async fn fresh(
    store: &SharedStore,
    secrets: &Path,
) -> (TenantManager, Arc<PersistentCacheManager>) {
    let m = TenantManager::with_store(
        store.clone(),
        section(secrets),
        Arc::new(RwLock::new(TenantMetrics::new())),
        system_clock(),
    )
    .await
    .unwrap();
    let cache = Arc::new(
        PersistentCacheManager::with_store(store.clone(), CacheConfig::default()).unwrap(),
    );
    m.attach_cache(cache.clone());
    (m, cache)
}

fn all_created(c: KindCounts) -> bool {
    c.create > 0 && c.overwrite == 0 && c.unchanged == 0
}

async fn round_trip_restores_everything(b: Backend) {
    let (m, ts, secrets) = manager(b, system_clock()).await;
    let store = ts.store.clone();
    let cache = Arc::new(
        PersistentCacheManager::with_store(store.clone(), CacheConfig::default()).unwrap(),
    );
    m.attach_cache(cache.clone());
    let world = populate(&m, &store, &cache).await;
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointManager::new(store.clone(), system_clock(), &state_cfg(dir.path(), 3));
    let extra = CheckpointExtra {
        config: Some(serde_json::json!({"cache": {"default_ttl_seconds": 60}})),
        warm_list: vec![
            (Some(world.encrypted.clone()), "extract:report".into()),
            (None, "g".into()),
        ],
    };

    let before = snapshot(&store, &world.tenants).await;
    let started = Instant::now();
    let info = ck.create(extra.clone()).await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "[{b:?}] checkpoint {}: {} bytes, {} tenants, {} sessions, {} objects, created in {took:?}",
        info.id,
        info.size_bytes,
        info.tenants,
        info.sessions,
        before.len()
    );
    assert_eq!((info.tenants, info.sessions, info.valid), (3, 3, true));
    assert_eq!(
        info.size_bytes,
        std::fs::metadata(dir.path().join(format!("{}.ckpt", info.id)))
            .unwrap()
            .len()
    );
    // Every kind is there: the snapshot sees what the checkpoint must hold.
    let p = store.key_prefix().to_owned();
    for needle in [
        ":meta",
        ":dek",
        ":q",
        ":storage",
        ":keys",
        ":key:",
        ":usage_months",
        ":usage:",
        ":sessions",
        ":session:",
    ] {
        assert!(
            before.keys().any(|k| k.contains(needle)),
            "{needle} in the snapshot"
        );
    }
    let lookups = before
        .keys()
        .filter(|k| k.starts_with(&format!("{p}:apikey:")))
        .count();
    assert_eq!(lookups, 2, "revoked keys have no lookup record");
    // The checkpoint holds key hashes, never a secret.
    let raw = std::fs::read(dir.path().join(format!("{}.ckpt", info.id))).unwrap();
    let body = zstd::decode_all(&raw[16..raw.len() - 68]).unwrap();
    let text = String::from_utf8(body).unwrap();
    // The random part of a key: its last 43 characters.
    let secret_body = &world.secret[world.secret.len() - 43..];
    assert!(
        !text.contains(secret_body),
        "no api key secret in a checkpoint"
    );
    assert!(!text.contains("s-old"), "expired sessions are left out");

    // Wipe every exported object, and show that nothing works without them.
    m.shutdown().await;
    wipe(&store, &before).await;
    assert!(snapshot(&store, &world.tenants).await.is_empty());
    {
        let (m2, cache2) = fresh(&store, secrets.path()).await;
        assert!(matches!(
            m2.authenticate(&world.secret).await,
            Err(TenantError::InvalidApiKey)
        ));
        assert!(!matches!(
            cache2
                .get::<String>("extract:report", Some(&world.encrypted))
                .await,
            Ok(Some(_))
        ));
        m2.shutdown().await;
    }

    let started = Instant::now();
    let report = ck.restore(&info.id, false).await.unwrap();
    eprintln!(
        "[{b:?}] restore of {} objects in {:?}: {:?}",
        before.len(),
        started.elapsed(),
        report.kinds
    );
    assert!(!report.dry_run);
    assert_eq!(
        (report.tenants, report.sessions, report.sessions_expired),
        (3, 3, 0)
    );
    assert!(report.extra_tenants.is_empty() && report.extra_tenants_total == 0);
    for kind in RecordKind::ALL {
        assert!(
            all_created(report.counts(kind)),
            "{kind:?}: {:?}",
            report.counts(kind)
        );
    }
    assert_eq!(report.counts(RecordKind::Registry).create, 3);
    assert_eq!(report.counts(RecordKind::ApiKey).create, 3);
    assert_eq!(report.counts(RecordKind::ApiKeyLookup).create, 2);
    assert_eq!(report.counts(RecordKind::Session).create, 3);
    assert_eq!(
        (report.config.clone(), report.warm_list.clone()),
        (extra.config, extra.warm_list)
    );

    // Byte-equal records, equal counters, equal sorted sets.
    assert_eq!(snapshot(&store, &world.tenants).await, before);
    // Sessions got a TTL back: they are still readable, and expire.
    let s1 = scope(&store, &world.tenants[2]).record("session:s-1");
    assert!(store.get(&s1).await.unwrap().is_some());

    // Restoring again changes nothing.
    let again = ck.restore(&info.id, false).await.unwrap();
    assert_eq!(again.changes(), 0, "{:?}", again.kinds);
    assert_eq!(again.counts(RecordKind::Session).unchanged, 3);

    // Through the tenant layer, as after a restart: the key authenticates, the
    // encrypted tenant's data key opens what was sealed before the checkpoint.
    let (m2, cache2) = fresh(&store, secrets.path()).await;
    let (auth, tenant) = m2.authenticate(&world.secret).await.unwrap();
    assert_eq!(
        (auth.key_id.as_str(), tenant.id()),
        (world.key_id.as_str(), world.tenants[0].as_str())
    );
    assert_eq!(
        cache2
            .get::<String>("extract:report", Some(&world.encrypted))
            .await
            .unwrap()
            .as_deref(),
        Some(PAGE)
    );
    let period = format!("{:04}-{:02}", Utc::now().year(), Utc::now().month());
    assert_eq!(
        m2.get_usage(&world.tenants[0], &period)
            .await
            .unwrap()
            .operations,
        3
    );
    assert_eq!(m2.list_api_keys(&world.tenants[0]).await.unwrap().len(), 2);
    assert_eq!(m2.list_tenants(0, 10).await.unwrap().total, 3);
    m2.shutdown().await;
}

async fn dry_run_reports_changes_and_writes_nothing(b: Backend) {
    let (m, ts, _secrets) = manager(b, system_clock()).await;
    let store = ts.store.clone();
    let cache = Arc::new(
        PersistentCacheManager::with_store(store.clone(), CacheConfig::default()).unwrap(),
    );
    m.attach_cache(cache.clone());
    let world = populate(&m, &store, &cache).await;
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointManager::new(store.clone(), system_clock(), &state_cfg(dir.path(), 3));
    let info = ck.create(CheckpointExtra::default()).await.unwrap();
    let checkpointed = snapshot(&store, &world.tenants).await;

    // Change the store: one tenant renamed (a change the restore keeps), one key record
    // gone, more usage, one session gone, one tenant added.
    let [plain, _, basic] = &world.tenants[..] else {
        unreachable!()
    };
    m.update_tenant(
        plain,
        TenantUpdate {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let keys = scope(&store, plain);
    store
        .delete(&[keys.record(&format!("key:{}", world.key_id))])
        .await
        .unwrap();
    m.record_usage(basic, "api_request", usage(5, Utc::now()))
        .await
        .unwrap();
    m.flush_usage().await.unwrap();
    store
        .delete(&[scope(&store, basic).record("session:s-2")])
        .await
        .unwrap();
    let newcomer = m
        .create_tenant(tenant_config(""), owner(), BillingPlan::Free)
        .await
        .unwrap();
    let mut everyone = world.tenants.clone();
    everyone.push(newcomer.clone());

    let changed = snapshot(&store, &everyone).await;
    assert_ne!(changed, checkpointed);
    let dry = ck.restore(&info.id, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        snapshot(&store, &everyone).await,
        changed,
        "a dry run writes nothing"
    );
    let expect = |kind, create, overwrite, unchanged| {
        assert_eq!(
            dry.counts(kind),
            KindCounts {
                create,
                overwrite,
                unchanged,
                kept_newer: 0,
                refused: 0,
            },
            "{kind:?}"
        );
    };
    assert_eq!(
        dry.counts(RecordKind::Tenant),
        KindCounts {
            unchanged: 2,
            kept_newer: 1,
            ..Default::default()
        },
        "the rename is newer than the checkpoint"
    );
    expect(RecordKind::ApiKey, 1, 0, 2);
    expect(RecordKind::Usage, 0, 1, 3);
    expect(RecordKind::Session, 1, 0, 2);
    expect(RecordKind::Registry, 0, 0, 3);
    expect(RecordKind::DataKey, 0, 0, 1);
    expect(RecordKind::ApiKeyLookup, 0, 0, 2);
    assert_eq!(dry.changes(), 3);
    assert_eq!(dry.objects_total, 4);
    assert_eq!(
        (dry.extra_tenants.clone(), dry.extra_tenants_total),
        (vec![newcomer.clone()], 1)
    );

    // Applying reports the same, and restores what the checkpoint holds but the newer
    // tenant record; the newcomer stays.
    let applied = ck.restore(&info.id, false).await.unwrap();
    assert_eq!(
        (applied.kinds.clone(), applied.extra_tenants_total),
        (dry.kinds.clone(), 1)
    );
    assert_eq!(applied.objects, dry.objects);
    let renamed_meta = scope(&store, plain).record("meta");
    let mut expected = checkpointed.clone();
    expected.insert(
        renamed_meta.clone(),
        changed.get(&renamed_meta).expect("meta").clone(),
    );
    assert_eq!(snapshot(&store, &world.tenants).await, expected);
    assert!(m.get_tenant(&newcomer).await.unwrap().is_some());
    let after = ck.restore(&info.id, true).await.unwrap();
    assert_eq!(after.changes(), 0, "{:?}", after.kinds);
    m.shutdown().await;
}

async fn list_retention_and_refusals(b: Backend) {
    let clock = ManualClock::new(Utc::now().timestamp_millis() as u64);
    let (m, ts, _secrets) = manager(b, system_clock()).await;
    let store = ts.store.clone();
    let id = m
        .create_tenant(tenant_config(""), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared: SharedClock = clock.clone();
    let ck = CheckpointManager::new(store.clone(), shared, &state_cfg(dir.path(), 2));
    assert!(ck.list().await.unwrap().is_empty());

    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(ck.create(CheckpointExtra::default()).await.unwrap());
        clock.advance_ms(1_500);
    }
    let listed = ck.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![made[3].id.as_str(), made[2].id.as_str()],
        "the newest two, newest first"
    );
    for (l, c) in listed.iter().zip([&made[3], &made[2]]) {
        assert!(l.valid && l.problem.is_none(), "{l:?}");
        assert_eq!(l, c, "listing matches what create returned");
        assert_eq!(l.tenants, 1);
        assert!(l.size_bytes > 84, "{l:?}");
    }
    assert_eq!(
        listed[0].created_at.timestamp_millis() - listed[1].created_at.timestamp_millis(),
        1_500
    );

    // Damaged copies: truncated, one flipped byte, a future version.
    let good = std::fs::read(dir.path().join(format!("{}.ckpt", made[3].id))).unwrap();
    std::fs::write(dir.path().join("cut.ckpt"), &good[..good.len() / 2]).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    std::fs::write(dir.path().join("flipped.ckpt"), &flipped).unwrap();
    let mut future = good.clone();
    future[4] = 3;
    std::fs::write(dir.path().join("future.ckpt"), &future).unwrap();

    let before = snapshot(&store, std::slice::from_ref(&id)).await;
    store
        .delete(&[scope(&store, &id).record("meta")])
        .await
        .unwrap();
    let damaged = snapshot(&store, std::slice::from_ref(&id)).await;
    let refused = |r: Result<_, CheckpointError>| r.expect_err("refused");
    let e = refused(ck.restore("cut", false).await);
    assert!(matches!(e, CheckpointError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = refused(ck.restore("flipped.ckpt", false).await);
    assert!(matches!(e, CheckpointError::ChecksumMismatch { .. }), "{e}");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    let e = refused(ck.restore("future", true).await);
    assert!(
        matches!(
            e,
            CheckpointError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{e}"
    );
    for bad in ["../cut", "../../etc/passwd", "a/b", "cut.ckpt/..", ""] {
        let e = refused(ck.restore(bad, false).await);
        assert!(matches!(e, CheckpointError::InvalidId(_)), "{bad}: {e}");
    }
    let e = refused(ck.restore("nope", false).await);
    assert!(
        matches!(e, CheckpointError::UnknownId { .. }) && e.code() == "not_found",
        "{e}"
    );
    assert_eq!(
        snapshot(&store, std::slice::from_ref(&id)).await,
        damaged,
        "refusals touch nothing"
    );

    let listed: HashMap<String, _> = ck
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    assert_eq!(listed.len(), 5);
    for (name, needle) in [
        ("cut", "truncated"),
        ("flipped", "checksum mismatch"),
        ("future", "version 2"),
    ] {
        let c = &listed[name];
        assert!(!c.valid, "{c:?}");
        assert!(
            c.problem.as_deref().is_some_and(|p| p.contains(needle)),
            "{c:?}"
        );
        assert_eq!(c.created_at, made[3].created_at, "time from the header");
    }

    // Pruning never removes files named otherwise; the good checkpoint restores.
    ck.create(CheckpointExtra::default()).await.unwrap();
    assert_eq!(ck.list().await.unwrap().len(), 5);
    let report = ck.restore(&made[3].id, false).await.unwrap();
    assert_eq!(report.counts(RecordKind::Tenant).create, 1);
    assert_eq!(snapshot(&store, std::slice::from_ref(&id)).await, before);
    m.shutdown().await;
}

async fn empty_store_checkpoints_and_restores(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    let ck = Arc::new(CheckpointManager::new(
        ts.store.clone(),
        system_clock(),
        &state_cfg(&dir.path().join("nested/dir"), 1),
    ));
    // Spawned, as the state manager's scheduled jobs do: the futures are Send + 'static.
    let info = {
        let ck = ck.clone();
        tokio::spawn(async move { ck.create(CheckpointExtra::default()).await })
    }
    .await
    .unwrap()
    .unwrap();
    assert_eq!((info.tenants, info.sessions, info.valid), (0, 0, true));
    let listed = ck.list().await.unwrap();
    assert_eq!(listed, vec![info.clone()]);
    for dry_run in [true, false] {
        let r = {
            let (ck, id) = (ck.clone(), info.id.clone());
            tokio::spawn(async move { ck.restore(&id, dry_run).await })
        }
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.tenants, r.sessions, r.changes(), r.extra_tenants_total),
            (0, 0, 0, 0)
        );
        assert!(r.kinds.is_empty() && r.config.is_none());
    }
    // Retention 1: a second checkpoint replaces the first.
    let second = ck.create(CheckpointExtra::default()).await.unwrap();
    let ids: Vec<String> = ck.list().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![second.id]);
}
