//! A small JSON API for the CLI while the daemon holds the store's lock:
//! list objects with their status, suspend and resume, reconcile and wait.

use crate::{AppState, Scheduler};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Duration;
use tagwarden_api::{Kind, ObjectId};
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

/// The loaded image object, with its `spec.suspend`.
fn loaded(s: &Scheduler, kind: &str, namespace: &str, name: &str) -> Option<(ObjectId, bool)> {
    let kind = Kind::parse(kind).filter(|k| k.is_reconciled())?;
    let id = ObjectId::new(kind, namespace, name);
    let suspended = s.catalog().find(&id)?.suspended();
    Some((id, suspended))
}

fn row_of(
    s: &Scheduler,
    id: &ObjectId,
    spec_suspend: bool,
) -> Result<ObjectRow, (StatusCode, String)> {
    let ctx = s.context();
    let status = ctx.status.read(id).map_err(internal)?;
    let flagged = listing::is_suspended(&*s.store(), id).map_err(internal)?;
    Ok(listing::row(id, status.as_ref(), spec_suspend || flagged))
}

async fn objects(State(s): State<AppState>) -> Reply<Vec<ObjectRow>> {
    let catalog = s.scheduler.catalog();
    let mut rows = Vec::new();
    for kind in Kind::RECONCILED {
        for o in catalog.of_kind(kind) {
            rows.push(row_of(&s.scheduler, &o.id(), o.suspended())?);
        }
    }
    Ok(Json(rows))
}

async fn action(
    State(s): State<AppState>,
    Path((action, kind, namespace, name)): Path<(String, String, String, String)>,
) -> Reply<ObjectRow> {
    let Some((id, spec_suspend)) = loaded(&s.scheduler, &kind, &namespace, &name) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("{kind} '{namespace}/{name}' not found"),
        ));
    };
    let store = s.scheduler.store();
    match action.as_str() {
        "suspend" | "resume" => {
            let suspend = action == "suspend";
            listing::set_suspended(&*store, &id, suspend).map_err(internal)?;
            tracing::info!(kind = id.kind.as_str(), %namespace, %name, suspend, "suspend flag set");
            if !suspend {
                s.scheduler.trigger(&id);
            }
            Ok(Json(row_of(&s.scheduler, &id, spec_suspend)?))
        }
        "reconcile" => {
            if row_of(&s.scheduler, &id, spec_suspend)?.suspended {
                return Err((StatusCode::CONFLICT, "resource is suspended".into()));
            }
            let before = s.scheduler.runs(&id);
            s.scheduler.trigger(&id);
            if s.scheduler
                .wait_for_run(&id, before, RECONCILE_TIMEOUT)
                .await
            {
                Ok(Json(row_of(&s.scheduler, &id, spec_suspend)?))
            } else {
                Err((
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout waiting for reconciliation".into(),
                ))
            }
        }
        other => Err((StatusCode::NOT_FOUND, format!("no action '{other}'"))),
    }
}
