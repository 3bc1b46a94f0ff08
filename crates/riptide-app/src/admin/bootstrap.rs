//! The first admin token: on a start that finds no admin token in the store (and none
//! configured in `admin.token`), one with role `admin` is created and written to
//! `<secrets_dir>/admin-token` with mode `0600`. The log says where, never what.
//!
//! Several instances starting at once on one Redis agree through a short lock taken
//! with `set_if_absent`: one bootstraps, the others see its token at their next start
//! (and accept it at once, since authentication reads the store).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use riptide_persistence::private_fs;
use riptide_persistence::store::Durability;
use riptide_persistence::tenant::AdminRole;
use riptide_persistence::tenant::audit::{AuditLog, OUTCOME_OK};

use super::audit;
use super::tokens::AdminTokens;

/// File name of the bootstrap token under `persistence.tenant.secrets_dir`.
pub const TOKEN_FILE: &str = "admin-token";

/// Name of the bootstrap token.
pub const BOOTSTRAP_NAME: &str = "bootstrap";

/// Who creates the bootstrap token, for its record and the audit log.
const SYSTEM_ACTOR: &str = "system";

/// Lifetime of the bootstrap lock, ms: a crashed bootstrap is retried by a start after
/// it.
const LOCK_TTL_MS: u64 = 30_000;

/// What the bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `admin.token` is set: no token was created.
    Configured,
    /// The store holds admin tokens already.
    Existing {
        /// How many.
        tokens: u64,
    },
    /// Another instance is creating the first token right now.
    ElsewhereInProgress,
    /// A token was created and written to `path`.
    Created {
        /// The token file.
        path: PathBuf,
        /// The token's id.
        token_id: String,
    },
}

/// Creates the first admin token when the store holds none (see the module docs). An
/// error (store unreachable, file not writable) stops startup: a service nobody can
/// administer is not started silently. A token whose file could not be written is
/// deleted again.
pub async fn bootstrap(
    tokens: &AdminTokens,
    audit_log: &AuditLog,
    secrets_dir: &Path,
) -> anyhow::Result<Bootstrap> {
    let path = secrets_dir.join(TOKEN_FILE);
    if tokens.has_configured_token() {
        tracing::info!(
            "admin token configured (admin.token / RIPTIDE_ADMIN_TOKEN); no bootstrap token is created"
        );
        return Ok(Bootstrap::Configured);
    }
    let existing = tokens.count().await.context("counting admin tokens")?;
    if existing > 0 {
        log_existing(existing, &path);
        return Ok(Bootstrap::Existing { tokens: existing });
    }
    let lock = tokens.key("bootstrap");
    let holder = hex::encode(rand::rng().next_u64().to_be_bytes());
    let store = tokens.store();
    if !store
        .set_if_absent(
            &lock,
            holder.as_bytes(),
            Some(LOCK_TTL_MS),
            Durability::Durable,
        )
        .await
        .context("taking the admin bootstrap lock")?
    {
        tracing::info!("another instance is creating the first admin token; see its log");
        return Ok(Bootstrap::ElsewhereInProgress);
    }
    let outcome = create_first(tokens, audit_log, &path).await;
    // Free the lock whatever happened; it expires by itself otherwise.
    if let Err(e) = store
        .compare_and_swap(&lock, Some(holder.as_bytes()), None, Durability::Durable)
        .await
    {
        tracing::warn!(error = %e, "could not release the admin bootstrap lock; it expires in 30 s");
    }
    outcome
}

async fn create_first(
    tokens: &AdminTokens,
    audit_log: &AuditLog,
    path: &Path,
) -> anyhow::Result<Bootstrap> {
    // Under the lock: an instance that bootstrapped meanwhile has released it.
    let existing = tokens.count().await.context("counting admin tokens")?;
    if existing > 0 {
        log_existing(existing, path);
        return Ok(Bootstrap::Existing { tokens: existing });
    }
    let created = tokens
        .create(BOOTSTRAP_NAME, AdminRole::Admin, SYSTEM_ACTOR)
        .await
        .context("creating the first admin token")?;
    let token_id = created.info.token_id.clone();
    if let Err(e) = write_token_file(path, &created.token) {
        if let Err(undo) = tokens.delete(&token_id).await {
            tracing::error!(admin.token_id = %token_id, error = %undo, "could not delete the bootstrap token whose file failed");
        }
        return Err(e).with_context(|| format!("writing the admin token to {}", path.display()));
    }
    audit::record(
        audit_log,
        SYSTEM_ACTOR,
        None,
        "token.bootstrap",
        &token_id,
        OUTCOME_OK,
        &[("role", AdminRole::Admin.as_str().to_owned())],
    )
    .await;
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    tracing::info!(
        admin.token_file = %shown.display(),
        admin.token_id = %token_id,
        "created the first admin token (role admin) and wrote it to this file (mode 0600); \
         send it as Authorization: Bearer <token> to /admin routes"
    );
    Ok(Bootstrap::Created {
        path: path.to_owned(),
        token_id,
    })
}

fn log_existing(tokens: u64, path: &Path) {
    if path.is_file() {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        tracing::info!(
            admin.tokens = tokens,
            admin.token_file = %shown.display(),
            "admin tokens exist; the bootstrap admin token is in this file"
        );
    } else {
        tracing::info!(
            admin.tokens = tokens,
            "admin tokens exist; create more with POST /admin/tokens"
        );
    }
}

/// Writes `token` and a newline to `path` with mode `0600`: to a fresh temporary file
/// in the same directory (created `0700` when missing), fsynced, then renamed over
/// `path`, and the directory fsynced ([`private_fs::write_atomic`]). A file left by an
/// earlier bootstrap is replaced.
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    private_fs::write_atomic(path, format!("{token}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join(TOKEN_FILE);
        write_token_file(&path, "first").expect("written");
        write_token_file(&path, "second").expect("replaced");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .count();
        assert_eq!(leftovers, 1, "no temporary file is left");
    }
}
