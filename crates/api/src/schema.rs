//! The fields Flux's CRDs define, to tell a typo (`suspnd: true`) from a
//! field: a misspelt field is silently dropped by any reader, and the object
//! then does what its author did not ask. `metadata` and `status` are not
//! checked (Kubernetes owns them).

use yaml_rust2::Yaml;

type Fields = &'static [(&'static str, Shape)];

/// What may stand under a key.
enum Shape {
    /// A scalar or anything not looked into.
    Leaf,
    /// A mapping with free keys (labels, push options).
    AnyMap,
    Map(&'static [(&'static str, Shape)]),
    /// A list of mappings.
    List(&'static [(&'static str, Shape)]),
}

use Shape::{AnyMap, Leaf, List, Map};

const NAME_REF: Shape = Map(&[("name", Leaf)]);
const GIT_REF: Shape = Map(&[
    ("branch", Leaf),
    ("tag", Leaf),
    ("semver", Leaf),
    ("name", Leaf),
    ("commit", Leaf),
]);
const ACCESS_FROM: Shape = Map(&[("namespaceSelectors", List(&[("matchLabels", AnyMap)]))]);
const LABEL_SELECTOR: Shape = Map(&[
    ("matchLabels", AnyMap),
    (
        "matchExpressions",
        List(&[("key", Leaf), ("operator", Leaf), ("values", Leaf)]),
    ),
]);

const IMAGE_REPOSITORY: &[(&str, Shape)] = &[
    ("image", Leaf),
    ("interval", Leaf),
    ("timeout", Leaf),
    ("secretRef", NAME_REF),
    ("serviceAccountName", Leaf),
    ("certSecretRef", NAME_REF),
    ("proxySecretRef", NAME_REF),
    ("accessFrom", ACCESS_FROM),
    ("exclusionList", Leaf),
    ("provider", Leaf),
    ("insecure", Leaf),
    ("suspend", Leaf),
];

const IMAGE_POLICY: &[(&str, Shape)] = &[
    (
        "imageRepositoryRef",
        Map(&[("name", Leaf), ("namespace", Leaf)]),
    ),
    (
        "policy",
        Map(&[
            ("semver", Map(&[("range", Leaf)])),
            ("alphabetical", Map(&[("order", Leaf)])),
            ("numerical", Map(&[("order", Leaf)])),
        ]),
    ),
    ("filterTags", Map(&[("pattern", Leaf), ("extract", Leaf)])),
    ("digestReflectionPolicy", Leaf),
    ("interval", Leaf),
    ("suspend", Leaf),
];

const AUTOMATION: &[(&str, Shape)] = &[
    (
        "sourceRef",
        Map(&[
            ("apiVersion", Leaf),
            ("kind", Leaf),
            ("name", Leaf),
            ("namespace", Leaf),
        ]),
    ),
    (
        "git",
        Map(&[
            ("checkout", Map(&[("ref", GIT_REF)])),
            (
                "commit",
                Map(&[
                    ("author", Map(&[("name", Leaf), ("email", Leaf)])),
                    ("signingKey", Map(&[("secretRef", NAME_REF)])),
                    ("messageTemplate", Leaf),
                    ("messageTemplateValues", AnyMap),
                ]),
            ),
            (
                "push",
                Map(&[("branch", Leaf), ("refspec", Leaf), ("options", AnyMap)]),
            ),
        ]),
    ),
    ("interval", Leaf),
    ("policySelector", LABEL_SELECTOR),
    ("update", Map(&[("path", Leaf), ("strategy", Leaf)])),
    ("suspend", Leaf),
];

const GIT_REPOSITORY: &[(&str, Shape)] = &[
    ("url", Leaf),
    ("secretRef", NAME_REF),
    ("provider", Leaf),
    ("interval", Leaf),
    ("timeout", Leaf),
    ("ref", GIT_REF),
    ("verify", Map(&[("mode", Leaf), ("secretRef", NAME_REF)])),
    ("proxySecretRef", NAME_REF),
    ("ignore", Leaf),
    ("suspend", Leaf),
    ("recurseSubmodules", Leaf),
    (
        "include",
        List(&[
            ("repository", NAME_REF),
            ("fromPath", Leaf),
            ("toPath", Leaf),
        ]),
    ),
    ("sparseCheckout", Leaf),
];

/// GitRepository fields of v1beta1 and v1beta2 that v1 dropped.
const GIT_REPOSITORY_BETA: &[(&str, Shape)] =
    &[("gitImplementation", Leaf), ("accessFrom", ACCESS_FROM)];

const RECEIVER: &[(&str, Shape)] = &[
    ("type", Leaf),
    ("interval", Leaf),
    ("events", Leaf),
    (
        "resources",
        List(&[
            ("apiVersion", Leaf),
            ("kind", Leaf),
            ("name", Leaf),
            ("namespace", Leaf),
            ("matchLabels", AnyMap),
        ]),
    ),
    ("resourceFilter", Leaf),
    ("secretRef", NAME_REF),
    ("suspend", Leaf),
];

const OBJECT_TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
const SERVICE_ACCOUNT_TOP: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "imagePullSecrets",
    "secrets",
    "automountServiceAccountToken",
];
const SECRET_TOP: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "stringData",
    "type",
    "immutable",
];

/// Unknown fields of a document of a kind tagwarden reads, each with the
/// closest known field when one is near (`spec.suspnd` → `spec.suspend`).
pub(crate) fn unknown_fields(
    kind: &str,
    api_version: &str,
    doc: &Yaml,
) -> Vec<(String, Option<String>)> {
    let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
    let mut out = Vec::new();
    let Yaml::Hash(top) = doc else {
        return out;
    };
    let Some(kind) = crate::Kind::parse(kind) else {
        return out;
    };
    use crate::Kind as K;
    let (top_keys, spec): (&[&str], &[Fields]) = match kind {
        K::ImageRepository => (OBJECT_TOP, &[IMAGE_REPOSITORY]),
        K::ImagePolicy => (OBJECT_TOP, &[IMAGE_POLICY]),
        K::ImageUpdateAutomation => (OBJECT_TOP, &[AUTOMATION]),
        K::GitRepository if version != "v1" => (OBJECT_TOP, &[GIT_REPOSITORY, GIT_REPOSITORY_BETA]),
        K::GitRepository => (OBJECT_TOP, &[GIT_REPOSITORY]),
        K::Receiver => (OBJECT_TOP, &[RECEIVER]),
        K::Secret => (SECRET_TOP, &[]),
        K::ServiceAccount => (SERVICE_ACCOUNT_TOP, &[]),
    };
    for (k, v) in top {
        let Yaml::String(k) = k else { continue };
        if !top_keys.contains(&k.as_str()) {
            out.push((
                k.clone(),
                closest(k, top_keys.iter().copied()).map(str::to_string),
            ));
        } else if k == "spec" {
            let fields: Vec<&(&str, Shape)> = spec.iter().flat_map(|s| s.iter()).collect();
            walk(v, &fields, "spec", &mut out);
        }
    }
    out
}

fn walk(y: &Yaml, fields: &[&(&str, Shape)], path: &str, out: &mut Vec<(String, Option<String>)>) {
    let Yaml::Hash(h) = y else { return };
    for (k, v) in h {
        let Yaml::String(k) = k else { continue };
        match fields.iter().find(|(name, _)| name == k) {
            Some((name, shape)) => {
                let child = format!("{path}.{name}");
                match shape {
                    Leaf | AnyMap => {}
                    Map(inner) => walk(v, &inner.iter().collect::<Vec<_>>(), &child, out),
                    List(inner) => {
                        if let Yaml::Array(items) = v {
                            let inner: Vec<_> = inner.iter().collect();
                            for (i, item) in items.iter().enumerate() {
                                walk(item, &inner, &format!("{child}[{i}]"), out);
                            }
                        }
                    }
                }
            }
            None => {
                let near = closest(k, fields.iter().map(|(n, _)| *n));
                out.push((format!("{path}.{k}"), near.map(|n| format!("{path}.{n}"))));
            }
        }
    }
}

/// Every spec field tagwarden knows for `kind` at `api_version`, as dotted
/// paths (`spec.git.push.branch`; a list's fields follow the list's name):
/// what `install`'s CRDs must hold.
#[cfg(test)]
pub(crate) fn known_spec_paths(kind: &str, api_version: &str) -> Vec<String> {
    fn add(fields: &[(&str, Shape)], path: &str, out: &mut Vec<String>) {
        for (name, shape) in fields {
            let child = format!("{path}.{name}");
            out.push(child.clone());
            if let Map(inner) | List(inner) = shape {
                add(inner, &child, out);
            }
        }
    }
    use crate::Kind as K;
    let fields: &[Fields] = match crate::Kind::parse(kind) {
        Some(K::ImageRepository) => &[IMAGE_REPOSITORY],
        Some(K::ImagePolicy) => &[IMAGE_POLICY],
        Some(K::ImageUpdateAutomation) => &[AUTOMATION],
        Some(K::GitRepository) if api_version != "v1" => &[GIT_REPOSITORY, GIT_REPOSITORY_BETA],
        Some(K::GitRepository) => &[GIT_REPOSITORY],
        Some(K::Receiver) => &[RECEIVER],
        _ => &[],
    };
    let mut out = Vec::new();
    for f in fields {
        add(f, "spec", &mut out);
    }
    out
}

/// The known name nearest to `word`, when it is near enough to be a typo.
fn closest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    known
        .map(|k| (distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_far_ones_not() {
        let known = ["suspend", "interval", "image"];
        assert_eq!(closest("suspnd", known.into_iter()), Some("suspend"));
        assert_eq!(closest("Interval", known.into_iter()), Some("interval"));
        assert_eq!(closest("colour", known.into_iter()), None);
    }
}
