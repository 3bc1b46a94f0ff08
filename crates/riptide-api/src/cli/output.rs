//! What the CLI prints: the API's JSON as it came (`--json`), or tables (comfy-table)
//! and short lines for people. Values are read from the JSON by name, so a field the
//! service adds later is shown by `--json` and does not break a table.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print JSON instead of tables.
    pub json: bool,
}

impl Output {
    /// `value` as pretty JSON with `--json`, else what `render` makes of it.
    pub fn show(&self, value: &Value, render: impl FnOnce(&Value) -> String) {
        if self.json {
            emit(&pretty(value));
        } else {
            emit(&render(value));
        }
    }
}

/// `value` as indented JSON.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Writes `text` and a newline to stdout. A closed pipe (`riptide audit | head`) ends
/// the output quietly instead of panicking as `println!` would.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// A new table in the CLI's style. On a terminal, long cells wrap to its width; in a
/// pipe, nothing wraps (a script sees every value whole on its line).
fn styled() -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// A table with `headers` and `rows`.
pub fn table<R: IntoIterator<Item = String>>(
    headers: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> String {
    let mut table = styled();
    table.set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row.into_iter().collect::<Vec<String>>());
    }
    table.to_string()
}

/// A two-column table of named values, in the given order.
pub fn fields<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut table = styled();
    for (name, value) in rows {
        table.add_row(vec![name.to_owned(), value]);
    }
    table.to_string()
}

/// The value at the dotted `path` of `value` (`owner.email`), `Null` when absent.
pub fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(value, |v, name| v.get(name))
        .unwrap_or(&Value::Null)
}

/// The value at `path` as text, see [`text`].
pub fn field(value: &Value, path: &str) -> String {
    text(at(value, path))
}

/// A JSON value as a table cell: strings unquoted, `-` for null, lists joined with
/// `, `, objects as `key=value` pairs.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.is_empty() => "-".to_owned(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The number at `path` as a byte size (`1.5 MiB`), `-` when absent.
pub fn bytes_at(value: &Value, path: &str) -> String {
    at(value, path)
        .as_u64()
        .map_or_else(|| "-".to_owned(), bytes)
}

/// `n` bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// The number at `path` as a percentage of 1 (`0.25` → `25.0%`), `-` when absent.
pub fn percent_at(value: &Value, path: &str) -> String {
    at(value, path)
        .as_f64()
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_as_cells() {
        let v = json!({"a": {"b": "x"}, "n": 3, "none": null, "list": ["p", "q"],
                       "empty": [], "flag": true, "map": {"k": 1}});
        assert_eq!(field(&v, "a.b"), "x");
        assert_eq!(field(&v, "a.c"), "-");
        assert_eq!(field(&v, "n"), "3");
        assert_eq!(field(&v, "none"), "-");
        assert_eq!(field(&v, "list"), "p, q");
        assert_eq!(field(&v, "empty"), "-");
        assert_eq!(field(&v, "flag"), "yes");
        assert_eq!(field(&v, "map"), "k=1");
        assert_eq!(percent_at(&json!({"r": 0.25}), "r"), "25.0%");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(bytes_at(&json!({}), "x"), "-");
    }

    #[test]
    fn tables_hold_every_cell() {
        let t = table(&["ID", "NAME"], [vec!["t-1".to_owned(), "Acme".to_owned()]]);
        assert!(
            t.contains("ID") && t.contains("t-1") && t.contains("Acme"),
            "{t}"
        );
        let f = fields([("status", "active".to_owned())]);
        assert!(f.contains("status") && f.contains("active"), "{f}");
    }
}
