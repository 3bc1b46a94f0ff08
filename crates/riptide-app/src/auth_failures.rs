//! [`AuthFailures`]: failed authentications are throttled per client address.
//!
//! A credential that identifies nobody (an unknown or revoked API key, a JWT that does
//! not verify, an invalid admin token, a wrong metrics token) is a failure of the
//! address that presented it; IPv6 addresses are grouped by their /64, which one client
//! usually holds whole. Each address may fail
//! `server.auth_failure_limit` times per `server.auth_failure_window_ms`; past that,
//! every request it makes to an authenticated route is answered 429
//! `too_many_auth_failures` with `Retry-After`, good credentials included, before any
//! credential is read, hashed or looked up, so a guesser costs a map lookup per request
//! and learns nothing. Requests without credentials, successes and the other refusals
//! (a suspended tenant, a wrong `X-Tenant-ID`, an insufficient role) are not failures.
//!
//! The limit is a GCRA over the wall clock (injectable, as everywhere): each failure
//! moves the address's theoretical arrival time on by `window / limit`; the address is
//! refused while that time is more than `window - window / limit` ahead. So `limit`
//! failures in a burst are allowed, then one more every `window / limit`, and an address
//! that stops failing is whole again one window later. The state is one `u64` per
//! address, in memory, in a fixed-capacity map (`server.auth_failure_clients_tracked`,
//! least recently failing forgotten first): no store round trip per failure, and
//! bounded memory however many addresses fail. Each instance counts on its own.
//!
//! Refusals are counted in `auth_throttled_total{credential}`, failures in
//! `auth_failures_total{credential}`, and logged at most once per 10 s (the address,
//! never the credential).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Extensions;
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use riptide_persistence::clock::SharedClock;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::log_every::LogEvery;

/// `auth_failures_total`.
pub const FAILURES: &str = "auth_failures_total";
/// `auth_throttled_total`.
pub const THROTTLED: &str = "auth_throttled_total";

/// Which kind of credential a route takes (the `credential` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A tenant's API key.
    ApiKey,
    /// A tenant's JWT.
    Jwt,
    /// An admin token.
    AdminToken,
    /// The token of `GET /metrics` (`metrics.token`).
    MetricsToken,
}

impl Credential {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::ApiKey => "api_key",
            Credential::Jwt => "jwt",
            Credential::AdminToken => "admin_token",
            Credential::MetricsToken => "metrics_token",
        }
    }
}

/// The client address a request came from, as the server recorded it
/// (`ConnectInfo<SocketAddr>`); `None` for a request that did not come over a socket.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// What failures are counted against: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Client {
    fn of(ip: IpAddr) -> Self {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                Client::V6(prefix)
            }
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::V4(octets) => write!(f, "{}", std::net::Ipv4Addr::from(*octets)),
            Client::V6(prefix) => {
                let mut octets = [0u8; 16];
                octets[..8].copy_from_slice(prefix);
                write!(f, "{}/64", std::net::Ipv6Addr::from(octets))
            }
        }
    }
}

/// The failure rates of the client addresses seen failing.
pub struct AuthFailures {
    /// 0: off.
    limit: u32,
    window_ms: u64,
    /// `window_ms / limit`: what one failure adds.
    interval_ms: u64,
    clock: SharedClock,
    /// Each address's theoretical arrival time, ms since the epoch.
    tats: Cache<Client, u64>,
    log: LogEvery,
}

impl fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFailures")
            .field("limit", &self.limit)
            .field("window_ms", &self.window_ms)
            .field("tracked", &self.tats.len())
            .finish_non_exhaustive()
    }
}

impl AuthFailures {
    /// The throttle of `config` (`auth_failure_*`), on `clock`.
    pub fn new(config: &ServerConfig, clock: SharedClock) -> Self {
        let limit = config.auth_failure_limit;
        let window_ms = config.auth_failure_window_ms;
        Self {
            limit,
            window_ms,
            interval_ms: (window_ms / u64::from(limit.max(1))).max(1),
            clock,
            tats: Cache::new(
                usize::try_from(config.auth_failure_clients_tracked)
                    .unwrap_or(usize::MAX)
                    .max(1),
            ),
            log: LogEvery::new(Duration::from_secs(10)),
        }
    }

    /// `Ok` unless `client` is over its limit: then 429 `too_many_auth_failures`, to be
    /// answered before its credential is looked at.
    pub fn admit(&self, client: Option<IpAddr>, credential: Credential) -> Result<(), ApiError> {
        let Some(client) = client.filter(|_| self.limit > 0).map(Client::of) else {
            return Ok(());
        };
        let Some(tat) = self.tats.get(&client) else {
            return Ok(());
        };
        let allowed_until = self
            .clock
            .now_ms()
            .saturating_add(self.window_ms - self.interval_ms);
        if tat <= allowed_until {
            return Ok(());
        }
        let retry_after_secs = (tat - allowed_until).div_ceil(1_000).max(1);
        metrics::counter!(THROTTLED, "credential" => credential.as_str()).increment(1);
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(
                client.addr = %client,
                credential = credential.as_str(),
                retry_after_secs,
                refused.since_last_log = suppressed,
                "refusing a client over the failed-authentication limit \
                 (server.auth_failure_limit) before authenticating it"
            );
        }
        Err(ApiError::TooManyAuthFailures { retry_after_secs })
    }

    /// Counts one failed authentication of `client`.
    pub fn failed(&self, client: Option<IpAddr>, credential: Credential) {
        metrics::counter!(FAILURES, "credential" => credential.as_str()).increment(1);
        let Some(client) = client.filter(|_| self.limit > 0).map(Client::of) else {
            return;
        };
        let now = self.clock.now_ms();
        let step = self.interval_ms;
        let updated = self.tats.entry(&client, None, |_, tat| {
            *tat = (*tat).max(now).saturating_add(step);
            EntryAction::Retain(())
        });
        if let EntryResult::Vacant(slot) = updated {
            // Only fails if the slot was taken meanwhile; a failure is then uncounted.
            let _ = slot.insert(now.saturating_add(step));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use riptide_persistence::clock::ManualClock;

    use super::*;

    fn throttle(limit: u32, window_ms: u64) -> (AuthFailures, Arc<ManualClock>) {
        let clock = ManualClock::new(1_000_000);
        let config = ServerConfig {
            auth_failure_limit: limit,
            auth_failure_window_ms: window_ms,
            auth_failure_clients_tracked: 16,
            ..ServerConfig::default()
        };
        (AuthFailures::new(&config, clock.clone()), clock)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    #[test]
    fn the_limit_refuses_the_address_then_recovers() {
        let (failures, clock) = throttle(3, 60_000);
        let bad = ip("203.0.113.7");
        for _ in 0..3 {
            failures
                .admit(bad, Credential::ApiKey)
                .expect("under the limit");
            failures.failed(bad, Credential::ApiKey);
        }
        let err = failures.admit(bad, Credential::AdminToken).unwrap_err();
        assert_eq!(err.code(), "too_many_auth_failures");
        let ApiError::TooManyAuthFailures { retry_after_secs } = err else {
            panic!("{err:?}");
        };
        assert_eq!(
            retry_after_secs, 20,
            "one more failure fits after window / limit"
        );
        assert!(
            failures
                .admit(ip("203.0.113.8"), Credential::ApiKey)
                .is_ok()
        );

        clock.advance_ms(19_999);
        assert!(failures.admit(bad, Credential::ApiKey).is_err());
        clock.advance_ms(1);
        assert!(failures.admit(bad, Credential::ApiKey).is_ok());
        failures.failed(bad, Credential::ApiKey);
        assert!(
            failures.admit(bad, Credential::ApiKey).is_err(),
            "still at the rate"
        );

        clock.advance_ms(60_000);
        for _ in 0..3 {
            failures
                .admit(bad, Credential::ApiKey)
                .expect("a window later, whole again");
            failures.failed(bad, Credential::ApiKey);
        }
        assert!(failures.admit(bad, Credential::ApiKey).is_err());
    }

    #[test]
    fn ipv6_is_counted_by_64_and_mapped_ipv4_as_ipv4() {
        let (failures, _) = throttle(1, 60_000);
        failures.failed(ip("2001:db8:1:2::1"), Credential::ApiKey);
        assert!(
            failures
                .admit(ip("2001:db8:1:2:ffff::9"), Credential::ApiKey)
                .is_err()
        );
        assert!(
            failures
                .admit(ip("2001:db8:1:3::1"), Credential::ApiKey)
                .is_ok()
        );
        failures.failed(ip("::ffff:198.51.100.4"), Credential::ApiKey);
        assert!(
            failures
                .admit(ip("198.51.100.4"), Credential::ApiKey)
                .is_err()
        );
        assert_eq!(
            Client::of("2001:db8:1:2::1".parse().expect("v6")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn off_or_without_an_address_nothing_is_refused() {
        let (off, _) = throttle(0, 60_000);
        for _ in 0..100 {
            off.failed(ip("203.0.113.7"), Credential::ApiKey);
        }
        assert!(off.admit(ip("203.0.113.7"), Credential::ApiKey).is_ok());
        let (on, _) = throttle(1, 60_000);
        on.failed(None, Credential::ApiKey);
        on.failed(None, Credential::ApiKey);
        assert!(on.admit(None, Credential::ApiKey).is_ok());
    }

    #[test]
    fn memory_is_bounded_by_the_tracked_clients() {
        let (failures, _) = throttle(5, 60_000);
        for n in 0..10_000u32 {
            let addr = IpAddr::from(n.to_be_bytes());
            failures.failed(Some(addr), Credential::ApiKey);
        }
        assert!(failures.tats.len() <= 16, "{}", failures.tats.len());
    }
}
