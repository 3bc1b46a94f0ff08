//! Redis goes away: readiness says 503 `store_unavailable`, liveness stays 200, and both
//! recover when Redis is back with its data.

use std::time::{Duration, Instant};

use riptide_test_support::start_redis_server;

use crate::support::{TestServer, json_of};

#[tokio::test]
async fn readyz_is_503_while_redis_is_down_and_recovers() {
    let redis = start_redis_server();
    let url = redis.url();
    let server = TestServer::start_with(|c| {
        c.persistence.redis.url = url;
        c.persistence.redis.connection_timeout_ms = 500;
        c.persistence.redis.command_timeout_ms = 500;
    })
    .await;
    let body = json_of(server.get("/readyz").await, 200).await;
    assert_eq!(body["store"], "redis");

    // A Redis that keeps its data (an RDB snapshot, loaded on restart): one that comes back
    // empty is a lost store, 503 `store_identity_lost` (see `store_sanity.rs`).
    redis.command(&["SAVE"]).expect("SAVE");
    redis.kill();
    let body = json_of(server.get("/readyz").await, 503).await;
    assert_eq!(body["error"]["code"], "store_unavailable");
    json_of(server.get("/healthz").await, 200).await;

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = server.get("/readyz").await;
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never recovered: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await.expect("clean shutdown");
}
