//! [`HostileSite`]: the corpus served over HTTP on loopback, for tests that send the service
//! after it.
//!
//! Every page is at `/hostile/<name>`, and at `/hostile/<name>/<anything>` too, so that a page
//! can be fetched under a long path ([`HostileSite::long_path_url`]) and `redirect-chain` can
//! count in its last segment. `length-lies` alone is on a second port (see the `lying`
//! module); [`HostileSite::url`] knows which.
//!
//! The site counts the requests for each page ([`HostileSite::hits`]), so a test can tell a
//! cached answer from a fetch, and the stream bodies still being sent
//! ([`HostileSite::open_streams`]), so it can check that the service let go of a connection.

use std::collections::HashMap;
use std::iter;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::streams::{self, OpenStreams};
use super::{Hostile, Serve, corpus, lying};

/// The content type of every page, bombs included.
const HTML: &str = "text/html; charset=utf-8";

/// The hostile corpus, served on two free ports of 127.0.0.1 until dropped.
///
/// Dropping it stops both listeners and the `length-lies` connections. Responses already
/// being sent on the HTTP port (the endless streams) end when their client goes away or the
/// test's runtime shuts down, whichever comes first.
#[derive(Debug)]
pub struct HostileSite {
    /// The axum server: every page but `length-lies`.
    http: SocketAddr,
    /// The raw listener for `length-lies`.
    raw: SocketAddr,
    hits: Arc<Hits>,
    open_streams: OpenStreams,
    tasks: [JoinHandle<()>; 2],
}

impl HostileSite {
    /// Starts the site. Call it inside a tokio runtime; it serves on that runtime's tasks.
    ///
    /// Panics if it cannot bind 127.0.0.1.
    pub async fn start() -> Self {
        let bind = || TcpListener::bind((Ipv4Addr::LOCALHOST, 0));
        let http = bind().await.expect("bind a free port on 127.0.0.1");
        let raw = bind().await.expect("bind a free port on 127.0.0.1");
        let addrs = (
            http.local_addr().expect("bound address"),
            raw.local_addr().expect("bound address"),
        );
        let hits = Arc::new(Hits::new());
        let open_streams = OpenStreams::default();
        let app = Router::new()
            .route("/hostile/{name}", get(answer))
            .route("/hostile/{name}/{*rest}", get(answer_under))
            .with_state(Site {
                hits: hits.clone(),
                open_streams: open_streams.clone(),
            });
        let server = tokio::spawn(async move {
            axum::serve(http, app)
                .await
                .expect("axum::serve only returns on shutdown");
        });
        let liar = tokio::spawn(lying::serve(raw, lies_body(), hits.clone()));
        Self {
            http: addrs.0,
            raw: addrs.1,
            hits,
            open_streams,
            tasks: [server, liar],
        }
    }

    /// `http://127.0.0.1:PORT/hostile/<name>`. Panics if the corpus has no page `name`.
    pub fn url(&self, name: &str) -> String {
        let page = known(name);
        format!("http://{}/hostile/{}", self.addr_of(page), page.name)
    }

    /// The URL of page `name` under a path `len` bytes long that ends in `/`:
    /// `/hostile/<name>/aaaa…/aaaa…/`, in segments of at most 64 bytes. Relative links on the
    /// page then resolve to URLs as long as this one. (If `len` is too short for that, the path
    /// is `/hostile/<name>/`; if it leaves exactly one byte after it, the path ends in `a`.)
    ///
    /// Panics if the corpus has no page `name`.
    pub fn long_path_url(&self, name: &str, len: usize) -> String {
        const SEGMENT: usize = 64;
        let page = known(name);
        let mut path = format!("/hostile/{}/", page.name);
        let mut left = len.saturating_sub(path.len());
        while left > 0 {
            if left == 1 {
                path.push('a');
                break;
            }
            let mut segment = (left - 1).min(SEGMENT);
            if left - segment - 1 == 1 {
                segment -= 1; // leave room for a segment and its slash, not one lone byte
            }
            path.extend(iter::repeat_n('a', segment));
            path.push('/');
            left -= segment + 1;
        }
        format!("http://{}{path}", self.addr_of(page))
    }

    /// The requests for page `name` answered so far, under any path. Panics if the corpus has
    /// no page `name`.
    pub fn hits(&self, name: &str) -> u64 {
        self.hits.get(known(name).name)
    }

    /// The `slow-body` and `endless-body` responses still being sent. Each ends (and this
    /// drops) once its client has closed the connection and the next write to it failed:
    /// within a few hundred milliseconds.
    pub fn open_streams(&self) -> usize {
        self.open_streams.count()
    }

    /// The listener that serves `page`.
    fn addr_of(&self, page: &Hostile) -> SocketAddr {
        match page.serve {
            Serve::LengthLies(_) => self.raw,
            _ => self.http,
        }
    }
}

impl Drop for HostileSite {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The corpus page `name`, or a panic naming the typo.
fn known(name: &str) -> &'static Hostile {
    Hostile::named(name).unwrap_or_else(|| panic!("the hostile corpus has no page {name:?}"))
}

/// The body the raw listener lies with.
fn lies_body() -> &'static super::Generated {
    corpus()
        .iter()
        .find_map(|page| match &page.serve {
            Serve::LengthLies(body) => Some(body),
            _ => None,
        })
        .expect("the corpus has a length-lies page")
}

/// Requests answered per corpus page; the names are fixed, so counting needs no lock.
#[derive(Debug)]
pub(crate) struct Hits(HashMap<&'static str, AtomicU64>);

impl Hits {
    fn new() -> Self {
        Self(
            corpus()
                .iter()
                .map(|page| (page.name, AtomicU64::new(0)))
                .collect(),
        )
    }

    /// Counts a request for page `name`.
    pub(crate) fn count(&self, name: &str) {
        if let Some(hits) = self.0.get(name) {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .get(name)
            .map_or(0, |hits| hits.load(Ordering::SeqCst))
    }
}

/// What the handlers share.
#[derive(Clone)]
struct Site {
    hits: Arc<Hits>,
    open_streams: OpenStreams,
}

/// `GET /hostile/{name}`.
async fn answer(State(site): State<Site>, Path(name): Path<String>) -> Response {
    serve(&site, &name, None)
}

/// `GET /hostile/{name}/{*rest}`.
async fn answer_under(
    State(site): State<Site>,
    Path((name, rest)): Path<(String, String)>,
) -> Response {
    serve(&site, &name, Some(&rest))
}

/// Answers a request for page `name`, found under `/hostile/<name>/<rest>`.
fn serve(site: &Site, name: &str, rest: Option<&str>) -> Response {
    let Some(page) = Hostile::named(name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    site.hits.count(page.name);
    match &page.serve {
        Serve::Page(body) => ([(header::CONTENT_TYPE, HTML)], body.get()).into_response(),
        Serve::Encoded(encoding, body) => (
            [
                (header::CONTENT_TYPE, HTML),
                (header::CONTENT_ENCODING, *encoding),
            ],
            body.get(),
        )
            .into_response(),
        Serve::RedirectLoop => redirect(format!("/hostile/{}", page.name)),
        Serve::RedirectChain => {
            let n = rest.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            redirect(format!("/hostile/{}/{}", page.name, n.saturating_add(1)))
        }
        Serve::SlowBody => (
            [(header::CONTENT_TYPE, HTML)],
            streams::slow_body(&site.open_streams),
        )
            .into_response(),
        Serve::EndlessBody => (
            [(header::CONTENT_TYPE, HTML)],
            streams::endless_body(&site.open_streams),
        )
            .into_response(),
        Serve::LengthLies(_) => (
            StatusCode::MISDIRECTED_REQUEST,
            "length-lies is served on its own port: use HostileSite::url",
        )
            .into_response(),
    }
}

/// A 302 to `location`.
fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures::StreamExt;
    use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
    use reqwest::{Client, Response, redirect};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::hostile::pages::{LIES_DECLARED, LIES_SENT};
    use crate::hostile::streams::{ENDLESS_HEAD, SLOW_HEAD};

    /// A client that shows the wire: no decompression, no redirects, no proxy.
    fn client() -> Client {
        Client::builder()
            .no_gzip()
            .no_brotli()
            .no_deflate()
            .no_zstd()
            .no_proxy()
            .redirect(redirect::Policy::none())
            .build()
            .expect("reqwest client")
    }

    async fn get(url: &str) -> Response {
        client().get(url).send().await.expect("the site answers")
    }

    fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<&str> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Waits up to 5 s for `done`.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(5), "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads `response` until at least `len` bytes arrived.
    async fn read_at_least(response: Response, len: usize) -> Vec<u8> {
        let mut body = response.bytes_stream();
        let mut got = Vec::new();
        while got.len() < len {
            let chunk = body.next().await.expect("more body").expect("a chunk");
            got.extend_from_slice(&chunk);
        }
        got
    }

    #[tokio::test]
    async fn static_pages_and_encoded_bodies_are_served_whole() {
        let site = HostileSite::start().await;
        let mut served = 0;
        for page in corpus() {
            let (expected, encoding): (Bytes, _) = match &page.serve {
                Serve::Page(body) => (body.get(), None),
                Serve::Encoded(encoding, body) => (body.get(), Some(*encoding)),
                _ => continue,
            };
            let response = get(&site.url(page.name)).await;
            let name = page.name;
            assert_eq!(response.status(), 200, "{name}");
            assert_eq!(header(&response, CONTENT_TYPE), Some(HTML), "{name}");
            assert_eq!(header(&response, CONTENT_ENCODING), encoding, "{name}");
            let len = expected.len().to_string();
            assert_eq!(header(&response, CONTENT_LENGTH), Some(&*len), "{name}");
            let body = response.bytes().await.expect("whole body");
            assert!(body == expected, "{name}: the body differs");
            assert_eq!(site.hits(name), 1, "{name}");
            served += 1;
        }
        assert_eq!(served, 17);
    }

    #[tokio::test]
    async fn redirects_never_end() {
        let site = HostileSite::start().await;
        let looping = get(&site.url("redirect-loop")).await;
        assert_eq!(looping.status(), 302);
        assert_eq!(header(&looping, LOCATION), Some("/hostile/redirect-loop"));

        let chain = get(&site.url("redirect-chain")).await;
        assert_eq!(header(&chain, LOCATION), Some("/hostile/redirect-chain/1"));
        let later = get(&format!("{}/41", site.url("redirect-chain"))).await;
        assert_eq!(header(&later, LOCATION), Some("/hostile/redirect-chain/42"));

        // A client that follows redirects gives up after its limit: 1 request + 10 redirects.
        let following = Client::builder()
            .no_proxy()
            .redirect(redirect::Policy::limited(10))
            .build()
            .expect("reqwest client");
        for name in ["redirect-loop", "redirect-chain"] {
            let err = following
                .get(site.url(name))
                .send()
                .await
                .expect_err("too many redirects");
            assert!(err.is_redirect(), "{name}: {err}");
        }
        assert_eq!(site.hits("redirect-loop"), 1 + 11);
        assert_eq!(site.hits("redirect-chain"), 2 + 11);
    }

    #[tokio::test]
    async fn slow_body_drips_until_the_client_leaves() {
        let site = HostileSite::start().await;
        let response = get(&site.url("slow-body")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, CONTENT_LENGTH), None);
        let mut body = response.bytes_stream();
        let mut got = Vec::new();
        while got.len() < SLOW_HEAD.len() {
            got.extend_from_slice(&body.next().await.expect("head").expect("chunk"));
        }
        let started = Instant::now();
        while got.len() < SLOW_HEAD.len() + 4 {
            got.extend_from_slice(&body.next().await.expect("a drip").expect("chunk"));
        }
        let took = started.elapsed();
        assert!(got.starts_with(SLOW_HEAD));
        assert_eq!(&got[SLOW_HEAD.len()..], b"slow");
        assert!(took >= Duration::from_millis(350), "4 bytes in {took:?}");
        assert_eq!(site.open_streams(), 1);

        drop(body);
        eventually("slow-body still sending", || site.open_streams() == 0).await;
    }

    #[tokio::test]
    async fn endless_body_streams_until_the_client_leaves() {
        let site = HostileSite::start().await;
        let response = get(&site.url("endless-body")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, CONTENT_LENGTH), None);
        let body = read_at_least(response, 16 << 20).await;
        assert!(body.starts_with(ENDLESS_HEAD));
        assert_eq!(site.open_streams(), 1);
        drop(body);
        eventually("endless-body still sending", || site.open_streams() == 0).await;
        assert_eq!(site.hits("endless-body"), 1);
    }

    #[tokio::test]
    async fn length_lies_sends_more_than_it_declares() {
        let site = HostileSite::start().await;
        assert!(site.url("length-lies").contains(&site.raw.to_string()));

        // On the wire: the declared 100 bytes, then the rest of 1 MiB, for every request.
        let mut socket = TcpStream::connect(site.raw).await.expect("connect");
        let request = b"GET /hostile/length-lies HTTP/1.1\r\nHost: hostile\r\n\r\n";
        for round in 1..=2 {
            socket.write_all(request).await.expect("send request");
            let mut received = Vec::new();
            let head_end = loop {
                if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                socket.read_buf(&mut received).await.expect("read head");
            };
            let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
            assert!(head.contains("content-length: 100\r\n"), "{head}");
            while received.len() < head_end + LIES_SENT {
                let n = socket.read_buf(&mut received).await.expect("read body");
                assert_ne!(n, 0, "closed early");
            }
            assert_eq!(received.len(), head_end + LIES_SENT, "round {round}");
            assert_eq!(site.hits("length-lies"), round);
        }

        // A client believes the header.
        let response = get(&site.url("length-lies")).await;
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("100 bytes");
        assert_eq!(body.len(), LIES_DECLARED);
        assert!(body.starts_with(b"<title>Length lies</title>"));

        // On the HTTP port, the page only points at the right one.
        let misdirected = get(&format!("http://{}/hostile/length-lies", site.http)).await;
        assert_eq!(misdirected.status(), 421);
    }

    #[tokio::test]
    async fn link_flood_is_served_under_a_4_kb_path() {
        let site = HostileSite::start().await;
        let url = site.long_path_url("link-flood", 4096);
        let path = &url[url.find("/hostile/").expect("path")..];
        assert_eq!(path.len(), 4096);
        assert!(path.ends_with('/'));
        assert!(path.split('/').skip(3).all(|s| s.len() <= 64));

        let response = get(&url).await;
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        assert!(Some(body) == crate::hostile::page("link-flood"));
        assert_eq!(site.hits("link-flood"), 1);

        let base = "/hostile/link-flood/".len();
        for len in [
            0,
            base - 1,
            base,
            base + 1,
            base + 2,
            base + 65,
            base + 66,
            5000,
        ] {
            let url = site.long_path_url("link-flood", len);
            let path = &url[url.find("/hostile/").expect("path")..];
            assert_eq!(path.len(), len.max(base), "{len}: {path}");
            assert!(!path.contains("//"), "{path}");
        }
    }

    #[tokio::test]
    async fn unknown_pages_are_not_found() {
        let site = HostileSite::start().await;
        let base = site
            .url("deep-nesting")
            .replace("deep-nesting", "no-such-page");
        assert_eq!(get(&base).await.status(), 404);
    }

    #[tokio::test]
    #[should_panic(expected = "no page \"deep-nestin\"")]
    async fn urls_of_unknown_pages_panic() {
        let site = HostileSite::start().await;
        let _ = site.url("deep-nestin");
    }
}
