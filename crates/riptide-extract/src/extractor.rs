//! [`Extractor`]: fetch a page safely and extract its readable content.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use url::Url;

use crate::charset::decode_html;
use crate::config::FetchConfig;
use crate::content::extract_content;
use crate::error::ExtractError;
use crate::extraction::Extraction;
use crate::fetch::Fetcher;
use crate::guard::AddressGuard;
use crate::headers::extra_header_map;

/// Fetches pages and extracts their content. Cheap to clone (one shared, pooled HTTP
/// client); `Send + Sync`, so one instance serves the whole process.
#[derive(Debug, Clone)]
pub struct Extractor {
    fetcher: Arc<Fetcher>,
}

impl Extractor {
    /// An extractor fetching under `cfg`; fails with [`ExtractError::Config`] when the
    /// config is invalid or the HTTP client cannot be built.
    pub fn new(cfg: &FetchConfig) -> Result<Self, ExtractError> {
        cfg.validate()
            .map_err(|(field, reason)| ExtractError::Config(format!("{field}: {reason}")))?;
        let allow = cfg
            .allow_nets()
            .map_err(|(field, reason)| ExtractError::Config(format!("{field}: {reason}")))?;
        let guard = Arc::new(AddressGuard::new(allow));
        Ok(Self {
            fetcher: Arc::new(Fetcher::new(cfg, guard)?),
        })
    }

    /// Fetches `url` and extracts its content.
    ///
    /// `extra_headers` (a session's `Cookie`, `Authorization`, ...) are sent to the
    /// requested host only, not to other hosts a redirect leads to. Headers the caller may
    /// not set (`Host`, hop-by-hop and framing headers, see
    /// [`check_extra_header`](crate::check_extra_header)) and invalid ones are dropped
    /// silently. The parsing runs on a blocking thread.
    pub async fn extract(
        &self,
        url: &Url,
        extra_headers: &[(String, String)],
    ) -> Result<Extraction, ExtractError> {
        let fetched_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let fetched = self
            .fetcher
            .fetch(url, &extra_header_map(extra_headers))
            .await?;
        let bytes_fetched = fetched.body.len() as u64;
        let final_url = fetched.final_url.clone();
        let charset = fetched.charset.clone();
        let body = fetched.body.clone();
        let content = tokio::task::spawn_blocking(move || {
            let html = decode_html(&body, charset.as_deref());
            extract_content(&html, &final_url)
        })
        .await
        .map_err(|e| ExtractError::Decode(format!("extraction task failed: {e}")))??;
        let content_hash = blake3::hash(content.text.as_bytes()).to_hex().to_string();
        tracing::debug!(
            url = %url,
            final_url = %fetched.final_url,
            bytes = bytes_fetched,
            text_chars = content.text.len(),
            "extracted page"
        );
        Ok(Extraction {
            url: url.to_string(),
            final_url: fetched.final_url.to_string(),
            status: fetched.status,
            content_type: fetched.content_type,
            title: content.title,
            byline: content.byline,
            excerpt: content.excerpt,
            text: content.text,
            markdown: content.markdown,
            links: content.links,
            language: content.language,
            published: content.published,
            content_hash,
            fetched_at,
            bytes_fetched,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_config_is_refused_with_the_field() {
        let cfg = FetchConfig {
            timeout_ms: 0,
            ..FetchConfig::default()
        };
        let err = Extractor::new(&cfg).unwrap_err();
        assert_eq!(err.kind(), "invalid_config");
        assert!(err.to_string().contains("timeout_ms"), "{err}");
    }

    #[test]
    fn extractor_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Extractor>();
        assert!(Extractor::new(&FetchConfig::default()).is_ok());
    }
}
