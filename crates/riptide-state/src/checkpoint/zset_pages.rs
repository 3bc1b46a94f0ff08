//! Reading sorted sets a page at a time, shared by creating and restoring.

use riptide_store::{SortedSets, StoreResult};

/// Page size of sorted-set reads.
pub(super) const ZSET_PAGE: u64 = 500;

/// Every member of a (small) sorted set, in order.
pub(super) async fn zset_all(store: &dyn SortedSets, key: &str) -> StoreResult<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = store.zset_range(key, offset, ZSET_PAGE).await?;
        let n = page.len() as u64;
        out.extend(page);
        if n < ZSET_PAGE {
            return Ok(out);
        }
        offset += n;
    }
}

/// Pages through a sorted set by score, from `min` up, without offsets: members
/// removed meanwhile never make it skip others (members added meanwhile may or may not
/// be seen). Members sharing the last score are asked for again on the next page and
/// filtered out, so a run of `n` equal scores costs `O(n²/page)` members read; the
/// scores paged here are millisecond times, where such runs are short.
pub(super) struct ZsetCursor {
    key: String,
    /// Score of the last member returned (or the start).
    min: i64,
    /// The last member returned.
    last: Option<(i64, String)>,
    /// Members returned with score `min` (they come back in the next query).
    at_min: u64,
    /// Grows when a page held nothing new, so progress is certain.
    extra: u64,
    page: u64,
    done: bool,
}

impl ZsetCursor {
    pub(super) fn new(key: String, min: i64, page: u64) -> Self {
        Self {
            key,
            min,
            last: None,
            at_min: 0,
            extra: 0,
            page,
            done: false,
        }
    }

    /// The next page (empty at the end).
    pub(super) async fn next(&mut self, store: &dyn SortedSets) -> StoreResult<Vec<(String, i64)>> {
        while !self.done {
            let limit = self.page + self.at_min + self.extra;
            let raw = store
                .zset_range_by_score(&self.key, self.min, i64::MAX, limit)
                .await?;
            self.done = (raw.len() as u64) < limit;
            let fresh: Vec<(String, i64)> = raw
                .into_iter()
                .filter(|(m, s)| match &self.last {
                    Some((ls, lm)) => (*s, m.as_str()) > (*ls, lm.as_str()),
                    None => true,
                })
                .collect();
            let Some((m, s)) = fresh.last() else {
                self.extra += self.page;
                continue;
            };
            self.extra = 0;
            if *s != self.min {
                self.min = *s;
                self.at_min = 0;
            }
            self.at_min += fresh.iter().filter(|(_, fs)| *fs == self.min).count() as u64;
            self.last = Some((*s, m.clone()));
            return Ok(fresh);
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use riptide_store::prelude::*;

    use super::*;

    #[tokio::test]
    async fn zset_cursor_pages_survive_ties_and_deletions() {
        let dir = tempfile::tempdir().expect("dir");
        let store = riptide_store::embedded::EmbeddedStore::open(
            dir.path(),
            &riptide_store::config::EmbeddedConfig::default(),
            riptide_store::clock::system_clock(),
        )
        .expect("store");
        // 1,200 members on 4 scores: long runs of ties across page boundaries.
        let members: Vec<(String, i64)> = (0..1_200)
            .map(|i| (format!("m{i:04}"), i64::from(i / 300)))
            .collect();
        store.zset_add("z", &members).await.expect("add");
        let mut cursor = ZsetCursor::new("z".to_owned(), i64::MIN, 100);
        let first = cursor.next(&*store).await.expect("page");
        assert_eq!(first.len(), 100);
        // Members already returned and members not yet reached disappear meanwhile.
        let seen: Vec<String> = first.iter().take(50).map(|(m, _)| m.clone()).collect();
        let unseen: Vec<String> = (1_190..1_200).map(|i| format!("m{i:04}")).collect();
        store.zset_remove("z", &seen).await.expect("remove");
        store.zset_remove("z", &unseen).await.expect("remove");
        let mut got: Vec<String> = first.into_iter().map(|(m, _)| m).collect();
        loop {
            let page = cursor.next(&*store).await.expect("page");
            if page.is_empty() {
                break;
            }
            got.extend(page.into_iter().map(|(m, _)| m));
        }
        let expected: Vec<String> = (0..1_190).map(|i| format!("m{i:04}")).collect();
        assert_eq!(
            got, expected,
            "every remaining member once, in order, none skipped"
        );
    }

    /// Sorted sets in memory: a test double of the one capability the cursor uses.
    #[derive(Default)]
    struct Sets(std::sync::Mutex<std::collections::BTreeSet<(i64, String)>>);

    impl Sets {
        fn members(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<(i64, String)>> {
            self.0.lock().expect("lock")
        }
    }

    #[async_trait::async_trait]
    impl SortedSets for Sets {
        async fn zset_add(&self, _: &str, members: &[(String, i64)]) -> StoreResult<()> {
            let mut set = self.members();
            for (m, s) in members {
                set.retain(|(_, old)| old != m);
                set.insert((*s, m.clone()));
            }
            Ok(())
        }
        async fn zset_remove(&self, _: &str, members: &[String]) -> StoreResult<u64> {
            let mut set = self.members();
            let before = set.len();
            set.retain(|(_, m)| !members.contains(m));
            Ok((before - set.len()) as u64)
        }
        async fn zset_range(
            &self,
            _: &str,
            offset: u64,
            limit: u64,
        ) -> StoreResult<Vec<(String, i64)>> {
            let set = self.members();
            let page = set.iter().skip(offset as usize).take(limit as usize);
            Ok(page.map(|(s, m)| (m.clone(), *s)).collect())
        }
        async fn zset_range_by_score(
            &self,
            _: &str,
            min: i64,
            max: i64,
            limit: u64,
        ) -> StoreResult<Vec<(String, i64)>> {
            let set = self.members();
            let page = set.iter().filter(|(s, _)| (min..=max).contains(s));
            Ok(page
                .take(limit as usize)
                .map(|(s, m)| (m.clone(), *s))
                .collect())
        }
        async fn zset_remove_by_score(&self, _: &str, min: i64, max: i64) -> StoreResult<u64> {
            let mut set = self.members();
            let before = set.len();
            set.retain(|(s, _)| !(min..=max).contains(s));
            Ok((before - set.len()) as u64)
        }
        async fn zset_score(&self, _: &str, member: &str) -> StoreResult<Option<i64>> {
            Ok(self
                .members()
                .iter()
                .find(|(_, m)| m == member)
                .map(|(s, _)| *s))
        }
        async fn zset_len(&self, _: &str) -> StoreResult<u64> {
            Ok(self.members().len() as u64)
        }
    }

    #[tokio::test]
    async fn zset_cursor_sees_each_member_once_while_members_come_and_go() {
        let sets = Sets::default();
        // 500 members, all on one score: one run of ties across every page.
        let members: Vec<(String, i64)> = (0..500).map(|i| (format!("m{i:03}"), 7)).collect();
        sets.zset_add("z", &members).await.expect("add");
        let mut cursor = ZsetCursor::new("z".to_owned(), i64::MIN, 64);
        let mut got = Vec::new();
        loop {
            let page = cursor.next(&sets).await.expect("page");
            if page.is_empty() {
                break;
            }
            got.extend(page.into_iter().map(|(m, _)| m));
            // Between pages the first member goes and a later score arrives.
            let first = sets.zset_range("z", 0, 1).await.expect("range");
            let gone: Vec<String> = first.into_iter().map(|(m, _)| m).collect();
            sets.zset_remove("z", &gone).await.expect("remove");
            let late = format!("late{}", got.len());
            sets.zset_add("z", &[(late, 9)]).await.expect("add");
        }
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "no member twice");
        let tied = got.iter().filter(|m| m.starts_with('m')).count();
        assert_eq!(
            tied, 500,
            "every tied member present at the start is seen once"
        );
        assert_eq!(
            zset_all(&sets, "z").await.expect("all").len(),
            sets.members().len()
        );
    }
}
