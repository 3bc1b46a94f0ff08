//! Fetching a URL safely and extracting its readable content.
//!
//! - [`normalize_url`] checks a URL a client asks for and gives its canonical form.
//! - [`Extractor::extract`] fetches a page and returns an [`Extraction`]: title, byline,
//!   excerpt, text, Markdown, links, language, publication time and a content hash.
//!
//! Fetching ([`ExtractConfig`]) uses one pooled reqwest client with connect and total
//! timeouts, a body cap (the `Content-Length` is checked first, then bytes are counted
//! while streaming, after gzip, deflate, brotli or zstd decoding, so a decompression
//! bomb stops at the cap) and redirects followed by hand so that every hop is checked.
//! Only `text/html` and `application/xhtml+xml` are accepted (an untyped body is
//! sniffed for `<html`). The character set comes from a BOM, the `Content-Type` header,
//! a `<meta>` declaration, else UTF-8.
//!
//! The SSRF guard runs after DNS resolution: a custom resolver refuses host names
//! resolving to loopback, private, link-local, CGNAT, multicast, documentation and
//! other special-purpose ranges and the cloud metadata addresses, unless the address is
//! in [`ExtractConfig::allow_addresses`]. Literal-IP URLs and redirect targets are
//! checked before connecting, and no proxy is ever used.
//!
//! Extraction uses dom_smoothie (a Readability port) and htmd for Markdown, in worker
//! processes ([`worker`]) under a time budget, a memory limit and bounds on depth,
//! elements, links, text, Markdown and answer size ([`PageLimits`]); a page beyond them
//! is refused as `page_too_complex`. A page without a recognizable article falls back
//! to its whole body's text instead of failing.
//!
//! Fetches and extractions are shared among callers (tenants) by [`FairShare`]: no
//! caller holds every slot, freed slots go round robin, and a caller whose queue is
//! full is refused at once (`queue_full`).
//!
//! Every failure is an [`ExtractError`] whose [`ExtractError::kind`] is a stable code.

mod charset;
mod config;
mod content;
mod error;
mod extraction;
mod extractor;
mod fair_share;
mod fetch;
mod guard;
mod headers;
mod language;
mod limits;
mod links;
mod page_cpu;
mod page_runtime;
mod published;
mod resolver;
pub mod worker;

pub use config::{DEFAULT_USER_AGENT, ExtractConfig};
pub use error::ExtractError;
pub use extraction::{Extraction, Link};
pub use extractor::Extractor;
pub use fair_share::{FairShare, Slot};
pub use guard::is_public;
pub use headers::check_extra_header;
pub use limits::PageLimits;
pub use worker::WorkerProgram;

use thiserror::Error;
pub use url::Url;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a valid URL: {0}")]
    Parse(#[from] url::ParseError),
    /// A scheme other than `http` or `https`.
    #[error("unsupported scheme {0:?}: only http and https")]
    Scheme(String),
    /// `user:password@` in the URL: credentials would end up in cache keys and logs.
    #[error("URLs with credentials are not accepted")]
    Credentials,
}

/// Checks `raw` and returns it in canonical form, so that spellings of one URL compare
/// equal.
///
/// Accepts absolute `http` and `https` URLs without credentials. The canonical form is
/// what the WHATWG URL parser produces (lower-case scheme and host, IDNs in punycode, the
/// default port removed, `.` and `..` path segments resolved, an empty path as `/`), plus:
/// surrounding whitespace trimmed, the fragment dropped (it never reaches the server),
/// and an empty query (`?` alone) removed. The query is otherwise kept as written: the
/// order of its parameters can matter to the server.
pub fn normalize_url(raw: &str) -> Result<Url, UrlError> {
    let mut url = Url::parse(raw.trim())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    url.set_fragment(None);
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        normalize_url(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .into()
    }

    #[test]
    fn spellings_of_one_url_normalize_alike() {
        let canonical = "https://example.com/a/b?x=1&y=2";
        for raw in [
            canonical,
            "  HTTPS://Example.COM:443/a/./c/../b?x=1&y=2#section  ",
            "https://example.com/a/b?x=1&y=2#",
        ] {
            assert_eq!(norm(raw), canonical, "{raw}");
        }
        assert_eq!(norm("http://example.com"), "http://example.com/");
        assert_eq!(norm("http://example.com:80/?"), "http://example.com/");
        assert_eq!(
            norm("http://bücher.example/"),
            "http://xn--bcher-kva.example/"
        );
    }

    #[test]
    fn what_differs_stays_different() {
        assert_ne!(norm("http://example.com/"), norm("https://example.com/"));
        assert_ne!(
            norm("https://example.com:8443/"),
            norm("https://example.com/")
        );
        assert_ne!(
            norm("https://example.com/?a=1&b=2"),
            norm("https://example.com/?b=2&a=1")
        );
        assert_ne!(norm("https://example.com/A"), norm("https://example.com/a"));
    }

    #[test]
    fn refuses_what_cannot_be_fetched_safely() {
        assert!(matches!(
            normalize_url("example.com/page"),
            Err(UrlError::Parse(_))
        ));
        assert!(matches!(normalize_url("http://"), Err(UrlError::Parse(_))));
        assert!(matches!(normalize_url(""), Err(UrlError::Parse(_))));
        assert_eq!(
            normalize_url("file:///etc/passwd"),
            Err(UrlError::Scheme("file".into()))
        );
        assert_eq!(
            normalize_url("ftp://example.com/"),
            Err(UrlError::Scheme("ftp".into()))
        );
        assert_eq!(
            normalize_url("https://user:pw@example.com/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            normalize_url("https://user@example.com/"),
            Err(UrlError::Credentials)
        );
    }
}
