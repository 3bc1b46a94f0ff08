//! Store sanity on the real binary and the real router: an `allkeys-*` Redis is refused
//! at start (exit 1) unless allowed, a Redis that comes back from a reconnect with such a
//! policy makes `/readyz` 503, and a wiped or replaced store makes `/readyz` 503
//! `store_identity_lost` with `store_identity_lost 1`, on Redis and on the embedded store.

use std::time::{Duration, Instant};

use riptide_persistence::store::Durability;
use riptide_persistence::store::identity::identity_key;
use riptide_test_support::start_redis_server;

use crate::binary::{Served, free_port, riptide};
use crate::support::{TestServer, in_dir, json_of};

/// Polls `/readyz` until it answers `status` (and, for an error, `code`).
async fn wait_readyz(server: &TestServer, status: u16, code: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = server.get("/readyz").await;
        let seen = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if seen == status && code.is_none_or(|c| body["error"]["code"] == c) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never answered {status} {code:?}; last: {seen} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_binary_refuses_an_allkeys_policy_with_exit_1_naming_policy_and_node() {
    let redis = start_redis_server();
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .expect("set policy");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = riptide(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .env("REDIS_URL", redis.url())
        .env("RIPTIDE_DATA_DIR", dir.path().join("data"))
        .output()
        .expect("run riptide");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let node = format!(
        "127.0.0.1:{} has maxmemory-policy allkeys-lru",
        redis.port()
    );
    assert!(text.contains(&node), "{text}");
    assert!(text.contains("allow_evicting_policy"), "{text}");
    // Refused before anything was written: no identity record.
    let key = identity_key("riptide");
    assert!(
        redis.command(&["GET", &key]).expect("GET").is_empty(),
        "identity written by a refused start"
    );
}

#[tokio::test]
async fn allowed_it_warns_then_a_flushall_makes_readyz_503_with_the_metric() {
    let redis = start_redis_server();
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"])
        .expect("set policy");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = "persistence:\n  redis:\n    allow_evicting_policy: true\n";
    let served = Served::start(dir.path(), config, &[("REDIS_URL", &redis.url())]).await;
    served
        .wait_for_log("persistence.redis.allow_evicting_policy is true")
        .await;
    let log = served.log();
    assert!(log.contains("allkeys-random"), "{log}");
    // The harness's servers have neither AOF nor RDB.
    assert!(log.contains("neither AOF nor RDB"), "{log}");

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", served.port);
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    json_of(get("/readyz").await.expect("readyz"), 200).await;
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nstore_persistence_enabled 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nstore_identity_lost 0\n"), "{metrics}");

    redis.command(&["FLUSHALL"]).expect("FLUSHALL");
    let body = json_of(get("/readyz").await.expect("readyz"), 503).await;
    assert_eq!(body["error"]["code"], "store_identity_lost", "{body}");
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nstore_identity_lost 1\n"), "{metrics}");
    served.wait_for_log("store identity lost").await;
    // Liveness is not readiness: the process is not restarted for it.
    json_of(get("/healthz").await.expect("healthz"), 200).await;
    served.terminate();
}

#[tokio::test]
async fn a_restart_after_a_wipe_adopts_the_new_store() {
    let redis = start_redis_server();
    let url = redis.url();
    let server = TestServer::start_with(|c| c.persistence.redis.url = url.clone()).await;
    let first = server.state.store_sanity.identity().clone();
    wait_readyz(&server, 200, None).await;

    redis.command(&["FLUSHALL"]).expect("FLUSHALL");
    wait_readyz(&server, 503, Some("store_identity_lost")).await;
    // Another instance's record does not make it ready again: it is another store.
    let key = identity_key(server.state.store().key_prefix());
    server
        .state
        .store()
        .set(
            &key,
            br#"{"id":"someone-else","created_ms":1}"#,
            None,
            Durability::Durable,
        )
        .await
        .expect("write another identity");
    wait_readyz(&server, 503, Some("store_identity_lost")).await;
    assert_eq!(server.state.store_sanity.identity(), &first);
    // Shutdown may fail a step on a store that lost its records; that is not this test.
    let _ = server.stop().await;

    let server = TestServer::start_with(|c| c.persistence.redis.url = url.clone()).await;
    assert_eq!(server.state.store_sanity.identity().id, "someone-else");
    wait_readyz(&server, 200, None).await;
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_redis_without_persistence_restarted_is_not_ready() {
    let redis = start_redis_server();
    let url = redis.url();
    let server = TestServer::start_with(|c| c.persistence.redis.url = url).await;
    wait_readyz(&server, 200, None).await;
    // The issue's case: no AOF, no RDB, a restart; every tenant and key is gone.
    redis.restart();
    wait_readyz(&server, 503, Some("store_identity_lost")).await;
    let _ = server.stop().await;
}

#[tokio::test]
async fn an_evicting_policy_seen_after_a_reconnect_makes_readyz_503_until_fixed() {
    let redis = start_redis_server();
    let url = redis.url();
    let server = TestServer::start_with(|c| c.persistence.redis.url = url).await;
    wait_readyz(&server, 200, None).await;

    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"])
        .expect("set policy");
    // Nothing checks without a reconnect...
    tokio::time::sleep(Duration::from_millis(300)).await;
    json_of(server.get("/readyz").await, 200).await;
    // ...and a dropped connection is one.
    redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .expect("kill pubsub clients");
    wait_readyz(&server, 503, Some("store_evicting_policy")).await;

    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "volatile-lfu"])
        .expect("set policy");
    redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .expect("kill pubsub clients");
    wait_readyz(&server, 200, None).await;
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_embedded_store_keeps_its_identity_across_restarts() {
    let data = tempfile::tempdir().expect("data dir");
    let server = start_embedded(data.path()).await;
    let first = server.state.store_sanity.identity().clone();
    wait_readyz(&server, 200, None).await;
    server.stop().await.expect("clean shutdown");

    let server = start_embedded(data.path()).await;
    assert_eq!(server.state.store_sanity.identity(), &first);
    wait_readyz(&server, 200, None).await;

    // A record gone from the embedded store is noticed the same way.
    let key = identity_key(server.state.store().key_prefix());
    assert_eq!(
        server.state.store().delete(&[key]).await.expect("delete"),
        1
    );
    wait_readyz(&server, 503, Some("store_identity_lost")).await;
    let _ = server.stop().await;
}

/// The service on the embedded store in `dir`, which outlives it.
async fn start_embedded(dir: &std::path::Path) -> TestServer {
    let mut config = riptide_api::config::AppConfig::default();
    in_dir(&mut config, dir);
    config.validate().expect("valid");
    TestServer::start_config(config, tempfile::tempdir().expect("spare dir")).await
}
