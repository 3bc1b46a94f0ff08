//! The SSRF guard, end to end: internal addresses are refused before any connection,
//! by literal IP, by name after DNS, and on every redirect hop.

use riptide_extract::{ExtractConfig, ExtractError, Extractor, Url};

use crate::server::{CALLER, Site, extractor, extractor_with, test_config};

async fn unguarded_allow_list() -> Extractor {
    extractor_with(ExtractConfig {
        allow_addresses: Vec::new(),
        ..test_config()
    })
    .await
}

fn assert_blocked(err: &ExtractError, address: &str) {
    assert!(
        matches!(err, ExtractError::Blocked { address: a, .. } if a == address),
        "expected Blocked({address}), got {err:?}"
    );
    assert_eq!(err.kind(), "blocked_address");
}

#[tokio::test]
async fn loopback_is_refused_without_the_allow_list() {
    let site = Site::start().await;
    let err = unguarded_allow_list()
        .await
        .extract(CALLER, &site.url("/article"), &[])
        .await
        .unwrap_err();
    assert_blocked(&err, "127.0.0.1");
    assert_eq!(site.hits(), 0, "no request may reach a refused address");
}

#[tokio::test]
async fn loopback_is_fetched_with_the_allow_list() {
    let site = Site::start().await;
    let page = extractor()
        .await
        .extract(CALLER, &site.url("/article"), &[])
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(site.hits(), 1);
}

#[tokio::test]
async fn literal_internal_addresses_are_refused() {
    let guarded = unguarded_allow_list().await;
    for (url, address) in [
        ("http://10.1.2.3/", "10.1.2.3"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("http://[::1]:8080/", "::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0.0.0.0/", "0.0.0.0"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
        ("http://192.168.0.1/", "192.168.0.1"),
        ("http://100.64.1.1/", "100.64.1.1"),
    ] {
        let err = guarded
            .extract(CALLER, &Url::parse(url).unwrap(), &[])
            .await
            .unwrap_err();
        assert_blocked(&err, address);
    }
    // The allow-list opens exactly its networks, nothing next to them.
    let err = extractor()
        .await
        .extract(CALLER, &Url::parse("http://127.0.0.2/").unwrap(), &[])
        .await
        .unwrap_err();
    assert_blocked(&err, "127.0.0.2");
}

#[tokio::test]
async fn names_resolving_to_loopback_are_refused() {
    let site = Site::start().await;
    let url = Url::parse(&format!("http://localhost:{}/article", site.addr.port())).unwrap();
    let err = unguarded_allow_list()
        .await
        .extract(CALLER, &url, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::Blocked { host, .. } if host == "localhost"),
        "{err:?}"
    );
    assert_eq!(site.hits(), 0);
}

#[tokio::test]
async fn redirects_to_internal_addresses_are_refused() {
    let site = Site::start().await;
    let err = extractor()
        .await
        .extract(CALLER, &site.url("/to-private"), &[])
        .await
        .unwrap_err();
    assert_blocked(&err, "10.0.0.1");
    let err = extractor()
        .await
        .extract(CALLER, &site.url("/to-metadata"), &[])
        .await
        .unwrap_err();
    assert_blocked(&err, "169.254.169.254");
}

#[tokio::test]
async fn redirects_to_a_name_are_checked_after_resolution() {
    // The site is on 127.0.0.2 and only that address is allowed; the hop to
    // `localhost` resolves to another loopback address and must be refused.
    let site_2 = Site::start_on("127.0.0.2").await;
    let only_2 = extractor_with(ExtractConfig {
        allow_addresses: vec!["127.0.0.2/32".into()],
        ..test_config()
    })
    .await;
    let err = only_2
        .extract(CALLER, &site_2.url("/to-localhost"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::Blocked { host, .. } if host == "localhost"),
        "{err:?}"
    );
    assert_eq!(site_2.hits(), 1, "only the redirecting hop was fetched");

    // With both loopbacks allowed the hop succeeds, and the session cookie meant for
    // 127.0.0.1 is not forwarded to the other host.
    let site = Site::start().await;
    let both = extractor_with(ExtractConfig {
        allow_addresses: vec!["127.0.0.1/32".into(), "::1/128".into()],
        ..test_config()
    })
    .await;
    let cookie = [("Cookie".to_owned(), "sid=secret".to_owned())];
    let page = both
        .extract(CALLER, &site.url("/to-localhost"), &cookie)
        .await
        .unwrap();
    assert!(
        page.final_url.starts_with("http://localhost:"),
        "{}",
        page.final_url
    );
    assert!(
        page.text.to_ascii_lowercase().contains("host: localhost:"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("sid=secret"), "{}", page.text);
}
