//! TLS, mutual TLS and token auth against the real docker-registry, with a
//! CA and a JWT issuer made by the test.

use std::time::Duration;
use tagwarden_api::image::ImageRef;
use tagwarden_registry::{Client, ClientOptions, Credentials, RegistryError};
use tagwarden_testkit::{Pki, Registry, RegistryAuth, RegistryTls, TempDir, TokenServer};

fn image(reg: &Registry, repo: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{repo}", reg.host())).expect("valid image")
}

fn client(opts: ClientOptions) -> Client {
    Client::new(ClientOptions {
        backoff: Duration::from_millis(10),
        attempts: 2,
        ..opts
    })
    .expect("client")
}

#[tokio::test]
async fn tls_with_the_ca_of_cert_secret_ref() {
    let dir = TempDir::new("pki");
    let pki = Pki::generate(dir.path());
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("secure/app", &["1.0.0", "1.1.0"], None);
    reg.restart(RegistryAuth::None, Some(RegistryTls::from_pki(&pki, false)));
    let img = image(&reg, "secure/app");

    // Without the CA the certificate is refused; we never fall back to HTTP.
    let err = client(ClientOptions::default())
        .list_tags(&img, None)
        .await
        .expect_err("unknown CA");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let c = client(ClientOptions {
        ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..ClientOptions::default()
    });
    let mut tags = c.list_tags(&img, None).await.expect("list over TLS");
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0"]);
    let digest = c
        .digest(&img, "1.1.0", None)
        .await
        .expect("digest over TLS");
    assert!(digest.starts_with("sha256:"), "{digest}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let dir = TempDir::new("pki");
    let pki = Pki::generate(dir.path());
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("mtls/app", &["2.0.0"], None);
    reg.restart(RegistryAuth::None, Some(RegistryTls::from_pki(&pki, true)));
    let img = image(&reg, "mtls/app");
    let ca_only = client(ClientOptions {
        ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..ClientOptions::default()
    });
    let err = ca_only
        .list_tags(&img, None)
        .await
        .expect_err("no client cert");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");

    let with_identity = client(ClientOptions {
        ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        identity_pem: Some(pki.client_identity_pem.clone().into_bytes()),
        ..ClientOptions::default()
    });
    let tags = with_identity
        .list_tags(&img, None)
        .await
        .expect("list with client certificate");
    assert_eq!(tags, ["2.0.0"]);
}

#[tokio::test]
async fn bearer_token_flow_against_token_auth() {
    let dir = TempDir::new("token");
    let tokens = TokenServer::start(dir.path(), "flux", "t0ken-pass");
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("org/api", &["v1", "v2", "v3"], None);
    reg.restart(RegistryAuth::token(&tokens), None);
    let img = image(&reg, "org/api");

    // Anonymous: the token server refuses, and so the scan is an auth failure.
    let c = client(ClientOptions::default());
    let err = c.list_tags(&img, None).await.expect_err("anonymous");
    assert!(matches!(err, RegistryError::Authentication { .. }), "{err}");
    assert_eq!(err.reason(), "AuthenticationFailed");
    let wrong = Credentials {
        username: "flux".into(),
        password: "wrong".into(),
    };
    assert!(matches!(
        c.list_tags(&img, Some(&wrong)).await,
        Err(RegistryError::Authentication { .. })
    ));

    let creds = Credentials {
        username: "flux".into(),
        password: "t0ken-pass".into(),
    };
    let before = tokens.issued();
    let c = client(ClientOptions::default());
    let mut tags = c
        .list_tags(&img, Some(&creds))
        .await
        .expect("list with token");
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    let digest = c
        .digest(&img, "v2", Some(&creds))
        .await
        .expect("digest with token");
    assert!(digest.starts_with("sha256:"));
    c.list_tags(&img, Some(&creds))
        .await
        .expect("second listing");
    // One token serves the listing, the digest and the second listing: cached until expiry.
    assert_eq!(tokens.issued() - before, 1);

    // A token for another repository does not open this one: the registry checks the scope.
    let err = c
        .list_tags(&image(&reg, "org/other"), Some(&creds))
        .await
        .expect_err("repository does not exist");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert_eq!(tokens.issued() - before, 2, "a new scope needs a new token");
}
