//! The admin commands of the `riptide` binary: `tenants`, `keys`, `jwt-keys`, `cache`, `state`,
//! `audit` and `tokens`. Each calls the admin HTTP API of a running service (the URL
//! and admin token from flags, the environment or the token file, see
//! [`client::Connection`]) and prints tables, or the API's JSON with `--json`.
//!
//! Exit codes: 0 on success; 1 when the API answers an error (printed as
//! `riptide: <message> (<code>, HTTP <status>)`), cannot be reached, or the operation
//! did not succeed; 2 for a bad command line (clap's).

pub mod audit;
pub mod cache;
pub mod client;
pub mod jwt_keys;
pub mod keys;
pub mod output;
pub mod state;
pub mod tenants;
pub mod tokens;
pub mod warm;

use std::process::ExitCode;

use clap::Subcommand;

use self::client::{CliResult, Client, Connection};
use self::output::Output;

/// The admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage tenants
    Tenants(tenants::TenantsArgs),
    /// Manage tenants' API keys
    Keys(keys::KeysArgs),
    /// Manage tenants' JWT verification keys
    JwtKeys(jwt_keys::JwtKeysArgs),
    /// Cache statistics, warming, invalidation and clearing
    Cache(cache::CacheArgs),
    /// Instance state, configuration reload and checkpoints
    State(state::StateArgs),
    /// Read the audit log
    Audit(audit::AuditArgs),
    /// Manage admin tokens
    Tokens(tokens::TokensArgs),
}

impl AdminCommand {
    fn connection(&self) -> &Connection {
        match self {
            AdminCommand::Tenants(a) => &a.connection,
            AdminCommand::Keys(a) => &a.connection,
            AdminCommand::JwtKeys(a) => &a.connection,
            AdminCommand::Cache(a) => &a.connection,
            AdminCommand::State(a) => &a.connection,
            AdminCommand::Audit(a) => &a.connection,
            AdminCommand::Tokens(a) => &a.connection,
        }
    }
}

/// What every command works with: the API client and the output mode.
#[derive(Debug)]
pub struct Context {
    /// The admin API.
    pub client: Client,
    /// Tables or JSON.
    pub out: Output,
}

/// Runs `command` and returns the process's exit code; errors are printed on stderr.
pub fn run(command: AdminCommand) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(dispatch(command)),
        Err(e) => Err(client::CliError::Failed(format!(
            "cannot start the runtime: {e}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("riptide: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: AdminCommand) -> CliResult<()> {
    let connection = command.connection();
    let ctx = Context {
        client: Client::new(connection)?,
        out: Output {
            json: connection.json,
        },
    };
    match command {
        AdminCommand::Tenants(a) => tenants::run(&ctx, a.command).await,
        AdminCommand::Keys(a) => keys::run(&ctx, a.command).await,
        AdminCommand::JwtKeys(a) => jwt_keys::run(&ctx, a.command).await,
        AdminCommand::Cache(a) => cache::run(&ctx, a.command).await,
        AdminCommand::State(a) => state::run(&ctx, a.command).await,
        AdminCommand::Audit(a) => audit::run(&ctx, a).await,
        AdminCommand::Tokens(a) => tokens::run(&ctx, a.command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The admin commands as the binary mounts them.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AdminCommand,
    }

    #[test]
    fn the_command_line_is_consistent() {
        // Duplicate names (a command's option shadowing a connection option),
        // dangling `requires` and bad defaults panic here.
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_options_go_anywhere_after_the_group() {
        let cli = Cli::try_parse_from([
            "riptide",
            "tenants",
            "get",
            "acme",
            "--url",
            "http://h:1",
            "--json",
        ])
        .expect("parses");
        let connection = cli.command.connection();
        assert_eq!(connection.url.as_str(), "http://h:1/");
        assert!(connection.json);
        let cli = Cli::try_parse_from(["riptide", "cache", "--url", "http://h:2", "stats"])
            .expect("parses");
        assert_eq!(cli.command.connection().url.as_str(), "http://h:2/");
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for args in [
            &["riptide", "cache", "invalidate"][..],
            &["riptide", "cache", "invalidate", "--key", "k", "--tag", "t"],
            &["riptide", "cache", "invalidate", "--page", "http://x/"],
            &["riptide", "cache", "clear", "--all", "--tenant", "a"],
            &["riptide", "tenants", "update", "acme"],
            &["riptide", "tenants", "list", "--limit", "0"],
            &["riptide", "tenants", "get", "acme", "--url", "ftp://x"],
            &["riptide", "audit", "--since", "yesterday"],
            &[
                "riptide", "tokens", "create", "--name", "n", "--role", "root",
            ],
        ] {
            let err = Cli::try_parse_from(args).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
