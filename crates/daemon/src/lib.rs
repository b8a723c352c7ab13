//! The daemon: reconciles every object on its interval (with jitter), at
//! once when what it depends on changed, and when a webhook says so; reloads
//! the manifests when their files change; serves health and metrics.

mod api;
mod metrics;
mod schedule;

pub use metrics::Metrics;
pub use schedule::{ObjectKey, Scheduler};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tagwarden_store::Store;

/// In the state dir while the daemon listens: its address, for the CLI.
pub const ADDR_FILE: &str = "daemon.addr";

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Vec<PathBuf>,
    pub default_namespace: String,
    pub listen: Option<SocketAddr>,
    /// Reconciles in flight at once.
    pub concurrency: usize,
    /// How often manifest files are checked for changes.
    pub reload_every: Duration,
    /// Where the store lives: `daemon.addr` is written there so the CLI
    /// finds the API while the store is locked.
    pub state_dir: Option<PathBuf>,
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
            strict: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("listening on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error(transparent)]
    Engine(#[from] tagwarden_engine::EngineError),
}

/// Runs until `shutdown` resolves; reconciles in flight finish first, so no
/// push or state write is cut in half.
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let metrics = Arc::new(Metrics::default());
    let scheduler = Scheduler::new(config.clone(), store, metrics.clone());
    let http = match config.listen {
        Some(addr) => {
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| DaemonError::Listen {
                        addr,
                        message: e.to_string(),
                    })?;
            let bound = listener.local_addr().map_or(addr, |a| a);
            tracing::info!(addr = %bound, "listening");
            if let Some(dir) = &config.state_dir {
                let file = dir.join(ADDR_FILE);
                if let Err(e) = std::fs::write(&file, bound.to_string()) {
                    tracing::warn!(file = %file.display(), error = %e, "address file not written");
                }
            }
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                scheduler.clone(),
            )))
        }
        None => None,
    };
    let result = scheduler.run(shutdown).await;
    if let Some(h) = http {
        h.abort();
        if let Some(dir) = &config.state_dir {
            let _ = std::fs::remove_file(dir.join(ADDR_FILE));
        }
    }
    result
}
