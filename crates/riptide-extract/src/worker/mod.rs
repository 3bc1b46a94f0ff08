//! Extraction in worker processes.
//!
//! Parsing and extracting a page costs what the page makes it cost: quadratic or worse
//! in nesting depth, linear in a flood of elements, and a thread running it cannot be
//! stopped from outside. So pages are extracted in separate processes (the same
//! program, run as a worker), each with a memory limit, a CPU-time backstop and a big
//! stack, and each killed when its page overruns the time budget. A dead worker is one
//! refused page (`page_too_complex`), never a dead service.
//!
//! - `protocol`: the frames exchanged over the worker's stdin and stdout;
//! - `child`: the worker's side ([`serve_stdio`]);
//! - `process`: one worker seen from the service ([`WorkerProgram`] says what to run);
//! - `pool`: the service's workers and the deadline.

mod child;
mod pool;
mod process;
mod protocol;

pub use child::serve_stdio;
pub(crate) use pool::{PoolSettings, WorkerPool};
pub use process::WorkerProgram;
pub(crate) use protocol::Init;
