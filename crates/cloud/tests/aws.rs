//! `provider: aws` in process: moto serves STS and ECR (our fault proxy in
//! front of it counts and shows the calls), the real docker-registry serves
//! the images over TLS. EKS Pod Identity's agent and EC2's IMDSv2 have no
//! emulator: small stand-ins answer as they are documented and refuse
//! requests without their tokens.

use std::sync::Arc;
use std::time::Duration;
use tagwarden_api::image::ImageRef;
use tagwarden_cloud::{CloudAuth, Env};
use tagwarden_registry::{
    ClientOptions, CloudLogin, ConnectTo, Identity, Network, Pool, Provider, Registry as _,
    ScanSettings,
};
use tagwarden_testkit::{
    Action, FaultProxy, Moto, Pki, Registry, RegistryAuth, RegistryTls, Request, TempDir,
};

const ECR: &str = "123456789012.dkr.ecr.me-central-1.amazonaws.com";

struct Setup {
    moto: Moto,
    reg: Registry,
    pki: Pki,
    dir: TempDir,
}

fn setup() -> Setup {
    let moto = Moto::start();
    let password = moto.ecr_password("me-central-1");
    let dir = TempDir::new("aws");
    let pki = Pki::generate_for(dir.path(), &[ECR]);
    let auth = || RegistryAuth::Basic {
        user: "AWS".into(),
        password: password.clone(),
    };
    let mut reg = Registry::start(auth());
    reg.publish("app-name", &["1.0.0"], Some(("AWS", &password)));
    reg.restart(auth(), Some(RegistryTls::from_pki(&pki, false)));
    Setup {
        moto,
        reg,
        pki,
        dir,
    }
}

impl Setup {
    fn pool(&self, env: &[(&str, &str)]) -> Pool {
        Pool::new()
            .with_login(Arc::new(
                CloudAuth::new(Env::from_pairs(env.iter().copied())).expect("auth"),
            ))
            .with_network(Network {
                connect_to: vec![
                    ConnectTo::parse(&format!("{ECR}:443:127.0.0.1:{}", self.reg.port))
                        .expect("entry"),
                ],
                extra_roots_pem: Some(self.pki.ca_pem.clone().into_bytes()),
            })
    }
}

fn settings() -> ScanSettings {
    ScanSettings {
        image: ImageRef::parse(&format!("{ECR}/app-name")).expect("image"),
        options: ClientOptions {
            attempts: 1,
            ..ClientOptions::default()
        },
        credentials: None,
        login: Some(CloudLogin {
            provider: Provider::Aws,
            registry: ECR.into(),
            identity: Identity::Controller,
            proxy: None,
            timeout: Duration::from_secs(30),
        }),
        exclusions: Vec::new(),
    }
}

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn ecr_calls(proxy: &FaultProxy) -> Vec<Request> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| header(r, "x-amz-target").is_some())
        .collect()
}

fn json(body: serde_json::Value) -> Action {
    Action::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn status(code: u16) -> Action {
    Action::Respond {
        status: code,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// moto's ECR token says it expired in 2015. A real token's `expiresAt`
/// (12 hours out) would be kept until 5 minutes before; one already past
/// is good for the scan that asked (the registry judges it) and is never
/// cached, so every scan asks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_logs_in_and_a_token_already_expired_is_used_once_never_cached() {
    let s = setup();
    let proxy = FaultProxy::start(s.moto.port, |_| Action::Forward);
    let token = s.dir.path().join("web-identity");
    std::fs::write(&token, "eyJ.web-identity.sig").expect("token");
    let endpoint = format!("http://{}", proxy.host());
    let pool = s.pool(&[
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/reflector"),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token.to_str().expect("utf-8"),
        ),
        ("AWS_ROLE_SESSION_NAME", "tagwarden-test"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ]);
    pool.scan(&settings()).await.expect("first scan");
    pool.scan(&settings()).await.expect("second scan");
    let calls = ecr_calls(&proxy);
    assert_eq!(calls.len(), 2, "moto's past expiresAt is never cached");
    // Signed with the keys STS issued for the role, for ECR in the host's region.
    let auth = header(&calls[0], "authorization").expect("signed");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"),
        "{auth}"
    );
    assert!(auth.contains("/me-central-1/ecr/aws4_request"), "{auth}");
    assert!(header(&calls[0], "x-amz-security-token").is_some());
    assert_eq!(
        header(&calls[0], "x-amz-target"),
        Some("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_pod_identity_and_imdsv2_keys_sign_the_ecr_call() {
    let s = setup();
    let ecr = FaultProxy::start(s.moto.port, |_| Action::Forward);
    let endpoint = format!("http://{}", ecr.host());

    // EKS Pod Identity agent: the token file's content as Authorization.
    let agent = FaultProxy::start(s.moto.port, |r| {
        if r.method != "GET" || r.path() != "/v1/credentials" {
            return status(404);
        }
        if header(r, "authorization") != Some("pod-identity-token") {
            return status(401);
        }
        json(serde_json::json!({
            "AccessKeyId": "ASIAPODIDENTITY",
            "SecretAccessKey": "pod-secret",
            "Token": "pod-session-token",
            "AccountId": "123456789012",
            "Expiration": "2099-01-01T00:00:00Z",
        }))
    });
    let token = s.dir.path().join("eks-pod-identity-token");
    std::fs::write(&token, "pod-identity-token\n").expect("token");
    let uri = format!("http://{}/v1/credentials", agent.host());
    let pool = s.pool(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token.to_str().expect("utf-8"),
        ),
        ("AWS_ENDPOINT_URL_ECR", endpoint.as_str()),
    ]);
    pool.scan(&settings()).await.expect("pod identity scan");
    let call = ecr_calls(&ecr).pop().expect("ECR called");
    let auth = header(&call, "authorization").expect("signed");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAPODIDENTITY/"),
        "{auth}"
    );
    assert_eq!(
        header(&call, "x-amz-security-token"),
        Some("pod-session-token")
    );

    // A wrong agent token: the agent's refusal, by step.
    std::fs::write(&token, "stolen").expect("token");
    let pool = s.pool(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token.to_str().expect("utf-8"),
        ),
        ("AWS_ENDPOINT_URL_ECR", endpoint.as_str()),
    ]);
    let e = pool.scan(&settings()).await.expect_err("refused");
    assert!(
        e.to_string()
            .starts_with("spec.provider 'aws': container credentials: HTTP 401"),
        "{e}"
    );

    // IMDSv2: a session token first (PUT with a TTL), then the role and its keys.
    let imds = FaultProxy::start(s.moto.port, |r| {
        let session = header(r, "x-aws-ec2-metadata-token") == Some("imds-session");
        match (r.method.as_str(), r.path()) {
            ("PUT", "/latest/api/token")
                if header(r, "x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                Action::Respond {
                    status: 200,
                    headers: Vec::new(),
                    body: b"imds-session".to_vec(),
                }
            }
            ("PUT", _) => status(400),
            (_, _) if !session => status(401),
            ("GET", "/latest/meta-data/iam/security-credentials/") => Action::Respond {
                status: 200,
                headers: Vec::new(),
                body: b"node-role".to_vec(),
            },
            ("GET", "/latest/meta-data/iam/security-credentials/node-role") => {
                json(serde_json::json!({
                    "Code": "Success",
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIAIMDSNODE",
                    "SecretAccessKey": "imds-secret",
                    "Token": "imds-session-token",
                    "Expiration": "2099-01-01T00:00:00Z",
                }))
            }
            _ => status(404),
        }
    });
    let base = format!("http://{}", imds.host());
    let pool = s.pool(&[
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", base.as_str()),
        ("AWS_ENDPOINT_URL_ECR", endpoint.as_str()),
    ]);
    pool.scan(&settings()).await.expect("imds scan");
    let call = ecr_calls(&ecr).pop().expect("ECR called");
    let auth = header(&call, "authorization").expect("signed");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAIMDSNODE/"),
        "{auth}"
    );
    assert_eq!(
        header(&call, "x-amz-security-token"),
        Some("imds-session-token")
    );
    let seen: Vec<(String, String)> = imds
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path().to_string()))
        .collect();
    assert_eq!(
        seen[0],
        ("PUT".to_string(), "/latest/api/token".to_string())
    );
}

/// Our SigV4 signature, checked by moto's own verifier (IAM auth on): the
/// user's key gets a token, the same key with a wrong secret is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_verifies_the_sigv4_signature_of_the_ecr_call() {
    let (moto, keys) = Moto::start_verifying_signatures();
    let endpoint = moto.endpoint();
    let login = settings().login.expect("login");
    let auth = |secret: &str| {
        CloudAuth::new(Env::from_pairs([
            ("AWS_ACCESS_KEY_ID", keys.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ]))
        .expect("auth")
    };
    use tagwarden_registry::Login as _;
    let issued = auth(&keys.secret_access_key)
        .credentials(&login)
        .await
        .expect("a signed call moto accepts");
    assert_eq!(issued.credentials.username, "AWS");
    assert!(!issued.credentials.password.is_empty());
    let wrong = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let e = auth(wrong)
        .credentials(&login)
        .await
        .expect_err("bad signature");
    let m = e.to_string();
    assert!(
        m.starts_with(
            "spec.provider 'aws': ecr GetAuthorizationToken: HTTP 403: SignatureDoesNotMatch"
        ),
        "{m}"
    );
    assert!(
        !m.contains(wrong) && !m.contains(&keys.secret_access_key),
        "{m}"
    );
}
