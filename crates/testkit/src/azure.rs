//! Stand-ins for Azure's identity endpoints, which have no emulator: the
//! instance metadata service (plain HTTP, as on a VM), Microsoft Entra's
//! token endpoint (TLS, as login.microsoftonline.com) and the `/oauth2/exchange`
//! of a container registry (TLS, as `NAME.azurecr.io`) in front of a real
//! docker-registry.

use crate::Pki;
use crate::standin::{
    CloudRequest, Federated, Mismatch, Outcome, Reply, Server, entra_time, now_secs,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// Azure's instance metadata service (IMDS), managed identity tokens only:
/// plain HTTP on `127.0.0.1:PORT`.
///
/// `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=C]`
/// with `Metadata: true` → `{"access_token","refresh_token":"","expires_in",
/// "expires_on","not_before","resource","token_type":"Bearer","client_id"}`,
/// every value a string as the real service sends them (`expires_in` in
/// seconds counting down, `expires_on` in Unix seconds).
///
/// Refuses, with `{"error","error_description"}`:
/// - no `Metadata: true` header → 400 `invalid_request` "Required metadata header not specified";
/// - an `X-Forwarded-For` header → 400 `invalid_request`;
/// - no `api-version` → 400 `invalid_request` "Required query variable 'api-version' is missing";
/// - no `resource` → 400 `invalid_request` "Required query variable 'resource' is missing";
/// - another resource than configured (a trailing `/` aside) → 400 `invalid_resource` (AADSTS500011);
/// - a `client_id` other than the identity's, or any `object_id`/`msi_res_id`
///   (this stand-in knows none) → 400 `invalid_request` "Identity not found";
/// - a method other than GET → 405; another path → 404 `unknown_source`.
pub struct AzureImds {
    server: Server,
    state: Arc<Mutex<ImdsState>>,
}

struct ImdsState {
    resource: String,
    client_id: String,
    token: String,
    expires_in: u64,
    set_at: Instant,
}

/// The client ID [`AzureImds`] gives its managed identity unless told another.
pub const IMDS_DEFAULT_CLIENT_ID: &str = "0d0d0d0d-1111-2222-3333-444444444444";

impl AzureImds {
    /// Serves `access_token` for `resource` (e.g. `https://management.azure.com/`),
    /// valid `expires_in_secs` from now, for the identity
    /// [`IMDS_DEFAULT_CLIENT_ID`].
    pub fn start(resource: &str, access_token: &str, expires_in_secs: u64) -> AzureImds {
        let state = Arc::new(Mutex::new(ImdsState {
            resource: resource.to_string(),
            client_id: IMDS_DEFAULT_CLIENT_ID.to_string(),
            token: access_token.to_string(),
            expires_in: expires_in_secs,
            set_at: Instant::now(),
        }));
        let shared = state.clone();
        let server = Server::start(None, move |req| {
            Outcome::Reply(imds_answer(
                req,
                &shared.lock().unwrap_or_else(|p| p.into_inner()),
            ))
        });
        AzureImds { server, state }
    }

    /// The identity's client ID (a user-assigned identity's, as `client_id=` names it).
    pub fn set_client_id(&self, client_id: &str) {
        self.lock().client_id = client_id.to_string();
    }

    /// From now on, serves `token`, valid for `expires_in_secs`.
    pub fn set_token(&self, token: &str, expires_in_secs: u64) {
        let mut s = self.lock();
        s.token = token.to_string();
        s.expires_in = expires_in_secs;
        s.set_at = Instant::now();
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://127.0.0.1:PORT/metadata/identity/oauth2/token`, the endpoint
    /// the SDKs call (`AZURE_POD_IDENTITY_AUTHORITY_HOST`-style overrides name
    /// the host only).
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}{IMDS_TOKEN_PATH}", self.server.port)
    }

    /// Every request seen so far, refused ones included.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server.requests()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ImdsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn imds_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn imds_answer(req: &CloudRequest, s: &ImdsState) -> Reply {
    if req.path() != IMDS_TOKEN_PATH {
        return imds_error(
            404,
            "unknown_source",
            &format!("Unknown Source {}", req.path()),
        );
    }
    if req.method != "GET" {
        return imds_error(
            405,
            "invalid_request",
            "The requested method is not allowed",
        );
    }
    if req.header("metadata") != Some("true") {
        return imds_error(
            400,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if req.header("x-forwarded-for").is_some() {
        return imds_error(
            400,
            "invalid_request",
            "Request with X-Forwarded-For header is not allowed",
        );
    }
    if req.query("api-version").is_none_or(|v| v.is_empty()) {
        return imds_error(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = req.query("resource").filter(|r| !r.is_empty()) else {
        return imds_error(
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    for key in ["client_id", "object_id", "msi_res_id"] {
        if let Some(id) = req.query(key)
            && (key != "client_id" || id != s.client_id)
        {
            return imds_error(400, "invalid_request", "Identity not found");
        }
    }
    if resource.trim_end_matches('/') != s.resource.trim_end_matches('/') {
        return imds_error(
            400,
            "invalid_resource",
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant. \
                 This can happen if the application has not been installed by the administrator of \
                 the tenant or consented to by any user in the tenant."
            ),
        );
    }
    let left = s.expires_in.saturating_sub(s.set_at.elapsed().as_secs());
    let now = now_secs();
    Reply::json(
        200,
        &json!({
            "access_token": s.token,
            "refresh_token": "",
            "expires_in": left.to_string(),
            "expires_on": (now + left).to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": s.client_id,
        }),
    )
}

/// What [`AzureEntra`] accepts and issues.
#[derive(Debug, Clone)]
pub struct EntraConfig {
    /// The directory (tenant) ID, the first path segment.
    pub tenant_id: String,
    /// The application (client) ID of the workload identity.
    pub client_id: String,
    /// The federated token (`AZURE_FEDERATED_TOKEN_FILE`'s content) the
    /// identity's federated credential accepts as `client_assertion`.
    pub assertion: Federated,
    /// The one `scope` granted, e.g. `https://management.azure.com/.default`.
    pub scope: String,
    /// The access token issued.
    pub access_token: String,
    pub expires_in: u64,
}

impl Default for EntraConfig {
    /// Made-up IDs; the assertion a Kubernetes ServiceAccount token of
    /// `flux-system/image-reflector-controller` with Azure's audience
    /// `api://AzureADTokenExchange`, as the testkit API server issues it.
    fn default() -> EntraConfig {
        EntraConfig {
            tenant_id: "72f988bf-0000-4000-8000-00000000beef".into(),
            client_id: "c1e7c1e7-0000-4000-8000-00000000c11d".into(),
            assertion: Federated::Claims {
                issuer: "https://kubernetes.default.svc.cluster.local".into(),
                subject: "system:serviceaccount:flux-system:image-reflector-controller".into(),
                audience: "api://AzureADTokenExchange".into(),
            },
            scope: "https://management.azure.com/.default".into(),
            access_token: "entra-access-token".into(),
            expires_in: 3599,
        }
    }
}

/// Microsoft Entra ID's v2.0 token endpoint for workload identity (the
/// client credentials grant with a federated client assertion), over TLS with
/// a [`Pki`] certificate (make it with
/// `Pki::generate_for(dir, &["login.microsoftonline.com"])` to reach it under
/// that name).
///
/// `POST /{tenant}/oauth2/v2.0/token`, `application/x-www-form-urlencoded`:
/// `grant_type=client_credentials`, `client_id`, `scope`,
/// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
/// `client_assertion` → `{"token_type":"Bearer","expires_in","ext_expires_in","access_token"}`
/// (numbers).
///
/// Refuses with Entra's error body `{"error","error_description":"AADSTSnnn: …",
/// "error_codes":[nnn],"timestamp","trace_id","correlation_id","error_uri"}`:
/// - another method → 400 `invalid_request` AADSTS900561; another path → 404;
/// - another tenant → 400 `invalid_request` AADSTS90002;
/// - a missing `grant_type`, `client_id` or `scope` → 400 `invalid_request` AADSTS900144 naming it;
/// - another `grant_type` → 400 `unsupported_grant_type` AADSTS70003;
/// - another `client_id` → 400 `unauthorized_client` AADSTS700016;
/// - a `scope` without `/.default` → 400 `invalid_scope` AADSTS1002012;
///   another resource → 400 `invalid_resource` AADSTS500011;
/// - no `client_assertion` → 401 `invalid_client` AADSTS7000218;
/// - another `client_assertion_type` → 400 `invalid_request` AADSTS90011;
/// - an assertion that is not a JWT → 400 `invalid_request` AADSTS50027;
///   one the federated credential does not match → 401 `invalid_client`
///   AADSTS700213; an expired one → 400 `invalid_client` AADSTS700024.
pub struct AzureEntra {
    server: Server,
    config: Arc<Mutex<EntraConfig>>,
    issued: Arc<AtomicUsize>,
}

impl AzureEntra {
    pub fn start(pki: &Pki, config: EntraConfig) -> AzureEntra {
        let config = Arc::new(Mutex::new(config));
        let issued = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (config.clone(), issued.clone());
        let server = Server::start(Some(crate::git::tls_config(pki)), move |req| {
            let reply = entra_answer(req, &shared.lock().unwrap_or_else(|p| p.into_inner()));
            if reply.status == 200 {
                count.fetch_add(1, Ordering::SeqCst);
            }
            Outcome::Reply(reply)
        });
        AzureEntra {
            server,
            config,
            issued,
        }
    }

    /// From now on, issues `token`, valid for `expires_in_secs`.
    pub fn set_access_token(&self, token: &str, expires_in_secs: u64) {
        let mut c = self.config.lock().unwrap_or_else(|p| p.into_inner());
        c.access_token = token.to_string();
        c.expires_in = expires_in_secs;
    }

    pub fn config(&self) -> EntraConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `https://127.0.0.1:PORT/`, an `AZURE_AUTHORITY_HOST` value.
    pub fn authority_host(&self) -> String {
        format!("https://127.0.0.1:{}/", self.server.port)
    }

    /// The curl `--connect-to` entry (the `TAGWARDEN_CONNECT_TO` form)
    /// sending `login.microsoftonline.com:443` here.
    pub fn connect_to(&self) -> String {
        format!(
            "login.microsoftonline.com:443:127.0.0.1:{}",
            self.server.port
        )
    }

    /// `https://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}{}/oauth2/v2.0/token",
            self.authority_host(),
            self.config().tenant_id
        )
    }

    /// Every request seen so far, refused ones included.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server.requests()
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

fn entra_error(status: u16, error: &str, code: u32, message: &str) -> Reply {
    let now = entra_time(now_secs());
    let trace = "5f1e6a2b-7c3d-4e8f-9a0b-1c2d3e4f5a6b";
    let correlation = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    Reply::json(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}"
            ),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn entra_answer(req: &CloudRequest, c: &EntraConfig) -> Reply {
    let path = req.path();
    let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .filter(|t| !t.is_empty() && !t.contains('/'))
    else {
        return Reply::text(404, "text/html; charset=utf-8", "Not Found");
    };
    if req.method != "POST" {
        return entra_error(
            400,
            "invalid_request",
            900561,
            &format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                req.method
            ),
        );
    }
    if tenant != c.tenant_id {
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud."
            ),
        );
    }
    let missing = |name: &str| {
        entra_error(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let field = |name: &str| req.form_value(name).filter(|v| !v.is_empty());
    let Some(grant) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return entra_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    if client_id != c.client_id {
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{tenant}'. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant. You may \
                 have sent your authentication request to the wrong tenant."
            ),
        );
    }
    let Some(scope) = field("scope") else {
        return missing("scope");
    };
    if !scope.ends_with("/.default") {
        return entra_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows \
                 must have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        );
    }
    if scope != c.scope {
        let resource = scope.trim_end_matches("/.default");
        return entra_error(
            400,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {resource} was not found in the tenant named \
                 {tenant}. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant. You \
                 might have sent your authentication request to the wrong tenant."
            ),
        );
    }
    let Some(assertion) = field("client_assertion") else {
        return entra_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        );
    };
    if field("client_assertion_type")
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return entra_error(
            400,
            "invalid_request",
            90011,
            "Unexpected client assertion type.",
        );
    }
    match c.assertion.check(assertion) {
        Ok(()) => Reply::json(
            200,
            &json!({
                "token_type": "Bearer",
                "expires_in": c.expires_in,
                "ext_expires_in": c.expires_in,
                "access_token": c.access_token,
            }),
        ),
        Err(Mismatch::Malformed) => entra_error(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ),
        Err(Mismatch::Expired) => entra_error(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ),
        Err(Mismatch::Claims { subject, .. }) => entra_error(
            401,
            "invalid_client",
            700213,
            &format!(
                "No matching federated identity record found for presented assertion subject \
                 '{subject}'. Check your federated identity credential Subject, Audience and \
                 Issuer against the presented assertion."
            ),
        ),
    }
}

/// The user name a container registry's refresh token goes with.
pub const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";

/// The front of an Azure container registry (`NAME.azurecr.io`) over TLS
/// with a [`Pki`] certificate (make it with `Pki::generate_for(dir,
/// &["myregistry.azurecr.io"])`): it serves the Entra-to-registry token
/// exchange itself and relays everything else to a real docker-registry on
/// `127.0.0.1` ([`AcrFront::set_upstream`]) whose htpasswd holds
/// [`ACR_USER`] with [`AcrFront::refresh_token`] as the password, so the
/// refresh token is known before the registry starts.
///
/// `POST /oauth2/exchange`, `application/x-www-form-urlencoded`:
/// `grant_type=access_token`, `service` = the registry host name,
/// `access_token` = the Entra access token, `tenant` optional (when given
/// and a tenant is set, it must match) → `{"refresh_token"}`, a JWT-shaped
/// token whose payload has `exp` (Unix seconds), `aud` = the service,
/// `iss` "Azure Container Registry", `grant_type` "refresh_token".
///
/// Refuses with the registry's `{"errors":[{"code","message"}]}`:
/// another method → 405 `UNSUPPORTED`; a missing or other `grant_type` → 400
/// `UNSUPPORTED`; a missing or other `service`, a missing or other
/// `access_token`, another `tenant` → 401 `UNAUTHORIZED`.
///
/// Until an upstream is set, relayed requests get 502.
pub struct AcrFront {
    server: Server,
    host: String,
    state: Arc<Mutex<AcrState>>,
}

struct AcrState {
    access_token: String,
    tenant: Option<String>,
    upstream: Option<u16>,
    refresh_token: String,
    generation: u32,
    exchanges: usize,
}

/// How long the refresh tokens a registry issues live: three hours.
const ACR_REFRESH_LIFETIME: u64 = 3 * 3600;

impl AcrFront {
    /// The front for `registry_host` (e.g. `myregistry.azurecr.io`),
    /// exchanging `access_token` (what [`AzureEntra`] or [`AzureImds`]
    /// issues) for its refresh token.
    pub fn start(pki: &Pki, registry_host: &str, access_token: &str) -> AcrFront {
        let host = registry_host.to_string();
        let state = Arc::new(Mutex::new(AcrState {
            access_token: access_token.to_string(),
            tenant: None,
            upstream: None,
            refresh_token: acr_refresh_token(&host, 1, ACR_REFRESH_LIFETIME as i64),
            generation: 1,
            exchanges: 0,
        }));
        let (shared, service) = (state.clone(), host.clone());
        let server = Server::start(Some(crate::git::tls_config(pki)), move |req| {
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            if req.path() == "/oauth2/exchange" {
                return Outcome::Reply(acr_exchange(req, &service, &mut s));
            }
            match s.upstream {
                Some(port) => Outcome::Forward(port),
                None => Outcome::Reply(Reply::text(
                    502,
                    "text/plain",
                    "stand-in: no upstream registry set",
                )),
            }
        });
        AcrFront {
            server,
            host,
            state,
        }
    }

    /// Relays registry requests to `127.0.0.1:port` from now on.
    pub fn set_upstream(&self, port: u16) {
        self.lock().upstream = Some(port);
    }

    /// Requires `tenant`, when an exchange names one, to be this.
    pub fn set_tenant(&self, tenant: &str) {
        self.lock().tenant = Some(tenant.to_string());
    }

    /// Accepts `token` as the Entra access token from now on.
    pub fn set_access_token(&self, token: &str) {
        self.lock().access_token = token.to_string();
    }

    /// The refresh token the next exchange issues (the same until [`AcrFront::rotate`]).
    pub fn refresh_token(&self) -> String {
        self.lock().refresh_token.clone()
    }

    /// Makes the next exchanges issue a new refresh token (valid three hours)
    /// and returns it; restart the upstream with it as the password to make
    /// the old one stop working.
    pub fn rotate(&self) -> String {
        self.rotate_with_lifetime(ACR_REFRESH_LIFETIME as i64)
    }

    /// Like [`AcrFront::rotate`], the new token's `exp` `secs` from now
    /// (negative: already expired).
    pub fn rotate_with_lifetime(&self, secs: i64) -> String {
        let mut s = self.lock();
        s.generation += 1;
        s.refresh_token = acr_refresh_token(&self.host, s.generation, secs);
        s.refresh_token.clone()
    }

    /// The registry host name, also the exchange's `service`.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The curl `--connect-to` entry (the `TAGWARDEN_CONNECT_TO` form)
    /// sending `HOST:443` here.
    pub fn connect_to(&self) -> String {
        format!("{}:443:127.0.0.1:{}", self.host, self.server.port)
    }

    /// Every request seen so far, relayed ones included.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server.requests()
    }

    /// Refresh tokens issued so far.
    pub fn exchanges(&self) -> usize {
        self.lock().exchanges
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AcrState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A refresh token shaped as a registry's. The header's `kid` differs per
/// token: htpasswd's bcrypt reads only the first 72 bytes of a password, and
/// two tokens alike there would both pass the upstream's check.
fn acr_refresh_token(service: &str, generation: u32, lifetime: i64) -> String {
    let now = now_secs() as i64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let header = json!({"alg": "RS256", "kid": format!("g{generation}n{nanos}"), "typ": "JWT"});
    crate::standin::jwt_with_header(
        &header,
        &json!({
            "jti": format!("acr-refresh-{generation}"),
            "sub": "flux@tagwarden",
            "nbf": now - 10,
            "exp": now + lifetime,
            "iat": now,
            "iss": "Azure Container Registry",
            "aud": service,
            "version": "1.0",
            "grant_type": "refresh_token",
        }),
    )
}

fn acr_errors(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"errors": [{"code": code, "message": message}]}),
    )
}

fn acr_exchange(req: &CloudRequest, service: &str, s: &mut AcrState) -> Reply {
    if req.method != "POST" {
        return acr_errors(405, "UNSUPPORTED", "The operation is unsupported.");
    }
    let field = |name: &str| req.form_value(name).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some("access_token") => {}
        Some(other) => {
            return acr_errors(
                400,
                "UNSUPPORTED",
                &format!("grant_type '{other}' is not supported"),
            );
        }
        None => return acr_errors(400, "UNSUPPORTED", "grant_type is required"),
    }
    let unauthorized = |message: &str| acr_errors(401, "UNAUTHORIZED", message);
    if field("service") != Some(service) {
        return unauthorized(&format!(
            "service must be '{service}', the registry's login server"
        ));
    }
    if let (Some(want), Some(got)) = (&s.tenant, field("tenant"))
        && want != got
    {
        return unauthorized(&format!("tenant '{got}' does not own this registry"));
    }
    match field("access_token") {
        None => return unauthorized("access_token is required"),
        Some(t) if t != s.access_token => {
            return unauthorized("the access token is invalid or has expired");
        }
        Some(_) => {}
    }
    s.exchanges += 1;
    Reply::json(200, &json!({"refresh_token": s.refresh_token}))
}
