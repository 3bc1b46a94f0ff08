//! Applies each configuration generation the state manager publishes to every live
//! component of the running service, and says which changes wait for a restart.
//!
//! The state manager publishes a generation only after the whole file passed the
//! service's schema (see [`crate::config::schema`]); an invalid file never gets here, is
//! counted as `config_reload_total{result="error"}` and leaves the running settings. A
//! published generation is then applied in two phases, so it applies as a whole or not
//! at all:
//!
//! 1. every component [`LiveComponent::prepare_live`]s it: checks its own section and
//!    readies what it needs. A failure there stops the generation: nothing is applied,
//!    an error is logged, the running settings stay;
//! 2. every component [`LiveComponent::apply_live`]s it: a swap, which requests see from
//!    their next read.
//!
//! The components are listed in one place, [`components`]; a new live setting is a new
//! line there plus its keys in the service's live keys ([`crate::config::schema::live_keys`]:
//! `SERVICE_LIVE`, or `PERSISTENCE_LIVE` for a persistence setting).
//!
//! Generations reach every instance: `POST /admin/state/reload` reloads here and
//! publishes a reload request; each other instance's state manager reloads its own
//! files on receipt and publishes the generation to its own [`follow`] task.

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use riptide_persistence::PersistentCacheManager;
use riptide_persistence::state::ConfigGeneration;
use riptide_persistence::state::config_doc::changed_keys;
use riptide_persistence::tenant::TenantManager;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;
use crate::config::schema::{ServiceSchema, live_key_of};
use crate::logging::{self, LevelChange};
use crate::state::AppState;
use crate::warming::WarmingService;

/// A part of the running service whose settings a reload changes.
pub trait LiveComponent: Send + Sync {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Checks its settings in `next` and readies what applying them needs, without
    /// changing what requests see. An error stops the whole generation.
    fn prepare_live<'a>(&'a self, next: &'a AppConfig) -> BoxFuture<'a, Result<(), String>> {
        let _ = next;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Swaps in its settings from `next` (after every component prepared them) and
    /// returns the dotted keys whose value changed.
    fn apply_live(&self, next: &AppConfig) -> Result<Vec<String>, String>;
}

/// Every live component of the service, in the order a generation is applied. Add a
/// live component here (one line), and its keys to `SERVICE_LIVE` (`config/schema.rs`).
pub fn components(config: &AppConfig, state: &AppState) -> Vec<Arc<dyn LiveComponent>> {
    let log: Arc<dyn LiveComponent> = Arc::new(LogLevel::new(&config.log.level));
    let tenants: Arc<dyn LiveComponent> = state.tenants.clone();
    let cache: Arc<dyn LiveComponent> = state.cache.clone();
    let warming: Arc<dyn LiveComponent> = state.warming.clone();
    vec![log, tenants, cache, warming]
}

/// Follows `generations` until `cancel` fires or the state manager is gone, applying
/// each new one to `components`.
pub async fn follow(
    mut generations: watch::Receiver<Arc<ConfigGeneration>>,
    components: Vec<Arc<dyn LiveComponent>>,
    schema: ServiceSchema,
    cancel: CancellationToken,
) {
    let mut previous = generations.borrow_and_update().clone();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = generations.changed() => if changed.is_err() { return },
        }
        let generation = generations.borrow_and_update().clone();
        apply(&previous, &generation, &schema, &components).await;
        previous = generation;
    }
}

/// Applies `generation` (which follows `previous`) to `components`: all of them
/// prepare it, then all of them swap. Returns whether it was applied; when not, the
/// running settings stay and the reason is logged.
pub async fn apply(
    previous: &ConfigGeneration,
    generation: &ConfigGeneration,
    schema: &ServiceSchema,
    components: &[Arc<dyn LiveComponent>],
) -> bool {
    let number = generation.generation;
    // The state manager validated the document with this schema, so this only fails if
    // something outside the document changed since (such as a removed directory).
    let next = match schema.resolve(&generation.value) {
        Ok(next) => next,
        Err(issue) => {
            tracing::error!(config.generation = number, config.key = %issue.key, reason = %issue.reason,
                "cannot apply the configuration generation; keeping the running settings");
            return false;
        }
    };
    for component in components {
        if let Err(reason) = component.prepare_live(&next).await {
            tracing::error!(
                config.generation = number,
                component = component.name(),
                reason = %reason,
                "cannot apply the configuration generation; keeping the running settings"
            );
            return false;
        }
    }
    let mut applied = Vec::new();
    for component in components {
        match component.apply_live(&next) {
            Ok(keys) => applied.extend(keys),
            // Prepared with the same settings, so not expected; the others still apply.
            Err(reason) => tracing::error!(
                config.generation = number,
                component = component.name(),
                reason = %reason,
                "a component refused the configuration generation it prepared"
            ),
        }
    }
    log_pinned(previous, generation, schema);
    tracing::info!(config.generation = number, config.applied_keys = ?applied,
        "configuration generation applied");
    if !generation.pending_restart.is_empty() {
        tracing::warn!(
            config.generation = number,
            config.restart_required = ?generation.pending_restart,
            "the configuration file differs from the running service in keys that take effect at the next restart"
        );
    }
    true
}

/// Says which live keys changed in the file but stay as they are because a variable or
/// flag sets them.
fn log_pinned(previous: &ConfigGeneration, generation: &ConfigGeneration, schema: &ServiceSchema) {
    let mut pinned: Vec<&'static str> = changed_keys(&previous.value, &generation.value)
        .iter()
        .filter_map(|key| live_key_of(key))
        .collect();
    pinned.dedup();
    for key in pinned {
        if let Some(origin) = schema.provenance().pinned_by(key) {
            tracing::info!(
                config.generation = generation.generation,
                config.key = key,
                "{key} changed in the file, but {origin} sets it; keeping it"
            );
        }
    }
}

/// `log.level`: the log filter is replaced.
pub struct LogLevel {
    level: Mutex<String>,
}

impl LogLevel {
    /// The filter the service started with.
    pub fn new(level: &str) -> Self {
        Self {
            level: Mutex::new(level.to_owned()),
        }
    }

    /// The level in force.
    pub fn current(&self) -> String {
        self.level
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl LiveComponent for LogLevel {
    fn name(&self) -> &'static str {
        "log"
    }

    fn apply_live(&self, next: &AppConfig) -> Result<Vec<String>, String> {
        let mut level = self.level.lock().unwrap_or_else(PoisonError::into_inner);
        if *level == next.log.level {
            return Ok(Vec::new());
        }
        let change = logging::set_level(&next.log.level).map_err(|e| e.to_string())?;
        tracing::info!(
            log.level = %next.log.level,
            log.previous_level = %level,
            subscriber = matches!(change, LevelChange::Applied),
            "log.level applied"
        );
        level.clone_from(&next.log.level);
        Ok(vec!["log.level".to_owned()])
    }
}

/// The tenant layer: plans (quotas, burst, grants, prices), billing and the default
/// plan. Multi-tenancy is not live (see `riptide_persistence::tenant::live_settings`).
impl LiveComponent for TenantManager {
    fn name(&self) -> &'static str {
        "tenants"
    }

    fn prepare_live<'a>(&'a self, next: &'a AppConfig) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.prepare_live_settings(&next.persistence.tenant)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn apply_live(&self, next: &AppConfig) -> Result<Vec<String>, String> {
        let changed = self
            .apply_live_settings(&next.persistence.tenant)
            .map_err(|e| e.to_string())?;
        Ok(prefixed("persistence.tenant", &changed))
    }
}

/// The cache: default TTL, compression and whether warming may run.
impl LiveComponent for PersistentCacheManager {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn prepare_live<'a>(&'a self, next: &'a AppConfig) -> BoxFuture<'a, Result<(), String>> {
        let checked = next.persistence.cache.validate().map_err(|e| e.to_string());
        Box::pin(std::future::ready(checked))
    }

    fn apply_live(&self, next: &AppConfig) -> Result<Vec<String>, String> {
        let changed = self
            .apply_live_settings(&next.persistence.cache)
            .map_err(|e| e.to_string())?;
        Ok(prefixed("persistence.cache", &changed))
    }
}

/// Cache warming: the tiers' sizes and schedule, jobs and the manual list.
impl LiveComponent for WarmingService {
    fn name(&self) -> &'static str {
        "warming"
    }

    fn prepare_live<'a>(&'a self, next: &'a AppConfig) -> BoxFuture<'a, Result<(), String>> {
        let checked = next
            .warming
            .validate()
            .map_err(|e| format!("{}: {}", e.key, e.reason));
        Box::pin(std::future::ready(checked))
    }

    fn apply_live(&self, next: &AppConfig) -> Result<Vec<String>, String> {
        let changed = *self.config() != next.warming;
        self.apply(&next.warming);
        Ok(if changed {
            vec!["warming".to_owned()]
        } else {
            Vec::new()
        })
    }
}

fn prefixed(section: &str, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| format!("{section}.{k}")).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Utc;
    use serde_json::{Value, json};

    use super::*;
    use crate::config::{Overrides, Provenance};

    fn generation(number: u64, value: Value) -> ConfigGeneration {
        ConfigGeneration {
            generation: number,
            sources: Vec::new(),
            hash: format!("h{number}"),
            loaded_at: Utc::now(),
            value: Arc::new(value),
            pending_restart: Vec::new(),
        }
    }

    /// Refuses to prepare a TTL of 7; counts its applies.
    #[derive(Default)]
    struct Picky(AtomicUsize);

    impl LiveComponent for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }
        fn prepare_live<'a>(&'a self, next: &'a AppConfig) -> BoxFuture<'a, Result<(), String>> {
            let ok = next.persistence.cache.default_ttl_seconds != 7;
            Box::pin(std::future::ready(
                ok.then_some(()).ok_or("seven".to_owned()),
            ))
        }
        fn apply_live(&self, _: &AppConfig) -> Result<Vec<String>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_new_level_is_applied_and_a_bad_document_changes_nothing() {
        let level = Arc::new(LogLevel::new("info"));
        let components: Vec<Arc<dyn LiveComponent>> = vec![level.clone()];
        let schema = ServiceSchema::default();
        let first = generation(1, json!({}));
        let second = generation(2, json!({"log": {"level": "warn"}}));
        assert!(apply(&first, &second, &schema, &components).await);
        assert_eq!(level.current(), "warn");

        let bad = generation(3, json!({"log": {"level": 7}}));
        assert!(!apply(&second, &bad, &schema, &components).await);
        assert_eq!(level.current(), "warn");
    }

    #[tokio::test]
    async fn a_failed_preparation_applies_nothing() {
        let level = Arc::new(LogLevel::new("info"));
        let picky = Arc::new(Picky::default());
        let components: Vec<Arc<dyn LiveComponent>> = vec![level.clone(), picky.clone()];
        let schema = ServiceSchema::default();
        let first = generation(1, json!({}));
        let refused = generation(
            2,
            json!({"log": {"level": "debug"}, "persistence": {"cache": {"default_ttl_seconds": 7}}}),
        );
        assert!(!apply(&first, &refused, &schema, &components).await);
        assert_eq!(level.current(), "info", "the level was not applied either");
        assert_eq!(picky.0.load(Ordering::Relaxed), 0);

        let accepted = generation(3, json!({"log": {"level": "debug"}}));
        assert!(apply(&first, &accepted, &schema, &components).await);
        assert_eq!(level.current(), "debug");
        assert_eq!(picky.0.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_level_set_by_a_variable_stays() {
        let env = |name: &str| (name == "RIPTIDE_LOG_LEVEL").then(|| "debug".into());
        let provenance = Provenance::capture(None, &env, &Overrides::default()).expect("env");
        let level = Arc::new(LogLevel::new("debug"));
        let components: Vec<Arc<dyn LiveComponent>> = vec![level.clone()];
        let first = generation(1, json!({}));
        let second = generation(2, json!({"log": {"level": "error"}}));
        let schema = ServiceSchema::new(provenance);
        assert!(apply(&first, &second, &schema, &components).await);
        assert_eq!(level.current(), "debug");
    }
}
