//! Stand-ins for Google Cloud's identity endpoints, which have no emulator:
//! the metadata server (plain HTTP, as on a VM or a GKE node) and the
//! Security Token Service with IAM Credentials (TLS, as on googleapis.com).

use crate::Pki;
use crate::standin::{
    CloudRequest, Federated, Mismatch, Outcome, Reply, Server, now_secs, rfc3339,
};
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

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM_PREFIX: &str = "/v1/projects/-/serviceAccounts/";
const IAM_SUFFIX: &str = ":generateAccessToken";

/// What [`GcpSts`] accepts and issues.
#[derive(Debug, Clone)]
pub struct GcpStsConfig {
    /// The workload identity provider's audience, e.g.
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`
    /// or GKE's `identitynamespace:PROJECT.svc.id.goog:https://container.googleapis.com/v1/projects/…/clusters/…`.
    pub audience: String,
    /// The subject token (the external credential) the provider accepts.
    pub subject_token: Federated,
    /// The federated access token `/v1/token` issues.
    pub federated_token: String,
    pub expires_in: u64,
    /// The service account the federated identity may impersonate.
    pub service_account: String,
    /// The access token `generateAccessToken` issues for it.
    pub service_account_token: String,
}

impl Default for GcpStsConfig {
    /// GKE's workload identity for the [`GcpMetadata`] defaults (project
    /// `tagwarden-test`, cluster `tagwarden` in `europe-west1`), the subject a
    /// Kubernetes ServiceAccount token of `flux-system/image-reflector-controller`
    /// for the audience `tagwarden-test.svc.id.goog`, as the testkit API
    /// server issues it.
    fn default() -> GcpStsConfig {
        GcpStsConfig {
            audience: "identitynamespace:tagwarden-test.svc.id.goog:https://container.googleapis.com/v1/projects/tagwarden-test/locations/europe-west1/clusters/tagwarden".into(),
            subject_token: Federated::Claims {
                issuer: "https://kubernetes.default.svc.cluster.local".into(),
                subject: "system:serviceaccount:flux-system:image-reflector-controller".into(),
                audience: "tagwarden-test.svc.id.goog".into(),
            },
            federated_token: "ya29.federated".into(),
            expires_in: 3599,
            service_account: "flux@tagwarden-test.iam.gserviceaccount.com".into(),
            service_account_token: "ya29.impersonated".into(),
        }
    }
}

/// Google's Security Token Service (`sts.googleapis.com`) and IAM
/// Credentials (`iamcredentials.googleapis.com`) in one TLS server with a
/// [`Pki`] certificate (make it with `Pki::generate_for(dir,
/// &["sts.googleapis.com", "iamcredentials.googleapis.com"])` to reach it
/// under those names, see [`GcpSts::connect_to`]).
///
/// `POST /v1/token`, RFC 8693 token exchange, as
/// `application/x-www-form-urlencoded` (`grant_type`, `audience`, `scope`,
/// `requested_token_type`, `subject_token`, `subject_token_type`, `options`)
/// or JSON (the same fields, camelCase or snake_case) →
/// `{"access_token","issued_token_type","token_type":"Bearer","expires_in"}`.
/// Refuses with 400 and `{"error","error_description"}`:
/// - another `grant_type` → `unsupported_grant_type`;
/// - a missing or malformed `audience` → `invalid_request`; a well-formed
///   one naming another provider → `invalid_target`;
/// - `requested_token_type` other than `…:token-type:access_token`, or
///   `subject_token_type` other than `…:token-type:jwt`/`…:id_token` → `invalid_request`;
/// - a `scope` without `https://www.googleapis.com/auth/cloud-platform` → `invalid_scope`;
/// - no `subject_token` → `invalid_request`; one that is not a JWT, has
///   another issuer, audience or subject, or has expired → `invalid_grant`.
///
/// `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken` with
/// `Authorization: Bearer` a token `/v1/token` issued, JSON
/// `{"scope":[…],"lifetime":"3600s"}` (`lifetime` optional, at most 3600s) →
/// `{"accessToken","expireTime"}` (RFC 3339). Refuses in Google's
/// `{"error":{"code","message","status"}}` shape: no bearer → 401
/// `UNAUTHENTICATED` (missing credential), another bearer → 401
/// `UNAUTHENTICATED` (invalid credentials), another email → 403
/// `PERMISSION_DENIED`, a body that is not JSON, no `scope` or a bad
/// `lifetime` → 400 `INVALID_ARGUMENT`.
pub struct GcpSts {
    server: Server,
    state: Arc<Mutex<StsState>>,
}

struct StsState {
    config: GcpStsConfig,
    /// Federated tokens issued so far: each stays valid as a bearer.
    federated: Vec<String>,
    impersonations: usize,
}

impl GcpSts {
    pub fn start(pki: &Pki, config: GcpStsConfig) -> GcpSts {
        let state = Arc::new(Mutex::new(StsState {
            config,
            federated: Vec::new(),
            impersonations: 0,
        }));
        let shared = state.clone();
        let server = Server::start(Some(crate::git::tls_config(pki)), move |req| {
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            Outcome::Reply(if req.path().starts_with(IAM_PREFIX) {
                generate_access_token(req, &mut s)
            } else {
                sts_token(req, &mut s)
            })
        });
        GcpSts { server, state }
    }

    /// From now on, `/v1/token` issues `federated` and `generateAccessToken`
    /// issues `service_account_token` (tokens issued before stay valid).
    pub fn set_tokens(&self, federated: &str, service_account_token: &str) {
        let mut s = self.lock();
        s.config.federated_token = federated.to_string();
        s.config.service_account_token = service_account_token.to_string();
    }

    pub fn config(&self) -> GcpStsConfig {
        self.lock().config.clone()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `https://127.0.0.1:PORT/v1/token`.
    pub fn token_url(&self) -> String {
        format!("https://127.0.0.1:{}/v1/token", self.server.port)
    }

    /// `https://127.0.0.1:PORT/v1/projects/-/serviceAccounts/{email}:generateAccessToken`.
    pub fn impersonation_url(&self, email: &str) -> String {
        format!(
            "https://127.0.0.1:{}{IAM_PREFIX}{email}{IAM_SUFFIX}",
            self.server.port
        )
    }

    /// curl `--connect-to` entries (the `TAGWARDEN_CONNECT_TO` form) sending
    /// `sts.googleapis.com:443` and `iamcredentials.googleapis.com:443` here.
    pub fn connect_to(&self) -> Vec<String> {
        ["sts.googleapis.com", "iamcredentials.googleapis.com"]
            .iter()
            .map(|h| format!("{h}:443:127.0.0.1:{}", self.server.port))
            .collect()
    }

    /// An `external_account` credentials file (`GOOGLE_APPLICATION_CREDENTIALS`)
    /// for this provider, reading the subject token from `token_file` as
    /// text, with the real Google URLs (reach them through
    /// [`GcpSts::connect_to`]); with `impersonate`, through the configured
    /// service account.
    pub fn external_account(
        &self,
        token_file: &std::path::Path,
        impersonate: bool,
    ) -> serde_json::Value {
        let c = self.config();
        let mut v = serde_json::json!({
            "type": "external_account",
            "audience": c.audience,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {
                "file": token_file.display().to_string(),
                "format": {"type": "text"},
            },
        });
        if impersonate {
            v["service_account_impersonation_url"] = format!(
                "https://iamcredentials.googleapis.com{IAM_PREFIX}{}{IAM_SUFFIX}",
                c.service_account
            )
            .into();
        }
        v
    }

    /// Every request seen so far, refused ones included.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server.requests()
    }

    /// Federated tokens `/v1/token` issued so far.
    pub fn exchanges(&self) -> usize {
        self.lock().federated.len()
    }

    /// Access tokens `generateAccessToken` issued so far.
    pub fn impersonations(&self) -> usize {
        self.lock().impersonations
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(
        400,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

/// The exchange's fields from a form or a JSON body (camelCase or snake_case).
fn sts_fields(req: &CloudRequest) -> BTreeMap<String, String> {
    let json = req
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return req.form.iter().cloned().collect();
    }
    let v: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
    let Some(o) = v.as_object() else {
        return BTreeMap::new();
    };
    o.iter()
        .filter_map(|(k, v)| {
            let snake: String = k
                .chars()
                .flat_map(|c| {
                    if c.is_ascii_uppercase() {
                        vec!['_', c.to_ascii_lowercase()]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            Some((snake, v.as_str()?.to_string()))
        })
        .collect()
}

fn sts_token(req: &CloudRequest, s: &mut StsState) -> Reply {
    if req.path() != "/v1/token" {
        return Reply::text(404, "text/html; charset=UTF-8", "Not Found");
    }
    if req.method != "POST" {
        return Reply::text(405, "text/html; charset=UTF-8", "Method Not Allowed");
    }
    let f = sts_fields(req);
    let get = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let invalid = |field: &str| {
        oauth_error(
            "invalid_request",
            &format!("Invalid value for \"{field}\"."),
        )
    };
    let grant = get("grant_type").unwrap_or("");
    if grant != TOKEN_EXCHANGE {
        return oauth_error(
            "unsupported_grant_type",
            &format!("Unsupported grant_type \"{grant}\". Supported: {TOKEN_EXCHANGE}."),
        );
    }
    let audience = get("audience").unwrap_or("");
    let well_formed =
        audience.starts_with("//iam.googleapis.com/") || audience.starts_with("identitynamespace:");
    if !well_formed {
        return oauth_error(
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name of the \
             Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token \
             for the list of possible formats.",
        );
    }
    if audience != s.config.audience {
        return oauth_error(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might \
             either be because the pool or provider is disabled or deleted or because it doesn't \
             exist.",
        );
    }
    if get("requested_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return invalid("requested_token_type");
    }
    let subject_type = get("subject_token_type").unwrap_or("");
    if !matches!(
        subject_type,
        "urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token"
    ) {
        return invalid("subject_token_type");
    }
    if !get("scope").is_some_and(|sc| sc.split(' ').any(|x| x == CLOUD_PLATFORM)) {
        return oauth_error(
            "invalid_scope",
            &format!("The scope must include {CLOUD_PLATFORM}."),
        );
    }
    let Some(subject) = get("subject_token") else {
        return invalid("subject_token");
    };
    let refusal = match s.config.subject_token.check(subject) {
        Ok(()) => None,
        Err(Mismatch::Malformed) => Some("Unable to parse the ID Token.".to_string()),
        Err(Mismatch::Expired) => Some("The ID Token has expired.".to_string()),
        Err(Mismatch::Claims {
            claim,
            issuer,
            audience,
            ..
        }) => Some(match claim {
            "iss" => format!("The issuer in ID Token {issuer} does not match the expected ones."),
            "aud" => format!(
                "The audience in ID Token [{audience}] does not match the expected audience."
            ),
            _ => "The given credential is rejected by the attribute condition.".to_string(),
        }),
    };
    if let Some(description) = refusal {
        return oauth_error("invalid_grant", &description);
    }
    let token = s.config.federated_token.clone();
    s.federated.push(token.clone());
    Reply::json(
        200,
        &serde_json::json!({
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": s.config.expires_in,
        }),
    )
}

fn google_error(code: u16, status: &str, message: &str) -> Reply {
    Reply::json(
        code,
        &serde_json::json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn generate_access_token(req: &CloudRequest, s: &mut StsState) -> Reply {
    let Some(email) = req
        .path()
        .strip_prefix(IAM_PREFIX)
        .and_then(|p| p.strip_suffix(IAM_SUFFIX))
        .map(crate::pki::percent_decode)
    else {
        return Reply::text(404, "text/html; charset=UTF-8", "Not Found");
    };
    if req.method != "POST" {
        return google_error(
            405,
            "METHOD_NOT_ALLOWED",
            "The request method is not allowed.",
        );
    }
    const SEE: &str = "Expected OAuth 2 access token, login cookie or other valid authentication \
                       credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    let challenge = |r: Reply| {
        r.with_header(
            "WWW-Authenticate",
            "Bearer realm=\"https://accounts.google.com/\"",
        )
    };
    let Some(bearer) = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return challenge(google_error(
            401,
            "UNAUTHENTICATED",
            &format!("Request is missing required authentication credential. {SEE}"),
        ));
    };
    if !s.federated.iter().any(|t| t == bearer) {
        return challenge(google_error(
            401,
            "UNAUTHENTICATED",
            &format!("Request had invalid authentication credentials. {SEE}"),
        ));
    }
    if email != s.config.service_account {
        let mut r = serde_json::json!({"error": {
            "code": 403,
            "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "IAM_PERMISSION_DENIED",
                "domain": "iam.googleapis.com",
                "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
            }],
        }});
        r["error"]["details"][0]["metadata"]["resource"] =
            format!("projects/-/serviceAccounts/{email}").into();
        return Reply::json(403, &r);
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&req.body) else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unexpected token.",
        );
    };
    let scopes: Vec<&str> = body["scope"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    if scopes.is_empty() {
        return google_error(400, "INVALID_ARGUMENT", "Scope required.");
    }
    let lifetime = match body.get("lifetime") {
        None => Some(3600),
        Some(l) => l
            .as_str()
            .and_then(|l| l.strip_suffix('s'))
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| *n >= 1.0 && *n <= 3600.0)
            .map(|n| n as u64),
    };
    let Some(lifetime) = lifetime else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "The lifetime must be a duration between 1s and 3600s.",
        );
    };
    s.impersonations += 1;
    Reply::json(
        200,
        &serde_json::json!({
            "accessToken": s.config.service_account_token,
            "expireTime": rfc3339(now_secs() + lifetime),
        }),
    )
}
