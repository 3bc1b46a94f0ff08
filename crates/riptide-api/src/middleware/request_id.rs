//! [`SequentialRequestId`]: the id given to a request that arrives without an
//! `X-Request-Id`, without a `getrandom` system call per request.
//!
//! The id is a random per-process prefix followed by a counter, written in the UUID
//! layout (`8-4-4-4-12` lowercase hex, version 4 and RFC 4122 variant bits set), so it
//! looks like the UUIDs log tooling expects. It is unique within the process (the
//! counter has 62 bits) and, with 60 random bits of prefix, across processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Version nibble 4 in the UUID's seventh byte.
const VERSION_BITS: u64 = 0x0000_0000_0000_4000;
/// Mask clearing the version nibble of the prefix.
const VERSION_MASK: u64 = !0x0000_0000_0000_f000;
/// Variant `10` in the top bits of the UUID's lower half.
const VARIANT_BITS: u64 = 0x8000_0000_0000_0000;
/// Bits of the counter kept below the variant bits.
const COUNTER_MASK: u64 = 0x3fff_ffff_ffff_ffff;

/// Makes request ids from a random prefix and a shared counter.
#[derive(Clone)]
pub struct SequentialRequestId {
    prefix: u64,
    counter: Arc<AtomicU64>,
}

impl SequentialRequestId {
    /// A maker with a fresh random prefix and its counter at 0.
    pub fn new() -> Self {
        Self::with_prefix(rand::random())
    }

    fn with_prefix(prefix: u64) -> Self {
        Self {
            prefix: (prefix & VERSION_MASK) | VERSION_BITS,
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The next id, as the 36 bytes of its UUID layout.
    fn next_id(&self) -> [u8; 36] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let value = (u128::from(self.prefix) << 64) | u128::from((n & COUNTER_MASK) | VARIANT_BITS);
        format_uuid(value)
    }
}

impl Default for SequentialRequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_bytes(&self.next_id())
            .ok()
            .map(RequestId::new)
    }
}

/// `value` as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lowercase hex).
fn format_uuid(value: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut nibble = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let shift = 124 - 4 * nibble;
        *slot = HEX[usize::from(((value >> shift) & 0xf) as u8)];
        nibble += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_have_the_uuid_layout_and_never_repeat() {
        let mut maker = SequentialRequestId::with_prefix(u64::MAX);
        let request = Request::new(());
        let mut seen = HashSet::new();
        for _ in 0..1_000 {
            let id = maker.make_request_id(&request).expect("an id");
            let text = id.header_value().to_str().expect("ASCII").to_owned();
            assert_eq!(text.len(), 36, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{text}"
            );
            assert!(groups[2].starts_with('4'), "version 4: {text}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "RFC 4122 variant: {text}"
            );
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn the_layout_spells_the_value() {
        assert_eq!(
            &format_uuid(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            b"01234567-89ab-cdef-0011-223344556677"
        );
    }
}
