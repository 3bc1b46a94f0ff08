//! Is the Redis under us safe to keep records in? Checked at start and after reconnects.
//!
//! Tenants, API keys, usage and the store identity are keys without a TTL. An
//! `allkeys-*` `maxmemory-policy` lets Redis evict them under memory pressure, which
//! looks to every client like a deleted tenant: such a node is refused unless
//! `persistence.redis.allow_evicting_policy` says to warn instead. `noeviction` and
//! `volatile-*` only ever evict keys with a TTL (cache entries), so they are fine.
//!
//! A node with neither AOF nor RDB loses everything when it restarts: that is a warning
//! and `store_persistence_enabled 0`, not a refusal (a test or a throwaway cache may
//! want exactly that). A node that refuses `CONFIG` (managed Redis often renames it) is
//! a warning too: we cannot tell, so we say so and go on.

use crate::{NodeSettings, Store, StoreError, StoreResult};

/// Gauge: 1 when every node that answered has AOF or RDB on, 0 when one has neither.
pub const PERSISTENCE_GAUGE: &str = "store_persistence_enabled";

/// True for a policy that may evict keys without a TTL.
pub fn evicts_keys_without_ttl(policy: &str) -> bool {
    policy.trim().to_ascii_lowercase().starts_with("allkeys-")
}

/// What a check found that was not fatal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Nodes with an evicting policy that were let through by `allow_evicting_policy`:
    /// `(node, policy)`.
    pub evicting_allowed: Vec<(String, String)>,
    /// Nodes with neither AOF nor RDB.
    pub without_persistence: Vec<String>,
    /// Nodes that would not say: `(node, reason)`.
    pub unknown: Vec<(String, String)>,
}

/// Reads every node's settings, logs what is unsafe and sets [`PERSISTENCE_GAUGE`].
///
/// Fails with [`StoreError::Config`], naming the node and the policy, when a node's
/// policy can evict keys without a TTL and `allow_evicting_policy` is false; with the
/// store's error when it cannot be reached.
pub async fn check_nodes(
    store: &dyn Store,
    allow_evicting_policy: bool,
) -> StoreResult<NodeReport> {
    let nodes = store.node_settings().await?;
    let report = judge(&nodes, allow_evicting_policy)?;
    for (node, policy) in &report.evicting_allowed {
        tracing::warn!(
            store.node = %node,
            maxmemory_policy = %policy,
            "redis may evict keys without a TTL (tenants, API keys, usage); \
             running anyway because persistence.redis.allow_evicting_policy is true"
        );
    }
    for node in &report.without_persistence {
        tracing::warn!(
            store.node = %node,
            "redis has neither AOF nor RDB persistence: a restart loses every tenant and key"
        );
    }
    for (node, reason) in &report.unknown {
        tracing::warn!(
            store.node = %node,
            error = %reason,
            "cannot read redis maxmemory-policy and persistence (CONFIG GET refused); \
             check them yourself: see docs/OPERATIONS.md, Running Redis safely"
        );
    }
    if report.unknown.len() < nodes.len() || nodes.is_empty() {
        let enabled = report.without_persistence.is_empty();
        metrics::gauge!(PERSISTENCE_GAUGE).set(if enabled { 1.0 } else { 0.0 });
    }
    Ok(report)
}

/// The decision, without side effects.
fn judge(nodes: &[NodeSettings], allow_evicting_policy: bool) -> StoreResult<NodeReport> {
    let mut report = NodeReport::default();
    let mut refused = Vec::new();
    for n in nodes {
        if let Some(reason) = &n.refused {
            report.unknown.push((n.node.clone(), reason.clone()));
        }
        if let Some(policy) = n
            .maxmemory_policy
            .as_deref()
            .filter(|p| evicts_keys_without_ttl(p))
        {
            if allow_evicting_policy {
                report
                    .evicting_allowed
                    .push((n.node.clone(), policy.to_owned()));
            } else {
                refused.push(format!("{} has maxmemory-policy {policy}", n.node));
            }
        }
        if n.aof == Some(false) && n.rdb == Some(false) {
            report.without_persistence.push(n.node.clone());
        }
    }
    if refused.is_empty() {
        return Ok(report);
    }
    Err(StoreError::Config(format!(
        "redis {}, which can evict keys without a TTL (tenants, API keys, usage): \
         set maxmemory-policy to noeviction or a volatile-* policy, or set \
         persistence.redis.allow_evicting_policy: true to run anyway",
        refused.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(policy: &str, aof: bool, rdb: bool) -> NodeSettings {
        NodeSettings {
            node: "127.0.0.1:1".into(),
            maxmemory_policy: Some(policy.into()),
            aof: Some(aof),
            rdb: Some(rdb),
            refused: None,
        }
    }

    #[test]
    fn only_allkeys_policies_evict_keys_without_ttl() {
        for p in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "ALLKEYS-LRU",
        ] {
            assert!(evicts_keys_without_ttl(p), "{p}");
        }
        for p in [
            "noeviction",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert!(!evicts_keys_without_ttl(p), "{p}");
        }
    }

    #[test]
    fn an_evicting_policy_is_refused_naming_node_and_policy_unless_allowed() {
        let nodes = [node("allkeys-lfu", true, false)];
        let err = judge(&nodes, false).unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:1 has maxmemory-policy allkeys-lfu"),
            "{err}"
        );
        let report = judge(&nodes, true).unwrap();
        assert_eq!(
            report.evicting_allowed,
            vec![("127.0.0.1:1".into(), "allkeys-lfu".into())]
        );
        assert!(report.without_persistence.is_empty());
    }

    #[test]
    fn no_aof_and_no_rdb_is_reported() {
        let report = judge(&[node("noeviction", false, false)], false).unwrap();
        assert_eq!(report.without_persistence, vec!["127.0.0.1:1".to_owned()]);
        let report = judge(&[node("noeviction", false, true)], false).unwrap();
        assert!(report.without_persistence.is_empty());
    }
}
