//! End-to-end tests: the real `riptide` binary, started as a child process with a
//! configuration file and environment variables, spoken to over HTTP only, fetching pages
//! from the local fixture server ([`crate::pages`]).
//!
//! Each scenario runs on the embedded store and on Redis (a real `redis-server`), except
//! where only one backend applies (two instances sharing a store, a store outage):
//!
//! | file | what |
//! |---|---|
//! | [`flows`] | a tenant's whole journey: admin setup, extract MISS/HIT, crawl, sessions, usage, metrics |
//! | [`statuses`] | every error status the service answers, each with its JSON error body |
//! | [`error_bodies`] | refused heads (431, 400), 404/405, 415 and hostile input: JSON bodies that quote nothing large; unknown fields at any depth |
//! | [`isolation`] | two tenants on one URL: cache, sessions, usage and invalidation stay apart |
//! | [`two_instances`] | two binaries on one Redis: tenants, suspensions, invalidations, revocations |
//! | [`fencing`] | the checkpoint leader paused (SIGSTOP) past its lease and resumed: its write is refused and counted |
//! | [`sigterm`] | SIGTERM under load: exit 0 in time, no failed request, no lost usage |
//! | [`slow_clients`] | half-sent heads, idle and slow-body connections are cut; everyone else is served |
//! | [`crash_consistency`] | SIGKILL during parallel tenant and key creations and deletions: every tenant whole or absent after restart |
//! | [`connection_limit`] | past `server.max_connections` a fast 503; the open-file limit raised and respected |
//! | [`auth_throttle`] | failed authentication throttled per client address, before any store lookup |
//! | [`crawl_memory`] | a crawl's peak RSS is its pages in flight and its answer, not its URL count |
//! | [`hostile`] | every hostile page: a bounded answer, CPU within the budget, nothing left running |
//! | [`file_modes`] | started with umask 022: the data directory 0700, every file written 0600 |
//! | [`metrics_access`] | `/metrics` behind `metrics.token`; bills left out with `metrics.tenant_billing: false` |
//! | [`multi_tenancy_off`] | off only at start, refused on a public address unless allowed; a reload cannot switch it |
//! | [`audit_tamper`] | audit keys tampered with in Redis: reported by verify (API, CLI), admin changes fail closed, the chain metrics move |
//! | [`reload_file`] | an empty, comment-only, unparsable or cut configuration file is refused by reload |
//!
//! [`process`] starts and stops the binary and holds the HTTP helpers; [`raw`] speaks
//! raw TCP for the clients an HTTP library cannot be; [`proc_stats`] reads CPU and
//! memory from `/proc`.

mod audit_tamper;
mod auth_throttle;
mod connection_limit;
mod crash_consistency;
mod crawl_memory;
mod error_bodies;
mod fencing;
mod file_modes;
mod flows;
mod hostile;
mod isolation;
mod metrics_access;
mod multi_tenancy_off;
mod proc_stats;
mod process;
mod raw;
mod reload_file;
mod sigterm;
mod slow_clients;
mod statuses;
mod two_instances;

/// Runs the scenario `async fn $name(backend: Backend)` of the enclosing module twice, as
/// the tests `$name::embedded` and `$name::redis` (the shared `redis-server`, with a key
/// prefix of the test's own).
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            use $crate::e2e::process::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(Backend::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(Backend::shared_redis()).await;
            }
        }
    };
}

use on_both_backends;
