//! The daemon's routes: health, metrics and the Receivers' webhooks on the
//! public listener; the same health check and the control API on the
//! private socket.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// The public listener's routes: health, metrics and the Receivers. The
/// control API is not among them.
pub(crate) fn public_routes(state: AppState, hooks: Arc<crate::http::RateLimit>) -> Router {
    let hook = Router::new()
        .route("/hook/{digest}", axum::routing::any(hook))
        .layer(axum::middleware::from_fn_with_state(
            hooks,
            crate::http::limit_hooks,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/api/{*rest}", axum::routing::any(no_api))
        .merge(hook)
        // The receiver checks the size itself, to answer 413 as Flux does.
        .layer(axum::extract::DefaultBodyLimit::max(
            tagwarden_receivers::MAX_BODY + 1,
        ))
        .with_state(state)
}

/// The control socket's routes: the API, and health so the CLI can tell a
/// live daemon from a stale socket.
pub(crate) fn control_routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::api::routes())
        .with_state(state)
}

async fn no_api() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "not found: the control API is served on the daemon's unix socket only",
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.scheduler.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first reconciles still running",
        )
    }
}

async fn render_metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// A webhook: find the Receiver by its path, check the request as its type
/// demands, then reconcile its targets at once.
async fn hook(
    State(s): State<AppState>,
    axum::extract::Path(digest): axum::extract::Path<String>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    use tagwarden_api::{Kind, Object, ObjectId};
    let catalog = s.scheduler.catalog();
    let path = format!("/hook/{digest}");
    let found = catalog.of_kind(Kind::Receiver).find_map(|o| {
        let Object::Receiver(r) = o else { return None };
        let secret_id = ObjectId::new(Kind::Secret, r.meta.namespace.clone(), r.secret_ref.clone());
        let Some(Object::Secret(secret)) = catalog.find(&secret_id) else {
            return None;
        };
        let token = String::from_utf8_lossy(secret.data.get("token")?).into_owned();
        (tagwarden_receivers::hook_path(&token, &r.meta.name, &r.meta.namespace) == path)
            .then(|| (r.clone(), token))
    });
    let Some((receiver, token)) = found else {
        return (
            StatusCode::NOT_FOUND,
            "no receiver at this path".to_string(),
        );
    };
    if receiver.suspend {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "receiver is suspended".into(),
        );
    }
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = tagwarden_receivers::Request {
        method: method.as_str(),
        headers: &headers,
        body: &body,
    };
    if let Err(e) =
        tagwarden_receivers::validate(&receiver.receiver_type, &receiver.events, &token, &request)
    {
        tracing::warn!(receiver = %receiver.meta.name, namespace = %receiver.meta.namespace, reason = %e, "webhook refused");
        let status = match e {
            tagwarden_receivers::RejectReason::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            tagwarden_receivers::RejectReason::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            tagwarden_receivers::RejectReason::InvalidJson(_)
            | tagwarden_receivers::RejectReason::Payload(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        return (status, e.to_string());
    }
    // Flux refuses these resources; the others are still reconciled.
    let refused = tagwarden_receivers::resource_errors(&receiver);
    for e in &refused {
        tracing::warn!(receiver = %receiver.meta.name, namespace = %receiver.meta.namespace, error = %e, "receiver resource refused");
    }
    let targets = tagwarden_receivers::targets(&receiver, &catalog.manifests().objects);
    for id in &targets {
        s.scheduler.trigger(id);
    }
    tracing::info!(receiver = %receiver.meta.name, namespace = %receiver.meta.namespace, targets = targets.len(), "webhook accepted");
    if !refused.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "reconciling {} objects; {}",
                targets.len(),
                refused.join("; ")
            ),
        );
    }
    (
        StatusCode::OK,
        format!("reconciling {} objects", targets.len()),
    )
}
