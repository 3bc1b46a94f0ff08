//! Request coalescing: N concurrent misses of one key run the loader once.
//!
//! [`SingleFlight::join`] makes the first caller the [`Role::Leader`] and every later one
//! a [`Role::Follower`]. The leader ends its flight with [`LeaderPermit::finish`]; a
//! permit dropped without finishing (the leader's future was cancelled) ends the flight
//! as `Abandoned`, so followers compete again instead of waiting forever. Followers
//! always wait with a timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::LoadError;
use super::l1::L1Key;

/// How a flight ended, as followers see it.
#[derive(Debug, Clone)]
pub(crate) enum FlightEnd {
    /// The leader loaded this value.
    Done(Bytes),
    /// The leader's load failed with this error: the loader's own, shared, so every
    /// waiter can downcast it to its type (see [`super::CacheError::load_error`]).
    Failed(LoadError),
    /// The leader went away without an answer; try again.
    Abandoned,
    /// No answer within the timeout.
    TimedOut,
}

type Slot = watch::Sender<Option<FlightEnd>>;

/// The in-flight loads, by key.
#[derive(Default)]
pub(crate) struct SingleFlight {
    flights: Mutex<HashMap<L1Key, Arc<Slot>>>,
}

/// A caller's part in a flight.
pub(crate) enum Role<'a> {
    /// Run the load and call [`LeaderPermit::finish`].
    Leader(LeaderPermit<'a>),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

impl SingleFlight {
    /// Joins the flight for `key`, starting one when there is none.
    pub(crate) fn join(&self, key: L1Key) -> Role<'_> {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = flights.get(&key) {
            return Role::Follower(Follower {
                rx: slot.subscribe(),
            });
        }
        let slot = Arc::new(watch::channel(None).0);
        flights.insert(key, slot.clone());
        Role::Leader(LeaderPermit {
            flights: self,
            key,
            slot,
            finished: false,
        })
    }

    /// Loads in flight (bounded by the callers waiting on them).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.flights.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn end(&self, key: &L1Key, slot: &Arc<Slot>, end: FlightEnd) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            flights.remove(key);
        }
        drop(flights);
        slot.send_replace(Some(end));
    }
}

/// The right, and duty, to load a key for everyone waiting on it.
pub(crate) struct LeaderPermit<'a> {
    flights: &'a SingleFlight,
    key: L1Key,
    slot: Arc<Slot>,
    finished: bool,
}

impl LeaderPermit<'_> {
    /// Ends the flight with the load's outcome.
    pub(crate) fn finish(mut self, end: FlightEnd) {
        self.finished = true;
        self.flights.end(&self.key, &self.slot, end);
    }
}

impl Drop for LeaderPermit<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.flights
                .end(&self.key, &self.slot, FlightEnd::Abandoned);
        }
    }
}

/// A caller waiting for a leader.
pub(crate) struct Follower {
    rx: watch::Receiver<Option<FlightEnd>>,
}

impl Follower {
    /// Waits for the leader's outcome, at most `timeout`.
    pub(crate) async fn wait(mut self, timeout: Duration) -> FlightEnd {
        match tokio::time::timeout(timeout, self.rx.wait_for(Option::is_some)).await {
            Ok(Ok(end)) => end.clone().unwrap_or(FlightEnd::Abandoned),
            // The sender is gone without a value: the leader vanished.
            Ok(Err(_)) => FlightEnd::Abandoned,
            Err(_) => FlightEnd::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let sf = SingleFlight::default();
        let Role::Leader(permit) = sf.join([1; 16]) else {
            panic!("first caller leads")
        };
        let Role::Follower(f) = sf.join([1; 16]) else {
            panic!("second caller follows")
        };
        permit.finish(FlightEnd::Done(Bytes::from_static(b"v")));
        assert!(matches!(
            f.wait(Duration::from_secs(1)).await,
            FlightEnd::Done(v) if v == Bytes::from_static(b"v")
        ));
        assert_eq!(sf.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let sf = SingleFlight::default();
        let leader = sf.join([2; 16]);
        let Role::Follower(f) = sf.join([2; 16]) else {
            panic!()
        };
        drop(leader);
        assert!(matches!(
            f.wait(Duration::from_secs(1)).await,
            FlightEnd::Abandoned
        ));
        assert!(
            matches!(sf.join([2; 16]), Role::Leader(_)),
            "the next caller leads again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn followers_time_out() {
        let sf = SingleFlight::default();
        let _leader = sf.join([3; 16]);
        let Role::Follower(f) = sf.join([3; 16]) else {
            panic!()
        };
        assert!(matches!(
            f.wait(Duration::from_millis(50)).await,
            FlightEnd::TimedOut
        ));
    }

    #[tokio::test]
    async fn failures_reach_followers() {
        let sf = SingleFlight::default();
        let Role::Leader(p) = sf.join([4; 16]) else {
            panic!()
        };
        let Role::Follower(f) = sf.join([4; 16]) else {
            panic!()
        };
        let error: LoadError = Arc::new(std::io::Error::other("boom"));
        p.finish(FlightEnd::Failed(error.clone()));
        let FlightEnd::Failed(got) = f.wait(Duration::from_secs(1)).await else {
            panic!("the follower gets the failure")
        };
        assert!(
            Arc::ptr_eq(&got, &error),
            "the leader's own error, not a copy"
        );
        assert!(got.downcast_ref::<std::io::Error>().is_some(), "typed");
    }
}
