//! Tenant isolation over HTTP: tenants A and B extract the same URL, and B never gets A's
//! cached result, never reads or deletes A's session, never sees A's usage, cannot act
//! as A with its own key (nor A as B), and an admin invalidation of A's URL leaves B's
//! entry alone.

use reqwest::Method;
use serde_json::json;

use super::on_both_backends;
use super::process::{Backend, Launch, Riptide, expect_error, json_body, x_cache};
use crate::pages::Pages;

on_both_backends!(isolation);

async fn isolation(backend: Backend) {
    let pages = Pages::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Riptide::start(&Launch::new(dir.path(), &backend)).await;
    let a = rt
        .create_tenant("tenant-a", "professional", json!({}))
        .await;
    let b = rt
        .create_tenant("tenant-b", "professional", json!({}))
        .await;
    let page = pages.url("/pages/article.html");

    // The same URL: each tenant's first request is its own MISS and fetch.
    let a_miss = rt.extract(&a, &page).await;
    assert_eq!(x_cache(&a_miss), "MISS");
    assert_eq!(a_miss.status(), 200);
    assert_eq!(x_cache(&rt.extract(&a, &page).await), "HIT");
    let b_first = rt.extract(&b, &page).await;
    assert_eq!(b_first.status(), 200);
    assert_eq!(x_cache(&b_first), "MISS", "B never gets A's cached result");
    assert_eq!(pages.hits("/pages/article.html"), 2, "one fetch per tenant");
    let b_body = b_first.bytes().await.expect("body");
    assert_eq!(x_cache(&rt.extract(&b, &page).await), "HIT");

    // A's session is invisible to B: 404 as for an unknown id, and still A's.
    let created = rt
        .post(&a, "/sessions", json!({"headers": {"x-owner": "a"}}))
        .await;
    let session = json_body(created, 201).await["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    let path = format!("/sessions/{session}");
    expect_error(rt.get_as(&b, &path).await, 404, "not_found").await;
    expect_error(rt.delete_as(&b, &path).await, 404, "not_found").await;
    let through_b = rt
        .post(&b, "/extract", json!({"url": page, "session_id": session}))
        .await;
    expect_error(through_b, 404, "not_found").await;
    let still = json_body(rt.get_as(&a, &path).await, 200).await;
    assert_eq!(still["headers"]["x-owner"], "a");

    // A key speaks for its own tenant only.
    for (key_of, claimed) in [(&a, &b), (&b, &a)] {
        let crossed = rt
            .client()
            .get(rt.url("/usage"))
            .bearer_auth(&key_of.key)
            .header("x-tenant-id", &claimed.id)
            .send()
            .await
            .expect("sent");
        expect_error(crossed, 403, "tenant_mismatch").await;
    }

    // Each tenant's usage holds its own operations only (refusals never reach a
    // handler, so they are nobody's usage).
    let b_usage = json_body(rt.get_as(&b, "/usage").await, 200).await;
    assert_eq!(b_usage["tenant_id"], "tenant-b");
    // B: 2 extracts, the session GET and DELETE, the extract through A's session.
    assert_eq!(
        b_usage["usage"]["by_operation"],
        json!({"extract": 3, "sessions": 2}),
        "{b_usage}"
    );
    assert_eq!(b_usage["usage"]["operations"], 5, "{b_usage}");
    let a_usage = json_body(rt.get_as(&a, "/usage").await, 200).await;
    // A: 2 extracts, the session POST and GET.
    assert_eq!(
        a_usage["usage"]["by_operation"],
        json!({"extract": 2, "sessions": 2}),
        "{a_usage}"
    );

    // Invalidating A's URL removes A's entry only.
    let invalidated = rt
        .admin_json(
            Method::POST,
            "/admin/cache/invalidate",
            Some(&json!({"tenant_id": "tenant-a", "url": page})),
            200,
        )
        .await;
    assert_eq!(invalidated["removed"], 1, "{invalidated}");
    let b_after = rt.extract(&b, &page).await;
    assert_eq!(x_cache(&b_after), "HIT", "B's entry is untouched");
    assert_eq!(b_after.bytes().await.expect("body"), b_body);
    assert_eq!(x_cache(&rt.extract(&a, &page).await), "MISS");
    assert_eq!(pages.hits("/pages/article.html"), 3);

    // The per-tenant cache stats agree: each holds its own entry.
    for id in ["tenant-a", "tenant-b"] {
        let stats = rt
            .admin_json(
                Method::GET,
                &format!("/admin/cache/stats?tenant_id={id}"),
                None,
                200,
            )
            .await;
        assert_eq!(stats["store"]["entries"], 1, "{id}: {stats}");
    }
    rt.stop().await;
}
