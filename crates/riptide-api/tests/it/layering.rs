//! The service crate's layering, read from its source (see
//! `riptide_test_support::layering`): leaves at the bottom, then the services the state
//! holds, the configuration that gathers their sections, the state (the composition
//! root), the HTTP layers over it, and the description of the routes and the service
//! on top. Imports go downwards only, and no modules import each other in a circle.

use std::path::{Path, PathBuf};

use riptide_test_support::layering::{first_circle, graph, upward_imports};

/// The layers, lowest first; a module may import from its own layer and those before.
const LAYERS: &[&[&str]] = &[
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
    &["state"],
    &["live_config", "middleware"],
    &["routes"],
    &["openapi"],
    &["service", "cli", "lib"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn layers_import_downwards_only() {
    let upward = upward_imports(&src(), LAYERS);
    assert!(upward.is_empty(), "upward imports: {upward:?}");
}

#[test]
fn no_module_circles_at_any_depth() {
    if let Some(circle) = first_circle(&src(), 4) {
        panic!("module circle: {circle}");
    }
}

#[test]
fn the_scan_sees_imports() {
    // A scan that found nothing would pass the other tests.
    let graph1 = graph(&src(), 1);
    assert!(graph1["routes"].contains("state"), "{graph1:?}");
    assert!(graph1["service"].contains("middleware"), "{graph1:?}");
    assert!(graph(&src(), 2)["routes::tenant"].contains("extraction::cache_key"));
}
