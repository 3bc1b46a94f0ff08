//! Secrets kept out of the configuration a checkpoint saves.

/// What replaces a secret value in the saved configuration.
pub(super) const REDACTED: &str = "<redacted>";

/// True for configuration keys that hold secrets (`master_key`, `api_key_pepper`,
/// `admin_tokens`, `password`, ...), but not for paths (`secrets_dir`).
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let path_like = ["_dir", "_path", "_file", "_ttl_ms", "_seconds"]
        .iter()
        .any(|s| name.ends_with(s));
    !path_like
        && [
            "password",
            "passwd",
            "secret",
            "token",
            "pepper",
            "master_key",
            "private_key",
            "credential",
        ]
        .iter()
        .any(|s| name.contains(s))
}

/// A copy of `value` with every secret replaced by [`REDACTED`]: string values (or
/// strings inside arrays and objects) under a secret-looking key, and the password of
/// any URL with credentials (`redis://user:pass@host`). A checkpoint lies next to the
/// wrapped data keys; it must never also hold the master key that unwraps them.
pub(super) fn redact_secrets(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn all_strings(value: &Value) -> Value {
        match value {
            Value::String(s) if s.is_empty() => Value::String(String::new()),
            Value::String(_) => Value::String(REDACTED.to_owned()),
            Value::Array(items) => Value::Array(items.iter().map(all_strings).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), all_strings(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_name(k) {
                        all_strings(v)
                    } else {
                        redact_secrets(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_secrets).collect()),
        Value::String(s) => Value::String(redact_url_password(s)),
        other => other.clone(),
    }
}

/// `scheme://user:password@host...` → `scheme://user:<redacted>@host...` (also for each
/// URL of a comma-separated list); anything else unchanged.
fn redact_url_password(s: &str) -> String {
    if !s.contains("://") || !s.contains('@') {
        return s.to_owned();
    }
    s.split(',')
        .map(|part| {
            let Some((scheme, rest)) = part.split_once("://") else {
                return part.to_owned();
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let Some(at) = rest[..authority_end].rfind('@') else {
                return part.to_owned();
            };
            match rest[..at].split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:{REDACTED}{}", &rest[at..]),
                None => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_from_the_saved_configuration() {
        let config = json!({
            "redis": {"url": "redis://app:s3cr3t@cache:6379/0", "key_prefix": "riptide"},
            "tenant": {
                "master_key": "AAAAbase64keymaterial",
                "api_key_pepper": "pepper!",
                "secrets_dir": "/var/lib/riptide/secrets",
                "record_cache_ttl_ms": 1000,
                "api_key_prefix": "rt_"
            },
            "admin": {"tokens": [{"token": "adm-1", "role": "owner"}], "admin_token": ""},
            "nodes": "redis://:pw@a:1,redis://b:2"
        });
        let out = redact_secrets(&config);
        let text = out.to_string();
        for secret in [
            "s3cr3t",
            "AAAAbase64keymaterial",
            "pepper!",
            "adm-1",
            ":pw@",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(out["redis"]["url"], "redis://app:<redacted>@cache:6379/0");
        assert_eq!(out["redis"]["key_prefix"], "riptide");
        assert_eq!(out["tenant"]["secrets_dir"], "/var/lib/riptide/secrets");
        assert_eq!(out["tenant"]["api_key_prefix"], "rt_");
        assert_eq!(out["tenant"]["record_cache_ttl_ms"], 1000);
        assert_eq!(out["admin"]["admin_token"], "", "unset stays unset");
        assert_eq!(out["nodes"], "redis://:<redacted>@a:1,redis://b:2");
    }
}
