//! The `metrics` section: who may read `GET /metrics`, and whether it carries the
//! series that say what each tenant is billed.
//!
//! `/metrics` lists every tenant that made a request (in `tenant_id` labels), and with
//! `tenant_billing_units` what each one owes. Anyone who can reach the port can read it
//! unless a token is set; a listener on a private network or behind a proxy that
//! restricts the path may leave it open.

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Shortest accepted `metrics.token`, in characters: a guess must be hopeless, and the
/// failed-authentication throttle counts wrong tokens on top of that.
pub const MIN_METRICS_TOKEN_LEN: usize = 32;

/// Longest accepted `metrics.token`, in characters.
pub const MAX_METRICS_TOKEN_LEN: usize = 512;

/// `GET /metrics` settings. All restart-only.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`; without it, or
    /// with another token, the answer is 401 `unauthorized` with `WWW-Authenticate:
    /// Bearer`. [`MIN_METRICS_TOKEN_LEN`] to [`MAX_METRICS_TOKEN_LEN`] printable ASCII
    /// characters without spaces. Empty (the default): `/metrics` is open. Env
    /// `RIPTIDE_METRICS_TOKEN` (preferred: keep secrets out of the file); Prometheus
    /// sends it with `authorization: {credentials_file: ...}`.
    pub token: String,
    /// Publish `tenant_billing_units{tenant_id, period}`, each tenant's bill total in
    /// cents: the only per-tenant series that states money. Off, the series is never
    /// registered; bills are computed and served by the admin API as before. Default on
    /// (the seed's series and the dashboard's billing panel).
    pub tenant_billing: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            tenant_billing: true,
        }
    }
}

/// Never shows the token.
impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("MetricsConfig")
            .field("token", &token)
            .field("tenant_billing", &self.tenant_billing)
            .finish()
    }
}

impl MetricsConfig {
    /// Checks the token's form. The reason never contains the token.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let token = &self.token;
        if token.is_empty() {
            return Ok(());
        }
        let n = token.chars().count();
        if !(MIN_METRICS_TOKEN_LEN..=MAX_METRICS_TOKEN_LEN).contains(&n) {
            return Err(Invalid::new(
                "metrics.token",
                format!(
                    "has {n} characters; {MIN_METRICS_TOKEN_LEN} to {MAX_METRICS_TOKEN_LEN} \
                     are required"
                ),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid::new(
                "metrics.token",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(())
    }
}

/// The token `GET /metrics` requires (`metrics.token`), as its hash.
#[derive(Clone)]
pub struct MetricsToken(blake3::Hash);

impl MetricsToken {
    /// The token to require, or `None` for an empty one (`/metrics` open).
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| Self(blake3::hash(token.as_bytes())))
    }

    /// Whether `presented` is the token, in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        blake3::hash(presented.as_bytes()) == self.0
    }
}

/// Never shows anything of the token.
impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_must_be_long_printable_and_is_never_shown() {
        let mut cfg = MetricsConfig::default();
        assert!(cfg.validate().is_ok(), "no token: open");
        cfg.token = "short-secret".into();
        let err = cfg.validate().expect_err("short");
        assert_eq!(err.key, "metrics.token");
        assert!(!err.reason.contains("short-secret"), "{err:?}");
        cfg.token = format!("{} x", "a".repeat(40));
        assert!(cfg.validate().is_err(), "a space");
        cfg.token = "a".repeat(32);
        assert!(cfg.validate().is_ok());
        assert!(!format!("{cfg:?}").contains(&cfg.token));
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        assert!(MetricsToken::new("").is_none());
        let token = MetricsToken::new("s3cret-s3cret-s3cret-s3cret-s3cret").expect("set");
        assert!(token.accepts("s3cret-s3cret-s3cret-s3cret-s3cret"));
        for wrong in [
            "",
            "s3cret",
            "s3cret-s3cret-s3cret-s3cret-s3cre7",
            "S3CRET-s3cret-s3cret-s3cret-s3cret",
        ] {
            assert!(!token.accepts(wrong), "{wrong}");
        }
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
