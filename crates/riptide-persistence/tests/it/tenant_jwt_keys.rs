//! JWT verification keys on every backend, below HTTP: which check refuses a token (the
//! key's algorithm is pinned before the library's own key-family check), `exp`/`nbf`
//! against the injected clock with the leeway, the audience, secrets stored wrapped,
//! a revocation reaching a second instance within the record cache TTL, and
//! `delete_all`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use riptide_persistence::clock::{ManualClock, SharedClock};
use riptide_persistence::config::TenancyConfig;
use riptide_persistence::tenant::TenantError;
use riptide_persistence::tenant::crypto::MasterKey;
use riptide_persistence::tenant::jwt_keys::{JwtAlgorithm, JwtKeys};
use riptide_persistence::{SharedStore, TenantId};
use riptide_test_support::jwt::ED25519_PUBLIC_PEM;
use serde_json::{Value, json};

use crate::support::{Backend, on_every_backend, store, store_with_clock};

on_every_backend!(
    the_keys_algorithm_is_pinned_whatever_the_header_says,
    exp_and_nbf_follow_the_injected_clock_with_the_leeway,
    the_audience_is_checked_when_configured,
    secrets_are_stored_wrapped_by_the_master_key,
    a_revocation_reaches_another_instance_within_the_cache_ttl,
    delete_all_removes_every_key,
);

const START_S: u64 = 1_800_000_000;

fn config(audience: &str) -> TenancyConfig {
    TenancyConfig {
        jwt_leeway_seconds: 30,
        jwt_audience: audience.to_owned(),
        record_cache_ttl_ms: 200,
        ..Default::default()
    }
}

fn keys(store: &SharedStore, clock: SharedClock, master: &MasterKey, audience: &str) -> JwtKeys {
    JwtKeys::new(store.clone(), clock, master.clone(), &config(audience))
}

/// A new tenant id with a stand-in tenant record (see [`crate::support::stand_in_tenant`]).
async fn new_tenant(store: &SharedStore) -> TenantId {
    crate::support::stand_in_tenant(store).await
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, key).expect("signed")
}

fn hs(secret: &str) -> EncodingKey {
    EncodingKey::from_secret(secret.as_bytes()).expect("key")
}

fn reason(result: Result<impl std::fmt::Debug, TenantError>) -> &'static str {
    match result {
        Err(TenantError::InvalidToken(reason)) => reason,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

async fn the_keys_algorithm_is_pinned_whatever_the_header_says(b: Backend) {
    let ts = store(b).await;
    let jwt = keys(
        &ts.store,
        riptide_persistence::clock::system_clock(),
        &MasterKey::generate(),
        "",
    );
    let t = new_tenant(&ts.store).await;
    let ed = jwt
        .create(&t, JwtAlgorithm::EdDSA, Some(ED25519_PUBLIC_PEM), None)
        .await
        .expect("create");
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = json!({ "tenant": t.as_str(), "exp": exp });
    // HS256 keyed with the public key's PEM: refused by the pinned algorithm, before
    // jsonwebtoken's own check that the key family fits.
    let confused = sign(Algorithm::HS256, &ed.kid, &claims, &hs(ED25519_PUBLIC_PEM));
    assert_eq!(
        reason(jwt.verify(&t, &confused).await),
        "the algorithm is not the key's"
    );
    let header = base64url(&json!({ "alg": "none", "kid": ed.kid }));
    let none = format!("{header}.{}.c2ln", base64url(&claims));
    assert_eq!(
        reason(jwt.verify(&t, &none).await),
        "malformed or unsupported header"
    );
}

async fn exp_and_nbf_follow_the_injected_clock_with_the_leeway(b: Backend) {
    let clock = ManualClock::new(START_S * 1_000);
    let ts = store_with_clock(b, clock.clone()).await;
    let jwt = keys(&ts.store, clock.clone(), &MasterKey::generate(), "");
    let t = new_tenant(&ts.store).await;
    let key = jwt
        .create(&t, JwtAlgorithm::HS256, None, Some("issuer"))
        .await
        .expect("create");
    let secret = key.secret.as_deref().expect("an HS256 secret");
    let token = |claims: Value| sign(Algorithm::HS256, &key.kid, &claims, &hs(secret));

    let expiring = token(json!({ "tenant": t.as_str(), "exp": START_S + 60 }));
    let verified = jwt.verify(&t, &expiring).await.expect("valid now");
    assert_eq!(
        (verified.tenant_id, verified.kid.as_str()),
        (t.clone(), key.kid.as_str())
    );
    clock.advance_ms(89_000); // 29 s past exp: inside the leeway
    jwt.verify(&t, &expiring).await.expect("inside the leeway");
    clock.advance_ms(1_000); // 30 s past exp
    assert_eq!(reason(jwt.verify(&t, &expiring).await), "expired");

    let now = START_S + 90;
    let early = token(json!({ "tenant": t.as_str(), "exp": now + 600, "nbf": now + 31 }));
    assert_eq!(reason(jwt.verify(&t, &early).await), "not yet valid");
    clock.advance_ms(1_000);
    jwt.verify(&t, &early).await.expect("nbf inside the leeway");

    let other = token(json!({ "tenant": "someone-else", "exp": now + 600 }));
    assert_eq!(
        reason(jwt.verify(&t, &other).await),
        "the tenant claim names another tenant"
    );
}

async fn the_audience_is_checked_when_configured(b: Backend) {
    let ts = store(b).await;
    let jwt = keys(
        &ts.store,
        riptide_persistence::clock::system_clock(),
        &MasterKey::generate(),
        "riptide",
    );
    let t = new_tenant(&ts.store).await;
    let key = jwt
        .create(&t, JwtAlgorithm::HS256, None, None)
        .await
        .expect("create");
    let signer = hs(key.secret.as_deref().expect("secret"));
    let exp = chrono::Utc::now().timestamp() + 600;
    let with = |aud: Value| {
        let mut claims = json!({ "tenant": t.as_str(), "exp": exp });
        if !aud.is_null() {
            claims["aud"] = aud;
        }
        sign(Algorithm::HS256, &key.kid, &claims, &signer)
    };
    jwt.verify(&t, &with(json!("riptide")))
        .await
        .expect("right audience");
    jwt.verify(&t, &with(json!(["other", "riptide"])))
        .await
        .expect("among several");
    assert_eq!(
        reason(jwt.verify(&t, &with(json!("other"))).await),
        "wrong audience"
    );
    assert_eq!(
        reason(jwt.verify(&t, &with(Value::Null)).await),
        "a required claim is missing"
    );
}

async fn secrets_are_stored_wrapped_by_the_master_key(b: Backend) {
    let ts = store(b).await;
    let master = MasterKey::generate();
    let clock = riptide_persistence::clock::system_clock();
    let jwt = keys(&ts.store, clock.clone(), &master, "");
    let t = new_tenant(&ts.store).await;
    let key = jwt
        .create(&t, JwtAlgorithm::HS256, None, None)
        .await
        .expect("create");
    let secret = key.secret.clone().expect("secret");
    assert_eq!(secret.len(), 43, "256 bits in base64url");

    let record_key = format!(
        "{}:tenant:{{{t}}}:jwtkey:{}",
        ts.store.key_prefix(),
        key.kid
    );
    let stored = ts
        .store
        .get(&record_key)
        .await
        .expect("get")
        .expect("record");
    assert!(
        !String::from_utf8_lossy(&stored).contains(&secret),
        "stored in the clear"
    );
    let listed = jwt.list(&t).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(!format!("{listed:?}").contains(&secret));

    // Another master key cannot unwrap it: nothing verifies, and it is no token error.
    let exp = chrono::Utc::now().timestamp() + 600;
    let token = sign(
        Algorithm::HS256,
        &key.kid,
        &json!({ "tenant": t.as_str(), "exp": exp }),
        &hs(&secret),
    );
    jwt.verify(&t, &token).await.expect("the right master key");
    let other = keys(&ts.store, clock, &MasterKey::generate(), "");
    assert!(matches!(
        other.verify(&t, &token).await,
        Err(TenantError::Crypto(_))
    ));
}

async fn a_revocation_reaches_another_instance_within_the_cache_ttl(b: Backend) {
    let ts = store(b).await;
    let master = MasterKey::generate();
    let clock = riptide_persistence::clock::system_clock();
    let here = keys(&ts.store, clock.clone(), &master, "");
    let there = keys(&ts.store, clock, &master, "");
    let t = new_tenant(&ts.store).await;
    let old = here
        .create(&t, JwtAlgorithm::HS256, None, None)
        .await
        .expect("create");
    let new = here
        .create(&t, JwtAlgorithm::HS256, None, None)
        .await
        .expect("create");
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = json!({ "tenant": t.as_str(), "exp": exp });
    let old_token = sign(
        Algorithm::HS256,
        &old.kid,
        &claims,
        &hs(old.secret.as_deref().expect("s")),
    );
    let new_token = sign(
        Algorithm::HS256,
        &new.kid,
        &claims,
        &hs(new.secret.as_deref().expect("s")),
    );
    for jwt in [&here, &there] {
        jwt.verify(&t, &old_token).await.expect("old key, overlap");
        jwt.verify(&t, &new_token).await.expect("new key, overlap");
    }

    here.revoke(&t, &old.kid).await.expect("revoke");
    here.revoke(&t, &old.kid)
        .await
        .expect("revoking twice is a no-op");
    assert_eq!(
        reason(here.verify(&t, &old_token).await),
        "unknown or revoked key"
    );
    // The other instance still trusts its cached key, for at most the TTL (200 ms).
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        reason(there.verify(&t, &old_token).await),
        "unknown or revoked key"
    );
    there
        .verify(&t, &new_token)
        .await
        .expect("the new key still works");

    // Another tenant cannot revoke it, nor verify with it.
    let stranger = new_tenant(&ts.store).await;
    assert!(matches!(
        here.revoke(&stranger, &new.kid).await,
        Err(TenantError::NotFound { .. })
    ));
    assert_eq!(
        reason(here.verify(&stranger, &new_token).await),
        "unknown or revoked key"
    );
}

async fn delete_all_removes_every_key(b: Backend) {
    let ts = store(b).await;
    let jwt = keys(
        &ts.store,
        riptide_persistence::clock::system_clock(),
        &MasterKey::generate(),
        "",
    );
    let t = new_tenant(&ts.store).await;
    for _ in 0..3 {
        jwt.create(&t, JwtAlgorithm::HS256, None, None)
            .await
            .expect("create");
    }
    jwt.create(&t, JwtAlgorithm::EdDSA, Some(ED25519_PUBLIC_PEM), None)
        .await
        .expect("create");
    assert_eq!(jwt.list(&t).await.expect("list").len(), 4);
    assert_eq!(jwt.delete_all(&t).await.expect("delete"), 4);
    assert!(jwt.list(&t).await.expect("list").is_empty());
}

fn base64url(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}
