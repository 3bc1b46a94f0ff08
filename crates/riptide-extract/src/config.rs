//! [`ExtractConfig`]: the limits and identity every fetch and extraction runs under, and
//! their validation.
//!
//! The extraction bounds exist because pages are hostile: parsing and Readability cost
//! grows faster than linearly with nesting depth (20,000 nested `<div>`s took 95 s of
//! CPU), element floods cost memory, and link floods under long URLs make answers of
//! hundreds of megabytes. Each default is chosen so that real pages pass with a wide
//! margin and the worst page costs a bounded amount; the doc of each field says why.

use rustix::thread::CpuSet;
use std::net::IpAddr;

use ipnet::IpNet;
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::limits::PageLimits;

/// How pages are fetched and extracted: timeouts, redirect and size limits, the
/// `User-Agent`, the addresses the SSRF guard lets through, the extraction budget and
/// output bounds, and how fetches and extractions are shared among tenants.
///
/// Every field has a default, so an empty config section is valid. Call
/// [`ExtractConfig::validate`] once at startup; [`crate::Extractor::start`] calls it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Time allowed to open the TCP (and TLS) connection, in milliseconds. Must be > 0.
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole fetch, every redirect hop and the body included, in
    /// milliseconds. Must be > 0.
    pub timeout_ms: u64,
    /// Redirects followed before giving up with `too_many_redirects`. At most 20; 0 means
    /// a redirect response is itself an error.
    pub max_redirects: u32,
    /// Largest body read, in bytes, after content decoding (gzip, deflate, brotli, zstd):
    /// checked against `Content-Length` first when the body is not encoded, then counted
    /// while streaming, so a decompression bomb stops here. At least 1 KiB.
    pub max_body_bytes: u64,
    /// The `User-Agent` header sent with every request. Must be a valid, non-empty header
    /// value.
    pub user_agent: String,
    /// Addresses (`10.0.0.7`) or CIDR blocks (`127.0.0.1/32`, `fd00::/8`) that the SSRF
    /// guard lets through although they are private, loopback or otherwise internal.
    /// Empty by default: only public addresses are fetched.
    pub allow_addresses: Vec<String>,
    /// Longest URL, in bytes, that is requested, followed in a redirect or listed among a
    /// page's links (longer links are left out). 8 KiB by default, the request line
    /// nginx accepts by default: a longer URL is rarely served by anyone. 256 to 65,536.
    pub max_url_bytes: usize,
    /// Time budget of parsing and extracting one page, in milliseconds, enforced by
    /// killing the worker process that runs it; the page is then refused as
    /// `page_too_complex`. Real pages take 5 to 200 ms; 5 s leaves a wide margin while
    /// bounding what one hostile page costs. 100 to 600,000.
    pub max_extract_ms: u64,
    /// Extraction worker processes, i.e. pages extracted at once by this instance. 0 (the
    /// default): one per CPU. At most 256.
    pub workers: usize,
    /// Address-space limit of each worker process, in bytes (`RLIMIT_AS`): a page that
    /// needs more fails as `page_too_complex` and its worker is replaced. The largest
    /// pages the element bound lets through stay under 400 MiB; 1 GiB by default. At
    /// least 64 MiB.
    pub worker_memory_bytes: u64,
    /// Scheduling niceness of the worker processes, 0 to 19. 10 by default: extraction
    /// is batch work, and when the CPUs are busy the service's own request handling (a
    /// cached page is microseconds) should win over it, so that one tenant's expensive
    /// pages do not slow every other tenant's cached answers.
    pub worker_nice: i32,
    /// Whether page work (the worker processes, and the service's threads that fetch,
    /// decode and prepare pages) runs under `SCHED_IDLE`, i.e. only on CPU time nothing
    /// else wants: a thread answering requests that wakes up then takes the CPU from it
    /// at once, whereas niced work keeps it for up to a scheduler slice (milliseconds,
    /// which another tenant's cached answers wait). Off by default: under `SCHED_IDLE`
    /// pages get almost no CPU while anything else on the machine (or in the service's
    /// cgroup) keeps the CPUs busy, and time out. Turn it on where the service has its
    /// CPUs to itself (a container with its own CPU quota, a dedicated host).
    pub idle_priority: bool,
    /// CPUs (numbered from 0) page work runs on: the worker processes and the
    /// service's page threads. Empty (the default): any. Set it to keep the other CPUs
    /// for the threads answering requests, so that pages never share a CPU with them.
    pub worker_cpus: Vec<usize>,
    /// Deepest element nesting accepted. 512 by default, the depth Chromium's HTML parser
    /// builds at most; Readability's cost grows with the cube of depth (512: 50 ms). 16 to
    /// 4,096.
    pub max_depth: usize,
    /// Most elements in a page. 250,000 by default: large real pages have tens of
    /// thousands, and a page of 250,000 elements extracts in under a second. At least
    /// 1,000.
    pub max_elements: usize,
    /// Most links an extraction lists. At least 1.
    pub max_links: usize,
    /// Largest extracted `text`, in bytes. At least 1 KiB.
    pub max_text_bytes: usize,
    /// Largest extracted `markdown`, in bytes. At least 1 KiB.
    pub max_markdown_bytes: usize,
    /// Largest answer for one page (the extraction as JSON), in bytes. At least 4 KiB.
    pub max_answer_bytes: usize,
    /// Fetches in flight in this instance, over all tenants. At least 1.
    pub max_concurrent_fetches: usize,
    /// Fetches in flight for one tenant: the rest of `max_concurrent_fetches` stays free
    /// for the others. 1 to `max_concurrent_fetches`.
    pub max_fetches_per_tenant: usize,
    /// Extractions running at once for one tenant. 0 (the default): one less than the
    /// workers (at least 1), so one tenant never holds every worker.
    pub max_extractions_per_tenant: usize,
    /// Pages of one tenant waiting for a fetch or an extraction slot, per stage; beyond
    /// it the tenant's next page is refused at once (`queue_full`, 429) instead of
    /// waiting. At least 1.
    pub max_queued_per_tenant: usize,
}

/// The default `User-Agent`: the product, its version and where to learn about it.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "RipTide/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/riptide)"
);

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            timeout_ms: 15_000,
            max_redirects: 5,
            max_body_bytes: 5 * MIB as u64,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            allow_addresses: Vec::new(),
            max_url_bytes: 8 * 1024,
            max_extract_ms: 5_000,
            workers: 0,
            worker_memory_bytes: 1024 * MIB as u64,
            worker_nice: 10,
            idle_priority: false,
            worker_cpus: Vec::new(),
            max_depth: 512,
            max_elements: 250_000,
            max_links: 10_000,
            max_text_bytes: 2 * MIB,
            max_markdown_bytes: 4 * MIB,
            max_answer_bytes: 8 * MIB,
            max_concurrent_fetches: 64,
            max_fetches_per_tenant: 16,
            max_extractions_per_tenant: 0,
            max_queued_per_tenant: 64,
        }
    }
}

const MIB: usize = 1024 * 1024;
/// Most redirects a config may allow.
const MAX_REDIRECTS_LIMIT: u32 = 20;
/// Smallest body cap a config may set.
const MIN_BODY_BYTES: u64 = 1024;

/// A field that is out of range: its name and why.
type Refusal = (&'static str, String);

/// `value` within `min..=max`, else the refusal naming `field`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), Refusal> {
    if value < min || value > max {
        return Err((
            field,
            format!("must be between {min} and {max}, not {value}"),
        ));
    }
    Ok(())
}

impl ExtractConfig {
    /// Checks every field; on failure returns the field's name and why it was refused.
    pub fn validate(&self) -> Result<(), Refusal> {
        if self.connect_timeout_ms == 0 {
            return Err(("connect_timeout_ms", "must be greater than 0".into()));
        }
        if self.timeout_ms == 0 {
            return Err(("timeout_ms", "must be greater than 0".into()));
        }
        if self.max_redirects > MAX_REDIRECTS_LIMIT {
            return Err((
                "max_redirects",
                format!("must be at most {MAX_REDIRECTS_LIMIT}"),
            ));
        }
        if self.max_body_bytes < MIN_BODY_BYTES {
            return Err((
                "max_body_bytes",
                format!("must be at least {MIN_BODY_BYTES} bytes"),
            ));
        }
        if self.user_agent.trim().is_empty() {
            return Err(("user_agent", "must not be empty".into()));
        }
        if HeaderValue::from_str(&self.user_agent).is_err() {
            return Err((
                "user_agent",
                "must be a valid HTTP header value (visible ASCII, no control characters)".into(),
            ));
        }
        self.validate_bounds()?;
        self.validate_shares()?;
        self.allow_nets().map(|_| ())
    }

    fn validate_bounds(&self) -> Result<(), Refusal> {
        in_range("max_url_bytes", self.max_url_bytes, 256, 65_536)?;
        in_range("max_extract_ms", self.max_extract_ms, 100, 600_000)?;
        in_range("workers", self.workers, 0, 256)?;
        in_range(
            "worker_memory_bytes",
            self.worker_memory_bytes,
            64 * MIB as u64,
            u64::MAX,
        )?;
        in_range("worker_nice", self.worker_nice, 0, 19)?;
        if let Some(cpu) = self.worker_cpus.iter().find(|&&cpu| cpu >= CpuSet::MAX_CPU) {
            let max = CpuSet::MAX_CPU - 1;
            return Err(("worker_cpus", format!("CPU {cpu}: at most {max}")));
        }
        in_range("max_depth", self.max_depth, 16, 4_096)?;
        in_range("max_elements", self.max_elements, 1_000, usize::MAX)?;
        in_range("max_links", self.max_links, 1, usize::MAX)?;
        in_range("max_text_bytes", self.max_text_bytes, 1024, usize::MAX)?;
        in_range(
            "max_markdown_bytes",
            self.max_markdown_bytes,
            1024,
            usize::MAX,
        )?;
        in_range("max_answer_bytes", self.max_answer_bytes, 4096, usize::MAX)
    }

    fn validate_shares(&self) -> Result<(), Refusal> {
        in_range(
            "max_concurrent_fetches",
            self.max_concurrent_fetches,
            1,
            usize::MAX,
        )?;
        in_range(
            "max_fetches_per_tenant",
            self.max_fetches_per_tenant,
            1,
            self.max_concurrent_fetches,
        )?;
        in_range(
            "max_extractions_per_tenant",
            self.max_extractions_per_tenant,
            0,
            self.worker_count(),
        )?;
        in_range(
            "max_queued_per_tenant",
            self.max_queued_per_tenant,
            1,
            usize::MAX,
        )
    }

    /// The number of extraction workers: `workers`, or one per CPU when it is 0.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        cpus_available()
    }

    /// Threads for the service's share of page work: one per CPU it may run on.
    pub(crate) fn page_thread_count(&self) -> usize {
        if self.worker_cpus.is_empty() {
            cpus_available()
        } else {
            self.worker_cpus.len()
        }
    }

    /// Extractions one tenant may run at once: `max_extractions_per_tenant`, or one less
    /// than the workers (at least 1) when it is 0.
    pub fn extractions_per_tenant(&self) -> usize {
        match self.max_extractions_per_tenant {
            0 => self.worker_count().saturating_sub(1).max(1),
            n => n,
        }
    }

    /// The bounds one page's extraction runs under.
    pub(crate) fn page_limits(&self) -> PageLimits {
        PageLimits {
            max_depth: self.max_depth,
            max_elements: self.max_elements,
            max_links: self.max_links,
            max_url_bytes: self.max_url_bytes,
            max_text_bytes: self.max_text_bytes,
            max_markdown_bytes: self.max_markdown_bytes,
            max_answer_bytes: self.max_answer_bytes,
        }
    }

    /// Parses `allow_addresses` into networks; a bare address is a single-host network.
    pub(crate) fn allow_nets(&self) -> Result<Vec<IpNet>, Refusal> {
        self.allow_addresses
            .iter()
            .map(|entry| parse_net(entry.trim()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                let bad = self
                    .allow_addresses
                    .iter()
                    .find(|e| parse_net(e.trim()).is_none())
                    .cloned()
                    .unwrap_or_default();
                (
                    "allow_addresses",
                    format!("{bad:?} is neither an IP address nor a CIDR block"),
                )
            })
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The CPUs this process may run on (at least 1).
fn cpus_available() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(cfg: ExtractConfig) -> &'static str {
        cfg.validate().expect_err("config should be refused").0
    }

    #[test]
    fn defaults_are_valid_and_sensible() {
        let cfg = ExtractConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.timeout_ms, 15_000);
        assert_eq!(cfg.connect_timeout_ms, 5_000);
        assert_eq!(cfg.max_redirects, 5);
        assert_eq!(cfg.max_body_bytes, 5 * 1024 * 1024);
        assert!(cfg.user_agent.starts_with("RipTide/"));
        assert!(cfg.allow_addresses.is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = ExtractConfig::default;
        assert_eq!(
            field_of(ExtractConfig {
                connect_timeout_ms: 0,
                ..base()
            }),
            "connect_timeout_ms"
        );
        assert_eq!(
            field_of(ExtractConfig {
                timeout_ms: 0,
                ..base()
            }),
            "timeout_ms"
        );
        assert_eq!(
            field_of(ExtractConfig {
                max_redirects: 21,
                ..base()
            }),
            "max_redirects"
        );
        assert_eq!(
            field_of(ExtractConfig {
                max_body_bytes: 1023,
                ..base()
            }),
            "max_body_bytes"
        );
        assert_eq!(
            field_of(ExtractConfig {
                user_agent: "  ".into(),
                ..base()
            }),
            "user_agent"
        );
        assert_eq!(
            field_of(ExtractConfig {
                user_agent: "bad\nagent".into(),
                ..base()
            }),
            "user_agent"
        );
        let (field, reason) = ExtractConfig {
            allow_addresses: vec!["127.0.0.1/32".into(), "localhost".into()],
            ..base()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field, "allow_addresses");
        assert!(reason.contains("localhost"), "{reason}");
        let (field, reason) = ExtractConfig {
            worker_cpus: vec![0, 1024],
            ..base()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field, "worker_cpus");
        assert!(reason.contains("1024"), "{reason}");
    }

    #[test]
    fn limits_at_the_edge_are_accepted() {
        let cfg = ExtractConfig {
            max_redirects: 20,
            max_body_bytes: 1024,
            allow_addresses: vec!["10.0.0.7".into(), "127.0.0.1/32".into(), "fd00::/8".into()],
            ..ExtractConfig::default()
        };
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.allow_nets().unwrap().len(), 3);
    }

    #[test]
    fn unknown_keys_are_refused_and_missing_keys_defaulted() {
        let partial: ExtractConfig = serde_json::from_str(r#"{"timeout_ms": 100}"#).unwrap();
        assert_eq!(partial.timeout_ms, 100);
        assert_eq!(partial.max_redirects, 5);
        assert!(serde_json::from_str::<ExtractConfig>(r#"{"timeout": 100}"#).is_err());
    }
}
