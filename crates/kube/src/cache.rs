//! What the watches have seen, as the engine's object source and status
//! store: API objects converted once into the manifest model (the same
//! loader and checks as files), their status kept beside them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use tagwarden_api::status::Status;
use tagwarden_api::{Kind, LoadOptions, Manifests, Object, ObjectId};
use tagwarden_engine::{EngineError, Objects, StatusStore};
use tokio::sync::mpsc::UnboundedSender;

/// One object as the API server last showed it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) object: Object,
    pub(crate) status: Option<Status>,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) deleting: bool,
    pub(crate) finalizers: Vec<String>,
}

#[derive(Default)]
struct Inner {
    /// Shared, not inline: an `Entry` is ~720 bytes, so inline the table
    /// held that per slot (and twice that while it grew), and every read
    /// copied one.
    objects: HashMap<ObjectId, Arc<Entry>>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
}

/// The watched objects, by identity.
pub(crate) struct Cache {
    inner: RwLock<Inner>,
    /// Status written by reconciles goes out through the writer task.
    writes: UnboundedSender<(ObjectId, Status)>,
}

/// Reads one API object (JSON) into the model. JSON is YAML, so the
/// manifest loader reads it, with every check it makes of files.
pub(crate) fn convert(json: &serde_json::Value) -> Result<Entry, String> {
    let text = serde_json::to_string(json).map_err(|e| e.to_string())?;
    let kind = json["kind"].as_str().unwrap_or_default();
    let meta = &json["metadata"];
    let where_ = format!(
        "{kind}/{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    );
    let m = Manifests::load_str(&text, Path::new(&where_), &LoadOptions::default());
    if let Some(e) = m.errors.first() {
        return Err(e.to_string());
    }
    let object = m
        .objects
        .into_iter()
        .next()
        .ok_or_else(|| format!("{where_}: not a kind tagwarden reads"))?;
    let status = match &json["status"] {
        serde_json::Value::Null => None,
        s => {
            let bytes = serde_json::to_vec(s).map_err(|e| e.to_string())?;
            Status::from_json(object.kind(), &bytes).ok()
        }
    }
    .filter(|_| object.kind().is_reconciled());
    Ok(Entry {
        object,
        status,
        uid: meta["uid"].as_str().map(str::to_string),
        resource_version: meta["resourceVersion"].as_str().map(str::to_string),
        deleting: !meta["deletionTimestamp"].is_null(),
        finalizers: meta["finalizers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

impl Cache {
    pub(crate) fn new(writes: UnboundedSender<(ObjectId, Status)>) -> Cache {
        Cache {
            inner: RwLock::default(),
            writes,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn entry(&self, id: &ObjectId) -> Option<Arc<Entry>> {
        self.read().objects.get(id).cloned()
    }

    /// Records what a watch delivered; returns what was there before.
    pub(crate) fn put(&self, entry: Arc<Entry>) -> Option<Arc<Entry>> {
        let id = entry.object.id();
        self.write_lock().objects.insert(id, entry)
    }

    pub(crate) fn remove(&self, id: &ObjectId) -> Option<Arc<Entry>> {
        self.write_lock().objects.remove(id)
    }

    /// Forgets every object of `kind` not in `keep` (a relist).
    pub(crate) fn retain_kind(&self, kind: Kind, keep: &[ObjectId]) -> Vec<ObjectId> {
        let mut inner = self.write_lock();
        let gone: Vec<ObjectId> = inner
            .objects
            .keys()
            .filter(|id| id.kind == kind && !keep.contains(id))
            .cloned()
            .collect();
        for id in &gone {
            inner.objects.remove(id);
        }
        gone
    }

    /// Copies of every object of these kinds (a webhook's view).
    pub(crate) fn snapshot(&self, kinds: &[Kind]) -> Vec<Object> {
        self.read()
            .objects
            .values()
            .filter(|e| kinds.contains(&e.object.kind()))
            .map(|e| e.object.clone())
            .collect()
    }

    pub(crate) fn set_namespace(&self, name: &str, labels: BTreeMap<String, String>) {
        self.write_lock()
            .namespaces
            .insert(name.to_string(), labels);
    }

    pub(crate) fn remove_namespace(&self, name: &str) {
        self.write_lock().namespaces.remove(name);
    }
}

impl Objects for Cache {
    fn get(&self, id: &ObjectId) -> Option<Object> {
        self.read().objects.get(id).map(|e| e.object.clone())
    }

    fn each(&self, kind: Kind, namespace: Option<&str>, f: &mut dyn FnMut(&Object)) {
        let inner = self.read();
        let mut of_kind: Vec<(&ObjectId, &Arc<Entry>)> = inner
            .objects
            .iter()
            .filter(|(id, _)| id.kind == kind && namespace.is_none_or(|ns| id.namespace == ns))
            .collect();
        // A stable order, as files give one.
        of_kind.sort_by_key(|(id, _)| *id);
        for (_, e) in of_kind {
            f(&e.object);
        }
    }

    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .read()
            .namespaces
            .get(namespace)
            .cloned()
            .unwrap_or_default();
        labels.insert(
            "kubernetes.io/metadata.name".to_string(),
            namespace.to_string(),
        );
        labels
    }
}

impl StatusStore for Cache {
    fn read(&self, id: &ObjectId) -> Result<Option<Status>, EngineError> {
        Ok(self.read().objects.get(id).and_then(|e| e.status.clone()))
    }

    /// Kept at once (the next reconcile reads it), sent to the API server
    /// by the writer task.
    fn write(&self, id: &ObjectId, status: &Status) -> Result<(), EngineError> {
        if let Some(e) = self.write_lock().objects.get_mut(id) {
            // Copied when shared: the reconcile writing this holds the old
            // entry, so each write copies it once (as the start of a run
            // copied its object before entries were shared).
            Arc::make_mut(e).status = Some(status.clone());
        }
        // The writer ends only with the controller.
        let _ = self.writes.send((id.clone(), status.clone()));
        Ok(())
    }

    fn list(&self) -> Result<Vec<(ObjectId, Status)>, EngineError> {
        Ok(self
            .read()
            .objects
            .iter()
            .filter_map(|(id, e)| e.status.clone().map(|s| (id.clone(), s)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_objects_read_like_manifests_with_their_status_and_bookkeeping() {
        let json = serde_json::json!({
            "apiVersion": "image.toolkit.fluxcd.io/v1",
            "kind": "ImagePolicy",
            "metadata": {
                "name": "podinfo", "namespace": "flux-system", "uid": "u-1",
                "resourceVersion": "42", "generation": 3,
                "labels": {"team": "web"},
                "annotations": {"reconcile.fluxcd.io/requestedAt": "now"},
                "finalizers": ["finalizers.fluxcd.io"],
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {"imageRepositoryRef": {"name": "podinfo"}, "policy": {"semver": {"range": "5.0.x"}}},
            "status": {"latestRef": {"name": "ghcr.io/stefanprodan/podinfo", "tag": "5.0.3"}}
        });
        let e = convert(&json).expect("converts");
        let Object::ImagePolicy(p) = &e.object else {
            panic!("{:?}", e.object)
        };
        assert_eq!(p.meta.generation, 3);
        assert_eq!(p.meta.resource_version.as_deref(), Some("42"));
        assert_eq!(p.meta.reconcile_requested_at(), Some("now"));
        assert_eq!(p.meta.labels["team"], "web");
        assert_eq!(e.uid.as_deref(), Some("u-1"));
        assert_eq!(e.finalizers, ["finalizers.fluxcd.io"]);
        assert!(!e.deleting);
        let Some(Status::ImagePolicy(s)) = &e.status else {
            panic!("{:?}", e.status)
        };
        assert_eq!(s.latest_ref.as_ref().map(|l| l.tag.as_str()), Some("5.0.3"));

        let bad = serde_json::json!({
            "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy",
            "metadata": {"name": "broken", "namespace": "apps"},
            "spec": {"imageRepositoryRef": {"name": "podinfo"}, "policy": {}}
        });
        let err = convert(&bad).expect_err("no policy choice");
        assert!(
            err.contains("ImagePolicy/apps/broken") && err.contains("spec.policy"),
            "{err}"
        );
    }
}
