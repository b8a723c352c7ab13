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
    let mut recheck = None;
    let (ns, name) = (&policy.meta.namespace, &policy.meta.name);
    let (change, failure) = match resolve(policy, ctx, previous.latest_ref.as_ref()).await? {
        Ok((mut latest, mut held)) => {
            // The flap guard: A -> B -> A within the window keeps B.
            if let (Ok(g), Some(current)) = (
                crate::guards::Guards::of(policy),
                previous.latest_ref.as_ref(),
            ) && let Some(window) = g.flap_window
                && let Some((note, wait)) = crate::guards::flap(
                    window,
                    &current.tag,
                    previous
                        .observed_previous_ref
                        .as_ref()
                        .map(|p| p.tag.as_str()),
                    &latest.tag,
                    crate::guards::selected_at(&*ctx.db, ns, name),
                    now,
                )
            {
                held.notes.push(note);
                held.recheck = Some(held.recheck.map_or(wait, |r| r.min(wait)));
                latest = current.clone();
            }
            if previous.latest_ref.as_ref().map(|l| &l.tag) != Some(&latest.tag) {
                crate::guards::set_selected_at(&*ctx.db, ns, name, now)?;
            }
            recheck = held.recheck;
            let mut message = match &previous.latest_ref {
                Some(old) if old.tag != latest.tag => format!(
                    "Latest image tag for '{}' updated from {} to {}",
                    latest.name, old.tag, latest.tag
                ),
                _ => format!(
                    "Latest image tag for '{}' resolved to {}",
                    latest.name, latest.tag
                ),
            };
            for n in &held.notes {
                message.push_str("; ");
                message.push_str(n);
            }
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
        // A tag held back by the minimum age is looked at again when it is old enough.
        requeue_after: match (policy.interval.filter(|d| !d.is_zero()), recheck) {
            (Some(i), Some(r)) => Some(i.min(r)),
            (i, r) => i.or(r),
        },
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
) -> Result<Result<(LatestRef, crate::guards::Held), Failure>, EngineError> {
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
    let guards = match crate::guards::Guards::of(policy) {
        Ok(g) => g,
        Err(f) => return Ok(Err(f)),
    };
    let mut held = crate::guards::Held::default();
    let mut tags = tags;
    if let Some(min) = guards.minimum_age.filter(|_| !guards.age_from_created) {
        let list = state::list_of(&*ctx.db, &repo_ns, repo_name)?;
        let fs = crate::guards::load_first_seen(&*ctx.db, list.as_deref(), &repo_ns, repo_name)?;
        let best = compiled.select(&tags).ok().map(|s| s.tag.to_string());
        let all = tags.len();
        tags = crate::guards::old_enough(
            &tags,
            fs.as_ref(),
            min,
            best.as_deref(),
            ctx.clock.now(),
            &mut held,
        );
        if tags.is_empty() && all > 0 {
            let mut f = Failure::new(
                "DependencyNotReady",
                format!(
                    "no tag of '{}' is old enough yet: {}",
                    repo.image,
                    held.notes.join("; ")
                ),
                false,
            );
            f.retry_after = held.recheck;
            return Ok(Err(f));
        }
    }
    let mut skipped: Vec<String> = Vec::new();
    let mut tries = 0;
    let tag = loop {
        let tag = match compiled.select(&tags) {
            Ok(s) => s.tag.to_string(),
            Err(e) => {
                let mut message = e.to_string();
                if !skipped.is_empty() {
                    message = format!(
                        "no tag has the platforms of {}: skipped {}",
                        crate::guards::PLATFORMS,
                        skipped.join(", ")
                    );
                }
                return Ok(Err(Failure::new("ReconciliationFailed", message, false)));
            }
        };
        if guards.platforms.is_empty() && !(guards.age_from_created && guards.minimum_age.is_some())
        {
            break tag;
        }
        tries += 1;
        // The minimum age from the image config's `created` time.
        if let (Some(min), true) = (guards.minimum_age, guards.age_from_created) {
            let created = match crate::repository::settings(&repo, ctx) {
                Ok(s) => crate::guards::created(ctx, &s, &tag).await,
                Err(e) => Err(e),
            };
            let created = match created {
                Ok(c) => c,
                Err(e) => {
                    return Ok(Err(Failure::new(
                        e.reason(),
                        format!(
                            "failed to read the created time of '{}:{tag}': {e}",
                            repo.image
                        ),
                        false,
                    )));
                }
            };
            let now = ctx.clock.now();
            if let Some(at) = created.map(|c| c + min).filter(|at| *at > now) {
                if held.recheck.is_none() {
                    held.notes.push(format!(
                        "{tag} held back by {} {} (image created {}): eligible at {}",
                        crate::guards::MINIMUM_AGE,
                        tagwarden_api::duration::format(min),
                        tagwarden_api::time::Time::from_system(at - min),
                        tagwarden_api::time::Time::from_system(at)
                    ));
                    held.recheck = at.duration_since(now).ok();
                }
                tags.retain(|t| *t != tag);
                if tries >= crate::guards::platform_tries() || tags.is_empty() {
                    let mut f = Failure::new(
                        "DependencyNotReady",
                        format!(
                            "no tag of '{}' is old enough yet: {}",
                            repo.image,
                            held.notes.join("; ")
                        ),
                        false,
                    );
                    f.retry_after = held.recheck;
                    return Ok(Err(f));
                }
                continue;
            }
        }
        if guards.platforms.is_empty() {
            break tag;
        }
        let checked = match crate::repository::settings(&repo, ctx) {
            Ok(s) => crate::guards::has_platforms(ctx, &s, &tag, &guards.platforms).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(Ok(())) => break tag,
            Ok(Err(missing)) => {
                skipped.push(format!("{tag} (lacks {})", missing.join(", ")));
                tags.retain(|t| *t != tag);
                if tries >= crate::guards::platform_tries() {
                    return Ok(Err(Failure::new(
                        "ReconciliationFailed",
                        format!(
                            "none of the {tries} best tags has the platforms of {}: skipped {}",
                            crate::guards::PLATFORMS,
                            skipped.join(", ")
                        ),
                        false,
                    )));
                }
            }
            Err(e) => {
                return Ok(Err(Failure::new(
                    e.reason(),
                    format!(
                        "failed to read the platforms of '{}:{tag}': {e}",
                        repo.image
                    ),
                    false,
                )));
            }
        }
    };
    if !skipped.is_empty() {
        held.notes.push(format!(
            "skipped for {}: {}",
            crate::guards::PLATFORMS,
            skipped.join(", ")
        ));
    }
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
    Ok(Ok((
        LatestRef {
            name: repo.image.clone(),
            tag,
            digest,
        },
        held,
    )))
}
