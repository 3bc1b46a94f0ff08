//! [`JsonBody`]: a JSON request body whose every failure is a JSON error with a clear
//! code (axum's own `Json` answers in plain text).
//!
//! | failure | answer |
//! |---|---|
//! | a `Content-Type` that is not JSON ([`crate::routes::content_type`]) | 415 `unsupported_media_type` |
//! | body over [`MAX_BODY_BYTES`] | 413 `body_too_large` |
//! | body not readable (the connection failed) | 400 `invalid_body` |
//! | not JSON | 400 `invalid_json` |
//! | JSON of the wrong shape (unknown field, wrong type, missing field) | 400 `invalid_request` |
//!
//! An empty body reads as `{}`, so requests whose fields are all optional need none.
//! Every request type refuses unknown fields at every depth (`deny_unknown_fields`), so
//! a misspelt field is an error that names it, never a silently ignored setting.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;
use crate::routes::content_type::require_json;

/// Largest request body of a tenant route (applied with `DefaultBodyLimit`): room for
/// a crawl of 100 long URLs, or a session with its maximum of cookies and headers.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request body parsed as `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(request.headers())?;
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge {
                        code: "body_too_large",
                        message: format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                    }
                } else {
                    unreadable(&rejection.body_text())
                }
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// 400 `invalid_body` for a body that could not be read; why (an I/O error of the
/// connection) is logged, not sent.
pub fn unreadable(why: &str) -> ApiError {
    tracing::debug!(error = why, "reading a request body failed");
    ApiError::bad_request("invalid_body", "the request body could not be read")
}

/// Parses `bytes` (empty: `{}`) as `T`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Data => ApiError::bad_request("invalid_request", e.to_string()),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(parse::<Probe>(b"{\"n\":3}").expect("ok"), Probe { n: 3 });
        assert_eq!(parse::<Probe>(b"").expect("empty"), Probe { n: 0 });
        assert_eq!(parse::<Probe>(b"{").unwrap_err().code(), "invalid_json");
        assert_eq!(parse::<Probe>(b"nope").unwrap_err().code(), "invalid_json");
        let unknown = parse::<Probe>(b"{\"m\":1}").unwrap_err();
        assert_eq!(unknown.code(), "invalid_request");
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
        assert_eq!(
            parse::<Probe>(b"{\"n\":\"x\"}").unwrap_err().code(),
            "invalid_request"
        );
    }
}
