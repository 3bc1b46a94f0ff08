//! Just enough PromQL for the deploy tests: which metric names and label names an
//! expression refers to, so alert rules and dashboard queries can be checked against a
//! scrape of the running service.

use std::collections::BTreeSet;

use crate::metrics_scrape::Exposition;

/// Aggregation operators and keywords: never metric names.
const KEYWORDS: [&str; 21] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    "limitk",
];

/// Keywords followed by a list of label names in parentheses.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names and label names an expression refers to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refs {
    /// Metric (sample) names, e.g. `cache_access_duration_seconds_bucket`.
    pub metrics: BTreeSet<String>,
    /// Label names of matchers and grouping clauses.
    pub labels: BTreeSet<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Reads the references of `expr`, or says why it is not an expression this reader
/// understands (unbalanced brackets, an unterminated string).
pub fn refs(expr: &str) -> Result<Refs, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Refs::default();
    let mut i = 0;
    let mut depth = 0_i32;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i)?,
            '{' => i = matchers(&chars, i, &mut out.labels)?,
            '[' => {
                i += chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or("unterminated [")?
                    + 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (is_ident(chars[i]) || "{}".contains(chars[i])) {
                    i += 1;
                }
            }
            '(' => {
                depth += 1;
                i += 1;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced )".into());
                }
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
                let lower = word.to_ascii_lowercase();
                if GROUPING.contains(&lower.as_str()) {
                    if next == Some('(') {
                        i = grouping(&chars, i, &mut out.labels)?;
                    }
                } else if KEYWORDS.contains(&lower.as_str()) || next == Some('(') {
                    // An aggregation, keyword or function call.
                } else {
                    out.metrics.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    if depth != 0 {
        return Err("unbalanced (".into());
    }
    Ok(out)
}

/// Skips the string starting at `i`; returns the index after its closing quote.
fn skip_string(chars: &[char], mut i: usize) -> Result<usize, String> {
    let quote = chars[i];
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

/// Reads `{k op "v", ...}` from the `{` at `i`; returns the index after the `}`.
fn matchers(chars: &[char], mut i: usize, labels: &mut BTreeSet<String>) -> Result<usize, String> {
    i += 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        match chars.get(i) {
            None => return Err("unterminated {".into()),
            Some('}') => return Ok(i + 1),
            Some(c) if is_ident_start(*c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                labels.insert(chars[start..i].iter().collect());
                while i < chars.len() && "=!~ ".contains(chars[i]) {
                    i += 1;
                }
                if !matches!(chars.get(i), Some('"' | '\'' | '`')) {
                    return Err("a matcher without a quoted value".into());
                }
                i = skip_string(chars, i)?;
            }
            Some(c) => return Err(format!("unexpected {c:?} in a matcher")),
        }
    }
}

/// Reads `(a, b)` after a grouping keyword; returns the index after the `)`.
fn grouping(chars: &[char], i: usize, labels: &mut BTreeSet<String>) -> Result<usize, String> {
    let open = i + chars[i..]
        .iter()
        .position(|&c| c == '(')
        .ok_or("grouping without (")?;
    let close = open
        + chars[open..]
            .iter()
            .position(|&c| c == ')')
            .ok_or("unterminated grouping")?;
    let list: String = chars[open + 1..close].iter().collect();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !name.chars().all(is_ident) {
            return Err(format!("bad label {name:?} in a grouping"));
        }
        labels.insert(name.to_owned());
    }
    Ok(close + 1)
}

/// Checks that every metric `expr` names is exposed in `scrape`, and every label it
/// matches or groups by is a label of one of those metrics. Returns the references.
pub fn check_against(expr: &str, scrape: &Exposition) -> Result<Refs, String> {
    let refs = refs(expr)?;
    if refs.metrics.is_empty() {
        return Err(format!("no metric in {expr:?}"));
    }
    let exposed = scrape.names();
    let mut labels = BTreeSet::new();
    for metric in &refs.metrics {
        if !exposed.contains(metric.as_str()) {
            return Err(format!(
                "{metric} (in {expr:?}) is not exposed by the service"
            ));
        }
        labels.extend(scrape.label_names(metric));
    }
    if let Some(missing) = refs
        .labels
        .iter()
        .find(|l| !labels.contains(l.as_str()) && l.as_str() != "__name__")
    {
        return Err(format!(
            "label {missing} (in {expr:?}) is not a label of {:?}",
            refs.metrics
        ));
    }
    Ok(refs)
}

#[test]
fn references_are_read_from_expressions() {
    let r = refs(
        "histogram_quantile(0.95, sum by (le, tenant_id) \
         (rate(cache_access_duration_seconds_bucket{operation!~\"load|x\", tenant_id=~\"$tenant_id\"}[5m]))) > 0.010",
    )
    .expect("valid");
    assert_eq!(
        r.metrics,
        BTreeSet::from(["cache_access_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        r.labels,
        BTreeSet::from(["le", "operation", "tenant_id"].map(str::to_owned))
    );
    let r = refs(
        "sum without (status) (rate(a_total[$__rate_interval])) / ignoring(route) b > bool 1e3 and on() c",
    )
    .expect("valid");
    assert_eq!(
        r.metrics,
        BTreeSet::from(["a_total", "b", "c"].map(str::to_owned))
    );
    assert_eq!(
        r.labels,
        BTreeSet::from(["route", "status"].map(str::to_owned))
    );
    for bad in ["sum(rate(x[5m])", "x{a=\"1}", "x{a=1}", "x)"] {
        assert!(refs(bad).is_err(), "{bad}");
    }
}
