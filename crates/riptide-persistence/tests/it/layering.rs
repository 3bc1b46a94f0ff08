//! The crate's layering, read from its source (see `riptide_test_support::layering`).
//! The layers import downwards only (store -> cache -> tenant -> state -> sync, with
//! `config` and the composition root above them), and no modules import each other in
//! a circle, at any depth.
//!
//! The compiler does not enforce this while the layers share one crate (issue 11 moves
//! them into crates of their own); this test does until then.

use std::path::{Path, PathBuf};

use riptide_test_support::layering::{
    first_circle, graph, module_of, production_code, source_files, upward_imports,
};

/// The layers, lowest first; a module may import from its own layer and those before.
const LAYERS: &[&[&str]] = &[
    &["error", "tenant_id", "keys", "clock", "private_fs"],
    &["store"],
    &["fence"],
    &["cache"],
    &["tenant"],
    &["state"],
    &["sync"],
    &["config", "persistence", "compat", "lib"],
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
fn layers_name_modules_not_root_reexports() {
    // `crate::StateManager` would hide an upward import from the scan: below the
    // facade, code names the module a type lives in.
    let src = src();
    let facade = LAYERS[LAYERS.len() - 1];
    let mut found = Vec::new();
    for file in source_files(&src) {
        if facade.contains(&module_of(&src, &file)[0].as_str()) {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&file).expect("readable"));
        for (at, _) in code.match_indices("crate::") {
            if code[at + "crate::".len()..].starts_with(|c: char| c.is_ascii_uppercase()) {
                found.push(format!(
                    "{}: {}",
                    file.display(),
                    &code[at..(at + 40).min(code.len())]
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "root re-exports used below the facade: {found:?}"
    );
}

#[test]
fn no_module_circles_at_any_depth() {
    if let Some(circle) = first_circle(&src(), 4) {
        panic!("module circle: {circle}");
    }
}

#[test]
fn the_scan_sees_imports() {
    // A scan that found nothing would pass the other tests: check it finds known
    // downward imports.
    let graph1 = graph(&src(), 1);
    assert!(graph1["cache"].contains("store"), "{graph1:?}");
    assert!(graph1["sync"].contains("state"), "{graph1:?}");
    assert!(graph(&src(), 2)["cache::manager"].contains("cache::l1"));
}
