//! The memory tier: decoded sessions, least recently used first out once their
//! estimated bytes pass the limit, and the index of the sessions spilled to disk.
//!
//! This is bookkeeping only: no I/O happens here, and every method runs under one
//! short `std::sync::Mutex` held by the manager (never across an `.await`). Evicted
//! sessions come back as [`Victim`]s, already marked [`SpillState::Writing`] in the
//! spill index; the manager's background writer writes their files and reports back
//! with [`Tiers::spill_finished`] and [`Tiers::writing_done`]. Each spill carries a
//! generation number, so a write that was overtaken (the session was loaded, changed,
//! forgotten or spilled again meanwhile) is recognized and discarded.
//!
//! Every map is bounded: memory by bytes, the spill index by `max_spilled` entries
//! (beyond it an evicted session simply leaves memory: the store still has it), the
//! tombstones by [`MAX_TOMBSTONES`]. Sessions evicted but not yet written are bounded
//! too, by `writing_budget` bytes: an eviction past it leaves memory without a spill
//! file (the store still has it), so a slow disk sheds spills instead of holding
//! requests or growing memory.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::model::Session;
use riptide_store::tenant_id::TenantId;

/// Recently terminated sessions remembered, so a read that raced the termination does
/// not put the session back into memory.
pub(crate) const MAX_TOMBSTONES: usize = 4_096;

/// A session's identity: its tenant and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionKey {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The session id (validated).
    pub id: String,
}

struct MemEntry {
    session: Arc<Session>,
    bytes: u64,
    tick: u64,
}

/// Where a spill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpillState {
    /// Chosen for spilling; the file is being written.
    Writing,
    /// The file is written.
    Ready,
}

/// A spilled session, as the index knows it.
#[derive(Debug, Clone)]
pub(crate) struct SpillEntry {
    /// Bytes of the spill file (0 while writing).
    pub file_bytes: u64,
    /// When the session expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// The spilled session's version.
    pub version: u64,
    /// The spill's generation.
    pub generation: u64,
    /// Writing or written.
    pub state: SpillState,
}

/// A session evicted from memory, to be written to its spill file.
pub(crate) struct Victim {
    /// Which session.
    pub key: SessionKey,
    /// Its contents.
    pub session: Arc<Session>,
    /// The spill generation to report with [`Tiers::spill_finished`].
    pub generation: u64,
    /// Its estimated memory bytes, to report with [`Tiers::writing_done`].
    pub bytes: u64,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// In memory (now the most recently used).
    Memory(Arc<Session>),
    /// In a spill file that is written, of this generation.
    Spilled(u64),
    /// Not held here, or its spill file is still being written.
    Absent,
}

/// What an insert did.
pub(crate) struct Inserted {
    /// The session memory now holds for the key (a newer one already there wins).
    pub current: Arc<Session>,
    /// A spill entry of this key was dropped: its file must go.
    pub stale_spill: bool,
    /// Sessions evicted to get back under the limit.
    pub victims: Vec<Victim>,
}

/// In-memory figures of the tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TierFigures {
    /// Sessions held decoded in memory.
    pub memory_sessions: u64,
    /// Their estimated bytes.
    pub memory_bytes: u64,
    /// The memory tier's limit (`state.session_memory_limit_bytes`).
    pub memory_limit_bytes: u64,
    /// Sessions in spill files (written or being written).
    pub spilled_sessions: u64,
    /// Bytes of the written spill files.
    pub spilled_bytes: u64,
    /// Sessions evicted without a spill file because the spill index was full, or
    /// because too many bytes of spills were already waiting to be written (they are
    /// read from the store when next needed).
    pub evicted_unspilled: u64,
}

/// The memory tier and the spill index.
pub(crate) struct Tiers {
    limit: u64,
    max_spilled: usize,
    mem: HashMap<SessionKey, MemEntry>,
    lru: BTreeMap<u64, SessionKey>,
    mem_bytes: u64,
    tick: u64,
    spilled: HashMap<SessionKey, SpillEntry>,
    spilled_bytes: u64,
    generation: u64,
    /// Bytes of victims handed out and not yet reported done.
    writing_bytes: u64,
    /// Most `writing_bytes` an eviction may add to (shutdown's drain is not limited).
    writing_budget: u64,
    tombstones: HashSet<SessionKey>,
    tombstone_order: VecDeque<SessionKey>,
    evicted_unspilled: u64,
}

impl Tiers {
    /// Empty tiers holding at most `limit` bytes in memory and `max_spilled` spilled
    /// sessions, with at most `writing_budget` bytes of evicted sessions waiting to be
    /// written.
    pub(crate) fn new(limit: u64, max_spilled: usize, writing_budget: u64) -> Self {
        Self {
            limit,
            max_spilled: max_spilled.max(1),
            mem: HashMap::new(),
            lru: BTreeMap::new(),
            mem_bytes: 0,
            tick: 0,
            spilled: HashMap::new(),
            spilled_bytes: 0,
            generation: 0,
            writing_bytes: 0,
            writing_budget,
            tombstones: HashSet::new(),
            tombstone_order: VecDeque::new(),
            evicted_unspilled: 0,
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Finds `key`, marking a memory hit as most recently used.
    pub(crate) fn lookup(&mut self, key: &SessionKey) -> Lookup {
        let tick = self.next_tick();
        if let Some(e) = self.mem.get_mut(key) {
            self.lru.remove(&e.tick);
            e.tick = tick;
            self.lru.insert(tick, key.clone());
            return Lookup::Memory(e.session.clone());
        }
        match self.spilled.get(key) {
            Some(s) if s.state == SpillState::Ready => Lookup::Spilled(s.generation),
            _ => Lookup::Absent,
        }
    }

    /// Whether `key` has a spill entry (written or being written).
    pub(crate) fn has_spill(&self, key: &SessionKey) -> bool {
        self.spilled.contains_key(key)
    }

    /// Puts `session` into memory as the most recently used, unless memory or the spill
    /// index already has a newer version or the session was terminated here; drops a
    /// spill entry of the key; evicts the least recently used sessions while over the
    /// limit.
    pub(crate) fn insert(&mut self, key: SessionKey, session: Arc<Session>) -> Inserted {
        let spilled_newer = self
            .spilled
            .get(&key)
            .is_some_and(|s| s.version > session.version);
        if spilled_newer || self.tombstones.contains(&key) {
            return Inserted {
                current: session,
                stale_spill: false,
                victims: Vec::new(),
            };
        }
        let tick = self.next_tick();
        let current = match self.mem.get_mut(&key) {
            Some(e) if e.session.version > session.version => {
                self.lru.remove(&e.tick);
                e.tick = tick;
                self.lru.insert(tick, key.clone());
                e.session.clone()
            }
            _ => {
                let bytes = session.memory_bytes();
                if let Some(old) = self.mem.insert(
                    key.clone(),
                    MemEntry {
                        session: session.clone(),
                        bytes,
                        tick,
                    },
                ) {
                    self.lru.remove(&old.tick);
                    self.mem_bytes -= old.bytes;
                }
                self.lru.insert(tick, key.clone());
                self.mem_bytes += bytes;
                session
            }
        };
        let stale_spill = self.drop_spill(&key);
        let victims = self.evict();
        Inserted {
            current,
            stale_spill,
            victims,
        }
    }

    fn drop_spill(&mut self, key: &SessionKey) -> bool {
        match self.spilled.remove(key) {
            Some(s) => {
                self.spilled_bytes -= s.file_bytes;
                true
            }
            None => false,
        }
    }

    fn evict(&mut self) -> Vec<Victim> {
        let mut victims = Vec::new();
        while self.mem_bytes > self.limit {
            let Some((_, key)) = self.lru.pop_first() else {
                break;
            };
            if let Some(v) = self.spill_out(key, true) {
                victims.push(v);
            }
        }
        victims
    }

    /// Moves one session (already out of the LRU order) from memory to the spill
    /// index; `budgeted`: only while the bytes waiting to be written allow.
    fn spill_out(&mut self, key: SessionKey, budgeted: bool) -> Option<Victim> {
        let entry = self.mem.remove(&key)?;
        self.mem_bytes -= entry.bytes;
        let over_budget =
            budgeted && self.writing_bytes.saturating_add(entry.bytes) > self.writing_budget;
        if self.spilled.len() >= self.max_spilled || over_budget {
            self.evicted_unspilled += 1;
            return None;
        }
        self.writing_bytes += entry.bytes;
        self.generation += 1;
        let generation = self.generation;
        self.spilled.insert(
            key.clone(),
            SpillEntry {
                file_bytes: 0,
                expires_at_ms: entry.session.expires_at_ms(),
                version: entry.session.version,
                generation,
                state: SpillState::Writing,
            },
        );
        Some(Victim {
            key,
            session: entry.session,
            generation,
            bytes: entry.bytes,
        })
    }

    /// A victim's write is over (written, failed, overtaken or abandoned): its bytes no
    /// longer count against the writing budget.
    pub(crate) fn writing_done(&mut self, bytes: u64) {
        self.writing_bytes = self.writing_bytes.saturating_sub(bytes);
    }

    /// A victim that will not be written after all (the writer could not take it):
    /// its spill entry goes, unless overtaken, and it counts as evicted unspilled.
    pub(crate) fn spill_abandoned(&mut self, v: &Victim) {
        if self.spill_wanted(&v.key, v.generation) {
            self.spilled.remove(&v.key);
        }
        self.writing_done(v.bytes);
        self.evicted_unspilled += 1;
    }

    /// True while the spill of `key` at `generation` is still wanted (not overtaken).
    pub(crate) fn spill_wanted(&self, key: &SessionKey, generation: u64) -> bool {
        self.spilled
            .get(key)
            .is_some_and(|s| s.generation == generation && s.state == SpillState::Writing)
    }

    /// Records the outcome of writing a spill file: `Some(bytes)` written, `None`
    /// failed. Returns false when the spill was overtaken meanwhile (the file, if
    /// written, must be removed).
    pub(crate) fn spill_finished(
        &mut self,
        key: &SessionKey,
        generation: u64,
        file_bytes: Option<u64>,
    ) -> bool {
        if !self.spill_wanted(key, generation) {
            return false;
        }
        match file_bytes {
            Some(bytes) => {
                if let Some(s) = self.spilled.get_mut(key) {
                    s.state = SpillState::Ready;
                    s.file_bytes = bytes;
                    self.spilled_bytes += bytes;
                }
                true
            }
            None => {
                self.spilled.remove(key);
                false
            }
        }
    }

    /// Takes the written spill entry of `key` at `generation` out of the index, to load
    /// its file.
    pub(crate) fn take_spilled(&mut self, key: &SessionKey, generation: u64) -> Option<SpillEntry> {
        match self.spilled.get(key) {
            Some(s) if s.generation == generation && s.state == SpillState::Ready => {
                let s = self.spilled.remove(key)?;
                self.spilled_bytes -= s.file_bytes;
                Some(s)
            }
            _ => None,
        }
    }

    /// Drops `key` from memory and the spill index; returns whether it had a spill
    /// entry (whose file must go).
    pub(crate) fn remove(&mut self, key: &SessionKey) -> bool {
        if let Some(e) = self.mem.remove(key) {
            self.lru.remove(&e.tick);
            self.mem_bytes -= e.bytes;
        }
        self.drop_spill(key)
    }

    /// Drops every session of `tenant` (deleted) from memory and the spill index, each
    /// remembered as terminated; returns those that had a spill entry.
    pub(crate) fn bury_tenant(
        &mut self,
        tenant: &riptide_store::tenant_id::TenantId,
    ) -> Vec<SessionKey> {
        let keys: Vec<SessionKey> = self
            .mem
            .keys()
            .chain(self.spilled.keys())
            .filter(|k| &k.tenant == tenant)
            .cloned()
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        keys.into_iter().filter(|k| self.bury(k)).collect()
    }

    /// Drops `key` and remembers it as terminated, so a racing read cannot bring it
    /// back.
    pub(crate) fn bury(&mut self, key: &SessionKey) -> bool {
        let had_spill = self.remove(key);
        if self.tombstones.insert(key.clone()) {
            self.tombstone_order.push_back(key.clone());
            while self.tombstone_order.len() > MAX_TOMBSTONES {
                if let Some(old) = self.tombstone_order.pop_front() {
                    self.tombstones.remove(&old);
                }
            }
        }
        had_spill
    }

    /// Moves every session in memory to the spill index (for a graceful shutdown).
    pub(crate) fn drain_memory(&mut self) -> Vec<Victim> {
        let order: Vec<SessionKey> = std::mem::take(&mut self.lru).into_values().collect();
        let mut victims = Vec::with_capacity(order.len());
        // The spill index may pass its bound here: memory is bounded by bytes, so this
        // adds at most what memory held.
        let bound = self.max_spilled;
        self.max_spilled = usize::MAX;
        for key in order {
            if let Some(v) = self.spill_out(key, false) {
                victims.push(v);
            }
        }
        self.max_spilled = bound;
        victims
    }

    /// Drops, from memory and the spill index, up to `limit` sessions expired at
    /// `now_ms`. Returns the dropped keys and whether each had a spill entry.
    pub(crate) fn drop_expired(&mut self, now_ms: u64, limit: usize) -> Vec<(SessionKey, bool)> {
        let mut expired: Vec<SessionKey> = self
            .mem
            .iter()
            .filter(|(_, e)| e.session.is_expired_at(now_ms))
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        let room = limit.saturating_sub(expired.len());
        expired.extend(
            self.spilled
                .iter()
                .filter(|(k, s)| s.expires_at_ms <= now_ms && !self.mem.contains_key(*k))
                .map(|(k, _)| k.clone())
                .take(room),
        );
        expired
            .into_iter()
            .map(|k| {
                let had_spill = self.remove(&k);
                (k, had_spill)
            })
            .collect()
    }

    /// Drops everything; returns the keys that had spill entries.
    pub(crate) fn clear(&mut self) -> Vec<SessionKey> {
        self.mem.clear();
        self.lru.clear();
        self.mem_bytes = 0;
        self.spilled_bytes = 0;
        std::mem::take(&mut self.spilled).into_keys().collect()
    }

    /// Current figures.
    pub(crate) fn figures(&self) -> TierFigures {
        TierFigures {
            memory_sessions: self.mem.len() as u64,
            memory_bytes: self.mem_bytes,
            memory_limit_bytes: self.limit,
            spilled_sessions: self.spilled.len() as u64,
            spilled_bytes: self.spilled_bytes,
            evicted_unspilled: self.evicted_unspilled,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;

    fn key(i: usize) -> SessionKey {
        SessionKey {
            tenant: TenantId::parse("acme").unwrap(),
            id: format!("{i:022}"),
        }
    }

    fn session(i: usize, version: u64, expires_ms: i64) -> Arc<Session> {
        let t = Utc.timestamp_millis_opt(0).unwrap();
        Arc::new(Session {
            id: format!("{i:022}"),
            tenant_id: "acme".into(),
            cookies: Vec::new(),
            headers: BTreeMap::new(),
            created_at: t,
            updated_at: t,
            expires_at: Utc.timestamp_millis_opt(expires_ms).unwrap(),
            version,
        })
    }

    fn one_size() -> u64 {
        session(0, 1, 1_000).memory_bytes()
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut t = Tiers::new(one_size() * 3, 100, u64::MAX);
        for i in 0..3 {
            assert!(t.insert(key(i), session(i, 1, 1_000)).victims.is_empty());
        }
        assert!(matches!(t.lookup(&key(0)), Lookup::Memory(_)));
        let victims = t.insert(key(3), session(3, 1, 1_000)).victims;
        assert_eq!(victims.len(), 1);
        assert_eq!(victims[0].key, key(1), "1 was used least recently");
        assert!(
            matches!(t.lookup(&key(1)), Lookup::Absent),
            "still being written"
        );
        assert!(t.spill_finished(&key(1), victims[0].generation, Some(77)));
        assert!(matches!(t.lookup(&key(1)), Lookup::Spilled(_)));
        let f = t.figures();
        assert_eq!(
            (f.memory_sessions, f.spilled_sessions, f.spilled_bytes),
            (3, 1, 77)
        );
        assert_eq!(f.memory_bytes, one_size() * 3);
    }

    #[test]
    fn overtaken_spills_are_recognized() {
        let mut t = Tiers::new(one_size(), 100, u64::MAX);
        t.insert(key(0), session(0, 1, 1_000));
        let v = t.insert(key(1), session(1, 1, 1_000)).victims;
        let g = v[0].generation;
        // Loaded back (a newer version) before the file was written.
        let ins = t.insert(key(0), session(0, 2, 1_000));
        assert!(ins.stale_spill);
        assert!(!t.spill_wanted(&key(0), g));
        assert!(!t.spill_finished(&key(0), g, Some(10)));
        assert_eq!(t.figures().spilled_bytes, 0);
    }

    #[test]
    fn older_versions_do_not_replace_newer_ones_and_tombstones_hold() {
        let mut t = Tiers::new(one_size() * 10, 100, u64::MAX);
        t.insert(key(0), session(0, 5, 1_000));
        let ins = t.insert(key(0), session(0, 4, 1_000));
        assert_eq!(ins.current.version, 5);
        t.bury(&key(0));
        t.insert(key(0), session(0, 6, 1_000));
        assert!(matches!(t.lookup(&key(0)), Lookup::Absent));
        // A newer version on disk is not replaced by an older read either.
        let mut t = Tiers::new(one_size(), 100, u64::MAX);
        t.insert(key(1), session(1, 7, 1_000));
        let v = t.insert(key(2), session(2, 1, 1_000)).victims;
        assert!(t.spill_finished(&key(1), v[0].generation, Some(9)));
        let ins = t.insert(key(1), session(1, 6, 1_000));
        assert!(!ins.stale_spill);
        assert!(matches!(t.lookup(&key(1)), Lookup::Spilled(_)));
    }

    #[test]
    fn take_spilled_and_expiry_and_drain() {
        let mut t = Tiers::new(one_size(), 100, u64::MAX);
        t.insert(key(0), session(0, 1, 500));
        let v = t.insert(key(1), session(1, 1, 2_000)).victims;
        t.spill_finished(&key(0), v[0].generation, Some(5));
        assert!(t.take_spilled(&key(0), v[0].generation + 1).is_none());
        let e = t.take_spilled(&key(0), v[0].generation).unwrap();
        assert_eq!(e.expires_at_ms, 500);
        assert_eq!(t.figures().spilled_sessions, 0);
        t.insert(key(2), session(2, 1, 100));
        let dropped = t.drop_expired(1_000, 10);
        assert_eq!(
            dropped.len(),
            1,
            "{:?}",
            dropped.iter().map(|d| &d.0).collect::<Vec<_>>()
        );
        t.insert(key(3), session(3, 1, 5_000));
        let before = t.figures().spilled_sessions;
        let drained = t.drain_memory();
        assert_eq!(drained.len(), 1);
        assert_eq!(t.figures().memory_sessions, 0);
        assert_eq!(t.figures().spilled_sessions, before + 1);
    }

    #[test]
    fn a_full_spill_index_drops_instead() {
        let mut t = Tiers::new(one_size(), 1, u64::MAX);
        t.insert(key(0), session(0, 1, 1_000));
        assert_eq!(t.insert(key(1), session(1, 1, 1_000)).victims.len(), 1);
        assert_eq!(t.insert(key(2), session(2, 1, 1_000)).victims.len(), 0);
        assert_eq!(t.figures().evicted_unspilled, 1);
    }

    #[test]
    fn evictions_past_the_writing_budget_leave_without_a_spill() {
        // Room for two sessions waiting to be written.
        let mut t = Tiers::new(one_size(), 100, one_size() * 2);
        t.insert(key(0), session(0, 1, 1_000));
        let a = t.insert(key(1), session(1, 1, 1_000)).victims;
        let b = t.insert(key(2), session(2, 1, 1_000)).victims;
        assert_eq!((a.len(), b.len()), (1, 1));
        // Both still being written: the next eviction is shed.
        assert!(t.insert(key(3), session(3, 1, 1_000)).victims.is_empty());
        assert_eq!(t.figures().evicted_unspilled, 1);
        assert!(matches!(t.lookup(&key(2)), Lookup::Absent));
        // One written: room again.
        assert!(t.spill_finished(&a[0].key, a[0].generation, Some(10)));
        t.writing_done(a[0].bytes);
        assert_eq!(t.insert(key(4), session(4, 1, 1_000)).victims.len(), 1);
        // An abandoned write frees its room and its index entry.
        t.spill_abandoned(&b[0]);
        assert!(!t.has_spill(&b[0].key));
        assert_eq!(t.figures().evicted_unspilled, 2);
        // Shutdown's drain is not limited by the budget.
        t.insert(key(5), session(5, 1, 1_000));
        let drained = t.drain_memory();
        assert_eq!(drained.len(), 1);
    }
}
