//! The format of a key's secret: its shape (`<prefix><key id>_<base64url>`), random key
//! ids, and the peppered HMAC under which it is stored.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

use super::{ApiKeys, KEY_ID_LEN, MAX_PRESENTED_LEN, SECRET_BYTES};
use crate::error::{TenantError, TenantResult};
use crate::secrets::MIN_PEPPER_LEN;

/// Length of the base64url (no padding) text of [`SECRET_BYTES`].
const SECRET_BODY_LEN: usize = (SECRET_BYTES * 4).div_ceil(3);

/// Key id alphabet: lower-case RFC 4648 base32.
const KEY_ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

pub(super) type HmacSha256 = Hmac<Sha256>;

/// `HMAC-SHA256(pepper, secret)`.
pub(super) type Digest = [u8; 32];

impl ApiKeys {
    pub(super) fn is_well_formed(&self, presented: &str) -> bool {
        is_well_formed(&self.prefix, presented)
    }

    /// `HMAC-SHA256(pepper, secret)`; `Crypto` when the pepper is too short.
    pub(super) fn mac(&self, secret: &str) -> TenantResult<Digest> {
        if self.pepper.len() < MIN_PEPPER_LEN {
            return Err(TenantError::Crypto(format!(
                "the api key pepper has {} bytes; at least {MIN_PEPPER_LEN} are required",
                self.pepper.len()
            )));
        }
        // The pepper's HMAC state is computed once; each key costs a clone of it.
        let mut mac = self
            .keyed
            .clone()
            .ok_or_else(|| TenantError::Crypto("HMAC refused the api key pepper".to_owned()))?;
        mac.update(secret.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }
}

/// True when `presented` has the shape of a key with `prefix`: at most
/// [`MAX_PRESENTED_LEN`] bytes, the prefix, a key id, `_`, and 43 base64url characters.
fn is_well_formed(prefix: &str, presented: &str) -> bool {
    if presented.len() > MAX_PRESENTED_LEN {
        return false;
    }
    let Some(rest) = presented.strip_prefix(prefix) else {
        return false;
    };
    let rest = rest.as_bytes();
    rest.len() == KEY_ID_LEN + 1 + SECRET_BODY_LEN
        && rest[..KEY_ID_LEN]
            .iter()
            .all(|c| KEY_ID_ALPHABET.contains(c))
        && rest[KEY_ID_LEN] == b'_'
        && rest[KEY_ID_LEN + 1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// The HMAC keyed with `pepper`, ready to hash secrets; `None` when the pepper is too
/// short or refused.
pub(super) fn keyed_mac(pepper: &[u8]) -> Option<HmacSha256> {
    if pepper.len() < MIN_PEPPER_LEN {
        return None;
    }
    <HmacSha256 as KeyInit>::new_from_slice(pepper).ok()
}

pub(crate) fn random_key_id() -> String {
    let mut rng = rand::rng();
    (0..KEY_ID_LEN)
        .map(|_| char::from(KEY_ID_ALPHABET[rng.random_range(0..KEY_ID_ALPHABET.len())]))
        .collect()
}

pub(crate) fn is_key_id(key_id: &str) -> bool {
    key_id.len() == KEY_ID_LEN && key_id.bytes().all(|c| KEY_ID_ALPHABET.contains(&c))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(SECRET_BODY_LEN, 43);
        let id = random_key_id();
        assert!(is_key_id(&id), "{id}");
        assert!(!is_key_id("ABCDEFGHIJKL"));
        assert!(!is_key_id("abc"));
    }

    #[test]
    fn well_formedness() {
        let good = format!(
            "rt_{}_{}",
            random_key_id(),
            URL_SAFE_NO_PAD.encode([9u8; 32])
        );
        assert!(is_well_formed("rt_", &good), "{good}");
        for bad in [
            String::new(),
            "rt_".to_owned(),
            good.replacen("rt_", "xx_", 1),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            good.replace('_', "*"),
            "x".repeat(5_000),
            format!(
                "rt_{}_{}",
                "A".repeat(12),
                URL_SAFE_NO_PAD.encode([9u8; 32])
            ),
        ] {
            assert!(!is_well_formed("rt_", &bad), "{bad:?}");
        }
    }
}
