//! Fencing of singleton jobs with two real binaries on one Redis: the scheduled
//! checkpoint's leader is paused with SIGSTOP in the middle of a checkpoint, for longer
//! than its lease; the other instance takes the lease over and checkpoints; then the
//! first is resumed with SIGCONT. Its checkpoint run goes on, but the fenced write that
//! would record it is refused by the store: the refusal shows on its `/metrics`
//! (`sync_fenced_writes_refused_total{job="checkpoint"}`) and in its log, and its
//! checkpoint never appears in its checkpoint directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::process::{Backend, Launch, Riptide, eventually};

const ADMIN_TOKEN: &str = "e2e-admin-token-shared-by-the-fenced-instances";
const SHARED_SECRET: &str = "ZTJlLWZlbmNpbmctc2hhcmVkLXNlY3JldC0zMmJ5dGU=";

/// The singleton lease: short, so the pause outlasts it quickly.
const LEASE_TTL_MS: u64 = 1_000;

/// Tenants in the store, so that a checkpoint takes long enough to be paused in.
const TENANTS: usize = 150;

const JOB: &str = "checkpoint";
const REFUSED: &str = "sync_fenced_writes_refused_total";

fn launch(dir: &Path, backend: &Backend) -> Launch {
    Launch::new(dir, backend)
        .set("persistence.sync.lease_ttl_ms", json!(LEASE_TTL_MS))
        .set("persistence.state.checkpoint_interval_seconds", json!(1))
        .set(
            "persistence.state.checkpoint_dir",
            json!(checkpoint_dir(dir).to_str().expect("UTF-8 path")),
        )
        .set("persistence.state.checkpoint_retention", json!(1000))
        // A paused process's commands must not time out on its own clock when it resumes.
        .set("persistence.redis.command_timeout_ms", json!(30_000))
        .env("RIPTIDE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RIPTIDE_API_KEY_PEPPER", SHARED_SECRET)
        .env("RIPTIDE_MASTER_KEY", SHARED_SECRET)
}

fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join("ckpt")
}

/// Names in `dir` (none when it does not exist yet).
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map_or_else(
        |_| Vec::new(),
        |entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        },
    )
}

/// The id of the checkpoint being written in `dir` (its `.<id>.ckpt.tmp`), if any.
fn in_progress(dir: &Path) -> Option<String> {
    names(dir).into_iter().find_map(|n| {
        n.strip_prefix('.')?
            .strip_suffix(".ckpt.tmp")
            .map(str::to_owned)
    })
}

fn checkpoints(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter_map(|n| n.strip_suffix(".ckpt").map(str::to_owned))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

fn signal(instance: &Riptide, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &instance.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {sig} failed: {sent}");
}

async fn leads(instance: &Riptide) -> bool {
    instance
        .metrics()
        .await
        .value("sync_leader", &[("job", JOB)])
        == 1.0
}

async fn refused(instance: &Riptide) -> f64 {
    instance.metrics().await.value(REFUSED, &[("job", JOB)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_checkpoint_leader_is_fenced_after_it_resumes() {
    let backend = Backend::shared_redis();
    let dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let a = Riptide::start(&launch(dirs[0].path(), &backend)).await;
    eventually(
        "A holds the checkpoint lease",
        Duration::from_secs(10),
        || leads(&a),
    )
    .await;
    let b = Riptide::start(&launch(dirs[1].path(), &backend)).await;
    for i in 0..TENANTS {
        a.create_tenant(&format!("fenced-{i}"), "professional", json!({}))
            .await;
    }
    let (a_dir, b_dir) = (
        checkpoint_dir(dirs[0].path()),
        checkpoint_dir(dirs[1].path()),
    );
    assert!(!leads(&b).await, "B waits while A holds the lease");

    // Stop A while one of its scheduled checkpoints is being written (its temp file
    // exists); when the stop came too late, resume at once (well within the lease) and
    // wait for the next one.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stale_id = loop {
        assert!(Instant::now() < deadline, "A never caught mid-checkpoint");
        if in_progress(&a_dir).is_some() {
            signal(&a, "-STOP");
            match in_progress(&a_dir) {
                Some(id) => break id,
                None => signal(&a, "-CONT"),
            }
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    println!("A stopped while writing checkpoint {stale_id}");

    // B takes the lease over once A's has expired, and checkpoints under it.
    eventually("B takes the lease over", Duration::from_secs(10), || {
        leads(&b)
    })
    .await;
    eventually("B checkpoints", Duration::from_secs(10), || async {
        !checkpoints(&b_dir).is_empty()
    })
    .await;
    // No bound on how long A was stopped: its last renewal may predate the stop by most of a
    // lease on a loaded machine, so B can rightly take over sooner than one lease after it.
    let b_ckpts = checkpoints(&b_dir);
    println!("B took over and wrote {b_ckpts:?}");

    // A resumes: its run goes on, and its fenced record is refused.
    signal(&a, "-CONT");
    let took = eventually(
        "A's refused write on its /metrics",
        Duration::from_secs(10),
        || async { refused(&a).await >= 1.0 },
    )
    .await;
    println!("A's write refused {took:?} after SIGCONT");
    assert!(!leads(&a).await, "A no longer leads");
    assert!(leads(&b).await, "B still leads");
    assert_eq!(refused(&b).await, 0.0, "B was never refused");
    assert!(
        !checkpoints(&a_dir).contains(&stale_id),
        "the stale checkpoint {stale_id} was not kept: {:?}",
        names(&a_dir)
    );
    assert_ne!(
        in_progress(&a_dir).as_deref(),
        Some(stale_id.as_str()),
        "its temp file is gone"
    );
    let log = a.log();
    assert!(
        log.contains("a write under a stale singleton lease was refused"),
        "{log}"
    );
    // A does not take the lease back while B renews it.
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS * 2)).await;
    assert!(leads(&b).await && !leads(&a).await);
    assert_eq!(refused(&b).await, 0.0);

    let (a, b) = tokio::join!(a.stop(), b.stop());
    drop((a, b));
}
