//! `/admin/state`: the state report, reloads on demand, checkpoints taken, listed and
//! restored, refusals of bad checkpoints; every change audited.

use riptide_api::config::AppConfig;
use serde_json::json;

use crate::admin_common::{Admin, expect_error};
use crate::support::{TestServer, in_dir, json_of};

#[tokio::test]
async fn current_reload_checkpoint_and_restore() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).expect("mkdir");
    let file = conf.join("riptide.yml");
    std::fs::write(&file, "log:\n  level: info\n").expect("write config");
    let mut config = AppConfig::default();
    in_dir(&mut config, dir.path());
    config.persistence.state.config_watch_paths = vec![conf.display().to_string()];
    let server = TestServer::start_config(config, tempfile::tempdir().expect("temp")).await;
    let token = std::fs::read_to_string(dir.path().join(riptide_api::admin::TOKEN_FILE));
    let admin = Admin::with(&server, token.expect("bootstrap token").trim());

    let current = admin.get_json("/admin/state/current", 200).await;
    assert_eq!(current["instance"]["id"], server.state.sync.id());
    assert_eq!(current["instance"]["store"], "embedded");
    assert_eq!(current["config"]["generation"], 1);
    assert_eq!(current["instance_id"], server.state.sync.id());
    assert!(
        current["instances"]
            .as_array()
            .is_some_and(|i| !i.is_empty()),
        "{current}"
    );
    assert!(current["sessions"].is_object(), "{current}");

    // Reload on demand: applied, then unchanged, then a bad file refused.
    std::fs::write(&file, "log:\n  level: debug\n").expect("edit config");
    let applied = json_of(admin.post_empty("/admin/state/reload").await, 200).await;
    assert_eq!(applied["result"], "applied", "{applied}");
    assert_eq!(applied["generation"], 2);
    assert_eq!(applied["changed_keys"], json!(["log.level"]));
    let unchanged = json_of(admin.post_empty("/admin/state/reload").await, 200).await;
    assert_eq!(unchanged["result"], "unchanged");
    std::fs::write(&file, "log:\n  level: chatty\n").expect("break config");
    let refused = json_of(admin.post_empty("/admin/state/reload").await, 200).await;
    assert_eq!(refused["result"], "rejected", "{refused}");
    assert_eq!(refused["key"], "log.level");
    let current = admin.get_json("/admin/state/current", 200).await;
    assert_eq!(
        current["config"]["generation"], 2,
        "the running config stays"
    );

    // Checkpoints.
    admin.create_tenant("acme").await;
    let taken = json_of(admin.post_empty("/admin/state/checkpoint").await, 201).await;
    let id = taken["id"].as_str().expect("id").to_owned();
    assert_eq!(taken["valid"], true);
    assert_eq!(taken["tenants"], 1);
    let listed = admin.get_json("/admin/state/checkpoints", 200).await;
    assert_eq!(listed["checkpoints"][0]["id"], id.as_str());

    // Restore never brings back a tenant deleted after the checkpoint (its checkpoint
    // key is destroyed: it is shredded); a dry run changes nothing and says so.
    assert_eq!(admin.delete("/admin/tenants/acme").await.status(), 204);
    let dry = admin
        .post_json(
            "/admin/state/restore",
            &json!({"checkpoint_id": id, "dry_run": true}),
            200,
        )
        .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["shredded_tenants"], json!(["acme"]), "{dry}");
    assert_eq!(dry["objects_total"], 0, "{dry}");
    expect_error(admin.get("/admin/tenants/acme").await, 404, "not_found").await;
    let restored = admin
        .post_json("/admin/state/restore", &json!({"checkpoint_id": id}), 200)
        .await;
    assert_eq!(restored["id"], id.as_str());
    assert_eq!(restored["tenants"], 1);
    assert_eq!(restored["shredded_tenants"], json!(["acme"]), "{restored}");
    expect_error(admin.get("/admin/tenants/acme").await, 404, "not_found").await;

    // Refusals: unknown, malformed, corrupt.
    expect_error(
        admin
            .post(
                "/admin/state/restore",
                &json!({"checkpoint_id": "nope-123"}),
            )
            .await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        admin
            .post(
                "/admin/state/restore",
                &json!({"checkpoint_id": "../etc/passwd"}),
            )
            .await,
        400,
        "invalid_checkpoint_id",
    )
    .await;
    std::fs::write(
        dir.path().join("checkpoints").join("damaged.ckpt"),
        b"not a checkpoint at all",
    )
    .expect("write damaged file");
    expect_error(
        admin
            .post("/admin/state/restore", &json!({"checkpoint_id": "damaged"}))
            .await,
        422,
        "invalid_checkpoint",
    )
    .await;
    expect_error(
        admin
            .post("/admin/state/restore", &json!({"id": "x"}))
            .await,
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        admin.post_empty("/admin/state/restore").await,
        400,
        "invalid_json",
    )
    .await;

    // Audited with outcome.
    let audit = admin.get_json("/admin/audit?action=state", 200).await;
    let ops: Vec<(String, String)> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().expect("op").to_owned(),
                r["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect();
    let outcomes = |op: &str| -> Vec<bool> {
        ops.iter()
            .filter(|(o, _)| o == op)
            .map(|(_, outcome)| outcome == "ok")
            .collect()
    };
    assert_eq!(outcomes("state.reload"), [true, true, false], "{ops:?}");
    assert_eq!(outcomes("state.checkpoint"), [true]);
    assert_eq!(outcomes("state.restore"), [true, true, false, false, false]);
    let restore = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["operation"] == "state.restore" && r["metadata"]["dry_run"] == "false")
        .expect("the real restore");
    assert_eq!(restore["resource"], id.as_str());
}
