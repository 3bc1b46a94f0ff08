//! Applies each configuration generation the state manager publishes to what can change
//! while the service runs, and says which changes wait for a restart.
//!
//! Live today: `log.level` (the log filter is replaced). The state manager applies
//! `persistence.state.reload_debounce_ms` itself. Every other changed key is reported as
//! needing a restart (see [`crate::config::schema`]).

use std::sync::Arc;

use riptide_persistence::state::ConfigGeneration;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;
use crate::config::schema::ServiceSchema;
use crate::logging::{self, LevelChange};

/// Follows `generations` until `cancel` fires or the state manager is gone, applying
/// each new one to the service that runs with `running`.
pub async fn follow(
    mut generations: watch::Receiver<Arc<ConfigGeneration>>,
    schema: ServiceSchema,
    mut running: AppConfig,
    cancel: CancellationToken,
) {
    let mut previous = generations.borrow_and_update().clone();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = generations.changed() => if changed.is_err() { return },
        }
        let generation = generations.borrow_and_update().clone();
        running = apply(&previous, &generation, &schema, running);
        previous = generation;
    }
}

/// Applies `generation` (which follows `previous`) and returns the settings now in
/// effect.
pub fn apply(
    previous: &ConfigGeneration,
    generation: &ConfigGeneration,
    schema: &ServiceSchema,
    mut running: AppConfig,
) -> AppConfig {
    let number = generation.generation;
    // The state manager validated the document with this schema, so this only fails if
    // something outside the document changed since (such as a removed directory).
    let next = match schema.resolve(&generation.value) {
        Ok(next) => next,
        Err(issue) => {
            tracing::warn!(config.generation = number, config.key = %issue.key, reason = %issue.reason,
                "cannot apply the configuration generation; keeping the running settings");
            return running;
        }
    };
    if next.log.level != running.log.level {
        match logging::set_level(&next.log.level) {
            Ok(change) => {
                tracing::info!(
                    config.generation = number,
                    log.level = %next.log.level,
                    log.previous_level = %running.log.level,
                    subscriber = matches!(change, LevelChange::Applied),
                    "log.level applied"
                );
                running.log.level = next.log.level;
            }
            Err(e) => tracing::warn!(config.generation = number, error = %e,
                "cannot apply log.level; keeping the running filter"),
        }
    } else if changed(previous, generation, "log.level")
        && let Some(origin) = running.provenance.pinned_by("log.level")
    {
        tracing::info!(
            config.generation = number,
            log.level = %running.log.level,
            "log.level changed in the file, but {origin} sets it; keeping it"
        );
    }
    if !generation.pending_restart.is_empty() {
        tracing::warn!(
            config.generation = number,
            config.restart_required = ?generation.pending_restart,
            "the configuration file differs from the running service in keys that take effect at the next restart"
        );
    }
    running
}

fn changed(previous: &ConfigGeneration, next: &ConfigGeneration, key: &str) -> bool {
    previous.get(key).unwrap_or(&Value::Null) != next.get(key).unwrap_or(&Value::Null)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

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

    #[test]
    fn a_new_level_is_applied_and_a_bad_document_changes_nothing() {
        let first = generation(1, json!({}));
        let second = generation(2, json!({"log": {"level": "warn"}}));
        let running = apply(
            &first,
            &second,
            &ServiceSchema::default(),
            AppConfig::default(),
        );
        assert_eq!(running.log.level, "warn");

        let bad = generation(3, json!({"log": {"level": 7}}));
        let running = apply(&second, &bad, &ServiceSchema::default(), running);
        assert_eq!(running.log.level, "warn");
    }

    #[test]
    fn a_level_set_by_a_variable_stays() {
        let env = |name: &str| (name == "RIPTIDE_LOG_LEVEL").then(|| "debug".into());
        let provenance = Provenance::capture(None, &env, &Overrides::default()).expect("env");
        let mut running = AppConfig::default();
        running.log.level = "debug".into();
        running.provenance = provenance.clone();
        let first = generation(1, json!({}));
        let second = generation(2, json!({"log": {"level": "error"}}));
        let running = apply(&first, &second, &ServiceSchema::new(provenance), running);
        assert_eq!(running.log.level, "debug");
    }
}
