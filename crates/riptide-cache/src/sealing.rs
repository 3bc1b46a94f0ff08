//! Sealing of cache payloads: the hook through which the tenant layer encrypts a
//! tenant's cache entries (issue 3, item 7).
//!
//! The cache knows nothing of tenants' settings or of master keys. It asks an installed
//! [`CacheSealer`] (see [`super::PersistentCacheManager::set_sealer`]) for a
//! [`SealingKey`]:
//!
//! - **on every write** ([`CacheSealer::key_for_write`]): `Some(key)` seals the entry,
//!   `None` stores it in the clear, an error fails the write (nothing is written: a
//!   tenant whose entries must be sealed never gets a plaintext entry because its key
//!   could not be found);
//! - **on L2 reads of entries whose envelope carries the encrypted flag**
//!   ([`CacheSealer::key_for_read`]): `Some(key)` opens the entry, `None` (no key any
//!   more: the tenant was deleted, so was its key) makes the entry a miss. An entry that
//!   fails to open (wrong key, moved to another key, altered) is a miss too. Neither is
//!   an error to the caller, and plaintext is never returned without authentication.
//!
//! L1 holds decoded (decrypted) entries, so an L1 hit never asks the sealer and never
//! decrypts. Entries without the flag never ask the sealer either.
//!
//! What is sealed and what is bound: the payload (after compression) is sealed with
//! AES-256-GCM; the associated data binds it to the entry's full store key and to the
//! envelope's header and metadata. Copying sealed bytes to another key (of the same or
//! another tenant) or editing the header (expiry, codec, compression) or the metadata
//! makes the entry fail to open. The metadata (tags, content type, source, attributes)
//! stays readable in the store: tags are what invalidation by tag works on and they
//! name keys, not page content, and the store already keeps tags in its own
//! bookkeeping for that purpose. Callers that need the `source` URL hidden too should
//! keep it out of the metadata of encrypted tenants.
//!
//! Sealing after compression reveals the compressed length, as any length-preserving
//! encryption would; the store's accounting needs the stored size anyway.

#[cfg(test)]
pub(crate) mod test_key;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use super::CacheResult;
use riptide_store::keys::Scope;

/// Bytes sealing adds to a payload: a 12-byte nonce in front, a 16-byte tag behind.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Length of the random nonce in front of a sealed value.
pub const NONCE_LEN: usize = 12;

/// Length of the authentication tag at the end of a sealed value.
pub const TAG_LEN: usize = 16;

/// A value could not be sealed or opened.
///
/// Deliberately opaque: it does not say whether the key, the binding (associated data)
/// or the bytes were wrong, so it cannot serve as an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("sealed value could not be opened or sealed (wrong key or binding, truncated or altered)")]
pub struct SealError;

/// An authenticated-encryption key for payloads (AES-256-GCM in the tenant layer's
/// `DataKey`, which implements it above this layer).
///
/// Sealed layout: `nonce (12 bytes) || ciphertext || tag (16 bytes)`, so a sealed value
/// is [`SEAL_OVERHEAD`] bytes longer than its plaintext.
pub trait SealingKey: Send + Sync {
    /// Appends the sealed form of `plaintext`, bound to `aad`, to `out`.
    fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<(), SealError>;

    /// Opens a value sealed under this key with the same `aad`.
    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError>;

    /// Seals `plaintext` with a nonce derived from it and `aad` (a synthetic IV): the
    /// same input always gives the same bytes, so a sealed name can be a store field
    /// that instances add up. Opens with [`Self::open`].
    fn seal_deterministic(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError>;
}

/// Where the cache gets the keys it seals and opens entries with.
///
/// Implemented by the tenant layer's `TenantKeys` (the per-tenant data keys);
/// installed with [`super::PersistentCacheManager::set_sealer`].
#[async_trait]
pub trait CacheSealer: Send + Sync + 'static {
    /// The key new entries of `scope` are sealed with, or `None` to store them in the
    /// clear. An error fails the write: return one whenever the scope's entries must be
    /// sealed but its key cannot be had, so nothing is written in the clear by mistake.
    async fn key_for_write(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>>;

    /// The key that opens sealed entries of `scope`, or `None` when there is none any
    /// more (the entries read as misses). An error (e.g. the store holding the key is
    /// unreachable) fails the read.
    async fn key_for_read(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>>;
}

#[async_trait]
impl<T: CacheSealer + ?Sized> CacheSealer for Arc<T> {
    async fn key_for_write(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>> {
        (**self).key_for_write(scope).await
    }

    async fn key_for_read(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>> {
        (**self).key_for_read(scope).await
    }
}
