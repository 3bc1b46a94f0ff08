//! The worker's side: [`serve_stdio`] reads pages from stdin and writes what they say to
//! stdout, under limits it sets on itself before the first page.
//!
//! - Memory: `RLIMIT_AS` from [`Init`]; an allocation beyond it aborts the process, which
//!   the service reports as one refused page and replaces.
//! - Priority: the niceness from [`Init`], so that the service's own request handling
//!   goes first when CPUs are short.
//! - CPU: before each page, `RLIMIT_CPU` is set to the CPU time used so far plus the
//!   page's budget and a second, so a worker whose service stopped watching it still
//!   stops. The service kills it at the deadline anyway; this is the backstop.
//! - Stack: pages run on a thread with a [`STACK_BYTES`] stack, far more than the bounded
//!   depth needs; and if a page still overflowed it, only this process would die.
//!
//! The worker holds no secrets (the service starts it with an empty environment) and
//! touches no file: it only reads stdin and writes stdout.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use rustix::time::{ClockId, clock_gettime};
use url::Url;

use super::protocol::{
    HELLO, Init, Job, MAX_CONTROL_FRAME, MAX_PAGE_FRAME, Reply, read_frame, write_frame,
};
use crate::charset::decode_html;
use crate::content::extract_content;
use crate::error::ExtractError;
use crate::page_cpu::{idle_policy, lower_priority, pin_to};

/// Stack of the thread pages are extracted on.
const STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs a worker on this process's stdin and stdout until stdin is closed. The `riptide`
/// binary calls it for its internal `extract-worker` subcommand.
///
/// Exit code 0 when stdin closed between pages, 1 on a protocol or I/O error (logged to
/// stderr).
pub fn serve_stdio() -> ExitCode {
    let served = std::thread::Builder::new()
        .name("extract-worker".into())
        .stack_size(STACK_BYTES)
        .spawn(|| serve(io::stdin().lock(), io::stdout().lock()))
        .map_err(|e| io::Error::other(format!("cannot start the worker thread: {e}")))
        .and_then(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the worker thread panicked")))
        });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("riptide extract-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The worker loop over `input` and `output`.
fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
    let init: Init = serde_json::from_slice(&read_frame(&mut input, MAX_CONTROL_FRAME)?)?;
    limit(Resource::As, init.memory_bytes)?;
    lower_priority(init.nice)?;
    if init.idle {
        idle_policy()?;
    }
    pin_to(&init.cpus)?;
    write_frame(&mut output, HELLO)?;
    loop {
        let header = match read_frame(&mut input, MAX_CONTROL_FRAME) {
            Ok(header) => header,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let job: Job = serde_json::from_slice(&header)?;
        let page = read_frame(&mut input, MAX_PAGE_FRAME)?;
        limit_cpu(job.budget_ms)?;
        let reply = answer(&job, &page);
        drop(page);
        write_frame(&mut output, &reply)?;
    }
}

/// The reply to `job` as JSON, within `max_answer_bytes`.
fn answer(job: &Job, page: &[u8]) -> Vec<u8> {
    let reply = match catch_unwind(AssertUnwindSafe(|| extract(job, page))) {
        Ok(Ok(content)) => Reply::Done(content),
        Ok(Err(ExtractError::TooComplex(why))) => Reply::TooComplex(why),
        Ok(Err(other)) => Reply::Failed(other.to_string()),
        Err(_) => Reply::Failed("the extractor failed on this page".into()),
    };
    let json = to_json(&reply);
    if json.len() <= job.limits.max_answer_bytes {
        return json;
    }
    to_json(&Reply::TooComplex(format!(
        "the extraction has {} bytes; at most {} are answered",
        json.len(),
        job.limits.max_answer_bytes
    )))
}

fn extract(job: &Job, page: &[u8]) -> Result<crate::content::Content, ExtractError> {
    let base = Url::parse(&job.base).map_err(|e| ExtractError::InvalidUrl(e.to_string()))?;
    let html = decode_html(page, job.charset.as_deref());
    extract_content(&html, &base, &job.limits)
}

fn to_json(reply: &Reply) -> Vec<u8> {
    // Serializing plain strings and numbers cannot fail; the fallback keeps the worker
    // answering if it ever did.
    serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!(
            "{{\"Failed\":{:?}}}",
            format!("cannot encode the reply: {e}")
        )
        .into_bytes()
    })
}

/// Sets the soft and hard limit of `resource` to `value` (never above the current hard
/// limit).
fn limit(resource: Resource, value: u64) -> io::Result<()> {
    let hard = getrlimit(resource).maximum;
    let value = hard.map_or(value, |hard| hard.min(value));
    setrlimit(
        resource,
        Rlimit {
            current: Some(value),
            maximum: Some(value),
        },
    )
    .map_err(io::Error::from)
}

/// Lets the next page use `budget_ms` more CPU time (and a second for the rest), by the
/// soft `RLIMIT_CPU`: the hard limit stays, so the soft one can be raised for the next.
fn limit_cpu(budget_ms: u64) -> io::Result<()> {
    let used = clock_gettime(ClockId::ProcessCPUTime);
    let used_secs = u64::try_from(used.tv_sec).unwrap_or(0);
    let soft = used_secs + budget_ms.div_ceil(1_000) + 1;
    let current = getrlimit(Resource::Cpu);
    let soft = current.maximum.map_or(soft, |hard| hard.min(soft));
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(soft),
            maximum: current.maximum,
        },
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PageLimits;

    fn job(max_answer_bytes: usize) -> Job {
        Job {
            base: "https://site.example/a".into(),
            charset: None,
            limits: PageLimits {
                max_answer_bytes,
                ..crate::ExtractConfig::default().page_limits()
            },
            budget_ms: 1_000,
        }
    }

    fn reply(bytes: &[u8]) -> Reply {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn answers_pages_and_bounds_the_answer() {
        let page = b"<html><head><title>T</title></head><body><p>Hello</p></body></html>";
        let Reply::Done(content) = reply(&answer(&job(1 << 20), page)) else {
            panic!("expected content");
        };
        assert_eq!(content.title.as_deref(), Some("T"));
        let Reply::TooComplex(why) = reply(&answer(&job(50), page)) else {
            panic!("expected a refusal");
        };
        assert!(why.contains("at most 50"), "{why}");
    }
}
