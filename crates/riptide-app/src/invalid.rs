//! [`Invalid`]: a configuration key whose value was refused. A leaf: the `config`
//! module and the sections it gathers from other modules (`warming`, ...) all report it.

/// A key whose value was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key as written in the YAML file, e.g. `server.request_timeout_ms`.
    pub key: String,
    /// Why the value was refused.
    pub reason: String,
}

impl Invalid {
    /// `key` refused because of `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
