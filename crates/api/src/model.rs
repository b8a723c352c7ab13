//! One model for every accepted apiVersion, with Flux's defaults applied.

use crate::node::{Field, Node};
use crate::selector::LabelSelector;
use crate::{LoadOptions, Source};
use base64::Engine;
use std::collections::BTreeMap;
use std::time::Duration;

pub const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io";
pub const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";
pub const NOTIFICATION_GROUP: &str = "notification.toolkit.fluxcd.io";
/// ImageRepository's `exclusionList` when none is given: cosign signatures.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";
/// Most `exclusionList` entries, as Flux's CRD (`maxItems: 25`).
pub const MAX_EXCLUSIONS: usize = 25;

/// Flux's annotation asking for a reconcile now (`flux reconcile` sets it
/// to the current time); the value is echoed as `status.lastHandledReconcileAt`.
pub const RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// Name, namespace, labels, annotations, the API server's bookkeeping and
/// where the object was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub api_version: String,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `metadata.generation`: moves when the spec does. Files rarely carry
    /// it; their loader starts at 1 and the daemon counts spec edits.
    pub generation: i64,
    /// `metadata.resourceVersion`, when the object came from an API server.
    pub resource_version: Option<String>,
    pub source: Source,
}

impl Meta {
    /// The value of `reconcile.fluxcd.io/requestedAt`, if set.
    pub fn reconcile_requested_at(&self) -> Option<&str> {
        self.annotations
            .get(RECONCILE_REQUESTED_AT)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The kinds tagwarden reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ImageRepository,
    ImagePolicy,
    ImageUpdateAutomation,
    GitRepository,
    Receiver,
    Secret,
    ServiceAccount,
}

impl Kind {
    /// The kinds tagwarden reconciles, in dependency order.
    pub const RECONCILED: [Kind; 3] = [
        Kind::ImageRepository,
        Kind::ImagePolicy,
        Kind::ImageUpdateAutomation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ImageRepository => "ImageRepository",
            Kind::ImagePolicy => "ImagePolicy",
            Kind::ImageUpdateAutomation => "ImageUpdateAutomation",
            Kind::GitRepository => "GitRepository",
            Kind::Receiver => "Receiver",
            Kind::Secret => "Secret",
            Kind::ServiceAccount => "ServiceAccount",
        }
    }

    /// True for the three image kinds.
    pub fn is_reconciled(self) -> bool {
        Kind::RECONCILED.contains(&self)
    }

    /// Reads a kind name as written in manifests (case-sensitive).
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::ImageRepository,
            Kind::ImagePolicy,
            Kind::ImageUpdateAutomation,
            Kind::GitRepository,
            Kind::Receiver,
            Kind::Secret,
            Kind::ServiceAccount,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Kind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown kind '{s}'")))
    }
}

/// One object: kind and namespaced name. The one identity every driver,
/// the store and the API use.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectId {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> ObjectId {
        ObjectId {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} '{}/{}'", self.kind, self.namespace, self.name)
    }
}

/// A reference to an object by name, in the referrer's namespace unless given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepository {
    pub meta: Meta,
    pub image: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub secret_ref: Option<String>,
    pub cert_secret_ref: Option<String>,
    pub proxy_secret_ref: Option<String>,
    pub service_account_name: Option<String>,
    pub exclusion_list: Vec<String>,
    pub insecure: bool,
    pub provider: String,
    pub suspend: bool,
    /// Which other namespaces' policies may use this repository; `None`
    /// grants none (Flux's `spec.accessFrom`).
    pub access_from: Option<AccessFrom>,
}

/// `spec.accessFrom`: a policy in another namespace may use the repository
/// when its namespace's labels match any selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessFrom {
    pub namespace_selectors: Vec<BTreeMap<String, String>>,
}

impl AccessFrom {
    /// Whether a namespace with `labels` is granted; an empty `matchLabels`
    /// grants every namespace, as an empty Kubernetes selector selects all.
    pub fn grants(&self, labels: &BTreeMap<String, String>) -> bool {
        self.namespace_selectors
            .iter()
            .any(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    pub meta: Meta,
    pub image_repository_ref: ObjectRef,
    /// Raw policy text; `tagwarden_policy::Policy::new` validates it.
    pub policy: PolicyChoice,
    pub filter_tags: Option<FilterTags>,
    pub digest_reflection_policy: String,
    pub interval: Option<Duration>,
    /// `spec.suspend` (Flux v1).
    pub suspend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChoice {
    SemVer { range: String },
    Numerical { order: String },
    Alphabetical { order: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTags {
    pub pattern: String,
    pub extract: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitRef {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub semver: Option<String>,
    pub name: Option<String>,
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUpdateAutomation {
    pub meta: Meta,
    pub source_ref: SourceRef,
    pub interval: Duration,
    pub checkout_ref: Option<GitRef>,
    pub author_name: String,
    pub author_email: String,
    pub signing_key_secret: Option<String>,
    pub message_template: Option<String>,
    pub message_template_values: BTreeMap<String, String>,
    pub push_branch: Option<String>,
    pub push_refspec: Option<String>,
    pub push_options: BTreeMap<String, String>,
    pub update_path: String,
    pub update_strategy: String,
    pub policy_selector: Option<LabelSelector>,
    pub suspend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRepository {
    pub meta: Meta,
    pub url: String,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub reference: Option<GitRef>,
    pub secret_ref: Option<String>,
    pub proxy_secret_ref: Option<String>,
    pub provider: String,
    pub suspend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub meta: Meta,
    pub receiver_type: String,
    pub events: Vec<String>,
    pub resources: Vec<ReceiverResource>,
    pub secret_ref: String,
    pub suspend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverResource {
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub meta: Meta,
    pub secret_type: String,
    /// `data` decoded, with `stringData` laid over it as the API server does.
    pub data: BTreeMap<String, Vec<u8>>,
}

/// A v1 ServiceAccount: the `imagePullSecrets` an ImageRepository's
/// `spec.serviceAccountName` lends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub meta: Meta,
    pub image_pull_secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    ImageRepository(ImageRepository),
    ImagePolicy(ImagePolicy),
    ImageUpdateAutomation(Box<ImageUpdateAutomation>),
    GitRepository(GitRepository),
    Receiver(Receiver),
    Secret(Secret),
    ServiceAccount(ServiceAccount),
}

impl Object {
    pub fn meta(&self) -> &Meta {
        match self {
            Object::ImageRepository(o) => &o.meta,
            Object::ImagePolicy(o) => &o.meta,
            Object::ImageUpdateAutomation(o) => &o.meta,
            Object::GitRepository(o) => &o.meta,
            Object::Receiver(o) => &o.meta,
            Object::Secret(o) => &o.meta,
            Object::ServiceAccount(o) => &o.meta,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Object::ImageRepository(_) => Kind::ImageRepository,
            Object::ImagePolicy(_) => Kind::ImagePolicy,
            Object::ImageUpdateAutomation(_) => Kind::ImageUpdateAutomation,
            Object::GitRepository(_) => Kind::GitRepository,
            Object::Receiver(_) => Kind::Receiver,
            Object::Secret(_) => Kind::Secret,
            Object::ServiceAccount(_) => Kind::ServiceAccount,
        }
    }

    pub fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Object::ImageRepository(o) => &mut o.meta,
            Object::ImagePolicy(o) => &mut o.meta,
            Object::ImageUpdateAutomation(o) => &mut o.meta,
            Object::GitRepository(o) => &mut o.meta,
            Object::Receiver(o) => &mut o.meta,
            Object::Secret(o) => &mut o.meta,
            Object::ServiceAccount(o) => &mut o.meta,
        }
    }

    pub fn id(&self) -> ObjectId {
        let m = self.meta();
        ObjectId::new(self.kind(), m.namespace.clone(), m.name.clone())
    }

    /// `spec.suspend` (a Secret never is).
    pub fn suspended(&self) -> bool {
        match self {
            Object::ImageRepository(o) => o.suspend,
            Object::ImagePolicy(o) => o.suspend,
            Object::Secret(_) | Object::ServiceAccount(_) => false,
            Object::ImageUpdateAutomation(o) => o.suspend,
            Object::GitRepository(o) => o.suspend,
            Object::Receiver(o) => o.suspend,
        }
    }
}

/// Reads one document; `Ok(None)` for kinds tagwarden does not handle.
pub(crate) fn read_object(
    kind: &str,
    api_version: &str,
    n: Node<'_>,
    source: Source,
    opts: &LoadOptions,
) -> Field<Option<Object>> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(kind) = Kind::parse(kind) else {
        return Ok(None);
    };
    let versions: &[&str] = match (group, kind) {
        (IMAGE_GROUP, k) if k.is_reconciled() => &["v1beta1", "v1beta2", "v1"],
        (SOURCE_GROUP, Kind::GitRepository) => &["v1beta1", "v1beta2", "v1"],
        (NOTIFICATION_GROUP, Kind::Receiver) => &["v1beta1", "v1beta2", "v1beta3", "v1"],
        ("", Kind::Secret | Kind::ServiceAccount) => &["v1"],
        _ => return Ok(None),
    };
    if !versions.contains(&version) {
        return Err(n.err(
            "apiVersion",
            format!(
                "unsupported version '{api_version}': expected one of {}",
                versions.join(", ")
            ),
        ));
    }
    let meta = read_meta(n, api_version, source, opts)?;
    let spec = || n.required_map("spec");
    Ok(Some(match kind {
        Kind::ImageRepository => Object::ImageRepository(image_repository(meta, spec()?.node())?),
        Kind::ImagePolicy => Object::ImagePolicy(image_policy(meta, spec()?.node())?),
        Kind::ImageUpdateAutomation => {
            Object::ImageUpdateAutomation(Box::new(automation(meta, spec()?.node())?))
        }
        Kind::GitRepository => Object::GitRepository(git_repository(meta, spec()?.node())?),
        Kind::Receiver => Object::Receiver(receiver(meta, spec()?.node())?),
        Kind::Secret => Object::Secret(secret(meta, n)?),
        Kind::ServiceAccount => Object::ServiceAccount(ServiceAccount {
            image_pull_secrets: n
                .map_list("imagePullSecrets")?
                .iter()
                .map(|r| r.node().name("name"))
                .collect::<Field<_>>()?,
            meta,
        }),
    }))
}

fn read_meta(n: Node<'_>, api_version: &str, source: Source, opts: &LoadOptions) -> Field<Meta> {
    let m = n.required_map("metadata")?;
    let m = m.node();
    Ok(Meta {
        api_version: api_version.to_string(),
        name: m.name("name")?,
        namespace: m
            .namespace("namespace")?
            .unwrap_or_else(|| opts.default_namespace.clone()),
        labels: m.string_map("labels")?,
        annotations: m.string_map("annotations")?,
        generation: match m.raw("generation") {
            None => 1,
            Some(yaml_rust2::Yaml::Integer(g)) if *g >= 1 => *g,
            Some(_) => return Err(m.err("generation", "expected a positive integer")),
        },
        resource_version: m.str("resourceVersion")?,
        source,
    })
}

fn local_ref(n: Node<'_>, key: &str) -> Field<Option<String>> {
    match n.map(key)? {
        None => Ok(None),
        Some(r) => r.node().name("name").map(Some),
    }
}

fn git_ref(n: Node<'_>, key: &str) -> Field<Option<GitRef>> {
    let Some(r) = n.map(key)? else {
        return Ok(None);
    };
    let r = r.node();
    Ok(Some(GitRef {
        branch: r.str("branch")?,
        tag: r.str("tag")?,
        semver: r.str("semver")?,
        name: r.str("name")?,
        commit: r.str("commit")?,
    }))
}

fn image_repository(meta: Meta, s: Node<'_>) -> Field<ImageRepository> {
    let image = s.required_str("image")?;
    Ok(ImageRepository {
        meta,
        image,
        interval: s
            .positive_duration("interval")?
            .ok_or_else(|| s.err("interval", "required field is missing"))?,
        timeout: s.positive_duration("timeout")?,
        secret_ref: local_ref(s, "secretRef")?,
        cert_secret_ref: local_ref(s, "certSecretRef")?,
        proxy_secret_ref: local_ref(s, "proxySecretRef")?,
        service_account_name: s.str("serviceAccountName")?,
        exclusion_list: exclusion_list(s)?,
        insecure: s.bool("insecure")?,
        provider: s.one_of("provider", &["generic", "aws", "azure", "gcp"], "generic")?,
        suspend: s.bool("suspend")?,
        access_from: access_from(s)?,
    })
}

fn exclusion_list(s: Node<'_>) -> Field<Vec<String>> {
    // Counted before the strings are copied: a list of hundreds of
    // thousands of patterns is refused, not compiled.
    if let Some(yaml_rust2::Yaml::Array(items)) = s.raw("exclusionList")
        && items.len() > MAX_EXCLUSIONS
    {
        return Err(s.err(
            "exclusionList",
            format!(
                "too many entries: {}, at most {MAX_EXCLUSIONS} (as Flux's CRD)",
                items.len()
            ),
        ));
    }
    Ok(s.string_list("exclusionList")?
        .unwrap_or_else(|| vec![DEFAULT_EXCLUSION.to_string()]))
}

fn access_from(s: Node<'_>) -> Field<Option<AccessFrom>> {
    let Some(a) = s.map("accessFrom")? else {
        return Ok(None);
    };
    let mut namespace_selectors = Vec::new();
    for sel in a.node().map_list("namespaceSelectors")? {
        namespace_selectors.push(sel.node().string_map("matchLabels")?);
    }
    Ok(Some(AccessFrom {
        namespace_selectors,
    }))
}

fn image_policy(meta: Meta, s: Node<'_>) -> Field<ImagePolicy> {
    let repo = s.required_map("imageRepositoryRef")?;
    let repo = repo.node();
    let p = s.required_map("policy")?;
    let p = p.node();
    let mut choices = Vec::new();
    if let Some(sv) = p.map("semver")? {
        choices.push(PolicyChoice::SemVer {
            range: sv.node().required_str("range")?,
        });
    }
    if let Some(num) = p.map("numerical")? {
        choices.push(PolicyChoice::Numerical {
            order: num.node().one_of("order", &["asc", "desc"], "asc")?,
        });
    }
    if let Some(a) = p.map("alphabetical")? {
        choices.push(PolicyChoice::Alphabetical {
            order: a.node().one_of("order", &["asc", "desc"], "asc")?,
        });
    }
    let policy = match choices.len() {
        1 => choices.remove(0),
        0 => {
            return Err(s.err(
                "policy",
                "expected one of semver, numerical or alphabetical",
            ));
        }
        _ => {
            return Err(s.err(
                "policy",
                "expected exactly one of semver, numerical or alphabetical, found several",
            ));
        }
    };
    let filter_tags = match s.map("filterTags")? {
        None => None,
        Some(f) => {
            let f = f.node();
            Some(FilterTags {
                pattern: f.str("pattern")?.unwrap_or_default(),
                extract: f.str("extract")?.unwrap_or_default(),
            })
        }
    };
    let digest_reflection_policy = s.one_of(
        "digestReflectionPolicy",
        &["Never", "IfNotPresent", "Always"],
        "Never",
    )?;
    let interval = s.positive_duration("interval")?;
    if digest_reflection_policy == "Always" && interval.is_none() {
        return Err(s.err("interval", "required when digestReflectionPolicy is Always"));
    }
    Ok(ImagePolicy {
        meta,
        image_repository_ref: ObjectRef {
            name: repo.name("name")?,
            namespace: repo.namespace("namespace")?,
        },
        policy,
        filter_tags,
        digest_reflection_policy,
        interval,
        suspend: s.bool("suspend")?,
    })
}

fn automation(meta: Meta, s: Node<'_>) -> Field<ImageUpdateAutomation> {
    let src = s.required_map("sourceRef")?;
    let src = src.node();
    let source_ref = SourceRef {
        kind: src.one_of(
            "kind",
            &[Kind::GitRepository.as_str()],
            Kind::GitRepository.as_str(),
        )?,
        name: src.name("name")?,
        namespace: src.namespace("namespace")?,
    };
    let git = s.required_map("git")?;
    let git = git.node();
    let checkout_ref = match git.map("checkout")? {
        Some(c) => git_ref(c.node(), "ref")?,
        None => None,
    };
    let commit = git.required_map("commit")?;
    let commit = commit.node();
    let author = commit.required_map("author")?;
    let author = author.node();
    let (push_branch, push_refspec, push_options) = match git.map("push")? {
        Some(p) => {
            let p = p.node();
            (
                p.str("branch")?,
                p.str("refspec")?,
                p.string_map("options")?,
            )
        }
        None => (None, None, BTreeMap::new()),
    };
    let (update_path, update_strategy) = match s.map("update")? {
        Some(u) => {
            let u = u.node();
            (
                update_path(u.str("path")?.unwrap_or_default()),
                u.one_of("strategy", &["Setters"], "Setters")?,
            )
        }
        None => (String::new(), "Setters".to_string()),
    };
    Ok(ImageUpdateAutomation {
        meta,
        source_ref,
        interval: s
            .positive_duration("interval")?
            .ok_or_else(|| s.err("interval", "required field is missing"))?,
        checkout_ref,
        author_name: author.str("name")?.unwrap_or_default(),
        author_email: author.required_str("email")?,
        signing_key_secret: match commit.map("signingKey")? {
            Some(k) => local_ref(k.node(), "secretRef")?,
            None => None,
        },
        message_template: commit.str("messageTemplate")?,
        message_template_values: commit.string_map("messageTemplateValues")?,
        push_branch,
        push_refspec,
        push_options,
        update_path,
        update_strategy,
        policy_selector: match s.map("policySelector")? {
            Some(sel) => Some(LabelSelector::read(sel.node())?),
            None => None,
        },
        suspend: s.bool("suspend")?,
    })
}

/// Flux joins `update.path` under the checkout, so `/` is its root and
/// `/clusters` is `clusters`; the setters refuse absolute paths, so the
/// leading slashes go here.
fn update_path(path: String) -> String {
    match path.trim_start_matches('/') {
        rest if rest.len() == path.len() => path,
        "" => ".".to_string(),
        rest => rest.to_string(),
    }
}

fn git_repository(meta: Meta, s: Node<'_>) -> Field<GitRepository> {
    let url = s.required_str("url")?;
    let scheme_ok = ["http://", "https://", "ssh://", "file://"]
        .iter()
        .any(|p| url.starts_with(p));
    if !scheme_ok {
        return Err(s.err(
            "url",
            format!(
                "invalid URL '{}': expected an http://, https://, ssh:// or file:// URL",
                crate::redact::url(&url)
            ),
        ));
    }
    Ok(GitRepository {
        meta,
        url,
        interval: s.positive_duration("interval")?,
        timeout: s.positive_duration("timeout")?,
        reference: git_ref(s, "ref")?,
        secret_ref: local_ref(s, "secretRef")?,
        proxy_secret_ref: local_ref(s, "proxySecretRef")?,
        provider: s.one_of("provider", &["generic", "azure", "github"], "generic")?,
        suspend: s.bool("suspend")?,
    })
}

const RECEIVER_TYPES: &[&str] = &[
    "generic",
    "generic-hmac",
    "github",
    "gitlab",
    "bitbucket",
    "harbor",
    "dockerhub",
    "quay",
    "gcr",
    "nexus",
    "acr",
    "cdevents",
];

fn receiver(meta: Meta, s: Node<'_>) -> Field<Receiver> {
    let receiver_type = s.one_of("type", RECEIVER_TYPES, "")?;
    if receiver_type.is_empty() {
        return Err(s.err("type", "required field is missing"));
    }
    let mut resources = Vec::new();
    for r in s.map_list("resources")? {
        let r = r.node();
        resources.push(ReceiverResource {
            api_version: r.str("apiVersion")?,
            kind: r.required_str("kind")?,
            name: match r.required_str("name")? {
                star if star == "*" => star,
                _ => r.name("name")?,
            },
            namespace: r.namespace("namespace")?,
            match_labels: r.string_map("matchLabels")?,
        });
    }
    if resources.is_empty() {
        return Err(s.err("resources", "required field is missing"));
    }
    Ok(Receiver {
        meta,
        receiver_type,
        events: s.string_list("events")?.unwrap_or_default(),
        resources,
        secret_ref: local_ref(s, "secretRef")?
            .ok_or_else(|| s.err("secretRef", "required field is missing"))?,
        suspend: s.bool("suspend")?,
    })
}

fn secret(meta: Meta, n: Node<'_>) -> Field<Secret> {
    let mut data = BTreeMap::new();
    for (k, v) in n.string_map("data")? {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|e| n.err(&format!("data.{k}"), format!("expected base64: {e}")))?;
        data.insert(k, bytes);
    }
    for (k, v) in n.string_map("stringData")? {
        data.insert(k, v.into_bytes());
    }
    Ok(Secret {
        meta,
        secret_type: n.str("type")?.unwrap_or_else(|| "Opaque".to_string()),
        data,
    })
}

impl ImagePolicy {
    /// The policy as the selection crate takes it (validated there).
    pub fn policy_spec(&self) -> tagwarden_policy::PolicySpec {
        let mut spec = tagwarden_policy::PolicySpec::default();
        match &self.policy {
            PolicyChoice::SemVer { range } => spec.semver_range = Some(range.clone()),
            PolicyChoice::Numerical { order } => spec.numerical_order = Some(order.clone()),
            PolicyChoice::Alphabetical { order } => spec.alphabetical_order = Some(order.clone()),
        }
        if let Some(f) = &self.filter_tags {
            spec.filter_pattern = Some(f.pattern.clone()).filter(|p| !p.is_empty());
            spec.filter_extract = Some(f.extract.clone()).filter(|e| !e.is_empty());
        }
        spec
    }
}
