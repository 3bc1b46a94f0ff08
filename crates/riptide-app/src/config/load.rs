//! Building an [`AppConfig`] from its layers: built-in defaults < YAML file < environment
//! < command-line flags, then the derived defaults, then validating the result once.
//!
//! Errors name where the bad value came from (the file, the variable or the flag) and
//! its key, so the operator knows what to fix. The layers above the file are kept in the
//! result's [`Provenance`], so a reloaded file is resolved the same way.

use std::path::{Path, PathBuf};

use super::AppConfig;
use super::error::{ConfigError, Overrides};
use super::provenance::{Env, Explicit, Provenance};

/// The file used when `--config` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/riptide.yml";

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
    let provenance = Provenance::capture(file, env, overrides)?;
    let (cfg, explicit) = match file {
        Some(path) => read_file(path)?,
        None => (AppConfig::default(), Explicit::default()),
    };
    provenance.resolve(cfg, &explicit)
}

/// The file as written (no layers above it, no derived defaults), and which derived
/// keys it sets.
pub fn read_file(path: &Path) -> Result<(AppConfig, Explicit), ConfigError> {
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
        return Ok((AppConfig::default(), Explicit::default()));
    }
    // Parse the text again rather than the value: errors keep their line and column.
    let cfg = serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })?;
    Ok((cfg, Explicit::of_yaml(&value)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use super::*;
    use crate::config::LogFormat;
    use crate::config::provenance::ENV_VARS;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// `riptide.yml`, alone in a temp dir.
    struct YamlFile {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl YamlFile {
        fn path(&self) -> &Path {
            &self.path
        }
    }

    fn yaml(text: &str) -> YamlFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("riptide.yml");
        std::fs::write(&path, text).expect("write temp file");
        YamlFile { _dir: dir, path }
    }

    fn load_with(
        file: Option<&Path>,
        env: &[(&str, &str)],
        overrides: &Overrides,
    ) -> Result<AppConfig, ConfigError> {
        load(file, &env_of(env), overrides)
    }

    /// The built-in defaults as resolved for `file`: the only difference is the watched
    /// directory (that of the file, or none).
    fn resolved_defaults(file: Option<&Path>) -> AppConfig {
        let mut cfg = AppConfig::default();
        cfg.persistence.state.config_watch_paths = file
            .map(crate::config::provenance::directory_of)
            .into_iter()
            .collect();
        cfg.provenance =
            Provenance::capture(file, &|_| None, &Overrides::default()).expect("no variables");
        cfg
    }

    #[test]
    fn no_file_no_env_gives_the_defaults() {
        let cfg = load_with(None, &[], &Overrides::default()).expect("defaults load");
        assert_eq!(cfg, resolved_defaults(None));
        assert!(cfg.persistence.state.config_watch_paths.is_empty());
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
        assert_eq!(cfg, resolved_defaults(Some(file.path())));
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

    /// base64 of 32 zero bytes: a valid master key and pepper.
    const KEY32: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn the_seed_switches_and_secrets_come_from_the_environment() {
        let file = yaml("log:\n  level: info\n");
        let cfg = load_with(Some(file.path()), &[], &Overrides::default()).expect("loads");
        assert!(
            cfg.persistence.tenant.enabled,
            "multi-tenancy is on by default"
        );
        assert!(!cfg.persistence.state.enable_hot_reload);

        let env = [
            ("ENABLE_MULTI_TENANCY", "false"),
            ("ENABLE_HOT_RELOAD", "yes"),
            ("RIPTIDE_MASTER_KEY", KEY32),
            ("RIPTIDE_API_KEY_PEPPER", KEY32),
        ];
        let cfg = load_with(Some(file.path()), &env, &Overrides::default()).expect("loads");
        let tenant = &cfg.persistence.tenant;
        assert!(!tenant.enabled);
        assert!(cfg.persistence.state.enable_hot_reload);
        assert_eq!(
            (tenant.master_key.as_str(), tenant.api_key_pepper.as_str()),
            (KEY32, KEY32)
        );
        assert_eq!(
            cfg.provenance
                .pinned_by("persistence.tenant.enabled")
                .as_deref(),
            Some("environment variable ENABLE_MULTI_TENANCY")
        );
        let shown = format!("{cfg:?}");
        assert!(shown.contains("RIPTIDE_MASTER_KEY"), "{shown}");
    }

    #[test]
    fn bad_seed_switches_name_their_variable() {
        let cases = [
            (
                "ENABLE_MULTI_TENANCY",
                "maybe",
                "persistence.tenant.enabled",
            ),
            (
                "ENABLE_HOT_RELOAD",
                "2",
                "persistence.state.enable_hot_reload",
            ),
        ];
        for (var, value, key) in cases {
            let err = load_with(None, &[(var, value)], &Overrides::default()).expect_err(var);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Env { .. }), "{msg}");
            assert!(msg.contains(var) && msg.contains(key), "{msg}");
        }
    }

    #[test]
    fn bad_secrets_name_the_variable_but_never_the_value() {
        let cases = [
            ("RIPTIDE_MASTER_KEY", "not base64 at all!"),
            // 16 bytes: base64, but not an AES-256 key.
            ("RIPTIDE_MASTER_KEY", "c2l4dGVlbiBieXRlcyBrZXk="),
            ("RIPTIDE_API_KEY_PEPPER", "c2hvcnQgcGVwcGVy"),
        ];
        for (var, value) in cases {
            let err = load_with(None, &[(var, value)], &Overrides::default()).expect_err(var);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{msg}");
            assert!(
                msg.contains(&format!("environment variable {var}")),
                "{msg}"
            );
            assert!(msg.contains("persistence.tenant."), "{msg}");
            assert!(!msg.contains(value), "the secret is echoed: {msg}");
        }

        use std::os::unix::ffi::OsStringExt;
        let env = |name: &str| {
            (name == "RIPTIDE_API_KEY_PEPPER").then(|| OsString::from_vec(b"s3cr\xfft".to_vec()))
        };
        let err = load(None, &env, &Overrides::default()).expect_err("not UTF-8");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::SecretEnv { .. }), "{msg}");
        assert!(msg.contains("RIPTIDE_API_KEY_PEPPER"), "{msg}");
        assert!(!msg.contains("s3cr"), "the secret is echoed: {msg}");
    }

    #[test]
    fn secrets_and_state_dirs_follow_the_embedded_data_dir() {
        let none = Overrides::default();
        let cfg = load_with(None, &[("RIPTIDE_DATA_DIR", "/srv/rt")], &none).expect("loads");
        assert_eq!(cfg.persistence.tenant.secrets_dir, Path::new("/srv/rt"));
        assert_eq!(
            cfg.persistence.state.checkpoint_dir,
            Path::new("/srv/rt/checkpoints")
        );
        assert_eq!(
            cfg.persistence.state.spill_dir,
            Path::new("/srv/rt/sessions")
        );

        let cfg = load_with(None, &[("REDIS_URL", "/var/lib/rt")], &none).expect("loads");
        assert_eq!(cfg.persistence.tenant.secrets_dir, Path::new("/var/lib/rt"));

        // On Redis there is no data dir: the persistence defaults stay.
        let cfg =
            load_with(None, &[("REDIS_URL", "redis://127.0.0.1:6379")], &none).expect("loads");
        assert_eq!(cfg.persistence.tenant.secrets_dir, Path::new("./data"));
        assert_eq!(
            cfg.persistence.state.checkpoint_dir,
            Path::new("./data/checkpoints")
        );

        // What the file sets wins over the derived default.
        let file = yaml(
            "persistence:\n  tenant:\n    secrets_dir: /etc/rt\n  \
             state:\n    checkpoint_dir: /backup/rt\n",
        );
        let env = [("RIPTIDE_DATA_DIR", "/srv/rt")];
        let cfg = load_with(Some(file.path()), &env, &none).expect("loads");
        assert_eq!(cfg.persistence.tenant.secrets_dir, Path::new("/etc/rt"));
        assert_eq!(
            cfg.persistence.state.checkpoint_dir,
            Path::new("/backup/rt")
        );
        assert_eq!(
            cfg.persistence.state.spill_dir,
            Path::new("/srv/rt/sessions")
        );
    }

    #[test]
    fn hot_reload_watches_the_directory_of_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("riptide.yml");
        std::fs::write(
            &file,
            "persistence:\n  state:\n    enable_hot_reload: true\n",
        )
        .expect("write");
        let cfg = load_with(Some(&file), &[], &Overrides::default()).expect("loads");
        assert!(cfg.persistence.state.enable_hot_reload);
        assert_eq!(
            cfg.persistence.state.config_watch_paths,
            [dir.path().display().to_string()]
        );

        std::fs::write(
            &file,
            "persistence:\n  state:\n    config_watch_paths: [/etc/rt, /etc/rt.d]\n",
        )
        .expect("write");
        let cfg = load_with(Some(&file), &[], &Overrides::default()).expect("loads");
        assert_eq!(
            cfg.persistence.state.config_watch_paths,
            ["/etc/rt", "/etc/rt.d"]
        );

        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(
            crate::config::provenance::directory_of(Path::new("riptide.yml")),
            cwd.display().to_string()
        );

        let msg = load_with(
            None,
            &[("ENABLE_HOT_RELOAD", "true")],
            &Overrides::default(),
        )
        .expect_err("nothing to watch")
        .to_string();
        assert!(
            msg.contains("persistence.state.enable_hot_reload")
                && msg.contains("environment variable ENABLE_HOT_RELOAD")
                && msg.contains("--config"),
            "{msg}"
        );
    }

    #[test]
    fn a_directory_shared_with_other_yaml_files_is_not_watched_by_default() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("riptide.yml");
        std::fs::write(&file, "log:\n  level: info\n").expect("write");
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}\n").expect("write");
        let none = Overrides::default();
        let cfg = load_with(Some(&file), &[], &none).expect("loads without hot reload");
        assert!(cfg.persistence.state.config_watch_paths.is_empty());
        let msg = load_with(Some(&file), &[("ENABLE_HOT_RELOAD", "1")], &none)
            .expect_err("would merge docker-compose.yml")
            .to_string();
        assert!(
            msg.contains("docker-compose.yml") && msg.contains("enable_hot_reload"),
            "{msg}"
        );

        // A file the state manager would not read at all.
        let other = tempfile::tempdir().expect("temp dir");
        let conf = other.path().join("riptide.conf");
        std::fs::write(&conf, "log:\n  level: info\n").expect("write");
        let cfg = load_with(Some(&conf), &[], &none).expect("loads without hot reload");
        assert!(cfg.persistence.state.config_watch_paths.is_empty());
        let msg = load_with(Some(&conf), &[("ENABLE_HOT_RELOAD", "1")], &none)
            .expect_err("not a yml file")
            .to_string();
        assert!(msg.contains("*.yml"), "{msg}");
    }
}
