//! Data at rest: the binary started with umask 022, as a service manager or a shell
//! commonly does, in a data directory an earlier install left at mode 0755. After a run
//! that writes everything it writes (the store, secrets, the bootstrap admin token, a
//! session spilled at shutdown, the final checkpoint), every directory under the data
//! directory, itself included, is 0700 and every file 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::process::{Backend, Launch, Riptide, json_body};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every directory and file under `root`, `root` first.
fn walk(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut dirs, mut files) = (vec![root.to_owned()], Vec::new());
    let mut i = 0;
    while i < dirs.len() {
        let entries = std::fs::read_dir(&dirs[i]).expect("list");
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
        i += 1;
    }
    (dirs, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_written_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let launch = Launch::new(dir.path(), &Backend::Embedded).umask(0o022);
    let rt = Riptide::start(&launch).await;
    let acme = rt.create_tenant("acme", "basic", json!({})).await;
    let created = rt
        .post(
            &acme,
            "/sessions",
            json!({"headers": {"cookie": "sid=private"}, "ttl_seconds": 600}),
        )
        .await;
    json_body(created, 201).await;
    let stopped = rt.stop().await;

    let (dirs, files) = walk(&data);
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&data)
                .expect("under data")
                .display()
                .to_string()
        })
        .collect();
    for expected in ["riptide.redb", "api_key_pepper", "admin-token"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    for (what, prefix, suffix) in [
        ("a checkpoint", "checkpoints/", ".ckpt"),
        ("a spilled session", "sessions/acme/", ".session"),
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(suffix)),
            "{what} missing: {names:?}\n{}",
            stopped.log
        );
    }
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert!(
        stopped.log.contains("narrowed to mode 700"),
        "the open data directory is reported:\n{}",
        stopped.log
    );
}
