//! [`CrawlConfig`]: how much one `POST /crawl` may ask for and answer.

use serde::{Deserialize, Serialize};

use super::Invalid;

/// The bounds of one crawl. Its memory is bounded by `max_concurrency` pages in flight
/// (each at most `extract.max_answer_bytes`) plus the answer, which holds page data up
/// to `max_answer_bytes`; pages beyond it are cached and reported as `stored`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrawlConfig {
    /// Most URLs in one crawl, 1 to [`MAX_URLS_LIMIT`]. Each costs one rate-limit token.
    pub max_urls: usize,
    /// Most fetches in flight for one crawl, 1 to [`MAX_CONCURRENCY_LIMIT`] (and never
    /// more than the tenant's share, `extract.max_fetches_per_tenant`).
    pub max_concurrency: usize,
    /// Fetches in flight when the request does not say, 1 to `max_concurrency`.
    pub default_concurrency: usize,
    /// Most bytes of page data in one crawl answer (at least 64 KiB). 32 MiB by default:
    /// four times the largest single page.
    pub max_answer_bytes: usize,
}

/// Highest `max_urls` a configuration may set.
pub const MAX_URLS_LIMIT: usize = 1_000;
/// Highest `max_concurrency` a configuration may set.
pub const MAX_CONCURRENCY_LIMIT: usize = 64;

impl Default for CrawlConfig {
    fn default() -> Self {
        Self {
            max_urls: 100,
            max_concurrency: 16,
            default_concurrency: 4,
            max_answer_bytes: 32 * 1024 * 1024,
        }
    }
}

impl CrawlConfig {
    /// Checks every value against its range.
    pub fn validate(&self) -> Result<(), Invalid> {
        let checks = [
            ("crawl.max_urls", self.max_urls, 1, MAX_URLS_LIMIT),
            (
                "crawl.max_concurrency",
                self.max_concurrency,
                1,
                MAX_CONCURRENCY_LIMIT,
            ),
            (
                "crawl.default_concurrency",
                self.default_concurrency,
                1,
                self.max_concurrency,
            ),
            (
                "crawl.max_answer_bytes",
                self.max_answer_bytes,
                64 * 1024,
                usize::MAX,
            ),
        ];
        for (key, value, min, max) in checks {
            if value < min || value > max {
                return Err(Invalid::new(
                    key,
                    format!("must be between {min} and {max}, not {value}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_named() {
        assert_eq!(CrawlConfig::default().validate(), Ok(()));
        let bad = CrawlConfig {
            default_concurrency: 17,
            ..CrawlConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "crawl.default_concurrency");
        let bad = CrawlConfig {
            max_urls: 0,
            ..CrawlConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "crawl.max_urls");
    }
}
