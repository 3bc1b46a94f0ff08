//! The bytes of a stored session, shared by the store record and the spill file (so a
//! spill file is exactly what the store holds, and either can be checked alone):
//!
//! ```text
//! format (1) = 1 | flags (1): bit 0 = sealed | expires_at ms (8, big-endian) | version (8, big-endian) | payload
//! ```
//!
//! The payload is the session as JSON, or, for a tenant with encryption, that JSON
//! sealed with the tenant's data key (`nonce || AES-256-GCM ciphertext || tag`). The
//! associated data binds the sealed payload to its store key and to the header, so a
//! sealed session cannot be moved to another key or tenant, nor its expiry or version
//! changed, without failing authentication. The header is plain so that expiry and
//! version can be read without the key (sweeping spill files, checking a spill file
//! against the store index); it holds no cookie or header data.

use riptide_tenant::crypto::DataKey;

use super::error::{SessionError, SessionResult};
use super::model::Session;

/// Format of the encoding.
const FORMAT: u8 = 1;
/// Flag: the payload is sealed.
const FLAG_SEALED: u8 = 1;
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 18;
/// Largest encoded session accepted (far above the input limits allow).
pub(crate) const MAX_ENCODED_LEN: usize = 4 * 1024 * 1024;
/// Domain separation of the associated data.
const AAD_CONTEXT: &[u8] = b"riptide.session.v1:";

/// The plain header of an encoded session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The payload is sealed.
    pub sealed: bool,
    /// When the session expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// The session's version.
    pub version: u64,
}

impl Header {
    /// Reads the header of `bytes`.
    pub(crate) fn parse(bytes: &[u8], what: &str) -> SessionResult<Self> {
        let corrupt = |reason: &str| SessionError::Corrupt {
            key: what.to_owned(),
            reason: reason.to_owned(),
        };
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        if bytes[0] != FORMAT {
            return Err(corrupt("unknown format"));
        }
        if bytes[1] & !FLAG_SEALED != 0 {
            return Err(corrupt("unknown flags"));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Self {
            sealed: bytes[1] & FLAG_SEALED != 0,
            expires_at_ms: word(2),
            version: word(10),
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(FORMAT);
        out.push(if self.sealed { FLAG_SEALED } else { 0 });
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
    }
}

fn aad(store_key: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + store_key.len() + 1 + header.len());
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(store_key.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

/// Encodes `session` for `store_key`, sealed when `key` is given.
pub(crate) fn encode(
    session: &Session,
    store_key: &str,
    key: Option<&DataKey>,
) -> SessionResult<Vec<u8>> {
    let json = serde_json::to_vec(session).map_err(|e| SessionError::Corrupt {
        key: store_key.to_owned(),
        reason: format!("cannot encode: {e}"),
    })?;
    let header = Header {
        sealed: key.is_some(),
        expires_at_ms: session.expires_at_ms(),
        version: session.version,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + json.len() + 32);
    header.write(&mut out);
    match key {
        None => out.extend_from_slice(&json),
        Some(k) => {
            let sealed = k.seal(&json, &aad(store_key, &out)).map_err(|_| {
                SessionError::Crypto("cannot seal the session with its tenant's data key".into())
            })?;
            out.extend_from_slice(&sealed);
        }
    }
    if out.len() > MAX_ENCODED_LEN {
        return Err(SessionError::invalid(
            "session",
            format!("encodes to more than {MAX_ENCODED_LEN} bytes"),
        ));
    }
    Ok(out)
}

/// Decodes what [`encode`] produced for the same `store_key`. A sealed payload needs
/// the tenant's `key`; without it (the tenant's key was deleted, or no tenant manager is
/// attached) it is a [`SessionError::Crypto`].
pub(crate) fn decode(
    bytes: &[u8],
    store_key: &str,
    key: Option<&DataKey>,
) -> SessionResult<Session> {
    let header = Header::parse(bytes, store_key)?;
    let (head, payload) = bytes.split_at(HEADER_LEN);
    let opened;
    let json = if header.sealed {
        let key = key.ok_or_else(|| {
            SessionError::Crypto(format!(
                "session {store_key} is sealed but its tenant's data key is not available"
            ))
        })?;
        opened = key.open(payload, &aad(store_key, head)).map_err(|_| {
            SessionError::Crypto(format!(
                "session {store_key} failed authentication (altered, moved, or another key)"
            ))
        })?;
        opened.as_slice()
    } else {
        payload
    };
    // serde_json's messages can quote the input: name the kind and place only, so no
    // cookie or header value reaches an error or a log.
    let session: Session = serde_json::from_slice(json).map_err(|e| SessionError::Corrupt {
        key: store_key.to_owned(),
        reason: format!(
            "cannot decode ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })?;
    if session.version != header.version || session.expires_at_ms() != header.expires_at_ms {
        return Err(SessionError::Corrupt {
            key: store_key.to_owned(),
            reason: "header does not match the session".into(),
        });
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::sessions::model::SessionCookie;

    fn session() -> Session {
        let t = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        Session {
            id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            tenant_id: "acme".into(),
            cookies: vec![SessionCookie {
                name: "sid".into(),
                value: "plaintext-cookie-value".into(),
                domain: None,
                path: None,
            }],
            headers: BTreeMap::from([("x-a".into(), "1".into())]),
            created_at: t,
            updated_at: t,
            expires_at: t + chrono::Duration::seconds(60),
            version: 3,
        }
    }

    #[test]
    fn plain_round_trip_and_header() {
        let s = session();
        let bytes = encode(&s, "k", None).unwrap();
        let h = Header::parse(&bytes, "k").unwrap();
        assert_eq!(
            h,
            Header {
                sealed: false,
                expires_at_ms: s.expires_at_ms(),
                version: 3
            }
        );
        assert_eq!(decode(&bytes, "k", None).unwrap(), s);
    }

    #[test]
    fn sealed_hides_values_and_is_bound_to_key_and_header() {
        let s = session();
        let k = DataKey::generate();
        let bytes = encode(&s, "key-1", Some(&k)).unwrap();
        assert!(!bytes.windows(22).any(|w| w == b"plaintext-cookie-value"));
        assert_eq!(decode(&bytes, "key-1", Some(&k)).unwrap(), s);
        assert!(matches!(
            decode(&bytes, "key-2", Some(&k)),
            Err(SessionError::Crypto(_))
        ));
        assert!(matches!(
            decode(&bytes, "key-1", None),
            Err(SessionError::Crypto(_))
        ));
        assert!(matches!(
            decode(&bytes, "key-1", Some(&DataKey::generate())),
            Err(SessionError::Crypto(_))
        ));
        let mut later = bytes.clone();
        later[9] ^= 1; // expiry changed
        assert!(matches!(
            decode(&later, "key-1", Some(&k)),
            Err(SessionError::Crypto(_))
        ));
    }

    #[test]
    fn truncated_or_unknown_input_is_corrupt() {
        assert!(matches!(
            Header::parse(&[1, 0, 0], "k"),
            Err(SessionError::Corrupt { .. })
        ));
        let mut bytes = encode(&session(), "k", None).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode(&bytes, "k", None),
            Err(SessionError::Corrupt { .. })
        ));
        let bytes = encode(&session(), "k", None).unwrap();
        assert!(matches!(
            decode(&bytes[..bytes.len() - 3], "k", None),
            Err(SessionError::Corrupt { .. })
        ));
    }
}
