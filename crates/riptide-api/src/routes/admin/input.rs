//! Request input of the admin routes, refused as 400 JSON errors: bodies ([`Body`],
//! [`OptionalBody`]), query strings ([`Params`]) and ids in paths.
//!
//! axum's own `Json` and `Query` answer malformed input with plain-text 400/415/422
//! responses; these answer with the service's error body and name what was wrong
//! (syntax, unknown field, wrong type). A body declared as anything but JSON is 415
//! ([`crate::routes::content_type`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::Uri;
use axum::http::request::Parts;
use riptide_persistence::TenantId;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::routes::content_type::require_json;
use crate::routes::tenant::body::unreadable;
use crate::state::AppState;

/// A JSON request body, required.
#[derive(Debug)]
pub struct Body<T>(pub T);

/// A JSON request body that may be absent (an empty body is `T::default()`).
#[derive(Debug)]
pub struct OptionalBody<T>(pub T);

/// A query string.
#[derive(Debug)]
pub struct Params<T>(pub T);

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    require_json(req.headers())?;
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge {
                code: "body_too_large",
                message: "the request body is too large".into(),
            }
        } else {
            unreadable(&e.body_text())
        }
    })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "invalid_json",
                "a JSON body is required",
            ));
        }
        parse_json(&bytes).map(Body)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        parse_json(&bytes).map(OptionalBody)
    }
}

impl<T: DeserializeOwned> FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        query_of(&parts.uri).map(Params)
    }
}

/// The query string of `uri`, decoded with axum's own decoder (whose message names the
/// field); only the response form differs from `Query`'s.
fn query_of<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// A tenant id from a path or body, validated before it reaches anything: 400
/// `invalid_tenant_id` otherwise.
pub fn tenant_id(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(raw).map_err(|e| ApiError::bad_request("invalid_tenant_id", e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Page {
        offset: Option<u64>,
        limit: Option<u64>,
    }

    #[test]
    fn queries_decode_or_name_the_problem() {
        let query = |q: &str| query_of::<Page>(&format!("/x?{q}").parse().expect("uri"));
        let page = query("offset=5&limit=2").expect("valid");
        assert_eq!(
            page,
            Page {
                offset: Some(5),
                limit: Some(2)
            }
        );
        let empty = query_of::<Page>(&"/x".parse().expect("uri")).expect("empty");
        assert_eq!(empty.offset, None);
        for bad in ["offset=x", "limit=-1", "nope=1"] {
            let err = query(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_query", "{bad}");
        }
    }

    #[test]
    fn tenant_ids_are_validated() {
        assert!(tenant_id("acme-1").is_ok());
        for bad in ["", "ACME", "a:b", "{x}", &"a".repeat(65)] {
            assert_eq!(tenant_id(bad).unwrap_err().code(), "invalid_tenant_id");
        }
    }
}
