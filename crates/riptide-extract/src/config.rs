//! [`FetchConfig`]: the limits and identity every fetch runs under, and their validation.

use std::net::IpAddr;

use ipnet::IpNet;
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};

/// How pages are fetched: timeouts, redirect and size limits, the `User-Agent`, and the
/// addresses the SSRF guard lets through.
///
/// Every field has a default, so an empty config section is valid. Call
/// [`FetchConfig::validate`] once at startup; [`crate::Extractor::new`] calls it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Time allowed to open the TCP (and TLS) connection, in milliseconds. Must be > 0.
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole fetch, every redirect hop and the body included, in
    /// milliseconds. Must be > 0.
    pub timeout_ms: u64,
    /// Redirects followed before giving up with `too_many_redirects`. At most 20; 0 means
    /// a redirect response is itself an error.
    pub max_redirects: u32,
    /// Largest body read, in bytes (checked against `Content-Length` first, then counted
    /// while streaming). At least 1 KiB.
    pub max_body_bytes: u64,
    /// The `User-Agent` header sent with every request. Must be a valid, non-empty header
    /// value.
    pub user_agent: String,
    /// Addresses (`10.0.0.7`) or CIDR blocks (`127.0.0.1/32`, `fd00::/8`) that the SSRF
    /// guard lets through although they are private, loopback or otherwise internal.
    /// Empty by default: only public addresses are fetched.
    pub allow_addresses: Vec<String>,
}

/// The default `User-Agent`: the product, its version and where to learn about it.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "RipTide/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/riptide)"
);

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            timeout_ms: 15_000,
            max_redirects: 5,
            max_body_bytes: 5 * 1024 * 1024,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            allow_addresses: Vec::new(),
        }
    }
}

/// Most redirects a config may allow.
const MAX_REDIRECTS_LIMIT: u32 = 20;
/// Smallest body cap a config may set.
const MIN_BODY_BYTES: u64 = 1024;

impl FetchConfig {
    /// Checks every field; on failure returns the field's name and why it was refused.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.connect_timeout_ms == 0 {
            return Err(("connect_timeout_ms", "must be greater than 0".into()));
        }
        if self.timeout_ms == 0 {
            return Err(("timeout_ms", "must be greater than 0".into()));
        }
        if self.max_redirects > MAX_REDIRECTS_LIMIT {
            return Err((
                "max_redirects",
                format!("must be at most {MAX_REDIRECTS_LIMIT}"),
            ));
        }
        if self.max_body_bytes < MIN_BODY_BYTES {
            return Err((
                "max_body_bytes",
                format!("must be at least {MIN_BODY_BYTES} bytes"),
            ));
        }
        if self.user_agent.trim().is_empty() {
            return Err(("user_agent", "must not be empty".into()));
        }
        if HeaderValue::from_str(&self.user_agent).is_err() {
            return Err((
                "user_agent",
                "must be a valid HTTP header value (visible ASCII, no control characters)".into(),
            ));
        }
        self.allow_nets().map(|_| ())
    }

    /// Parses `allow_addresses` into networks; a bare address is a single-host network.
    pub(crate) fn allow_nets(&self) -> Result<Vec<IpNet>, (&'static str, String)> {
        self.allow_addresses
            .iter()
            .map(|entry| parse_net(entry.trim()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                let bad = self
                    .allow_addresses
                    .iter()
                    .find(|e| parse_net(e.trim()).is_none())
                    .cloned()
                    .unwrap_or_default();
                (
                    "allow_addresses",
                    format!("{bad:?} is neither an IP address nor a CIDR block"),
                )
            })
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(cfg: FetchConfig) -> &'static str {
        cfg.validate().expect_err("config should be refused").0
    }

    #[test]
    fn defaults_are_valid_and_sensible() {
        let cfg = FetchConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.timeout_ms, 15_000);
        assert_eq!(cfg.connect_timeout_ms, 5_000);
        assert_eq!(cfg.max_redirects, 5);
        assert_eq!(cfg.max_body_bytes, 5 * 1024 * 1024);
        assert!(cfg.user_agent.starts_with("RipTide/"));
        assert!(cfg.allow_addresses.is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = FetchConfig::default;
        assert_eq!(
            field_of(FetchConfig {
                connect_timeout_ms: 0,
                ..base()
            }),
            "connect_timeout_ms"
        );
        assert_eq!(
            field_of(FetchConfig {
                timeout_ms: 0,
                ..base()
            }),
            "timeout_ms"
        );
        assert_eq!(
            field_of(FetchConfig {
                max_redirects: 21,
                ..base()
            }),
            "max_redirects"
        );
        assert_eq!(
            field_of(FetchConfig {
                max_body_bytes: 1023,
                ..base()
            }),
            "max_body_bytes"
        );
        assert_eq!(
            field_of(FetchConfig {
                user_agent: "  ".into(),
                ..base()
            }),
            "user_agent"
        );
        assert_eq!(
            field_of(FetchConfig {
                user_agent: "bad\nagent".into(),
                ..base()
            }),
            "user_agent"
        );
        let (field, reason) = FetchConfig {
            allow_addresses: vec!["127.0.0.1/32".into(), "localhost".into()],
            ..base()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field, "allow_addresses");
        assert!(reason.contains("localhost"), "{reason}");
    }

    #[test]
    fn limits_at_the_edge_are_accepted() {
        let cfg = FetchConfig {
            max_redirects: 20,
            max_body_bytes: 1024,
            allow_addresses: vec!["10.0.0.7".into(), "127.0.0.1/32".into(), "fd00::/8".into()],
            ..FetchConfig::default()
        };
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.allow_nets().unwrap().len(), 3);
    }

    #[test]
    fn unknown_keys_are_refused_and_missing_keys_defaulted() {
        let partial: FetchConfig = serde_json::from_str(r#"{"timeout_ms": 100}"#).unwrap();
        assert_eq!(partial.timeout_ms, 100);
        assert_eq!(partial.max_redirects, 5);
        assert!(serde_json::from_str::<FetchConfig>(r#"{"timeout": 100}"#).is_err());
    }
}
