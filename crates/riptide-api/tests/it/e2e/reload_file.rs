//! A reloaded configuration file that is empty, only comments, not YAML, or cut short
//! (a section of the running configuration gone) is refused by the running binary: the
//! log says why, `config_reload_total{result="error"}` counts it, and the running
//! generation stays. A complete file applies afterwards as usual.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::process::{Backend, Launch, Riptide, eventually};

/// The configuration file [`Launch`] wrote under `dir`.
fn config_file(dir: &Path) -> std::path::PathBuf {
    dir.join("conf").join("riptide.yml")
}

/// Replaces the configuration file with `text` by rename, as editors and ConfigMaps do.
pub fn replace_config(dir: &Path, text: &str) {
    let staged = dir.join("conf").join(".riptide.yml.staged");
    std::fs::write(&staged, text).expect("write the staged file");
    std::fs::rename(&staged, config_file(dir)).expect("rename it into place");
}

/// Rewrites the configuration file as `change` edits its document.
pub fn rewrite_config(dir: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let text = std::fs::read_to_string(config_file(dir)).expect("read the config");
    let mut doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    change(&mut doc);
    replace_config(dir, &serde_yaml_ng::to_string(&doc).expect("to YAML"));
}

async fn reload_errors(rt: &Riptide) -> f64 {
    rt.metrics()
        .await
        .value("config_reload_total", &[("result", "error")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_cut_files_are_refused_and_the_running_configuration_stays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &Backend::Embedded)
        .set("persistence.state.enable_hot_reload", json!(true))
        .set("persistence.state.reload_debounce_ms", json!(50))
        .set("persistence.cache.default_ttl_seconds", json!(7));
    let rt = Riptide::start(&launch).await;
    let full = std::fs::read_to_string(config_file(dir.path())).expect("read");
    let cut = &full[..full.find("persistence:").expect("persistence section") + 13];

    let bad = [
        ("", "no settings"),
        ("# everything commented out\n\n", "no settings"),
        (cut, "section"),
        ("persistence: [unclosed\n", "line"),
    ];
    for (n, (text, why)) in bad.iter().enumerate() {
        replace_config(dir.path(), text);
        let refused = n as f64 + 1.0;
        eventually(
            &format!("{text:?} refused"),
            Duration::from_secs(15),
            || async { reload_errors(&rt).await >= refused },
        )
        .await;
        let last = rt
            .log()
            .lines()
            .rev()
            .find(|l| l.contains("configuration rejected"))
            .map(str::to_owned);
        assert!(
            last.as_deref().is_some_and(|l| l.contains(why)),
            "{text:?}: {last:?}"
        );
        let state = rt
            .admin_json(Method::GET, "/admin/state/current", None, 200)
            .await;
        assert_eq!(state["config"]["generation"], 1, "{text:?}: {state}");
    }

    // A complete file with a change applies.
    replace_config(
        dir.path(),
        &full.replace("default_ttl_seconds: 7", "default_ttl_seconds: 8"),
    );
    eventually(
        "the complete file applied",
        Duration::from_secs(15),
        || async {
            let state = rt
                .admin_json(Method::GET, "/admin/state/current", None, 200)
                .await;
            state["config"]["generation"] == 2
        },
    )
    .await;
    assert_eq!(reload_errors(&rt).await, 4.0);
    rt.stop().await;
}
