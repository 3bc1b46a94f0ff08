//! The managers `run` builds over the one store, and how they are plugged together.

use crate::support::TestServer;

#[tokio::test]
async fn multi_tenancy_off_creates_the_default_tenant_and_on_does_not() {
    let server = TestServer::start_with(|c| c.persistence.tenant.enabled = false).await;
    let tenant = server
        .state
        .tenants
        .get_tenant("default")
        .await
        .expect("read");
    assert!(tenant.is_some());
    server.stop().await.expect("clean shutdown");

    let server = TestServer::start().await;
    let tenant = server
        .state
        .tenants
        .get_tenant("default")
        .await
        .expect("read");
    assert!(tenant.is_none());
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn state_and_coordination_run_together() {
    let server = TestServer::start().await;
    let report = server.state.state_manager.current_state().await;
    assert_eq!(report.config.generation, 1);
    assert!(!report.hot_reload);
    // The state manager reports through coordination, which lists this instance.
    let id = server.state.sync.id().to_owned();
    assert_eq!(report.instance_id.as_deref(), Some(id.as_str()));
    assert!(
        report.instances.iter().any(|i| i.id == id && i.alive),
        "{:?}",
        report.instances
    );
    server.stop().await.expect("clean shutdown");
}
