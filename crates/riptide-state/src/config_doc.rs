//! The configuration document: every `*.yml` / `*.yaml` file of the configured
//! directories, parsed, deep-merged into one JSON value, hashed and compared.
//!
//! Files are read directory by directory (in the configured order), and within a
//! directory in file-name order. Maps merge recursively; on scalars and lists the later
//! file wins. Hidden files (editor swap and lock files such as `.#riptide.yml`) are
//! skipped. Reading is bounded: at most [`MAX_FILES_PER_DIR`] files per directory and
//! [`MAX_FILE_BYTES`] per file.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

/// Largest configuration file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Most configuration files read from one directory.
pub const MAX_FILES_PER_DIR: usize = 256;

/// Why a configuration document was refused: the file (when one is to blame), the
/// dotted key (empty when the whole file is unreadable or unparsable) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigRejection {
    /// The file (or directory) at fault, when known.
    pub file: Option<PathBuf>,
    /// Dotted key path (`persistence.cache.zstd_level`); empty for file-level errors.
    pub key: String,
    /// What is wrong, including line and column for YAML syntax errors.
    pub reason: String,
}

impl fmt::Display for ConfigRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration")?;
        if let Some(file) = &self.file {
            write!(f, " in {}", file.display())?;
        }
        if !self.key.is_empty() {
            write!(f, " at {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigRejection {}

impl ConfigRejection {
    fn file(path: &Path, reason: String) -> Self {
        Self {
            file: Some(path.to_path_buf()),
            key: String::new(),
            reason,
        }
    }
}

/// One parsed configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its content as JSON (always an object).
    pub value: Value,
}

/// The merged document of a set of directories.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDocument {
    /// The files read, in merge order.
    pub files: Vec<SourceFile>,
    /// The deep-merged document (always an object; `{}` when there are no files).
    pub value: Value,
    /// blake3 hex digest of the canonical JSON of `value` (keys sorted).
    pub hash: String,
}

impl ConfigDocument {
    /// Reads and merges every configuration file of `dirs`. A directory that is missing
    /// or unreadable, or a file that cannot be read or parsed, refuses the whole
    /// document, naming the path.
    pub fn load<P: AsRef<Path>>(dirs: &[P]) -> Result<Self, ConfigRejection> {
        let mut files = Vec::new();
        for dir in dirs {
            for path in list_config_files(dir.as_ref())? {
                let value = read_config_file(&path)?;
                files.push(SourceFile { path, value });
            }
        }
        Ok(Self::from_files(files))
    }

    /// Merges already parsed files, in order.
    pub fn from_files(files: Vec<SourceFile>) -> Self {
        let mut value = Value::Object(Map::new());
        for file in &files {
            deep_merge(&mut value, file.value.clone());
        }
        let hash = canonical_hash(&value);
        Self { files, value, hash }
    }

    /// The paths of the files read, in merge order.
    pub fn sources(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// The last file (in merge order) that sets `key` or, failing that, its nearest
    /// parent: the file to blame for a bad value.
    pub fn file_defining(&self, key: &str) -> Option<&Path> {
        let segments: Vec<&str> = key.split('.').filter(|s| !s.is_empty()).collect();
        (1..=segments.len()).rev().find_map(|n| {
            self.files
                .iter()
                .rev()
                .find(|f| lookup(&f.value, &segments[..n]).is_some())
                .map(|f| f.path.as_path())
        })
    }
}

/// Whether a file name is a configuration file: `*.yml` or `*.yaml`, not hidden.
pub fn is_config_file_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    if name.starts_with('.') {
        return false;
    }
    Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yml") || ext.eq_ignore_ascii_case("yaml"))
}

/// The configuration files of one directory, in file-name order. Symbolic links are
/// followed (Kubernetes ConfigMap volumes are made of them).
pub fn list_config_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigRejection> {
    let entries = fs::read_dir(dir).map_err(|e| {
        ConfigRejection::file(dir, format!("cannot read configuration directory: {e}"))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConfigRejection::file(dir, format!("cannot list configuration directory: {e}"))
        })?;
        if !is_config_file_name(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        // A dangling link or a file deleted since the listing is skipped: the next
        // event reloads again.
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if files.len() == MAX_FILES_PER_DIR {
            return Err(ConfigRejection::file(
                dir,
                format!("more than {MAX_FILES_PER_DIR} configuration files"),
            ));
        }
        files.push(path);
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Reads and parses one YAML file into a JSON object (an empty file is `{}`).
pub fn read_config_file(path: &Path) -> Result<Value, ConfigRejection> {
    let file = fs::File::open(path)
        .map_err(|e| ConfigRejection::file(path, format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigRejection::file(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigRejection::file(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| ConfigRejection::file(path, format!("not UTF-8: {e}")))?;
    parse_yaml(&text).map_err(|reason| ConfigRejection::file(path, reason))
}

/// Parses YAML text into a JSON object. Merge keys (`<<: *anchor`) are applied. The
/// error is the reason, with line and column when the parser knows them.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(loc) if !msg.contains("line ") => {
                format!("{msg} at line {} column {}", loc.line(), loc.column())
            }
            _ => msg,
        }
    })?;
    yaml.apply_merge()
        .map_err(|e| format!("invalid merge key: {e}"))?;
    let value =
        serde_json::to_value(&yaml).map_err(|e| format!("cannot be represented as JSON: {e}"))?;
    match value {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(value),
        _ => Err("the top level must be a mapping of sections".to_owned()),
    }
}

/// Merges `overlay` into `base`: maps merge recursively, anything else in `overlay`
/// replaces what `base` has.
pub fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => deep_merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The value at a dotted key (`persistence.cache.zstd_level`), if every map on the
/// way has it.
pub fn get_dotted<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = key.split('.').filter(|s| !s.is_empty()).collect();
    lookup(value, &segments)
}

fn lookup<'a, S: AsRef<str>>(value: &'a Value, path: &[S]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |v, segment| v.as_object()?.get(segment.as_ref()))
}

/// The dotted paths of the leaves that differ between two documents, sorted. A subtree
/// added or removed lists each of its leaves (an empty map lists itself); a list is a
/// leaf.
pub fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(Some(old), Some(new), "", &mut out);
    out.sort();
    out.dedup();
    out
}

fn diff(old: Option<&Value>, new: Option<&Value>, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (key, value) in a {
                diff(Some(value), b.get(key), &join(key), out);
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                diff(None, Some(value), &join(key), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => {
            let mut leaf_changed = false;
            for side in [a, b].into_iter().flatten() {
                match side {
                    Value::Object(map) if !map.is_empty() => {
                        for (key, value) in map {
                            diff(Some(value), None, &join(key), out);
                        }
                    }
                    _ => leaf_changed = true,
                }
            }
            if leaf_changed && !path.is_empty() {
                out.push(path.to_owned());
            }
        }
    }
}

/// blake3 hex digest of the canonical JSON of `value`: object keys sorted, no
/// whitespace. Independent of key order and of serde_json's map implementation.
pub fn canonical_hash(value: &Value) -> String {
    let mut bytes = Vec::new();
    write_canonical(value, &mut bytes);
    blake3::hash(&bytes).to_hex().to_string()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(key.as_str()).to_string().as_bytes());
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_merge_recursively_and_later_scalars_and_lists_win() {
        let mut base = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        deep_merge(&mut base, json!({"a": {"y": [3], "z": true}, "c": null}));
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": [3], "z": true}, "b": 1, "c": null})
        );
        let mut base = json!({"a": {"x": 1}});
        deep_merge(&mut base, json!({"a": 5}));
        assert_eq!(base, json!({"a": 5}));
    }

    #[test]
    fn changed_keys_are_dotted_leaves() {
        let old = json!({"p": {"cache": {"ttl": 1, "on": true}, "list": [1]}, "gone": {"k": 1}});
        let new = json!({"p": {"cache": {"ttl": 2, "on": true}, "list": [1, 2]}, "new": {"a": {"b": 1}, "e": {}}});
        assert_eq!(
            changed_keys(&old, &new),
            ["gone.k", "new.a.b", "new.e", "p.cache.ttl", "p.list"]
        );
        assert!(changed_keys(&new, &new).is_empty());
        // A map replaced by a scalar lists the scalar's path and the map's leaves.
        assert_eq!(
            changed_keys(&json!({"a": {"b": 1}}), &json!({"a": 2})),
            ["a", "a.b"]
        );
    }

    #[test]
    fn the_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,"x"],"c":null}}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#).expect("json");
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&a), canonical_hash(&json!({"b": 2})));
        assert_eq!(canonical_hash(&a).len(), 64);
    }

    #[test]
    fn yaml_errors_carry_the_line_and_empty_files_are_empty_maps() {
        let err = parse_yaml("a: 1\nb: [1, 2\n").expect_err("unclosed list");
        assert!(err.contains("line"), "{err}");
        assert_eq!(parse_yaml("").expect("empty"), json!({}));
        assert_eq!(
            parse_yaml("# only a comment\n").expect("comment"),
            json!({})
        );
        assert!(parse_yaml("- 1\n- 2\n").is_err());
        let merged =
            parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").expect("merge");
        assert_eq!(merged["other"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn only_visible_yaml_files_count() {
        for (name, ok) in [
            ("riptide.yml", true),
            ("10-local.YAML", true),
            (".riptide.yml", false),
            (".#riptide.yml", false),
            ("riptide.yml.tmp", false),
            ("riptide.yml~", false),
            ("notes.txt", false),
        ] {
            assert_eq!(is_config_file_name(OsStr::new(name)), ok, "{name}");
        }
    }

    #[test]
    fn the_file_to_blame_is_the_last_that_sets_the_key() {
        let doc = ConfigDocument::from_files(vec![
            SourceFile {
                path: "a.yml".into(),
                value: json!({"p": {"x": 1, "y": 1}}),
            },
            SourceFile {
                path: "b.yml".into(),
                value: json!({"p": {"y": 2}}),
            },
        ]);
        assert_eq!(doc.file_defining("p.x"), Some(Path::new("a.yml")));
        assert_eq!(doc.file_defining("p.y"), Some(Path::new("b.yml")));
        assert_eq!(doc.file_defining("p.z"), Some(Path::new("b.yml")));
        assert_eq!(doc.file_defining("q"), None);
        assert_eq!(get_dotted(&doc.value, "p.y"), Some(&json!(2)));
    }
}
