//! The versioned envelope every cache value is stored in.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | magic `0xC7` |
//! | 1 | 1 | format version (`1`) |
//! | 2 | 1 | codec: 0 raw bytes, 1 JSON |
//! | 3 | 1 | compression: 0 none, 1 LZ4, 2 Zstd |
//! | 4 | 1 | flags: bit 0 = payload encrypted |
//! | 5 | 8 | created, ms since the epoch |
//! | 13 | 8 | expires, ms since the epoch (0 = never) |
//! | 21 | 4 | metadata length `m` |
//! | 25 | m | metadata (JSON of [`CacheMetadata`]) |
//! | 25+m | rest | payload (compressed when compression ≠ 0; sealed when flag bit 0) |
//!
//! The header is fixed-size binary so a hit costs no parsing beyond slicing; metadata is
//! JSON because it is small, optional and must stay readable across versions.
//!
//! A sealed payload is `nonce (12) || AES-256-GCM(compressed payload) || tag (16)` under
//! the scope's data key (see [`super::sealing`]). Its associated data is
//! `"riptide.cache.v1" || len(store key) as u32 || store key || bytes 0..25+m`: the
//! ciphertext is bound to the entry's store key and to its header and metadata, which
//! stay in the clear (the header so expiry can be read without the key, e.g. by the
//! warmer; the metadata because its tags drive invalidation and are kept by the store's
//! bookkeeping anyway). [`decode`] reads unsealed entries without any key;
//! [`decode_with`] also opens sealed ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::compression::{self, Compression};
use super::sealing::{SEAL_OVERHEAD, SealError, SealingKey};
use crate::config::CacheConfig;

const MAGIC: u8 = 0xC7;
/// Current envelope format version.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 25;
const FLAG_ENCRYPTED: u8 = 1;
/// Domain separation of the associated data of sealed payloads.
const AAD_CONTEXT: &[u8] = b"riptide.cache.v1";

/// How the payload was serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Raw bytes as given (e.g. a ready HTTP body).
    Raw = 0,
    /// `serde_json`.
    Json = 1,
}

/// Caller-supplied facts stored with an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheMetadata {
    /// Tags for [`super::PersistentCacheManager::invalidate_tag`].
    pub tags: Vec<String>,
    /// Media type of the payload, when it is a body.
    pub content_type: Option<String>,
    /// Where the value came from (e.g. the URL it was extracted from).
    pub source: Option<String>,
    /// Anything else.
    pub attributes: BTreeMap<String, String>,
}

impl CacheMetadata {
    /// Metadata with only tags.
    pub fn with_tags<I: IntoIterator<Item = S>, S: Into<String>>(tags: I) -> Self {
        Self {
            tags: tags.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.content_type.is_none()
            && self.source.is_none()
            && self.attributes.is_empty()
    }
}

/// A decoded entry, as L1 keeps it: payload already decompressed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The payload bytes, decompressed.
    pub payload: Bytes,
    /// How the payload is serialized.
    pub codec: Codec,
    /// When it was written (ms since the epoch).
    pub created_ms: u64,
    /// When it expires (ms since the epoch), if ever.
    pub expires_ms: Option<u64>,
    /// Metadata, if any was stored.
    pub metadata: Option<Arc<CacheMetadata>>,
}

impl Entry {
    /// True when the entry has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }

    /// The entry's tags.
    pub fn tags(&self) -> &[String] {
        self.metadata
            .as_ref()
            .map(|m| m.tags.as_slice())
            .unwrap_or(&[])
    }
}

/// The key and binding a payload is sealed (or opened) with.
#[derive(Clone, Copy)]
pub struct Seal<'a> {
    /// The scope's data key.
    pub key: &'a dyn SealingKey,
    /// The entry's full store key (bound into the associated data).
    pub store_key: &'a str,
}

/// Why stored bytes could not be decoded by [`decode_with`].
#[derive(Debug)]
pub enum Unreadable {
    /// Not an envelope of this format, or damaged (the reason says how).
    Corrupt(String),
    /// The payload is sealed and no key was given (e.g. the tenant's key was deleted).
    NoKey,
    /// The payload is sealed and did not open: another key, another store key, or
    /// altered bytes.
    NotOpened,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Corrupt(reason) => f.write_str(reason),
            Unreadable::NoKey => f.write_str("the payload is sealed and its scope has no key"),
            Unreadable::NotOpened => {
                f.write_str("the sealed payload did not open under the scope's key")
            }
        }
    }
}

/// Builds an unsealed envelope around `payload`.
pub fn encode(
    payload: &[u8],
    codec: Codec,
    created_ms: u64,
    expires_ms: Option<u64>,
    metadata: Option<&CacheMetadata>,
    cfg: &CacheConfig,
) -> Bytes {
    let meta = meta_bytes(metadata);
    let (compression, compressed) = compression::compress(payload, cfg);
    let body: &[u8] = compressed.as_deref().unwrap_or(payload);
    let mut out = head(
        codec,
        compression,
        0,
        created_ms,
        expires_ms,
        &meta,
        body.len(),
    );
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// Builds an envelope around `payload`: serialized → compressed → (with `seal`) sealed
/// under the scope's key, bound to the store key, the header and the metadata.
pub fn encode_with(
    payload: &[u8],
    codec: Codec,
    created_ms: u64,
    expires_ms: Option<u64>,
    metadata: Option<&CacheMetadata>,
    cfg: &CacheConfig,
    seal: Option<Seal<'_>>,
) -> Result<Bytes, SealError> {
    let Some(seal) = seal else {
        return Ok(encode(
            payload, codec, created_ms, expires_ms, metadata, cfg,
        ));
    };
    let meta = meta_bytes(metadata);
    let (compression, compressed) = compression::compress(payload, cfg);
    let body: &[u8] = compressed.as_deref().unwrap_or(payload);
    let mut out = head(
        codec,
        compression,
        FLAG_ENCRYPTED,
        created_ms,
        expires_ms,
        &meta,
        body.len() + SEAL_OVERHEAD,
    );
    let aad = associated_data(seal.store_key, &out);
    seal.key.seal_into(body, &aad, &mut out)?;
    Ok(Bytes::from(out))
}

fn meta_bytes(metadata: Option<&CacheMetadata>) -> Vec<u8> {
    match metadata {
        Some(m) if !m.is_empty() => serde_json::to_vec(m).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Header and metadata, with room for a body of `body_len` bytes.
fn head(
    codec: Codec,
    compression: Compression,
    flags: u8,
    created_ms: u64,
    expires_ms: Option<u64>,
    meta: &[u8],
    body_len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + meta.len() + body_len);
    out.push(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(codec as u8);
    out.push(compression as u8);
    out.push(flags);
    out.extend_from_slice(&created_ms.to_le_bytes());
    out.extend_from_slice(&expires_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
    out
}

/// Associated data of a sealed payload: context, store key, header and metadata.
fn associated_data(store_key: &str, head_and_meta: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + 4 + store_key.len() + head_and_meta.len());
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(&(store_key.len() as u32).to_le_bytes());
    aad.extend_from_slice(store_key.as_bytes());
    aad.extend_from_slice(head_and_meta);
    aad
}

/// True when `bytes` look like an envelope whose payload is sealed (so reading it
/// needs the scope's key). Damaged bytes answer `false` and fail in decoding.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[0] == MAGIC && bytes[4] & FLAG_ENCRYPTED != 0
}

/// Reads the envelope header without decompressing: (compression, expires).
pub fn peek(bytes: &[u8]) -> Result<(Compression, Option<u64>), String> {
    let h = header(bytes)?;
    Ok((h.compression, h.expires_ms))
}

struct Header {
    codec: Codec,
    sealed: bool,
    compression: Compression,
    created_ms: u64,
    expires_ms: Option<u64>,
    meta_len: usize,
}

fn header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes is shorter than the envelope header",
            bytes.len()
        ));
    }
    if bytes[0] != MAGIC {
        return Err("not a cache envelope (bad magic byte)".into());
    }
    if bytes[1] != FORMAT_VERSION {
        return Err(format!("unsupported envelope version {}", bytes[1]));
    }
    let codec = match bytes[2] {
        0 => Codec::Raw,
        1 => Codec::Json,
        other => return Err(format!("unknown codec {other}")),
    };
    let compression = Compression::from_byte(bytes[3])
        .ok_or_else(|| format!("unknown compression {}", bytes[3]))?;
    let sealed = bytes[4] & FLAG_ENCRYPTED != 0;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let created_ms = u64_at(5);
    let expires_ms = Some(u64_at(13)).filter(|&e| e != 0);
    let mut m = [0u8; 4];
    m.copy_from_slice(&bytes[21..25]);
    let meta_len = u32::from_le_bytes(m) as usize;
    if meta_len > bytes.len() - HEADER_LEN {
        return Err("metadata length runs past the end of the envelope".into());
    }
    Ok(Header {
        codec,
        sealed,
        compression,
        created_ms,
        expires_ms,
        meta_len,
    })
}

/// Decodes an unsealed envelope; `max_len` bounds the decompressed payload. A sealed
/// one is an error (it needs the scope's key: see [`decode_with`]).
#[allow(
    dead_code,
    reason = "the keyless reader for tools and tests; the manager uses decode_with"
)]
pub fn decode(bytes: &Bytes, max_len: usize) -> Result<Entry, String> {
    decode_with(bytes, max_len, None).map_err(|e| match e {
        Unreadable::Corrupt(reason) => reason,
        Unreadable::NoKey | Unreadable::NotOpened => {
            "encrypted payloads need the tenant's key, which this reader has not".into()
        }
    })
}

/// Decodes an envelope, opening a sealed payload with `seal` (whose store key must be
/// the one the entry was written under); `max_len` bounds the decompressed payload.
/// Unsealed entries decode with or without `seal`.
pub fn decode_with(
    bytes: &Bytes,
    max_len: usize,
    seal: Option<Seal<'_>>,
) -> Result<Entry, Unreadable> {
    open_with(bytes, seal)?.finish(max_len)
}

/// An envelope read up to its payload: header and metadata parsed, a sealed payload
/// opened, the payload not yet decompressed. Splitting [`decode_with`] in two lets a
/// caller see how much decompression is left ([`Opened::decompressed_len`]) before
/// deciding where to run it.
#[derive(Debug)]
pub struct Opened {
    codec: Codec,
    compression: Compression,
    created_ms: u64,
    expires_ms: Option<u64>,
    metadata: Option<Arc<CacheMetadata>>,
    /// The payload as stored (opened when it was sealed): compressed when
    /// `compression` is not `None`.
    body: Bytes,
}

/// The first step of [`decode_with`]: parses the header and metadata and opens a sealed
/// payload (work proportional to the stored bytes).
pub fn open_with(bytes: &Bytes, seal: Option<Seal<'_>>) -> Result<Opened, Unreadable> {
    let h = header(bytes).map_err(Unreadable::Corrupt)?;
    let meta_end = HEADER_LEN + h.meta_len;
    let body = if h.sealed {
        let seal = seal.ok_or(Unreadable::NoKey)?;
        let aad = associated_data(seal.store_key, &bytes[..meta_end]);
        let plain = seal
            .key
            .open(&bytes[meta_end..], &aad)
            .map_err(|_| Unreadable::NotOpened)?;
        Bytes::from(plain)
    } else {
        // Zero-copy: the payload is a slice of the stored bytes.
        bytes.slice(meta_end..)
    };
    let metadata = if h.meta_len == 0 {
        None
    } else {
        let m: CacheMetadata = serde_json::from_slice(&bytes[HEADER_LEN..meta_end])
            .map_err(|e| Unreadable::Corrupt(format!("metadata: {e}")))?;
        Some(Arc::new(m))
    };
    Ok(Opened {
        codec: h.codec,
        compression: h.compression,
        created_ms: h.created_ms,
        expires_ms: h.expires_ms,
        metadata,
        body,
    })
}

impl Opened {
    /// Bytes decompressing the payload would produce, as its length prefix declares
    /// (0 when it is not compressed; decompression refuses more than `max_len` without
    /// doing the work).
    pub fn decompressed_len(&self) -> usize {
        compression::declared_len(self.compression, &self.body).unwrap_or(0)
    }

    /// The second step of [`decode_with`]: decompresses the payload (work proportional
    /// to [`Self::decompressed_len`]); `max_len` bounds it.
    pub fn finish(self, max_len: usize) -> Result<Entry, Unreadable> {
        let payload = match self.compression {
            Compression::None => self.body,
            c => Bytes::from(
                compression::decompress(c, &self.body, max_len).map_err(Unreadable::Corrupt)?,
            ),
        };
        Ok(Entry {
            payload,
            codec: self.codec,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            metadata: self.metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_header_metadata_and_payload() {
        let cfg = CacheConfig::default();
        let meta = CacheMetadata::with_tags(["a", "b"]);
        let payload = b"{\"title\":\"x\"}".repeat(200);
        let enc = encode(&payload, Codec::Json, 10, Some(20), Some(&meta), &cfg);
        let e = decode(&enc, 1 << 20).unwrap();
        assert_eq!(e.payload.as_ref(), payload.as_slice());
        assert_eq!(
            (e.codec, e.created_ms, e.expires_ms),
            (Codec::Json, 10, Some(20))
        );
        assert_eq!(e.tags(), ["a", "b"]);
        assert_eq!(peek(&enc).unwrap(), (Compression::Lz4, Some(20)));
    }

    #[test]
    fn small_values_are_stored_plain() {
        let enc = encode(b"hi", Codec::Raw, 1, None, None, &CacheConfig::default());
        assert_eq!(enc.len(), HEADER_LEN + 2);
        let e = decode(&enc, 100).unwrap();
        assert_eq!((e.payload.as_ref(), e.expires_ms), (b"hi".as_slice(), None));
    }

    #[test]
    fn sealed_envelopes_need_the_key_and_their_store_key() {
        use crate::sealing::test_key::TestKey;
        let cfg = CacheConfig::default();
        let key = TestKey::generate();
        let meta = CacheMetadata::with_tags(["url:example.com"]);
        let payload = b"<p>confidential paragraph</p>".repeat(100);
        let seal = |store_key| Seal {
            key: &key,
            store_key,
        };
        let enc = encode_with(
            &payload,
            Codec::Raw,
            10,
            Some(20),
            Some(&meta),
            &cfg,
            Some(seal("k1")),
        )
        .unwrap();
        assert!(is_sealed(&enc));
        assert!(!enc.windows(16).any(|w| payload.windows(16).any(|p| p == w)));
        // The header stays readable without the key (the warmer reads the expiry).
        assert_eq!(peek(&enc).unwrap(), (Compression::Lz4, Some(20)));

        let e = decode_with(&enc, 1 << 20, Some(seal("k1"))).unwrap();
        assert_eq!(e.payload.as_ref(), payload.as_slice());
        assert_eq!(
            (e.codec, e.created_ms, e.expires_ms),
            (Codec::Raw, 10, Some(20))
        );
        assert_eq!(e.tags(), ["url:example.com"]);

        assert!(
            decode(&enc, 1 << 20).is_err(),
            "no key: an error, never ciphertext"
        );
        assert!(matches!(
            decode_with(&enc, 1 << 20, None),
            Err(Unreadable::NoKey)
        ));
        assert!(matches!(
            decode_with(&enc, 1 << 20, Some(seal("k2"))),
            Err(Unreadable::NotOpened)
        ));
        let other = TestKey::generate();
        let wrong = Seal {
            key: &other,
            store_key: "k1",
        };
        assert!(matches!(
            decode_with(&enc, 1 << 20, Some(wrong)),
            Err(Unreadable::NotOpened)
        ));
        // Header and metadata are bound too: editing the expiry or a tag breaks it.
        for at in [13, HEADER_LEN + 5] {
            let mut v = enc.to_vec();
            v[at] ^= 0x01;
            let r = decode_with(&Bytes::from(v), 1 << 20, Some(seal("k1")));
            assert!(r.is_err(), "byte {at} edited");
        }
        // Small payloads are sealed uncompressed; unsealed entries decode with a key too.
        let tiny = encode_with(b"hi", Codec::Raw, 1, None, None, &cfg, Some(seal("k1"))).unwrap();
        assert_eq!(tiny.len(), HEADER_LEN + 2 + SEAL_OVERHEAD);
        let e = decode_with(&tiny, 100, Some(seal("k1"))).unwrap();
        assert_eq!(e.payload.as_ref(), b"hi");
        let plain = encode(b"hi", Codec::Raw, 1, None, None, &cfg);
        assert!(!is_sealed(&plain));
        assert_eq!(
            decode_with(&plain, 100, Some(seal("k1")))
                .unwrap()
                .payload
                .as_ref(),
            b"hi"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = encode(b"hello", Codec::Raw, 1, None, None, &CacheConfig::default());
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![MAGIC],
            b"plain text value, not an envelope".to_vec(),
        ];
        let mut v = good.to_vec();
        v[1] = 9;
        cases.push(v);
        let mut v = good.to_vec();
        v[3] = 7;
        cases.push(v);
        let mut v = good.to_vec();
        v[21..25].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(v);
        let mut v = good.to_vec();
        v[4] = FLAG_ENCRYPTED;
        cases.push(v);
        for c in cases {
            assert!(decode(&Bytes::from(c.clone()), 1 << 20).is_err(), "{c:?}");
        }
    }
}
