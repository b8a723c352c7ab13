//! `provider: gcp` against the testkit stand-ins of Google's metadata
//! server, STS and IAM Credentials (no emulator exists), in front of the
//! real docker-registry over TLS with user `oauth2accesstoken`.

use std::sync::Arc;
use std::time::Duration;
use tagwarden_api::image::ImageRef;
use tagwarden_cloud::{CloudAuth, Env};
use tagwarden_registry::{
    ClientOptions, CloudLogin, ConnectTo, Identity, Network, Pool, Provider, Registry as _,
    RegistryError, ScanSettings,
};
use tagwarden_testkit::{
    Federated, GcpMetadata, GcpSts, GcpStsConfig, Pki, Registry, RegistryAuth, RegistryTls, TempDir,
};

const GAR: &str = "europe-docker.pkg.dev";
const USER: &str = "oauth2accesstoken";

fn basic(password: &str) -> RegistryAuth {
    RegistryAuth::Basic {
        user: USER.into(),
        password: password.into(),
    }
}

/// The real registry, under `GAR` over TLS, holding `proj/repo/app`.
fn registry(pki: &Pki, password: &str) -> Registry {
    let mut reg = Registry::start(basic(password));
    reg.publish("proj/repo/app", &["1.0.0", "1.1.0"], Some((USER, password)));
    reg.restart(basic(password), Some(RegistryTls::from_pki(pki, false)));
    reg
}

fn network(pki: &Pki, entries: &[String]) -> Network {
    Network {
        connect_to: entries
            .iter()
            .map(|e| ConnectTo::parse(e).expect("entry"))
            .collect(),
        extra_roots_pem: Some(pki.ca_pem.clone().into_bytes()),
    }
}

fn settings() -> ScanSettings {
    ScanSettings {
        image: ImageRef::parse(&format!("{GAR}/proj/repo/app")).expect("image"),
        options: ClientOptions {
            attempts: 1,
            ..ClientOptions::default()
        },
        credentials: None,
        login: Some(CloudLogin {
            provider: Provider::Gcp,
            registry: GAR.into(),
            identity: Identity::Controller,
            proxy: None,
            timeout: Duration::from_secs(30),
        }),
        exclusions: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_token_logs_in_is_cached_and_is_fetched_once_more_when_refused() {
    let dir = TempDir::new("gcp-md");
    let pki = Pki::generate_for(dir.path(), &[GAR]);
    let metadata = GcpMetadata::start(
        "flux@tagwarden-test.iam.gserviceaccount.com",
        "ya29.first",
        3600,
    );
    let mut reg = registry(&pki, "ya29.first");
    let auth = CloudAuth::new(Env::from_pairs([(
        "GCE_METADATA_HOST",
        metadata.host().as_str(),
    )]))
    .expect("auth");
    let pool = Pool::new().with_login(Arc::new(auth)).with_network(network(
        &pki,
        &[format!("{GAR}:443:127.0.0.1:{}", reg.port)],
    ));
    let s = settings();

    let mut list = pool.scan(&s).await.expect("first scan");
    list.tags.sort();
    assert_eq!(list.tags, ["1.0.0", "1.1.0"]);
    pool.scan(&s).await.expect("second scan");
    assert_eq!(
        metadata.tokens_issued(),
        1,
        "the second scan used the cache"
    );
    assert!(metadata.requests().iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("metadata-flavor") && v == "Google")
    }));

    // The token is revoked mid-life: the registry refuses the cached one,
    // which is dropped and fetched once more.
    reg.restart(
        basic("ya29.second"),
        Some(RegistryTls::from_pki(&pki, false)),
    );
    metadata.set_token("ya29.second", 3600);
    pool.scan(&s).await.expect("scan after rotation");
    assert_eq!(metadata.tokens_issued(), 2);

    // A fresh token refused too is the login's error: one more fetch, no loop.
    reg.restart(
        basic("ya29.third"),
        Some(RegistryTls::from_pki(&pki, false)),
    );
    let e = pool.scan(&s).await.expect_err("refused");
    assert_eq!(metadata.tokens_issued(), 3);
    assert!(
        matches!(e, RegistryError::LoginRefused { status: 401, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{GAR}: the registry refused the gcp credentials of the controller's identity (HTTP 401): check that it may pull 'proj/repo/app'"
        )
    );
    assert!(!format!("{e:?}").contains("ya29."));
    let counts = tagwarden_registry::login_counts();
    let n = |r: tagwarden_registry::LoginResult| {
        counts
            .iter()
            .find(|(p, x, _)| *p == Provider::Gcp && *x == r)
            .map_or(0, |c| c.2)
    };
    assert!(
        n(tagwarden_registry::LoginResult::Hit) >= 2
            && n(tagwarden_registry::LoginResult::Miss) >= 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_federation_from_an_external_account_file() {
    let dir = TempDir::new("gcp-wif");
    let pki = Pki::generate_for(
        dir.path(),
        &[GAR, "sts.googleapis.com", "iamcredentials.googleapis.com"],
    );
    let subject = "github-oidc-s3cr3t-subject-token";
    let audience = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ci/providers/github";
    let sts = GcpSts::start(
        &pki,
        GcpStsConfig {
            audience: audience.into(),
            subject_token: Federated::Token(subject.into()),
            ..GcpStsConfig::default()
        },
    );
    let final_token = sts.config().service_account_token;
    let reg = registry(&pki, &final_token);
    let token_file = dir.path().join("oidc-token");
    std::fs::write(&token_file, subject).expect("token");
    let creds = dir.path().join("creds.json");
    std::fs::write(&creds, sts.external_account(&token_file, true).to_string()).expect("creds");
    let mut entries = sts.connect_to();
    let connect = entries.join(",");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca");
    let env = |file: &std::path::Path| {
        Env::from_pairs([
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                file.to_str().expect("utf-8"),
            ),
            ("TAGWARDEN_CONNECT_TO", connect.as_str()),
            ("SSL_CERT_FILE", ca.to_str().expect("utf-8")),
        ])
    };
    entries.push(format!("{GAR}:443:127.0.0.1:{}", reg.port));
    let pool = Pool::new()
        .with_login(Arc::new(CloudAuth::new(env(&creds)).expect("auth")))
        .with_network(network(&pki, &entries[2..]));
    let mut list = pool.scan(&settings()).await.expect("scan");
    list.tags.sort();
    assert_eq!(list.tags, ["1.0.0", "1.1.0"]);
    assert_eq!((sts.exchanges(), sts.impersonations()), (1, 1));

    // Another provider's audience: STS says why, the subject stays secret.
    let mut wrong = sts.external_account(&token_file, true);
    wrong["audience"] =
        "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/other/providers/x"
            .into();
    let wrong_file = dir.path().join("wrong.json");
    std::fs::write(&wrong_file, wrong.to_string()).expect("creds");
    let pool = Pool::new()
        .with_login(Arc::new(CloudAuth::new(env(&wrong_file)).expect("auth")))
        .with_network(network(&pki, &entries[2..]));
    let e = pool.scan(&settings()).await.expect_err("wrong audience");
    let m = e.to_string();
    assert!(
        m.starts_with("spec.provider 'gcp': gcp sts token exchange: HTTP 400: invalid_target"),
        "{m}"
    );
    assert!(!m.contains(subject), "{m}");
    assert_eq!(
        sts.impersonations(),
        1,
        "no impersonation after a refused exchange"
    );
}

/// Scans that miss the cache together share one fetch: a first pass over
/// many repositories of one registry asks the cloud once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_login() {
    let dir = TempDir::new("gcp-flight");
    let pki = Pki::generate_for(dir.path(), &[GAR]);
    let metadata = GcpMetadata::start(
        "flux@tagwarden-test.iam.gserviceaccount.com",
        "ya29.shared",
        3600,
    );
    let reg = registry(&pki, "ya29.shared");
    let auth = CloudAuth::new(Env::from_pairs([(
        "GCE_METADATA_HOST",
        metadata.host().as_str(),
    )]))
    .expect("auth");
    let pool = Arc::new(Pool::new().with_login(Arc::new(auth)).with_network(network(
        &pki,
        &[format!("{GAR}:443:127.0.0.1:{}", reg.port)],
    )));
    let scans: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.scan(&settings()).await.map(|l| l.tags.len()) })
        })
        .collect();
    for s in scans {
        assert_eq!(s.await.expect("task").expect("scan"), 2);
    }
    assert_eq!(metadata.tokens_issued(), 1);
}
