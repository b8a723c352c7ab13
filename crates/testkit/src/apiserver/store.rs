//! The state of the stand-in API server and the REST semantics on it:
//! objects, resourceVersions, generations, field managers, event history and
//! open watches. Everything runs under one mutex, so every request sees and
//! leaves a consistent store.

use super::json::{self, FieldSelector, LabelSelector, Path};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// One kind of resource the server serves.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Has a `/status` subresource: main writes keep the old status, status
    /// writes keep everything else.
    pub status_subresource: bool,
    /// Served like a CustomResourceDefinition: `metadata.generation` is kept,
    /// a PUT must carry `metadata.resourceVersion`, and strategic merge
    /// patches are refused.
    pub custom: bool,
    /// The CRD's openAPIV3Schema: unknown fields are pruned and types,
    /// `required` and `enum` checked on every write.
    pub schema: Option<Value>,
}

impl Resource {
    pub fn new(group: &str, version: &str, plural: &str, kind: &str) -> Resource {
        Resource {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced: true,
            status_subresource: false,
            custom: false,
            schema: None,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `gitrepositories.source.toolkit.fluxcd.io`, as messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The resources served from the start.
pub fn builtin() -> Vec<Resource> {
    let core = |plural: &str, kind: &str| Resource::new("", "v1", plural, kind);
    let flux = |group: &str, plural: &str, kind: &str| Resource {
        status_subresource: true,
        custom: true,
        ..Resource::new(group, "v1", plural, kind)
    };
    vec![
        core("secrets", "Secret"),
        core("serviceaccounts", "ServiceAccount"),
        Resource {
            namespaced: false,
            status_subresource: true,
            ..core("namespaces", "Namespace")
        },
        core("configmaps", "ConfigMap"),
        Resource::new("coordination.k8s.io", "v1", "leases", "Lease"),
        Resource::new("events.k8s.io", "v1", "events", "Event"),
        Resource {
            namespaced: false,
            status_subresource: true,
            custom: true,
            ..Resource::new(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
            )
        },
        flux(
            "source.toolkit.fluxcd.io",
            "gitrepositories",
            "GitRepository",
        ),
        flux(
            "image.toolkit.fluxcd.io",
            "imagerepositories",
            "ImageRepository",
        ),
        flux("image.toolkit.fluxcd.io", "imagepolicies", "ImagePolicy"),
        flux(
            "image.toolkit.fluxcd.io",
            "imageupdateautomations",
            "ImageUpdateAutomation",
        ),
    ]
}

/// (resource index, namespace or "", name)
pub type Key = (usize, String, String);

/// One field manager's entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    /// `""` or `status`.
    pub subresource: String,
    pub fields: BTreeSet<Path>,
    pub time: String,
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub obj: Value,
    pub managers: Vec<Manager>,
}

/// One change in the event history; `old` is the object before it (none
/// for a creation), so lists at an older resourceVersion can be rebuilt.
#[derive(Debug, Clone)]
pub struct Hist {
    pub rv: u64,
    pub key: Key,
    pub kind: &'static str,
    pub obj: Value,
    pub old: Option<Value>,
}

/// How an open watch is to end.
#[derive(Debug, Clone)]
pub enum Close {
    /// Cut the connection mid-stream.
    Abrupt,
    /// End the chunked body properly.
    Clean,
    /// Send this ERROR event, then end.
    Error(Value),
}

/// One open watch: its filter and the events queued for its connection.
#[derive(Debug)]
pub struct WatchQueue {
    pub res: usize,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub lines: VecDeque<Value>,
    pub close: Option<Close>,
    /// Only events after this resourceVersion.
    pub after: u64,
}

impl WatchQueue {
    fn matches(&self, key: &Key, obj: &Value) -> bool {
        key.0 == self.res
            && self.ns.as_ref().is_none_or(|n| *n == key.1)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event type this watch sees for a change, if any: moving into or
    /// out of a filtered watch reads as ADDED / DELETED.
    pub fn event_type(
        &self,
        key: &Key,
        kind: &'static str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Option<&'static str> {
        let now = self.matches(key, obj);
        let before = old.is_some_and(|o| self.matches(key, o));
        match kind {
            "MODIFIED" => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
            "DELETED" => (before || now).then_some("DELETED"),
            _ => now.then_some(kind),
        }
    }
}

/// A request as recorded for tests' assertions.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query pairs in order (empty pairs of `?&a=b` left out).
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header as sent.
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived, from the server's start.
    pub at: Duration,
}

impl Recorded {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, `Null` when it is empty or not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A token issued through a TokenRequest.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
    pub expiration_seconds: u64,
    pub token: String,
}

/// A test's rule answering chosen requests with an error code instead.
pub type Fault = std::sync::Arc<dyn Fn(&Recorded) -> Option<u16> + Send + Sync>;

pub struct State {
    pub fault: Option<Fault>,
    /// Resources whose CRD went away (indices stay, keys hold them).
    pub unserved: BTreeSet<usize>,
    pub defs: Vec<Resource>,
    pub objects: BTreeMap<Key, Stored>,
    pub rv: u64,
    pub history: VecDeque<Hist>,
    /// Events at or below this resourceVersion are forgotten.
    pub compacted: u64,
    pub history_cap: usize,
    pub watchers: BTreeMap<u64, WatchQueue>,
    pub next_watcher: u64,
    pub requests: Vec<Recorded>,
    pub tokens: Vec<IssuedToken>,
    pub bookmark_every: Duration,
    pub started: std::time::Instant,
    pub stopped: bool,
    pub uids: u64,
    pub port: u16,
}

/// A failed request: a Kubernetes `Status` with its HTTP code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> ApiError {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    ApiError { code, body }
}

pub fn bad_request(message: &str) -> ApiError {
    status(400, "BadRequest", message, None)
}

fn details(def: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        d["group"] = def.group.clone().into();
    }
    d
}

pub fn not_found(def: &Resource, name: &str) -> ApiError {
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", def.qualified()),
        Some(details(def, name)),
    )
}

fn conflict(def: &Resource, name: &str) -> ApiError {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            def.qualified()
        ),
        Some(details(def, name)),
    )
}

fn invalid(def: &Resource, name: &str, field: &str, message: &str) -> ApiError {
    let mut e = invalid_msg(def, name, &format!("{field}: {message}"));
    e.body["details"]["causes"] =
        json!([{"reason": "FieldValueInvalid", "message": message, "field": field}]);
    e
}

/// 422 Invalid naming the kind as Kubernetes does (`Kind.group`).
fn invalid_msg(def: &Resource, name: &str, what: &str) -> ApiError {
    let kind = if def.group.is_empty() {
        def.kind.clone()
    } else {
        format!("{}.{}", def.kind, def.group)
    };
    let mut d = details(def, name);
    d["kind"] = def.kind.clone().into();
    status(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {what}"),
        Some(d),
    )
}

pub fn expired(message: &str) -> ApiError {
    status(410, "Expired", message, None)
}

/// Who writes, and how: the `fieldManager` of the request (or its
/// User-Agent's product), the subresource, and SSA's `force`.
pub struct Writer {
    pub manager: String,
    pub subresource: String,
    pub force: bool,
}

/// The fields managed fields track: everything but the type and the
/// server-owned metadata; the status alone on `/status`, never on the main
/// resource of a kind with a status subresource.
fn scoped(def: &Resource, obj: &Value, sub: &str) -> Value {
    let mut out = Map::new();
    let Value::Object(m) = obj else {
        return Value::Object(out);
    };
    for (k, v) in m {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "metadata" => {
                let mut meta = Map::new();
                for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(x) = v.get(f) {
                        meta.insert(f.into(), x.clone());
                    }
                }
                if sub.is_empty() && !meta.is_empty() {
                    out.insert(k.clone(), Value::Object(meta));
                }
                false
            }
            "status" => sub == "status" || !def.status_subresource,
            _ => sub.is_empty(),
        };
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn valid_name(name: &str, label: bool) -> Result<(), String> {
    let max = if label { 63 } else { 253 };
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && !label));
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.len() <= max && chars_ok && ends_ok {
        Ok(())
    } else if label {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

impl State {
    pub fn new() -> State {
        let mut s = State {
            fault: None,
            unserved: BTreeSet::new(),
            defs: builtin(),
            objects: BTreeMap::new(),
            rv: 100,
            history: VecDeque::new(),
            compacted: 100,
            history_cap: 1000,
            watchers: BTreeMap::new(),
            next_watcher: 0,
            requests: Vec::new(),
            tokens: Vec::new(),
            bookmark_every: Duration::from_secs(1),
            started: std::time::Instant::now(),
            stopped: false,
            uids: 0,
            port: 0,
        };
        for ns in ["default", "kube-system", "kube-public", "flux-system"] {
            let _ = s.ensure_namespace(ns);
        }
        // The seed namespaces are not news to any watcher.
        s.history.clear();
        s.compacted = s.rv;
        s
    }

    pub fn def_index(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        (0..self.defs.len()).find(|&i| {
            let d = &self.defs[i];
            d.group == group
                && d.version == version
                && d.plural == plural
                && !self.unserved.contains(&i)
        })
    }

    pub fn def_by_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        (0..self.defs.len()).find(|&i| {
            let d = &self.defs[i];
            d.api_version() == api_version && d.kind == kind && !self.unserved.contains(&i)
        })
    }

    /// Serves `r`, in place of an earlier definition of the same resource.
    pub fn register(&mut self, r: Resource) {
        let found = self
            .defs
            .iter()
            .position(|d| d.group == r.group && d.version == r.version && d.plural == r.plural);
        match found {
            Some(i) => {
                self.defs[i] = r;
                self.unserved.remove(&i);
            }
            None => self.defs.push(r),
        }
    }

    fn is_crd(&self, res: usize) -> bool {
        let d = &self.defs[res];
        d.group == "apiextensions.k8s.io" && d.plural == "customresourcedefinitions"
    }

    /// Serves what a stored CRD defines; a removed CRD takes its
    /// resources and their objects with it.
    fn sync_crd(&mut self, crd: &Value, removed: bool) {
        let Ok(resources) = super::crd::resources_of(crd) else {
            return;
        };
        let s = |p: &str| {
            crd.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (group, plural) = (s("/spec/group"), s("/spec/names/plural"));
        let mine: Vec<usize> = (0..self.defs.len())
            .filter(|&i| self.defs[i].group == group && self.defs[i].plural == plural)
            .collect();
        for i in mine {
            self.unserved.insert(i);
            if removed {
                let keys: Vec<Key> = self.objects.keys().filter(|k| k.0 == i).cloned().collect();
                for k in keys {
                    if let Some(old) = self.objects.remove(&k) {
                        self.rv += 1;
                        let mut last = old.obj.clone();
                        last["metadata"]["resourceVersion"] = self.rv.to_string().into();
                        self.emit(k, "DELETED", last, Some(old.obj));
                    }
                }
            }
        }
        if !removed {
            for r in resources {
                self.register(r);
            }
        }
    }

    fn namespace_def(&self) -> usize {
        self.def_index("", "v1", "namespaces").unwrap_or(0)
    }

    pub fn ensure_namespace(&mut self, ns: &str) -> Result<(), ApiError> {
        let nd = self.namespace_def();
        let key = (nd, String::new(), ns.to_string());
        if self.objects.contains_key(&key) {
            return Ok(());
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        self.create(nd, "", obj, &system_writer()).map(|_| ())
    }

    /// New content needs a namespace that exists and is not terminating.
    fn namespace_open(&self, res: usize, ns: &str, name: &str) -> Result<(), ApiError> {
        let nd = self.namespace_def();
        match self.objects.get(&(nd, String::new(), ns.to_string())) {
            None => Err(not_found(&self.defs[nd], ns)),
            Some(n) if n.obj.pointer("/metadata/deletionTimestamp").is_some() => {
                let def = &self.defs[res];
                Err(status(
                    403,
                    "Forbidden",
                    &format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        def.qualified()
                    ),
                    Some(details(def, name)),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    fn is_namespace(&self, res: usize) -> bool {
        let d = &self.defs[res];
        d.group.is_empty() && d.plural == "namespaces"
    }

    /// Removes a terminating namespace once its last object is gone.
    fn reap_namespace(&mut self, ns: &str) {
        let nd = self.namespace_def();
        let key = (nd, String::new(), ns.to_string());
        let terminating = self
            .objects
            .get(&key)
            .is_some_and(|n| n.obj.pointer("/metadata/deletionTimestamp").is_some());
        let empty = !self
            .objects
            .keys()
            .any(|k| k.1 == ns && self.defs[k.0].namespaced);
        if terminating
            && empty
            && let Some(old) = self.objects.remove(&key)
        {
            self.rv += 1;
            let mut last = old.obj.clone();
            last["metadata"]["resourceVersion"] = self.rv.to_string().into();
            last["spec"]["finalizers"] = json!([]);
            self.emit(key, "DELETED", last, Some(old.obj));
        }
    }

    /// Deleting a namespace: Terminating at once, its objects deleted (those
    /// with finalizers wait for them), the namespace gone after the last.
    fn delete_namespace(&mut self, key: Key, old: Stored) -> Result<(u16, Value), ApiError> {
        if old.obj.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on namespaces \"{}\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
                    key.2
                ),
                Some(details(&self.defs[key.0], &key.2)),
            ));
        }
        let mut obj = old.obj.clone();
        obj["metadata"]["deletionTimestamp"] = json::rfc3339(json::now_secs()).into();
        obj["status"] = json!({"phase": "Terminating"});
        let managers = old.managers.clone();
        let marked = self.commit(key.clone(), Some(old), obj, managers);
        let contents: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.1 == key.2 && self.defs[k.0].namespaced)
            .cloned()
            .collect();
        for k in contents {
            let _ = self.delete(k, &json!({}));
        }
        self.reap_namespace(&key.2);
        Ok((200, marked))
    }

    fn new_uid(&mut self) -> String {
        use sha2::Digest as _;
        self.uids += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let h = sha2::Sha256::digest(format!("{nanos}-{}-{}", self.uids, self.port));
        let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-4{}-a{}-{}",
            &x[0..8],
            &x[8..12],
            &x[13..16],
            &x[17..20],
            &x[20..32]
        )
    }

    /// Checks a body against its resource: an object whose apiVersion and
    /// kind, when given, are this resource's (Kubernetes needs them on
    /// create, replace and apply).
    fn check_type(&self, res: usize, body: &Value, required: bool) -> Result<(), ApiError> {
        let def = &self.defs[res];
        if !body.is_object() {
            return Err(bad_request("the body must be a JSON object"));
        }
        let av = body.get("apiVersion").and_then(Value::as_str);
        let kind = body.get("kind").and_then(Value::as_str);
        if required && kind.is_none_or(str::is_empty) {
            return Err(bad_request("Object 'Kind' is missing in the request body"));
        }
        if required && av.is_none_or(str::is_empty) {
            return Err(bad_request(
                "Object 'apiVersion' is missing in the request body",
            ));
        }
        if let Some(av) = av
            && av != def.api_version()
        {
            return Err(bad_request(&format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
        if let Some(kind) = kind
            && kind != def.kind
        {
            return Err(bad_request(&format!(
                "the kind in the data ({kind}) does not match the expected kind ({}) of {}",
                def.kind,
                def.qualified()
            )));
        }
        Ok(())
    }

    fn check_namespace(&self, res: usize, body: &Value, ns: &str) -> Result<(), ApiError> {
        let def = &self.defs[res];
        if let Some(b) = body.pointer("/metadata/namespace").and_then(Value::as_str)
            && !b.is_empty()
            && def.namespaced
            && b != ns
        {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    /// POST: creates `body` in `ns`.
    pub fn create(
        &mut self,
        res: usize,
        ns: &str,
        mut body: Value,
        w: &Writer,
    ) -> Result<Value, ApiError> {
        self.check_type(res, &body, true)?;
        self.check_namespace(res, &body, ns)?;
        let def = self.defs[res].clone();
        let mut name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let generate = body
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if generate.is_empty() {
                return Err(invalid(
                    &def,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            let uid = self.new_uid();
            name = format!("{generate}{}", &uid[..5]);
        }
        if let Err(e) = valid_name(&name, def.plural == "namespaces") {
            return Err(invalid(
                &def,
                &name,
                "metadata.name",
                &format!("Invalid value: {name:?}: {e}"),
            ));
        }
        if body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
        {
            return Err(status(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be created",
                None,
            ));
        }
        if def.namespaced {
            self.namespace_open(res, ns, &name)?;
        }
        let ns = if def.namespaced { ns } else { "" };
        let key = (res, ns.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(status(
                409,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", def.qualified()),
                Some(details(&def, &name)),
            ));
        }
        if def.status_subresource
            && let Value::Object(m) = &mut body
        {
            m.remove("status");
        }
        let prepared = self.prepare(&key, None, body, "")?;
        let mut managers = Vec::new();
        let mut fields = BTreeMap::new();
        json::leaves(&scoped(&def, &prepared, ""), &mut Vec::new(), &mut fields);
        if !w.manager.is_empty() {
            managers.push(Manager {
                manager: w.manager.clone(),
                operation: "Update",
                subresource: String::new(),
                fields: fields.into_keys().collect(),
                time: json::rfc3339(json::now_secs()),
            });
        }
        Ok(self.commit(key, None, prepared, managers))
    }

    /// Fills the server-owned metadata of a new version of `key`.
    fn prepare(
        &mut self,
        key: &Key,
        old: Option<&Value>,
        obj: Value,
        sub: &str,
    ) -> Result<Value, ApiError> {
        let mut obj = self.fill_metadata(key, old, obj, sub);
        let def = &self.defs[key.0];
        if let Some(o) = old.filter(|o| o.pointer("/metadata/deletionTimestamp").is_some()) {
            let list = |v: &Value| -> Vec<Value> {
                v.pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let before = list(o);
            if list(&obj).iter().any(|f| !before.contains(f)) {
                return Err(invalid(
                    def,
                    &key.2,
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        defaults(def, old.is_none(), &mut obj)?;
        validate(def, &key.2, &mut obj)?;
        Ok(obj)
    }

    fn fill_metadata(
        &mut self,
        key: &Key,
        old: Option<&Value>,
        mut obj: Value,
        sub: &str,
    ) -> Value {
        let def = self.defs[key.0].clone();
        if !obj.is_object() {
            obj = json!({});
        }
        obj["apiVersion"] = def.api_version().into();
        obj["kind"] = def.kind.clone().into();
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let uid = match old.and_then(|o| o.pointer("/metadata/uid")) {
            Some(u) => u.clone(),
            None => self.new_uid().into(),
        };
        let meta = &mut obj["metadata"];
        let Value::Object(m) = meta else {
            return obj;
        };
        m.insert("name".into(), key.2.clone().into());
        if def.namespaced {
            m.insert("namespace".into(), key.1.clone().into());
        } else {
            m.remove("namespace");
        }
        for k in [
            "managedFields",
            "selfLink",
            "resourceVersion",
            "generateName",
        ] {
            if k != "generateName" || old.is_some() {
                m.remove(k);
            }
        }
        m.insert("uid".into(), uid);
        let server_owned = [
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ];
        for k in server_owned {
            match old.and_then(|o| o.pointer(&format!("/metadata/{k}"))) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        if old.is_none() {
            m.insert(
                "creationTimestamp".into(),
                json::rfc3339(json::now_secs()).into(),
            );
        }
        if def.custom {
            let old_gen = old
                .and_then(|o| o.pointer("/metadata/generation"))
                .and_then(Value::as_i64);
            let generation = match (old, old_gen) {
                (Some(o), Some(g)) => {
                    let strip = |v: &Value| {
                        let mut v = v.clone();
                        if let Value::Object(m) = &mut v {
                            m.remove("metadata");
                            if def.status_subresource {
                                m.remove("status");
                            }
                        }
                        v
                    };
                    if strip(o) == strip(&obj) { g } else { g + 1 }
                }
                _ => 1,
            };
            obj["metadata"]["generation"] = generation.into();
        } else if let Value::Object(m) = &mut obj["metadata"] {
            m.remove("generation");
        }
        if def.status_subresource
            && sub.is_empty()
            && let (Some(o), Value::Object(m)) = (old, &mut obj)
        {
            // Main-resource writes never change the status.
            match o.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        obj
    }

    /// Stores a new version (or, when nothing changed, keeps the old one),
    /// removes an object whose deletion waited for its last finalizer, and
    /// queues the watch event.
    fn commit(
        &mut self,
        key: Key,
        old: Option<Stored>,
        mut obj: Value,
        managers: Vec<Manager>,
    ) -> Value {
        if let Some(o) = &old {
            let bare = |v: &Value| {
                let mut v = v.clone();
                if let Some(Value::Object(m)) = v.get_mut("metadata") {
                    m.remove("resourceVersion");
                    m.remove("managedFields");
                }
                v
            };
            let same_managers = o.managers.len() == managers.len()
                && o.managers.iter().zip(&managers).all(|(a, b)| {
                    a.manager == b.manager
                        && a.operation == b.operation
                        && a.subresource == b.subresource
                        && a.fields == b.fields
                });
            if bare(&o.obj) == bare(&obj) && same_managers {
                // A no-op write: no new resourceVersion, no event.
                return o.obj.clone();
            }
        }
        self.rv += 1;
        let def = &self.defs[key.0];
        obj["metadata"]["resourceVersion"] = self.rv.to_string().into();
        let rendered: Vec<Value> = managers
            .iter()
            .map(|m| {
                let mut e = json!({
                    "manager": m.manager,
                    "operation": m.operation,
                    "apiVersion": def.api_version(),
                    "time": m.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": json::fields_v1(&m.fields),
                });
                if !m.subresource.is_empty() {
                    e["subresource"] = m.subresource.clone().into();
                }
                e
            })
            .collect();
        if !rendered.is_empty() {
            obj["metadata"]["managedFields"] = Value::Array(rendered);
        }
        // A namespace is held by its spec.finalizers until its content is gone.
        let held = self.is_namespace(key.0)
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        let deleting = obj.pointer("/metadata/deletionTimestamp").is_some()
            && !held
            && obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        let old_obj = old.map(|o| o.obj);
        if self.is_crd(key.0) {
            self.sync_crd(&obj, deleting);
        }
        if deleting {
            self.objects.remove(&key);
            let ns = key.1.clone();
            self.emit(key, "DELETED", obj.clone(), old_obj);
            self.reap_namespace(&ns);
        } else {
            let kind = if old_obj.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            self.objects.insert(
                key.clone(),
                Stored {
                    obj: obj.clone(),
                    managers,
                },
            );
            self.emit(key, kind, obj.clone(), old_obj);
        }
        obj
    }

    fn emit(&mut self, key: Key, kind: &'static str, obj: Value, old: Option<Value>) {
        let rv = self.rv;
        for w in self.watchers.values_mut() {
            if w.close.is_some() || rv <= w.after {
                continue;
            }
            if let Some(t) = w.event_type(&key, kind, &obj, old.as_ref()) {
                w.lines.push_back(json!({"type": t, "object": obj}));
                if w.lines.len() > 10_000 {
                    w.close = Some(Close::Error(expired("the watch fell too far behind").body));
                }
            }
        }
        self.history.push_back(Hist {
            rv: self.rv,
            key,
            kind,
            obj,
            old,
        });
        while self.history.len() > self.history_cap {
            if let Some(h) = self.history.pop_front() {
                self.compacted = h.rv;
            }
        }
    }

    pub fn get(&self, res: usize, ns: &str, name: &str) -> Result<Value, ApiError> {
        let ns = if self.defs[res].namespaced { ns } else { "" };
        self.objects
            .get(&(res, ns.to_string(), name.to_string()))
            .map(|s| s.obj.clone())
            .ok_or_else(|| not_found(&self.defs[res], name))
    }

    fn stored(&self, key: &Key) -> Result<Stored, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(&self.defs[key.0], &key.2))
    }

    pub fn key(&self, res: usize, ns: &str, name: &str) -> Key {
        let ns = if self.defs[res].namespaced { ns } else { "" };
        (res, ns.to_string(), name.to_string())
    }

    /// The objects of `res` (in `ns`, or all) as they were at `at`, rebuilt
    /// from the history; None when the history no longer reaches back.
    pub fn objects_at(&self, res: usize, ns: Option<&str>, at: u64) -> Option<Vec<Value>> {
        if at < self.compacted {
            return None;
        }
        let mut objs: BTreeMap<Key, Value> = self
            .objects
            .iter()
            .filter(|(k, _)| k.0 == res)
            .map(|(k, s)| (k.clone(), s.obj.clone()))
            .collect();
        for h in self.history.iter().rev().take_while(|h| h.rv > at) {
            if h.key.0 != res {
                continue;
            }
            match &h.old {
                None => {
                    objs.remove(&h.key);
                }
                Some(o) => {
                    objs.insert(h.key.clone(), o.clone());
                }
            }
        }
        Some(
            objs.into_iter()
                .filter(|(k, _)| ns.is_none_or(|n| n == k.1))
                .map(|(_, v)| v)
                .collect(),
        )
    }

    /// PUT on the main resource or `/status`.
    pub fn replace(&mut self, key: Key, body: Value, w: &Writer) -> Result<Value, ApiError> {
        let res = key.0;
        self.check_type(res, &body, true)?;
        self.check_namespace(res, &body, &key.1)?;
        let def = self.defs[res].clone();
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if body_name != key.2 {
            return Err(bad_request(&format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                key.2
            )));
        }
        let old = self.stored(&key)?;
        let rv = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if rv.is_empty() && def.custom {
            return Err(invalid(
                &def,
                &key.2,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            ));
        }
        if !rv.is_empty()
            && Some(rv)
                != old
                    .obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(conflict(&def, &key.2));
        }
        self.check_uid(&key, &body, &old.obj)?;
        self.update_with(key, old, body, w)
    }

    fn check_uid(&self, key: &Key, body: &Value, live: &Value) -> Result<(), ApiError> {
        let want = body.pointer("/metadata/uid").and_then(Value::as_str);
        let have = live.pointer("/metadata/uid").and_then(Value::as_str);
        match want {
            Some(u) if !u.is_empty() && Some(u) != have => Err(status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {u}, UID in object meta: {}",
                    self.defs[key.0].qualified(),
                    key.2,
                    have.unwrap_or("")
                ),
                Some(details(&self.defs[key.0], &key.2)),
            )),
            _ => Ok(()),
        }
    }

    /// An Update-operation write of the whole new object `body` (already
    /// checked): status isolation, generation, ownership of changed fields.
    fn update_with(
        &mut self,
        key: Key,
        old: Stored,
        body: Value,
        w: &Writer,
    ) -> Result<Value, ApiError> {
        let def = self.defs[key.0].clone();
        let body = if w.subresource == "status" {
            let mut o = old.obj.clone();
            match body.get("status") {
                Some(s) => o["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut o {
                        m.remove("status");
                    }
                }
            }
            o
        } else {
            body
        };
        let prepared = self.prepare(&key, Some(&old.obj), body, &w.subresource)?;
        let mut changed = Vec::new();
        json::diff(
            Some(&scoped(&def, &old.obj, &w.subresource)),
            Some(&scoped(&def, &prepared, &w.subresource)),
            &mut Vec::new(),
            &mut changed,
        );
        let mut managers = old.managers.clone();
        if !changed.is_empty() {
            let mut new_leaves = BTreeMap::new();
            json::leaves(
                &scoped(&def, &prepared, &w.subresource),
                &mut Vec::new(),
                &mut new_leaves,
            );
            let owned: BTreeSet<Path> = new_leaves
                .into_keys()
                .filter(|p| changed.iter().any(|c| json::overlaps(c, p)))
                .collect();
            let me = |m: &Manager| {
                m.manager == w.manager && m.operation == "Update" && m.subresource == w.subresource
            };
            for m in managers.iter_mut().filter(|m| !me(m)) {
                m.fields
                    .retain(|f| !changed.iter().any(|c| json::overlaps(c, f)));
            }
            let now = json::rfc3339(json::now_secs());
            match managers.iter_mut().find(|m| me(m)) {
                Some(m) => {
                    m.fields.extend(owned);
                    m.time = now;
                }
                None if w.manager.is_empty() => {}
                None => managers.push(Manager {
                    manager: w.manager.clone(),
                    operation: "Update",
                    subresource: w.subresource.clone(),
                    fields: owned,
                    time: now,
                }),
            }
            managers.retain(|m| !m.fields.is_empty());
        }
        Ok(self.commit(key, Some(old), prepared, managers))
    }

    /// PATCH with a merge, strategic-merge or JSON patch.
    pub fn patch(
        &mut self,
        key: Key,
        content_type: &str,
        patch: Value,
        w: &Writer,
    ) -> Result<Value, ApiError> {
        let def = self.defs[key.0].clone();
        let old = self.stored(&key)?;
        let mut new = old.obj.clone();
        match content_type {
            "application/json-patch+json" => match json::json_patch(&mut new, &patch) {
                Ok(()) => {}
                Err(json::JsonPatchError::Malformed(m)) => return Err(bad_request(&m)),
                Err(json::JsonPatchError::Failed(m)) => {
                    return Err(status(422, "Invalid", &m, None));
                }
            },
            _ => {
                if !patch.is_object() {
                    return Err(bad_request("a merge patch must be a JSON object"));
                }
                json::merge_patch(&mut new, &patch);
            }
        }
        self.check_type(key.0, &new, false)?;
        for (field, want) in [("name", &key.2), ("namespace", &key.1)] {
            let got = new
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if (field == "name" || def.namespaced) && got != want {
                return Err(bad_request(&format!(
                    "metadata.{field} cannot be changed by a patch ({got:?} instead of {want:?})"
                )));
            }
        }
        let rv = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if let Some(rv) = rv
            && Some(rv)
                != old
                    .obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(conflict(&def, &key.2));
        }
        self.check_uid(&key, &new, &old.obj)?;
        self.update_with(key, old, new, w)
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    pub fn apply(
        &mut self,
        key: Key,
        applied: Value,
        w: &Writer,
    ) -> Result<(u16, Value), ApiError> {
        let def = self.defs[key.0].clone();
        self.check_type(key.0, &applied, true)?;
        self.check_namespace(key.0, &applied, &key.1)?;
        let body_name = applied
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        // The name is checked on the result, as Kubernetes does: an apply
        // without one keeps the live object's, but cannot create.
        let exists = self.objects.contains_key(&key);
        let mismatch = if body_name.is_empty() {
            !exists && w.subresource.is_empty()
        } else {
            body_name != key.2
        };
        if mismatch {
            return Err(bad_request(&format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                key.2
            )));
        }
        let old = match self.objects.get(&key) {
            Some(s) => Some(s.clone()),
            None if w.subresource == "status" => return Err(not_found(&def, &key.2)),
            None => {
                if def.namespaced {
                    self.namespace_open(key.0, &key.1, &key.2)?;
                }
                None
            }
        };
        let live = old.as_ref().map_or_else(|| json!({}), |o| o.obj.clone());
        let applied_scope = scoped(&def, &applied, &w.subresource);
        let mut fields = BTreeMap::new();
        json::leaves(&applied_scope, &mut Vec::new(), &mut fields);
        fields.retain(|p, v| !p.is_empty() && !v.is_null());
        let mut managers = old.as_ref().map_or_else(Vec::new, |o| o.managers.clone());
        let me = |m: &Manager| {
            m.manager == w.manager && m.operation == "Apply" && m.subresource == w.subresource
        };
        let mut conflicts: Vec<(String, Path)> = Vec::new();
        for (path, value) in &fields {
            if json::get_path(&live, path) == Some(value) {
                continue;
            }
            for m in managers.iter().filter(|m| !me(m)) {
                if m.fields.iter().any(|f| json::overlaps(f, path)) {
                    conflicts.push((m.manager.clone(), path.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !w.force {
                return Err(apply_conflict(&def, &key.2, &conflicts));
            }
            for m in managers.iter_mut().filter(|m| !me(m)) {
                m.fields
                    .retain(|f| !conflicts.iter().any(|(_, p)| json::overlaps(f, p)));
            }
        }
        let mut merged = live.clone();
        json::deep_merge(&mut merged, &applied_scope);
        // Fields this manager applied before and no longer applies go,
        // unless someone else owns them too.
        let previous = managers
            .iter()
            .find(|m| me(m))
            .map(|m| m.fields.clone())
            .unwrap_or_default();
        for p in previous
            .iter()
            // Still applied at or below p: not dropped.
            .filter(|p| !fields.keys().any(|f| f.starts_with(p)))
        {
            let shared = managers
                .iter()
                .filter(|m| !me(m))
                .any(|m| m.fields.iter().any(|f| json::overlaps(f, p)));
            if !shared {
                json::remove_path(&mut merged, p);
            }
        }
        let now = json::rfc3339(json::now_secs());
        let new_fields: BTreeSet<Path> = fields.into_keys().collect();
        match managers.iter_mut().find(|m| me(m)) {
            Some(m) => {
                if m.fields != new_fields {
                    m.time = now;
                }
                m.fields = new_fields;
            }
            None => managers.push(Manager {
                manager: w.manager.clone(),
                operation: "Apply",
                subresource: w.subresource.clone(),
                fields: new_fields,
                time: now,
            }),
        }
        managers.retain(|m| !m.fields.is_empty());
        // A created object starts without status when status is a subresource.
        if old.is_none()
            && def.status_subresource
            && let Value::Object(m) = &mut merged
        {
            m.remove("status");
        }
        let prepared = self.prepare(&key, old.as_ref().map(|o| &o.obj), merged, &w.subresource)?;
        let code = if old.is_none() { 201 } else { 200 };
        Ok((code, self.commit(key, old, prepared, managers)))
    }

    /// DELETE: at once, or (with finalizers) marked and kept until they are gone.
    pub fn delete(&mut self, key: Key, options: &Value) -> Result<(u16, Value), ApiError> {
        let def = self.defs[key.0].clone();
        let old = self.stored(&key)?;
        if let Some(pre) = options.get("preconditions") {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
                self.check_uid(&key, &json!({"metadata": {"uid": uid}}), &old.obj)?;
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str)
                && Some(rv)
                    != old
                        .obj
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
            {
                return Err(status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        def.qualified(),
                        key.2,
                        old.obj
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                    Some(details(&def, &key.2)),
                ));
            }
        }
        if self.is_namespace(key.0) {
            return self.delete_namespace(key, old);
        }
        let finalizers = old
            .obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            if old.obj.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok((202, old.obj));
            }
            let mut obj = old.obj.clone();
            obj["metadata"]["deletionTimestamp"] = json::rfc3339(json::now_secs()).into();
            obj["metadata"]["deletionGracePeriodSeconds"] = 0.into();
            if let Some(g) = obj.pointer("/metadata/generation").and_then(Value::as_i64) {
                obj["metadata"]["generation"] = (g + 1).into();
            }
            let managers = old.managers.clone();
            let out = self.commit(key, Some(old), obj, managers);
            return Ok((202, out));
        }
        let uid = old
            .obj
            .pointer("/metadata/uid")
            .cloned()
            .unwrap_or(Value::Null);
        self.rv += 1;
        let mut last = old.obj.clone();
        last["metadata"]["resourceVersion"] = self.rv.to_string().into();
        self.objects.remove(&key);
        if self.is_crd(key.0) {
            self.sync_crd(&last, true);
        }
        self.emit(key.clone(), "DELETED", last, Some(old.obj));
        self.reap_namespace(&key.1);
        let mut d = details(&def, &key.2);
        d["uid"] = uid;
        Ok((
            200,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": d,
            }),
        ))
    }
}

/// What the real server's defaulting and conversion do for the built-in
/// kinds tests meet: a Secret's stringData lands base64-encoded in data, its
/// type defaults to Opaque; a new Namespace is Active.
fn defaults(def: &Resource, created: bool, obj: &mut Value) -> Result<(), ApiError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if def.group == "apiextensions.k8s.io" && created {
        obj["status"] = super::crd::accepted_status(obj, &json::rfc3339(json::now_secs()));
        return Ok(());
    }
    if !def.group.is_empty() {
        return Ok(());
    }
    match def.plural.as_str() {
        "secrets" => {
            let Value::Object(m) = obj else { return Ok(()) };
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                let data = m.entry("data").or_insert_with(|| json!({}));
                for (k, v) in sd {
                    let text = v.as_str().unwrap_or("").to_string();
                    data[k] = b64.encode(text).into();
                }
            }
            if let Some(Value::Object(data)) = m.get("data") {
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|t| b64.decode(t).is_ok());
                    if !ok {
                        return Err(bad_request(&format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: data.{k}: illegal base64 data"
                        )));
                    }
                }
            }
            if !m.contains_key("type") {
                m.insert("type".into(), "Opaque".into());
            }
        }
        "namespaces" if created => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
    Ok(())
}

/// The validation of events.k8s.io/v1 Events (the controller's own writes
/// most likely to be rejected by a real server).
fn validate(def: &Resource, name: &str, obj: &mut Value) -> Result<(), ApiError> {
    if let Some(schema) = &def.schema {
        let errs = super::crd::check(obj, schema);
        return match errs.as_slice() {
            [] => Ok(()),
            [one] => Err(invalid_msg(def, name, one)),
            many => Err(invalid_msg(def, name, &format!("[{}]", many.join(", ")))),
        };
    }
    if def.group == "apiextensions.k8s.io" {
        return match super::crd::resources_of(obj) {
            Ok(_) => Ok(()),
            Err((field, message)) => Err(invalid(def, name, &field, &message)),
        };
    }
    if def.group != "events.k8s.io" {
        return Ok(());
    }
    let field = |f: &str| obj.get(f).and_then(Value::as_str).unwrap_or("");
    let fail = |f: &str, m: &str| Err(invalid(def, name, f, m));
    if obj.get("eventTime").is_none_or(Value::is_null) {
        return fail("eventTime", "Required value");
    }
    let t = field("type");
    if t != "Normal" && t != "Warning" {
        return fail(
            "type",
            &format!("Unsupported value: {t:?}: supported values: \"Normal\", \"Warning\""),
        );
    }
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        let v = field(f);
        if v.is_empty() {
            return fail(f, "Required value");
        }
        if v.len() > 128 {
            return fail(f, "Too long: may not be more than 128 bytes");
        }
    }
    if field("note").len() > 1024 {
        return fail("note", "Too long: may not be more than 1024 bytes");
    }
    if let Some(series) = obj.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            return fail("series.count", "Invalid value: should be at least 2");
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            return fail("series.lastObservedTime", "Required value");
        }
    }
    Ok(())
}

fn apply_conflict(def: &Resource, name: &str, conflicts: &[(String, Path)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{m}\""),
                "field": json::dotted(p),
            })
        })
        .collect();
    let n = conflicts.len();
    let list: Vec<String> = conflicts
        .iter()
        .map(|(m, p)| format!("conflict with \"{m}\": {}", json::dotted(p)))
        .collect();
    let plural = if n == 1 { "conflict" } else { "conflicts" };
    let mut d = details(def, name);
    d["causes"] = Value::Array(causes);
    status(
        409,
        "Conflict",
        &format!("Apply failed with {n} {plural}: {}", list.join(", ")),
        Some(d),
    )
}

/// The writer of the server's own seed objects and the test-side helpers
/// that must not show up as a field manager.
pub fn system_writer() -> Writer {
    Writer {
        manager: String::new(),
        subresource: String::new(),
        force: false,
    }
}
