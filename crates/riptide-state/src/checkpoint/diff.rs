//! What a restore does to each object it would change, as listed in a
//! [`RestoreReport`](super::RestoreReport): created, overwritten, kept because the
//! store's copy is newer, or refused because a tombstone says it was revoked or
//! deleted since. Identified by tenant, kind and a non-secret id (a key id, a counters
//! name, a month), never by a value.

use serde::{Deserialize, Serialize};

use super::RecordKind;

/// Most objects listed per group (security decisions, changes); all are counted.
pub const MAX_OBJECTS_LISTED: usize = 1_000;

/// What a restore does (or would do) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreOutcome {
    /// Absent from the store: created.
    Create,
    /// Present, different, not newer: overwritten.
    Overwrite,
    /// Present and changed since the checkpoint (or never replaced, like a data key or
    /// an API key record): the store's copy is kept.
    KeptNewer,
    /// The tenant was deleted, or the API key revoked, after the checkpoint: not
    /// written back.
    Refused,
}

impl RestoreOutcome {
    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RestoreOutcome::Create => "create",
            RestoreOutcome::Overwrite => "overwrite",
            RestoreOutcome::KeptNewer => "kept_newer",
            RestoreOutcome::Refused => "refused",
        }
    }

    /// Kept or refused: a decision made since the checkpoint that the restore respects.
    pub fn is_security(&self) -> bool {
        matches!(self, RestoreOutcome::KeptNewer | RestoreOutcome::Refused)
    }
}

/// One object a restore does not leave as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreObject {
    /// The tenant.
    pub tenant: String,
    /// The kind of object.
    pub kind: RecordKind,
    /// Which one within the tenant: the key id (`api_key`, `api_key_index`,
    /// `api_key_lookup`), the counters name (`quota`, `storage`, `usage`), the month
    /// (`usage_month`); none for the tenant's single records and for sessions.
    pub id: Option<String>,
    /// What happens to it.
    pub outcome: RestoreOutcome,
}

impl RestoreObject {
    /// One line for logs and the audit log: `refused api_key acme/k7x2mq4ab9cd`.
    pub fn summary(&self) -> String {
        match &self.id {
            Some(id) => format!(
                "{} {} {}/{id}",
                self.outcome.as_str(),
                self.kind.as_str(),
                self.tenant
            ),
            None => format!(
                "{} {} {}",
                self.outcome.as_str(),
                self.kind.as_str(),
                self.tenant
            ),
        }
    }
}

/// The first [`MAX_OBJECTS_LISTED`] security decisions and the first as many changes,
/// so thousands of restored sessions never hide a refused key.
#[derive(Debug, Clone, Default)]
pub(super) struct Listing {
    pub(super) security: Vec<RestoreObject>,
    pub(super) changes: Vec<RestoreObject>,
}

impl Listing {
    pub(super) fn push(&mut self, object: RestoreObject) {
        let group = if object.outcome.is_security() {
            &mut self.security
        } else {
            &mut self.changes
        };
        if group.len() < MAX_OBJECTS_LISTED {
            group.push(object);
        }
    }

    pub(super) fn merge(&mut self, other: Listing) {
        for object in other.security.into_iter().chain(other.changes) {
            self.push(object);
        }
    }

    /// Security decisions first, each group sorted, so reports compare across runs.
    pub(super) fn into_sorted(mut self) -> Vec<RestoreObject> {
        let key = |o: &RestoreObject| (o.tenant.clone(), o.kind, o.id.clone());
        self.security.sort_by_key(key);
        self.changes.sort_by_key(key);
        self.security.extend(self.changes);
        self.security
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(n: usize, outcome: RestoreOutcome) -> RestoreObject {
        RestoreObject {
            tenant: format!("t{n:05}"),
            kind: RecordKind::Session,
            id: None,
            outcome,
        }
    }

    #[test]
    fn changes_never_crowd_out_security_decisions() {
        let mut listing = Listing::default();
        for n in 0..MAX_OBJECTS_LISTED + 10 {
            listing.push(object(n, RestoreOutcome::Create));
        }
        let mut other = Listing::default();
        other.push(object(0, RestoreOutcome::Refused));
        listing.merge(other);
        let listed = listing.into_sorted();
        assert_eq!(listed.len(), MAX_OBJECTS_LISTED + 1);
        assert_eq!(listed[0].outcome, RestoreOutcome::Refused);
        assert_eq!(listed[0].summary(), "refused session t00000");
    }
}
