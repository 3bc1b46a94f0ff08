//! Sorted sets on the embedded store (registries, logs, heartbeats), durable commits.
//!
//! A member's score lives in `zset_scores`; `zset_order` holds `(set, score, member)`
//! so a range in (score, member) order is one B-tree scan (redb orders `i64` as signed
//! integers and `&str` by bytes, which is Redis' member order too); `zset_len` keeps the
//! member count so `zset_len` is one lookup. All three change in one write transaction.
//! An absent set reads as empty; a set whose last member goes keeps no row anywhere.
//!
//! Scores are `i64` within ±2^53 ([`MAX_SCORE`]): Redis keeps scores as doubles, which
//! hold exactly the integers up to 2^53, so both backends refuse a batch with a score
//! beyond that (before writing anything) rather than let the two disagree.

use async_trait::async_trait;
use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::{ZSET_LEN, ZSET_ORDER, ZSET_SCORES, just_after};
use super::{EmbeddedStore, RedbResultExt, backend};
use crate::{Durability, SortedSets, StoreResult};

/// Largest `|score|` a sorted set accepts (what a Redis score, a double, holds exactly).
pub(super) const MAX_SCORE: i64 = 1 << 53;

/// Most entries preallocated for a range answer, whatever `limit` says.
const PREALLOC: usize = 256;

/// The sorted set tables of one write transaction.
pub(super) struct ZsetTables<'t> {
    scores: Table<'t, (&'static str, &'static str), i64>,
    order: Table<'t, (&'static str, i64, &'static str), ()>,
    len: Table<'t, &'static str, u64>,
}

impl<'t> ZsetTables<'t> {
    pub(super) fn open(tx: &'t WriteTransaction) -> StoreResult<Self> {
        Ok(Self {
            scores: tx.open_table(ZSET_SCORES).ctx("open table zset_scores")?,
            order: tx.open_table(ZSET_ORDER).ctx("open table zset_order")?,
            len: tx.open_table(ZSET_LEN).ctx("open table zset_len")?,
        })
    }

    fn count(&self, key: &str) -> StoreResult<u64> {
        Ok(self
            .len
            .get(key)
            .ctx("read sorted set length")?
            .map_or(0, |row| row.value()))
    }

    fn set_count(&mut self, key: &str, count: u64) -> StoreResult<()> {
        if count == 0 {
            self.len.remove(key).ctx("write sorted set length")?;
        } else {
            self.len.insert(key, count).ctx("write sorted set length")?;
        }
        Ok(())
    }

    /// Adds members or moves them to their new score; a member given twice ends with
    /// its last score.
    pub(super) fn add(&mut self, key: &str, members: &[(String, i64)]) -> StoreResult<()> {
        let mut count = self.count(key)?;
        for (member, score) in members {
            let old = self
                .scores
                .insert((key, member.as_str()), *score)
                .ctx("write sorted set score")?
                .map(|old| old.value());
            match old {
                Some(old) if old == *score => continue,
                Some(old) => {
                    self.order
                        .remove((key, old, member.as_str()))
                        .ctx("write sorted set order")?;
                }
                None => count = count.saturating_add(1),
            }
            self.order
                .insert((key, *score, member.as_str()), ())
                .ctx("write sorted set order")?;
        }
        self.set_count(key, count)
    }

    /// Removes members; returns how many were present.
    pub(super) fn remove(&mut self, key: &str, members: &[String]) -> StoreResult<u64> {
        let mut removed = 0;
        for member in members {
            let old = self
                .scores
                .remove((key, member.as_str()))
                .ctx("delete sorted set member")?
                .map(|old| old.value());
            if let Some(score) = old {
                self.order
                    .remove((key, score, member.as_str()))
                    .ctx("delete sorted set member")?;
                removed += 1;
            }
        }
        if removed > 0 {
            let count = self.count(key)?.saturating_sub(removed);
            self.set_count(key, count)?;
        }
        Ok(removed)
    }

    /// Removes the members with `min <= score <= max`; returns how many.
    pub(super) fn remove_by_score(&mut self, key: &str, min: i64, max: i64) -> StoreResult<u64> {
        if min > max {
            return Ok(0);
        }
        let next;
        let end = match max.checked_add(1) {
            Some(after) => (key, after, ""),
            None => {
                next = just_after(key);
                (next.as_str(), i64::MIN, "")
            }
        };
        let mut doomed = Vec::new();
        for item in self
            .order
            .range((key, min, "")..end)
            .ctx("scan sorted set")?
        {
            let (row, _) = item.ctx("scan sorted set")?;
            doomed.push(row.value().2.to_owned());
        }
        self.remove(key, &doomed)
    }

    /// Removes the whole set; returns whether it had members.
    pub(super) fn remove_all(&mut self, key: &str) -> StoreResult<bool> {
        let existed = self.count(key)? > 0;
        let next = just_after(key);
        self.scores
            .retain_in((key, "")..(next.as_str(), ""), |_, _| false)
            .ctx("delete sorted set")?;
        self.order
            .retain_in(
                (key, i64::MIN, "")..(next.as_str(), i64::MIN, ""),
                |_, ()| false,
            )
            .ctx("delete sorted set")?;
        self.len.remove(key).ctx("delete sorted set")?;
        Ok(existed)
    }
}

/// Members of `key` with `min <= score <= max` in order, skipping `offset`, at most
/// `limit`, from one read transaction.
fn scan(
    store: &EmbeddedStore,
    key: &str,
    min: i64,
    max: i64,
    offset: u64,
    limit: u64,
) -> StoreResult<Vec<(String, i64)>> {
    if min > max || limit == 0 {
        return Ok(Vec::new());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let order = store.inner.read_table(ZSET_ORDER, "zset_order")?;
    let next;
    let end = match max.checked_add(1) {
        Some(after) => (key, after, ""),
        None => {
            next = just_after(key);
            (next.as_str(), i64::MIN, "")
        }
    };
    let mut out = Vec::with_capacity(limit.min(PREALLOC));
    for item in order
        .range((key, min, "")..end)
        .ctx("scan sorted set")?
        .skip(offset)
        .take(limit)
    {
        let (row, _) = item.ctx("scan sorted set")?;
        let (_, score, member) = row.value();
        out.push((member.to_owned(), score));
    }
    Ok(out)
}

#[async_trait]
impl SortedSets for EmbeddedStore {
    /// `zset_add` (one durable transaction; nothing to do for no members).
    async fn zset_add(&self, key: &str, members: &[(String, i64)]) -> StoreResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        if let Some((member, score)) = members
            .iter()
            .find(|(_, score)| score.unsigned_abs() > MAX_SCORE.unsigned_abs())
        {
            return Err(backend(&format!(
                "score {score} of {member:?} is outside ±2^53 (refused on every backend)"
            )));
        }
        let key = key.to_owned();
        let members = members.to_vec();
        self.write(Durability::Durable, move |tx, _| {
            ZsetTables::open(tx)?.add(&key, &members)
        })
        .await
    }

    async fn zset_remove(&self, key: &str, members: &[String]) -> StoreResult<u64> {
        if members.is_empty() {
            return Ok(0);
        }
        let key = key.to_owned();
        let members = members.to_vec();
        self.write(Durability::Durable, move |tx, _| {
            ZsetTables::open(tx)?.remove(&key, &members)
        })
        .await
    }

    /// `zset_range`: members in (score, member) order, skipping `offset`, at most `limit`.
    async fn zset_range(
        &self,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>> {
        scan(self, key, i64::MIN, i64::MAX, offset, limit)
    }

    /// `zset_range_by_score`: members with `min <= score <= max`, at most `limit`.
    async fn zset_range_by_score(
        &self,
        key: &str,
        min: i64,
        max: i64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>> {
        scan(self, key, min, max, 0, limit)
    }

    async fn zset_remove_by_score(&self, key: &str, min: i64, max: i64) -> StoreResult<u64> {
        if min > max {
            return Ok(0);
        }
        let key = key.to_owned();
        self.write(Durability::Durable, move |tx, _| {
            ZsetTables::open(tx)?.remove_by_score(&key, min, max)
        })
        .await
    }

    async fn zset_score(&self, key: &str, member: &str) -> StoreResult<Option<i64>> {
        let scores = self.inner.read_table(ZSET_SCORES, "zset_scores")?;
        Ok(scores
            .get((key, member))
            .ctx("read sorted set score")?
            .map(|row| row.value()))
    }

    async fn zset_len(&self, key: &str) -> StoreResult<u64> {
        let len = self.inner.read_table(ZSET_LEN, "zset_len")?;
        Ok(len
            .get(key)
            .ctx("read sorted set length")?
            .map_or(0, |row| row.value()))
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::super::tables::{ZSET_LEN, ZSET_ORDER, ZSET_SCORES};
    use super::super::tests::{fixture, quiet_config};
    use super::MAX_SCORE;
    use crate::StoreError;
    use crate::embedded::EmbeddedStore;

    fn members(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
    }

    /// Rows in `(zset_scores, zset_order, zset_len)`.
    fn rows(store: &EmbeddedStore) -> (u64, u64, u64) {
        let tx = store.inner.db.begin_read().unwrap();
        (
            tx.open_table(ZSET_SCORES).unwrap().len().unwrap(),
            tx.open_table(ZSET_ORDER).unwrap().len().unwrap(),
            tx.open_table(ZSET_LEN).unwrap().len().unwrap(),
        )
    }

    #[tokio::test]
    async fn sorted_sets_survive_a_reopen() {
        let f = fixture();
        f.store
            .zset_add("z", &members(&[("a", 3), ("b", -1), ("c", 3)]))
            .await
            .unwrap();
        f.store
            .zset_add("other", &members(&[("x", 0)]))
            .await
            .unwrap();
        drop(f.store);
        let store = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap();
        assert_eq!(
            store.zset_range("z", 0, 10).await.unwrap(),
            members(&[("b", -1), ("a", 3), ("c", 3)])
        );
        assert_eq!(store.zset_len("z").await.unwrap(), 3);
        assert_eq!(store.zset_score("other", "x").await.unwrap(), Some(0));
    }

    #[tokio::test]
    async fn the_three_tables_stay_in_step() {
        let f = fixture();
        let s = &f.store;
        s.zset_add("z", &members(&[("a", 1), ("b", 2), ("a", 5), ("b", 2)]))
            .await
            .unwrap();
        assert_eq!(rows(s), (2, 2, 1));
        assert_eq!(
            s.zset_range("z", 0, 10).await.unwrap(),
            members(&[("b", 2), ("a", 5)])
        );
        assert_eq!(
            s.zset_remove_by_score("z", i64::MIN, i64::MAX)
                .await
                .unwrap(),
            2
        );
        assert_eq!(rows(s), (0, 0, 0), "an emptied set keeps no row");
        s.zset_add("z", &members(&[("a", MAX_SCORE), ("b", -MAX_SCORE)]))
            .await
            .unwrap();
        assert_eq!(
            s.zset_range_by_score("z", i64::MIN, i64::MAX, u64::MAX)
                .await
                .unwrap(),
            members(&[("b", -MAX_SCORE), ("a", MAX_SCORE)])
        );
        for bad in [MAX_SCORE + 1, -MAX_SCORE - 1, i64::MAX, i64::MIN] {
            let err = s
                .zset_add("z", &members(&[("c", 0), ("d", bad)]))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
        }
        assert_eq!(
            s.zset_len("z").await.unwrap(),
            2,
            "a refused batch writes nothing"
        );
        assert_eq!(s.delete(&["z".to_owned()]).await.unwrap(), 1);
        assert_eq!(rows(s), (0, 0, 0));
        assert_eq!(s.zset_len("z").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_set_whose_key_prefixes_another_stays_apart() {
        let f = fixture();
        let s = &f.store;
        s.zset_add("k", &members(&[("m", 1)])).await.unwrap();
        s.zset_add("k\0", &members(&[("m", 1)])).await.unwrap();
        s.zset_add("k:x", &members(&[("m", 1)])).await.unwrap();
        assert_eq!(
            s.zset_range("k", 0, 10).await.unwrap(),
            members(&[("m", 1)])
        );
        assert_eq!(s.delete(&["k".to_owned()]).await.unwrap(), 1);
        assert_eq!(s.zset_len("k\0").await.unwrap(), 1);
        assert_eq!(s.zset_len("k:x").await.unwrap(), 1);
    }
}
