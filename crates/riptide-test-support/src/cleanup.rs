//! Process-exit cleanup: every server this process started is SIGKILLed and its temp dir removed.
//!
//! Statics are never dropped in Rust, so the shared [`crate::redis_server`] and
//! [`crate::redis_cluster`] would outlive the test binary. libtest ends with `std::process::exit`,
//! which runs C `atexit` handlers, so one handler, registered on first use, kills whatever is still
//! tracked here. A test binary that is itself SIGKILLed runs no handler; its servers still die
//! through PDEATHSIG (see [`crate::spawner`]), and the temp dirs it leaves are swept by the next run
//! ([`sweep_stale_dirs`]).

// `libc::atexit`, `libc::kill` and `libc::waitpid` are FFI calls, which the workspace's
// `unsafe_code = "deny"` forbids by default; they are confined to this file.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, TryLockError};

/// Every temp dir name starts with this, then `<owner pid>-`.
pub(crate) const DIR_PREFIX: &str = "riptide-redis-";

/// One server's cleanup duty.
struct Tracked {
    /// The running process, if any (`None` between a `kill` and a `restart`).
    pid: Option<u32>,
    /// Its `--dir`, removed at exit.
    dir: PathBuf,
}

static TRACKED: Mutex<BTreeMap<u64, Tracked>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

/// Starts tracking a server directory; returns the handle for [`set_pid`] and [`untrack`].
pub(crate) fn track(dir: PathBuf) -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()` that never unwinds.
        let rc = unsafe { libc::atexit(kill_all_at_exit) };
        assert_eq!(rc, 0, "libc::atexit failed to register the redis cleanup");
    });
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock().insert(id, Tracked { pid: None, dir });
    id
}

/// Records the pid now running for `id` (`None` once it has been killed and reaped).
pub(crate) fn set_pid(id: u64, pid: Option<u32>) {
    if let Some(tracked) = lock().get_mut(&id) {
        tracked.pid = pid;
    }
}

/// Stops tracking `id`; its owner has cleaned up.
pub(crate) fn untrack(id: u64) {
    lock().remove(&id);
}

fn lock() -> MutexGuard<'static, BTreeMap<u64, Tracked>> {
    TRACKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `atexit` handler. Must not panic: unwinding out of an `extern "C"` fn aborts.
extern "C" fn kill_all_at_exit() {
    let tracked = match TRACKED.try_lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(TryLockError::Poisoned(poisoned)) => std::mem::take(&mut *poisoned.into_inner()),
        // Another thread is mid-update while the process exits; PDEATHSIG will still kill the
        // servers, and the next run sweeps the dirs.
        Err(TryLockError::WouldBlock) => return,
    };
    for pid in tracked.values().filter_map(|t| t.pid) {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: plain syscalls on a child of this process that has not been reaped yet (pids
        // are cleared from the registry before the owning `Child` is waited on).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    for tracked in tracked.values() {
        let _ = fs::remove_dir_all(&tracked.dir);
    }
}

/// Removes `riptide-redis-<pid>-*` dirs in `parent` whose owner process no longer exists, left by
/// test binaries that were killed before their `atexit` handler could run.
pub(crate) fn sweep_stale_dirs(parent: &Path) {
    // Without /proc we cannot tell a live owner from a dead one; leave everything alone.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
