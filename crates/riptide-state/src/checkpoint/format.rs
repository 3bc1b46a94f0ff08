//! The checkpoint file format: a fixed header, a zstd-compressed body of JSON lines, a
//! fixed footer and a blake3 checksum; how it is written (atomically, from a bounded
//! stream of parts) and how it is verified and read back (streaming, line by line).
//!
//! ```text
//! offset        size  field
//! 0             4     magic "RTCK"
//! 4             2     format version, u16 little-endian (2; 1 is still read)
//! 6             2     flags, u16 LE (bit 0: the body is zstd-compressed; others must be 0)
//! 8             8     created at, Unix ms, u64 LE
//! 16            n     body: a zstd frame of JSON lines (see [`Line`])
//! 16+n          4     footer magic "RTCE"
//! 20+n          8     n, the body length, u64 LE
//! 28+n          8     tenants, u64 LE
//! 36+n          8     sessions, u64 LE
//! 44+n          8     body lines, u64 LE
//! 52+n          32    blake3 of every byte before it
//! ```
//!
//! The footer repeats what the body's last line (`end`) says, so a listing learns a
//! checkpoint's figures without decompressing it, and a file cut short anywhere lacks
//! its footer magic at the expected place and is reported as truncated.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// First bytes of every checkpoint file.
pub const MAGIC: &[u8; 4] = b"RTCK";
/// The format version this code writes. Version 2 added sealed parts
/// ([`Line::Sealed`]); version 1 files (without them) are still read.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this code reads.
pub const OLDEST_READ_VERSION: u16 = 1;
/// Flag bit: the body is one zstd frame.
pub const FLAG_ZSTD: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: u64 = 16;
/// Marks the start of the footer.
pub const FOOTER_MAGIC: &[u8; 4] = b"RTCE";
/// Bytes of the footer.
pub const FOOTER_LEN: u64 = 4 + 8 * 4;
/// Bytes of the trailing blake3 checksum.
pub const CHECKSUM_LEN: u64 = 32;
/// Longest body line accepted when reading (a forged or damaged file cannot make the
/// reader buffer more than this for one line).
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// I/O buffer size.
pub(super) const IO_BUFFER: usize = 256 * 1024;

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Flag bits.
    pub flags: u16,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

impl Header {
    /// The header of a new checkpoint.
    pub fn new(created_at_ms: u64) -> Self {
        Self {
            version: FORMAT_VERSION,
            flags: FLAG_ZSTD,
            created_at_ms,
        }
    }

    pub(super) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[..4].copy_from_slice(MAGIC);
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.created_at_ms.to_le_bytes());
        out
    }

    /// Parses a header; `None` when the magic is wrong.
    fn decode(raw: &[u8; HEADER_LEN as usize]) -> Option<Self> {
        if &raw[..4] != MAGIC {
            return None;
        }
        Some(Self {
            version: u16::from_le_bytes([raw[4], raw[5]]),
            flags: u16::from_le_bytes([raw[6], raw[7]]),
            created_at_ms: u64::from_le_bytes(raw[8..16].try_into().ok()?),
        })
    }
}

/// The fixed footer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footer {
    /// Bytes of the compressed body.
    pub body_len: u64,
    /// Tenants in the checkpoint.
    pub tenants: u64,
    /// Sessions in the checkpoint.
    pub sessions: u64,
    /// Lines of the body (meta and end included).
    pub lines: u64,
}

impl Footer {
    pub(super) fn encode(&self) -> [u8; FOOTER_LEN as usize] {
        let mut out = [0u8; FOOTER_LEN as usize];
        out[..4].copy_from_slice(FOOTER_MAGIC);
        for (i, v) in [self.body_len, self.tenants, self.sessions, self.lines]
            .into_iter()
            .enumerate()
        {
            out[4 + i * 8..12 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn decode(raw: &[u8; FOOTER_LEN as usize]) -> Option<Self> {
        if &raw[..4] != FOOTER_MAGIC {
            return None;
        }
        let field = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                raw[4 + i * 8..12 + i * 8].try_into().ok()?,
            ))
        };
        Some(Self {
            body_len: field(0)?,
            tenants: field(1)?,
            sessions: field(2)?,
            lines: field(3)?,
        })
    }
}

/// Bytes stored as base64 text in a body line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B64<'a>(pub Cow<'a, [u8]>);

impl Serialize for B64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(|v| B64(Cow::Owned(v)))
            .map_err(serde::de::Error::custom)
    }
}

/// The first line of the body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta<'a> {
    /// The checkpoint id.
    pub id: Cow<'a, str>,
    /// Format version (as in the header).
    pub format: u16,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
    /// Key prefix of the store it was taken from (informational: a restore rebuilds
    /// every key under the target store's prefix).
    pub key_prefix: Cow<'a, str>,
    /// Backend it was taken from (informational).
    pub store_kind: Cow<'a, str>,
    /// The running configuration document, if given.
    pub config: Option<Cow<'a, serde_json::Value>>,
    /// The cache warm list: `(tenant, key)` (in a sealed checkpoint, only the entries
    /// without a tenant: the others are in their tenant's [`Line::Warm`]).
    pub warm_list: Cow<'a, [(Option<String>, String)]>,
    /// The audit chain's length and head hash when the checkpoint was taken: an anchor
    /// outside the store to compare a later chain with (absent in older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<riptide_tenant::audit::ChainTip>,
}

/// One line of the body. Every line but `meta` and `end` names its tenant, so lines of
/// different tenants may interleave (tenants are collected concurrently).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Line<'a> {
    /// Always first.
    Meta(Meta<'a>),
    /// The tenant's registry entry (`<p>:tenants`), written after the tenant's data.
    Tenant {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Its registry score (creation ms).
        score: i64,
    },
    /// A plain record of the tenant's scope: `<p>:tenant:{<tenant>}:<name>`.
    Record {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Record suffix (`meta`, `dek`, `key:<id>`).
        name: Cow<'a, str>,
        /// The stored bytes.
        value: B64<'a>,
    },
    /// A global API key lookup record `<p>:apikey:<hash>` of the tenant's key.
    Lookup {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Hex HMAC of the key (never the secret).
        hash: Cow<'a, str>,
        /// The stored bytes.
        value: B64<'a>,
    },
    /// A counters record of the tenant's scope.
    Counters {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Record suffix (`q`, `storage`, `usage:YYYY-MM`).
        name: Cow<'a, str>,
        /// Every field.
        fields: Cow<'a, [(String, i64)]>,
    },
    /// Members of a sorted set of the tenant's scope; one set may span several lines.
    Zset {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Record suffix (`keys`, `usage_months`).
        name: Cow<'a, str>,
        /// `(member, score)`.
        members: Cow<'a, [(String, i64)]>,
    },
    /// A session: its record bytes as stored and its index score.
    Session {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Session id.
        id: Cow<'a, str>,
        /// Expiry, Unix ms (the index score).
        expires_at_ms: i64,
        /// The stored bytes (JSON, possibly sealed with the tenant's data key).
        value: B64<'a>,
    },
    /// The tenant's part of the cache warm list (its most read URLs), kept with its
    /// other lines so that it is sealed with them.
    Warm {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// URLs, most read first.
        urls: Cow<'a, [String]>,
    },
    /// Some of one tenant's lines, sealed with its checkpoint key (see `seal.rs`).
    /// The counts are in clear, so a checkpoint whose tenant was shredded still checks
    /// out; they are bound into the seal.
    Sealed {
        /// Tenant id.
        tenant: Cow<'a, str>,
        /// Id of the tenant's checkpoint key.
        key: Cow<'a, str>,
        /// The part's number within the tenant, from 0.
        seq: u64,
        /// Whether it holds the tenant's registry entry.
        registry: bool,
        /// Sessions it holds.
        sessions: u64,
        /// The sealed lines.
        data: B64<'a>,
    },
    /// Always last; repeats the footer's figures.
    End {
        /// Tenants.
        tenants: u64,
        /// Sessions.
        sessions: u64,
        /// Lines before this one, plus one.
        lines: u64,
    },
}

/// Appends `line` and a newline to `out`.
pub fn push_line(out: &mut Vec<u8>, line: &Line<'_>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, line)?;
    out.push(b'\n');
    Ok(())
}

/// Why a file is not a usable checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Does not start with the magic.
    NotACheckpoint,
    /// Shorter than its structure requires, or its footer is missing.
    Truncated(String),
    /// A format version (or flag) this code does not read.
    UnsupportedVersion {
        /// Version in the header.
        found: u16,
        /// Flags in the header.
        flags: u16,
    },
    /// The checksum does not match the content.
    ChecksumMismatch,
    /// Could not be read.
    Io(String),
}

/// A checkpoint whose header, footer and checksum were verified, with the open file.
#[derive(Debug)]
pub struct Verified {
    /// The header.
    pub header: Header,
    /// The footer.
    pub footer: Footer,
    /// File size in bytes.
    pub size: u64,
    file: File,
}

/// Reads the header of `path` (when it has one) without verifying anything else.
pub fn peek_header(path: &Path) -> Option<Header> {
    let mut raw = [0u8; HEADER_LEN as usize];
    File::open(path).ok()?.read_exact(&mut raw).ok()?;
    Header::decode(&raw)
}

/// Verifies `path`: magic, version and flags, footer, then the checksum over the whole
/// file (streamed; no decompression). Keeps the file open for [`Verified::lines`], so
/// what was verified is what is read even if the path is replaced meanwhile.
pub fn verify(path: &Path) -> Result<Verified, Problem> {
    let io = |e: io::Error| Problem::Io(e.to_string());
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut raw = [0u8; HEADER_LEN as usize];
    if size < HEADER_LEN {
        let n = size as usize;
        return match file.read_exact(&mut raw[..n]) {
            Ok(()) if raw[..n.min(4)] == MAGIC[..n.min(4)] => Err(Problem::Truncated(format!(
                "{size} bytes, shorter than the header"
            ))),
            Ok(()) => Err(Problem::NotACheckpoint),
            Err(e) => Err(io(e)),
        };
    }
    file.read_exact(&mut raw).map_err(io)?;
    let header = Header::decode(&raw).ok_or(Problem::NotACheckpoint)?;
    if !(OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&header.version)
        || header.flags != FLAG_ZSTD
    {
        return Err(Problem::UnsupportedVersion {
            found: header.version,
            flags: header.flags,
        });
    }
    let fixed = HEADER_LEN + FOOTER_LEN + CHECKSUM_LEN;
    if size < fixed {
        return Err(Problem::Truncated(format!(
            "{size} bytes, shorter than the smallest checkpoint ({fixed})"
        )));
    }
    let footer_at = size - FOOTER_LEN - CHECKSUM_LEN;
    let mut raw_footer = [0u8; FOOTER_LEN as usize];
    file.seek(SeekFrom::Start(footer_at)).map_err(io)?;
    file.read_exact(&mut raw_footer).map_err(io)?;
    let footer = Footer::decode(&raw_footer).ok_or_else(|| {
        Problem::Truncated(format!(
            "no end marker where a complete file of {size} bytes has it"
        ))
    })?;
    if footer.body_len != footer_at - HEADER_LEN {
        return Err(Problem::Truncated(format!(
            "the footer says the body has {} bytes, the file holds {}",
            footer.body_len,
            footer_at - HEADER_LEN
        )));
    }
    let mut stored = [0u8; CHECKSUM_LEN as usize];
    file.read_exact(&mut stored).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut reader = BufReader::with_capacity(IO_BUFFER, (&mut file).take(size - CHECKSUM_LEN));
    loop {
        let buf = reader.fill_buf().map_err(io)?;
        if buf.is_empty() {
            break;
        }
        hasher.update(buf);
        let n = buf.len();
        reader.consume(n);
    }
    drop(reader);
    if hasher.finalize() != blake3::Hash::from_bytes(stored) {
        return Err(Problem::ChecksumMismatch);
    }
    Ok(Verified {
        header,
        footer,
        size,
        file,
    })
}

impl Verified {
    /// Streams the body's lines from the start (may be called again for another pass).
    pub fn lines(&mut self) -> io::Result<LineReader<'_>> {
        self.file.seek(SeekFrom::Start(HEADER_LEN))?;
        let body = BufReader::with_capacity(IO_BUFFER, (&mut self.file).take(self.footer.body_len));
        let decoder = zstd::stream::read::Decoder::with_buffer(body)?;
        Ok(LineReader {
            inner: BufReader::with_capacity(IO_BUFFER, decoder),
            buf: Vec::new(),
        })
    }
}

/// Body lines, one at a time, each at most [`MAX_LINE_BYTES`].
pub struct LineReader<'f> {
    inner: BufReader<zstd::stream::read::Decoder<'static, BufReader<io::Take<&'f mut File>>>>,
    buf: Vec<u8>,
}

impl LineReader<'_> {
    /// The next line; `Ok(None)` at the end of the body. A line that does not parse is
    /// an error naming its number (1-based) and the parser's reason.
    pub fn next_line(&mut self, number: u64) -> Result<Option<Line<'static>>, String> {
        self.buf.clear();
        loop {
            let available = self
                .inner
                .fill_buf()
                .map_err(|e| format!("cannot decompress the body: {e}"))?;
            if available.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(format!("line {number} has no line end"));
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.buf.len() + take > MAX_LINE_BYTES {
                return Err(format!(
                    "line {number} is longer than {MAX_LINE_BYTES} bytes"
                ));
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            if done {
                break;
            }
        }
        serde_json::from_slice::<Line<'static>>(&self.buf)
            .map(Some)
            .map_err(|e| format!("line {number}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tokio::sync::mpsc;

    use super::super::write::{WriteError, WriteMsg, temp_name, write_file};
    use super::*;

    fn write_sample(dir: &Path, id: &str, lines: &[Line<'_>]) -> PathBuf {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Vec::new();
        for l in lines {
            push_line(&mut body, l).expect("serialize");
        }
        tx.try_send(WriteMsg::Data(body)).expect("send");
        tx.try_send(WriteMsg::Finish(Footer {
            tenants: 1,
            sessions: 2,
            lines: lines.len() as u64,
            ..Default::default()
        }))
        .expect("send");
        drop(tx);
        write_file(dir, id, Header::new(42), rx).expect("write").0
    }

    fn sample() -> Vec<Line<'static>> {
        vec![
            Line::Record {
                tenant: "acme".into(),
                name: "meta".into(),
                value: B64(Cow::Owned(b"{\"x\":\"\n\"}".to_vec())),
            },
            Line::Zset {
                tenant: "acme".into(),
                name: "keys".into(),
                members: Cow::Owned(vec![("k1".to_owned(), -5)]),
            },
        ]
    }

    #[test]
    fn written_files_verify_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_sample(dir.path(), "a", &sample());
        assert_eq!(path, dir.path().join("a.ckpt"));
        assert!(!dir.path().join(temp_name("a")).exists());
        let mut v = verify(&path).expect("valid");
        assert_eq!(v.header, Header::new(42));
        assert_eq!(
            (v.footer.tenants, v.footer.sessions, v.footer.lines),
            (1, 2, 2)
        );
        assert_eq!(v.size, std::fs::metadata(&path).expect("stat").len());
        for _pass in 0..2 {
            let mut r = v.lines().expect("lines");
            let Some(Line::Record { value, .. }) = r.next_line(1).expect("line 1") else {
                panic!("a record first");
            };
            assert_eq!(&*value.0, b"{\"x\":\"\n\"}");
            assert!(matches!(r.next_line(2), Ok(Some(Line::Zset { .. }))));
            assert!(matches!(r.next_line(3), Ok(None)));
        }
    }

    #[test]
    fn damage_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_sample(dir.path(), "b", &sample());
        let good = std::fs::read(&path).expect("read");

        for cut in [0, 3, 10, 40, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).expect("write");
            let p = verify(&path).expect_err("refused");
            assert!(
                matches!(p, Problem::Truncated(_)) || (cut == 0 && p == Problem::NotACheckpoint),
                "cut at {cut}: {p:?}"
            );
        }
        for at in [HEADER_LEN as usize + 2, good.len() - 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).expect("write");
            assert_eq!(
                verify(&path).expect_err("refused"),
                Problem::ChecksumMismatch,
                "{at}"
            );
        }
        let mut bad = good.clone();
        bad[4] = 9;
        std::fs::write(&path, &bad).expect("write");
        assert_eq!(
            verify(&path).expect_err("refused"),
            Problem::UnsupportedVersion {
                found: 9,
                flags: FLAG_ZSTD
            }
        );
        std::fs::write(&path, b"PK\x03\x04 a zip file, not a checkpoint").expect("write");
        assert_eq!(verify(&path).expect_err("refused"), Problem::NotACheckpoint);
    }

    #[test]
    fn an_aborted_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(WriteMsg::Data(b"{}\n".to_vec())).expect("send");
        drop(tx);
        assert!(matches!(
            write_file(dir.path(), "c", Header::new(1), rx),
            Err(WriteError::Aborted)
        ));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
