//! Fetching one page over HTTP: the reqwest client, manual redirects (each hop checked
//! by the SSRF guard), the content-type check and the size-capped body.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use url::{Host, Url};

use crate::config::ExtractConfig;
use crate::error::ExtractError;
use crate::guard::AddressGuard;
use crate::resolver::{GuardError, GuardedResolver, find_guard_error};

/// A fetched HTML page, not yet decoded.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// Where the body came from, after redirects.
    pub final_url: Url,
    /// The final response's status.
    pub status: u16,
    /// The content type as sent, or `text/html` when it was missing and sniffed.
    pub content_type: String,
    /// The `charset` parameter of the content type, if any.
    pub charset: Option<String>,
    /// The body, at most `max_body_bytes` long.
    pub body: Bytes,
}

/// The HTTP side of an [`crate::Extractor`]: one pooled client for all fetches.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: Client,
    guard: Arc<AddressGuard>,
    cfg: ExtractConfig,
}

/// How many bytes of a body without a content type are searched for `<html`.
const SNIFF_BYTES: usize = 1024;

impl Fetcher {
    /// Builds the client. `cfg` must be valid.
    pub fn new(cfg: &ExtractConfig, guard: Arc<AddressGuard>) -> Result<Self, ExtractError> {
        let client = Client::builder()
            // Every hop must pass the guard, so redirects are followed by hand.
            .redirect(Policy::none())
            // A proxy would resolve names itself, out of the guard's sight.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(guard.clone())))
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .user_agent(cfg.user_agent.clone())
            .build()
            .map_err(|e| ExtractError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            guard,
            cfg: cfg.clone(),
        })
    }

    /// Fetches `url`, following redirects, within the total timeout. `extra` headers go
    /// only to the requested host (never to another host a redirect leads to, and never
    /// over plain http after https).
    pub async fn fetch(&self, url: &Url, extra: &HeaderMap) -> Result<Fetched, ExtractError> {
        let total = Duration::from_millis(self.cfg.timeout_ms);
        tokio::time::timeout(total, self.follow(url, extra))
            .await
            .unwrap_or(Err(ExtractError::Timeout {
                after_ms: self.cfg.timeout_ms,
            }))
    }

    async fn follow(&self, url: &Url, extra: &HeaderMap) -> Result<Fetched, ExtractError> {
        let mut current = url.clone();
        let mut redirects = 0u32;
        loop {
            self.check_target(&current)?;
            let mut request = self.client.get(current.clone());
            if same_site(url, &current) {
                request = request.headers(extra.clone());
            }
            let response = request.send().await.map_err(|e| self.map_error(&e))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(LOCATION)
            {
                if redirects >= self.cfg.max_redirects {
                    return Err(ExtractError::TooManyRedirects {
                        limit: self.cfg.max_redirects,
                    });
                }
                let location = location.to_str().map_err(|_| {
                    ExtractError::InvalidUrl("redirect Location is not text".into())
                })?;
                let mut next = current.join(location).map_err(|e| {
                    let shown: String = location.chars().take(200).collect();
                    ExtractError::InvalidUrl(format!("redirect to {shown:?}: {e}"))
                })?;
                next.set_fragment(None);
                tracing::debug!(from = %current, to = %next, "following redirect");
                current = next;
                redirects += 1;
                continue;
            }
            if !status.is_success() {
                return Err(ExtractError::UpstreamStatus {
                    status: status.as_u16(),
                });
            }
            return self.read_page(current, response).await;
        }
    }

    /// Refuses targets longer than `max_url_bytes`, targets that are not http(s), and
    /// literal-IP hosts the guard refuses (no DNS happens for those, so the resolver
    /// never sees them).
    fn check_target(&self, url: &Url) -> Result<(), ExtractError> {
        if url.as_str().len() > self.cfg.max_url_bytes {
            return Err(ExtractError::InvalidUrl(format!(
                "a URL of {} bytes; at most {} are fetched",
                url.as_str().len(),
                self.cfg.max_url_bytes
            )));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ExtractError::InvalidUrl(format!(
                "unsupported scheme {:?} in {url}",
                url.scheme()
            )));
        }
        let ip: IpAddr = match url.host() {
            Some(Host::Ipv4(v4)) => v4.into(),
            Some(Host::Ipv6(v6)) => v6.into(),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(ExtractError::InvalidUrl(format!("no host in {url}"))),
        };
        if self.guard.permits(ip) {
            Ok(())
        } else {
            Err(ExtractError::Blocked {
                host: url.host_str().unwrap_or_default().to_owned(),
                address: ip.to_string(),
            })
        }
    }

    async fn read_page(&self, final_url: Url, response: Response) -> Result<Fetched, ExtractError> {
        let status = response.status().as_u16();
        let declared = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
            .filter(|v| !v.is_empty());
        let charset = match &declared {
            Some(ct) => Some(html_charset(ct)?),
            None => None,
        }
        .flatten();
        let body = self.read_body(response).await?;
        let content_type = match declared {
            Some(ct) => ct,
            None if looks_like_html(&body) => "text/html".to_owned(),
            None => {
                return Err(ExtractError::NotHtml {
                    content_type: String::new(),
                });
            }
        };
        Ok(Fetched {
            final_url,
            status,
            content_type,
            charset,
            body,
        })
    }

    /// Reads the body, refusing it as soon as it is known to exceed the cap.
    async fn read_body(&self, response: Response) -> Result<Bytes, ExtractError> {
        let limit = self.cfg.max_body_bytes;
        let too_large = ExtractError::TooLarge { limit };
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(too_large);
        }
        let capacity = response.content_length().unwrap_or(16 * 1024).min(limit);
        let mut body = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_error(&e))?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Maps a reqwest failure to the variant naming its cause.
    fn map_error(&self, err: &reqwest::Error) -> ExtractError {
        if let Some(guard) = find_guard_error(err) {
            return match guard.clone() {
                GuardError::Blocked { host, address } => ExtractError::Blocked { host, address },
                GuardError::NotFound { host, .. } => ExtractError::Dns { host },
            };
        }
        if err.is_timeout() {
            let after_ms = if err.is_connect() {
                self.cfg.connect_timeout_ms
            } else {
                self.cfg.timeout_ms
            };
            return ExtractError::Timeout { after_ms };
        }
        if err.is_builder() {
            return ExtractError::InvalidUrl(error_chain(err));
        }
        ExtractError::Unreachable(error_chain(err))
    }
}

/// The `charset` of an HTML content type (`Ok(None)` when it names none); `NotHtml`
/// for any other type.
fn html_charset(content_type: &str) -> Result<Option<String>, ExtractError> {
    let not_html = || ExtractError::NotHtml {
        content_type: content_type.to_owned(),
    };
    let mime: mime::Mime = content_type.parse().map_err(|_| not_html())?;
    let is_html = (mime.type_() == mime::TEXT && mime.subtype() == mime::HTML)
        || (mime.type_() == mime::APPLICATION
            && mime.subtype().as_str() == "xhtml"
            && mime.suffix() == Some(mime::XML));
    if !is_html {
        return Err(not_html());
    }
    Ok(mime.get_param(mime::CHARSET).map(|c| c.as_str().to_owned()))
}

/// Whether an untyped body starts like an HTML document.
fn looks_like_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(SNIFF_BYTES)];
    head.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html"))
        || head
            .windows(14)
            .any(|w| w.eq_ignore_ascii_case(b"<!doctype html"))
}

/// Whether caller headers may go to `next`: same host as the request, and no downgrade
/// from https to http.
fn same_site(origin: &Url, next: &Url) -> bool {
    origin.host_str() == next.host_str() && !(origin.scheme() == "https" && next.scheme() == "http")
}

/// `err` and its sources, joined: reqwest's own message alone rarely says what failed.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_html_types_are_accepted() {
        assert_eq!(html_charset("text/html").unwrap(), None);
        assert_eq!(
            html_charset("text/html; charset=ISO-8859-1")
                .unwrap()
                .as_deref(),
            Some("iso-8859-1")
        );
        assert_eq!(
            html_charset("application/xhtml+xml;charset=utf-8")
                .unwrap()
                .as_deref(),
            Some("utf-8")
        );
        for ct in [
            "application/json",
            "application/pdf",
            "text/plain",
            "image/png",
            "nonsense",
        ] {
            let err = html_charset(ct).unwrap_err();
            assert!(matches!(&err, ExtractError::NotHtml { content_type } if content_type == ct));
        }
    }

    #[test]
    fn untyped_bodies_are_sniffed() {
        assert!(looks_like_html(b"  <!DOCTYPE html><title>x</title>"));
        assert!(looks_like_html(b"<HTML><body>hi</body></HTML>"));
        assert!(!looks_like_html(b"{\"json\": true}"));
        assert!(!looks_like_html(b"%PDF-1.7"));
    }

    #[test]
    fn caller_headers_stay_on_the_requested_host() {
        let origin = Url::parse("https://a.example/x").unwrap();
        assert!(same_site(
            &origin,
            &Url::parse("https://a.example/y").unwrap()
        ));
        assert!(!same_site(
            &origin,
            &Url::parse("https://b.example/").unwrap()
        ));
        assert!(!same_site(
            &origin,
            &Url::parse("http://a.example/").unwrap()
        ));
        let plain = Url::parse("http://a.example/").unwrap();
        assert!(same_site(
            &plain,
            &Url::parse("https://a.example/").unwrap()
        ));
    }
}
