//! Hot reload through the running service: a changed file becomes a new configuration
//! generation, a bad one is refused while the service keeps serving.

use std::path::Path;
use std::time::{Duration, Instant};

use riptide_api::config::{self, Overrides};

use crate::support::{TestServer, json_of};

/// Replaces `file` the way editors and deploy tools do: write a temp file, rename it.
fn replace(file: &Path, text: &str) {
    let staged = file.with_extension("yml.tmp");
    std::fs::write(&staged, text).expect("write staged config");
    std::fs::rename(&staged, file).expect("rename over the config");
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not seen within 15 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_the_loaded_file_reload_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).expect("mkdir");
    let file = conf.join("riptide.yml");
    let text = |level: &str, timeout_ms: u64| {
        format!(
            "server:\n  request_timeout_ms: {timeout_ms}\nlog:\n  level: {level}\n\
             persistence:\n  state:\n    enable_hot_reload: true\n    reload_debounce_ms: 50\n"
        )
    };
    std::fs::write(&file, text("info", 30_000)).expect("write config");
    let data = dir.path().join("data");
    let env = |name: &str| (name == "RIPTIDE_DATA_DIR").then(|| data.clone().into_os_string());
    // As `riptide serve --config <file>` loads it: hot reload watches the file's directory.
    let cfg = config::load(Some(&file), &env, &Overrides::default()).expect("config loads");
    assert_eq!(
        cfg.persistence.state.config_watch_paths,
        [conf.display().to_string()]
    );
    let server = TestServer::start_config(cfg, dir).await;
    let state = server.state.state_manager.clone();
    assert_eq!(state.current_state().await.config.generation, 1);

    // An unknown level: refused, generation 1 keeps running, requests are served.
    replace(&file, &text("chatty", 30_000));
    eventually("the bad edit is refused", || async {
        state.current_state().await.reloads.errors >= 1
    })
    .await;
    let report = state.current_state().await;
    assert_eq!(report.config.generation, 1);
    let last = serde_json::to_string(&report.reloads.last).expect("serialize");
    assert!(last.contains("log.level"), "{last}");
    json_of(server.get("/healthz").await, 200).await;

    // A valid edit: generation 2, with the restart-only change reported as pending.
    replace(&file, &text("debug", 5_000));
    eventually("the edit is applied", || async {
        state.current_state().await.config.generation == 2
    })
    .await;
    let generation = state.config_generation();
    assert_eq!(
        generation.get("log.level"),
        Some(&serde_json::json!("debug"))
    );
    assert_eq!(generation.pending_restart, ["server.request_timeout_ms"]);
    json_of(server.get("/healthz").await, 200).await;

    server.stop().await.expect("clean shutdown");
}
