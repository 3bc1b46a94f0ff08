//! [`lower_priority`], [`idle_policy`], [`pin_to`]: how page work gets the CPU.
//!
//! A page's cost is its author's choice, so the threads that fetch, decode and extract
//! pages run niced, and with `extract.idle_priority` under `SCHED_IDLE`: then any other
//! thread that wants the CPU, such as a service thread answering another tenant's
//! cached request, preempts them at once, where a niced thread keeps the CPU for up to
//! a scheduler slice (milliseconds) first. With `extract.worker_cpus` it runs only on
//! those CPUs, so that the threads answering requests can have the others to
//! themselves. All three are per thread on Linux.

use std::io;

use rustix::process::{getpriority_process, setpriority_process};
use rustix::thread::{CpuSet, sched_setaffinity};

/// Raises the calling thread's niceness to `nice` (never lowers it: that needs
/// privileges).
pub(crate) fn lower_priority(nice: i32) -> io::Result<()> {
    let current = getpriority_process(None)?;
    if nice > current {
        setpriority_process(None, nice)?;
    }
    Ok(())
}

/// Puts the calling thread under `SCHED_IDLE`; its niceness stays as it is. Neither
/// rustix nor std has the call, and the crates that wrap it also reset the niceness
/// (which an unprivileged process cannot lower).
#[allow(unsafe_code)]
pub(crate) fn idle_policy() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that the call
    // only reads during the call.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lets the calling thread run on `cpus` only; none: leaves it where it may run.
pub(crate) fn pin_to(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    sched_setaffinity(None, &set).map_err(io::Error::from)
}
