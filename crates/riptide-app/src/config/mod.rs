//! The service's configuration: typed sections with their defaults, and validation.
//!
//! Loading and layering (defaults < YAML file < environment < command-line flags) live in
//! [`load`](mod@load) and [`provenance`]; what a reloaded file may change, in [`schema`].
//! `config/riptide.yml` documents every key. With `persistence.state.enable_hot_reload`,
//! the keys of [`schema::live_keys`] apply live; every other key takes effect at the
//! next start.

pub mod crawl;
pub mod error;
pub mod load;
pub mod metrics;
pub mod provenance;
pub mod schema;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use riptide_persistence::config::TenancyConfig;
use riptide_persistence::store::StoreUrl;
use riptide_persistence::tenant::TenantError;
use riptide_persistence::tenant::crypto::KEY_LEN;
use riptide_persistence::tenant::secrets::{MIN_PEPPER_LEN, decode_configured_secret};
use riptide_persistence::{InvalidInput, PersistenceConfig};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

pub use crate::invalid::Invalid;
pub use crawl::CrawlConfig;
pub use error::{ConfigError, Overrides};
pub use load::{DEFAULT_CONFIG_PATH, default_file, load};
pub use metrics::MetricsConfig;
pub use provenance::{ENV_VARS, Env, Provenance};

/// Everything `riptide serve` is configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// The HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// The persistence layer's own settings (store, cache, tenants, state, sync).
    pub persistence: PersistenceConfig,
    /// How `/extract` and `/crawl` fetch and extract pages: timeouts, limits, user
    /// agent, the internal addresses the SSRF guard lets through, the extraction budget
    /// and bounds, the worker processes, and the fair shares of fetches and extractions.
    pub extract: riptide_extract::ExtractConfig,
    /// What one `POST /crawl` may ask for and answer.
    pub crawl: CrawlConfig,
    /// The admin API's credentials.
    pub admin: AdminConfig,
    /// Who may read `GET /metrics`, and whether it carries per-tenant bills.
    pub metrics: MetricsConfig,
    /// Cache warming: the tiers' sizes and schedule, access counting, warm jobs and the
    /// manual list.
    pub warming: crate::warming::WarmingConfig,
    /// Where the values came from above the file (variables, flags), so a reloaded file
    /// is resolved the same way. Not part of the document.
    #[serde(skip)]
    pub provenance: Provenance,
    /// The program extraction workers run: `None` (the default) runs this executable as
    /// `riptide extract-worker`. Not part of the document: tests, whose executable is a
    /// test harness, point it at the built `riptide` binary.
    #[serde(skip)]
    pub extract_worker: Option<riptide_extract::WorkerProgram>,
}

/// HTTP server settings.
///
/// The connection limits are what keeps one client's sockets from hurting anyone else
/// (see [`crate::server`]): a connection that is not sending a request head, not
/// waiting for a response and not idle within its allowance is closed, and past
/// `max_connections` a new one is refused at once. Their defaults are what a service
/// facing the internet directly would choose; each says why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`ip:port`).
    pub listen: SocketAddr,
    /// A request that has not produced a response within this many milliseconds is
    /// answered with 503 `timeout`. Must be greater than 0.
    pub request_timeout_ms: u64,
    /// After the shutdown signal, in-flight requests get this many milliseconds to finish;
    /// past it the process stops anyway and reports the failure. Must be greater than 0.
    pub shutdown_timeout_ms: u64,
    /// A client must send a whole request head (request line and headers) within this
    /// many milliseconds: from the moment its connection is accepted, and on a kept-alive
    /// connection from the first byte of each later request. Past it the connection is
    /// closed without an answer. 10 s: a head is at most a few KiB, which any live client
    /// sends in well under a second; a longer allowance only lets half-sent heads
    /// (slowloris) hold sockets. Must be greater than 0.
    pub header_read_timeout_ms: u64,
    /// Longest request head (request line and headers) read, in bytes. A longer head,
    /// or one with more than 100 header fields, is answered 431 `header_too_large` and
    /// the connection closed. 32 KiB: room for large cookies and bearer tokens (nginx
    /// allows 4 lines of 8 KiB by default) while a hostile head costs little memory per
    /// connection. Between 1024 and 262144.
    pub max_header_bytes: u32,
    /// A kept-alive connection with no request in flight and no byte of a next request
    /// for this many milliseconds is closed. 75 s: longer than the idle timeout of the
    /// common load balancers and proxies that pool connections to us (60 s for AWS ALB
    /// and nginx), so they close first and never send a request on a connection we are
    /// closing; short enough that idle sockets do not pile up. Must be greater than 0.
    pub keep_alive_timeout_ms: u64,
    /// A request body must arrive whole within this many milliseconds of the handler
    /// starting to read it; past it the request is answered 408 `body_timeout` and the
    /// connection closed. 10 s: a tenant body is at most 1 MiB, which takes 10 s only
    /// below ~100 KiB/s. Must be greater than 0.
    pub body_read_timeout_ms: u64,
    /// Connections the kernel may hold, fully established, before the accept loop takes
    /// them (the `listen(2)` backlog; capped by `net.core.somaxconn`). 1024: a burst of
    /// new connections (a flood, or many clients reconnecting at once) overflows the
    /// usual 128, and each connection dropped from the queue retries its handshake a
    /// second later. At least 1.
    pub listen_backlog: u32,
    /// Most connections open at once. A connection beyond it is answered at once with
    /// 503 `too_many_connections` (`Retry-After: 1`, `Connection: close`) without its
    /// request being read, and closed. 4096: far more concurrent clients than two cores
    /// serve usefully, at a bounded cost (a few tens of KiB each). Lowered at startup,
    /// with a warning, to what the open-file limit leaves room for. At least 1.
    pub max_connections: u32,
    /// Failed authentications (an API key or admin token that identifies nobody) a client
    /// address (IPv6: its /64) may make per `auth_failure_window_ms`; past it, its
    /// requests to authenticated routes are answered 429 `too_many_auth_failures` before
    /// any credential is checked, good ones included, until the rate falls back under
    /// the limit. 30 per minute: far above a person retyping a key, far below guessing.
    /// 0 turns the throttle off (for example behind a proxy, where every client has the
    /// proxy's address).
    pub auth_failure_limit: u32,
    /// The window of `auth_failure_limit`, ms. At least 1000.
    pub auth_failure_window_ms: u64,
    /// Most client addresses whose failures are remembered (about 64 bytes each); past
    /// it the least recently failing are forgotten. At least 1.
    pub auth_failure_clients_tracked: u32,
    /// Says that serving without authentication is meant. Multi-tenancy off
    /// (`persistence.tenant.enabled: false`) answers every tenant route, with no
    /// credential at all, as the `default` tenant: fine on a loopback `listen` address
    /// (a local tool), a hole on any other. So a start with multi-tenancy off on a
    /// non-loopback address is refused (exit 2) unless this is `true`. Env
    /// `RIPTIDE_ALLOW_UNAUTHENTICATED`.
    pub allow_unauthenticated: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 30_000,
            shutdown_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 32 * 1024,
            keep_alive_timeout_ms: 75_000,
            body_read_timeout_ms: 10_000,
            listen_backlog: 1024,
            max_connections: 4096,
            auth_failure_limit: 30,
            auth_failure_window_ms: 60_000,
            auth_failure_clients_tracked: 100_000,
            allow_unauthenticated: false,
        }
    }
}

impl ServerConfig {
    /// [`Self::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`Self::shutdown_timeout_ms`] as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// [`Self::body_read_timeout_ms`] as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// Checks the values whose type alone does not make them valid.
    fn validate(&self) -> Result<(), Invalid> {
        let positive = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("keep_alive_timeout_ms", self.keep_alive_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("listen_backlog", u64::from(self.listen_backlog)),
            ("max_connections", u64::from(self.max_connections)),
            (
                "auth_failure_clients_tracked",
                u64::from(self.auth_failure_clients_tracked),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(Invalid::new(
                format!("server.{key}"),
                "must be greater than 0",
            ));
        }
        if !(1024..=262_144).contains(&self.max_header_bytes) {
            return Err(Invalid::new(
                "server.max_header_bytes",
                "must be between 1024 and 262144",
            ));
        }
        if !(1_000..=86_400_000).contains(&self.auth_failure_window_ms) {
            return Err(Invalid::new(
                "server.auth_failure_window_ms",
                "must be between 1000 (1 s) and 86400000 (a day)",
            ));
        }
        Ok(())
    }
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or a `tracing` filter
    /// such as `info,riptide_api=debug`. `RUST_LOG`, when set, replaces it.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Admin API settings.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// An operator-provided admin token, accepted with role `admin` (at least
    /// [`crate::admin::MIN_CONFIGURED_TOKEN_LEN`] printable ASCII characters). Empty:
    /// none. Env `RIPTIDE_ADMIN_TOKEN` (preferred: keep secrets out of the file). When
    /// set, no bootstrap token is created.
    pub token: String,
}

/// Never shows the token.
impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("AdminConfig")
            .field("token", &token)
            .finish()
    }
}

impl AppConfig {
    /// Checks every value whose type alone does not make it valid.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        validate_log_level(&self.log.level).map_err(|reason| Invalid::new("log.level", reason))?;
        self.warming.validate()?;
        self.extract
            .validate()
            .map_err(|(field, reason)| Invalid::new(format!("extract.{field}"), reason))?;
        self.crawl.validate()?;
        self.persistence.validate().map_err(|e| match e {
            InvalidInput::Config { key, reason } => {
                Invalid::new(format!("persistence.{key}"), reason)
            }
            other => Invalid::new("persistence", other.to_string()),
        })?;
        validate_secrets(&self.persistence.tenant)?;
        self.validate_authentication()?;
        self.metrics.validate()?;
        crate::admin::validate_configured_token(&self.admin.token)
            .map_err(|reason| Invalid::new("admin.token", reason))
    }

    /// Multi-tenancy off serves tenant routes without authentication: refused on a
    /// non-loopback listen address unless `server.allow_unauthenticated` says it is
    /// meant (see [`ServerConfig::allow_unauthenticated`]). The error names
    /// `persistence.tenant.enabled`, so its origin (the file or `ENABLE_MULTI_TENANCY`)
    /// is named too.
    fn validate_authentication(&self) -> Result<(), Invalid> {
        let listen = self.server.listen;
        if self.persistence.tenant.enabled
            || self.server.allow_unauthenticated
            || listen.ip().to_canonical().is_loopback()
        {
            return Ok(());
        }
        Err(Invalid::new(
            "persistence.tenant.enabled",
            format!(
                "multi-tenancy off answers every tenant route without authentication, and \
                 server.listen {listen} is not a loopback address: keep multi-tenancy on, \
                 listen on 127.0.0.1 or ::1, or set server.allow_unauthenticated: true \
                 (RIPTIDE_ALLOW_UNAUTHENTICATED=true) to serve without authentication on \
                 purpose"
            ),
        ))
    }

    /// The embedded store's directory, or `None` when the store is Redis.
    pub fn data_dir(&self) -> Option<PathBuf> {
        match StoreUrl::parse(&self.persistence.redis.url) {
            Ok(StoreUrl::Embedded(Some(dir))) => Some(dir),
            Ok(StoreUrl::Embedded(None)) => Some(self.persistence.embedded.data_dir.clone()),
            _ => None,
        }
    }
}

/// A configured master key or pepper must decode as the tenant layer will decode it, so
/// a bad one stops startup with exit code 2 rather than failing later. The reason never
/// contains the value.
fn validate_secrets(tenant: &TenancyConfig) -> Result<(), Invalid> {
    let secrets = [
        ("master_key", &tenant.master_key, KEY_LEN, Some(KEY_LEN)),
        (
            "api_key_pepper",
            &tenant.api_key_pepper,
            MIN_PEPPER_LEN,
            None,
        ),
    ];
    for (field, value, min, exact) in secrets {
        if value.trim().is_empty() {
            continue;
        }
        let key = format!("persistence.tenant.{field}");
        let bytes = decode_configured_secret("secret", value, min).map_err(|e| match e {
            TenantError::InvalidField { reason, .. } => Invalid::new(&key, reason),
            other => Invalid::new(&key, other.to_string()),
        })?;
        if let Some(exact) = exact.filter(|n| *n != bytes.len()) {
            return Err(Invalid::new(
                key,
                format!(
                    "decodes to {} bytes; exactly {exact} are required",
                    bytes.len()
                ),
            ));
        }
    }
    Ok(())
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Accepts what `EnvFilter` accepts, except a lone word that is not a level: `EnvFilter`
/// would read `verbose` as "everything of the target `verbose`", which is never meant.
fn validate_log_level(level: &str) -> Result<(), String> {
    let level = level.trim();
    let lone_word = !level.contains(['=', ',', '[', ':']);
    if level.is_empty() || (lone_word && !LEVELS.contains(&level.to_ascii_lowercase().as_str())) {
        return Err(format!(
            "{level:?} is not a level ({}) or a filter such as \"info,riptide_api=debug\"",
            LEVELS.join(", ")
        ));
    }
    EnvFilter::builder()
        .parse(level)
        .map(drop)
        .map_err(|e| format!("{level:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let cfg = AppConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.data_dir(), Some(PathBuf::from("./data")));
    }

    #[test]
    fn data_dir_follows_the_store_url() {
        let mut cfg = AppConfig::default();
        cfg.persistence.redis.url = "/var/lib/riptide".into();
        assert_eq!(cfg.data_dir(), Some(PathBuf::from("/var/lib/riptide")));
        cfg.persistence.redis.url = "redis://127.0.0.1:6379".into();
        assert_eq!(cfg.data_dir(), None);
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        type Case = (&'static str, fn(&mut AppConfig));
        let cases: [Case; 14] = [
            ("server.max_header_bytes", |c| {
                c.server.max_header_bytes = 1023
            }),
            ("server.max_header_bytes", |c| {
                c.server.max_header_bytes = 262_145
            }),
            ("server.request_timeout_ms", |c| {
                c.server.request_timeout_ms = 0
            }),
            ("server.shutdown_timeout_ms", |c| {
                c.server.shutdown_timeout_ms = 0
            }),
            ("server.header_read_timeout_ms", |c| {
                c.server.header_read_timeout_ms = 0
            }),
            ("server.keep_alive_timeout_ms", |c| {
                c.server.keep_alive_timeout_ms = 0
            }),
            ("server.body_read_timeout_ms", |c| {
                c.server.body_read_timeout_ms = 0
            }),
            ("server.max_connections", |c| c.server.max_connections = 0),
            ("server.listen_backlog", |c| c.server.listen_backlog = 0),
            ("server.auth_failure_window_ms", |c| {
                c.server.auth_failure_window_ms = 999
            }),
            ("server.auth_failure_clients_tracked", |c| {
                c.server.auth_failure_clients_tracked = 0
            }),
            ("log.level", |c| c.log.level = "verbose".into()),
            ("persistence.redis.url", |c| {
                c.persistence.redis.url = "memcached://x".into()
            }),
            ("persistence.cache.zstd_level", |c| {
                c.persistence.cache.zstd_level = 99
            }),
        ];
        for (key, set) in cases {
            let mut cfg = AppConfig::default();
            set(&mut cfg);
            let err = cfg.validate().expect_err(key);
            assert_eq!(err.key, key, "{err:?}");
        }
    }

    #[test]
    fn multi_tenancy_off_needs_loopback_or_an_explicit_setting() {
        let mut cfg = AppConfig::default();
        cfg.persistence.tenant.enabled = false;
        assert_eq!(cfg.validate(), Ok(()), "127.0.0.1");
        for open in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.1.2.3:80",
            "[::ffff:10.0.0.1]:1",
        ] {
            cfg.server.listen = open.parse().expect("address");
            let err = cfg.validate().expect_err(open);
            assert_eq!(err.key, "persistence.tenant.enabled", "{err:?}");
            assert!(
                err.reason.contains("server.allow_unauthenticated"),
                "{err:?}"
            );
        }
        for local in ["[::1]:8080", "127.0.0.2:1", "[::ffff:127.0.0.1]:1"] {
            cfg.server.listen = local.parse().expect("address");
            assert_eq!(cfg.validate(), Ok(()), "{local}");
        }
        cfg.server.listen = "0.0.0.0:8080".parse().expect("address");
        cfg.server.allow_unauthenticated = true;
        assert_eq!(cfg.validate(), Ok(()));
        cfg.persistence.tenant.enabled = true;
        cfg.server.allow_unauthenticated = false;
        assert_eq!(cfg.validate(), Ok(()), "multi-tenancy on: any address");
    }

    #[test]
    fn configured_secrets_must_decode() {
        let mut cfg = AppConfig::default();
        cfg.persistence.tenant.master_key = format!("{}=", "A".repeat(43));
        cfg.persistence.tenant.api_key_pepper = cfg.persistence.tenant.master_key.clone();
        assert_eq!(cfg.validate(), Ok(()));

        // 33 bytes: a fine pepper, not an AES-256 key.
        let long = "A".repeat(44);
        cfg.persistence.tenant.api_key_pepper = long.clone();
        assert_eq!(cfg.validate(), Ok(()));
        cfg.persistence.tenant.master_key = long;
        let err = cfg.validate().expect_err("33-byte key");
        assert_eq!(err.key, "persistence.tenant.master_key");
        assert!(err.reason.contains("exactly 32"), "{err:?}");

        let mut cfg = AppConfig::default();
        cfg.persistence.tenant.api_key_pepper = "%%%".into();
        let err = cfg.validate().expect_err("not base64");
        assert_eq!(err.key, "persistence.tenant.api_key_pepper");
        assert!(!err.reason.contains("%%%"), "{err:?}");
    }

    #[test]
    fn log_level_takes_levels_and_filters() {
        for ok in [
            "info",
            "DEBUG",
            "off",
            "info,riptide_api=debug",
            "tower_http=trace",
        ] {
            assert_eq!(validate_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["", "verbose", "info,riptide=loud"] {
            assert!(validate_log_level(bad).is_err(), "{bad}");
        }
    }
}
