//! The audit log against someone who can write the store's raw bytes but holds neither
//! the master key (so not the audit key) nor this instance's high-water mark: deleting
//! the last records and rewinding the head, deleting the head, and rewriting records
//! with a consistent chain under another key are all reported by `verify`, a lost head
//! stops appends (fail closed), and checkpoints carry the chain's end.

use riptide_persistence::SharedStore;
use riptide_persistence::clock::system_clock;
use riptide_persistence::config::StateConfig;
use riptide_persistence::state::checkpoint::format::{self, Line};
use riptide_persistence::state::checkpoint::{CheckpointExtra, CheckpointManager};
use riptide_persistence::store::Durability;
use riptide_persistence::tenant::TenantError;
use riptide_persistence::tenant::audit::{
    AuditEntry, AuditKey, AuditLog, AuditRecord, ChainTip, HIGH_WATER_FILE, OUTCOME_OK,
};

use super::support::{Backend, on_every_backend, store};
use super::tenant_audit::key;

on_every_backend!(
    deleting_the_last_records_and_rewinding_the_head_is_reported,
    deleting_the_head_is_reported_and_stops_appends,
    records_forged_with_another_key_are_reported,
    checkpoints_carry_the_chain_end,
);

fn entry(operation: &str) -> AuditEntry {
    AuditEntry::new("admin", None, operation, "res", OUTCOME_OK)
}

fn rec_key(store: &SharedStore, seq: u64) -> String {
    format!("{}:{{audit}}:rec:{seq}", store.key_prefix())
}

fn head_key(store: &SharedStore) -> String {
    format!("{}:{{audit}}:head", store.key_prefix())
}

async fn raw(store: &SharedStore, seq: u64) -> AuditRecord {
    let bytes = store
        .get(&rec_key(store, seq))
        .await
        .expect("get")
        .expect("record");
    serde_json::from_slice(&bytes).expect("record JSON")
}

async fn put(store: &SharedStore, key: &str, bytes: &[u8]) {
    store
        .set(key, bytes, None, Durability::Durable)
        .await
        .expect("raw write");
}

async fn appended(log: &AuditLog, n: usize) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(log.append(entry(&format!("op.{i}"))).await.expect("append"));
    }
    out
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

async fn deleting_the_last_records_and_rewinding_the_head_is_reported(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(HIGH_WATER_FILE);
    let log =
        AuditLog::new(ts.store.clone(), system_clock(), key()).with_high_water_file(file.clone());
    let records = appended(&log, 5).await;
    assert!(log.verify().await.expect("verify").is_ok());

    // The attacker removes records 4 and 5 and points the head back at record 3: a
    // chain that is consistent in itself.
    ts.store
        .delete(&[rec_key(&ts.store, 4), rec_key(&ts.store, 5)])
        .await
        .expect("delete");
    let third = format!("3 {}", records[2].hash);
    put(&ts.store, &head_key(&ts.store), third.as_bytes()).await;

    let report = log.verify().await.expect("verify");
    assert!(!report.is_ok(), "{report:?}");
    assert!(
        report.first_bad.is_none(),
        "every record left is good: {report:?}"
    );
    assert_eq!(report.checked, 3);
    assert!(
        has(&report.problems, "the head was rolled back"),
        "{report:?}"
    );
    assert!(
        has(&report.problems, "records 4 to 5 were deleted"),
        "{report:?}"
    );
    assert_eq!(
        report.high_water,
        Some(ChainTip {
            length: 5,
            head_hash: records[4].hash.clone()
        })
    );

    // After a restart the mark comes back from its file: still reported.
    let restarted =
        AuditLog::new(ts.store.clone(), system_clock(), key()).with_high_water_file(file);
    let again = restarted.verify().await.expect("verify");
    assert!(
        has(&again.problems, "records 4 to 5 were deleted"),
        "{again:?}"
    );
    // And nothing more is appended onto the shortened chain (fail closed).
    let refused = restarted.append(entry("tenant.delete")).await;
    assert!(
        matches!(&refused, Err(TenantError::AuditUnavailable(m)) if m.contains("rolled back")),
        "{refused:?}"
    );
    assert!(
        ts.store
            .get(&rec_key(&ts.store, 4))
            .await
            .expect("get")
            .is_none()
    );

    // Refilling records 4 and 5 with other content does not pass either.
    let other = AuditLog::new(ts.store.clone(), system_clock(), key());
    appended(&other, 2).await;
    let rewritten = log.verify().await.expect("verify");
    assert!(
        has(&rewritten.problems, "the chain was rewritten"),
        "{rewritten:?}"
    );
}

async fn deleting_the_head_is_reported_and_stops_appends(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    appended(&log, 3).await;
    ts.store
        .delete(&[head_key(&ts.store)])
        .await
        .expect("delete head");

    let report = log.verify().await.expect("verify");
    assert!(!report.is_ok(), "{report:?}");
    assert!(
        has(
            &report.problems,
            "head key is missing while records 1 to 3 exist"
        ),
        "{report:?}"
    );
    // A fresh instance (no high-water mark) sees it too: the records are there.
    let fresh = AuditLog::new(ts.store.clone(), system_clock(), key());
    assert!(!fresh.verify().await.expect("verify").is_ok());

    for l in [&log, &fresh] {
        let err = l.ensure_writable().await.expect_err("fails closed");
        assert!(
            matches!(&err, TenantError::AuditUnavailable(m) if m.contains("head")),
            "{err:?}"
        );
        let refused = l.append(entry("tenant.create")).await;
        assert!(
            matches!(refused, Err(TenantError::AuditUnavailable(_))),
            "{refused:?}"
        );
    }
    assert!(
        ts.store
            .get(&rec_key(&ts.store, 4))
            .await
            .expect("get")
            .is_none(),
        "nothing was appended"
    );

    // Head and every record gone: the instance that saw them still refuses.
    ts.store
        .delete(&(1..=3).map(|s| rec_key(&ts.store, s)).collect::<Vec<_>>())
        .await
        .expect("delete all");
    assert!(matches!(
        log.ensure_writable().await,
        Err(TenantError::AuditUnavailable(_))
    ));
    let wiped = log.verify().await.expect("verify");
    assert!(
        has(&wiped.problems, "records 1 to 3 were deleted"),
        "{wiped:?}"
    );
}

async fn records_forged_with_another_key_are_reported(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    let records = appended(&log, 5).await;

    // Rewrite records 3 to 5 and the head with a consistent chain under a wrong key.
    let wrong = AuditKey::from_bytes([7; 32]);
    let mut prev = records[1].hash.clone();
    for seq in 3..=5u64 {
        let mut r = raw(&ts.store, seq).await;
        r.actor = "mallory".to_owned();
        r.prev_hash = prev;
        r.hash = r.compute_hash(&wrong);
        prev = r.hash.clone();
        let bytes = serde_json::to_vec(&r).expect("json");
        put(&ts.store, &rec_key(&ts.store, seq), &bytes).await;
    }
    put(
        &ts.store,
        &head_key(&ts.store),
        format!("5 {prev}").as_bytes(),
    )
    .await;
    for l in [
        &log,
        &AuditLog::new(ts.store.clone(), system_clock(), key()),
    ] {
        let report = l.verify().await.expect("verify");
        let (seq, reason) = report.first_bad.clone().expect("the forgery is detected");
        assert_eq!(seq, 3, "{reason}");
        assert!(reason.contains("audit key"), "{reason}");
    }

    // An unkeyed (version 1) record, which needs no key, is refused after keyed ones.
    let mut r = raw(&ts.store, 3).await;
    r.prev_hash = records[1].hash.clone();
    r.v = 1;
    r.hash = r.compute_hash(&wrong);
    put(
        &ts.store,
        &rec_key(&ts.store, 3),
        &serde_json::to_vec(&r).expect("json"),
    )
    .await;
    let report = log.verify().await.expect("verify");
    let (seq, reason) = report.first_bad.expect("the downgrade is detected");
    assert_eq!(seq, 3, "{reason}");
    assert!(reason.contains("unkeyed"), "{reason}");
}

async fn checkpoints_carry_the_chain_end(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    let records = appended(&log, 4).await;
    let dir = tempfile::tempdir().expect("dir");
    let cfg = StateConfig {
        checkpoint_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let ck = CheckpointManager::new(ts.store.clone(), system_clock(), &cfg);
    let info = ck
        .create(CheckpointExtra::default())
        .await
        .expect("checkpoint");
    let mut file =
        format::verify(&dir.path().join(format!("{}.ckpt", info.id))).expect("valid file");
    let mut lines = file.lines().expect("lines");
    let Some(Line::Meta(meta)) = lines.next_line(1).expect("meta line") else {
        panic!("the first line is not meta");
    };
    assert_eq!(
        meta.audit,
        Some(ChainTip {
            length: 4,
            head_hash: records[3].hash.clone(),
        })
    );
}
