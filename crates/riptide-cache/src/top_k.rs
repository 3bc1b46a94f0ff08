//! One tenant's most-accessed URLs: a bounded *space-saving* top-K with an ordered
//! index, so counting and evicting the least counted URL are `O(log K)` (see
//! [`super::popularity`] for why the rule never loses a real heavy hitter).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A batch of increments and its id, kept until the store has applied it.
#[derive(Debug, Clone)]
pub(super) struct Batch {
    pub(super) id: String,
    pub(super) increments: Vec<(String, i64)>,
}

/// One tracked URL.
#[derive(Debug)]
struct Slot {
    url: Arc<str>,
    /// Estimated accesses: the persisted total plus what was counted here since.
    count: u64,
    /// Counted here and not yet taken into a batch.
    unwritten: u64,
}

/// One tenant's top-K (space-saving) with an ordered index.
#[derive(Debug, Default)]
pub(super) struct TopK {
    slots: Vec<Slot>,
    index: HashMap<Arc<str>, usize>,
    /// `(count, slot)`, so the least counted is first.
    order: BTreeSet<(u64, usize)>,
    pub(super) pending: Option<Batch>,
    /// Persists since this tenant last counted an access.
    pub(super) idle_persists: u32,
}

impl TopK {
    pub(super) fn record(&mut self, url: &str, k: usize) {
        self.idle_persists = 0;
        if let Some(&i) = self.index.get(url) {
            self.set_count(i, self.slots[i].count.saturating_add(1));
            self.slots[i].unwritten += 1;
        } else if self.slots.len() < k {
            self.insert(Arc::from(url), 1, 1);
        } else if let Some(&(min, i)) = self.order.first() {
            self.replace(i, Arc::from(url), min.saturating_add(1), 1);
        }
    }

    fn insert(&mut self, url: Arc<str>, count: u64, unwritten: u64) {
        let i = self.slots.len();
        self.index.insert(url.clone(), i);
        self.order.insert((count, i));
        self.slots.push(Slot {
            url,
            count,
            unwritten,
        });
    }

    fn replace(&mut self, i: usize, url: Arc<str>, count: u64, unwritten: u64) {
        let old = &self.slots[i];
        self.order.remove(&(old.count, i));
        self.index.remove(&old.url);
        self.index.insert(url.clone(), i);
        self.order.insert((count, i));
        self.slots[i] = Slot {
            url,
            count,
            unwritten,
        };
    }

    fn set_count(&mut self, i: usize, count: u64) {
        let slot = &mut self.slots[i];
        self.order.remove(&(slot.count, i));
        slot.count = count;
        self.order.insert((count, i));
    }

    pub(super) fn descending(&self) -> impl Iterator<Item = (u64, &str)> {
        self.order
            .iter()
            .rev()
            .map(|&(count, i)| (count, &*self.slots[i].url))
    }

    pub(super) fn descending_arcs(&self) -> impl Iterator<Item = (u64, &Arc<str>)> {
        self.order
            .iter()
            .rev()
            .map(|&(count, i)| (count, &self.slots[i].url))
    }

    /// URLs tracked.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn best(&self) -> u64 {
        self.order.last().map_or(0, |&(count, _)| count)
    }

    pub(super) fn has_increments(&self) -> bool {
        self.slots.iter().any(|s| s.unwritten > 0)
    }

    pub(super) fn take_increments(&mut self) -> Vec<(String, i64)> {
        self.slots
            .iter_mut()
            .filter(|s| s.unwritten > 0)
            .map(|s| {
                let n = std::mem::take(&mut s.unwritten);
                (s.url.to_string(), i64::try_from(n).unwrap_or(i64::MAX))
            })
            .collect()
    }

    /// Takes the store's totals (which include every batch applied so far) as the
    /// counts, plus what was counted here since; URLs of the store that beat the least
    /// counted here come in.
    pub(super) fn merge_persisted(&mut self, mut persisted: Vec<(String, i64)>, k: usize) {
        persisted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (url, total) in persisted.into_iter().take(k) {
            let total = u64::try_from(total).unwrap_or(0);
            if let Some(&i) = self.index.get(url.as_str()) {
                let unwritten = self.slots[i].unwritten;
                let pending = self.pending_of(&url);
                self.set_count(i, total.saturating_add(unwritten).saturating_add(pending));
            } else if self.slots.len() < k {
                self.insert(Arc::from(url), total, 0);
            } else if let Some(&(min, i)) = self.order.first()
                && total > min
            {
                self.replace(i, Arc::from(url), total, 0);
            }
        }
    }

    /// What a pending (not yet applied) batch holds for `url`.
    fn pending_of(&self, url: &str) -> u64 {
        self.pending.as_ref().map_or(0, |batch| {
            batch
                .increments
                .iter()
                .find(|(u, _)| u == url)
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(top: &TopK) -> Vec<(u64, String)> {
        top.descending().map(|(c, u)| (c, u.to_owned())).collect()
    }

    #[test]
    fn counts_order_and_the_bound() {
        let mut top = TopK::default();
        for (url, n) in [("a", 5), ("b", 3), ("c", 1)] {
            for _ in 0..n {
                top.record(url, 3);
            }
        }
        assert_eq!(
            counts(&top),
            [(5, "a".into()), (3, "b".into()), (1, "c".into())]
        );
        // Full: a new URL replaces the least counted and inherits its count plus one.
        top.record("d", 3);
        assert_eq!(top.slots.len(), 3);
        assert_eq!(
            counts(&top),
            [(5, "a".into()), (3, "b".into()), (2, "d".into())]
        );
        assert!(!top.index.contains_key("c"));
        assert_eq!(top.index.len(), top.order.len());
    }

    #[test]
    fn a_heavy_hitter_survives_a_stream_of_one_off_urls() {
        let mut top = TopK::default();
        for i in 0..10_000 {
            top.record(&format!("noise-{i}"), 16);
            if i % 10 == 0 {
                top.record("hot", 16);
            }
        }
        let (count, url) = top.descending().next().expect("one");
        assert_eq!(url, "hot");
        assert!(count >= 1_000, "{count}");
        assert_eq!(top.slots.len(), 16);
    }

    #[test]
    fn increments_are_taken_once_and_merged_with_the_store() {
        let mut top = TopK::default();
        top.record("a", 4);
        top.record("a", 4);
        top.record("b", 4);
        let mut taken = top.take_increments();
        taken.sort();
        assert_eq!(taken, [("a".into(), 2), ("b".into(), 1)]);
        assert!(top.take_increments().is_empty());
        top.record("a", 4);
        // The store has a = 7 (2 of ours and 5 of another instance), and c.
        top.merge_persisted(vec![("a".into(), 7), ("c".into(), 4)], 4);
        assert_eq!(
            counts(&top),
            [(8, "a".into()), (4, "c".into()), (1, "b".into())]
        );
    }
}
