//! The record methods on a standalone server and on a Cluster: `set_if_absent`,
//! `compare_and_swap`, sorted sets, counters and `gcra`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_test_support::{start_redis_server, unique};

use super::*;
use crate::gcra;

/// One raw command on the store's connection (keys of one slot).
async fn raw<T: FromRedisValue>(store: &RedisStore, cmd: &mut Cmd) -> T {
    cmd.query_async(&mut store.pool.get())
        .await
        .expect("raw command")
}

async fn pttl(store: &RedisStore, key: &str) -> i64 {
    raw(store, redis::cmd("PTTL").arg(key)).await
}

fn pairs(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
}

fn is_refusal<T: std::fmt::Debug>(r: &StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::Backend(m)) if m.starts_with("refused: "))
}

// ---- set_if_absent / compare_and_swap ----

#[tokio::test]
async fn set_if_absent_writes_only_once_until_expiry() {
    for store in stores().await {
        let scope = new_scope(&store);
        let (k, lease) = (scope.record("lock"), scope.record("lease"));
        let value = b"\0owner\r\n\xff".as_slice();
        assert!(
            store
                .set_if_absent(&k, value, None, Durability::Durable)
                .await
                .expect("first")
        );
        assert!(
            !store
                .set_if_absent(&k, b"other", None, Durability::Durable)
                .await
                .expect("second")
        );
        assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(value));

        assert!(
            store
                .set_if_absent(&lease, b"a", Some(150), Durability::Cache)
                .await
                .expect("lease")
        );
        assert!(
            !store
                .set_if_absent(&lease, b"b", Some(150), Durability::Cache)
                .await
                .expect("taken")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            store
                .set_if_absent(&lease, b"c", Some(60_000), Durability::Cache)
                .await
                .expect("expired lease is free again"),
            "{:?}",
            store.kind()
        );
        assert_eq!(
            store.get(&lease).await.expect("get").as_deref(),
            Some(&b"c"[..])
        );
        let ttl = pttl(&store, &lease).await;
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");

        let zero = scope.record("zero");
        let r = store
            .set_if_absent(&zero, b"x", Some(0), Durability::Cache)
            .await;
        assert!(is_refusal(&r), "{r:?}");
        let r = store
            .set_if_absent(&zero, b"x", Some(MAX_TTL_MS + 1), Durability::Cache)
            .await;
        assert!(is_refusal(&r), "{r:?}");
        assert_eq!(store.get(&zero).await.expect("get"), None);
    }
}

#[tokio::test]
async fn compare_and_swap_compares_bytes_and_reports_conflicts() {
    for store in stores().await {
        let scope = new_scope(&store);
        let k = scope.record("cas");
        let (a, b) = (b"a\0\xff\r\n".as_slice(), b"b\0\x80".as_slice());
        let cas = |expected: Option<&'static [u8]>, new: Option<&'static [u8]>| {
            let (store, k) = (&store, k.clone());
            async move {
                store
                    .compare_and_swap(&k, expected, new, Durability::Durable)
                    .await
                    .expect("cas")
            }
        };
        assert!(!cas(Some(a), Some(b)).await, "expected a value, key absent");
        assert_eq!(store.get(&k).await.expect("get"), None);
        assert!(cas(None, Some(a)).await, "create");
        assert!(!cas(None, Some(b)).await, "expected absent, key present");
        assert!(!cas(Some(b"a"), Some(b)).await, "a prefix is not equal");
        assert!(
            !cas(Some(b"a\0\xff\r\nX"), Some(b)).await,
            "nor a longer value"
        );
        assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(a));
        assert!(cas(Some(a), Some(b)).await, "swap");
        assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(b));

        // An empty value is a value, not an absence.
        assert!(cas(Some(b), Some(b"")).await);
        assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(&b""[..]));
        assert!(!cas(None, Some(a)).await);
        assert!(
            !cas(Some(a), None).await,
            "delete with the wrong expectation"
        );
        assert!(cas(Some(b""), None).await, "delete");
        assert_eq!(store.get(&k).await.expect("get"), None);
        assert!(
            cas(None, None).await,
            "absent stays absent: the comparison held"
        );
        assert_eq!(store.get(&k).await.expect("get"), None);

        // The new value has no TTL, even when the old one had.
        store
            .set(&k, a, Some(150), Durability::Cache)
            .await
            .expect("set px");
        assert!(cas(Some(a), Some(b)).await);
        assert_eq!(pttl(&store, &k).await, -1, "no TTL after a swap");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(b));
    }
}

// ---- sorted sets ----

#[tokio::test]
async fn sorted_set_errors_are_backend_errors() {
    for store in stores().await {
        let scope = new_scope(&store);
        let k = scope.record("not-a-zset");
        store
            .set(&k, b"x", None, Durability::Durable)
            .await
            .expect("set");
        let r = store.zset_add(&k, &pairs(&[("a", 1)])).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        let r = store.zset_range(&k, 0, 1).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        // A score this store would never write is reported, not truncated.
        let z = scope.record("foreign");
        let _: i64 = raw(&store, redis::cmd("ZADD").arg(&z).arg("1.5").arg("m")).await;
        let r = store.zset_score(&z, "m").await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        let r = store.zset_range(&z, 0, 10).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
    }
}

// ---- counters ----

#[tokio::test]
async fn counters_set_and_get_sorted_by_name() {
    for store in stores().await {
        let k = new_scope(&store).record("usage:2025-01");
        assert!(store.counters_get(&k).await.expect("get absent").is_empty());
        let set = |fields: &[(&str, Option<i64>)]| {
            fields
                .iter()
                .map(|(f, v)| ((*f).to_owned(), *v))
                .collect::<Vec<_>>()
        };
        store
            .counters_set(
                &k,
                &set(&[
                    ("requests", Some(3)),
                    ("bytes", Some(-7)),
                    ("gone", Some(1)),
                ]),
            )
            .await
            .expect("set");
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("bytes", -7), ("gone", 1), ("requests", 3)])
        );
        store
            .counters_set(
                &k,
                &set(&[
                    ("gone", None),
                    ("requests", Some(i64::MAX)),
                    ("new", Some(i64::MIN)),
                    ("missing", None),
                    // The same field twice: applied in order.
                    ("x", Some(1)),
                    ("x", None),
                    ("y", None),
                    ("y", Some(2)),
                ]),
            )
            .await
            .expect("set and remove");
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[
                ("bytes", -7),
                ("new", i64::MIN),
                ("requests", i64::MAX),
                ("y", 2)
            ])
        );
        store.counters_set(&k, &[]).await.expect("set nothing");
        store
            .counters_set(
                &k,
                &set(&[
                    ("bytes", None),
                    ("new", None),
                    ("requests", None),
                    ("y", None),
                ]),
            )
            .await
            .expect("remove all");
        assert!(store.counters_get(&k).await.expect("get").is_empty());
        assert_eq!(existing(&store, std::slice::from_ref(&k)).await, 0);

        // A field this store never wrote that holds no integer is reported.
        let _: i64 = raw(&store, redis::cmd("HSET").arg(&k).arg("bad").arg("1.5")).await;
        let r = store.counters_get(&k).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_once_applies_each_batch_once() {
    for store in stores().await {
        let store = Arc::new(store);
        let scope = new_scope(&store);
        let (k, d) = (scope.record("usage"), scope.record("usage:applied"));
        let inc = pairs(&[("requests", 2), ("bytes", 100), ("requests", 1)]);
        assert!(
            store
                .counters_add_once(&k, &d, "b1", &inc, 60_000)
                .await
                .expect("apply")
        );
        assert!(
            !store
                .counters_add_once(&k, &d, "b1", &inc, 60_000)
                .await
                .expect("retry")
        );
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("bytes", 100), ("requests", 3)])
        );
        assert!(
            store
                .counters_add_once(&k, &d, "b2", &pairs(&[("bytes", -150)]), 60_000)
                .await
                .expect("b2")
        );
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("bytes", -50), ("requests", 3)])
        );

        // An empty batch is remembered too.
        assert!(
            store
                .counters_add_once(&k, &d, "b3", &[], 60_000)
                .await
                .expect("empty")
        );
        assert!(
            !store
                .counters_add_once(&k, &d, "b3", &[], 60_000)
                .await
                .expect("empty again")
        );

        // Concurrent retries of one batch: exactly one applies it.
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, k, d) = (store.clone(), k.clone(), d.clone());
                tokio::spawn(async move {
                    store
                        .counters_add_once(&k, &d, "b4", &pairs(&[("requests", 10)]), 60_000)
                        .await
                        .expect("concurrent")
                })
            })
            .collect();
        let mut applied = 0;
        for t in tasks {
            applied += u32::from(t.await.expect("task"));
        }
        assert_eq!(applied, 1, "{:?}", store.kind());
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("bytes", -50), ("requests", 13)])
        );

        // The remembered ids do not outlive their TTL.
        let ttl = pttl(&store, &d).await;
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
        let r = store
            .counters_add_once(&k, &d, "b5", &pairs(&[("requests", 1)]), 0)
            .await;
        assert!(is_refusal(&r), "{r:?}");
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("bytes", -50), ("requests", 13)])
        );
    }
}

#[tokio::test]
async fn counters_add_once_forgets_ids_after_their_ttl() {
    for store in stores().await {
        let scope = new_scope(&store);
        let (k, d) = (scope.record("usage"), scope.record("usage:applied"));
        let one = pairs(&[("n", 1)]);
        assert!(
            store
                .counters_add_once(&k, &d, "b1", &one, 150)
                .await
                .expect("apply")
        );
        assert!(
            !store
                .counters_add_once(&k, &d, "b1", &one, 150)
                .await
                .expect("retry")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            existing(&store, std::slice::from_ref(&d)).await,
            0,
            "the dedupe key expired"
        );
        assert!(
            store
                .counters_add_once(&k, &d, "b1", &one, 150)
                .await
                .expect("forgotten")
        );
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("n", 2)])
        );

        // Expired ids are pruned while younger ones are kept (and keep the key alive).
        assert!(
            store
                .counters_add_once(&k, &d, "long", &one, 60_000)
                .await
                .expect("long")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            store
                .counters_add_once(&k, &d, "other", &one, 60_000)
                .await
                .expect("other")
        );
        let ids: Vec<String> = raw(&store, redis::cmd("ZRANGE").arg(&d).arg(0).arg(-1)).await;
        assert_eq!(ids, ["long", "other"]);
        assert!(
            !store
                .counters_add_once(&k, &d, "long", &one, 60_000)
                .await
                .expect("still remembered")
        );
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("n", 4)])
        );
    }
}

#[tokio::test]
async fn counters_add_once_is_all_or_nothing() {
    for store in stores().await {
        let scope = new_scope(&store);
        let (k, d) = (scope.record("usage"), scope.record("usage:applied"));
        store
            .counters_set(&k, &[("kept".to_owned(), Some(4))])
            .await
            .expect("set");
        // A field this store never wrote, holding no integer: HINCRBY fails on it after
        // `a` and `kept` were incremented, and both are put back.
        let _: i64 = raw(&store, redis::cmd("HSET").arg(&k).arg("bad").arg("1.5")).await;
        let batch = pairs(&[("a", 5), ("kept", 3), ("bad", 1)]);
        let r = store.counters_add_once(&k, &d, "b1", &batch, 60_000).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        let mut fields: Vec<(String, String)> = raw(&store, redis::cmd("HGETALL").arg(&k)).await;
        fields.sort();
        assert_eq!(
            fields,
            [
                ("bad".to_owned(), "1.5".to_owned()),
                ("kept".to_owned(), "4".to_owned())
            ],
            "a failed batch leaves no trace"
        );
        // Not remembered: once the field is repaired, the same batch applies.
        let _: i64 = raw(&store, redis::cmd("HSET").arg(&k).arg("bad").arg("0")).await;
        assert!(
            store
                .counters_add_once(&k, &d, "b1", &batch, 60_000)
                .await
                .expect("apply")
        );
        assert_eq!(
            store.counters_get(&k).await.expect("get"),
            pairs(&[("a", 5), ("bad", 1), ("kept", 7)])
        );
        // A wrong-type counters key is an error and changes nothing.
        let s = scope.record("a-string");
        store
            .set(&s, b"x", None, Durability::Durable)
            .await
            .expect("set");
        let r = store
            .counters_add_once(&s, &d, "b2", &pairs(&[("a", 1)]), 60_000)
            .await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        assert!(
            store
                .counters_add_once(&k, &d, "b2", &pairs(&[("a", 1)]), 60_000)
                .await
                .expect("b2")
        );
    }
}

#[tokio::test]
async fn cluster_refuses_keys_of_two_slots() {
    let store = cluster().await;
    // `{a}` and `{b}` hash to different slots (15495 and 3300).
    let key = |tag: &str| format!("riptide:test:{{{tag}}}:{}", unique("k"));
    let (a, b, state, quota) = (key("a"), key("b"), key("a"), key("b"));
    let r = store
        .counters_add_once(&a, &b, "b1", &pairs(&[("n", 1)]), 60_000)
        .await;
    assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
    let limit = GcraLimit {
        rate: 1,
        period_ms: 1_000,
        burst: 1,
        overrides: Some((quota, "rate".into(), "burst".into())),
    };
    let r = store.gcra(&state, &limit, 1_000, 1).await;
    assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
    assert_eq!(existing(&store, &[a.clone(), state.clone()]).await, 0);

    // The same calls on one server work.
    let store = standalone().await;
    assert!(
        store
            .counters_add_once(&a, &b, "b1", &pairs(&[("n", 1)]), 60_000)
            .await
            .expect("standalone")
    );
    assert!(
        store
            .gcra(&state, &limit, 1_000, 1)
            .await
            .expect("standalone")
            .allowed
    );
}

// ---- gcra ----

/// A Rust-side bucket: `gcra::effective` then `gcra::step`, the state carried along.
///
/// The store keeps its state with a TTL that runs on the server's real clock (until the
/// bucket is full again by the caller's clock, + 1 ms), while these tests simulate the
/// caller's clock. So a simulated time at which the state still matters (before `tat`) is
/// only asked about while the state surely still exists in real time; otherwise `settle`
/// moves it up to `tat`, where a missing state and the stored one decide alike.
struct Simulation {
    tat: Option<u64>,
    /// When the stored state expires at the earliest, in real time.
    expires: Option<Instant>,
}

/// Real time a state must still have to live for the simulation to rely on it.
const TTL_MARGIN: Duration = Duration::from_millis(500);

impl Simulation {
    fn new() -> Self {
        Self {
            tat: None,
            expires: None,
        }
    }

    /// One step; call it before the store's, so the real-time expiry is an underestimate.
    fn step(
        &mut self,
        limit: &GcraLimit,
        overrides: (Option<i64>, Option<i64>),
        now_ms: u64,
        cost: u64,
    ) -> GcraDecision {
        let (rate, burst) = gcra::effective(limit, overrides.0, overrides.1);
        let (decision, tat) = gcra::step(self.tat, now_ms, rate, burst, limit.period_ms, cost);
        if let Some(tat) = tat {
            let ttl_ms = (tat - now_ms * 1_000).div_ceil(1_000) + 1;
            self.tat = Some(tat);
            self.expires = Some(Instant::now() + Duration::from_millis(ttl_ms));
        }
        decision
    }

    /// Whether the stored state surely still exists.
    fn surely_stored(&self) -> bool {
        self.expires
            .is_some_and(|at| Instant::now() + TTL_MARGIN < at)
    }

    /// `now_ms`, or the first ms at or after `tat` when the state may be gone by now.
    fn settle(&self, now_ms: u64) -> u64 {
        match self.tat {
            Some(tat) if !self.surely_stored() && tat > now_ms * 1_000 => tat.div_ceil(1_000),
            _ => now_ms,
        }
    }
}

/// (clock step ms, cost) pairs: bursts at one instant, refills, costs 0 to 4 (above the
/// bursts used), and a clock that sometimes steps back.
fn schedule(steps: usize) -> Vec<(i64, u64)> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let deltas: [i64; 9] = [0, 0, 1, 7, 333, 1_000, 8_571, 30_000, -5];
    (0..steps)
        .map(|_| {
            let dt = deltas[(next() % deltas.len() as u64) as usize];
            (dt, next() % 5)
        })
        .collect()
}

#[tokio::test]
async fn gcra_matches_the_rust_step_exactly() {
    let limits = [
        // T = 8,571,428.57 µs: not a whole number of ms.
        GcraLimit {
            rate: 7,
            period_ms: 60_000,
            burst: 3,
            overrides: None,
        },
        // T = 3,333,333 µs, a large burst.
        GcraLimit {
            rate: 3,
            period_ms: 10_000,
            burst: 50,
            overrides: None,
        },
        // T = 1 s, burst 1: only cost 0 and 1 can ever pass.
        GcraLimit {
            rate: 60,
            period_ms: 60_000,
            burst: 1,
            overrides: None,
        },
        // rate and burst 0 count as 1.
        GcraLimit {
            rate: 0,
            period_ms: 90_000,
            burst: 0,
            overrides: None,
        },
    ];
    for store in stores().await {
        let scope = new_scope(&store);
        for (n, limit) in limits.iter().enumerate() {
            let key = scope.record(&format!("rl:{n}"));
            let mut sim = Simulation::new();
            let (mut allowed, mut refused, mut stateful) = (0, 0, 0);
            let mut now_ms: u64 = 1_700_000_000_000;
            for (i, (dt, cost)) in schedule(150).into_iter().enumerate() {
                now_ms = sim.settle(now_ms.saturating_add_signed(dt));
                stateful += u32::from(sim.tat.is_some_and(|tat| tat > now_ms * 1_000));
                let want = sim.step(limit, (None, None), now_ms, cost);
                let got = store.gcra(&key, limit, now_ms, cost).await.expect("gcra");
                assert_eq!(
                    got,
                    want,
                    "{:?}, limit {n}, step {i}: now {now_ms} cost {cost}",
                    store.kind()
                );
                if got.allowed {
                    allowed += 1
                } else {
                    refused += 1
                }
                if let Some(tat) = sim.tat.filter(|_| sim.surely_stored()) {
                    let stored: String = raw(&store, redis::cmd("GET").arg(&key)).await;
                    assert_eq!(stored, tat.to_string(), "limit {n}, step {i}");
                }
            }
            assert!(
                allowed > 10 && refused > 10 && stateful > 20,
                "limit {n}: {allowed} allowed, {refused} refused, {stateful} decided by a stored state"
            );
        }
    }
}

#[tokio::test]
async fn gcra_state_expires_when_the_bucket_is_full_again() {
    for store in stores().await {
        let key = new_scope(&store).record("rl");
        // T = 100 ms, burst 2: one admission leaves the bucket 100 ms from full.
        let limit = GcraLimit {
            rate: 10,
            period_ms: 1_000,
            burst: 2,
            overrides: None,
        };
        let d = store.gcra(&key, &limit, 5_000, 1).await.expect("gcra");
        assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 1, 100));
        let ttl = pttl(&store, &key).await;
        assert!(ttl > 0 && ttl <= 101, "ttl {ttl}");
        let stored: String = raw(&store, redis::cmd("GET").arg(&key)).await;
        assert_eq!(stored, "5100000");

        // A refused request changes nothing.
        let d = store.gcra(&key, &limit, 5_000, 2).await.expect("refused");
        assert_eq!((d.allowed, d.retry_after_ms, d.remaining), (false, 100, 1));
        let again: String = raw(&store, redis::cmd("GET").arg(&key)).await;
        assert_eq!(again, stored);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(existing(&store, std::slice::from_ref(&key)).await, 0);
    }
}

#[tokio::test]
async fn gcra_overrides_apply_at_once_and_only_when_positive() {
    for store in stores().await {
        let scope = new_scope(&store);
        let quota = scope.record("quota");
        let limit = GcraLimit {
            rate: 6,
            period_ms: 60_000,
            burst: 2,
            overrides: Some((quota.clone(), "ops_rate".into(), "ops_burst".into())),
        };
        let key = scope.record("rl");
        let mut sim = Simulation::new();
        let now = 1_000_000;
        let d = store.gcra(&key, &limit, now, 1).await.expect("gcra");
        assert_eq!(d, sim.step(&limit, (None, None), now, 1));
        assert_eq!((d.limit, d.burst, d.remaining), (6, 2, 1));

        store
            .counters_set(
                &quota,
                &[
                    ("ops_burst".into(), Some(10)),
                    ("ops_rate".into(), Some(60)),
                ],
            )
            .await
            .expect("override");
        let d = store.gcra(&key, &limit, now, 1).await.expect("gcra");
        assert_eq!(d, sim.step(&limit, (Some(60), Some(10)), now, 1));
        assert_eq!((d.limit, d.burst), (60, 10));

        // Only the burst overridden.
        store
            .counters_set(&quota, &[("ops_rate".into(), None)])
            .await
            .expect("unset rate");
        let d = store.gcra(&key, &limit, now, 1).await.expect("gcra");
        assert_eq!(d, sim.step(&limit, (None, Some(10)), now, 1));
        assert_eq!((d.limit, d.burst), (6, 10));

        // Fields that do not parse as a positive i64 do not count, as in `gcra::effective`
        // fed by `str::parse::<i64>`.
        for raw_value in [
            "0",
            "-5",
            "-0",
            "abc",
            "1.5",
            " 5",
            "5 ",
            "",
            "+",
            "+7",
            "007",
            "99999999999999999999",
            "9223372036854775807",
        ] {
            let _: i64 = raw(
                &store,
                redis::cmd("HSET")
                    .arg(&quota)
                    .arg("ops_rate")
                    .arg(raw_value)
                    .arg("ops_burst")
                    .arg(raw_value),
            )
            .await;
            let parsed = raw_value.parse::<i64>().ok();
            let key = scope.record(&format!("rl:{}", unique("v")));
            let mut fresh = Simulation::new();
            let r = store.gcra(&key, &limit, now, 1).await;
            if parsed.is_some_and(|v| u64::try_from(v).is_ok_and(|v| v >= GCRA_LIMIT_US)) {
                assert!(is_refusal(&r), "{raw_value:?}: {r:?}");
                continue;
            }
            assert_eq!(
                r.expect("gcra"),
                fresh.step(&limit, (parsed, parsed), now, 1),
                "{raw_value:?}"
            );
        }
        // Removing the overrides restores the defaults at once.
        store
            .delete(std::slice::from_ref(&quota))
            .await
            .expect("delete");
        let d = store
            .gcra(&scope.record("rl:new"), &limit, now, 1)
            .await
            .expect("gcra");
        assert_eq!((d.limit, d.burst, d.remaining), (6, 2, 1));
    }
}

#[tokio::test]
async fn gcra_refuses_figures_beyond_exact_lua_numbers() {
    for store in stores().await {
        let scope = new_scope(&store);
        let key = scope.record("rl");
        let limit = GcraLimit {
            rate: 1,
            period_ms: 60_000,
            burst: 1,
            overrides: None,
        };
        for (now_ms, cost) in [
            (u64::MAX, 1),
            (GCRA_LIMIT_US / 1_000, 1),
            (1_000, u64::MAX),
            (1_000, GCRA_LIMIT_US),
        ] {
            let r = store.gcra(&key, &limit, now_ms, cost).await;
            assert!(is_refusal(&r), "now {now_ms} cost {cost}: {r:?}");
        }
        // T = 60 s = 6e7 µs: a cost of 2^28 spends about 1.6e16 µs, beyond 2^53. The
        // script refuses it and writes nothing.
        let r = store.gcra(&key, &limit, 1_000, 1 << 28).await;
        assert!(is_refusal(&r), "{r:?}");
        // A cost just below the bound is computed exactly, and refused as a request.
        let cost = 100_000_000;
        let r = store
            .gcra(&key, &limit, 1_000, cost)
            .await
            .expect("large cost");
        assert_eq!(r, gcra::step(None, 1_000, 1, 1, 60_000, cost).0);
        assert_eq!(existing(&store, std::slice::from_ref(&key)).await, 0);

        let quota = scope.record("quota");
        let over = GcraLimit {
            overrides: Some((quota.clone(), "r".into(), "b".into())),
            ..limit.clone()
        };
        store
            .counters_set(&quota, &[("b".into(), Some(1 << 40))])
            .await
            .expect("override");
        let r = store.gcra(&key, &over, 1_000, 1).await;
        assert!(is_refusal(&r), "tolerance 6e7 * 2^40: {r:?}");
        store
            .counters_set(&quota, &[("b".into(), Some(1 << 20))])
            .await
            .expect("override");
        let d = store.gcra(&key, &over, 1_000, 1).await.expect("gcra");
        assert_eq!(d, gcra::step(None, 1_000, 1, 1 << 20, 60_000, 1).0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_at_one_instant_admit_exactly_the_burst() {
    for store in stores().await {
        let store = Arc::new(store);
        let key = new_scope(&store).record("rl");
        let limit = Arc::new(GcraLimit {
            rate: 100,
            // T = 6 s: the state outlives the burst of callers by far.
            period_ms: 600_000,
            burst: 17,
            overrides: None,
        });
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (store, key, limit) = (store.clone(), key.clone(), limit.clone());
                tokio::spawn(async move {
                    store
                        .gcra(&key, &limit, 1_700_000_000_000, 1)
                        .await
                        .expect("gcra")
                })
            })
            .collect();
        let mut remaining = BTreeSet::new();
        let mut admitted = 0;
        for t in tasks {
            let d = t.await.expect("task");
            if d.allowed {
                admitted += 1;
                assert!(
                    remaining.insert(d.remaining),
                    "remaining {} twice",
                    d.remaining
                );
            } else {
                assert_eq!((d.remaining, d.retry_after_ms), (0, 6_000));
            }
        }
        assert_eq!(admitted, 17, "{:?}", store.kind());
        assert_eq!(remaining, (0..17).collect());
    }
}

#[tokio::test]
async fn two_stores_share_one_bucket() {
    let pairs_of_stores = [
        (standalone().await, standalone().await),
        (cluster().await, cluster().await),
    ];
    for (a, b) in pairs_of_stores {
        let key = new_scope(&a).record("rl");
        let limit = GcraLimit {
            rate: 7,
            period_ms: 60_000,
            burst: 4,
            overrides: None,
        };
        let mut sim = Simulation::new();
        let mut now_ms: u64 = 2_000_000_000_000;
        for (i, (dt, cost)) in schedule(60).into_iter().enumerate() {
            now_ms = sim.settle(now_ms.saturating_add_signed(dt));
            let store = if i % 2 == 0 { &a } else { &b };
            let got = store.gcra(&key, &limit, now_ms, cost).await.expect("gcra");
            assert_eq!(
                got,
                sim.step(&limit, (None, None), now_ms, cost),
                "{:?} step {i}",
                a.kind()
            );
        }
        // At one instant, the two together admit the burst once.
        let key = new_scope(&a).record("rl");
        let mut admitted = 0;
        for i in 0..10 {
            let store = if i % 2 == 0 { &a } else { &b };
            admitted += u32::from(
                store
                    .gcra(&key, &limit, 3_000_000_000_000, 1)
                    .await
                    .expect("gcra")
                    .allowed,
            );
        }
        assert_eq!(admitted, 4);
    }
}

#[tokio::test]
async fn a_quota_check_is_one_command() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    let scope = new_scope(&store);
    let limit = GcraLimit {
        rate: 60,
        period_ms: 60_000,
        burst: 5,
        overrides: Some((scope.record("quota"), "rate".into(), "burst".into())),
    };
    let key = scope.record("rl");
    store
        .gcra(&key, &limit, 1_000, 1)
        .await
        .expect("load the script");
    let _: () = raw(&store, redis::cmd("CONFIG").arg("RESETSTAT")).await;
    for i in 0..10 {
        store.gcra(&key, &limit, 1_000 + i, 1).await.expect("gcra");
    }
    let info: String = raw(&store, redis::cmd("INFO").arg("commandstats")).await;
    let calls = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("calls"))
    };
    assert_eq!(calls("evalsha"), 10, "{info}");
    // The state read and the overrides read happen inside the script, once per check.
    assert_eq!((calls("get"), calls("hmget")), (10, 10), "{info}");
    assert_eq!(calls("eval") + calls("script"), 0, "{info}");
}

#[tokio::test]
async fn record_scripts_are_reloaded_after_a_script_flush() {
    for store in stores().await {
        let scope = new_scope(&store);
        let _: () = raw(&store, redis::cmd("SCRIPT").arg("FLUSH")).await;
        let k = scope.record("cas");
        assert!(
            store
                .compare_and_swap(&k, None, Some(b"v"), Durability::Durable)
                .await
                .expect("cas")
        );
        let _: () = raw(&store, redis::cmd("SCRIPT").arg("FLUSH")).await;
        let c = scope.record("counters");
        store
            .counters_set(&c, &[("n".into(), Some(1))])
            .await
            .expect("counters_set");
        let _: () = raw(&store, redis::cmd("SCRIPT").arg("FLUSH")).await;
        assert!(
            store
                .counters_add_once(
                    &c,
                    &scope.record("applied"),
                    "b",
                    &pairs(&[("n", 1)]),
                    60_000
                )
                .await
                .expect("add_once")
        );
        let _: () = raw(&store, redis::cmd("SCRIPT").arg("FLUSH")).await;
        let limit = GcraLimit {
            rate: 1,
            period_ms: 1_000,
            burst: 1,
            overrides: None,
        };
        assert!(
            store
                .gcra(&scope.record("rl"), &limit, 1, 1)
                .await
                .expect("gcra")
                .allowed
        );
        assert_eq!(
            store.counters_get(&c).await.expect("get"),
            pairs(&[("n", 2)])
        );
    }
}
