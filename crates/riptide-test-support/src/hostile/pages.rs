//! The static hostile pages: HTML built in code, byte for byte the same on every run.
//!
//! Each generator returns the whole page. They fall in two groups:
//!
//! - **Structure** that costs the parser or the extractor far more than its size suggests:
//!   depth (`deep-*`, `formatting-soup`), element count (`tiny-elements`, `formatting-clones`)
//!   and links (`link-flood`). These carry no real article; the service should refuse them as
//!   too complex rather than spend its budget or its stack on them.
//! - **Content** that is odd or huge inside an otherwise normal article (`control-chars`,
//!   `huge-*`, `many-attributes`): the article is still there to extract, and the service should
//!   either extract it or refuse it, but never crash, hang or answer unbounded.
//!
//! Everything stays below the service's default 5 MiB body cap, so the body cap never hides
//! what a page is testing. Sizes are constants here so the tests can check them.

/// `deep-nesting`: nested `<div>`s around the one paragraph.
pub(crate) const DEEP_NESTING_DEPTH: usize = 20_000;
/// `deep-nesting-huge`: nested `<div>`s, each 11 bytes (`<div>` and `</div>`): about 4.5 MiB.
pub(crate) const DEEP_NESTING_HUGE_DEPTH: usize = 428_000;
/// `deep-tables`: nested `<table><tr><td>`.
pub(crate) const DEEP_TABLES_DEPTH: usize = 3_000;
/// `formatting-soup`: formatting start tags, in groups of `<b><i><u><font>`.
pub(crate) const FORMATTING_TAGS: usize = 100_000;
/// `formatting-clones`: `<p><font id=…>` groups; the parser clones every earlier `<font>` into
/// each new paragraph, so it builds about `n² / 2` elements.
pub(crate) const FORMATTING_CLONE_GROUPS: usize = 2_000;
/// `link-flood`: relative links.
pub(crate) const LINKS: usize = 20_000;
/// `tiny-elements`: empty `<p>` start tags, 3 bytes each.
pub(crate) const TINY_ELEMENTS: usize = 1_550_000;
/// `huge-attribute`, `huge-comment`, `huge-text-node`: the size of the one huge thing.
pub(crate) const HUGE: usize = 4 << 20;
/// `many-attributes`: attributes on one element.
pub(crate) const ATTRIBUTES: usize = 200_000;
/// `length-lies`: the `Content-Length` it declares.
pub(crate) const LIES_DECLARED: usize = 100;
/// `length-lies`: the body it sends.
pub(crate) const LIES_SENT: usize = 1 << 20;

/// Plain prose, so that the pages meant to be extracted have an article worth extracting.
const PARAGRAPHS: [&str; 5] = [
    "The keepers of the northern lights kept a log of every ship that passed, every storm that \
     broke on the rocks and every night the lamp burned without trouble. The logs fill a whole \
     shelf of the harbour museum today, and they are read more than most novels in its library.",
    "A keeper's day began at dusk. The lens was polished, the wick trimmed and the clockwork \
     that turned the light wound by hand every few hours. Missing a winding meant a dark sector \
     at sea, and a dark sector could mean a ship on the reef before morning.",
    "Supplies came by boat once a month when the weather allowed it, which in winter it often \
     did not. Keepers learned to bake, to mend, to fish and to wait. Many kept gardens in \
     sheltered corners of the rock, growing potatoes in soil carried out one bucket at a time.",
    "Automation arrived slowly. The first unattended lights used acetylene and a sun valve that \
     shut the gas off at dawn; later ones ran on electricity with spare lamps that swung into \
     place by themselves. The last keeper of the northern station left in the spring of 1998.",
    "The towers still stand. Some are holiday cottages now, some are museums, and a few are \
     simply locked and left to the gulls. Their lights still turn every night, watched by no \
     one, and the ships that pass them rarely think of the people who once kept them burning.",
];

/// `<!doctype html>`, a head with `title`, then the body that `body` writes.
fn document(title: &[u8], capacity: usize, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 256);
    out.extend_from_slice(
        b"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>",
    );
    out.extend_from_slice(title);
    out.extend_from_slice(b"</title></head>\n<body>\n");
    body(&mut out);
    out.extend_from_slice(b"\n</body></html>\n");
    out
}

/// An `<article>` with a heading and [`PARAGRAPHS`], with `inside` written after the second
/// paragraph: hostile content in the middle of the text an extractor keeps.
fn article(out: &mut Vec<u8>, heading: &str, inside: impl FnOnce(&mut Vec<u8>)) {
    let (before, after) = PARAGRAPHS.split_at(2);
    out.extend_from_slice(format!("<article><h1>{heading}</h1>\n").as_bytes());
    for text in before {
        out.extend_from_slice(format!("<p>{text}</p>\n").as_bytes());
    }
    inside(out);
    for text in after {
        out.extend_from_slice(format!("<p>{text}</p>\n").as_bytes());
    }
    out.extend_from_slice(b"</article>");
}

/// `open` `depth` times, then `inner`, then `close` `depth` times.
fn nested(out: &mut Vec<u8>, depth: usize, open: &[u8], close: &[u8], inner: &[u8]) {
    for _ in 0..depth {
        out.extend_from_slice(open);
    }
    out.extend_from_slice(inner);
    for _ in 0..depth {
        out.extend_from_slice(close);
    }
}

/// `len` bytes cycling through `pattern`.
fn filler(out: &mut Vec<u8>, len: usize, pattern: &[u8]) {
    out.extend(pattern.iter().copied().cycle().take(len));
}

/// One paragraph of prose, as HTML.
fn paragraph() -> Vec<u8> {
    format!("<p>{}</p>", PARAGRAPHS[0]).into_bytes()
}

/// `deep-nesting`: one paragraph inside [`DEEP_NESTING_DEPTH`] nested `<div>`s.
pub(crate) fn deep_nesting() -> Vec<u8> {
    document(b"Deep nesting", DEEP_NESTING_DEPTH * 11, |out| {
        nested(out, DEEP_NESTING_DEPTH, b"<div>", b"</div>", &paragraph());
    })
}

/// `deep-nesting-huge`: one paragraph inside [`DEEP_NESTING_HUGE_DEPTH`] nested `<div>`s.
pub(crate) fn deep_nesting_huge() -> Vec<u8> {
    document(b"Deep nesting, huge", DEEP_NESTING_HUGE_DEPTH * 11, |out| {
        nested(
            out,
            DEEP_NESTING_HUGE_DEPTH,
            b"<div>",
            b"</div>",
            &paragraph(),
        );
    })
}

/// `deep-tables`: one paragraph inside [`DEEP_TABLES_DEPTH`] nested single-cell tables.
pub(crate) fn deep_tables() -> Vec<u8> {
    document(b"Deep tables", DEEP_TABLES_DEPTH * 33, |out| {
        nested(
            out,
            DEEP_TABLES_DEPTH,
            b"<table><tr><td>",
            b"</td></tr></table>",
            &paragraph(),
        );
    })
}

/// `formatting-soup`: [`FORMATTING_TAGS`] start tags as `<b>w <i>w <u>w <font>w </b>` groups.
///
/// None of them is closed except `<b>`, and that `</b>` is misnested (three formatting elements
/// are open inside it), so each group runs the HTML adoption agency algorithm. The `<i>`, `<u>`
/// and `<font>` it pops stay in the list of active formatting elements, and the next group's
/// first start tag reconstructs (clones) them: by the spec the tree ends up about three
/// elements deeper per group, some 75,000 deep in all.
pub(crate) fn formatting_soup() -> Vec<u8> {
    let groups = FORMATTING_TAGS / 4;
    document(b"Formatting soup", groups * 48, |out| {
        out.extend_from_slice(b"<h1>Formatting soup</h1>\n");
        for g in 0..groups {
            out.extend_from_slice(format!("<b>b{g} <i>i{g} <u>u{g} <font>f{g} </b>\n").as_bytes());
        }
    })
}

/// `formatting-clones`: [`FORMATTING_CLONE_GROUPS`] `<p><font id=fN>wN` groups, about 46 KB.
///
/// Each `<p>` closes the previous paragraph and pops its `<font>`s, which stay in the list of
/// active formatting elements; each new `<font>` start tag then reconstructs (clones) all of
/// them inside the new paragraph. Their `id`s differ, so the "Noah's Ark" rule that keeps at
/// most three identical entries never removes any: group `n` creates `n` clones, about two
/// million elements in all from 46 KB. At this rate a page at the 5 MiB cap (about 230,000
/// groups) would make 2.6·10¹⁰ elements, so only a node budget enforced while parsing helps.
pub(crate) fn formatting_clones() -> Vec<u8> {
    document(b"Formatting clones", FORMATTING_CLONE_GROUPS * 24, |out| {
        for g in 0..FORMATTING_CLONE_GROUPS {
            out.extend_from_slice(format!("<p><font id=f{g}>w{g}\n").as_bytes());
        }
    })
}

/// `link-flood`: [`LINKS`] relative links `<a href="xN">l</a>` in one paragraph.
///
/// Served under a long path ending in `/` (see [`super::HostileSite::long_path_url`]), each
/// 20-odd-byte link resolves to a URL as long as that path: 20,000 links under a 4 KB path
/// make 80 MB of absolute URLs.
pub(crate) fn link_flood() -> Vec<u8> {
    document(b"Link flood", LINKS * 23, |out| {
        out.extend_from_slice(b"<h1>Link flood</h1>\n<p>");
        for i in 0..LINKS {
            out.extend_from_slice(format!("<a href=\"x{i}\">l</a>\n").as_bytes());
        }
        out.extend_from_slice(b"</p>");
    })
}

/// `tiny-elements`: [`TINY_ELEMENTS`] empty `<p>` start tags, about 4.4 MiB.
///
/// Each `<p>` start tag closes the previous paragraph, so they are siblings: 1.55 million
/// elements in a flat list. (Unclosed `<i>`s would nest instead, which is `deep-nesting` again;
/// `<b></b>` takes 7 bytes, so 1.5 million of them would not fit in 5 MiB.)
pub(crate) fn tiny_elements() -> Vec<u8> {
    document(b"Tiny elements", TINY_ELEMENTS * 3, |out| {
        out.extend_from_slice(b"<h1>Tiny elements</h1>\n");
        for _ in 0..TINY_ELEMENTS {
            out.extend_from_slice(b"<p>");
        }
    })
}

/// Control and odd characters, each as its UTF-8 bytes unless noted.
///
/// NUL, C0 controls (BEL, ESC with an ANSI colour sequence, backspace, vertical tab, form feed,
/// DEL), C1 controls (NEL U+0085, CSI U+009B), U+202E (right-to-left override) and U+202C,
/// U+FEFF (zero-width no-break space), U+2028 (line separator), and bytes that are not UTF-8
/// at all: a lone continuation byte, 0xFF, 0xFE, an overlong `/`, a UTF-16 surrogate, a
/// truncated sequence and a raw Latin-1 C1 byte.
const CONTROLS: &[u8] = b"\x00 nul \x07 bel \x1b[31m esc \x08 bs \x0b vt \x0c ff \x7f del \
    \xc2\x85 nel \xc2\x9b csi \xe2\x80\xaereversed\xe2\x80\xac \xef\xbb\xbf zwnbsp \
    \xe2\x80\xa8 ls \x80 lone \xff ff \xfe fe \xc0\xaf overlong \xed\xa0\x80 surrogate \
    \xe2\x82 truncated \x85 latin1-nel";

/// `control-chars`: an article with [`CONTROLS`] in its title, its text and its attributes.
pub(crate) fn control_chars() -> Vec<u8> {
    let mut title = b"Control characters ".to_vec();
    title.extend_from_slice(CONTROLS);
    document(&title, 4096, |out| {
        out.extend_from_slice(b"<meta name=\"description\" content=\"");
        out.extend_from_slice(CONTROLS);
        out.extend_from_slice(b"\">\n");
        article(out, "Control characters", |out| {
            out.extend_from_slice(b"<p class=\"");
            out.extend_from_slice(CONTROLS);
            out.extend_from_slice(b"\" title=\"");
            out.extend_from_slice(CONTROLS);
            out.extend_from_slice(b"\">Text with ");
            out.extend_from_slice(CONTROLS);
            out.extend_from_slice(b" in it, and <a href=\"/page\x00?q=\xe2\x80\xae\xff\">a link");
            out.extend_from_slice(CONTROLS);
            out.extend_from_slice(b"</a> and <img alt=\"");
            out.extend_from_slice(CONTROLS);
            out.extend_from_slice(b"\" src=\"/img\x07\xef\xbb\xbf.png\">.</p>\n");
        });
    })
}

/// `huge-attribute`: an article with an image whose `src` is a [`HUGE`] `data:` URI, the one
/// attribute an extractor is most likely to copy into its answer.
pub(crate) fn huge_attribute() -> Vec<u8> {
    document(b"Huge attribute", HUGE, |out| {
        article(out, "Huge attribute", |out| {
            out.extend_from_slice(b"<p><img alt=\"a huge image\" src=\"data:image/png;base64,");
            filler(out, HUGE, b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB");
            out.extend_from_slice(b"\"></p>\n");
        });
    })
}

/// `huge-comment`: an article with a [`HUGE`] comment in the middle of its text.
pub(crate) fn huge_comment() -> Vec<u8> {
    document(b"Huge comment", HUGE, |out| {
        article(out, "Huge comment", |out| {
            out.extend_from_slice(b"<!--");
            filler(out, HUGE, b"a very long comment ");
            out.extend_from_slice(b"-->\n");
        });
    })
}

/// `many-attributes`: an article with a paragraph carrying [`ATTRIBUTES`] distinct attributes,
/// about 1.9 MB of `a0=x a1=x …`.
///
/// All the names differ so that a parser checking for duplicates compares each new one with
/// every earlier one: html5ever's tokenizer does, which makes this page quadratic to tokenize
/// (2·10¹⁰ comparisons) inside a single start tag.
pub(crate) fn many_attributes() -> Vec<u8> {
    document(b"Many attributes", ATTRIBUTES * 10, |out| {
        article(out, "Many attributes", |out| {
            out.extend_from_slice(b"<p");
            for i in 0..ATTRIBUTES {
                out.extend_from_slice(format!(" a{i}=x").as_bytes());
            }
            out.extend_from_slice(b">A paragraph with many attributes.</p>\n");
        });
    })
}

/// `huge-text-node`: an article with a paragraph holding one [`HUGE`] word without spaces.
pub(crate) fn huge_text_node() -> Vec<u8> {
    document(b"Huge text node", HUGE, |out| {
        article(out, "Huge text node", |out| {
            out.extend_from_slice(b"<p>");
            filler(out, HUGE, b"abcdefghijklmnopqrstuvwxyz");
            out.extend_from_slice(b"</p>\n");
        });
    })
}

/// `length-lies`: [`LIES_SENT`] bytes of HTML whose first [`LIES_DECLARED`] bytes are a small
/// page of their own, so a client that reads only what the `Content-Length` says still gets a
/// title and a sentence.
pub(crate) fn length_lies() -> Vec<u8> {
    let mut out = b"<title>Length lies</title><p>The header promised a hundred bytes.</p>".to_vec();
    out.resize(LIES_DECLARED, b' ');
    out.extend_from_slice(b"\n<p>");
    while out.len() < LIES_SENT {
        out.extend_from_slice(PARAGRAPHS[1].as_bytes());
        out.push(b' ');
    }
    out.truncate(LIES_SENT);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-overlapping occurrences of `needle` in `haystack`.
    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        let mut n = 0;
        let mut i = 0;
        while let Some(at) = haystack[i..]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            n += 1;
            i += at + needle.len();
        }
        n
    }

    /// The longest run of `needle` repeated back to back.
    fn longest_run(haystack: &[u8], needle: &[u8]) -> usize {
        let (mut best, mut run, mut i) = (0, 0, 0);
        while i + needle.len() <= haystack.len() {
            if &haystack[i..i + needle.len()] == needle {
                run += 1;
                best = best.max(run);
                i += needle.len();
            } else {
                run = 0;
                i += 1;
            }
        }
        best
    }

    const MIB: usize = 1 << 20;
    const CAP: usize = 5 * MIB;

    #[test]
    fn nesting_pages_are_as_deep_as_described() {
        let page = deep_nesting();
        assert_eq!(longest_run(&page, b"<div>"), DEEP_NESTING_DEPTH);
        assert_eq!(longest_run(&page, b"</div>"), DEEP_NESTING_DEPTH);
        assert!((215_000..230_000).contains(&page.len()), "{}", page.len());

        let huge = deep_nesting_huge();
        assert_eq!(longest_run(&huge, b"<div>"), DEEP_NESTING_HUGE_DEPTH);
        assert!((4 * MIB + MIB / 3..=4 * MIB + MIB / 2).contains(&huge.len()));

        let tables = deep_tables();
        assert_eq!(longest_run(&tables, b"<table><tr><td>"), DEEP_TABLES_DEPTH);
        assert_eq!(
            longest_run(&tables, b"</td></tr></table>"),
            DEEP_TABLES_DEPTH
        );
    }

    #[test]
    fn element_floods_have_their_counts() {
        let soup = formatting_soup();
        let tags: usize = [&b"<b>"[..], b"<i>", b"<u>", b"<font>"]
            .iter()
            .map(|tag| count(&soup, tag))
            .sum();
        assert_eq!(tags, FORMATTING_TAGS);
        assert_eq!(count(&soup, b"</b>"), FORMATTING_TAGS / 4);

        let clones = formatting_clones();
        assert_eq!(count(&clones, b"<font id=f"), FORMATTING_CLONE_GROUPS);
        assert!(clones.len() < 50_000, "{}", clones.len());

        let links = link_flood();
        assert_eq!(count(&links, b"<a href=\"x"), LINKS);
        assert!((430_000..470_000).contains(&links.len()), "{}", links.len());

        let tiny = tiny_elements();
        assert_eq!(longest_run(&tiny, b"<p>"), TINY_ELEMENTS);
        const { assert!(TINY_ELEMENTS >= 1_500_000) };
        assert!(tiny.len() <= 4 * MIB + MIB / 2, "{}", tiny.len());
    }

    #[test]
    fn huge_pages_hold_their_huge_part_and_an_article() {
        for (page, run) in [
            (huge_attribute(), &b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"[..]),
            (huge_comment(), b"a very long comment "),
            (huge_text_node(), b"abcdefghijklmnopqrstuvwxyz"),
        ] {
            assert!(longest_run(&page, run) * run.len() >= HUGE - run.len());
            assert!(page.len() > HUGE && page.len() < CAP, "{}", page.len());
            for text in PARAGRAPHS {
                assert_eq!(count(&page, text.as_bytes()), 1);
            }
        }
        let many = many_attributes();
        assert_eq!(count(&many, b"=x"), ATTRIBUTES);
        assert_eq!(count(&many, b" a199999=x>"), 1);
        assert!(many.len() < CAP);
    }

    #[test]
    fn control_chars_are_in_title_text_and_attributes() {
        let page = control_chars();
        assert!(
            std::str::from_utf8(&page).is_err(),
            "must not be valid UTF-8"
        );
        for (before, after) in [
            (&b"<title>Control characters "[..], &b"</title>"[..]),
            (b"content=\"", b"\">"),
            (b"class=\"", b"\" title"),
            (b"\">Text with ", b" in it"),
            (b"<img alt=\"", b"\" src"),
        ] {
            let mut needle = before.to_vec();
            needle.extend_from_slice(CONTROLS);
            needle.extend_from_slice(after);
            assert_eq!(
                count(&page, &needle),
                1,
                "{}",
                String::from_utf8_lossy(before)
            );
        }
        for needle in [
            &b"\x00"[..],
            b"\xe2\x80\xae",
            b"\xef\xbb\xbf",
            b"\xc2\x85",
            b"\xff",
        ] {
            assert!(count(&page, needle) >= 6, "{needle:?}");
        }
    }

    #[test]
    fn length_lies_starts_with_a_page_of_the_declared_length() {
        let body = length_lies();
        assert_eq!(body.len(), LIES_SENT);
        let declared = std::str::from_utf8(&body[..LIES_DECLARED]).expect("ASCII");
        assert!(declared.trim_end().ends_with("</p>"), "{declared}");
    }

    #[test]
    fn pages_are_deterministic() {
        assert_eq!(control_chars(), control_chars());
        assert_eq!(formatting_soup(), formatting_soup());
    }
}
