//! Counters records on the embedded store: named `i64` fields under one key, one row
//! per field in the `counters` table (so a record reads in field order with one range
//! scan), durable commits.
//!
//! `counters_add_once` remembers each applied batch id as a plain `kv` value
//! `<dedupe_key>\0<batch_id>` ([`applied_id`]) with a TTL of `dedupe_ttl_ms`, written in
//! the same transaction as the increments: a retried batch finds it and changes nothing,
//! and the sweeper forgets it once its window has passed. `delete` of the dedupe key
//! drops every id under it (keys never contain NUL, so the prefix `<dedupe_key>\0` is
//! the dedupe key's alone).
//!
//! Every write here ends by dropping the record from the rate limiter's override cache
//! (see `rate.rs`), after the commit.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};

use super::tables::{COUNTERS, KV, KvTables, is_live, just_after, split_value};
use super::{EmbeddedStore, RedbResultExt, backend, expires_at};
use crate::{Counters, CountersApplied, Durability, StoreResult};

/// The `kv` key remembering that `batch_id` was applied under `dedupe_key`.
pub(super) fn applied_id(dedupe_key: &str, batch_id: &str) -> String {
    format!("{}{batch_id}", applied_prefix(dedupe_key))
}

/// The start of every [`applied_id`] under `dedupe_key`.
pub(super) fn applied_prefix(dedupe_key: &str) -> String {
    format!("{dedupe_key}\0")
}

/// The counters table of one write transaction.
pub(super) struct CounterTables<'t> {
    fields: Table<'t, (&'static str, &'static str), i64>,
}

impl<'t> CounterTables<'t> {
    pub(super) fn open(tx: &'t WriteTransaction) -> StoreResult<Self> {
        Ok(Self {
            fields: tx.open_table(COUNTERS).ctx("open table counters")?,
        })
    }

    /// Sets (or with `None` removes) fields; a field given twice ends with its last value.
    pub(super) fn set(&mut self, key: &str, fields: &[(String, Option<i64>)]) -> StoreResult<()> {
        for (field, value) in fields {
            match value {
                Some(value) => {
                    self.fields
                        .insert((key, field.as_str()), *value)
                        .ctx("write counter")?;
                }
                None => {
                    self.fields
                        .remove((key, field.as_str()))
                        .ctx("delete counter")?;
                }
            }
        }
        Ok(())
    }

    /// Adds increments to fields (absent fields count from 0), saturating at the `i64`
    /// bounds.
    fn add(&mut self, key: &str, increments: &[(String, i64)]) -> StoreResult<()> {
        for (field, by) in increments {
            let current = self
                .fields
                .get((key, field.as_str()))
                .ctx("read counter")?
                .map_or(0, |row| row.value());
            self.fields
                .insert((key, field.as_str()), current.saturating_add(*by))
                .ctx("write counter")?;
        }
        Ok(())
    }

    /// Removes the whole record; returns whether it had fields.
    pub(super) fn remove_all(&mut self, key: &str) -> StoreResult<bool> {
        let next = just_after(key);
        let range = (key, "")..(next.as_str(), "");
        let existed = self
            .fields
            .range(range.clone())
            .ctx("scan counters")?
            .next()
            .is_some();
        if existed {
            self.fields
                .retain_in(range, |_, _| false)
                .ctx("delete counters")?;
        }
        Ok(existed)
    }
}

/// The fields of record `key` in name order.
fn fields_of(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    key: &str,
) -> StoreResult<Vec<(String, i64)>> {
    let next = just_after(key);
    let mut out = Vec::new();
    for item in table
        .range((key, "")..(next.as_str(), ""))
        .ctx("scan counters")?
    {
        let (row, value) = item.ctx("scan counters")?;
        out.push((row.value().1.to_owned(), value.value()));
    }
    Ok(out)
}

#[async_trait]
impl Counters for EmbeddedStore {
    /// `counters_get`: the record's fields in name order, from one read transaction.
    async fn counters_get(&self, key: &str) -> StoreResult<Vec<(String, i64)>> {
        let table = self.inner.read_table(COUNTERS, "counters")?;
        fields_of(&table, key)
    }

    async fn counters_set(&self, key: &str, fields: &[(String, Option<i64>)]) -> StoreResult<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let fields = fields.to_vec();
        let record = key.to_owned();
        self.write_invalidating(
            Durability::Durable,
            vec![key.to_owned()],
            move |tx, _, _| CounterTables::open(tx)?.set(&record, &fields),
        )
        .await
    }

    /// A window of 0 ms is refused, like a TTL of 0.
    async fn counters_add_once(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_id: &str,
        increments: &[(String, i64)],
        dedupe_ttl_ms: u64,
    ) -> StoreResult<bool> {
        if dedupe_ttl_ms == 0 {
            return Err(backend("a dedupe window of 0 ms is refused"));
        }
        let applied = applied_id(dedupe_key, batch_id);
        let increments = increments.to_vec();
        let record = key.to_owned();
        self.write_invalidating(
            Durability::Durable,
            vec![key.to_owned()],
            move |tx, now, _| {
                let mut kv = KvTables::open(tx)?;
                if kv.with_live(&applied, now, |seen| seen.is_some())? {
                    return Ok(false);
                }
                CounterTables::open(tx)?.add(&record, &increments)?;
                kv.put(&applied, b"1", expires_at(now, Some(dedupe_ttl_ms)))?;
                Ok(true)
            },
        )
        .await
    }

    /// `counters_get_applied`: the record's fields and the applied flags of `batch_ids`,
    /// from one read transaction (so one moment's state).
    async fn counters_get_applied(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_ids: &[String],
    ) -> StoreResult<crate::CountersApplied> {
        let tx = self.inner.db.begin_read().ctx("begin read transaction")?;
        let counters = tx.open_table(COUNTERS).ctx("open table counters")?;
        let kv = tx.open_table(KV).ctx("open table kv")?;
        let now = self.inner.clock.now_ms();
        let mut flags = Vec::with_capacity(batch_ids.len());
        for id in batch_ids {
            let applied = match kv
                .get(applied_id(dedupe_key, id).as_str())
                .ctx("read value")?
            {
                Some(raw) => is_live(split_value(raw.value())?.0, now),
                None => false,
            };
            flags.push(applied);
        }
        Ok(CountersApplied {
            counters: fields_of(&counters, key)?,
            applied: flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, quiet_config};
    use crate::embedded::EmbeddedStore;
    use crate::prelude::*;
    use crate::{Durability, StoreError};

    fn inc(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(f, v)| ((*f).to_owned(), *v)).collect()
    }

    #[tokio::test]
    async fn counters_survive_a_reopen() {
        let f = fixture();
        f.store
            .counters_set("c", &[("set".into(), Some(7)), ("gone".into(), Some(1))])
            .await
            .unwrap();
        f.store
            .counters_set("c", &[("gone".into(), None)])
            .await
            .unwrap();
        assert!(
            f.store
                .counters_add_once("c", "d", "b1", &inc(&[("added", 5)]), 60_000)
                .await
                .unwrap()
        );
        drop(f.store);
        let store = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap();
        assert_eq!(
            store.counters_get("c").await.unwrap(),
            inc(&[("added", 5), ("set", 7)])
        );
        assert!(
            !store
                .counters_add_once("c", "d", "b1", &inc(&[("added", 5)]), 60_000)
                .await
                .unwrap(),
            "the applied id survived too"
        );
    }

    #[tokio::test]
    async fn an_applied_id_is_forgotten_after_its_window() {
        let f = fixture();
        let s = &f.store;
        assert!(
            s.counters_add_once("c", "d", "b1", &inc(&[("n", 1)]), 1_000)
                .await
                .unwrap()
        );
        f.clock.advance_ms(999);
        assert!(
            !s.counters_add_once("c", "d", "b1", &inc(&[("n", 1)]), 1_000)
                .await
                .unwrap()
        );
        f.clock.advance_ms(1);
        assert_eq!(s.sweep_now().unwrap(), 1, "the sweeper drops the id");
        assert!(
            s.counters_add_once("c", "d", "b1", &inc(&[("n", 1)]), 1_000)
                .await
                .unwrap()
        );
        assert_eq!(s.counters_get("c").await.unwrap(), inc(&[("n", 2)]));
    }

    #[tokio::test]
    async fn deleting_a_dedupe_key_forgets_only_its_ids() {
        let f = fixture();
        let s = &f.store;
        let batch = inc(&[("n", 1)]);
        let ids = [
            ("d", "a", 1_000),
            ("d", "b", 60_000),
            ("d2", "a", 60_000),
            ("d:x", "a", 60_000),
        ];
        for (dedupe, id, window) in ids {
            assert!(
                s.counters_add_once("c", dedupe, id, &batch, window)
                    .await
                    .unwrap()
            );
        }
        f.clock.advance_ms(1_000);
        // "d b" is live, "d a" has expired: one live id, and both go.
        assert_eq!(s.delete(&["d".to_owned()]).await.unwrap(), 1);
        for (dedupe, id, applies) in [
            ("d", "a", true),
            ("d", "b", true),
            ("d2", "a", false),
            ("d:x", "a", false),
        ] {
            assert_eq!(
                s.counters_add_once("c", dedupe, id, &batch, 60_000)
                    .await
                    .unwrap(),
                applies,
                "{dedupe} {id}: only d's ids are forgotten"
            );
        }
        assert_eq!(s.counters_get("c").await.unwrap(), inc(&[("n", 6)]));
        f.clock.advance_ms(60_000);
        assert_eq!(
            s.sweep_now().unwrap(),
            4,
            "d a, d b, d2 a, d:x a; nothing stale"
        );
    }

    #[tokio::test]
    async fn bad_input_is_refused_or_harmless() {
        let f = fixture();
        let s = &f.store;
        let err = s
            .counters_add_once("c", "d", "b1", &inc(&[("n", 1)]), 0)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert!(s.counters_get("c").await.unwrap().is_empty());
        s.counters_set("c", &[]).await.unwrap();
        s.counters_set("c", &[("x".into(), None)]).await.unwrap();
        assert!(s.counters_get("c").await.unwrap().is_empty());
        // The same field twice: increments add up, sets keep the last.
        s.counters_add_once("c", "d", "b2", &inc(&[("n", 1), ("n", 2)]), 10)
            .await
            .unwrap();
        s.counters_set("c", &[("m".into(), Some(1)), ("m".into(), Some(4))])
            .await
            .unwrap();
        assert_eq!(
            s.counters_get("c").await.unwrap(),
            inc(&[("m", 4), ("n", 3)])
        );
        // Records whose keys prefix each other stay apart.
        s.counters_set("c\0", &[("z".into(), Some(1))])
            .await
            .unwrap();
        assert_eq!(s.delete(&["c".to_owned()]).await.unwrap(), 1);
        assert!(s.counters_get("c").await.unwrap().is_empty());
        assert_eq!(s.counters_get("c\0").await.unwrap(), inc(&[("z", 1)]));
        s.set("v", b"1", None, Durability::Durable).await.unwrap();
        assert_eq!(
            s.delete(&["v".to_owned(), "none".to_owned()])
                .await
                .unwrap(),
            1
        );
    }
}
