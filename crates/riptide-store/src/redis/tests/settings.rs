//! Reading each node's maxmemory-policy and persistence, and the checks on them, against
//! a real server and every master of a real Cluster.

use riptide_test_support::{redis_cluster, start_redis_server};

use super::*;
use crate::clock::ManualClock;
use crate::identity::{Adopted, IdentityCheck, StoreIdentity, identity_key};
use crate::node_check::check_nodes;

#[tokio::test]
async fn a_standalone_server_reports_its_policy_and_persistence() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    let node = format!("127.0.0.1:{}", server.port());

    // The harness runs servers with neither AOF nor RDB.
    let settings = store.node_settings().await.expect("settings");
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0].node, node);
    assert_eq!(settings[0].maxmemory_policy.as_deref(), Some("noeviction"));
    assert_eq!(
        (settings[0].aof, settings[0].rdb),
        (Some(false), Some(false))
    );
    let report = check_nodes(&store, false).await.expect("noeviction passes");
    assert_eq!(report.without_persistence, vec![node.clone()]);

    server
        .command(&["CONFIG", "SET", "appendonly", "yes"])
        .expect("AOF on");
    let report = check_nodes(&store, false).await.expect("passes");
    assert!(report.without_persistence.is_empty(), "{report:?}");

    server
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .expect("policy");
    let err = check_nodes(&store, false)
        .await
        .expect_err("allkeys-lru refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(
        text.contains(&format!("{node} has maxmemory-policy allkeys-lru")),
        "{text}"
    );
    let report = check_nodes(&store, true).await.expect("allowed");
    assert_eq!(
        report.evicting_allowed,
        vec![(node.clone(), "allkeys-lru".to_owned())]
    );

    server
        .command(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"])
        .expect("policy");
    check_nodes(&store, false)
        .await
        .expect("volatile-lru passes");
}

#[tokio::test]
async fn a_renamed_config_command_is_reported_not_fatal() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    // What managed services do; ACL takes CONFIG away from the default user.
    server
        .command(&["ACL", "SETUSER", "default", "-config"])
        .expect("ACL");
    let settings = store.node_settings().await.expect("settings");
    assert_eq!(settings[0].maxmemory_policy, None);
    assert!(settings[0].refused.is_some(), "{settings:?}");
    let report = check_nodes(&store, false)
        .await
        .expect("unknown is not fatal");
    assert_eq!(report.unknown.len(), 1, "{report:?}");
}

#[tokio::test]
async fn every_cluster_master_is_checked() {
    let store = cluster().await;
    let settings = store.node_settings().await.expect("settings");
    let mut nodes: Vec<String> = redis_cluster()
        .nodes()
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_owned())
        .collect();
    nodes.sort();
    let seen: Vec<String> = settings.iter().map(|s| s.node.clone()).collect();
    assert_eq!(seen, nodes);
    for s in &settings {
        assert_eq!(s.maxmemory_policy.as_deref(), Some("noeviction"), "{s:?}");
        assert_eq!((s.aof, s.rdb), (Some(false), Some(false)), "{s:?}");
    }
}

#[tokio::test]
async fn the_identity_is_adopted_once_and_its_loss_seen() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    let clock = ManualClock::new(1_000);
    let (first, adopted) = StoreIdentity::adopt(&store, &*clock).await.expect("adopt");
    assert_eq!(adopted, Adopted::Created);
    assert_eq!(first.created_ms, 1_000);
    let (again, adopted) = StoreIdentity::adopt(&store, &*clock).await.expect("adopt");
    assert_eq!((adopted, &again), (Adopted::Found, &first));
    assert_eq!(first.check(&store).await.unwrap(), IdentityCheck::Same);

    server.command(&["FLUSHALL"]).expect("FLUSHALL");
    assert_eq!(first.check(&store).await.unwrap(), IdentityCheck::Missing);

    let (other, _) = StoreIdentity::adopt(&store, &*clock).await.expect("adopt");
    assert_ne!(other.id, first.id);
    assert_eq!(
        first.check(&store).await.unwrap(),
        IdentityCheck::Replaced(other.id.clone())
    );
    // The record has no TTL: nothing expires it.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(identity_key(store.key_prefix()))
        .query_async(&mut store.pool.get())
        .await
        .expect("PTTL");
    assert_eq!(ttl, -1);
}
