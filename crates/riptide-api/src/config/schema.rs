//! The service's [`ConfigSchema`]: what a reloaded configuration file must be, and which
//! of its keys only take effect at the next start.
//!
//! A reloaded document is resolved exactly like the file read at start: deserialized
//! into the whole [`AppConfig`] (unknown keys and wrong types are refused with their
//! dotted path), the same environment variables and flags laid over it, the derived
//! defaults applied, then [`AppConfig::validate`]. So a reload is refused for exactly
//! what would stop a restart with the same file.
//!
//! Live today: the keys of [`LIVE_KEYS`]. Everything else (the server, the log format,
//! the store, the cache, tenants, state directories, sync) is listed as restart-only, so
//! the reload reports such changes as waiting for the next start instead of pretending
//! to apply them. The list includes every prefix [`PersistenceSchema`] names.
//!
//! This schema is used alone rather than in a `SchemaSet` with [`PersistenceSchema`]: it
//! already checks the `persistence` section (as part of [`AppConfig`], with the same
//! `validate`), and it does so after the environment is laid over the file, where
//! [`PersistenceSchema`] would judge the file's own values, so a file value that a
//! variable replaces would stop the state manager although the service accepted it.

use riptide_persistence::state::config_schema::{
    ConfigIssue, ConfigSchema, PersistenceSchema, deserialize_located,
};
use serde_json::Value;

use super::AppConfig;
use super::load::ConfigError;
use super::provenance::{Explicit, Provenance};

/// Keys a reload applies to the running service: `log.level` (the log filter is
/// replaced) and `persistence.state.reload_debounce_ms` (the watcher reads it from the
/// running document).
pub const LIVE_KEYS: [&str; 2] = ["log.level", "persistence.state.reload_debounce_ms"];

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

/// Every key of [`AppConfig`] but [`LIVE_KEYS`], as the shortest prefixes that contain
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
    if LIVE_KEYS.contains(&path) {
        return;
    }
    let holds_live = path.is_empty()
        || LIVE_KEYS.iter().any(|key| {
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
            let live = LIVE_KEYS.contains(&key.as_str());
            assert_eq!(is_restart_only(key, &prefixes), !live, "{key}");
        }
        for key in ["server.listen", "log.format", "persistence.redis.url"] {
            assert!(is_restart_only(key, &prefixes), "{key}");
        }
        for key in LIVE_KEYS {
            assert!(keys.iter().any(|k| k == key), "{key} is a real key");
        }
        for prefix in PersistenceSchema.restart_only() {
            assert!(prefixes.contains(&prefix), "{prefix}");
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
