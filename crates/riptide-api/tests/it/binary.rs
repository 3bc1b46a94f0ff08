//! The real `riptide` binary: serves with no setup, stops cleanly on SIGTERM, and refuses
//! bad configuration with exit code 2.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

/// A command for the binary in `dir`, with none of the test's environment.
fn riptide(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear().stdin(Stdio::null());
    command
}

fn free_port() -> u16 {
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
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run_to_exit(riptide(dir.path()).env("RIPTIDE_LISTEN", "not-an-address"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RIPTIDE_LISTEN") && stderr.contains("server.listen"),
        "{stderr}"
    );
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
    let env = |_: &str| None;
    let config = riptide_api::config::load(Some(&shipped), &env, &Default::default())
        .expect("config/riptide.yml loads");
    assert_eq!(
        config,
        riptide_api::config::AppConfig::default(),
        "it documents the defaults"
    );
}
