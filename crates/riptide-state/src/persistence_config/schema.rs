//! [`PersistenceSchema`]: the `persistence` section of a configuration document checked
//! against [`PersistenceConfig`], for hot reload. Which keys apply live is
//! [`PERSISTENCE_LIVE`]; the rest are [`PERSISTENCE_RESTART_ONLY`].

use serde_json::Value;

use super::PersistenceConfig;
use crate::config_schema::{ConfigIssue, ConfigSchema, deserialize_located};
use riptide_store::error::InvalidInput;

/// The top-level section holding [`PersistenceConfig`].
pub const PERSISTENCE_SECTION: &str = "persistence";

/// Keys of the `persistence` section a running process applies without a restart: the
/// cache's live settings ([`riptide_cache::LIVE_CACHE_KEYS`], applied by
/// `PersistentCacheManager::apply_live_settings`), the tenant manager's
/// ([`riptide_tenant::LIVE_TENANT_KEYS`]: plans, billing, default plan;
/// `TenantManager::prepare_live_settings` then `apply_live_settings`), and the debounce
/// the reloader reads itself on each change. The embedding service hands each new
/// generation to those managers.
pub const PERSISTENCE_LIVE: &[&str] = &[
    "persistence.cache.default_ttl_seconds",
    "persistence.cache.enable_compression",
    "persistence.cache.compression_threshold_bytes",
    "persistence.cache.compression_algorithm",
    "persistence.cache.zstd_level",
    "persistence.cache.enable_warming",
    "persistence.tenant.enable_billing",
    "persistence.tenant.default_plan",
    "persistence.tenant.plans",
    "persistence.state.reload_debounce_ms",
];

/// Keys of the `persistence` section that take effect only at the next start: every key
/// but those of [`PERSISTENCE_LIVE`]. The managers read them when they are built (store
/// connections, L1 size, secrets, directories, intervals...).
pub const PERSISTENCE_RESTART_ONLY: &[&str] = &[
    "persistence.redis",
    "persistence.embedded",
    "persistence.cache.max_entry_size_bytes",
    "persistence.cache.warming_concurrency",
    "persistence.cache.warming_refresh_before_expiry_seconds",
    "persistence.cache.l1_capacity_bytes",
    "persistence.cache.l1_max_staleness_ms",
    "persistence.cache.l1_tenant_share_percent",
    "persistence.cache.load_timeout_ms",
    "persistence.cache.default_tenant_budget_bytes",
    "persistence.cache.max_tracked_tenants",
    "persistence.tenant.enabled",
    "persistence.tenant.isolation_level",
    "persistence.tenant.usage_flush_interval_ms",
    "persistence.tenant.usage_buffer_max",
    "persistence.tenant.purge_billing_history_on_delete",
    "persistence.tenant.bill_freeze_delay_ms",
    "persistence.tenant.audit_retention_days",
    "persistence.tenant.api_key_prefix",
    "persistence.tenant.api_key_rotation_overlap_seconds",
    "persistence.tenant.record_cache_ttl_ms",
    "persistence.tenant.jwt_leeway_seconds",
    "persistence.tenant.jwt_audience",
    "persistence.tenant.api_key_pepper",
    "persistence.tenant.master_key",
    "persistence.tenant.secrets_dir",
    "persistence.tenant.max_metric_tenants",
    "persistence.sync",
    "persistence.state.enable_hot_reload",
    "persistence.state.config_watch_paths",
    "persistence.state.checkpoint_interval_seconds",
    "persistence.state.checkpoint_dir",
    "persistence.state.checkpoint_retention",
    "persistence.state.checkpoint_on_shutdown",
    "persistence.state.session_ttl_seconds",
    "persistence.state.session_memory_limit_bytes",
    "persistence.state.spill_dir",
    "persistence.state.max_sessions_per_tenant",
    "persistence.state.shutdown_timeout_ms",
];

/// The default schema: an optional `persistence` section that must deserialize into
/// [`PersistenceConfig`] and pass its `validate()`. Other top-level sections are
/// accepted as they are (the service validates them with its own schema).
#[derive(Debug, Clone, Copy, Default)]
pub struct PersistenceSchema;

impl PersistenceSchema {
    /// The `persistence` section of `doc` as a typed config; absent or `null` gives the
    /// defaults. Errors name the key as `persistence.<section>.<field>`.
    pub fn parse(doc: &Value) -> Result<PersistenceConfig, ConfigIssue> {
        let section = match doc.get(PERSISTENCE_SECTION) {
            None | Some(Value::Null) => return Ok(PersistenceConfig::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err(ConfigIssue::new(PERSISTENCE_SECTION, "must be a mapping")),
        };
        let cfg: PersistenceConfig = deserialize_located(section, PERSISTENCE_SECTION)?;
        cfg.validate().map_err(|e| match e {
            InvalidInput::Config { key, reason } => {
                ConfigIssue::new(format!("{PERSISTENCE_SECTION}.{key}"), reason)
            }
            other => ConfigIssue::new(PERSISTENCE_SECTION, other.to_string()),
        })?;
        Ok(cfg)
    }
}

impl ConfigSchema for PersistenceSchema {
    fn validate(&self, doc: &Value) -> Result<(), ConfigIssue> {
        Self::parse(doc).map(drop)
    }

    fn restart_only(&self) -> Vec<String> {
        PERSISTENCE_RESTART_ONLY
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use std::sync::Arc;

    use crate::config_schema::{SchemaSet, is_restart_only, is_under};

    fn issue(doc: Value) -> ConfigIssue {
        PersistenceSchema.validate(&doc).expect_err("refused")
    }

    #[test]
    fn absent_or_empty_sections_are_the_defaults() {
        assert_eq!(
            PersistenceSchema::parse(&json!({"server": {"listen": 1}})).expect("ok"),
            PersistenceConfig::default()
        );
        assert!(
            PersistenceSchema
                .validate(&json!({"persistence": null}))
                .is_ok()
        );
        let cfg = PersistenceSchema::parse(&json!({"persistence": {"cache": {"zstd_level": 7}}}))
            .expect("ok");
        assert_eq!(cfg.cache.zstd_level, 7);
        assert_eq!(issue(json!({"persistence": 3})).key, "persistence");
    }

    #[test]
    fn range_errors_name_the_key_under_persistence() {
        let i = issue(json!({"persistence": {"cache": {"zstd_level": 99}}}));
        assert_eq!(i.key, "persistence.cache.zstd_level");
        assert!(i.reason.contains("between 1 and 19"), "{i}");
    }

    #[test]
    fn serde_errors_are_located() {
        let i = issue(
            json!({"persistence": {"redis": {"pool_size": 2}, "cache": {"zstd_level": "high"}}}),
        );
        assert_eq!(i.key, "persistence.cache.zstd_level");
        assert!(i.reason.contains("invalid type"), "{i}");

        let i = issue(json!({"persistence": {"cache": {"ttl_typo": 1, "zstd_level": 3}}}));
        assert_eq!(i.key, "persistence.cache.ttl_typo");
        assert!(i.reason.contains("unknown field"), "{i}");

        let i = issue(json!({"persistence": {"cachee": {}}}));
        assert_eq!(i.key, "persistence.cachee");

        let i = issue(json!({"persistence": {"cache": {"compression_algorithm": "gzip"}}}));
        assert_eq!(i.key, "persistence.cache.compression_algorithm");
    }

    #[test]
    fn two_bad_keys_name_one_of_them() {
        let i = issue(json!({"persistence": {"cache": {"bad_a": 1}, "redis": {"bad_b": 1}}}));
        assert!(
            i.key == "persistence.cache.bad_a" || i.key == "persistence.redis.bad_b",
            "{i}"
        );
    }

    #[test]
    fn restart_only_matches_prefixes_at_segment_boundaries() {
        let p = PersistenceSchema.restart_only();
        assert!(is_restart_only("persistence.redis.pool_size", &p));
        assert!(is_restart_only("persistence.redis", &p));
        assert!(is_restart_only("persistence", &p));
        assert!(!is_restart_only("persistence.redis_extra", &p));
        assert!(is_restart_only("persistence.cache.l1_capacity_bytes", &p));
        assert!(!is_restart_only("persistence.cache.zstd_level", &p));
        assert!(!is_restart_only("persistence.state.reload_debounce_ms", &p));
        assert!(!is_restart_only(
            "persistence.tenant.plans.free.quotas.operations_per_minute",
            &p
        ));
    }

    fn leaves(node: &Value, path: String, out: &mut Vec<String>) {
        match node {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    leaves(child, format!("{path}.{key}"), out);
                }
            }
            _ => out.push(path),
        }
    }

    #[test]
    fn every_key_is_either_live_or_restart_only() {
        let restart = PersistenceSchema.restart_only();
        let doc = serde_json::to_value(PersistenceConfig::default()).expect("serialize");
        let mut keys = Vec::new();
        leaves(&doc, PERSISTENCE_SECTION.to_owned(), &mut keys);
        assert!(keys.len() > 50, "{keys:?}");
        for key in &keys {
            let live = PERSISTENCE_LIVE.iter().any(|l| is_under(key, l));
            assert_eq!(is_restart_only(key, &restart), !live, "{key}");
        }
        for live in PERSISTENCE_LIVE {
            assert!(
                keys.iter().any(|k| is_under(k, live)),
                "{live} is a real key"
            );
        }
        let live_of = |section: &str, names: &[&str]| {
            names
                .iter()
                .map(|n| format!("persistence.{section}.{n}"))
                .collect::<Vec<_>>()
        };
        let managers = live_of("cache", &riptide_cache::LIVE_CACHE_KEYS)
            .into_iter()
            .chain(live_of("tenant", &riptide_tenant::LIVE_TENANT_KEYS));
        for key in managers {
            assert!(PERSISTENCE_LIVE.contains(&key.as_str()), "{key}");
        }
    }

    struct NoFoo;
    impl ConfigSchema for NoFoo {
        fn validate(&self, doc: &Value) -> Result<(), ConfigIssue> {
            match doc.get("foo") {
                Some(_) => Err(ConfigIssue::new("foo", "not allowed")),
                None => Ok(()),
            }
        }
        fn restart_only(&self) -> Vec<String> {
            vec!["server.listen".into(), "persistence.redis".into()]
        }
    }

    #[test]
    fn a_schema_set_checks_all_and_unions_restart_keys() {
        let set = SchemaSet(vec![Arc::new(NoFoo), Arc::new(PersistenceSchema)]);
        assert_eq!(
            set.validate(&json!({"foo": 1})).expect_err("foo").key,
            "foo"
        );
        assert_eq!(
            set.validate(&json!({"persistence": {"x": 1}}))
                .expect_err("x")
                .key,
            "persistence.x"
        );
        let keys = set.restart_only();
        assert!(keys.contains(&"server.listen".to_owned()));
        assert_eq!(keys.iter().filter(|k| *k == "persistence.redis").count(), 1);
    }
}
