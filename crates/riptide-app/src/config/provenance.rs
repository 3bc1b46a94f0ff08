//! The layers above the YAML document, kept so that a reloaded document is resolved
//! exactly like the first one: environment variables (read once, at start), flags, and
//! the defaults that depend on other settings.
//!
//! Derived defaults, applied when the document does not set the key:
//!
//! - on the embedded store, `persistence.tenant.secrets_dir` is the store's data
//!   directory, and `persistence.state.checkpoint_dir` / `spill_dir` are its
//!   `checkpoints` / `sessions` subdirectories (so `RIPTIDE_DATA_DIR` moves everything
//!   the instance writes);
//! - `persistence.state.config_watch_paths` is the directory of the configuration file
//!   that was loaded, so hot reload watches the file the service read. The state manager
//!   merges every `*.yml` / `*.yaml` file of a watched directory, so this default only
//!   applies when the file is the directory's only configuration file (and is named
//!   `*.yml` / `*.yaml`); otherwise, and when no file was loaded, nothing is watched, and
//!   asking for hot reload is an error that says why.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt::{self, Display};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use riptide_persistence::state::config_doc::{is_config_file_name, list_config_files};

use super::AppConfig;
use super::error::{ConfigError, Overrides};

/// The environment variables read, each with the key it sets. `RUST_LOG` comes after
/// `RIPTIDE_LOG_LEVEL`, so it wins when both are set.
pub const ENV_VARS: [(&str, &str); 15] = [
    ("REDIS_URL", "persistence.redis.url"),
    ("RIPTIDE_LISTEN", "server.listen"),
    (
        "RIPTIDE_ALLOW_UNAUTHENTICATED",
        "server.allow_unauthenticated",
    ),
    ("RIPTIDE_DATA_DIR", "persistence.embedded.data_dir"),
    ("RIPTIDE_LOG_LEVEL", "log.level"),
    ("RUST_LOG", "log.level"),
    (
        "CACHE_DEFAULT_TTL_SECONDS",
        "persistence.cache.default_ttl_seconds",
    ),
    ("ENABLE_COMPRESSION", "persistence.cache.enable_compression"),
    ("ENABLE_CACHE_WARMING", "persistence.cache.enable_warming"),
    ("ENABLE_MULTI_TENANCY", "persistence.tenant.enabled"),
    ("ENABLE_HOT_RELOAD", "persistence.state.enable_hot_reload"),
    ("RIPTIDE_MASTER_KEY", "persistence.tenant.master_key"),
    (
        "RIPTIDE_API_KEY_PEPPER",
        "persistence.tenant.api_key_pepper",
    ),
    ("RIPTIDE_ADMIN_TOKEN", "admin.token"),
    ("RIPTIDE_METRICS_TOKEN", "metrics.token"),
];

/// Variables whose values are secrets: never logged, never echoed in an error.
pub const SECRET_VARS: [&str; 4] = [
    "RIPTIDE_MASTER_KEY",
    "RIPTIDE_API_KEY_PEPPER",
    "RIPTIDE_ADMIN_TOKEN",
    "RIPTIDE_METRICS_TOKEN",
];

/// Reads one environment variable; `None` when unset. Injected so tests need not touch
/// the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

const SECRETS_DIR: &str = "persistence.tenant.secrets_dir";
const CHECKPOINT_DIR: &str = "persistence.state.checkpoint_dir";
const SPILL_DIR: &str = "persistence.state.spill_dir";
const WATCH_PATHS: &str = "persistence.state.config_watch_paths";
const HOT_RELOAD: &str = "persistence.state.enable_hot_reload";

/// Keys whose default depends on other settings (see the module docs).
pub const DERIVED_KEYS: [&str; 4] = [SECRETS_DIR, CHECKPOINT_DIR, SPILL_DIR, WATCH_PATHS];

/// Where a configuration came from, above its document: the file read, the variables
/// of [`ENV_VARS`] that were set (captured once, at start) and the flags.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The configuration file loaded, if any.
    pub file: Option<PathBuf>,
    env: BTreeMap<&'static str, String>,
    /// The command-line flags.
    pub overrides: Overrides,
}

/// Names the variables, never their values (two of them are secrets).
impl fmt::Debug for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provenance")
            .field("file", &self.file)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("overrides", &self.overrides)
            .finish()
    }
}

/// Which of [`DERIVED_KEYS`] a document sets itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit(Vec<&'static str>);

impl Explicit {
    /// The derived keys present in a parsed YAML file.
    pub fn of_yaml(doc: &serde_yaml_ng::Value) -> Self {
        Self::with(|path| path.iter().try_fold(doc, |v, k| v.get(*k)).is_some())
    }

    /// The derived keys present in a JSON document (a reloaded configuration).
    pub fn of_json(doc: &serde_json::Value) -> Self {
        Self::with(|path| path.iter().try_fold(doc, |v, k| v.get(*k)).is_some())
    }

    fn with(has: impl Fn(&[&str]) -> bool) -> Self {
        let keys = DERIVED_KEYS.into_iter().filter(|key| {
            let path: Vec<&str> = key.split('.').collect();
            has(&path)
        });
        Self(keys.collect())
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains(&key)
    }
}

impl Provenance {
    /// Captures the variables of [`ENV_VARS`] from `env`. Unset and empty are the same
    /// (`REDIS_URL=` means "not set"); a value that is not UTF-8 is an error naming the
    /// variable (and, unless it is a secret, the value).
    pub fn capture(
        file: Option<&Path>,
        env: Env<'_>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut captured = BTreeMap::new();
        for (var, key) in ENV_VARS {
            let Some(raw) = env(var) else { continue };
            let value = raw.into_string().map_err(|raw| {
                let reason = "not valid UTF-8".to_owned();
                if SECRET_VARS.contains(&var) {
                    ConfigError::SecretEnv { var, key, reason }
                } else {
                    let value = raw.to_string_lossy().into_owned();
                    ConfigError::Env {
                        var,
                        key,
                        value,
                        reason,
                    }
                }
            })?;
            if !value.trim().is_empty() {
                captured.insert(var, value);
            }
        }
        Ok(Self {
            file: file.map(Path::to_path_buf),
            env: captured,
            overrides: overrides.clone(),
        })
    }

    /// What sets `key` above the document (`environment variable RUST_LOG`, `flag
    /// --listen`), if anything: a reloaded document cannot change such a key.
    pub fn pinned_by(&self, key: &str) -> Option<String> {
        if key == "server.listen" && self.overrides.listen.is_some() {
            return Some("flag --listen".to_owned());
        }
        ENV_VARS
            .iter()
            .rev()
            .find(|(var, k)| *k == key && self.env.contains_key(var))
            .map(|(var, _)| format!("environment variable {var}"))
    }

    /// Applies the layers above the document `cfg` was read from (which set the keys of
    /// `explicit`), then the derived defaults, then validates the result.
    pub fn resolve(
        &self,
        mut cfg: AppConfig,
        explicit: &Explicit,
    ) -> Result<AppConfig, ConfigError> {
        let mut origins = Origins::new(self.file.as_deref());
        self.apply_env(&mut cfg, &mut origins)?;
        if let Some(listen) = self.overrides.listen {
            cfg.server.listen = listen;
            origins.set("server.listen", "flag --listen".to_owned());
        }
        self.derive_defaults(&mut cfg, explicit, &origins)?;
        cfg.validate().map_err(|invalid| ConfigError::Invalid {
            origin: origins.of(&invalid.key),
            key: invalid.key,
            reason: invalid.reason,
        })?;
        cfg.provenance = self.clone();
        Ok(cfg)
    }

    fn apply_env(&self, cfg: &mut AppConfig, origins: &mut Origins) -> Result<(), ConfigError> {
        let mut vars = Vars {
            env: &self.env,
            origins,
        };
        if let Some(url) = vars.get("REDIS_URL") {
            cfg.persistence.redis.url = url;
        }
        if let Some(listen) = vars.parsed("RIPTIDE_LISTEN", SocketAddr::from_str)? {
            cfg.server.listen = listen;
        }
        if let Some(on) = vars.parsed("RIPTIDE_ALLOW_UNAUTHENTICATED", parse_bool)? {
            cfg.server.allow_unauthenticated = on;
        }
        if let Some(dir) = vars.get("RIPTIDE_DATA_DIR") {
            cfg.persistence.embedded.data_dir = PathBuf::from(dir);
        }
        for var in ["RIPTIDE_LOG_LEVEL", "RUST_LOG"] {
            if let Some(level) = vars.get(var) {
                cfg.log.level = level;
            }
        }
        let cache = &mut cfg.persistence.cache;
        if let Some(ttl) = vars.parsed("CACHE_DEFAULT_TTL_SECONDS", u64::from_str)? {
            cache.default_ttl_seconds = ttl;
        }
        if let Some(on) = vars.parsed("ENABLE_COMPRESSION", parse_bool)? {
            cache.enable_compression = on;
        }
        if let Some(on) = vars.parsed("ENABLE_CACHE_WARMING", parse_bool)? {
            cache.enable_warming = on;
        }
        let tenant = &mut cfg.persistence.tenant;
        if let Some(on) = vars.parsed("ENABLE_MULTI_TENANCY", parse_bool)? {
            tenant.enabled = on;
        }
        // Secrets are checked (without echoing them) by `AppConfig::validate`, whose
        // error names the variable through the origins.
        if let Some(key) = vars.get("RIPTIDE_MASTER_KEY") {
            tenant.master_key = key;
        }
        if let Some(pepper) = vars.get("RIPTIDE_API_KEY_PEPPER") {
            tenant.api_key_pepper = pepper;
        }
        if let Some(on) = vars.parsed("ENABLE_HOT_RELOAD", parse_bool)? {
            cfg.persistence.state.enable_hot_reload = on;
        }
        if let Some(token) = vars.get("RIPTIDE_ADMIN_TOKEN") {
            cfg.admin.token = token;
        }
        if let Some(token) = vars.get("RIPTIDE_METRICS_TOKEN") {
            cfg.metrics.token = token;
        }
        Ok(())
    }

    fn derive_defaults(
        &self,
        cfg: &mut AppConfig,
        explicit: &Explicit,
        origins: &Origins,
    ) -> Result<(), ConfigError> {
        if let Some(data_dir) = cfg.data_dir() {
            if !explicit.has(SECRETS_DIR) {
                cfg.persistence.tenant.secrets_dir = data_dir.clone();
            }
            if !explicit.has(CHECKPOINT_DIR) {
                cfg.persistence.state.checkpoint_dir = data_dir.join("checkpoints");
            }
            if !explicit.has(SPILL_DIR) {
                cfg.persistence.state.spill_dir = data_dir.join("sessions");
            }
        }
        if !explicit.has(WATCH_PATHS) {
            let state = &mut cfg.persistence.state;
            let watched = match &self.file {
                Some(file) => watch_default(file, state.enable_hot_reload),
                None if state.enable_hot_reload => Err("hot reload watches the configuration \
                    file, and none was loaded: pass --config PATH (or create \
                    config/riptide.yml), or set persistence.state.config_watch_paths"
                    .to_owned()),
                None => Ok(Vec::new()),
            };
            state.config_watch_paths = watched.map_err(|reason| ConfigError::Invalid {
                key: HOT_RELOAD.to_owned(),
                origin: origins.of(HOT_RELOAD),
                reason,
            })?;
        }
        Ok(())
    }
}

/// The default of `config_watch_paths` for a service that loaded `file`: its directory
/// when the state manager would read exactly that file there; otherwise nothing, which
/// is an error (the reason) when hot reload is wanted.
fn watch_default(file: &Path, hot_reload: bool) -> Result<Vec<String>, String> {
    let dir = directory_of(file);
    let name = file.file_name();
    let readable = name.is_some_and(is_config_file_name);
    // An unreadable directory is reported by the state manager, which reads it next.
    let others: Vec<String> = list_config_files(Path::new(&dir))
        .unwrap_or_default()
        .iter()
        .filter_map(|path| path.file_name().filter(|n| Some(*n) != name))
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if readable && others.is_empty() {
        Ok(vec![dir])
    } else if !hot_reload {
        Ok(Vec::new())
    } else if !readable {
        Err(format!(
            "hot reload reads *.yml and *.yaml files, and {} is neither: rename it, or set \
             persistence.state.config_watch_paths",
            file.display()
        ))
    } else {
        Err(format!(
            "{dir} also holds {}, which hot reload would merge into {}: give the file a \
             directory of its own, or set persistence.state.config_watch_paths",
            others.join(", "),
            file.display()
        ))
    }
}

/// The directory holding `file`, made absolute (against the working directory at
/// start) so the watch does not depend on it later.
pub fn directory_of(file: &Path) -> String {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent)
        .unwrap_or_else(|_| parent.to_path_buf())
        .display()
        .to_string()
}

/// Reads captured variables and records which key each one set.
struct Vars<'a> {
    env: &'a BTreeMap<&'static str, String>,
    origins: &'a mut Origins,
}

impl Vars<'_> {
    fn get(&mut self, var: &'static str) -> Option<String> {
        let value = self.env.get(var)?.clone();
        self.origins
            .set(key_of(var), format!("environment variable {var}"));
        Some(value)
    }

    fn parsed<T, E: Display>(
        &mut self,
        var: &'static str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.get(var) else {
            return Ok(None);
        };
        parse(value.trim()).map(Some).map_err(|e| ConfigError::Env {
            var,
            key: key_of(var),
            reason: e.to_string(),
            value,
        })
    }
}

fn key_of(var: &str) -> &'static str {
    ENV_VARS
        .iter()
        .find(|(v, _)| *v == var)
        .map_or("?", |(_, key)| key)
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false (also 1/0, yes/no, on/off)".to_owned()),
    }
}

/// Where each key's value came from, for error messages. Keys not recorded came from
/// the file, or from the defaults when there is none.
struct Origins {
    base: String,
    keys: HashMap<&'static str, String>,
}

impl Origins {
    fn new(file: Option<&Path>) -> Self {
        let base = match file {
            Some(path) => format!("config file {}", path.display()),
            None => "built-in defaults".to_owned(),
        };
        Self {
            base,
            keys: HashMap::new(),
        }
    }

    fn set(&mut self, key: &'static str, origin: String) {
        self.keys.insert(key, origin);
    }

    fn of(&self, key: &str) -> String {
        self.keys
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.base.clone())
    }
}
