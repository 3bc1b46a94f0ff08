//! Installs the process's log subscriber from [`LogConfig`], with a filter that a
//! configuration reload can replace ([`set_level`]).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::{LogConfig, LogFormat};

/// Replaces the filter of the installed subscriber.
type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The handle of the subscriber [`init`] installed; a process has one subscriber.
static FILTER: OnceLock<FilterHandle> = OnceLock::new();

/// Installs the global subscriber: `log.level` as the filter (already merged with
/// `RUST_LOG` and validated by the config loader), text or JSON lines on stdout; colours
/// only when stdout is a terminal. The filter can be replaced later with [`set_level`];
/// the format cannot.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::builder().parse(&config.level)?;
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::stdout().is_terminal();
    let (text, json) = match config.format {
        LogFormat::Text => (Some(fmt::layer().with_ansi(ansi)), None),
        LogFormat::Json => (None, Some(fmt::layer().json())),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))?;
    // `try_init` succeeded, so this is the first and only handle.
    let _ = FILTER.set(handle);
    Ok(())
}

/// What [`set_level`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    /// The installed subscriber filters with the new level from now on.
    Applied,
    /// No subscriber was installed by [`init`] (an embedding program or a test owns
    /// logging); nothing changed.
    NoSubscriber,
}

/// Replaces the filter of the subscriber [`init`] installed with `level` (a level or a
/// filter such as `info,riptide_api=debug`, already validated).
pub fn set_level(level: &str) -> anyhow::Result<LevelChange> {
    let Some(handle) = FILTER.get() else {
        return Ok(LevelChange::NoSubscriber);
    };
    let filter = EnvFilter::builder().parse(level)?;
    handle
        .reload(filter)
        .map_err(|e| anyhow::anyhow!("replacing the log filter: {e}"))?;
    Ok(LevelChange::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test of this crate's unit tests that installs the global subscriber.
    #[test]
    fn the_filter_is_replaced_at_run_time() {
        let config = LogConfig {
            level: "warn".to_owned(),
            format: LogFormat::Text,
        };
        init(&config).expect("first subscriber of this process");
        assert!(!tracing::enabled!(tracing::Level::INFO));
        assert!(tracing::enabled!(tracing::Level::WARN));

        assert_eq!(set_level("debug").expect("valid"), LevelChange::Applied);
        assert!(tracing::enabled!(tracing::Level::DEBUG));
        assert!(!tracing::enabled!(tracing::Level::TRACE));

        assert!(set_level("info,[").is_err(), "a bad filter is refused");
        assert!(
            tracing::enabled!(tracing::Level::DEBUG),
            "and changes nothing"
        );
        assert!(init(&config).is_err(), "one subscriber per process");
    }
}
