//! [`Extraction`]: what extracting one page produces, and [`Link`].

use serde::{Deserialize, Serialize};

/// The readable content of one fetched page and facts about the fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    /// The URL that was requested.
    pub url: String,
    /// The URL the content came from, after redirects.
    pub final_url: String,
    /// The HTTP status of the final response (always 2xx: anything else is an error).
    pub status: u16,
    /// The response's content type, as sent (or `text/html` when sniffed).
    pub content_type: String,
    /// The article title.
    pub title: Option<String>,
    /// The author line, when the page names one.
    pub byline: Option<String>,
    /// A short summary: the page's description meta or the first paragraph.
    pub excerpt: Option<String>,
    /// The readable text of the article (of the whole body when no article was found).
    pub text: String,
    /// The article as Markdown.
    pub markdown: String,
    /// Links in the article (in the whole page when the article has none): absolute,
    /// http(s) only, resolved against `final_url`, deduplicated, in document order.
    pub links: Vec<Link>,
    /// The language: from `<html lang>` (or the article's metadata), else detected from
    /// the text; an ISO 639-1 code when one exists.
    pub language: Option<String>,
    /// When the article was published, RFC 3339 when the page's value parses (otherwise
    /// as the page wrote it).
    pub published: Option<String>,
    /// blake3 of `text`, lowercase hex: equal hashes mean equal content.
    pub content_hash: String,
    /// When the page was fetched, RFC 3339 UTC.
    pub fetched_at: String,
    /// Body bytes received (after transfer decoding), for metering.
    pub bytes_fetched: u64,
}

/// A hyperlink found in the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Absolute http(s) URL, fragment removed.
    pub href: String,
    /// The link's visible text, whitespace collapsed (may be empty).
    pub text: String,
}
