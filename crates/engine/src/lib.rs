//! The engine: one reconcile per object, the same for every driver
//! (`run --once`, the daemon, the Kubernetes controller). Each reconcile
//! reads what the previous ones recorded in the store, does its step, and
//! records status as Flux reports it.

mod automation;
pub mod listing;
mod message;
mod policy;
mod repository;
mod workdir;

pub use automation::{AutomationStatus, reconcile_automation};
pub use policy::{LatestRef, PolicyStatus, reconcile_policy};
pub use repository::reconcile_repository;

use std::sync::Arc;
use std::time::SystemTime;
use tagwarden_api::status::{Condition, ConditionStatus};
use tagwarden_api::{Manifests, Object};
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

/// What every reconcile needs.
pub struct Context {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Every object loaded, to find references (repositories, secrets).
    pub objects: Arc<Manifests>,
}

impl Context {
    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<&tagwarden_api::Secret> {
        self.objects.objects.iter().find_map(|o| match o {
            Object::Secret(s) if s.meta.namespace == namespace && s.meta.name == name => Some(s),
            _ => None,
        })
    }

    pub(crate) fn load<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, EngineError> {
        match self.store.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| EngineError::State(format!("{key}: {e}"))),
        }
    }

    pub(crate) fn save<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(value).map_err(|e| EngineError::State(e.to_string()))?;
        Ok(self.store.put(key, &bytes)?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state record unreadable: {0}")]
    State(String),
}

/// Why a reconcile did not succeed, with Flux's reason; `stalled` when only
/// a change to the object can help.
pub(crate) struct Failure {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) stalled: bool,
}

impl Failure {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>, stalled: bool) -> Failure {
        Failure {
            reason,
            message: message.into(),
            stalled,
        }
    }

    /// `Ready=False` (and `Stalled`) after this failure.
    pub(crate) fn conditions(&self, previous: &[Condition], now: SystemTime) -> Vec<Condition> {
        tagwarden_api::status::outcome_conditions(
            previous,
            false,
            self.stalled,
            self.reason,
            &self.message,
            now,
        )
    }
}

/// One line of `flux get`: how an object ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub ready: ConditionStatus,
    pub message: String,
}

impl Report {
    pub(crate) fn from_conditions(
        kind: &'static str,
        meta: &tagwarden_api::Meta,
        conditions: &[Condition],
    ) -> Report {
        let ready = tagwarden_api::status::find(conditions, "Ready");
        Report {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            ready: ready.map_or(ConditionStatus::Unknown, |c| c.status),
            message: ready.map_or_else(String::new, |c| c.message.clone()),
        }
    }

    pub(crate) fn suspended(kind: &'static str, meta: &tagwarden_api::Meta) -> Report {
        Report {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            ready: ConditionStatus::Unknown,
            message: "reconciliation is suspended".into(),
        }
    }
}

/// Store keys: one record per object.
pub(crate) fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// Reconciles every object once, in dependency order: repositories,
/// policies, automations. One object's failure never stops the others.
pub async fn reconcile_all(ctx: &Context) -> Result<Vec<Report>, EngineError> {
    let mut reports = Vec::new();
    for o in &ctx.objects.objects {
        if let Object::ImageRepository(r) = o {
            reports.push(reconcile_repository(r, ctx).await?);
        }
    }
    for o in &ctx.objects.objects {
        if let Object::ImagePolicy(p) = o {
            reports.push(reconcile_policy(p, ctx).await?);
        }
    }
    for o in &ctx.objects.objects {
        if let Object::ImageUpdateAutomation(a) = o {
            reports.push(reconcile_automation(a, ctx).await?);
        }
    }
    Ok(reports)
}

/// The revision of a repository's last good scan: changes when its tags do.
pub fn repository_revision(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, EngineError> {
    Ok(repository::load(ctx, namespace, name)?
        .and_then(|s| s.last_scan)
        .map(|(scan, _)| scan.revision))
}

/// How many tags a repository's last good scan found.
pub fn repository_tag_count(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<usize>, EngineError> {
    Ok(repository::load(ctx, namespace, name)?
        .and_then(|s| s.last_scan)
        .map(|(scan, _)| scan.tag_count))
}

/// What a policy resolved to last.
pub fn policy_latest(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<LatestRef>, EngineError> {
    let status: Option<PolicyStatus> = ctx.load(&key("ImagePolicy", namespace, name))?;
    Ok(status.and_then(|s| s.latest))
}

/// When an object last ran, from the store: a restarted daemon waits out
/// the rest of the interval instead of running everything again.
pub fn last_run(
    ctx: &Context,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<std::time::SystemTime>, EngineError> {
    Ok(match kind {
        "ImageRepository" => {
            repository::load(ctx, namespace, name)?.and_then(|s| s.last_scan.map(|(_, t)| t))
        }
        "ImageUpdateAutomation" => ctx
            .load::<AutomationStatus>(&key(kind, namespace, name))?
            .and_then(|s| s.last_run),
        _ => None,
    })
}
