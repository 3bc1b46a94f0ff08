//! L1 fairness (issue 9): one tenant scanning many unique entries cannot push another
//! tenant's hot entries out of the shared in-process cache.
//!
//! Whether a read was an L1 hit is observed from outside: a second manager over the
//! same store deletes the victim's entries behind the first manager's back (it has no
//! sync layer, so nothing tells the first one), and the first manager still answers
//! exactly the reads its L1 serves.

use bytes::Bytes;
use riptide_persistence::{CacheConfig, PersistentCacheManager};

use super::support::{Backend, cache, tenant};

const L1_BYTES: u64 = 256 * 1024;
const VALUE_BYTES: usize = 2 * 1024;
const VICTIM_KEYS: usize = 16;
/// Five times what L1 holds, each entry written once and then read twice (so each one
/// looks hot to the eviction policy, as a tenant re-reading its pages does).
const ATTACKER_KEYS: usize = 5 * L1_BYTES as usize / VALUE_BYTES;

fn value(seed: usize) -> Bytes {
    // Distinct bytes per entry; the L1 weight is the payload length either way.
    Bytes::from(
        (0..VALUE_BYTES)
            .map(|i| (i.wrapping_mul(31) ^ seed) as u8)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanning_tenant_does_not_evict_another_tenants_hot_set() {
    let config = CacheConfig {
        l1_capacity_bytes: L1_BYTES,
        // Nothing leaves L1 by staleness during the test.
        l1_max_staleness_ms: 600_000,
        ..Default::default()
    };
    let (a, s) = cache(Backend::Embedded, config.clone()).await;
    let (victim, attacker) = (tenant(), tenant());
    let victim_keys: Vec<String> = (0..VICTIM_KEYS).map(|i| format!("page:{i}")).collect();
    for (i, k) in victim_keys.iter().enumerate() {
        a.set_bytes(k, value(i), &victim, None, None).await.unwrap();
    }
    let read_hot_set = async |a: &PersistentCacheManager| {
        for k in &victim_keys {
            assert!(a.get_bytes(k, &victim).await.unwrap().is_some());
        }
    };
    for _ in 0..3 {
        read_hot_set(&a).await;
    }

    for i in 0..ATTACKER_KEYS {
        let k = format!("scan:{i}");
        a.set_bytes(&k, value(i), &attacker, None, None)
            .await
            .unwrap();
        for _ in 0..2 {
            assert!(a.get_bytes(&k, &attacker).await.unwrap().is_some());
        }
        // The victim keeps using its pages meanwhile.
        if i % 128 == 0 {
            read_hot_set(&a).await;
        }
    }
    let (_, l1_bytes) = a.l1_usage();
    assert!(l1_bytes <= L1_BYTES, "L1 stays within its capacity");

    // Gone from the store: only L1 can still answer.
    let b = PersistentCacheManager::with_store(s.store.clone(), config).unwrap();
    for k in &victim_keys {
        assert!(b.delete(k, &victim).await.unwrap());
    }
    let mut from_l1 = 0;
    for k in &victim_keys {
        if a.get_bytes(k, &victim).await.unwrap().is_some() {
            from_l1 += 1;
        }
    }
    assert_eq!(
        from_l1, VICTIM_KEYS,
        "every read of the victim's hot set is an L1 hit after the scan"
    );
    // The attacker's own entries are all still served (from the store when L1 refused them).
    for i in (0..ATTACKER_KEYS).step_by(37) {
        let got = a.get_bytes(&format!("scan:{i}"), &attacker).await.unwrap();
        assert_eq!(got, Some(value(i)));
    }
}
