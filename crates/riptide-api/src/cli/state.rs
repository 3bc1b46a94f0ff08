//! `riptide state current|reload|checkpoint|checkpoints|restore`: `/admin/state`.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::Context;
use super::client::{CliError, CliResult, Connection};
use super::output::{self, bytes_at, field, fields};
use crate::routes::admin::state::RestoreRequest;

/// `riptide state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// The operation.
    #[command(subcommand)]
    pub command: StateCommand,
}

/// The state operations.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// The answering instance: configuration, reloads, sessions, instances, warming
    Current,
    /// Reload the configuration on every instance (exit 1 when it is refused)
    Reload,
    /// Take a checkpoint now
    Checkpoint,
    /// List the checkpoints, newest first
    Checkpoints,
    /// Restore a checkpoint
    Restore {
        /// The checkpoint's id, as listed
        checkpoint_id: String,
        /// Report what would change, change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a state command.
pub async fn run(ctx: &Context, command: StateCommand) -> CliResult<()> {
    let client = &ctx.client;
    match command {
        StateCommand::Current => {
            let state = client.get(&["admin", "state", "current"], &[]).await?;
            ctx.out.show(&state, render_current);
        }
        StateCommand::Reload => {
            let outcome = client.post(&["admin", "state", "reload"]).await?;
            ctx.out.show(&outcome, render_reload);
            if output::at(&outcome, "result").as_str() == Some("rejected") {
                return Err(CliError::Failed(format!(
                    "the configuration was refused: {}: {} (the running configuration stays)",
                    field(&outcome, "key"),
                    field(&outcome, "reason")
                )));
            }
        }
        StateCommand::Checkpoint => {
            let info = client.post(&["admin", "state", "checkpoint"]).await?;
            ctx.out.show(&info, |c| {
                format!(
                    "checkpoint {} taken: {} tenants, {} sessions, {}",
                    field(c, "id"),
                    field(c, "tenants"),
                    field(c, "sessions"),
                    bytes_at(c, "size_bytes")
                )
            });
        }
        StateCommand::Checkpoints => {
            let list = client.get(&["admin", "state", "checkpoints"], &[]).await?;
            ctx.out.show(&list, render_checkpoints);
        }
        StateCommand::Restore {
            checkpoint_id,
            dry_run,
        } => {
            let body = RestoreRequest {
                checkpoint_id,
                dry_run,
            };
            let report = client
                .post_json(&["admin", "state", "restore"], &body)
                .await?;
            ctx.out.show(&report, render_restore);
        }
    }
    Ok(())
}

fn render_current(s: &Value) -> String {
    let reloads = format!(
        "{} applied, {} unchanged, {} refused{}",
        field(s, "reloads.applied"),
        field(s, "reloads.unchanged"),
        field(s, "reloads.errors"),
        match output::at(s, "reloads.last").as_array().map(Vec::as_slice) {
            Some([at, outcome]) => format!(
                "; last {} at {}",
                field(outcome, "result"),
                output::text(at)
            ),
            _ => String::new(),
        }
    );
    let sessions = format!(
        "{} in memory ({} of {}), {} spilled ({})",
        field(s, "sessions.memory_sessions"),
        bytes_at(s, "sessions.memory_bytes"),
        bytes_at(s, "sessions.memory_limit_bytes"),
        field(s, "sessions.spilled_sessions"),
        bytes_at(s, "sessions.spilled_bytes"),
    );
    let instances = output::at(s, "instances")
        .as_array()
        .map(|all| {
            all.iter()
                .map(|i| {
                    let mut text = field(i, "id");
                    if output::at(i, "is_self") == &Value::Bool(true) {
                        text.push_str(" (this one)");
                    }
                    if output::at(i, "alive") == &Value::Bool(false) {
                        text.push_str(" (silent)");
                    }
                    text
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "-".to_owned());
    let checkpoints = output::at(s, "checkpoints").as_array().map_or(0, Vec::len);
    let warming = format!(
        "enabled: {}; startup {} {}/{}; {} jobs running; background every {} s{}",
        field(s, "warming.enabled"),
        field(s, "warming.startup.state"),
        field(s, "warming.startup.done"),
        field(s, "warming.startup.total"),
        field(s, "warming.jobs.running"),
        field(s, "warming.background.interval_seconds"),
        if output::at(s, "warming.background.lease_holder") == &Value::Bool(true) {
            " (lease holder)"
        } else {
            ""
        },
    );
    fields([
        ("instance", field(s, "instance.id")),
        ("store", field(s, "instance.store")),
        ("version", field(s, "instance.version")),
        ("config generation", field(s, "config.generation")),
        ("config loaded", field(s, "config.loaded_at")),
        ("config files", field(s, "config.sources")),
        ("config hash", field(s, "config.hash")),
        ("hot reload", field(s, "hot_reload")),
        ("reloads", reloads),
        ("checkpoints", checkpoints.to_string()),
        ("checkpoint leader", field(s, "checkpoint_leader")),
        ("sessions", sessions),
        ("instances", instances),
        ("warming", warming),
    ])
}

fn render_reload(outcome: &Value) -> String {
    match output::at(outcome, "result").as_str() {
        Some("applied") => {
            let mut text = format!(
                "configuration generation {} applied; changed: {}",
                field(outcome, "generation"),
                field(outcome, "changed_keys")
            );
            if output::at(outcome, "restart_required")
                .as_array()
                .is_some_and(|keys| !keys.is_empty())
            {
                text.push_str(&format!(
                    "\nin effect after a restart only: {}",
                    field(outcome, "restart_required")
                ));
            }
            text
        }
        Some("unchanged") => "configuration unchanged".to_owned(),
        Some("rejected") => format!("configuration refused (file {})", field(outcome, "file")),
        _ => output::pretty(outcome),
    }
}

fn render_checkpoints(list: &Value) -> String {
    let empty = Vec::new();
    let all = output::at(list, "checkpoints").as_array().unwrap_or(&empty);
    if all.is_empty() {
        return "no checkpoints".to_owned();
    }
    let rows = all.iter().map(|c| {
        let valid = if output::at(c, "valid") == &Value::Bool(true) {
            "yes".to_owned()
        } else {
            format!("no: {}", field(c, "problem"))
        };
        vec![
            field(c, "id"),
            field(c, "created_at"),
            bytes_at(c, "size_bytes"),
            field(c, "tenants"),
            field(c, "sessions"),
            valid,
        ]
    });
    output::table(
        &["ID", "CREATED", "SIZE", "TENANTS", "SESSIONS", "VALID"],
        rows,
    )
}

fn render_restore(r: &Value) -> String {
    let dry_run = output::at(r, "dry_run") == &Value::Bool(true);
    let mut text = format!(
        "{} checkpoint {} of {}: {} tenants, {} sessions ({} expired since){}",
        if dry_run { "would restore" } else { "restored" },
        field(r, "id"),
        field(r, "created_at"),
        field(r, "tenants"),
        field(r, "sessions"),
        field(r, "sessions_expired"),
        match output::at(r, "duration_ms").as_u64() {
            Some(ms) if !dry_run => format!(" in {ms} ms"),
            _ => String::new(),
        }
    );
    if let Some(kinds) = output::at(r, "kinds").as_object()
        && !kinds.is_empty()
    {
        let rows = kinds.iter().map(|(kind, c)| {
            vec![
                kind.clone(),
                field(c, "create"),
                field(c, "overwrite"),
                field(c, "unchanged"),
                field(c, "kept_newer"),
                field(c, "refused"),
            ]
        });
        text.push('\n');
        text.push_str(&output::table(
            &[
                "KIND",
                "CREATE",
                "OVERWRITE",
                "UNCHANGED",
                "KEPT NEWER",
                "REFUSED",
            ],
            rows,
        ));
    }
    text.push_str(&render_objects(r));
    if let Some(extra) = output::at(r, "extra_tenants_total").as_u64()
        && extra > 0
    {
        text.push_str(&format!(
            "\n{extra} tenants not in the checkpoint were left alone: {}",
            field(r, "extra_tenants")
        ));
    }
    let shredded = output::at(r, "shredded_tenants")
        .as_array()
        .map_or(0, Vec::len);
    if shredded > 0 {
        text.push_str(&format!(
            "\n{shredded} tenants deleted since are shredded in it (nothing of them restored): {}",
            field(r, "shredded_tenants")
        ));
    }
    let warm = output::at(r, "warm_list").as_array().map_or(0, Vec::len);
    if warm > 0 && !dry_run {
        text.push_str(&format!("\n{warm} URLs of its warm list are being warmed"));
    }
    text
}

/// The objects a restore does not leave as they are: tenant, kind, id, outcome.
fn render_objects(r: &Value) -> String {
    let Some(objects) = output::at(r, "objects")
        .as_array()
        .filter(|o| !o.is_empty())
    else {
        return String::new();
    };
    let rows = objects.iter().map(|o| {
        vec![
            field(o, "tenant"),
            field(o, "kind"),
            o["id"].as_str().unwrap_or("-").to_owned(),
            field(o, "outcome"),
        ]
    });
    let mut text = format!(
        "\n{}",
        output::table(&["TENANT", "KIND", "ID", "OUTCOME"], rows)
    );
    let total = output::at(r, "objects_total").as_u64().unwrap_or(0);
    if total > objects.len() as u64 {
        text.push_str(&format!("\n({} of {total} objects listed)", objects.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reload_outcomes() {
        let applied = json!({"result": "applied", "generation": 3,
                             "changed_keys": ["log.level"], "restart_required": []});
        assert_eq!(
            render_reload(&applied),
            "configuration generation 3 applied; changed: log.level"
        );
        assert_eq!(
            render_reload(&json!({"result": "unchanged"})),
            "configuration unchanged"
        );
    }

    #[test]
    fn restore_reports() {
        let report = json!({"id": "c1", "dry_run": true, "created_at": "t", "tenants": 2,
                            "sessions": 0, "sessions_expired": 0,
                            "kinds": {"tenant": {"create": 1, "overwrite": 0, "unchanged": 1}},
                            "extra_tenants": [], "extra_tenants_total": 0, "warm_list": []});
        let text = render_restore(&report);
        assert!(text.starts_with("would restore checkpoint c1"), "{text}");
        assert!(text.contains("tenant"), "{text}");

        let guarded = json!({"id": "c2", "dry_run": true, "created_at": "t", "tenants": 1,
                             "sessions": 0, "sessions_expired": 0, "kinds": {},
                             "objects": [{"tenant": "acme", "kind": "api_key",
                                          "id": "k7x2mq4ab9cd", "outcome": "refused"}],
                             "objects_total": 3, "extra_tenants": [],
                             "extra_tenants_total": 0, "warm_list": [],
                             "shredded_tenants": ["gone"]});
        let text = render_restore(&guarded);
        assert!(
            text.contains("1 tenants deleted since are shredded"),
            "{text}"
        );
        assert!(text.contains("k7x2mq4ab9cd"), "{text}");
        assert!(text.contains("refused"), "{text}");
        assert!(text.contains("(1 of 3 objects listed)"), "{text}");
    }
}
