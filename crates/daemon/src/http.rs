//! The two listeners: the public one (Receivers, metrics, health) with a
//! header-read timeout, a bound on connections and a per-address rate limit
//! on webhooks; and the control API on a Unix socket only its owner can open.

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

/// What the public listener tolerates.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A connection that has not sent a whole request head by then is
    /// closed (also an idle keep-alive connection).
    pub header_timeout: Duration,
    /// A request (body read and answer) that takes longer gets 408.
    pub request_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Webhook requests per second per source address; 0 turns it off.
    pub hook_rate: f64,
    /// Webhook requests one address may send at once before the rate applies.
    pub hook_burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            hook_rate: 10.0,
            hook_burst: 30,
        }
    }
}

/// Serves `app` on the public listener until the task is aborted.
pub(crate) async fn serve_public(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let request_timeout = limits.request_timeout;
    loop {
        // Waiting for a slot before accepting leaves the rest in the
        // backlog: served late rather than refused.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let answer = tokio::time::timeout(request_timeout, app.oneshot(req.map(Body::new)));
                Ok::<_, std::convert::Infallible>(match answer.await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => (
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "request not finished within {}",
                            tagwarden_api::duration::format(request_timeout)
                        ),
                    )
                        .into_response(),
                })
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}

/// A token bucket per source address.
pub(crate) struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Already refused since it last had a token: warn once, not per request.
    refusing: bool,
}

/// Addresses remembered before full buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

impl RateLimit {
    pub(crate) fn new(per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// `Err(wait)` when `ip` has no token left.
    fn take(&self, ip: IpAddr) -> Result<(), (Duration, bool)> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            refusing: false,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refusing = false;
            return Ok(());
        }
        let first = !b.refusing;
        b.refusing = true;
        Err((
            Duration::from_secs_f64((1.0 - b.tokens) / self.per_second),
            first,
        ))
    }
}

/// In front of `/hook/…`: 429 with `Retry-After` once an address spent its
/// burst, before the body is read.
pub(crate) async fn limit_hooks(
    State(limit): State<Arc<RateLimit>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer
        && let Err((wait, first)) = limit.take(ip)
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        if first {
            tracing::warn!(%ip, retry_after_secs = secs, "webhook rate limit reached: answering 429");
        }
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many webhook requests from {ip}: retry after {secs}s"),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    next.run(req).await
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control socket {path}: {message}")]
    Unsafe { path: String, message: String },
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Binds `<dir>/daemon.sock` for the owner only: the state dir is made
/// 0700, a stale socket of ours is removed, anything else there (a symlink,
/// someone else's file, a live daemon) is refused.
pub(crate) fn bind_control_socket(
    dir: &Path,
    path: &Path,
) -> Result<tokio::net::UnixListener, SocketError> {
    let shown = path.display().to_string();
    let io = |source| SocketError::Io {
        path: shown.clone(),
        source,
    };
    let unsafe_ = |message: String| SocketError::Unsafe {
        path: shown.clone(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let uid = own_uid(dir).map_err(io)?;
    let dir_meta = std::fs::symlink_metadata(dir).map_err(io)?;
    if dir_meta.uid() != uid {
        return Err(unsafe_(format!(
            "the state dir {} belongs to uid {}, not to this user (uid {uid})",
            dir.display(),
            dir_meta.uid()
        )));
    }
    if dir_meta.is_dir() && dir_meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        tracing::info!(dir = %dir.display(), "state dir made private (0700)");
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(unsafe_("is a symlink: refusing to replace it".into()));
        }
        Ok(m) if m.uid() != uid => {
            return Err(unsafe_(format!(
                "belongs to uid {}, not to this user (uid {uid}): refusing to replace it",
                m.uid()
            )));
        }
        Ok(m) if !m.file_type().is_socket() => {
            return Err(unsafe_(
                "exists and is not a socket: refusing to replace it".into(),
            ));
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(unsafe_(
                    "another daemon is listening on it (same --state-dir?)".into(),
                ));
            }
            tracing::info!(path = %shown, "stale control socket removed");
            std::fs::remove_file(path).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    // The 0700 dir already keeps others out between bind and chmod.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// This process's uid, read off a file it creates (no libc, no unsafe).
fn own_uid(dir: &Path) -> std::io::Result<u32> {
    let probe = dir.join(format!(".uid-probe-{}", std::process::id()));
    let _ = std::fs::remove_file(&probe);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let uid = file.metadata().map(|m| m.uid());
    drop(file);
    let _ = std::fs::remove_file(&probe);
    uid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_after_burst_and_refills() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let limit = RateLimit::new(1.0, 3);
        for _ in 0..3 {
            assert!(limit.take(ip).is_ok());
        }
        let (wait, first) = limit.take(ip).expect_err("burst spent");
        assert!(first, "the first refusal is logged");
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(!limit.take(ip).expect_err("still empty").1, "logged once");
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(limit.take(other).is_ok(), "per address");

        let fast = RateLimit::new(1000.0, 1);
        assert!(fast.take(ip).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(fast.take(ip).is_ok(), "refilled");
        assert!(RateLimit::new(0.0, 1).take(ip).is_ok(), "0 turns it off");
    }
}
