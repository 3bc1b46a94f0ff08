//! One in-process run of the service on a data dir, as `riptide serve` would run it
//! (`Service::build`, then `serve` on `127.0.0.1:0`), and the setup the bench needs
//! around it: the configuration, a tenant with quotas nothing in the trace can reach,
//! and copies of a stopped instance's data dir. (The integration tests' `support.rs`
//! does the same for tests; a bench cannot import test modules.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use riptide_api::config::AppConfig;
use riptide_api::service::Service;
use riptide_api::state::AppState;
use riptide_persistence::tenant::{BillingPlan, TenantConfig, TenantIsolationLevel, TenantOwner};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The tenant every request of the trace runs as.
pub const TENANT: &str = "bench";

/// Quotas of [`TENANT`]: the GCRA's finest rate (1 µs a request) with 10 s of burst,
/// 64 GiB of cache and 1 TiB of transfer, so no request is refused or evicted.
const QUOTAS: [(&str, u64); 4] = [
    ("operations_per_minute", 60_000_000),
    ("burst", 10_000_000),
    ("memory_bytes", 64 << 30),
    ("data_transfer_bytes", 1 << 40),
];

/// A running service.
pub struct Instance {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its managers.
    pub state: AppState,
    /// How long `Service::build` took (the service serves right after).
    pub build_time: Duration,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The service's configuration on `dir`: everything it writes goes there (as
/// `config::load` places it under the data dir), loopback may be fetched, warming as
/// `warming` says, `warming.startup_top_n` at its default of 1,000,
/// `warming.top_k_per_tenant` = `top_k`, every other key at its default (entry TTL 1 h,
/// access counts persisted every 60 s and at shutdown).
pub fn config(dir: &Path, warming: bool, top_k: usize) -> anyhow::Result<AppConfig> {
    let mut config = AppConfig::default();
    let persistence = &mut config.persistence;
    persistence.embedded.data_dir = dir.to_owned();
    persistence.tenant.secrets_dir = dir.to_owned();
    persistence.state.checkpoint_dir = dir.join("checkpoints");
    persistence.state.spill_dir = dir.join("sessions");
    persistence.state.config_watch_paths = Vec::new();
    persistence.cache.enable_warming = warming;
    config.extract.allow_addresses = vec!["127.0.0.1/32".to_owned()];
    // This bench's executable is no worker: the built binary is.
    config.extract_worker = Some(riptide_extract::WorkerProgram::new(
        env!("CARGO_BIN_EXE_riptide"),
        &[riptide_api::EXTRACT_WORKER_COMMAND],
    ));
    config.warming.startup_top_n = 1_000;
    config.warming.top_k_per_tenant = top_k;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("bench configuration: {e:?}"))?;
    Ok(config)
}

impl Instance {
    /// Builds the service over `config` and serves it on a free loopback port.
    pub async fn start(config: AppConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let started = Instant::now();
        let service = Service::build(config).await.context("service starts")?;
        let build_time = started.elapsed();
        let state = service.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, async move {
            // A dropped sender is a shutdown too.
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            state,
            build_time,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Creates [`TENANT`] and returns a new API key of it.
    pub async fn create_tenant(&self) -> anyhow::Result<String> {
        let now = chrono::Utc::now();
        let config = TenantConfig {
            tenant_id: TENANT.to_owned(),
            name: "Warming bench".to_owned(),
            quotas: QUOTAS.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            isolation_level: TenantIsolationLevel::Standard,
            encryption_enabled: false,
            settings: Default::default(),
            created_at: now,
            updated_at: now,
        };
        let owner = TenantOwner {
            id: "owner-bench".to_owned(),
            name: "Bench".to_owned(),
            email: "bench@example.com".to_owned(),
            organization: None,
        };
        let tenants = &self.state.tenants;
        tenants
            .create_tenant(config, owner, BillingPlan::Enterprise)
            .await
            .context("creating the bench tenant")?;
        let key = tenants
            .create_api_key_by("bench", TENANT, Some("warming bench"))
            .await
            .context("creating the bench key")?;
        Ok(key.secret)
    }

    /// Waits until the persisted access counts are loaded (at most 30 s).
    pub async fn counts_loaded(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.state.warming.status().popularity.loaded {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the access counts were not loaded within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Graceful shutdown (the access counts are persisted); returns what `serve` did.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().context("stopped once")?;
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .context("the service did not stop within 30 s")?
            .context("the service task panicked")?
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Copies the data dir of a stopped instance, recursively.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
