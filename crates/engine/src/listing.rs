//! What `tagwarden get` shows and the suspend flags it sets: read from the
//! store alone, so the daemon's API and the CLI (daemon stopped) agree.

use crate::{AutomationStatus, EngineError, PolicyStatus, key};
use std::time::SystemTime;
use tagwarden_api::status::{Condition, ConditionStatus, find};
use tagwarden_registry::RepositoryStatus;
use tagwarden_store::Store;

/// The kinds `get image …` lists, in Flux's order for `get image all`.
pub const KINDS: [&str; 3] = ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"];

/// One object as the `get` tables need it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectRow {
    pub kind: String,
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
pub fn suspend_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("suspend/{kind}/{namespace}/{name}")
}

/// True when `tagwarden suspend` flagged the object (spec.suspend aside).
pub fn is_suspended(
    store: &dyn Store,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<bool, EngineError> {
    Ok(store
        .get(&suspend_key(kind, namespace, name))?
        .is_some_and(|v| v == b"true"))
}

/// Sets or clears the suspend flag (the store has no delete: `false`).
pub fn set_suspended(
    store: &dyn Store,
    kind: &str,
    namespace: &str,
    name: &str,
    suspended: bool,
) -> Result<(), EngineError> {
    let value: &[u8] = if suspended { b"true" } else { b"false" };
    Ok(store.put(&suspend_key(kind, namespace, name), value)?)
}

fn load<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<T>, EngineError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EngineError::State(format!("{key}: {e}"))),
    }
}

/// The Ready condition as `(status, message)`; `Unknown` when absent.
pub fn ready(conditions: &[Condition]) -> (ConditionStatus, String) {
    find(conditions, "Ready").map_or((ConditionStatus::Unknown, String::new()), |c| {
        (c.status, c.message.clone())
    })
}

/// The row of one object from its stored status. `spec_suspend` is the
/// manifest's `spec.suspend`, when known.
pub fn row(
    store: &dyn Store,
    kind: &str,
    namespace: &str,
    name: &str,
    spec_suspend: bool,
) -> Result<ObjectRow, EngineError> {
    let k = key(kind, namespace, name);
    let mut row = ObjectRow {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        suspended: spec_suspend || is_suspended(store, kind, namespace, name)?,
        ready: ConditionStatus::Unknown.to_string(),
        message: String::new(),
        last_scan: None,
        tag_count: None,
        image: None,
        tag: None,
        last_run: None,
    };
    let conditions = match kind {
        "ImageRepository" => load::<RepositoryStatus>(store, &k)?.map(|s| {
            if let Some((scan, at)) = &s.last_scan {
                row.last_scan = Some(*at);
                row.tag_count = Some(scan.tag_count);
            }
            s.conditions
        }),
        "ImagePolicy" => load::<PolicyStatus>(store, &k)?.map(|s| {
            if let Some(l) = &s.latest {
                row.image = Some(l.name.clone());
                row.tag = Some(l.tag.clone());
            }
            s.conditions
        }),
        "ImageUpdateAutomation" => load::<AutomationStatus>(store, &k)?.map(|s| {
            row.last_run = s.last_run;
            s.conditions
        }),
        _ => None,
    };
    if let Some(c) = conditions {
        let (status, message) = ready(&c);
        row.ready = status.to_string();
        row.message = message;
    }
    Ok(row)
}

/// Every object with a stored status, by kind then namespaced name: what
/// `get` shows when no daemon is running to say which objects are loaded.
pub fn rows_from_store(store: &dyn Store) -> Result<Vec<ObjectRow>, EngineError> {
    let mut rows = Vec::new();
    for kind in KINDS {
        for k in store.keys(&format!("{kind}/"))? {
            let mut parts = k.splitn(3, '/').skip(1);
            let (Some(ns), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            rows.push(row(store, kind, ns, name, false)?);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_store::MemoryStore;

    #[test]
    fn suspend_flag_round_trips_and_shows_in_rows() {
        let s = MemoryStore::default();
        let status = PolicyStatus {
            latest: Some(crate::LatestRef {
                name: "ghcr.io/stefanprodan/podinfo".into(),
                tag: "5.0.3".into(),
                digest: None,
            }),
            observed_previous: None,
            conditions: Vec::new(),
        };
        s.put(
            "ImagePolicy/flux-system/podinfo",
            &serde_json::to_vec(&status).expect("json"),
        )
        .expect("put");
        assert!(!is_suspended(&s, "ImagePolicy", "flux-system", "podinfo").expect("get"));
        set_suspended(&s, "ImagePolicy", "flux-system", "podinfo", true).expect("set");
        let rows = rows_from_store(&s).expect("rows");
        assert_eq!(rows.len(), 1, "suspend keys are not objects: {rows:?}");
        assert!(rows[0].suspended);
        assert_eq!(rows[0].tag.as_deref(), Some("5.0.3"));
        assert_eq!(rows[0].ready, "Unknown");
        set_suspended(&s, "ImagePolicy", "flux-system", "podinfo", false).expect("clear");
        assert!(!rows_from_store(&s).expect("rows")[0].suspended);
    }
}
