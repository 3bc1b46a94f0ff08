//! What a configuration document must look like, and which of its keys only apply at
//! the next start.
//!
//! The persistence crate does not know the service's configuration type, so reload is
//! schema-driven: a [`ConfigSchema`] validates the merged JSON document and names the
//! restart-only key prefixes. `config::PersistenceSchema` checks the `persistence`
//! section; the service combines it with its own schema through [`SchemaSet`].

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A refused key: its dotted path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path (`persistence.cache.zstd_level`).
    pub key: String,
    /// Why it was refused.
    pub reason: String,
}

impl ConfigIssue {
    /// An issue with `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigIssue {}

/// Validates whole configuration documents and declares which keys are restart-only.
pub trait ConfigSchema: Send + Sync + 'static {
    /// Checks the merged document (a JSON object). The first problem found is returned
    /// with the dotted key it concerns.
    fn validate(&self, doc: &Value) -> Result<(), ConfigIssue>;

    /// Dotted key prefixes (`persistence.redis`, `server.listen`) whose changes only
    /// take effect at the next start. Every other key is applied live.
    fn restart_only(&self) -> Vec<String>;
}

/// Whether `key` is, is under, or contains a restart-only prefix.
pub fn is_restart_only(key: &str, prefixes: &[String]) -> bool {
    prefixes
        .iter()
        .any(|p| is_under(key, p) || is_under(p, key))
}

/// Whether `key` is `prefix` or under it (at a `.` boundary).
pub(crate) fn is_under(key: &str, prefix: &str) -> bool {
    key == prefix
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Several schemas checked in order (e.g. the service's own and the persistence section's);
/// the restart-only prefixes are the union.
#[derive(Clone, Default)]
pub struct SchemaSet(pub Vec<Arc<dyn ConfigSchema>>);

impl ConfigSchema for SchemaSet {
    fn validate(&self, doc: &Value) -> Result<(), ConfigIssue> {
        self.0.iter().try_for_each(|s| s.validate(doc))
    }

    fn restart_only(&self) -> Vec<String> {
        let mut all: Vec<String> = self.0.iter().flat_map(|s| s.restart_only()).collect();
        all.sort();
        all.dedup();
        all
    }
}

impl fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchemaSet({} schemas)", self.0.len())
    }
}

/// Deepest map level searched when locating a deserialization error.
const MAX_LOCATE_DEPTH: usize = 16;
/// Most keys probed at one level when locating a deserialization error.
const MAX_LOCATE_KEYS: usize = 256;

/// Deserializes `value` into `T`; on failure, finds the key the error is about and
/// returns it under `prefix` (`persistence.cache.zstd_level`) with serde's message.
///
/// serde_json's errors from a `Value` carry no path, so the key is found by probing:
/// at each map level, the document is deserialized again with only one key kept along
/// the path. A key whose lone presence reproduces the error, and whose absence removes
/// it, is descended into. This relies on every struct of `T` being
/// `#[serde(default)]` (as all config sections are); for a missing required field the
/// search stops at the map that lacks it.
pub fn deserialize_located<T: DeserializeOwned>(
    value: &Value,
    prefix: &str,
) -> Result<T, ConfigIssue> {
    let err = match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    let fails_same =
        |probe: Value| matches!(serde_json::from_value::<T>(probe), Err(e) if e.to_string() == err);
    let missing_field = err.starts_with("missing field");
    let mut path: Vec<String> = Vec::new();
    for _ in 0..MAX_LOCATE_DEPTH {
        let Some(Value::Object(map)) = lookup(value, &path) else {
            break;
        };
        let mut strict = None;
        let mut lax = None;
        for key in map.keys().take(MAX_LOCATE_KEYS) {
            if !fails_same(pruned(value, &path, key, true)) {
                continue;
            }
            if !fails_same(pruned(value, &path, key, false)) {
                strict = Some(key.clone());
                break;
            }
            if lax.is_none() && !missing_field {
                lax = Some(key.clone());
            }
        }
        match strict.or(lax) {
            Some(key) => path.push(key),
            None => break,
        }
    }
    let mut key = prefix.to_owned();
    for segment in &path {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(segment);
    }
    Err(ConfigIssue::new(key, err))
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |v, segment| v.as_object()?.get(segment))
}

/// `value` with only `path` kept on the way down and, in the map at `path`, only
/// `key` (`keep`) or everything but `key` (`!keep`).
fn pruned(value: &Value, path: &[String], key: &str, keep: bool) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    match path.split_first() {
        Some((head, rest)) => {
            let mut out = Map::new();
            if let Some(child) = map.get(head) {
                out.insert(head.clone(), pruned(child, rest, key, keep));
            }
            Value::Object(out)
        }
        None if keep => {
            let mut out = Map::new();
            if let Some(child) = map.get(key) {
                out.insert(key.to_owned(), child.clone());
            }
            Value::Object(out)
        }
        None => {
            let mut out = map.clone();
            out.remove(key);
            Value::Object(out)
        }
    }
}
