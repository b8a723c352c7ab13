//! The daemon: reconciles every object on its interval (with jitter), at
//! once when what it depends on changed, and when a webhook says so; reloads
//! the manifests when their files change; serves health, metrics and the
//! Receivers on the public listener, the control API on a Unix socket.

mod api;
mod http;
mod metrics;
pub mod queue;
mod routes;
mod schedule;

pub use http::{HttpLimits, SocketError};
pub use metrics::Metrics;
pub use routes::{log_decision, owned_headers};
pub use schedule::{Scheduler, deadline, reconcile_within, registry_host};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tagwarden_store::Store;

/// What the HTTP handlers share: the counters and the scheduler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) scheduler: Scheduler,
}

/// In the state dir while the daemon listens publicly: that address.
pub const ADDR_FILE: &str = "daemon.addr";

/// In the state dir while the daemon runs: the control API's Unix socket
/// (mode 0600), which the CLI's get/suspend/resume/reconcile talk to.
pub const SOCKET_FILE: &str = "daemon.sock";

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Vec<PathBuf>,
    pub default_namespace: String,
    pub listen: Option<SocketAddr>,
    /// Reconciles in flight per kind, and scans per registry host (scans in
    /// all: twice as many; each kind has its own slots).
    pub concurrency: usize,
    /// How often manifest files are checked for changes.
    pub reload_every: Duration,
    /// Where the store lives: the control socket is made there, so the CLI
    /// reaches the API while the store is locked.
    pub state_dir: Option<PathBuf>,
    /// After a stop signal, how long reconciles in flight may take before
    /// they are abandoned and the daemon exits.
    pub shutdown_grace: Duration,
    /// The longest any one reconcile may run, whatever its timeout or
    /// interval says; then it is abandoned and its slot freed.
    pub max_reconcile: Duration,
    /// What the public listener tolerates.
    pub http: HttpLimits,
    /// Objects with unknown fields are refused, not only warned about.
    pub strict: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paths: Vec::new(),
            default_namespace: "flux-system".into(),
            listen: None,
            concurrency: 4,
            reload_every: Duration::from_secs(2),
            state_dir: None,
            shutdown_grace: Duration::from_secs(10),
            max_reconcile: Duration::from_secs(600),
            http: HttpLimits::default(),
            strict: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("listening on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error(transparent)]
    Socket(#[from] SocketError),
}

/// How often freed heap pages go back to the system.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The trimming task; it stops when this is dropped.
pub struct Trim(tokio::task::JoinHandle<()>);

impl Drop for Trim {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands freed heap pages back every [`TRIM_EVERY`] until the returned
/// guard is dropped (see `tagwarden_trim`: glibc kept ~20 MB of holes
/// resident at 10,000 objects). One call takes a few milliseconds.
pub fn spawn_trim() -> Trim {
    Trim(tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let t0 = std::time::Instant::now();
            let returned = tagwarden_trim::trim();
            tracing::trace!(
                returned,
                took_ms = t0.elapsed().as_secs_f64() * 1e3,
                "heap trimmed"
            );
        }
    }))
}

/// Runs until `shutdown` resolves, with status and tags in `store`, one
/// registry client pool and libgit2; see [`run_with`].
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let mut base = tagwarden_engine::Context::new(
        Arc::new(tagwarden_engine::Catalog::default()),
        store.clone(),
        Arc::new(tagwarden_cloud::pool(None)),
        Arc::new(tagwarden_git::Git2),
    );
    base.forge = Arc::new(tagwarden_forge::Http::new());
    run_with(config, store, base, shutdown).await
}

/// Runs until `shutdown` resolves, reconciling with the adapters of `base`
/// (its objects are replaced by the manifests). Reconciles in flight get
/// `shutdown_grace` to finish (so no push or state write is cut in half
/// when they can finish), then are abandoned.
pub async fn run_with(
    config: Config,
    store: Arc<dyn Store>,
    base: tagwarden_engine::Context,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let metrics = Arc::new(Metrics::default());
    let _trim = spawn_trim();
    let scheduler = Scheduler::new(config.clone(), store, base, metrics.clone());
    let state = AppState {
        metrics: metrics.clone(),
        scheduler: scheduler.clone(),
    };
    let mut servers = Vec::new();
    let mut written = Vec::new();
    if let Some(dir) = &config.state_dir {
        let path = dir.join(SOCKET_FILE);
        let listener = http::bind_control_socket(dir, &path)?;
        tracing::info!(socket = %path.display(), "control API listening");
        let app = routes::control_routes(state.clone());
        servers.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "control API stopped");
            }
        }));
        written.push(path);
    }
    if let Some(addr) = config.listen {
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Listen {
                    addr,
                    message: e.to_string(),
                })?;
        let bound = listener.local_addr().map_or(addr, |a| a);
        tracing::info!(addr = %bound, "listening");
        if let Some(warning) = exposure_warning(bound) {
            tracing::warn!(addr = %bound, "{warning}");
        }
        if let Some(dir) = &config.state_dir {
            let file = dir.join(ADDR_FILE);
            match std::fs::write(&file, bound.to_string()) {
                Ok(()) => written.push(file),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "address file not written");
                }
            }
        }
        let hooks = Arc::new(http::RateLimit::new(
            config.http.hook_rate,
            config.http.hook_burst,
        ));
        let app = routes::public_routes(state, hooks);
        servers.push(tokio::spawn(http::serve_public(
            listener,
            app,
            config.http.clone(),
        )));
    }
    let result = scheduler.run(shutdown).await;
    for h in servers {
        h.abort();
    }
    for f in written {
        let _ = std::fs::remove_file(f);
    }
    result
}

/// What to say when the public listener is reachable from other machines.
fn exposure_warning(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "listening on {addr}, beyond this machine: /hook/, /metrics, /healthz and /readyz \
             are reachable by anyone who can reach it (the control API is not: it is on the \
             state dir's {SOCKET_FILE})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_listen_addresses_are_warned_about() {
        let any: SocketAddr = "0.0.0.0:9292".parse().expect("addr");
        assert_eq!(
            exposure_warning(any).as_deref(),
            Some(
                "listening on 0.0.0.0:9292, beyond this machine: /hook/, /metrics, /healthz and \
                 /readyz are reachable by anyone who can reach it (the control API is not: it is \
                 on the state dir's daemon.sock)"
            )
        );
        for local in ["127.0.0.1:9292", "[::1]:9292"] {
            let addr: SocketAddr = local.parse().expect("addr");
            assert_eq!(exposure_warning(addr), None, "{local}");
        }
        let lan: SocketAddr = "192.168.1.10:9292".parse().expect("addr");
        assert!(exposure_warning(lan).is_some());
    }
}
