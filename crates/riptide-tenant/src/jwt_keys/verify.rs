//! Verification of a presented JWT for a tenant.
//!
//! 1. The token is at most [`MAX_TOKEN_LEN`] bytes and three base64url segments.
//! 2. Its header names a `kid` (required), which must be an active key of the tenant
//!    the request is for. The header's `alg` selects nothing: the key fixes the one
//!    algorithm accepted, so `alg: none`, and HS256 signed with a public key as the
//!    secret, are refused.
//! 3. The signature verifies under that key.
//! 4. Claims: `tenant` (required) is the tenant; `exp` (required, NumericDate seconds)
//!    is after now minus the leeway; `nbf` (optional) is before now plus the leeway;
//!    `aud` must contain `tenant.jwt_audience` when that is set. Time is the injected
//!    clock's, so tests are deterministic.
//!
//! Every refusal is [`TenantError::InvalidToken`] with a short fixed reason.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;

use super::JwtKeys;
use crate::api_keys::is_key_id;
use crate::error::{TenantError, TenantResult};
use riptide_store::tenant_id::TenantId;

/// Longest token looked at, in bytes; longer ones are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The tenant it authenticates (its `tenant` claim, which is the key's tenant).
    pub tenant_id: TenantId,
    /// The key that verified it.
    pub kid: String,
}

/// The claims RipTide reads; others are ignored.
#[derive(Deserialize)]
struct Claims {
    tenant: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

/// Whether `presented` has the shape of a JWT (three non-empty base64url segments
/// separated by dots), as opposed to an API key (which has no dot).
pub fn looks_like_jwt(presented: &str) -> bool {
    let mut segments = 0;
    for segment in presented.split('.') {
        segments += 1;
        let base64url = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if segment.is_empty() || !base64url {
            return false;
        }
    }
    segments == 3
}

fn invalid(reason: &'static str) -> TenantError {
    TenantError::InvalidToken(reason)
}

impl JwtKeys {
    /// Verifies `token` for `tenant` (the tenant the request names): see the module
    /// documentation for the steps. Store trouble is reported as such; everything else
    /// that is wrong is [`TenantError::InvalidToken`].
    pub async fn verify(&self, tenant: &TenantId, token: &str) -> TenantResult<VerifiedToken> {
        if token.len() > MAX_TOKEN_LEN || !looks_like_jwt(token) {
            return Err(invalid("malformed token"));
        }
        // An `alg` jsonwebtoken does not know (`none` included) fails here.
        let header =
            decode_header(token).map_err(|_| invalid("malformed or unsupported header"))?;
        let kid = header.kid.ok_or_else(|| invalid("the header has no kid"))?;
        if !is_key_id(&kid) {
            return Err(invalid("unknown or revoked key"));
        }
        let Some(key) = self.active(tenant, &kid).await? else {
            return Err(invalid("unknown or revoked key"));
        };
        let mut validation = Validation::new(key.algorithm);
        validation.algorithms = vec![key.algorithm];
        // Times are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp"]);
            }
        }
        let claims = decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| {
                invalid(match e.kind() {
                    ErrorKind::InvalidAlgorithm => "the algorithm is not the key's",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                    _ => "malformed token or claims",
                })
            })?
            .claims;
        let now_s = self.clock.now_ms() / 1_000;
        if now_s >= claims.exp.saturating_add(self.leeway_s) {
            return Err(invalid("expired"));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now_s.saturating_add(self.leeway_s))
        {
            return Err(invalid("not yet valid"));
        }
        if claims.tenant != tenant.as_str() {
            return Err(invalid("the tenant claim names another tenant"));
        }
        Ok(VerifiedToken {
            tenant_id: tenant.clone(),
            kid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_api_keys() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("a-b_c.d.e"));
        for not in [
            "rt_k7x2mq4ab9cd_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b.",
            "a.b+c.d",
            "a.b=.c",
            "",
        ] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }
}
