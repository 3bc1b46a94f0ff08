//! The service's layering, read from its source (see `riptide_test_support::layering`).
//! `riptide-app` holds the lower layers: leaves at the bottom, then the services the
//! state holds, the configuration that gathers their sections, and the state (the
//! composition root). This crate holds the HTTP layers over it and the description of
//! the routes and the service on top; the compiler keeps it from being imported below.
//! Within each crate, imports go downwards only, and no modules import each other in a
//! circle.

use std::path::{Path, PathBuf};

use riptide_test_support::layering::{first_circle, graph, upward_imports};

/// `riptide-app`'s layers, lowest first; a module may import from its own layer and
/// those before.
const APP_LAYERS: &[&[&str]] = &[
    &[
        "error",
        "invalid",
        "log_every",
        "tenant_context",
        "extraction",
        "store_sanity",
        "shutdown",
    ],
    &["admin", "warming"],
    &["config"],
    &["logging", "recorder", "auth_failures", "server"],
    &["state", "lib"],
];

/// This crate's layers over `riptide-app` (whose modules it re-exports at its root).
const API_LAYERS: &[&[&str]] = &[
    &[
        "admin",
        "auth_failures",
        "config",
        "error",
        "extraction",
        "invalid",
        "log_every",
        "logging",
        "recorder",
        "server",
        "shutdown",
        "state",
        "store_sanity",
        "tenant_context",
        "warming",
    ],
    &["live_config", "middleware"],
    &["routes"],
    &["openapi"],
    &["service", "cli", "lib"],
];

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates directory")
        .join(krate)
        .join("src")
}

#[test]
fn layers_import_downwards_only() {
    for (krate, layers) in [("riptide-app", APP_LAYERS), ("riptide-api", API_LAYERS)] {
        let upward = upward_imports(&src(krate), layers);
        assert!(upward.is_empty(), "upward imports in {krate}: {upward:?}");
    }
}

#[test]
fn no_module_circles_at_any_depth() {
    for krate in ["riptide-app", "riptide-api"] {
        if let Some(circle) = first_circle(&src(krate), 4) {
            panic!("module circle in {krate}: {circle}");
        }
    }
}

#[test]
fn the_scan_sees_imports() {
    // A scan that found nothing would pass the other tests.
    let api = graph(&src("riptide-api"), 1);
    assert!(api["routes"].contains("state"), "{api:?}");
    assert!(api["service"].contains("middleware"), "{api:?}");
    let api2 = graph(&src("riptide-api"), 2);
    assert!(api2["routes::tenant"].contains("extraction::cache_key"));
    let app = graph(&src("riptide-app"), 1);
    assert!(app["state"].contains("config"), "{app:?}");
}
