//! [`FairShare`]: a limited number of slots (fetches or extractions in flight) shared
//! fairly among callers (tenants).
//!
//! - At most `capacity` slots are held at once, and at most `per_caller` by one caller,
//!   so one caller never holds them all.
//! - A caller that cannot have a slot now waits in its own queue of at most
//!   `queue_per_caller`; beyond it the request is refused at once
//!   ([`ExtractError::QueueFull`]), so an overloaded caller learns it immediately rather
//!   than after a timeout.
//! - A freed slot goes to the callers with waiters in turn (round robin), not to
//!   whoever queued first: a caller with a thousand queued pages and one with a single
//!   page each get every other slot.
//!
//! Memory is bounded: a caller has an entry only while it holds or waits for a slot,
//! and waiters are bounded per caller. A waiter that gives up (its request was dropped)
//! leaves its place; a slot granted to it just as it gave up is passed on.
//!
//! Metrics, labelled by `stage`: `extract_slots_in_use`, `extract_queue_depth` (gauges)
//! and `extract_queue_rejections_total`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::error::ExtractError;

/// Slots of one stage (`fetch` or `extract`), shared fairly among callers.
#[derive(Debug)]
pub struct FairShare {
    stage: &'static str,
    capacity: usize,
    per_caller: usize,
    queue_per_caller: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_use: usize,
    queued: usize,
    callers: HashMap<Arc<str>, Caller>,
    /// Callers with waiters, in the order they get the next free slot.
    turns: VecDeque<Arc<str>>,
}

#[derive(Debug, Default)]
struct Caller {
    holding: usize,
    waiters: VecDeque<oneshot::Sender<Slot>>,
}

/// A held slot; dropping it frees the slot for the next waiter.
#[derive(Debug)]
pub struct Slot {
    share: Arc<FairShare>,
    caller: Arc<str>,
}

impl FairShare {
    /// Slots of `stage`: `capacity` in all, `per_caller` for one caller, and
    /// `queue_per_caller` waiters of one caller. Each is at least 1.
    pub fn new(
        stage: &'static str,
        capacity: usize,
        per_caller: usize,
        queue_per_caller: usize,
    ) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Self {
            stage,
            capacity,
            per_caller: per_caller.clamp(1, capacity),
            queue_per_caller: queue_per_caller.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for `caller`: at once when one is free within its share, else after
    /// waiting its turn; [`ExtractError::QueueFull`] at once when its queue is full.
    pub async fn acquire(self: &Arc<Self>, caller: &str) -> Result<Slot, ExtractError> {
        let waiting = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let free = state.in_use < self.capacity;
            let entry = state.callers.entry(Arc::from(caller)).or_default();
            entry.waiters.retain(|w| !w.is_closed());
            if free && entry.holding < self.per_caller && entry.waiters.is_empty() {
                entry.holding += 1;
                state.in_use += 1;
                self.publish(state);
                return Ok(self.slot(caller));
            }
            if entry.waiters.len() >= self.queue_per_caller {
                metrics::counter!("extract_queue_rejections_total", "stage" => self.stage)
                    .increment(1);
                return Err(ExtractError::QueueFull { stage: self.stage });
            }
            let (tx, rx) = oneshot::channel();
            entry.waiters.push_back(tx);
            if !state.turns.iter().any(|name| &**name == caller) {
                state.turns.push_back(Arc::from(caller));
            }
            state.queued = state.callers.values().map(|c| c.waiters.len()).sum();
            self.publish(state);
            rx
        };
        waiting
            .await
            .map_err(|_| ExtractError::Unavailable(format!("the {} slots closed", self.stage)))
    }

    fn slot(self: &Arc<Self>, caller: &str) -> Slot {
        Slot {
            share: self.clone(),
            caller: Arc::from(caller),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frees one slot of `caller` and hands free slots to waiters in turn.
    fn release(self: &Arc<Self>, caller: &Arc<str>) {
        let mut refused = Vec::new();
        {
            let mut state = self.lock();
            state.in_use = state.in_use.saturating_sub(1);
            if let Some(entry) = state.callers.get_mut(caller) {
                entry.holding = entry.holding.saturating_sub(1);
            }
            self.dispatch(&mut state, &mut refused);
            forget_idle(&mut state, caller);
            state.queued = state.callers.values().map(|c| c.waiters.len()).sum();
            self.publish(&state);
        }
        // Slots granted to waiters that had just gone: freed outside the lock, which
        // their drop takes again.
        drop(refused);
    }

    /// Grants free slots to the callers in `turns`, one each per round, skipping
    /// callers at their share, until the slots or the waiters run out.
    fn dispatch(self: &Arc<Self>, state: &mut State, refused: &mut Vec<Slot>) {
        let mut passes = state.turns.len();
        while state.in_use < self.capacity && passes > 0 {
            let Some(name) = state.turns.pop_front() else {
                break;
            };
            passes -= 1;
            let Some(entry) = state.callers.get_mut(&name) else {
                continue;
            };
            entry.waiters.retain(|w| !w.is_closed());
            if entry.holding >= self.per_caller {
                if !entry.waiters.is_empty() {
                    state.turns.push_back(name);
                }
                continue;
            }
            let Some(waiter) = entry.waiters.pop_front() else {
                forget_idle(state, &name);
                continue;
            };
            entry.holding += 1;
            state.in_use += 1;
            let more = !entry.waiters.is_empty();
            if let Err(slot) = waiter.send(self.slot(&name)) {
                refused.push(slot);
            }
            if more {
                state.turns.push_back(name);
                // A caller served this round may be served again next round.
                passes += 1;
            }
        }
    }

    fn publish(&self, state: &State) {
        metrics::gauge!("extract_slots_in_use", "stage" => self.stage).set(state.in_use as f64);
        metrics::gauge!("extract_queue_depth", "stage" => self.stage).set(state.queued as f64);
    }

    /// Slots held and waiters queued: (in use, queued).
    pub fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.in_use, state.queued)
    }
}

/// Drops `caller`'s entry when it neither holds nor waits for a slot.
fn forget_idle(state: &mut State, caller: &str) {
    let idle = state
        .callers
        .get(caller)
        .is_some_and(|c| c.holding == 0 && c.waiters.is_empty());
    if idle {
        state.callers.remove(caller);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share.release(&self.caller);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn pending(
        share: &Arc<FairShare>,
        caller: &'static str,
    ) -> tokio::task::JoinHandle<Slot> {
        let share = share.clone();
        let task = tokio::spawn(async move { share.acquire(caller).await.unwrap() });
        tokio::task::yield_now().await;
        task
    }

    #[tokio::test]
    async fn one_caller_cannot_take_every_slot() {
        let share = FairShare::new("test", 3, 2, 10);
        let _a1 = share.acquire("a").await.unwrap();
        let _a2 = share.acquire("a").await.unwrap();
        let waiting = pending(&share, "a").await;
        // "b" still gets the third slot at once.
        let _b = share.acquire("b").await.unwrap();
        assert_eq!(share.usage(), (3, 1));
        assert!(!waiting.is_finished());
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let share = FairShare::new("test", 1, 1, 2);
        let _held = share.acquire("a").await.unwrap();
        let _w1 = pending(&share, "a").await;
        let _w2 = pending(&share, "a").await;
        let err = share.acquire("a").await.unwrap_err();
        assert!(
            matches!(err, ExtractError::QueueFull { stage: "test" }),
            "{err:?}"
        );
        // Another caller has its own queue.
        let _b = pending(&share, "b").await;
        assert_eq!(share.usage(), (1, 3));
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin() {
        let share = FairShare::new("test", 1, 1, 100);
        let held = share.acquire("hog").await.unwrap();
        let mut hog = Vec::new();
        for _ in 0..5 {
            hog.push(pending(&share, "hog").await);
        }
        let victim = pending(&share, "victim").await;
        drop(held);
        // The hog's first waiter queued before the victim and gets the slot...
        let first = hog.remove(0).await.unwrap();
        assert!(!victim.is_finished());
        drop(first);
        // ...then it is the victim's turn, not the hog's four others.
        let got = tokio::time::timeout(Duration::from_secs(1), victim)
            .await
            .expect("victim served next")
            .unwrap();
        assert_eq!(&*got.caller, "victim");
    }

    #[tokio::test]
    async fn abandoned_waiters_leave_no_trace() {
        let share = FairShare::new("test", 1, 1, 1);
        let held = share.acquire("a").await.unwrap();
        let waiter = pending(&share, "a").await;
        waiter.abort();
        let _ = waiter.await;
        // Its place in the queue is free again.
        let again = pending(&share, "a").await;
        drop(held);
        let slot = again.await.unwrap();
        drop(slot);
        assert_eq!(share.usage(), (0, 0));
        assert!(share.lock().callers.is_empty() && share.lock().turns.is_empty());
    }
}
