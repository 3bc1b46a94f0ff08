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
//! | 25+m | rest | payload (compressed when compression ≠ 0) |
//!
//! The header is fixed-size binary so a hit costs no parsing beyond slicing; metadata is
//! JSON because it is small, optional and must stay readable across versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::compression::{self, Compression};
use crate::config::CacheConfig;

const MAGIC: u8 = 0xC7;
/// Current envelope format version.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 25;
const FLAG_ENCRYPTED: u8 = 1;

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

/// Builds an envelope around `payload`.
pub fn encode(
    payload: &[u8],
    codec: Codec,
    created_ms: u64,
    expires_ms: Option<u64>,
    metadata: Option<&CacheMetadata>,
    cfg: &CacheConfig,
) -> Bytes {
    let meta = match metadata {
        Some(m) if !m.is_empty() => serde_json::to_vec(m).unwrap_or_default(),
        _ => Vec::new(),
    };
    let (compression, compressed) = compression::compress(payload, cfg);
    let body: &[u8] = compressed.as_deref().unwrap_or(payload);
    let mut out = Vec::with_capacity(HEADER_LEN + meta.len() + body.len());
    out.push(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(codec as u8);
    out.push(compression as u8);
    out.push(0);
    out.extend_from_slice(&created_ms.to_le_bytes());
    out.extend_from_slice(&expires_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// Reads the envelope header without decompressing: (compression, expires).
pub fn peek(bytes: &[u8]) -> Result<(Compression, Option<u64>), String> {
    let h = header(bytes)?;
    Ok((h.compression, h.expires_ms))
}

struct Header {
    codec: Codec,
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
    if bytes[4] & FLAG_ENCRYPTED != 0 {
        return Err("encrypted payloads need the tenant's key, which this reader has not".into());
    }
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
        compression,
        created_ms,
        expires_ms,
        meta_len,
    })
}

/// Decodes an envelope; `max_len` bounds the decompressed payload.
pub fn decode(bytes: &Bytes, max_len: usize) -> Result<Entry, String> {
    let h = header(bytes)?;
    let meta_end = HEADER_LEN + h.meta_len;
    let metadata = if h.meta_len == 0 {
        None
    } else {
        let m: CacheMetadata = serde_json::from_slice(&bytes[HEADER_LEN..meta_end])
            .map_err(|e| format!("metadata: {e}"))?;
        Some(Arc::new(m))
    };
    let payload = match h.compression {
        // Zero-copy: the payload is a slice of the stored bytes.
        Compression::None => bytes.slice(meta_end..),
        c => Bytes::from(compression::decompress(c, &bytes[meta_end..], max_len)?),
    };
    Ok(Entry {
        payload,
        codec: h.codec,
        created_ms: h.created_ms,
        expires_ms: h.expires_ms,
        metadata,
    })
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
