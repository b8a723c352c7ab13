//! The process-wide client pool against a real docker-registry in token
//! mode: tokens are fetched once per scope and credentials across scans, as
//! the engine's reconciles will make them.

use tagwarden_api::image::ImageRef;
use tagwarden_registry::{
    Client, ClientOptions, Credentials, Pool, Registry as _, RegistryError, ScanSettings,
};
use tagwarden_testkit::{Registry, RegistryAuth, TempDir, TokenServer};

fn settings(reg: &Registry, repo: &str, user: &str, password: &str) -> ScanSettings {
    ScanSettings {
        image: ImageRef::parse(&format!("{}/{repo}", reg.host())).expect("image"),
        options: ClientOptions {
            attempts: 1,
            ..ClientOptions::default()
        },
        credentials: Some(Credentials {
            username: user.into(),
            password: password.into(),
        }),
        login: None,
        exclusions: Vec::new(),
    }
}

const API: &str = "repository:org/api:pull";
const WEB: &str = "repository:org/web:pull";

#[tokio::test]
async fn one_pool_fetches_one_token_per_scope_and_credentials_across_scans() {
    let dir = TempDir::new("pool-token");
    // "flux" twice: two secrets of one username with different passwords.
    let tokens = TokenServer::start_users(
        dir.path(),
        &[("flux", "first"), ("flux", "second"), ("web", "w3b")],
    );
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("org/api", &["v1", "v2"], None);
    reg.publish("org/web", &["1.0"], None);
    reg.restart(RegistryAuth::token(&tokens), None);

    let pool = Pool::new();
    let api = settings(&reg, "org/api", "flux", "first");
    const SCANS: usize = 5;
    for _ in 0..SCANS {
        let list = pool.scan(&api).await.expect("scan through the pool");
        assert_eq!(list.tags.len(), 2);
        let d = pool.digest(&api, "v2").await.expect("digest");
        assert!(d.starts_with("sha256:"), "{d}");
    }
    let pooled = tokens.issued_to("flux", API);
    println!("pool: {SCANS} scans + {SCANS} digests -> {pooled} token(s)");
    assert_eq!(pooled, 1, "one token for the scope, reused by every scan");
    assert_eq!(pool.len(), 1);

    // Another repository with other credentials: its own scope, its own token.
    let web = settings(&reg, "org/web", "web", "w3b");
    for _ in 0..3 {
        assert_eq!(pool.scan(&web).await.expect("scan web").tags, ["1.0"]);
    }
    assert_eq!(tokens.issued_to("web", WEB), 1);

    // Same username, other password: never the first secret's token.
    let second = settings(&reg, "org/api", "flux", "second");
    pool.scan(&second)
        .await
        .expect("scan with the second secret");
    pool.scan(&second).await.expect("and again");
    assert_eq!(
        tokens.issued_to("flux", API),
        2,
        "one more token, for the second secret"
    );
    // A wrong password fails even while a good token for the scope is cached.
    let wrong = settings(&reg, "org/api", "flux", "wrong");
    let err = pool.scan(&wrong).await.expect_err("wrong password");
    assert!(
        matches!(err, RegistryError::Authentication { status: 401, .. }),
        "{err}"
    );
    assert_eq!(tokens.issued(), 3);
    assert_eq!(pool.len(), 1, "same options: one client served them all");

    // The old way, a fresh client per scan, pays a token every time.
    let before = tokens.issued_to("flux", API);
    for _ in 0..SCANS {
        Client::new(api.options.clone())
            .expect("client")
            .scan_tags(&api.image, api.credentials.as_ref())
            .await
            .expect("scan with a fresh client");
    }
    let fresh = tokens.issued_to("flux", API) - before;
    println!("fresh client per scan: {SCANS} scans -> {fresh} token(s)");
    assert_eq!(fresh, SCANS);

    // Two repositories of one image with other intervals (so other
    // timeouts, so two clients) still share the token of their scope.
    let before = tokens.issued_to("flux", API);
    let mut slow = api.clone();
    slow.options.timeout = std::time::Duration::from_secs(300);
    let shared = Pool::new();
    for s in [&api, &slow, &api, &slow] {
        shared.scan(s).await.expect("scan");
    }
    assert_eq!(shared.len(), 2, "two connection setups, two clients");
    assert_eq!(
        tokens.issued_to("flux", API) - before,
        1,
        "one token for both clients of the pool"
    );
}
