//! The one long-lived thread that spawns every `redis-server`, so children die with the test binary.
//!
//! Each server is started with `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel SIGKILLs it when its
//! parent goes away, which covers the case the `atexit` cleanup cannot: a test binary that is itself
//! killed (SIGKILL, an OOM kill, a Ctrl-C'd `cargo test` whose signal never reaches libtest's exit).
//!
//! The catch is that on Linux the "parent" of PDEATHSIG is the *thread* that forked the child, not
//! the process: the signal fires when that thread exits. libtest runs each test on its own thread
//! and ends it when the test returns, so a server spawned directly from a test would be killed as
//! soon as the test that first touched the shared [`crate::redis_server`] finished, under every other
//! test still using it. So all spawns go through one dedicated helper thread, started once per
//! process, that loops on a channel forever; its sender lives in a `static` and is never dropped, so
//! the thread only ends when the process does, and PDEATHSIG then fires exactly when we want it.

// `Command::pre_exec` is an `unsafe fn` (the closure runs between `fork` and `exec`, where only
// async-signal-safe calls are allowed), and `prctl`/`getppid` are FFI calls. The closure below makes
// only those two syscalls and allocates nothing.
#![allow(unsafe_code)]

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::thread;

/// A command to spawn and where to send the result.
struct SpawnRequest {
    command: Command,
    reply: Sender<io::Result<Child>>,
}

/// The request side of the spawner thread; never dropped, so the thread never exits.
static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();

/// Spawns `command` from the spawner thread, with PDEATHSIG set to SIGKILL on Linux.
pub(crate) fn spawn(command: Command) -> io::Result<Child> {
    let spawner = SPAWNER.get_or_init(start_spawner_thread);
    let (reply, result) = mpsc::channel();
    spawner
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the redis spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the redis spawner thread dropped a request"))?
}

fn start_spawner_thread() -> Sender<SpawnRequest> {
    let (requests, incoming) = mpsc::channel::<SpawnRequest>();
    thread::Builder::new()
        .name("riptide-redis-spawner".into())
        .spawn(move || {
            // Ends only if every sender is dropped, which never happens: the one in `SPAWNER` is
            // `'static`.
            for SpawnRequest { command, reply } in incoming {
                // The requester may have given up (panicked); nothing to do then.
                let _ = reply.send(spawn_with_deathsig(command));
            }
        })
        .expect("start the riptide-redis-spawner thread");
    requests
}

#[cfg(target_os = "linux")]
fn spawn_with_deathsig(mut command: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;

    // std::process::id() is the thread-group id, which is what getppid() reports in the child.
    let parent = libc::pid_t::try_from(std::process::id()).expect("a pid fits in pid_t");
    // SAFETY: the closure runs in the forked child before exec and only calls the
    // async-signal-safe `prctl` and `getppid`; building the error allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; the signal would then never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Elsewhere there is no PDEATHSIG; the `atexit` cleanup still runs on a normal exit.
#[cfg(not(target_os = "linux"))]
fn spawn_with_deathsig(mut command: Command) -> io::Result<Child> {
    command.spawn()
}
