//! [`PageLimits`]: the bounds one page's extraction runs under, and the checks that
//! apply them.
//!
//! Three kinds of check, cheapest first, so that a hostile page is refused before it
//! costs much:
//!
//! 1. before parsing, [`check_markup`] counts what could open an element (`<` and a
//!    letter) in one pass over the bytes: an upper bound of the element count, so a
//!    flood of tiny elements is refused without building its tree;
//! 2. after parsing, [`check_tree`] walks the tree once, without recursion, for its
//!    depth and element count: Readability's cost grows with the cube of the depth, and
//!    the Markdown converter recurses, so depth is bounded before either runs;
//! 3. after extraction, [`check_output`] bounds the text, the Markdown and the links.
//!
//! The time the parse itself takes (quadratic in depth inside html5ever) is bounded by
//! the worker's deadline, not here.

use dom_query::{Document, NodeRef};
use serde::{Deserialize, Serialize};

use crate::error::ExtractError;

/// The bounds of one page's extraction (the `extract` settings of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageLimits {
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most elements.
    pub max_elements: usize,
    /// Most links listed.
    pub max_links: usize,
    /// Longest link URL listed; longer ones are left out.
    pub max_url_bytes: usize,
    /// Largest `text`.
    pub max_text_bytes: usize,
    /// Largest `markdown`.
    pub max_markdown_bytes: usize,
    /// Largest serialized answer.
    pub max_answer_bytes: usize,
}

fn too_complex(reason: String) -> ExtractError {
    ExtractError::TooComplex(reason)
}

/// Refuses markup with more possible elements than `limits.max_elements`, before it is
/// parsed. Counts `<` followed by an ASCII letter: every start tag has that shape, so
/// the count never underestimates.
pub(crate) fn check_markup(html: &str, limits: &PageLimits) -> Result<(), ExtractError> {
    let bytes = html.as_bytes();
    let tags = memchr::memchr_iter(b'<', bytes)
        .filter(|&at| bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic))
        .count();
    if tags > limits.max_elements {
        return Err(too_complex(format!(
            "the page has about {tags} elements; at most {} are extracted",
            limits.max_elements
        )));
    }
    Ok(())
}

/// Refuses a parsed page deeper than `limits.max_depth` or with more elements than
/// `limits.max_elements`. Iterative: a deep tree cannot overflow the stack here.
pub(crate) fn check_tree(doc: &Document, limits: &PageLimits) -> Result<(), ExtractError> {
    let (mut depth, mut elements) = (0usize, 0usize);
    let mut node: Option<NodeRef<'_>> = doc.root().first_child();
    while let Some(current) = node {
        if current.is_element() {
            elements += 1;
            if elements > limits.max_elements {
                return Err(too_complex(format!(
                    "the page has more than {} elements",
                    limits.max_elements
                )));
            }
        }
        // Depth first: down to the first child, else along to the next sibling, else
        // back up until an ancestor has a next sibling.
        if let Some(child) = current.first_child() {
            depth += 1;
            if depth > limits.max_depth {
                return Err(too_complex(format!(
                    "the page nests elements more than {} deep",
                    limits.max_depth
                )));
            }
            node = Some(child);
            continue;
        }
        let mut up = current;
        node = loop {
            if let Some(next) = up.next_sibling() {
                break Some(next);
            }
            // At depth 0 the parent is the document itself: the walk is over.
            if depth == 0 {
                break None;
            }
            depth -= 1;
            match up.parent() {
                Some(parent) => up = parent,
                None => break None,
            }
        };
    }
    Ok(())
}

/// Refuses an extraction whose text or Markdown is larger than allowed.
pub(crate) fn check_output(
    text: &str,
    markdown: &str,
    limits: &PageLimits,
) -> Result<(), ExtractError> {
    if text.len() > limits.max_text_bytes {
        return Err(too_complex(format!(
            "the extracted text has {} bytes; at most {} are answered",
            text.len(),
            limits.max_text_bytes
        )));
    }
    if markdown.len() > limits.max_markdown_bytes {
        return Err(too_complex(format!(
            "the Markdown has {} bytes; at most {} are answered",
            markdown.len(),
            limits.max_markdown_bytes
        )));
    }
    Ok(())
}

/// Refuses a list of more than `limits.max_links` links.
pub(crate) fn check_links(count: usize, limits: &PageLimits) -> Result<(), ExtractError> {
    if count > limits.max_links {
        return Err(too_complex(format!(
            "the page has more than {} links",
            limits.max_links
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PageLimits {
        PageLimits {
            max_depth: 20,
            max_elements: 100,
            max_links: 3,
            max_url_bytes: 64,
            max_text_bytes: 10,
            max_markdown_bytes: 20,
            max_answer_bytes: 1_000,
        }
    }

    fn nested(depth: usize) -> String {
        format!(
            "<html><body>{}x{}</body></html>",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        )
    }

    #[test]
    fn markup_with_too_many_tags_is_refused_unparsed() {
        let ok = format!("<p>{}</p>", "<b>x</b> a < b ".repeat(98));
        assert!(check_markup(&ok, &limits()).is_ok());
        let err = check_markup(&"<i>".repeat(101), &limits()).unwrap_err();
        assert_eq!(err.kind(), "page_too_complex");
    }

    #[test]
    fn depth_is_measured_without_recursion() {
        // html > body > 16 divs: 18 levels below the document, within 20.
        assert!(check_tree(&Document::from(nested(16)), &limits()).is_ok());
        let err = check_tree(&Document::from(nested(30)), &limits()).unwrap_err();
        assert!(err.to_string().contains("20 deep"), "{err}");
        let deep = PageLimits {
            max_depth: 4_096,
            max_elements: 1_000_000,
            ..limits()
        };
        // Far deeper than any recursion on a small stack could go.
        let doc = Document::from(nested(3_000));
        assert!(check_tree(&doc, &deep).is_ok());
    }

    #[test]
    fn siblings_count_as_elements_not_depth() {
        let wide = format!("<ul>{}</ul>", "<li>x</li>".repeat(90));
        assert!(check_tree(&Document::from(wide), &limits()).is_ok());
        let wider = format!("<ul>{}</ul>", "<li>x</li>".repeat(101));
        let err = check_tree(&Document::from(wider), &limits()).unwrap_err();
        assert!(err.to_string().contains("elements"), "{err}");
    }

    #[test]
    fn output_bounds() {
        assert!(check_output("0123456789", "md", &limits()).is_ok());
        assert!(check_output("0123456789a", "md", &limits()).is_err());
        assert!(check_output("t", &"m".repeat(21), &limits()).is_err());
        assert!(check_links(3, &limits()).is_ok());
        assert!(check_links(4, &limits()).is_err());
    }
}
