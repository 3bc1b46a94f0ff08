//! The media type a JSON request body must be declared with.
//!
//! Accepted: `application/json` and `application/<anything>+json`, with or without
//! parameters (`; charset=utf-8`), in any letter case. Anything else is 415
//! `unsupported_media_type`: a form post or a text body is a client mistake that would
//! otherwise surface as a confusing JSON syntax error.
//!
//! A request without `Content-Type` is accepted and its body read as JSON: bodies that
//! may be empty (`POST .../keys`, `POST /admin/cache/warm`) are routinely sent without
//! one, and a body that is not JSON is still refused, as 400 `invalid_json`.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

use crate::error::ApiError;

/// 415 unless `headers` declare a JSON body or declare none.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    if value.to_str().is_ok_and(is_json) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType {
        message: "the body must be JSON: Content-Type application/json (or application/*+json)"
            .into(),
    })
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application")
        && (subtype == "json" || (subtype.len() > "+json".len() && subtype.ends_with("+json")))
        && !subtype.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("value"),
        );
        headers
    }

    #[test]
    fn json_types_pass() {
        assert!(require_json(&HeaderMap::new()).is_ok());
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
            "application/vnd.riptide+json;v=1",
        ] {
            assert!(require_json(&with(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_types_are_415() {
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/+json",
            "application/jsonx",
            "json",
            "",
        ] {
            let err = require_json(&with(bad)).expect_err(bad);
            assert_eq!(err.code(), "unsupported_media_type", "{bad}");
            assert_eq!(err.status().as_u16(), 415);
        }
    }
}
