//! What a process and its children cost, read from `/proc`: CPU time and memory, so
//! that bounds are measured on the real binary rather than assumed.

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on Linux, whatever the
/// kernel's own tick).
const TICKS_PER_SECOND: u64 = 100;

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces):
/// index 0 is the state, 1 the parent pid, 11/12 user/system time, 13/14 the same of
/// waited-for children. `None` when the process is gone.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn ticks(fields: &[String], at: usize) -> u64 {
    fields.get(at).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The live children of `pid`: every process whose parent it is.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&child| {
            stat_fields(child).is_some_and(|f| f.get(1).and_then(|p| p.parse().ok()) == Some(pid))
        })
        .collect()
}

/// CPU time, in ms, spent by `pid`, its reaped children (killed extraction workers
/// among them) and its live children (the workers running now).
pub fn tree_cpu_ms(pid: u32) -> u64 {
    let own = stat_fields(pid).map_or(0, |f| (11..=14).map(|i| ticks(&f, i)).sum());
    let live: u64 = children(pid)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| ticks(&f, 11) + ticks(&f, 12))
        .sum();
    (own + live) * 1_000 / TICKS_PER_SECOND
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The peak resident memory of `pid` since it started (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// Children of `pid` in state `R` (running) now.
pub fn running_children(pid: u32) -> Vec<u32> {
    children(pid)
        .into_iter()
        .filter(|&c| stat_fields(c).is_some_and(|f| f[0] == "R"))
        .collect()
}

/// MiB, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
