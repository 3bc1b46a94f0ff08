//! The open-file limit, and how many connections fit under it.
//!
//! Every connection is a file descriptor. A process that runs out of them cannot
//! accept (`EMFILE`), so every client waits, `/healthz` too; it also cannot open a
//! store file or an outbound fetch. So at startup the soft `RLIMIT_NOFILE` is raised to
//! the hard limit (the soft one is often 1024, a default kept for programs that use
//! `select(2)`; this one uses epoll), and `server.max_connections` is lowered, with a
//! warning, to what the limit leaves after [`reserve`] descriptors for everything else:
//! so the connection limit, which answers a clean 503, is always reached before the
//! descriptor limit, which answers nothing.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The hard limit assumed when it is "unlimited": Linux refuses a soft limit above
/// `fs.nr_open`, whose default this is.
const UNLIMITED: u64 = 1 << 20;

/// Descriptors kept for everything but client connections (the store's files, Redis
/// connections, outbound fetches, lingering refusals, logs), out of `limit`: 1024, or
/// half of a smaller limit.
pub fn reserve(limit: u64) -> u64 {
    1024.min(limit / 2)
}

/// What [`raise`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit in force now.
    pub now: u64,
}

/// Raises the soft open-file limit to the hard one, logging what it did; a failure is
/// logged and leaves the limit as it was. Idempotent.
pub fn raise() -> OpenFiles {
    let limits = getrlimit(Resource::Nofile);
    let before = limits.current.unwrap_or(UNLIMITED);
    let hard = limits.maximum.unwrap_or(UNLIMITED);
    if before >= hard {
        return OpenFiles {
            before,
            now: before,
        };
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: limits.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(
                open_files.before = before,
                open_files.now = hard,
                "raised the soft open-file limit (RLIMIT_NOFILE) to the hard limit"
            );
            OpenFiles { before, now: hard }
        }
        Err(e) => {
            tracing::warn!(
                open_files.limit = before,
                open_files.hard_limit = hard,
                error = %e,
                "could not raise the soft open-file limit (RLIMIT_NOFILE)"
            );
            OpenFiles {
                before,
                now: before,
            }
        }
    }
}

/// The connection limit to enforce: `configured`, or less when the open-file `limit`
/// minus its [`reserve`] is smaller (at least 1), with a warning saying so.
pub fn connection_budget(configured: usize, limit: u64) -> usize {
    let room = usize::try_from(limit.saturating_sub(reserve(limit)))
        .unwrap_or(usize::MAX)
        .max(1);
    if configured <= room {
        return configured;
    }
    tracing::warn!(
        server.max_connections = configured,
        connections.max = room,
        open_files.limit = limit,
        open_files.reserved = reserve(limit),
        "server.max_connections does not fit under the open-file limit; serving at most \
         connections.max at once (raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn, \
         to allow more)"
    );
    room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_room_for_everything_else() {
        assert_eq!(connection_budget(4096, 1 << 20), 4096);
        assert_eq!(connection_budget(4096, 5120), 4096);
        assert_eq!(connection_budget(4096, 4096), 3072);
        assert_eq!(connection_budget(4096, 1024), 512);
        assert_eq!(connection_budget(4096, 1), 1);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let raised = raise();
        let limits = getrlimit(Resource::Nofile);
        assert_eq!(limits.current.unwrap_or(UNLIMITED), raised.now);
        assert_eq!(raise().before, raised.now, "idempotent");
    }
}
