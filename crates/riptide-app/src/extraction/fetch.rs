//! Fetching one page into the body `/extract` answers and the cache holds: the
//! extraction serialized as JSON, once. Also what a session adds to a fetch.
//!
//! Counts every fetch in `extract_fetches_total{outcome}` (`ok` or the error kind).

use std::time::Instant;

use axum::body::Bytes;
use riptide_extract::{ExtractError, Extractor, Url};
use riptide_persistence::TenantId;
use riptide_persistence::state::sessions::{Session, SessionCookie};

/// Fetches and extracts `url` with `headers` for `tenant` (whose fair share of fetches
/// and extractions it uses), and returns the serialized extraction.
pub async fn fetch_body(
    extractor: &Extractor,
    tenant: &TenantId,
    url: &Url,
    headers: &[(String, String)],
) -> Result<Bytes, ExtractError> {
    let started = Instant::now();
    let result = extractor
        .extract_json(tenant.as_str(), url, headers)
        .await
        .map(Bytes::from);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    metrics::counter!("extract_fetches_total", "outcome" => outcome).increment(1);
    metrics::histogram!("extract_fetch_duration_seconds").record(started.elapsed().as_secs_f64());
    result
}

/// The headers a fetch of `url` through `session` sends: the session's headers, and a
/// `cookie` header with its cookies whose domain and path match `url` (merged with a
/// `cookie` header the session sets itself).
pub fn session_headers(session: &Session, url: &Url) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = session
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "cookie")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut cookie: Vec<String> = session.headers.get("cookie").cloned().into_iter().collect();
    cookie.extend(
        session
            .cookies
            .iter()
            .filter(|c| applies(c, url))
            .map(|c| format!("{}={}", c.name, c.value)),
    );
    if !cookie.is_empty() {
        headers.push(("cookie".to_owned(), cookie.join("; ")));
    }
    headers
}

/// Whether `cookie` is sent with a request for `url` (RFC 6265 domain and path match;
/// no domain or path: any).
fn applies(cookie: &SessionCookie, url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let domain_ok = cookie.domain.as_deref().is_none_or(|d| {
        let d = d.strip_prefix('.').unwrap_or(d);
        host.eq_ignore_ascii_case(d)
            || (host.len() > d.len()
                && host.as_bytes()[host.len() - d.len() - 1] == b'.'
                && host[host.len() - d.len()..].eq_ignore_ascii_case(d))
    });
    let path = url.path();
    let path_ok = cookie.path.as_deref().is_none_or(|p| {
        path == p
            || (path.starts_with(p)
                && (p.ends_with('/') || path.as_bytes().get(p.len()) == Some(&b'/')))
    });
    domain_ok && path_ok
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use riptide_extract::normalize_url;

    use super::*;

    fn cookie(name: &str, domain: Option<&str>, path: Option<&str>) -> SessionCookie {
        SessionCookie {
            name: name.into(),
            value: format!("{name}-value"),
            domain: domain.map(Into::into),
            path: path.map(Into::into),
        }
    }

    fn session(cookies: Vec<SessionCookie>, headers: &[(&str, &str)]) -> Session {
        Session {
            id: "s".repeat(22),
            tenant_id: "acme".into(),
            cookies,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            expires_at: Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn cookies_go_where_their_domain_and_path_say() {
        let url = normalize_url("https://news.example.com/docs/page").expect("url");
        let cases = [
            (cookie("any", None, None), true),
            (cookie("exact", Some("news.example.com"), None), true),
            (cookie("parent", Some(".example.com"), None), true),
            (cookie("other", Some("example.org"), None), false),
            (cookie("suffix", Some("ws.example.com"), None), false),
            (cookie("dir", None, Some("/docs")), true),
            (cookie("dir_slash", None, Some("/docs/")), true),
            (cookie("prefix_only", None, Some("/do")), false),
            (cookie("elsewhere", None, Some("/admin")), false),
        ];
        for (c, expected) in cases {
            assert_eq!(applies(&c, &url), expected, "{}", c.name);
        }
    }

    #[test]
    fn headers_and_cookies_are_combined() {
        let url = normalize_url("https://example.com/").expect("url");
        let s = session(
            vec![
                cookie("a", None, None),
                cookie("b", Some("other.org"), None),
            ],
            &[("x-token", "t"), ("cookie", "pre=1")],
        );
        let headers = session_headers(&s, &url);
        assert_eq!(
            headers,
            [
                ("x-token".to_owned(), "t".to_owned()),
                ("cookie".to_owned(), "pre=1; a=a-value".to_owned()),
            ]
        );
        assert!(session_headers(&session(Vec::new(), &[]), &url).is_empty());
    }
}
