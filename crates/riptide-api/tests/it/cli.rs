//! The admin commands of the real `riptide` binary against a service started in-process:
//! every command once, tables and `--json`, the warm job's progress to its end, and the
//! exit codes of API errors (1), unreachable services (1) and bad command lines (2).
//! Each run is a spawned process, so steps are grouped into few tests.

use std::path::Path;
use std::process::Stdio;

use riptide_persistence::tenant::BillingPlan;
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

use crate::pages::Pages;
use crate::support::{TestServer, admin_token, allow_loopback, tenant_with_key};

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

/// What a run printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "{self:#?}");
        self.stdout
    }

    /// Asserts exit code 0 and parses stdout as JSON.
    fn json(self) -> Value {
        let stdout = self.ok();
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Asserts exit code `code`, an empty stdout and `riptide: ...` on stderr; returns
    /// stderr.
    fn fails(self, code: i32) -> String {
        assert_eq!(self.code, code, "{self:#?}");
        assert!(self.stdout.is_empty(), "{self:#?}");
        self.stderr
    }
}

/// Runs the binary in `dir` with `args` and none of the test's environment.
async fn run_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run riptide");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Runs admin commands against one server with one token, from an empty directory.
struct Cli {
    url: String,
    token: String,
    dir: TempDir,
}

impl Cli {
    fn new(server: &TestServer) -> Self {
        Self {
            url: server.url(""),
            token: admin_token(server),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `riptide <args> --url <server> --token <token>`.
    async fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--url", &self.url, "--token", &self.token]);
        run_in(self.dir.path(), &all).await
    }

    /// As [`Self::run`] with `--json`, expecting success.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).await.json()
    }
}

fn str_of<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
}

#[tokio::test]
async fn tenants_and_keys_from_create_to_delete() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);

    let created = cli
        .run(&[
            "tenants",
            "create",
            "cli-acme",
            "--name",
            "Acme",
            "--owner-email",
            "ops@acme.example",
            "--owner-name",
            "Ops",
            "--plan",
            "basic",
        ])
        .await
        .ok();
    assert!(
        created.contains("cli-acme") && created.contains("basic"),
        "{created}"
    );

    let list = cli.run(&["tenants", "list"]).await.ok();
    assert!(list.contains("cli-acme") && list.contains("Acme"), "{list}");
    assert!(list.contains("tenants 1-1 of 1"), "{list}");

    let tenant = cli.json(&["tenants", "get", "cli-acme"]).await;
    assert_eq!(tenant["tenant_id"], "cli-acme");
    assert_eq!(tenant["status"], "active");

    let updated = cli
        .json(&[
            "tenants",
            "update",
            "cli-acme",
            "--name",
            "Acme Corp",
            "--plan",
            "professional",
            "--organization",
            "Acme Holdings",
            "--deny",
            "crawl",
        ])
        .await;
    assert_eq!(updated["name"], "Acme Corp");
    assert_eq!(updated["policy"]["deny"], serde_json::json!(["crawl"]));
    assert_eq!(updated["plan"], "professional");
    assert_eq!(updated["owner"]["organization"], "Acme Holdings");
    assert_eq!(updated["owner"]["email"], "ops@acme.example", "owner kept");

    let suspended = cli
        .run(&[
            "tenants",
            "suspend",
            "cli-acme",
            "--reason",
            "unpaid invoice",
        ])
        .await
        .ok();
    assert!(
        suspended.contains("suspended") && suspended.contains("unpaid invoice"),
        "{suspended}"
    );
    let resumed = cli.json(&["tenants", "resume", "cli-acme"]).await;
    assert_eq!(resumed["status"], "active");

    let key = cli
        .json(&["keys", "create", "cli-acme", "--name", "ci"])
        .await;
    let key_id = str_of(&key, "key_id").to_owned();
    assert!(!str_of(&key, "secret").is_empty());
    let listed = cli.run(&["keys", "list", "cli-acme"]).await.ok();
    assert!(
        listed.contains(&key_id) && listed.contains("active"),
        "{listed}"
    );

    let rotated = cli.run(&["keys", "rotate", "cli-acme", &key_id]).await.ok();
    assert!(
        rotated.contains("replaces") && rotated.contains(&key_id),
        "{rotated}"
    );
    let keys = cli.json(&["keys", "list", "cli-acme"]).await;
    let new_id = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| str_of(k, "key_id"))
        .find(|id| *id != key_id)
        .expect("the rotated key")
        .to_owned();

    let revoked = cli.run(&["keys", "revoke", "cli-acme", &new_id]).await.ok();
    assert!(revoked.contains("revoked"), "{revoked}");
    let keys = cli.json(&["keys", "list", "cli-acme"]).await;
    let new_key = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["key_id"] == new_id.as_str())
        .expect("still listed");
    assert!(new_key["revoked_at"].is_string(), "{new_key}");

    let deleted = cli.run(&["tenants", "delete", "cli-acme"]).await.ok();
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = cli.run(&["tenants", "get", "cli-acme"]).await.fails(1);
    assert!(
        gone.starts_with("riptide: ") && gone.contains("(not_found, HTTP 404)"),
        "{gone}"
    );
}

#[tokio::test]
async fn jwt_keys_create_list_revoke() {
    let server = TestServer::start().await;
    tenant_with_key(&server, "cli-jwt", BillingPlan::Basic, &[]).await;
    let cli = Cli::new(&server);

    let hs = cli
        .json(&[
            "jwt-keys",
            "create",
            "cli-jwt",
            "--algorithm",
            "HS256",
            "--name",
            "issuer",
        ])
        .await;
    let hs_kid = str_of(&hs, "kid").to_owned();
    assert_eq!(str_of(&hs, "secret").len(), 43, "{hs}");

    let pem = cli.dir.path().join("ed25519.pem");
    std::fs::write(&pem, riptide_test_support::jwt::ED25519_PUBLIC_PEM).expect("write pem");
    let pem = pem.to_str().expect("UTF-8 path");
    let ed = cli
        .run(&[
            "jwt-keys",
            "create",
            "cli-jwt",
            "--algorithm",
            "EdDSA",
            "--public-key",
            pem,
        ])
        .await
        .ok();
    assert!(ed.contains("EdDSA") && !ed.contains("secret"), "{ed}");

    let listed = cli.run(&["jwt-keys", "list", "cli-jwt"]).await.ok();
    assert!(
        listed.contains(&hs_kid) && listed.contains("HS256") && listed.contains("EdDSA"),
        "{listed}"
    );
    let revoked = cli
        .run(&["jwt-keys", "revoke", "cli-jwt", &hs_kid])
        .await
        .ok();
    assert!(revoked.contains("revoked"), "{revoked}");
    let keys = cli.json(&["jwt-keys", "list", "cli-jwt"]).await;
    let hs_listed = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == hs_kid.as_str())
        .expect("still listed");
    assert!(hs_listed["revoked_at"].is_string(), "{hs_listed}");

    let missing_pem = cli
        .run(&["jwt-keys", "create", "cli-jwt", "--algorithm", "RS256"])
        .await
        .fails(1);
    assert!(missing_pem.contains("HTTP 400"), "{missing_pem}");
}

#[tokio::test]
async fn cache_state_and_audit() {
    let pages = Pages::start().await;
    let server = TestServer::start_with(allow_loopback).await;
    tenant_with_key(&server, "cli-cache", BillingPlan::Basic, &[]).await;
    let cli = Cli::new(&server);
    let page = pages.url("/pages/article.html");

    let stats = cli.run(&["cache", "stats"]).await.ok();
    assert!(
        stats.contains("HIT RATE") && stats.contains("L1"),
        "{stats}"
    );

    let warmed = cli
        .run(&["cache", "warm", "--tenant", "cli-cache", "--page", &page])
        .await
        .ok();
    assert!(
        warmed.contains("done: 1/1 pairs (1 warmed, 0 fresh, 0 skipped, 0 failed)"),
        "{warmed}"
    );
    assert_eq!(pages.hits("/pages/article.html"), 1);
    let job = cli
        .json(&["cache", "warm", "--tenant", "cli-cache", "--page", &page])
        .await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        (job["done"].as_u64(), job["total"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(job["fresh"], 1, "already cached: {job}");

    let tenant_stats = cli.json(&["cache", "stats", "--tenant", "cli-cache"]).await;
    assert_eq!(tenant_stats["store"]["entries"], 1, "{tenant_stats}");

    let invalidated = cli
        .json(&[
            "cache",
            "invalidate",
            "--tenant",
            "cli-cache",
            "--page",
            &page,
        ])
        .await;
    assert_eq!(invalidated["removed"], 1, "{invalidated}");
    let cleared = cli
        .run(&["cache", "clear", "--tenant", "cli-cache"])
        .await
        .ok();
    assert!(cleared.contains("cleared tenant cli-cache"), "{cleared}");

    let current = cli.run(&["state", "current"]).await.ok();
    assert!(
        current.contains("config generation") && current.contains("embedded"),
        "{current}"
    );
    let checkpoint = cli.json(&["state", "checkpoint"]).await;
    let id = str_of(&checkpoint, "id").to_owned();
    let listed = cli.run(&["state", "checkpoints"]).await.ok();
    assert!(listed.contains(&id), "{listed}");
    let dry = cli.json(&["state", "restore", &id, "--dry-run"]).await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    let restored = cli.run(&["state", "restore", &id]).await.ok();
    assert!(
        restored.starts_with(&format!("restored checkpoint {id}")),
        "{restored}"
    );
    let reload = cli.run(&["state", "reload"]).await.ok();
    assert!(reload.contains("configuration"), "{reload}");

    let audit = cli
        .json(&["audit", "--tenant", "cli-cache", "--action", "cache"])
        .await;
    let operations: Vec<&str> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| str_of(r, "operation"))
        .collect();
    assert_eq!(
        operations,
        [
            "cache.warm",
            "cache.warm",
            "cache.invalidate",
            "cache.clear"
        ]
    );
    let table = cli
        .run(&[
            "audit", "--action", "state", "--since", "1h", "--limit", "10",
        ])
        .await
        .ok();
    for operation in ["state.checkpoint", "state.restore", "state.reload"] {
        assert!(table.contains(operation), "{operation}: {table}");
    }
    let none = cli.run(&["audit", "--until", "2001-01-01"]).await.ok();
    assert_eq!(none.trim(), "no audit records match");
}

#[tokio::test]
async fn admin_tokens_and_roles() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    let created = cli
        .json(&[
            "tokens",
            "create",
            "--name",
            "cli-viewer",
            "--role",
            "viewer",
        ])
        .await;
    let token_id = str_of(&created, "token_id").to_owned();
    let viewer = Cli {
        token: str_of(&created, "token").to_owned(),
        ..Cli::new(&server)
    };
    let listed = cli.run(&["tokens", "list"]).await.ok();
    assert!(
        listed.contains("cli-viewer") && listed.contains(&token_id),
        "{listed}"
    );

    viewer.run(&["tenants", "list"]).await.ok();
    let refused = viewer.run(&["cache", "clear", "--all"]).await.fails(1);
    assert!(
        refused.contains("(insufficient_role, HTTP 403)"),
        "{refused}"
    );

    cli.run(&["tokens", "revoke", &token_id]).await.ok();
    let revoked = viewer.run(&["tenants", "list"]).await.fails(1);
    assert!(revoked.contains("HTTP 401"), "{revoked}");
}

#[tokio::test]
async fn errors_and_exit_codes() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    let url = server.url("");

    let wrong = Cli {
        token: "not-a-token".to_owned(),
        ..Cli::new(&server)
    };
    let stderr = wrong.run(&["tenants", "list"]).await.fails(1);
    assert_eq!(
        stderr.trim(),
        "riptide: invalid admin token (unauthorized, HTTP 401)"
    );

    let unknown = cli.run(&["keys", "list", "nobody"]).await.fails(1);
    assert!(unknown.contains("not_found, HTTP 404"), "{unknown}");

    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = tempfile::tempdir().expect("dir");
    let stderr = run_in(
        dir.path(),
        &["state", "current", "--url", &dead, "--token", "t"],
    )
    .await
    .fails(1);
    assert!(
        stderr.starts_with(&format!("riptide: could not reach {dead}/")),
        "{stderr}"
    );

    // No --token and no token file: the file it looked for is named.
    let stderr = run_in(dir.path(), &["tenants", "list", "--url", &url])
        .await
        .fails(1);
    assert!(
        stderr.contains("no admin token") && stderr.contains("./data/admin-token"),
        "{stderr}"
    );
    // The token file is read when no token is given.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", admin_token(&server))).expect("write");
    let token_file = token_file.display().to_string();
    run_in(
        dir.path(),
        &[
            "tenants",
            "list",
            "--url",
            &url,
            "--token-file",
            &token_file,
        ],
    )
    .await
    .ok();

    for bad in [
        &["tenants", "frobnicate"][..],
        &["cache", "clear"],
        &["cache", "invalidate", "--page", "http://x/"],
        &["audit", "--limit", "0"],
        &["--listen", "127.0.0.1:1", "tenants", "list"],
    ] {
        let stderr = run_in(dir.path(), bad).await.fails(2);
        assert!(stderr.contains("error:"), "{bad:?}: {stderr}");
    }
}

#[tokio::test]
async fn state_reload_applies_or_refuses() {
    let conf = tempfile::tempdir().expect("conf dir");
    let file = conf.path().join("riptide.yml");
    let level = |level: &str| format!("log:\n  level: {level}\n");
    std::fs::write(&file, level("info")).expect("write config");
    let dir = conf.path().display().to_string();
    let server = TestServer::start_with(|cfg| {
        // Read by the reload only (no watcher racing the command).
        cfg.persistence.state.enable_hot_reload = false;
        cfg.persistence.state.config_watch_paths = vec![dir];
    })
    .await;
    let cli = Cli::new(&server);

    std::fs::write(&file, level("debug")).expect("edit config");
    let applied = cli.run(&["state", "reload"]).await.ok();
    assert_eq!(
        applied.trim(),
        "configuration generation 2 applied; changed: log.level"
    );

    std::fs::write(&file, level("chatty")).expect("edit config");
    let run = cli.run(&["state", "reload"]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("configuration refused"), "{run:#?}");
    assert!(
        run.stderr
            .starts_with("riptide: the configuration was refused: log.level: "),
        "{run:#?}"
    );
    assert_eq!(server.state.state_manager.config_generation().generation, 2);
}
