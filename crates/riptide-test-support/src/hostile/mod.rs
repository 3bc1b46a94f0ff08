//! A corpus of hostile pages and the local site that serves them, for tests proving that one
//! tenant's hostile pages cannot hurt the service (issue 9).
//!
//! The service fetches a URL (decoding gzip, deflate, br and zstd, with a cap on the *decoded*
//! body, a total timeout and a redirect limit), then parses and extracts the page under a time
//! budget and output bounds. Each [`Hostile`] page attacks one of those limits, or one of the
//! places where a limit is easy to forget: parser depth and node count, attribute and text
//! sizes, odd bytes, compression ratios, redirects, slow and endless bodies, a lying
//! `Content-Length`. Each carries the answer the service must give it under its default
//! limits ([`Expect`]).
//!
//! Everything is generated in code, deterministically, with no files and no network. Large
//! bodies are built on first use and kept for the life of the test binary (a few tens of MB).
//!
//! ```no_run
//! # async fn example() {
//! use riptide_test_support::hostile::{HostileSite, corpus};
//!
//! let site = HostileSite::start().await;
//! for page in corpus() {
//!     let url = site.url(page.name);
//!     // Ask the service to extract `url`, then check its answer:
//!     // assert!(page.expect.allows(status, code), "{}: {} instead of {}", page.name, status, page.expect);
//! }
//! # }
//! ```
//!
//! The pages themselves are in `pages` (static HTML) and `bombs` (compressed bodies); `site`,
//! `streams` and `lying` serve them.

mod bombs;
mod expect;
mod lying;
mod pages;
mod site;
mod streams;

use std::sync::OnceLock;

use bytes::Bytes;

pub use expect::Expect;
pub use site::HostileSite;

/// One hostile page: what it is and what the service must answer it with.
#[derive(Debug)]
pub struct Hostile {
    /// Its name, also its path on [`HostileSite`]: `/hostile/<name>`.
    pub name: &'static str,
    /// What it is, in one line.
    pub what: &'static str,
    /// The answers the service may give it, with its default limits.
    pub expect: Expect,
    /// How [`HostileSite`] serves it.
    serve: Serve,
}

/// How [`HostileSite`] answers a page's path.
#[derive(Debug)]
enum Serve {
    /// A static HTML page, `text/html; charset=utf-8` with its `Content-Length`.
    Page(Generated),
    /// An HTML body with this `Content-Encoding`, sent as it is.
    Encoded(&'static str, Generated),
    /// A redirect to itself.
    RedirectLoop,
    /// `/hostile/<name>/<n>` redirects to `<n + 1>`.
    RedirectChain,
    /// An HTML head, then a byte every 100 ms, forever.
    SlowBody,
    /// HTML as fast as the client reads it, forever, without a length.
    EndlessBody,
    /// A body longer than its `Content-Length`, written on a raw socket (hyper refuses to).
    LengthLies(Generated),
}

/// A body built on first use, then shared: a clone of [`Bytes`] is a reference count.
struct Generated {
    build: fn() -> Vec<u8>,
    bytes: OnceLock<Bytes>,
}

impl Generated {
    const fn new(build: fn() -> Vec<u8>) -> Self {
        Self {
            build,
            bytes: OnceLock::new(),
        }
    }

    /// The body, built by the first caller; concurrent first callers wait for it.
    fn get(&self) -> Bytes {
        self.bytes
            .get_or_init(|| Bytes::from((self.build)()))
            .clone()
    }
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.bytes.get() {
            Some(bytes) => write!(f, "Generated({} bytes)", bytes.len()),
            None => f.write_str("Generated(not built yet)"),
        }
    }
}

impl Hostile {
    /// The corpus page called `name`.
    pub fn named(name: &str) -> Option<&'static Hostile> {
        corpus().iter().find(|page| page.name == name)
    }

    /// The HTML of a static page (built on first use), for tests that parse it in process
    /// without HTTP; `None` for the bombs, redirects, streams and the length lie, which only
    /// mean something on the wire.
    pub fn page(&self) -> Option<Bytes> {
        match &self.serve {
            Serve::Page(body) => Some(body.get()),
            _ => None,
        }
    }
}

/// The HTML of the static corpus page called `name`; see [`Hostile::page`].
pub fn page(name: &str) -> Option<Bytes> {
    Hostile::named(name)?.page()
}

/// Every hostile page, in a fixed order.
pub fn corpus() -> &'static [Hostile] {
    &CORPUS
}

/// 422: the page is too deep, too big or too linked to extract within the limits.
const TOO_COMPLEX: (u16, &str) = (422, "page_too_complex");
/// 413: the (decoded) body is larger than `max_body_bytes`.
const TOO_LARGE: Expect = Expect::Refused {
    status: 413,
    code: "page_too_large",
};

const fn refused((status, code): (u16, &'static str)) -> Expect {
    Expect::Refused { status, code }
}

const fn ok_or((status, code): (u16, &'static str)) -> Expect {
    Expect::OkOrRefused { status, code }
}

/// The corpus. Sizes are those of the body as served; see `pages` and `bombs` for how each is
/// built and why.
static CORPUS: [Hostile; 22] = [
    Hostile {
        name: "deep-nesting",
        what: "one paragraph inside 20,000 nested <div>s (220 KB)",
        expect: refused(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::deep_nesting)),
    },
    Hostile {
        name: "deep-nesting-huge",
        what: "one paragraph inside 428,000 nested <div>s (4.5 MiB)",
        expect: refused(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::deep_nesting_huge)),
    },
    Hostile {
        name: "deep-tables",
        what: "one paragraph inside 3,000 nested <table><tr><td> (99 KB)",
        expect: refused(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::deep_tables)),
    },
    Hostile {
        name: "formatting-soup",
        what: "100,000 unclosed <b><i><u><font> tags with text, a misnested </b> per group \
               (adoption agency, formatting reconstruction; ~75,000 deep) (1.2 MB)",
        expect: ok_or(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::formatting_soup)),
    },
    Hostile {
        name: "formatting-clones",
        what: "2,000 <p><font id=N> groups: the parser clones every earlier <font> into each \
               new paragraph, 2 million elements from 46 KB",
        expect: refused(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::formatting_clones)),
    },
    Hostile {
        name: "link-flood",
        what: "20,000 relative links <a href=\"xN\"> (450 KB); serve it under a 4 KB path \
               (HostileSite::long_path_url) to make 80 MB of absolute URLs",
        expect: refused(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::link_flood)),
    },
    Hostile {
        name: "tiny-elements",
        what: "1,550,000 empty sibling <p> elements (4.4 MiB)",
        expect: refused(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::tiny_elements)),
    },
    Hostile {
        name: "control-chars",
        what: "an article with NUL, C0/C1 controls, U+202E, U+FEFF and invalid UTF-8 bytes in \
               its title, text and attributes",
        expect: Expect::Ok,
        serve: Serve::Page(Generated::new(pages::control_chars)),
    },
    Hostile {
        name: "huge-attribute",
        what: "an article with a 4 MiB data: URI as an <img src>",
        expect: ok_or(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::huge_attribute)),
    },
    Hostile {
        name: "huge-comment",
        what: "an article with a 4 MiB comment between its paragraphs (about 1.4 s of CPU in \
               the test build: near a 2 s test budget on a loaded machine, so either answer)",
        expect: ok_or(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::huge_comment)),
    },
    Hostile {
        name: "many-attributes",
        what: "an article with one <p> carrying 200,000 distinct attributes (1.9 MB; quadratic \
               duplicate check in html5ever's tokenizer)",
        expect: ok_or(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::many_attributes)),
    },
    Hostile {
        name: "huge-text-node",
        what: "an article with a <p> holding one 4 MiB word without spaces",
        expect: ok_or(TOO_COMPLEX),
        serve: Serve::Page(Generated::new(pages::huge_text_node)),
    },
    Hostile {
        name: "gzip-bomb",
        what: "Content-Encoding: gzip, 1.07 MB decoding to 1 GiB of spaces in a <p>",
        expect: TOO_LARGE,
        serve: Serve::Encoded("gzip", Generated::new(bombs::gzip)),
    },
    Hostile {
        name: "deflate-bomb",
        what: "Content-Encoding: deflate (zlib), 1.07 MB decoding to 1 GiB of spaces in a <p>",
        expect: TOO_LARGE,
        serve: Serve::Encoded("deflate", Generated::new(bombs::deflate)),
    },
    Hostile {
        name: "brotli-bomb",
        what: "Content-Encoding: br, 17 KB decoding to 1 GiB of spaces in a <p>",
        expect: TOO_LARGE,
        serve: Serve::Encoded("br", Generated::new(bombs::brotli)),
    },
    Hostile {
        name: "zstd-bomb",
        what: "Content-Encoding: zstd, 33 KB decoding to 1 GiB of spaces in a <p>",
        expect: TOO_LARGE,
        serve: Serve::Encoded("zstd", Generated::new(bombs::zstd)),
    },
    Hostile {
        name: "bad-encoding",
        what: "Content-Encoding: gzip on a plain HTML body",
        expect: Expect::OneOf(&[(502, "decode_failed"), (502, "upstream_unreachable")]),
        serve: Serve::Encoded("gzip", Generated::new(bombs::not_gzip)),
    },
    Hostile {
        name: "redirect-loop",
        what: "302 to itself, forever",
        expect: Expect::Refused {
            status: 502,
            code: "too_many_redirects",
        },
        serve: Serve::RedirectLoop,
    },
    Hostile {
        name: "redirect-chain",
        what: "302 from /hostile/redirect-chain/N to N + 1, forever",
        expect: Expect::Refused {
            status: 502,
            code: "too_many_redirects",
        },
        serve: Serve::RedirectChain,
    },
    Hostile {
        name: "slow-body",
        what: "an HTML head at once, then one byte every 100 ms, forever",
        expect: Expect::Refused {
            status: 504,
            code: "upstream_timeout",
        },
        serve: Serve::SlowBody,
    },
    Hostile {
        name: "endless-body",
        what: "HTML paragraphs as fast as the client reads, forever, chunked without a length",
        expect: TOO_LARGE,
        serve: Serve::EndlessBody,
    },
    Hostile {
        name: "length-lies",
        what: "Content-Length: 100 followed by a 1 MiB body on a kept-alive connection",
        expect: Expect::OkOrRefused {
            status: 502,
            code: "upstream_unreachable",
        },
        serve: Serve::LengthLies(Generated::new(pages::length_lies)),
    },
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_corpus_has_every_page_once() {
        let names: HashSet<_> = corpus().iter().map(|page| page.name).collect();
        assert_eq!(names.len(), corpus().len());
        for name in [
            "deep-nesting",
            "deep-nesting-huge",
            "deep-tables",
            "formatting-soup",
            "link-flood",
            "tiny-elements",
            "control-chars",
            "huge-attribute",
            "huge-comment",
            "many-attributes",
            "huge-text-node",
            "gzip-bomb",
            "deflate-bomb",
            "brotli-bomb",
            "zstd-bomb",
            "bad-encoding",
            "redirect-loop",
            "redirect-chain",
            "slow-body",
            "endless-body",
            "length-lies",
        ] {
            assert!(names.contains(name), "{name}");
        }
        for page in corpus() {
            assert!(
                page.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                page.name
            );
            assert!(!page.what.is_empty() && !page.what.contains('\n'));
            assert!(std::ptr::eq(
                Hostile::named(page.name).expect("named"),
                page
            ));
        }
    }

    #[test]
    fn only_static_pages_have_a_page() {
        let deep = page("deep-nesting").expect("a static page");
        assert!(deep.starts_with(b"<!doctype html>"));
        assert_eq!(page("deep-nesting"), Some(deep), "built once");
        for name in [
            "gzip-bomb",
            "slow-body",
            "redirect-loop",
            "length-lies",
            "nope",
        ] {
            assert!(page(name).is_none(), "{name}");
        }
        let statics = corpus().iter().filter(|p| p.page().is_some()).count();
        assert_eq!(statics, 12);
    }

    /// Prints what each generated body costs to build and its size: run with
    /// `cargo test -p riptide-test-support corpus_build_times -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn corpus_build_times() {
        for page in corpus() {
            let build = match &page.serve {
                Serve::Page(body) | Serve::Encoded(_, body) | Serve::LengthLies(body) => body.build,
                _ => continue,
            };
            let started = Instant::now();
            let len = build().len();
            eprintln!("{:<18} {len:>9} bytes  {:?}", page.name, started.elapsed());
        }
    }
}
