//! Restore never undoes a security decision (issue 10, item 1), on every backend: a key
//! revoked, a tenant suspended and a tenant deleted after a checkpoint stay so after
//! restoring it; the dry run lists exactly those; tombstones survive restores and a
//! tenant created again under a deleted id is left alone; a checkpoint older than the
//! pruned tombstones is refused.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use riptide_persistence::clock::{ManualClock, SharedClock, system_clock};
use riptide_persistence::config::StateConfig;
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::state::checkpoint::{
    CheckpointError, CheckpointExtra, CheckpointManager, RecordKind, RestoreOutcome,
};
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{BillingPlan, TenantError, TenantManager, TenantStatus};
use riptide_persistence::{SharedStore, TenantId};

use super::support::{Backend, on_every_backend};
use super::tenant_lifecycle::{manager, owner, section, tenant_config};

on_every_backend!(
    revocations_suspensions_and_deletions_survive_a_restore,
    a_checkpoint_older_than_the_pruned_tombstones_is_refused,
);

fn scope(store: &SharedStore, tenant: &str) -> ScopeKeys {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(tenant).unwrap()),
    )
}

fn checkpoints(dir: &std::path::Path) -> StateConfig {
    StateConfig {
        checkpoint_dir: dir.to_path_buf(),
        checkpoint_retention: 5,
        ..Default::default()
    }
}

type Listed = BTreeSet<(String, RecordKind, Option<String>, RestoreOutcome)>;

fn entry(
    tenant: &str,
    kind: RecordKind,
    id: Option<&str>,
    outcome: RestoreOutcome,
) -> (String, RecordKind, Option<String>, RestoreOutcome) {
    (tenant.to_owned(), kind, id.map(str::to_owned), outcome)
}

async fn revocations_suspensions_and_deletions_survive_a_restore(b: Backend) {
    let (m, ts, _secrets) = manager(b, system_clock()).await;
    let store = ts.store.clone();
    for id in ["keep", "susp"] {
        m.create_tenant(tenant_config(id), owner(), BillingPlan::Basic)
            .await
            .unwrap();
    }
    let mut gone_cfg = tenant_config("gone");
    gone_cfg.encryption_enabled = true;
    m.create_tenant(gone_cfg, owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let kept_key = m.create_api_key_by("admin", "keep", None).await.unwrap();
    let revoked_key = m.create_api_key_by("admin", "keep", None).await.unwrap();
    let gone_key = m.create_api_key_by("admin", "gone", None).await.unwrap();
    let dek = scope(&store, "gone").record("dek");
    assert!(
        store.get(&dek).await.unwrap().is_some(),
        "an encrypted tenant has a data key"
    );

    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointManager::new(store.clone(), system_clock(), &checkpoints(dir.path()));
    let info = ck.create(CheckpointExtra::default()).await.unwrap();
    assert_eq!(info.tenants, 3);

    // The decisions made after the checkpoint.
    m.revoke_api_key_by("admin", "keep", &revoked_key.key_id)
        .await
        .unwrap();
    m.suspend_tenant_by("admin", "susp", "unpaid")
        .await
        .unwrap();
    m.delete_tenant_by("admin", "gone").await.unwrap();
    assert!(store.get(&dek).await.unwrap().is_none());

    // The dry run lists exactly those, and nothing would be created or overwritten.
    let dry = ck.restore(&info.id, true).await.unwrap();
    assert_eq!(dry.changes(), 0, "{:?}", dry.kinds);
    assert_eq!(dry.objects_total, dry.objects.len() as u64);
    let listed: Listed = dry
        .objects
        .iter()
        .map(|o| (o.tenant.clone(), o.kind, o.id.clone(), o.outcome))
        .collect();
    let revoked_id = Some(revoked_key.key_id.as_str());
    let gone_id = Some(gone_key.key_id.as_str());
    use RecordKind::*;
    use RestoreOutcome::{KeptNewer, Refused};
    let expected: Listed = [
        entry("keep", ApiKey, revoked_id, Refused),
        entry("keep", ApiKeyLookup, revoked_id, Refused),
        entry("susp", Tenant, None, KeptNewer),
        entry("gone", Registry, None, Refused),
        entry("gone", Tenant, None, Refused),
        entry("gone", DataKey, None, Refused),
        entry("gone", ApiKey, gone_id, Refused),
        entry("gone", ApiKeyIndex, gone_id, Refused),
        entry("gone", ApiKeyLookup, gone_id, Refused),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed, expected, "{:#?}", dry.objects);
    for o in &dry.objects {
        let line = o.summary();
        assert!(
            !line.contains(&revoked_key.secret) && !line.contains(&gone_key.secret),
            "{line}"
        );
    }

    let applied = ck.restore(&info.id, false).await.unwrap();
    assert_eq!(applied.kinds, dry.kinds);
    assert_eq!(applied.objects, dry.objects);

    // A fresh manager: nothing cached in process.
    let m2 = TenantManager::with_store(
        store.clone(),
        section(_secrets.path()),
        Arc::new(RwLock::new(TenantMetrics::new())),
        system_clock(),
    )
    .await
    .unwrap();
    assert!(matches!(
        m2.authenticate(&revoked_key.secret).await,
        Err(TenantError::InvalidApiKey)
    ));
    assert!(matches!(
        m2.authenticate(&gone_key.secret).await,
        Err(TenantError::InvalidApiKey)
    ));
    m2.authenticate(&kept_key.secret).await.unwrap();
    let susp = m2.get_tenant("susp").await.unwrap().expect("susp");
    assert!(
        matches!(susp.status, TenantStatus::Suspended { .. }),
        "{:?}",
        susp.status
    );
    assert!(m2.get_tenant("gone").await.unwrap().is_none());
    assert!(
        store.get(&dek).await.unwrap().is_none(),
        "the data key stays shredded"
    );
    assert_eq!(m2.list_tenants(0, 10).await.unwrap().total, 2);

    // Tombstones survive the restore: the same restore refuses the same again; a tenant
    // created again under the deleted id is left alone (its new data key too).
    let mut again = tenant_config("gone");
    again.name = "Second life".into();
    again.encryption_enabled = true;
    m2.create_tenant(again, owner(), BillingPlan::Free)
        .await
        .unwrap();
    let new_dek = store.get(&dek).await.unwrap().expect("a new data key");
    let second = ck.restore(&info.id, false).await.unwrap();
    assert_eq!(second.changes(), 0, "{:?}", second.objects);
    assert_eq!(second.counts(Registry).refused, 1);
    let reborn = m2.get_tenant("gone").await.unwrap().expect("gone, again");
    assert_eq!(
        (reborn.config.name.as_str(), reborn.plan),
        ("Second life", BillingPlan::Free)
    );
    assert_eq!(
        store.get(&dek).await.unwrap().as_deref(),
        Some(new_dek.as_ref())
    );

    // A checkpoint taken after the new creation restores it like any tenant.
    let later = ck.create(CheckpointExtra::default()).await.unwrap();
    let r = ck.restore(&later.id, true).await.unwrap();
    assert_eq!((r.changes(), r.protected()), (0, 0), "{:?}", r.objects);
    m2.shutdown().await;
    m.shutdown().await;
}

async fn a_checkpoint_older_than_the_pruned_tombstones_is_refused(b: Backend) {
    let (m, ts, secrets) = manager(b, system_clock()).await;
    let store = ts.store.clone();
    m.create_tenant(tenant_config("gone"), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointManager::new(store.clone(), system_clock(), &checkpoints(dir.path()));
    let info = ck.create(CheckpointExtra::default()).await.unwrap();
    m.delete_tenant_by("admin", "gone").await.unwrap();
    assert_eq!(
        ck.restore(&info.id, true)
            .await
            .unwrap()
            .counts(RecordKind::Registry)
            .refused,
        1
    );

    // An instance whose clock is past the audit retention prunes the tombstone (its
    // pruner runs at start): the checkpoint it guarded can no longer be restored.
    let retention_ms = u64::from(section(secrets.path()).audit_retention_days) * 86_400_000;
    let late: SharedClock =
        ManualClock::new(Utc::now().timestamp_millis() as u64 + retention_ms + 60_000);
    let pruner = TenantManager::with_store(
        store.clone(),
        section(secrets.path()),
        Arc::new(RwLock::new(TenantMetrics::new())),
        late,
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let err = loop {
        match ck.restore(&info.id, true).await {
            Err(e) => break e,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(r) => panic!("never refused: {:?}", r.objects),
        }
    };
    assert!(
        matches!(err, CheckpointError::BeforeTombstoneHorizon { .. }),
        "{err}"
    );
    assert_eq!(err.code(), "checkpoint_too_old");
    assert!(m.get_tenant("gone").await.unwrap().is_none());
    pruner.shutdown().await;
    m.shutdown().await;
}
