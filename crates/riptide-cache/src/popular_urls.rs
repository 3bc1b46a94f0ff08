//! Popular URLs of encrypted tenants, sealed before they reach the store (issue 10,
//! item 2): the counters record `<p>:tenant:{<id>}:pop` names each URL by its
//! deterministic sealing with the tenant's data key (`s1:` + base64url), so instances
//! sharing a store still add up the same field, nobody reading the store learns which
//! pages a tenant reads, and deleting the tenant's data key shreds them. Tenants without
//! a data key keep plain URLs, as before.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::sealing::SealingKey;
use riptide_store::tenant_id::TenantId;

/// Marks a sealed field (a URL never starts with it: it has a scheme).
const SEALED_PREFIX: &str = "s1:";

fn aad(tenant: &TenantId) -> Vec<u8> {
    format!("riptide popularity url v1/{tenant}").into_bytes()
}

/// The field that names `url` in `tenant`'s record: sealed with `key`, or the URL itself.
pub(crate) fn field_of(
    key: Option<&dyn SealingKey>,
    tenant: &TenantId,
    url: &str,
) -> Option<String> {
    match key {
        None => Some(url.to_owned()),
        Some(key) => key
            .seal_deterministic(url.as_bytes(), &aad(tenant))
            .ok()
            .map(|sealed| format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))),
    }
}

/// The URL a field of `tenant`'s record names; `None` for a sealed field that does not
/// open with `key` (no key: the tenant was deleted, or the field was altered).
pub(crate) fn url_of(
    key: Option<&dyn SealingKey>,
    tenant: &TenantId,
    field: &str,
) -> Option<String> {
    let Some(sealed) = field.strip_prefix(SEALED_PREFIX) else {
        return Some(field.to_owned());
    };
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let plain = key?.open(&bytes, &aad(tenant)).ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::test_key::TestKey;

    #[test]
    fn sealed_fields_repeat_and_open_only_with_the_key() {
        let (key, t) = (TestKey::generate(), TenantId::parse("acme").unwrap());
        let url = "https://example.com/a?b=1";
        let field = field_of(Some(&key), &t, url).unwrap();
        assert!(!field.contains("example"), "{field}");
        assert_eq!(field_of(Some(&key), &t, url).unwrap(), field);
        assert_eq!(url_of(Some(&key), &t, &field).as_deref(), Some(url));
        assert_eq!(url_of(None, &t, &field), None);
        assert_eq!(url_of(Some(&TestKey::generate()), &t, &field), None);
        let other = TenantId::parse("other").unwrap();
        assert_eq!(url_of(Some(&key), &other, &field), None);
        assert_eq!(field_of(None, &t, url).as_deref(), Some(url));
        assert_eq!(url_of(None, &t, url).as_deref(), Some(url));
    }
}
