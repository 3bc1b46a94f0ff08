//! A small JSON Schema checker for the subset the OpenAPI document uses: `$ref` (within
//! the document), `type` (one or several), `const`, `enum`, `oneOf`, `anyOf`, `allOf`,
//! `properties`, `required`, `additionalProperties`, `propertyNames`, `items`,
//! `prefixItems`, `minItems`, `maxItems`, `minimum`, `maximum`, `minLength`,
//! `maxLength`. Formats and patterns are not checked. Enough to hold the answers of the
//! running service to the documented shapes.

use serde_json::Value;

/// The value at the JSON pointer `reference` (`#/components/...`) of `doc`.
pub fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Checks `value` against `schema`; the error names where (`at`) and why.
pub fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target =
            resolve(doc, reference).ok_or_else(|| format!("{at}: unresolved {reference}"))?;
        return check(doc, target, value, at);
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        return Err(format!("{at}: {value} is not {expected}"));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(Value::Array(all)) = schema.get("allOf") {
        for s in all {
            check(doc, s, value, at)?;
        }
    }
    if let Some(Value::Array(any)) = schema.get("anyOf")
        && !any.iter().any(|s| check(doc, s, value, at).is_ok())
    {
        return Err(format!("{at}: {value} matches none of anyOf"));
    }
    if let Some(Value::Array(one)) = schema.get("oneOf") {
        let matching = one
            .iter()
            .filter(|s| check(doc, s, value, at).is_ok())
            .count();
        if matching != 1 {
            let why: Vec<String> = one
                .iter()
                .filter_map(|s| check(doc, s, value, at).err())
                .collect();
            return Err(format!(
                "{at}: {matching} of oneOf match {value}: {}",
                why.join("; ")
            ));
        }
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type in schema {schema}")),
        };
        if !allowed.iter().any(|t| is_type(value, t)) {
            return Err(format!("{at}: {value} is not of type {allowed:?}"));
        }
    }
    match value {
        Value::Object(fields) => check_object(doc, schema, fields, at),
        Value::Array(items) => check_array(doc, schema, items, at),
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                return Err(format!("{at}: {n} is below {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                return Err(format!("{at}: {n} is above {max}"));
            }
            Ok(())
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                return Err(format!("{at}: {s:?} is shorter than {min}"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                return Err(format!("{at}: {s:?} is longer than {max}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_u64() || value.is_i64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn check_object(
    doc: &Value,
    schema: &Value,
    fields: &serde_json::Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return Err(format!("{at}: required field {name:?} is missing"));
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field) in fields {
        let here = format!("{at}.{name}");
        if let Some(names) = schema.get("propertyNames") {
            check(doc, names, &Value::String(name.clone()), &here)?;
        }
        match properties.and_then(|p| p.get(name)) {
            Some(s) => check(doc, s, field, &here)?,
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("{at}: field {name:?} is not documented"));
                }
                Some(extra @ Value::Object(_)) => check(doc, extra, field, &here)?,
                _ => {}
            },
        }
    }
    Ok(())
}

fn check_array(doc: &Value, schema: &Value, items: &[Value], at: &str) -> Result<(), String> {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        return Err(format!("{at}: {len} items, fewer than {min}"));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!("{at}: {len} items, more than {max}"));
    }
    let prefix = schema
        .get("prefixItems")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, item) in items.iter().enumerate() {
        let here = format!("{at}[{i}]");
        match prefix.get(i) {
            Some(s) => check(doc, s, item, &here)?,
            None => {
                if let Some(s) = schema.get("items") {
                    check(doc, s, item, &here)?;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_checker_refuses_what_it_should() {
    let doc = serde_json::json!({ "components": { "schemas": { "N": { "type": "integer", "minimum": 1 } } } });
    let schema = serde_json::json!({
        "type": "object",
        "required": ["n"],
        "properties": {
            "n": { "$ref": "#/components/schemas/N" },
            "s": { "type": ["string", "null"], "maxLength": 2 },
            "p": { "type": "array", "prefixItems": [{ "type": "string" }, { "const": 1 }] },
            "o": { "oneOf": [{ "required": ["a"] }, { "required": ["b"] }] },
        },
        "additionalProperties": false,
    });
    let ok = |v: Value| check(&doc, &schema, &v, "$");
    assert!(ok(serde_json::json!({ "n": 2, "s": null, "p": ["x", 1], "o": { "a": 1 } })).is_ok());
    for bad in [
        serde_json::json!({}),
        serde_json::json!({ "n": 0 }),
        serde_json::json!({ "n": 1.5 }),
        serde_json::json!({ "n": 1, "extra": 1 }),
        serde_json::json!({ "n": 1, "s": "long" }),
        serde_json::json!({ "n": 1, "p": ["x", 2] }),
        serde_json::json!({ "n": 1, "o": { "a": 1, "b": 1 } }),
    ] {
        assert!(ok(bad.clone()).is_err(), "{bad}");
    }
}
