//! Reading `/metrics` in tests: a small parser of the Prometheus text exposition format
//! (version 0.0.4), strict enough that a malformed line fails the test.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::TestServer;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (for histograms: `x_bucket`, `x_sum`, `x_count`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` of each metric family.
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses `text`, or says which line is malformed and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            let fail = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        if !is_metric_name(name) {
                            return Err(fail("bad metric name"));
                        }
                        let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                        if !known.contains(&kind) {
                            return Err(fail("unknown type"));
                        }
                        if out.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                            return Err(fail("second TYPE line of one family"));
                        }
                    }
                    (Some("TYPE"), ..) => return Err(fail("incomplete TYPE line")),
                    _ => {}
                }
                continue;
            }
            out.samples
                .push(parse_sample(line).map_err(|why| fail(&why))?);
        }
        Ok(out)
    }

    /// The samples named `name`.
    pub fn series<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a Sample> + use<'a, 'n> {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The first sample named `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.series(name).find(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of [`Self::find`], or 0 when there is no such sample (a counter that
    /// was never incremented is not exposed).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map_or(0.0, |s| s.value)
    }

    /// Every sample name.
    pub fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }

    /// The union of the label names of the samples named `name`.
    pub fn label_names(&self, name: &str) -> BTreeSet<&str> {
        self.series(name)
            .flat_map(|s| s.labels.keys().map(String::as_str))
            .collect()
    }

    /// The family a sample name belongs to: the name itself, or for `x_bucket`,
    /// `x_sum` and `x_count` the histogram (or summary) `x`.
    pub fn family_of<'a>(&self, sample: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && matches!(
                    self.types.get(base).map(String::as_str),
                    Some("histogram" | "summary")
                )
            {
                return base;
            }
        }
        sample
    }
}

/// GETs `/metrics` and parses it, after checking the status and content type.
pub async fn scrape(server: &TestServer) -> (Exposition, String) {
    let response = server.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    let parsed = Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (parsed, text)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    is_metric_name(name) && !name.contains(':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("bad metric name".into());
    }
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("bad timestamp {timestamp:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",...}` (after the `{`), returning the labels and what follows the `}`.
fn parse_labels(mut rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let key = rest[..eq].trim();
        if !is_label_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("unquoted label value")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

#[test]
fn the_parser_reads_the_format_and_refuses_malformed_lines() {
    let text = "# HELP h_seconds Latency\n# TYPE h_seconds histogram\n\
        h_seconds_bucket{route=\"/a/{id}\",note=\"q\\\"x\\\\y\",le=\"0.5\"} 3\n\
        h_seconds_bucket{route=\"/a/{id}\",note=\"\",le=\"+Inf\"} 4 1700000000000\n\
        h_seconds_sum{route=\"/a/{id}\",note=\"\"} 1.5e-3\nup 1\n";
    let parsed = Exposition::parse(text).expect("valid");
    let bucket = parsed
        .find("h_seconds_bucket", &[("le", "0.5")])
        .expect("bucket");
    assert_eq!(bucket.labels["note"], "q\"x\\y");
    assert_eq!(bucket.labels["route"], "/a/{id}");
    assert_eq!(parsed.value("h_seconds_bucket", &[("le", "+Inf")]), 4.0);
    assert_eq!(parsed.value("h_seconds_sum", &[]), 0.0015);
    assert_eq!(parsed.family_of("h_seconds_sum"), "h_seconds");
    assert_eq!(parsed.family_of("up"), "up");
    for bad in [
        "x{a=\"1\" 2",
        "x{a=1} 2",
        "x{a=\"1\",a=\"2\"} 2",
        "x 1 2 3",
        "x{} one",
        "9x 1",
        "# TYPE x colour",
    ] {
        assert!(Exposition::parse(bad).is_err(), "{bad}");
    }
}
