//! ImagePolicy: select the latest tag from the repository's last scan, and
//! its digest when asked to reflect it.

use crate::outcome::{events, success_conditions};
use crate::{Change, Context, EngineError, Failure, Outcome, state};
use tagwarden_api::status::{ImagePolicyStatus, Status};
use tagwarden_api::{ImagePolicy, ImageRepository, Kind, LatestRef, Object, ObjectId};

pub(crate) async fn reconcile(policy: &ImagePolicy, ctx: &Context) -> Result<Outcome, EngineError> {
    let id = ObjectId::new(
        Kind::ImagePolicy,
        policy.meta.namespace.clone(),
        policy.meta.name.clone(),
    );
    let previous = match ctx.status.read(&id)? {
        Some(Status::ImagePolicy(s)) => s,
        _ => ImagePolicyStatus::default(),
    };
    if policy.suspend {
        return Ok(Outcome::suspended(id, Status::ImagePolicy(previous)));
    }
    let now = ctx.clock.now();
    let generation = policy.meta.generation;
    let mut status = ImagePolicyStatus {
        observed_generation: generation,
        last_handled_reconcile_at: policy
            .meta
            .reconcile_requested_at()
            .map(str::to_string)
            .or(previous.last_handled_reconcile_at.clone()),
        // The last good selection stays on failure: automations keep a sound value.
        ..previous.clone()
    };
    let (change, failure) = match resolve(policy, ctx, previous.latest_ref.as_ref()).await? {
        Ok(latest) => {
            let message = match &previous.latest_ref {
                Some(old) if old.tag != latest.tag => format!(
                    "Latest image tag for '{}' updated from {} to {}",
                    latest.name, old.tag, latest.tag
                ),
                _ => format!(
                    "Latest image tag for '{}' resolved to {}",
                    latest.name, latest.tag
                ),
            };
            tracing::info!(kind = Kind::ImagePolicy.as_str(), namespace = %policy.meta.namespace, name = %policy.meta.name, tag = %latest.tag, "resolved");
            status.conditions = success_conditions(&previous.conditions, &message, generation, now);
            let change = (previous.latest_ref.as_ref() != Some(&latest)).then(|| {
                status.observed_previous_ref = previous.latest_ref.clone();
                Change::Latest {
                    previous: previous.latest_ref.clone(),
                    latest: latest.clone(),
                }
            });
            status.latest_ref = Some(latest);
            (change, None)
        }
        Err(f) => {
            tracing::warn!(kind = Kind::ImagePolicy.as_str(), namespace = %policy.meta.namespace, name = %policy.meta.name, reason = f.reason, error = %f.message, "not resolved");
            status.conditions = f.conditions(&previous.conditions, generation, now);
            (None, Some(f))
        }
    };
    Ok(Outcome {
        id,
        events: events(&previous.conditions, &status.conditions),
        status: Status::ImagePolicy(status),
        change,
        // A policy runs when its repository's tags change; digest
        // reflection (`Always`) gives it an interval of its own.
        requeue_after: policy.interval.filter(|d| !d.is_zero()),
        plan: None,
        failure,
        suspended: false,
    })
}

/// Flux's `accessFrom` check: a policy in another namespace may use the
/// repository only when the repository's `spec.accessFrom` selects the
/// policy's namespace by its labels.
fn access_denied(policy: &ImagePolicy, repo: &ImageRepository, ctx: &Context) -> Option<String> {
    let (ns, name) = (&repo.meta.namespace, &repo.meta.name);
    if *ns == policy.meta.namespace {
        return None;
    }
    let Some(acl) = &repo.access_from else {
        return Some(format!(
            "'{ns}/{name}' can't be accessed due to missing ACL labels on 'accessFrom'"
        ));
    };
    let labels = ctx.objects.namespace_labels(&policy.meta.namespace);
    if acl.grants(&labels) {
        return None;
    }
    Some(format!(
        "'{ns}/{name}' can't be accessed due to ACL labels mismatch on namespace '{}'",
        policy.meta.namespace
    ))
}

async fn resolve(
    policy: &ImagePolicy,
    ctx: &Context,
    previous: Option<&LatestRef>,
) -> Result<Result<LatestRef, Failure>, EngineError> {
    let repo_ns = policy
        .image_repository_ref
        .namespace
        .clone()
        .unwrap_or_else(|| policy.meta.namespace.clone());
    let repo_name = &policy.image_repository_ref.name;
    let not_ready = |message: String| Ok(Err(Failure::new("DependencyNotReady", message, false)));
    let repo_id = ObjectId::new(Kind::ImageRepository, repo_ns.clone(), repo_name.clone());
    if let Some(f) = ctx.cross_namespace_denied(&policy.meta.namespace, &repo_id) {
        return Ok(Err(f));
    }
    let Some(Object::ImageRepository(repo)) = ctx.objects.get(&repo_id) else {
        return not_ready(format!(
            "referenced ImageRepository '{repo_ns}/{repo_name}' not found"
        ));
    };
    if let Some(message) = access_denied(policy, &repo, ctx) {
        return Ok(Err(Failure::new("AccessDenied", message, false)));
    }
    let Some(tags) = state::load_tags(&*ctx.db, &repo_ns, repo_name)? else {
        return not_ready(format!(
            "referenced ImageRepository '{repo_ns}/{repo_name}' has no scan result yet"
        ));
    };
    let compiled = match tagwarden_policy::Policy::new(&policy.policy_spec()) {
        Ok(p) => p,
        Err(e) => return Ok(Err(Failure::new("InvalidPolicy", e.to_string(), true))),
    };
    let tag = match compiled.select(&tags) {
        Ok(s) => s.tag.to_string(),
        Err(e) => {
            return Ok(Err(Failure::new(
                "ReconciliationFailed",
                e.to_string(),
                false,
            )));
        }
    };
    let reuse = previous
        .filter(|p| p.tag == tag)
        .and_then(|p| p.digest.clone());
    let digest = match (policy.digest_reflection_policy.as_str(), reuse) {
        ("Never", _) => None,
        ("IfNotPresent", Some(d)) => Some(d),
        _ => {
            let fetched = match crate::repository::settings(&repo, ctx) {
                Ok(s) => ctx.registry.digest(&s, &tag).await,
                Err(e) => Err(e),
            };
            match fetched {
                Ok(d) => Some(d),
                Err(e) => {
                    return Ok(Err(Failure::new(
                        e.reason(),
                        format!("failed to reflect digest of '{}:{tag}': {e}", repo.image),
                        false,
                    )));
                }
            }
        }
    };
    Ok(Ok(LatestRef {
        name: repo.image.clone(),
        tag,
        digest,
    }))
}
