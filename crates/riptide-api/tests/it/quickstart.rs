//! The README's quickstart, run as written.
//!
//! `cargo run --release` builds and runs the `riptide` binary with no arguments in the
//! repository root: this test runs that same binary (the test profile's build of it) with
//! no arguments in a directory holding a copy of `config/riptide.yml`, so it starts on the
//! embedded store under `./data` exactly as a new user's does. Two changes, both outside
//! the README's commands: the listen port is a free one (`RIPTIDE_LISTEN`, as the README's
//! `RIPTIDE` variable allows) and, because there is no internet here, the page extracted
//! is a local fixture page, which the SSRF guard refuses unless the config copy allows
//! 127.0.0.1 (the README's `PAGE` variable names the page).
//!
//! Then every ```sh block of the README's "Quickstart" section runs, in order, as one bash
//! script with `set -euo pipefail`, and its output must show MISS then HIT, the usage and
//! the metrics. `cargo test --workspace`, the README's other command, is what CI runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pages::Pages;

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ```sh blocks of the README section headed `## Quickstart`, in order.
fn quickstart_script(readme: &str) -> String {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Quickstart"))
        .expect("README has a ## Quickstart section");
    let mut script = String::new();
    let mut in_block = false;
    for line in section.lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, code) => {
                script.push_str(code);
                script.push('\n');
            }
            (false, _) => {}
        }
    }
    assert!(!in_block, "unterminated ```sh block in the quickstart");
    script
}

fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the README's quickstart needs `{tool}` on PATH: apt-get install -y curl jq"
    );
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_works_as_written() {
    require_tool("curl");
    require_tool("jq");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    assert!(
        readme.contains("cargo run --release") && readme.contains("cargo test --workspace"),
        "the README leads with its two commands"
    );
    let script = quickstart_script(&readme);
    for step in ["/admin/tenants", "/keys", "/extract", "/usage", "/metrics"] {
        assert!(script.contains(step), "the quickstart shows {step}");
    }

    let pages = Pages::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = std::fs::read_to_string(repo_root().join("config/riptide.yml")).expect("config");
    let allowed = config.replace(
        "\n  allow_addresses: []\n",
        "\n  allow_addresses: [\"127.0.0.1/32\"]\n",
    );
    assert_ne!(
        allowed, config,
        "config/riptide.yml has extract.allow_addresses: []"
    );
    std::fs::create_dir(dir.path().join("config")).expect("config dir");
    std::fs::write(dir.path().join("config/riptide.yml"), allowed).expect("config copy");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let child = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("RIPTIDE_LISTEN", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn riptide");
    let mut running = Running(child);
    let token_file = dir.path().join("data/admin-token");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(token_file.exists() && ready(&addr.to_string()).await) {
        if let Some(status) = running.0.try_wait().expect("try_wait") {
            panic!("riptide exited before serving: {status}");
        }
        assert!(Instant::now() < deadline, "riptide never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("RIPTIDE", format!("http://{addr}"))
        .env("PAGE", pages.url("/pages/article.html"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );

    let caches: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("x-cache: "))
        .map(str::trim)
        .collect();
    assert_eq!(caches, ["MISS", "HIT"], "{stdout}");
    assert_eq!(
        pages.hits("/pages/article.html"),
        1,
        "one fetch, then the cache"
    );
    assert!(stdout.contains("\"tenant_id\": \"acme\""), "{stdout}");
    assert!(stdout.contains("\"content_hash\""), "{stdout}");
    assert!(stdout.contains("\"period\""), "{stdout}");
    assert!(stdout.contains("\"operations_per_minute\""), "{stdout}");
    assert!(
        stdout.contains("http_requests_total{") && stdout.contains("cache_operations_total{"),
        "{stdout}"
    );

    // The README points at the command line's help.
    let help = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("riptide --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for command in [
        "serve", "tenants", "keys", "cache", "state", "audit", "tokens",
    ] {
        assert!(help.contains(command), "--help lists {command}: {help}");
    }
}

async fn ready(addr: &str) -> bool {
    let url = format!("http://{addr}/readyz");
    reqwest::get(url).await.is_ok_and(|r| r.status() == 200)
}
