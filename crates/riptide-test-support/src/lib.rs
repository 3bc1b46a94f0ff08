//! Test harness: real `redis-server` and Redis Cluster processes started by the test binary
//! itself, and a corpus of hostile pages with the local site that serves them.
//!
//! # Redis
//!
//! Tests that need Redis call [`redis_server`] (one shared standalone server per test binary) or
//! [`redis_cluster`] (one shared three-master cluster), and isolate themselves from each other
//! with [`unique`] tenant ids and key prefixes. Tests that kill or restart Redis take a private
//! server from [`start_redis_server`].
//!
//! Every server runs on a free loopback port in a temp dir of its own, with no persistence, and
//! never on the default 6379: a test only ever talks to servers this process started. They are
//! SIGKILLed and their dirs removed when the test binary exits (an `atexit` handler), and the
//! kernel kills them if the test binary is killed (PDEATHSIG; see the `spawner` module).
//!
//! Needs `redis-server` and `redis-cli` (Debian: `sudo apt-get install -y redis-server
//! redis-tools`); `RIPTIDE_REDIS_SERVER` and `RIPTIDE_REDIS_CLI` may point at the binaries.
//! Linux only (PDEATHSIG, `/proc`).
//!
//! # JWT keys
//!
//! [`jwt`] holds an Ed25519 and an RSA key pair for signing test tokens.
//!
//! # Hostile pages
//!
//! [`hostile`] holds pages built to hurt an extraction service (deep nesting, element floods,
//! compression bombs, redirect loops, endless bodies, a lying `Content-Length`…), each with the
//! answer the service must give it, and [`hostile::HostileSite`], an axum server on loopback
//! that serves them. Everything is generated in code: no files, no network.
//!
//! # Layering
//!
//! [`layering`] reads a crate's module graph from its source, for tests that forbid
//! upward imports and module circles.
//!
//! # Percentile runs
//!
//! [`percentiles`] runs a bench's cases interleaved ([`interleave!`]) and reads their
//! samples as percentiles ([`percentiles::Dist`]).

mod cleanup;
mod cluster;
pub mod hostile;
pub mod jwt;
pub mod layering;
pub mod percentiles;
mod resp;
mod server;
mod spawner;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use cluster::RedisCluster;
pub use server::RedisServer;

use server::Mode;

/// The standalone server shared by every test of this test binary, started on first use.
///
/// Thread-safe: concurrent first calls start one server. Panics (in each caller) if it cannot be
/// started, with the server's log in the message. Don't [`kill`](RedisServer::kill) it; take a
/// [`start_redis_server`] for that.
pub fn redis_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start(Mode::Standalone))
}

/// The three-master Redis Cluster shared by every test of this test binary, started on first use.
///
/// Returns once every node reports `cluster_state:ok` with all 16384 slots assigned. Panics, with
/// the `redis-cli` output and the node logs, if the cluster does not come up.
pub fn redis_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// Starts a private standalone server, independent of [`redis_server`], for tests that kill or
/// restart it. Dropping it kills the process and removes its temp dir.
pub fn start_redis_server() -> RedisServer {
    RedisServer::start(Mode::Standalone)
}

/// Returns `prefix` + `-` + a short suffix unique across the tests and processes of this machine.
///
/// The suffix is lowercase base-36: the process id and the current time (fixed width, 9 chars),
/// then a per-process counter. So the result matches `^[a-z0-9][a-z0-9_-]{0,63}$` whenever
/// `prefix` does; to stay within 64 chars, a prefix longer than about 50 chars is shortened.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const MAX_LEN: usize = 64;

    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // Linux pids stay below 2^22 < 36^5; the time wraps every 36^4 ms (about 28 minutes).
    let time = u64::try_from(millis % 36u128.pow(4)).expect("below 36^4");
    let suffix = format!(
        "{}{}{}",
        base36(u64::from(std::process::id()), 5),
        base36(time, 4),
        base36(count, 1)
    );
    let keep = MAX_LEN - 1 - suffix.len();
    let end = prefix
        .char_indices()
        .nth(keep)
        .map_or(prefix.len(), |(i, _)| i);
    format!("{}-{suffix}", &prefix[..end])
}

/// `n` in lowercase base 36, left-padded with `0` to at least `width` digits.
fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 || out.len() < width {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::process::Command;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::resp::{self, Reply};

    fn ping(port: u16) -> bool {
        matches!(resp::command(port, &["PING"]), Ok(Reply::Simple(ref s)) if s == "PONG")
    }

    fn is_tenant_id(s: &str) -> bool {
        let bytes = s.as_bytes();
        (1..=64).contains(&bytes.len())
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }

    #[test]
    fn shared_server_answers_ping() {
        let server = redis_server();
        assert!(ping(server.port()));
        assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
        assert!(
            std::ptr::eq(server, redis_server()),
            "one server per binary"
        );
    }

    #[test]
    fn unique_ids_differ_across_threads() {
        let ids: Vec<String> = (0..4)
            .map(|_| thread::spawn(|| (0..500).map(|_| unique("tenant")).collect::<Vec<_>>()))
            .flat_map(|handle| handle.join().unwrap())
            .collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        for id in &ids {
            assert!(id.starts_with("tenant-"), "{id}");
            assert!(is_tenant_id(id), "{id}");
        }
    }

    #[test]
    fn unique_keeps_long_prefixes_within_64_chars() {
        let id = unique(&"a".repeat(70));
        assert!(is_tenant_id(&id), "{id}");
        assert_eq!(id.len(), 64);
        assert!(is_tenant_id(&unique(&"b".repeat(40))));
        assert_eq!(base36(0, 3), "000");
        assert_eq!(base36(36 * 36 + 35, 1), "10z");
    }

    #[test]
    fn private_server_can_be_killed_and_restarted_on_the_same_port() {
        let server = start_redis_server();
        let port = server.port();
        assert_ne!(port, redis_server().port());
        let set = resp::command(port, &["SET", "k", "v"]).unwrap();
        assert_eq!(set, Reply::Simple("OK".into()));

        server.kill();
        assert!(
            resp::command(port, &["PING"]).is_err(),
            "killed server still answers"
        );
        server.kill(); // idempotent

        server.restart();
        assert_eq!(server.port(), port);
        assert!(ping(port));
        // No persistence: it restarts empty.
        assert_eq!(
            resp::command(port, &["GET", "k"]).unwrap(),
            Reply::Bulk(None)
        );

        server.restart(); // restarting a running server kills it first
        assert!(ping(port));

        let dir = server.dir().to_path_buf();
        assert!(dir.exists());
        drop(server);
        assert!(!dir.exists(), "drop removes the temp dir");
        assert!(
            resp::command(port, &["PING"]).is_err(),
            "drop kills the server"
        );
    }

    /// PDEATHSIG is tied to the spawning thread; servers must outlive the test thread that
    /// first asked for them.
    #[test]
    fn server_outlives_the_thread_that_started_it() {
        let server = thread::spawn(start_redis_server).join().unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(ping(server.port()), "server died with its starting thread");
    }

    #[test]
    fn cluster_serves_keys_in_every_slot_range() {
        let started = Instant::now();
        let cluster = redis_cluster();
        eprintln!("cluster ready after {:?}", started.elapsed());

        let ports: Vec<u16> = cluster.servers().iter().map(RedisServer::port).collect();
        assert_eq!(
            cluster.url(),
            format!(
                "redis://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
                ports[0], ports[1], ports[2]
            )
        );
        assert_eq!(
            cluster.nodes(),
            ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
        );
        for &port in &ports {
            let info = cluster::cluster_info(port).unwrap();
            assert!(info.contains("cluster_state:ok"), "{info}");
            assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
            assert!(info.contains("cluster_size:3"), "{info}");
        }

        // Through the first node only, following MOVED redirects like a cluster client.
        let cli = server::find_binary("redis-cli", "RIPTIDE_REDIS_CLI");
        let redis_cli = |args: &[&str]| {
            let out = Command::new(&cli)
                .args(["-c", "-p", &ports[0].to_string()])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let prefix = unique("slots");
        let keys: Vec<String> = (0..12).map(|i| format!("{prefix}:{i}")).collect();
        for key in &keys {
            assert_eq!(redis_cli(&["SET", key, key]), "OK");
        }
        for key in &keys {
            assert_eq!(&redis_cli(&["GET", key]), key);
        }
        // Twelve keys over three nodes: they landed on more than one node.
        let holding = ports
            .iter()
            .filter(|&&port| resp::command(port, &["DBSIZE"]).unwrap() != Reply::Integer(0))
            .count();
        assert!(holding > 1, "all keys landed on one node");
    }
}
