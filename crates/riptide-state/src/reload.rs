//! Hot configuration reload: the running document, forced reloads, and a debounced
//! directory watcher.
//!
//! [`ConfigReloader`] holds the current [`ConfigGeneration`] in an `ArcSwap`, so a
//! reader gets a whole generation or the previous one, never half of each. A reload
//! reads every configuration file again ([`ConfigDocument::load`]), and then:
//!
//! - the same canonical hash as the running document: [`ReloadOutcome::Unchanged`];
//! - unreadable, not YAML, cut short (an emptied file or a lost section, see
//!   [`reload_guard`]) or refused by the schema: [`ReloadOutcome::Rejected`] naming the
//!   file, key and reason; the running generation stays;
//! - otherwise the new generation is swapped in and sent to subscribers:
//!   [`ReloadOutcome::Applied`] with the changed keys, and among them those under a
//!   restart-only prefix, which the document carries but which take effect at the next
//!   start.
//!
//! Every reload counts `config_reload_total{result="applied"|"unchanged"|"error"}`.
//! The watcher watches each directory (not the files: editors replace files by
//! rename), waits until no event has arrived for the debounce interval, then reloads
//! once.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config_doc::{
    ConfigDocument, ConfigRejection, SourceFile, changed_keys, get_dotted, is_config_file_name,
};
use super::config_schema::{ConfigSchema, is_restart_only};
use super::reload_guard;
use crate::config::StateConfig;

/// Name of the reload counter.
pub const RELOAD_METRIC: &str = "config_reload_total";

/// Longest debounce honoured, whatever the configuration says.
const MAX_DEBOUNCE: Duration = Duration::from_secs(60);
/// A steady stream of events still reloads after this many debounce intervals.
const MAX_DEBOUNCE_ROUNDS: u32 = 10;
/// File events queued between the watcher thread and the reload task; when full, a
/// reload is already pending, so further events are dropped.
const EVENT_QUEUE: usize = 64;
/// Where a live debounce setting is read from the document.
const DEBOUNCE_KEY: &str = "persistence.state.reload_debounce_ms";
/// Kubernetes ConfigMap volumes swap this symlink to publish a new version.
const CONFIGMAP_DATA_LINK: &str = "..data";

/// One applied configuration: immutable once published.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigGeneration {
    /// 1 for the initial load, +1 for each applied change.
    pub generation: u64,
    /// Files the document was merged from, in merge order.
    pub sources: Vec<PathBuf>,
    /// blake3 hex digest of the canonical JSON of `value`.
    pub hash: String,
    /// When this generation was loaded.
    pub loaded_at: DateTime<Utc>,
    /// The merged, validated document (a JSON object).
    pub value: Arc<Value>,
    /// Restart-only keys whose value differs from the one the process started with:
    /// present in `value`, but in effect only after the next start.
    pub pending_restart: Vec<String>,
}

impl ConfigGeneration {
    /// The value at a dotted key, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        get_dotted(&self.value, key)
    }
}

/// How one reload ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// A new generation is running.
    Applied {
        /// Its number.
        generation: u64,
        /// Dotted leaf paths whose value changed, sorted.
        changed_keys: Vec<String>,
        /// The changed keys under a restart-only prefix: in the document, but in
        /// effect only after the next start.
        restart_required: Vec<String>,
    },
    /// The files hash to the running document; nothing was swapped.
    Unchanged,
    /// The document was refused; the running generation stays.
    Rejected {
        /// The file to blame, when known.
        file: Option<PathBuf>,
        /// The dotted key, empty for a file that cannot be read or parsed.
        key: String,
        /// Why.
        reason: String,
    },
}

impl ReloadOutcome {
    /// The `result` label of `config_reload_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Rejected { .. } => "error",
        }
    }
}

impl From<ConfigRejection> for ReloadOutcome {
    fn from(r: ConfigRejection) -> Self {
        ReloadOutcome::Rejected {
            file: r.file,
            key: r.key,
            reason: r.reason,
        }
    }
}

/// Reload counts since start and the last outcome, for the state report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadStats {
    /// Reloads that swapped in a new generation.
    pub applied: u64,
    /// Reloads that found nothing changed.
    pub unchanged: u64,
    /// Reloads refused (the running configuration was kept).
    pub errors: u64,
    /// The last reload and when it finished.
    pub last: Option<(DateTime<Utc>, ReloadOutcome)>,
}

/// Errors of [`ConfigReloader`] setup.
#[derive(Debug, Error)]
pub enum ReloadError {
    /// The initial document is missing, unreadable or invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigRejection),
    /// The platform's file watcher could not be created.
    #[error("cannot create the configuration watcher: {0}")]
    Watcher(#[source] notify::Error),
    /// A directory could not be watched.
    #[error("cannot watch configuration directory {dir}: {source}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// What notify reported.
        #[source]
        source: notify::Error,
    },
}

/// The running configuration document, reloaded on demand or by a directory watcher.
pub struct ConfigReloader {
    dirs: Vec<PathBuf>,
    hot_reload: bool,
    debounce: Duration,
    schema: Arc<dyn ConfigSchema>,
    restart_only: Vec<String>,
    /// The document the process started with: restart-only keys keep its values.
    initial: Arc<Value>,
    /// The files of the running generation as parsed, which [`reload_guard::check`]
    /// compares a reload with. Written only under `reload_lock`.
    running_files: Mutex<Vec<SourceFile>>,
    current: ArcSwap<ConfigGeneration>,
    notify_tx: watch::Sender<Arc<ConfigGeneration>>,
    /// Serializes reloads, so generations are numbered and diffed in order.
    reload_lock: Mutex<()>,
    stats: Mutex<ReloadStats>,
}

impl fmt::Debug for ConfigReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigReloader")
            .field("dirs", &self.dirs)
            .field("hot_reload", &self.hot_reload)
            .field("debounce", &self.debounce)
            .field("generation", &self.current.load().generation)
            .finish_non_exhaustive()
    }
}

impl ConfigReloader {
    /// Loads the initial document (generation 1) from `cfg.config_watch_paths`. A
    /// missing (with hot reload on) or unreadable directory, a file that does not parse, or a document the
    /// schema refuses is an error naming the file and key. No directories, or
    /// directories without configuration files, give the empty document `{}`.
    pub fn new(cfg: &StateConfig, schema: Arc<dyn ConfigSchema>) -> Result<Arc<Self>, ReloadError> {
        let dirs: Vec<PathBuf> = cfg.config_watch_paths.iter().map(PathBuf::from).collect();
        // Without hot reload a missing directory just contributes nothing at start (the
        // seed's default `./config` need not exist); with it, the watch would fail later,
        // so a missing directory is reported now.
        let initial_dirs: Vec<&PathBuf> = dirs
            .iter()
            .filter(|d| cfg.enable_hot_reload || d.exists())
            .collect();
        let doc = ConfigDocument::load(&initial_dirs)?;
        if let Err(issue) = schema.validate(&doc.value) {
            return Err(ConfigRejection {
                file: doc.file_defining(&issue.key).map(Path::to_path_buf),
                key: issue.key,
                reason: issue.reason,
            }
            .into());
        }
        let sources = doc.sources();
        let running_files = Mutex::new(doc.files);
        let value = Arc::new(doc.value);
        let first = Arc::new(ConfigGeneration {
            generation: 1,
            sources,
            hash: doc.hash,
            loaded_at: Utc::now(),
            value: Arc::clone(&value),
            pending_restart: Vec::new(),
        });
        tracing::info!(
            config.generation = 1,
            config.hash = %first.hash,
            config.sources = ?first.sources,
            "configuration loaded"
        );
        let (notify_tx, _) = watch::channel(Arc::clone(&first));
        Ok(Arc::new(Self {
            dirs,
            hot_reload: cfg.enable_hot_reload,
            debounce: Duration::from_millis(cfg.reload_debounce_ms),
            restart_only: schema.restart_only(),
            schema,
            initial: value,
            running_files,
            current: ArcSwap::new(first),
            notify_tx,
            reload_lock: Mutex::new(()),
            stats: Mutex::new(ReloadStats::default()),
        }))
    }

    /// The running generation.
    pub fn current(&self) -> Arc<ConfigGeneration> {
        self.current.load_full()
    }

    /// A receiver that sees each new generation (it starts marked as seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigGeneration>> {
        self.notify_tx.subscribe()
    }

    /// The watched directories, in merge order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether `enable_hot_reload` was set: the caller then runs [`Self::spawn_watcher`].
    pub fn hot_reload_enabled(&self) -> bool {
        self.hot_reload
    }

    /// The restart-only key prefixes of the schema.
    pub fn restart_only(&self) -> &[String] {
        &self.restart_only
    }

    /// Reload counts and the last outcome.
    pub fn stats(&self) -> ReloadStats {
        lock(&self.stats).clone()
    }

    /// The last reload's outcome and when it finished.
    pub fn last_outcome(&self) -> Option<(DateTime<Utc>, ReloadOutcome)> {
        lock(&self.stats).last.clone()
    }

    /// Reads, merges and validates the files again and applies the result if it is
    /// valid and different. Reads small files synchronously; from async code with
    /// many directories, run it on a blocking thread.
    pub fn reload(&self) -> ReloadOutcome {
        let _serial = lock(&self.reload_lock);
        let outcome = self.reload_serialized();
        self.record(&outcome);
        outcome
    }

    fn reload_serialized(&self) -> ReloadOutcome {
        let doc = match ConfigDocument::load(&self.dirs) {
            Ok(doc) => doc,
            Err(rejection) => return rejection.into(),
        };
        let running = self.current.load_full();
        if doc.hash == running.hash {
            return ReloadOutcome::Unchanged;
        }
        if let Err(cut) = reload_guard::check(&lock(&self.running_files), &running.value, &doc) {
            return cut.into();
        }
        if let Err(issue) = self.schema.validate(&doc.value) {
            return ReloadOutcome::Rejected {
                file: doc.file_defining(&issue.key).map(Path::to_path_buf),
                key: issue.key,
                reason: issue.reason,
            };
        }
        let changed = changed_keys(&running.value, &doc.value);
        let restart_required = self.restart_keys(&changed);
        let pending_restart = self.restart_keys(&changed_keys(&self.initial, &doc.value));
        let next = Arc::new(ConfigGeneration {
            generation: running.generation + 1,
            sources: doc.sources(),
            hash: doc.hash,
            loaded_at: Utc::now(),
            value: Arc::new(doc.value),
            pending_restart,
        });
        *lock(&self.running_files) = doc.files;
        self.current.store(Arc::clone(&next));
        self.notify_tx.send_replace(Arc::clone(&next));
        ReloadOutcome::Applied {
            generation: next.generation,
            changed_keys: changed,
            restart_required,
        }
    }

    fn restart_keys(&self, keys: &[String]) -> Vec<String> {
        keys.iter()
            .filter(|k| is_restart_only(k, &self.restart_only))
            .cloned()
            .collect()
    }

    fn record(&self, outcome: &ReloadOutcome) {
        metrics::counter!(RELOAD_METRIC, "result" => outcome.as_str()).increment(1);
        {
            let mut stats = lock(&self.stats);
            match outcome {
                ReloadOutcome::Applied { .. } => stats.applied += 1,
                ReloadOutcome::Unchanged => stats.unchanged += 1,
                ReloadOutcome::Rejected { .. } => stats.errors += 1,
            }
            stats.last = Some((Utc::now(), outcome.clone()));
        }
        match outcome {
            ReloadOutcome::Applied {
                generation,
                changed_keys,
                restart_required,
            } => {
                tracing::info!(
                    config.generation = generation,
                    config.changed_keys = ?changed_keys,
                    "configuration reloaded"
                );
                if !restart_required.is_empty() {
                    tracing::warn!(
                        config.generation = generation,
                        config.restart_required = ?restart_required,
                        "changed keys take effect at the next restart"
                    );
                }
            }
            ReloadOutcome::Unchanged => tracing::debug!("configuration unchanged"),
            ReloadOutcome::Rejected { file, key, reason } => tracing::warn!(
                config.file = ?file,
                config.key = %key,
                reason = %reason,
                config.generation = self.current.load().generation,
                "configuration rejected; keeping the running generation"
            ),
        }
    }

    /// The debounce interval: `persistence.state.reload_debounce_ms` of the running
    /// document when it sets one (so it reloads live), else the start value.
    pub fn debounce(&self) -> Duration {
        let live = self
            .current
            .load()
            .get(DEBOUNCE_KEY)
            .and_then(Value::as_u64)
            .map(Duration::from_millis);
        live.unwrap_or(self.debounce).min(MAX_DEBOUNCE)
    }

    /// Starts watching every directory and spawns the debounced reload task on the
    /// current tokio runtime. It stops when `cancel` fires. The manager calls this only
    /// when hot reload is enabled; [`Self::reload`] works either way.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        cancel: CancellationToken,
    ) -> Result<JoinHandle<()>, ReloadError> {
        Ok(tokio::spawn(self.watch(cancel)?))
    }

    /// As [`Self::spawn_watcher`], returning the task for the caller to spawn (e.g. on
    /// its `TaskTracker`). The directories are watched before this returns; the
    /// watcher lives inside the future and stops when it ends.
    pub fn watch(
        self: &Arc<Self>,
        cancel: CancellationToken,
    ) -> Result<impl Future<Output = ()> + Send + 'static, ReloadError> {
        let (tx, rx) = mpsc::channel::<()>(EVENT_QUEUE);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            let relevant = match res {
                Ok(event) => is_relevant(&event),
                Err(e) => {
                    // Events may have been lost: reloading is harmless (same hash).
                    tracing::warn!(error = %e, "configuration watcher error");
                    true
                }
            };
            if relevant {
                // Full: a reload is already pending.
                let _ = tx.try_send(());
            }
        })
        .map_err(ReloadError::Watcher)?;
        let mut watched: Vec<&PathBuf> = Vec::new();
        for dir in &self.dirs {
            if watched.contains(&dir) {
                continue;
            }
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| ReloadError::Watch {
                    dir: dir.clone(),
                    source,
                })?;
            watched.push(dir);
        }
        tracing::info!(config.dirs = ?self.dirs, "watching configuration directories");
        let this = Arc::clone(self);
        Ok(async move {
            let _watcher = watcher;
            this.run_watcher(rx, cancel).await;
            tracing::debug!("configuration watcher stopped");
        })
    }

    async fn run_watcher(self: Arc<Self>, mut rx: mpsc::Receiver<()>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                event = rx.recv() => if event.is_none() { return },
            }
            let debounce = self.debounce();
            let deadline = Instant::now() + debounce.saturating_mul(MAX_DEBOUNCE_ROUNDS);
            // Wait until the directory has been quiet for `debounce`, or the deadline.
            loop {
                let quiet_until = (Instant::now() + debounce).min(deadline);
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    event = rx.recv() => match event {
                        Some(()) => continue,
                        None => return,
                    },
                    () = tokio::time::sleep_until(quiet_until) => break,
                }
            }
            let this = Arc::clone(&self);
            if let Err(e) = tokio::task::spawn_blocking(move || this.reload()).await {
                tracing::warn!(error = %e, "configuration reload task failed");
            }
        }
    }
}

/// Whether a file event can change the document: a create, modify, rename or remove
/// of a configuration file (or of a ConfigMap's `..data` link), or a rescan request.
fn is_relevant(event: &Event) -> bool {
    if event.need_rescan() {
        return true;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| is_config_file_name(n) || n == CONFIGMAP_DATA_LINK)
    })
}

/// Locks a mutex, recovering the data after a panic elsewhere (a panicking schema must
/// not stop later reloads).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder};
    use metrics::{SharedString, Unit};
    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};

    use super::*;
    use crate::persistence_config::PersistenceSchema;

    #[derive(Default)]
    struct Capture(Mutex<BTreeMap<String, Arc<Count>>>);

    #[derive(Default)]
    struct Count(AtomicU64);

    impl CounterFn for Count {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    impl Capture {
        fn get(&self, name: &str) -> u64 {
            lock(&self.0)
                .get(name)
                .map_or(0, |c| c.0.load(Ordering::Relaxed))
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::clone(lock(&self.0).entry(name).or_default()))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn config(dir: &Path) -> StateConfig {
        StateConfig {
            config_watch_paths: vec![dir.display().to_string()],
            ..StateConfig::default()
        }
    }

    #[test]
    fn every_outcome_is_counted_in_the_metric_and_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yml");
        std::fs::write(&file, "x: 1\n").expect("write");
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let r = ConfigReloader::new(&config(dir.path()), Arc::new(PersistenceSchema))
                .expect("initial");
            assert_eq!(r.reload(), ReloadOutcome::Unchanged);
            std::fs::write(&file, "x: 2\n").expect("write");
            assert!(matches!(
                r.reload(),
                ReloadOutcome::Applied { generation: 2, .. }
            ));
            std::fs::write(&file, "x: [\n").expect("write");
            assert_eq!(r.reload().as_str(), "error");
            assert_eq!(rec.get("config_reload_total{result=applied}"), 1);
            assert_eq!(rec.get("config_reload_total{result=unchanged}"), 1);
            assert_eq!(rec.get("config_reload_total{result=error}"), 1);
            let stats = r.stats();
            assert_eq!((stats.applied, stats.unchanged, stats.errors), (1, 1, 1));
            assert_eq!(stats.last.map(|(_, o)| o.as_str()), Some("error"));
        });
    }

    #[test]
    fn an_empty_comment_only_or_cut_file_is_refused_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yml");
        let full =
            "persistence:\n  cache:\n    zstd_level: 5\n  state:\n    reload_debounce_ms: 70\n";
        std::fs::write(&file, full).expect("write");
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let r = ConfigReloader::new(&config(dir.path()), Arc::new(PersistenceSchema))
                .expect("initial");
            let cut_after_cache = &full[..full.find("  state").expect("state")];
            for text in [
                "",
                "  \n\n",
                "# all commented out\n",
                "persistence:\n",
                cut_after_cache,
            ] {
                std::fs::write(&file, text).expect("write");
                let outcome = r.reload();
                assert!(
                    matches!(&outcome, ReloadOutcome::Rejected { file: Some(f), .. } if *f == file),
                    "{text:?}: {outcome:?}"
                );
                assert_eq!(r.current().generation, 1, "{text:?}");
            }
            assert_eq!(rec.get("config_reload_total{result=error}"), 5);
            // A complete edit still applies.
            std::fs::write(&file, full.replace("70", "80")).expect("write");
            assert_eq!(r.reload().as_str(), "applied");
        });
    }

    #[test]
    fn pending_restart_keys_are_relative_to_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yml");
        std::fs::write(&file, "persistence: {redis: {pool_size: 4}}\n").expect("write");
        let r =
            ConfigReloader::new(&config(dir.path()), Arc::new(PersistenceSchema)).expect("initial");
        std::fs::write(&file, "persistence: {redis: {pool_size: 8}}\n").expect("write");
        r.reload();
        assert_eq!(r.current().pending_restart, ["persistence.redis.pool_size"]);
        std::fs::write(
            &file,
            "persistence: {redis: {pool_size: 8}, state: {reload_debounce_ms: 300}}\n",
        )
        .expect("write");
        let ReloadOutcome::Applied {
            restart_required, ..
        } = r.reload()
        else {
            panic!("not applied");
        };
        assert!(restart_required.is_empty());
        assert_eq!(r.current().pending_restart, ["persistence.redis.pool_size"]);
        // Back to the start value (keeping the `state` section: dropping a whole section
        // is refused as a cut file, see `reload_guard`).
        std::fs::write(
            &file,
            "persistence: {redis: {pool_size: 4}, state: {reload_debounce_ms: 300}}\n",
        )
        .expect("write");
        assert_eq!(r.reload().as_str(), "applied");
        assert!(r.current().pending_restart.is_empty());
    }

    #[test]
    fn the_debounce_follows_the_running_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        cfg.reload_debounce_ms = 40;
        let r = ConfigReloader::new(&cfg, Arc::new(PersistenceSchema)).expect("initial");
        assert_eq!(r.debounce(), Duration::from_millis(40));
        std::fs::write(
            dir.path().join("a.yml"),
            "persistence: {state: {reload_debounce_ms: 75}}\n",
        )
        .expect("write");
        r.reload();
        assert_eq!(r.debounce(), Duration::from_millis(75));
    }

    #[test]
    fn only_config_file_events_are_relevant() {
        let ev = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        assert!(is_relevant(&ev(
            EventKind::Create(CreateKind::File),
            "/c/a.yml"
        )));
        assert!(is_relevant(&ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "/c/b.yaml"
        )));
        assert!(is_relevant(&ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "/c/..data"
        )));
        assert!(!is_relevant(&ev(
            EventKind::Create(CreateKind::File),
            "/c/a.yml.tmp"
        )));
        assert!(!is_relevant(&ev(
            EventKind::Access(AccessKind::Read),
            "/c/a.yml"
        )));
    }
}
