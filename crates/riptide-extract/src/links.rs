//! Collecting the links of a document: absolute, http(s) only, deduplicated.

use std::collections::HashSet;

use dom_query::Document;
use url::Url;

use crate::extraction::Link;

/// The `<a href>` links of `doc`, resolved against `base`, fragments removed, http(s)
/// only, first occurrence kept, in document order.
pub fn collect_links(doc: &Document, base: &Url) -> Vec<Link> {
    let mut seen = HashSet::new();
    let mut links = Vec::new();
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
        if seen.insert(href.clone()) {
            links.push(Link {
                href,
                text: collapse_whitespace(&anchor.text()),
            });
        }
    }
    links
}

/// Runs of whitespace become one space; leading and trailing whitespace is removed.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let links = collect_links(&doc, &base);
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
