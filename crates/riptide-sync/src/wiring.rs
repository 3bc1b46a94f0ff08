//! Wiring the tenant layer into coordination: its local changes are published and other
//! instances' changes drop the cached copies here. The state layer, above this one,
//! wires itself (`StateManager::attach_sync`).

use std::sync::{Arc, Weak};

use super::DistributedSync;
use super::message::{SyncBody, SyncEvent};
use riptide_tenant::{TenantChangeListener, TenantEvent, TenantManager};

impl DistributedSync {
    /// Publishes `body` from a synchronous hook: the send runs on its own task, so the
    /// caller never waits on the store. A failed send is logged; the other instances'
    /// record caches still expire within `record_cache_ttl_ms`.
    pub fn publish_detached(self: &Arc<Self>, body: SyncBody) -> impl Fn() + use<> {
        let weak: Weak<Self> = Arc::downgrade(self);
        move || {
            let (weak, body) = (weak.clone(), body.clone());
            tokio::spawn(async move {
                let Some(sync) = weak.upgrade() else { return };
                if let Err(e) = sync.publish(body).await {
                    tracing::warn!(error = %e, "publishing a change to the other instances failed");
                }
            });
        }
    }

    /// Tenant changes made here (suspend, quota, delete, key revoke...) reach the other
    /// instances, and theirs drop this instance's cached records and key lookups, so a
    /// suspension or revocation is enforced everywhere at once rather than after the
    /// record cache expires.
    pub fn attach_tenants(self: &Arc<Self>, tenants: Arc<TenantManager>) {
        let weak = Arc::downgrade(self);
        tenants.set_change_listener(TenantChangeListener(Box::new(move |event| {
            let Some(sync) = weak.upgrade() else { return };
            let body = match event {
                TenantEvent::Changed { tenant_id, change } => SyncBody::TenantChanged {
                    tenant_id: tenant_id.clone(),
                    change: (*change).to_owned(),
                },
                TenantEvent::KeyRevoked { tenant_id, key_id } => SyncBody::KeyRevoked {
                    tenant_id: tenant_id.clone(),
                    key_id: key_id.clone(),
                },
            };
            (sync.publish_detached(body))();
        })));
        self.on_event(Arc::new(move |event| match event {
            SyncEvent::Message(SyncBody::TenantChanged { tenant_id, change }) => {
                tenants.forget_tenant(tenant_id, change == "delete");
            }
            SyncEvent::Message(SyncBody::KeyRevoked { tenant_id, .. }) => {
                tenants.forget_tenant(tenant_id, false);
            }
            SyncEvent::Resynced => tenants.forget_everything(),
            SyncEvent::Message(_) => {}
        }));
    }
}
