//! `/sessions`: create, read, delete; another tenant's session is 404 like an unknown
//! one; bad input is 400.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::json_of;
use crate::tenant_client::{Caller, error_of, start};

#[tokio::test]
async fn a_session_is_created_read_and_deleted() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;

    let created = acme
        .post(
            "/sessions",
            json!({
                "ttl_seconds": 600,
                "cookies": [{ "name": "sid", "value": "abc", "domain": "example.com" }],
                "headers": { "Accept-Language": "nl" },
            }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = {
        let location = created.headers()["location"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        let body = json_of(created, 201).await;
        let id = body["session_id"].as_str().expect("session_id").to_owned();
        assert_eq!(location, format!("/sessions/{id}"));
        let expires: DateTime<Utc> =
            serde_json::from_value(body["expires_at"].clone()).expect("expires_at");
        let left = (expires - Utc::now()).num_seconds();
        assert!((590..=600).contains(&left), "{left}");
        id
    };

    let session = json_of(acme.get(&format!("/sessions/{id}")).await, 200).await;
    assert_eq!(session["session_id"], id);
    assert_eq!(session["cookies"][0]["name"], "sid");
    assert_eq!(session["cookies"][0]["domain"], "example.com");
    assert_eq!(session["headers"]["accept-language"], "nl");

    let deleted = acme.delete(&format!("/sessions/{id}")).await;
    assert_eq!(deleted.status(), 204);
    let gone = acme.get(&format!("/sessions/{id}")).await;
    assert_eq!(error_of(gone).await, (404, "not_found".to_owned()));
    let again = acme.delete(&format!("/sessions/{id}")).await;
    assert_eq!(error_of(again).await, (404, "not_found".to_owned()));

    // Every field is optional.
    let bare = acme
        .request(reqwest::Method::POST, "/sessions")
        .send()
        .await
        .expect("POST");
    assert_eq!(bare.status(), 201);
}

#[tokio::test]
async fn another_tenants_session_is_404_like_an_unknown_one() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let globex = Caller::professional(&server, "globex").await;
    let created: Value = acme
        .post(
            "/sessions",
            json!({ "cookies": [{ "name": "sid", "value": "a" }] }),
        )
        .await
        .json()
        .await
        .expect("JSON");
    let path = format!("/sessions/{}", created["session_id"].as_str().expect("id"));
    let unknown = format!("/sessions/{}", "u".repeat(22));

    for response in [
        globex.get(&path).await,
        globex.delete(&path).await,
        globex.get(&unknown).await,
    ] {
        assert_eq!(error_of(response).await, (404, "not_found".to_owned()));
    }
    // Still there for its tenant.
    json_of(acme.get(&path).await, 200).await;
}

#[tokio::test]
async fn bad_session_input_is_400() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;

    let bad_id = acme.get("/sessions/not-valid").await;
    assert_eq!(
        error_of(bad_id).await,
        (400, "invalid_session_id".to_owned())
    );
    let bad_delete = acme.delete("/sessions/x").await;
    assert_eq!(
        error_of(bad_delete).await,
        (400, "invalid_session_id".to_owned())
    );

    let cases = [
        (json!({ "ttl_seconds": 0 }), "invalid_ttl"),
        (json!({ "ttl_seconds": 30 * 86_400 + 1 }), "invalid_ttl"),
        (
            json!({ "cookies": [{ "name": "bad name", "value": "v" }] }),
            "invalid_cookies",
        ),
        (
            json!({ "headers": { "Host": "evil.example" } }),
            "invalid_headers",
        ),
        (json!({ "ttl": 5 }), "invalid_request"),
    ];
    for (body, code) in cases {
        let response = acme.post("/sessions", body.clone()).await;
        assert_eq!(error_of(response).await, (400, code.to_owned()), "{body}");
    }
}
