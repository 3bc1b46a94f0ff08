//! What the RipTide HTTP API (`riptide-api`) runs on, in layers, each using only the
//! ones above it in this list:
//!
//! | layer | modules | job |
//! |---|---|---|
//! | leaves | [`error`], [`invalid`], [`log_every`], [`tenant_context`], [`extraction`], [`store_sanity`], [`shutdown`] | the API's error type, extraction workers, store checks, shutdown signal |
//! | services | [`admin`], [`warming`] | admin tokens; cache warming jobs and tiers |
//! | configuration | [`config`] | the whole service configuration, layered and validated |
//! | runtime | [`logging`], [`recorder`], [`auth_failures`], [`server`] | logs, metrics, the failed-authentication throttle, the connection server |
//! | state | [`state`] | `AppState`: every manager the routes use, built in one place |
//!
//! The routes, middleware and the OpenAPI document are in `riptide-api`, above this
//! crate, which re-exports these modules under the same paths.

pub mod admin;
pub mod auth_failures;
pub mod config;
pub mod error;
pub mod extraction;
pub mod invalid;
pub mod log_every;
pub mod logging;
pub mod recorder;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod store_sanity;
pub mod tenant_context;
pub mod warming;

/// The subcommand that runs the binary as an extraction worker
/// ([`riptide_extract::worker::serve_stdio`]): internal, started by the service itself.
pub const EXTRACT_WORKER_COMMAND: &str = "extract-worker";
