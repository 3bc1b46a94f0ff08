//! Fetch limits and upstream failures: each maps to its own error.

use std::time::{Duration, Instant};

use riptide_extract::{ExtractConfig, ExtractError, Url};

use crate::server::{
    BODY_LIMIT, CALLER, MAX_REDIRECTS, Site, TIMEOUT_MS, extractor, extractor_with, test_config,
};

async fn fail(site: &Site, path: &str) -> ExtractError {
    match extractor()
        .await
        .extract(CALLER, &site.url(path), &[])
        .await
    {
        Ok(page) => panic!("{path} should fail, got {page:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn non_html_responses_are_refused() {
    let site = Site::start().await;
    for (path, expected) in [
        ("/data.json", "application/json"),
        ("/doc.pdf", "application/pdf"),
        ("/untyped-pdf", ""),
    ] {
        let err = fail(&site, path).await;
        assert!(
            matches!(&err, ExtractError::NotHtml { content_type } if content_type == expected),
            "{path}: {err:?}"
        );
        assert_eq!(err.kind(), "not_html");
    }
}

#[tokio::test]
async fn oversize_bodies_are_cut_off() {
    let site = Site::start().await;
    for path in ["/big-with-length", "/big-streamed"] {
        let err = fail(&site, path).await;
        assert!(
            matches!(err, ExtractError::TooLarge { limit } if limit == BODY_LIMIT),
            "{path}: {err:?}"
        );
        assert_eq!(err.kind(), "page_too_large");
    }
    let exact = extractor()
        .await
        .extract(CALLER, &site.url("/exactly-limit"), &[])
        .await
        .unwrap();
    assert_eq!(exact.bytes_fetched, BODY_LIMIT);
}

#[tokio::test]
async fn slow_upstreams_time_out() {
    let site = Site::start().await;
    for path in ["/slow", "/slow-body"] {
        let started = Instant::now();
        let err = fail(&site, path).await;
        assert!(
            matches!(err, ExtractError::Timeout { after_ms } if after_ms == TIMEOUT_MS),
            "{path}: {err:?}"
        );
        assert_eq!(err.kind(), "upstream_timeout");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn redirect_chains_longer_than_the_limit_fail() {
    let site = Site::start().await;
    // /redirect/N answers with N + 1 redirects before the article.
    let err = fail(&site, &format!("/redirect/{MAX_REDIRECTS}")).await;
    assert!(
        matches!(err, ExtractError::TooManyRedirects { limit } if limit == MAX_REDIRECTS),
        "{err:?}"
    );
    assert_eq!(err.kind(), "too_many_redirects");
    let hits_before = site.hits();
    extractor()
        .await
        .extract(
            CALLER,
            &site.url(&format!("/redirect/{}", MAX_REDIRECTS - 1)),
            &[],
        )
        .await
        .expect("exactly max_redirects hops are fine");
    assert_eq!(site.hits() - hits_before, MAX_REDIRECTS as usize + 1);

    let none = extractor_with(ExtractConfig {
        max_redirects: 0,
        ..test_config()
    })
    .await;
    let err = none
        .extract(CALLER, &site.url("/redirect/0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::TooManyRedirects { limit: 0 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_redirect_targets_are_invalid_urls() {
    let site = Site::start().await;
    let err = fail(&site, "/to-file").await;
    assert!(matches!(err, ExtractError::InvalidUrl(_)), "{err:?}");
    assert_eq!(err.kind(), "invalid_url");
}

#[tokio::test]
async fn error_statuses_are_reported() {
    let site = Site::start().await;
    for status in [404u16, 500, 503, 410] {
        let err = fail(&site, &format!("/status/{status}")).await;
        assert!(
            matches!(err, ExtractError::UpstreamStatus { status: s } if s == status),
            "{status}: {err:?}"
        );
        assert_eq!(err.kind(), "upstream_status");
    }
    let err = fail(&site, "/no-location").await;
    assert!(
        matches!(err, ExtractError::UpstreamStatus { status: 302 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn closed_ports_are_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{addr}/")).unwrap();
    let err = extractor()
        .await
        .extract(CALLER, &url, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ExtractError::Unreachable(_)), "{err:?}");
    assert_eq!(err.kind(), "upstream_unreachable");
}
