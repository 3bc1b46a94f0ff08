//! A full session memory tier never puts spill file writes or fsyncs on a request
//! (issue 9): with the spill files held busy (as a slow disk would hold them), creates,
//! updates and reads that push sessions out of memory still complete promptly, every
//! session stays served (from the store meanwhile), and once the disk is free the
//! spill files are written and served, on every backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use riptide_persistence::clock::system_clock;
use riptide_persistence::config::StateConfig;
use riptide_persistence::state::sessions::{
    Session, SessionCookie, SessionInit, SessionManager, SessionUpdate,
};

use super::support::{Backend, on_every_backend, store, tenant};

/// Far below "held until released", far above a store round trip.
const PROMPT: Duration = Duration::from_secs(2);

fn init(value: &str) -> SessionInit {
    SessionInit {
        cookies: vec![SessionCookie {
            name: "sid".into(),
            value: value.into(),
            domain: Some("example.com".into()),
            path: Some("/".into()),
        }],
        headers: BTreeMap::from([("User-Agent".to_owned(), "riptide-test".to_owned())]),
        ttl: None,
    }
}

fn spill_files(spill: &Path, tenant: &str) -> usize {
    std::fs::read_dir(spill.join(tenant)).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "session"))
        })
        .count()
    })
}

async fn prompt<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for the busy spill files"))
}

on_every_backend!(requests_do_not_wait_for_spill_files);

async fn requests_do_not_wait_for_spill_files(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let m = SessionManager::new(
        ts.store.clone(),
        system_clock(),
        &StateConfig {
            spill_dir: spill.clone(),
            // About four sessions: every create past them pushes one out.
            session_memory_limit_bytes: 4 * 1024,
            ..Default::default()
        },
    );
    let t = tenant();
    let mut created: Vec<Session> = Vec::new();
    {
        let _busy = m.hold_spill_io().await;
        for i in 0..20 {
            let s = prompt(
                "a create",
                m.create(&t, init(&format!("{i}-{}", "c".repeat(500)))),
            )
            .await;
            created.push(s.unwrap());
        }
        let changed = prompt(
            "an update",
            m.update(
                &t,
                &created[0].id,
                SessionUpdate {
                    ttl: Some(Duration::from_secs(600)),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
        created[0] = changed;
        // Nothing is lost while no file can be written: every session is served (those
        // pushed out from the store).
        for s in &created {
            let got = prompt("a read", m.get(&t, &s.id)).await.unwrap();
            assert_eq!(got.as_ref(), Some(s));
        }
        let f = m.figures();
        assert!(f.tiers.memory_bytes <= 4 * 1024, "{f:?}");
        assert_eq!(
            f.spills_total, 0,
            "no file was written while they were busy"
        );
    }
    // The disk is free: the queued spills are written, and sessions load back from them.
    m.flush_spills().await;
    let f = m.figures();
    assert!(f.spills_total > 0 && f.tiers.spilled_sessions > 0, "{f:?}");
    assert_eq!(spill_files(&spill, &t) as u64, f.tiers.spilled_sessions);
    for s in &created {
        m.flush_spills().await;
        assert_eq!(m.get(&t, &s.id).await.unwrap().as_ref(), Some(s));
    }
    assert!(m.figures().loads_total > 0);
}
