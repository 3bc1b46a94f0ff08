//! A three-master Redis Cluster (no replicas) built from [`RedisServer`] nodes.
//!
//! The nodes are joined with `redis-cli --cluster create`, the same tool an operator uses, and the
//! cluster counts as ready only when every node reports `cluster_state:ok`, all 16384 slots
//! assigned and all three nodes known, so a client connecting to any node sees the final topology.

use std::fs::File;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::resp;
use crate::server::{Mode, RedisServer, find_binary};
use crate::spawner;

/// Number of master nodes.
const NODES: usize = 3;
/// How long `redis-cli --cluster create` and the following convergence may take, each.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
/// Output of `redis-cli --cluster create`, kept in the first node's dir.
const CREATE_LOG: &str = "cluster-create.log";

/// A Redis Cluster of three masters, each a `redis-server` started by this test binary.
///
/// Nodes run with `--cluster-node-timeout 2000` and, like [`RedisServer`], no persistence.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until it is fully up; panics with the
    /// `redis-cli` output and the node logs on failure.
    pub(crate) fn start() -> RedisCluster {
        let cli = find_binary("redis-cli", "RIPTIDE_REDIS_CLI");
        let cluster = RedisCluster {
            nodes: (0..NODES)
                .map(|_| RedisServer::start(Mode::ClusterNode))
                .collect(),
        };

        let create_log = cluster.nodes[0].dir().join(CREATE_LOG);
        let output = File::create(&create_log).expect("create the cluster-create log");
        let mut command = Command::new(&cli);
        command
            .args(["--cluster", "create"])
            .args(cluster.addresses())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone a file handle"))
            .stderr(output);
        let mut create = spawner::spawn(command)
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", cli.display()));
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let status = loop {
            if let Some(status) = create.try_wait().expect("poll redis-cli") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = create.kill();
                let _ = create.wait();
                cluster.fail("redis-cli --cluster create timed out");
            }
            thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            cluster.fail(&format!("redis-cli --cluster create exited with {status}"));
        }

        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !cluster.is_ready() {
            if Instant::now() > deadline {
                cluster.fail("the cluster did not reach cluster_state:ok with all slots assigned");
            }
            thread::sleep(Duration::from_millis(20));
        }
        cluster
    }

    /// One `redis://127.0.0.1:PORT` URL per node.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The project's cluster URL: `redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addresses().join(","))
    }

    /// The nodes themselves, for in-crate tests.
    #[cfg(test)]
    pub(crate) fn servers(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// `127.0.0.1:PORT` for each node.
    fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect()
    }

    /// Whether every node sees a healthy cluster with all slots assigned and every node known.
    fn is_ready(&self) -> bool {
        self.nodes.iter().all(|node| {
            cluster_info(node.port()).is_some_and(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&format!("cluster_known_nodes:{NODES}"))
            })
        })
    }

    fn fail(&self, what: &str) -> ! {
        let mut report = format!("Redis Cluster failed to start: {what}\n");
        let create_log = self.nodes[0].dir().join(CREATE_LOG);
        report += &format!(
            "--- {}:\n{}\n",
            create_log.display(),
            std::fs::read_to_string(&create_log).unwrap_or_default()
        );
        for node in &self.nodes {
            report += &format!(
                "--- node {} CLUSTER INFO:\n{}\n--- node {} log:\n{}\n",
                node.port(),
                cluster_info(node.port()).unwrap_or_default(),
                node.port(),
                node.log()
            );
        }
        panic!("{report}");
    }
}

/// The node's `CLUSTER INFO` text, if it answers.
pub(crate) fn cluster_info(port: u16) -> Option<String> {
    resp::command(port, &["CLUSTER", "INFO"]).ok()?.text()
}
