//! A small JSON API for the CLI while the daemon holds the store's lock:
//! list objects with their status, suspend and resume, reconcile and wait.

use crate::metrics::AppState;
use crate::{ObjectKey, Scheduler};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Duration;
use tagwarden_api::Object;
use tagwarden_engine::listing::{self, ObjectRow};

/// How long a reconcile request waits for the object's status to change.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(60);

type Reply<T> = Result<Json<T>, (StatusCode, String)>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/objects", get(objects))
        .route("/api/v1/{action}/{kind}/{namespace}/{name}", post(action))
}

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The loaded image object of `kind`, with its `spec.suspend`.
fn loaded(s: &Scheduler, kind: &str, namespace: &str, name: &str) -> Option<(ObjectKey, bool)> {
    s.context().objects.objects.iter().find_map(|o| {
        let (k, suspend) = key_of(o)?;
        (k.kind == kind && k.namespace == namespace && k.name == name).then_some((k, suspend))
    })
}

fn key_of(o: &Object) -> Option<(ObjectKey, bool)> {
    let (kind, suspend) = match o {
        Object::ImageRepository(r) => ("ImageRepository", r.suspend),
        Object::ImagePolicy(_) => ("ImagePolicy", false),
        Object::ImageUpdateAutomation(a) => ("ImageUpdateAutomation", a.suspend),
        _ => return None,
    };
    Some((
        ObjectKey {
            kind,
            namespace: o.meta().namespace.clone(),
            name: o.meta().name.clone(),
        },
        suspend,
    ))
}

async fn objects(State(s): State<AppState>) -> Reply<Vec<ObjectRow>> {
    let ctx = s.scheduler.context();
    let mut rows = Vec::new();
    for kind in listing::KINDS {
        for (k, suspend) in ctx.objects.objects.iter().filter_map(key_of) {
            if k.kind == kind {
                rows.push(
                    listing::row(&*ctx.store, k.kind, &k.namespace, &k.name, suspend)
                        .map_err(internal)?,
                );
            }
        }
    }
    Ok(Json(rows))
}

async fn action(
    State(s): State<AppState>,
    Path((action, kind, namespace, name)): Path<(String, String, String, String)>,
) -> Reply<ObjectRow> {
    let Some((key, spec_suspend)) = loaded(&s.scheduler, &kind, &namespace, &name) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("{kind} '{namespace}/{name}' not found"),
        ));
    };
    let store = s.scheduler.context().store.clone();
    let row = |store: &dyn tagwarden_store::Store| {
        listing::row(store, key.kind, &namespace, &name, spec_suspend).map_err(internal)
    };
    match action.as_str() {
        "suspend" | "resume" => {
            let suspend = action == "suspend";
            listing::set_suspended(&*store, key.kind, &namespace, &name, suspend)
                .map_err(internal)?;
            tracing::info!(kind = key.kind, %namespace, %name, suspend, "suspend flag set");
            if !suspend {
                s.scheduler.trigger(key.clone());
            }
            Ok(Json(row(&*store)?))
        }
        "reconcile" => {
            if row(&*store)?.suspended {
                return Err((StatusCode::CONFLICT, "resource is suspended".into()));
            }
            let status_key = format!("{}/{namespace}/{name}", key.kind);
            let before = store.get(&status_key).map_err(internal)?;
            s.scheduler.trigger(key.clone());
            let deadline = tokio::time::Instant::now() + RECONCILE_TIMEOUT;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if store.get(&status_key).map_err(internal)? != before {
                    return Ok(Json(row(&*store)?));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err((
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout waiting for reconciliation".into(),
                    ));
                }
            }
        }
        other => Err((StatusCode::NOT_FOUND, format!("no action '{other}'"))),
    }
}
