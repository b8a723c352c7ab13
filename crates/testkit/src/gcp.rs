//! Stand-ins for Google Cloud's identity endpoints, which have no emulator:
//! the metadata server (plain HTTP, as on a VM or a GKE node) and the
//! Security Token Service with IAM Credentials (TLS, as on googleapis.com).

use crate::standin::{CloudRequest, Outcome, Reply, Server};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const V1: &str = "/computeMetadata/v1/";

/// The GCE/GKE metadata server, plain HTTP on `127.0.0.1:PORT` (what
/// `GCE_METADATA_HOST` names).
///
/// Serves, to `GET` with `Metadata-Flavor: Google` only:
/// - `/computeMetadata/v1/instance/service-accounts/default/token` (also
///   under the account's email instead of `default`; `?scopes=` accepted and
///   logged) → `{"access_token","expires_in","token_type":"Bearer"}` as JSON,
///   `expires_in` counting down from the last [`GcpMetadata::set_token`];
/// - `.../service-accounts/default/email`, `project/project-id`,
///   `project/numeric-project-id`, `instance/attributes/cluster-name`,
///   `instance/attributes/cluster-location` → the value as `application/text`
///   (defaults in [`GcpMetadata::start`], changed by [`GcpMetadata::set_value`]);
/// - `/` → `computeMetadata/` (what clients probe to detect the server).
///
/// Every answer carries `Metadata-Flavor: Google`, except the refusals
/// below, which come as GKE's metadata server words them (`text/plain`):
/// - no `Metadata-Flavor: Google` header → 403;
/// - any `X-Forwarded-For` header → 403 (the server refuses proxied requests);
/// - a method other than GET → 405; an unknown path → 404.
pub struct GcpMetadata {
    server: Server,
    state: Arc<Mutex<MetadataState>>,
    issued: Arc<AtomicUsize>,
}

struct MetadataState {
    email: String,
    token: String,
    expires_in: u64,
    set_at: Instant,
    /// Text values by path under `/computeMetadata/v1/`.
    values: BTreeMap<String, String>,
}

impl GcpMetadata {
    /// Serves `access_token` for `email`, valid for `expires_in_secs` from
    /// now. Defaults: project `tagwarden-test` (number `123456789012`),
    /// cluster `tagwarden` in `europe-west1`.
    pub fn start(email: &str, access_token: &str, expires_in_secs: u64) -> GcpMetadata {
        let values = [
            ("instance/service-accounts/default/email", email),
            ("project/project-id", "tagwarden-test"),
            ("project/numeric-project-id", "123456789012"),
            ("instance/attributes/cluster-name", "tagwarden"),
            ("instance/attributes/cluster-location", "europe-west1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let state = Arc::new(Mutex::new(MetadataState {
            email: email.to_string(),
            token: access_token.to_string(),
            expires_in: expires_in_secs,
            set_at: Instant::now(),
            values,
        }));
        let issued = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (state.clone(), issued.clone());
        let server = Server::start(None, move |req| {
            let (reply, token) =
                metadata_answer(req, &shared.lock().unwrap_or_else(|p| p.into_inner()));
            if token {
                count.fetch_add(1, Ordering::SeqCst);
            }
            Outcome::Reply(reply)
        });
        GcpMetadata {
            server,
            state,
            issued,
        }
    }

    /// From now on, serves `token`, valid for `expires_in_secs`.
    pub fn set_token(&self, token: &str, expires_in_secs: u64) {
        let mut s = self.lock();
        s.token = token.to_string();
        s.expires_in = expires_in_secs;
        s.set_at = Instant::now();
    }

    /// Sets a text value by its path under `/computeMetadata/v1/`, e.g.
    /// `project/project-id`.
    pub fn set_value(&self, path: &str, value: &str) {
        self.lock()
            .values
            .insert(path.trim_start_matches('/').to_string(), value.to_string());
    }

    /// Removes a text value (it answers 404 then), e.g.
    /// `instance/attributes/cluster-name` for a VM outside GKE.
    pub fn remove_value(&self, path: &str) {
        self.lock().values.remove(path.trim_start_matches('/'));
    }

    /// `127.0.0.1:PORT`, the form `GCE_METADATA_HOST` takes.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Every request seen so far, refused ones included.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server.requests()
    }

    /// Token requests answered with a token so far.
    pub fn tokens_issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MetadataState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The refusal a request gets before its path is looked at, if any.
fn metadata_refusal(req: &CloudRequest) -> Option<Reply> {
    const GKE: &str = "GKE Metadata Server encountered an error: ";
    if req.header("metadata-flavor") != Some("Google") {
        return Some(Reply::text(
            403,
            "text/plain; charset=utf-8",
            &format!("{GKE}Missing required header \"Metadata-Flavor\": \"Google\"\n"),
        ));
    }
    if req.header("x-forwarded-for").is_some() {
        return Some(Reply::text(
            403,
            "text/plain; charset=utf-8",
            &format!("{GKE}Requests with header \"X-Forwarded-For\" are not allowed\n"),
        ));
    }
    if req.method != "GET" {
        return Some(
            Reply::text(405, "text/plain; charset=utf-8", "Method Not Allowed\n")
                .with_header("Metadata-Flavor", "Google"),
        );
    }
    None
}

/// The answer, and whether it hands out the token.
fn metadata_answer(req: &CloudRequest, s: &MetadataState) -> (Reply, bool) {
    if let Some(refusal) = metadata_refusal(req) {
        return (refusal, false);
    }
    let flavored = |r: Reply| {
        r.with_header("Metadata-Flavor", "Google")
            .with_header("Server", "GKE Metadata Server")
    };
    let path = req.path();
    if path == "/" {
        return (
            flavored(Reply::text(200, "application/text", "computeMetadata/\n")),
            false,
        );
    }
    let not_found = || flavored(Reply::text(404, "text/plain; charset=utf-8", "Not Found\n"));
    let Some(rel) = path.strip_prefix(V1) else {
        return (not_found(), false);
    };
    // The account answers under `default` and under its email alike.
    let rel = rel.replacen(
        &format!("instance/service-accounts/{}/", s.email),
        "instance/service-accounts/default/",
        1,
    );
    if rel == "instance/service-accounts/default/token" {
        let left = s.expires_in.saturating_sub(s.set_at.elapsed().as_secs());
        let body = serde_json::json!({
            "access_token": s.token,
            "expires_in": left,
            "token_type": "Bearer",
        });
        return (flavored(Reply::json(200, &body)), true);
    }
    let reply = match s.values.get(&rel) {
        Some(v) => flavored(Reply::text(200, "application/text", v)),
        None => not_found(),
    };
    (reply, false)
}
