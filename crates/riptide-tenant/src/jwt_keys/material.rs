//! The key material of a JWT verification key: an HS256 secret wrapped by the master
//! key, or a caller's public key in PEM, and the `jsonwebtoken` key built from it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

use crate::crypto::{DataKey, MasterKey};
use crate::error::{TenantError, TenantResult};
use riptide_store::tenant_id::TenantId;

/// Longest public key accepted, in bytes of PEM (a 4096-bit RSA key is ~800).
pub const MAX_PUBLIC_KEY_PEM_BYTES: usize = 16 * 1024;

/// The algorithm of a verification key. A token is verified with its key's algorithm
/// only, whatever its own header says: that is what defeats `alg: none` and the
/// HS256-with-a-public-key confusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a secret the service generates.
    HS256,
    /// Ed25519 signatures; the caller supplies the public key.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256; the caller supplies the public key.
    RS256,
}

impl JwtAlgorithm {
    /// The JOSE name (`HS256`, `EdDSA`, `RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::EdDSA => "EdDSA",
            JwtAlgorithm::RS256 => "RS256",
        }
    }

    fn jose(self) -> Algorithm {
        match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
            JwtAlgorithm::RS256 => Algorithm::RS256,
        }
    }
}

/// The stored material of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum KeyMaterial {
    /// An HS256 secret: base64 of its 32 random bytes wrapped by the master key.
    WrappedSecret {
        /// `MasterKey::wrap` output, base64.
        wrapped: String,
    },
    /// A public key (EdDSA, RS256) in PEM, as the caller sent it.
    PublicPem {
        /// The PEM text.
        pem: String,
    },
}

/// A key ready to verify tokens with.
pub(super) struct VerifyingKey {
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

impl KeyMaterial {
    /// A caller's public key for `algorithm`, checked: PEM, not too long, not a private
    /// key, and usable by the verifier.
    pub(super) fn public(algorithm: JwtAlgorithm, pem: &str) -> TenantResult<Self> {
        let invalid = |reason: &str| TenantError::InvalidField {
            field: "public_key_pem",
            reason: reason.to_owned(),
        };
        if pem.len() > MAX_PUBLIC_KEY_PEM_BYTES {
            return Err(invalid("longer than 16 KiB"));
        }
        if pem.contains("PRIVATE KEY") {
            // Sent by mistake, it must not be stored: the issuer should replace it.
            return Err(invalid(
                "this is a private key; send the public key only (and consider this private key exposed)",
            ));
        }
        let key = decoding_key(algorithm, pem.as_bytes()).map_err(|_| {
            invalid(match algorithm {
                JwtAlgorithm::EdDSA => {
                    "not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)"
                }
                _ => "not an RSA public key in PEM (-----BEGIN PUBLIC KEY----- or RSA PUBLIC KEY)",
            })
        })?;
        // The PEM parsers check the envelope only; building a verifier parses the key.
        jsonwebtoken::crypto::verify("AAAA", b"probe", &key, algorithm.jose())
            .map_err(|_| invalid("the key cannot be used to verify signatures"))?;
        Ok(KeyMaterial::PublicPem {
            pem: pem.to_owned(),
        })
    }

    /// A fresh HS256 secret for `tenant`'s key `kid`: the stored material and the secret
    /// to show once (43 characters of base64url; its UTF-8 bytes are the HMAC key).
    pub(super) fn generate_hs256(
        master: &MasterKey,
        tenant: &TenantId,
        kid: &str,
    ) -> TenantResult<(Self, String)> {
        let raw = DataKey::generate();
        let wrapped = master.wrap(&raw, &wrap_context(tenant, kid))?;
        let secret = URL_SAFE_NO_PAD.encode(raw.expose());
        Ok((
            KeyMaterial::WrappedSecret {
                wrapped: STANDARD.encode(wrapped),
            },
            secret,
        ))
    }

    /// The public key, for listings; `None` for a secret.
    pub(super) fn public_pem(&self) -> Option<&str> {
        match self {
            KeyMaterial::PublicPem { pem } => Some(pem),
            KeyMaterial::WrappedSecret { .. } => None,
        }
    }

    /// The verifier of this material for `algorithm`.
    pub(super) fn verifying_key(
        &self,
        algorithm: JwtAlgorithm,
        master: &MasterKey,
        tenant: &TenantId,
        kid: &str,
    ) -> TenantResult<VerifyingKey> {
        let key = match (self, algorithm) {
            (KeyMaterial::WrappedSecret { wrapped }, JwtAlgorithm::HS256) => {
                let wrapped = STANDARD.decode(wrapped).map_err(|_| {
                    TenantError::Crypto(format!(
                        "the wrapped secret of jwt key {kid} is not base64"
                    ))
                })?;
                let raw = master.unwrap(&wrapped, &wrap_context(tenant, kid))?;
                let secret = URL_SAFE_NO_PAD.encode(raw.expose());
                DecodingKey::from_secret(secret.as_bytes())
            }
            (KeyMaterial::PublicPem { pem }, JwtAlgorithm::EdDSA | JwtAlgorithm::RS256) => {
                decoding_key(algorithm, pem.as_bytes())
            }
            _ => {
                return Err(TenantError::Crypto(format!(
                    "jwt key {kid} holds material that does not fit {}",
                    algorithm.as_str()
                )));
            }
        }
        .map_err(|e| TenantError::Crypto(format!("jwt key {kid}: {e}")))?;
        Ok(VerifyingKey {
            algorithm: algorithm.jose(),
            key,
        })
    }
}

fn decoding_key(algorithm: JwtAlgorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
    match algorithm {
        JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
        JwtAlgorithm::HS256 => DecodingKey::from_secret(pem),
    }
}

/// The associated data a secret is wrapped under: binds it to its tenant and kid (no
/// tenant id contains `/`, so it never matches a tenant's data key context).
fn wrap_context(tenant: &TenantId, kid: &str) -> String {
    format!("{tenant}/jwt/{kid}")
}
