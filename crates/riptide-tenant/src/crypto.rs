//! Per-tenant encryption: the master key, tenants' data keys, and [`TenantKeys`](super::data_keys::TenantKeys), which
//! keeps the wrapped data keys in the store and seals cache entries of tenants with
//! encryption (issue 3, item 7).
//!
//! - [`MasterKey`]: 32 bytes from `tenant.master_key` (base64; env `RIPTIDE_MASTER_KEY`)
//!   or, when that is empty, from `<tenant.secrets_dir>/master.key`, generated on first
//!   start. It only wraps data keys; it never touches tenant data.
//! - [`DataKey`]: 32 random bytes per tenant. [`DataKey::seal`] gives
//!   `nonce (12) || AES-256-GCM ciphertext || tag (16)` with a fresh random nonce per
//!   value; [`DataKey::open`] checks the tag and the associated data.
//! - Wrapping: a data key is stored sealed under the master key, bound to its tenant id,
//!   as `version (1) || master key id (4) || nonce || ciphertext || tag` (65 bytes) at
//!   `<p>:tenant:{<id>}:dek`. The master key id (a derived fingerprint, safe to log) lets
//!   an instance configured with another master key say so plainly instead of failing
//!   with a bare authentication error.
//! - [`TenantKeys`](super::data_keys::TenantKeys): creates, loads (with a bounded in-memory cache of unwrapped keys)
//!   and deletes data keys, and is the cache's [`CacheSealer`]. Deleting a tenant's key
//!   makes its leftover sealed entries unreadable: they read as misses.
//!
//! Key material never appears in `Debug` output, logs or errors. Key bytes held in
//! memory are overwritten on drop on a best-effort basis (without the `zeroize` crate
//! the compiler is not forbidden to elide it, and the AES key schedule inside the cipher
//! is not cleared).
//!
//! [`CacheSealer`]: riptide_cache::CacheSealer

use std::fmt;

use aes_gcm::aead::{AeadInOut, Key, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use rand::RngCore;

use super::error::{TenantError, TenantResult};
use super::model::TenantIsolationLevel;
use super::secrets::{decode_configured_secret, load_or_create_secret};
use crate::config::TenancyConfig;
use riptide_cache::{NONCE_LEN, SEAL_OVERHEAD, SealError, SealingKey, TAG_LEN};
use riptide_store::keys::records;

/// Length of every key here (AES-256), in bytes.
pub const KEY_LEN: usize = 32;

/// File name of the generated master key under `tenant.secrets_dir`.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Record suffix of a tenant's wrapped data key (`<p>:tenant:{<id>}:dek`).
pub const DATA_KEY_RECORD: &str = records::DATA_KEY;

/// Format version of a wrapped data key.
const WRAP_VERSION: u8 = 1;

/// Version byte and master key id in front of a wrapped data key.
const WRAP_HEADER_LEN: usize = 1 + 4;

/// Length of a wrapped data key.
const WRAPPED_LEN: usize = WRAP_HEADER_LEN + KEY_LEN + SEAL_OVERHEAD;

/// Domain separation of the associated data of wrapped data keys.
const WRAP_CONTEXT: &[u8] = b"riptide.dek.v1:";

/// Derivation context of the master key id.
const MASTER_ID_CONTEXT: &str = "riptide 2026-01 master key id v1";

/// Key derivation context of the nonce key of [`DataKey::seal_deterministic`].
const SIV_CONTEXT: &str = "riptide 2026-12 deterministic sealing nonce v1";

/// Key derivation context of the seed of subkeys (see [`MasterKey::derive_subkey`]).
const SUBKEY_CONTEXT: &str = "riptide 2026-12 master key subkeys v1";

/// AES-256-GCM with its expanded key; seals and opens `nonce || ciphertext || tag`.
#[derive(Clone)]
struct Aead256 {
    cipher: Aes256Gcm,
}

impl Aead256 {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
        }
    }

    fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with_nonce(nonce, plaintext, aad, out)
    }

    fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let sealed = self.cipher.encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(nonce),
            aad,
            (&mut out[start..]).into(),
        );
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(())
            }
            Err(_) => {
                // Never leave plaintext behind in the caller's buffer.
                out.truncate(start - NONCE_LEN);
                Err(SealError)
            }
        }
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(SealError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| SealError)?;
        let tag = Tag::try_from(tag).map_err(|_| SealError)?;
        let mut plain = ciphertext.to_vec();
        self.cipher
            .decrypt_inout_detached(&nonce, aad, plain.as_mut_slice().into(), &tag)
            .map_err(|_| SealError)?;
        Ok(plain)
    }
}

/// Overwrites key bytes (best effort; see the module docs).
fn wipe(bytes: &mut [u8; KEY_LEN]) {
    bytes.fill(0);
    std::hint::black_box(&*bytes);
}

fn random_key() -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut k);
    k
}

/// The master key: wraps and unwraps tenants' data keys.
///
/// Several instances sharing one Redis must share one master key (configure
/// `tenant.master_key`); a data key wrapped under another master key cannot be
/// unwrapped, and the error names both key ids.
#[derive(Clone)]
pub struct MasterKey {
    aead: Aead256,
    id: [u8; 4],
    /// Seed of [`MasterKey::derive_subkey`]: derived one-way, so a subkey never reveals
    /// the master key or another subkey.
    subkey_seed: [u8; KEY_LEN],
}

impl MasterKey {
    /// A master key from exactly [`KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> TenantResult<Self> {
        let mut key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| TenantError::InvalidField {
            field: "tenant.master_key",
            reason: format!("{} bytes; exactly {KEY_LEN} are required", bytes.len()),
        })?;
        let made = Self::from_array(&key);
        wipe(&mut key);
        Ok(made)
    }

    fn from_array(key: &[u8; KEY_LEN]) -> Self {
        let derived = blake3::derive_key(MASTER_ID_CONTEXT, key);
        let mut id = [0u8; 4];
        id.copy_from_slice(&derived[..4]);
        Self {
            aead: Aead256::new(key),
            id,
            subkey_seed: blake3::derive_key(SUBKEY_CONTEXT, key),
        }
    }

    /// A fresh random master key (tests and tools; the service uses
    /// [`MasterKey::from_config`]).
    pub fn generate() -> Self {
        let mut key = random_key();
        let made = Self::from_array(&key);
        wipe(&mut key);
        made
    }

    /// The master key of the service: `cfg.master_key` (base64 of exactly 32 bytes)
    /// when set, else `<cfg.secrets_dir>/master.key`, generated (and logged at info, with
    /// its path and key id) when it does not exist. Returns the key and whether this
    /// call generated it.
    ///
    /// A configured value that is not base64 or not 32 bytes long is refused with
    /// [`TenantError::InvalidField`] naming `tenant.master_key` (never echoing the
    /// value); an unreadable or malformed file with [`TenantError::Crypto`].
    pub fn from_config(cfg: &TenancyConfig) -> TenantResult<(Self, bool)> {
        if !cfg.master_key.trim().is_empty() {
            let bytes = decode_configured_secret("tenant.master_key", &cfg.master_key, 1)?;
            let key = Self::from_secret(bytes, || TenantError::InvalidField {
                field: "tenant.master_key",
                reason: format!("does not decode to exactly {KEY_LEN} bytes"),
            })?;
            return Ok((key, false));
        }
        let path = cfg.secrets_dir.join(MASTER_KEY_FILE);
        let (bytes, created) = load_or_create_secret(&cfg.secrets_dir, MASTER_KEY_FILE, KEY_LEN)?;
        let key = Self::from_secret(bytes, || {
            TenantError::Crypto(format!(
                "master key file {} does not hold exactly {KEY_LEN} bytes",
                path.display()
            ))
        })?;
        if created {
            tracing::info!(
                secret.path = %path.display(),
                key.id = %key.id(),
                "generated a new master key for per-tenant encryption; instances sharing this store \
                 need the same key (set tenant.master_key), and losing it makes encrypted tenants' data unreadable"
            );
        }
        Ok((key, created))
    }

    /// A master key from decoded secret bytes, which are overwritten afterwards.
    fn from_secret(
        mut bytes: Vec<u8>,
        wrong_length: impl FnOnce() -> TenantError,
    ) -> TenantResult<Self> {
        let made = <&[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map(Self::from_array)
            .map_err(|_| wrong_length());
        bytes.fill(0);
        std::hint::black_box(&bytes);
        made
    }

    /// A short fingerprint of the key (8 hex digits, derived one-way): safe to log, and
    /// stored with every data key it wraps.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// A key for another purpose (`purpose` names it, e.g. `audit.hmac.v1`), derived
    /// one-way from the master key: anyone with the master key can derive it, nobody
    /// without it can, and it is never stored.
    pub fn derive_subkey(&self, purpose: &str) -> [u8; KEY_LEN] {
        *blake3::keyed_hash(&self.subkey_seed, purpose.as_bytes()).as_bytes()
    }

    /// Wraps `key` for `tenant_id` (bound as associated data): 65 bytes to store.
    pub fn wrap(&self, key: &DataKey, tenant_id: &str) -> TenantResult<Vec<u8>> {
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&self.id);
        let aad = wrap_aad(&out, tenant_id);
        self.aead
            .seal_into(&key.bytes, &aad, &mut out)
            .map_err(|_| {
                TenantError::Crypto(format!("cannot wrap the data key of tenant {tenant_id:?}"))
            })?;
        Ok(out)
    }

    /// Unwraps a data key wrapped by [`MasterKey::wrap`] for the same `tenant_id`.
    pub fn unwrap(&self, wrapped: &[u8], tenant_id: &str) -> TenantResult<DataKey> {
        if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAP_VERSION {
            return Err(TenantError::Crypto(format!(
                "the wrapped data key of tenant {tenant_id:?} is malformed ({} bytes, version {})",
                wrapped.len(),
                wrapped.first().copied().unwrap_or(0)
            )));
        }
        let (head, sealed) = wrapped.split_at(WRAP_HEADER_LEN);
        if head[1..] != self.id {
            return Err(TenantError::Crypto(format!(
                "the data key of tenant {tenant_id:?} was wrapped by master key {}, but the configured master \
                 key is {}: configure the master key that created it (tenant.master_key)",
                hex::encode(&head[1..]),
                self.id()
            )));
        }
        let aad = wrap_aad(head, tenant_id);
        let mut plain = self.aead.open(sealed, &aad).map_err(|_| {
            TenantError::Crypto(format!(
                "the wrapped data key of tenant {tenant_id:?} failed authentication (altered, or another tenant's)"
            ))
        })?;
        let made = DataKey::from_slice(&plain);
        plain.fill(0);
        made.ok_or_else(|| {
            TenantError::Crypto(format!(
                "the data key of tenant {tenant_id:?} has the wrong length"
            ))
        })
    }
}

fn wrap_aad(head: &[u8], tenant_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(head.len() + WRAP_CONTEXT.len() + tenant_id.len());
    aad.extend_from_slice(head);
    aad.extend_from_slice(WRAP_CONTEXT);
    aad.extend_from_slice(tenant_id.as_bytes());
    aad
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        wipe(&mut self.subkey_seed);
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// A tenant's data key: seals and opens its values with AES-256-GCM.
pub struct DataKey {
    aead: Aead256,
    bytes: [u8; KEY_LEN],
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let bytes = random_key();
        Self {
            aead: Aead256::new(&bytes),
            bytes,
        }
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self {
            aead: Aead256::new(&bytes),
            bytes,
        })
    }

    /// The raw key, for a 32-byte secret that is kept wrapped by the master key like a
    /// data key (a tenant's HS256 JWT secret, see `jwt_keys`).
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Seals `plaintext` bound to `aad`: `nonce (12) || ciphertext || tag (16)`, with a
    /// fresh random nonce. Fails only for inputs beyond AES-GCM's limit (64 GiB).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        self.aead.seal_into(plaintext, aad, &mut out)?;
        Ok(out)
    }

    /// Seals `plaintext` deterministically: the same plaintext and `aad` always give the
    /// same bytes, so a sealed value can name a field (a popular URL of an encrypted
    /// tenant) and counts from several instances still add up. The nonce is a keyed
    /// hash of both (a synthetic IV), so it repeats only with the whole input; what this
    /// reveals is equality, nothing else. [`DataKey::open`] opens it.
    pub fn seal_deterministic(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce_key = blake3::derive_key(SIV_CONTEXT, &self.bytes);
        let mut hasher = blake3::Hasher::new_keyed(&nonce_key);
        wipe(&mut nonce_key);
        hasher.update(&(aad.len() as u64).to_le_bytes());
        hasher.update(aad);
        hasher.update(plaintext);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&hasher.finalize().as_bytes()[..NONCE_LEN]);
        let mut out = Vec::new();
        self.aead.seal_with_nonce(nonce, plaintext, aad, &mut out)?;
        Ok(out)
    }

    /// Opens what [`DataKey::seal`] produced with the same `aad`. Any other key, other
    /// `aad`, truncation or changed bit fails with [`SealError`].
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        self.aead.open(sealed, aad)
    }
}

impl SealingKey for DataKey {
    fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        self.aead.seal_into(plaintext, aad, out)
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        self.aead.open(sealed, aad)
    }

    fn seal_deterministic(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        DataKey::seal_deterministic(self, plaintext, aad)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Whether a tenant's values must be sealed: `encryption_enabled`, or isolation level
/// [`TenantIsolationLevel::Strong`], which implies it.
pub fn encryption_required(config: &crate::model::TenantConfig) -> bool {
    config.encryption_enabled || config.isolation_level == TenantIsolationLevel::Strong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_sealing_repeats_only_for_the_same_input() {
        let key = DataKey::generate();
        let a = key.seal_deterministic(b"https://a/1", b"t").unwrap();
        assert_eq!(a, key.seal_deterministic(b"https://a/1", b"t").unwrap());
        assert_ne!(a, key.seal_deterministic(b"https://a/2", b"t").unwrap());
        assert_ne!(a, key.seal_deterministic(b"https://a/1", b"u").unwrap());
        assert_ne!(
            a,
            DataKey::generate()
                .seal_deterministic(b"https://a/1", b"t")
                .unwrap()
        );
        assert_eq!(key.open(&a, b"t").unwrap(), b"https://a/1");
        assert!(key.open(&a, b"u").is_err());
    }
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn cfg_with(master_key: &str, dir: &std::path::Path) -> TenancyConfig {
        TenancyConfig {
            master_key: master_key.to_owned(),
            secrets_dir: dir.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn seal_open_round_trips_and_uses_fresh_nonces() {
        let k = DataKey::generate();
        let a = k.seal(b"hello tenant", b"aad").unwrap();
        let b = k.seal(b"hello tenant", b"aad").unwrap();
        assert_eq!(a.len(), 12 + SEAL_OVERHEAD);
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(k.open(&a, b"aad").unwrap(), b"hello tenant");
        assert_eq!(k.open(&k.seal(b"", b"").unwrap(), b"").unwrap(), b"");
    }

    #[test]
    fn wrong_key_aad_truncation_and_flipped_bits_fail() {
        let k = DataKey::generate();
        let sealed = k.seal(b"secret page content", b"key-a").unwrap();
        assert_eq!(DataKey::generate().open(&sealed, b"key-a"), Err(SealError));
        assert_eq!(k.open(&sealed, b"key-b"), Err(SealError));
        assert_eq!(
            k.open(&sealed[..sealed.len() - 1], b"key-a"),
            Err(SealError)
        );
        assert_eq!(
            k.open(&sealed[..SEAL_OVERHEAD - 1], b"key-a"),
            Err(SealError)
        );
        assert_eq!(k.open(&[], b"key-a"), Err(SealError));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(k.open(&bad, b"key-a"), Err(SealError), "bit flipped at {i}");
        }
    }

    #[test]
    fn wrap_unwrap_is_bound_to_master_key_and_tenant() {
        let master = MasterKey::generate();
        let dek = DataKey::generate();
        let wrapped = master.wrap(&dek, "acme").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        let back = master.unwrap(&wrapped, "acme").unwrap();
        let sealed = dek.seal(b"x", b"y").unwrap();
        assert_eq!(back.open(&sealed, b"y").unwrap(), b"x");

        let other_tenant = master.unwrap(&wrapped, "globex").unwrap_err().to_string();
        assert!(
            other_tenant.contains("failed authentication"),
            "{other_tenant}"
        );
        let other_master = MasterKey::generate()
            .unwrap(&wrapped, "acme")
            .unwrap_err()
            .to_string();
        assert!(
            other_master.contains(&master.id()) && other_master.contains("tenant.master_key"),
            "{other_master}"
        );
        let mut flipped = wrapped.clone();
        flipped[WRAPPED_LEN - 1] ^= 0x80;
        assert!(master.unwrap(&flipped, "acme").is_err());
        assert!(master.unwrap(&wrapped[..40], "acme").is_err());
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let bytes = [0xABu8; KEY_LEN];
        let master = MasterKey::from_bytes(&bytes).unwrap();
        let dek = DataKey::from_slice(&bytes).unwrap();
        for shown in [
            format!("{master:?}"),
            format!("{dek:?}"),
            format!("{master:#?}"),
        ] {
            assert!(!shown.to_lowercase().contains("abab"), "{shown}");
            assert!(!shown.contains("171"), "{shown}");
        }
        assert_eq!(master.id().len(), 8);
    }

    #[test]
    fn master_key_from_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; KEY_LEN];
        let (m, created) =
            MasterKey::from_config(&cfg_with(&STANDARD.encode(key), dir.path())).unwrap();
        assert!(!created);
        assert_eq!(m.id(), MasterKey::from_bytes(&key).unwrap().id());
        assert!(
            !dir.path().join(MASTER_KEY_FILE).exists(),
            "a configured key writes no file"
        );

        for bad in [
            "not base64 at all!",
            &STANDARD.encode([1u8; 16]),
            &STANDARD.encode([1u8; 48]),
        ] {
            let err = MasterKey::from_config(&cfg_with(bad, dir.path())).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    TenantError::InvalidField {
                        field: "tenant.master_key",
                        ..
                    }
                ),
                "{text}"
            );
            assert!(text.contains("tenant.master_key"), "{text}");
            assert!(!text.contains(bad), "the value is never echoed: {text}");
        }
        assert!(
            MasterKey::from_config(&cfg_with(&STANDARD.encode([1u8; 16]), dir.path()))
                .unwrap_err()
                .to_string()
                .contains("exactly 32")
        );
    }

    #[test]
    fn generated_master_key_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let (first, created) = MasterKey::from_config(&cfg_with("", &secrets)).unwrap();
        assert!(created);
        assert!(secrets.join(MASTER_KEY_FILE).exists());
        let (second, created_again) = MasterKey::from_config(&cfg_with("  ", &secrets)).unwrap();
        assert!(!created_again);
        assert_eq!(first.id(), second.id());
        let wrapped = first.wrap(&DataKey::generate(), "acme").unwrap();
        assert!(second.unwrap(&wrapped, "acme").is_ok());
    }
}
