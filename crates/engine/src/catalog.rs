//! Objects read from manifest files, indexed by identity: the object source
//! of `run --once` and the daemon.

use crate::Objects;
use std::collections::{BTreeMap, HashMap};
use tagwarden_api::{Kind, Manifests, Object, ObjectId};

/// Loaded manifests with an index by identity and by kind.
#[derive(Debug, Default)]
pub struct Catalog {
    manifests: Manifests,
    by_id: HashMap<ObjectId, usize>,
    by_kind: BTreeMap<Kind, Vec<usize>>,
}

impl Catalog {
    pub fn new(manifests: Manifests) -> Catalog {
        let mut by_id = HashMap::with_capacity(manifests.objects.len());
        let mut by_kind: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
        for (i, o) in manifests.objects.iter().enumerate() {
            // The loader refuses duplicates; the first one wins regardless.
            by_id.entry(o.id()).or_insert(i);
            by_kind.entry(o.kind()).or_default().push(i);
        }
        Catalog {
            manifests,
            by_id,
            by_kind,
        }
    }

    /// What was loaded, errors and warnings included.
    pub fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    /// The object itself, without a copy.
    pub fn find(&self, id: &ObjectId) -> Option<&Object> {
        self.by_id.get(id).map(|&i| &self.manifests.objects[i])
    }

    /// Every object of `kind`, in file order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.by_kind
            .get(&kind)
            .into_iter()
            .flatten()
            .map(|&i| &self.manifests.objects[i])
    }
}

impl Objects for Catalog {
    fn get(&self, id: &ObjectId) -> Option<Object> {
        self.find(id).cloned()
    }

    fn each(&self, kind: Kind, namespace: Option<&str>, f: &mut dyn FnMut(&Object)) {
        for o in self.of_kind(kind) {
            if namespace.is_none_or(|ns| o.meta().namespace == ns) {
                f(o);
            }
        }
    }

    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.manifests.namespace_labels(namespace)
    }
}
