//! The compression bombs: bodies of a few KB to 1 MB that decode to over 1 GiB of HTML, one per
//! `Content-Encoding` the service accepts, and a body that claims gzip but is not.
//!
//! Every bomb decodes to [`PREFIX`] (`<!doctype html>…<body><p>`) followed by 1 GiB of spaces: a
//! well-formed page of blank text that only a cap on *decoded* bytes stops. Spaces rather than
//! NULs, so that no "this looks binary" check can refuse it before the size cap is reached.
//!
//! Compressing 1 GiB takes seconds in a debug build (the zstd crate needs about 3 s at level 1,
//! brotli about 50 s), so each bomb is built from one compressed 1 MiB piece repeated 1,024
//! times, the way its format allows:
//!
//! | encoding | built as | body | build time (debug) |
//! |---|---|---|---|
//! | `gzip` | gzip header, deflate pieces, CRC-32 and length trailer | 1,068,123 B | 30–50 ms |
//! | `deflate` | zlib header (HTTP `deflate` is zlib, RFC 9110 §8.4.1.2), the same pieces, Adler-32 | 1,068,111 B | 45–55 ms |
//! | `br` | catable brotli streams joined with the brotli crate's `BroCatli` | 17,477 B | 30–130 ms |
//! | `zstd` | one frame written here: a raw block with the prefix, 8,192 RLE blocks of 128 KiB | 32,859 B | ~1 ms |
//!
//! - **deflate**: each piece is compressed by a fresh compressor and ends in a sync flush, so it
//!   is byte aligned, is not the final block, and refers to nothing before itself: it decodes to
//!   the same 1 MiB wherever it is put. A final empty block ends the stream. The checksums are
//!   combined from the piece's (CRC-32 with `crc32fast`, Adler-32 here), not computed over 1 GiB.
//! - **brotli**: a *catable* stream starts byte aligned and never refers to data before it, so
//!   `BroCatli` can join such streams into one by rewriting a few bits where they meet.
//! - **zstd**: compressing 1 GiB of one byte makes exactly these RLE blocks, so writing them
//!   directly gives what the encoder would, in no time. The header declares the decoded size;
//!   one frame rather than 1,024 concatenated ones, because a decoder that stops after its first
//!   frame would otherwise see a 1 MiB page and the bomb would test nothing.
//!
//! Build times were measured in a debug build on a busy 2-core machine; the ignored test
//! `corpus_build_times` prints them.

use std::iter;

use brotli::concat::{BroCatli, BroCatliResult};
use brotli::enc::BrotliEncoderParams;
use flate2::{Compress, Compression, FlushCompress};

/// What every bomb decodes to first; the rest is spaces.
pub(crate) const PREFIX: &[u8] =
    b"<!doctype html><html><head><title>Compression bomb</title></head><body><p>";
/// The repeated piece: 1 MiB of spaces.
const PIECE: usize = 1 << 20;
/// How often the piece is repeated: 1 GiB of spaces in all.
const PIECES: usize = 1 << 10;
/// The size every bomb decodes to: [`PREFIX`] and 1 GiB of spaces.
pub(crate) const DECODED_LEN: u64 = decoded_len(PIECES);

/// The piece every bomb repeats.
fn piece() -> Vec<u8> {
    vec![b' '; PIECE]
}

/// `gzip`: a gzip member (RFC 1952) around [`deflate_stream`].
pub(crate) fn gzip() -> Vec<u8> {
    gzip_of(PIECES)
}

/// A gzip bomb of `pieces` pieces (a power of two).
fn gzip_of(pieces: usize) -> Vec<u8> {
    /// Magic, method 8 (deflate), no flags, no mtime, no extra flags, OS unknown.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    assert!(pieces.is_power_of_two());
    let mut crc = crc32fast::Hasher::new();
    crc.update(PREFIX);
    let mut fill = crc32fast::Hasher::new();
    fill.update(&piece());
    for _ in 0..pieces.trailing_zeros() {
        let copy = fill.clone();
        fill.combine(&copy);
    }
    crc.combine(&fill);

    let deflate = deflate_stream(pieces);
    let mut out = Vec::with_capacity(HEADER.len() + deflate.len() + 8);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&deflate);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(decoded_len(pieces) as u32).to_le_bytes());
    out
}

/// `deflate`: a zlib stream (RFC 1950) around [`deflate_stream`].
pub(crate) fn deflate() -> Vec<u8> {
    deflate_of(PIECES)
}

/// A zlib bomb of `pieces` pieces (a power of two).
fn deflate_of(pieces: usize) -> Vec<u8> {
    /// Deflate with a 32 KiB window, maximum compression, and the check bits that make the pair
    /// a multiple of 31.
    const HEADER: [u8; 2] = [0x78, 0xda];
    assert!(pieces.is_power_of_two());
    let mut fill = adler32(&piece());
    let mut fill_len = PIECE as u64;
    for _ in 0..pieces.trailing_zeros() {
        fill = adler32_combine(fill, fill, fill_len);
        fill_len *= 2;
    }
    let adler = adler32_combine(adler32(PREFIX), fill, fill_len);

    let deflate = deflate_stream(pieces);
    let mut out = Vec::with_capacity(HEADER.len() + deflate.len() + 4);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&deflate);
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

/// What a bomb of `pieces` pieces decodes to.
const fn decoded_len(pieces: usize) -> u64 {
    (PREFIX.len() + PIECE * pieces) as u64
}

/// A raw deflate stream (RFC 1951) of [`PREFIX`] and `pieces` copies of the compressed piece.
fn deflate_stream(pieces: usize) -> Vec<u8> {
    /// A final, empty block with fixed Huffman codes: BFINAL 1, BTYPE 01, end-of-block.
    const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];
    let piece = sync_flushed(&piece());
    let mut out = sync_flushed(PREFIX);
    out.reserve(piece.len() * pieces + FINAL_EMPTY_BLOCK.len());
    for _ in 0..pieces {
        out.extend_from_slice(&piece);
    }
    out.extend_from_slice(&FINAL_EMPTY_BLOCK);
    out
}

/// `data` compressed by a fresh raw deflate compressor and sync-flushed: byte aligned, not
/// final, and decodable after any other such block.
fn sync_flushed(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 512 + 64);
    loop {
        let consumed = usize::try_from(compress.total_in()).expect("fits in memory");
        compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate into memory cannot fail");
        // A sync flush is complete once a call returns with output space to spare.
        if consumed == data.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// The Adler-32 modulus.
const ADLER_BASE: u32 = 65_521;

/// The Adler-32 checksum (RFC 1950) of `data`.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % ADLER_BASE;
        b = (b + a) % ADLER_BASE;
    }
    (b << 16) | a
}

/// The Adler-32 of two strings joined, from their checksums and the second one's length (zlib's
/// `adler32_combine`).
fn adler32_combine(first: u32, second: u32, second_len: u64) -> u32 {
    let base = u64::from(ADLER_BASE);
    let rem = second_len % base;
    let (a1, b1) = (u64::from(first & 0xffff), u64::from(first >> 16));
    let (a2, b2) = (u64::from(second & 0xffff), u64::from(second >> 16));
    let a = (a1 + a2 + base - 1) % base;
    let b = (rem * a1 + b1 + b2 + base - rem) % base;
    u32::try_from((b << 16) | a).expect("both halves are below 2^16")
}

/// `br`: catable brotli streams of [`PREFIX`] and of the piece, joined into one stream.
pub(crate) fn brotli() -> Vec<u8> {
    let head = catable_brotli(PREFIX);
    let piece = catable_brotli(&piece());
    let mut out = vec![0; head.len() + piece.len() * PIECES + 16];
    let mut written = 0;
    let mut join = BroCatli::new();
    for stream in iter::once(&head).chain(iter::repeat_n(&piece, PIECES)) {
        join.new_brotli_file();
        let mut read = 0;
        let result = join.stream(stream, &mut read, &mut out, &mut written);
        assert!(
            read == stream.len() && result == BroCatliResult::NeedsMoreInput,
            "joining brotli streams: {result:?} after {read} of {} bytes",
            stream.len()
        );
    }
    let result = join.finish(&mut out, &mut written);
    assert_eq!(result, BroCatliResult::Success, "finishing joined brotli");
    out.truncate(written);
    out
}

/// `data` as a brotli stream that can be joined after another one.
fn catable_brotli(data: &[u8]) -> Vec<u8> {
    let params = BrotliEncoderParams {
        quality: 5,
        lgwin: 22,
        catable: true,
        appendable: true,
        use_dictionary: false,
        ..BrotliEncoderParams::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)
        .expect("brotli into memory cannot fail");
    out
}

/// `zstd`: one zstd frame (RFC 8878) of a raw block with [`PREFIX`] and RLE blocks of spaces.
pub(crate) fn zstd() -> Vec<u8> {
    const MAGIC: u32 = 0xfd2f_b528;
    /// Frame header descriptor: an 8-byte content size, not single-segment, no checksum, no
    /// dictionary.
    const DESCRIPTOR: u8 = 0b1100_0000;
    /// Window descriptor: exponent 7, mantissa 0, a 2^(10 + 7) = 128 KiB window; that makes
    /// 128 KiB, the format's largest, the block size limit.
    const WINDOW: u8 = 7 << 3;
    const BLOCK: usize = 128 << 10;
    const RAW: u32 = 0;
    const RLE: u32 = 1;

    let blocks = PIECE * PIECES / BLOCK;
    let mut out = Vec::with_capacity(32 + PREFIX.len() + blocks * 4);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(DESCRIPTOR);
    out.push(WINDOW);
    out.extend_from_slice(&DECODED_LEN.to_le_bytes());
    zstd_block_header(&mut out, RAW, PREFIX.len(), false);
    out.extend_from_slice(PREFIX);
    for i in 0..blocks {
        zstd_block_header(&mut out, RLE, BLOCK, i + 1 == blocks);
        out.push(b' ');
    }
    out
}

/// A zstd block header: 3 bytes, little-endian, last-block bit, 2-bit type, 21-bit size.
fn zstd_block_header(out: &mut Vec<u8>, kind: u32, size: usize, last: bool) {
    let size = u32::try_from(size).expect("blocks are at most 128 KiB");
    let header = u32::from(last) | kind << 1 | size << 3;
    out.extend_from_slice(&header.to_le_bytes()[..3]);
}

/// `bad-encoding`: a plain HTML page, as a misconfigured server sends it under
/// `Content-Encoding: gzip`. Its first byte is `<`, not the gzip magic `1f 8b`.
pub(crate) fn not_gzip() -> Vec<u8> {
    b"<!doctype html><html><head><title>Not gzip</title></head><body>\
      <p>This page says it is gzip-compressed. It is not.</p></body></html>\n"
        .to_vec()
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Instant;

    use super::*;

    /// Reads `decoder` to its end, checking that it starts with [`PREFIX`] and then spaces, and
    /// returns how many bytes it gave. Decoders that carry a checksum or a declared size check
    /// it at the end, which fails the read.
    fn decoded_len_of(mut decoder: impl Read) -> u64 {
        let mut buf = vec![0; 1 << 16];
        let mut first = Vec::new();
        let mut total = 0u64;
        loop {
            let n = decoder.read(&mut buf).expect("the bomb decodes");
            if n == 0 {
                break;
            }
            if first.len() < 4096 {
                first.extend_from_slice(&buf[..n]);
            }
            assert_eq!(buf[n - 1], b' ', "ends in spaces");
            total += n as u64;
        }
        assert!(first.starts_with(PREFIX));
        assert!(first[PREFIX.len()..].iter().all(|&b| b == b' '));
        total
    }

    /// Whether `decoder` refuses `body` once a byte of its `trailer`-byte trailer is flipped:
    /// proof that the decoder checks the trailer at all.
    fn fails_with_bad_trailer(
        mut body: Vec<u8>,
        trailer: usize,
        decoder: impl Fn(&[u8]) -> Box<dyn Read + '_>,
    ) -> bool {
        let at = body.len() - trailer;
        body[at] ^= 1;
        decoder(&body).read_to_end(&mut Vec::new()).is_err()
    }

    /// Builds `bomb`, checks its size and returns it, printing the time taken.
    fn built(name: &str, bomb: fn() -> Vec<u8>, max_len: usize) -> Vec<u8> {
        let started = Instant::now();
        let body = bomb();
        eprintln!("{name}: {} bytes in {:?}", body.len(), started.elapsed());
        assert!(body.len() <= max_len, "{name}: {} bytes", body.len());
        assert_eq!(body, bomb(), "{name} is deterministic");
        body
    }

    const GIB: u64 = 1 << 30;

    /// The checksumming decoders take 5 to 15 s for 1 GiB in a debug build (CRC-32 and
    /// Adler-32 are slow unoptimised), so the full bombs are counted by a raw deflate decoder,
    /// and the trailers are checked on 4 MiB bombs built by the same code.
    #[test]
    fn gzip_bomb_decodes_to_over_a_gib() {
        let body = built("gzip", gzip, 1_100_000);
        let raw = &body[10..body.len() - 8];
        let len = decoded_len_of(flate2::read::DeflateDecoder::new(raw));
        assert_eq!(len, DECODED_LEN);
        assert!(len > GIB);
        assert_eq!(body[body.len() - 4..], (DECODED_LEN as u32).to_le_bytes());

        let small = gzip_of(4);
        let len = decoded_len_of(flate2::read::GzDecoder::new(&small[..]));
        assert_eq!(len, decoded_len(4), "checked against CRC-32 and ISIZE");
        assert!(fails_with_bad_trailer(small, 8, |s| Box::new(
            flate2::read::GzDecoder::new(s)
        )));
    }

    #[test]
    fn deflate_bomb_is_zlib_and_decodes_to_over_a_gib() {
        let body = built("deflate", deflate, 1_100_000);
        let raw = &body[2..body.len() - 4];
        let len = decoded_len_of(flate2::read::DeflateDecoder::new(raw));
        assert_eq!(len, DECODED_LEN);

        let small = deflate_of(4);
        let len = decoded_len_of(flate2::read::ZlibDecoder::new(&small[..]));
        assert_eq!(len, decoded_len(4), "checked against Adler-32");
        assert!(fails_with_bad_trailer(small, 4, |s| Box::new(
            flate2::read::ZlibDecoder::new(s)
        )));
    }

    #[test]
    fn brotli_bomb_decodes_to_over_a_gib() {
        let body = built("brotli", brotli, 64 << 10);
        let len = decoded_len_of(brotli::Decompressor::new(&body[..], 1 << 16));
        assert_eq!(len, DECODED_LEN);
    }

    #[test]
    fn zstd_bomb_decodes_to_over_a_gib() {
        let body = built("zstd", zstd, 64 << 10);
        let decoder = zstd::stream::read::Decoder::new(&body[..]).expect("zstd decoder");
        assert_eq!(decoded_len_of(decoder.single_frame()), DECODED_LEN);
        let declared = zstd::zstd_safe::get_frame_content_size(&body).expect("a frame");
        assert_eq!(declared, Some(DECODED_LEN));
    }

    #[test]
    fn adler32_combines_like_one_pass() {
        let (a, b) = (&b"<!doctype html>"[..], &b"   spaces and more  "[..]);
        let joined = [a, b].concat();
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(
            adler32_combine(adler32(a), adler32(b), b.len() as u64),
            adler32(&joined)
        );
        let big = vec![b'x'; 200_000];
        let twice = [&big[..], &big[..]].concat();
        assert_eq!(
            adler32_combine(adler32(&big), adler32(&big), big.len() as u64),
            adler32(&twice)
        );
    }

    #[test]
    fn bad_encoding_is_not_gzip() {
        let body = not_gzip();
        assert_ne!(body[..2], [0x1f, 0x8b]);
        let mut out = Vec::new();
        assert!(
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_err()
        );
    }
}
