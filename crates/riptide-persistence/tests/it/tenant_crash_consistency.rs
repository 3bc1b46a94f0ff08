//! Crash consistency of tenants (issue 10, item 5), on every backend: what a kill
//! between two steps leaves is whole or absent, and the next run repairs it.
//!
//! The store states a crash can leave are written directly (the steps in between are
//! one atomic write each, see `store_conformance::atomic`); a fresh manager over the
//! same store plays the restarted instance. The real binary under SIGKILL is
//! `riptide-api`'s `e2e::crash_consistency`.

use std::sync::{Arc, RwLock};

use riptide_persistence::clock::system_clock;
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::store::WriteOp;
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{BillingPlan, TenantError, TenantManager};
use riptide_persistence::{SharedStore, TenantId};

use super::support::{Backend, on_every_backend, store};
use super::tenant_lifecycle::{owner, section, tenant_config};

on_every_backend!(
    a_deletion_cut_short_is_finished_before_the_id_is_used_again,
    a_registry_entry_without_its_tenant_is_absent_and_the_id_free,
);

async fn restarted(store: &SharedStore, dir: &std::path::Path) -> TenantManager {
    TenantManager::with_store(
        store.clone(),
        section(dir),
        Arc::new(RwLock::new(TenantMetrics::new())),
        system_clock(),
    )
    .await
    .expect("manager")
}

fn keys_of(store: &SharedStore, id: &str) -> ScopeKeys {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(id).expect("id")),
    )
}

fn registry(store: &SharedStore) -> String {
    format!("{}:tenants", store.key_prefix())
}

async fn listed(m: &TenantManager) -> Vec<String> {
    let page = m.list_tenants(0, 1_000).await.expect("list");
    page.tenants.iter().map(|t| t.id().to_owned()).collect()
}

async fn a_deletion_cut_short_is_finished_before_the_id_is_used_again(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    let m = restarted(&ts.store, dir.path()).await;
    let mut config = tenant_config("");
    config.encryption_enabled = true;
    let id = m
        .create_tenant(config.clone(), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let old_key = m.create_api_key_by("admin", &id, None).await.unwrap();
    m.shutdown().await;

    // What a kill right after the deletion's atomic write leaves: no record, quota
    // overrides, data key or registry entry, a tombstone, and every key still stored.
    let keys = keys_of(&ts.store, &id);
    let cut_short = [
        WriteOp::put(keys.record("deleting"), b"1".to_vec()),
        WriteOp::delete(keys.record("meta")),
        WriteOp::delete(keys.record("q")),
        WriteOp::delete(keys.record("dek")),
    ];
    assert!(ts.store.write_atomic(&cut_short).await.unwrap());
    ts.store
        .zset_remove(&registry(&ts.store), std::slice::from_ref(&id))
        .await
        .unwrap();

    let m = restarted(&ts.store, dir.path()).await;
    assert!(m.get_tenant(&id).await.unwrap().is_none());
    assert!(!listed(&m).await.contains(&id));
    assert!(
        matches!(
            m.authenticate(&old_key.secret).await,
            Err(TenantError::InvalidApiKey)
        ),
        "a key of a half-deleted tenant authenticates nothing"
    );

    // The same id again: the deletion is finished first, so nothing old comes back.
    config.tenant_id = id.clone();
    m.create_tenant(config.clone(), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    assert!(listed(&m).await.contains(&id));
    assert!(m.list_api_keys(&id).await.unwrap().is_empty());
    assert!(matches!(
        m.authenticate(&old_key.secret).await,
        Err(TenantError::InvalidApiKey)
    ));
    assert!(
        ts.store
            .get(&keys.record("deleting"))
            .await
            .unwrap()
            .is_none()
    );
    let new_key = m.create_api_key_by("admin", &id, None).await.unwrap();
    m.authenticate(&new_key.secret).await.unwrap();

    // A retried deletion of a cut-short one finishes it too.
    assert!(ts.store.write_atomic(&cut_short).await.unwrap());
    let m = restarted(&ts.store, dir.path()).await;
    m.delete_tenant(&id).await.expect("retried deletion");
    assert!(
        ts.store
            .get(&keys.record("deleting"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(ts.store.zset_len(&keys.record("keys")).await.unwrap() == 0);
    assert!(matches!(
        m.delete_tenant(&id).await,
        Err(TenantError::NotFound { .. })
    ));
    m.shutdown().await;
}

async fn a_registry_entry_without_its_tenant_is_absent_and_the_id_free(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    // What a kill between a Cluster creation's two steps leaves: the registry entry alone.
    let id = format!("half-{}", std::process::id());
    ts.store
        .zset_add(&registry(&ts.store), &[(id.clone(), 1)])
        .await
        .unwrap();
    let m = restarted(&ts.store, dir.path()).await;
    assert!(m.get_tenant(&id).await.unwrap().is_none());
    assert!(!listed(&m).await.contains(&id));
    assert!(matches!(
        m.create_api_key_by("admin", &id, None).await,
        Err(TenantError::NotFound { .. })
    ));
    m.create_tenant(tenant_config(&id), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    assert!(m.get_tenant(&id).await.unwrap().is_some());
    assert!(listed(&m).await.contains(&id));
    m.shutdown().await;
}
