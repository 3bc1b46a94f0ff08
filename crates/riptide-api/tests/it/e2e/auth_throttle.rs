//! Failed authentication is throttled per client address, over the real binary (on its
//! own Redis, which the test stops at the end): after `server.auth_failure_limit` bad
//! credentials from one address, its requests get 429 `too_many_auth_failures` with
//! `Retry-After`, good credentials included, tenant and admin routes alike; another
//! address is unaffected; the address recovers after the window; and a throttled
//! address is refused without a store lookup (429, not 503, with the store down).
//! The test's clients bind 127.0.0.2 and 127.0.0.3 (loopback) to be other addresses.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use riptide_test_support::start_redis_server;
use serde_json::json;

use super::process::{Backend, Launch, Riptide, Tenant, eventually, expect_error, json_body};

const LIMIT: u64 = 5;
const WINDOW: Duration = Duration::from_millis(2_000);

/// A well-formed key that is not `key` (its last character changed), so it costs a
/// store lookup; `n` picks which of two such keys.
fn forged(key: &str, n: usize) -> String {
    let last = key.chars().last().expect("a key");
    let other = ['A', 'B', 'C', 'D']
        .into_iter()
        .filter(|c| *c != last)
        .nth(n)
        .expect("a replacement");
    format!("{}{other}", &key[..key.len() - 1])
}

/// A client whose connections come from `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("address"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn usage(
    rt: &Riptide,
    client: &reqwest::Client,
    tenant: &Tenant,
    key: &str,
) -> reqwest::Response {
    client
        .get(rt.url("/usage"))
        .bearer_auth(key)
        .header("x-tenant-id", &tenant.id)
        .send()
        .await
        .expect("usage request")
}

async fn admin_list(rt: &Riptide, client: &reqwest::Client, token: &str) -> reqwest::Response {
    client
        .request(Method::GET, rt.url("/admin/tenants"))
        .bearer_auth(token)
        .send()
        .await
        .expect("admin request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_throttled_per_client_address() {
    let redis = start_redis_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &Backend::redis_at(redis.url()))
        .set("server.auth_failure_limit", json!(LIMIT))
        .set(
            "server.auth_failure_window_ms",
            json!(WINDOW.as_millis() as u64),
        );
    let rt = Riptide::start(&launch).await;
    let tenant = rt.create_tenant("guarded", "enterprise", json!({})).await;
    let bad_key = &forged(&tenant.key, 0);
    let bad_token = format!("rta_abcdefghijkl_{}", "0".repeat(64));

    let attacker = client_from("127.0.0.2");
    for _ in 0..LIMIT {
        expect_error(
            usage(&rt, &attacker, &tenant, bad_key).await,
            401,
            "unauthorized",
        )
        .await;
    }
    let throttled_at = Instant::now();
    // Over the limit: refused, a good key too, on tenant and admin routes alike.
    let headers = expect_error(
        usage(&rt, &attacker, &tenant, &tenant.key).await,
        429,
        "too_many_auth_failures",
    )
    .await;
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    expect_error(
        admin_list(&rt, &attacker, rt.admin_token()).await,
        429,
        "too_many_auth_failures",
    )
    .await;

    // Another address is unaffected: its good key works, its bad token is a plain 401.
    let neighbour = client_from("127.0.0.3");
    json_body(usage(&rt, &neighbour, &tenant, &tenant.key).await, 200).await;
    expect_error(
        admin_list(&rt, &neighbour, &bad_token).await,
        401,
        "unauthorized",
    )
    .await;
    json_body(admin_list(&rt, &neighbour, rt.admin_token()).await, 200).await;

    // The attacker recovers: one more attempt every window / limit (400 ms here), and
    // whole again a window after its last failure (then throttled again after LIMIT).
    eventually("the address recovers", WINDOW * 2, || async {
        usage(&rt, &attacker, &tenant, &tenant.key).await.status() == 200
    })
    .await;
    let recovered = throttled_at.elapsed();
    println!(
        "[auth throttle] {LIMIT} failures per {WINDOW:?}: throttled, Retry-After {retry_after} s, \
         a good key admitted again {} ms later",
        recovered.as_millis()
    );
    tokio::time::sleep(WINDOW).await;
    for _ in 0..LIMIT {
        expect_error(
            usage(&rt, &attacker, &tenant, bad_key).await,
            401,
            "unauthorized",
        )
        .await;
    }
    expect_error(
        usage(&rt, &attacker, &tenant, &tenant.key).await,
        429,
        "too_many_auth_failures",
    )
    .await;

    let metrics = rt.metrics().await;
    let failures = |credential| metrics.value("auth_failures_total", &[("credential", credential)]);
    let throttled =
        |credential| metrics.value("auth_throttled_total", &[("credential", credential)]);
    assert_eq!(failures("api_key"), (2 * LIMIT) as f64);
    assert_eq!(failures("admin_token"), 1.0);
    assert!(throttled("api_key") >= 2.0);
    assert!(throttled("admin_token") >= 1.0);
    let log = rt.log();
    assert!(log.contains("failed-authentication limit"), "{log}");
    assert!(log.contains("127.0.0.2"), "the address is logged:\n{log}");
    for secret in [bad_key.as_str(), tenant.key.as_str(), bad_token.as_str()] {
        assert!(!log.contains(secret), "a credential in the log:\n{log}");
    }

    // With the store down, an unknown key costs a store lookup (503), except from a
    // throttled address, which is refused before any (429).
    redis.kill();
    let fresh_key = &forged(&tenant.key, 1);
    expect_error(
        usage(&rt, &neighbour, &tenant, fresh_key).await,
        503,
        "store_unavailable",
    )
    .await;
    expect_error(
        usage(&rt, &attacker, &tenant, fresh_key).await,
        429,
        "too_many_auth_failures",
    )
    .await;
}
