//! Building an [`AppConfig`] from its layers: built-in defaults < YAML file < environment
//! < command-line flags, then validating the result once.
//!
//! Errors name where the bad value came from (the file, the variable or the flag) and
//! its key, so the operator knows what to fix.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

use super::AppConfig;

/// The file used when `--config` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/riptide.yml";

/// The environment variables read, each with the key it sets. `RUST_LOG` comes after
/// `RIPTIDE_LOG_LEVEL`, so it wins when both are set.
pub const ENV_VARS: [(&str, &str); 8] = [
    ("REDIS_URL", "persistence.redis.url"),
    ("RIPTIDE_LISTEN", "server.listen"),
    ("RIPTIDE_DATA_DIR", "persistence.embedded.data_dir"),
    ("RIPTIDE_LOG_LEVEL", "log.level"),
    ("RUST_LOG", "log.level"),
    (
        "CACHE_DEFAULT_TTL_SECONDS",
        "persistence.cache.default_ttl_seconds",
    ),
    ("ENABLE_COMPRESSION", "persistence.cache.enable_compression"),
    ("ENABLE_CACHE_WARMING", "persistence.cache.enable_warming"),
];

/// Reads one environment variable; `None` when unset. Injected so tests need not touch
/// the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Values given on the command line: the last layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
}

/// Why the configuration could not be built. Every variant names its source and key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for [`AppConfig`] (syntax, unknown key, wrong type).
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and line.
        source: serde_yaml_ng::Error,
    },
    /// An environment variable could not be parsed.
    #[error("environment variable {var}={value:?} (sets {key}): {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// The key it sets.
        key: &'static str,
        /// Its value (lossily decoded).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A value of the merged configuration is out of range.
    #[error("invalid {key} (from {origin}): {reason}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// Where the value came from: the file, a variable, a flag or the defaults.
        origin: String,
        /// Why it was refused.
        reason: String,
    },
}

/// `config/riptide.yml` when it exists in the working directory.
pub fn default_file() -> Option<PathBuf> {
    let path = PathBuf::from(DEFAULT_CONFIG_PATH);
    path.is_file().then_some(path)
}

/// Builds and validates the configuration from `file` (if any), the environment `env` and
/// the command-line `overrides`.
pub fn load(
    file: Option<&Path>,
    env: Env<'_>,
    overrides: &Overrides,
) -> Result<AppConfig, ConfigError> {
    let mut origins = Origins::new(file);
    let mut cfg = match file {
        Some(path) => read_file(path)?,
        None => AppConfig::default(),
    };
    apply_env(&mut cfg, env, &mut origins)?;
    if let Some(listen) = overrides.listen {
        cfg.server.listen = listen;
        origins.set("server.listen", "flag --listen".to_owned());
    }
    cfg.validate().map_err(|invalid| ConfigError::Invalid {
        origin: origins.of(&invalid.key),
        key: invalid.key,
        reason: invalid.reason,
    })?;
    Ok(cfg)
}

fn read_file(path: &Path) -> Result<AppConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    // A file of only comments is an empty document: all defaults.
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
    if value.is_null() {
        return Ok(AppConfig::default());
    }
    // Parse the text again rather than the value: errors keep their line and column.
    serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn apply_env(cfg: &mut AppConfig, env: Env<'_>, origins: &mut Origins) -> Result<(), ConfigError> {
    let mut vars = Vars { env, origins };
    if let Some(url) = vars.get("REDIS_URL")? {
        cfg.persistence.redis.url = url;
    }
    if let Some(listen) = vars.parsed("RIPTIDE_LISTEN", SocketAddr::from_str)? {
        cfg.server.listen = listen;
    }
    if let Some(dir) = vars.get("RIPTIDE_DATA_DIR")? {
        cfg.persistence.embedded.data_dir = PathBuf::from(dir);
    }
    for var in ["RIPTIDE_LOG_LEVEL", "RUST_LOG"] {
        if let Some(level) = vars.get(var)? {
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
    Ok(())
}

/// Reads variables and records which key each one set.
struct Vars<'a, 'e> {
    env: Env<'e>,
    origins: &'a mut Origins,
}

impl Vars<'_, '_> {
    /// The variable's value; unset and empty are the same (`REDIS_URL=` means "not set").
    fn get(&mut self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let key = key_of(var);
        let Some(raw) = (self.env)(var) else {
            return Ok(None);
        };
        let value = raw.into_string().map_err(|raw| ConfigError::Env {
            var,
            key,
            value: raw.to_string_lossy().into_owned(),
            reason: "not valid UTF-8".to_owned(),
        })?;
        if value.trim().is_empty() {
            return Ok(None);
        }
        self.origins.set(key, format!("environment variable {var}"));
        Ok(Some(value))
    }

    fn parsed<T, E: Display>(
        &mut self,
        var: &'static str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.get(var)? else {
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::config::LogFormat;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn yaml(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write temp file");
        file
    }

    fn load_with(
        file: Option<&Path>,
        env: &[(&str, &str)],
        overrides: &Overrides,
    ) -> Result<AppConfig, ConfigError> {
        load(file, &env_of(env), overrides)
    }

    #[test]
    fn no_file_no_env_gives_the_defaults() {
        let cfg = load_with(None, &[], &Overrides::default()).expect("defaults load");
        assert_eq!(cfg, AppConfig::default());
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let file = yaml(
            "server:\n  listen: 127.0.0.1:9000\n  request_timeout_ms: 1500\n\
             log:\n  level: debug\n  format: json\n\
             persistence:\n  cache:\n    default_ttl_seconds: 10\n    zstd_level: 5\n",
        );
        let path = Some(file.path());

        let cfg = load_with(path, &[], &Overrides::default()).expect("file loads");
        assert_eq!(cfg.server.listen.port(), 9000);
        assert_eq!(cfg.server.request_timeout_ms, 1500);
        assert_eq!(
            cfg.server.shutdown_timeout_ms, 10_000,
            "unset keys keep their default"
        );
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.persistence.cache.default_ttl_seconds, 10);
        assert_eq!(cfg.persistence.cache.zstd_level, 5);

        let env = [
            ("RIPTIDE_LISTEN", "127.0.0.1:9100"),
            ("REDIS_URL", "redis://127.0.0.1:7000"),
            ("RIPTIDE_DATA_DIR", "/tmp/riptide-x"),
            ("RIPTIDE_LOG_LEVEL", "warn"),
            ("CACHE_DEFAULT_TTL_SECONDS", "20"),
            ("ENABLE_COMPRESSION", "false"),
            ("ENABLE_CACHE_WARMING", "0"),
        ];
        let cfg = load_with(path, &env, &Overrides::default()).expect("env loads");
        assert_eq!(cfg.server.listen.port(), 9100);
        assert_eq!(cfg.persistence.redis.url, "redis://127.0.0.1:7000");
        assert_eq!(
            cfg.persistence.embedded.data_dir,
            PathBuf::from("/tmp/riptide-x")
        );
        assert_eq!(cfg.log.level, "warn");
        assert_eq!(cfg.persistence.cache.default_ttl_seconds, 20);
        assert!(!cfg.persistence.cache.enable_compression);
        assert!(!cfg.persistence.cache.enable_warming);
        assert_eq!(
            cfg.persistence.cache.zstd_level, 5,
            "keys without a variable keep the file's value"
        );

        let flags = Overrides {
            listen: Some("127.0.0.1:9200".parse().expect("addr")),
        };
        let cfg = load_with(path, &env, &flags).expect("flags load");
        assert_eq!(cfg.server.listen.port(), 9200);
    }

    #[test]
    fn rust_log_beats_riptide_log_level_and_empty_means_unset() {
        let env = [
            ("RIPTIDE_LOG_LEVEL", "warn"),
            ("RUST_LOG", "info,riptide_api=debug"),
        ];
        let cfg = load_with(None, &env, &Overrides::default()).expect("loads");
        assert_eq!(cfg.log.level, "info,riptide_api=debug");

        let env = [("REDIS_URL", ""), ("RIPTIDE_LISTEN", " ")];
        let cfg = load_with(None, &env, &Overrides::default()).expect("loads");
        assert_eq!(cfg.persistence.redis.url, "embedded");
        assert_eq!(cfg.server.listen.port(), 8080);
    }

    #[test]
    fn a_file_of_comments_is_all_defaults() {
        let file = yaml("# nothing set\n");
        let cfg = load_with(Some(file.path()), &[], &Overrides::default()).expect("loads");
        assert_eq!(cfg, AppConfig::default());
    }

    #[test]
    fn unknown_yaml_keys_are_refused_with_their_path() {
        let file = yaml("persistence:\n  cache:\n    default_ttl_secs: 5\n");
        let err = load_with(Some(file.path()), &[], &Overrides::default()).expect_err("typo");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains(&file.path().display().to_string()), "{msg}");
        assert!(msg.contains("default_ttl_secs"), "{msg}");
        assert!(msg.contains("persistence.cache"), "{msg}");

        let file = yaml("server:\n  listen: 127.0.0.1:1\nsrever: {}\n");
        let msg = load_with(Some(file.path()), &[], &Overrides::default())
            .expect_err("top-level typo")
            .to_string();
        assert!(msg.contains("srever"), "{msg}");
    }

    #[test]
    fn wrong_types_in_the_file_are_refused() {
        let file = yaml("server:\n  request_timeout_ms: soon\n");
        let msg = load_with(Some(file.path()), &[], &Overrides::default())
            .expect_err("not a number")
            .to_string();
        assert!(msg.contains("server.request_timeout_ms"), "{msg}");

        let file = yaml("log:\n  format: xml\n");
        let msg = load_with(Some(file.path()), &[], &Overrides::default())
            .expect_err("unknown format")
            .to_string();
        assert!(msg.contains("log.format") && msg.contains("xml"), "{msg}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nope.yml");
        let err = load_with(Some(&path), &[], &Overrides::default()).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn unparsable_variables_name_the_variable_and_key() {
        let cases = [
            ("RIPTIDE_LISTEN", "localhost", "server.listen"),
            (
                "CACHE_DEFAULT_TTL_SECONDS",
                "-1",
                "persistence.cache.default_ttl_seconds",
            ),
            (
                "ENABLE_COMPRESSION",
                "maybe",
                "persistence.cache.enable_compression",
            ),
            (
                "ENABLE_CACHE_WARMING",
                "2",
                "persistence.cache.enable_warming",
            ),
        ];
        for (var, value, key) in cases {
            let err = load_with(None, &[(var, value)], &Overrides::default()).expect_err(var);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Env { .. }), "{msg}");
            assert!(
                msg.contains(var) && msg.contains(key) && msg.contains(value),
                "{msg}"
            );
        }
    }

    #[test]
    fn non_utf8_variables_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let env = |name: &str| (name == "REDIS_URL").then(|| OsString::from_vec(vec![0xff, 0xfe]));
        let err = load(None, &env, &Overrides::default()).expect_err("not UTF-8");
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_layer_that_set_them() {
        let file = yaml("persistence:\n  cache:\n    zstd_level: 40\n");
        let msg = load_with(Some(file.path()), &[], &Overrides::default())
            .expect_err("out of range")
            .to_string();
        assert!(msg.contains("persistence.cache.zstd_level"), "{msg}");
        assert!(
            msg.contains(&format!("config file {}", file.path().display())),
            "{msg}"
        );

        let msg = load_with(
            None,
            &[("REDIS_URL", "memcached://x")],
            &Overrides::default(),
        )
        .expect_err("bad url")
        .to_string();
        assert!(
            msg.contains("persistence.redis.url") && msg.contains("environment variable REDIS_URL"),
            "{msg}"
        );

        let msg = load_with(None, &[("RUST_LOG", "chatty")], &Overrides::default())
            .expect_err("bad level")
            .to_string();
        assert!(
            msg.contains("log.level") && msg.contains("environment variable RUST_LOG"),
            "{msg}"
        );

        let file = yaml("server:\n  shutdown_timeout_ms: 0\n");
        let msg = load_with(Some(file.path()), &[], &Overrides::default())
            .expect_err("zero")
            .to_string();
        assert!(
            msg.contains("server.shutdown_timeout_ms") && msg.contains("config file"),
            "{msg}"
        );
    }

    #[test]
    fn every_variable_names_a_real_key() {
        let defaults = serde_yaml_ng::to_value(AppConfig::default()).expect("serialize");
        for (var, key) in ENV_VARS {
            let mut node = &defaults;
            for part in key.split('.') {
                node = node
                    .get(part)
                    .unwrap_or_else(|| panic!("{var} sets unknown key {key}"));
            }
        }
    }
}
