//! What `tagwarden install --export` prints: the three
//! `image.toolkit.fluxcd.io` CRDs (optional), RBAC, the controller
//! Deployment and its metrics Service, as one multi-document YAML stream
//! written by the same go-yaml-style emitter as `create … --export`.
//!
//! The CRD schemas are written from Flux's API reference (v1): the spec
//! fields Flux defines, with their types, enums and defaults, and status
//! schemas holding exactly what tagwarden's status structs serialise (plus
//! `ImagePolicy.status.latestImage`, the `name:tag` string of v1beta2), so
//! the API server prunes nothing tagwarden writes.

use crate::export::{Value, document};
use crate::model::IMAGE_GROUP;

/// The registry path of tagwarden's image; the tag is the crate's version.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/tagwarden/tagwarden";

/// Name of the ServiceAccount, Deployment and Service.
pub const NAME: &str = "tagwarden";

/// The namespace Flux installs into; it exists wherever Flux runs, so no
/// Namespace object is printed for it (see [`Install::documents`]).
pub const FLUX_NAMESPACE: &str = "flux-system";

/// The env var that carries the pod's namespace (the downward API), where
/// the controller keeps its leader-election Lease.
pub const NAMESPACE_ENV: &str = "RUNTIME_NAMESPACE";

/// `ghcr.io/tagwarden/tagwarden:v<crate version>`.
pub fn default_image() -> String {
    format!("{IMAGE_REPOSITORY}:v{}", env!("CARGO_PKG_VERSION"))
}

/// An option `install` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error(
        "--namespace '{0}' is not a valid namespace: want at most 63 lower case letters, digits or '-', starting and ending with a letter or digit"
    )]
    Namespace(String),
    #[error("--image {0:?} is not an image reference: want e.g. ghcr.io/tagwarden/tagwarden:v1")]
    Image(String),
}

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub namespace: String,
    pub image: String,
    /// Also print the three CRDs (leave them out where Flux's are installed).
    pub crds: bool,
}

impl Install {
    /// Checks the namespace and image before anything is printed.
    pub fn new(namespace: &str, image: &str, crds: bool) -> Result<Install, InstallError> {
        if !crate::names::is_label(namespace) {
            return Err(InstallError::Namespace(namespace.to_string()));
        }
        // The kubelet is the judge of a reference; only what can never be
        // one is refused here.
        if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InstallError::Image(image.to_string()));
        }
        Ok(Install {
            namespace: namespace.to_string(),
            image: image.to_string(),
            crds,
        })
    }

    /// Every object, in the order `kubectl apply` needs them: CRDs, then the
    /// Namespace, RBAC, the Deployment and its Service.
    ///
    /// The Namespace is printed only for a namespace other than
    /// `flux-system`: that one belongs to Flux, and a second owner (a Flux
    /// Kustomization holding this output) would prune it with tagwarden.
    pub fn documents(&self) -> Vec<Value> {
        let mut docs = Vec::new();
        if self.crds {
            docs.extend(crds());
        }
        if self.namespace != FLUX_NAMESPACE {
            docs.push(map(vec![
                ("apiVersion", s("v1")),
                ("kind", s("Namespace")),
                (
                    "metadata",
                    map(vec![("labels", labels()), ("name", s(&self.namespace))]),
                ),
            ]));
        }
        docs.push(self.object(
            "v1",
            "ServiceAccount",
            NAME,
            true,
            Vec::<(&str, Value)>::new(),
        ));
        docs.extend(self.rbac());
        docs.push(self.deployment());
        docs.push(self.service());
        docs
    }

    /// The documents as one stream, each opened by `---`.
    pub fn to_yaml(&self) -> String {
        self.documents().iter().map(document).collect()
    }

    /// The ClusterRole and its binding are named after the namespace, so two
    /// installs in two namespaces do not take each other's binding.
    pub fn cluster_role_name(&self) -> String {
        format!("{NAME}-{}", self.namespace)
    }

    fn object(
        &self,
        api_version: &str,
        kind: &str,
        name: &str,
        namespaced: bool,
        rest: Vec<(&str, Value)>,
    ) -> Value {
        let mut meta = vec![("labels", labels()), ("name", s(name))];
        if namespaced {
            meta.push(("namespace", s(&self.namespace)));
        }
        let mut entries = vec![
            ("apiVersion", s(api_version)),
            ("kind", s(kind)),
            ("metadata", map(meta)),
        ];
        entries.extend(rest);
        map(entries)
    }

    fn subjects(&self) -> Value {
        Value::Seq(vec![map(vec![
            ("kind", s("ServiceAccount")),
            ("name", s(NAME)),
            ("namespace", s(&self.namespace)),
        ])])
    }

    fn rbac(&self) -> Vec<Value> {
        let kinds = [
            "imagerepositories",
            "imagepolicies",
            "imageupdateautomations",
        ];
        let sub = |suffix: &str| -> Vec<String> {
            kinds.iter().map(|k| format!("{k}{suffix}")).collect()
        };
        let rules = vec![
            rule(
                IMAGE_GROUP,
                &sub(""),
                &["get", "list", "watch", "patch", "update"],
            ),
            rule(IMAGE_GROUP, &sub("/status"), &["get", "patch", "update"]),
            rule(IMAGE_GROUP, &sub("/finalizers"), &["update"]),
            rule(
                "source.toolkit.fluxcd.io",
                &["gitrepositories".to_string()],
                &["get", "list", "watch"],
            ),
            rule(
                "",
                &["secrets".to_string(), "serviceaccounts".to_string()],
                &["get", "list", "watch"],
            ),
            rule("", &["serviceaccounts/token".to_string()], &["create"]),
            // Namespace labels, for `accessFrom.namespaceSelectors`.
            rule("", &["namespaces".to_string()], &["get", "list", "watch"]),
            rule(
                "events.k8s.io",
                &["events".to_string()],
                &["create", "patch"],
            ),
        ];
        let role_name = self.cluster_role_name();
        let election = format!("{NAME}-leader-election");
        let role_ref = |kind: &str, name: &str| {
            map(vec![
                ("apiGroup", s("rbac.authorization.k8s.io")),
                ("kind", s(kind)),
                ("name", s(name)),
            ])
        };
        let rbac = "rbac.authorization.k8s.io/v1";
        vec![
            self.object(
                rbac,
                "ClusterRole",
                &role_name,
                false,
                vec![("rules", Value::Seq(rules))],
            ),
            self.object(
                rbac,
                "ClusterRoleBinding",
                &role_name,
                false,
                vec![
                    ("roleRef", role_ref("ClusterRole", &role_name)),
                    ("subjects", self.subjects()),
                ],
            ),
            self.object(
                rbac,
                "Role",
                &election,
                true,
                vec![(
                    "rules",
                    Value::Seq(vec![rule(
                        "coordination.k8s.io",
                        &["leases".to_string()],
                        &["get", "create", "update"],
                    )]),
                )],
            ),
            self.object(
                rbac,
                "RoleBinding",
                &election,
                true,
                vec![
                    ("roleRef", role_ref("Role", &election)),
                    ("subjects", self.subjects()),
                ],
            ),
        ]
    }

    fn deployment(&self) -> Value {
        let args = [
            "controller",
            "--enable-leader-election",
            "--watch-all-namespaces",
            "--storage-path=/data",
            "--metrics-addr=:8080",
            "--health-addr=:9440",
            "--log-encoding=json",
        ];
        let probe = |path: &str| {
            map(vec![(
                "httpGet",
                map(vec![("path", s(path)), ("port", s("healthz"))]),
            )])
        };
        let port = |name: &str, number: i64| {
            map(vec![
                ("containerPort", Value::Int(number)),
                ("name", s(name)),
                ("protocol", s("TCP")),
            ])
        };
        let resources = |cpu: &str, memory: &str| map(vec![("cpu", s(cpu)), ("memory", s(memory))]);
        let container = map(vec![
            ("args", strings(&args)),
            (
                "env",
                Value::Seq(vec![map(vec![
                    ("name", s(NAMESPACE_ENV)),
                    (
                        "valueFrom",
                        map(vec![(
                            "fieldRef",
                            map(vec![("fieldPath", s("metadata.namespace"))]),
                        )]),
                    ),
                ])]),
            ),
            ("image", s(&self.image)),
            ("imagePullPolicy", s("IfNotPresent")),
            ("livenessProbe", probe("/healthz")),
            ("name", s("manager")),
            (
                "ports",
                Value::Seq(vec![port("http-prom", 8080), port("healthz", 9440)]),
            ),
            ("readinessProbe", probe("/readyz")),
            (
                "resources",
                map(vec![
                    ("limits", resources("1", "256Mi")),
                    ("requests", resources("50m", "64Mi")),
                ]),
            ),
            (
                "securityContext",
                map(vec![
                    ("allowPrivilegeEscalation", Value::Bool(false)),
                    ("capabilities", map(vec![("drop", strings(&["ALL"]))])),
                    ("readOnlyRootFilesystem", Value::Bool(true)),
                    ("runAsNonRoot", Value::Bool(true)),
                    ("runAsUser", Value::Int(65532)),
                    ("seccompProfile", map(vec![("type", s("RuntimeDefault"))])),
                ]),
            ),
            (
                "volumeMounts",
                Value::Seq(vec![
                    map(vec![("mountPath", s("/data")), ("name", s("data"))]),
                    map(vec![("mountPath", s("/tmp")), ("name", s("temp"))]),
                ]),
            ),
        ]);
        let empty_dir = |name: &str| map(vec![("emptyDir", map(vec![])), ("name", s(name))]);
        let pod = map(vec![
            (
                "metadata",
                map(vec![
                    (
                        "annotations",
                        map(vec![
                            ("prometheus.io/port", s("8080")),
                            ("prometheus.io/scrape", s("true")),
                        ]),
                    ),
                    ("labels", selector_labels()),
                ]),
            ),
            (
                "spec",
                map(vec![
                    ("containers", Value::Seq(vec![container])),
                    ("serviceAccountName", s(NAME)),
                    // Time to release the Lease on shutdown.
                    ("terminationGracePeriodSeconds", Value::Int(10)),
                    (
                        "volumes",
                        Value::Seq(vec![empty_dir("data"), empty_dir("temp")]),
                    ),
                ]),
            ),
        ]);
        self.object(
            "apps/v1",
            "Deployment",
            NAME,
            true,
            vec![(
                "spec",
                map(vec![
                    ("replicas", Value::Int(1)),
                    ("selector", map(vec![("matchLabels", selector_labels())])),
                    ("template", pod),
                ]),
            )],
        )
    }

    fn service(&self) -> Value {
        self.object(
            "v1",
            "Service",
            NAME,
            true,
            vec![(
                "spec",
                map(vec![
                    (
                        "ports",
                        Value::Seq(vec![map(vec![
                            ("name", s("http-prom")),
                            ("port", Value::Int(8080)),
                            ("protocol", s("TCP")),
                            ("targetPort", s("http-prom")),
                        ])]),
                    ),
                    ("selector", selector_labels()),
                    ("type", s("ClusterIP")),
                ]),
            )],
        )
    }
}

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

fn strings(items: &[&str]) -> Value {
    Value::Seq(items.iter().map(|i| s(i)).collect())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn labels() -> Value {
    map(vec![
        ("app.kubernetes.io/name", s(NAME)),
        ("app.kubernetes.io/part-of", s(NAME)),
    ])
}

fn selector_labels() -> Value {
    map(vec![("app.kubernetes.io/name", s(NAME))])
}

fn rule(group: &str, resources: &[String], verbs: &[&str]) -> Value {
    map(vec![
        ("apiGroups", strings(&[group])),
        (
            "resources",
            Value::Seq(resources.iter().map(|r| s(r)).collect()),
        ),
        ("verbs", strings(verbs)),
    ])
}

// Structural OpenAPI v3 schema pieces.

fn typed(kind: &str, extra: Vec<(&str, Value)>) -> Value {
    let mut entries = vec![("type", s(kind))];
    entries.extend(extra);
    map(entries)
}

fn string() -> Value {
    typed("string", vec![])
}

fn boolean() -> Value {
    typed("boolean", vec![])
}

fn int64() -> Value {
    typed("integer", vec![("format", s("int64"))])
}

fn date_time() -> Value {
    typed("string", vec![("format", s("date-time"))])
}

/// A Go duration as Flux accepts it; `with_hours` is false for timeouts.
fn duration(with_hours: bool) -> Value {
    let units = if with_hours { "ms|s|m|h" } else { "ms|s|m" };
    typed(
        "string",
        vec![("pattern", s(&format!("^([0-9]+(\\.[0-9]+)?({units}))+$")))],
    )
}

fn one_of(values: &[&str], default: Option<&str>) -> Value {
    let mut extra = vec![("enum", strings(values))];
    if let Some(d) = default {
        extra.push(("default", s(d)));
    }
    typed("string", extra)
}

fn array(items: Value) -> Value {
    typed("array", vec![("items", items)])
}

fn object(properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut extra = vec![("properties", map(properties))];
    if !required.is_empty() {
        extra.push(("required", strings(required)));
    }
    typed("object", extra)
}

fn map_of(values: Value) -> Value {
    typed("object", vec![("additionalProperties", values)])
}

fn with(schema: Value, key: &str, value: Value) -> Value {
    match schema {
        Value::Map(mut entries) => {
            entries.push((key.to_string(), value));
            Value::Map(entries)
        }
        other => other,
    }
}

fn local_ref() -> Value {
    object(vec![("name", string())], &["name"])
}

fn image_ref() -> Value {
    object(
        vec![("digest", string()), ("name", string()), ("tag", string())],
        &["name", "tag"],
    )
}

/// `metav1.Condition`, with the API server's own limits.
fn condition() -> Value {
    object(
        vec![
            ("lastTransitionTime", date_time()),
            (
                "message",
                typed("string", vec![("maxLength", Value::Int(32768))]),
            ),
            (
                "observedGeneration",
                with(int64(), "minimum", Value::Int(0)),
            ),
            (
                "reason",
                typed(
                    "string",
                    vec![
                        ("maxLength", Value::Int(1024)),
                        ("minLength", Value::Int(1)),
                        ("pattern", s("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")),
                    ],
                ),
            ),
            ("status", one_of(&["True", "False", "Unknown"], None)),
            (
                "type",
                typed("string", vec![("maxLength", Value::Int(316))]),
            ),
        ],
        &["lastTransitionTime", "message", "reason", "status", "type"],
    )
}

/// Status fields every kind has.
fn common_status() -> Vec<(&'static str, Value)> {
    vec![
        ("conditions", array(condition())),
        ("lastHandledReconcileAt", string()),
        ("observedGeneration", int64()),
    ]
}

fn status(extra: Vec<(&'static str, Value)>) -> Value {
    let mut props = common_status();
    props.extend(extra);
    // Flux's default: a new object reads as never observed.
    with(
        object(props, &[]),
        "default",
        map(vec![("observedGeneration", Value::Int(-1))]),
    )
}

fn repository_spec() -> Value {
    object(
        vec![
            (
                "accessFrom",
                object(
                    vec![(
                        "namespaceSelectors",
                        array(object(vec![("matchLabels", map_of(string()))], &[])),
                    )],
                    &["namespaceSelectors"],
                ),
            ),
            ("certSecretRef", local_ref()),
            (
                "exclusionList",
                typed(
                    "array",
                    vec![
                        ("default", strings(&["^.*\\.sig$"])),
                        ("items", string()),
                        ("maxItems", Value::Int(25)),
                    ],
                ),
            ),
            ("image", string()),
            ("insecure", boolean()),
            ("interval", duration(true)),
            (
                "provider",
                one_of(&["generic", "aws", "azure", "gcp"], Some("generic")),
            ),
            ("proxySecretRef", local_ref()),
            ("secretRef", local_ref()),
            (
                "serviceAccountName",
                typed("string", vec![("maxLength", Value::Int(253))]),
            ),
            ("suspend", boolean()),
            ("timeout", duration(false)),
        ],
        &["image", "interval"],
    )
}

fn repository_status() -> Value {
    status(vec![
        ("canonicalImageName", string()),
        (
            "lastScanResult",
            object(
                vec![
                    ("latestTags", array(string())),
                    ("revision", string()),
                    ("scanTime", date_time()),
                    ("tagCount", typed("integer", vec![])),
                ],
                &["tagCount"],
            ),
        ),
        ("observedExclusionList", array(string())),
    ])
}

fn policy_spec() -> Value {
    let order = || object(vec![("order", one_of(&["asc", "desc"], Some("asc")))], &[]);
    object(
        vec![
            (
                "digestReflectionPolicy",
                one_of(&["Always", "IfNotPresent", "Never"], Some("Never")),
            ),
            (
                "filterTags",
                object(vec![("extract", string()), ("pattern", string())], &[]),
            ),
            (
                "imageRepositoryRef",
                object(vec![("name", string()), ("namespace", string())], &["name"]),
            ),
            ("interval", duration(true)),
            (
                "policy",
                object(
                    vec![
                        ("alphabetical", order()),
                        ("numerical", order()),
                        ("semver", object(vec![("range", string())], &["range"])),
                    ],
                    &[],
                ),
            ),
            ("suspend", boolean()),
        ],
        &["imageRepositoryRef", "policy"],
    )
}

fn policy_status() -> Value {
    status(vec![
        // v1beta2's `name:tag`, kept for `-o jsonpath='{.status.latestImage}'`.
        ("latestImage", string()),
        ("latestRef", image_ref()),
        ("observedPreviousRef", image_ref()),
    ])
}

fn automation_spec() -> Value {
    let git_ref = object(
        vec![
            ("branch", string()),
            ("commit", string()),
            ("name", string()),
            ("semver", string()),
            ("tag", string()),
        ],
        &[],
    );
    let git = object(
        vec![
            ("checkout", object(vec![("ref", git_ref)], &["ref"])),
            (
                "commit",
                object(
                    vec![
                        (
                            "author",
                            object(vec![("email", string()), ("name", string())], &["email"]),
                        ),
                        ("messageTemplate", string()),
                        ("messageTemplateValues", map_of(string())),
                        (
                            "signingKey",
                            object(
                                vec![
                                    ("secretRef", local_ref()),
                                    ("type", one_of(&["gpg", "ssh"], None)),
                                ],
                                &["secretRef"],
                            ),
                        ),
                    ],
                    &["author"],
                ),
            ),
            (
                "push",
                object(
                    vec![
                        ("branch", string()),
                        ("options", map_of(string())),
                        ("refspec", string()),
                    ],
                    &[],
                ),
            ),
        ],
        &["commit"],
    );
    let selector = object(
        vec![
            (
                "matchExpressions",
                array(object(
                    vec![
                        ("key", string()),
                        ("operator", string()),
                        ("values", array(string())),
                    ],
                    &["key", "operator"],
                )),
            ),
            ("matchLabels", map_of(string())),
        ],
        &[],
    );
    object(
        vec![
            ("git", git),
            ("interval", duration(true)),
            ("policySelector", selector),
            (
                "sourceRef",
                object(
                    vec![
                        ("apiVersion", string()),
                        ("kind", one_of(&["GitRepository"], Some("GitRepository"))),
                        ("name", string()),
                        ("namespace", string()),
                    ],
                    &["kind", "name"],
                ),
            ),
            ("suspend", boolean()),
            (
                "update",
                with(
                    object(
                        vec![
                            ("path", string()),
                            ("strategy", one_of(&["Setters"], Some("Setters"))),
                        ],
                        &[],
                    ),
                    "default",
                    map(vec![("strategy", s("Setters"))]),
                ),
            ),
        ],
        &["interval", "sourceRef"],
    )
}

fn automation_status() -> Value {
    status(vec![
        ("lastAutomationRunTime", date_time()),
        ("lastPushCommit", string()),
        ("lastPushTime", date_time()),
        ("observedPolicies", map_of(image_ref())),
        ("observedSourceRevision", string()),
    ])
}

/// One kind's CRD facts.
struct Crd {
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    /// `(name, jsonPath, priority)` besides Ready, Status and Age.
    columns_before: &'static [(&'static str, &'static str, i64)],
    columns_after: &'static [(&'static str, &'static str, i64)],
    spec: fn() -> Value,
    status: fn() -> Value,
}

const READY_PATH: &str = ".status.conditions[?(@.type==\"Ready\")]";

const CRDS: [Crd; 3] = [
    Crd {
        kind: "ImageRepository",
        plural: "imagerepositories",
        short_names: &["imgrepo", "imagerepo"],
        columns_before: &[
            ("Image", ".spec.image", 0),
            ("Tags", ".status.lastScanResult.tagCount", 0),
        ],
        columns_after: &[("Last scan", ".status.lastScanResult.scanTime", 1)],
        spec: repository_spec,
        status: repository_status,
    },
    Crd {
        kind: "ImagePolicy",
        plural: "imagepolicies",
        short_names: &["imgpol", "imagepol"],
        columns_before: &[
            ("Image", ".status.latestRef.name", 0),
            ("Tag", ".status.latestRef.tag", 0),
        ],
        columns_after: &[],
        spec: policy_spec,
        status: policy_status,
    },
    Crd {
        kind: "ImageUpdateAutomation",
        plural: "imageupdateautomations",
        short_names: &["iua", "imgupd", "imgauto"],
        columns_before: &[],
        columns_after: &[("Last run", ".status.lastAutomationRunTime", 1)],
        spec: automation_spec,
        status: automation_status,
    },
];

fn column(name: &str, path: &str, kind: &str, priority: i64) -> Value {
    let mut entries = vec![("jsonPath", s(path)), ("name", s(name)), ("type", s(kind))];
    if priority != 0 {
        entries.push(("priority", Value::Int(priority)));
    }
    map(entries)
}

impl Crd {
    fn version(&self, name: &str, storage: bool) -> Value {
        let mut columns: Vec<Value> = self
            .columns_before
            .iter()
            .map(|(n, p, prio)| column(n, p, "string", *prio))
            .collect();
        columns.push(column(
            "Ready",
            &format!("{READY_PATH}.status"),
            "string",
            0,
        ));
        columns.push(column(
            "Status",
            &format!("{READY_PATH}.message"),
            "string",
            0,
        ));
        columns.extend(
            self.columns_after
                .iter()
                .map(|(n, p, prio)| column(n, p, "string", *prio)),
        );
        columns.push(column("Age", ".metadata.creationTimestamp", "date", 0));
        let schema = object(
            vec![
                ("apiVersion", string()),
                ("kind", string()),
                ("metadata", typed("object", vec![])),
                ("spec", (self.spec)()),
                ("status", (self.status)()),
            ],
            &[],
        );
        let mut entries = vec![
            ("additionalPrinterColumns", Value::Seq(columns)),
            ("name", s(name)),
            ("schema", map(vec![("openAPIV3Schema", schema)])),
            ("served", Value::Bool(true)),
            ("storage", Value::Bool(storage)),
            ("subresources", map(vec![("status", map(vec![]))])),
        ];
        if !storage {
            entries.push(("deprecated", Value::Bool(true)));
            entries.push((
                "deprecationWarning",
                s(&format!(
                    "{IMAGE_GROUP}/{name} {} is deprecated, use {IMAGE_GROUP}/v1",
                    self.kind
                )),
            ));
        }
        map(entries)
    }

    fn to_value(&self) -> Value {
        let meta = vec![
            ("labels", labels()),
            ("name", s(&format!("{}.{IMAGE_GROUP}", self.plural))),
        ];
        map(vec![
            ("apiVersion", s("apiextensions.k8s.io/v1")),
            ("kind", s("CustomResourceDefinition")),
            ("metadata", map(meta)),
            (
                "spec",
                map(vec![
                    ("group", s(IMAGE_GROUP)),
                    (
                        "names",
                        map(vec![
                            ("categories", strings(&["all", "fluxcd", "fluxcd-images"])),
                            ("kind", s(self.kind)),
                            ("listKind", s(&format!("{}List", self.kind))),
                            ("plural", s(self.plural)),
                            ("shortNames", strings(self.short_names)),
                            ("singular", s(&self.kind.to_ascii_lowercase())),
                        ]),
                    ),
                    ("scope", s("Namespaced")),
                    (
                        "versions",
                        Value::Seq(vec![
                            self.version("v1", true),
                            self.version("v1beta2", false),
                        ]),
                    ),
                ]),
            ),
        ])
    }
}

/// The three CRDs: v1 served and stored, v1beta2 still served with the same
/// schema (objects written in v1beta2 keep working, converted by name only).
pub fn crds() -> Vec<Value> {
    CRDS.iter().map(Crd::to_value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec schema of `kind`'s v1 CRD as dotted paths of its properties
    /// (lists step into their items).
    fn spec_paths(kind: &str) -> Vec<String> {
        let crd = CRDS.iter().find(|c| c.kind == kind).expect("kind");
        let mut out = Vec::new();
        collect(&(crd.spec)(), "spec", &mut out);
        out
    }

    fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
        match v {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn collect(schema: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(Value::Map(props)) = get(schema, "properties") {
            for (k, v) in props {
                let child = format!("{path}.{k}");
                out.push(child.clone());
                collect(v, &child, out);
            }
        }
        if let Some(items) = get(schema, "items") {
            collect(items, path, out);
        }
    }

    #[test]
    fn every_spec_field_tagwarden_knows_is_in_the_crds() {
        for kind in ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"] {
            let paths = spec_paths(kind);
            let known = crate::schema::known_spec_paths(kind, "v1");
            assert!(!known.is_empty(), "{kind}");
            for p in &known {
                assert!(paths.contains(p), "{kind}: {p} missing from the CRD");
            }
            // And the CRD has no field tagwarden would warn about.
            for p in &paths {
                assert!(
                    known.contains(p) || FLUX_ONLY.contains(&p.as_str()),
                    "{kind}: {p} is in the CRD but unknown to tagwarden"
                );
            }
        }
    }

    /// Fields Flux's v1 API has that tagwarden does not read yet.
    const FLUX_ONLY: &[&str] = &["spec.git.commit.signingKey.type"];
}
