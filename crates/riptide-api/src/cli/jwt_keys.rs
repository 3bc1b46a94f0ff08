//! `riptide jwt-keys create|list|revoke`: a tenant's JWT verification keys,
//! `/admin/tenants/{id}/jwt-keys`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use riptide_persistence::tenant::jwt_keys::JwtAlgorithm;

use super::Context;
use super::client::{CliError, CliResult, Connection};
use super::output::{self, field, fields};
use crate::routes::admin::jwt_keys::CreateJwtKeyRequest;

/// `riptide jwt-keys`.
#[derive(Debug, Args)]
pub struct JwtKeysArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// The operation.
    #[command(subcommand)]
    pub command: JwtKeysCommand,
}

/// The algorithm of a new key.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    /// HMAC-SHA256 with a secret the service generates (shown once)
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519; give the public key with --public-key
    #[value(name = "EdDSA")]
    EdDsa,
    /// RSA with SHA-256; give the public key with --public-key
    #[value(name = "RS256")]
    Rs256,
}

impl From<Algorithm> for JwtAlgorithm {
    fn from(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Hs256 => JwtAlgorithm::HS256,
            Algorithm::EdDsa => JwtAlgorithm::EdDSA,
            Algorithm::Rs256 => JwtAlgorithm::RS256,
        }
    }
}

/// The JWT key operations.
#[derive(Debug, Subcommand)]
pub enum JwtKeysCommand {
    /// Create a verification key for a tenant (an HS256 secret is shown this once)
    Create {
        /// The tenant's id
        tenant: String,
        /// The algorithm tokens will be signed with
        #[arg(long, value_enum)]
        algorithm: Algorithm,
        /// EdDSA and RS256: a file holding the public key in PEM
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A label for listings
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's verification keys (never a secret)
    List {
        /// The tenant's id
        tenant: String,
    },
    /// Revoke a key: tokens naming it stop working at once
    Revoke {
        /// The tenant's id
        tenant: String,
        /// The key's kid, as listed
        kid: String,
    },
}

/// Runs a JWT key command.
pub async fn run(ctx: &Context, command: JwtKeysCommand) -> CliResult<()> {
    let client = &ctx.client;
    match command {
        JwtKeysCommand::Create {
            tenant,
            algorithm,
            public_key,
            name,
        } => {
            let public_key_pem = match public_key {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    CliError::Failed(format!("cannot read {}: {e}", path.display()))
                })?),
                None => None,
            };
            let body = CreateJwtKeyRequest {
                algorithm: algorithm.into(),
                public_key_pem,
                name,
            };
            let path = ["admin", "tenants", &tenant, "jwt-keys"];
            let key = client.post_json(&path, &body).await?;
            ctx.out.show(&key, render_created);
        }
        JwtKeysCommand::List { tenant } => {
            let keys = client
                .get(&["admin", "tenants", &tenant, "jwt-keys"], &[])
                .await?;
            ctx.out.show(&keys, render_list);
        }
        JwtKeysCommand::Revoke { tenant, kid } => {
            client
                .delete(&["admin", "tenants", &tenant, "jwt-keys", &kid])
                .await?;
            let done = json!({ "revoked": true, "tenant_id": tenant, "kid": kid });
            ctx.out.show(&done, |_| {
                format!("jwt key {kid} of tenant {tenant} revoked")
            });
        }
    }
    Ok(())
}

/// A new key, with its secret (HS256) and how to use it.
fn render_created(key: &Value) -> String {
    let mut rows = vec![
        ("tenant", field(key, "tenant_id")),
        ("kid", field(key, "kid")),
        ("algorithm", field(key, "algorithm")),
        ("created", field(key, "created_at")),
    ];
    let has_secret = !output::at(key, "secret").is_null();
    if has_secret {
        rows.push(("secret", field(key, "secret")));
    }
    let mut text = format!(
        "{}\nSign tokens with header `kid: {}` and claims `tenant: {}` and `exp`; send them as \
         `Authorization: Bearer <token>` with `X-Tenant-ID: {}`.",
        fields(rows),
        field(key, "kid"),
        field(key, "tenant_id"),
        field(key, "tenant_id"),
    );
    if has_secret {
        text.push_str("\nThe secret is shown only now.");
    }
    text
}

fn render_list(list: &Value) -> String {
    let empty = Vec::new();
    let keys = output::at(list, "keys").as_array().unwrap_or(&empty);
    if keys.is_empty() {
        return format!("tenant {} has no jwt keys", field(list, "tenant_id"));
    }
    let rows = keys.iter().map(|k| {
        let status = if output::at(k, "revoked_at").is_null() {
            "active".to_owned()
        } else {
            format!("revoked {}", field(k, "revoked_at"))
        };
        vec![
            field(k, "kid"),
            field(k, "algorithm"),
            field(k, "label"),
            field(k, "created_at"),
            status,
        ]
    });
    output::table(&["KID", "ALGORITHM", "LABEL", "CREATED", "STATUS"], rows)
}
