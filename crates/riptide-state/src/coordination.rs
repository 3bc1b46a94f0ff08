//! Wiring the state layer into coordination (the sync layer, below this one): reload
//! requests from any instance reload this one, session changes made here reach the
//! other instances and theirs drop this instance's copies, scheduled checkpoints run on
//! the lease holder only, and the state report lists the instances.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use riptide_sync::{DistributedSync, InstanceInfo, SyncBody, SyncError, SyncEvent};

use crate::manager::{CHECKPOINT_JOB, StateManager};
use crate::peers::{PeerError, Peers};
use crate::sessions::{SessionChangeListener, SessionManager};

impl StateManager {
    /// Coordinates this state manager with the other instances sharing the store
    /// through `sync` (see the module doc).
    pub fn attach_sync(self: &Arc<Self>, sync: &Arc<DistributedSync>) -> Result<(), SyncError> {
        let weak = Arc::downgrade(self);
        sync.on_event(Arc::new(move |event| {
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
        attach_sessions(sync, self.sessions().clone());
        if let Some(interval) = self.checkpoint_interval() {
            let weak: Weak<StateManager> = Arc::downgrade(self);
            sync.run_singleton(CHECKPOINT_JOB, interval, move |lease| {
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
        self.set_peers(sync.clone());
        Ok(())
    }
}

/// Session changes made here reach the other instances, and theirs drop this
/// instance's memory and spill copies.
fn attach_sessions(sync: &Arc<DistributedSync>, sessions: Arc<SessionManager>) {
    let weak = Arc::downgrade(sync);
    sessions.set_change_listener(SessionChangeListener(Box::new(move |tenant, id| {
        if let Some(sync) = weak.upgrade() {
            let body = SyncBody::SessionChanged {
                tenant_id: tenant.to_owned(),
                session_id: id.to_owned(),
            };
            (sync.publish_detached(body))();
        }
    })));
    sync.on_event(Arc::new(move |event| match event {
        SyncEvent::Message(SyncBody::SessionChanged {
            tenant_id,
            session_id,
        }) => {
            let (sessions, tenant, id) = (sessions.clone(), tenant_id.clone(), session_id.clone());
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
