//! Who reads `/metrics`, and what it says about tenants' bills: with `metrics.token`
//! (here from `RIPTIDE_METRICS_TOKEN`) a scrape without it, with another token or with
//! another scheme is 401 with `WWW-Authenticate: Bearer`, and only the token reads it;
//! with `metrics.tenant_billing: false` a computed bill never shows up as
//! `tenant_billing_units`, where the default instance publishes it.

use reqwest::Method;
use serde_json::json;

use super::process::{Backend, Launch, Riptide, expect_error};

const TOKEN: &str = "metrics-token-0123456789abcdefghijklmnop";

/// Computes this month's bill of `tenant` through the admin API.
async fn bill(rt: &Riptide, tenant: &str) {
    let path = format!("/admin/tenants/{tenant}/billing");
    let bill = rt.admin_json(Method::GET, &path, None, 200).await;
    assert!(bill.get("total_cents").is_some(), "{bill}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_metrics_and_bills_can_stay_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &Backend::Embedded)
        .env("RIPTIDE_METRICS_TOKEN", TOKEN)
        .set("metrics.tenant_billing", json!(false));
    let rt = Riptide::start(&launch).await;
    rt.create_tenant("acme", "basic", json!({})).await;
    bill(&rt, "acme").await;

    let scrape = |auth: Option<String>| {
        let mut request = rt.client().get(rt.url("/metrics"));
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        request.send()
    };
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789abcdefghijklmnop".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some("Bearer ".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
    ] {
        let response = scrape(auth.clone()).await.expect("GET /metrics");
        let headers = expect_error(response, 401, "unauthorized").await;
        assert_eq!(
            headers
                .get("www-authenticate")
                .map(|v| v.to_str().expect("ASCII")),
            Some("Bearer"),
            "{auth:?}"
        );
    }
    let response = scrape(Some(format!("Bearer {TOKEN}"))).await.expect("GET");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    let exposition =
        crate::metrics_scrape::Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        exposition.value("auth_failures_total", &[("credential", "metrics_token")]) >= 2.0,
        "wrong tokens count as failed authentications:\n{text}"
    );
    assert!(!text.contains("tenant_billing_units"), "{text}");
    rt.stop().await;

    // The same bill on an instance with the defaults: /metrics open, the bill published.
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Riptide::start(&Launch::new(dir.path(), &Backend::Embedded)).await;
    rt.create_tenant("acme", "basic", json!({})).await;
    bill(&rt, "acme").await;
    let exposition = rt.metrics().await;
    assert!(
        exposition.series("tenant_billing_units").any(|s| s
            .labels
            .get("tenant_id")
            .map(String::as_str)
            == Some("acme")),
        "the default publishes bills"
    );
    rt.stop().await;
}
