//! Crypto-shredding (issue 10, item 2), on every backend: a deleted tenant's parts of a
//! retained checkpoint can no longer be opened — neither on the store it was taken from
//! nor on a wiped one, where the other tenants still come back from the directory's
//! keys file; neither can its part of the warm list — and its sessions leave the store
//! and the spill dir.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use riptide_persistence::clock::system_clock;
use riptide_persistence::config::PersistenceSchema;
use riptide_persistence::config::StateConfig;
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::state::StateManager;
use riptide_persistence::state::checkpoint::{KEY_RECORD, KEYS_FILE};
use riptide_persistence::state::sessions::{SessionCookie, SessionInit};
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{BillingPlan, TenantManager};
use riptide_persistence::{SharedStore, TenantId};

use super::support::{Backend, on_every_backend, store};
use super::tenant_lifecycle::{owner, section, tenant_config};

on_every_backend!(
    a_deleted_tenant_is_shredded_in_every_checkpoint,
    other_instances_shred_on_the_event_or_at_their_next_checkpoint,
    a_resync_drops_every_cached_data_key,
);

fn scope(store: &SharedStore, tenant: &str) -> ScopeKeys {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(tenant).unwrap()),
    )
}

/// A tenant manager and a state manager over `store`, wired as the service wires them.
async fn service(
    store: SharedStore,
    secrets: &std::path::Path,
    dir: &std::path::Path,
) -> (Arc<TenantManager>, StateManager) {
    let tenants = Arc::new(
        TenantManager::with_store(
            store.clone(),
            section(secrets),
            Arc::new(RwLock::new(TenantMetrics::new())),
            system_clock(),
        )
        .await
        .unwrap(),
    );
    let cfg = StateConfig {
        checkpoint_dir: dir.join("checkpoints"),
        spill_dir: dir.join("spill"),
        ..Default::default()
    };
    let state = StateManager::with_store(store, cfg, system_clock(), Arc::new(PersistenceSchema))
        .await
        .unwrap();
    state.attach_tenants(tenants.clone()).unwrap();
    (tenants, state)
}

fn keys_file(dir: &std::path::Path) -> serde_json::Value {
    let raw = std::fs::read(dir.join("checkpoints").join(KEYS_FILE)).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// Waits for the deletion's follow-up (it runs on its own task).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 5 s");
}

async fn a_deleted_tenant_is_shredded_in_every_checkpoint(b: Backend) {
    let ts = store(b).await;
    let (secrets, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (tenants, state) = service(ts.store.clone(), secrets.path(), dir.path()).await;
    for id in ["keep", "gone"] {
        tenants
            .create_tenant(tenant_config(id), owner(), BillingPlan::Basic)
            .await
            .unwrap();
        let init = SessionInit {
            cookies: vec![SessionCookie {
                name: "sid".into(),
                value: format!("cookie-of-{id}"),
                domain: None,
                path: None,
            }],
            ..Default::default()
        };
        state.sessions().create(id, init).await.unwrap();
    }
    state.set_warm_list_source(Box::new(|| {
        vec![
            (Some("keep".into()), "https://keep.example/top".into()),
            (Some("gone".into()), "https://gone.example/private".into()),
            (None, "https://shared.example/".into()),
        ]
    }));
    let before = state.create_checkpoint().await.unwrap();
    assert_eq!((before.tenants, before.sessions), (2, 2));
    let file = keys_file(dir.path());
    let mode = std::fs::metadata(dir.path().join("checkpoints").join(KEYS_FILE))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(
        file["tenants"]["keep"].is_array() && file["tenants"]["gone"].is_array(),
        "{file}"
    );
    let record = scope(&ts.store, "gone").record(KEY_RECORD);
    assert!(ts.store.get(&record).await.unwrap().is_some());
    // Nothing of a tenant is in clear in the file: its parts are sealed.
    let raw = std::fs::read(
        dir.path()
            .join("checkpoints")
            .join(format!("{}.ckpt", before.id)),
    )
    .unwrap();
    let body = zstd::stream::decode_all(&raw[16..raw.len() - 68]).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(
        !body.contains("\"t\":\"record\"") && !body.contains("\"t\":\"session\""),
        "{body}"
    );
    assert_eq!(body.matches("\"t\":\"sealed\"").count(), 2, "{body}");
    assert!(
        !body.contains("gone.example") && body.contains("shared.example"),
        "{body}"
    );

    let untouched = state.restore_checkpoint(&before.id, true).await.unwrap();
    assert!(untouched.shredded_tenants.is_empty());
    assert_eq!(untouched.warm_list.len(), 3, "{:?}", untouched.warm_list);
    assert_eq!(untouched.changes(), 0, "{:?}", untouched.kinds);

    // A spilled session leaves a file of the tenant on disk.
    assert_eq!(state.sessions().spill_all().await.spilled, 2);
    let spill = dir.path().join("spill").join("gone");
    assert!(spill.is_dir());

    tenants.delete_tenant("gone").await.unwrap();
    assert!(
        ts.store.get(&record).await.unwrap().is_none(),
        "deleted with the tenant"
    );
    eventually("the keys file dropping the tenant", || {
        keys_file(dir.path())["tenants"].get("gone").is_none()
    })
    .await;
    eventually("the spill dir going", || !spill.exists()).await;
    let sessions = scope(&ts.store, "gone").record("sessions");
    assert_eq!(ts.store.zset_len(&sessions).await.unwrap(), 0);

    // The retained checkpoint: the deleted tenant cannot be opened, the other can.
    let dry = state.restore_checkpoint(&before.id, true).await.unwrap();
    assert_eq!(dry.shredded_tenants, ["gone"]);
    let warm: Vec<&str> = dry.warm_list.iter().map(|(_, url)| url.as_str()).collect();
    assert_eq!(
        warm,
        ["https://shared.example/", "https://keep.example/top"]
    );
    assert_eq!((dry.tenants, dry.sessions), (2, 2));
    assert!(
        dry.objects.iter().all(|o| o.tenant != "gone"),
        "{:?}",
        dry.objects
    );
    assert_eq!(dry.changes(), 0, "{:?}", dry.kinds);
    let applied = state.restore_checkpoint(&before.id, false).await.unwrap();
    assert_eq!(applied.shredded_tenants, ["gone"]);
    assert!(tenants.get_tenant("gone").await.unwrap().is_none());

    // A wiped store (same master key, same directory): the keys file opens "keep".
    let wiped = store(b).await;
    let (tenants2, state2) = service(wiped.store.clone(), secrets.path(), dir.path()).await;
    let restored = state2.restore_checkpoint(&before.id, false).await.unwrap();
    assert_eq!(restored.shredded_tenants, ["gone"]);
    assert!(tenants2.get_tenant("keep").await.unwrap().is_some());
    assert!(tenants2.get_tenant("gone").await.unwrap().is_none());
    let gone_meta = scope(&wiped.store, "gone").record("meta");
    assert!(wiped.store.get(&gone_meta).await.unwrap().is_none());

    state.shutdown(Duration::from_secs(5)).await;
    state2.shutdown(Duration::from_secs(5)).await;
}

/// Instances with checkpoint directories of their own: one told of the deletion drops
/// the tenant's keys at once; one that missed the message does at its next checkpoint,
/// from the tombstone.
async fn other_instances_shred_on_the_event_or_at_their_next_checkpoint(b: Backend) {
    let ts = store(b).await;
    let secrets = tempfile::tempdir().unwrap();
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (deleter, state) = service(ts.store.clone(), secrets.path(), dirs[0].path()).await;
    let (told, told_state) = service(ts.store.clone(), secrets.path(), dirs[1].path()).await;
    let (_missed, missed_state) = service(ts.store.clone(), secrets.path(), dirs[2].path()).await;
    deleter
        .create_tenant(tenant_config("gone"), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    for s in [&state, &told_state, &missed_state] {
        s.create_checkpoint().await.unwrap();
    }
    for d in &dirs {
        assert!(keys_file(d.path())["tenants"]["gone"].is_array());
    }

    deleter.delete_tenant("gone").await.unwrap();
    // What the sync layer does when the deletion message arrives.
    told.forget_tenant("gone", true);
    eventually("the told instance dropping the keys", || {
        keys_file(dirs[1].path())["tenants"].get("gone").is_none()
    })
    .await;
    assert!(
        keys_file(dirs[2].path())["tenants"]["gone"].is_array(),
        "not told yet"
    );
    let later = missed_state.create_checkpoint().await.unwrap();
    assert!(keys_file(dirs[2].path())["tenants"].get("gone").is_none());
    assert_eq!(later.tenants, 0, "the deleted tenant is not in it");
    for s in [&state, &told_state, &missed_state] {
        s.shutdown(Duration::from_secs(5)).await;
    }
}

/// An instance that missed a deletion message keeps the tenant's data key in memory
/// until told; a resync (what follows lost messages) drops every cached data key.
async fn a_resync_drops_every_cached_data_key(b: Backend) {
    let ts = store(b).await;
    let (secrets, d1, d2) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, _state_a) = service(ts.store.clone(), secrets.path(), d1.path()).await;
    let (other, _state_b) = service(ts.store.clone(), secrets.path(), d2.path()).await;
    let mut cfg = tenant_config("enc");
    cfg.encryption_enabled = true;
    a.create_tenant(cfg, owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let id = TenantId::parse("enc").unwrap();
    assert!(other.data_keys().key_for(&id).await.unwrap().is_some());
    a.delete_tenant("enc").await.unwrap();
    assert!(
        other.data_keys().key_for(&id).await.unwrap().is_some(),
        "cached: the message was lost"
    );
    other.forget_everything();
    assert!(other.data_keys().key_for(&id).await.unwrap().is_none());
}
