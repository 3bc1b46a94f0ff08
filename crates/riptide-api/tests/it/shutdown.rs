//! Graceful shutdown and startup failures of `run`.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::support::{TestServer, json_of};

#[tokio::test]
async fn run_returns_ok_after_the_shutdown_signal_and_stops_listening() {
    let server = TestServer::start().await;
    json_of(server.get("/healthz").await, 200).await;
    let addr = server.addr;
    server.stop().await.expect("clean shutdown");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let after = client.get(format!("http://{addr}/healthz")).send().await;
    assert!(after.is_err(), "still serving after shutdown: {after:?}");
}

#[tokio::test]
async fn a_restarted_service_reopens_its_data_dir() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..2 {
        let dir = data_dir.path().to_owned();
        let server = TestServer::start_with(|c| c.persistence.embedded.data_dir = dir).await;
        json_of(server.get("/readyz").await, 200).await;
        server.stop().await.expect("clean shutdown");
    }
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_fails_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A file where the data directory should be.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").expect("write file");
    let mut config = riptide_api::config::AppConfig::default();
    config.persistence.redis.url = blocker.display().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let result = riptide_api::run(config, listener, std::future::pending()).await;
    let err = result.expect_err("store cannot open");
    assert!(format!("{err:#}").contains("opening the store"), "{err:#}");
}

#[tokio::test]
async fn the_persistence_shutdown_runs_after_the_drain_and_its_failures_fail_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").expect("write file");
    let checkpoints = blocker.join("checkpoints");
    let server = TestServer::start_with(|c| {
        c.persistence.state.checkpoint_on_shutdown = true;
        c.persistence.state.checkpoint_dir = checkpoints;
    })
    .await;
    json_of(server.get("/healthz").await, 200).await;
    let err = server
        .stop()
        .await
        .expect_err("the final checkpoint cannot be written");
    assert!(format!("{err:#}").contains("final checkpoint"), "{err:#}");
}

#[tokio::test]
async fn a_clean_shutdown_writes_the_final_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let at = checkpoints.clone();
    let server = TestServer::start_with(|c| {
        c.persistence.state.checkpoint_on_shutdown = true;
        c.persistence.state.checkpoint_dir = at;
    })
    .await;
    let state = server.state.state_manager.clone();
    server.stop().await.expect("clean shutdown");
    let listed = state.list_checkpoints().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].valid);
}
