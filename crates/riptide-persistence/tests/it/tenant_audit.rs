//! The audit log on every backend: a hash chain that stays gap-free under concurrent
//! appends from many tasks and two instances, detects edited, removed and re-linked
//! records, answers queries by tenant and time range, and survives retention pruning.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use riptide_persistence::clock::{ManualClock, SharedClock, system_clock};
use riptide_persistence::store::Durability;
use riptide_persistence::tenant::TenantError;
use riptide_persistence::tenant::audit::{
    AuditEntry, AuditKey, AuditLog, AuditRecord, GENESIS_HASH, OUTCOME_OK,
};
use riptide_persistence::{SharedStore, TenantId};

use crate::support::{Backend, on_every_backend, store, store_with_clock, tenant};

on_every_backend!(
    appends_form_a_verified_chain,
    concurrent_appends_from_two_instances_make_one_gap_free_chain,
    an_edited_record_is_reported,
    a_removed_record_is_reported_as_a_gap,
    a_relinked_record_is_reported_as_a_broken_link,
    queries_by_tenant_and_time_range,
    pruning_keeps_the_chain_verifiable,
    bad_entries_are_refused_and_nothing_is_written,
);

const START_MS: u64 = 1_795_000_000_000;
const DAY_MS: u64 = 86_400_000;

fn entry(actor: &str, tenant: Option<&TenantId>, operation: &str) -> AuditEntry {
    AuditEntry::new(
        actor,
        tenant.map(TenantId::as_str),
        operation,
        "res",
        OUTCOME_OK,
    )
}

/// The audit key of these tests (the service derives its own from the master key).
pub(crate) fn key() -> AuditKey {
    AuditKey::from_bytes([42; 32])
}

fn at(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).expect("fits")).expect("valid time")
}

fn rec_key(store: &SharedStore, seq: u64) -> String {
    format!("{}:{{audit}}:rec:{seq}", store.key_prefix())
}

async fn raw(store: &SharedStore, seq: u64) -> Option<AuditRecord> {
    let bytes = store.get(&rec_key(store, seq)).await.expect("get")?;
    Some(serde_json::from_slice(&bytes).expect("record JSON"))
}

async fn appends_form_a_verified_chain(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    let empty = log.verify().await.expect("verify empty");
    assert!(empty.is_ok() && empty.checked == 0, "{empty:?}");

    let t = TenantId::parse(&tenant()).expect("tenant");
    let mut prev = GENESIS_HASH.to_owned();
    for i in 1..=5u64 {
        let e = entry("admin", Some(&t), "tenant.update").with_metadata("i", i.to_string());
        let r = log.append(e).await.expect("append");
        assert_eq!(r.seq, i);
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.hash, r.compute_hash(&key()));
        assert_eq!(
            r.metadata.get("i").map(String::as_str),
            Some(i.to_string().as_str())
        );
        assert_eq!(
            raw(&ts.store, i).await.as_ref(),
            Some(&r),
            "stored as returned"
        );
        prev = r.hash;
    }
    let report = log.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 5);
    // A second instance continues the same chain.
    let other = AuditLog::new(ts.store.clone(), system_clock(), key());
    let sixth = other
        .append(entry("system", None, "cache.clear"))
        .await
        .expect("append");
    assert_eq!((sixth.seq, sixth.prev_hash.as_str()), (6, prev.as_str()));
    assert_eq!(log.verify().await.expect("verify").checked, 6);
}

async fn concurrent_appends_from_two_instances_make_one_gap_free_chain(b: Backend) {
    const TASKS: usize = 4;
    const PER_TASK: usize = 50;
    let ts = store(b).await;
    let first = Arc::new(AuditLog::new(ts.store.clone(), system_clock(), key()));
    let second = Arc::new(AuditLog::new(ts.store.clone(), system_clock(), key()));
    let mut handles = Vec::new();
    for task in 0..=TASKS {
        // Tasks 0..4 share the first instance; task 4 is the second instance.
        let log = if task < TASKS {
            first.clone()
        } else {
            second.clone()
        };
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let e = AuditEntry::new(
                    &format!("task-{task}"),
                    None,
                    "op",
                    &i.to_string(),
                    OUTCOME_OK,
                );
                seqs.push(log.append(e).await.expect("append").seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for h in handles {
        seqs.extend(h.await.expect("task"));
    }
    seqs.sort_unstable();
    let total = (TASKS + 1) * PER_TASK;
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "one gap-free chain, no duplicates"
    );
    let report = second.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, total as u64);
    let all = first
        .query(None, at(0), Utc::now() + chrono::Duration::days(1), 10_000)
        .await
        .expect("query");
    assert_eq!(all.len(), total, "every record is indexed by time");
}

async fn an_edited_record_is_reported(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    for _ in 0..5 {
        log.append(entry("admin", None, "tenant.create"))
            .await
            .expect("append");
    }
    let key = rec_key(&ts.store, 3);
    let bytes = ts.store.get(&key).await.expect("get").expect("record 3");
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    json["actor"] = serde_json::Value::String("mallory".to_owned());
    ts.store
        .set(
            &key,
            &serde_json::to_vec(&json).expect("json"),
            None,
            Durability::Durable,
        )
        .await
        .expect("tamper");

    let report = log.verify().await.expect("verify");
    let (seq, reason) = report.first_bad.clone().expect("the edit is detected");
    assert_eq!(seq, 3, "{reason}");
    assert!(reason.contains("hash mismatch"), "{reason}");
    assert_eq!(report.checked, 2);
}

async fn a_removed_record_is_reported_as_a_gap(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    for _ in 0..5 {
        log.append(entry("admin", None, "tenant.delete"))
            .await
            .expect("append");
    }
    assert_eq!(
        ts.store
            .delete(&[rec_key(&ts.store, 3)])
            .await
            .expect("delete"),
        1
    );
    let report = log.verify().await.expect("verify");
    let (seq, reason) = report.first_bad.clone().expect("the removal is detected");
    assert_eq!(seq, 3, "{reason}");
    assert!(reason.contains("gap"), "{reason}");

    // Removing the newest record is detected too (the head still names it).
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    for _ in 0..3 {
        log.append(entry("admin", None, "tenant.delete"))
            .await
            .expect("append");
    }
    ts.store
        .delete(&[rec_key(&ts.store, 3)])
        .await
        .expect("delete");
    let report = log.verify().await.expect("verify");
    assert_eq!(report.first_bad.map(|(s, _)| s), Some(3));
}

async fn a_relinked_record_is_reported_as_a_broken_link(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    for _ in 0..5 {
        log.append(entry("admin", None, "api_key.revoke"))
            .await
            .expect("append");
    }
    // Rewrite record 3 consistently (its own hash recomputed): record 4 no longer links.
    let mut r3 = raw(&ts.store, 3).await.expect("record 3");
    r3.outcome = "error: rewritten".to_owned();
    r3.hash = r3.compute_hash(&key());
    let key = rec_key(&ts.store, 3);
    ts.store
        .set(
            &key,
            &serde_json::to_vec(&r3).expect("json"),
            None,
            Durability::Durable,
        )
        .await
        .expect("rewrite");
    let report = log.verify().await.expect("verify");
    let (seq, reason) = report.first_bad.clone().expect("the rewrite is detected");
    assert_eq!(seq, 4, "{reason}");
    assert!(reason.contains("broken"), "{reason}");
}

async fn queries_by_tenant_and_time_range(b: Backend) {
    let manual = ManualClock::new(START_MS);
    let clock: SharedClock = manual.clone();
    let ts = store_with_clock(b, clock.clone()).await;
    let log = AuditLog::new(ts.store.clone(), clock, key());
    let a = TenantId::parse(&tenant()).expect("tenant");
    let c = TenantId::parse(&tenant()).expect("tenant");
    // a @0s, c @1s, a @2s, none @3s, a @4s
    for (i, t) in [Some(&a), Some(&c), Some(&a), None, Some(&a)]
        .into_iter()
        .enumerate()
    {
        let r = log
            .append(entry("admin", t, &format!("op{i}")))
            .await
            .expect("append");
        assert_eq!(r.at, at(START_MS + 1_000 * i as u64));
        manual.advance_ms(1_000);
    }
    let ops = |rs: &[AuditRecord]| rs.iter().map(|r| r.operation.clone()).collect::<Vec<_>>();

    let all_a = log
        .query(Some(&a), at(START_MS), at(START_MS + 10_000), 100)
        .await
        .expect("query");
    assert_eq!(ops(&all_a), ["op0", "op2", "op4"]);
    assert!(
        all_a
            .iter()
            .all(|r| r.tenant_id.as_deref() == Some(a.as_str()))
    );
    let a_window = log
        .query(Some(&a), at(START_MS + 1_000), at(START_MS + 3_000), 100)
        .await
        .expect("query");
    assert_eq!(ops(&a_window), ["op2"]);
    let c_only = log
        .query(Some(&c), at(START_MS), at(START_MS + 10_000), 100)
        .await
        .expect("query");
    assert_eq!(ops(&c_only), ["op1"]);
    let window = log
        .query(None, at(START_MS + 1_000), at(START_MS + 3_000), 100)
        .await
        .expect("query");
    assert_eq!(
        ops(&window),
        ["op1", "op2", "op3"],
        "bounds are inclusive; records without tenant included"
    );
    let limited = log
        .query(None, at(START_MS), at(START_MS + 10_000), 2)
        .await
        .expect("query");
    assert_eq!(ops(&limited), ["op0", "op1"], "the oldest first");
    assert!(
        log.query(None, at(START_MS + 5_000), at(START_MS), 100)
            .await
            .expect("query")
            .is_empty()
    );
    assert!(
        log.query(None, at(START_MS), at(START_MS + 10_000), 0)
            .await
            .expect("query")
            .is_empty()
    );
    let nobody = TenantId::parse(&tenant()).expect("tenant");
    assert!(
        log.query(Some(&nobody), at(0), at(START_MS * 2), 100)
            .await
            .expect("query")
            .is_empty()
    );
}

async fn pruning_keeps_the_chain_verifiable(b: Backend) {
    let manual = ManualClock::new(START_MS);
    let clock: SharedClock = manual.clone();
    let ts = store_with_clock(b, clock.clone()).await;
    let log = AuditLog::new(ts.store.clone(), clock.clone(), key());
    let t = TenantId::parse(&tenant()).expect("tenant");
    for _ in 0..4 {
        log.append(entry("admin", Some(&t), "old"))
            .await
            .expect("append");
        manual.advance_ms(1_000);
    }
    manual.advance_ms(10 * DAY_MS);
    for _ in 0..3 {
        log.append(entry("admin", Some(&t), "new"))
            .await
            .expect("append");
    }
    assert_eq!(log.prune(30).await.expect("nothing is old enough"), 0);
    assert_eq!(log.prune(5).await.expect("prune"), 4);

    let report = log.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 3);
    for seq in 1..=4 {
        assert!(raw(&ts.store, seq).await.is_none(), "record {seq} pruned");
    }
    let far = at(START_MS + 100 * DAY_MS);
    let left = log.query(None, at(0), far, 100).await.expect("query");
    assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6, 7]);
    let left_t = log.query(Some(&t), at(0), far, 100).await.expect("query");
    assert_eq!(left_t.len(), 3, "the tenant index is pruned too");

    // The chain continues, and pruning again is a no-op.
    let next = log
        .append(entry("admin", None, "after"))
        .await
        .expect("append");
    assert_eq!(next.seq, 8);
    assert_eq!(log.prune(5).await.expect("prune again"), 0);
    assert_eq!(log.verify().await.expect("verify").checked, 4);

    // Everything ages out: the chain is empty but verifies, and appends continue it.
    manual.advance_ms(30 * DAY_MS);
    assert_eq!(log.prune(5).await.expect("prune all"), 4);
    let report = log.verify().await.expect("verify");
    assert!(report.is_ok() && report.checked == 0, "{report:?}");
    let ninth = log
        .append(entry("admin", None, "later"))
        .await
        .expect("append");
    assert_eq!(ninth.seq, 9);
    assert_eq!(ninth.prev_hash, next.hash);
    let report = log.verify().await.expect("verify");
    assert!(report.is_ok() && report.checked == 1, "{report:?}");

    // A record removed after pruning is still found.
    log.append(entry("admin", None, "x")).await.expect("append");
    log.append(entry("admin", None, "y")).await.expect("append");
    ts.store
        .delete(&[rec_key(&ts.store, 10)])
        .await
        .expect("delete");
    assert_eq!(
        log.verify()
            .await
            .expect("verify")
            .first_bad
            .map(|(s, _)| s),
        Some(10)
    );

    assert!(matches!(
        log.prune(0).await,
        Err(TenantError::InvalidField { .. })
    ));
}

async fn bad_entries_are_refused_and_nothing_is_written(b: Backend) {
    let ts = store(b).await;
    let log = AuditLog::new(ts.store.clone(), system_clock(), key());
    let long = "x".repeat(201);
    let mut too_much = entry("admin", None, "op");
    for i in 0..33 {
        too_much = too_much.with_metadata(format!("k{i}"), "v");
    }
    for bad in [
        AuditEntry::new(&long, None, "op", "res", OUTCOME_OK),
        AuditEntry::new("admin", None, &long, "res", OUTCOME_OK),
        AuditEntry::new("admin", None, "op", &long, OUTCOME_OK),
        AuditEntry::new("", None, "op", "res", OUTCOME_OK),
        entry("admin", None, "op").with_metadata("k", "v".repeat(1_025)),
        too_much,
    ] {
        let r = log.append(bad).await;
        assert!(matches!(r, Err(TenantError::InvalidField { .. })), "{r:?}");
    }
    let r = log
        .append(AuditEntry::new(
            "admin",
            Some("Not A Tenant"),
            "op",
            "res",
            OUTCOME_OK,
        ))
        .await;
    assert!(matches!(r, Err(TenantError::Invalid(_))), "{r:?}");
    assert!(raw(&ts.store, 1).await.is_none(), "nothing was appended");
    assert_eq!(
        log.append(entry("admin", None, "op"))
            .await
            .expect("a good one")
            .seq,
        1
    );
}
