//! JWTs on the tenant routes over HTTP: tokens signed with a tenant's HS256, EdDSA and
//! RS256 verification keys are accepted and then go through the same middleware steps
//! as API keys; expired, not yet valid, another tenant's, tampered, `alg: none`,
//! HS/RS-confused, kid-less, unknown-kid and revoked-key tokens are 401 and count as
//! failed authentications. The keys are made through the admin API.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Response;
use riptide_persistence::tenant::BillingPlan;
use serde_json::{Value, json};

use crate::support::{TestServer, admin_token, json_of, tenant_with_key};
use crate::tenant_client::{error_of, eventually, start};

use riptide_test_support::jwt::{
    ED25519_PRIVATE_PEM as ED_PRIVATE, ED25519_PUBLIC_PEM as ED_PUBLIC,
    RSA_PRIVATE_PEM as RSA_PRIVATE, RSA_PUBLIC_PEM as RSA_PUBLIC,
};

/// A server, its admin token, and tenants `acme` and `globex`.
struct Jwt {
    server: TestServer,
    admin: String,
}

impl Jwt {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut riptide_api::config::AppConfig)) -> Self {
        let server = start(adjust).await;
        let admin = admin_token(&server);
        for id in ["acme", "globex"] {
            tenant_with_key(&server, id, BillingPlan::Professional, &[]).await;
        }
        Self { server, admin }
    }

    /// `POST /admin/tenants/{tenant}/jwt-keys` with `body`, answered `status`.
    async fn create_key(&self, tenant: &str, body: Value, status: u16) -> Value {
        let response = self
            .server
            .client()
            .post(
                self.server
                    .url(&format!("/admin/tenants/{tenant}/jwt-keys")),
            )
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .expect("POST");
        json_of(response, status).await
    }

    /// A new HS256 key of `tenant`: (kid, signing key).
    async fn hs256(&self, tenant: &str) -> (String, EncodingKey) {
        let created = self
            .create_key(tenant, json!({ "algorithm": "HS256" }), 201)
            .await;
        let secret = created["secret"].as_str().expect("secret");
        (
            kid_of(&created),
            EncodingKey::from_secret(secret.as_bytes()).expect("key"),
        )
    }

    /// A new EdDSA key of `tenant` (the fixture's public key): its kid.
    async fn eddsa(&self, tenant: &str) -> String {
        let body = json!({ "algorithm": "EdDSA", "public_key_pem": ED_PUBLIC });
        let created = self.create_key(tenant, body, 201).await;
        assert!(created.get("secret").is_none(), "{created}");
        kid_of(&created)
    }

    /// A new RS256 key of `tenant` (the fixture's public key): its kid.
    async fn rs256(&self, tenant: &str) -> String {
        let body = json!({ "algorithm": "RS256", "public_key_pem": RSA_PUBLIC });
        kid_of(&self.create_key(tenant, body, 201).await)
    }

    /// `GET /usage` with `token` as `tenant`.
    async fn usage(&self, token: &str, tenant: &str) -> Response {
        self.server
            .client()
            .get(self.server.url("/usage"))
            .bearer_auth(token)
            .header("x-tenant-id", tenant)
            .send()
            .await
            .expect("GET")
    }

    /// `token` as `tenant` is refused with 401 `unauthorized` and `WWW-Authenticate`.
    async fn refused(&self, token: &str, tenant: &str, what: &str) {
        let response = self.usage(token, tenant).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{what}"
        );
        assert_eq!(
            error_of(response).await,
            (401, "unauthorized".to_owned()),
            "{what}"
        );
    }

    /// `token` as `tenant` is admitted.
    async fn admitted(&self, token: &str, tenant: &str, what: &str) {
        let response = self.usage(token, tenant).await;
        assert_eq!(response.status().as_u16(), 200, "{what}: {response:?}");
    }
}

fn kid_of(created: &Value) -> String {
    created["kid"].as_str().expect("kid").to_owned()
}

fn now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).expect("after 1970")
}

/// Claims for `tenant`, valid for ten minutes, with `extra` merged in (a `null` drops
/// a claim).
fn claims(tenant: &str, extra: Value) -> Value {
    let mut claims = json!({ "tenant": tenant, "exp": now() + 600, "sub": "user-1" });
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("signed")
}

fn ed_signer() -> EncodingKey {
    EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("ed key")
}

fn rsa_signer() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key")
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).expect("json"))
}

#[tokio::test]
async fn tokens_of_each_algorithm_are_accepted_and_go_through_the_tenant_steps() {
    let jwt = Jwt::start().await;
    let (hs_kid, hs_key) = jwt.hs256("acme").await;
    let ed_kid = jwt.eddsa("acme").await;
    let rs_kid = jwt.rs256("acme").await;
    let acme = claims("acme", json!({}));

    let hs = sign(Algorithm::HS256, Some(&hs_kid), &acme, &hs_key);
    let response = jwt.usage(&hs, "acme").await;
    assert!(
        response.headers().contains_key("ratelimit-limit"),
        "{response:?}"
    );
    let usage = json_of(response, 200).await;
    assert_eq!(usage["tenant_id"], "acme", "{usage}");
    jwt.admitted(
        &sign(Algorithm::EdDSA, Some(&ed_kid), &acme, &ed_signer()),
        "acme",
        "EdDSA",
    )
    .await;
    jwt.admitted(
        &sign(Algorithm::RS256, Some(&rs_kid), &acme, &rsa_signer()),
        "acme",
        "RS256",
    )
    .await;

    // The same steps as an API key: a suspended tenant's valid token is 403.
    jwt.server
        .state
        .tenants
        .suspend_tenant("acme", "test")
        .await
        .expect("suspend");
    let response = jwt.usage(&hs, "acme").await;
    assert_eq!(
        error_of(response).await,
        (403, "tenant_suspended".to_owned())
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_within_the_leeway() {
    let jwt = Jwt::start().await;
    let (kid, key) = jwt.hs256("acme").await;
    let token = |extra: Value| sign(Algorithm::HS256, Some(&kid), &claims("acme", extra), &key);

    jwt.refused(
        &token(json!({ "exp": now() - 120 })),
        "acme",
        "expired 2 min ago",
    )
    .await;
    jwt.refused(
        &token(json!({ "nbf": now() + 600 })),
        "acme",
        "valid in 10 min",
    )
    .await;
    jwt.refused(&token(json!({ "exp": null })), "acme", "no exp")
        .await;
    jwt.refused(&token(json!({ "tenant": null })), "acme", "no tenant claim")
        .await;
    jwt.refused(&token(json!({ "exp": "soon" })), "acme", "exp not a number")
        .await;
    // The default leeway (30 s) absorbs small clock skew either way.
    jwt.admitted(
        &token(json!({ "exp": now() - 5 })),
        "acme",
        "expired 5 s ago",
    )
    .await;
    jwt.admitted(&token(json!({ "nbf": now() + 5 })), "acme", "valid in 5 s")
        .await;
}

#[tokio::test]
async fn another_tenants_tokens_are_refused() {
    let jwt = Jwt::start().await;
    let (acme_kid, acme_key) = jwt.hs256("acme").await;
    let (globex_kid, _) = jwt.hs256("globex").await;

    // acme's token, sent as globex: globex has no such key.
    let acme_token = sign(
        Algorithm::HS256,
        Some(&acme_kid),
        &claims("acme", json!({})),
        &acme_key,
    );
    jwt.admitted(&acme_token, "acme", "acme's own token").await;
    jwt.refused(&acme_token, "globex", "acme's token as globex")
        .await;
    // A globex claim signed with acme's key: neither as acme nor as globex.
    let forged = sign(
        Algorithm::HS256,
        Some(&acme_kid),
        &claims("globex", json!({})),
        &acme_key,
    );
    jwt.refused(&forged, "acme", "globex claim, acme header")
        .await;
    jwt.refused(&forged, "globex", "globex claim, acme key")
        .await;
    // acme's key under globex's kid.
    let borrowed = sign(
        Algorithm::HS256,
        Some(&globex_kid),
        &claims("globex", json!({})),
        &acme_key,
    );
    jwt.refused(&borrowed, "globex", "globex kid signed with acme's secret")
        .await;
}

#[tokio::test]
async fn tampered_unsigned_and_algorithm_confused_tokens_are_refused() {
    let jwt = Jwt::start().await;
    let (hs_kid, hs_key) = jwt.hs256("acme").await;
    let ed_kid = jwt.eddsa("acme").await;
    let rs_kid = jwt.rs256("acme").await;
    let acme = claims("acme", json!({}));
    let good = sign(Algorithm::HS256, Some(&hs_kid), &acme, &hs_key);
    jwt.admitted(&good, "acme", "the untouched token").await;
    let parts: Vec<&str> = good.split('.').collect();

    // Another payload under the original signature.
    let richer = b64(&claims("acme", json!({ "exp": now() + 86_400 * 365 })));
    jwt.refused(
        &format!("{}.{richer}.{}", parts[0], parts[2]),
        "acme",
        "new payload",
    )
    .await;
    // One signature character changed.
    let mut signature = parts[2].to_owned();
    let last = if signature.ends_with('A') { "B" } else { "A" };
    signature.replace_range(signature.len() - 1.., last);
    jwt.refused(
        &format!("{}.{}.{signature}", parts[0], parts[1]),
        "acme",
        "new signature",
    )
    .await;

    // `alg: none`, with an empty and with a made-up signature, naming each kind of key.
    for kid in [&hs_kid, &ed_kid, &rs_kid] {
        let header = b64(&json!({ "alg": "none", "typ": "JWT", "kid": kid }));
        let payload = b64(&acme);
        jwt.refused(&format!("{header}.{payload}."), "acme", "alg none, empty")
            .await;
        jwt.refused(
            &format!("{header}.{payload}.c2ln"),
            "acme",
            "alg none, signed",
        )
        .await;
    }

    // HS256 with the public key's PEM as the HMAC secret, naming the public key.
    for (kid, public) in [(&ed_kid, ED_PUBLIC), (&rs_kid, RSA_PUBLIC)] {
        let confused = EncodingKey::from_secret(public.as_bytes()).expect("key");
        let token = sign(Algorithm::HS256, Some(kid), &acme, &confused);
        jwt.refused(&token, "acme", "HS256 signed with a public key")
            .await;
    }
    // An EdDSA token naming the RS256 key, and the reverse.
    let token = sign(Algorithm::EdDSA, Some(&rs_kid), &acme, &ed_signer());
    jwt.refused(&token, "acme", "EdDSA token, RS256 key").await;
    let token = sign(Algorithm::RS256, Some(&ed_kid), &acme, &rsa_signer());
    jwt.refused(&token, "acme", "RS256 token, EdDSA key").await;
}

#[tokio::test]
async fn tokens_without_a_known_kid_are_refused() {
    let jwt = Jwt::start().await;
    let (kid, key) = jwt.hs256("acme").await;
    let acme = claims("acme", json!({}));
    jwt.refused(&sign(Algorithm::HS256, None, &acme, &key), "acme", "no kid")
        .await;
    jwt.refused(
        &sign(Algorithm::HS256, Some("aaaaaaaaaaaa"), &acme, &key),
        "acme",
        "unknown kid",
    )
    .await;
    jwt.refused(
        &sign(Algorithm::HS256, Some("../../x"), &acme, &key),
        "acme",
        "malformed kid",
    )
    .await;
    jwt.admitted(
        &sign(Algorithm::HS256, Some(&kid), &acme, &key),
        "acme",
        "the real kid",
    )
    .await;
    // A token for a tenant that does not exist.
    let ghost = sign(
        Algorithm::HS256,
        Some(&kid),
        &claims("ghost", json!({})),
        &key,
    );
    jwt.refused(&ghost, "ghost", "unknown tenant").await;
}

#[tokio::test]
async fn rotation_overlaps_and_a_revoked_key_is_refused() {
    let jwt = Jwt::start().await;
    let (old_kid, old_key) = jwt.hs256("acme").await;
    let (new_kid, new_key) = jwt.hs256("acme").await;
    let acme = claims("acme", json!({}));
    let old = sign(Algorithm::HS256, Some(&old_kid), &acme, &old_key);
    let new = sign(Algorithm::HS256, Some(&new_kid), &acme, &new_key);
    jwt.admitted(&old, "acme", "old key during the overlap")
        .await;
    jwt.admitted(&new, "acme", "new key during the overlap")
        .await;

    let revoked = jwt
        .server
        .client()
        .delete(
            jwt.server
                .url(&format!("/admin/tenants/acme/jwt-keys/{old_kid}")),
        )
        .bearer_auth(&jwt.admin)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status().as_u16(), 204);
    // At once on this instance (well within `record_cache_ttl_ms` anywhere).
    jwt.refused(&old, "acme", "revoked key").await;
    jwt.admitted(&new, "acme", "the new key after the revocation")
        .await;

    let listed = json_of(
        jwt.server
            .client()
            .get(jwt.server.url("/admin/tenants/acme/jwt-keys"))
            .bearer_auth(&jwt.admin)
            .send()
            .await
            .expect("GET"),
        200,
    )
    .await;
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{listed}");
    assert!(keys[0]["revoked_at"].is_string(), "{listed}");
    assert!(keys[1]["revoked_at"].is_null(), "{listed}");
    assert!(!listed.to_string().contains("secret"), "{listed}");

    // Creation and revocation are audited.
    let audit = jwt.server.state.tenants.audit();
    let acme_id = riptide_persistence::TenantId::parse("acme").expect("id");
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let entries = audit
        .query(Some(&acme_id), since, chrono::Utc::now(), 1_000)
        .await
        .expect("audit query");
    let actions: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
    assert!(actions.contains(&"jwt_key.create"), "{actions:?}");
    assert!(actions.contains(&"jwt_key.revoke"), "{actions:?}");
}

#[tokio::test]
async fn bad_tokens_count_as_failed_authentications() {
    let jwt = Jwt::start_with(|c| {
        c.server.auth_failure_limit = 3;
        c.server.auth_failure_window_ms = 60_000;
    })
    .await;
    let (kid, key) = jwt.hs256("acme").await;
    let good = sign(
        Algorithm::HS256,
        Some(&kid),
        &claims("acme", json!({})),
        &key,
    );
    let expired = sign(
        Algorithm::HS256,
        Some(&kid),
        &claims("acme", json!({ "exp": now() - 3_600 })),
        &key,
    );
    jwt.admitted(&good, "acme", "before any failure").await;
    for _ in 0..3 {
        jwt.refused(&expired, "acme", "expired").await;
    }
    eventually("the address is throttled", || async {
        jwt.usage(&good, "acme").await.status().as_u16() == 429
    })
    .await;
    let response = jwt.usage(&good, "acme").await;
    assert_eq!(
        error_of(response).await,
        (429, "too_many_auth_failures".to_owned())
    );
}

#[tokio::test]
async fn key_creation_checks_the_material() {
    let jwt = Jwt::start().await;
    let refused = [
        json!({ "algorithm": "HS256", "public_key_pem": ED_PUBLIC }),
        json!({ "algorithm": "EdDSA" }),
        json!({ "algorithm": "EdDSA", "public_key_pem": ED_PRIVATE }),
        json!({ "algorithm": "EdDSA", "public_key_pem": RSA_PUBLIC }),
        json!({ "algorithm": "RS256", "public_key_pem": ED_PUBLIC }),
        json!({ "algorithm": "RS256", "public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" }),
    ];
    for body in refused {
        let response = jwt
            .server
            .client()
            .post(jwt.server.url("/admin/tenants/acme/jwt-keys"))
            .bearer_auth(&jwt.admin)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 400, "{body}");
    }
    let refused = jwt
        .create_key("acme", json!({ "algorithm": "none" }), 400)
        .await;
    assert!(refused["error"].is_object(), "{refused}");
    jwt.create_key("ghost", json!({ "algorithm": "HS256" }), 404)
        .await;
}
