//! Sessions as callers see them, the input of create and update, and the checks that
//! input passes before anything is stored.
//!
//! Limits (refused with [`SessionError::Invalid`], which names the field and, for a
//! cookie or header, its name, never its value):
//!
//! | what | limit |
//! |---|---|
//! | cookies per session | [`MAX_COOKIES`] |
//! | headers per session | [`MAX_HEADERS`] |
//! | cookie name | 1 to [`MAX_NAME_LEN`] bytes of HTTP token characters |
//! | cookie value | at most [`MAX_COOKIE_VALUE_LEN`] bytes, no control characters, no `;` |
//! | cookie domain | a host name (letters, digits, `-`, `.`), at most 253 bytes |
//! | cookie path | starts with `/`, at most [`MAX_COOKIE_PATH_LEN`] bytes, no control characters or `;` |
//! | header name | 1 to [`MAX_NAME_LEN`] bytes of HTTP token characters; not hop-by-hop, `host` or `content-length`; stored lower-case |
//! | header value | at most [`MAX_HEADER_VALUE_LEN`] bytes, no control characters but tab |
//! | TTL | 1 ms to [`MAX_SESSION_TTL`] |

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::error::{SessionError, SessionResult};

/// Most cookies one session holds.
pub const MAX_COOKIES: usize = 100;
/// Most headers one session holds.
pub const MAX_HEADERS: usize = 50;
/// Longest cookie or header name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest cookie value, in bytes.
pub const MAX_COOKIE_VALUE_LEN: usize = 4 * 1024;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 8 * 1024;
/// Longest cookie path, in bytes.
pub const MAX_COOKIE_PATH_LEN: usize = 1024;
/// Longest cookie domain, in bytes.
pub const MAX_COOKIE_DOMAIN_LEN: usize = 253;
/// Longest session lifetime a caller may ask for.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Random bytes in a session id (128 bits: 22 URL-safe base64 characters).
const ID_BYTES: usize = 16;
/// Shortest accepted session id, in characters.
pub const MIN_SESSION_ID_LEN: usize = 22;
/// Longest accepted session id, in characters.
pub const MAX_SESSION_ID_LEN: usize = 64;

/// Headers a session may not set: hop-by-hop headers, and those the HTTP client
/// computes itself.
const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// One cookie a session sends. Unknown fields are refused (it is part of request
/// bodies): a misspelt `domain` would send the cookie everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCookie {
    /// Cookie name (HTTP token characters).
    pub name: String,
    /// Cookie value (never logged, never listed).
    pub value: String,
    /// Domain the cookie is sent to; `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Path prefix the cookie is sent for; `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A tenant's session: cookies and headers `/extract` sends with its fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random, URL-safe, at least 22 characters.
    pub id: String,
    /// The owning tenant.
    pub tenant_id: String,
    /// Cookies, in the order given.
    pub cookies: Vec<SessionCookie>,
    /// Headers by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed (create and every update).
    pub updated_at: DateTime<Utc>,
    /// When it expires; every update moves it to `updated_at` plus the session's
    /// lifetime.
    pub expires_at: DateTime<Utc>,
    /// 1 at creation, bumped by every update.
    pub version: u64,
}

impl Session {
    /// Milliseconds since the epoch at which it expires.
    pub fn expires_at_ms(&self) -> u64 {
        u64::try_from(self.expires_at.timestamp_millis()).unwrap_or(0)
    }

    /// True when expired at `now_ms`.
    pub fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms() <= now_ms
    }

    /// The lifetime an update without a new TTL keeps: from the last change to expiry.
    pub(crate) fn lifetime(&self) -> Duration {
        let ms = (self.expires_at - self.updated_at)
            .num_milliseconds()
            .max(1);
        Duration::from_millis(u64::try_from(ms).unwrap_or(1))
    }

    /// Estimated bytes the decoded session takes in memory: what the memory tier's
    /// byte limit counts.
    pub fn memory_bytes(&self) -> u64 {
        const BASE: usize = 256;
        const PER_COOKIE: usize = 96;
        const PER_HEADER: usize = 64;
        let cookies: usize = self
            .cookies
            .iter()
            .map(|c| {
                PER_COOKIE
                    + c.name.len()
                    + c.value.len()
                    + c.domain.as_ref().map_or(0, String::len)
                    + c.path.as_ref().map_or(0, String::len)
            })
            .sum();
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| PER_HEADER + k.len() + v.len())
            .sum();
        (BASE + self.id.len() + self.tenant_id.len() + cookies + headers) as u64
    }

    /// What a listing shows: no cookie or header values.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            id: self.id.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            version: self.version,
            cookie_names: self.cookies.iter().map(|c| c.name.clone()).collect(),
            header_names: self.headers.keys().cloned().collect(),
        }
    }

    /// Checks a session from elsewhere (an import): id, owner and contents.
    pub(crate) fn validate(&self) -> SessionResult<()> {
        validate_session_id(&self.id)?;
        validate_cookies(&self.cookies)?;
        for (name, value) in &self.headers {
            if name.to_ascii_lowercase() != *name {
                return Err(SessionError::invalid(
                    "headers",
                    "header names must be lower-case",
                ));
            }
            validate_header(name, value)?;
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(SessionError::invalid(
                "headers",
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        if self.expires_at < self.updated_at || self.updated_at < self.created_at {
            return Err(SessionError::invalid(
                "expires_at",
                "timestamps out of order",
            ));
        }
        Ok(())
    }
}

/// A session in a listing: names only, no values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Its version.
    pub version: u64,
    /// Names of its cookies.
    pub cookie_names: Vec<String>,
    /// Names of its headers.
    pub header_names: Vec<String>,
}

/// What a new session starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionInit {
    /// Cookies to send.
    pub cookies: Vec<SessionCookie>,
    /// Headers to send (names are case-insensitive and stored lower-case).
    pub headers: BTreeMap<String, String>,
    /// Lifetime without activity; `None`: `state.session_ttl_seconds`.
    pub ttl: Option<Duration>,
}

/// Changes to a session; `None` leaves a part as it is. Every update (even an empty
/// one) bumps the version and restarts the session's lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionUpdate {
    /// Replaces every cookie.
    pub cookies: Option<Vec<SessionCookie>>,
    /// Replaces every header.
    pub headers: Option<BTreeMap<String, String>>,
    /// A new lifetime, counted from now.
    pub ttl: Option<Duration>,
}

/// A fresh random session id: 128 bits, URL-safe base64 without padding.
pub(crate) fn new_session_id() -> String {
    let mut bytes = [0u8; ID_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a session id given by a caller: URL-safe base64 characters only (so it is
/// safe in store keys and file names), 22 to 64 of them.
pub fn validate_session_id(id: &str) -> SessionResult<()> {
    let ok = (MIN_SESSION_ID_LEN..=MAX_SESSION_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SessionError::invalid(
            "session_id",
            format!(
                "expected {MIN_SESSION_ID_LEN} to {MAX_SESSION_ID_LEN} characters of [A-Za-z0-9_-]"
            ),
        ))
    }
}

/// Checks a requested lifetime.
pub(crate) fn validate_ttl(ttl: Duration) -> SessionResult<()> {
    if ttl.is_zero() || ttl > MAX_SESSION_TTL {
        return Err(SessionError::invalid(
            "ttl",
            format!("must be between 1 ms and {} s", MAX_SESSION_TTL.as_secs()),
        ));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A name for an error message: shortened, and only when it is a token (so nothing
/// odd is echoed).
fn shown(name: &str) -> String {
    if is_token(name) {
        name.chars().take(64).collect()
    } else {
        "<invalid name>".to_owned()
    }
}

/// Checks cookies: count, names, values, domains, paths, duplicates.
pub(crate) fn validate_cookies(cookies: &[SessionCookie]) -> SessionResult<()> {
    if cookies.len() > MAX_COOKIES {
        return Err(SessionError::invalid(
            "cookies",
            format!("at most {MAX_COOKIES} cookies"),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(cookies.len());
    for c in cookies {
        if c.name.len() > MAX_NAME_LEN || !is_token(&c.name) {
            return Err(SessionError::invalid(
                "cookies",
                format!("cookie name must be 1 to {MAX_NAME_LEN} HTTP token characters"),
            ));
        }
        let name = shown(&c.name);
        if c.value.len() > MAX_COOKIE_VALUE_LEN {
            return Err(SessionError::invalid(
                "cookies",
                format!("value of cookie {name:?} is longer than {MAX_COOKIE_VALUE_LEN} bytes"),
            ));
        }
        if c.value.chars().any(|ch| ch.is_control() || ch == ';') {
            return Err(SessionError::invalid(
                "cookies",
                format!("value of cookie {name:?} holds a control character or ';'"),
            ));
        }
        if let Some(domain) = &c.domain {
            let host = domain.strip_prefix('.').unwrap_or(domain);
            let ok = !host.is_empty()
                && domain.len() <= MAX_COOKIE_DOMAIN_LEN
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return Err(SessionError::invalid(
                    "cookies",
                    format!("domain of cookie {name:?} is not a host name"),
                ));
            }
        }
        if let Some(path) = &c.path {
            let ok = path.starts_with('/')
                && path.len() <= MAX_COOKIE_PATH_LEN
                && !path.chars().any(|ch| ch.is_control() || ch == ';');
            if !ok {
                return Err(SessionError::invalid(
                    "cookies",
                    format!(
                        "path of cookie {name:?} must start with '/', have at most {MAX_COOKIE_PATH_LEN} bytes \
                         and no control characters or ';'"
                    ),
                ));
            }
        }
        let domain = c.domain.as_deref().map(str::to_ascii_lowercase);
        if !seen.insert((c.name.as_str(), domain, c.path.as_deref())) {
            return Err(SessionError::invalid(
                "cookies",
                format!("cookie {name:?} is given twice for the same domain and path"),
            ));
        }
    }
    Ok(())
}

/// Checks one header (name already lower-case or not).
fn validate_header(name: &str, value: &str) -> SessionResult<()> {
    if name.len() > MAX_NAME_LEN || !is_token(name) {
        return Err(SessionError::invalid(
            "headers",
            format!("header name must be 1 to {MAX_NAME_LEN} HTTP token characters"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN_HEADERS.contains(&lower.as_str()) {
        return Err(SessionError::invalid(
            "headers",
            format!("header {lower:?} is hop-by-hop or set by the client itself"),
        ));
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(SessionError::invalid(
            "headers",
            format!("value of header {lower:?} is longer than {MAX_HEADER_VALUE_LEN} bytes"),
        ));
    }
    if value.chars().any(|ch| ch.is_control() && ch != '\t') {
        return Err(SessionError::invalid(
            "headers",
            format!("value of header {lower:?} holds a control character"),
        ));
    }
    Ok(())
}

/// Checks headers and returns them with lower-case names (two names equal but for
/// case are refused).
pub(crate) fn normalize_headers(
    headers: BTreeMap<String, String>,
) -> SessionResult<BTreeMap<String, String>> {
    if headers.len() > MAX_HEADERS {
        return Err(SessionError::invalid(
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        validate_header(&name, &value)?;
        let lower = name.to_ascii_lowercase();
        if out.contains_key(&lower) {
            return Err(SessionError::invalid(
                "headers",
                format!("header {lower:?} is given twice"),
            ));
        }
        out.insert(lower, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(name: &str, value: &str) -> SessionCookie {
        SessionCookie {
            name: name.into(),
            value: value.into(),
            domain: None,
            path: None,
        }
    }

    #[test]
    fn ids_are_url_safe_and_long_enough() {
        let a = new_session_id();
        assert_eq!(a.len(), 22);
        assert!(validate_session_id(&a).is_ok());
        assert_ne!(a, new_session_id());
        for bad in [
            "",
            "short",
            "../../../../etc/passwd/xx",
            &"a".repeat(65),
            "aaaaaaaaaaaaaaaaaaaaa.b",
        ] {
            assert!(validate_session_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cookie_limits_hold() {
        assert!(validate_cookies(&[cookie("sid", "abc=="), cookie("x", "")]).is_ok());
        let many: Vec<_> = (0..=MAX_COOKIES)
            .map(|i| cookie(&format!("c{i}"), "v"))
            .collect();
        assert!(validate_cookies(&many).is_err());
        assert!(validate_cookies(&[cookie("bad name", "v")]).is_err());
        assert!(validate_cookies(&[cookie("", "v")]).is_err());
        assert!(validate_cookies(&[cookie("a", &"v".repeat(MAX_COOKIE_VALUE_LEN + 1))]).is_err());
        assert!(validate_cookies(&[cookie("a", "x\r\nSet-Cookie: y")]).is_err());
        assert!(validate_cookies(&[cookie("a", "x;y")]).is_err());
        assert!(validate_cookies(&[cookie("a", "1"), cookie("a", "2")]).is_err());
        let mut c = cookie("a", "1");
        c.domain = Some("exa mple.com".into());
        assert!(validate_cookies(std::slice::from_ref(&c)).is_err());
        c.domain = Some(".example.com".into());
        c.path = Some("no-slash".into());
        assert!(validate_cookies(std::slice::from_ref(&c)).is_err());
        c.path = Some("/app".into());
        assert!(validate_cookies(&[c]).is_ok());
    }

    #[test]
    fn header_limits_hold_and_names_are_lower_cased() {
        let ok =
            normalize_headers(BTreeMap::from([("X-Api".to_owned(), "v\t1".to_owned())])).unwrap();
        assert_eq!(ok.get("x-api").map(String::as_str), Some("v\t1"));
        for (name, value) in [
            ("Host", "example.com"),
            ("Transfer-Encoding", "chunked"),
            ("content-length", "1"),
            ("bad name", "v"),
            ("x", "a\nb"),
        ] {
            let h = BTreeMap::from([(name.to_owned(), value.to_owned())]);
            assert!(normalize_headers(h).is_err(), "{name}");
        }
        let long = BTreeMap::from([("x".to_owned(), "v".repeat(MAX_HEADER_VALUE_LEN + 1))]);
        assert!(normalize_headers(long).is_err());
        let dup = BTreeMap::from([
            ("X-A".to_owned(), "1".to_owned()),
            ("x-a".to_owned(), "2".to_owned()),
        ]);
        assert!(normalize_headers(dup).is_err());
        let many: BTreeMap<_, _> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-{i}"), "v".to_owned()))
            .collect();
        assert!(normalize_headers(many).is_err());
    }

    #[test]
    fn errors_never_echo_values() {
        let secret = "s3cr3t-value\u{7}";
        let err = validate_cookies(&[cookie("sid", secret)])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        let h = BTreeMap::from([("x-token".to_owned(), format!("{secret}\n"))]);
        let err = normalize_headers(h).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn ttl_bounds() {
        assert!(validate_ttl(Duration::ZERO).is_err());
        assert!(validate_ttl(MAX_SESSION_TTL + Duration::from_secs(1)).is_err());
        assert!(validate_ttl(Duration::from_millis(1)).is_ok());
    }
}
