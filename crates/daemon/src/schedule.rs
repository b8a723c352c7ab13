//! When each object runs: on its interval with jitter, at once when what
//! it depends on changed or a webhook asked, never two runs of one object
//! at a time, a bounded number in flight per kind and per registry host (so
//! a hanging registry cannot starve the rest), each run under a deadline.

use crate::{Config, DaemonError, Metrics};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tagwarden_api::status::ConditionStatus;
use tagwarden_api::{LoadOptions, Manifests, Object};
use tagwarden_engine::{
    Context, EngineError, Report, SystemClock, last_run, policy_latest, reconcile_automation,
    reconcile_policy, reconcile_repository, repository_revision, repository_tag_count,
};
use tagwarden_store::Store;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// An object by kind and namespaced name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

/// The kinds the daemon schedules.
fn kind_of(o: &Object) -> Option<&'static str> {
    match o {
        Object::ImageRepository(_) => Some("ImageRepository"),
        Object::ImagePolicy(_) => Some("ImagePolicy"),
        Object::ImageUpdateAutomation(_) => Some("ImageUpdateAutomation"),
        _ => None,
    }
}

impl ObjectKey {
    fn of(o: &Object) -> Option<ObjectKey> {
        let kind = kind_of(o)?;
        Some(ObjectKey {
            kind,
            namespace: o.meta().namespace.clone(),
            name: o.meta().name.clone(),
        })
    }
}

/// Shared by the run loop and the HTTP handlers (webhooks, status).
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    ctx: RwLock<Arc<Context>>,
    due: Mutex<BTreeMap<ObjectKey, Instant>>,
    wake: Notify,
    ready: AtomicBool,
    fingerprint: Mutex<Vec<(PathBuf, SystemTime, u64)>>,
}

/// What one finished reconcile means for the others.
struct Finished {
    key: ObjectKey,
    report: Result<Report, EngineError>,
    changed: bool,
    took: Duration,
}

impl Scheduler {
    pub fn new(config: Config, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Scheduler {
        let ctx = Arc::new(Context {
            store: store.clone(),
            clock: Arc::new(SystemClock),
            objects: Arc::new(Manifests::default()),
        });
        Scheduler {
            inner: Arc::new(Inner {
                config,
                store,
                metrics,
                ctx: RwLock::new(ctx),
                due: Mutex::default(),
                wake: Notify::new(),
                ready: AtomicBool::new(false),
                fingerprint: Mutex::default(),
            }),
        }
    }

    /// Runs `key` as soon as a slot is free.
    pub fn trigger(&self, key: ObjectKey) {
        tracing::debug!(kind = key.kind, namespace = %key.namespace, name = %key.name, "triggered");
        self.lock_due().insert(key, Instant::now());
        self.inner.wake.notify_one();
    }

    /// The manifests currently loaded.
    pub fn context(&self) -> Arc<Context> {
        self.inner
            .ctx
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once every object has been reconciled once.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    fn lock_due(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectKey, Instant>> {
        self.inner.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        self.reload(true);
        let slots = Slots::new(self.inner.config.concurrency);
        // What runs, with the registry host of a scan.
        let mut running: Running = BTreeMap::new();
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        // Ready once everything due at start has run (resumed objects wait).
        let start = Instant::now();
        let mut first_pass: BTreeSet<ObjectKey> = self
            .lock_due()
            .iter()
            .filter(|(_, t)| **t <= start)
            .map(|(k, _)| k.clone())
            .collect();
        if first_pass.is_empty() {
            self.inner.ready.store(true, Ordering::SeqCst);
        }
        let mut next_reload = Instant::now() + self.inner.config.reload_every;
        tokio::pin!(shutdown);
        loop {
            for k in self.start_due(&mut running, &mut tasks, &slots) {
                first_pass.remove(&k);
                if first_pass.is_empty() {
                    self.inner.ready.store(true, Ordering::SeqCst);
                }
            }
            // What is due but did not start waits for a slot, a host's share
            // or a dependency: a run finishing (or a trigger) wakes the loop,
            // not the timer, or it would spin while a registry hangs.
            let now = Instant::now();
            let next_due = self
                .lock_due()
                .iter()
                .filter(|(k, _)| !running.contains_key(*k))
                .map(|(_, t)| if *t <= now { now + RECHECK } else { *t })
                .min();
            let wake_at = next_due.map_or(next_reload, |t| t.min(next_reload));
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok(done) = done else { continue };
                    running.remove(&done.key);
                    first_pass.remove(&done.key);
                    if first_pass.is_empty() {
                        self.inner.ready.store(true, Ordering::SeqCst);
                    }
                    self.finished(done)?;
                }
            }
            if Instant::now() >= next_reload {
                self.reload(false);
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
                    running.remove(&done.key);
                    self.finished(done)?;
                }
            }
            Ok::<(), DaemonError>(())
        };
        match tokio::time::timeout(grace, drain).await {
            Ok(result) => result?,
            Err(_) => {
                let abandoned: Vec<String> = running
                    .keys()
                    .map(|k| format!("{}/{}/{}", k.kind, k.namespace, k.name))
                    .collect();
                tracing::warn!(
                    grace_secs = grace.as_secs_f64(),
                    abandoned = ?abandoned,
                    "shutdown grace period over: abandoning reconciles in flight"
                );
                tasks.abort_all();
            }
        }
        Ok(())
    }

    /// Starts every due object whose dependencies are not due or running.
    fn start_due(
        &self,
        running: &mut Running,
        tasks: &mut JoinSet<Finished>,
        slots: &Slots,
    ) -> Vec<ObjectKey> {
        let mut skipped = Vec::new();
        let now = Instant::now();
        let ctx = self.context();
        let due: Vec<ObjectKey> = self
            .lock_due()
            .iter()
            .filter(|(k, t)| **t <= now && !running.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let due_set: BTreeSet<&ObjectKey> = due.iter().collect();
        let busy = |k: &ObjectKey, running: &Running, due: &BTreeSet<&ObjectKey>| {
            running.contains_key(k) || due.contains(k)
        };
        // Looked up once per due object: a linear search (and a clone) each
        // made a pass over 1,000 waiting scans quadratic.
        let index: HashMap<(&str, &str, &str), &Object> = ctx
            .objects
            .objects
            .iter()
            .filter_map(|o| {
                let m = o.meta();
                Some(((kind_of(o)?, m.namespace.as_str(), m.name.as_str()), o))
            })
            .collect();
        for key in due.iter() {
            let Some(&object) = index.get(&(key.kind, key.namespace.as_str(), key.name.as_str()))
            else {
                self.lock_due().remove(key);
                continue;
            };
            // Cheap capacity checks before the store is read: hundreds may
            // wait for a few slots, and each pass looks at all of them.
            if slots.of(key.kind).available_permits() == 0 {
                continue;
            }
            // A scan also needs its registry host to be below its share.
            let host = match object {
                Object::ImageRepository(r) => Some(registry_host(&r.image)),
                _ => None,
            };
            if let Some(h) = &host
                && running.values().flatten().filter(|r| *r == h).count() >= slots.per_host
            {
                continue;
            }
            // `tagwarden suspend`: not run until resumed (resume triggers).
            if tagwarden_engine::listing::is_suspended(
                &*self.inner.store,
                key.kind,
                &key.namespace,
                &key.name,
            )
            .unwrap_or(false)
            {
                tracing::debug!(kind = key.kind, namespace = %key.namespace, name = %key.name, "suspended: skipped");
                self.lock_due().remove(key);
                skipped.push(key.clone());
                continue;
            }
            // Order by dependency: a policy waits for its repository's scan,
            // an automation for the policies of its namespace.
            let blocked = match object {
                Object::ImagePolicy(p) => {
                    let repo = ObjectKey {
                        kind: "ImageRepository",
                        namespace: p
                            .image_repository_ref
                            .namespace
                            .clone()
                            .unwrap_or_else(|| p.meta.namespace.clone()),
                        name: p.image_repository_ref.name.clone(),
                    };
                    busy(&repo, running, &due_set)
                }
                Object::ImageUpdateAutomation(a) => ctx.objects.objects.iter().any(|o| {
                    matches!(o, Object::ImagePolicy(p) if p.meta.namespace == a.meta.namespace)
                        && ObjectKey::of(o).is_some_and(|k| busy(&k, running, &due_set))
                }),
                _ => false,
            };
            if blocked {
                continue;
            }
            let Ok(permit) = slots.of(key.kind).clone().try_acquire_owned() else {
                continue;
            };
            self.lock_due().remove(key);
            running.insert(key.clone(), host);
            let (ctx, key, object) = (ctx.clone(), key.clone(), object.clone());
            let limit = deadline(&object, self.inner.config.max_reconcile);
            tasks.spawn(async move {
                let _permit = permit;
                let started = Instant::now();
                let (report, changed) =
                    match tokio::time::timeout(limit, reconcile(&ctx, &object, &key)).await {
                        Ok(done) => done,
                        Err(_) => abandoned(&key, limit),
                    };
                Finished {
                    key,
                    report,
                    changed,
                    took: started.elapsed(),
                }
            });
        }
        skipped
    }

    /// Records the outcome, schedules the next run and wakes dependents.
    fn finished(&self, done: Finished) -> Result<(), DaemonError> {
        let report = done.report?;
        self.inner
            .metrics
            .observe(&done.key, report.ready == ConditionStatus::True, done.took);
        let ctx = self.context();
        let metrics = &self.inner.metrics;
        match done.key.kind {
            "ImageRepository" => {
                if let Ok(Some(n)) = repository_tag_count(&ctx, &done.key.namespace, &done.key.name)
                {
                    metrics.tags(&done.key.namespace, &done.key.name, n);
                }
            }
            // The engine's Ready message for a push, as Flux words it.
            "ImageUpdateAutomation" if report.message.starts_with("pushed commit") => {
                metrics.pushed(&done.key.namespace, &done.key.name);
            }
            _ => {}
        }
        let Some(object) = find(&ctx, &done.key) else {
            return Ok(());
        };
        if let Some(interval) = interval(&object) {
            self.lock_due()
                .entry(done.key.clone())
                .or_insert(Instant::now() + jitter(interval));
        }
        if done.changed {
            for o in &ctx.objects.objects {
                let dependent = match (&object, o) {
                    (Object::ImageRepository(r), Object::ImagePolicy(p)) => {
                        p.image_repository_ref.name == r.meta.name
                            && p.image_repository_ref
                                .namespace
                                .as_deref()
                                .unwrap_or(&p.meta.namespace)
                                == r.meta.namespace
                    }
                    (Object::ImagePolicy(p), Object::ImageUpdateAutomation(a)) => {
                        a.meta.namespace == p.meta.namespace
                    }
                    _ => false,
                };
                if dependent && let Some(k) = ObjectKey::of(o) {
                    self.trigger(k);
                }
            }
        }
        Ok(())
    }

    /// Re-reads the manifests when their files changed (or on `force`):
    /// new and edited objects run at once, removed ones are forgotten.
    fn reload(&self, force: bool) {
        let fingerprint = fingerprint(&self.inner.config.paths);
        {
            let mut last = self
                .inner
                .fingerprint
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !force && *last == fingerprint {
                return;
            }
            *last = fingerprint;
        }
        let manifests = Manifests::load_paths(
            &self.inner.config.paths,
            &LoadOptions {
                default_namespace: self.inner.config.default_namespace.clone(),
            },
        );
        let manifests = if self.inner.config.strict {
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
        let old = self.context();
        let mut due = self.lock_due();
        due.retain(|k, _| {
            manifests
                .objects
                .iter()
                .any(|o| ObjectKey::of(o).as_ref() == Some(k))
        });
        let new_ctx = Context {
            store: self.inner.store.clone(),
            clock: Arc::new(SystemClock),
            objects: Arc::new(Manifests::default()),
        };
        for o in &manifests.objects {
            let Some(k) = ObjectKey::of(o) else { continue };
            if find(&old, &k).as_ref() == Some(o) {
                continue;
            }
            // At start, resume: a repository scanned within its interval
            // waits for the rest of it. Policies and automations run at once:
            // a stop may have cut the chain between a new scan and its push,
            // and only running them again finishes it.
            let resume_at = if force && k.kind == "ImageRepository" {
                last_run(&new_ctx, k.kind, &k.namespace, &k.name)
                    .ok()
                    .flatten()
                    .zip(interval(o))
                    .and_then(|(at, every)| {
                        let elapsed = SystemTime::now().duration_since(at).unwrap_or_default();
                        every.checked_sub(elapsed)
                    })
                    .map(|left| Instant::now() + left)
            } else {
                None
            };
            due.insert(k, resume_at.unwrap_or_else(Instant::now));
        }
        drop(due);
        tracing::info!(objects = manifests.objects.len(), "manifests loaded");
        let ctx = Arc::new(Context {
            store: self.inner.store.clone(),
            clock: Arc::new(SystemClock),
            objects: Arc::new(manifests),
        });
        *self.inner.ctx.write().unwrap_or_else(|p| p.into_inner()) = ctx;
        self.inner.wake.notify_one();
    }
}

/// How often due objects that could not start are looked at again, in case
/// no finished run or trigger did it first.
const RECHECK: Duration = Duration::from_secs(1);

/// Objects in flight, with the registry host of a scan.
type Running = BTreeMap<ObjectKey, Option<String>>;

/// Slots per kind, so policies and automations never wait behind scans;
/// scans get twice as many (they mostly wait on the network) and at most
/// `per_host` of them go to one registry host.
struct Slots {
    repositories: Arc<Semaphore>,
    policies: Arc<Semaphore>,
    automations: Arc<Semaphore>,
    per_host: usize,
}

impl Slots {
    fn new(concurrency: usize) -> Slots {
        let n = concurrency.max(1);
        Slots {
            repositories: Arc::new(Semaphore::new(2 * n)),
            policies: Arc::new(Semaphore::new(n)),
            automations: Arc::new(Semaphore::new(n)),
            per_host: n,
        }
    }

    fn of(&self, kind: &str) -> &Arc<Semaphore> {
        match kind {
            "ImageRepository" => &self.repositories,
            "ImagePolicy" => &self.policies,
            _ => &self.automations,
        }
    }
}

/// The registry host of an image reference, as `docker` reads it: the first
/// path segment when it looks like a host, else Docker Hub.
fn registry_host(image: &str) -> String {
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
fn deadline(o: &Object, cap: Duration) -> Duration {
    let base = match o {
        Object::ImageRepository(r) => r.timeout.unwrap_or(r.interval),
        Object::ImagePolicy(p) => p.interval.unwrap_or(Duration::from_secs(60)),
        Object::ImageUpdateAutomation(a) => a.interval,
        _ => Duration::from_secs(60),
    };
    (base.max(MIN_DEADLINE) + DEADLINE_SLACK).min(cap)
}

/// The outcome of a reconcile cut off at its deadline: not Ready, and its
/// slot free again.
fn abandoned(key: &ObjectKey, limit: Duration) -> (Result<Report, EngineError>, bool) {
    let message = format!(
        "reconcile did not finish within {}: abandoned",
        tagwarden_api::duration::format(limit)
    );
    tracing::warn!(kind = key.kind, namespace = %key.namespace, name = %key.name, deadline_secs = limit.as_secs_f64(), "{message}");
    (
        Ok(Report {
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            ready: ConditionStatus::False,
            message,
        }),
        false,
    )
}

fn find(ctx: &Context, key: &ObjectKey) -> Option<Object> {
    ctx.objects
        .objects
        .iter()
        .find(|o| ObjectKey::of(o).as_ref() == Some(key))
        .cloned()
}

fn interval(o: &Object) -> Option<Duration> {
    match o {
        Object::ImageRepository(r) => Some(r.interval),
        // A policy runs when its repository's tags change; with digest
        // reflection it also has its own interval.
        Object::ImagePolicy(p) => p.interval,
        Object::ImageUpdateAutomation(a) => Some(a.interval),
        _ => None,
    }
    .filter(|d| !d.is_zero())
}

/// ±5%, so objects with one interval do not run in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d.mul_f64(0.95 + f64::from(nanos % 1000) / 10_000.0)
}

/// Runs one reconcile; `changed` says whether dependents should run now.
async fn reconcile(
    ctx: &Context,
    object: &Object,
    key: &ObjectKey,
) -> (Result<Report, EngineError>, bool) {
    match object {
        Object::ImageRepository(r) => {
            let before = repository_revision(ctx, &key.namespace, &key.name)
                .ok()
                .flatten();
            let report = reconcile_repository(r, ctx).await;
            let after = repository_revision(ctx, &key.namespace, &key.name)
                .ok()
                .flatten();
            (report, after.is_some() && before != after)
        }
        Object::ImagePolicy(p) => {
            let before = policy_latest(ctx, &key.namespace, &key.name).ok().flatten();
            let report = reconcile_policy(p, ctx).await;
            let after = policy_latest(ctx, &key.namespace, &key.name).ok().flatten();
            (report, after.is_some() && before != after)
        }
        Object::ImageUpdateAutomation(a) => (reconcile_automation(a, ctx).await, false),
        _ => (
            Ok(Report {
                kind: "Unknown",
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                ready: ConditionStatus::Unknown,
                message: String::new(),
            }),
            false,
        ),
    }
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
}
