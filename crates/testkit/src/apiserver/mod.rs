//! A stateful in-process stand-in of the Kubernetes API server, for tests
//! of the controller: the REST protocol (get, list, watch, create, replace,
//! patch in four flavours, delete with finalizers, the status subresource)
//! over plain HTTP on 127.0.0.1, strict enough to refuse the requests a real
//! server would refuse. No kube-apiserver can be installed here, so tests
//! need ours; it keeps every request for assertions on their exact shape.
//!
//! Where Kubernetes leaves room, this server answers so:
//! - resourceVersions are one global counter (from 101); a BOOKMARK's
//!   object is `{kind, apiVersion, metadata: {resourceVersion}}`, plus the
//!   `k8s.io/initial-events-end` annotation after `sendInitialEvents`;
//! - a watch from a forgotten resourceVersion answers 200 and one ERROR
//!   event (Status 410 Expired, `too old resource version: N (OLDEST)`);
//!   a list at a forgotten one (Exact, or a continue token) answers 410;
//! - a continue token is base64 of `{"rv":N,"after":"ns/name"}`;
//! - DELETE answers 200 with a Success Status (details name, group, kind =
//!   plural, uid) when the object is gone, 202 with the object when
//!   finalizers hold it;
//! - managedFields list every manager with operation, time and a FieldsV1
//!   set; lists are atomic (no merge keys);
//! - built-in kinds carry no metadata.generation; custom kinds (`custom`)
//!   need a resourceVersion on PUT and refuse strategic merge patches;
//! - objects of a kind are ordered by namespace and name.

mod crd;
mod json;
mod store;

pub use store::{IssuedToken, Recorded, Resource};

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use store::{ApiError, Close, Key, State, WatchQueue, Writer, bad_request, status};

struct Shared {
    state: Mutex<State>,
    /// Notified on every change, so watches and waiters wake.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stand-in API server; stops when dropped (open watches are cut).
pub struct ApiServer {
    pub port: u16,
    shared: Arc<Shared>,
}

/// The actor name the test-side helpers write as.
const TEST_MANAGER: &str = "testkit";

impl ApiServer {
    /// Listens on a free 127.0.0.1 port with the built-in resources and the
    /// namespaces default, kube-system, kube-public and flux-system.
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind api server");
        let port = listener.local_addr().expect("api server addr").port();
        let mut state = State::new();
        state.port = port;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
        });
        {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if shared.lock().stopped {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(conn, &shared));
                }
            });
        }
        ApiServer { port, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes `dir/kubeconfig` pointing at this server (no TLS, no
    /// credentials), current context `apiserver` with namespace flux-system.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: apiserver\n  cluster:\n    server: {}\ncontexts:\n- name: apiserver\n  context:\n    cluster: apiserver\n    namespace: flux-system\n    user: apiserver\ncurrent-context: apiserver\nusers:\n- name: apiserver\n  user: {{}}\npreferences: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.shared.lock();
        let out = f(&mut st);
        drop(st);
        self.shared.changed.notify_all();
        out
    }

    /// Serves one more kind of resource.
    pub fn register(&self, resource: Resource) {
        self.with(|st| st.register(resource));
    }

    fn res(st: &State, group: &str, version: &str, plural: &str) -> usize {
        st.def_index(group, version, plural)
            .unwrap_or_else(|| panic!("no resource {plural} in {group}/{version} is served"))
    }

    fn writer(subresource: &str) -> Writer {
        Writer {
            manager: TEST_MANAGER.into(),
            subresource: subresource.into(),
            force: false,
        }
    }

    /// Creates `obj` (its namespace too, when missing) as another actor
    /// would; panics with the server's message when refused.
    pub fn create(&self, obj: Value) -> Value {
        self.with(|st| {
            let av = obj["apiVersion"].as_str().unwrap_or("");
            let kind = obj["kind"].as_str().unwrap_or("");
            let res = st
                .def_by_kind(av, kind)
                .unwrap_or_else(|| panic!("no resource of kind {kind} in {av} is served"));
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            if st.defs[res].namespaced {
                st.ensure_namespace(&ns)
                    .unwrap_or_else(|e| panic!("{}", e.body));
            }
            st.create(res, &ns, obj, &Self::writer(""))
                .unwrap_or_else(|e| panic!("create refused: {}", e.body))
        })
    }

    /// The object, or None. `ns` is ignored for cluster-scoped resources.
    pub fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.lock();
        let res = Self::res(&st, group, version, plural);
        st.get(res, ns, name).ok()
    }

    /// The objects in `ns` (`""`: all namespaces), ordered by namespace and name.
    pub fn list(&self, group: &str, version: &str, plural: &str, ns: &str) -> Vec<Value> {
        let st = self.shared.lock();
        let res = Self::res(&st, group, version, plural);
        let ns = (!ns.is_empty()).then_some(ns);
        st.objects_at(res, ns, st.rv).unwrap_or_default()
    }

    /// Replaces the main resource as another actor would (the status of a
    /// kind with a status subresource stays). Without a resourceVersion in
    /// `obj` the write is unconditional.
    pub fn update(&self, mut obj: Value) -> Value {
        self.with(|st| {
            let (res, key) = Self::key_of(st, &obj);
            if obj.pointer("/metadata/resourceVersion").is_none()
                && let Ok(live) = st.get(res, &key.1, &key.2)
            {
                obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
            }
            st.replace(key, obj, &Self::writer(""))
                .unwrap_or_else(|e| panic!("update refused: {}", e.body))
        })
    }

    fn key_of(st: &State, obj: &Value) -> (usize, Key) {
        let av = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let res = st
            .def_by_kind(av, kind)
            .unwrap_or_else(|| panic!("no resource of kind {kind} in {av} is served"));
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        (res, st.key(res, ns, name))
    }

    /// Merge-patches the main resource; panics when refused.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        merge: Value,
    ) -> Value {
        self.with(|st| {
            let res = Self::res(st, group, version, plural);
            let key = st.key(res, ns, name);
            st.patch(
                key,
                "application/merge-patch+json",
                merge,
                &Self::writer(""),
            )
            .unwrap_or_else(|e| panic!("patch refused: {}", e.body))
        })
    }

    /// Merges `status` into the object's `.status` through the status
    /// subresource, as another controller would.
    pub fn apply_status(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        status: Value,
    ) -> Value {
        self.with(|st| {
            let res = Self::res(st, group, version, plural);
            let key = st.key(res, ns, name);
            let sub = if st.defs[res].status_subresource {
                "status"
            } else {
                ""
            };
            st.patch(
                key,
                "application/merge-patch+json",
                json!({ "status": status }),
                &Self::writer(sub),
            )
            .unwrap_or_else(|e| panic!("status patch refused: {}", e.body))
        })
    }

    /// Server-side apply of `obj` by `manager` (a `kubectl apply
    /// --server-side` of a user, say); Err is the Status of a refusal.
    pub fn apply(&self, manager: &str, obj: Value, force: bool) -> Result<Value, Value> {
        self.with(|st| {
            let (_, key) = Self::key_of(st, &obj);
            let w = Writer {
                manager: manager.into(),
                subresource: String::new(),
                force,
            };
            st.apply(key, obj, &w).map(|(_, v)| v).map_err(|e| e.body)
        })
    }

    /// `kubectl apply --server-side` of a YAML stream by `manager`: each
    /// document applied in turn (a CRD first makes its kind servable for the
    /// documents after it). Panics with the Status of the first refusal.
    pub fn apply_yaml(&self, manager: &str, yaml: &str) -> Vec<Value> {
        let docs = json::yaml_docs(yaml).unwrap_or_else(|e| panic!("{e}"));
        docs.into_iter()
            .map(|d| {
                let mut d = d;
                let namespaced = self.with(|st| {
                    let av = d["apiVersion"].as_str().unwrap_or("");
                    let kind = d["kind"].as_str().unwrap_or("");
                    st.def_by_kind(av, kind).map(|r| st.defs[r].namespaced)
                });
                if namespaced == Some(true) && d.pointer("/metadata/namespace").is_none() {
                    d["metadata"]["namespace"] = "default".into();
                }
                self.apply(manager, d, false)
                    .unwrap_or_else(|e| panic!("apply refused: {e}"))
            })
            .collect()
    }

    /// Deletes as another actor would; with finalizers the object stays,
    /// marked. Returns false when it did not exist.
    pub fn delete(&self, group: &str, version: &str, plural: &str, ns: &str, name: &str) -> bool {
        self.with(|st| {
            let res = Self::res(st, group, version, plural);
            let key = st.key(res, ns, name);
            st.delete(key, &json!({})).is_ok()
        })
    }

    /// Waits up to `timeout` for the object to satisfy `pred` (a missing
    /// object is `Null`); returns it when it did.
    #[allow(clippy::too_many_arguments)]
    pub fn wait_for(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            let res = Self::res(&st, group, version, plural);
            let obj = st.get(res, ns, name).unwrap_or(Value::Null);
            if pred(&obj) {
                return Some(obj);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Answers the requests `rule` picks with its error code (and a
    /// matching Status) instead of serving them; they are still recorded.
    pub fn set_fault(&self, rule: impl Fn(&Recorded) -> Option<u16> + Send + Sync + 'static) {
        self.with(|st| st.fault = Some(Arc::new(rule)));
    }

    pub fn clear_fault(&self) {
        self.with(|st| st.fault = None);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Waits up to `timeout` for a request `pred` accepts, among those
    /// received so far and later; returns the first.
    pub fn wait_request(
        &self,
        timeout: Duration,
        pred: impl Fn(&Recorded) -> bool,
    ) -> Option<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(r) = st.requests.iter().find(|r| pred(r)) {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Cuts every open watch connection mid-stream, as a dropped connection
    /// or a restarting server would.
    pub fn drop_watches(&self) {
        self.close_watches(Close::Abrupt);
    }

    /// Ends every open watch properly (end of the chunked body), as a
    /// server ends a watch at its timeout.
    pub fn end_watches(&self) {
        self.close_watches(Close::Clean);
    }

    fn close_watches(&self, how: Close) {
        self.with(|st| {
            for w in st.watchers.values_mut() {
                w.close.get_or_insert(how.clone());
            }
        });
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().watchers.len()
    }

    /// Forgets the event history: watches and lists from any earlier
    /// resourceVersion get 410 Expired. Open watches go on.
    pub fn compact(&self) {
        self.with(|st| {
            st.history.clear();
            st.compacted = st.rv;
        });
    }

    /// How many events the history keeps (1000 unless set); older
    /// resourceVersions expire.
    pub fn set_history_limit(&self, events: usize) {
        self.with(|st| st.history_cap = events.max(1));
    }

    /// How often watches with `allowWatchBookmarks` get a BOOKMARK (1 s
    /// unless set; real servers send one about every minute).
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.with(|st| st.bookmark_every = every);
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Tokens issued through TokenRequest so far.
    pub fn tokens(&self) -> Vec<IssuedToken> {
        self.shared.lock().tokens.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.with(|st| st.stopped = true);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One parsed HTTP request.
struct Req {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    /// The media type without parameters, lower case.
    fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

fn read_req(r: &mut impl BufRead) -> Option<Req> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    }
    let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
    let query = raw_query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (json::url_decode(k), json::url_decode(v))
        })
        .collect();
    Some(Req {
        method,
        path: json::url_decode(path),
        query,
        headers,
        body,
    })
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

enum Reply {
    Json(u16, Value),
    Watch {
        id: u64,
        res: usize,
        timeout: Duration,
        bookmarks: bool,
    },
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::Json(e.code, e.body)
    }
}

/// One connection: requests in turn (keep-alive) until the client closes
/// or a watch takes the connection over.
fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = conn.set_nodelay(true);
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = conn;
    while let Some(req) = read_req(&mut reader) {
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let reply = {
            let mut st = shared.lock();
            if st.stopped {
                return;
            }
            let rec = Recorded {
                method: req.method.clone(),
                path: req.path.clone(),
                query: req.query.clone(),
                content_type: req.header("content-type").map(String::from),
                headers: req.headers.clone(),
                body: req.body.clone(),
                at: st.started.elapsed(),
            };
            let fault = st.fault.clone().and_then(|f| f(&rec));
            st.requests.push(rec);
            match fault {
                Some(code) => Reply::from(injected(code)),
                None => dispatch(&mut st, &req).unwrap_or_else(Reply::from),
            }
        };
        shared.changed.notify_all();
        match reply {
            Reply::Json(code, body) => {
                let body = body.to_string();
                let head = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\nContent-Length: {}\r\n{}\r\n",
                    reason_phrase(code),
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                );
                // One write: head and body split would wait out Nagle
                // against the client's delayed ACK (40 ms a request).
                let mut msg = head.into_bytes();
                msg.extend_from_slice(body.as_bytes());
                if out.write_all(&msg).is_err() || out.flush().is_err() || close {
                    return;
                }
            }
            Reply::Watch {
                id,
                res,
                timeout,
                bookmarks,
            } => {
                stream_watch(shared, &mut out, id, res, timeout, bookmarks);
                shared.lock().watchers.remove(&id);
                return;
            }
        }
    }
}

fn chunk(out: &mut TcpStream, line: &Value) -> std::io::Result<()> {
    let data = format!("{line}\n");
    out.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
    out.flush()
}

/// Streams watch `id`'s events until its timeout, its close or a write fails.
fn stream_watch(
    shared: &Shared,
    out: &mut TcpStream,
    id: u64,
    res: usize,
    timeout: Duration,
    bookmarks: bool,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let deadline = Instant::now() + timeout;
    let mut st = shared.lock();
    let mut next_bookmark = Instant::now() + st.bookmark_every;
    loop {
        let mut lines = Vec::new();
        let mut ending = None;
        loop {
            if st.stopped {
                ending = Some(Close::Abrupt);
                break;
            }
            let every = st.bookmark_every;
            let rv = st.rv;
            let (kind, api_version) = (st.defs[res].kind.clone(), st.defs[res].api_version());
            let Some(q) = st.watchers.get_mut(&id) else {
                ending = Some(Close::Abrupt);
                break;
            };
            if !q.lines.is_empty() {
                lines.extend(q.lines.drain(..));
                break;
            }
            if let Some(c) = q.close.take() {
                ending = Some(c);
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                ending = Some(Close::Clean);
                break;
            }
            if bookmarks && now >= next_bookmark {
                lines.push(json!({
                    "type": "BOOKMARK",
                    "object": {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}},
                }));
                next_bookmark = now + every;
                break;
            }
            let mut wake = deadline;
            if bookmarks {
                wake = wake.min(next_bookmark);
            }
            st = shared
                .changed
                .wait_timeout(st, wake - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        for l in &lines {
            if chunk(out, l).is_err() {
                return;
            }
        }
        match ending {
            None => {}
            Some(Close::Abrupt) => {
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
            Some(Close::Clean) => {
                let _ = out.write_all(b"0\r\n\r\n");
                let _ = out.flush();
                return;
            }
            Some(Close::Error(status)) => {
                let _ = chunk(out, &json!({"type": "ERROR", "object": status}));
                let _ = out.write_all(b"0\r\n\r\n");
                let _ = out.flush();
                return;
            }
        }
        st = shared.lock();
    }
}

/// The Status a real server sends with `code`, for injected faults.
fn injected(code: u16) -> ApiError {
    let (reason, message) = match code {
        403 => ("Forbidden", "forbidden: injected by the test"),
        404 => (
            "NotFound",
            "the server could not find the requested resource",
        ),
        409 => (
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        410 => ("Expired", "too old resource version"),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted",
        ),
        _ => (
            "InternalError",
            "an error on the server (\"injected by the test\") has prevented the request from succeeding",
        ),
    };
    status(code, reason, message, None)
}

fn generic_not_found() -> ApiError {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn method_not_allowed() -> ApiError {
    status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

fn dispatch(st: &mut State, req: &Req) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let discovery = |v: Value| {
        if req.method == "GET" {
            Ok(Reply::Json(200, v))
        } else {
            Err(method_not_allowed())
        }
    };
    match segs.as_slice() {
        ["version"] => discovery(version_doc()),
        ["api"] => discovery(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{}", st.port)}],
        })),
        ["apis"] => discovery(group_list(st)),
        ["api", "v1"] => discovery(resource_list(st, "", "v1")),
        ["apis", g] => {
            let groups = group_list(st);
            let found = groups["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned());
            match found {
                Some(mut doc) => {
                    doc["kind"] = "APIGroup".into();
                    doc["apiVersion"] = "v1".into();
                    discovery(doc)
                }
                None => Err(generic_not_found()),
            }
        }
        ["apis", g, v] if served(st).any(|d| d.group == *g && d.version == *v) => {
            discovery(resource_list(st, g, v))
        }
        ["api", "v1", rest @ ..] if !rest.is_empty() => resource(st, req, "", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => resource(st, req, g, v, rest),
        _ => Err(generic_not_found()),
    }
}

fn version_doc() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": "v1.31.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T00:00:00Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn served(st: &State) -> impl Iterator<Item = &Resource> {
    st.defs
        .iter()
        .enumerate()
        .filter(|(i, _)| !st.unserved.contains(i))
        .map(|(_, d)| d)
}

fn group_list(st: &State) -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for d in served(st).filter(|d| !d.group.is_empty()) {
        let gv = json!({"groupVersion": d.api_version(), "version": d.version});
        match groups.iter_mut().find(|g| g["name"] == d.group.as_str()) {
            Some(g) => {
                if let Some(vs) = g["versions"].as_array_mut()
                    && !vs.contains(&gv)
                {
                    vs.push(gv);
                }
            }
            None => groups.push(json!({
                "name": d.group,
                "versions": [gv],
                "preferredVersion": gv,
            })),
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(st: &State, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for d in served(st).filter(|d| d.group == group && d.version == version) {
        let singular = d.kind.to_ascii_lowercase();
        resources.push(json!({
            "name": d.plural,
            "singularName": singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }));
        if d.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if d.group.is_empty() && d.plural == "serviceaccounts" {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// The body of a write: JSON, or YAML under the YAML media types; an empty
/// or malformed one is a 400.
fn body_json(req: &Req) -> Result<Value, ApiError> {
    if req.body.is_empty() {
        return Err(bad_request("the request body is empty"));
    }
    let yaml = matches!(
        req.media_type().as_str(),
        "application/yaml" | "application/apply-patch+yaml"
    );
    json::body_value(&req.body, yaml).map_err(|e| bad_request(&e))
}

fn unsupported_media(got: &str, accepted: &str) -> ApiError {
    status(
        415,
        "UnsupportedMediaType",
        &format!(
            "the body of the request was in an unknown format ({got:?}) - accepted media types include: {accepted}"
        ),
        None,
    )
}

fn resource(
    st: &mut State,
    req: &Req,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Reply, ApiError> {
    let (ns, rest) = if rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"))
    {
        (Some(rest[1]), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return Err(generic_not_found());
    }
    let res = st
        .def_index(group, version, rest[0])
        .ok_or_else(generic_not_found)?;
    let def = st.defs[res].clone();
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied();
    if (ns.is_some() && !def.namespaced) || (ns.is_none() && def.namespaced && name.is_some()) {
        return Err(generic_not_found());
    }
    match sub {
        None => {}
        Some("status") if def.status_subresource => {}
        Some("token") if def.group.is_empty() && def.plural == "serviceaccounts" => {}
        Some(_) => return Err(generic_not_found()),
    }
    if req.q("dryRun").is_some() {
        return Err(bad_request("dryRun is not supported by this test server"));
    }
    let sub_name = sub.unwrap_or("");
    let apply = req.method == "PATCH" && req.media_type() == "application/apply-patch+yaml";
    let field_manager = req.q("fieldManager").unwrap_or("");
    if apply && field_manager.is_empty() {
        return Err(status(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            None,
        ));
    }
    if req.q("force").is_some() && !apply {
        return Err(status(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            None,
        ));
    }
    let manager = if field_manager.is_empty() {
        req.header("user-agent")
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_string()
    } else {
        field_manager.to_string()
    };
    let w = Writer {
        manager,
        subresource: sub_name.into(),
        force: req.flag("force"),
    };
    let ns_str = ns.unwrap_or("");
    let json_only = |req: &Req| {
        let mt = req.media_type();
        if mt == "application/json" || mt == "application/yaml" {
            Ok(())
        } else {
            Err(unsupported_media(&mt, "application/json, application/yaml"))
        }
    };
    match (req.method.as_str(), name) {
        ("GET", None) => {
            if req.flag("watch") {
                watch(st, req, res, ns)
            } else {
                list(st, req, res, ns).map(|v| Reply::Json(200, v))
            }
        }
        ("GET", Some(n)) => st.get(res, ns_str, n).map(|v| Reply::Json(200, v)),
        ("POST", None) => {
            if def.namespaced && ns.is_none() {
                return Err(method_not_allowed());
            }
            json_only(req)?;
            let body = body_json(req)?;
            st.create(res, ns_str, body, &w)
                .map(|v| Reply::Json(201, v))
        }
        ("POST", Some(n)) if sub == Some("token") => {
            json_only(req)?;
            let body = body_json(req)?;
            token_request(st, res, ns_str, n, &body).map(|v| Reply::Json(201, v))
        }
        ("PUT", Some(n)) if sub != Some("token") => {
            json_only(req)?;
            let body = body_json(req)?;
            let key = st.key(res, ns_str, n);
            st.replace(key, body, &w).map(|v| Reply::Json(200, v))
        }
        ("PATCH", Some(n)) if sub != Some("token") => {
            let mt = req.media_type();
            let key = st.key(res, ns_str, n);
            match mt.as_str() {
                "application/merge-patch+json" | "application/json-patch+json" => {
                    let body = body_json(req)?;
                    st.patch(key, &mt, body, &w).map(|v| Reply::Json(200, v))
                }
                "application/strategic-merge-patch+json" if !def.custom => {
                    let body = body_json(req)?;
                    st.patch(key, &mt, body, &w).map(|v| Reply::Json(200, v))
                }
                "application/apply-patch+yaml" => {
                    let body = body_json(req)?;
                    st.apply(key, body, &w).map(|(c, v)| Reply::Json(c, v))
                }
                _ => {
                    let accepted = if def.custom {
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    } else {
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                    };
                    Err(unsupported_media(&mt, accepted))
                }
            }
        }
        ("DELETE", Some(n)) if sub.is_none() => {
            let options = if req.body.is_empty() {
                json!({})
            } else {
                body_json(req)?
            };
            let key = st.key(res, ns_str, n);
            st.delete(key, &options).map(|(c, v)| Reply::Json(c, v))
        }
        _ => Err(method_not_allowed()),
    }
}

/// resourceVersion and resourceVersionMatch of a list, checked as
/// Kubernetes checks them: the resourceVersion to serve at.
fn list_rv(st: &State, req: &Req) -> Result<u64, ApiError> {
    let rv = req.q("resourceVersion").unwrap_or("");
    let rv_match = req.q("resourceVersionMatch").unwrap_or("");
    let invalid = |m: &str| {
        status(
            422,
            "Invalid",
            &format!("ListOptions.meta.k8s.io \"\" is invalid: {m}"),
            None,
        )
    };
    if !rv_match.is_empty() && rv.is_empty() {
        return Err(invalid(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    match rv_match {
        "" | "NotOlderThan" | "Exact" => {}
        other => {
            return Err(invalid(&format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    }
    if rv.is_empty() || rv == "0" {
        if rv_match == "Exact" {
            return Err(invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        return Ok(st.rv);
    }
    let n: u64 = rv
        .parse()
        .map_err(|_| bad_request(&format!("invalid resource version {rv:?}")))?;
    if n > st.rv {
        return Err(status(
            504,
            "Timeout",
            &format!("Too large resource version: {n}, current: {}", st.rv),
            Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            ),
        ));
    }
    Ok(if rv_match == "Exact" { n } else { st.rv })
}

fn selectors(req: &Req) -> Result<(json::LabelSelector, json::FieldSelector), ApiError> {
    let labels = json::LabelSelector::parse(req.q("labelSelector").unwrap_or(""))
        .map_err(|e| bad_request(&format!("unable to parse labelSelector: {e}")))?;
    let fields = json::FieldSelector::parse(req.q("fieldSelector").unwrap_or(""))
        .map_err(|e| bad_request(&format!("unable to parse fieldSelector: {e}")))?;
    Ok((labels, fields))
}

fn list(st: &State, req: &Req, res: usize, ns: Option<&str>) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(req)?;
    let def = &st.defs[res];
    // A continue token names the resourceVersion of the first page and the
    // last key served: `{"rv":N,"after":"ns/name"}` in base64.
    let (at, after) = match req.q("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            use base64::Engine;
            let bad = || bad_request("continue key is not valid");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(token)
                .map_err(|_| bad())?;
            let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
            let rv = v["rv"].as_u64().ok_or_else(bad)?;
            let after = v["after"].as_str().ok_or_else(bad)?.to_string();
            (rv, Some(after))
        }
        None => (list_rv(st, req)?, None),
    };
    let Some(objs) = st.objects_at(res, ns, at) else {
        return Err(if after.is_some() {
            store::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            )
        } else {
            store::expired(&format!(
                "too old resource version: {at} ({})",
                st.compacted
            ))
        });
    };
    let limit: usize = req
        .q("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let key_of = |o: &Value| {
        format!(
            "{}/{}",
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        )
    };
    let matching: Vec<Value> = objs
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .filter(|o| after.as_ref().is_none_or(|a| key_of(o) > *a))
        .collect();
    let remaining = matching.len().saturating_sub(limit);
    let items: Vec<Value> = matching.into_iter().take(limit).collect();
    let mut meta = json!({"resourceVersion": at.to_string()});
    if remaining > 0
        && let Some(last) = items.last()
    {
        use base64::Engine;
        let token = json!({"rv": at, "after": key_of(last)}).to_string();
        meta["continue"] = base64::engine::general_purpose::STANDARD
            .encode(token)
            .into();
        meta["remainingItemCount"] = remaining.into();
    }
    Ok(json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": meta,
        "items": items,
    }))
}

fn watch(st: &mut State, req: &Req, res: usize, ns: Option<&str>) -> Result<Reply, ApiError> {
    let (labels, fields) = selectors(req)?;
    let bookmarks = req.flag("allowWatchBookmarks");
    let initial_events = req.flag("sendInitialEvents");
    let invalid = |m: &str| {
        status(
            422,
            "Invalid",
            &format!("ListOptions.meta.k8s.io \"\" is invalid: {m}"),
            None,
        )
    };
    if !initial_events && req.q("resourceVersionMatch").is_some_and(|m| !m.is_empty()) {
        return Err(invalid(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    if initial_events {
        if req.q("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(invalid(
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
            return Err(invalid(
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires allowWatchBookmarks=true",
            ));
        }
    }
    let timeout = match req.q("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| bad_request(&format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => Duration::from_secs(1800),
    };
    let rv = req.q("resourceVersion").unwrap_or("");
    let mut q = WatchQueue {
        res,
        ns: ns.map(String::from),
        labels,
        fields,
        lines: Default::default(),
        close: None,
        after: 0,
    };
    let def = st.defs[res].clone();
    if initial_events || rv.is_empty() || rv == "0" {
        // The current objects as synthetic ADDED events first.
        for o in st.objects_at(res, ns, st.rv).unwrap_or_default() {
            if q.labels.matches(&o) && q.fields.matches(&o) {
                q.lines.push_back(json!({"type": "ADDED", "object": o}));
            }
        }
        if initial_events {
            q.lines.push_back(json!({
                "type": "BOOKMARK",
                "object": {
                    "kind": def.kind,
                    "apiVersion": def.api_version(),
                    "metadata": {
                        "resourceVersion": st.rv.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                },
            }));
        }
    } else {
        let n: u64 = rv
            .parse()
            .map_err(|_| bad_request(&format!("invalid resource version {rv:?}")))?;
        if n < st.compacted {
            // What a real server does: 200, then an ERROR event in the stream.
            q.close = Some(Close::Error(
                store::expired(&format!("too old resource version: {n} ({})", st.compacted)).body,
            ));
        } else {
            q.after = n;
            let replay: Vec<Value> = st
                .history
                .iter()
                .filter(|h| h.rv > n)
                .filter_map(|h| {
                    q.event_type(&h.key, h.kind, &h.obj, h.old.as_ref())
                        .map(|t| json!({"type": t, "object": h.obj}))
                })
                .collect();
            q.lines.extend(replay);
        }
    }
    let id = st.next_watcher;
    st.next_watcher += 1;
    st.watchers.insert(id, q);
    Ok(Reply::Watch {
        id,
        res,
        timeout,
        bookmarks,
    })
}

/// TokenRequest: a fake JWT for the service account (its signature is not
/// a real one; tests only pass it on).
fn token_request(
    st: &mut State,
    sa_res: usize,
    ns: &str,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let sa = st.get(sa_res, ns, name)?;
    if body.get("kind").and_then(Value::as_str) != Some("TokenRequest")
        || body.get("apiVersion").and_then(Value::as_str) != Some("authentication.k8s.io/v1")
    {
        return Err(bad_request(
            "the body must be an authentication.k8s.io/v1 TokenRequest",
        ));
    }
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec!["https://kubernetes.default.svc.cluster.local".into()]);
    let seconds = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(status(
            422,
            "Invalid",
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes",
            None,
        ));
    }
    let now = json::now_secs();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = json!({
        "aud": audiences,
        "exp": now + seconds,
        "iat": now,
        "nbf": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]},
        },
    });
    let sig = {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(claims.to_string());
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h)
    };
    let token = format!(
        "{}.{}.{sig}",
        b64(&json!({"alg": "RS256", "kid": "testkit"})),
        b64(&claims)
    );
    st.tokens.push(IssuedToken {
        namespace: ns.into(),
        service_account: name.into(),
        audiences: audiences.clone(),
        expiration_seconds: seconds,
        token: token.clone(),
    });
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": json::rfc3339(now)},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": json::rfc3339(now + seconds)},
    }))
}
