//! The engine: one reconcile per object, the same for every driver
//! (`run --once`, the daemon, the Kubernetes controller), in the shape of
//! kube-rs controllers: [`reconcile`] returns a typed [`Outcome`] (the Flux
//! v1 status, what changed, when to run again, the events to emit) and
//! [`Backoff`] is the one error policy.
//!
//! The engine sees the world through seams only: [`Objects`] (where objects
//! come from), [`StatusStore`] (where status goes), a tag database
//! ([`tagwarden_store::Store`]), [`tagwarden_registry::Registry`],
//! [`tagwarden_git::GitRemote`] and [`Clock`]. Drivers wire them.

mod automation;
mod catalog;
mod deps;
mod guards;
pub mod listing;
mod message;
mod outcome;
mod policy;
mod pull_request;
mod repository;
mod state;
mod workdir;

pub use catalog::Catalog;
pub use deps::{dependencies, dependents, selected_policies};
pub use guards::forget_repository;
pub use outcome::{
    Backoff, Change, Event, EventType, Failure, Outcome, PullRequestAction, PullRequestResult,
    PushResult,
};
pub use pull_request::NoForge;
pub use state::{KvStatus, drop_legacy_records, load_tags};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tagwarden_api::status::Status;
use tagwarden_api::{Kind, Object, ObjectId};
use tagwarden_git::GitRemote;
use tagwarden_registry::Registry;
use tagwarden_store::{Store, StoreError};

/// Time, injected so interval logic is tested without sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Where objects come from: manifest files ([`Catalog`]) or an API
/// server's caches. Lookups return copies, so either can back it.
pub trait Objects: Send + Sync {
    /// The object with this identity (any kind, Secrets included).
    fn get(&self, id: &ObjectId) -> Option<Object>;
    /// Every object of `kind`, in one namespace or all.
    fn each(&self, kind: Kind, namespace: Option<&str>, f: &mut dyn FnMut(&Object));
    /// Labels of a namespace, for `accessFrom`.
    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String>;
}

/// Where status goes and is read back: the embedded store ([`KvStatus`])
/// or the status subresource.
pub trait StatusStore: Send + Sync {
    fn read(&self, id: &ObjectId) -> Result<Option<Status>, EngineError>;
    fn write(&self, id: &ObjectId, status: &Status) -> Result<(), EngineError>;
    /// Every object with a status, by identity.
    fn list(&self) -> Result<Vec<(ObjectId, Status)>, EngineError>;
}

/// What every reconcile needs; cheap to clone (all shared).
#[derive(Clone)]
pub struct Context {
    pub objects: Arc<dyn Objects>,
    pub status: Arc<dyn StatusStore>,
    /// The tag database: each repository's last good tag list.
    pub db: Arc<dyn Store>,
    pub registry: Arc<dyn Registry>,
    pub git: Arc<dyn GitRemote>,
    /// Pull and merge requests, for automations that propose their changes.
    pub forge: Arc<dyn tagwarden_forge::Forge>,
    pub clock: Arc<dyn Clock>,
    /// Private folder for Git checkouts (the state dir), else the temp dir.
    pub scratch: Option<PathBuf>,
    /// Flux's `--no-cross-namespace-refs`: a policy's repository and an
    /// automation's source must be in the object's own namespace.
    pub no_cross_namespace_refs: bool,
    /// Plan only: automations commit in their scratch clone and report the
    /// diff, the message and the pull request they would open or update;
    /// nothing is pushed and no forge is written to.
    pub dry_run: bool,
    /// Flux's `ObjectLevelWorkloadIdentity` feature gate: a cloud
    /// provider's login uses the repository's `spec.serviceAccountName`.
    pub object_level_identity: bool,
}

impl Context {
    /// Status and tags in `store`, the system clock, checkouts under the
    /// store's state dir.
    pub fn new(
        objects: Arc<dyn Objects>,
        store: Arc<dyn Store>,
        registry: Arc<dyn Registry>,
        git: Arc<dyn GitRemote>,
    ) -> Context {
        Context {
            objects,
            status: Arc::new(KvStatus::new(store.clone())),
            scratch: store.state_dir().map(|d| d.to_path_buf()),
            db: store,
            registry,
            git,
            forge: Arc::new(NoForge),
            clock: Arc::new(SystemClock),
            no_cross_namespace_refs: false,
            object_level_identity: false,
            dry_run: false,
        }
    }

    /// Refuses a reference into another namespace when that is switched
    /// off: `None` when allowed.
    pub(crate) fn cross_namespace_denied(&self, from: &str, to: &ObjectId) -> Option<Failure> {
        (self.no_cross_namespace_refs && from != to.namespace).then(|| {
            Failure::new(
                "AccessDenied",
                format!(
                    "can't access '{}/{}/{}', cross-namespace references have been blocked",
                    to.kind, to.namespace, to.name
                ),
                true,
            )
        })
    }

    /// The same wiring over another set of objects (a manifest reload).
    pub fn with_objects(&self, objects: Arc<dyn Objects>) -> Context {
        Context {
            objects,
            ..self.clone()
        }
    }

    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<tagwarden_api::Secret> {
        match self
            .objects
            .get(&ObjectId::new(Kind::Secret, namespace, name))
        {
            Some(Object::Secret(s)) => Some(s),
            _ => None,
        }
    }
}

/// Errors of the engine itself (not of the object): the driver retries them
/// with backoff and goes on with the other objects.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state record {key} unreadable: {message}")]
    State { key: String, message: String },
    #[error("{0} is not a kind tagwarden reconciles")]
    Kind(Kind),
}

/// Reconciles one object: reads what it depends on, does its step, and
/// returns the status to write. The tag database is written here (a scan's
/// tags); status is written by the driver, through its [`StatusStore`].
pub async fn reconcile(object: &Object, ctx: &Context) -> Result<Outcome, EngineError> {
    match object {
        Object::ImageRepository(r) => repository::reconcile(r, ctx).await,
        Object::ImagePolicy(p) => policy::reconcile(p, ctx).await,
        Object::ImageUpdateAutomation(a) => automation::reconcile(a, ctx).await,
        other => Err(EngineError::Kind(other.kind())),
    }
}

/// The outcome of a reconcile a driver cut off (its deadline passed): the
/// last status with `Ready=False` saying so, retried with backoff.
pub fn abandoned(object: &Object, ctx: &Context, message: &str) -> Result<Outcome, EngineError> {
    let id = object.id();
    let mut status = match ctx.status.read(&id)? {
        Some(s) => s,
        None => Status::empty(id.kind).ok_or(EngineError::Kind(id.kind))?,
    };
    let failure = Failure::new("ReconciliationFailed", message, false);
    let generation = object.meta().generation;
    let now = ctx.clock.now();
    let previous = status.conditions().to_vec();
    let conditions = failure.conditions(&previous, generation, now);
    match &mut status {
        Status::ImageRepository(s) => s.conditions = conditions,
        Status::ImagePolicy(s) => s.conditions = conditions,
        Status::ImageUpdateAutomation(s) => s.conditions = conditions,
    }
    Ok(Outcome {
        events: outcome::events(&previous, status.conditions()),
        id,
        status,
        change: None,
        requeue_after: None,
        plan: None,
        failure: Some(failure),
        suspended: false,
    })
}

/// One object's reconcile, recorded: its outcome, or its engine error.
pub type Reconciled = Result<Outcome, (ObjectId, EngineError)>;

/// `run --once`: every image object once, kind by kind in dependency order
/// (repositories, policies, automations), each kind's statuses written
/// before the next kind runs; within a kind, independent objects overlap.
/// One object's failure never stops the others; an engine error becomes
/// that object's failure.
pub async fn reconcile_all(ctx: &Context) -> Vec<Reconciled> {
    let mut out = Vec::new();
    for kind in Kind::RECONCILED {
        let mut order = Vec::new();
        ctx.objects.each(kind, None, &mut |o| order.push(o.clone()));
        // Scans and policy lookups of independent objects overlap (the
        // registry pool bounds requests per host); automations run one after
        // another, as they may push to the same branch.
        let in_flight = if kind == Kind::ImageUpdateAutomation {
            1
        } else {
            ONCE_IN_FLIGHT
        };
        let gate = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, o) in order.into_iter().enumerate() {
            let (ctx, gate) = (ctx.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                (i, reconcile_and_record(&o, &ctx).await)
            });
        }
        let mut done: Vec<(usize, Reconciled)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(r) => done.push(r),
                Err(e) => tracing::error!(error = %e, "reconcile task failed"),
            }
        }
        // Reported in the order the objects were listed.
        done.sort_by_key(|(i, _)| *i);
        out.extend(done.into_iter().map(|(_, r)| r));
    }
    out
}

/// Objects of one kind reconciled at once by [`reconcile_all`].
const ONCE_IN_FLIGHT: usize = 32;

async fn reconcile_and_record(o: &Object, ctx: &Context) -> Reconciled {
    let id = o.id();
    let done = match reconcile(o, ctx).await {
        Ok(outcome) => match ctx.status.write(&id, &outcome.status) {
            Ok(()) => Ok(outcome),
            Err(e) => Err((id, e)),
        },
        Err(e) => Err((id, e)),
    };
    if let Err((id, e)) = &done {
        tracing::error!(kind = %id.kind, namespace = %id.namespace, name = %id.name, error = %e, "reconcile failed");
    }
    done
}
