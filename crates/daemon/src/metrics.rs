//! Prometheus metrics, health endpoints and the HTTP server.

use crate::{ObjectKey, Scheduler};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

type Labels = Vec<(String, String)>;

/// What the daemon counts.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    durations: Family<Labels, Histogram>,
    ready: Family<Labels, Gauge>,
    tags: Family<Labels, Gauge>,
    pushes: Family<Labels, Counter>,
    /// Mirrors the registry client's process-wide counts at each scrape.
    registry_requests: Family<Labels, Counter>,
    /// One scrape at a time, so two never add the same requests twice.
    scrape: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tagwarden");
        let reconciles = Family::<Labels, Counter>::default();
        let durations = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let ready = Family::<Labels, Gauge>::default();
        let tags = Family::<Labels, Gauge>::default();
        let pushes = Family::<Labels, Counter>::default();
        let registry_requests = Family::<Labels, Counter>::default();
        registry.register(
            "registry_requests",
            "Registry HTTP requests by status code (0: no response)",
            registry_requests.clone(),
        );
        registry.register(
            "repository_tags",
            "Tags of the last good scan, per ImageRepository",
            tags.clone(),
        );
        registry.register(
            "pushes",
            "Commits pushed, per ImageUpdateAutomation",
            pushes.clone(),
        );
        registry.register(
            "reconcile",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind and result",
            durations.clone(),
        );
        registry.register(
            "ready",
            "1 when the object's Ready condition is True",
            ready.clone(),
        );
        Metrics {
            registry,
            reconciles,
            durations,
            ready,
            tags,
            pushes,
            registry_requests,
            scrape: std::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    pub(crate) fn observe(&self, key: &ObjectKey, ready: bool, took: Duration) {
        let result = if ready { "success" } else { "failure" };
        let by_result: Labels = vec![
            ("kind".into(), key.kind.into()),
            ("result".into(), result.into()),
        ];
        self.reconciles.get_or_create(&by_result).inc();
        self.durations
            .get_or_create(&by_result)
            .observe(took.as_secs_f64());
        let object: Labels = vec![
            ("kind".into(), key.kind.into()),
            ("namespace".into(), key.namespace.clone()),
            ("name".into(), key.name.clone()),
        ];
        self.ready.get_or_create(&object).set(i64::from(ready));
    }

    pub(crate) fn tags(&self, namespace: &str, name: &str, count: usize) {
        let labels: Labels = vec![
            ("namespace".into(), namespace.into()),
            ("name".into(), name.into()),
        ];
        self.tags
            .get_or_create(&labels)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn pushed(&self, namespace: &str, name: &str) {
        let labels: Labels = vec![
            ("namespace".into(), namespace.into()),
            ("name".into(), name.into()),
        ];
        self.pushes.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        for (status, total) in tagwarden_registry::request_counts() {
            let c = self
                .registry_requests
                .get_or_create(&vec![("status".to_string(), status.to_string())]);
            // Counters only go up: add what happened since the last scrape.
            let seen = c.get();
            if total > seen {
                c.inc_by(total - seen);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) scheduler: Scheduler,
}

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
    use tagwarden_api::Object;
    let ctx = s.scheduler.context();
    let path = format!("/hook/{digest}");
    let found = ctx.objects.objects.iter().find_map(|o| {
        let Object::Receiver(r) = o else { return None };
        let secret = ctx.objects.objects.iter().find_map(|o| match o {
            Object::Secret(sec)
                if sec.meta.namespace == r.meta.namespace && sec.meta.name == r.secret_ref =>
            {
                Some(sec)
            }
            _ => None,
        })?;
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
    let targets = tagwarden_receivers::targets(&receiver, &ctx.objects.objects);
    for (kind, namespace, name) in &targets {
        let kind = match kind.as_str() {
            "ImageRepository" => "ImageRepository",
            "ImagePolicy" => "ImagePolicy",
            "ImageUpdateAutomation" => "ImageUpdateAutomation",
            _ => continue,
        };
        s.scheduler.trigger(ObjectKey {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
        });
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
