//! Wiring the layers below into coordination: the tenant layer's and sessions' local
//! changes are published and other instances' changes drop the cached copies here; the
//! state manager gets its peers, reload requests and the scheduled checkpoint job.

use std::sync::{Arc, Weak};

use async_trait::async_trait;

use super::message::{SyncBody, SyncEvent};
use super::{DistributedSync, SyncError};
use crate::state::manager::CHECKPOINT_JOB;
use crate::state::sessions::{SessionChangeListener, SessionManager};
use crate::state::{InstanceInfo, PeerError, Peers, StateManager};
use crate::tenant::{TenantChangeListener, TenantEvent, TenantManager};

impl DistributedSync {
    /// Publishes `body` from a synchronous hook: the send runs on its own task, so the
    /// caller never waits on the store. A failed send is logged; the other instances'
    /// record caches still expire within `record_cache_ttl_ms`.
    fn publish_detached(self: &Arc<Self>, body: SyncBody) -> impl Fn() + use<> {
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

    /// Session changes made here reach the other instances, and theirs drop this
    /// instance's memory and spill copies.
    pub fn attach_sessions(self: &Arc<Self>, sessions: Arc<SessionManager>) {
        let weak = Arc::downgrade(self);
        sessions.set_change_listener(SessionChangeListener(Box::new(move |tenant, id| {
            if let Some(sync) = weak.upgrade() {
                let body = SyncBody::SessionChanged {
                    tenant_id: tenant.to_owned(),
                    session_id: id.to_owned(),
                };
                (sync.publish_detached(body))();
            }
        })));
        self.on_event(Arc::new(move |event| match event {
            SyncEvent::Message(SyncBody::SessionChanged {
                tenant_id,
                session_id,
            }) => {
                let (sessions, tenant, id) =
                    (sessions.clone(), tenant_id.clone(), session_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = sessions.forget(&tenant, &id).await {
                        tracing::warn!(error = %e, "dropping a session changed elsewhere failed");
                    }
                });
            }
            SyncEvent::Resynced => {
                let sessions = sessions.clone();
                tokio::spawn(async move { sessions.clear_local().await });
            }
            SyncEvent::Message(_) => {}
        }));
    }

    /// Coordinates the state manager with the other instances: reload requests from any
    /// instance reload this one, sessions changed elsewhere are dropped here, scheduled
    /// checkpoints run on the lease holder only, and the state report lists the
    /// instances.
    pub fn attach_state(self: &Arc<Self>, state: &Arc<StateManager>) -> Result<(), SyncError> {
        let weak = Arc::downgrade(state);
        self.on_event(Arc::new(move |event| {
            if let SyncEvent::Message(SyncBody::ReloadConfig { requested_by }) = event {
                let Some(state) = weak.upgrade() else { return };
                let outcome = state.reload_config();
                tracing::info!(
                    requested_by,
                    result = outcome.as_str(),
                    "reload requested by another instance"
                );
            }
        }));
        self.attach_sessions(state.sessions().clone());
        if let Some(interval) = state.checkpoint_interval() {
            let weak: Weak<StateManager> = Arc::downgrade(state);
            self.run_singleton(CHECKPOINT_JOB, interval, move |lease| {
                let weak = weak.clone();
                async move {
                    let Some(state) = weak.upgrade() else { return };
                    let token = lease.token;
                    match state.take_scheduled_checkpoint(lease).await {
                        Ok(info) => tracing::info!(checkpoint.id = %info.id, fencing_token = token, "scheduled checkpoint"),
                        Err(e) => tracing::error!(error = %e, "scheduled checkpoint failed"),
                    }
                }
            })?;
        }
        state.set_peers(self.clone());
        Ok(())
    }
}

#[async_trait]
impl Peers for DistributedSync {
    fn instance_id(&self) -> String {
        self.id().to_owned()
    }

    async fn instances(&self) -> Result<Vec<InstanceInfo>, PeerError> {
        Ok(DistributedSync::instances(self).await?)
    }

    fn leader(&self, job: &str) -> Option<String> {
        DistributedSync::leader(self, job)
    }

    async fn request_reload(&self, requested_by: &str) -> Result<(), PeerError> {
        let body = SyncBody::ReloadConfig {
            requested_by: requested_by.to_owned(),
        };
        Ok(self.publish(body).await?)
    }

    async fn leave(&self) {
        self.shutdown().await;
    }
}
