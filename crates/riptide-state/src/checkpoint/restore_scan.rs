//! Reading a checkpoint back for restore: every line of its body validated (and its
//! sealed parts opened) before anything is written ([`scan`]), then streamed to the
//! appliers in per-tenant chunks ([`read_chunks`]; applying them is `restore.rs`).

use std::collections::{BTreeMap, HashSet};

use tokio::sync::mpsc;

use super::collect::{is_hash, lookup_owner};
use super::format::{Line, Meta, Verified};
use super::open::{KeyRing, OpenLines, Shredded};
use super::{RecordKind, is_month, is_segment};
use riptide_store::tenant_id::TenantId;
use riptide_tenant::crypto::DATA_KEY_RECORD;

/// Items per chunk handed from the reader to the appliers.
const CHUNK_ITEMS: usize = 256;
/// A chunk is handed over once its values reach this many bytes.
const CHUNK_BYTES: usize = 1024 * 1024;

/// One validated object of a tenant.
#[derive(Debug)]
pub(super) enum Item {
    /// The tenant's registry entry.
    Registry(i64),
    /// A plain record (`meta`, `dek`, `key:<id>`).
    Record {
        kind: RecordKind,
        name: String,
        value: Vec<u8>,
    },
    /// A global API key lookup record.
    Lookup { hash: String, value: Vec<u8> },
    /// A counters record.
    Counters {
        kind: RecordKind,
        name: String,
        fields: Vec<(String, i64)>,
    },
    /// Members of a sorted set.
    Zset {
        kind: RecordKind,
        name: String,
        members: Vec<(String, i64)>,
    },
    /// A session record and its index entry.
    Session {
        id: String,
        expires_at_ms: i64,
        value: Vec<u8>,
    },
}

impl Item {
    fn weight(&self) -> usize {
        match self {
            Item::Record { value, .. }
            | Item::Lookup { value, .. }
            | Item::Session { value, .. } => value.len(),
            Item::Counters { fields, .. } => fields.len() * 16,
            Item::Zset { members, .. } => members.len() * 16,
            Item::Registry(_) => 8,
        }
    }
}

/// A body line, validated.
enum Parsed {
    Meta(Meta<'static>),
    End {
        tenants: u64,
        sessions: u64,
        lines: u64,
    },
    Item(TenantId, Item),
    /// A tenant's part of the warm list.
    Warm(TenantId, Vec<String>),
}

/// Most URLs of one tenant's warm list line.
const MAX_WARM_URLS: usize = 100_000;

fn tenant_of(raw: &str) -> Result<TenantId, String> {
    TenantId::parse(raw).map_err(|e| e.to_string())
}

/// Checks a line against the layout: only the records a checkpoint holds can be
/// written back, under a valid tenant id, so a damaged or forged body can never name an
/// arbitrary key.
fn classify(line: Line<'static>) -> Result<Parsed, String> {
    Ok(match line {
        Line::Meta(meta) => Parsed::Meta(meta),
        Line::End {
            tenants,
            sessions,
            lines,
        } => Parsed::End {
            tenants,
            sessions,
            lines,
        },
        Line::Tenant { tenant, score } => Parsed::Item(tenant_of(&tenant)?, Item::Registry(score)),
        Line::Record {
            tenant,
            name,
            value,
        } => {
            let kind = match name.as_ref() {
                "meta" => RecordKind::Tenant,
                DATA_KEY_RECORD => RecordKind::DataKey,
                other => match other.strip_prefix("key:") {
                    Some(id) if is_segment(id) => RecordKind::ApiKey,
                    _ => return Err(format!("unexpected record {name:?}")),
                },
            };
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Record {
                    kind,
                    name: name.into_owned(),
                    value: value.0.into_owned(),
                },
            )
        }
        Line::Lookup {
            tenant,
            hash,
            value,
        } => {
            if !is_hash(&hash) {
                return Err(format!("api key lookup hash {hash:?} is not 64 hex digits"));
            }
            if lookup_owner(&value.0).as_deref() != Some(tenant.as_ref()) {
                return Err(format!(
                    "api key lookup {hash} does not belong to tenant {tenant:?}"
                ));
            }
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Lookup {
                    hash: hash.into_owned(),
                    value: value.0.into_owned(),
                },
            )
        }
        Line::Counters {
            tenant,
            name,
            fields,
        } => {
            let kind = match name.as_ref() {
                "q" => RecordKind::Quota,
                "storage" => RecordKind::Storage,
                other => match other.strip_prefix("usage:") {
                    Some(month) if is_month(month) => RecordKind::Usage,
                    _ => return Err(format!("unexpected counters {name:?}")),
                },
            };
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Counters {
                    kind,
                    name: name.into_owned(),
                    fields: fields.into_owned(),
                },
            )
        }
        Line::Zset {
            tenant,
            name,
            members,
        } => {
            let kind = match name.as_ref() {
                "keys" => RecordKind::ApiKeyIndex,
                "usage_months" => RecordKind::UsageMonth,
                _ => return Err(format!("unexpected sorted set {name:?}")),
            };
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Zset {
                    kind,
                    name: name.into_owned(),
                    members: members.into_owned(),
                },
            )
        }
        Line::Session {
            tenant,
            id,
            expires_at_ms,
            value,
        } => {
            if !is_segment(&id) {
                return Err(format!("invalid session id {id:?}"));
            }
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Session {
                    id: id.into_owned(),
                    expires_at_ms,
                    value: value.0.into_owned(),
                },
            )
        }
        Line::Warm { tenant, urls } => {
            if urls.len() > MAX_WARM_URLS {
                return Err(format!(
                    "tenant {tenant}: a warm list of more than {MAX_WARM_URLS} URLs"
                ));
            }
            Parsed::Warm(tenant_of(&tenant)?, urls.into_owned())
        }
        Line::Sealed { tenant, .. } => {
            return Err(format!(
                "a sealed part of tenant {tenant} inside a sealed part"
            ));
        }
    })
}

/// What the validation pass learned.
pub(super) struct Scan {
    /// The meta line.
    pub(super) meta: Meta<'static>,
    /// Tenants with a registry entry in the checkpoint.
    pub(super) tenants: HashSet<String>,
    /// Sessions in the checkpoint.
    pub(super) sessions: u64,
    /// Tenants whose sealed parts could not be opened: deleted, their key destroyed.
    pub(super) shredded: BTreeMap<String, Shredded>,
    /// The tenants' parts of the warm list (the meta line has the rest).
    pub(super) warm: Vec<(Option<String>, String)>,
}

/// Reads and validates the whole body without touching the store: every line parses
/// and fits the layout, `meta` comes first and `end` last, and the figures agree with
/// the footer.
pub(super) fn scan(v: &mut Verified, ring: &mut KeyRing) -> Result<Scan, String> {
    let (footer, version) = (v.footer, v.header.version);
    let reader = v
        .lines()
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let mut lines = OpenLines::new(reader, ring);
    let meta = match lines.next()?.map(classify).transpose()? {
        Some(Parsed::Meta(meta)) => meta,
        _ => return Err("the body does not start with its meta line".to_owned()),
    };
    if meta.format != version {
        return Err(format!(
            "the body says format {}, the header {version}",
            meta.format
        ));
    }
    let mut tenants = HashSet::new();
    let mut sessions = 0;
    let mut warm = Vec::new();
    loop {
        let item = lines.next()?.map(classify).transpose()?;
        let number = lines.number;
        match item {
            None => return Err("the body has no end line".to_owned()),
            Some(Parsed::Meta(_)) => return Err(format!("line {number}: a second meta line")),
            Some(Parsed::Item(tenant, item)) => match item {
                Item::Registry(_) => {
                    tenants.insert(tenant.as_str().to_owned());
                }
                Item::Session { .. } => sessions += 1,
                _ => {}
            },
            Some(Parsed::Warm(tenant, urls)) => {
                warm.extend(urls.into_iter().map(|u| (Some(tenant.to_string()), u)));
            }
            Some(Parsed::End {
                tenants: t,
                sessions: s,
                lines: l,
            }) => {
                for (tenant, gone) in &lines.shredded {
                    if gone.registry {
                        tenants.insert(tenant.clone());
                    }
                    sessions += gone.sessions;
                }
                let counted = (tenants.len() as u64, sessions, number);
                if (t, s, l) != counted
                    || (t, s, l) != (footer.tenants, footer.sessions, footer.lines)
                {
                    return Err(format!(
                        "figures disagree: end line {:?}, footer {:?}, counted {counted:?}",
                        (t, s, l),
                        (footer.tenants, footer.sessions, footer.lines)
                    ));
                }
                break;
            }
        }
    }
    if lines.next()?.is_some() {
        return Err(format!("data after the end line (line {})", lines.number));
    }
    Ok(Scan {
        meta,
        tenants,
        sessions,
        shredded: std::mem::take(&mut lines.shredded),
        warm,
    })
}

/// Consecutive items of one tenant.
pub(super) struct Chunk {
    pub(super) tenant: TenantId,
    pub(super) items: Vec<Item>,
}

/// Streams the body (already validated by [`scan`]) as chunks to `tx`; runs on a
/// blocking thread. Stops quietly when the receiver goes away.
pub(super) fn read_chunks(
    mut v: Verified,
    mut ring: KeyRing,
    tx: mpsc::Sender<Chunk>,
) -> Result<(), String> {
    let reader = v
        .lines()
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let mut lines = OpenLines::new(reader, &mut ring);
    let mut current: Option<Chunk> = None;
    let mut weight = 0;
    while let Some(line) = lines.next()? {
        let Parsed::Item(tenant, item) = classify(line)? else {
            continue;
        };
        let full = current.as_ref().is_some_and(|c| {
            c.tenant != tenant || c.items.len() >= CHUNK_ITEMS || weight >= CHUNK_BYTES
        });
        if full && let Some(chunk) = current.take() {
            if tx.blocking_send(chunk).is_err() {
                return Ok(());
            }
            weight = 0;
        }
        weight += item.weight();
        current
            .get_or_insert_with(|| Chunk {
                tenant,
                items: Vec::new(),
            })
            .items
            .push(item);
    }
    if let Some(chunk) = current {
        // A closed receiver means the appliers stopped; they report why.
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::super::format::{B64, Footer, Header, push_line, verify};
    use super::super::write::{WriteMsg, write_file};
    use super::*;

    fn meta() -> Line<'static> {
        Line::Meta(Meta {
            id: "x".into(),
            format: super::super::format::FORMAT_VERSION,
            created_at_ms: 1,
            key_prefix: "riptide".into(),
            store_kind: "embedded".into(),
            config: None,
            warm_list: Cow::Owned(Vec::new()),
            audit: None,
        })
    }

    /// A checksum-valid file holding `lines`, then an `end` line and a footer that
    /// claim `figures` (tenants, sessions).
    fn file_with(lines: &[Line<'static>], figures: (u64, u64)) -> (tempfile::TempDir, Verified) {
        file_as(Header::new(1), lines, figures)
    }

    fn file_as(
        header: Header,
        lines: &[Line<'static>],
        figures: (u64, u64),
    ) -> (tempfile::TempDir, Verified) {
        let dir = tempfile::tempdir().expect("dir");
        let mut body = Vec::new();
        for l in lines {
            push_line(&mut body, l).expect("encode");
        }
        let count = lines.len() as u64 + 1;
        let end = Line::End {
            tenants: figures.0,
            sessions: figures.1,
            lines: count,
        };
        push_line(&mut body, &end).expect("encode");
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(WriteMsg::Data(body)).expect("send");
        tx.try_send(WriteMsg::Finish(Footer {
            body_len: 0,
            tenants: figures.0,
            sessions: figures.1,
            lines: count,
        }))
        .expect("send");
        drop(tx);
        let (path, _, _) = write_file(dir.path(), "t", header, rx).expect("write");
        let verified = verify(&path).expect("checksum-valid");
        (dir, verified)
    }

    fn record(tenant: &str, name: &str, value: &[u8]) -> Line<'static> {
        Line::Record {
            tenant: tenant.to_owned().into(),
            name: name.to_owned().into(),
            value: B64(Cow::Owned(value.to_vec())),
        }
    }

    #[test]
    fn a_valid_body_scans() {
        let lines = [
            meta(),
            record("acme", "meta", b"{}"),
            record("acme", "key:k7x2mq4ab9cd", b"{}"),
            Line::Session {
                tenant: "acme".into(),
                id: "s-1".into(),
                expires_at_ms: 5,
                value: B64(Cow::Owned(b"x".to_vec())),
            },
            Line::Tenant {
                tenant: "acme".into(),
                score: 1,
            },
        ];
        let (_dir, mut v) = file_with(&lines, (1, 1));
        let scan = scan(&mut v, &mut KeyRing::offline(None)).expect("valid");
        assert_eq!((scan.tenants.len(), scan.sessions), (1, 1));
    }

    #[test]
    fn version_1_files_still_scan() {
        let Line::Meta(mut m) = meta() else {
            unreachable!()
        };
        m.format = 1;
        let header = Header {
            version: 1,
            ..Header::new(1)
        };
        let (_dir, mut v) = file_as(header, &[Line::Meta(m)], (0, 0));
        assert!(scan(&mut v, &mut KeyRing::offline(None)).is_ok());
    }

    #[test]
    fn a_tenant_whose_key_is_gone_is_shredded_not_corrupt() {
        use super::super::seal::{PartFacts, seal_part};
        let key = riptide_tenant::crypto::DataKey::generate();
        let facts = PartFacts {
            checkpoint: "x",
            tenant: "gone",
            key: "k1",
            seq: 0,
            registry: true,
            sessions: 3,
        };
        let part = seal_part(&key, facts, b"anything\n").expect("sealed");
        let (_dir, mut v) = file_with(&[meta(), part], (1, 3));
        let master = riptide_tenant::crypto::MasterKey::generate();
        let scan = scan(&mut v, &mut KeyRing::offline(Some(master))).expect("figures check out");
        assert_eq!(scan.shredded.keys().collect::<Vec<_>>(), ["gone"]);
        assert_eq!((scan.tenants.len(), scan.sessions), (1, 3));
    }

    #[test]
    fn forged_or_inconsistent_bodies_are_refused_before_any_write() {
        let lookup = |tenant: &str, owner: &str| Line::Lookup {
            tenant: tenant.to_owned().into(),
            hash: "ab".repeat(32).into(),
            value: B64(Cow::Owned(
                format!(r#"{{"tenant_id":"{owner}","key_id":"k"}}"#).into_bytes(),
            )),
        };
        let cases: Vec<(Vec<Line<'static>>, (u64, u64), &str)> = vec![
            (
                vec![meta(), record("acme", "rl", b"x")],
                (0, 0),
                "unexpected record",
            ),
            (
                vec![meta(), record("acme", "key:../../x", b"x")],
                (0, 0),
                "unexpected record",
            ),
            (
                vec![meta(), record("Not A Tenant", "meta", b"x")],
                (0, 0),
                "invalid tenant id",
            ),
            (
                vec![meta(), lookup("acme", "globex")],
                (0, 0),
                "does not belong",
            ),
            (vec![record("acme", "meta", b"x")], (0, 0), "meta line"),
            (vec![meta(), meta()], (0, 0), "second meta"),
            (
                vec![meta(), record("acme", "meta", b"{}")],
                (1, 0),
                "figures disagree",
            ),
        ];
        for (lines, figures, expected) in cases {
            let (_dir, mut v) = file_with(&lines, figures);
            let err = scan(&mut v, &mut KeyRing::offline(None))
                .err()
                .unwrap_or_default();
            assert!(err.contains(expected), "{expected:?} in {err:?}");
        }
    }
}
