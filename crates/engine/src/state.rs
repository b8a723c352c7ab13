//! Status and tags in a key-value store (the embedded store of `run --once`
//! and the daemon): `status/<Kind>/<namespace>/<name>` holds the Flux v1
//! status JSON, `tags/<namespace>/<name>` a repository's last good tag list.

use crate::{EngineError, StatusStore};
use std::sync::Arc;
use tagwarden_api::status::Status;
use tagwarden_api::{Kind, ObjectId};
use tagwarden_store::Store;

const STATUS: &str = "status/";
const TAGS: &str = "tags/";

fn status_key(id: &ObjectId) -> String {
    format!("{STATUS}{}/{}/{}", id.kind, id.namespace, id.name)
}

pub(crate) fn tags_key(namespace: &str, name: &str) -> String {
    format!("{TAGS}{namespace}/{name}")
}

/// [`StatusStore`] over a key-value [`Store`].
pub struct KvStatus {
    store: Arc<dyn Store>,
}

impl KvStatus {
    pub fn new(store: Arc<dyn Store>) -> KvStatus {
        KvStatus { store }
    }
}

impl StatusStore for KvStatus {
    fn read(&self, id: &ObjectId) -> Result<Option<Status>, EngineError> {
        let key = status_key(id);
        match self.store.get(&key)? {
            None => Ok(None),
            Some(bytes) => {
                Status::from_json(id.kind, &bytes)
                    .map(Some)
                    .map_err(|e| EngineError::State {
                        key,
                        message: e.to_string(),
                    })
            }
        }
    }

    fn write(&self, id: &ObjectId, status: &Status) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(&status.to_json()).map_err(|e| EngineError::State {
            key: status_key(id),
            message: e.to_string(),
        })?;
        Ok(self.store.put(&status_key(id), &bytes)?)
    }

    fn list(&self) -> Result<Vec<(ObjectId, Status)>, EngineError> {
        let mut out = Vec::new();
        for key in self.store.keys(STATUS)? {
            let mut parts = key[STATUS.len()..].splitn(3, '/');
            let (Some(kind), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(kind) = Kind::parse(kind).filter(|k| k.is_reconciled()) else {
                continue;
            };
            let id = ObjectId::new(kind, ns, name);
            if let Some(s) = self.read(&id)? {
                out.push((id, s));
            }
        }
        Ok(out)
    }
}

/// Removes the records of tagwarden before 0.2 (`<Kind>/<ns>/<name>`, a
/// private format with the tags inside): their status is recomputed by the
/// next reconcile of each object. Returns how many were removed.
pub fn drop_legacy_records(store: &dyn Store) -> Result<usize, EngineError> {
    let mut n = 0;
    for kind in Kind::RECONCILED {
        for key in store.keys(&format!("{kind}/"))? {
            store.delete(&key)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Records a repository's tags (sorted as a scan keeps them).
pub(crate) fn save_tags(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    tags: &[String],
) -> Result<(), EngineError> {
    // Tags passed the OCI grammar: no newline can be inside one.
    Ok(db.put(&tags_key(namespace, name), tags.join("\n").as_bytes())?)
}

/// A repository's last good tag list, if it was ever scanned.
pub fn load_tags(
    db: &dyn Store,
    namespace: &str,
    name: &str,
) -> Result<Option<Vec<String>>, EngineError> {
    let key = tags_key(namespace, name);
    let Some(bytes) = db.get(&key)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|e| EngineError::State {
        key: key.clone(),
        message: e.to_string(),
    })?;
    let tags: Vec<String> = text
        .split('\n')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    // A record not written by us (or damaged) must not smuggle a tag past
    // the grammar the scan enforced.
    if let Some(bad) = tags.iter().find(|t| !tagwarden_registry::is_valid_tag(t)) {
        return Err(EngineError::State {
            key,
            message: format!("invalid tag '{}'", tagwarden_api::text::escape(bad, false)),
        });
    }
    Ok(Some(tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_store::MemoryStore;

    #[test]
    fn tags_round_trip_and_a_forged_record_is_refused() {
        let db = MemoryStore::default();
        assert_eq!(load_tags(&db, "ns", "r").expect("read"), None);
        let tags = vec!["6.0.0".to_string(), "5.0.3".to_string()];
        save_tags(&db, "ns", "r", &tags).expect("save");
        assert_eq!(load_tags(&db, "ns", "r").expect("read"), Some(tags));
        save_tags(&db, "ns", "empty", &[]).expect("save");
        assert_eq!(load_tags(&db, "ns", "empty").expect("read"), Some(vec![]));
        db.put("tags/ns/bad", b"1.0\nx: {y}").expect("put");
        let e = load_tags(&db, "ns", "bad").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "state record tags/ns/bad unreadable: invalid tag 'x: {y}'"
        );
    }

    #[test]
    fn legacy_records_are_dropped_and_nothing_else() {
        let db = MemoryStore::default();
        for k in [
            "ImageRepository/ns/a",
            "ImagePolicy/ns/a",
            "ImageUpdateAutomation/ns/a",
            "status/ImagePolicy/ns/a",
            "tags/ns/a",
            "suspend/ImagePolicy/ns/a",
        ] {
            db.put(k, b"x").expect("put");
        }
        assert_eq!(drop_legacy_records(&db).expect("drop"), 3);
        assert_eq!(
            db.keys("").expect("keys"),
            [
                "status/ImagePolicy/ns/a",
                "suspend/ImagePolicy/ns/a",
                "tags/ns/a"
            ]
        );
        assert_eq!(drop_legacy_records(&db).expect("again"), 0);
    }

    #[test]
    fn status_round_trips_and_lists_by_identity() {
        let kv = KvStatus::new(Arc::new(MemoryStore::default()));
        let id = ObjectId::new(Kind::ImagePolicy, "flux-system", "podinfo");
        assert_eq!(kv.read(&id).expect("read"), None);
        let s = Status::ImagePolicy(tagwarden_api::status::ImagePolicyStatus {
            observed_generation: 4,
            ..Default::default()
        });
        kv.write(&id, &s).expect("write");
        assert_eq!(kv.read(&id).expect("read"), Some(s.clone()));
        assert_eq!(kv.list().expect("list"), [(id, s)]);
    }
}
