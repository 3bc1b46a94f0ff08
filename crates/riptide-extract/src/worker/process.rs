//! One extraction worker process, seen from the service: started, handed pages one at
//! a time, and killed when a page overruns its deadline or the worker misbehaves.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::protocol::{HELLO, Init, Job, MAX_CONTROL_FRAME, Reply, receive, send};
use crate::error::ExtractError;

/// How long a new worker may take to start and answer [`Init`].
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The program run as an extraction worker: one that calls
/// [`serve_stdio`](super::serve_stdio), with its arguments. The `riptide` binary is one
/// (`riptide extract-worker`), and so is this crate's `riptide-extract-worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProgram {
    program: PathBuf,
    args: Vec<OsString>,
}

impl WorkerProgram {
    /// `program` run with `args`.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
        }
    }

    /// This process's own executable, run with `args`.
    pub fn current_exe(args: &[&str]) -> io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, args))
    }
}

/// Why a page did not get a reply from its worker.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The deadline passed.
    Deadline,
    /// The worker died or broke the protocol.
    Broken(io::Error),
}

/// A running worker, idle between pages.
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Pages it has extracted.
    pub(crate) pages: u32,
}

impl Worker {
    /// Starts `program` with an empty environment (a worker needs no configuration and
    /// must hold no secrets), sets its memory limit and waits for its [`HELLO`].
    pub(crate) async fn start(program: &WorkerProgram, init: &Init) -> Result<Self, ExtractError> {
        let unavailable = |why: String| {
            ExtractError::Unavailable(format!(
                "extraction worker {}: {why}",
                program.program.display()
            ))
        };
        let mut child = Command::new(&program.program)
            .args(&program.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(format!("cannot start: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(unavailable("no pipes".into()));
        };
        let mut worker = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            pages: 0,
        };
        let init = serde_json::to_vec(init).map_err(io::Error::from);
        let hello = tokio::time::timeout(START_TIMEOUT, async {
            send(&mut worker.stdin, &init?).await?;
            receive(&mut worker.stdout, MAX_CONTROL_FRAME).await
        })
        .await;
        match hello {
            Ok(Ok(hello)) if hello == HELLO => Ok(worker),
            Ok(Ok(_)) => Err(unavailable(
                "answered with something else than a worker's hello".into(),
            )),
            Ok(Err(e)) => Err(unavailable(format!("did not start as a worker: {e}"))),
            Err(_) => Err(unavailable(format!("no hello within {START_TIMEOUT:?}"))),
        }
    }

    /// Extracts `page` as `job` says, within `deadline`; a reply longer than `max_reply`
    /// bytes breaks the protocol. After a failure the worker must be killed.
    pub(crate) async fn run(
        &mut self,
        job: &Job,
        page: &[u8],
        deadline: Duration,
        max_reply: usize,
    ) -> Result<Reply, Failed> {
        let header = serde_json::to_vec(job).map_err(|e| Failed::Broken(e.into()))?;
        let exchange = async {
            send(&mut self.stdin, &header).await?;
            send(&mut self.stdin, page).await?;
            let reply = receive(&mut self.stdout, max_reply).await?;
            serde_json::from_slice::<Reply>(&reply).map_err(io::Error::from)
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(Failed::Broken(e)),
            Err(_) => Err(Failed::Deadline),
        }
    }

    /// Kills the worker and reaps it; its exit status, when it could be read.
    pub(crate) async fn kill(mut self) -> Option<ExitStatus> {
        // An already exited worker cannot be killed but can be reaped.
        let _ = self.child.start_kill();
        self.child.wait().await.ok()
    }
}
