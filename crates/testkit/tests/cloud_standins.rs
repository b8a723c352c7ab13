//! The cloud identity stand-ins, spoken to with the `curl` CLI as a client
//! would (over TLS with the test CA where the real endpoint is TLS): right
//! requests succeed, and each wrong one is refused in the real service's shape.

use serde_json::{Value, json};
use std::process::Command;
use tagwarden_testkit::{
    ACR_USER, AcrFront, AzureEntra, AzureImds, EntraConfig, Federated, GcpMetadata, GcpSts,
    GcpStsConfig, IMDS_DEFAULT_CLIENT_ID, Pki, Registry, RegistryAuth, TempDir, jwt_shaped,
};

/// What curl got back.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -sS -i ARGS`; panics when curl itself fails (TLS, connect).
fn curl(args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// curl's exit code and stderr for a request expected to fail below HTTP.
fn curl_fails(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---- Pki::generate_for ----

#[test]
fn generate_for_names_the_extra_hosts_and_generate_does_not() {
    let dir = TempDir::new("pki-for");
    let pki = Pki::generate_for(dir.path(), &["login.microsoftonline.com", "*.azurecr.io"]);
    let entra = AzureEntra::start(&pki, EntraConfig::default());
    let ca = pki.ca_file.to_str().expect("utf-8 path");
    let connect = format!("login.microsoftonline.com:443:127.0.0.1:{}", entra.port());
    let url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        EntraConfig::default().tenant_id
    );
    // Verified under the cloud name (the answer is Entra's, not a TLS error).
    let a = curl(&["--cacert", ca, "--connect-to", &connect, "-d", "", &url]);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error_codes"], json!([900144]));
    // The wildcard covers one label of azurecr.io.
    let acr = format!("myregistry.azurecr.io:443:127.0.0.1:{}", entra.port());
    let a = curl(&[
        "--cacert",
        ca,
        "--connect-to",
        &acr,
        "https://myregistry.azurecr.io/nope",
    ]);
    assert_eq!(a.status, 404);
    // A name the certificate lacks fails verification (curl exit 60).
    let other = format!("sts.googleapis.com:443:127.0.0.1:{}", entra.port());
    let (code, err) = curl_fails(&[
        "--cacert",
        ca,
        "--connect-to",
        &other,
        "https://sts.googleapis.com/v1/token",
    ]);
    assert_eq!(code, 60, "{err}");
    assert!(err.contains("sts.googleapis.com"), "{err}");

    // generate: localhost and 127.0.0.1 only, as before.
    let dir2 = TempDir::new("pki-plain");
    let plain = Pki::generate(dir2.path());
    let entra2 = AzureEntra::start(&plain, EntraConfig::default());
    let ca2 = plain.ca_file.to_str().expect("utf-8 path");
    let connect2 = format!("login.microsoftonline.com:443:127.0.0.1:{}", entra2.port());
    let (code, err) = curl_fails(&["--cacert", ca2, "--connect-to", &connect2, "-d", "", &url]);
    assert_eq!(code, 60, "{err}");
    let a = curl(&["--cacert", ca2, "-d", "", &entra2.token_url()]);
    assert_eq!(a.status, 400, "127.0.0.1 is still in the certificate");
}

// ---- GcpMetadata ----

const SA: &str = "flux@tagwarden-test.iam.gserviceaccount.com";
const FLAVOR: &str = "Metadata-Flavor: Google";

fn meta_url(m: &GcpMetadata, path: &str) -> String {
    format!("http://{}/computeMetadata/v1/{path}", m.host())
}

#[test]
fn gcp_metadata_serves_the_token_and_the_instance_values() {
    let m = GcpMetadata::start(SA, "ya29.first", 3599);
    let a = curl(&[
        "-H",
        FLAVOR,
        &meta_url(
            &m,
            "instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/cloud-platform",
        ),
    ]);
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Metadata-Flavor"), Some("Google"));
    assert_eq!(
        a.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    let v = a.json();
    assert_eq!(v["access_token"], "ya29.first");
    assert_eq!(v["token_type"], "Bearer");
    let left = v["expires_in"].as_u64().expect("expires_in is a number");
    assert!((3590..=3599).contains(&left), "{left}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(3), "{v}");

    // The same account under its email.
    let a = curl(&[
        "-H",
        FLAVOR,
        &meta_url(&m, &format!("instance/service-accounts/{SA}/token")),
    ]);
    assert_eq!(a.json()["access_token"], "ya29.first");

    for (path, want) in [
        ("instance/service-accounts/default/email", SA),
        ("project/project-id", "tagwarden-test"),
        ("project/numeric-project-id", "123456789012"),
        ("instance/attributes/cluster-name", "tagwarden"),
        ("instance/attributes/cluster-location", "europe-west1"),
    ] {
        let a = curl(&["-H", FLAVOR, &meta_url(&m, path)]);
        assert_eq!((a.status, a.body.as_str()), (200, want), "{path}");
        assert_eq!(a.header("Content-Type"), Some("application/text"), "{path}");
        assert_eq!(a.header("Metadata-Flavor"), Some("Google"), "{path}");
    }
    m.set_value("project/project-id", "other-project");
    m.remove_value("instance/attributes/cluster-name");
    let a = curl(&["-H", FLAVOR, &meta_url(&m, "project/project-id")]);
    assert_eq!(a.body, "other-project");
    let a = curl(&[
        "-H",
        FLAVOR,
        &meta_url(&m, "instance/attributes/cluster-name"),
    ]);
    assert_eq!(a.status, 404);
    assert_eq!(a.header("Metadata-Flavor"), Some("Google"));

    // Detection probe at the root.
    let a = curl(&["-H", FLAVOR, &format!("http://{}/", m.host())]);
    assert_eq!((a.status, a.body.as_str()), (200, "computeMetadata/\n"));

    let reqs = m.requests();
    assert_eq!(
        reqs[0].query("scopes").as_deref(),
        Some("https://www.googleapis.com/auth/cloud-platform")
    );
    assert_eq!(reqs[0].header("metadata-flavor"), Some("Google"));
    assert_eq!(m.tokens_issued(), 2);
}

#[test]
fn gcp_metadata_rotates_the_token() {
    let m = GcpMetadata::start(SA, "ya29.first", 3599);
    let token = meta_url(&m, "instance/service-accounts/default/token");
    m.set_token("ya29.second", 120);
    let v = curl(&["-H", FLAVOR, &token]).json();
    assert_eq!(v["access_token"], "ya29.second");
    assert!(
        v["expires_in"]
            .as_u64()
            .is_some_and(|s| s <= 120 && s > 100)
    );
    m.set_token("ya29.gone", 0);
    assert_eq!(curl(&["-H", FLAVOR, &token]).json()["expires_in"], 0);
}

#[test]
fn gcp_metadata_refuses_without_the_flavor_header_or_through_a_proxy() {
    let m = GcpMetadata::start(SA, "ya29.secret", 3599);
    let token = meta_url(&m, "instance/service-accounts/default/token");
    let a = curl(&[&token]);
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body,
        "GKE Metadata Server encountered an error: Missing required header \"Metadata-Flavor\": \"Google\"\n"
    );
    assert_eq!(a.header("Metadata-Flavor"), None);
    // The old header and a wrong value are no better.
    for h in ["X-Google-Metadata-Request: True", "Metadata-Flavor: google"] {
        assert_eq!(curl(&["-H", h, &token]).status, 403, "{h}");
    }
    let a = curl(&["-H", FLAVOR, "-H", "X-Forwarded-For: 10.0.0.1", &token]);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("X-Forwarded-For"), "{}", a.body);
    let a = curl(&["-H", FLAVOR, "-X", "POST", &token]);
    assert_eq!(a.status, 405);
    let a = curl(&[
        "-H",
        FLAVOR,
        &meta_url(&m, "instance/service-accounts/other@x/token"),
    ]);
    assert_eq!(a.status, 404);
    assert!(!a.body.contains("ya29.secret"));
    assert_eq!(m.tokens_issued(), 0);
    assert_eq!(m.requests().len(), 6);
}

// ---- AzureImds ----

const ARM: &str = "https://management.azure.com/";

fn imds(m: &AzureImds, query: &str) -> String {
    format!("{}?{query}", m.token_url())
}

#[test]
fn azure_imds_serves_the_token_with_string_numbers() {
    let m = AzureImds::start(ARM, "imds-access-token", 3600);
    let a = curl(&[
        "-H",
        "Metadata: true",
        &imds(
            &m,
            "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
        ),
    ]);
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["access_token"], "imds-access-token");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["resource"], ARM);
    assert_eq!(v["client_id"], IMDS_DEFAULT_CLIENT_ID);
    let expires_in: u64 = v["expires_in"]
        .as_str()
        .expect("expires_in is a string")
        .parse()
        .expect("digits");
    assert!((3590..=3600).contains(&expires_in), "{v}");
    let expires_on: u64 = v["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("digits");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        expires_on.abs_diff(now + 3600) <= 10,
        "{expires_on} vs {now}"
    );

    // Without the trailing slash (what SDKs make of a `.default` scope), and
    // for the identity named by its client ID.
    m.set_client_id("aaaaaaaa-0000-4000-8000-000000000001");
    m.set_token("imds-second", 60);
    let a = curl(&[
        "-H",
        "Metadata: true",
        &imds(
            &m,
            "api-version=2018-02-01&resource=https://management.azure.com&client_id=aaaaaaaa-0000-4000-8000-000000000001",
        ),
    ]);
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["access_token"], "imds-second");
    assert_eq!(v["resource"], "https://management.azure.com");
    let r = &m.requests()[1];
    assert_eq!(r.header("metadata"), Some("true"));
    assert_eq!(
        r.query("client_id").as_deref(),
        Some("aaaaaaaa-0000-4000-8000-000000000001")
    );
}

#[test]
fn azure_imds_refuses_wrong_requests_with_its_error_shape() {
    let m = AzureImds::start(ARM, "imds-secret", 3600);
    let ok = "api-version=2018-02-01&resource=https://management.azure.com/";
    let cases: &[(&[&str], &str, u16, &str, &str)] = &[
        (
            &[],
            ok,
            400,
            "invalid_request",
            "Required metadata header not specified",
        ),
        (
            &["-H", "Metadata: false"],
            ok,
            400,
            "invalid_request",
            "Required metadata header not specified",
        ),
        (
            &["-H", "Metadata: true", "-H", "X-Forwarded-For: 10.0.0.1"],
            ok,
            400,
            "invalid_request",
            "Request with X-Forwarded-For header is not allowed",
        ),
        (
            &["-H", "Metadata: true"],
            "resource=https://management.azure.com/",
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        ),
        (
            &["-H", "Metadata: true"],
            "api-version=2018-02-01",
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        ),
        (
            &["-H", "Metadata: true"],
            "api-version=2018-02-01&resource=https://management.azure.com/&client_id=nobody",
            400,
            "invalid_request",
            "Identity not found",
        ),
    ];
    for (headers, query, status, error, description) in cases {
        let url = imds(&m, query);
        let mut args: Vec<&str> = headers.to_vec();
        args.push(&url);
        let a = curl(&args);
        assert_eq!(a.status, *status, "{headers:?} {query}");
        assert_eq!(
            a.json(),
            json!({"error": error, "error_description": description}),
            "{headers:?} {query}"
        );
    }
    let a = curl(&[
        "-H",
        "Metadata: true",
        &imds(
            &m,
            "api-version=2018-02-01&resource=https://vault.azure.net",
        ),
    ]);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_resource");
    assert!(
        a.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS500011: ") && d.contains("vault.azure.net"))
    );
    let a = curl(&[
        "-H",
        "Metadata: true",
        &format!("http://{}/metadata/identity/oauth2/tokens?{ok}", m.host()),
    ]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "unknown_source");
    let a = curl(&["-H", "Metadata: true", "-X", "POST", &imds(&m, ok)]);
    assert_eq!(a.status, 405);
    assert_eq!(m.requests().len(), 9);
}

// ---- AzureEntra ----

fn sa_token(sub: &str, aud: &str, exp_from_now: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    jwt_shaped(&json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": sub,
        "aud": [aud],
        "exp": now + exp_from_now,
        "iat": now,
    }))
}

const FLUX_SA: &str = "system:serviceaccount:flux-system:image-reflector-controller";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The form a workload identity client posts, minus `drop`, with `set` overriding.
fn entra_form(assertion: &str, drop: &str, set: &[(&str, &str)]) -> Vec<String> {
    let c = EntraConfig::default();
    let mut fields = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", c.client_id.clone()),
        ("scope", c.scope.clone()),
        ("client_assertion_type", JWT_BEARER.to_string()),
        ("client_assertion", assertion.to_string()),
    ];
    fields.retain(|(k, _)| *k != drop);
    for (k, v) in set {
        match fields.iter_mut().find(|(f, _)| f == k) {
            Some(f) => f.1 = v.to_string(),
            None => fields.push((k, v.to_string())),
        }
    }
    fields
        .into_iter()
        .flat_map(|(k, v)| ["--data-urlencode".to_string(), format!("{k}={v}")])
        .collect()
}

fn entra_post(e: &AzureEntra, ca: &str, url: &str, form: &[String]) -> Answer {
    let connect = e.connect_to();
    let mut args = vec!["--cacert", ca, "--connect-to", &connect];
    args.extend(form.iter().map(String::as_str));
    args.push(url);
    curl(&args)
}

#[test]
fn azure_entra_issues_a_token_for_the_federated_assertion() {
    let dir = TempDir::new("entra");
    let pki = Pki::generate_for(dir.path(), &["login.microsoftonline.com"]);
    let e = AzureEntra::start(&pki, EntraConfig::default());
    let ca = pki.ca_file.to_str().expect("utf-8 path");
    let c = e.config();
    let url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        c.tenant_id
    );
    let assertion = sa_token(FLUX_SA, "api://AzureADTokenExchange", 3600);
    let a = entra_post(&e, ca, &url, &entra_form(&assertion, "", &[]));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": "entra-access-token",
        })
    );
    let r = &e.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), format!("/{}/oauth2/v2.0/token", c.tenant_id));
    assert_eq!(r.form_value("client_assertion"), Some(assertion.as_str()));
    assert_eq!(
        r.form_value("scope"),
        Some("https://management.azure.com/.default")
    );
    assert_eq!(e.tokens_issued(), 1);

    // An exact expected token, and a rotated access token.
    let dir2 = TempDir::new("entra-exact");
    let pki2 = Pki::generate_for(dir2.path(), &["login.microsoftonline.com"]);
    let exact = AzureEntra::start(
        &pki2,
        EntraConfig {
            assertion: Federated::Token("federated-file-content".into()),
            ..EntraConfig::default()
        },
    );
    exact.set_access_token("entra-second", 600);
    let ca2 = pki2.ca_file.to_str().expect("utf-8 path");
    let a = entra_post(
        &exact,
        ca2,
        &url,
        &entra_form("federated-file-content", "", &[]),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["access_token"], "entra-second");
    assert_eq!(a.json()["expires_in"], 600);
}

/// What is wrong, the form, and the status, `error`, code and text expected.
type EntraCase = (
    &'static str,
    Vec<String>,
    u16,
    &'static str,
    u32,
    &'static str,
);

#[test]
fn azure_entra_refuses_each_wrong_field_with_its_aadsts_code() {
    let dir = TempDir::new("entra-wrong");
    let pki = Pki::generate_for(dir.path(), &["login.microsoftonline.com"]);
    let e = AzureEntra::start(&pki, EntraConfig::default());
    let ca = pki.ca_file.to_str().expect("utf-8 path");
    let c = e.config();
    let url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        c.tenant_id
    );
    let good = sa_token(FLUX_SA, "api://AzureADTokenExchange", 3600);
    let other_sa = sa_token(
        "system:serviceaccount:default:other",
        "api://AzureADTokenExchange",
        3600,
    );
    let wrong_aud = sa_token(FLUX_SA, "https://kubernetes.default.svc", 3600);
    let expired = sa_token(FLUX_SA, "api://AzureADTokenExchange", -60);
    let cases: Vec<EntraCase> = vec![
        (
            "no grant_type",
            entra_form(&good, "grant_type", &[]),
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
        (
            "password grant",
            entra_form(&good, "", &[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type 'password'.",
        ),
        (
            "no client_id",
            entra_form(&good, "client_id", &[]),
            400,
            "invalid_request",
            900144,
            "'client_id'",
        ),
        (
            "other client",
            entra_form(
                &good,
                "",
                &[("client_id", "11111111-0000-4000-8000-000000000000")],
            ),
            400,
            "unauthorized_client",
            700016,
            "Application with identifier '11111111-0000-4000-8000-000000000000' was not found",
        ),
        (
            "no scope",
            entra_form(&good, "scope", &[]),
            400,
            "invalid_request",
            900144,
            "'scope'",
        ),
        (
            "scope without .default",
            entra_form(&good, "", &[("scope", "https://management.azure.com/")]),
            400,
            "invalid_scope",
            1002012,
            "must have a scope value with /.default suffixed",
        ),
        (
            "other resource",
            entra_form(&good, "", &[("scope", "https://vault.azure.net/.default")]),
            400,
            "invalid_resource",
            500011,
            "The resource principal named https://vault.azure.net was not found",
        ),
        (
            "no assertion",
            entra_form(&good, "client_assertion", &[]),
            401,
            "invalid_client",
            7000218,
            "'client_assertion' or 'client_secret'",
        ),
        (
            "other assertion type",
            entra_form(&good, "", &[("client_assertion_type", "jwt")]),
            400,
            "invalid_request",
            90011,
            "Unexpected client assertion type.",
        ),
        (
            "assertion not a JWT",
            entra_form("not-a-jwt", "", &[]),
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ),
        (
            "other subject",
            entra_form(&other_sa, "", &[]),
            401,
            "invalid_client",
            700213,
            "No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:other'.",
        ),
        (
            "wrong audience",
            entra_form(&wrong_aud, "", &[]),
            401,
            "invalid_client",
            700213,
            "No matching federated identity record found",
        ),
        (
            "expired assertion",
            entra_form(&expired, "", &[]),
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ),
    ];
    for (what, form, status, error, code, text) in cases {
        let a = entra_post(&e, ca, &url, &form);
        assert_eq!(a.status, status, "{what}: {}", a.body);
        let v = a.json();
        assert_eq!(v["error"], error, "{what}");
        assert_eq!(v["error_codes"], json!([code]), "{what}");
        let d = v["error_description"].as_str().expect("error_description");
        assert!(d.starts_with(&format!("AADSTS{code}: ")), "{what}: {d}");
        assert!(d.contains(text), "{what}: {d}");
        assert!(d.contains("\r\nTrace ID: "), "{what}: {d}");
        assert_eq!(
            v["error_uri"],
            format!("https://login.microsoftonline.com/error?code={code}")
        );
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    // Another tenant, and a GET.
    let other =
        "https://login.microsoftonline.com/00000000-1111-4000-8000-000000000000/oauth2/v2.0/token";
    let a = entra_post(&e, ca, other, &entra_form(&good, "", &[]));
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error_codes"], json!([90002]));
    assert!(
        a.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("Tenant '00000000-1111-4000-8000-000000000000' not found"))
    );
    let connect = format!("login.microsoftonline.com:443:127.0.0.1:{}", e.port());
    let a = curl(&["--cacert", ca, "--connect-to", &connect, &url]);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error_codes"], json!([900561]));
    assert!(a.body.contains("Received a GET request."));
    assert_eq!(e.tokens_issued(), 0);
    assert_eq!(e.requests().len(), 15);
}

// ---- GcpSts ----

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";
const GKE_SA: &str = "system:serviceaccount:flux-system:image-reflector-controller";

struct Google {
    sts: GcpSts,
    ca: String,
    _dir: TempDir,
}

impl Google {
    fn start(config: GcpStsConfig) -> Google {
        let dir = TempDir::new("gcp-sts");
        let pki = Pki::generate_for(
            dir.path(),
            &["sts.googleapis.com", "iamcredentials.googleapis.com"],
        );
        Google {
            sts: GcpSts::start(&pki, config),
            ca: pki.ca_file.to_str().expect("utf-8 path").to_string(),
            _dir: dir,
        }
    }

    /// curl against the real Google URL `url`, connected here.
    fn call(&self, extra: &[String], url: &str) -> Answer {
        let mut args: Vec<String> = vec!["--cacert".into(), self.ca.clone()];
        for c in self.sts.connect_to() {
            args.push("--connect-to".into());
            args.push(c);
        }
        args.extend(extra.iter().cloned());
        args.push(url.into());
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn exchange(&self, form: &[String]) -> Answer {
        self.call(form, "https://sts.googleapis.com/v1/token")
    }

    fn impersonate(&self, email: &str, bearer: Option<&str>, body: &str) -> Answer {
        let mut extra = vec![
            "-H".to_string(),
            "Content-Type: application/json".to_string(),
            "--data-raw".to_string(),
            body.to_string(),
        ];
        if let Some(b) = bearer {
            extra.push("-H".into());
            extra.push(format!("Authorization: Bearer {b}"));
        }
        self.call(
            &extra,
            &format!(
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
            ),
        )
    }
}

fn gke_token(aud: &str, exp_from_now: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    jwt_shaped(&json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": GKE_SA,
        "aud": [aud],
        "exp": now + exp_from_now,
    }))
}

/// The token exchange form, minus `drop`, with `set` overriding.
fn sts_form(subject: &str, drop: &str, set: &[(&str, &str)]) -> Vec<String> {
    let audience = GcpStsConfig::default().audience;
    let mut fields = vec![
        ("grant_type", EXCHANGE.to_string()),
        ("audience", audience),
        (
            "scope",
            format!("{CLOUD} https://www.googleapis.com/auth/userinfo.email"),
        ),
        ("requested_token_type", ACCESS.to_string()),
        ("subject_token", subject.to_string()),
        ("subject_token_type", JWT_TYPE.to_string()),
    ];
    fields.retain(|(k, _)| *k != drop);
    for (k, v) in set {
        match fields.iter_mut().find(|(f, _)| f == k) {
            Some(f) => f.1 = v.to_string(),
            None => fields.push((k, v.to_string())),
        }
    }
    fields
        .into_iter()
        .flat_map(|(k, v)| ["--data-urlencode".to_string(), format!("{k}={v}")])
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Seconds from now to an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` (checked with `date`).
fn secs_until(rfc3339: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s"])
        .output()
        .expect("date");
    let at: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a date: {rfc3339}"));
    at - unix_now() as i64
}

#[test]
fn gcp_sts_exchanges_the_subject_token_as_form_or_json() {
    let g = Google::start(GcpStsConfig::default());
    let subject = gke_token("tagwarden-test.svc.id.goog", 3600);
    let a = g.exchange(&sts_form(&subject, "", &[]));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({
            "access_token": "ya29.federated",
            "issued_token_type": ACCESS,
            "token_type": "Bearer",
            "expires_in": 3599,
        })
    );
    let r = &g.sts.requests()[0];
    assert_eq!((r.method.as_str(), r.path()), ("POST", "/v1/token"));
    assert_eq!(r.header("host"), Some("sts.googleapis.com"));
    assert_eq!(r.form_value("subject_token"), Some(subject.as_str()));
    assert_eq!(r.form_value("grant_type"), Some(EXCHANGE));

    // The JSON body of the REST reference, camelCase, and an id_token subject type.
    g.sts.set_tokens("ya29.federated-2", "ya29.unused");
    let body = json!({
        "grantType": EXCHANGE,
        "audience": GcpStsConfig::default().audience,
        "scope": CLOUD,
        "requestedTokenType": ACCESS,
        "subjectToken": subject,
        "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
    })
    .to_string();
    let a = g.exchange(&[
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-raw".into(),
        body,
    ]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["access_token"], "ya29.federated-2");
    assert_eq!(g.sts.exchanges(), 2);

    // An exact subject token (a CI's OIDC token file).
    let exact = Google::start(GcpStsConfig {
        audience: "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ci/providers/gitlab".into(),
        subject_token: Federated::Token("opaque-oidc-token".into()),
        ..GcpStsConfig::default()
    });
    let a = exact.exchange(&sts_form(
        "opaque-oidc-token",
        "",
        &[("audience", &exact.sts.config().audience)],
    ));
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn gcp_sts_refuses_each_wrong_field_with_an_oauth_error() {
    let g = Google::start(GcpStsConfig::default());
    let good = gke_token("tagwarden-test.svc.id.goog", 3600);
    let wrong_aud = gke_token("api://AzureADTokenExchange", 3600);
    let expired = gke_token("tagwarden-test.svc.id.goog", -60);
    let other_sub = jwt_shaped(&json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:default:other",
        "aud": "tagwarden-test.svc.id.goog",
    }));
    let other_pool =
        "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/x/providers/y";
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "client credentials",
            sts_form(&good, "", &[("grant_type", "client_credentials")]),
            "unsupported_grant_type",
            "Unsupported grant_type \"client_credentials\"",
        ),
        (
            "no audience",
            sts_form(&good, "audience", &[]),
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name",
        ),
        (
            "https audience",
            sts_form(&good, "", &[("audience", "https://iam.googleapis.com/x")]),
            "invalid_request",
            "Invalid value for \"audience\".",
        ),
        (
            "other provider",
            sts_form(&good, "", &[("audience", other_pool)]),
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        ),
        (
            "id token requested",
            sts_form(
                &good,
                "",
                &[(
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                )],
            ),
            "invalid_request",
            "Invalid value for \"requested_token_type\".",
        ),
        (
            "saml subject",
            sts_form(
                &good,
                "",
                &[(
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                )],
            ),
            "invalid_request",
            "Invalid value for \"subject_token_type\".",
        ),
        (
            "no cloud-platform scope",
            sts_form(
                &good,
                "",
                &[("scope", "https://www.googleapis.com/auth/userinfo.email")],
            ),
            "invalid_scope",
            "The scope must include https://www.googleapis.com/auth/cloud-platform.",
        ),
        (
            "no subject token",
            sts_form(&good, "subject_token", &[]),
            "invalid_request",
            "Invalid value for \"subject_token\".",
        ),
        (
            "not a JWT",
            sts_form("opaque", "", &[]),
            "invalid_grant",
            "Unable to parse the ID Token.",
        ),
        (
            "other audience in the token",
            sts_form(&wrong_aud, "", &[]),
            "invalid_grant",
            "The audience in ID Token [api://AzureADTokenExchange] does not match the expected audience.",
        ),
        (
            "other subject",
            sts_form(&other_sub, "", &[]),
            "invalid_grant",
            "The given credential is rejected by the attribute condition.",
        ),
        (
            "expired",
            sts_form(&expired, "", &[]),
            "invalid_grant",
            "The ID Token has expired.",
        ),
    ];
    for (what, form, error, text) in cases {
        let a = g.exchange(&form);
        assert_eq!(a.status, 400, "{what}: {}", a.body);
        let v = a.json();
        assert_eq!(v["error"], error, "{what}: {v}");
        let d = v["error_description"].as_str().expect("error_description");
        assert!(d.starts_with(text), "{what}: {d}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{what}: {v}");
    }
    assert_eq!(g.sts.exchanges(), 0);
}

#[test]
fn gcp_iam_credentials_impersonates_with_the_federated_token() {
    let g = Google::start(GcpStsConfig::default());
    let email = g.sts.config().service_account;
    let federated = g
        .exchange(&sts_form(
            &gke_token("tagwarden-test.svc.id.goog", 3600),
            "",
            &[],
        ))
        .json()["access_token"]
        .as_str()
        .expect("federated token")
        .to_string();
    let a = g.impersonate(
        &email,
        Some(&federated),
        &json!({"scope": [CLOUD], "lifetime": "3600s"}).to_string(),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["accessToken"], "ya29.impersonated");
    let left = secs_until(v["expireTime"].as_str().expect("expireTime"));
    assert!((3590..=3600).contains(&left), "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");

    // Without a lifetime an hour; a shorter one is honoured.
    let a = g.impersonate(
        &email,
        Some(&federated),
        &json!({"scope": [CLOUD]}).to_string(),
    );
    assert!((3590..=3600).contains(&secs_until(
        a.json()["expireTime"].as_str().expect("expireTime")
    )));
    let a = g.impersonate(
        &email,
        Some(&federated),
        &json!({"scope": [CLOUD], "lifetime": "600s"}).to_string(),
    );
    assert!((590..=600).contains(&secs_until(
        a.json()["expireTime"].as_str().expect("expireTime")
    )));
    assert_eq!(g.sts.impersonations(), 3);

    let r = g.sts.requests().pop().expect("logged");
    assert_eq!(r.header("host"), Some("iamcredentials.googleapis.com"));
    assert_eq!(
        r.path(),
        format!("/v1/projects/-/serviceAccounts/{email}:generateAccessToken")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {federated}").as_str())
    );

    // The external_account file for this provider.
    let file = g
        .sts
        .external_account(std::path::Path::new("/var/run/token"), true);
    assert_eq!(file["type"], "external_account");
    assert_eq!(file["audience"], GcpStsConfig::default().audience);
    assert_eq!(file["token_url"], "https://sts.googleapis.com/v1/token");
    assert_eq!(file["subject_token_type"], JWT_TYPE);
    assert_eq!(
        file["credential_source"],
        json!({"file": "/var/run/token", "format": {"type": "text"}})
    );
    assert_eq!(
        file["service_account_impersonation_url"],
        format!(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
        )
    );
    let plain = g.sts.external_account(std::path::Path::new("/t"), false);
    assert!(plain.get("service_account_impersonation_url").is_none());
}

#[test]
fn gcp_iam_credentials_refuses_in_googles_error_shape() {
    let g = Google::start(GcpStsConfig::default());
    let email = g.sts.config().service_account;
    let body = json!({"scope": [CLOUD]}).to_string();
    // Before any exchange, even the configured token is unknown.
    let a = g.impersonate(&email, Some("ya29.federated"), &body);
    assert_eq!(a.status, 401);
    let federated = g
        .exchange(&sts_form(
            &gke_token("tagwarden-test.svc.id.goog", 3600),
            "",
            &[],
        ))
        .json()["access_token"]
        .as_str()
        .expect("federated token")
        .to_string();

    let a = g.impersonate(&email, None, &body);
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("WWW-Authenticate"),
        Some("Bearer realm=\"https://accounts.google.com/\"")
    );
    let v = a.json();
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert!(
        v["error"]["message"].as_str().is_some_and(
            |m| m.starts_with("Request is missing required authentication credential.")
        )
    );

    let a = g.impersonate(&email, Some("ya29.someone-else"), &body);
    assert_eq!(a.status, 401);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Request had invalid authentication credentials."))
    );

    let a = g.impersonate(
        "other@tagwarden-test.iam.gserviceaccount.com",
        Some(&federated),
        &body,
    );
    assert_eq!(a.status, 403);
    let v = a.json();
    assert_eq!(v["error"]["code"], 403);
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        v["error"]["message"],
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    );
    assert_eq!(v["error"]["details"][0]["reason"], "IAM_PERMISSION_DENIED");

    for (what, body, message) in [
        ("not JSON", "scope=x", "Invalid JSON payload received."),
        ("no scope", "{}", "Scope required."),
        ("empty scope", r#"{"scope":[]}"#, "Scope required."),
        (
            "two hours",
            r#"{"scope":["https://www.googleapis.com/auth/cloud-platform"],"lifetime":"7200s"}"#,
            "The lifetime must be a duration between 1s and 3600s.",
        ),
        (
            "no unit",
            r#"{"scope":["https://www.googleapis.com/auth/cloud-platform"],"lifetime":"3600"}"#,
            "The lifetime must be a duration between 1s and 3600s.",
        ),
    ] {
        let a = g.impersonate(&email, Some(&federated), body);
        assert_eq!(a.status, 400, "{what}");
        let v = a.json();
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{what}");
        assert_eq!(v["error"]["code"], 400, "{what}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message)),
            "{what}: {v}"
        );
    }
    assert_eq!(g.sts.impersonations(), 0);
}

// ---- AcrFront ----

const ACR: &str = "myregistry.azurecr.io";

struct Acr {
    front: AcrFront,
    ca: String,
    _dir: TempDir,
}

impl Acr {
    fn start() -> Acr {
        let dir = TempDir::new("acr");
        let pki = Pki::generate_for(dir.path(), &[ACR]);
        Acr {
            front: AcrFront::start(&pki, ACR, "entra-access-token"),
            ca: pki.ca_file.to_str().expect("utf-8 path").to_string(),
            _dir: dir,
        }
    }

    /// curl `https://myregistry.azurecr.io{path}`, connected to the front.
    fn call(&self, extra: &[&str], path: &str) -> Answer {
        let connect = self.front.connect_to();
        let url = format!("https://{ACR}{path}");
        let mut args = vec!["--cacert", &self.ca, "--connect-to", &connect];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    fn exchange(&self, fields: &[(&str, &str)]) -> Answer {
        let form: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut extra = Vec::new();
        for f in &form {
            extra.push("--data-urlencode");
            extra.push(f.as_str());
        }
        self.call(&extra, "/oauth2/exchange")
    }
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("three parts");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&raw).expect("JSON payload")
}

const GOOD_EXCHANGE: &[(&str, &str)] = &[
    ("grant_type", "access_token"),
    ("service", ACR),
    ("tenant", "72f988bf-0000-4000-8000-00000000beef"),
    ("access_token", "entra-access-token"),
];

#[test]
fn acr_front_exchanges_the_entra_token_and_relays_to_the_real_registry() {
    let acr = Acr::start();
    let refresh = acr.front.refresh_token();
    let mut registry = Registry::start(RegistryAuth::Basic {
        user: ACR_USER.into(),
        password: refresh.clone(),
    });
    registry.publish("app", &["1.0.0", "1.1.0"], Some((ACR_USER, &refresh)));
    acr.front.set_upstream(registry.port);

    let a = acr.exchange(GOOD_EXCHANGE);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json(), json!({"refresh_token": refresh}));
    let claims = payload(&refresh);
    assert_eq!(claims["aud"], ACR);
    assert_eq!(claims["iss"], "Azure Container Registry");
    let exp = claims["exp"].as_u64().expect("exp in seconds");
    assert!(exp.abs_diff(unix_now() + 3 * 3600) <= 10, "{claims}");
    let r = &acr.front.requests()[0];
    assert_eq!(r.header("host"), Some(ACR));
    assert_eq!(r.form_value("access_token"), Some("entra-access-token"));

    // Relayed: the registry's own challenge, then the tags with the refresh token.
    let a = acr.call(&[], "/v2/");
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("WWW-Authenticate"),
        Some("Basic realm=\"basic-realm\"")
    );
    let creds = format!("{ACR_USER}:{refresh}");
    let a = acr.call(&["-u", &creds], "/v2/app/tags/list");
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["name"], "app");
    let mut tags: Vec<&str> = v["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["1.0.0", "1.1.0"]);
    let a = acr.call(
        &[
            "-u",
            &creds,
            "-I",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ],
        "/v2/app/manifests/1.0.0",
    );
    assert_eq!(a.status, 200);
    assert!(
        a.header("Docker-Content-Digest")
            .is_some_and(|d| d.starts_with("sha256:"))
    );

    // Rotation: the registry takes the new token only; the exchange issues it.
    let rotated = acr.front.rotate();
    // htpasswd's bcrypt reads 72 bytes: tokens must differ within them.
    assert_ne!(rotated.as_bytes()[..72], refresh.as_bytes()[..72]);
    assert_eq!(acr.front.refresh_token(), rotated);
    registry.restart(
        RegistryAuth::Basic {
            user: ACR_USER.into(),
            password: rotated.clone(),
        },
        None,
    );
    assert_eq!(acr.call(&["-u", &creds], "/v2/app/tags/list").status, 401);
    let a = acr.exchange(GOOD_EXCHANGE);
    assert_eq!(a.json()["refresh_token"], rotated.as_str());
    let fresh = format!("{ACR_USER}:{rotated}");
    assert_eq!(acr.call(&["-u", &fresh], "/v2/app/tags/list").status, 200);
    assert_eq!(acr.front.exchanges(), 2);

    // An already expired one, for a client's expiry handling.
    let stale = acr.front.rotate_with_lifetime(-60);
    assert!(
        payload(&stale)["exp"]
            .as_u64()
            .is_some_and(|e| e < unix_now())
    );
}

/// What is wrong, the form, and the status, code and message expected.
type AcrCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
    &'static str,
);

#[test]
fn acr_front_refuses_wrong_exchanges_in_the_registry_error_shape() {
    let acr = Acr::start();
    let with = |k: &str, v: &'static str| -> Vec<(&'static str, &'static str)> {
        GOOD_EXCHANGE
            .iter()
            .map(|(f, x)| if *f == k { (*f, v) } else { (*f, *x) })
            .collect()
    };
    let without = |k: &str| -> Vec<(&'static str, &'static str)> {
        GOOD_EXCHANGE
            .iter()
            .copied()
            .filter(|(f, _)| *f != k)
            .collect()
    };
    let cases: Vec<AcrCase> = vec![
        (
            "no grant_type",
            without("grant_type"),
            400,
            "UNSUPPORTED",
            "grant_type is required",
        ),
        (
            "refresh grant",
            with("grant_type", "refresh_token"),
            400,
            "UNSUPPORTED",
            "grant_type 'refresh_token' is not supported",
        ),
        (
            "no service",
            without("service"),
            401,
            "UNAUTHORIZED",
            "service must be 'myregistry.azurecr.io', the registry's login server",
        ),
        (
            "other registry",
            with("service", "other.azurecr.io"),
            401,
            "UNAUTHORIZED",
            "service must be 'myregistry.azurecr.io', the registry's login server",
        ),
        (
            "no token",
            without("access_token"),
            401,
            "UNAUTHORIZED",
            "access_token is required",
        ),
        (
            "other token",
            with("access_token", "someone-elses"),
            401,
            "UNAUTHORIZED",
            "the access token is invalid or has expired",
        ),
    ];
    for (what, fields, status, code, message) in cases {
        let a = acr.exchange(&fields);
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert_eq!(
            a.json(),
            json!({"errors": [{"code": code, "message": message}]}),
            "{what}"
        );
    }
    // The tenant, once set, must match when given; leaving it out is fine.
    acr.front.set_tenant("72f988bf-0000-4000-8000-00000000beef");
    let a = acr.exchange(&with("tenant", "00000000-1111-4000-8000-000000000000"));
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(acr.exchange(&without("tenant")).status, 200);
    assert_eq!(acr.exchange(GOOD_EXCHANGE).status, 200);
    // A rotated Entra token replaces the old one.
    acr.front.set_access_token("entra-second");
    assert_eq!(acr.exchange(GOOD_EXCHANGE).status, 401);
    assert_eq!(
        acr.exchange(&with("access_token", "entra-second")).status,
        200
    );

    let a = acr.call(&[], "/oauth2/exchange");
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["errors"][0]["code"], "UNSUPPORTED");
    // No upstream yet: relayed requests fail visibly.
    assert_eq!(acr.call(&[], "/v2/").status, 502);
    assert_eq!(acr.front.exchanges(), 3);
}
