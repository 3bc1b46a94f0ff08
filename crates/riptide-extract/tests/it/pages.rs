//! Extracting real pages: article metadata, character sets, links, headers.

use riptide_extract::{ExtractError, Extraction, Url};

use crate::server::{CALLER, Site, extractor};

async fn extract(site: &Site, path: &str) -> Extraction {
    extractor()
        .await
        .extract(CALLER, &site.url(path), &[])
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

#[tokio::test]
async fn article_is_extracted_with_its_metadata() {
    let site = Site::start().await;
    let page = extract(&site, "/article").await;

    assert_eq!(page.url, site.url("/article").as_str());
    assert_eq!(page.final_url, page.url);
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert_eq!(
        page.title.as_deref(),
        Some("How Tide Pools Survive the Winter")
    );
    assert_eq!(page.byline.as_deref(), Some("Marina Keller"));
    assert_eq!(
        page.excerpt.as_deref(),
        Some("Tide pools freeze, flood and dry out, yet their residents come back every spring.")
    );
    assert_eq!(page.language.as_deref(), Some("en"));
    assert_eq!(page.published.as_deref(), Some("2024-02-14T08:30:00Z"));
    assert!(page.text.contains("operculum"), "{}", page.text);
    assert!(!page.text.contains("Privacy"), "footer is not content");
    assert!(
        page.markdown.contains("Anemones close up"),
        "{}",
        page.markdown
    );
    assert!(!page.markdown.contains("<p>"), "markdown, not HTML");
    assert!(
        page.markdown.contains(&format!(
            "[guide to anemones]({})",
            site.url("/guides/anemones")
        )),
        "{}",
        page.markdown
    );

    let hrefs: Vec<_> = page.links.iter().map(|l| l.href.clone()).collect();
    assert_eq!(
        hrefs,
        [
            site.url("/guides/anemones").to_string(),
            site.url("/archive/2023/periwinkles.html").to_string(),
            "https://example.org/tidepools".to_owned(),
        ]
    );
    assert_eq!(page.links[0].text, "guide to anemones");
    assert_eq!(page.links[2].text, "Join a winter count");

    assert_eq!(
        page.content_hash,
        blake3::hash(page.text.as_bytes()).to_hex().to_string()
    );
    assert_eq!(
        page.bytes_fetched,
        std::fs::metadata(fixture_path("article.html"))
            .unwrap()
            .len()
    );
    chrono::DateTime::parse_from_rfc3339(&page.fetched_at).expect("fetched_at is RFC 3339");
}

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn same_page_gives_the_same_hash() {
    let site = Site::start().await;
    let a = extract(&site, "/article").await;
    let b = extract(&site, "/article").await;
    assert_eq!(a.content_hash, b.content_hash);
    assert_ne!(a.content_hash, extract(&site, "/latin1").await.content_hash);
}

#[tokio::test]
async fn windows_1252_declared_in_meta_is_decoded() {
    let site = Site::start().await;
    let page = extract(&site, "/latin1").await;
    assert_eq!(page.title.as_deref(), Some("Café crème – naïve résumé"));
    assert!(
        page.text
            .contains("Le café crème coûte 3€. «Bientôt», dit le garçon – naïvement."),
        "{}",
        page.text
    );
    assert!(!page.text.contains('\u{FFFD}'));
}

#[tokio::test]
async fn charset_from_the_content_type_header_is_used() {
    let site = Site::start().await;
    let page = extract(&site, "/header-charset").await;
    assert_eq!(page.title.as_deref(), Some("Grüße aus Köln"));
    assert!(
        page.text.contains("Schöne Grüße aus Köln am Rhein"),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn relative_links_are_resolved_filtered_and_deduplicated() {
    let site = Site::start().await;
    let page = extract(&site, "/blog/2024/links.html").await;
    let hrefs: Vec<_> = page.links.iter().map(|l| l.href.as_str()).collect();
    let port = site.addr.port();
    assert_eq!(
        hrefs,
        [
            format!("http://127.0.0.1:{port}/blog/2024/page-one.html"),
            format!("http://127.0.0.1:{port}/root/page-two"),
            format!("http://127.0.0.1:{port}/blog/up.html"),
            format!("http://127.0.0.1:{port}/blog/2024/links.html?q=tides"),
            "https://example.org/elsewhere".to_owned(),
            "http://cdn.example.net/file.html".to_owned(),
        ]
    );
    assert_eq!(page.links[0].text, "Page one");
}

#[tokio::test]
async fn xhtml_and_sniffed_html_are_accepted() {
    let site = Site::start().await;
    let xhtml = extract(&site, "/xhtml").await;
    assert_eq!(xhtml.content_type, "application/xhtml+xml");
    assert!(!xhtml.links.is_empty());
    let untyped = extract(&site, "/untyped-html").await;
    assert_eq!(untyped.content_type, "text/html");
    assert_eq!(untyped.title.as_deref(), Some("Link index"));
}

#[tokio::test]
async fn redirects_within_the_limit_are_followed() {
    let site = Site::start().await;
    let page = extract(&site, "/redirect/2").await;
    assert_eq!(page.url, site.url("/redirect/2").as_str());
    assert_eq!(page.final_url, site.url("/article").as_str());
    assert_eq!(page.byline.as_deref(), Some("Marina Keller"));
}

fn header_lines(page: &Extraction) -> Vec<String> {
    page.text
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn session_headers_are_sent_and_unsafe_ones_dropped() {
    let site = Site::start().await;
    let extra = [
        ("Cookie".to_owned(), "sid=abc123; theme=dark".to_owned()),
        ("X-Tenant-Trace".to_owned(), "t-42".to_owned()),
        ("Host".to_owned(), "evil.example".to_owned()),
        ("Transfer-Encoding".to_owned(), "chunked".to_owned()),
    ];
    let page = extractor()
        .await
        .extract(CALLER, &site.url("/echo-headers"), &extra)
        .await
        .unwrap();
    let lines = header_lines(&page);
    assert!(
        lines.contains(&"cookie: sid=abc123; theme=dark".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"x-tenant-trace: t-42".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&format!("host: {}", site.addr)), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("transfer-encoding")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("user-agent: riptide/")),
        "{lines:?}"
    );

    // A redirect within the same host keeps the session headers.
    let page = extractor()
        .await
        .extract(CALLER, &site.url("/to-echo"), &extra)
        .await
        .unwrap();
    assert!(
        header_lines(&page).contains(&"cookie: sid=abc123; theme=dark".to_owned()),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn errors_carry_their_kind() {
    let site = Site::start().await;
    let err = extractor()
        .await
        .extract(
            CALLER,
            &Url::parse("http://no-such-host.invalid/").unwrap(),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::Dns { host } if host == "no-such-host.invalid"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "dns_failure");
    drop(site);
}
