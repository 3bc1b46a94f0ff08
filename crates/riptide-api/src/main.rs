//! `riptide`: parses the command line, loads the configuration and runs the service.
//!
//! Exit codes: 0 after a clean shutdown, 2 for a bad command line or configuration,
//! 1 for any other failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use riptide_api::config::{self, Overrides};

/// RipTide: multi-tenant web-content extraction API.
#[derive(Debug, Parser)]
#[command(name = "riptide", version)]
struct Cli {
    /// Configuration file [default: config/riptide.yml when it exists, else built-in defaults]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Address to listen on, e.g. 127.0.0.1:8080 (overrides server.listen and RIPTIDE_LISTEN)
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (the default)
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config, Overrides { listen: cli.listen }),
    }
}

fn serve(config_file: Option<PathBuf>, overrides: Overrides) -> ExitCode {
    let file = config_file.or_else(config::default_file);
    let env = |name: &str| std::env::var_os(name);
    let config = match config::load(file.as_deref(), &env, &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("riptide: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = riptide_api::logging::init(&config.log) {
        eprintln!("riptide: {e:#}");
        return ExitCode::FAILURE;
    }
    let file = file.map_or_else(|| "-".to_owned(), |path| path.display().to_string());
    tracing::info!(config.file = %file, "configuration loaded");

    let served = tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                let listen = config.server.listen;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                riptide_api::run(config, listener, riptide_api::shutdown::signal_received()).await
            })
        });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "riptide failed");
            ExitCode::FAILURE
        }
    }
}
