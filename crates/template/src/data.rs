//! The value handed to the template, shaped like Flux's `TemplateData` so
//! that fields, method results, printing and map order all come out as Go's.

use std::collections::BTreeMap;

use crate::value::{Member, MemberKind, Value};
use crate::{FileChange, NamespacedName, ObjectId, TemplateData, UpdatedImage};

fn field(name: &'static str, value: Value) -> Member {
    Member {
        name,
        value,
        kind: MemberKind::Field,
    }
}

fn embedded(name: &'static str, value: Value) -> Member {
    Member {
        name,
        value,
        kind: MemberKind::Embedded,
    }
}

fn method(name: &'static str, value: Value) -> Member {
    Member {
        name,
        value,
        kind: MemberKind::Method,
    }
}

/// `types.NamespacedName`, whose `String()` is `namespace/name`.
fn namespaced_name(n: &NamespacedName) -> Value {
    Value::strukt(
        "types.NamespacedName",
        vec![
            field("Namespace", Value::str(&n.namespace)),
            field("Name", Value::str(&n.name)),
        ],
        Some(n.to_string()),
    )
}

/// `update.ObjectIdentifier`: it embeds kyaml's `ResourceIdentifier`, which
/// embeds `TypeMeta{APIVersion, Kind}` and `NameMeta{Name, Namespace}`; so
/// `%v` prints `{{{apps/v1 Deployment} {name namespace}}}`, maps sort by
/// apiVersion, kind, name, namespace, and `.Kind` etc. are promoted.
fn object_id(o: &ObjectId) -> Value {
    let type_meta = Value::strukt(
        "yaml.TypeMeta",
        vec![
            field("APIVersion", Value::str(&o.api_version)),
            field("Kind", Value::str(&o.kind)),
        ],
        None,
    );
    let name_meta = Value::strukt(
        "yaml.NameMeta",
        vec![
            field("Name", Value::str(&o.name)),
            field("Namespace", Value::str(&o.namespace)),
        ],
        None,
    );
    let resource = Value::strukt(
        "yaml.ResourceIdentifier",
        vec![
            embedded("TypeMeta", type_meta),
            embedded("NameMeta", name_meta),
        ],
        None,
    );
    Value::strukt(
        "update.ObjectIdentifier",
        vec![embedded("ResourceIdentifier", resource)],
        None,
    )
}

/// Values per object, in the order Go's map iteration gives the objects.
type ByObject<'a> = BTreeMap<ObjectKey<'a>, (&'a ObjectId, Vec<Value>)>;
type ObjectKey<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The order Go's map iteration gives `ObjectIdentifier` keys.
fn object_key(o: &ObjectId) -> ObjectKey<'_> {
    (&o.api_version, &o.kind, &o.name, &o.namespace)
}

fn change(c: &FileChange) -> Value {
    Value::strukt(
        "update.Change",
        vec![
            field("OldValue", Value::str(&c.old_value)),
            field("NewValue", Value::str(&c.new_value)),
            field("Setter", Value::str(&c.setter)),
        ],
        None,
    )
}

const CHANGES: &str = "[]update.Change";
const OBJECT_CHANGES: &str = "update.ObjectChanges";
const IMAGE_REFS: &str = "[]update.ImageRef";
const OBJECT_IMAGES: &str = "map[update.ObjectIdentifier][]update.ImageRef";

fn nil_changes() -> Value {
    Value::list(CHANGES, vec![])
}

fn object_changes(entries: Vec<(Value, Value)>) -> Value {
    Value::map(OBJECT_CHANGES, entries, nil_changes())
}

/// file → objects in first-seen order → that object's changes.
type Grouped<'a> = BTreeMap<&'a str, Vec<(&'a ObjectId, Vec<&'a FileChange>)>>;

fn group(changes: &[FileChange]) -> Grouped<'_> {
    let mut files: Grouped<'_> = BTreeMap::new();
    for c in changes {
        let objects = files.entry(c.file.as_str()).or_default();
        match objects.iter_mut().find(|(o, _)| *o == &c.object) {
            Some((_, list)) => list.push(c),
            None => objects.push((&c.object, vec![c])),
        }
    }
    // Walk objects as Go's range would, so derived lists are deterministic.
    for objects in files.values_mut() {
        objects.sort_by(|a, b| object_key(a.0).cmp(&object_key(b.0)));
    }
    files
}

/// `update.Result` with its `Changes()` and `Objects()` methods evaluated.
fn changed(grouped: &Grouped<'_>) -> Value {
    let file_changes = grouped
        .iter()
        .map(|(file, objects)| {
            let entries = objects
                .iter()
                .map(|(o, cs)| {
                    (
                        object_id(o),
                        Value::list(CHANGES, cs.iter().map(|c| change(c)).collect()),
                    )
                })
                .collect();
            (file.to_string(), object_changes(entries))
        })
        .collect();
    let file_changes = Value::string_map(
        "map[string]update.ObjectChanges",
        file_changes,
        object_changes(vec![]),
    );

    // Flux's Changes() drops repeated (old, new, setter) triples.
    let mut seen: Vec<(&str, &str, &str)> = Vec::new();
    let mut all = Vec::new();
    // Flux's Objects() keeps one file's list when an object appears in two
    // (which one depends on Go's random map order); these are appended in
    // file order instead, so nothing is lost and the result is stable.
    let mut by_object: ByObject<'_> = BTreeMap::new();
    for objects in grouped.values() {
        for (o, cs) in objects {
            let slot = by_object.entry(object_key(o)).or_insert((o, vec![]));
            for c in cs {
                slot.1.push(change(c));
                let key = (
                    c.old_value.as_str(),
                    c.new_value.as_str(),
                    c.setter.as_str(),
                );
                if !seen.contains(&key) {
                    seen.push(key);
                    all.push(change(c));
                }
            }
        }
    }
    let objects = object_changes(
        by_object
            .into_values()
            .map(|(o, cs)| (object_id(o), Value::list(CHANGES, cs)))
            .collect(),
    );
    Value::strukt(
        "update.Result",
        vec![
            field("FileChanges", file_changes),
            method("Changes", Value::list(CHANGES, all)),
            method("Objects", objects),
        ],
        None,
    )
}

/// An image reference as go-containerregistry reads it for Flux's legacy
/// `ImageRef`: Docker Hub implied when the first path component is no host,
/// `docker.io` spelled `index.docker.io`, `library/` for official images.
pub(crate) struct ImageRef {
    original: String,
    registry: String,
    repository: String,
    tag: String,
    digest: Option<String>,
}

impl ImageRef {
    pub(crate) fn new(img: &UpdatedImage) -> ImageRef {
        let (registry, repository) = match img.image.split_once('/') {
            Some((host, rest)) if host.contains('.') || host.contains(':') => {
                (host.to_string(), rest.to_string())
            }
            _ => (String::new(), img.image.clone()),
        };
        let registry = match registry.as_str() {
            "" | "docker.io" => "index.docker.io".to_string(),
            _ => registry,
        };
        let repository = if registry == "index.docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let mut original = img.image.clone();
        if !img.tag.is_empty() {
            original.push(':');
            original.push_str(&img.tag);
        }
        if let Some(d) = &img.digest {
            original.push('@');
            original.push_str(d);
        }
        ImageRef {
            original,
            registry,
            repository,
            tag: if img.tag.is_empty() {
                "latest".into()
            } else {
                img.tag.clone()
            },
            digest: img.digest.clone(),
        }
    }

    /// The tag, or the digest when there is one (a digest reference).
    fn identifier(&self) -> &str {
        self.digest.as_deref().unwrap_or(&self.tag)
    }

    fn name(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}/{}@{d}", self.registry, self.repository),
            None => format!("{}/{}:{}", self.registry, self.repository, self.tag),
        }
    }

    fn value(&self, policy: &NamespacedName) -> Value {
        Value::strukt(
            "update.imageRef",
            vec![
                method("Identifier", Value::str(self.identifier())),
                method("Name", Value::str(self.name())),
                method("Policy", namespaced_name(policy)),
                method("Registry", Value::str(&self.registry)),
                method("Repository", Value::str(&self.repository)),
                method("String", Value::str(&self.original)),
                // Not in Flux's ImageRef: tagwarden adds the plain tag.
                method("Tag", Value::str(&self.tag)),
            ],
            Some(self.original.clone()),
        )
    }
}

/// The policy a setter (`NAMESPACE:NAME` or `NAMESPACE:NAME:FIELD`) names.
fn setter_policy(setter: &str) -> Option<NamespacedName> {
    let mut parts = setter.split(':');
    let namespace = parts.next()?;
    let name = parts.next()?;
    Some(NamespacedName::new(namespace, name))
}

/// The legacy `update.Result` (`.Updated`): per file and object, the image
/// of every policy whose setter changed something there.
fn updated(grouped: &Grouped<'_>, images: &[UpdatedImage]) -> Value {
    let image_for = |setter: &str| -> Option<(String, Value)> {
        let policy = setter_policy(setter)?;
        let img = images.iter().find(|i| i.policy == policy)?;
        let r = ImageRef::new(img);
        Some((format!("{}\u{0}{policy}", r.original), r.value(&policy)))
    };
    let mut files = Vec::new();
    let mut all_seen: Vec<String> = Vec::new();
    let mut all = Vec::new();
    let mut by_object: ByObject<'_> = BTreeMap::new();
    for (file, objects) in grouped {
        let mut entries = Vec::new();
        for (o, cs) in objects {
            let mut seen: Vec<String> = Vec::new();
            let mut refs = Vec::new();
            for c in cs {
                let Some((key, v)) = image_for(&c.setter) else {
                    continue;
                };
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key.clone());
                if !all_seen.contains(&key) {
                    all_seen.push(key);
                    all.push(v.clone());
                }
                refs.push(v);
            }
            if refs.is_empty() {
                continue;
            }
            by_object
                .entry(object_key(o))
                .or_insert((o, vec![]))
                .1
                .extend(refs.iter().cloned());
            entries.push((object_id(o), Value::list(IMAGE_REFS, refs)));
        }
        if entries.is_empty() {
            continue;
        }
        let result = Value::strukt(
            "update.FileResult",
            vec![field(
                "Objects",
                Value::map(OBJECT_IMAGES, entries, Value::list(IMAGE_REFS, vec![])),
            )],
            None,
        );
        files.push((file.to_string(), result));
    }
    let zero_file = Value::strukt(
        "update.FileResult",
        vec![field(
            "Objects",
            Value::map(OBJECT_IMAGES, vec![], Value::list(IMAGE_REFS, vec![])),
        )],
        None,
    );
    let objects = Value::map(
        OBJECT_IMAGES,
        by_object
            .into_values()
            .map(|(o, refs)| (object_id(o), Value::list(IMAGE_REFS, refs)))
            .collect(),
        Value::list(IMAGE_REFS, vec![]),
    );
    Value::strukt(
        "update.Result",
        vec![
            field(
                "Files",
                Value::string_map("map[string]update.FileResult", files, zero_file),
            ),
            method("Images", Value::list(IMAGE_REFS, all)),
            method("Objects", objects),
        ],
        None,
    )
}

/// Flux's `TemplateData`, plus the removed `.Updated` that older templates use.
pub(crate) fn to_value(data: &TemplateData) -> Value {
    let grouped = group(&data.changes);
    let values = data
        .values
        .iter()
        .map(|(k, v)| (k.clone(), Value::str(v)))
        .collect();
    Value::strukt(
        "source.TemplateData",
        vec![
            field("AutomationObject", namespaced_name(&data.automation)),
            field("Changed", changed(&grouped)),
            field(
                "Values",
                Value::string_map("map[string]string", values, Value::str("")),
            ),
            // Not a field of today's TemplateData, so `{{ . }}` prints as Flux's.
            method("Updated", updated(&grouped, &data.images)),
        ],
        None,
    )
}
