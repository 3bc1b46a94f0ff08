//! Key pairs for JWT tests (made once with `openssl genpkey`; see `jwt_keys/README.md`).
//! They sign test tokens and protect nothing.

/// An Ed25519 private key, PKCS#8 PEM.
pub const ED25519_PRIVATE_PEM: &str = include_str!("jwt_keys/ed25519-private.pem");
/// Its public key, SPKI PEM.
pub const ED25519_PUBLIC_PEM: &str = include_str!("jwt_keys/ed25519-public.pem");
/// A 2048-bit RSA private key, PKCS#8 PEM.
pub const RSA_PRIVATE_PEM: &str = include_str!("jwt_keys/rsa-private.pem");
/// Its public key, SPKI PEM.
pub const RSA_PUBLIC_PEM: &str = include_str!("jwt_keys/rsa-public.pem");
