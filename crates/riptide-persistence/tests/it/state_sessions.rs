//! Sessions (issue 4, item 4): create, get, update, terminate, list, TTL, tenant
//! isolation, the memory tier spilling to disk and loading back, sealing, the
//! `storage_bytes` quota, several instances on one store, and restart after
//! `spill_all`, on every backend.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use riptide_persistence::clock::{ManualClock, SharedClock, system_clock};
use riptide_persistence::config::StateConfig;
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::state::sessions::{
    Session, SessionCookie, SessionError, SessionInit, SessionManager, SessionUpdate,
};
use riptide_persistence::tenant::{BillingPlan, TenantError, TenantManager};
use riptide_persistence::{SharedStore, TenantId};

use super::support::{Backend, TestStore, on_every_backend, store, store_with_clock, tenant};
use super::tenant_lifecycle::{manager, owner, tenant_config};

fn state_config(spill_dir: &Path, memory_limit: u64) -> StateConfig {
    StateConfig {
        spill_dir: spill_dir.to_path_buf(),
        session_memory_limit_bytes: memory_limit,
        session_ttl_seconds: 3_600,
        max_sessions_per_tenant: 1_000,
        ..Default::default()
    }
}

/// A session manager over a fresh store, without the tenant layer.
async fn plain(
    b: Backend,
    memory_limit: u64,
) -> (Arc<SessionManager>, TestStore, tempfile::TempDir) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    let m = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &state_config(&dir.path().join("spill"), memory_limit),
    );
    (m, ts, dir)
}

/// A tenant manager and a session manager attached to it, over one fresh store.
struct WithTenants {
    sessions: Arc<SessionManager>,
    tenants: Arc<TenantManager>,
    store: SharedStore,
    spill: PathBuf,
    _ts: TestStore,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn with_tenants(b: Backend, memory_limit: u64) -> WithTenants {
    let (tm, ts, secrets) = manager(b, system_clock()).await;
    let tenants = Arc::new(tm);
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let sessions = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &state_config(&spill, memory_limit),
    );
    sessions.attach_tenants(tenants.clone()).unwrap();
    WithTenants {
        sessions,
        tenants,
        store: ts.store.clone(),
        spill,
        _ts: ts,
        _dirs: (secrets, dir),
    }
}

async fn new_tenant(t: &TenantManager, encrypted: bool, quotas: &[(&str, u64)]) -> String {
    let mut cfg = tenant_config(&tenant());
    cfg.encryption_enabled = encrypted;
    cfg.quotas = quotas
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect::<HashMap<_, _>>();
    t.create_tenant(cfg, owner(), BillingPlan::Professional)
        .await
        .unwrap()
}

fn cookie(name: &str, value: &str) -> SessionCookie {
    SessionCookie {
        name: name.into(),
        value: value.into(),
        domain: Some("example.com".into()),
        path: Some("/".into()),
    }
}

fn init(value: &str) -> SessionInit {
    SessionInit {
        cookies: vec![cookie("sid", value)],
        headers: BTreeMap::from([("User-Agent".to_owned(), "riptide-test".to_owned())]),
        ttl: None,
    }
}

fn record_key(store: &SharedStore, tenant: &str, id: &str) -> String {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(tenant).unwrap()),
    )
    .record(&format!("session:{id}"))
}

fn spill_file(spill: &Path, tenant: &str, id: &str) -> PathBuf {
    spill.join(tenant).join(format!("{id}.session"))
}

fn spill_files(spill: &Path, tenant: &str) -> Vec<PathBuf> {
    match std::fs::read_dir(spill.join(tenant)) {
        Ok(d) => d
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "session"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

on_every_backend!(
    create_get_update_terminate_list,
    sessions_expire_after_their_ttl,
    another_tenant_cannot_reach_a_session,
    a_full_memory_tier_spills_and_loads_back,
    encrypted_tenants_have_no_plaintext_in_store_or_spill_files,
    storage_quota_counts_session_bytes,
    a_second_instance_sees_sessions_and_forget_drops_local_copies,
    spill_all_then_a_fresh_manager_serves_every_session,
    tenant_status_is_checked,
    import_writes_runs_of_sessions_back,
);

async fn create_get_update_terminate_list(b: Backend) {
    let (m, _ts, _d) = plain(b, 1 << 20).await;
    let t = tenant();
    let s = m.create(&t, init("v1-cookie-value")).await.unwrap();
    assert!(s.id.len() >= 22, "{}", s.id);
    assert_eq!((s.version, s.tenant_id.as_str()), (1, t.as_str()));
    assert_eq!(
        s.headers.get("user-agent").map(String::as_str),
        Some("riptide-test")
    );
    assert_eq!(m.get(&t, &s.id).await.unwrap().as_ref(), Some(&s));

    let updated = m
        .update(
            &t,
            &s.id,
            SessionUpdate {
                cookies: Some(vec![cookie("sid", "v2"), cookie("lang", "en")]),
                headers: None,
                ttl: Some(Duration::from_secs(60)),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.cookies.len(), 2);
    assert_eq!(updated.headers, s.headers, "headers kept");
    assert!(updated.expires_at <= updated.updated_at + chrono::Duration::seconds(60));
    assert_eq!(m.get(&t, &s.id).await.unwrap().as_ref(), Some(&updated));

    let other = m.create(&t, init("x")).await.unwrap();
    let listed = m.list(&t, 0, 10).await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|l| l.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![s.id.as_str(), other.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(
        !json.contains("v1-cookie-value") && !json.contains("riptide-test"),
        "{json}"
    );
    assert!(json.contains("lang"), "names are listed: {json}");
    assert_eq!(m.list(&t, 1, 10).await.unwrap().len(), 1);
    assert_eq!(m.count(&t).await.unwrap(), 2);

    assert!(m.terminate(&t, &s.id).await.unwrap());
    assert_eq!(m.get(&t, &s.id).await.unwrap(), None);
    assert!(!m.terminate(&t, &s.id).await.unwrap());
    assert!(matches!(
        m.update(&t, &s.id, SessionUpdate::default()).await,
        Err(SessionError::NotFound)
    ));
    assert_eq!(m.count(&t).await.unwrap(), 1);
    // An empty update restarts the lifetime and bumps the version.
    let touched = m
        .update(&t, &other.id, SessionUpdate::default())
        .await
        .unwrap();
    assert_eq!((touched.version, &touched.cookies), (2, &other.cookies));
}

async fn import_writes_runs_of_sessions_back(b: Backend) {
    let w = with_tenants(b, 1 << 20).await;
    let (plain_t, sealed_t) = (
        new_tenant(&w.tenants, false, &[]).await,
        new_tenant(&w.tenants, true, &[]).await,
    );
    let mut made = Vec::new();
    for (t, n) in [(&plain_t, 3), (&sealed_t, 2), (&plain_t, 1)] {
        for i in 0..n {
            made.push(
                w.sessions
                    .create(t, init(&format!("secret-{t}-{i}")))
                    .await
                    .unwrap(),
            );
        }
    }
    let mut expired = made[0].clone();
    expired.id = "expired-session-id-0000000".into();
    expired.created_at = chrono::Utc::now() - chrono::Duration::seconds(10);
    expired.updated_at = expired.created_at;
    expired.expires_at = chrono::Utc::now() - chrono::Duration::seconds(5);
    for t in [&plain_t, &sealed_t] {
        w.sessions
            .purge_tenant(&TenantId::parse(t).unwrap())
            .await
            .unwrap();
    }
    for s in &made {
        assert_eq!(w.sessions.get(&s.tenant_id, &s.id).await.unwrap(), None);
    }

    // Runs: three of one tenant, two of the other, one of the first again, then one expired.
    let mut input = made.clone();
    input.push(expired.clone());
    let report = w.sessions.import(input).await.unwrap();
    assert_eq!((report.imported, report.expired), (6, 1), "{report:?}");
    let mut stored = 0;
    for s in &made {
        assert_eq!(
            w.sessions.get(&s.tenant_id, &s.id).await.unwrap().as_ref(),
            Some(s)
        );
        let raw = w
            .store
            .get(&record_key(&w.store, s.tenant_id.as_str(), &s.id))
            .await
            .unwrap()
            .expect("record");
        stored += raw.len() as u64;
        let sealed = s.tenant_id.as_str() == sealed_t;
        assert_eq!(
            !contains(&raw, "secret-"),
            sealed,
            "sealed only for {sealed_t}"
        );
    }
    assert_eq!(report.bytes, stored);
    assert_eq!(
        w.sessions
            .get(&expired.tenant_id, &expired.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.sessions.count(&plain_t).await.unwrap(), 4);
    assert_eq!(w.sessions.count(&sealed_t).await.unwrap(), 2);
    // The ledger records each imported session's bytes (what terminating releases).
    let s = &made[0];
    let scope = ScopeKeys::new(
        w.store.key_prefix(),
        &Scope::Tenant(TenantId::parse(&s.tenant_id).unwrap()),
    );
    let raw = w
        .store
        .get(&record_key(&w.store, s.tenant_id.as_str(), &s.id))
        .await
        .unwrap();
    assert_eq!(
        w.store
            .zset_score(&scope.record("session_bytes"), &s.id)
            .await
            .unwrap(),
        Some(raw.expect("record").len() as i64)
    );
}

async fn sessions_expire_after_their_ttl(b: Backend) {
    let (m, ts, dir) = plain(b, 1 << 20).await;
    let t = tenant();
    let mut short = init("short");
    short.ttl = Some(Duration::from_millis(400));
    let s = m.create(&t, short).await.unwrap();
    let long = m.create(&t, init("long")).await.unwrap();
    assert!(m.get(&t, &s.id).await.unwrap().is_some());
    // An update without a TTL keeps the session's own lifetime.
    let s = m.update(&t, &s.id, SessionUpdate::default()).await.unwrap();
    assert_eq!((s.expires_at - s.updated_at).num_milliseconds(), 400);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(m.get(&t, &s.id).await.unwrap(), None, "expired in memory");
    assert!(matches!(
        m.update(&t, &s.id, SessionUpdate::default()).await,
        Err(SessionError::NotFound)
    ));
    let listed: Vec<String> = m
        .list(&t, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(listed, vec![long.id.clone()]);
    // The sweep removes it from the store and the index.
    let report = m.sweep_expired().await.unwrap();
    assert!(report.expired_removed >= 1, "{report:?}");
    assert!(
        ts.store
            .get(&record_key(&ts.store, &t, &s.id))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(m.count(&t).await.unwrap(), 1);
    // A fresh manager (nothing in memory) does not serve it either.
    let fresh = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &state_config(&dir.path().join("other"), 1 << 20),
    );
    assert_eq!(fresh.get(&t, &s.id).await.unwrap(), None);
    assert!(fresh.get(&t, &long.id).await.unwrap().is_some());
}

async fn another_tenant_cannot_reach_a_session(b: Backend) {
    let (m, _ts, _d) = plain(b, 1 << 20).await;
    let (a, other) = (tenant(), tenant());
    let s = m.create(&a, init("mine")).await.unwrap();
    m.create(&other, init("theirs")).await.unwrap();
    assert_eq!(m.get(&other, &s.id).await.unwrap(), None);
    assert!(matches!(
        m.update(&other, &s.id, SessionUpdate::default()).await,
        Err(SessionError::NotFound)
    ));
    assert!(!m.terminate(&other, &s.id).await.unwrap());
    assert!(
        m.list(&other, 0, 10)
            .await
            .unwrap()
            .iter()
            .all(|l| l.id != s.id)
    );
    m.forget(&other, &s.id).await.unwrap();
    assert_eq!(
        m.get(&a, &s.id).await.unwrap().as_ref(),
        Some(&s),
        "untouched"
    );
}

async fn a_full_memory_tier_spills_and_loads_back(b: Backend) {
    let (m, ts, dir) = plain(b, 4 * 1024).await;
    let spill = dir.path().join("spill");
    let t = tenant();
    let mut created: Vec<Session> = Vec::new();
    for i in 0..20 {
        created.push(
            m.create(&t, init(&format!("{i}-{}", "c".repeat(500))))
                .await
                .unwrap(),
        );
    }
    // Spill files are written in the background.
    m.flush_spills().await;
    let f = m.figures();
    assert!(f.tiers.memory_bytes <= 4 * 1024, "{f:?}");
    assert!(
        f.tiers.spilled_sessions >= 10 && f.spills_total >= 10,
        "{f:?}"
    );
    assert_eq!(
        spill_files(&spill, &t).len() as u64,
        f.tiers.spilled_sessions
    );
    assert_eq!(
        f.tiers.memory_sessions + f.tiers.spilled_sessions,
        20,
        "{f:?}"
    );
    assert!(f.tiers.spilled_bytes > 0);
    // The first created are the least recently used: spilled.
    let first = &created[0];
    let file = spill_file(&spill, &t, &first.id);
    assert!(file.exists());
    // The spill file is the store record's format.
    let on_disk = std::fs::read(&file).unwrap();
    let stored = ts
        .store
        .get(&record_key(&ts.store, &t, &first.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_disk[..18], stored[..18], "same header");
    let loaded = m.get(&t, &first.id).await.unwrap();
    assert_eq!(loaded.as_ref(), Some(first));
    assert!(!file.exists(), "loading deletes the spill file");
    m.flush_spills().await;
    let after = m.figures();
    assert_eq!(after.loads_total, f.loads_total + 1);
    assert!(
        after.spills_total > f.spills_total,
        "loading it pushed another one out"
    );
    // Every session is still served, each equal to what was created (from its file
    // once the one it pushed out is written).
    for s in &created {
        m.flush_spills().await;
        assert_eq!(m.get(&t, &s.id).await.unwrap().as_ref(), Some(s));
    }
    m.flush_spills().await;
    assert!(m.figures().loads_total >= 10);
    // Terminating a spilled session removes its file.
    let spilled = created
        .iter()
        .find(|s| spill_file(&spill, &t, &s.id).exists())
        .expect("some session is spilled");
    assert!(m.terminate(&t, &spilled.id).await.unwrap());
    assert!(!spill_file(&spill, &t, &spilled.id).exists());
    // A spilled session that expired is never served; its file goes.
    let mut short = init("soon");
    short.ttl = Some(Duration::from_millis(300));
    let soon = m.create(&t, short).await.unwrap();
    for i in 0..6 {
        m.create(&t, init(&format!("push-{i}-{}", "p".repeat(500))))
            .await
            .unwrap();
    }
    m.flush_spills().await;
    assert!(
        spill_file(&spill, &t, &soon.id).exists(),
        "pushed out to disk"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(m.get(&t, &soon.id).await.unwrap(), None);
    assert!(!spill_file(&spill, &t, &soon.id).exists());
}

async fn encrypted_tenants_have_no_plaintext_in_store_or_spill_files(b: Backend) {
    let w = with_tenants(b, 4 * 1024).await;
    let sealed = new_tenant(&w.tenants, true, &[]).await;
    let clear = new_tenant(&w.tenants, false, &[]).await;
    let secret = format!("PLAINTEXT-{}", tenant());
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut si = init(&format!("{secret}-{i}-{}", "s".repeat(400)));
        si.headers
            .insert("x-secret-header".into(), format!("{secret}-header"));
        ids.push(w.sessions.create(&sealed, si).await.unwrap().id);
    }
    w.sessions.flush_spills().await;
    for id in &ids {
        let raw = w
            .store
            .get(&record_key(&w.store, &sealed, id))
            .await
            .unwrap()
            .unwrap();
        assert!(!contains(&raw, &secret), "store record holds plaintext");
        assert_eq!(raw[1], 1, "sealed flag");
    }
    let files = spill_files(&w.spill, &sealed);
    assert!(!files.is_empty(), "some sessions spilled");
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        assert!(
            !contains(&raw, &secret),
            "spill file {} holds plaintext",
            f.display()
        );
        assert_eq!(raw[1], 1, "sealed flag");
    }
    // Still served in the clear to its tenant, from disk too.
    let spilled_id = files[0].file_stem().unwrap().to_str().unwrap().to_owned();
    let s = w.sessions.get(&sealed, &spilled_id).await.unwrap().unwrap();
    assert!(s.cookies[0].value.starts_with(&secret));
    // The control: an unencrypted tenant's record does hold its values.
    let plain = w.sessions.create(&clear, init(&secret)).await.unwrap();
    let raw = w
        .store
        .get(&record_key(&w.store, &clear, &plain.id))
        .await
        .unwrap()
        .unwrap();
    assert!(contains(&raw, &secret));
    assert_eq!(raw[1], 0);
    // A session sealed for one key cannot be moved under another tenant's key.
    let moved_key = record_key(&w.store, &clear, &ids[0]);
    let original = w
        .store
        .get(&record_key(&w.store, &sealed, &ids[0]))
        .await
        .unwrap()
        .unwrap();
    w.store
        .set(
            &moved_key,
            &original,
            None,
            riptide_persistence::store::Durability::Durable,
        )
        .await
        .unwrap();
    assert!(w.sessions.get(&clear, &ids[0]).await.is_err());
}

async fn storage_quota_counts_session_bytes(b: Backend) {
    let w = with_tenants(b, 1 << 20).await;
    let t = new_tenant(&w.tenants, false, &[("storage_bytes", 5_000)]).await;
    let used = |tenants: Arc<TenantManager>, t: String| async move {
        match tenants.check_quota(&t, "storage_bytes", 5_000).await {
            Ok(()) => 0,
            Err(TenantError::QuotaExceeded { current, .. }) => current,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(used(w.tenants.clone(), t.clone()).await, 0);
    let big = "b".repeat(1_500);
    let mut created = Vec::new();
    let refused = loop {
        match w.sessions.create(&t, init(&big)).await {
            Ok(s) => created.push(s),
            Err(e) => break e,
        }
        assert!(created.len() < 10, "the quota never refused");
    };
    assert!(
        matches!(
            refused,
            SessionError::QuotaExceeded(TenantError::QuotaExceeded { .. })
        ),
        "{refused:?}"
    );
    assert!(created.len() >= 2, "{}", created.len());
    let charged = used(w.tenants.clone(), t.clone()).await;
    assert!(
        charged > 1_500 * created.len() as u64 && charged <= 5_000,
        "{charged}"
    );
    assert_eq!(
        w.sessions.count(&t).await.unwrap(),
        created.len() as u64,
        "the refused one left nothing"
    );
    // Growing a session is charged too, and refused beyond the quota.
    let grow = SessionUpdate {
        cookies: Some(vec![cookie("sid", &"g".repeat(4_000))]),
        ..Default::default()
    };
    assert!(matches!(
        w.sessions.update(&t, &created[0].id, grow).await,
        Err(SessionError::QuotaExceeded(_))
    ));
    // Shrinking releases.
    let shrink = SessionUpdate {
        cookies: Some(vec![cookie("sid", "small")]),
        ..Default::default()
    };
    w.sessions.update(&t, &created[0].id, shrink).await.unwrap();
    let after_shrink = used(w.tenants.clone(), t.clone()).await;
    assert!(
        after_shrink < charged - 1_400,
        "{after_shrink} vs {charged}"
    );
    // Terminating frees the bytes, so a new session fits again.
    assert!(w.sessions.terminate(&t, &created[1].id).await.unwrap());
    assert!(used(w.tenants.clone(), t.clone()).await < after_shrink - 1_400);
    w.sessions.create(&t, init(&big)).await.unwrap();
    // Expiry releases them too, through the sweep.
    let mut short = init("x");
    short.ttl = Some(Duration::from_millis(300));
    let s = w.sessions.create(&t, short).await.unwrap();
    let before = used(w.tenants.clone(), t.clone()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = w.sessions.sweep_expired().await.unwrap();
    assert!(r.expired_removed >= 1 && r.bytes_released > 0, "{r:?}");
    assert!(used(w.tenants.clone(), t.clone()).await < before);
    assert_eq!(w.sessions.get(&t, &s.id).await.unwrap(), None);
    // Everything terminated: nothing is counted.
    for l in w.sessions.list(&t, 0, 100).await.unwrap() {
        assert!(w.sessions.terminate(&t, &l.id).await.unwrap());
    }
    assert_eq!(used(w.tenants.clone(), t.clone()).await, 0);
}

async fn a_second_instance_sees_sessions_and_forget_drops_local_copies(b: Backend) {
    let ts = store(b).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &state_config(da.path(), 4 * 1024),
    );
    let bm = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &state_config(db.path(), 1 << 20),
    );
    let t = tenant();
    let s = a.create(&t, init("from-a")).await.unwrap();
    assert_eq!(bm.get(&t, &s.id).await.unwrap().as_ref(), Some(&s));
    let changed = bm
        .update(
            &t,
            &s.id,
            SessionUpdate {
                cookies: Some(vec![cookie("sid", "from-b")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A still serves its own copy until told.
    assert_eq!(a.get(&t, &s.id).await.unwrap().as_ref(), Some(&s));
    a.forget(&t, &s.id).await.unwrap();
    assert_eq!(a.get(&t, &s.id).await.unwrap().as_ref(), Some(&changed));
    // Forget drops a spill file too.
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            a.create(&t, init(&format!("{i}{}", "f".repeat(500))))
                .await
                .unwrap()
                .id,
        );
    }
    a.flush_spills().await;
    let spilled = ids
        .iter()
        .find(|id| spill_file(da.path(), &t, id).exists())
        .expect("a spilled session")
        .clone();
    let before = a.figures().tiers.spilled_sessions;
    a.forget(&t, &spilled).await.unwrap();
    assert!(!spill_file(da.path(), &t, &spilled).exists());
    assert_eq!(a.figures().tiers.spilled_sessions, before - 1);
    // Terminated on B: gone for A once A forgets (and for any fresh read).
    assert!(bm.terminate(&t, &spilled).await.unwrap());
    assert_eq!(a.get(&t, &spilled).await.unwrap(), None);
}

async fn spill_all_then_a_fresh_manager_serves_every_session(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = state_config(dir.path(), 1 << 20);
    let first = SessionManager::new(ts.store.clone(), system_clock(), &cfg);
    let t = tenant();
    let mut created = Vec::new();
    for i in 0..10 {
        created.push(
            first
                .create(&t, init(&format!("restart-{i}")))
                .await
                .unwrap(),
        );
    }
    let report = first.spill_all().await;
    assert_eq!((report.spilled, report.failed), (10, 0));
    assert_eq!(first.figures().tiers.memory_sessions, 0);
    assert_eq!(spill_files(dir.path(), &t).len(), 10);
    // Nothing left the store.
    assert_eq!(first.count(&t).await.unwrap(), 10);
    drop(first);
    // Meanwhile another instance changes one session: its file is stale now.
    let other_dir = tempfile::tempdir().unwrap();
    let other = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &state_config(other_dir.path(), 1 << 20),
    );
    let changed = other
        .update(
            &t,
            &created[0].id,
            SessionUpdate {
                ttl: Some(Duration::from_secs(99)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let fresh = SessionManager::new(ts.store.clone(), system_clock(), &cfg);
    assert_eq!(
        fresh.get(&t, &created[0].id).await.unwrap().as_ref(),
        Some(&changed),
        "stale file not used"
    );
    for s in &created[1..] {
        assert_eq!(fresh.get(&t, &s.id).await.unwrap().as_ref(), Some(s));
    }
    assert_eq!(
        fresh.figures().loads_total,
        9,
        "served from the spill files"
    );
    assert!(
        spill_files(dir.path(), &t).is_empty(),
        "loaded files are removed"
    );
}

async fn tenant_status_is_checked(b: Backend) {
    let w = with_tenants(b, 1 << 20).await;
    let t = new_tenant(&w.tenants, false, &[]).await;
    let s = w.sessions.create(&t, init("x")).await.unwrap();
    assert!(matches!(
        w.sessions.create("no-such-tenant", init("x")).await,
        Err(SessionError::Tenant(TenantError::NotFound { .. }))
    ));
    w.tenants.suspend_tenant(&t, "testing").await.unwrap();
    assert!(matches!(
        w.sessions.create(&t, init("x")).await,
        Err(SessionError::Tenant(TenantError::Suspended(_)))
    ));
    assert!(matches!(
        w.sessions.update(&t, &s.id, SessionUpdate::default()).await,
        Err(SessionError::Tenant(TenantError::Suspended(_)))
    ));
    // Reading and ending sessions of a suspended tenant still work.
    assert!(w.sessions.get(&t, &s.id).await.unwrap().is_some());
    assert!(w.sessions.terminate(&t, &s.id).await.unwrap());
}

/// Bad input gets typed errors and writes nothing (embedded store, manual clock).
#[tokio::test]
async fn bad_input_is_refused_with_typed_errors() {
    let clock = ManualClock::new(1_795_000_000_000);
    let shared: SharedClock = clock.clone();
    let ts = store_with_clock(Backend::Embedded, shared.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = state_config(dir.path(), 1 << 20);
    cfg.max_sessions_per_tenant = 3;
    let m = SessionManager::new(ts.store.clone(), shared, &cfg);
    let t = tenant();
    let invalid = |r: Result<Session, SessionError>, field: &str| match r {
        Err(SessionError::Invalid { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    invalid(m.create("Bad Tenant", init("x")).await, "tenant_id");
    let many = SessionInit {
        cookies: (0..101).map(|i| cookie(&format!("c{i}"), "v")).collect(),
        ..Default::default()
    };
    invalid(m.create(&t, many).await, "cookies");
    invalid(
        m.create(&t, init(&"v".repeat(4 * 1024 + 1))).await,
        "cookies",
    );
    invalid(m.create(&t, init("a\r\nb")).await, "cookies");
    for (name, value) in [
        ("Host", "x"),
        ("Connection", "close"),
        ("bad name", "x"),
        ("x-long", &"v".repeat(8 * 1024 + 1)),
    ] {
        let si = SessionInit {
            headers: BTreeMap::from([(name.to_owned(), value.to_owned())]),
            ..Default::default()
        };
        invalid(m.create(&t, si).await, "headers");
    }
    let zero = SessionInit {
        ttl: Some(Duration::ZERO),
        ..Default::default()
    };
    invalid(m.create(&t, zero).await, "ttl");
    assert!(matches!(
        m.get(&t, "../../etc/passwd").await,
        Err(SessionError::Invalid {
            field: "session_id",
            ..
        })
    ));
    assert!(matches!(
        m.terminate(&t, "short").await,
        Err(SessionError::Invalid { .. })
    ));
    assert_eq!(m.count(&t).await.unwrap(), 0, "nothing was written");
    assert!(std::fs::read_dir(dir.path()).map_or(true, |mut d| d.next().is_none()));

    // The session limit, with expired sessions making room (manual clock).
    let mut short = init("x");
    short.ttl = Some(Duration::from_secs(10));
    let old = m.create(&t, short).await.unwrap();
    m.create(&t, init("x")).await.unwrap();
    m.create(&t, init("x")).await.unwrap();
    assert!(matches!(
        m.create(&t, init("x")).await,
        Err(SessionError::TooManySessions { limit: 3, .. })
    ));
    assert_eq!(
        m.count(&t).await.unwrap(),
        3,
        "the refused one left no index entry"
    );
    clock.advance_ms(11_000);
    assert_eq!(m.get(&t, &old.id).await.unwrap(), None);
    m.create(&t, init("x")).await.unwrap();
    assert_eq!(m.count(&t).await.unwrap(), 3);
}
