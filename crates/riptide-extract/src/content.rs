//! Extracting the readable content of a decoded HTML page with dom_smoothie (a port of
//! Mozilla's Readability), plus the facts around it: links, language, publication time
//! and Markdown.
//!
//! When dom_smoothie finds no article (navigation pages, very short pages, app shells),
//! the whole `<body>` is used instead: its text with scripts, styles and templates
//! removed, the `<title>` as title, and the page's metadata. A page always yields a
//! result, unless it is beyond the [`PageLimits`] (see [`crate::limits`]) or its
//! Markdown conversion fails.
//!
//! This runs inside an extraction worker process (see [`crate::worker`]), never in the
//! service's own process: only there can its time and memory be bounded for sure.

use dom_query::Document;
use dom_smoothie::{Article, Config, Readability, TextMode};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ExtractError;
use crate::extraction::Link;
use crate::language::page_language;
use crate::limits::{PageLimits, check_markup, check_output, check_tree};
use crate::links::{Links, collapse_whitespace, collect_links};
use crate::published::{normalize_time, published_in_markup};

/// What the page says, before the fetch facts are added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Content {
    pub title: Option<String>,
    pub byline: Option<String>,
    pub excerpt: Option<String>,
    pub text: String,
    pub markdown: String,
    pub links: Vec<Link>,
    pub language: Option<String>,
    pub published: Option<String>,
    /// Links left out for being longer than `max_url_bytes`.
    pub dropped_links: usize,
}

/// Elements whose text is never content.
const NOT_CONTENT: &str = "script, style, noscript, template, svg, iframe, head";

/// Extracts `html`, fetched from `base`, within `limits`. CPU-bound, and its cost is up
/// to the page: call it where it can be stopped (a worker process).
pub(crate) fn extract_content(
    html: &str,
    base: &Url,
    limits: &PageLimits,
) -> Result<Content, ExtractError> {
    check_markup(html, limits)?;
    let page = Document::from(html);
    check_tree(&page, limits)?;
    // Kept as a result: a link flood outside the article only matters if these are used.
    let page_links = collect_links(&page, base, limits);
    let markup_published = published_in_markup(&page);

    let config = Config {
        text_mode: TextMode::Formatted,
        ..Config::default()
    };
    let mut reader = Readability::with_document(page, Some(base.as_str()), Some(config))
        .map_err(|e| ExtractError::Decode(e.to_string()))?;
    let mut content = match reader.parse() {
        Ok(article) if !article.text_content.trim().is_empty() => {
            from_article(article, base, limits)?
        }
        outcome => {
            if let Err(e) = outcome {
                tracing::debug!(url = %base, error = %e, "no article found, using the whole body");
            }
            whole_body(html, base, limits)?
        }
    };
    if content.links.is_empty() {
        let Links { links, dropped } = page_links?;
        content.links = links;
        content.dropped_links = dropped;
    }
    if content.published.is_none() {
        content.published = markup_published.as_deref().map(normalize_time);
    }
    Ok(content)
}

fn from_article(
    article: Article,
    base: &Url,
    limits: &PageLimits,
) -> Result<Content, ExtractError> {
    let text = article.text_content.trim().to_owned();
    let markdown = to_markdown(&article.content)?;
    check_output(&text, &markdown, limits)?;
    let language = page_language(article.lang.as_deref(), &text);
    let Links {
        links,
        dropped: dropped_links,
    } = collect_links(&Document::from(&*article.content), base, limits)?;
    Ok(Content {
        title: non_empty(article.title),
        byline: article.byline.and_then(non_empty),
        excerpt: article.excerpt.and_then(non_empty),
        text,
        markdown,
        links,
        language,
        published: article.published_time.as_deref().map(normalize_time),
        dropped_links,
    })
}

/// The fallback: the whole body as content, the page metadata for the rest.
fn whole_body(html: &str, base: &Url, limits: &PageLimits) -> Result<Content, ExtractError> {
    let doc = Document::from(html);
    let reader = Readability::with_document(doc, Some(base.as_str()), None)
        .map_err(|e| ExtractError::Decode(e.to_string()))?;
    let meta = reader.get_article_metadata(reader.parse_json_ld());
    let doc = &reader.doc;
    doc.select(NOT_CONTENT).remove();
    let body = doc.select("body");
    let text = body.formatted_text().trim().to_owned();
    let markdown = to_markdown(&body.inner_html())?;
    check_output(&text, &markdown, limits)?;
    Ok(Content {
        title: non_empty(meta.title),
        byline: meta.byline.and_then(non_empty),
        excerpt: meta.excerpt.and_then(non_empty),
        language: page_language(meta.lang.as_deref(), &text),
        text,
        markdown,
        links: Vec::new(),
        published: meta.published_time.as_deref().map(normalize_time),
        dropped_links: 0,
    })
}

fn to_markdown(html: &str) -> Result<String, ExtractError> {
    htmd::HtmlToMarkdown::builder()
        .skip_tags(vec!["script", "style", "noscript", "template", "iframe"])
        .build()
        .convert(html)
        .map(|md| md.trim().to_owned())
        .map_err(|e| ExtractError::Decode(format!("markdown conversion: {e}")))
}

fn non_empty(value: impl AsRef<str>) -> Option<String> {
    let collapsed = collapse_whitespace(value.as_ref());
    (!collapsed.is_empty()).then_some(collapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://news.example/2024/story.html").unwrap()
    }

    fn limits() -> PageLimits {
        crate::ExtractConfig::default().page_limits()
    }

    fn extract_content(html: &str, base: &Url) -> Result<Content, ExtractError> {
        super::extract_content(html, base, &limits())
    }

    const ARTICLE: &str = r#"<!doctype html><html lang="en-GB"><head>
        <title>Tides of the North Sea</title>
        <meta name="author" content="Ada Lovelace">
        <meta property="article:published_time" content="2024-03-05T10:20:30+01:00">
        </head><body><nav><a href="/home">Home</a></nav><article><h1>Tides of the North Sea</h1>
        <p>The tides of the North Sea are driven by the Atlantic. Every twelve hours and
        twenty-five minutes the water rises and falls along the coasts of Britain, the
        Netherlands, Germany and Denmark, shaping harbours, beaches and the lives of the
        people who depend on them. <a href="/tides/atlas">See the tidal atlas</a>.</p>
        <p>Amphidromic points, where the tidal range is almost zero, sit in the middle of
        the sea; around them the high water travels like the hand of a clock. Engineers
        use these patterns to plan dikes, storm barriers and shipping lanes, and
        fishermen have known them for centuries.</p>
        <p>Storm surges add to the tide when strong northerly winds push water south.
        The flood of 1953 was the worst in modern memory and led to the Delta Works.</p>
        </article></body></html>"#;

    #[test]
    fn article_is_extracted_with_metadata() {
        let c = extract_content(ARTICLE, &base()).unwrap();
        assert_eq!(c.title.as_deref(), Some("Tides of the North Sea"));
        assert_eq!(c.byline.as_deref(), Some("Ada Lovelace"));
        assert_eq!(c.language.as_deref(), Some("en"));
        assert_eq!(c.published.as_deref(), Some("2024-03-05T10:20:30+01:00"));
        assert!(c.text.contains("Amphidromic points"), "{}", c.text);
        assert!(!c.text.contains("Home"), "navigation is not content");
        assert!(
            c.markdown
                .contains("[See the tidal atlas](https://news.example/tides/atlas)"),
            "{}",
            c.markdown
        );
        assert_eq!(c.links.len(), 1, "{:?}", c.links);
        assert_eq!(c.links[0].href, "https://news.example/tides/atlas");
        assert!(c.excerpt.is_some());
    }

    #[test]
    fn pages_without_an_article_fall_back_to_the_body() {
        let html = r#"<html><head><title>Menu</title><style>p{}</style></head><body>
            <script>var x = "not text";</script>
            <ul><li><a href="/a">Alpha</a></li><li><a href="/b">Beta</a></li></ul></body></html>"#;
        let c = extract_content(html, &base()).unwrap();
        assert_eq!(c.title.as_deref(), Some("Menu"));
        assert!(
            c.text.contains("Alpha") && c.text.contains("Beta"),
            "{}",
            c.text
        );
        assert!(!c.text.contains("not text"));
        assert_eq!(c.links.len(), 2);
        assert!(c.markdown.contains("Alpha"));
    }

    #[test]
    fn pages_beyond_the_limits_are_refused() {
        let tight = PageLimits {
            max_depth: 64,
            max_text_bytes: 200,
            ..limits()
        };
        let deep = format!(
            "<body>{}<p>x</p>{}</body>",
            "<div>".repeat(100),
            "</div>".repeat(100)
        );
        let err = super::extract_content(&deep, &base(), &tight).unwrap_err();
        assert_eq!(err.kind(), "page_too_complex", "{err}");
        let err = super::extract_content(ARTICLE, &base(), &tight).unwrap_err();
        assert!(err.to_string().contains("text"), "{err}");
    }

    #[test]
    fn empty_documents_do_not_fail() {
        let c = extract_content("", &base()).unwrap();
        assert_eq!(c.text, "");
        assert!(c.links.is_empty());
        assert_eq!(c.title, None);
    }
}
