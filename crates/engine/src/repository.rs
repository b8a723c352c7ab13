//! ImageRepository: scan the registry, keep the tags.

use crate::outcome::{events, success_conditions};
use crate::{Change, Context, EngineError, Failure, Outcome, state};
use tagwarden_api::status::{ImageRepositoryStatus, ScanResult, Status};
use tagwarden_api::time::Time;
use tagwarden_api::{ImageRepository, Kind, ObjectId, Secret};
use tagwarden_registry::{RegistryError, ScanSettings, scan_result, scan_settings};

/// How many tags `status.lastScanResult.latestTags` lists, as Flux.
const LATEST_TAGS: usize = 10;

/// What a scan needs from the repository's spec and the Secrets it names.
pub(crate) fn settings(
    repo: &ImageRepository,
    ctx: &Context,
) -> Result<ScanSettings, RegistryError> {
    let ns = &repo.meta.namespace;
    let secrets: Vec<Secret> = [
        &repo.secret_ref,
        &repo.cert_secret_ref,
        &repo.proxy_secret_ref,
    ]
    .into_iter()
    .flatten()
    .filter_map(|name| ctx.secret(ns, name))
    .collect();
    let mut s = scan_settings(repo, |name| secrets.iter().find(|s| s.meta.name == name))?;
    let field = || "spec.serviceAccountName".to_string();
    let service_account = |sa_name: &str| match ctx.objects.get(&ObjectId::new(
        Kind::ServiceAccount,
        ns.clone(),
        sa_name.to_string(),
    )) {
        Some(tagwarden_api::Object::ServiceAccount(sa)) => Ok(sa),
        _ => Err(RegistryError::Secret {
            field: field(),
            message: format!("service account '{ns}/{sa_name}' not found"),
        }),
    };
    // A cloud login with a service account is that account's identity, and
    // only where the gate allows it (Flux stalls otherwise).
    if let (Some(login), Some(sa_name)) = (&mut s.login, &repo.service_account_name) {
        if !ctx.object_level_identity {
            return Err(RegistryError::FeatureGate(
                "to use spec.serviceAccountName for provider authentication please enable the ObjectLevelWorkloadIdentity feature gate in the controller".into(),
            ));
        }
        let sa = service_account(sa_name)?;
        login.identity = tagwarden_registry::Identity::ServiceAccount {
            namespace: ns.clone(),
            name: sa_name.clone(),
            annotations: sa.meta.annotations.clone(),
        };
        return Ok(s);
    }
    // As Flux: without credentials from secretRef, the service account's
    // imagePullSecrets are tried in order; the first for this registry wins.
    if s.credentials.is_none()
        && s.login.is_none()
        && let Some(sa_name) = &repo.service_account_name
    {
        let sa = service_account(sa_name)?;
        for name in &sa.image_pull_secrets {
            let Some(secret) = ctx.secret(ns, name) else {
                continue;
            };
            let Some(json) = secret
                .data
                .get(".dockerconfigjson")
                .or_else(|| secret.data.get(".dockercfg"))
            else {
                continue;
            };
            let found = tagwarden_registry::credentials_from_docker_config(json, &s.image.registry)
                .map_err(|m| RegistryError::Secret {
                    field: field(),
                    message: format!("imagePullSecret '{name}': {m}"),
                })?;
            if found.is_some() {
                s.credentials = found;
                break;
            }
        }
    }
    Ok(s)
}

/// Scans once; a failed scan keeps the last tags and `lastScanResult`.
pub(crate) async fn reconcile(
    repo: &ImageRepository,
    ctx: &Context,
) -> Result<Outcome, EngineError> {
    let id = ObjectId::new(
        Kind::ImageRepository,
        repo.meta.namespace.clone(),
        repo.meta.name.clone(),
    );
    let previous = match ctx.status.read(&id)? {
        Some(Status::ImageRepository(s)) => s,
        _ => ImageRepositoryStatus::default(),
    };
    if repo.suspend {
        return Ok(Outcome::suspended(id, Status::ImageRepository(previous)));
    }
    let now = ctx.clock.now();
    let generation = repo.meta.generation;
    let scanned = async {
        let s = settings(repo, ctx)?;
        let tags = ctx.registry.scan(&s).await?;
        let r = scan_result(&s.image.canonical(), tags, &s.exclusions);
        Ok::<_, RegistryError>((s.list_identity(), r))
    }
    .await;
    let mut status = ImageRepositoryStatus {
        observed_generation: generation,
        last_handled_reconcile_at: repo
            .meta
            .reconcile_requested_at()
            .map(str::to_string)
            .or(previous.last_handled_reconcile_at.clone()),
        ..previous.clone()
    };
    let (change, failure) = match scanned {
        Ok((list, r)) => {
            tracing::info!(kind = Kind::ImageRepository.as_str(), namespace = %repo.meta.namespace, name = %repo.meta.name, image = %r.canonical_image_name, tags = r.tag_count, invalid_tags = r.invalid_tag_count, "scanned");
            let moved = previous
                .last_scan_result
                .as_ref()
                .is_none_or(|p| p.revision != r.revision);
            let (ns, name) = (&repo.meta.namespace, &repo.meta.name);
            // First-seen times for `tagwarden.io/minimum-age`: a repository
            // without a record (first scan, or an older tagwarden) starts one
            // in which today's tags count as old.
            let known = crate::guards::load_first_seen(&*ctx.db, Some(&list), ns, name)?;
            if known.is_none() || moved {
                let before = match known {
                    Some(_) => match state::load_list(&*ctx.db, &list)? {
                        Some(l) => Some(l),
                        None => state::load_tags(&*ctx.db, ns, name)?,
                    },
                    None => None,
                };
                crate::guards::record_first_seen(
                    &*ctx.db,
                    &list,
                    known,
                    before.as_deref(),
                    &r.tags,
                    now,
                )?;
            }
            // An unchanged list is not written again (unless the store lost
            // it: a controller restarted on an in-memory store).
            if moved || !state::has_list(&*ctx.db, ns, name, &list)? {
                state::save_tags(&*ctx.db, ns, name, &list, &r.tags)?;
            }
            status.conditions =
                success_conditions(&previous.conditions, &r.message(), generation, now);
            status.canonical_image_name = Some(r.canonical_image_name.clone());
            status.observed_exclusion_list = repo.exclusion_list.clone();
            status.last_scan_result = Some(ScanResult {
                revision: r.revision.clone(),
                tag_count: r.tag_count,
                scan_time: Time::from_system(now),
                latest_tags: r.tags.iter().take(LATEST_TAGS).cloned().collect(),
            });
            let change = moved.then_some(Change::Tags {
                revision: r.revision,
                tag_count: r.tag_count,
            });
            (change, None)
        }
        Err(e) => {
            tracing::warn!(kind = Kind::ImageRepository.as_str(), namespace = %repo.meta.namespace, name = %repo.meta.name, error = %e, "scan failed");
            let f = Failure::new(e.reason(), e.to_string(), e.is_stalled());
            status.conditions = f.conditions(&previous.conditions, generation, now);
            (None, Some(f))
        }
    };
    Ok(Outcome {
        id,
        events: events(&previous.conditions, &status.conditions),
        status: Status::ImageRepository(status),
        change,
        requeue_after: Some(repo.interval),
        plan: None,
        failure,
        suspended: false,
    })
}
