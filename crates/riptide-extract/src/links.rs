//! Collecting the links of a document: absolute, http(s) only, deduplicated, bounded.

use std::collections::HashSet;

use dom_query::Document;
use url::Url;

use crate::error::ExtractError;
use crate::extraction::Link;
use crate::limits::{PageLimits, check_links};

/// The links of a document and how many were left out for being too long.
#[derive(Debug, Default)]
pub struct Links {
    /// The links listed.
    pub links: Vec<Link>,
    /// Links whose URL was longer than `max_url_bytes`.
    pub dropped: usize,
}

/// The `<a href>` links of `doc`, resolved against `base`, fragments removed, http(s)
/// only, first occurrence kept, in document order. A link whose URL is longer than
/// `limits.max_url_bytes` is left out (and counted); more than `limits.max_links`
/// links refuse the page.
pub fn collect_links(
    doc: &Document,
    base: &Url,
    limits: &PageLimits,
) -> Result<Links, ExtractError> {
    let mut seen = HashSet::new();
    let mut links = Vec::new();
    let mut dropped = 0;
    for anchor in doc.select("a[href]").iter() {
        let Some(href) = anchor.attr("href") else {
            continue;
        };
        let Ok(mut url) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        url.set_fragment(None);
        let href = String::from(url);
        if href.len() > limits.max_url_bytes {
            dropped += 1;
            continue;
        }
        if seen.insert(href.clone()) {
            check_links(links.len() + 1, limits)?;
            links.push(Link {
                href,
                text: collapse_whitespace(&anchor.text()),
            });
        }
    }
    Ok(Links { links, dropped })
}

/// Runs of whitespace become one space; leading and trailing whitespace is removed.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PageLimits {
        PageLimits {
            max_depth: 512,
            max_elements: 1_000,
            max_links: 10,
            max_url_bytes: 64,
            max_text_bytes: 1 << 20,
            max_markdown_bytes: 1 << 20,
            max_answer_bytes: 1 << 20,
        }
    }

    #[test]
    fn long_links_are_left_out_and_floods_refused() {
        let base = Url::parse("https://site.example/").unwrap();
        let long = format!(
            r#"<a href="/{}">long</a><a href="/ok">ok</a>"#,
            "x".repeat(64)
        );
        let found = collect_links(&Document::from(long), &base, &limits()).unwrap();
        assert_eq!((found.links.len(), found.dropped), (1, 1));
        let flood: String = (0..11)
            .map(|i| format!(r#"<a href="/{i}">{i}</a>"#))
            .collect();
        let err = collect_links(&Document::from(flood), &base, &limits()).unwrap_err();
        assert_eq!(err.kind(), "page_too_complex");
        // Repeats of one link are one link.
        let repeats = r#"<a href="/same">a</a>"#.repeat(50);
        let found = collect_links(&Document::from(repeats), &base, &limits()).unwrap();
        assert_eq!(found.links.len(), 1);
    }

    #[test]
    fn links_are_absolute_unique_and_web_only() {
        let doc = Document::from(
            r##"<a href="/a">A
                 one</a><a href="b?x=1">B</a><a href="/a#frag">again</a>
               <a href="mailto:x@y.z">mail</a><a href="javascript:void(0)">js</a>
               <a href="https://other.example/">other</a><a href="#top">top</a>
               <a href="http://[bad">bad</a><a>no href</a>"##,
        );
        let base = Url::parse("https://site.example/dir/page.html").unwrap();
        let links = collect_links(&doc, &base, &limits()).unwrap().links;
        let hrefs: Vec<_> = links.iter().map(|l| l.href.as_str()).collect();
        assert_eq!(
            hrefs,
            [
                "https://site.example/a",
                "https://site.example/dir/b?x=1",
                "https://other.example/",
                "https://site.example/dir/page.html",
            ]
        );
        assert_eq!(links[0].text, "A one");
    }
}
