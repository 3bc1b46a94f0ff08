//! The real `riptide` binary: serves with no setup, stops cleanly on SIGTERM, and refuses
//! bad configuration with exit code 2.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

/// A command for the binary in `dir`, with none of the test's environment.
pub(crate) fn riptide(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear().stdin(Stdio::null());
    command
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "riptide did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serves_until_sigterm_then_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let port = free_port();
    let child = riptide(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RIPTIDE_DATA_DIR", &data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn riptide");
    let mut running = Running(child);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(&url).send().await {
            assert_eq!(response.status(), 200);
            break;
        }
        if let Some(status) = running.0.try_wait().expect("try_wait") {
            panic!("riptide exited before serving: {status}");
        }
        assert!(Instant::now() < deadline, "riptide never answered /healthz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        data_dir.join("riptide.redb").exists(),
        "embedded store under RIPTIDE_DATA_DIR"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = wait_for_exit(&mut running.0, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status}");
}

fn run_to_exit(command: &mut Command) -> Output {
    command.output().expect("run riptide")
}

#[test]
fn a_bad_variable_exits_2_naming_it() {
    let cases = [
        ("RIPTIDE_LISTEN", "not-an-address", "server.listen"),
        (
            "ENABLE_MULTI_TENANCY",
            "perhaps",
            "persistence.tenant.enabled",
        ),
        (
            "ENABLE_HOT_RELOAD",
            "2",
            "persistence.state.enable_hot_reload",
        ),
        (
            "RIPTIDE_MASTER_KEY",
            "hunter2-not-base64!",
            "persistence.tenant.master_key",
        ),
        (
            "RIPTIDE_API_KEY_PEPPER",
            "c2hvcnQ=",
            "persistence.tenant.api_key_pepper",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (var, value, key) in cases {
        let out = run_to_exit(riptide(dir.path()).env(var, value));
        assert_eq!(out.status.code(), Some(2), "{var}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var) && stderr.contains(key), "{stderr}");
        if var.ends_with("_KEY") || var.ends_with("_PEPPER") {
            assert!(!stderr.contains(value), "secret echoed: {stderr}");
        }
    }
}

#[test]
fn an_unknown_key_in_the_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("riptide.yml");
    std::fs::write(&file, "server:\n  listen_addr: 127.0.0.1:1\n").expect("write config");
    let out = run_to_exit(riptide(dir.path()).arg("--config").arg(&file));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listen_addr") && stderr.contains("riptide.yml"),
        "{stderr}"
    );
}

#[test]
fn the_default_file_is_read_from_the_working_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("config")).expect("mkdir");
    std::fs::write(
        dir.path().join("config/riptide.yml"),
        "server:\n  request_timeout_ms: 0\n",
    )
    .expect("write config");
    let out = run_to_exit(&mut riptide(dir.path()));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.request_timeout_ms") && stderr.contains("config/riptide.yml"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_config_file_is_valid() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/riptide.yml");
    let (as_written, _) =
        riptide_api::config::load::read_file(&shipped).expect("config/riptide.yml parses");
    assert_eq!(
        as_written,
        riptide_api::config::AppConfig::default(),
        "it documents the defaults"
    );
    let env = |_: &str| None;
    let config = riptide_api::config::load(Some(&shipped), &env, &Default::default())
        .expect("config/riptide.yml loads");
    // The one default that depends on the file: hot reload watches its directory.
    assert_eq!(
        config.persistence.state.config_watch_paths,
        [riptide_api::config::provenance::directory_of(&shipped)]
    );
}

/// The binary with `config` as its configuration file (in `dir/conf`), its data in
/// `dir/data` and its stdout in `dir/stdout.log`, serving on a free port.
pub(crate) struct Served {
    running: Running,
    pub(crate) port: u16,
    stdout: std::path::PathBuf,
}

impl Served {
    pub(crate) async fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).expect("mkdir conf");
        std::fs::write(conf.join("riptide.yml"), config).expect("write config");
        let stdout = dir.join("stdout.log");
        let port = free_port();
        let mut command = riptide(dir);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(conf.join("riptide.yml"))
            .env("RIPTIDE_DATA_DIR", dir.join("data"))
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(Stdio::inherit());
        for (var, value) in env {
            command.env(var, value);
        }
        let mut served = Self {
            running: Running(command.spawn().expect("spawn riptide")),
            port,
            stdout,
        };
        served.wait_healthy().await;
        served
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(&url).send().await {
                assert_eq!(response.status(), 200);
                return;
            }
            if let Some(status) = self.running.0.try_wait().expect("try_wait") {
                panic!("riptide exited before serving: {status}\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "riptide never answered /healthz");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub(crate) async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never logged:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status and the whole log.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.running.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let status = wait_for_exit(&mut self.running.0, Duration::from_secs(15));
        (status, self.log())
    }
}

#[tokio::test]
async fn sigterm_takes_the_final_checkpoint_and_logs_the_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints-here");
    let config = format!(
        "persistence:\n  state:\n    checkpoint_on_shutdown: true\n    checkpoint_dir: {}\n",
        checkpoints.display()
    );
    let served = Served::start(dir.path(), &config, &[]).await;
    let (status, log) = served.terminate();
    assert_eq!(status.code(), Some(0), "{status}\n{log}");
    assert!(
        log.contains("shutdown report: every step completed"),
        "{log}"
    );
    for step in ["flush usage", "final checkpoint", "leave coordination"] {
        assert!(log.contains(step), "{step} missing from the report:\n{log}");
    }
    let written: Vec<_> = std::fs::read_dir(&checkpoints)
        .expect("checkpoint dir exists")
        .collect();
    assert!(!written.is_empty(), "no checkpoint file in {checkpoints:?}");
    // Secrets were generated with the store, under RIPTIDE_DATA_DIR.
    assert!(dir.path().join("data/api_key_pepper").exists(), "{log}");
}

#[tokio::test]
async fn a_live_log_level_change_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |level: &str| {
        format!(
            "log:\n  level: {level}\n\
             persistence:\n  state:\n    enable_hot_reload: true\n    reload_debounce_ms: 50\n"
        )
    };
    let served = Served::start(dir.path(), &config("warn"), &[]).await;
    assert!(
        !served.log().contains("riptide serving"),
        "info is filtered"
    );

    let file = dir.path().join("conf/riptide.yml");
    let staged = dir.path().join("conf/riptide.yml.tmp");
    std::fs::write(&staged, config("info")).expect("write");
    std::fs::rename(&staged, &file).expect("rename");
    served.wait_for_log("log.level applied").await;

    let (status, log) = served.terminate();
    assert_eq!(status.code(), Some(0), "{status}\n{log}");
    assert!(log.contains("shutdown report"), "info is shown now:\n{log}");
    assert!(!log.contains("riptide serving"), "{log}");
}

#[tokio::test]
async fn multi_tenancy_off_creates_the_default_tenant() {
    use std::sync::{Arc, RwLock};

    use riptide_persistence::config::{PersistenceConfig, TenancyConfig};
    use riptide_persistence::tenant::{TenantManager, TenantMetrics};

    let dir = tempfile::tempdir().expect("temp dir");
    let served = Served::start(dir.path(), "", &[("ENABLE_MULTI_TENANCY", "false")]).await;
    let (status, log) = served.terminate();
    assert_eq!(status.code(), Some(0), "{status}\n{log}");

    // The store it left behind, opened with multi-tenancy on (which creates nothing).
    let data = dir.path().join("data");
    let store = PersistenceConfig::default()
        .open_store(&data.display().to_string())
        .await
        .expect("reopen the store");
    let tenants = TenantManager::with_store(
        store,
        TenancyConfig {
            secrets_dir: data,
            ..TenancyConfig::default()
        },
        Arc::new(RwLock::new(TenantMetrics::new())),
        riptide_persistence::clock::system_clock(),
    )
    .await
    .expect("tenant manager");
    let tenant = tenants.get_tenant("default").await.expect("read");
    assert!(tenant.is_some(), "no default tenant:\n{log}");
    tenants.shutdown().await;
}
