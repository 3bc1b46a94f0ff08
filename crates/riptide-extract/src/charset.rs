//! Turning a page's bytes into text: which character encoding to use and decoding.
//!
//! The order follows the HTML standard's encoding sniffing, simplified: a byte-order
//! mark wins, then the `charset` of the `Content-Type` header, then a `<meta charset>`
//! or `<meta http-equiv="Content-Type" content="...; charset=...">` in the first
//! [`PRESCAN_BYTES`] bytes, else UTF-8. Labels are resolved with the WHATWG rules
//! (`latin1` and `iso-8859-1` mean windows-1252). Malformed sequences become U+FFFD
//! rather than failing the page.

use encoding_rs::{Encoding, UTF_8};

/// How far into the body `<meta>` declarations are looked for.
pub const PRESCAN_BYTES: usize = 4096;

/// Decodes `body` using the header's `charset` label if any, else the document's own
/// declaration, else UTF-8.
pub fn decode_html(body: &[u8], header_charset: Option<&str>) -> String {
    let encoding = header_charset
        .and_then(|label| Encoding::for_label(label.trim().as_bytes()))
        .or_else(|| meta_charset(&body[..body.len().min(PRESCAN_BYTES)]))
        .map_or(UTF_8, html_compatible);
    // `decode` lets a BOM override the chosen encoding, as browsers do.
    let (text, used, had_errors) = encoding.decode(body);
    if had_errors {
        tracing::debug!(encoding = used.name(), "page had malformed byte sequences");
    }
    text.into_owned()
}

/// A `<meta>` declared encoding can't be UTF-16 (the bytes would not have been readable
/// as ASCII to find it): the standard says to use UTF-8 instead.
fn html_compatible(encoding: &'static Encoding) -> &'static Encoding {
    if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        UTF_8
    } else {
        encoding
    }
}

/// The encoding a `<meta>` tag in `head` declares.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut rest = lower.as_slice();
    while let Some(start) = find(rest, b"<meta") {
        let tag = &rest[start..];
        let end = tag.iter().position(|&b| b == b'>').unwrap_or(tag.len());
        if let Some(encoding) = charset_in_tag(&tag[..end]) {
            return Some(encoding);
        }
        rest = &tag[end..];
    }
    None
}

/// The `charset=` value inside one meta tag, either as an attribute or inside a
/// `content` attribute.
fn charset_in_tag(tag: &[u8]) -> Option<&'static Encoding> {
    let at = find(tag, b"charset")?;
    let mut value = &tag[at + b"charset".len()..];
    value = value
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    value = value
        .strip_prefix(b"\"")
        .or_else(|| value.strip_prefix(b"'"))
        .unwrap_or(value);
    let len = value
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/' | b'>') || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    Encoding::for_label(&value[..len])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "café – naïve" in windows-1252.
    const LATIN: &[u8] = b"caf\xe9 \x96 na\xefve";

    fn page(meta: &str) -> Vec<u8> {
        let mut bytes = format!("<html><head>{meta}</head><body>").into_bytes();
        bytes.extend_from_slice(LATIN);
        bytes.extend_from_slice(b"</body></html>");
        bytes
    }

    #[test]
    fn meta_charset_is_honoured() {
        let text = decode_html(&page(r#"<meta charset="ISO-8859-1">"#), None);
        assert!(text.contains("café – naïve"), "{text}");
        let text = decode_html(&page("<META CHARSET=windows-1252 />"), None);
        assert!(text.contains("café – naïve"), "{text}");
    }

    #[test]
    fn http_equiv_is_honoured() {
        let meta = r#"<meta http-equiv="Content-Type" content="text/html; charset=latin1">"#;
        assert!(decode_html(&page(meta), None).contains("café – naïve"));
    }

    #[test]
    fn header_beats_meta_and_bom_beats_both() {
        let body = page(r#"<meta charset="utf-8">"#);
        assert!(decode_html(&body, Some("windows-1252")).contains("café"));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice("<p>café</p>".as_bytes());
        assert!(decode_html(&bom, Some("windows-1252")).contains("<p>café</p>"));
    }

    #[test]
    fn default_is_utf8_and_bad_bytes_are_replaced() {
        assert_eq!(decode_html("<p>naïve</p>".as_bytes(), None), "<p>naïve</p>");
        let text = decode_html(&page(""), None);
        assert!(text.contains('\u{FFFD}'), "{text}");
        assert_eq!(decode_html(b"x", Some("no-such-charset")), "x");
    }

    #[test]
    fn utf16_meta_means_utf8() {
        let body = "<meta charset=utf-16><p>ok é</p>".as_bytes();
        assert!(decode_html(body, None).contains("ok é"));
    }
}
