//! Hot config reload: merging, validation, outcomes, subscribers, the directory watcher
//! and its debounce, custom schemas, and atomic swaps under concurrent readers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use riptide_persistence::config::PersistenceSchema;
use riptide_persistence::config::StateConfig;
use riptide_persistence::state::{
    ConfigIssue, ConfigReloader, ConfigSchema, ReloadError, ReloadOutcome,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn state_config(dirs: &[&Path]) -> StateConfig {
    StateConfig {
        config_watch_paths: dirs.iter().map(|d| d.display().to_string()).collect(),
        reload_debounce_ms: 100,
        enable_hot_reload: true,
        ..StateConfig::default()
    }
}

fn reloader(dir: &Path) -> Arc<ConfigReloader> {
    ConfigReloader::new(&state_config(&[dir]), Arc::new(PersistenceSchema))
        .expect("initial config loads")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config file");
    path
}

/// Writes like an editor: a temp file in the same directory, then rename over.
fn write_by_rename(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename into place");
}

fn rejected(outcome: ReloadOutcome) -> (Option<PathBuf>, String, String) {
    match outcome {
        ReloadOutcome::Rejected { file, key, reason } => (file, key, reason),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn applied(outcome: ReloadOutcome) -> (u64, Vec<String>, Vec<String>) {
    match outcome {
        ReloadOutcome::Applied {
            generation,
            changed_keys,
            restart_required,
        } => (generation, changed_keys, restart_required),
        other => panic!("expected an applied reload, got {other:?}"),
    }
}

#[test]
fn the_initial_load_merges_files_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(
        dir.path(),
        "10-base.yml",
        "server: {listen: '0.0.0.0:1', workers: 4}\npersistence:\n  cache: {zstd_level: 3, default_ttl_seconds: 10}\n",
    );
    let b = write(
        dir.path(),
        "20-local.yaml",
        "server: {listen: '127.0.0.1:2'}\npersistence:\n  cache: {zstd_level: 5}\n",
    );
    write(dir.path(), "notes.txt", "not: [config");
    let r = reloader(dir.path());
    let g = r.current();
    assert_eq!(g.generation, 1);
    assert_eq!(g.sources, [a, b]);
    assert_eq!(g.hash.len(), 64);
    assert_eq!(
        g.value["server"],
        json!({"listen": "127.0.0.1:2", "workers": 4})
    );
    assert_eq!(g.get("persistence.cache.zstd_level"), Some(&json!(5)));
    assert_eq!(
        g.get("persistence.cache.default_ttl_seconds"),
        Some(&json!(10))
    );
    assert!(g.pending_restart.is_empty());
    assert!(r.last_outcome().is_none());
}

#[test]
fn directories_merge_in_the_configured_order() {
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    write(first.path(), "z.yml", "k: first\nonly_first: 1\n");
    write(second.path(), "a.yml", "k: second\n");
    let r = ConfigReloader::new(
        &state_config(&[first.path(), second.path()]),
        Arc::new(PersistenceSchema),
    )
    .expect("loads");
    assert_eq!(r.current().value["k"], "second");
    assert_eq!(r.current().value["only_first"], 1);
}

#[test]
fn no_files_or_no_directories_give_an_empty_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(*reloader(dir.path()).current().value, json!({}));
    let none = ConfigReloader::new(&state_config(&[]), Arc::new(PersistenceSchema)).expect("ok");
    assert_eq!(*none.current().value, json!({}));
    assert_eq!(none.reload(), ReloadOutcome::Unchanged);
}

#[test]
fn a_bad_initial_config_is_an_error_naming_the_file_or_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = ConfigReloader::new(&state_config(&[&missing]), Arc::new(PersistenceSchema))
        .expect_err("missing dir");
    assert!(matches!(&err, ReloadError::Invalid(r) if r.file.as_deref() == Some(&*missing)));
    assert!(err.to_string().contains("nope"), "{err}");

    let file = write(
        dir.path(),
        "bad.yml",
        "persistence:\n  cache: {zstd_level: 0}\n",
    );
    let err = ConfigReloader::new(&state_config(&[dir.path()]), Arc::new(PersistenceSchema))
        .expect_err("out of range");
    let ReloadError::Invalid(r) = err else {
        panic!("not a config error");
    };
    assert_eq!(r.file, Some(file));
    assert_eq!(r.key, "persistence.cache.zstd_level");
}

#[test]
fn an_edit_is_applied_as_generation_two_and_reaches_subscribers() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yml",
        "persistence: {state: {reload_debounce_ms: 250}}\nserver: {workers: 2}\n",
    );
    let r = reloader(dir.path());
    let mut sub = r.subscribe();
    let before = r.current();
    write(
        dir.path(),
        "a.yml",
        "persistence: {state: {reload_debounce_ms: 300}}\nserver: {workers: 2}\n",
    );
    let (generation, changed, restart) = applied(r.reload());
    assert_eq!(generation, 2);
    assert_eq!(changed, ["persistence.state.reload_debounce_ms"]);
    assert!(
        restart.is_empty(),
        "the reloader reads this key itself: live"
    );
    assert!(sub.has_changed().expect("sender alive"));
    let seen = sub.borrow_and_update().clone();
    assert_eq!(seen.generation, 2);
    assert_eq!(
        seen.get("persistence.state.reload_debounce_ms"),
        Some(&json!(300))
    );
    assert_ne!(seen.hash, before.hash);
    assert_eq!(r.current().generation, 2);
    // The old generation is untouched for whoever still holds it.
    assert_eq!(
        before.get("persistence.state.reload_debounce_ms"),
        Some(&json!(250))
    );
    let (_, last) = r.last_outcome().expect("recorded");
    assert_eq!(last.as_str(), "applied");
}

#[test]
fn a_reload_without_changes_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yml", "a: 1\nb: {c: 2}\n");
    let r = reloader(dir.path());
    let sub = r.subscribe();
    // Same content, different formatting and key order: same canonical hash.
    write(dir.path(), "a.yml", "b:\n  c: 2\n# comment\na: 1\n");
    assert_eq!(r.reload(), ReloadOutcome::Unchanged);
    assert_eq!(r.current().generation, 1);
    assert!(!sub.has_changed().expect("sender alive"));
    assert_eq!(r.stats().unchanged, 1);
}

#[test]
fn invalid_yaml_is_rejected_naming_the_file_and_line_and_the_config_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yml", "a: 1\n");
    let r = reloader(dir.path());
    let bad = write(dir.path(), "b.yml", "x: 1\ny: [1, 2\nz: 3\n");
    let (file, key, reason) = rejected(r.reload());
    assert_eq!(file, Some(bad));
    assert_eq!(key, "");
    assert!(reason.contains("line"), "{reason}");
    assert_eq!(r.current().generation, 1);
    assert_eq!(*r.current().value, json!({"a": 1}));
    let stats = r.stats();
    assert_eq!(stats.errors, 1);
    assert_eq!(stats.applied, 0);
    let (_, last) = stats.last.expect("recorded");
    assert_eq!(last.as_str(), "error");
}

#[test]
fn a_value_the_schema_refuses_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yml",
        "persistence: {cache: {zstd_level: 3}}\n",
    );
    let r = reloader(dir.path());
    let over = write(
        dir.path(),
        "b.yml",
        "persistence: {cache: {zstd_level: 99}}\n",
    );
    let (file, key, reason) = rejected(r.reload());
    assert_eq!(key, "persistence.cache.zstd_level");
    assert_eq!(file, Some(over));
    assert!(reason.contains("between 1 and 19"), "{reason}");
    assert_eq!(
        r.current().get("persistence.cache.zstd_level"),
        Some(&json!(3))
    );
    assert_eq!(r.stats().errors, 1);
}

#[test]
fn an_unknown_key_inside_persistence_is_rejected_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = reloader(dir.path());
    write(
        dir.path(),
        "a.yml",
        "persistence:\n  cache:\n    zstd_levle: 4\n",
    );
    let (_, key, reason) = rejected(r.reload());
    assert_eq!(key, "persistence.cache.zstd_levle");
    assert!(reason.contains("unknown field"), "{reason}");

    write(
        dir.path(),
        "a.yml",
        "persistence:\n  cache:\n    enable_compression: yes please\n",
    );
    let (_, key, reason) = rejected(r.reload());
    assert_eq!(key, "persistence.cache.enable_compression");
    assert!(reason.contains("invalid type"), "{reason}");
    assert_eq!(r.current().generation, 1);
    // Unknown top-level sections belong to the service's own schema.
    write(dir.path(), "a.yml", "telemetry: {anything: [1, 2]}\n");
    assert_eq!(applied(r.reload()).0, 2);
}

#[test]
fn a_restart_only_change_is_applied_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yml",
        "persistence: {redis: {pool_size: 4}, state: {reload_debounce_ms: 250}}\n",
    );
    let r = reloader(dir.path());
    write(
        dir.path(),
        "a.yml",
        "persistence: {redis: {pool_size: 8}, state: {reload_debounce_ms: 300}}\n",
    );
    let (generation, changed, restart) = applied(r.reload());
    assert_eq!(generation, 2);
    assert_eq!(
        changed,
        [
            "persistence.redis.pool_size",
            "persistence.state.reload_debounce_ms"
        ]
    );
    assert_eq!(restart, ["persistence.redis.pool_size"]);
    let g = r.current();
    assert_eq!(g.get("persistence.redis.pool_size"), Some(&json!(8)));
    assert_eq!(g.pending_restart, ["persistence.redis.pool_size"]);
}

/// Polls until `done` or the timeout.
async fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_applies_a_file_renamed_into_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yml", "a: 1\n");
    let r = reloader(dir.path());
    let cancel = CancellationToken::new();
    let task = r.spawn_watcher(cancel.clone()).expect("watching");
    let mut sub = r.subscribe();

    write_by_rename(dir.path(), "b.yml", "b: 2\n");
    assert!(
        eventually(Duration::from_secs(2), || r.current().generation == 2).await,
        "no reload after a rename; last: {:?}",
        r.last_outcome()
    );
    assert_eq!(*r.current().value, json!({"a": 1, "b": 2}));
    tokio::time::timeout(Duration::from_secs(1), sub.changed())
        .await
        .expect("subscriber notified")
        .expect("sender alive");
    assert_eq!(sub.borrow().generation, 2);

    // Replacing an existing file by rename is seen too.
    write_by_rename(dir.path(), "a.yml", "a: 3\n");
    assert!(eventually(Duration::from_secs(2), || r.stats().applied == 2).await);
    assert_eq!(r.current().generation, 3);
    assert_eq!(r.current().value["a"], 3);

    // Files that are not configuration do not reload.
    let before = r.stats();
    write(dir.path(), "notes.txt", "hello");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = r.stats();
    assert_eq!(
        (after.applied, after.unchanged, after.errors),
        (before.applied, before.unchanged, before.errors)
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("watcher stops on cancel")
        .expect("watcher task did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_writes_are_debounced_into_one_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yml", "n: 0\n");
    let mut cfg = state_config(&[dir.path()]);
    cfg.reload_debounce_ms = 300;
    let r = ConfigReloader::new(&cfg, Arc::new(PersistenceSchema)).expect("loads");
    let cancel = CancellationToken::new();
    let task = r.spawn_watcher(cancel.clone()).expect("watching");

    for n in 1..=5 {
        write_by_rename(dir.path(), "a.yml", &format!("n: {n}\n"));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        eventually(Duration::from_secs(3), || r.current().value["n"] == 5).await,
        "last write not applied: {:?}",
        r.current().value
    );
    // Let any trailing debounce window close before counting.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let g = r.current().generation;
    assert!(g <= 3, "5 rapid writes gave {} generations", g - 1);
    assert!(r.stats().applied <= 2);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("watcher stops on cancel")
        .expect("watcher task did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_keeps_the_running_config_on_an_invalid_edit() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yml",
        "persistence: {cache: {zstd_level: 3}}\n",
    );
    let r = reloader(dir.path());
    let cancel = CancellationToken::new();
    let task = r.spawn_watcher(cancel.clone()).expect("watching");
    write_by_rename(
        dir.path(),
        "a.yml",
        "persistence: {cache: {zstd_level: 0}}\n",
    );
    assert!(eventually(Duration::from_secs(2), || r.stats().errors >= 1).await);
    assert_eq!(r.current().generation, 1);
    let (_, last) = r.last_outcome().expect("recorded");
    let (file, key, _) = rejected(last);
    assert_eq!(file, Some(dir.path().join("a.yml")));
    assert_eq!(key, "persistence.cache.zstd_level");
    cancel.cancel();
    let _ = task.await;
}

/// A service schema: `server.port` must be a number below 65536; `server.listen` and
/// `server.port` need a restart.
struct ServiceSchema;

impl ConfigSchema for ServiceSchema {
    fn validate(&self, doc: &Value) -> Result<(), ConfigIssue> {
        match doc.pointer("/server/port") {
            None => Ok(()),
            Some(v) if v.as_u64().is_some_and(|p| p < 65_536) => Ok(()),
            Some(_) => Err(ConfigIssue::new("server.port", "a port number")),
        }
    }

    fn restart_only(&self) -> Vec<String> {
        vec!["server.port".into(), "server.listen".into()]
    }
}

#[test]
fn a_custom_schema_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "a.yml", "server: {port: 80, name: a}\n");
    let r =
        ConfigReloader::new(&state_config(&[dir.path()]), Arc::new(ServiceSchema)).expect("loads");
    assert_eq!(r.restart_only(), ["server.port", "server.listen"]);

    write(dir.path(), "a.yml", "server: {port: 70000, name: a}\n");
    let (f, key, reason) = rejected(r.reload());
    assert_eq!(
        (f, key.as_str(), reason.as_str()),
        (Some(file), "server.port", "a port number")
    );

    // The custom schema does not check `persistence`: this is its call.
    write(
        dir.path(),
        "a.yml",
        "server: {port: 81, name: b}\npersistence: {cache: {zstd_level: 99}}\n",
    );
    let (generation, changed, restart) = applied(r.reload());
    assert_eq!(generation, 2);
    assert_eq!(
        changed,
        ["persistence.cache.zstd_level", "server.name", "server.port"]
    );
    assert_eq!(restart, ["server.port"]);
}

#[test]
fn concurrent_readers_never_see_half_a_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yml", "left: 0\nright: 0\nbody: {n: 0}\n");
    let r = reloader(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (r, stop, reads) = (Arc::clone(&r), Arc::clone(&stop), Arc::clone(&reads));
            std::thread::spawn(move || {
                let mut last_generation = 0;
                while !stop.load(Ordering::Relaxed) {
                    let g = r.current();
                    assert_eq!(g.value["left"], g.value["right"], "torn config");
                    assert_eq!(g.value["left"], g.value["body"]["n"], "torn config");
                    assert!(g.generation >= last_generation, "generation went back");
                    last_generation = g.generation;
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for n in 1..=50 {
        write_by_rename(
            dir.path(),
            "a.yml",
            &format!("left: {n}\nright: {n}\nbody: {{n: {n}}}\n"),
        );
        let (generation, _, _) = applied(r.reload());
        assert_eq!(generation, n + 1);
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader saw a whole config every time");
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(r.current().generation, 51);
    assert_eq!(r.stats().applied, 50);
}
