//! The crate's layering, read from its source: every module's `crate::` and `super::`
//! paths outside `#[cfg(test)]` code and comments. The layers import downwards only
//! (store -> cache -> tenant -> state -> sync, with `config` and the composition root
//! above them), and no modules import each other in a circle, at any depth.
//!
//! The compiler does not enforce this while the layers share one crate (issue 11 moves
//! them into crates of their own); this test does until then.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `tenant/usage/mod.rs` -> `["tenant", "usage"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    if parts.is_empty() {
        parts.push("lib".into());
    }
    parts
}

/// The production code of a file: up to its first `#[cfg(test)]`, without comments.
fn production_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths `code` (of module `module`) names, each as its segments.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    // `super` of module a::b (`a/b.rs` or `a/b/mod.rs`) is a.
    let parent = module[..module.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut segments = base.clone();
            segments.extend(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            out.push(segments);
        }
    }
    out
}

/// Edges between modules cut at `depth` segments.
fn edges(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        let from = module[..module.len().min(depth)].join("::");
        let text = std::fs::read_to_string(&file).expect("readable");
        for target in references(&module, &production_code(&text)) {
            let to = target[..target.len().min(depth)].join("::");
            if !to.is_empty() && to != from {
                out.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    out
}

/// A circle through `start`, if any (depth-first search).
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn layers_import_downwards_only() {
    let mut upward = Vec::new();
    for (from, targets) in edges(1) {
        let here = layer_of(&from).unwrap_or_else(|| panic!("module {from} is in no layer"));
        for to in targets {
            // Names at the crate root that are not modules (re-exports) are the facade's.
            let Some(there) = layer_of(&to) else { continue };
            if there > here {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports: {upward:?}");
}

#[test]
fn layers_name_modules_not_root_reexports() {
    // `crate::StateManager` would hide an upward import from the scan: below the
    // facade, code names the module a type lives in.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let module = module_of(&src, &file);
        if layer_of(&module[0]) == Some(LAYERS.len() - 1) {
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
    for depth in 1..=4 {
        let graph = edges(depth);
        for start in graph.keys() {
            if let Some(circle) = circle_from(&graph, start) {
                panic!("depth {depth}: {} -> {start}", circle.join(" -> "));
            }
        }
    }
}

#[test]
fn the_scan_sees_imports() {
    // A scan that found nothing would pass the other two tests: check it finds known
    // downward imports.
    let graph = edges(1);
    assert!(graph["cache"].contains("store"), "{graph:?}");
    assert!(graph["sync"].contains("state"), "{graph:?}");
    assert!(edges(2)["cache::manager"].contains("cache::l1"));
}
