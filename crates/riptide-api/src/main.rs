//! `riptide`: parses the command line, then runs the service (`serve`, the default) or
//! an admin command against a running service (`tenants`, `keys`, `cache`, `state`,
//! `audit`, `tokens`; see [`riptide_api::cli`]).
//!
//! Exit codes: 0 after a clean shutdown or a successful command, 2 for a bad command
//! line or configuration, 1 for any other failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use riptide_api::cli::{self, AdminCommand};
use riptide_api::config::{self, Overrides};

/// mimalloc instead of glibc's malloc: the request path allocates and frees many small
/// buffers, and glibc's free lists showed as ~8% of a cached `/extract` in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its position in `mi_option_e`, mimalloc.h).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed memory back to the OS at once instead of a second later
/// (its default), unless the operator set `MIMALLOC_PURGE_DELAY`. A page in flight is a
/// few buffers of up to 5 MiB each; kept for a second after they are freed, a crawl's
/// peak resident memory was its live memory plus up to 50 MiB of freed pages (and
/// varied run to run). Cached `/extract` throughput did not measurably change.
#[allow(unsafe_code)]
fn return_freed_memory_at_once() {
    let set = |name| std::env::var_os(name).is_some();
    if set("MIMALLOC_PURGE_DELAY") || set("MIMALLOC_RESET_DELAY") {
        return;
    }
    // SAFETY: called first in `main`, before any other thread exists (mimalloc's option
    // setters are not thread safe); the option is an integer, read on every purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// RipTide: multi-tenant web-content extraction API.
#[derive(Debug, Parser)]
#[command(name = "riptide", version)]
struct Cli {
    /// `riptide [--config] [--listen]` alone serves.
    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

/// The options of `serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file [default: config/riptide.yml when it exists, else built-in defaults]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Address to listen on, e.g. 127.0.0.1:8080 (overrides server.listen and RIPTIDE_LISTEN)
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (the default)
    Serve(ServeArgs),
    /// Internal: extract pages sent on stdin (the service starts these itself)
    #[command(name = "extract-worker", hide = true)]
    ExtractWorker,
    #[command(flatten)]
    Admin(Box<AdminCommand>),
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let cli = Cli::parse();
    let top = cli.serve;
    match cli.command {
        None => serve(top.config, Overrides { listen: top.listen }),
        Some(Command::Serve(args)) => serve(
            args.config.or(top.config),
            Overrides {
                listen: args.listen.or(top.listen),
            },
        ),
        Some(Command::ExtractWorker) => riptide_extract::worker::serve_stdio(),
        Some(Command::Admin(command)) => {
            if top.config.is_some() || top.listen.is_some() {
                Cli::command()
                    .error(
                        ErrorKind::ArgumentConflict,
                        "--config and --listen are options of `riptide serve`; the admin \
                         commands take --url",
                    )
                    .exit();
            }
            cli::run(*command)
        }
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
                let listener = riptide_api::server::bind(listen, config.server.listen_backlog)
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
