//! One `redis-server` process on a free loopback port, with its own temp dir.
//!
//! Every server is started by this process, on a port chosen by binding `127.0.0.1:0`, and is
//! verified to be *ours* (its `INFO server` `process_id` is our child's pid) before a test may use
//! it, so a test can never reach a developer's `redis-server` on 6379 or another run's server
//! that won a port race.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};
use std::{env, thread};

use crate::cleanup::{self, DIR_PREFIX};
use crate::resp::{self, Reply};
use crate::spawner;

/// How many fresh ports to try when another process takes ours between probe and bind.
const START_ATTEMPTS: usize = 5;
/// How long a started server has to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The log file inside the server's dir; its content goes into every startup panic.
const LOG_FILE: &str = "redis.log";
/// Limit on one readiness probe, so a port squatter that accepts but never answers cannot stall
/// the wait; a slow but healthy server is simply probed again.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// What `redis-server` logs when its port is taken.
const PORT_TAKEN: &str = "Address already in use";

/// Which kind of node to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A plain standalone server.
    Standalone,
    /// A Redis Cluster node (cluster enabled, no slots yet).
    ClusterNode,
}

/// A `redis-server` process started by this test binary.
///
/// It runs with no persistence (`--save ""`, `--appendonly no`), bound to 127.0.0.1 only, in a temp
/// dir of its own that also holds its log. [`kill`](Self::kill) and [`restart`](Self::restart) are
/// for fault-injection tests; use them on a private [`crate::start_redis_server`] rather than on
/// the shared [`crate::redis_server`], which other tests are using at the same time.
///
/// Dropping it SIGKILLs the process and removes the dir. The shared servers are never dropped; an
/// `atexit` handler (and, if the test binary is killed, PDEATHSIG) stops them instead.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    /// The full argument list, reused unchanged by `restart` (same port, same dir).
    args: Vec<OsString>,
    /// The current process; after `kill` it is a reaped child until `restart` replaces it.
    child: Mutex<Child>,
    /// Handle of this server's entry in the exit-time cleanup registry.
    cleanup_id: u64,
}

/// Why one start attempt did not produce a ready server.
enum NotReady {
    /// The process exited; with its exit status.
    Exited(ExitStatus),
    /// It did not answer `PING` within [`READY_TIMEOUT`].
    TimedOut,
}

impl RedisServer {
    /// Starts a server on a free port, retrying on port races; panics with its log on failure.
    pub(crate) fn start(mode: Mode) -> RedisServer {
        let binary = find_binary("redis-server", "RIPTIDE_REDIS_SERVER");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let server = Self::spawn_on_free_port(&binary, mode);
            let outcome = server.wait_ready(&mut server.lock_child());
            match outcome {
                Ok(()) => return server,
                // Another process bound the port between our probe and the server's bind.
                Err(NotReady::Exited(_)) if server.log().contains(PORT_TAKEN) => {
                    last_log = server.log();
                }
                Err(reason) => server.fail("start", &reason),
            }
        }
        panic!(
            "redis-server lost the race for a free port {START_ATTEMPTS} times; last log:\n{last_log}"
        );
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server and waits until it is gone; the port then refuses connections.
    ///
    /// Like a crash: nothing is saved (and nothing would be, the server has no persistence).
    /// Killing an already killed server does nothing.
    pub fn kill(&self) {
        self.stop(&mut self.lock_child());
    }

    /// Starts the server again on the same port and dir and waits until it answers `PING`.
    ///
    /// If it is still running it is killed first. It comes back empty: the server never persists
    /// data. Panics, with the server's log, if it does not come back.
    pub fn restart(&self) {
        let mut child = self.lock_child();
        self.stop(&mut child);
        for _ in 0..START_ATTEMPTS {
            *child = self.spawn_child();
            match self.wait_ready(&mut child) {
                Ok(()) => return,
                // The port is ours, so only wait for whoever briefly holds it to let go.
                Err(NotReady::Exited(_)) if self.log().contains(PORT_TAKEN) => {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(reason) => self.fail("restart", &reason),
            }
        }
        self.fail("restart", &NotReady::Exited(child.wait().expect("reap")));
    }

    /// Sends one command (`CONFIG SET maxmemory-policy allkeys-lru`, `FLUSHALL`) and returns
    /// its reply as text, or the server's error as `Err`. For fault-injection tests on a private
    /// [`crate::start_redis_server`]; panics when the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let reply = resp::command(self.port, args)
            .unwrap_or_else(|e| panic!("redis on port {}: {args:?}: {e}", self.port));
        match reply {
            Reply::Error(e) => Err(e),
            other => Ok(other.text().unwrap_or_default()),
        }
    }

    /// The server's `--dir`.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The content of the server's log file (empty if there is none yet).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.join(LOG_FILE)).unwrap_or_default()
    }

    fn spawn_on_free_port(binary: &Path, mode: Mode) -> RedisServer {
        let ports = free_ports(match mode {
            Mode::Standalone => 1,
            Mode::ClusterNode => 2,
        });
        let dir = make_dir();
        let mut args = server_args(ports[0], &dir);
        if mode == Mode::ClusterNode {
            // An explicit bus port: the default (port + 10000) can be out of range or taken.
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",
                    &ports[1].to_string(),
                ]
                .map(OsString::from),
            );
        }
        let cleanup_id = cleanup::track(dir.clone());
        let child = spawn_process(binary, &args, &dir, cleanup_id);
        RedisServer {
            port: ports[0],
            dir,
            binary: binary.to_path_buf(),
            args,
            child: Mutex::new(child),
            cleanup_id,
        }
    }

    fn spawn_child(&self) -> Child {
        spawn_process(&self.binary, &self.args, &self.dir, self.cleanup_id)
    }

    /// Waits until the server answers `PING` and reports our child's pid as its own.
    fn wait_ready(&self, child: &mut Child) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                cleanup::set_pid(self.cleanup_id, None);
                return Err(NotReady::Exited(status));
            }
            let pong = resp::command_with_timeout(self.port, &["PING"], PROBE_TIMEOUT);
            if matches!(pong, Ok(Reply::Simple(ref s)) if s == "PONG")
                && self.server_pid() == Some(child.id())
            {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(NotReady::TimedOut)
    }

    /// The `process_id` the server on our port reports in `INFO server`.
    fn server_pid(&self) -> Option<u32> {
        let info = resp::command_with_timeout(self.port, &["INFO", "server"], PROBE_TIMEOUT)
            .ok()?
            .text()?;
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    /// SIGKILLs and reaps the child, if it still runs.
    fn stop(&self, child: &mut Child) {
        // Forget the pid first so the exit handler never signals a reaped (reusable) pid.
        cleanup::set_pid(self.cleanup_id, None);
        // Errors mean it already exited; `wait` then just returns the stored status.
        let _ = child.kill();
        let _ = child.wait();
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        // A test that panicked mid-restart poisons the lock; the child inside is still valid.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, action: &str, reason: &NotReady) -> ! {
        let reason = match reason {
            NotReady::Exited(status) => format!("exited with {status}"),
            NotReady::TimedOut => format!("did not answer PING within {READY_TIMEOUT:?}"),
        };
        panic!(
            "redis-server on port {} failed to {action}: {reason}\ncommand: {} {}\nlog ({}):\n{}",
            self.port,
            self.binary.display(),
            self.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            self.dir.join(LOG_FILE).display(),
            self.log(),
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        cleanup::set_pid(self.cleanup_id, None);
        let _ = child.kill();
        let _ = child.wait();
        cleanup::untrack(self.cleanup_id);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The arguments every server gets: loopback only, no persistence, log in its own dir.
fn server_args(port: u16, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        // `DEBUG SLEEP` and friends, for timeout tests; loopback connections only.
        "--enable-debug-command",
        "local",
    ]
    .map(OsString::from)
    .into();
    args.extend([OsString::from("--dir"), dir.as_os_str().to_owned()]);
    args.extend([
        OsString::from("--logfile"),
        dir.join(LOG_FILE).into_os_string(),
    ]);
    args
}

/// `n` distinct ports that were free a moment ago (all probes are held open together).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("local_addr of a bound listener")
                .port()
        })
        .collect()
}

/// A fresh `riptide-redis-<pid>-XXXX` dir in the system temp dir; the first call also sweeps dirs
/// left by dead test processes.
fn make_dir() -> PathBuf {
    static SWEEP: Once = Once::new();
    let parent = env::temp_dir();
    SWEEP.call_once(|| cleanup::sweep_stale_dirs(&parent));
    tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(&parent)
        .unwrap_or_else(|err| panic!("create a temp dir in {}: {err}", parent.display()))
        .keep()
}

/// Spawns the server (through the spawner thread) and records its pid for exit cleanup.
fn spawn_process(binary: &Path, args: &[OsString], dir: &Path, cleanup_id: u64) -> Child {
    let mut command = Command::new(binary);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = spawner::spawn(command)
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
    cleanup::set_pid(cleanup_id, Some(child.id()));
    child
}

/// Finds `name`: the path in `$env_var` if set, else on `PATH`, else in `/usr/bin`, `/usr/sbin`
/// or `/usr/local/bin`. Panics with install instructions if it is nowhere.
pub(crate) fn find_binary(name: &str, env_var: &str) -> PathBuf {
    let explicit = env::var_os(env_var);
    let path = env::var_os("PATH").unwrap_or_default();
    let dirs = env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    locate(name, env_var, explicit.as_deref(), dirs).unwrap_or_else(|message| panic!("{message}"))
}

fn locate(
    name: &str,
    env_var: &str,
    explicit: Option<&OsStr>,
    dirs: impl IntoIterator<Item = PathBuf>,
) -> Result<PathBuf, String> {
    if let Some(explicit) = explicit {
        let path = PathBuf::from(explicit);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{env_var}={} is not an executable file",
                path.display()
            ))
        };
    }
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!(
                "{name} not found: install it with: sudo apt-get install -y redis-server redis-tools \
                 (or set {env_var} to its path)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_both_packages() {
        let err = locate(
            "redis-server",
            "RIPTIDE_REDIS_SERVER",
            None,
            [PathBuf::from("/nonexistent")],
        )
        .unwrap_err();
        assert!(err.starts_with("redis-server not found"), "{err}");
        assert!(
            err.contains("sudo apt-get install -y redis-server redis-tools"),
            "{err}"
        );
    }

    #[test]
    fn explicit_binary_must_exist() {
        let err = locate(
            "redis-server",
            "RIPTIDE_REDIS_SERVER",
            Some(OsStr::new("/nonexistent/redis-server")),
            [PathBuf::from("/usr/bin")],
        )
        .unwrap_err();
        assert!(
            err.contains("RIPTIDE_REDIS_SERVER=/nonexistent/redis-server"),
            "{err}"
        );
    }

    #[test]
    fn restart_waits_for_a_briefly_taken_port() {
        let server = RedisServer::start(Mode::Standalone);
        server.kill();
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, server.port())).unwrap();
        let release = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            drop(squatter);
        });
        server.restart();
        release.join().unwrap();
        assert_eq!(server.server_pid(), Some(server.lock_child().id()));
    }

    #[test]
    #[should_panic(expected = "Address already in use")]
    fn restart_failure_reports_the_server_log() {
        let server = RedisServer::start(Mode::Standalone);
        server.kill();
        let _squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, server.port())).unwrap();
        server.restart();
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(8);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 8);
    }
}
