//! Starting the service in-process for a test, on `127.0.0.1:0` with its own data dir.

use std::net::SocketAddr;
use std::time::Duration;

use riptide_api::config::AppConfig;
use riptide_api::service::Service;
use riptide_api::state::AppState;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running service; dropping it without [`TestServer::stop`] signals shutdown too.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The managers the service runs with.
    pub state: AppState,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: TempDir,
}

impl TestServer {
    /// The service on the embedded store in a fresh temp dir, with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`Self::start`], after `adjust` has changed the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut AppConfig)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let mut config = AppConfig::default();
        in_dir(&mut config, data_dir.path());
        adjust(&mut config);
        config.validate().expect("test config is valid");
        Self::start_config(config, data_dir).await
    }

    /// The service with exactly `config` (but extraction workers from the built binary
    /// when it names none); `data_dir` is kept until the server is dropped.
    pub async fn start_config(mut config: AppConfig, data_dir: TempDir) -> Self {
        config.extract_worker.get_or_insert_with(extract_worker);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let service = Service::build(config).await.expect("service starts");
        let state = service.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        // What `riptide_api::run` does, with the state kept for the test.
        let task = tokio::spawn(service.serve(listener, async move {
            // A dropped sender is a shutdown too.
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Self {
            addr,
            state,
            client,
            shutdown: Some(tx),
            task: Some(task),
            _data_dir: data_dir,
        }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The HTTP client (keep-alive connections to this server).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET reaches the server")
    }

    /// Signals shutdown and returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("run returns after shutdown")
            .expect("run did not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The bootstrap admin token the service wrote to `<data dir>/admin-token` on its first
/// start (the test servers keep their secrets in the data dir). Role `admin`.
pub fn admin_token(server: &TestServer) -> String {
    let path = server._data_dir.path().join(riptide_api::admin::TOKEN_FILE);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Points everything the service writes into `dir`: the embedded store, secrets,
/// checkpoints and spilled sessions (as `config::load` does from the data dir), watches
/// no configuration directory, and runs extraction workers from the built binary.
pub fn in_dir(config: &mut AppConfig, dir: &std::path::Path) {
    let persistence = &mut config.persistence;
    persistence.embedded.data_dir = dir.to_owned();
    persistence.tenant.secrets_dir = dir.to_owned();
    persistence.state.checkpoint_dir = dir.join("checkpoints");
    persistence.state.spill_dir = dir.join("sessions");
    persistence.state.config_watch_paths = Vec::new();
    config.extract_worker = Some(extract_worker());
}

/// The built `riptide` binary as the extraction worker (this test binary is none).
pub fn extract_worker() -> riptide_extract::WorkerProgram {
    riptide_extract::WorkerProgram::new(
        env!("CARGO_BIN_EXE_riptide"),
        &[riptide_api::EXTRACT_WORKER_COMMAND],
    )
}

/// The body as JSON, after checking the status and the content type.
pub async fn json_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "{response:?}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

/// Lets `/extract` and `/crawl` fetch from 127.0.0.1 (the fixture page server), which
/// the SSRF guard refuses by default.
pub fn allow_loopback(config: &mut AppConfig) {
    config.extract.allow_addresses = vec!["127.0.0.1".to_owned()];
}

/// Creates tenant `id` on `plan` with the quota overrides `quotas`, and returns a new
/// API key of it.
pub async fn tenant_with_key(
    server: &TestServer,
    id: &str,
    plan: riptide_persistence::tenant::BillingPlan,
    quotas: &[(&str, u64)],
) -> String {
    use riptide_persistence::tenant::{TenantConfig, TenantIsolationLevel, TenantOwner};
    let now = chrono::Utc::now();
    let config = TenantConfig {
        tenant_id: id.to_owned(),
        name: format!("Tenant {id}"),
        quotas: quotas.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        isolation_level: TenantIsolationLevel::Standard,
        encryption_enabled: false,
        settings: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let owner = TenantOwner {
        id: format!("owner-{id}"),
        name: "Owner".to_owned(),
        email: format!("{id}@example.com"),
        organization: None,
    };
    let tenants = &server.state.tenants;
    tenants
        .create_tenant(config, owner, plan)
        .await
        .expect("tenant created");
    tenants
        .create_api_key_by("test", id, Some("test key"))
        .await
        .expect("key created")
        .secret
}
