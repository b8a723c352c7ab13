//! ImageRepository: scan the registry, keep the tags.

use crate::{Context, EngineError, Report, key};
use tagwarden_api::ImageRepository;
use tagwarden_registry::{Client, RepositoryStatus, record_scan, scan_result, scan_settings};

/// Scans once and records the result; a failed scan keeps the last tags.
pub async fn reconcile_repository(
    repo: &ImageRepository,
    ctx: &Context,
) -> Result<Report, EngineError> {
    const KIND: &str = "ImageRepository";
    if repo.suspend {
        return Ok(Report::suspended(KIND, &repo.meta));
    }
    let k = key(KIND, &repo.meta.namespace, &repo.meta.name);
    let previous: Option<RepositoryStatus> = ctx.load(&k)?;
    let ns = repo.meta.namespace.clone();
    let outcome = async {
        let s = scan_settings(repo, |name| ctx.secret(&ns, name))?;
        let tags = Client::new(s.options.clone())?
            .scan_tags(&s.image, s.credentials.as_ref())
            .await?;
        Ok(scan_result(&s.image.canonical(), tags, &s.exclusions))
    }
    .await;
    let status = record_scan(
        previous.as_ref(),
        outcome.as_ref().map(Clone::clone),
        ctx.clock.now(),
    );
    match &outcome {
        Ok(r) => {
            tracing::info!(kind = KIND, namespace = %repo.meta.namespace, name = %repo.meta.name, image = %r.canonical_image_name, tags = r.tag_count, invalid_tags = r.invalid_tag_count, "scanned")
        }
        Err(e) => {
            tracing::warn!(kind = KIND, namespace = %repo.meta.namespace, name = %repo.meta.name, error = %e, "scan failed")
        }
    }
    ctx.save(&k, &status)?;
    Ok(Report::from_conditions(
        KIND,
        &repo.meta,
        &status.conditions,
    ))
}

/// The recorded status of a repository, if it was ever reconciled.
pub(crate) fn load(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<RepositoryStatus>, EngineError> {
    ctx.load(&key("ImageRepository", namespace, name))
}
