//! Server secrets of the tenant layer: the API key pepper (and, through the same file
//! handling, the master key).
//!
//! A secret comes from configuration when it is set there (base64); otherwise it is read
//! from a file under `tenant.secrets_dir`, and when that file does not exist yet it is
//! generated from the operating system's CSPRNG (through `rand`'s thread RNG) and written
//! once, atomically, with mode `0600`.
//!
//! The environment (`RIPTIDE_API_KEY_PEPPER`, `RIPTIDE_MASTER_KEY`) is mapped into the
//! configuration by the service layer; nothing here reads environment variables.
//!
//! Secret files hold the secret as standard base64 followed by a newline, so an operator
//! can copy a generated secret into the configuration of other instances that share one
//! Redis. Secret values never appear in logs or error messages.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{
    STANDARD, STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT,
};
use rand::RngCore;

use super::error::{TenantError, TenantResult};
use riptide_store::private_fs;

/// File name of the generated API key pepper under `tenant.secrets_dir`.
pub const API_KEY_PEPPER_FILE: &str = "api_key_pepper";

/// Shortest accepted API key pepper, in bytes (and the length of a generated one).
pub const MIN_PEPPER_LEN: usize = 32;

/// Longest secret file read, in bytes: far above any key, small enough that a wrong path
/// (a log file, a device) is refused instead of read whole.
const MAX_SECRET_FILE_LEN: u64 = 64 * 1024;

/// The API key pepper: `tenant.api_key_pepper` (base64 of at least [`MIN_PEPPER_LEN`]
/// bytes) when set, else the contents of `<secrets_dir>/api_key_pepper`, which is
/// generated (32 random bytes, mode `0600`, logged at info) when it does not exist.
///
/// A configured pepper that is not base64 or is too short is refused with
/// [`TenantError::InvalidField`]; an unreadable or too-short file with
/// [`TenantError::Crypto`].
pub fn load_pepper(configured: &str, secrets_dir: &Path) -> TenantResult<Vec<u8>> {
    if !configured.trim().is_empty() {
        return decode_configured_secret("tenant.api_key_pepper", configured, MIN_PEPPER_LEN);
    }
    let (pepper, _created) =
        load_or_create_secret(secrets_dir, API_KEY_PEPPER_FILE, MIN_PEPPER_LEN)?;
    Ok(pepper)
}

/// Decodes a secret given in configuration as base64 (standard or URL-safe alphabet,
/// padding optional, surrounding whitespace ignored) and checks that it has at least
/// `min_len` bytes. Errors name `field` but never echo the value.
pub fn decode_configured_secret(
    field: &'static str,
    value: &str,
    min_len: usize,
) -> TenantResult<Vec<u8>> {
    let bytes = decode_base64(value.trim()).ok_or_else(|| TenantError::InvalidField {
        field,
        reason: "not valid base64".to_owned(),
    })?;
    if bytes.len() < min_len {
        return Err(TenantError::InvalidField {
            field,
            reason: format!(
                "decodes to {} bytes; at least {min_len} are required",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

/// Reads the secret file `<dir>/<name>`, or creates it with `len` fresh random bytes.
///
/// Returns the secret and whether this call created it. The file holds the secret as
/// base64 (see the module docs); an existing file must decode to at least `len` bytes
/// (callers that need an exact size, such as a 32-byte AES key, check it themselves).
///
/// Creation is atomic and never overwrites: the secret is written to a temporary file
/// in `dir` with mode `0600`, fsynced, then hard-linked to its final name (which fails
/// if another process created the file first; that file is then read and used), and the
/// directory is fsynced. On a file system without hard links the temporary file is
/// renamed instead. `dir` is created (mode `0700`) when missing. Creation is logged at
/// info with the path, never the value.
///
/// `name` must be a plain file name (no path separators, not `.` or `..`).
pub fn load_or_create_secret(dir: &Path, name: &str, len: usize) -> TenantResult<(Vec<u8>, bool)> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(TenantError::InvalidField {
            field: "secret file name",
            reason: format!("{name:?} is not a plain file name"),
        });
    }
    if len == 0 {
        return Err(TenantError::InvalidField {
            field: "secret length",
            reason: "must be > 0".to_owned(),
        });
    }
    let path = dir.join(name);
    if let Some(secret) = read_secret_file(&path, len)? {
        return Ok((secret, false));
    }
    create_dir(dir)?;
    let mut secret = vec![0u8; len];
    rand::rng().fill_bytes(&mut secret);
    match publish_secret_file(dir, &path, &secret)? {
        Published::Created => {
            tracing::info!(
                secret.path = %path.display(),
                secret.bytes = len,
                "generated a new secret and stored it with mode 0600; keep this file (and back it up): \
                 losing it invalidates what it protects"
            );
            Ok((secret, true))
        }
        Published::Existed => {
            // Another process won the race; use its secret, so both agree.
            let secret = read_secret_file(&path, len)?
                .ok_or_else(|| crypto(&path, "vanished right after another process created it"))?;
            Ok((secret, false))
        }
    }
}

/// What publishing a new secret file did.
enum Published {
    /// Our secret is now the file.
    Created,
    /// The file existed already; ours was discarded.
    Existed,
}

fn crypto(path: &Path, what: impl std::fmt::Display) -> TenantError {
    TenantError::Crypto(format!("secret file {}: {what}", path.display()))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD_PAD_INDIFFERENT
        .decode(text)
        .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(text))
        .ok()
}

/// The secret in `path`, `None` when the file does not exist.
fn read_secret_file(path: &Path, min_len: usize) -> TenantResult<Option<Vec<u8>>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crypto(path, format!("cannot stat: {e}"))),
    };
    if !meta.is_file() {
        return Err(crypto(path, "is not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE_LEN {
        return Err(crypto(
            path,
            format!("is larger than {MAX_SECRET_FILE_LEN} bytes"),
        ));
    }
    warn_if_readable_by_others(path, &meta);
    let text = fs::read_to_string(path).map_err(|e| crypto(path, format!("cannot read: {e}")))?;
    let secret = decode_base64(text.trim()).ok_or_else(|| crypto(path, "does not hold base64"))?;
    if secret.len() < min_len {
        return Err(crypto(
            path,
            format!(
                "holds {} bytes; at least {min_len} are required",
                secret.len()
            ),
        ));
    }
    Ok(Some(secret))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, meta: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            secret.path = %path.display(),
            mode = format!("{mode:o}"),
            "secret file is accessible to group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _meta: &fs::Metadata) {}

fn create_dir(dir: &Path) -> TenantResult<()> {
    private_fs::create_dir(dir).map_err(|e| {
        TenantError::Crypto(format!(
            "cannot create secrets directory {}: {e}",
            dir.display()
        ))
    })
}

/// Writes `secret` to a fresh temporary file in `dir` (mode 0600, fsynced) and moves it
/// to `path` without overwriting an existing file.
fn publish_secret_file(dir: &Path, path: &Path, secret: &[u8]) -> TenantResult<Published> {
    let mut text = STANDARD.encode(secret);
    text.push('\n');
    let tmp = private_fs::write_temp(path, text.as_bytes())
        .map_err(|e| crypto(path, format!("cannot write a temporary file: {e}")))?;
    let result = link_into_place(&tmp, path);
    // The temporary name is never needed afterwards: linked, renamed or failed.
    private_fs::discard(&tmp);
    let published = result?;
    if matches!(published, Published::Created) {
        private_fs::sync_dir(dir).map_err(|e| {
            TenantError::Crypto(format!(
                "cannot fsync secrets directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(published)
}

fn link_into_place(tmp: &Path, path: &Path) -> TenantResult<Published> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(Published::Created),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Published::Existed),
        Err(link_err) => {
            // No hard links here (some network or FUSE file systems): fall back to rename,
            // which is atomic but would replace a file created in the meantime.
            if path.exists() {
                return Ok(Published::Existed);
            }
            fs::rename(tmp, path).map_err(|e| {
                crypto(
                    path,
                    format!("cannot move into place (link: {link_err}; rename: {e})"),
                )
            })?;
            Ok(Published::Created)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_mode_0600_then_reuses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sub = dir.path().join("nested/secrets");
        let (a, created) = load_or_create_secret(&sub, "k", 32).expect("create");
        assert!(created);
        assert_eq!(a.len(), 32);
        let (b, created) = load_or_create_secret(&sub, "k", 32).expect("reuse");
        assert!(!created);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(sub.join("k"))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&sub)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn concurrent_creators_agree_on_one_secret() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || load_or_create_secret(&p, "race", 32).map(|(s, _)| s))
            })
            .collect();
        let secrets: Vec<Vec<u8>> = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("secret"))
            .collect();
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn refuses_bad_names_short_files_and_garbage() {
        let dir = tempfile::tempdir().expect("temp dir");
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            assert!(matches!(
                load_or_create_secret(dir.path(), bad, 32),
                Err(TenantError::InvalidField { .. })
            ));
        }
        fs::write(dir.path().join("short"), STANDARD.encode([1u8; 8])).expect("write");
        assert!(matches!(
            load_or_create_secret(dir.path(), "short", 32),
            Err(TenantError::Crypto(_))
        ));
        fs::write(dir.path().join("junk"), "not base64 !!!").expect("write");
        let err = load_or_create_secret(dir.path(), "junk", 32).expect_err("junk");
        assert!(!err.to_string().contains("not base64 !!!"), "{err}");
    }

    #[test]
    fn configured_pepper_wins_and_is_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pepper = |configured: &str| load_pepper(configured, dir.path());
        let configured = STANDARD.encode([7u8; 40]);
        assert_eq!(pepper(&configured).expect("configured"), vec![7u8; 40]);
        assert!(!dir.path().join(API_KEY_PEPPER_FILE).exists());

        let err = pepper(&STANDARD.encode([7u8; 16])).expect_err("too short");
        assert!(
            matches!(
                err,
                TenantError::InvalidField {
                    field: "tenant.api_key_pepper",
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            pepper("%%%"),
            Err(TenantError::InvalidField { .. })
        ));

        let generated = pepper("").expect("generated");
        assert_eq!(generated.len(), MIN_PEPPER_LEN);
        assert_eq!(pepper("").expect("reused"), generated);
    }
}
