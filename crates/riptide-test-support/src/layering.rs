//! A crate's module graph, read from its source, for tests that hold what the compiler
//! does not: the layering of modules inside one crate, and the absence of circles.
//!
//! An edge `a -> b` means production code of module `a` (a file up to its first
//! `#[cfg(test)]`, comments left out) names a path `crate::b...` or `super::...` that
//! resolves under `b`, including every name of a `crate::{b, c::d}` group. Modules are
//! cut at a depth: at depth 1 `cache::l1` is `cache`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module -> the modules it imports from, cut at one depth.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
pub fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `src/tenant/usage/mod.rs` -> `["tenant", "usage"]`; `lib.rs` and `main.rs` -> `["lib"]`.
pub fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(src)
        .expect("file under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) {
        parts.pop();
    }
    if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
        parts[0] = "lib".into();
    }
    if parts.is_empty() {
        parts.push("lib".into());
    }
    parts
}

/// The production code of a file: up to its first `#[cfg(test)]`, without comments.
pub fn production_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':'
}

/// The paths of a `{a, b::c, d::{e, f}}` group at the start of `text`, each as its
/// segments (only the first level of nesting matters for the graph).
fn group_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut item = String::new();
    for c in text.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth > 1 {
                    item.push(c);
                }
            }
            '}' if depth == 1 => break,
            '}' => {
                depth -= 1;
                item.push(c);
            }
            ',' if depth == 1 => out.push(std::mem::take(&mut item)),
            _ => item.push(c),
        }
    }
    out.push(item);
    out.iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty() && *i != "self")
        .map(|i| {
            let path: String = i.chars().take_while(|c| is_path_char(*c)).collect();
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The module paths `code` (of module `module`) names, each as its segments.
pub fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    // `super` of module a::b (`a/b.rs` or `a/b/mod.rs`) is a.
    let parent = module[..module.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(is_path_char) {
                continue;
            }
            let path: String = rest.chars().take_while(|c| is_path_char(*c)).collect();
            let mut segments = base.clone();
            segments.extend(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            if rest[path.len()..].starts_with('{') {
                for inner in group_paths(&rest[path.len()..]) {
                    let mut full = segments.clone();
                    full.extend(inner);
                    out.push(full);
                }
            } else {
                out.push(segments);
            }
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`, cut at `depth`.
pub fn graph(src: &Path, depth: usize) -> Graph {
    let mut out = Graph::new();
    for file in source_files(src) {
        let module = module_of(src, &file);
        let from = module[..module.len().min(depth)].join("::");
        let text = std::fs::read_to_string(&file).expect("source readable");
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
pub fn circle_from(graph: &Graph, start: &str) -> Option<Vec<String>> {
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

/// The first module circle at depths 1 to `max_depth`, as `"depth d: a -> b -> a"`.
pub fn first_circle(src: &Path, max_depth: usize) -> Option<String> {
    (1..=max_depth).find_map(|depth| {
        let graph = graph(src, depth);
        graph.keys().find_map(|start| {
            circle_from(&graph, start)
                .map(|circle| format!("depth {depth}: {} -> {start}", circle.join(" -> ")))
        })
    })
}

/// Imports from a higher layer than the importer's (`"a -> b"`), given the layers lowest
/// first. Names that are in no layer (root re-exports, constants) are skipped; a module
/// in no layer is reported as `"a: in no layer"`.
pub fn upward_imports(src: &Path, layers: &[&[&str]]) -> Vec<String> {
    let layer_of = |m: &str| layers.iter().position(|layer| layer.contains(&m));
    let mut found = Vec::new();
    for (from, targets) in graph(src, 1) {
        let Some(here) = layer_of(&from) else {
            found.push(format!("{from}: in no layer"));
            continue;
        };
        for to in targets {
            if layer_of(&to).is_some_and(|there| there > here) {
                found.push(format!("{from} -> {to}"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(refs: Vec<Vec<String>>) -> Vec<String> {
        refs.into_iter().map(|r| r.join("::")).collect()
    }

    #[test]
    fn paths_groups_and_super_are_resolved() {
        let module: Vec<String> = vec!["routes".into(), "tenant".into()];
        let code = "use crate::{live_config, middleware::tenant::{A, B}, self};\n\
                    use super::state::AppState;\nlet x = my_crate::skip::this;";
        assert_eq!(
            names(references(&module, code)),
            [
                "live_config",
                "middleware::tenant::",
                "routes::state::AppState"
            ]
            .map(|s| s.trim_end_matches("::").to_owned())
        );
    }

    #[test]
    fn circles_are_found() {
        let mut graph = Graph::new();
        graph.entry("a".into()).or_default().insert("b".into());
        graph.entry("b".into()).or_default().insert("c".into());
        assert_eq!(circle_from(&graph, "a"), None);
        graph.entry("c".into()).or_default().insert("a".into());
        assert_eq!(
            circle_from(&graph, "a"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
    }
}
