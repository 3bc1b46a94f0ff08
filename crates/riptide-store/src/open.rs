//! Picking and sharing a store from a URL.
//!
//! | URL | store |
//! |---|---|
//! | `embedded` | embedded store in `embedded.data_dir` |
//! | a filesystem path (`./data`, `/var/lib/riptide`) | embedded store in that directory |
//! | `redis://host:port/db`, `rediss://...` | standalone Redis / DragonflyDB |
//! | `redis://h1:p1,h2:p2,h3:p3` (several nodes) | Redis Cluster |
//! | `redis+cluster://host:port`, `rediss+cluster://...` (one or more seed nodes) | Redis Cluster |
//!
//! Managers built from one URL in one process share one store: the embedded database can
//! only be opened once, and one Redis connection pool per process is enough.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::config::{EmbeddedConfig, RedisConfig};
use crate::clock::system_clock;
use crate::embedded::EmbeddedStore;
use crate::redis::RedisStore;
use crate::{SharedStore, Store, StoreError, StoreResult};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded store; `None` means `embedded.data_dir`.
    Embedded(Option<PathBuf>),
    /// One Redis server (the URL as given).
    Redis(String),
    /// A Redis Cluster: one `redis://` or `rediss://` URL per seed node.
    RedisCluster(Vec<String>),
}

impl StoreUrl {
    /// Parses a store URL (see the module docs).
    pub fn parse(raw: &str) -> StoreResult<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(StoreError::Config("empty store url".into()));
        }
        if raw == "embedded" {
            return Ok(StoreUrl::Embedded(None));
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Ok(StoreUrl::Embedded(Some(PathBuf::from(raw))));
        };
        let (base_scheme, cluster) = match scheme {
            "redis" | "rediss" => (scheme, false),
            "redis+cluster" => ("redis", true),
            "rediss+cluster" => ("rediss", true),
            other => {
                return Err(StoreError::Config(format!(
                    "unknown store url scheme {other:?}: use embedded, a path, redis://, rediss:// or redis+cluster://"
                )));
            }
        };
        if rest.is_empty() {
            return Err(StoreError::Config(format!(
                "store url {raw:?} names no host"
            )));
        }
        let nodes = split_nodes(base_scheme, rest)?;
        if cluster || nodes.len() > 1 {
            Ok(StoreUrl::RedisCluster(nodes))
        } else {
            Ok(StoreUrl::Redis(
                nodes.into_iter().next().unwrap_or_default(),
            ))
        }
    }
}

/// `user:pw@h1:p1,h2:p2/0` → one URL per node, the credentials on each.
fn split_nodes(scheme: &str, rest: &str) -> StoreResult<Vec<String>> {
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (Some(auth), hosts),
        None => (None, rest),
    };
    let (hosts, path) = match hosts.find('/') {
        Some(i) => (&hosts[..i], &hosts[i..]),
        None => (hosts, ""),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(StoreError::Config(format!(
                "empty host in store url node list {hosts:?}"
            )));
        }
        let auth = auth.map(|a| format!("{a}@")).unwrap_or_default();
        nodes.push(format!("{scheme}://{auth}{host}{path}"));
    }
    Ok(nodes)
}

type Registry = Mutex<HashMap<String, Weak<dyn Store>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// [`open_store`] with the store sections' defaults, for the seed's URL constructors,
/// which take no store settings.
pub async fn open_store_with_defaults(url: &str) -> StoreResult<SharedStore> {
    open_store(url, &RedisConfig::default(), &EmbeddedConfig::default()).await
}

/// Opens the store `url` names, or returns the one this process already has open for it.
pub async fn open_store(
    url: &str,
    redis: &RedisConfig,
    embedded: &EmbeddedConfig,
) -> StoreResult<SharedStore> {
    let parsed = StoreUrl::parse(url)?;
    let identity = match &parsed {
        StoreUrl::Embedded(dir) => {
            let dir = dir.clone().unwrap_or_else(|| embedded.data_dir.clone());
            format!("embedded:{}", absolute(&dir)?.display())
        }
        StoreUrl::Redis(u) => format!("redis:{u}#{}", redis.key_prefix),
        StoreUrl::RedisCluster(nodes) => {
            format!("cluster:{}#{}", nodes.join(","), redis.key_prefix)
        }
    };
    if let Some(store) = lookup(&identity) {
        return Ok(store);
    }
    let store: SharedStore = match parsed {
        StoreUrl::Embedded(dir) => {
            let dir = dir.unwrap_or_else(|| embedded.data_dir.clone());
            // Under the registry lock: two concurrent opens of one file must not race.
            let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(store) = map.get(&identity).and_then(Weak::upgrade) {
                return Ok(store);
            }
            let store: SharedStore = EmbeddedStore::open(&dir, embedded, system_clock())?;
            map.insert(identity, Arc::downgrade(&store));
            return Ok(store);
        }
        StoreUrl::Redis(u) => Arc::new(RedisStore::connect_standalone(&u, redis).await?),
        StoreUrl::RedisCluster(nodes) => {
            Arc::new(RedisStore::connect_cluster(&nodes, redis).await?)
        }
    };
    let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
    // Another task may have connected meanwhile: keep the first, drop ours.
    if let Some(existing) = map.get(&identity).and_then(Weak::upgrade) {
        return Ok(existing);
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    map.insert(identity, Arc::downgrade(&store));
    Ok(store)
}

fn lookup(identity: &str) -> Option<SharedStore> {
    let map = registry().lock().unwrap_or_else(|e| e.into_inner());
    map.get(identity).and_then(Weak::upgrade)
}

fn absolute(dir: &Path) -> StoreResult<PathBuf> {
    crate::private_fs::create_dir(dir)
        .and_then(|_| dir.canonicalize())
        .map_err(|e| StoreError::Config(format!("data dir {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(
            StoreUrl::parse("embedded").unwrap(),
            StoreUrl::Embedded(None)
        );
        assert_eq!(
            StoreUrl::parse("./data").unwrap(),
            StoreUrl::Embedded(Some(PathBuf::from("./data")))
        );
        assert_eq!(
            StoreUrl::parse("redis://127.0.0.1:6379/0").unwrap(),
            StoreUrl::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(
            StoreUrl::parse("redis://:pw@a:1,b:2").unwrap(),
            StoreUrl::RedisCluster(vec!["redis://:pw@a:1".into(), "redis://:pw@b:2".into()])
        );
        assert_eq!(
            StoreUrl::parse("rediss+cluster://a:1").unwrap(),
            StoreUrl::RedisCluster(vec!["rediss://a:1".into()])
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "  ",
            "http://x",
            "redis://",
            "redis://a:1,,b:2",
            "memcached://x",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
