//! Schemas of the state operations: the state report (with warming), reload outcomes,
//! checkpoints and restores.

use riptide_persistence::state::checkpoint::RecordKind;
use serde_json::{Map, Value, json};

use super::common::{
    array, boolean, count, nullable, object, one_of_strings, schema, string, time,
};

/// The schemas, by name.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("CurrentState".into(), current_state());
    out.insert("WarmingStatus".into(), warming_status());
    out.insert("WarmRun".into(), warm_run());
    out.insert("ReloadStats".into(), reload_stats());
    out.insert("ReloadOutcome".into(), reload_outcome());
    out.insert("SessionFigures".into(), session_figures());
    out.insert("InstanceInfo".into(), instance_info());
    out.insert("Checkpoint".into(), checkpoint());
    out.insert("CheckpointList".into(), checkpoint_list());
    out.insert("RestoreRequest".into(), restore_request());
    out.insert("RestoreReport".into(), restore_report());
    out.insert("KindCounts".into(), kind_counts());
    out.insert("RestoreObject".into(), restore_object());
    out
}

fn current_state() -> Value {
    object(
        "The state of the instance that answered.",
        &[
            "instance",
            "warming",
            "instance_id",
            "config",
            "hot_reload",
            "reloads",
            "checkpoints",
            "sessions",
            "instances",
            "checkpoint_leader",
        ],
        json!({
            "instance": object("The instance that answered.", &["id", "store", "version"], json!({
                "id": string("Its id in the instance registry."),
                "store": one_of_strings("The store it runs on.",
                    &["embedded", "redis", "redis-cluster"]),
                "version": string("Its version."),
            })),
            "warming": schema("WarmingStatus"),
            "instance_id": nullable(string("This instance, when coordination is attached.")),
            "config": object("The running configuration, without its body.",
                &["generation", "sources", "hash", "loaded_at"], json!({
                    "generation": count("Generation number (1 at start)."),
                    "sources": array("Files it was read from.", json!({ "type": "string" })),
                    "hash": string("blake3 of its canonical JSON."),
                    "loaded_at": time("When it was loaded."),
                })),
            "hot_reload": boolean("Whether configuration files are watched."),
            "reloads": schema("ReloadStats"),
            "checkpoints": array("Checkpoints on disk, newest first.", schema("Checkpoint")),
            "sessions": schema("SessionFigures"),
            "instances": array("Instances sharing the store.", schema("InstanceInfo")),
            "checkpoint_leader": nullable(string("Holder of the scheduled-checkpoint lease.")),
        }),
    )
}

fn warming_status() -> Value {
    object(
        "Cache warming on this instance.",
        &[
            "enabled",
            "page_loader",
            "startup",
            "background",
            "jobs",
            "popularity",
        ],
        json!({
            "enabled": boolean("`persistence.cache.enable_warming`."),
            "page_loader": boolean("Whether pages can be fetched for warming."),
            "startup": schema("WarmRun"),
            "background": object("The background tier.",
                &["interval_seconds", "lease_holder", "runs", "last_run"], json!({
                    "interval_seconds": count("`warming.interval_seconds` in force."),
                    "lease_holder": boolean("Whether this instance holds the warming lease."),
                    "runs": count("Runs on this instance since start."),
                    "last_run": nullable(schema("WarmRun")),
                })),
            "jobs": object("On-demand jobs.", &["running", "held"], json!({
                "running": count("Running."),
                "held": count("Running and retained."),
            })),
            "popularity": object("The access counter.", &["loaded", "tenants", "urls",
                "refused", "last_persist_at", "last_persist_failures"], json!({
                    "loaded": boolean("Whether the persisted counts were loaded."),
                    "tenants": count("Tenants counted."),
                    "urls": count("URLs counted over every tenant."),
                    "refused": count("Accesses that could not be counted."),
                    "last_persist_at": nullable(time("When the counts were last persisted.")),
                    "last_persist_failures": count("Tenants the last persist could not write."),
                })),
        }),
    )
}

fn warm_run() -> Value {
    object(
        "A warming run's progress.",
        &[
            "state",
            "total",
            "done",
            "warmed",
            "fresh",
            "failed",
            "skipped",
            "failures",
            "error",
            "started_at",
            "finished_at",
        ],
        json!({
            "state": schema("RunState"),
            "total": count("Distinct (tenant, URL) pairs to warm."),
            "done": count("Pairs handled."),
            "warmed": count("Pairs fetched and stored."),
            "fresh": count("Pairs already fresh."),
            "failed": count("Pairs that failed."),
            "skipped": count("Pairs of suspended or deleted tenants."),
            "failures": array("The first failures.", schema("WarmFailure")),
            "error": nullable(string("Why the whole run failed.")),
            "started_at": nullable(time("When it started.")),
            "finished_at": nullable(time("When it finished.")),
        }),
    )
}

fn reload_stats() -> Value {
    object(
        "Reloads since start.",
        &["applied", "unchanged", "errors", "last"],
        json!({
            "applied": count("Reloads that swapped in a new generation."),
            "unchanged": count("Reloads that found nothing changed."),
            "errors": count("Reloads refused."),
            "last": nullable(json!({
                "type": "array",
                "description": "The last reload: `[finished_at, outcome]`.",
                "prefixItems": [{ "type": "string", "format": "date-time" }, schema("ReloadOutcome")],
                "minItems": 2,
                "maxItems": 2,
            })),
        }),
    )
}

fn reload_outcome() -> Value {
    let keys = |d: &str| array(d, json!({ "type": "string" }));
    let applied = object(
        "A new generation is running.",
        &["result", "generation", "changed_keys", "restart_required"],
        json!({
            "result": { "const": "applied" },
            "generation": count("Its number."),
            "changed_keys": keys("Dotted keys whose value changed, sorted."),
            "restart_required": keys("The changed keys that take effect only after a restart."),
        }),
    );
    let unchanged = object(
        "The files hash to the running document.",
        &["result"],
        json!({ "result": { "const": "unchanged" } }),
    );
    let rejected = object(
        "The document was refused; the running generation stays.",
        &["result", "file", "key", "reason"],
        json!({
            "result": { "const": "rejected" },
            "file": nullable(string("The file to blame, when known.")),
            "key": string("The dotted key; empty for a file that cannot be read or parsed."),
            "reason": string("Why."),
        }),
    );
    json!({
        "description": "How a reload ended, by `result`.",
        "oneOf": [applied, unchanged, rejected],
    })
}

fn session_figures() -> Value {
    object(
        "Sessions on this instance.",
        &[
            "memory_sessions",
            "memory_bytes",
            "memory_limit_bytes",
            "spilled_sessions",
            "spilled_bytes",
            "evicted_unspilled",
            "spills_total",
            "loads_total",
            "spill_failures_total",
            "expired_removed_total",
        ],
        json!({
            "memory_sessions": count("Sessions held in memory."),
            "memory_bytes": count("Their estimated bytes."),
            "memory_limit_bytes": count("The memory tier's limit."),
            "spilled_sessions": count("Sessions in spill files."),
            "spilled_bytes": count("Bytes of the spill files."),
            "evicted_unspilled": count("Sessions evicted without a spill file."),
            "spills_total": count("Sessions spilled since start."),
            "loads_total": count("Sessions loaded back since start."),
            "spill_failures_total": count("Spill files that could not be written."),
            "expired_removed_total": count("Expired sessions removed since start."),
        }),
    )
}

fn instance_info() -> Value {
    object(
        "One instance sharing the store.",
        &[
            "id",
            "last_seen",
            "alive",
            "is_self",
            "started_at",
            "pid",
            "version",
        ],
        json!({
            "id": string("The instance id."),
            "last_seen": time("Its last heartbeat."),
            "alive": boolean("Heard from within `instance_ttl_ms`."),
            "is_self": boolean("This is the instance that answered."),
            "started_at": nullable(time("When it started.")),
            "pid": nullable(count("Its process id.")),
            "version": nullable(string("Its version.")),
        }),
    )
}

fn checkpoint() -> Value {
    object(
        "One checkpoint file.",
        &[
            "id",
            "created_at",
            "size_bytes",
            "tenants",
            "sessions",
            "valid",
            "problem",
        ],
        json!({
            "id": string("The id."),
            "created_at": time("When it was taken."),
            "size_bytes": count("File size."),
            "tenants": count("Tenants in it (0 when invalid)."),
            "sessions": count("Sessions in it (0 when invalid)."),
            "valid": boolean("Header, version and checksum verified."),
            "problem": nullable(string("Why it is invalid.")),
        }),
    )
}

fn checkpoint_list() -> Value {
    object(
        "The checkpoints on disk.",
        &["checkpoints"],
        json!({ "checkpoints": array("Newest first, each verified.", schema("Checkpoint")) }),
    )
}

fn restore_request() -> Value {
    object(
        "Body of `POST /admin/state/restore`.",
        &["checkpoint_id"],
        json!({
            "checkpoint_id": string("The checkpoint's id, as listed (malformed: 400 \
                `invalid_checkpoint_id`; unknown: 404)."),
            "dry_run": { "type": "boolean", "default": false,
                "description": "Report what would change; change nothing." },
        }),
    )
}

fn restore_report() -> Value {
    let kinds: Vec<&str> = RecordKind::ALL.iter().map(RecordKind::as_str).collect();
    object(
        "What a restore did (or, in a dry run, would do).",
        &[
            "id",
            "dry_run",
            "created_at",
            "tenants",
            "sessions",
            "kinds",
            "objects",
            "objects_total",
            "sessions_expired",
            "extra_tenants",
            "extra_tenants_total",
            "shredded_tenants",
            "config",
            "warm_list",
            "duration_ms",
        ],
        json!({
            "id": string("The checkpoint."),
            "dry_run": boolean("Nothing was written."),
            "created_at": time("When the checkpoint was taken."),
            "tenants": count("Tenants in the checkpoint."),
            "sessions": count("Sessions in the checkpoint."),
            "kinds": {
                "type": "object",
                "description": "Per kind of record: created, overwritten, unchanged, kept \
                    because newer, refused.",
                "propertyNames": { "enum": kinds },
                "additionalProperties": schema("KindCounts"),
            },
            "objects": array("Every object not left as it is: kept and refused ones first \
                (at most 1,000), then created and overwritten ones (as many).",
                schema("RestoreObject")),
            "objects_total": count("How many objects are not left as they are, listed or not."),
            "sessions_expired": count("Sessions not restored because they expired."),
            "extra_tenants": array("Tenants in the store but not in the checkpoint (left \
                alone; at most 1,000).", json!({ "type": "string" })),
            "extra_tenants_total": count("How many such tenants there are."),
            "shredded_tenants": array("Tenants in the checkpoint that were deleted since: \
                their checkpoint key is destroyed, so nothing of them can be opened or \
                restored.", json!({ "type": "string" })),
            "config": { "description": "The configuration saved with the checkpoint (not \
                applied); `null` when none." },
            "warm_list": array("The checkpoint's warm list: `[tenant_id or null, url]`.", json!({
                "type": "array",
                "prefixItems": [{ "type": ["string", "null"] }, { "type": "string" }],
                "minItems": 2,
                "maxItems": 2,
            })),
            "duration_ms": count("Wall time of the restore."),
        }),
    )
}

fn kind_counts() -> Value {
    object(
        "What a restore did to one kind of record.",
        &["create", "overwrite", "unchanged", "kept_newer", "refused"],
        json!({
            "create": count("Absent from the store: created."),
            "overwrite": count("Present but different: overwritten."),
            "unchanged": count("Already equal: left alone."),
            "kept_newer": count("Different, but the store's copy is newer (or never \
                replaced, like an API key record or a data key): kept."),
            "refused": count("The tenant was deleted, or the API key revoked, after the \
                checkpoint: not written back."),
        }),
    )
}

fn restore_object() -> Value {
    let kinds: Vec<&str> = RecordKind::ALL.iter().map(RecordKind::as_str).collect();
    object(
        "One object a restore does not leave as it is. Never holds a value or a secret.",
        &["tenant", "kind", "id", "outcome"],
        json!({
            "tenant": string("The tenant."),
            "kind": { "type": "string", "enum": kinds, "description": "The kind of object." },
            "id": {
                "type": ["string", "null"],
                "description": "Which one: the key id (`api_key`, `api_key_index`, \
                    `api_key_lookup`), the counters name (`quota`, `storage`, `usage`), the \
                    month (`usage_month`); `null` for the tenant's single records and sessions.",
            },
            "outcome": {
                "type": "string",
                "enum": ["create", "overwrite", "kept_newer", "refused"],
                "description": "What happens to it.",
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_outcomes_are_told_apart_by_result() {
        let outcome = reload_outcome();
        let results: Vec<&Value> = outcome["oneOf"]
            .as_array()
            .expect("variants")
            .iter()
            .map(|v| &v["properties"]["result"]["const"])
            .collect();
        assert_eq!(
            results,
            [&json!("applied"), &json!("unchanged"), &json!("rejected")]
        );
    }
}
