//! The origin the service fetches from: an axum server on `127.0.0.1:0` serving
//! `GET /p/{n}`, a small distinct HTML article per `n` (about 1.5 KB: title, heading,
//! four paragraphs), after an artificial latency so a miss costs what a fast origin
//! would. It counts the pages it served, so a phase can say how many fetches it caused
//! (its misses plus what warming loaded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::trace::SplitMix64;

/// Words of the generated paragraphs.
const WORDS: [&str; 24] = [
    "harbour", "tide", "signal", "market", "river", "council", "season", "report", "engine",
    "archive", "pattern", "northern", "quiet", "measured", "public", "record", "storm", "bridge",
    "station", "ledger", "winter", "harvest", "current", "survey",
];

struct Origin {
    delay: Duration,
    served: AtomicU64,
}

/// A running page server; stops when dropped.
pub struct Pages {
    addr: SocketAddr,
    origin: Arc<Origin>,
    task: JoinHandle<()>,
}

impl Pages {
    /// Starts the server; every page is answered after `delay`.
    pub async fn start(delay: Duration) -> anyhow::Result<Self> {
        let origin = Arc::new(Origin {
            delay,
            served: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/p/{n}", get(page))
            .with_state(origin.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("page server stopped: {e}");
            }
        });
        Ok(Self { addr, origin, task })
    }

    /// `http://127.0.0.1:<port>/p/<n>`.
    pub fn url(&self, n: u32) -> String {
        format!("http://{}/p/{n}", self.addr)
    }

    /// The page id of a URL made by [`Self::url`] (as the service normalized it).
    pub fn page_of(url: &str) -> Option<u32> {
        url.rsplit_once("/p/")?.1.parse().ok()
    }

    /// Pages served so far.
    pub fn served(&self) -> u64 {
        self.origin.served.load(Ordering::Relaxed)
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn page(State(origin): State<Arc<Origin>>, Path(n): Path<u32>) -> Html<String> {
    tokio::time::sleep(origin.delay).await;
    origin.served.fetch_add(1, Ordering::Relaxed);
    Html(article(n))
}

/// The article of page `n`: the same bytes every time.
fn article(n: u32) -> String {
    let mut rng = SplitMix64::new(u64::from(n) ^ 0x5EED_FA11);
    let mut body = String::with_capacity(2_048);
    for _ in 0..4 {
        body.push_str("<p>");
        for w in 0..36 {
            if w > 0 {
                body.push(' ');
            }
            body.push_str(WORDS[rng.below(WORDS.len())]);
            if w % 9 == 8 {
                body.push('.');
            }
        }
        body.push_str(".</p>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Article {n}</title></head>\n<body><article><h1>Article {n}</h1>\n\
         <p class=\"byline\">By the bench desk</p>\n{body}</article></body></html>\n"
    )
}
