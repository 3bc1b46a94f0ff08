//! The seed's constructor of the state manager, as the seed calls it: it opens (or
//! shares) the store a URL names, with the store sections' defaults, and checks
//! reloaded configuration against the whole persistence section
//! ([`PersistenceSchema`]). The service builds the layers together instead
//! (`riptide_persistence::Persistence::start`).

use std::sync::Arc;

use riptide_store::clock::system_clock;

use crate::config::StateConfig;
use crate::manager::{StateError, StateManager};
use crate::persistence_config::{PersistenceConfig, PersistenceSchema};

impl StateManager {
    /// The state manager over the store `url` names (the seed's constructor). `url` is
    /// `embedded`, a directory path, or a Redis URL (see [`riptide_store::StoreUrl`]).
    pub async fn new(url: &str, config: StateConfig) -> Result<Self, StateError> {
        let persistence = PersistenceConfig {
            state: config,
            ..Default::default()
        };
        persistence.validate()?;
        let store = persistence.open_store(url).await?;
        Self::with_store(
            store,
            persistence.state,
            system_clock(),
            Arc::new(PersistenceSchema),
        )
        .await
    }
}
