//! `riptide tokens create|list|revoke`: admin tokens, `/admin/tokens` (role `admin`).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Context;
use super::client::{CliResult, Connection};
use super::output::{self, field, fields};
use crate::routes::admin::tokens::CreateTokenRequest;

/// `riptide tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// The operation.
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// The admin token operations.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an admin token (shown this once)
    Create {
        /// A unique name (audit records name the actor `admin:<name>`)
        #[arg(long)]
        name: String,
        /// What it may do
        #[arg(long, value_parser = ["admin", "operator", "billing", "viewer"])]
        role: String,
    },
    /// List the admin tokens (never their secrets)
    List,
    /// Delete an admin token: it stops working
    Revoke {
        /// The token's id, as listed
        token_id: String,
    },
}

/// Runs a token command.
pub async fn run(ctx: &Context, command: TokensCommand) -> CliResult<()> {
    let client = &ctx.client;
    match command {
        TokensCommand::Create { name, role } => {
            let body = CreateTokenRequest { name, role };
            let token = client.post_json(&["admin", "tokens"], &body).await?;
            ctx.out.show(&token, |t| {
                format!(
                    "{}\nThe token is shown only now. Send it as `Authorization: Bearer <token>`.",
                    fields([
                        ("id", field(t, "token_id")),
                        ("name", field(t, "name")),
                        ("role", field(t, "role")),
                        ("token", field(t, "token")),
                    ])
                )
            });
        }
        TokensCommand::List => {
            let list = client.get(&["admin", "tokens"], &[]).await?;
            ctx.out.show(&list, render_list);
        }
        TokensCommand::Revoke { token_id } => {
            client.delete(&["admin", "tokens", &token_id]).await?;
            let done = json!({ "deleted": true, "token_id": token_id });
            ctx.out
                .show(&done, |_| format!("admin token {token_id} deleted"));
        }
    }
    Ok(())
}

fn render_list(list: &Value) -> String {
    let empty = Vec::new();
    let tokens = output::at(list, "tokens").as_array().unwrap_or(&empty);
    let rows = tokens.iter().map(|t| {
        vec![
            field(t, "token_id"),
            field(t, "name"),
            field(t, "role"),
            field(t, "source"),
            field(t, "created_at"),
            field(t, "created_by"),
        ]
    });
    output::table(
        &["ID", "NAME", "ROLE", "SOURCE", "CREATED", "CREATED BY"],
        rows,
    )
}
