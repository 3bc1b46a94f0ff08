//! [`ConnClock`]: what one connection is waiting for, since when, and the deadline of
//! that wait.
//!
//! | phase | begins | ends | deadline |
//! |---|---|---|---|
//! | [`Phase::Head`] | the accept; the first byte read after `Idle` | a request head is parsed | `server.header_read_timeout_ms` |
//! | [`Phase::InFlight`] | a request head is parsed (the service is called) | its response body is done or dropped | none here: `server.body_read_timeout_ms` and `server.request_timeout_ms` bound the request |
//! | [`Phase::Idle`] | the response body is done | the first byte of the next request | `server.keep_alive_timeout_ms` |
//!
//! A request in flight is never cut by the connection's clock: the handler's own
//! deadlines apply to it. A client that sends part of a pipelined head while a response
//! is in flight gets the idle allowance for the rest of it instead of the head
//! allowance; both are bounded.
//!
//! Every transition happens on the connection's task (hyper polls the reader, the
//! service and the response body there), so the lock is never contended; it is a
//! `Mutex` only because the clock is shared with that task's futures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The client's request head.
    Head,
    /// The service's response.
    InFlight,
    /// A next request on a kept-alive connection.
    Idle,
}

impl Phase {
    /// The `timeout` label of a connection closed in this phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Head => "header",
            Phase::InFlight => "in_flight",
            Phase::Idle => "idle",
        }
    }
}

/// The allowances of the phases that have one.
#[derive(Debug, Clone, Copy)]
pub struct Allowances {
    /// Of [`Phase::Head`].
    pub head: Duration,
    /// Of [`Phase::Idle`].
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy)]
struct State {
    phase: Phase,
    since: Instant,
    in_flight: u32,
}

/// One connection's phase, shared by its reader, its service and its watchdog.
#[derive(Debug)]
pub struct ConnClock {
    state: Mutex<State>,
    /// Set while the phase is `Idle`: the reader checks it on every read without the lock.
    idle: AtomicBool,
    changed: Notify,
}

impl ConnClock {
    /// A just-accepted connection: waiting for its first head, from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                phase: Phase::Head,
                since: Instant::now(),
                in_flight: 0,
            }),
            idle: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
        self.idle
            .store(state.phase == Phase::Idle, Ordering::Relaxed);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Bytes arrived: on an idle connection, a next request has begun.
    pub fn bytes_read(&self) {
        if self.idle.load(Ordering::Relaxed) {
            self.update(|s| {
                if s.phase == Phase::Idle {
                    s.phase = Phase::Head;
                    s.since = Instant::now();
                }
            });
        }
    }

    /// A request head was parsed. The request is in flight until the returned guard
    /// is dropped (with the response body, or with the service's future if it never
    /// answered).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.update(|s| {
            s.in_flight += 1;
            s.phase = Phase::InFlight;
        });
        InFlight(self.clone())
    }

    fn request_done(&self) {
        self.update(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.phase = Phase::Idle;
                s.since = Instant::now();
            }
        });
    }

    /// Whether a request is in flight (its head parsed, its response body not done).
    pub fn in_flight(&self) -> bool {
        self.now().in_flight > 0
    }

    fn now(&self) -> State {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Completes with the phase whose allowance ran out; never while a request is in
    /// flight.
    pub async fn expired(&self, allowances: Allowances) -> Phase {
        loop {
            // Registered before the state is read, so no change is missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let state = self.now();
            let allowance = match state.phase {
                Phase::Head => allowances.head,
                Phase::Idle => allowances.idle,
                Phase::InFlight => {
                    changed.await;
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(state.since + allowance) => {
                    let current = self.now();
                    if current.phase == state.phase && current.since == state.since {
                        return state.phase;
                    }
                }
                () = &mut changed => {}
            }
        }
    }
}

/// A request in flight on its connection; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWANCES: Allowances = Allowances {
        head: Duration::from_secs(10),
        idle: Duration::from_secs(75),
    };

    /// When `clock` expires, measured from now, if within `horizon`.
    async fn expiry(clock: &ConnClock, horizon: Duration) -> Option<(Phase, Duration)> {
        let started = Instant::now();
        tokio::time::timeout(horizon, clock.expired(ALLOWANCES))
            .await
            .ok()
            .map(|phase| (phase, started.elapsed()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_gets_the_head_allowance_from_the_accept() {
        let clock = ConnClock::new();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            expiry(&clock, Duration::from_secs(60)).await,
            Some((Phase::Head, Duration::from_secs(6)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_of_a_first_head_do_not_extend_its_allowance() {
        let clock = ConnClock::new();
        tokio::time::advance(Duration::from_secs(9)).await;
        clock.bytes_read();
        assert_eq!(
            expiry(&clock, Duration::from_secs(60)).await,
            Some((Phase::Head, Duration::from_secs(1)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_has_no_deadline_and_idle_follows_it() {
        let clock = ConnClock::new();
        let request = clock.request_started();
        assert_eq!(expiry(&clock, Duration::from_secs(3600)).await, None);
        drop(request);
        assert_eq!(
            expiry(&clock, Duration::from_secs(3600)).await,
            Some((Phase::Idle, Duration::from_secs(75)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_after_idle_starts_the_head_allowance() {
        let clock = ConnClock::new();
        drop(clock.request_started());
        tokio::time::advance(Duration::from_secs(70)).await;
        clock.bytes_read();
        tokio::time::advance(Duration::from_secs(4)).await;
        clock.bytes_read();
        assert_eq!(
            expiry(&clock, Duration::from_secs(3600)).await,
            Some((Phase::Head, Duration::from_secs(6)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_watchdog_follows_the_changes() {
        let clock = ConnClock::new();
        let started = Instant::now();
        let watchdog = {
            let clock = clock.clone();
            tokio::spawn(async move { (clock.expired(ALLOWANCES).await, started.elapsed()) })
        };
        tokio::time::advance(Duration::from_secs(5)).await;
        let request = clock.request_started();
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(request);
        let (phase, after) = watchdog.await.expect("watchdog");
        assert_eq!(phase, Phase::Idle);
        assert_eq!(after, Duration::from_secs(180));
    }
}
