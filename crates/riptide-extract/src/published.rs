//! The publication time: found in the page's metadata and normalized to RFC 3339.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use dom_query::Document;

/// Where the publication time is looked for in the page when the article metadata
/// (`article:published_time`, JSON-LD `datePublished`, found by dom_smoothie) has none,
/// best first: (selector, attribute).
const SOURCES: [(&str, &str); 5] = [
    (r#"meta[itemprop="datePublished"]"#, "content"),
    (r#"meta[name="date"]"#, "content"),
    (r#"time[itemprop="datePublished"]"#, "datetime"),
    ("time[pubdate]", "datetime"),
    ("time[datetime]", "datetime"),
];

/// The first publication time the page's markup states, as written.
pub fn published_in_markup(doc: &Document) -> Option<String> {
    SOURCES.iter().find_map(|(selector, attr)| {
        doc.select(selector)
            .iter()
            .find_map(|node| node.attr(attr))
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    })
}

/// `raw` as RFC 3339 (UTC when it carries no offset; midnight for a bare date), or as
/// written when it does not parse.
pub fn normalize_time(raw: &str) -> String {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(raw) {
        return t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(raw, format) {
            return t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return utc(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return utc(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    raw.to_owned()
}

fn utc(t: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_become_rfc3339() {
        assert_eq!(
            normalize_time("2024-03-05T10:20:30Z"),
            "2024-03-05T10:20:30Z"
        );
        assert_eq!(
            normalize_time("2024-03-05T10:20:30+02:00"),
            "2024-03-05T10:20:30+02:00"
        );
        assert_eq!(
            normalize_time("2024-03-05T10:20:30+0200"),
            "2024-03-05T10:20:30+02:00"
        );
        assert_eq!(
            normalize_time("2024-03-05T10:20:30"),
            "2024-03-05T10:20:30Z"
        );
        assert_eq!(
            normalize_time("2024-03-05 10:20:30"),
            "2024-03-05T10:20:30Z"
        );
        assert_eq!(normalize_time(" 2024-03-05 "), "2024-03-05T00:00:00Z");
        assert_eq!(
            normalize_time("Tue, 5 Mar 2024 10:20:30 GMT"),
            "2024-03-05T10:20:30Z"
        );
    }

    #[test]
    fn unparseable_values_are_kept() {
        assert_eq!(normalize_time("last Tuesday"), "last Tuesday");
    }

    #[test]
    fn markup_sources_are_ranked() {
        let doc = Document::from(
            r#"<html><body><time datetime="2020-01-01">old</time>
               <time itemprop="datePublished" datetime="2024-02-02">new</time></body></html>"#,
        );
        assert_eq!(published_in_markup(&doc).as_deref(), Some("2024-02-02"));
        let plain = Document::from(r#"<p><time datetime=" 2021-06-01T08:00:00Z ">x</time></p>"#);
        assert_eq!(
            published_in_markup(&plain).as_deref(),
            Some("2021-06-01T08:00:00Z")
        );
        assert_eq!(published_in_markup(&Document::from("<p>none</p>")), None);
    }
}
