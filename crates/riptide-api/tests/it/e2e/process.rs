//! The `riptide` binary as a child process: [`Launch`] says how to start it (store,
//! configuration file, environment), [`Riptide`] is a running one with the HTTP helpers
//! the scenarios share, and [`Tenant`] is one tenant's credentials.
//!
//! The binary starts with an empty environment in its own directory, listening on
//! `127.0.0.1:0` (or [`Launch::listen`]); the port is read from its "riptide serving" log line, so no port is
//! ever guessed. Its stdout and stderr go to `riptide.log` in that directory, shown
//! whenever a start or a stop goes wrong. A [`Riptide`] dropped while running is killed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Client, Method, RequestBuilder, Response};
use riptide_test_support::{redis_server, unique};
use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which store the binary runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded store in the instance's data directory.
    Embedded,
    /// A Redis server, under a key prefix of this test's own.
    Redis {
        /// `redis://127.0.0.1:PORT`, given as `REDIS_URL`.
        url: String,
        /// `persistence.redis.key_prefix`: instances sharing it share their data.
        prefix: String,
    },
}

impl Backend {
    /// The `redis-server` shared by the test binary, with a fresh key prefix.
    pub fn shared_redis() -> Self {
        Self::redis_at(redis_server().url())
    }

    /// The Redis server at `url`, with a fresh key prefix.
    pub fn redis_at(url: String) -> Self {
        Backend::Redis {
            url,
            prefix: unique("e2e"),
        }
    }

    /// What `/readyz` reports as the store kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Redis { .. } => "redis",
        }
    }
}

/// How to start one instance: its directory (working directory, `RIPTIDE_DATA_DIR` =
/// `<dir>/data`, configuration file `<dir>/conf/riptide.yml`), store, settings and
/// extra environment variables.
#[derive(Debug, Clone)]
pub struct Launch {
    dir: PathBuf,
    backend: Backend,
    config: Value,
    env: Vec<(String, String)>,
    /// Soft and hard `RLIMIT_NOFILE` to start with (through `prlimit`), if set.
    open_files: Option<(u64, u64)>,
    /// The umask to start with (through `sh -c 'umask ...; exec ...'`), if set.
    umask: Option<u32>,
    /// The `--listen` address (port 0 picks a free one).
    listen: SocketAddr,
}

impl Launch {
    /// An instance in `dir` on `backend` that may fetch from 127.0.0.1 (the fixture
    /// pages) and flushes usage every 100 ms.
    pub fn new(dir: &Path, backend: &Backend) -> Self {
        let launch = Self {
            dir: dir.to_owned(),
            backend: backend.clone(),
            config: json!({}),
            env: Vec::new(),
            open_files: None,
            umask: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let launch = launch
            .set("extract.allow_addresses", json!(["127.0.0.1/32"]))
            .set("persistence.tenant.usage_flush_interval_ms", json!(100));
        match backend {
            Backend::Embedded => launch,
            Backend::Redis { prefix, .. } => launch
                .set("persistence.redis.key_prefix", json!(prefix))
                .set("persistence.redis.connection_timeout_ms", json!(1000))
                .set("persistence.redis.command_timeout_ms", json!(1000)),
        }
    }

    /// Sets the configuration key `path` (dotted, as in `config/riptide.yml`).
    pub fn set(mut self, path: &str, value: Value) -> Self {
        let mut node = &mut self.config;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let map = node
                .as_object_mut()
                .expect("configuration sections are maps");
            if parts.peek().is_none() {
                map.insert(part.to_owned(), value);
                return self;
            }
            node = map
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        self
    }

    /// Adds the environment variable `name=value`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the binary with the open-file limits `soft` and `hard` (through
    /// `prlimit`, which sets them and execs the binary in the same process).
    pub fn open_files(mut self, soft: u64, hard: u64) -> Self {
        self.open_files = Some((soft, hard));
        self
    }

    /// Listens on `addr` (`--listen`) instead of `127.0.0.1:0`; an unspecified address
    /// (`0.0.0.0`) is reached over loopback.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Starts the binary with umask `mask`, as a shell with that umask would.
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }
}

/// A running `riptide` binary.
pub struct Riptide {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    client: Client,
    admin_token: String,
}

/// What a stopped binary left: its exit status, how long it took to exit after the
/// signal, and its whole log.
pub struct Stopped {
    /// The exit status.
    pub status: ExitStatus,
    /// From the signal to the exit.
    pub took: Duration,
    /// stdout and stderr.
    pub log: String,
}

impl Riptide {
    /// Starts the binary as `launch` says and waits until `/readyz` answers 200. The
    /// admin token is `RIPTIDE_ADMIN_TOKEN` when the launch sets it, else the bootstrap
    /// token the binary wrote to `<dir>/data/admin-token`.
    pub async fn start(launch: &Launch) -> Self {
        let dir = &launch.dir;
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).expect("mkdir conf");
        let file = conf.join("riptide.yml");
        let yaml = serde_yaml_ng::to_string(&launch.config).expect("configuration as YAML");
        std::fs::write(&file, yaml).expect("write the configuration file");

        let log = dir.join("riptide.log");
        // Appending: a restart in the same directory keeps the earlier run's log.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the log file");
        let started_at = std::fs::metadata(&log).map_or(0, |m| m.len());
        let mut program: Vec<String> = match launch.open_files {
            Some((soft, hard)) => vec![
                "prlimit".to_owned(),
                format!("--nofile={soft}:{hard}"),
                BIN.to_owned(),
            ],
            None => vec![BIN.to_owned()],
        };
        if let Some(mask) = launch.umask {
            // `sh` sets the umask and execs the program in its own process.
            let mut shell = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("umask {mask:03o} && exec \"$@\""),
                "sh".to_owned(),
            ];
            shell.append(&mut program);
            program = shell;
        }
        let mut command = Command::new(&program[0]);
        command.args(&program[1..]);
        command
            .current_dir(dir)
            .env_clear()
            .args(["serve", "--listen", &launch.listen.to_string(), "--config"])
            .arg(&file)
            .env("RIPTIDE_DATA_DIR", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out);
        if let Backend::Redis { url, .. } = &launch.backend {
            command.env("REDIS_URL", url);
        }
        for (name, value) in &launch.env {
            command.env(name, value);
        }
        // The allocator's own knobs pass through, to compare its settings on the same
        // tests (docs/BENCHMARKS.md, "Allocator purge delay").
        let allocator = |name: &std::ffi::OsStr| name.as_encoded_bytes().starts_with(b"MIMALLOC_");
        for (name, value) in std::env::vars_os().filter(|(n, _)| allocator(n)) {
            command.env(name, value);
        }
        let child = command.spawn().expect("spawn riptide");
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let mut riptide = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            client,
            admin_token: String::new(),
        };
        riptide.addr = riptide.wait_for_address(started_at).await;
        riptide.wait_ready().await;
        let configured = launch.env.iter().find(|(n, _)| n == "RIPTIDE_ADMIN_TOKEN");
        let token = match configured {
            Some((_, token)) => token.clone(),
            None => {
                let path = dir.join("data").join(riptide_api::admin::TOKEN_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(token) => token.trim().to_owned(),
                    Err(e) => panic!("reading {}: {e}\n{}", path.display(), riptide.log()),
                }
            }
        };
        riptide.admin_token = token;
        riptide
    }

    /// The address from the "riptide serving" line this run logged (after byte
    /// `from` of the log).
    async fn wait_for_address(&mut self, from: u64) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            let this_run = log
                .get(usize::try_from(from).expect("log size")..)
                .unwrap_or("");
            let listen = this_run
                .lines()
                .filter(|line| line.contains("riptide serving"))
                .find_map(|line| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix("listen="))
                });
            if let Some(addr) = listen {
                let mut addr: SocketAddr = addr
                    .parse()
                    .unwrap_or_else(|e| panic!("listen={addr}: {e}\n{log}"));
                if addr.ip().is_unspecified() {
                    addr.set_ip([127, 0, 0, 1].into());
                }
                return addr;
            }
            self.assert_running("before serving");
            assert!(Instant::now() < deadline, "riptide never served:\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            self.assert_running("before it was ready");
            assert!(
                Instant::now() < deadline,
                "riptide never became ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn assert_running(&mut self, when: &str) {
        let child = self.child.as_mut().expect("running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("riptide exited {when}: {status}\n{}", self.log());
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The HTTP client (keep-alive connections to this instance).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// File descriptors the process has open now (`/proc/<pid>/fd`).
    pub fn open_fds(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.pid());
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .count()
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> crate::metrics_scrape::Exposition {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("metrics text");
        crate::metrics_scrape::Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Its stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin token of role `admin` this instance was started with.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// `GET path` without credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET reaches riptide")
    }

    /// `method path` with `token` and an optional JSON body.
    pub async fn admin_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("admin request reaches riptide")
    }

    /// `method path` with the admin token and an optional JSON body.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        self.admin_as(&self.admin_token, method, path, body).await
    }

    /// As [`Self::admin`], expecting `status` and a JSON body, which is returned.
    pub async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        json_body(self.admin(method, path, body).await, status).await
    }

    /// Creates tenant `id` on `plan` with the quota overrides `quotas` through the admin
    /// API, and a key of it.
    pub async fn create_tenant(&self, id: &str, plan: &str, quotas: Value) -> Tenant {
        let body = json!({
            "tenant_id": id,
            "name": format!("Tenant {id}"),
            "owner_email": format!("{id}@example.com"),
            "owner_name": "Owner",
            "billing_plan": plan,
            "quotas": quotas,
        });
        let created = self
            .admin_json(Method::POST, "/admin/tenants", Some(&body), 201)
            .await;
        assert_eq!(created["tenant_id"], id, "{created}");
        assert_eq!(created["status"], "active", "{created}");
        self.create_key(id).await
    }

    /// A new API key of tenant `id`.
    pub async fn create_key(&self, id: &str) -> Tenant {
        let key = self
            .admin_json(
                Method::POST,
                &format!("/admin/tenants/{id}/keys"),
                Some(&json!({"name": "e2e"})),
                201,
            )
            .await;
        Tenant {
            id: id.to_owned(),
            key: key["secret"].as_str().expect("secret").to_owned(),
            key_id: key["key_id"].as_str().expect("key_id").to_owned(),
        }
    }

    /// The admin API's view of tenant `id`'s usage this month.
    pub async fn admin_usage(&self, id: &str) -> Value {
        self.admin_json(
            Method::GET,
            &format!("/admin/tenants/{id}/usage"),
            None,
            200,
        )
        .await
    }

    /// `method path` as `tenant` (its key and `X-Tenant-ID`).
    pub fn as_tenant(&self, tenant: &Tenant, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&tenant.key)
            .header("x-tenant-id", &tenant.id)
    }

    /// `POST path` as `tenant` with `body` as JSON.
    pub async fn post(&self, tenant: &Tenant, path: &str, body: Value) -> Response {
        self.as_tenant(tenant, Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("POST reaches riptide")
    }

    /// `GET path` as `tenant`.
    pub async fn get_as(&self, tenant: &Tenant, path: &str) -> Response {
        self.as_tenant(tenant, Method::GET, path)
            .send()
            .await
            .expect("GET reaches riptide")
    }

    /// `DELETE path` as `tenant`.
    pub async fn delete_as(&self, tenant: &Tenant, path: &str) -> Response {
        self.as_tenant(tenant, Method::DELETE, path)
            .send()
            .await
            .expect("DELETE reaches riptide")
    }

    /// `POST /extract {"url": url}` as `tenant`.
    pub async fn extract(&self, tenant: &Tenant, url: &str) -> Response {
        self.post(tenant, "/extract", json!({ "url": url })).await
    }

    /// Sends SIGTERM (with `kill -TERM`, as an operator or an orchestrator would).
    pub fn sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed: {sent}");
    }

    /// Waits up to `within` for the process to exit after a signal sent at `signalled`.
    pub async fn wait_exit(mut self, signalled: Instant, within: Duration) -> Stopped {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("riptide did not exit within {within:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        Stopped {
            status,
            took: signalled.elapsed(),
            log: self.log(),
        }
    }

    /// SIGKILL (no chance to finish anything), then waits for the exit.
    pub fn sigkill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait for the killed process");
        }
    }

    /// SIGTERM, then the exit (within 15 s), which must be a clean one (code 0).
    pub async fn stop(self) -> Stopped {
        let at = Instant::now();
        self.sigterm();
        let stopped = self.wait_exit(at, Duration::from_secs(15)).await;
        assert_eq!(
            stopped.status.code(),
            Some(0),
            "{}\n{}",
            stopped.status,
            stopped.log
        );
        stopped
    }
}

impl Drop for Riptide {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One tenant's credentials.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The id, sent as `X-Tenant-ID`.
    pub id: String,
    /// The API key, sent as `Authorization: Bearer`.
    pub key: String,
    /// The key's id, for the admin API.
    pub key_id: String,
}

/// The body of `response` as JSON, after checking its status and content type.
pub async fn json_body(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let content_type = content_type(response.headers());
    let bytes = response.bytes().await.expect("response body");
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(got, status, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {text}"
    );
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Checks that `response` is the error `status` with the JSON body
/// `{"error":{"code": code, "message": "..."}}`; returns its headers.
pub async fn expect_error(response: Response, status: u16, code: &str) -> HeaderMap {
    let headers = response.headers().clone();
    let body = json_body(response, status).await;
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(error.len(), 2, "only code and message: {body}");
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "a message for people: {body}");
    headers
}

/// The `X-Cache` header of `response`.
pub fn x_cache(response: &Response) -> String {
    response
        .headers()
        .get("x-cache")
        .map_or("-", |v| v.to_str().expect("ASCII"))
        .to_owned()
}

/// A header of `headers` as a number.
pub fn header_u64(headers: &HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header: {headers:?}"))
        .to_str()
        .expect("ASCII")
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Polls `check` every 20 ms until it holds; fails the test after `within`. Returns
/// how long it took.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < within,
            "{what}: not seen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}
