//! `riptide tenants create|list|get|update|suspend|resume|delete`: `/admin/tenants`.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use riptide_persistence::tenant::{
    AccessPolicy, BillingPlan, TenantIsolationLevel, TenantOwner, TenantUpdate,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Context;
use super::client::{CliError, CliResult, Connection};
use super::output::{self, field, fields};
use crate::routes::admin::tenants::{CreateTenantRequest, SuspendRequest};

/// The billing plans the service knows.
const PLANS: [&str; 4] = ["free", "basic", "professional", "enterprise"];

/// `riptide tenants`.
#[derive(Debug, Args)]
pub struct TenantsArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// The operation.
    #[command(subcommand)]
    pub command: TenantsCommand,
}

/// The tenant operations.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant
    Create(CreateArgs),
    /// List tenants (in creation order)
    List {
        /// Tenants to skip
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Tenants per page (1 to 1000)
        #[arg(long, default_value_t = 100,
              value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Show one tenant
    Get {
        /// The tenant's id
        id: String,
    },
    /// Change a tenant's name, plan, quotas, settings, policy or owner
    Update(UpdateArgs),
    /// Suspend a tenant: its requests are refused with 403 until it is resumed
    Suspend {
        /// The tenant's id
        id: String,
        /// Why (kept with the tenant and in the audit log)
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended tenant
    Resume {
        /// The tenant's id
        id: String,
    },
    /// Delete a tenant with its keys, usage and cached data
    Delete {
        /// The tenant's id
        id: String,
    },
}

/// `riptide tenants create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The id to give it (lower-case letters, digits, '-' and '_'); generated when absent
    pub id: Option<String>,
    /// Display name
    #[arg(long)]
    pub name: String,
    /// Owner's e-mail
    #[arg(long)]
    pub owner_email: String,
    /// Owner's name
    #[arg(long)]
    pub owner_name: String,
    /// Owner's id; generated when absent
    #[arg(long)]
    pub owner_id: Option<String>,
    /// Owner's organization
    #[arg(long)]
    pub organization: Option<String>,
    /// Billing plan
    #[arg(long, default_value = "free", value_parser = PLANS)]
    pub plan: String,
    /// A quota override, e.g. operations_per_minute=600 (repeatable)
    #[arg(long = "quota", value_name = "RESOURCE=N", value_parser = parse_quota)]
    pub quotas: Vec<(String, u64)>,
    /// A free-form setting (repeatable)
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Seal the tenant's cached values under its own key
    #[arg(long)]
    pub encrypted: bool,
    /// Isolation level
    #[arg(long, value_parser = isolation_parser())]
    pub isolation: Option<TenantIsolationLevel>,
}

/// `riptide tenants update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The tenant's id
    pub id: String,
    /// What to change.
    #[command(flatten)]
    pub changes: Changes,
}

/// What `tenants update` changes; at least one is required.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct Changes {
    /// New display name
    #[arg(long)]
    pub name: Option<String>,
    /// New billing plan
    #[arg(long, value_parser = plan_parser())]
    pub plan: Option<BillingPlan>,
    /// Replace the quota overrides with these (repeatable)
    #[arg(long = "quota", value_name = "RESOURCE=N", value_parser = parse_quota,
          conflicts_with = "clear_quotas")]
    pub quotas: Vec<(String, u64)>,
    /// Remove every quota override (back to the plan's limits)
    #[arg(long)]
    pub clear_quotas: bool,
    /// Replace the settings with these (repeatable)
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting,
          conflicts_with = "clear_settings")]
    pub settings: Vec<(String, String)>,
    /// Remove every setting
    #[arg(long)]
    pub clear_settings: bool,
    /// Replace the permissions granted on top of the plan (resource:action, repeatable)
    #[arg(long = "allow", value_name = "PERMISSION")]
    pub allow: Vec<String>,
    /// Replace the permissions taken away from the plan (resource:action, repeatable)
    #[arg(long = "deny", value_name = "PERMISSION")]
    pub deny: Vec<String>,
    /// New owner name
    #[arg(long)]
    pub owner_name: Option<String>,
    /// New owner e-mail
    #[arg(long)]
    pub owner_email: Option<String>,
    /// New owner organization
    #[arg(long)]
    pub organization: Option<String>,
}

/// `RESOURCE=N`.
fn parse_quota(raw: &str) -> Result<(String, u64), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected RESOURCE=N, got {raw:?}"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("quota {name:?}: {value:?} is not a whole number"))?;
    Ok((name.trim().to_owned(), value))
}

/// `KEY=VALUE`.
fn parse_setting(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {raw:?}"))
}

/// Runs a tenant command.
pub async fn run(ctx: &Context, command: TenantsCommand) -> CliResult<()> {
    let client = &ctx.client;
    match command {
        TenantsCommand::Create(args) => {
            let tenant = client
                .post_json(&["admin", "tenants"], &create_body(args))
                .await?;
            ctx.out.show(&tenant, render_tenant);
        }
        TenantsCommand::List { offset, limit } => {
            let query = [("offset", offset.to_string()), ("limit", limit.to_string())];
            let page = client.get(&["admin", "tenants"], &query).await?;
            ctx.out.show(&page, |page| render_list(page, offset));
        }
        TenantsCommand::Get { id } => {
            let tenant = client.get(&["admin", "tenants", &id], &[]).await?;
            ctx.out.show(&tenant, render_tenant);
        }
        TenantsCommand::Update(args) => {
            let current = if args.changes.needs_current() {
                Some(client.get(&["admin", "tenants", &args.id], &[]).await?)
            } else {
                None
            };
            let body = args.changes.body(current.as_ref())?;
            let tenant = client.put(&["admin", "tenants", &args.id], &body).await?;
            ctx.out.show(&tenant, render_tenant);
        }
        TenantsCommand::Suspend { id, reason } => {
            let path = ["admin", "tenants", &id, "suspend"];
            let tenant = client.post_json(&path, &SuspendRequest { reason }).await?;
            ctx.out.show(&tenant, render_tenant);
        }
        TenantsCommand::Resume { id } => {
            let path = ["admin", "tenants", &id, "resume"];
            let tenant = client.post(&path).await?;
            ctx.out.show(&tenant, render_tenant);
        }
        TenantsCommand::Delete { id } => {
            client.delete(&["admin", "tenants", &id]).await?;
            let done = json!({ "deleted": true, "tenant_id": id });
            ctx.out.show(&done, |_| format!("tenant {id} deleted"));
        }
    }
    Ok(())
}

/// The `POST /admin/tenants` body of `args`.
fn create_body(args: CreateArgs) -> CreateTenantRequest {
    CreateTenantRequest {
        tenant_id: args.id,
        name: args.name,
        owner_email: args.owner_email,
        owner_name: args.owner_name,
        owner_id: args.owner_id,
        organization: args.organization,
        billing_plan: args.plan,
        // Collected into a map, a later pair wins.
        quotas: (!args.quotas.is_empty()).then(|| args.quotas.into_iter().collect()),
        settings: (!args.settings.is_empty()).then(|| args.settings.into_iter().collect()),
        encryption_enabled: args.encrypted,
        isolation_level: args.isolation,
    }
}

/// `--plan` of an update: the names of [`BillingPlan::ALL`].
fn plan_parser() -> impl TypedValueParser<Value = BillingPlan> {
    PossibleValuesParser::new(PLANS).try_map(|name| name.parse::<BillingPlan>())
}

/// `--isolation`: `standard` or `strong`.
fn isolation_parser() -> impl TypedValueParser<Value = TenantIsolationLevel> {
    PossibleValuesParser::new(TenantIsolationLevel::ALL.map(|l| l.as_str())).try_map(|name| {
        TenantIsolationLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == name)
            .ok_or("unknown isolation level")
    })
}

/// Part `name` of the tenant as the service answered it, as its request type.
fn current_part<T: DeserializeOwned>(current: Option<&Value>, name: &str) -> CliResult<T> {
    let part = current.map_or(Value::Null, |c| output::at(c, name).clone());
    serde_json::from_value(part)
        .map_err(|e| CliError::Failed(format!("the tenant's {name} could not be read: {e}")))
}

impl Changes {
    /// Whether the body needs the tenant as it is: the owner and the policy are
    /// replaced whole, so the fields not given are taken from it.
    fn needs_current(&self) -> bool {
        self.owner_name.is_some()
            || self.owner_email.is_some()
            || self.organization.is_some()
            || !self.allow.is_empty()
            || !self.deny.is_empty()
    }

    /// The `PUT /admin/tenants/{id}` body; `current` is the tenant when
    /// [`Self::needs_current`].
    fn body(self, current: Option<&Value>) -> CliResult<TenantUpdate> {
        let mut update = TenantUpdate {
            name: self.name,
            plan: self.plan,
            ..TenantUpdate::default()
        };
        if self.clear_quotas || !self.quotas.is_empty() {
            update.quotas = Some(self.quotas.into_iter().collect());
        }
        if self.clear_settings || !self.settings.is_empty() {
            update.settings = Some(self.settings.into_iter().collect());
        }
        if !self.allow.is_empty() || !self.deny.is_empty() {
            let mut policy: AccessPolicy = current_part(current, "policy")?;
            if !self.allow.is_empty() {
                policy.allow = self.allow.into_iter().collect();
            }
            if !self.deny.is_empty() {
                policy.deny = self.deny.into_iter().collect();
            }
            update.policy = Some(policy);
        }
        if self.owner_name.is_some() || self.owner_email.is_some() || self.organization.is_some() {
            let mut owner: TenantOwner = current_part(current, "owner")?;
            owner.name = self.owner_name.unwrap_or(owner.name);
            owner.email = self.owner_email.unwrap_or(owner.email);
            owner.organization = self.organization.or(owner.organization);
            update.owner = Some(owner);
        }
        Ok(update)
    }
}

/// One tenant as a table of its fields.
pub fn render_tenant(t: &Value) -> String {
    let mut status = field(t, "status");
    if !output::at(t, "suspended_reason").is_null() {
        status = format!(
            "{status} since {}: {}",
            field(t, "suspended_since"),
            field(t, "suspended_reason")
        );
    }
    let mut owner = format!("{} <{}>", field(t, "owner.name"), field(t, "owner.email"));
    if !output::at(t, "owner.organization").is_null() {
        owner = format!("{owner}, {}", field(t, "owner.organization"));
    }
    fields([
        ("id", field(t, "tenant_id")),
        ("name", field(t, "name")),
        ("status", status),
        ("plan", field(t, "plan")),
        ("owner", owner),
        ("quotas in force", field(t, "effective_quotas")),
        ("quota overrides", field(t, "quotas")),
        ("allowed", field(t, "policy.allow")),
        ("denied", field(t, "policy.deny")),
        ("settings", field(t, "settings")),
        ("isolation", field(t, "isolation_level")),
        ("encrypted", field(t, "encryption_enabled")),
        ("created", field(t, "created_at")),
        ("updated", field(t, "updated_at")),
        ("version", field(t, "version")),
    ])
}

/// A page of tenants as a table, and where the next page starts.
fn render_list(page: &Value, offset: u64) -> String {
    let empty = Vec::new();
    let tenants = output::at(page, "tenants").as_array().unwrap_or(&empty);
    let rows = tenants.iter().map(|t| {
        vec![
            field(t, "tenant_id"),
            field(t, "name"),
            field(t, "status"),
            field(t, "plan"),
            field(t, "owner.email"),
            field(t, "created_at"),
        ]
    });
    let total = field(page, "total");
    if tenants.is_empty() {
        return format!("no tenants from offset {offset} ({total} in all)");
    }
    let table = output::table(&["ID", "NAME", "STATUS", "PLAN", "OWNER", "CREATED"], rows);
    let first = offset + 1;
    let last = offset + tenants.len() as u64;
    let mut summary = format!("tenants {first}-{last} of {total}");
    if let Some(next) = output::at(page, "next_offset").as_u64() {
        summary.push_str(&format!("; next page: --offset {next}"));
    }
    format!("{table}\n{summary}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_settings_parse() {
        assert_eq!(parse_quota("rpm=5").expect("ok"), ("rpm".to_owned(), 5));
        assert!(parse_quota("rpm").is_err());
        assert!(parse_quota("rpm=-1").is_err());
        assert_eq!(
            parse_setting("a=b=c").expect("ok"),
            ("a".to_owned(), "b=c".to_owned())
        );
        assert!(parse_setting("=x").is_err());
    }

    fn changes() -> Changes {
        Changes {
            name: None,
            plan: None,
            quotas: Vec::new(),
            clear_quotas: false,
            settings: Vec::new(),
            clear_settings: false,
            allow: Vec::new(),
            deny: Vec::new(),
            owner_name: None,
            owner_email: None,
            organization: None,
        }
    }

    #[test]
    fn updates_send_only_what_changes() {
        let body = Changes {
            plan: Some(BillingPlan::Basic),
            clear_quotas: true,
            ..changes()
        }
        .body(None)
        .unwrap();
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"plan": "basic", "quotas": {}})
        );
    }

    #[test]
    fn owner_and_policy_keep_what_is_not_given() {
        let current = json!({
            "owner": {"id": "o1", "name": "Old", "email": "old@x.io", "organization": null},
            "policy": {"allow": ["a:b"], "deny": ["c:d"]},
        });
        let change = Changes {
            owner_email: Some("new@x.io".into()),
            deny: vec!["e:f".into()],
            ..changes()
        };
        assert!(change.needs_current());
        let body = serde_json::to_value(change.body(Some(&current)).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "owner": {"id": "o1", "name": "Old", "email": "new@x.io", "organization": null},
                "policy": {"allow": ["a:b"], "deny": ["e:f"]},
            })
        );
    }
}
