//! A [`SealingKey`] for this crate's unit tests, which cannot use the tenant layer's
//! AES-GCM `DataKey` (that crate sits above this one). Encrypt-then-MAC with keyed
//! BLAKE3: a keystream from the key, nonce and `aad`, and a 16-byte tag over all three
//! and the ciphertext. Same layout and failure behaviour as the real key: any other
//! key, `aad`, truncation or changed bit fails to open.

use super::{NONCE_LEN, SealError, SealingKey, TAG_LEN};

/// A random test key.
pub(crate) struct TestKey([u8; 32]);

impl TestKey {
    pub(crate) fn generate() -> Self {
        Self(rand::random())
    }

    fn stream(&self, nonce: &[u8], aad: &[u8], len: usize) -> Vec<u8> {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(b"stream").update(nonce).update(aad);
        let mut out = vec![0; len];
        hasher.finalize_xof().fill(&mut out);
        out
    }

    fn tag(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher
            .update(b"tag")
            .update(&(aad.len() as u64).to_le_bytes());
        hasher.update(aad).update(nonce).update(ciphertext);
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_LEN]);
        tag
    }

    fn seal_with(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        let stream = self.stream(&nonce, aad, plaintext.len());
        let start = out.len();
        out.extend_from_slice(&nonce);
        out.extend(plaintext.iter().zip(stream).map(|(p, s)| p ^ s));
        let tag = self.tag(&nonce, aad, &out[start + NONCE_LEN..]);
        out.extend_from_slice(&tag);
    }
}

impl SealingKey for TestKey {
    fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        self.seal_with(rand::random(), plaintext, aad, out);
        Ok(())
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        if self.tag(nonce, aad, ciphertext) != tag {
            return Err(SealError);
        }
        let stream = self.stream(nonce, aad, ciphertext.len());
        Ok(ciphertext.iter().zip(stream).map(|(c, s)| c ^ s).collect())
    }

    fn seal_deterministic(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(b"siv").update(aad).update(plaintext);
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&hasher.finalize().as_bytes()[..NONCE_LEN]);
        let mut out = Vec::new();
        self.seal_with(nonce, plaintext, aad, &mut out);
        Ok(out)
    }
}
