//! [`ExtractError`]: every way fetching and extracting a page can fail, each with a
//! stable code ([`ExtractError::kind`]) for API responses and metrics.

use thiserror::Error;

/// Why a page could not be fetched or extracted.
///
/// The variants separate what the caller did wrong (`InvalidUrl`, `Blocked`) from what
/// the site did (`UpstreamStatus`, `NotHtml`, `TooLarge`, `Decode`, `TooComplex`), from
/// the network (`Dns`, `Unreachable`, `Timeout`, `TooManyRedirects`) and from this
/// service's own capacity (`QueueFull`, `Unavailable`), so the API can answer each with
/// the right status. `Config` is a startup error, never a per-request one.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The URL (or a redirect's `Location`) is not an absolute http(s) URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The SSRF guard refused an address the host resolved to (or the literal IP in the
    /// URL): loopback, private, link-local, metadata and similar internal ranges.
    #[error("refusing to fetch {host}: it resolves to the non-public address {address}")]
    Blocked {
        /// The host name (or literal IP) from the URL.
        host: String,
        /// The address that was refused.
        address: String,
    },
    /// The host name does not resolve.
    #[error("could not resolve host {host}")]
    Dns {
        /// The host name that failed to resolve.
        host: String,
    },
    /// Connecting failed: refused, reset, TLS error, or the connection broke mid-response.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The configured connect or total timeout elapsed.
    #[error("upstream did not answer within {after_ms} ms")]
    Timeout {
        /// The timeout that elapsed, in milliseconds.
        after_ms: u64,
    },
    /// The site redirected more often than allowed.
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The configured `max_redirects`.
        limit: u32,
    },
    /// The site answered with a 4xx or 5xx status.
    #[error("upstream answered with status {status}")]
    UpstreamStatus {
        /// The status the site sent.
        status: u16,
    },
    /// The response is not an HTML page.
    #[error("not an HTML page (content type {content_type:?})")]
    NotHtml {
        /// The response's content type (empty if it sent none).
        content_type: String,
    },
    /// The body is larger than `max_body_bytes`.
    #[error("page larger than {limit} bytes")]
    TooLarge {
        /// The configured `max_body_bytes`.
        limit: u64,
    },
    /// The body could not be decoded or parsed.
    #[error("could not decode the page: {0}")]
    Decode(String),
    /// The page is beyond what one extraction may cost or answer: nested too deep, too
    /// many elements or links, text or Markdown or answer too large, or its extraction
    /// ran out of time or memory (the worker running it was stopped).
    #[error("page too complex to extract: {0}")]
    TooComplex(String),
    /// The caller already has as many pages waiting for this stage (`fetch` or
    /// `extract`) as allowed: refused at once rather than queued.
    #[error("too many pages of this tenant are waiting to {stage}; retry shortly")]
    QueueFull {
        /// The stage whose queue is full: `fetch` or `extract`.
        stage: &'static str,
    },
    /// No extraction worker could be started or reached: a fault of this service, not
    /// of the page.
    #[error("extraction is unavailable: {0}")]
    Unavailable(String),
    /// The [`crate::ExtractConfig`] given to [`crate::Extractor`] is invalid, or the
    /// HTTP client could not be built from it. Only `Extractor::start` returns this.
    #[error("invalid fetch configuration: {0}")]
    Config(String),
}

impl ExtractError {
    /// A stable snake_case code for this error, for API error bodies, logs and metric
    /// labels. Codes never change once published.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::Blocked { .. } => "blocked_address",
            Self::Dns { .. } => "dns_failure",
            Self::Unreachable(_) => "upstream_unreachable",
            Self::Timeout { .. } => "upstream_timeout",
            Self::TooManyRedirects { .. } => "too_many_redirects",
            Self::UpstreamStatus { .. } => "upstream_status",
            Self::NotHtml { .. } => "not_html",
            Self::TooLarge { .. } => "page_too_large",
            Self::Decode(_) => "decode_failed",
            Self::TooComplex(_) => "page_too_complex",
            Self::QueueFull { .. } => "queue_full",
            Self::Unavailable(_) => "extraction_unavailable",
            Self::Config(_) => "invalid_config",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_variant_has_its_own_stable_code() {
        let all = [
            (ExtractError::InvalidUrl("x".into()), "invalid_url"),
            (
                ExtractError::Blocked {
                    host: "h".into(),
                    address: "10.0.0.1".into(),
                },
                "blocked_address",
            ),
            (ExtractError::Dns { host: "h".into() }, "dns_failure"),
            (
                ExtractError::Unreachable("refused".into()),
                "upstream_unreachable",
            ),
            (ExtractError::Timeout { after_ms: 5 }, "upstream_timeout"),
            (
                ExtractError::TooManyRedirects { limit: 5 },
                "too_many_redirects",
            ),
            (
                ExtractError::UpstreamStatus { status: 404 },
                "upstream_status",
            ),
            (
                ExtractError::NotHtml {
                    content_type: "application/json".into(),
                },
                "not_html",
            ),
            (ExtractError::TooLarge { limit: 1024 }, "page_too_large"),
            (ExtractError::Decode("bad".into()), "decode_failed"),
            (ExtractError::TooComplex("deep".into()), "page_too_complex"),
            (ExtractError::QueueFull { stage: "fetch" }, "queue_full"),
            (
                ExtractError::Unavailable("no worker".into()),
                "extraction_unavailable",
            ),
            (ExtractError::Config("bad".into()), "invalid_config"),
        ];
        let mut seen = HashSet::new();
        for (err, code) in &all {
            assert_eq!(err.kind(), *code, "{err:?}");
            assert!(seen.insert(err.kind()), "duplicate code {code}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn messages_carry_the_details() {
        let err = ExtractError::Blocked {
            host: "internal".into(),
            address: "10.1.2.3".into(),
        };
        assert!(err.to_string().contains("10.1.2.3"));
        assert!(
            ExtractError::UpstreamStatus { status: 503 }
                .to_string()
                .contains("503")
        );
    }
}
