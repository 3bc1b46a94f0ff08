//! Reading how each Redis node keeps data: its `maxmemory-policy` and whether AOF or
//! RDB persistence is on, with `CONFIG GET`, on the one server or on every Cluster master.
//!
//! Managed services often rename or forbid `CONFIG`; a node that refuses it is reported
//! as [`NodeSettings::refused`] rather than failing the read, so the caller decides.

use redis::Value;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

use super::connection::Connection;
use super::error::from_redis;
use crate::{NodeSettings, StoreError, StoreResult};

/// One parameter's value as a node answered: `Err` with the reason when it refused.
type Answer = Result<Option<String>, String>;

/// The parameters read, in this order.
const PARAMS: [&str; 3] = ["maxmemory-policy", "appendonly", "save"];

/// Reads [`PARAMS`] from the server behind `conn` (named `node` in reports), or from
/// every master of the Cluster.
pub(super) async fn read(conn: Connection, node: &str) -> StoreResult<Vec<NodeSettings>> {
    match conn {
        Connection::Standalone(mut c) => {
            let mut values = Vec::with_capacity(PARAMS.len());
            for param in PARAMS {
                let reply = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(param)
                    .query_async::<Value>(&mut c)
                    .await;
                values.push(reply_value(reply)?);
            }
            Ok(vec![settings(node.to_owned(), values)])
        }
        Connection::Cluster(mut c) => {
            // One round per parameter to every master; the reply maps node address to
            // that node's answer (a server error when it refused).
            let mut per_node: Vec<(String, Vec<Answer>)> = Vec::new();
            for param in PARAMS {
                let mut cmd = redis::cmd("CONFIG");
                cmd.arg("GET").arg(param);
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let reply = c.route_command(cmd, routing).await.map_err(from_redis)?;
                let Value::Map(nodes) = reply else {
                    return Err(StoreError::Backend(format!(
                        "CONFIG GET {param} on every master: unexpected reply {reply:?}"
                    )));
                };
                for (addr, answer) in nodes {
                    let addr = text(&addr).unwrap_or_else(|| "?".to_owned());
                    let value = reply_value(Ok(answer))?;
                    match per_node.iter_mut().find(|(n, _)| *n == addr) {
                        Some((_, values)) => values.push(value),
                        None => per_node.push((addr, vec![value])),
                    }
                }
            }
            per_node.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(per_node
                .into_iter()
                .map(|(node, values)| settings(node, values))
                .collect())
        }
    }
}

/// `Ok(Some(value))`, `Ok(None)` when the parameter is unknown to the server (an empty
/// reply), `Err(reason)` when the server refused the command. A connection failure is
/// the caller's error.
fn reply_value(reply: redis::RedisResult<Value>) -> StoreResult<Result<Option<String>, String>> {
    match reply {
        Ok(Value::ServerError(e)) => Ok(Err(format!("{e:?}"))),
        Ok(value) => Ok(Ok(second(&value))),
        Err(e) if e.kind() == redis::ErrorKind::Io || e.is_timeout() => Err(from_redis(e)),
        Err(e) => match from_redis(e) {
            unavailable @ StoreError::Unavailable(_) => Err(unavailable),
            refused => Ok(Err(refused.to_string())),
        },
    }
}

/// The value of a `CONFIG GET` reply: `[name, value]` (RESP2) or `{name: value}` (RESP3).
fn second(value: &Value) -> Option<String> {
    match value {
        Value::Array(items) => items.get(1).and_then(text),
        Value::Map(pairs) => pairs.first().and_then(|(_, v)| text(v)),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn settings(node: String, values: Vec<Answer>) -> NodeSettings {
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or(Ok(None));
    let (policy, appendonly, save) = (next(), next(), next());
    let refused = [&policy, &appendonly, &save]
        .into_iter()
        .find_map(|v| v.as_ref().err().cloned());
    NodeSettings {
        node,
        maxmemory_policy: policy.ok().flatten(),
        aof: appendonly
            .ok()
            .flatten()
            .map(|v| v.eq_ignore_ascii_case("yes")),
        // `save ""` turns RDB snapshots off; any schedule turns them on.
        rdb: save.ok().flatten().map(|v| !v.trim().is_empty()),
        refused,
    }
}

/// `redis://user:pw@host:port/0` → `host:port`: a node's name for logs, without secrets.
pub(super) fn node_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_carry_no_credentials() {
        assert_eq!(
            node_name("redis://:secret@10.0.0.1:6379/0"),
            "10.0.0.1:6379"
        );
        assert_eq!(node_name("rediss://h:1"), "h:1");
    }

    #[test]
    fn settings_read_aof_rdb_and_refusals() {
        let s = settings(
            "n".into(),
            vec![
                Ok(Some("allkeys-lru".into())),
                Ok(Some("no".into())),
                Ok(Some("".into())),
            ],
        );
        assert_eq!(s.maxmemory_policy.as_deref(), Some("allkeys-lru"));
        assert_eq!((s.aof, s.rdb, s.refused), (Some(false), Some(false), None));
        let s = settings(
            "n".into(),
            vec![
                Err("unknown command".into()),
                Ok(Some("yes".into())),
                Ok(Some("3600 1".into())),
            ],
        );
        assert_eq!(s.maxmemory_policy, None);
        assert_eq!((s.aof, s.rdb), (Some(true), Some(true)));
        assert_eq!(s.refused.as_deref(), Some("unknown command"));
    }
}
