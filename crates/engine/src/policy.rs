//! ImagePolicy: select the latest tag from the repository's last scan, and
//! its digest when asked to reflect it.

use crate::{Context, EngineError, Failure, Report, key, repository};
use tagwarden_api::status::outcome_conditions;
use tagwarden_api::{ImagePolicy, Object};
use tagwarden_registry::{Client, scan_settings};

/// The image a policy resolved to (`status.latestRef`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LatestRef {
    /// The repository's `spec.image`, as written.
    pub name: String,
    pub tag: String,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PolicyStatus {
    pub latest: Option<LatestRef>,
    /// What `latest` was before it last changed (Flux's `observedPreviousRef`).
    #[serde(default)]
    pub observed_previous: Option<LatestRef>,
    pub conditions: Vec<tagwarden_api::status::Condition>,
}

pub async fn reconcile_policy(policy: &ImagePolicy, ctx: &Context) -> Result<Report, EngineError> {
    const KIND: &str = "ImagePolicy";
    let k = key(KIND, &policy.meta.namespace, &policy.meta.name);
    let previous: PolicyStatus = ctx.load(&k)?.unwrap_or_default();
    let now = ctx.clock.now();
    let status = match resolve(policy, ctx, previous.latest.as_ref()).await? {
        Ok(latest) => {
            let message = match &previous.latest {
                Some(old) if old.tag != latest.tag => format!(
                    "Latest image tag for '{}' updated from {} to {}",
                    latest.name, old.tag, latest.tag
                ),
                _ => format!(
                    "Latest image tag for '{}' resolved to {}",
                    latest.name, latest.tag
                ),
            };
            tracing::info!(kind = KIND, namespace = %policy.meta.namespace, name = %policy.meta.name, tag = %latest.tag, "resolved");
            PolicyStatus {
                conditions: outcome_conditions(
                    &previous.conditions,
                    true,
                    false,
                    "Succeeded",
                    &message,
                    now,
                ),
                observed_previous: if previous.latest.as_ref() != Some(&latest) {
                    previous.latest.clone()
                } else {
                    previous.observed_previous.clone()
                },
                latest: Some(latest),
            }
        }
        Err(f) => {
            tracing::warn!(kind = KIND, namespace = %policy.meta.namespace, name = %policy.meta.name, reason = f.reason, error = %f.message, "not resolved");
            PolicyStatus {
                // The last good selection stays: automations keep a sound value.
                latest: previous.latest.clone(),
                observed_previous: previous.observed_previous.clone(),
                conditions: f.conditions(&previous.conditions, now),
            }
        }
    };
    ctx.save(&k, &status)?;
    Ok(Report::from_conditions(
        KIND,
        &policy.meta,
        &status.conditions,
    ))
}

/// Flux's `accessFrom` check: a policy in another namespace may use the
/// repository only when the repository's `spec.accessFrom` selects the
/// policy's namespace by its labels (see [`tagwarden_api::Manifests::namespace_labels`]).
fn access_denied(
    policy: &ImagePolicy,
    repo: &tagwarden_api::ImageRepository,
    ctx: &Context,
) -> Option<String> {
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
    let not_ready = |message: String| {
        Ok(Err(Failure {
            reason: "DependencyNotReady",
            message,
            stalled: false,
        }))
    };
    let Some(repo) = ctx.objects.objects.iter().find_map(|o| match o {
        Object::ImageRepository(r) if r.meta.namespace == repo_ns && &r.meta.name == repo_name => {
            Some(r)
        }
        _ => None,
    }) else {
        return not_ready(format!(
            "referenced ImageRepository '{repo_ns}/{repo_name}' not found"
        ));
    };
    if let Some(message) = access_denied(policy, repo, ctx) {
        return Ok(Err(Failure {
            reason: "AccessDenied",
            message,
            stalled: false,
        }));
    }
    let Some((scan, _)) = repository::load(ctx, &repo_ns, repo_name)?.and_then(|s| s.last_scan)
    else {
        return not_ready(format!(
            "referenced ImageRepository '{repo_ns}/{repo_name}' has no scan result yet"
        ));
    };
    let compiled = match tagwarden_policy::Policy::new(&policy.policy_spec()) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Err(Failure {
                reason: "InvalidPolicy",
                message: e.to_string(),
                stalled: true,
            }));
        }
    };
    let tag = match compiled.select(&scan.tags) {
        Ok(s) => s.tag.to_string(),
        Err(e) => {
            return Ok(Err(Failure {
                reason: "ReconciliationFailed",
                message: e.to_string(),
                stalled: false,
            }));
        }
    };
    let reuse = previous
        .filter(|p| p.tag == tag)
        .and_then(|p| p.digest.clone());
    let digest = match (policy.digest_reflection_policy.as_str(), reuse) {
        ("Never", _) => None,
        ("IfNotPresent", Some(d)) => Some(d),
        _ => {
            let settings = scan_settings(repo, |name| ctx.secret(&repo_ns, name));
            let fetched = match settings {
                Ok(s) => match Client::new(s.options.clone()) {
                    Ok(c) => c.digest(&s.image, &tag, s.credentials.as_ref()).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match fetched {
                Ok(d) => Some(d),
                Err(e) => {
                    return Ok(Err(Failure {
                        reason: e.reason(),
                        message: format!("failed to reflect digest of '{}:{tag}': {e}", repo.image),
                        stalled: false,
                    }));
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
