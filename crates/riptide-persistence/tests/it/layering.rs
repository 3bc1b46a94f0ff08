//! The persistence layers are crates, one per layer, each depending only on the ones
//! below it (store -> cache -> tenant -> sync -> state -> this facade): the compiler
//! holds that. What it does not hold, read from the source here (see
//! `riptide_test_support::layering`): no modules of one crate import each other in a
//! circle, at any depth, and each crate's manifest names only the layers below it.

use std::path::{Path, PathBuf};

use riptide_test_support::layering::{first_circle, graph};

/// The layers, lowest first.
const CRATES: &[&str] = &[
    "riptide-store",
    "riptide-cache",
    "riptide-tenant",
    "riptide-sync",
    "riptide-state",
    "riptide-persistence",
];

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates directory")
        .join(name)
}

/// The `riptide-*` crates `name`'s manifest depends on (not its dev-dependencies).
fn layer_dependencies(name: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(crate_dir(name).join("Cargo.toml")).expect("manifest");
    let deps = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] table");
    let deps = deps.split("\n[").next().unwrap_or(deps);
    deps.lines()
        .filter_map(|l| l.split(['.', ' ', '=']).next())
        .filter(|d| d.starts_with("riptide-"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_layer_depends_on_layers_below_only() {
    for (i, name) in CRATES.iter().enumerate() {
        for dep in layer_dependencies(name) {
            let at = CRATES.iter().position(|c| *c == dep);
            assert!(
                at.is_some_and(|at| at < i),
                "{name} depends on {dep}, which is not a layer below it"
            );
        }
    }
    assert_eq!(layer_dependencies("riptide-cache"), ["riptide-store"]);
}

#[test]
fn no_module_circles_at_any_depth() {
    for name in CRATES {
        if let Some(circle) = first_circle(&crate_dir(name).join("src"), 4) {
            panic!("module circle in {name}: {circle}");
        }
    }
}

#[test]
fn the_scan_sees_imports() {
    // A scan that found nothing would pass the test above: check it finds known imports.
    let cache = graph(&crate_dir("riptide-cache").join("src"), 1);
    assert!(cache["manager"].contains("l1"), "{cache:?}");
    let state = graph(&crate_dir("riptide-state").join("src"), 1);
    assert!(state["coordination"].contains("manager"), "{state:?}");
}
