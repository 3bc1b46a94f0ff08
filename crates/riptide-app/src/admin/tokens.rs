//! Admin tokens: created with a role (the secret is shown once), listed, deleted, and
//! authenticated in O(1) with a constant-time comparison.
//!
//! A token looks like `rta_k7x2mq4ab9cd_<64 hex characters>`: `rta_`, a 12-character
//! token id (lower-case base32; it names the token in listings and audit records and is
//! not secret), `_` and 32 random bytes (256 bits) in hex. The secret is never stored or
//! logged: the store holds a blake3 keyed hash of the whole token under a key derived
//! from the API key pepper (the tenant layer's, see
//! [`riptide_persistence::tenant::secrets`]), so a copy of the store alone cannot be
//! used to authenticate or to test guesses offline.
//!
//! Store layout, in the global scope (`<g>` = `<p>:{global}`, one Redis Cluster slot):
//!
//! | key | value |
//! |---|---|
//! | `<g>:admin:token:<id>` | JSON record: name, role, hash, creation |
//! | `<g>:admin:name:<name>` | the id holding the name (names are unique) |
//! | `<g>:admin:tokens` | sorted set of token ids, scored by creation ms |
//!
//! Authentication outcomes are cached in process for `tenant.record_cache_ttl_ms` (at
//! most one second, as for API keys), so a deletion on another instance applies
//! everywhere within that time while the hot path costs no store round trip.
//!
//! An operator may also configure one token (`admin.token`, env `RIPTIDE_ADMIN_TOKEN`):
//! it authenticates with role `admin` as [`CONFIGURED_TOKEN_ID`], is never stored, and
//! cannot be deleted through the API.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::{Rng, RngCore};
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::store::{Durability, SharedStore, StoreError};
use riptide_persistence::tenant::AdminRole;
use serde::{Deserialize, Serialize};

pub use super::error::{AdminTokenError, TokenResult};

/// Start of every stored admin token.
pub const TOKEN_PREFIX: &str = "rta_";

/// Characters of a token id.
pub const TOKEN_ID_LEN: usize = 12;

/// Random bytes of a token's secret part (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Length of a stored token: prefix, id, `_`, hex secret.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_ID_LEN + 1 + 2 * SECRET_BYTES;

/// Shortest accepted configured token (`admin.token`).
pub const MIN_CONFIGURED_TOKEN_LEN: usize = 32;

/// Longest accepted configured token, and longest presented token looked at.
pub const MAX_TOKEN_LEN: usize = 512;

/// Id and name of the configured token.
pub const CONFIGURED_TOKEN_ID: &str = "env";

/// Most stored admin tokens.
pub const MAX_TOKENS: u64 = 1_000;

/// Longest token name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// Token id alphabet: lower-case RFC 4648 base32.
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Context string of the blake3 key derivation: a hash key used for nothing else.
const HASH_KEY_CONTEXT: &str = "riptide admin tokens 2025-01 token hash key";

/// Most presented tokens whose authentication outcome is cached.
const CACHE_CAPACITY: usize = 10_000;

/// Attempts at a fresh token id before giving up (a collision is ~2^-50 likely).
const ID_ATTEMPTS: usize = 4;

/// Who an authenticated admin token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentity {
    /// The token's id ([`CONFIGURED_TOKEN_ID`] for the configured token).
    pub token_id: String,
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
}

/// Where a listed token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// Created through the API or by the bootstrap; stored.
    Store,
    /// `admin.token` (`RIPTIDE_ADMIN_TOKEN`).
    Config,
}

/// What a listing shows of a token: never the secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminTokenInfo {
    /// The id.
    pub token_id: String,
    /// The unique name.
    pub name: String,
    /// The role.
    pub role: AdminRole,
    /// When it was created (none for the configured token).
    pub created_at: Option<DateTime<Utc>>,
    /// Who created it (`admin:<name>`, `system` for the bootstrap token).
    pub created_by: Option<String>,
    /// Stored or configured.
    pub source: TokenSource,
}

/// A newly created token: the only value that ever holds the secret. `Debug` redacts it.
#[derive(Clone, Serialize)]
pub struct CreatedAdminToken {
    /// What listings show of it.
    #[serde(flatten)]
    pub info: AdminTokenInfo,
    /// The token to present as `Authorization: Bearer <token>`; shown once.
    pub token: String,
}

impl fmt::Debug for CreatedAdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedAdminToken")
            .field("info", &self.info)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A stored token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    token_id: String,
    name: String,
    role: AdminRole,
    /// Lower-case hex of the keyed hash of the whole token.
    hash_hex: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl TokenRecord {
    fn info(&self) -> AdminTokenInfo {
        AdminTokenInfo {
            token_id: self.token_id.clone(),
            name: self.name.clone(),
            role: self.role,
            created_at: Some(self.created_at),
            created_by: Some(self.created_by.clone()),
            source: TokenSource::Store,
        }
    }

    fn identity(&self) -> AdminIdentity {
        AdminIdentity {
            token_id: self.token_id.clone(),
            name: self.name.clone(),
            role: self.role,
        }
    }
}

/// A cached authentication outcome.
#[derive(Clone)]
struct Cached {
    at: Instant,
    who: Option<AdminIdentity>,
}

/// The admin tokens of one store.
pub struct AdminTokens {
    store: SharedStore,
    scope: ScopeKeys,
    hash_key: [u8; 32],
    configured: Option<blake3::Hash>,
    cache: quick_cache::sync::Cache<[u8; 32], Cached>,
    cache_ttl: Duration,
}

impl fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminTokens")
            .field("scope", &self.scope.base())
            .field("configured", &self.configured.is_some())
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// Checks `admin.token`: empty (none), or [`MIN_CONFIGURED_TOKEN_LEN`] to
/// [`MAX_TOKEN_LEN`] printable ASCII characters without spaces. The reason never
/// contains the value.
pub fn validate_configured_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Ok(());
    }
    let n = token.chars().count();
    if !(MIN_CONFIGURED_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&n) {
        return Err(format!(
            "has {n} characters; {MIN_CONFIGURED_TOKEN_LEN} to {MAX_TOKEN_LEN} are required"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    Ok(())
}

/// Checks a token name: 1 to [`MAX_NAME_LEN`] of `[A-Za-z0-9_.@-]`, not
/// [`CONFIGURED_TOKEN_ID`].
pub fn validate_name(name: &str) -> TokenResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if !ok {
        return Err(AdminTokenError::Invalid {
            field: "name",
            reason: format!("1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ . @ -"),
        });
    }
    if name == CONFIGURED_TOKEN_ID {
        return Err(AdminTokenError::Invalid {
            field: "name",
            reason: format!("{CONFIGURED_TOKEN_ID:?} is reserved for the configured token"),
        });
    }
    Ok(())
}

/// True when `id` has the shape of a token id.
pub fn is_token_id(id: &str) -> bool {
    id.len() == TOKEN_ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b))
}

/// The token id inside a presented token of the stored shape.
fn id_of(presented: &str) -> Option<&str> {
    if presented.len() != TOKEN_LEN {
        return None;
    }
    let rest = presented.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_at_checked(TOKEN_ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let hex = secret
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_token_id(id) && hex).then_some(id)
}

fn random_id() -> String {
    let mut rng = rand::rng();
    (0..TOKEN_ID_LEN)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect()
}

impl AdminTokens {
    /// Admin tokens over `store`, hashed under a key derived from `pepper`, accepting
    /// `configured` (already validated) with role admin. Outcomes are cached for
    /// `cache_ttl_ms`, clamped to 1..=1000.
    pub fn new(
        store: SharedStore,
        pepper: &[u8],
        configured: Option<&str>,
        cache_ttl_ms: u64,
    ) -> Self {
        let hash_key = blake3::derive_key(HASH_KEY_CONTEXT, pepper);
        let scope = ScopeKeys::new(store.key_prefix(), &Scope::Global);
        Self {
            configured: configured.map(|t| blake3::keyed_hash(&hash_key, t.as_bytes())),
            store,
            scope,
            hash_key,
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            cache_ttl: Duration::from_millis(cache_ttl_ms.clamp(1, 1_000)),
        }
    }

    /// True when `admin.token` is set.
    pub fn has_configured_token(&self) -> bool {
        self.configured.is_some()
    }

    /// The store under the tokens.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// A record of the global scope: `<p>:{global}:admin:<suffix>`.
    pub(crate) fn key(&self, suffix: &str) -> String {
        self.scope.record(&format!("admin:{suffix}"))
    }

    fn record_key(&self, id: &str) -> String {
        self.key(&format!("token:{id}"))
    }

    fn name_key(&self, name: &str) -> String {
        self.key(&format!("name:{name}"))
    }

    fn index_key(&self) -> String {
        self.key("tokens")
    }

    fn digest(&self, token: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.hash_key, token.as_bytes())
    }

    /// Who `presented` belongs to, or `None` when it is no admin token. The configured
    /// token is recognised without the store; a token of the stored shape costs one
    /// store read, then is cached for the cache TTL. Hashes are compared in constant
    /// time. Only store trouble is an error.
    pub async fn authenticate(&self, presented: &str) -> TokenResult<Option<AdminIdentity>> {
        if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let digest = self.digest(presented);
        // `blake3::Hash` equality is constant-time.
        if self.configured.is_some_and(|c| c == digest) {
            return Ok(Some(AdminIdentity {
                token_id: CONFIGURED_TOKEN_ID.to_owned(),
                name: CONFIGURED_TOKEN_ID.to_owned(),
                role: AdminRole::Admin,
            }));
        }
        let Some(id) = id_of(presented) else {
            return Ok(None);
        };
        let cache_key = *digest.as_bytes();
        if let Some(cached) = self.cache.get(&cache_key)
            && cached.at.elapsed() < self.cache_ttl
        {
            return Ok(cached.who);
        }
        let at = Instant::now();
        let who = match self.load(id).await? {
            Some(record) => match blake3::Hash::from_hex(&record.hash_hex) {
                Ok(stored) if stored == digest => Some(record.identity()),
                Ok(_) => None,
                Err(_) => {
                    return Err(AdminTokenError::Corrupt {
                        key: self.record_key(id),
                        reason: "hash_hex is not 32 bytes of hex".to_owned(),
                    });
                }
            },
            None => None,
        };
        self.cache.insert(
            cache_key,
            Cached {
                at,
                who: who.clone(),
            },
        );
        Ok(who)
    }

    async fn load(&self, id: &str) -> TokenResult<Option<TokenRecord>> {
        let key = self.record_key(id);
        match self.store.get(&key).await? {
            Some(bytes) => parse(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Creates a token named `name` (unique, see [`validate_name`]) with `role`, on
    /// behalf of `created_by`. The returned token is the only copy of the secret.
    pub async fn create(
        &self,
        name: &str,
        role: AdminRole,
        created_by: &str,
    ) -> TokenResult<CreatedAdminToken> {
        validate_name(name)?;
        let index = self.index_key();
        if self.store.zset_len(&index).await? >= MAX_TOKENS {
            return Err(AdminTokenError::TooMany { max: MAX_TOKENS });
        }
        for _ in 0..ID_ATTEMPTS {
            let id = random_id();
            let mut secret = [0u8; SECRET_BYTES];
            rand::rng().fill_bytes(&mut secret);
            let token = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(secret));
            let now = Utc::now();
            let record = TokenRecord {
                token_id: id.clone(),
                name: name.to_owned(),
                role,
                hash_hex: self.digest(&token).to_hex().to_string(),
                created_at: now,
                created_by: created_by.to_owned(),
            };
            // Index first: a crash after it leaves a member without a record, which
            // listings skip. A record is only ever reachable by its own id.
            self.store
                .zset_add(&index, &[(id.clone(), now.timestamp_millis())])
                .await?;
            let record_key = self.record_key(&id);
            if !self
                .store
                .set_if_absent(&record_key, &to_json(&record)?, None, Durability::Durable)
                .await?
            {
                continue;
            }
            if let Err(e) = self.reserve_name(name, &id).await {
                self.undo_create(&id).await;
                return Err(e);
            }
            tracing::info!(admin.token_id = %id, admin.token_name = %name, admin.role = role.as_str(), "admin token created");
            return Ok(CreatedAdminToken {
                info: record.info(),
                token,
            });
        }
        Err(AdminTokenError::Store(StoreError::Backend(
            "no free admin token id after several attempts".to_owned(),
        )))
    }

    /// Points `name` at `id`, unless a live token holds it already. A name left behind
    /// by a token that no longer exists is taken over.
    async fn reserve_name(&self, name: &str, id: &str) -> TokenResult<()> {
        let key = self.name_key(name);
        for _ in 0..4 {
            if self
                .store
                .set_if_absent(&key, id.as_bytes(), None, Durability::Durable)
                .await?
            {
                return Ok(());
            }
            let Some(holder) = self.store.get(&key).await? else {
                continue;
            };
            let holder_id = String::from_utf8_lossy(&holder).into_owned();
            if is_token_id(&holder_id) && self.load(&holder_id).await?.is_some() {
                return Err(AdminTokenError::NameTaken(name.to_owned()));
            }
            if self
                .store
                .compare_and_swap(
                    &key,
                    Some(&holder),
                    Some(id.as_bytes()),
                    Durability::Durable,
                )
                .await?
            {
                return Ok(());
            }
        }
        Err(AdminTokenError::NameTaken(name.to_owned()))
    }

    async fn undo_create(&self, id: &str) {
        let undone = async {
            self.store.delete(&[self.record_key(id)]).await?;
            self.store
                .zset_remove(&self.index_key(), &[id.to_owned()])
                .await
        };
        if let Err(e) = undone.await {
            tracing::error!(admin.token_id = %id, error = %e, "undoing a failed admin token creation failed");
        }
    }

    /// Every token: the configured one (if any) first, then the stored ones, oldest
    /// first. Never a secret nor a hash.
    pub async fn list(&self) -> TokenResult<Vec<AdminTokenInfo>> {
        let mut out = Vec::new();
        if self.configured.is_some() {
            out.push(AdminTokenInfo {
                token_id: CONFIGURED_TOKEN_ID.to_owned(),
                name: CONFIGURED_TOKEN_ID.to_owned(),
                role: AdminRole::Admin,
                created_at: None,
                created_by: None,
                source: TokenSource::Config,
            });
        }
        let ids = self
            .store
            .zset_range(&self.index_key(), 0, MAX_TOKENS)
            .await?;
        let keys: Vec<String> = ids.iter().map(|(id, _)| self.record_key(id)).collect();
        if keys.is_empty() {
            return Ok(out);
        }
        let values = self.store.get_many(&keys).await?;
        for (key, value) in keys.iter().zip(values) {
            if let Some(bytes) = value {
                out.push(parse::<TokenRecord>(key, &bytes)?.info());
            }
        }
        Ok(out)
    }

    /// Stored tokens (index members; the configured token is not counted).
    pub async fn count(&self) -> TokenResult<u64> {
        Ok(self.store.zset_len(&self.index_key()).await?)
    }

    /// Deletes token `id`: refused at once on this instance and within the cache TTL on
    /// every other. Returns what it was.
    pub async fn delete(&self, id: &str) -> TokenResult<AdminTokenInfo> {
        if id == CONFIGURED_TOKEN_ID && self.configured.is_some() {
            return Err(AdminTokenError::Configured);
        }
        if !is_token_id(id) {
            return Err(AdminTokenError::Invalid {
                field: "token_id",
                reason: format!("expected {TOKEN_ID_LEN} characters of a-z 2-7"),
            });
        }
        let record = self
            .load(id)
            .await?
            .ok_or_else(|| AdminTokenError::NotFound(id.to_owned()))?;
        self.store.delete(&[self.record_key(id)]).await?;
        if let Ok(hash) = blake3::Hash::from_hex(&record.hash_hex) {
            self.cache.remove(hash.as_bytes());
        }
        // The name is freed only if it still points here.
        self.store
            .compare_and_swap(
                &self.name_key(&record.name),
                Some(id.as_bytes()),
                None,
                Durability::Durable,
            )
            .await?;
        self.store
            .zset_remove(&self.index_key(), &[id.to_owned()])
            .await?;
        tracing::info!(admin.token_id = %id, admin.token_name = %record.name, "admin token deleted");
        Ok(record.info())
    }
}

fn to_json<T: Serialize>(value: &T) -> TokenResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| AdminTokenError::Corrupt {
        key: "admin token".to_owned(),
        reason: e.to_string(),
    })
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> TokenResult<T> {
    serde_json::from_slice(bytes).map_err(|e| AdminTokenError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        let id = random_id();
        assert!(is_token_id(&id), "{id}");
        let token = format!("{TOKEN_PREFIX}{id}_{}", hex::encode([7u8; SECRET_BYTES]));
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(id_of(&token), Some(id.as_str()));
        for bad in [
            String::new(),
            token.replacen("rta_", "rtx_", 1),
            format!("{token}0"),
            token.to_uppercase(),
            token.replace('_', "-"),
            "é".repeat(TOKEN_LEN / 2 + 1),
        ] {
            assert_eq!(id_of(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn configured_tokens_and_names_are_checked_without_echoing() {
        assert!(validate_configured_token("").is_ok());
        assert!(validate_configured_token(&"x".repeat(32)).is_ok());
        let short = validate_configured_token("s3cr3t-but-short").unwrap_err();
        assert!(!short.contains("s3cr3t"), "{short}");
        assert!(validate_configured_token(&format!("{} x", "y".repeat(40))).is_err());
        assert!(validate_configured_token(&"z".repeat(MAX_TOKEN_LEN + 1)).is_err());
        assert!(validate_name("ops-bot@ci.2").is_ok());
        for bad in ["", "env", "has space", "a/b", &"n".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn created_token_debug_redacts_the_secret() {
        let created = CreatedAdminToken {
            info: AdminTokenInfo {
                token_id: "abc".into(),
                name: "n".into(),
                role: AdminRole::Viewer,
                created_at: None,
                created_by: None,
                source: TokenSource::Store,
            },
            token: "rta_supersecret".into(),
        };
        assert!(!format!("{created:?}").contains("supersecret"));
    }
}
