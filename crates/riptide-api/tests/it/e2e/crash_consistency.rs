//! Crash consistency (issue 10, item 5): the binary is killed with SIGKILL at random
//! moments while admin clients create tenants (encrypted, so each has a data key),
//! create their API keys and delete some of them, in parallel. After every restart each
//! tenant ever touched is whole or absent:
//!
//! - whole: readable, listed, a new key can be issued, and every key issued before the
//!   kill (the client saw its 201) authenticates and extracts (which seals with the
//!   tenant's data key), and a confirmed creation never disappears;
//! - absent: not readable, not listed, no key of it authenticates, and the id can be
//!   created again, without any of the old keys working for the new tenant.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use super::on_both_backends;
use super::process::{Backend, Launch, Riptide};
use crate::pages::Pages;

on_both_backends!(sigkill_during_tenant_changes);

/// Kill and restart cycles.
const ROUNDS: usize = 6;
/// Parallel admin clients per round.
const WORKERS: usize = 6;
/// The kill lands this long after the clients start, at random (ms).
const KILL_AFTER_MS: (u64, u64) = (150, 700);

/// What the clients know about one tenant id.
#[derive(Debug, Default, Clone)]
struct Known {
    /// The creation was answered 201.
    created: bool,
    /// A deletion was sent (its outcome may be unknown).
    delete_sent: bool,
    /// The deletion was answered 204.
    deleted: bool,
    /// Keys whose creation was answered 201.
    keys: Vec<String>,
}

type Ledger = Arc<Mutex<BTreeMap<String, Known>>>;

/// An admin client of one running instance.
#[derive(Clone)]
struct Admin {
    client: Client,
    base: String,
    token: String,
}

impl Admin {
    fn of(rt: &Riptide) -> Self {
        Self {
            client: rt.client().clone(),
            base: rt.url(""),
            token: rt.admin_token().to_owned(),
        }
    }

    /// `method path` with an optional body; `None` when the instance did not answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status();
        let bytes = resp.bytes().await.ok()?;
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn create_tenant(&self, id: &str) -> Option<StatusCode> {
        let body = json!({
            "tenant_id": id,
            "name": format!("Tenant {id}"),
            "owner_email": format!("{id}@example.com"),
            "owner_name": "Owner",
            "billing_plan": "enterprise",
            "encryption_enabled": true,
        });
        Some(
            self.call(Method::POST, "/admin/tenants", Some(body))
                .await?
                .0,
        )
    }

    async fn create_key(&self, id: &str) -> Option<(StatusCode, Option<String>)> {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/admin/tenants/{id}/keys"),
                Some(json!({"name": "crash"})),
            )
            .await?;
        Some((status, body["secret"].as_str().map(str::to_owned)))
    }
}

/// A random number in `lo..hi` (no dependency for so little).
fn random_in(lo: u64, hi: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(lo);
    lo + h.finish() % (hi - lo)
}

/// One admin client: creates tenants and keys, and deletes every third tenant it
/// created, until the instance stops answering.
async fn worker(admin: Admin, ledger: Ledger, round: usize, n: usize) {
    for i in 0.. {
        let id = format!("c{round}-{n}-{i}");
        ledger.lock().unwrap().entry(id.clone()).or_default();
        match admin.create_tenant(&id).await {
            Some(s) if s == StatusCode::CREATED => {
                ledger.lock().unwrap().get_mut(&id).unwrap().created = true;
            }
            Some(s) => panic!("creating {id}: {s}"),
            None => return,
        }
        match admin.create_key(&id).await {
            Some((s, Some(secret))) if s == StatusCode::CREATED => {
                ledger
                    .lock()
                    .unwrap()
                    .get_mut(&id)
                    .unwrap()
                    .keys
                    .push(secret);
            }
            Some((s, _)) => panic!("a key of {id}: {s}"),
            None => return,
        }
        if i % 3 == 2 {
            ledger.lock().unwrap().get_mut(&id).unwrap().delete_sent = true;
            match admin
                .call(Method::DELETE, &format!("/admin/tenants/{id}"), None)
                .await
            {
                Some((s, _)) if s.is_success() => {
                    ledger.lock().unwrap().get_mut(&id).unwrap().deleted = true;
                }
                Some((s, body)) => panic!("deleting {id}: {s} {body}"),
                None => return,
            }
        }
    }
}

/// Ids the instance lists.
async fn listed(admin: &Admin) -> Vec<String> {
    let (status, page) = admin
        .call(Method::GET, "/admin/tenants?limit=1000", None)
        .await
        .expect("list answers");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page["next_offset"].is_null(), "one page holds them all");
    page["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| t["tenant_id"].as_str().expect("tenant_id").to_owned())
        .collect()
}

/// The status of `POST /extract` of `url` as tenant `id` with `key`.
async fn extract(rt: &Riptide, id: &str, key: &str, url: &str) -> StatusCode {
    rt.client()
        .post(rt.url("/extract"))
        .bearer_auth(key)
        .header("x-tenant-id", id)
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("extract answers")
        .status()
}

/// Checks that every tenant in `ledger` is whole or absent on `rt` (see the module
/// docs), and brings each absent one back, so the next rounds start from whole tenants.
async fn check_whole_or_absent(rt: &Riptide, ledger: &Ledger, page: &str) -> (usize, usize) {
    let admin = Admin::of(rt);
    let listed = listed(&admin).await;
    let entries: Vec<(String, Known)> = ledger
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (mut whole, mut absent) = (0, 0);
    for (id, known) in entries {
        let (status, body) = admin
            .call(Method::GET, &format!("/admin/tenants/{id}"), None)
            .await
            .expect("get answers");
        let is_listed = listed.contains(&id);
        if status == StatusCode::OK {
            whole += 1;
            assert!(is_listed, "{id} is readable but not listed: {body}");
            assert!(!known.deleted, "{id} was deleted (204) but came back");
            let (s, secret) = admin.create_key(&id).await.expect("key answers");
            assert_eq!(s, StatusCode::CREATED, "a new key of {id}");
            for key in known.keys.iter().chain(secret.iter()) {
                assert_eq!(
                    extract(rt, &id, key, page).await,
                    StatusCode::OK,
                    "a key of the whole tenant {id} extracts (with its data key)"
                );
            }
        } else {
            absent += 1;
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
            assert!(!is_listed, "{id} is listed but cannot be read");
            assert!(
                !known.created || known.delete_sent,
                "{id} was created (201) and never deleted, yet is gone"
            );
            for key in &known.keys {
                assert_eq!(
                    extract(rt, &id, key, page).await,
                    StatusCode::UNAUTHORIZED,
                    "a key of the absent tenant {id}"
                );
            }
            // The id is free again, and the new tenant inherits none of the old keys.
            let s = admin.create_tenant(&id).await.expect("create answers");
            assert_eq!(s, StatusCode::CREATED, "re-creating {id}");
            for key in &known.keys {
                assert_eq!(
                    extract(rt, &id, key, page).await,
                    StatusCode::UNAUTHORIZED,
                    "an old key of {id} after its re-creation"
                );
            }
            let mut ledger = ledger.lock().unwrap();
            *ledger.get_mut(&id).unwrap() = Known {
                created: true,
                ..Known::default()
            };
        }
    }
    (whole, absent)
}

async fn sigkill_during_tenant_changes(backend: Backend) {
    let started = Instant::now();
    let pages = Pages::start().await;
    let page = pages.url("/pages/article.html");
    let dir = tempfile::tempdir().expect("temp dir");
    // The checks try many keys of absent tenants on purpose (401 each): the throttle of
    // failed authentications, which is per address, would answer this one client 429.
    let launch = Launch::new(dir.path(), &backend).set("server.auth_failure_limit", json!(0));
    let ledger: Ledger = Arc::default();
    let (mut whole, mut absent) = (0, 0);
    for round in 0..ROUNDS {
        let rt = Riptide::start(&launch).await;
        let (w, a) = check_whole_or_absent(&rt, &ledger, &page).await;
        whole += w;
        absent += a;
        let admin = Admin::of(&rt);
        let workers: Vec<_> = (0..WORKERS)
            .map(|n| tokio::spawn(worker(admin.clone(), ledger.clone(), round, n)))
            .collect();
        tokio::time::sleep(Duration::from_millis(random_in(
            KILL_AFTER_MS.0,
            KILL_AFTER_MS.1,
        )))
        .await;
        rt.sigkill();
        for w in workers {
            w.await.expect("a client failed");
        }
    }
    let rt = Riptide::start(&launch).await;
    let (w, a) = check_whole_or_absent(&rt, &ledger, &page).await;
    whole += w;
    absent += a;
    let ledger = ledger.lock().unwrap();
    // That the kills hit work in progress: on a loaded machine (the whole suite in
    // parallel) a client may create nothing in a 150 ms round, so half of one per client
    // and round is asked for (seen: 45 ids of which fewer than 36 created, once).
    let created = ledger.values().filter(|k| k.created).count();
    assert!(
        created >= ROUNDS * WORKERS / 2,
        "the clients got work done before the kills: {created} created of {} ids",
        ledger.len()
    );
    println!(
        "crash consistency on {}: {} tenant ids, {whole} whole and {absent} absent checks, {:?}",
        backend.kind(),
        ledger.len(),
        started.elapsed()
    );
}
