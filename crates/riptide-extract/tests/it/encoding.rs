//! Content-Encoding: gzip, deflate, brotli and zstd pages are decoded, and the body cap
//! applies to the decoded bytes, so a decompression bomb stops at the cap, cheaply.

use std::io::Write;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use riptide_extract::{ExtractConfig, ExtractError, Url};
use riptide_test_support::hostile::HostileSite;

use crate::server::{CALLER, extractor_with, test_config};

const PAGE: &str = "<html><head><title>Encoded</title></head><body><article>\
    <p>Every byte of this paragraph travelled compressed and came out readable.</p>\
    </article></body></html>";

fn encode(coding: &str) -> Vec<u8> {
    let raw = PAGE.as_bytes();
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            let mut e = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
            e.write_all(raw).unwrap();
            drop(e);
            out
        }
        "zstd" => zstd::encode_all(raw, 3).unwrap(),
        other => panic!("no encoder for {other}"),
    }
}

/// A site serving [`PAGE`] at `/<coding>` with that `Content-Encoding`.
async fn encoded_site() -> String {
    let mut app = Router::new();
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let body = encode(coding);
        app = app.route(
            &format!("/{coding}"),
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "text/html"),
                        (header::CONTENT_ENCODING, coding),
                    ],
                    body,
                )
                    .into_response()
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn encoded_pages_are_decoded() {
    let site = encoded_site().await;
    let extractor = extractor_with(test_config()).await;
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let url = Url::parse(&format!("{site}/{coding}")).unwrap();
        let page = extractor
            .extract(CALLER, &url, &[])
            .await
            .unwrap_or_else(|e| panic!("{coding}: {e}"));
        assert_eq!(page.title.as_deref(), Some("Encoded"), "{coding}");
        assert!(
            page.text.contains("came out readable"),
            "{coding}: {}",
            page.text
        );
        assert_eq!(
            page.bytes_fetched,
            PAGE.len() as u64,
            "{coding}: decoded bytes"
        );
    }
}

#[tokio::test]
async fn decompression_bombs_stop_at_the_body_cap() {
    let site = HostileSite::start().await;
    let cap = 1 << 20;
    let extractor = extractor_with(ExtractConfig {
        max_body_bytes: cap,
        timeout_ms: 10_000,
        ..test_config()
    })
    .await;
    for bomb in ["gzip-bomb", "deflate-bomb", "brotli-bomb", "zstd-bomb"] {
        let url = Url::parse(&site.url(bomb)).unwrap();
        let started = Instant::now();
        let err = extractor.extract(CALLER, &url, &[]).await.unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, ExtractError::TooLarge { limit } if limit == cap),
            "{bomb}: {err:?}"
        );
        // A gibibyte decoded would take many seconds in a debug build; 1 MiB does not.
        assert!(took < Duration::from_secs(3), "{bomb} took {took:?}");
    }
}

#[tokio::test]
async fn a_body_that_lies_about_its_encoding_fails_cleanly() {
    let site = HostileSite::start().await;
    let extractor = extractor_with(test_config()).await;
    let url = Url::parse(&site.url("bad-encoding")).unwrap();
    let err = extractor.extract(CALLER, &url, &[]).await.unwrap_err();
    assert!(
        matches!(err.kind(), "decode_failed" | "upstream_unreachable"),
        "{err:?}"
    );
}
