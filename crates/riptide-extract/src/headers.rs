//! Extra request headers supplied by the caller (a tenant session's cookies and
//! headers): which are accepted and how they are turned into a [`HeaderMap`].
//!
//! Headers that would change how the connection or the message is framed, or where it
//! goes, are not the caller's to set: `Host`, the hop-by-hop headers, the framing
//! headers and proxy credentials. [`check_extra_header`] says why a header is refused
//! (use it to reject a session at creation); [`Extractor::extract`] drops refused
//! headers silently (logged at debug), so a stored session can never break a fetch.
//!
//! [`Extractor::extract`]: crate::Extractor::extract

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Header names a caller may not set (lower case).
const FORBIDDEN: [&str; 12] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

/// Checks one caller-supplied header; `Err` says why it would be dropped.
pub fn check_extra_header(name: &str, value: &str) -> Result<(), String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if FORBIDDEN.contains(&parsed.as_str()) {
        return Err(format!(
            "header {:?} may not be overridden",
            parsed.as_str()
        ));
    }
    HeaderValue::from_str(value)
        .map_err(|_| format!("the value of header {name:?} is not valid"))?;
    Ok(())
}

/// The accepted `extra` headers as a map; repeated names are kept (appended), and a
/// caller's `User-Agent` replaces the configured one.
pub(crate) fn extra_header_map(extra: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in extra {
        if let Err(reason) = check_extra_header(name, value) {
            tracing::debug!(header = %name, %reason, "dropping extra request header");
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.to_owned(), v.to_owned())
    }

    #[test]
    fn framing_and_routing_headers_are_refused() {
        for name in [
            "Host",
            "connection",
            "Transfer-Encoding",
            "content-length",
            "Upgrade",
            "TE",
        ] {
            assert!(check_extra_header(name, "x").is_err(), "{name}");
        }
        assert!(check_extra_header("bad name", "x").is_err());
        assert!(check_extra_header("X-Ok", "line\nbreak").is_err());
        assert!(check_extra_header("Cookie", "a=1; b=2").is_ok());
        assert!(check_extra_header("Authorization", "Bearer t").is_ok());
    }

    #[test]
    fn map_keeps_the_good_and_drops_the_bad() {
        let map = extra_header_map(&[
            pair("Cookie", "a=1"),
            pair("Host", "evil.example"),
            pair("X-Trace", "1"),
            pair("X-Trace", "2"),
            pair("Bad Header", "v"),
        ]);
        assert_eq!(map.get("cookie").unwrap(), "a=1");
        assert!(map.get("host").is_none());
        assert_eq!(map.get_all("x-trace").iter().count(), 2);
        assert_eq!(map.len(), 3);
    }
}
