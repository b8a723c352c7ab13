pub mod control;
pub mod controller;
pub mod create;
pub mod demo;
pub mod get;
pub mod install;
pub mod policy;
pub mod run;
pub mod scan;
pub mod update;

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tagwarden_api::status::ConditionStatus;
use tagwarden_api::{Manifests, Object, ObjectId};
use tagwarden_engine::{Catalog, Context, EngineError, Outcome};
use tagwarden_store::Store;

/// glibc malloc arenas for the daemon and the controller: one per worker
/// thread. More let each keep its own free holes (MALLOC_ARENA_MAX=2 took
/// ~2 MiB off the controller at 10,000 objects).
pub(crate) const MALLOC_ARENAS: usize = 2;

/// The wiring of one-shot runs (`run --once`, the demo): the manifests as
/// objects, status and tags in `store`, a registry client pool, libgit2.
pub fn once_context(manifests: Manifests, store: Arc<dyn Store>) -> Context {
    let mut ctx = Context::new(
        Arc::new(Catalog::new(manifests)),
        store,
        Arc::new(tagwarden_cloud::pool(None)),
        Arc::new(tagwarden_git::Git2),
    );
    ctx.forge = Arc::new(tagwarden_forge::Http::new());
    ctx
}

/// A state dir of an older tagwarden: its private status records go (each
/// object's status is recomputed on its next reconcile); said once.
pub fn drop_legacy_records(store: &dyn Store) {
    match tagwarden_engine::drop_legacy_records(store) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            records = n,
            "status records of an older tagwarden dropped: recomputed by the next reconciles"
        ),
        Err(e) => tracing::warn!(error = %e, "old status records not dropped"),
    }
}

/// How one object ended, as the run summary shows it; an engine error is
/// that object's failure.
pub fn summary(
    r: &Result<Outcome, (ObjectId, EngineError)>,
) -> (ObjectId, ConditionStatus, String) {
    match r {
        Ok(o) => {
            let (ready, message) = o.ready();
            (o.id.clone(), ready, message)
        }
        Err((id, e)) => (id.clone(), ConditionStatus::False, e.to_string()),
    }
}

/// The one object of `kind` in `m` (named `name` when given), or an error
/// that lists what the file holds instead.
pub fn one_object<'a, T>(
    m: &'a Manifests,
    file: &Path,
    name: Option<&str>,
    kind: tagwarden_api::Kind,
    pick: impl Fn(&'a Object) -> Option<&'a T>,
) -> Result<&'a T> {
    let chosen: Vec<(&Object, &T)> = m
        .objects
        .iter()
        .filter_map(|o| pick(o).map(|t| (o, t)))
        .filter(|(o, _)| name.is_none_or(|n| o.meta().name == n))
        .collect();
    match chosen.as_slice() {
        [(_, one)] => Ok(one),
        [] => {
            let mut msg = match name {
                Some(n) => format!("{}: no {kind} named '{n}'", file.display()),
                None => format!("{}: no {kind} found", file.display()),
            };
            for e in &m.errors {
                msg.push_str(&format!("\n  {e}"));
            }
            bail!(msg)
        }
        many => bail!(
            "{}: {} {kind} objects ({}); choose one with --name",
            file.display(),
            many.len(),
            many.iter()
                .map(|(o, _)| o.meta().name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Unknown fields in the manifests: a warning each on stderr, or with
/// `--strict` an error each that also refuses its object.
pub fn unknown_fields(m: Manifests, strict: bool) -> Manifests {
    if strict {
        return m.strict();
    }
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    m
}

/// The daemon's state dir when none is given: `$XDG_STATE_HOME/tagwarden`,
/// else `~/.local/state/tagwarden`.
pub fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("tagwarden"))
}
