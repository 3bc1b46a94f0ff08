//! `riptide keys create|list|revoke|rotate`: a tenant's API keys,
//! `/admin/tenants/{id}/keys`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Context;
use super::client::{CliResult, Connection};
use super::output::{self, field, fields};
use crate::routes::admin::keys::CreateKeyRequest;

/// `riptide keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// The operation.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The key operations.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a tenant (its secret is shown this once)
    Create {
        /// The tenant's id
        tenant: String,
        /// A label for listings
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's keys (never their secrets)
    List {
        /// The tenant's id
        tenant: String,
    },
    /// Revoke a key: it stops working at once
    Revoke {
        /// The tenant's id
        tenant: String,
        /// The key's id, as listed
        key_id: String,
    },
    /// Replace a key by a new one; the old one keeps working for the overlap period
    Rotate {
        /// The tenant's id
        tenant: String,
        /// The key's id, as listed
        key_id: String,
    },
}

/// Runs a key command.
pub async fn run(ctx: &Context, command: KeysCommand) -> CliResult<()> {
    let client = &ctx.client;
    match command {
        KeysCommand::Create { tenant, name } => {
            let path = ["admin", "tenants", &tenant, "keys"];
            let key = client.post_json(&path, &CreateKeyRequest { name }).await?;
            ctx.out.show(&key, render_created);
        }
        KeysCommand::List { tenant } => {
            let keys = client
                .get(&["admin", "tenants", &tenant, "keys"], &[])
                .await?;
            ctx.out.show(&keys, render_list);
        }
        KeysCommand::Revoke { tenant, key_id } => {
            client
                .delete(&["admin", "tenants", &tenant, "keys", &key_id])
                .await?;
            let done = json!({ "revoked": true, "tenant_id": tenant, "key_id": key_id });
            ctx.out.show(&done, |_| {
                format!("key {key_id} of tenant {tenant} revoked")
            });
        }
        KeysCommand::Rotate { tenant, key_id } => {
            let path = ["admin", "tenants", &tenant, "keys", &key_id, "rotate"];
            let key = client.post(&path).await?;
            ctx.out.show(&key, render_created);
        }
    }
    Ok(())
}

/// A new key, with its secret and how to use it.
fn render_created(key: &Value) -> String {
    let mut rows = vec![
        ("tenant", field(key, "tenant_id")),
        ("key id", field(key, "key_id")),
        ("secret", field(key, "secret")),
        ("prefix", field(key, "display_prefix")),
        ("created", field(key, "created_at")),
    ];
    if !output::at(key, "replaces").is_null() {
        rows.push(("replaces", field(key, "replaces")));
    }
    format!(
        "{}\nThe secret is shown only now. Send it as `Authorization: Bearer <secret>` with \
         `X-Tenant-ID: {}`.",
        fields(rows),
        field(key, "tenant_id")
    )
}

/// Whether a listed key works, and until when.
fn key_status(key: &Value) -> String {
    if !output::at(key, "revoked_at").is_null() {
        format!("revoked {}", field(key, "revoked_at"))
    } else if !output::at(key, "expires_at").is_null() {
        format!("expires {}", field(key, "expires_at"))
    } else {
        "active".to_owned()
    }
}

fn render_list(list: &Value) -> String {
    let empty = Vec::new();
    let keys = output::at(list, "keys").as_array().unwrap_or(&empty);
    if keys.is_empty() {
        return format!("tenant {} has no keys", field(list, "tenant_id"));
    }
    let rows = keys.iter().map(|k| {
        vec![
            field(k, "key_id"),
            field(k, "label"),
            field(k, "display_prefix"),
            field(k, "created_at"),
            field(k, "last_used_at"),
            key_status(k),
        ]
    });
    output::table(
        &[
            "KEY ID",
            "LABEL",
            "PREFIX",
            "CREATED",
            "LAST USED",
            "STATUS",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(key_status(&json!({"revoked_at": null})), "active");
        assert_eq!(
            key_status(&json!({"expires_at": "2030-01-01T00:00:00Z"})),
            "expires 2030-01-01T00:00:00Z"
        );
        assert!(key_status(&json!({"revoked_at": "t", "expires_at": "u"})).starts_with("revoked"));
    }
}
