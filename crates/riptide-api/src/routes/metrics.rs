//! `GET /metrics`: the process's metrics in the Prometheus text format, behind
//! `metrics.token` when one is configured.
//!
//! The token is kept as its blake3 hash and a presented token is hashed and compared
//! with `blake3::Hash` equality, which is constant-time, so the answer's timing says
//! nothing about how much of a guess was right (the hash also hides the length). A wrong
//! token counts as a failed authentication of the client address (credential
//! `metrics_token`), so guessing meets the same throttle as API keys and admin tokens.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::IntoResponse;

use crate::auth_failures::{Credential, client_ip};
use crate::error::ApiError;
use crate::state::AppState;

/// The Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A caller allowed to read `/metrics`: anyone when no token is configured, else one
/// presenting it as `Authorization: Bearer <token>`.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = &state.metrics_token else {
            return Ok(MetricsReader);
        };
        let client = client_ip(&parts.extensions);
        state
            .auth_failures
            .admit(client, Credential::MetricsToken)?;
        let presented = bearer(parts)?;
        if token.accepts(presented) {
            Ok(MetricsReader)
        } else {
            state.auth_failures.failed(client, Credential::MetricsToken);
            Err(ApiError::unauthorized("invalid metrics token"))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::unauthorized(
            "/metrics requires the metrics token: send Authorization: Bearer <metrics.token>",
        )
    };
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(missing),
        _ => Err(missing()),
    }
}

/// `GET /metrics`: renders every metric recorded in this process.
pub async fn get_metrics(
    _reader: MetricsReader,
    State(state): State<AppState>,
) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, CONTENT_TYPE_PROMETHEUS)],
        state.metrics.render(),
    )
}
