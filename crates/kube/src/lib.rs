//! The Kubernetes driver: Flux's own image CRDs watched (not polled), each
//! object reconciled by the same engine as `run --once` and the daemon,
//! status written back with server-side apply on the status subresource
//! (field manager `tagwarden`), Events emitted as Flux does, a Lease for
//! leader election and a label selector for sharding.

mod cache;
pub mod leader;

pub use kube::Client;
pub use leader::LeaderElection;

use cache::{Cache, Entry, convert};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tagwarden_api::status::Status;
use tagwarden_api::{Kind, Object, ObjectId};
use tagwarden_daemon::Metrics;
use tagwarden_daemon::queue::{Queue, Slots, Why};
use tagwarden_engine::{
    Backoff, Context, EventType, Outcome, StatusStore, dependencies, dependents,
};
use tagwarden_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Flux's finalizer, on every object the controller reconciles.
pub const FINALIZER: &str = "finalizers.fluxcd.io";
/// Who owns the status fields we apply.
pub const FIELD_MANAGER: &str = "tagwarden";
const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("kubernetes API: {0}")]
    Api(String),
    #[error("listening on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error("storage: {0}")]
    Storage(#[from] tagwarden_store::StoreError),
    #[error("leader election lost")]
    LeadershipLost,
}

impl KubeError {
    pub(crate) fn api(e: kube::Error) -> KubeError {
        KubeError::Api(e.to_string())
    }
}

/// How the controller runs (flags with Flux's names).
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Only this namespace; all when `None`.
    pub watch_namespace: Option<String>,
    /// `--watch-label-selector`: only objects with these labels (sharding).
    pub label_selector: Option<String>,
    /// Reconciles in flight per kind.
    pub concurrent: usize,
    /// The tag database; in memory when `None`.
    pub storage_path: Option<PathBuf>,
    pub leader_election: Option<LeaderElection>,
    pub backoff: Backoff,
    pub health_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    /// The longest one reconcile may run.
    pub max_reconcile: Duration,
    /// `reportingInstance` of Events: the pod name.
    pub instance: String,
    /// `--no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
    /// The environment cloud logins and registry clients read; the
    /// process's when `None` (tests give their own).
    pub cloud_env: Option<tagwarden_cloud::Env>,
    /// `--feature-gates=ObjectLevelWorkloadIdentity=true`: cloud logins of
    /// repositories with `spec.serviceAccountName` use that account.
    pub object_level_identity: bool,
    /// `--receivers-addr`: serve the Receivers' `/hook/…` here (clusters
    /// without notification-controller).
    pub receivers_addr: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kubeconfig: None,
            context: None,
            watch_namespace: None,
            label_selector: None,
            concurrent: 4,
            storage_path: None,
            leader_election: None,
            backoff: Backoff::default(),
            health_addr: None,
            metrics_addr: None,
            max_reconcile: Duration::from_secs(600),
            instance: "tagwarden".into(),
            no_cross_namespace_refs: false,
            object_level_identity: false,
            cloud_env: None,
            receivers_addr: None,
        }
    }
}

/// A client from `--kubeconfig` (and `--context`), else in-cluster config
/// or `KUBECONFIG`, as kubectl finds one.
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, KubeError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(KubeError::api)
}

/// The resources the controller watches.
fn resource(kind: Kind) -> ApiResource {
    let (group, plural) = match kind {
        Kind::ImageRepository => (IMAGE_GROUP, "imagerepositories"),
        Kind::ImagePolicy => (IMAGE_GROUP, "imagepolicies"),
        Kind::ImageUpdateAutomation => (IMAGE_GROUP, "imageupdateautomations"),
        Kind::GitRepository => ("source.toolkit.fluxcd.io", "gitrepositories"),
        Kind::Receiver => ("notification.toolkit.fluxcd.io", "receivers"),
        Kind::Secret => ("", "secrets"),
        Kind::ServiceAccount => ("", "serviceaccounts"),
    };
    let version = "v1";
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.as_str().to_string(),
        plural: plural.to_string(),
    }
}

fn api(client: &kube::Client, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = resource(kind);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Watch events waiting for the driver, at most.
const SEEN_QUEUE: usize = 256;

/// What a watch delivered.
enum Seen {
    Object(Box<serde_json::Value>),
    Deleted(Box<serde_json::Value>),
    Relisted(Kind, Vec<ObjectId>),
    Namespace(String, std::collections::BTreeMap<String, String>),
    /// A watch's listing is all delivered: the driver sets the flag when it
    /// gets here, after the objects sent before it on the same channel, so
    /// no reconcile starts with a Secret or ServiceAccount still in flight.
    Synced(Arc<AtomicBool>),
}

/// A watch's first listing: `listed` once the watch has it (readiness, a
/// standby's included), `delivered` once the driver has read all of it.
#[derive(Clone, Default)]
struct Synced {
    listed: Arc<AtomicBool>,
    delivered: Arc<AtomicBool>,
}

impl Synced {
    /// The listing is complete (or the kind cannot be watched); false when
    /// the driver is gone.
    async fn done(&self, tx: &mpsc::Sender<Seen>) -> bool {
        self.listed.store(true, Ordering::SeqCst);
        tx.send(Seen::Synced(self.delivered.clone())).await.is_ok()
    }
}

/// One watch per kind, feeding `tx`; restarts itself with backoff.
fn spawn_watch(
    client: &kube::Client,
    kind: Kind,
    namespace: Option<&str>,
    labels: Option<&str>,
    tx: mpsc::Sender<Seen>,
    synced: Synced,
) {
    let api = api(client, kind, namespace);
    let mut cfg = watcher::Config::default();
    if let Some(l) = labels.filter(|_| kind.is_reconciled()) {
        cfg = cfg.labels(l);
    }
    tokio::spawn(async move {
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        let mut listing: Vec<ObjectId> = Vec::new();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    // A kind that cannot be watched (CRD missing, no RBAC)
                    // must not hold every other kind back: count it as
                    // synced and keep retrying.
                    tracing::warn!(kind = kind.as_str(), error = %e, "watch failed; retrying");
                    if !synced.done(&tx).await {
                        return;
                    }
                    continue;
                }
            };
            let json = |o: DynamicObject| {
                let mut v = serde_json::to_value(&o).unwrap_or_default();
                v["kind"] = kind.as_str().into();
                Box::new(v)
            };
            let sent = match ev {
                watcher::Event::Apply(o) => tx.send(Seen::Object(json(o))).await,
                watcher::Event::InitApply(o) => {
                    let v = json(o);
                    listing.push(ObjectId::new(
                        kind,
                        v["metadata"]["namespace"].as_str().unwrap_or_default(),
                        v["metadata"]["name"].as_str().unwrap_or_default(),
                    ));
                    tx.send(Seen::Object(v)).await
                }
                watcher::Event::Delete(o) => tx.send(Seen::Deleted(json(o))).await,
                watcher::Event::Init => {
                    listing.clear();
                    Ok(())
                }
                watcher::Event::InitDone => {
                    let relisted = Seen::Relisted(kind, std::mem::take(&mut listing));
                    if tx.send(relisted).await.is_err() || !synced.done(&tx).await {
                        return;
                    }
                    Ok(())
                }
            };
            if sent.is_err() {
                return;
            }
        }
    });
}

/// Namespace labels, for `accessFrom`.
fn spawn_namespace_watch(client: &kube::Client, tx: mpsc::Sender<Seen>, synced: Synced) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            let (ns, gone) = match ev {
                Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => (n, false),
                Ok(watcher::Event::Delete(n)) => (n, true),
                Ok(watcher::Event::InitDone) => {
                    if !synced.done(&tx).await {
                        return;
                    }
                    continue;
                }
                Ok(watcher::Event::Init) => continue,
                Err(e) => {
                    // Without namespace access, accessFrom sees only
                    // `kubernetes.io/metadata.name`; the rest still works.
                    tracing::debug!(error = %e, "namespace watch failed");
                    if !synced.done(&tx).await {
                        return;
                    }
                    continue;
                }
            };
            let name = ns.metadata.name.clone().unwrap_or_default();
            let labels = if gone {
                None
            } else {
                Some(
                    ns.metadata
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                )
            };
            let msg = match labels {
                Some(l) => Seen::Namespace(name, l),
                None => Seen::Namespace(name, Default::default()),
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    });
}

/// The writer of `id`'s requests among `lanes`: always the same one, so one
/// object's writes stay in order.
fn lane_of(id: &ObjectId, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

/// Status writers working at once; one object always goes to the same
/// writer, so its writes stay in order.
const STATUS_WRITERS: usize = 4;

/// Applies status with server-side apply on `/status`; a failed write is
/// retried a few times, then left to the next reconcile.
fn spawn_status_writer(client: kube::Client, mut rx: mpsc::UnboundedReceiver<(ObjectId, Status)>) {
    let mut lanes = Vec::with_capacity(STATUS_WRITERS);
    for _ in 0..STATUS_WRITERS {
        let (tx, lane) = mpsc::unbounded_channel::<(ObjectId, Status)>();
        tokio::spawn(write_statuses(client.clone(), lane));
        lanes.push(tx);
    }
    tokio::spawn(async move {
        while let Some((id, status)) = rx.recv().await {
            if lanes[lane_of(&id, STATUS_WRITERS)]
                .send((id, status))
                .is_err()
            {
                return;
            }
        }
    });
}

async fn write_statuses(client: kube::Client, mut rx: mpsc::UnboundedReceiver<(ObjectId, Status)>) {
    while let Some((id, status)) = rx.recv().await {
        let mut body = serde_json::json!({
            "apiVersion": format!("{IMAGE_GROUP}/v1"),
            "kind": id.kind.as_str(),
            "metadata": {"name": id.name, "namespace": id.namespace},
            "status": status.to_json(),
        });
        // v1beta2's `latestImage`, so the guide's jsonpath still prints it.
        if let Status::ImagePolicy(p) = &status
            && let Some(l) = &p.latest_ref
        {
            body["status"]["latestImage"] = format!("{}:{}", l.name, l.tag).into();
        }
        let api = api(&client, id.kind, Some(&id.namespace));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=4 {
            match api
                .patch_status(&id.name, &params, &Patch::Apply(&body))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(e) => {
                    tracing::warn!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, attempt, error = %e, "status not written");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}

/// Serves `app` on `addr` in the background; binding fails at once.
async fn listen(addr: SocketAddr, app: axum::Router, what: &'static str) -> Result<(), KubeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| KubeError::Listen {
            addr,
            message: e.to_string(),
        })?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(server = what, error = %e, "server stopped");
        }
    });
    Ok(())
}

/// Health, readiness and metrics.
async fn serve(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> Result<(), KubeError> {
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = ready.load(Ordering::SeqCst);
                async move {
                    if ready {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "caches not synced",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let text = metrics.render();
                async move { text }
            }),
        );
    listen(addr, app, "health").await
}

/// The Receivers' webhooks, answered as the daemon answers them; what they
/// name is sent to the reconcile loop.
async fn serve_receivers(
    addr: SocketAddr,
    cache: Arc<Cache>,
    triggers: mpsc::UnboundedSender<ObjectId>,
) -> Result<(), KubeError> {
    let hook = move |axum::extract::Path(digest): axum::extract::Path<String>,
                     method: axum::http::Method,
                     headers: axum::http::HeaderMap,
                     body: axum::body::Bytes| {
        let (cache, triggers) = (cache.clone(), triggers.clone());
        async move {
            let objects = cache.snapshot(&[
                Kind::Receiver,
                Kind::Secret,
                Kind::ImageRepository,
                Kind::ImagePolicy,
                Kind::ImageUpdateAutomation,
            ]);
            let headers = tagwarden_daemon::owned_headers(&headers);
            let request = tagwarden_receivers::Request {
                method: method.as_str(),
                headers: &headers,
                body: &body,
            };
            let d = tagwarden_receivers::dispatch(&objects, &format!("/hook/{digest}"), &request);
            tagwarden_daemon::log_decision(&d);
            for id in d.targets {
                let _ = triggers.send(id);
            }
            (
                axum::http::StatusCode::from_u16(d.status)
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                d.message,
            )
        }
    };
    let app = axum::Router::new()
        .route("/hook/{digest}", axum::routing::any(hook))
        // The receiver checks the size itself, to answer 413 as Flux does.
        .layer(axum::extract::DefaultBodyLimit::max(
            tagwarden_receivers::MAX_BODY + 1,
        ));
    listen(addr, app, "receivers").await
}

/// Runs until `shutdown` resolves (or leadership is lost).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), KubeError> {
    let client = client(config.kubeconfig.as_deref(), config.context.as_deref()).await?;
    let store: Arc<dyn Store> = match &config.storage_path {
        Some(dir) => Arc::new(tagwarden_store::FileStore::open(dir)?),
        None => Arc::new(tagwarden_store::MemoryStore::default()),
    };
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let cache = Arc::new(Cache::new(status_tx));
    spawn_status_writer(client.clone(), status_rx);
    let ctx = Context {
        objects: cache.clone(),
        status: cache.clone(),
        db: store.clone(),
        registry: Arc::new(tagwarden_cloud::pool_with(
            config.cloud_env.clone(),
            Some(Arc::new(TokenRequests(client.clone()))),
        )),
        git: Arc::new(tagwarden_git::Git2),
        forge: Arc::new(tagwarden_forge::Http::new()),
        clock: Arc::new(tagwarden_engine::SystemClock),
        scratch: config.storage_path.clone(),
        no_cross_namespace_refs: config.no_cross_namespace_refs,
        object_level_identity: config.object_level_identity,
        dry_run: false,
    };
    let metrics = Arc::new(Metrics::default());
    // Bounded: the watches wait for the driver rather than pile up events
    // as JSON trees (a few KB each) while it is busy.
    let (seen_tx, mut seen_rx) = mpsc::channel(SEEN_QUEUE);
    let ns = config.watch_namespace.as_deref();
    let labels = config.label_selector.as_deref();
    let mut synced = Vec::new();
    for kind in [
        Kind::Secret,
        Kind::ServiceAccount,
        Kind::GitRepository,
        Kind::ImageRepository,
        Kind::ImagePolicy,
        Kind::ImageUpdateAutomation,
    ] {
        let flag = Synced::default();
        spawn_watch(&client, kind, ns, labels, seen_tx.clone(), flag.clone());
        synced.push(flag);
    }
    let ns_flag = Synced::default();
    spawn_namespace_watch(&client, seen_tx.clone(), ns_flag.clone());
    synced.push(ns_flag);
    let (trigger_tx, mut trigger_rx) = mpsc::unbounded_channel::<ObjectId>();
    if let Some(addr) = config.receivers_addr {
        let flag = Synced::default();
        spawn_watch(
            &client,
            Kind::Receiver,
            ns,
            None,
            seen_tx.clone(),
            flag.clone(),
        );
        synced.push(flag);
        serve_receivers(addr, cache.clone(), trigger_tx.clone()).await?;
    }
    let ready = Arc::new(AtomicBool::new(false));
    // Ready once every cache is synced, leading or not (a standby is ready
    // to take over).
    {
        let (ready, synced) = (ready.clone(), synced.clone());
        tokio::spawn(async move {
            while !synced.iter().all(|f| f.listed.load(Ordering::SeqCst)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ready.store(true, Ordering::SeqCst);
        });
    }
    if let Some(addr) = config.health_addr {
        serve(addr, ready.clone(), metrics.clone()).await?;
    }
    if let Some(addr) = config
        .metrics_addr
        .filter(|m| Some(*m) != config.health_addr)
    {
        serve(addr, ready.clone(), metrics.clone()).await?;
    }
    let mut leading = match &config.leader_election {
        Some(le) => Some(leader::acquire(client.clone(), le.clone()).await?),
        None => None,
    };
    let recorders = Recorders::new(
        client.clone(),
        Reporter {
            controller: "tagwarden".into(),
            instance: Some(config.instance.clone()),
        },
        EVENT_SERIES_OBJECTS,
    );
    let (events, event_rx) = EventLanes::new(EVENT_QUEUE, EVENT_WRITERS);
    events.spawn_writers(event_rx);
    let mut driver = Driver {
        client,
        cache,
        ctx,
        metrics,
        recorders,
        events,
        queue: Queue::new(Slots::new(config.concurrent), config.backoff, 1),
        config,
        running: HashSet::new(),
        synced_all: false,
    };
    let mut tasks: JoinSet<(ObjectId, Result<Outcome, String>, Duration)> = JoinSet::new();
    let _trim = tagwarden_daemon::spawn_trim();
    tokio::pin!(shutdown);
    loop {
        if !driver.synced_all && synced.iter().all(|f| f.delivered.load(Ordering::SeqCst)) {
            driver.synced_all = true;
            tracing::info!("caches synced: reconciling");
        }
        if driver.synced_all {
            driver.start_due(&mut tasks).await;
        }
        let wake = driver
            .queue
            .next_wake(Instant::now())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        let lost = async {
            match leading.as_mut().map(|h| &mut h.leading) {
                Some(rx) => {
                    while *rx.borrow() {
                        if rx.changed().await.is_err() {
                            break;
                        }
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = lost => return Err(KubeError::LeadershipLost),
            Some(seen) = seen_rx.recv() => driver.seen(seen),
            Some(id) = trigger_rx.recv() => driver.queue.trigger(&id, Instant::now()),
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((id, result, took)) = done {
                    driver.finished(&id, result, took).await;
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    tracing::info!(in_flight = tasks.len(), "shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if let Some(le) = &driver.config.leader_election {
        drop(leading.take());
        leader::release(driver.client.clone(), le).await;
    }
    Ok(())
}

/// Objects whose Events are aggregated into series (count, last seen), as
/// client-go's correlator keeps 4,096 keys: kube's Recorder keeps every
/// Event it sent for its TTL and walks them all on each publish, so one
/// Recorder for 10,000 objects held ~35 MB and cost O(n) per Event. One
/// Recorder per object, the least recently used dropped past this bound.
/// Each costs ~5.7 KB once it has sent (its map holds whole Events), so
/// 1,024 of them were 5.9 MB; a repeat that matters (an object failing on
/// every run) comes from a recently used object.
const EVENT_SERIES_OBJECTS: usize = 256;

/// Per-object Event recorders, bounded.
struct Recorders {
    client: kube::Client,
    reporter: Reporter,
    by_id: HashMap<ObjectId, (Recorder, u64)>,
    tick: u64,
    cap: usize,
}

impl Recorders {
    fn new(client: kube::Client, reporter: Reporter, cap: usize) -> Recorders {
        Recorders {
            client,
            reporter,
            by_id: HashMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// The recorder of `id`'s Events; the same one while `id` stays among
    /// the most recently used, so repeats become a series.
    fn of(&mut self, id: &ObjectId) -> Recorder {
        self.tick += 1;
        if let Some((r, used)) = self.by_id.get_mut(id) {
            *used = self.tick;
            return r.clone();
        }
        if self.by_id.len() >= self.cap {
            // O(cap), once per object new to the set.
            if let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.by_id.remove(&oldest);
            }
        }
        let r = Recorder::new(self.client.clone(), self.reporter.clone());
        self.by_id.insert(id.clone(), (r.clone(), self.tick));
        r
    }
}

/// Events waiting to be sent, at most. Past it an Event is dropped (and
/// counted), as client-go's broadcaster drops past its 1,000: a burst of
/// 10,000 reconciles once spawned 10,000 sends, and the client opened a
/// connection for each one in flight.
const EVENT_QUEUE: usize = 1000;
/// Event writers working at once (one connection each).
const EVENT_WRITERS: usize = 2;

/// One outcome's Events, for an Event writer.
struct EventJob {
    recorder: Recorder,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    id: ObjectId,
    events: Vec<tagwarden_engine::Event>,
}

/// The bounded queues in front of the Event writers.
struct EventLanes {
    lanes: Vec<mpsc::Sender<EventJob>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl EventLanes {
    /// Queues of `capacity` in all, over `writers` lanes; the receiving
    /// ends are for [`EventLanes::spawn_writers`].
    fn new(capacity: usize, writers: usize) -> (EventLanes, Vec<mpsc::Receiver<EventJob>>) {
        let writers = writers.max(1);
        let per_lane = (capacity / writers).max(1);
        let (lanes, rxs) = (0..writers).map(|_| mpsc::channel(per_lane)).unzip();
        let lanes = EventLanes {
            lanes,
            dropped: Arc::default(),
        };
        (lanes, rxs)
    }

    fn spawn_writers(&self, rxs: Vec<mpsc::Receiver<EventJob>>) {
        for mut rx in rxs {
            let dropped = self.dropped.clone();
            tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    emit(&job.recorder, &job.reference, &job.id, &job.events).await;
                    let n = dropped.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        tracing::warn!(dropped = n, "Events dropped: the Event queue was full");
                    }
                }
            });
        }
    }

    /// Queues `job`, or drops it when its lane is full; never waits.
    fn send(&self, job: EventJob) {
        let lane = lane_of(&job.id, self.lanes.len());
        if let Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) =
            self.lanes[lane].try_send(job)
        {
            self.dropped
                .fetch_add(job.events.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The request adding our finalizer, retried on conflicts.
type FinalizerPatch = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

struct Driver {
    client: kube::Client,
    cache: Arc<Cache>,
    ctx: Context,
    metrics: Arc<Metrics>,
    recorders: Recorders,
    events: EventLanes,
    queue: Queue,
    config: Config,
    running: HashSet<ObjectId>,
    synced_all: bool,
}

impl Driver {
    fn host(o: &Object) -> Option<String> {
        match o {
            Object::ImageRepository(r) => Some(tagwarden_daemon::registry_host(&r.image)),
            _ => None,
        }
    }

    /// A watch event: keep it, and decide who must run.
    fn seen(&mut self, seen: Seen) {
        let now = Instant::now();
        match seen {
            Seen::Synced(flag) => flag.store(true, Ordering::SeqCst),
            Seen::Namespace(name, labels) => {
                if labels.is_empty() {
                    self.cache.remove_namespace(&name);
                } else {
                    self.cache.set_namespace(&name, labels);
                }
            }
            Seen::Object(json) => {
                let entry = match convert(&json) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "object not read");
                        return;
                    }
                };
                let id = entry.object.id();
                let new = Arc::new(entry);
                let before = self.cache.put(new.clone());
                self.react(&id, before.as_deref(), &new, now);
            }
            Seen::Deleted(json) => {
                let Ok(entry) = convert(&json) else { return };
                let id = entry.object.id();
                self.cache.remove(&id);
                self.queue.retain(|k| *k != id);
                self.forget(&id);
                self.metrics.forget(&id);
                for d in dependents(&id, &*self.cache) {
                    self.queue.trigger(&d, now);
                }
            }
            Seen::Relisted(kind, ids) => {
                for id in self.cache.retain_kind(kind, &ids) {
                    self.queue.retain(|k| *k != id);
                    self.forget(&id);
                    self.metrics.forget(&id);
                }
            }
        }
    }

    /// Drops what we kept of a deleted object (a repository's tags).
    fn forget(&self, id: &ObjectId) {
        if id.kind == Kind::ImageRepository
            && let Err(e) =
                tagwarden_engine::forget_repository(&*self.ctx.db, &id.namespace, &id.name)
        {
            tracing::warn!(namespace = %id.namespace, name = %id.name, error = %e, "stored tags not dropped");
        }
    }

    fn react(&mut self, id: &ObjectId, before: Option<&Entry>, now_entry: &Entry, now: Instant) {
        let Some(before) = before else {
            if id.kind.is_reconciled() {
                let why = if self.synced_all {
                    Why::Trigger
                } else {
                    Why::Start
                };
                self.queue
                    .add(id.clone(), Self::host(&now_entry.object), now, why);
            }
            return;
        };
        let (b, n) = (before.object.meta(), now_entry.object.meta());
        let acted_on = b.generation != n.generation
            || b.reconcile_requested_at() != n.reconcile_requested_at()
            || b.labels != n.labels
            || before.deleting != now_entry.deleting;
        if !id.kind.is_reconciled() {
            // A Secret or GitRepository: what reads it runs again.
            if before.object != now_entry.object {
                for d in dependents(id, &*self.cache) {
                    self.queue.trigger(&d, now);
                }
            }
            return;
        }
        if acted_on {
            self.queue.trigger(id, now);
        }
        // Status moved (written by us, or by another shard's controller).
        let moved = match (&before.status, &now_entry.status) {
            (Some(Status::ImageRepository(a)), Some(Status::ImageRepository(c))) => {
                a.last_scan_result.as_ref().map(|s| &s.revision)
                    != c.last_scan_result.as_ref().map(|s| &s.revision)
            }
            (Some(Status::ImagePolicy(a)), Some(Status::ImagePolicy(c))) => {
                a.latest_ref != c.latest_ref
            }
            (None, Some(_)) => true,
            _ => false,
        };
        if moved || b.labels != n.labels {
            for d in dependents(id, &*self.cache) {
                self.queue.trigger(&d, now);
            }
        }
    }

    /// The finalizer first: on a deleted object the cleanup runs and the
    /// finalizer goes (`None`: not to be reconciled). A live object without
    /// it gets the patch that adds it, to run beside its reconcile, in the
    /// reconcile's task: detached, 10,000 new objects made 10,000 tasks
    /// and connections at once.
    async fn finalize(&self, id: &ObjectId, entry: &Entry) -> Option<Option<FinalizerPatch>> {
        let has = entry.finalizers.iter().any(|f| f == FINALIZER);
        let api = api(&self.client, id.kind, Some(&id.namespace));
        let patch = |finalizers: Vec<String>| {
            serde_json::json!({
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": entry.resource_version,
                }
            })
        };
        if entry.deleting {
            self.forget(id);
            if has {
                let rest: Vec<String> = entry
                    .finalizers
                    .iter()
                    .filter(|f| *f != FINALIZER)
                    .cloned()
                    .collect();
                if let Err(e) = api
                    .patch(
                        &id.name,
                        &PatchParams::default(),
                        &Patch::Merge(patch(rest)),
                    )
                    .await
                {
                    tracing::warn!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, error = %e, "finalizer not removed");
                }
            }
            return None;
        }
        if !has {
            let mut all = entry.finalizers.clone();
            all.push(FINALIZER.to_string());
            let mut body = patch(all);
            let id = id.clone();
            // Beside the reconcile, not before it. The patch is guarded by
            // the resourceVersion, so a status write in between makes it
            // lose (409): read the object again and retry, a few times,
            // rather than wait for the next run (an interval away).
            return Some(Some(Box::pin(async move {
                for attempt in 1..=5 {
                    match api
                        .patch(&id.name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                    {
                        Ok(_) => return,
                        Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => {
                            let Ok(now) = api.get(&id.name).await else {
                                break;
                            };
                            let mut finalizers = now.metadata.finalizers.unwrap_or_default();
                            if finalizers.iter().any(|f| f == FINALIZER)
                                || now.metadata.deletion_timestamp.is_some()
                            {
                                return;
                            }
                            finalizers.push(FINALIZER.to_string());
                            body = serde_json::json!({
                                "metadata": {
                                    "finalizers": finalizers,
                                    "resourceVersion": now.metadata.resource_version,
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, error = %e, "finalizer not added");
                            return;
                        }
                    }
                }
                tracing::warn!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, "finalizer not added: the object kept changing");
            })));
        }
        Some(None)
    }

    async fn start_due(
        &mut self,
        tasks: &mut JoinSet<(ObjectId, Result<Outcome, String>, Duration)>,
    ) {
        let cache = self.cache.clone();
        let starts = self
            .queue
            .start(Instant::now(), |id| dependencies(id, &*cache));
        for s in starts {
            let Some(entry) = self.cache.entry(&s.id) else {
                self.queue.cancel(&s.id);
                continue;
            };
            let Some(add_finalizer) = self.finalize(&s.id, &entry).await else {
                self.queue.cancel(&s.id);
                continue;
            };
            self.running.insert(s.id.clone());
            let ctx = self.ctx.clone();
            let limit = tagwarden_daemon::deadline(&entry.object, self.config.max_reconcile);
            let id = s.id;
            tasks.spawn(async move {
                let reconcile = async {
                    let started = Instant::now();
                    let result =
                        tagwarden_daemon::reconcile_within(&entry.object, &ctx, limit).await;
                    (result, started.elapsed())
                };
                let (result, took) = match add_finalizer {
                    Some(patch) => tokio::join!(reconcile, patch).0,
                    None => reconcile.await,
                };
                (id, result, took)
            });
        }
    }

    async fn finished(&mut self, id: &ObjectId, result: Result<Outcome, String>, took: Duration) {
        self.running.remove(id);
        let outcome = match result {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::error!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, error = %e, "reconcile failed");
                None
            }
        };
        self.metrics.record(id, outcome.as_ref(), took);
        if let Some(o) = &outcome {
            if !o.suspended
                && let Err(e) = self.cache.write(id, &o.status)
            {
                tracing::warn!(error = %e, "status not kept");
            }
            // Off the loop: an Event's round trip must not hold up reconciles.
            if !o.events.is_empty() {
                self.events.send(EventJob {
                    recorder: self.recorders.of(id),
                    reference: self.reference(id),
                    id: id.clone(),
                    events: o.events.clone(),
                });
            }
        }
        self.queue.finish(id, outcome.as_ref(), Instant::now());
        if outcome.as_ref().is_some_and(Outcome::changed) {
            for d in dependents(id, &*self.cache) {
                self.queue.trigger(&d, Instant::now());
            }
        }
    }

    /// The object an Event is about.
    fn reference(&self, id: &ObjectId) -> k8s_openapi::api::core::v1::ObjectReference {
        let entry = self.cache.entry(id);
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(format!("{IMAGE_GROUP}/v1")),
            kind: Some(id.kind.as_str().to_string()),
            name: Some(id.name.clone()),
            namespace: Some(id.namespace.clone()),
            uid: entry.as_ref().and_then(|e| e.uid.clone()),
            resource_version: entry.and_then(|e| e.resource_version.clone()),
            ..Default::default()
        }
    }
}

/// An outcome's Events, on the object.
async fn emit(
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    id: &ObjectId,
    events: &[tagwarden_engine::Event],
) {
    for e in events {
        let ev = KubeEvent {
            type_: match e.kind {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: e.reason.clone(),
            // Events carry at most 1 kB of note.
            note: Some(e.message.chars().take(1024).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&ev, reference).await {
            tracing::warn!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, error = %err, "event not recorded");
        }
    }
}

/// What the CLI does against a cluster: `get`, `suspend`, `resume`,
/// `reconcile` on the objects themselves, as `flux` does.
pub mod ops {
    use super::{KubeError, api};
    use kube::api::{ListParams, Patch, PatchParams};
    use std::time::Duration;
    use tagwarden_api::status::Status;
    use tagwarden_api::{Kind, ObjectId, RECONCILE_REQUESTED_AT};
    use tagwarden_engine::listing::{self, ObjectRow};

    fn row_of(kind: Kind, o: &kube::api::DynamicObject) -> ObjectRow {
        let id = ObjectId::new(
            kind,
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone().unwrap_or_default(),
        );
        let status = o
            .data
            .get("status")
            .and_then(|s| serde_json::to_vec(s).ok())
            .and_then(|b| Status::from_json(kind, &b).ok());
        let suspended = o.data["spec"]["suspend"].as_bool().unwrap_or(false);
        listing::row(&id, status.as_ref(), suspended)
    }

    /// Every image object in `namespace` (all when `None`), by kind.
    pub async fn rows(
        client: &kube::Client,
        namespace: Option<&str>,
    ) -> Result<Vec<ObjectRow>, KubeError> {
        let mut out = Vec::new();
        for kind in Kind::RECONCILED {
            let list = api(client, kind, namespace)
                .list(&ListParams::default())
                .await
                .map_err(KubeError::api)?;
            let mut rows: Vec<ObjectRow> = list.items.iter().map(|o| row_of(kind, o)).collect();
            rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            out.extend(rows);
        }
        Ok(out)
    }

    /// `spec.suspend`, as `flux suspend|resume` sets it.
    pub async fn set_suspended(
        client: &kube::Client,
        id: &ObjectId,
        suspend: bool,
    ) -> Result<ObjectRow, KubeError> {
        let o = api(client, id.kind, Some(&id.namespace))
            .patch(
                &id.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"suspend": suspend}})),
            )
            .await
            .map_err(KubeError::api)?;
        Ok(row_of(id.kind, &o))
    }

    /// Sets `reconcile.fluxcd.io/requestedAt` to `token` and waits until
    /// the status says it was handled; the row then.
    pub async fn reconcile(
        client: &kube::Client,
        id: &ObjectId,
        token: &str,
        timeout: Duration,
    ) -> Result<Option<ObjectRow>, KubeError> {
        let a = api(client, id.kind, Some(&id.namespace));
        a.patch(
            &id.name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {RECONCILE_REQUESTED_AT: token}}
            })),
        )
        .await
        .map_err(KubeError::api)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let o = a.get(&id.name).await.map_err(KubeError::api)?;
            if o.data["status"]["lastHandledReconcileAt"] == token {
                return Ok(Some(row_of(id.kind, &o)));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `create … ` against a cluster: the manifest, applied.
pub mod apply {
    use super::KubeError;
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
    use yaml_rust2::{Yaml, YamlLoader};

    fn json(y: &Yaml) -> serde_json::Value {
        use serde_json::Value;
        match y {
            Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
            Yaml::Integer(i) => Value::from(*i),
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
            Yaml::Hash(h) => Value::Object(
                h.iter()
                    .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), json(v))))
                    .collect(),
            ),
            _ => Value::Null,
        }
    }

    /// Applies every document of `yaml` (our own export) with server-side
    /// apply as `manager`; returns `Kind/namespace/name` of each.
    pub async fn apply(
        client: &kube::Client,
        yaml: &str,
        manager: &str,
    ) -> Result<Vec<String>, KubeError> {
        let docs = YamlLoader::load_from_str(yaml).map_err(|e| KubeError::Api(e.to_string()))?;
        let mut done = Vec::new();
        for doc in &docs {
            let body = json(doc);
            let api_version = body["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = body["kind"].as_str().unwrap_or_default().to_string();
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = body["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let Some(k) = tagwarden_api::Kind::parse(&kind) else {
                return Err(KubeError::Api(format!("cannot apply a {kind}")));
            };
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
            let ar = ApiResource {
                group: group.to_string(),
                version: version.to_string(),
                api_version: api_version.clone(),
                kind: kind.clone(),
                plural: super::resource(k).plural,
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            api.patch(
                &name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(KubeError::api)?;
            done.push(format!("{kind}/{ns}/{name}"));
        }
        Ok(done)
    }
}

/// ServiceAccount tokens through the API server's TokenRequest, for
/// object-level workload identity.
struct TokenRequests(kube::Client);

impl tagwarden_cloud::ServiceAccountTokens for TokenRequests {
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        audience: &'a str,
    ) -> tagwarden_registry::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
            let api: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
                kube::Api::namespaced(self.0.clone(), namespace);
            let request = TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: Some(vec![audience.to_string()]),
                    // The shortest the API server allows: the token is
                    // exchanged at once and never kept.
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            };
            let answer = api
                .create_token_request(name, &kube::api::PostParams::default(), &request)
                .await
                .map_err(|e| match e {
                    kube::Error::Api(s) => format!("HTTP {}: {}", s.code, s.message),
                    e => e.to_string(),
                })?;
            answer
                .status
                .and_then(|s| s.token)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| "the TokenRequest came back without a token".to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that is never dialled (the discard port) and a reporter.
    fn unreachable_client() -> (kube::Client, Reporter) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let reporter = Reporter {
            controller: "tagwarden".into(),
            instance: None,
        };
        (client, reporter)
    }

    /// The recorders (and the Events each caches) stay bounded however many
    /// objects emit; the most recently used keep theirs, so their repeats
    /// still become series.
    #[tokio::test]
    async fn event_recorders_keep_only_the_most_recently_used_objects() {
        let (client, reporter) = unreachable_client();
        let mut r = Recorders::new(client, reporter, 3);
        let id = |n: &str| ObjectId::new(Kind::ImageRepository, "flux-system", n);
        for n in ["a", "b", "c"] {
            r.of(&id(n));
        }
        r.of(&id("a"));
        r.of(&id("d"));
        let mut kept: Vec<String> = r.by_id.keys().map(|k| k.name.clone()).collect();
        kept.sort();
        assert_eq!(kept, ["a", "c", "d"], "b was the least recently used");
        for i in 0..10_000 {
            r.of(&id(&format!("x{i}")));
        }
        assert_eq!(r.by_id.len(), 3);
    }

    /// However many outcomes bring Events while the writers are busy, the
    /// queue holds at most its capacity; the rest are dropped and counted,
    /// and one object always goes to the same lane (its Events in order).
    #[tokio::test]
    async fn the_event_queue_is_bounded_and_counts_what_it_drops() {
        let (client, reporter) = unreachable_client();
        let (lanes, mut rxs) = EventLanes::new(10, 2);
        let job = |n: usize| EventJob {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reference: Default::default(),
            id: ObjectId::new(Kind::ImageRepository, "flux-system", format!("app-{n}")),
            events: vec![
                tagwarden_engine::Event {
                    kind: EventType::Normal,
                    reason: "Succeeded".into(),
                    message: format!("scan {n}"),
                };
                2
            ],
        };
        for n in 0..1000 {
            lanes.send(job(n));
        }
        let mut queued = 0;
        for (lane, rx) in rxs.iter_mut().enumerate() {
            while let Ok(j) = rx.try_recv() {
                assert_eq!(lane_of(&j.id, 2), lane, "{} in the wrong lane", j.id.name);
                queued += 1;
            }
        }
        assert_eq!(queued, 10);
        assert_eq!(
            lanes.dropped.load(Ordering::Relaxed),
            (1000 - 10) * 2,
            "every Event of a dropped job is counted"
        );
    }
}
