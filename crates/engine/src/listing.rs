//! What `tagwarden get` shows and the suspend flags it sets: read through
//! the status seam, so the daemon's API and the CLI (daemon stopped) agree.

use crate::{EngineError, StatusStore};
use std::time::SystemTime;
use tagwarden_api::status::{ConditionStatus, Status};
use tagwarden_api::{Kind, ObjectId};
use tagwarden_store::Store;

/// One object as the `get` tables need it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectRow {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub suspended: bool,
    /// `True`, `False` or `Unknown` (never reconciled).
    pub ready: String,
    pub message: String,
    /// ImageRepository: when the last good scan ran, and how many tags.
    pub last_scan: Option<SystemTime>,
    pub tag_count: Option<usize>,
    /// ImagePolicy: the latest image, split as Flux's IMAGE and TAG columns.
    pub image: Option<String>,
    pub tag: Option<String>,
    /// ImageUpdateAutomation: when it last ran.
    pub last_run: Option<SystemTime>,
}

/// Where a suspend flag lives: `true` while suspended.
fn suspend_key(id: &ObjectId) -> String {
    format!("suspend/{}/{}/{}", id.kind, id.namespace, id.name)
}

/// True when `tagwarden suspend` flagged the object (spec.suspend aside).
pub fn is_suspended(store: &dyn Store, id: &ObjectId) -> Result<bool, EngineError> {
    Ok(store.get(&suspend_key(id))?.is_some_and(|v| v == b"true"))
}

/// Sets or clears the suspend flag.
pub fn set_suspended(store: &dyn Store, id: &ObjectId, suspended: bool) -> Result<(), EngineError> {
    if suspended {
        Ok(store.put(&suspend_key(id), b"true")?)
    } else {
        Ok(store.delete(&suspend_key(id))?)
    }
}

/// The row of one object from its status (`None`: never reconciled).
/// `suspended` is the manifest's `spec.suspend` or the suspend flag.
pub fn row(id: &ObjectId, status: Option<&Status>, suspended: bool) -> ObjectRow {
    let mut row = ObjectRow {
        kind: id.kind,
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        suspended,
        ready: ConditionStatus::Unknown.to_string(),
        message: String::new(),
        last_scan: None,
        tag_count: None,
        image: None,
        tag: None,
        last_run: None,
    };
    let Some(status) = status else {
        return row;
    };
    match status {
        Status::ImageRepository(s) => {
            if let Some(scan) = &s.last_scan_result {
                row.last_scan = Some(scan.scan_time.system());
                row.tag_count = Some(scan.tag_count);
            }
        }
        Status::ImagePolicy(s) => {
            if let Some(l) = &s.latest_ref {
                row.image = Some(l.name.clone());
                row.tag = Some(l.tag.clone());
            }
        }
        Status::ImageUpdateAutomation(s) => {
            row.last_run = s.last_automation_run_time.map(|t| t.system());
        }
    }
    let (ready, message) = status.ready();
    row.ready = ready.to_string();
    row.message = message.to_string();
    row
}

/// Every object with a stored status, by kind then namespaced name: what
/// `get` shows when no daemon is running to say which objects are loaded.
pub fn rows(status: &dyn StatusStore, flags: &dyn Store) -> Result<Vec<ObjectRow>, EngineError> {
    let mut all = status.list()?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.iter()
        .map(|(id, s)| Ok(row(id, Some(s), is_suspended(flags, id)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KvStatus;
    use std::sync::Arc;
    use tagwarden_api::LatestRef;
    use tagwarden_api::status::ImagePolicyStatus;
    use tagwarden_store::MemoryStore;

    #[test]
    fn suspend_flag_round_trips_and_shows_in_rows() {
        let store = Arc::new(MemoryStore::default());
        let kv = KvStatus::new(store.clone());
        let id = ObjectId::new(Kind::ImagePolicy, "flux-system", "podinfo");
        let status = Status::ImagePolicy(ImagePolicyStatus {
            latest_ref: Some(LatestRef {
                name: "ghcr.io/stefanprodan/podinfo".into(),
                tag: "5.0.3".into(),
                digest: None,
            }),
            ..Default::default()
        });
        kv.write(&id, &status).expect("write");
        assert!(!is_suspended(&*store, &id).expect("get"));
        set_suspended(&*store, &id, true).expect("set");
        let all = rows(&kv, &*store).expect("rows");
        assert_eq!(all.len(), 1, "suspend keys are not objects: {all:?}");
        assert!(all[0].suspended);
        assert_eq!(all[0].tag.as_deref(), Some("5.0.3"));
        assert_eq!(all[0].ready, "Unknown");
        set_suspended(&*store, &id, false).expect("clear");
        assert!(!rows(&kv, &*store).expect("rows")[0].suspended);
        assert_eq!(store.keys("suspend/").expect("keys"), Vec::<String>::new());
    }
}
