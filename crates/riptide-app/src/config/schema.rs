//! The service's [`ConfigSchema`]: what a reloaded configuration file must be, and which
//! of its keys only take effect at the next start.
//!
//! A reloaded document is resolved exactly like the file read at start: deserialized
//! into the whole [`AppConfig`] (unknown keys and wrong types are refused with their
//! dotted path), the same environment variables and flags laid over it, the derived
//! defaults applied, then [`AppConfig::validate`]. So a reload is refused for exactly
//! what would stop a restart with the same file.
//!
//! Live: the keys of [`live_keys`] (applied by `riptide_api::live_config`): the log level,
//! the cache's TTL, compression and warming switch, the tenant plans (quotas, burst,
//! grants, prices), billing and the default plan, and the warming schedule and lists.
//! Everything else (the server, the log format, the store, L1 and limits, multi-tenancy,
//! secrets, state directories, sync, extraction, admin, metrics) is listed as
//! restart-only, so the reload reports such changes as waiting for the next start
//! instead of pretending to apply them. The list includes every prefix
//! [`PersistenceSchema`] names.
//!
//! This schema is used alone rather than in a `SchemaSet` with [`PersistenceSchema`]: it
//! already checks the `persistence` section (as part of [`AppConfig`], with the same
//! `validate`), and it does so after the environment is laid over the file, where
//! [`PersistenceSchema`] would judge the file's own values, so a file value that a
//! variable replaces would stop the state manager although the service accepted it.

use riptide_persistence::config::{PERSISTENCE_LIVE, PersistenceSchema};
use riptide_persistence::state::config_schema::{ConfigIssue, ConfigSchema, deserialize_located};
use serde_json::Value;

use super::AppConfig;
use super::error::ConfigError;
use super::provenance::{Explicit, Provenance};

/// Keys of the service's own sections a reload applies to the running service: the log
/// level, and every key of `warming` but the access counter's bounds
/// (`top_k_per_tenant`, `max_tracked_tenants`).
const SERVICE_LIVE: &[&str] = &[
    "log.level",
    "warming.startup_top_n",
    "warming.interval_seconds",
    "warming.analytics_top_n",
    "warming.tenant_top_n",
    "warming.persist_interval_ms",
    "warming.max_jobs",
    "warming.job_retention_seconds",
    "warming.max_job_failures",
    "warming.max_job_urls",
    "warming.manual",
];

/// Keys a reload applies to the running service, each with everything under it: the
/// persistence layer's ([`PERSISTENCE_LIVE`]; the watcher reads `reload_debounce_ms`
/// itself) and the service's own.
pub fn live_keys() -> impl Iterator<Item = &'static str> {
    PERSISTENCE_LIVE.iter().chain(SERVICE_LIVE).copied()
}

/// The key of [`live_keys`] that is `key` or holds it
/// (`persistence.tenant.plans.free.burst` → `persistence.tenant.plans`), if any.
pub fn live_key_of(key: &str) -> Option<&'static str> {
    live_keys().find(|live| {
        key == *live
            || key
                .strip_prefix(live)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Validates reloaded documents as whole [`AppConfig`]s, resolved with the
/// [`Provenance`] of the configuration the service started with.
#[derive(Debug, Clone, Default)]
pub struct ServiceSchema {
    provenance: Provenance,
}

impl ServiceSchema {
    /// A schema resolving documents with `provenance` (the variables and flags the
    /// service started with).
    pub fn new(provenance: Provenance) -> Self {
        Self { provenance }
    }

    /// The variables and flags laid over every document.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The configuration `doc` stands for: deserialized, with the start's variables and
    /// flags and the derived defaults, validated. Errors name the dotted key.
    pub fn resolve(&self, doc: &Value) -> Result<AppConfig, ConfigIssue> {
        let cfg: AppConfig = deserialize_located(doc, "")?;
        self.provenance
            .resolve(cfg, &Explicit::of_json(doc))
            .map_err(|e| match e {
                ConfigError::Invalid { key, reason, .. } => ConfigIssue::new(key, reason),
                ConfigError::Env { key, .. } | ConfigError::SecretEnv { key, .. } => {
                    ConfigIssue::new(key, e.to_string())
                }
                other => ConfigIssue::new("", other.to_string()),
            })
    }
}

impl ConfigSchema for ServiceSchema {
    fn validate(&self, doc: &Value) -> Result<(), ConfigIssue> {
        self.resolve(doc).map(drop)
    }

    fn restart_only(&self) -> Vec<String> {
        restart_only_prefixes()
    }
}

/// Every key of [`AppConfig`] but [`live_keys`], as the shortest prefixes that contain
/// no live key (`server`, `log.format`, `persistence.cache`, ...), plus those of
/// [`PersistenceSchema`]. Derived from the serialized defaults, so a new key is
/// restart-only until it is made live here.
pub fn restart_only_prefixes() -> Vec<String> {
    let defaults = serde_json::to_value(AppConfig::default()).unwrap_or(Value::Null);
    let mut prefixes = PersistenceSchema.restart_only();
    collect_restart_only(&defaults, "", &mut prefixes);
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

fn collect_restart_only(node: &Value, path: &str, out: &mut Vec<String>) {
    if live_keys().any(|live| live == path) {
        return;
    }
    let holds_live = path.is_empty()
        || live_keys().any(|key| {
            key.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.'))
        });
    if !holds_live {
        out.push(path.to_owned());
        return;
    }
    if let Value::Object(map) = node {
        for (key, child) in map {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            collect_restart_only(child, &child_path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use riptide_persistence::state::config_schema::is_restart_only;
    use serde_json::json;

    use super::*;
    use crate::config::Overrides;

    fn leaves(node: &Value, path: String, out: &mut Vec<String>) {
        match node {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    leaves(child, child_path, out);
                }
            }
            _ => out.push(path),
        }
    }

    #[test]
    fn every_key_but_the_live_ones_is_restart_only() {
        let prefixes = ServiceSchema::default().restart_only();
        let mut keys = Vec::new();
        leaves(
            &serde_json::to_value(AppConfig::default()).expect("serialize"),
            String::new(),
            &mut keys,
        );
        assert!(keys.len() > 60, "{keys:?}");
        for key in &keys {
            let live = live_key_of(key).is_some();
            assert_eq!(is_restart_only(key, &prefixes), !live, "{key}");
        }
        for key in ["persistence.tenant.plans.free.burst", "warming.manual.acme"] {
            assert!(!is_restart_only(key, &prefixes), "{key}");
        }
        for key in [
            "persistence.cache.l1_capacity_bytes",
            "warming.top_k_per_tenant",
            "persistence.tenant.master_key",
            "persistence.tenant.enabled",
        ] {
            assert!(is_restart_only(key, &prefixes), "{key}");
        }
        for key in SERVICE_LIVE {
            assert!(
                !key.starts_with("persistence."),
                "{key}: the persistence layer's own"
            );
        }
        for key in ["server.listen", "log.format", "persistence.redis.url"] {
            assert!(is_restart_only(key, &prefixes), "{key}");
        }
        for key in live_keys() {
            assert!(
                keys.iter().any(|k| live_key_of(k) == Some(key)),
                "{key} is a real key"
            );
        }
        for prefix in PersistenceSchema.restart_only() {
            assert!(prefixes.contains(&prefix), "{prefix}");
        }
    }

    /// Each key of the shipped file whose comment ends in "(live...)" or "(restart)",
    /// with its dotted path and whether it says live.
    fn marked_keys(text: &str) -> Vec<(String, bool)> {
        let mut path: Vec<(usize, String)> = Vec::new();
        let mut marker = None;
        let mut out = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if let Some(comment) = trimmed.strip_prefix('#') {
                if comment.contains("(live") {
                    marker = Some(true);
                } else if comment.contains("(restart)") {
                    marker = Some(false);
                }
                continue;
            }
            let key = trimmed.split_once(':').map(|(k, _)| k);
            let Some(key) = key.filter(|k| !k.is_empty() && !k.contains(' ')) else {
                marker = None;
                continue;
            };
            path.retain(|(i, _)| *i < indent);
            path.push((indent, key.to_owned()));
            if let Some(live) = marker.take() {
                let dotted: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
                out.push((dotted.join("."), live));
            }
        }
        out
    }

    #[test]
    fn the_shipped_file_marks_exactly_the_live_keys_live() {
        let text = include_str!("../../../../config/riptide.yml");
        let marked = marked_keys(text);
        assert!(marked.len() > 60, "{marked:?}");
        for (key, live) in &marked {
            assert_eq!(live_key_of(key).is_some(), *live, "{key} is marked wrongly");
        }
        for key in live_keys() {
            assert!(
                marked.iter().any(|(k, live)| k == key && *live),
                "{key} is not marked (live)"
            );
        }
    }

    #[test]
    fn the_whole_document_is_checked_and_errors_name_the_key() {
        let schema = ServiceSchema::default();
        assert!(schema.validate(&json!({})).is_ok());
        assert!(schema.validate(&json!({"log": {"level": "debug"}})).is_ok());
        let cases = [
            (
                json!({"server": {"request_timeout_ms": 0}}),
                "server.request_timeout_ms",
            ),
            (json!({"server": {"listen": "nowhere"}}), "server.listen"),
            (json!({"log": {"level": "verbose"}}), "log.level"),
            (json!({"log": {"format": "xml"}}), "log.format"),
            (json!({"srever": {}}), "srever"),
            (
                json!({"persistence": {"cache": {"zstd_level": 99}}}),
                "persistence.cache.zstd_level",
            ),
            (
                json!({"persistence": {"tenant": {"master_key": "short"}}}),
                "persistence.tenant.master_key",
            ),
        ];
        for (doc, key) in cases {
            let issue = schema.validate(&doc).expect_err(key);
            assert_eq!(issue.key, key, "{issue}");
        }
    }

    #[test]
    fn variables_keep_winning_over_a_reloaded_file() {
        let env = |name: &str| (name == "RUST_LOG").then(|| "debug".into());
        let provenance = Provenance::capture(None, &env, &Overrides::default()).expect("captured");
        let schema = ServiceSchema::new(provenance);
        let cfg = schema
            .resolve(&json!({"log": {"level": "warn"}}))
            .expect("valid");
        assert_eq!(cfg.log.level, "debug");

        // A file value a variable replaces is judged after the replacement, as at start.
        let env = |name: &str| (name == "REDIS_URL").then(|| "embedded".into());
        let provenance = Provenance::capture(None, &env, &Overrides::default()).expect("captured");
        let doc = json!({"persistence": {"redis": {"url": "memcached://x"}}});
        assert!(ServiceSchema::new(provenance).validate(&doc).is_ok());
        assert!(ServiceSchema::default().validate(&doc).is_err());
    }
}
