//! Compression of cache payloads: LZ4 (default) or Zstd, kept only when it pays.
//!
//! A compressed payload is `[original length: u32 LE][codec output]`. Storing the length
//! lets decompression allocate exactly once, and lets a corrupt length be refused before
//! it allocates anything large.

use crate::config::{CacheConfig, CompressionAlgorithm};

/// How a payload is stored; the byte is part of the envelope format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// LZ4 block.
    Lz4 = 1,
    /// Zstandard frame.
    Zstd = 2,
}

impl Compression {
    /// Parses the envelope byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Stable name for stats and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Compresses `payload` when the config asks for it, it is above the threshold, and the
/// result saves at least 10%. Returns the codec used and the bytes to store.
pub fn compress(payload: &[u8], cfg: &CacheConfig) -> (Compression, Option<Vec<u8>>) {
    if !cfg.enable_compression || payload.len() <= cfg.compression_threshold_bytes {
        return (Compression::None, None);
    }
    let Ok(len) = u32::try_from(payload.len()) else {
        return (Compression::None, None);
    };
    let mut out = Vec::with_capacity(payload.len() / 2 + 16);
    out.extend_from_slice(&len.to_le_bytes());
    let codec = match cfg.compression_algorithm {
        CompressionAlgorithm::Lz4 => {
            out.extend_from_slice(&lz4_flex::block::compress(payload));
            Compression::Lz4
        }
        CompressionAlgorithm::Zstd => match zstd::bulk::compress(payload, cfg.zstd_level) {
            Ok(z) => {
                out.extend_from_slice(&z);
                Compression::Zstd
            }
            Err(e) => {
                tracing::warn!(error = %e, "zstd compression failed; storing uncompressed");
                return (Compression::None, None);
            }
        },
    };
    // Keep it only when it saves at least 10%.
    if out.len() * 10 <= payload.len() * 9 {
        (codec, Some(out))
    } else {
        (Compression::None, None)
    }
}

/// The original length a compressed payload declares in its prefix; `None` when it is
/// not compressed or too short to say.
pub fn declared_len(codec: Compression, data: &[u8]) -> Option<usize> {
    if codec == Compression::None {
        return None;
    }
    let prefix: [u8; 4] = data.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(prefix) as usize)
}

/// Undoes [`compress`]. `max_len` bounds the declared original length.
pub fn decompress(codec: Compression, data: &[u8], max_len: usize) -> Result<Vec<u8>, String> {
    if codec == Compression::None {
        return Ok(data.to_vec());
    }
    let (len_bytes, body) = data
        .split_at_checked(4)
        .ok_or_else(|| "compressed payload shorter than its length prefix".to_owned())?;
    let mut len = [0u8; 4];
    len.copy_from_slice(len_bytes);
    let len = u32::from_le_bytes(len) as usize;
    if len > max_len {
        return Err(format!("declared length {len} exceeds the limit {max_len}"));
    }
    let out = match codec {
        Compression::None => unreachable!("handled above"),
        Compression::Lz4 => lz4_flex::block::decompress(body, len).map_err(|e| e.to_string())?,
        Compression::Zstd => zstd::bulk::decompress(body, len).map_err(|e| e.to_string())?,
    };
    if out.len() != len {
        return Err(format!("decompressed {} bytes, expected {len}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(n: usize) -> Vec<u8> {
        "<p>riptide extracts readable content</p>\n"
            .repeat(n)
            .into_bytes()
    }

    #[test]
    fn compresses_above_threshold_and_round_trips() {
        for algo in [CompressionAlgorithm::Lz4, CompressionAlgorithm::Zstd] {
            let cfg = CacheConfig {
                compression_algorithm: algo,
                ..Default::default()
            };
            let data = html(200);
            let (codec, out) = compress(&data, &cfg);
            let out = out.expect("compressible data is compressed");
            assert_ne!(codec, Compression::None);
            assert!(out.len() < data.len() / 2);
            assert_eq!(declared_len(codec, &out), Some(data.len()));
            assert_eq!(decompress(codec, &out, 1 << 20).unwrap(), data);
        }
    }

    #[test]
    fn leaves_small_or_incompressible_data_alone() {
        let cfg = CacheConfig::default();
        assert_eq!(compress(&html(1), &cfg).0, Compression::None);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(compress(&noise, &cfg).0, Compression::None);
        let off = CacheConfig {
            enable_compression: false,
            ..Default::default()
        };
        assert_eq!(compress(&html(200), &off).0, Compression::None);
    }

    #[test]
    fn refuses_corrupt_input_without_panicking() {
        let cfg = CacheConfig::default();
        let (codec, out) = compress(&html(200), &cfg);
        let mut out = out.unwrap();
        assert!(decompress(codec, &out[..2], 1 << 20).is_err());
        assert_eq!(declared_len(codec, &out[..2]), None);
        assert_eq!(declared_len(Compression::None, &out), None);
        assert!(
            decompress(codec, &out, 10).is_err(),
            "declared length over the limit"
        );
        let n = out.len();
        out.truncate(n / 2);
        assert!(decompress(codec, &out, 1 << 20).is_err());
        assert!(decompress(Compression::Zstd, &[0, 1, 0, 0, 9, 9, 9], 1 << 20).is_err());
    }
}
