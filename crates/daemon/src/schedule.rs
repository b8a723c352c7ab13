//! The daemon's driver: manifest files in (reloaded when they change, a
//! spec edit counted as a new generation), the engine's reconciles run as
//! the [`Queue`] says, status out to the store, dependents triggered on
//! every typed change, each run under a deadline.

use crate::queue::{Queue, Slots, Why};
use crate::{Config, DaemonError, Metrics};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tagwarden_api::status::Status;
use tagwarden_api::{LoadOptions, Manifests, Object, ObjectId};
use tagwarden_engine::{Backoff, Catalog, Context, Outcome, dependencies, dependents};
use tagwarden_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Shared by the run loop and the HTTP handlers (webhooks, status).
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// The wiring every reconcile shares (status, tags, registry pool, Git).
    base: Context,
    catalog: RwLock<Arc<Catalog>>,
    queue: Mutex<Queue>,
    wake: Notify,
    ready: AtomicBool,
    fingerprint: Mutex<Vec<(PathBuf, SystemTime, u64)>>,
    /// Finished runs per object, for callers waiting on one.
    runs: Mutex<HashMap<ObjectId, u64>>,
    finished: Notify,
}

/// What one reconcile came back with.
struct Finished {
    id: ObjectId,
    result: Result<Outcome, String>,
    took: Duration,
}

impl Scheduler {
    /// `base` carries the adapters; its objects are replaced by the
    /// manifests under `config.paths`.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        base: Context,
        metrics: Arc<Metrics>,
    ) -> Scheduler {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let queue = Queue::new(Slots::new(config.concurrency), Backoff::default(), seed);
        Scheduler {
            inner: Arc::new(Inner {
                config,
                store,
                metrics,
                base,
                catalog: RwLock::new(Arc::new(Catalog::default())),
                queue: Mutex::new(queue),
                wake: Notify::new(),
                ready: AtomicBool::new(false),
                fingerprint: Mutex::default(),
                runs: Mutex::default(),
                finished: Notify::new(),
            }),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `id` as soon as it may (coalesced with other triggers).
    pub fn trigger(&self, id: &ObjectId) {
        tracing::debug!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, "triggered");
        self.queue().trigger(id, Instant::now());
        self.inner.wake.notify_one();
    }

    /// The manifests currently loaded.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The reconcile context over the current manifests.
    pub fn context(&self) -> Context {
        self.inner.base.with_objects(self.catalog())
    }

    /// Where suspend flags live.
    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// True once every object due at start has been reconciled once.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// How many runs of `id` have finished.
    pub fn runs(&self, id: &ObjectId) -> u64 {
        self.inner
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until more than `after` runs of `id` finished; false at the timeout.
    pub async fn wait_for_run(&self, id: &ObjectId, after: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.inner.finished.notified();
            if self.runs(id) > after {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.runs(id) > after;
            }
        }
    }

    pub(crate) async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        let mut first_pass: HashSet<ObjectId> = self.reload(true);
        if first_pass.is_empty() {
            self.inner.ready.store(true, Ordering::SeqCst);
        }
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let mut running: HashSet<ObjectId> = HashSet::new();
        let mut next_reload = Instant::now() + self.inner.config.reload_every;
        tokio::pin!(shutdown);
        loop {
            for id in self.start_due(&mut tasks, &mut running) {
                self.first_pass_done(&mut first_pass, &id);
            }
            let now = Instant::now();
            let wake_at = self
                .queue()
                .next_wake(now)
                .map_or(next_reload, |t| t.min(next_reload));
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok(done) = done else { continue };
                    running.remove(&done.id);
                    self.first_pass_done(&mut first_pass, &done.id);
                    self.finished(done);
                }
            }
            if Instant::now() >= next_reload {
                let added = self.reload(false);
                drop(added);
                next_reload = Instant::now() + self.inner.config.reload_every;
            }
        }
        let grace = self.inner.config.shutdown_grace;
        tracing::info!(
            in_flight = tasks.len(),
            grace_secs = grace.as_secs_f64(),
            "shutting down: letting reconciles in flight finish"
        );
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(done) = done {
                    running.remove(&done.id);
                    self.finished(done);
                }
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            let abandoned: Vec<String> = running
                .iter()
                .map(|k| format!("{}/{}/{}", k.kind, k.namespace, k.name))
                .collect();
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                abandoned = ?abandoned,
                "shutdown grace period over: abandoning reconciles in flight"
            );
            tasks.abort_all();
        }
        Ok(())
    }

    fn first_pass_done(&self, first_pass: &mut HashSet<ObjectId>, id: &ObjectId) {
        if first_pass.remove(id) && first_pass.is_empty() {
            self.inner.ready.store(true, Ordering::SeqCst);
        }
    }

    /// Starts what the queue lets start; returns suspended objects skipped.
    fn start_due(
        &self,
        tasks: &mut JoinSet<Finished>,
        running: &mut HashSet<ObjectId>,
    ) -> Vec<ObjectId> {
        let catalog = self.catalog();
        let starts = self
            .queue()
            .start(Instant::now(), |id| dependencies(id, &*catalog));
        let mut skipped = Vec::new();
        for s in starts {
            let Some(object) = catalog.find(&s.id).cloned() else {
                self.queue().cancel(&s.id);
                continue;
            };
            // `tagwarden suspend`: not run until resumed (resume triggers).
            if tagwarden_engine::listing::is_suspended(&*self.inner.store, &s.id).unwrap_or(false) {
                tracing::debug!(kind = s.id.kind.as_str(), namespace = %s.id.namespace, name = %s.id.name, "suspended: skipped");
                self.queue().cancel(&s.id);
                skipped.push(s.id);
                continue;
            }
            running.insert(s.id.clone());
            let ctx = self.inner.base.with_objects(catalog.clone());
            let limit = deadline(&object, self.inner.config.max_reconcile);
            let id = s.id;
            tasks.spawn(async move {
                let started = Instant::now();
                let result = reconcile_within(&object, &ctx, limit).await;
                Finished {
                    id,
                    result,
                    took: started.elapsed(),
                }
            });
        }
        skipped
    }

    /// Writes the status, counts, schedules the next run, wakes dependents.
    fn finished(&self, done: Finished) {
        let id = &done.id;
        let outcome = match done.result {
            Ok(o) => match self.inner.base.status.write(id, &o.status) {
                Ok(()) => Some(o),
                Err(e) => {
                    tracing::error!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, error = %e, "status not written");
                    None
                }
            },
            Err(e) => {
                // An engine error is this object's transient failure; the
                // daemon and the other objects go on.
                tracing::error!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, error = %e, "reconcile failed");
                None
            }
        };
        self.inner.metrics.record(id, outcome.as_ref(), done.took);
        if let Some(o) = &outcome {
            for e in &o.events {
                tracing::debug!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, event = e.kind.as_str(), reason = %e.reason, message = %e.message, "event");
            }
        }
        let catalog = self.catalog();
        let failures = self.queue().finish(id, outcome.as_ref(), Instant::now());
        if failures > 1 {
            tracing::debug!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, failures, "backing off");
        }
        if outcome.as_ref().is_some_and(Outcome::changed) {
            for d in dependents(id, &*catalog) {
                self.trigger(&d);
            }
        }
        *self
            .inner
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_default() += 1;
        self.inner.finished.notify_waiters();
    }

    /// Re-reads the manifests when their files changed (or on `force`):
    /// new and edited objects run at once (an edited spec is a new
    /// generation), removed ones are forgotten, an edited Secret or
    /// GitRepository triggers what uses it. Returns what is due at once.
    fn reload(&self, force: bool) -> HashSet<ObjectId> {
        let fingerprint = fingerprint(&self.inner.config.paths);
        {
            let mut last = self
                .inner
                .fingerprint
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !force && *last == fingerprint {
                return HashSet::new();
            }
            *last = fingerprint;
        }
        let manifests = Manifests::load_paths(
            &self.inner.config.paths,
            &LoadOptions {
                default_namespace: self.inner.config.default_namespace.clone(),
            },
        );
        let mut manifests = if self.inner.config.strict {
            manifests.strict()
        } else {
            manifests
        };
        for w in &manifests.warnings {
            tracing::warn!(warning = %w, "unknown manifest field");
        }
        for o in &manifests.objects {
            let Object::Receiver(r) = o else { continue };
            for e in tagwarden_receivers::resource_errors(r) {
                tracing::warn!(receiver = %r.meta.name, namespace = %r.meta.namespace, source = %r.meta.source, error = %e, "receiver resource refused");
            }
        }
        for e in &manifests.errors {
            tracing::warn!(error = %e, "manifest not loaded");
        }
        let old = self.catalog();
        let mut edited = Vec::new();
        for o in &mut manifests.objects {
            let Some(before) = old.find(&o.id()) else {
                edited.push(o.id());
                continue;
            };
            let (changed, spec_changed) = compare(before, o);
            // As the API server counts: metadata edits are not a new generation.
            let counted = before.meta().generation + i64::from(spec_changed);
            let m = o.meta_mut();
            m.generation = m.generation.max(counted);
            if changed {
                edited.push(o.id());
            }
        }
        let catalog = Arc::new(Catalog::new(manifests));
        let now = Instant::now();
        let mut due_now = HashSet::new();
        {
            let mut queue = self.queue();
            queue.retain(|id| catalog.find(id).is_some());
            self.inner.metrics.retain(|id| catalog.find(id).is_some());
            for id in &edited {
                let Some(o) = catalog.find(id) else { continue };
                if !id.kind.is_reconciled() {
                    continue;
                }
                let host = match o {
                    Object::ImageRepository(r) => Some(registry_host(&r.image)),
                    _ => None,
                };
                let (at, why) = if force {
                    (self.resume_at(o).unwrap_or(now), Why::Start)
                } else {
                    (now, Why::Trigger)
                };
                if at <= now {
                    due_now.insert(id.clone());
                }
                queue.add(id.clone(), host, at, why);
            }
            // What reads an edited Secret or GitRepository runs again.
            if !force {
                for id in edited.iter().filter(|id| !id.kind.is_reconciled()) {
                    for d in dependents(id, &*catalog) {
                        queue.trigger(&d, now);
                    }
                }
            }
        }
        tracing::info!(
            objects = catalog.manifests().objects.len(),
            "manifests loaded"
        );
        *self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner()) = catalog;
        self.inner.wake.notify_one();
        due_now
    }

    /// At start, resume: a repository scanned within its interval waits for
    /// the rest of it. Policies and automations run at once: a stop may have
    /// cut the chain between a new scan and its push, and only running them
    /// again finishes it.
    fn resume_at(&self, o: &Object) -> Option<Instant> {
        let Object::ImageRepository(r) = o else {
            return None;
        };
        let Ok(Some(Status::ImageRepository(s))) = self.inner.base.status.read(&o.id()) else {
            return None;
        };
        let scanned = s.last_scan_result?.scan_time.system();
        let elapsed = SystemTime::now()
            .duration_since(scanned)
            .unwrap_or_default();
        let left = r.interval.checked_sub(elapsed)?;
        Some(Instant::now() + left)
    }
}

/// Whether `b` differs from `a` at all (to act on: an annotation such as
/// `reconcile.fluxcd.io/requestedAt` counts), and whether its spec does (a
/// new generation). Where the document was read never counts.
fn compare(a: &Object, b: &Object) -> (bool, bool) {
    let mut b = b.clone();
    let m = b.meta_mut();
    m.generation = a.meta().generation;
    m.source = a.meta().source.clone();
    if *a == b {
        return (false, false);
    }
    let m = b.meta_mut();
    m.labels = a.meta().labels.clone();
    m.annotations = a.meta().annotations.clone();
    m.resource_version = a.meta().resource_version.clone();
    (true, *a != b)
}

/// The registry host of an image reference, as `docker` reads it: the first
/// path segment when it looks like a host, else Docker Hub.
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            first.to_ascii_lowercase()
        }
        _ => "docker.io".into(),
    }
}

/// Shortest hard deadline for one reconcile (below `max_reconcile`).
const MIN_DEADLINE: Duration = Duration::from_secs(5);
/// On top of the object's own timeout, so the engine's error (which says
/// what hung) is what gets reported when it keeps to its timeout.
const DEADLINE_SLACK: Duration = Duration::from_secs(5);

/// The hard deadline of one reconcile: the object's `timeout`, else its
/// interval (else a minute), at least 5 s, plus slack; never above `cap`.
pub fn deadline(o: &Object, cap: Duration) -> Duration {
    let base = match o {
        Object::ImageRepository(r) => r.timeout.unwrap_or(r.interval),
        Object::ImagePolicy(p) => p.interval.unwrap_or(Duration::from_secs(60)),
        Object::ImageUpdateAutomation(a) => a.interval,
        _ => Duration::from_secs(60),
    };
    (base.max(MIN_DEADLINE) + DEADLINE_SLACK).min(cap)
}

/// One reconcile under a hard deadline, for every driver: an engine error
/// as text; cut off at `limit`, recorded as a failure (not Ready), retried
/// with backoff, its slot free again.
pub async fn reconcile_within(
    object: &Object,
    ctx: &Context,
    limit: Duration,
) -> Result<Outcome, String> {
    match tokio::time::timeout(limit, tagwarden_engine::reconcile(object, ctx)).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => abandoned(object, ctx, limit),
    }
}

fn abandoned(object: &Object, ctx: &Context, limit: Duration) -> Result<Outcome, String> {
    let id = object.id();
    let message = format!(
        "reconcile did not finish within {}: abandoned",
        tagwarden_api::duration::format(limit)
    );
    tracing::warn!(kind = id.kind.as_str(), namespace = %id.namespace, name = %id.name, deadline_secs = limit.as_secs_f64(), "{message}");
    tagwarden_engine::abandoned(object, ctx, &message).map_err(|e| e.to_string())
}

/// Path, modification time and size of every manifest file under `paths`.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push((
                p,
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            ));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_as_docker_reads_them() {
        assert_eq!(registry_host("ghcr.io/stefanprodan/podinfo"), "ghcr.io");
        assert_eq!(registry_host("127.0.0.1:5000/app"), "127.0.0.1:5000");
        assert_eq!(registry_host("localhost/app"), "localhost");
        assert_eq!(registry_host("stefanprodan/podinfo"), "docker.io");
        assert_eq!(registry_host("nginx"), "docker.io");
    }

    #[test]
    fn an_edited_spec_is_a_new_generation_an_annotation_a_trigger_a_move_nothing() {
        let load = |text: &str, file: &str| {
            let m = Manifests::load_str(text, std::path::Path::new(file), &LoadOptions::default());
            assert!(m.errors.is_empty(), "{:?}", m.errors);
            m.objects.into_iter().next().expect("one object")
        };
        let repo = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                    metadata: {name: r, namespace: ns}\nspec: {image: ghcr.io/a/b, interval: 1m}\n";
        let a = load(repo, "a.yaml");
        assert_eq!(
            compare(&a, &load(&format!("---\n{repo}"), "b.yaml")),
            (false, false)
        );
        assert_eq!(
            compare(&a, &load(&repo.replace("1m", "2m"), "a.yaml")),
            (true, true)
        );
        let annotated = repo.replace(
            "namespace: ns}",
            "namespace: ns, annotations: {reconcile.fluxcd.io/requestedAt: now}}",
        );
        assert_eq!(
            compare(&a, &load(&annotated, "a.yaml")),
            (true, false),
            "a reconcile request is acted on, but is no new generation"
        );
    }
}
