//! Reading a checkpoint body through its seals: sealed parts are opened with their
//! tenant's checkpoint key and their lines handed on as if they were plain; a part whose
//! key is gone (the tenant was deleted) is skipped, and its tenant reported shredded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::format::{Line, LineReader};
use super::keys_file::KeysFile;
use super::seal::{self, PartFacts, StoredKey};
use riptide_store::SharedStore;
use riptide_store::tenant_id::TenantId;
use riptide_tenant::crypto::{DataKey, MasterKey};

/// The keys a restore may open parts with: the keys file's, then the store's records.
/// Store reads block the calling thread (the body is read on a blocking thread).
pub(super) struct KeyRing {
    master: Option<MasterKey>,
    file: KeysFile,
    store: Option<(SharedStore, tokio::runtime::Handle)>,
    found: HashMap<(String, String), Option<Arc<DataKey>>>,
}

impl KeyRing {
    pub(super) fn new(master: Option<MasterKey>, file: KeysFile, store: SharedStore) -> Self {
        Self {
            master,
            file,
            store: Some((store, tokio::runtime::Handle::current())),
            found: HashMap::new(),
        }
    }

    /// Only `master`, no kept keys (unsealed checkpoints need none).
    #[cfg(test)]
    pub(super) fn offline(master: Option<MasterKey>) -> Self {
        Self {
            master,
            file: KeysFile::default(),
            store: None,
            found: HashMap::new(),
        }
    }

    /// Key `id` of `tenant`; `None` when neither the file nor the store has it.
    fn key(&mut self, tenant: &str, id: &str) -> Result<Option<Arc<DataKey>>, String> {
        let slot = (tenant.to_owned(), id.to_owned());
        if let Some(found) = self.found.get(&slot) {
            return Ok(found.clone());
        }
        let Some(master) = &self.master else {
            return Err(format!(
                "tenant {tenant} is sealed and no master key is attached to open it"
            ));
        };
        let stored = match self.file.get(tenant, id) {
            Some(k) => Some(k.clone()),
            None => self.stored_in_store(tenant, id)?,
        };
        let key = match stored {
            Some(k) => Some(Arc::new(k.unwrap(master, tenant)?)),
            None => None,
        };
        self.found.insert(slot, key.clone());
        Ok(key)
    }

    fn stored_in_store(&self, tenant: &str, id: &str) -> Result<Option<StoredKey>, String> {
        let Some((store, runtime)) = &self.store else {
            return Ok(None);
        };
        let tenant_id = TenantId::parse(tenant).map_err(|e| e.to_string())?;
        let stored = runtime
            .block_on(seal::stored_key(&**store, &tenant_id))
            .map_err(|e| e.to_string())?;
        Ok(stored.filter(|k| k.id == id))
    }
}

/// What a shredded tenant's parts said about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Shredded {
    /// One of its parts held its registry entry.
    pub(super) registry: bool,
    /// Sessions its parts held.
    pub(super) sessions: u64,
}

/// The body's lines with sealed parts opened.
pub(super) struct OpenLines<'f> {
    inner: LineReader<'f>,
    ring: &'f mut KeyRing,
    checkpoint: String,
    queue: VecDeque<Line<'static>>,
    /// Body lines read so far (a sealed part counts as one).
    pub(super) number: u64,
    /// Tenants whose parts could not be opened: their key is gone.
    pub(super) shredded: BTreeMap<String, Shredded>,
    next_seq: HashMap<String, u64>,
}

impl<'f> OpenLines<'f> {
    pub(super) fn new(inner: LineReader<'f>, ring: &'f mut KeyRing) -> Self {
        Self {
            inner,
            ring,
            checkpoint: String::new(),
            queue: VecDeque::new(),
            number: 0,
            shredded: BTreeMap::new(),
            next_seq: HashMap::new(),
        }
    }

    /// The next plain line; `Ok(None)` at the end of the body.
    pub(super) fn next(&mut self) -> Result<Option<Line<'static>>, String> {
        loop {
            if let Some(line) = self.queue.pop_front() {
                return Ok(Some(line));
            }
            self.number += 1;
            let number = self.number;
            let Some(line) = self.inner.next_line(number)? else {
                return Ok(None);
            };
            let Line::Sealed {
                tenant,
                key,
                seq,
                registry,
                sessions,
                data,
            } = line
            else {
                if let Line::Meta(meta) = &line {
                    self.checkpoint = meta.id.to_string();
                }
                return Ok(Some(line));
            };
            let expected = self.next_seq.entry(tenant.to_string()).or_insert(0);
            if seq != *expected {
                return Err(format!(
                    "line {number}: part {seq} of tenant {tenant} where part {expected} belongs"
                ));
            }
            *expected += 1;
            let facts = PartFacts {
                checkpoint: &self.checkpoint,
                tenant: &tenant,
                key: &key,
                seq,
                registry,
                sessions,
            };
            let Some(data_key) = self
                .ring
                .key(&tenant, &key)
                .map_err(|e| format!("line {number}: {e}"))?
            else {
                let gone = self.shredded.entry(tenant.to_string()).or_default();
                gone.registry |= registry;
                gone.sessions += sessions;
                continue;
            };
            let plain = seal::open_part(&data_key, facts, &data.0)
                .map_err(|e| format!("line {number}: {e}"))?;
            self.queue = inner_lines(&plain, facts).map_err(|e| format!("line {number}: {e}"))?;
        }
    }
}

/// The plain lines of an opened part: only the tenant's own items, agreeing with the
/// part's counts.
fn inner_lines(plain: &[u8], facts: PartFacts<'_>) -> Result<VecDeque<Line<'static>>, String> {
    let mut out = VecDeque::new();
    let (mut registry, mut sessions) = (false, 0);
    for (i, raw) in plain.split(|&b| b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let line = serde_json::from_slice::<Line<'static>>(raw)
            .map_err(|e| format!("sealed line {}: {e}", i + 1))?;
        let owner = match &line {
            Line::Tenant { tenant, .. } => {
                registry = true;
                tenant
            }
            Line::Session { tenant, .. } => {
                sessions += 1;
                tenant
            }
            Line::Record { tenant, .. }
            | Line::Lookup { tenant, .. }
            | Line::Counters { tenant, .. }
            | Line::Zset { tenant, .. }
            | Line::Warm { tenant, .. } => tenant,
            Line::Meta(_) | Line::End { .. } | Line::Sealed { .. } => {
                return Err(format!("sealed line {}: not a tenant's object", i + 1));
            }
        };
        if owner != facts.tenant {
            return Err(format!(
                "sealed line {}: an object of tenant {owner} in a part of tenant {}",
                i + 1,
                facts.tenant
            ));
        }
        out.push_back(line);
    }
    if (registry, sessions) != (facts.registry, facts.sessions) {
        return Err(format!(
            "part {} of tenant {} holds other objects than it says",
            facts.seq, facts.tenant
        ));
    }
    Ok(out)
}
