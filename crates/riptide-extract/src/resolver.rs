//! The DNS resolver reqwest uses: resolves with tokio, then applies the SSRF guard to
//! every answer, so the check sees the addresses that will actually be connected to.
//!
//! Its refusals are typed ([`GuardError`]) and travel inside reqwest's error; the fetch
//! loop finds them again with [`find_guard_error`] to report `Blocked` or `Dns` rather
//! than a generic connect failure.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use thiserror::Error;

use crate::guard::AddressGuard;

/// A resolution refused or failed by [`GuardedResolver`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GuardError {
    /// The host resolved to an address the guard refuses.
    #[error("{host} resolves to the non-public address {address}")]
    Blocked {
        /// The host name.
        host: String,
        /// The refused address.
        address: String,
    },
    /// The host has no addresses, or resolution failed.
    #[error("could not resolve {host}: {reason}")]
    NotFound {
        /// The host name.
        host: String,
        /// What the system resolver said.
        reason: String,
    },
}

/// A [`Resolve`] that refuses host names resolving to any address the guard refuses.
///
/// Any, not all: a name with one internal address among public ones would let a
/// connection attempt reach the internal one.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<AddressGuard>,
}

impl GuardedResolver {
    /// A resolver applying `guard`.
    pub fn new(guard: Arc<AddressGuard>) -> Self {
        Self { guard }
    }

    /// Resolves `host` and applies the guard; the returned addresses carry port 0
    /// (reqwest substitutes the URL's port).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, GuardError> {
        let not_found = |reason: String| GuardError::NotFound {
            host: host.to_owned(),
            reason,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| not_found(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(not_found("no addresses".into()));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.guard.permits(a.ip())) {
            tracing::debug!(host, address = %bad.ip(), "ssrf guard refused a resolved address");
            return Err(GuardError::Blocked {
                host: host.to_owned(),
                address: bad.ip().to_string(),
            });
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The [`GuardError`] somewhere in `err`'s source chain, if any.
pub fn find_guard_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a GuardError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<GuardError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(allow: &[&str]) -> GuardedResolver {
        let nets = allow.iter().map(|n| n.parse().unwrap()).collect();
        GuardedResolver::new(Arc::new(AddressGuard::new(nets)))
    }

    #[tokio::test]
    async fn localhost_is_refused_after_resolution() {
        let err = resolver(&[]).lookup("localhost").await.unwrap_err();
        assert!(
            matches!(&err, GuardError::Blocked { host, .. } if host == "localhost"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn allow_listed_loopback_resolves() {
        // `localhost` may also resolve to ::1; allow both loopbacks for this check.
        let addrs = resolver(&["127.0.0.0/8", "::1/128"])
            .lookup("localhost")
            .await
            .unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[tokio::test]
    async fn unknown_names_are_not_found() {
        let err = resolver(&[])
            .lookup("no-such-host.invalid")
            .await
            .unwrap_err();
        assert!(matches!(err, GuardError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn guard_errors_are_found_through_wrappers() {
        #[derive(Debug, Error)]
        #[error("outer")]
        struct Outer(#[source] Box<dyn StdError + Send + Sync>);
        let inner = GuardError::Blocked {
            host: "h".into(),
            address: "10.0.0.1".into(),
        };
        let outer = Outer(Box::new(inner.clone()));
        assert_eq!(find_guard_error(&outer), Some(&inner));
        assert_eq!(find_guard_error(&std::io::Error::other("x")), None);
    }
}
