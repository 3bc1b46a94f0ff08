//! The routes the router registers, read from the source files under `src/routes/` and
//! `src/service.rs` (which adds `/openapi.json`):
//! every `.route("<path>", <method router>)` call, with the methods of its method router
//! (`get(a)`, chains such as `get(a).post(b)`, and the tenant routes'
//! `guard.wrap(&SPEC, post(h))`), over any number of lines.
//!
//! Router calls this reader does not understand (`nest`, `route_service`, `any`, `on`)
//! fail it, so that a route cannot escape the documentation check by its form.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The HTTP methods axum's `MethodRouter` has a constructor for.
const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

/// Router methods that register routes in ways this reader does not parse.
const UNSUPPORTED_METHODS: [&str; 4] = [".nest(", ".nest_service(", ".route_service(", ".on("];

/// Free functions that make method routers this reader does not parse
/// (`axum::routing::any`, `axum::routing::on`).
const UNSUPPORTED_FUNCTIONS: [&str; 2] = ["any(", "on("];

/// Every (METHOD, path) registered under `src/routes/` and in `src/service.rs`.
pub fn registered() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = rust_files(&src.join("routes"));
    files.push(src.join("service.rs"));
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let code = without_comments(&text);
        for form in UNSUPPORTED_METHODS {
            assert!(
                !code.contains(form),
                "{}: `{form}` registers routes in a form the OpenAPI test cannot read",
                file.display()
            );
        }
        for form in UNSUPPORTED_FUNCTIONS {
            assert!(
                !free_call(&code, form),
                "{}: `{form}` registers routes in a form the OpenAPI test cannot read",
                file.display()
            );
        }
        for (path, methods) in route_calls(&code, &file) {
            for method in methods {
                assert!(
                    routes.insert((method.to_uppercase(), path.clone())),
                    "{method} {path} registered twice"
                );
            }
        }
    }
    routes
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `text` with `//` and `/* */` comments blanked, string literals kept.
pub fn without_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '"' {
            let end = string_end(&chars, i);
            out.extend(&chars[i..end]);
            i = end;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if c == '\'' && next != Some('\\') && chars.get(i + 2) == Some(&'\'') {
            // A char literal such as '"' (a lifetime never closes with a quote).
            out.extend(&chars[i..i + 3]);
            i += 3;
        } else if c == '\'' && next == Some('\\') && chars.get(i + 3) == Some(&'\'') {
            // An escaped char literal such as '\"'.
            out.extend(&chars[i..i + 4]);
            i += 4;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The index after the string literal that opens at `start`.
fn string_end(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Whether `code` calls the free function `form` (not a method, not part of a longer
/// identifier).
fn free_call(code: &str, form: &str) -> bool {
    code.match_indices(form).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    })
}

/// The `.route(...)` calls of `code`: their path and methods.
fn route_calls(code: &str, file: &Path) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let mut calls = Vec::new();
    for (byte_at, _) in code.match_indices(".route(") {
        let open = code[..byte_at].chars().count() + ".route".len();
        let close = matching_paren(&chars, open)
            .unwrap_or_else(|| panic!("{}: unclosed .route(", file.display()));
        let inner: String = chars[open + 1..close].iter().collect();
        let trimmed = inner.trim_start();
        assert!(
            trimmed.starts_with('"'),
            "{}: a .route( whose path is not a literal: {inner}",
            file.display()
        );
        let body: Vec<char> = trimmed.chars().collect();
        let end = string_end(&body, 0);
        let path: String = body[1..end - 1].iter().collect();
        let rest: String = body[end..].iter().collect();
        let methods = methods_of(&rest);
        assert!(
            !methods.is_empty(),
            "{}: cannot read the methods of route {path}: {rest}",
            file.display()
        );
        calls.push((path, methods));
    }
    calls
}

/// The index of the `)` that closes the `(` at `open`, skipping strings.
fn matching_paren(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' => {
                i = string_end(chars, i);
                continue;
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The method constructors called in a method router expression: `get(` or `.get(`,
/// not `get_session(` nor `sessions::get_x`.
fn methods_of(expression: &str) -> Vec<String> {
    let mut found = Vec::new();
    for method in METHODS {
        let call = format!("{method}(");
        for (at, _) in expression.match_indices(&call) {
            let before = expression[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                found.push(method.to_owned());
            }
        }
    }
    found
}

#[test]
fn the_reader_knows_every_form() {
    let code = without_comments(
        r#"
        // .route("/commented", get(x))
        Router::new()
            .route("/a", get(h::get_a).post(h::post_a))
            .route(
                "/b/{id}",
                guard.wrap(
                    &SPEC,
                    get(h::get_b).delete(h::delete_b),
                ),
            )
            .route("/c", guard.wrap(&C, post(h::post_c))) /* .route("/d", get(d)) */
            .route("/e(\")", put(e))
        "#,
    );
    let calls = route_calls(&code, Path::new("example.rs"));
    let got: Vec<(&str, Vec<&str>)> = calls
        .iter()
        .map(|(p, m)| (p.as_str(), m.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        got,
        [
            ("/a", vec!["get", "post"]),
            ("/b/{id}", vec!["get", "delete"]),
            ("/c", vec!["post"]),
            ("/e(\\\")", vec!["put"]),
        ]
    );
    assert!(free_call("routing::any(h)", "any("));
    assert!(!free_call("company(x) && v.iter().any(|b| b)", "any("));
}
