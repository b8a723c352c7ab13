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
    let catalog = s.scheduler.catalog();
    let path = format!("/hook/{digest}");
    let headers = owned_headers(&headers);
    let request = tagwarden_receivers::Request {
        method: method.as_str(),
        headers: &headers,
        body: &body,
    };
    let d = tagwarden_receivers::dispatch(&catalog.manifests().objects, &path, &request);
    log_decision(&d);
    for id in &d.targets {
        s.scheduler.trigger(id);
    }
    (
        StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        d.message,
    )
}

/// Header names and values as text (values that are not UTF-8 lossily).
pub fn owned_headers(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// One log line per webhook, as the daemon and the controller write it.
pub fn log_decision(d: &tagwarden_receivers::Decision) {
    let (ns, name) = d.receiver.clone().unwrap_or_default();
    if let Some(e) = &d.rejected {
        tracing::warn!(receiver = %name, namespace = %ns, reason = %e, "webhook refused");
        return;
    }
    for e in &d.refused {
        tracing::warn!(receiver = %name, namespace = %ns, error = %e, "receiver resource refused");
    }
    if d.status < 300 || !d.refused.is_empty() {
        tracing::info!(receiver = %name, namespace = %ns, targets = d.targets.len(), "webhook accepted");
    }
}
