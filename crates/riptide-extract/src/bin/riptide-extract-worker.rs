//! An extraction worker on its own: what [`riptide_extract::Extractor`] runs when it is
//! given this program (the crate's tests do). The `riptide` binary serves the same way
//! through its `extract-worker` subcommand.

use std::process::ExitCode;

fn main() -> ExitCode {
    riptide_extract::worker::serve_stdio()
}
