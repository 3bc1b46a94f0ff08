//! The release `riptide` binary as a child process for the bench: embedded store in a
//! temp dir, pinned to one CPU when `taskset` exists, with the two tenants the bench
//! needs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A running binary; killed when dropped.
pub struct Binary {
    child: Child,
    pub base: String,
    admin_token: String,
    client: reqwest::Client,
}

/// A tenant's credentials.
#[derive(Clone)]
pub struct Tenant {
    pub id: String,
    pub key: String,
}

impl Binary {
    /// Starts the binary in `dir`, listening on `port`, with the extra `config` (YAML),
    /// on CPU `cpu` when `taskset` is there.
    pub async fn start(dir: &Path, port: u16, config: &str, cpu: &str) -> anyhow::Result<Self> {
        let file = dir.join("riptide.yml");
        std::fs::write(&file, config)?;
        let log = std::fs::File::create(dir.join("riptide.log"))?;
        let bin = env!("CARGO_BIN_EXE_riptide");
        let mut command = if Command::new("taskset").arg("-V").output().is_ok() {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, bin]);
            c
        } else {
            Command::new(bin)
        };
        command
            .current_dir(dir)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(&file)
            .env("RIPTIDE_DATA_DIR", dir.join("data"))
            .env("RIPTIDE_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().context("starting riptide")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("{base}/readyz")).send().await.is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("riptide did not come up");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin_token = std::fs::read_to_string(dir.join("data/admin-token"))?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            base,
            admin_token,
            client,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn admin(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{path}: {}", response.text().await?);
        }
        Ok(response.json().await?)
    }

    /// Creates tenant `id` on `plan` with `quotas`, and a key of it.
    pub async fn tenant(&self, id: &str, plan: &str, quotas: Value) -> anyhow::Result<Tenant> {
        let body = json!({
            "tenant_id": id, "name": id, "owner_email": format!("{id}@example.com"),
            "owner_name": "Bench", "billing_plan": plan, "quotas": quotas,
        });
        self.admin("/admin/tenants", body).await?;
        let key = self
            .admin(
                &format!("/admin/tenants/{id}/keys"),
                json!({"name": "bench"}),
            )
            .await?;
        Ok(Tenant {
            id: id.to_owned(),
            key: key["secret"].as_str().context("secret")?.to_owned(),
        })
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
