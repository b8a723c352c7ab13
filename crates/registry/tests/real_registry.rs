//! The client against Debian's docker-registry (Distribution 2.8), started
//! on 127.0.0.1 for each test.

use std::time::Duration;
use tagwarden_api::image::ImageRef;
use tagwarden_registry::{Client, ClientOptions, Credentials, RegistryError, scan_result};
use tagwarden_testkit::{Registry, RegistryAuth};

fn image(reg: &Registry, repo: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{repo}", reg.host())).expect("valid image")
}

fn client() -> Client {
    Client::new(ClientOptions {
        backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    })
    .expect("client")
}

#[tokio::test]
async fn lists_tags_and_digests_anonymously() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish(
        "stefanprodan/podinfo",
        &["5.0.0", "5.0.1", "5.0.3", "latest", "sha256-abc.sig"],
        None,
    );
    let img = image(&reg, "stefanprodan/podinfo");
    let mut tags = client().list_tags(&img, None).await.expect("list");
    tags.sort();
    assert_eq!(
        tags,
        ["5.0.0", "5.0.1", "5.0.3", "latest", "sha256-abc.sig"]
    );

    let digest = client().digest(&img, "5.0.3", None).await.expect("digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    let exclusions = [tagwarden_policy::go_regex(r"^.*\.sig$").expect("default exclusion")];
    let list = tagwarden_registry::TagList {
        tags,
        ..Default::default()
    };
    let result = scan_result(&img.canonical(), list, &exclusions);
    assert_eq!(result.tags, ["latest", "5.0.3", "5.0.1", "5.0.0"]);
    assert_eq!(result.message(), "successful scan: found 4 tags");
    assert_eq!(
        result.canonical_image_name,
        format!("{}/stefanprodan/podinfo", reg.host())
    );
}

#[tokio::test]
async fn basic_auth_with_and_without_credentials() {
    let reg = Registry::start(RegistryAuth::Basic {
        user: "flux".into(),
        password: "s3cret".into(),
    });
    reg.publish("team/app", &["v1.0.0", "v1.1.0"], Some(("flux", "s3cret")));
    let img = image(&reg, "team/app");

    let err = client()
        .list_tags(&img, None)
        .await
        .expect_err("anonymous is refused");
    assert!(
        matches!(err, RegistryError::Authentication { status: 401, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("check the credentials in secretRef"),
        "{err}"
    );
    assert_eq!(err.reason(), "AuthenticationFailed");

    let wrong = Credentials {
        username: "flux".into(),
        password: "nope".into(),
    };
    assert!(matches!(
        client().list_tags(&img, Some(&wrong)).await,
        Err(RegistryError::Authentication { .. })
    ));

    let creds = Credentials {
        username: "flux".into(),
        password: "s3cret".into(),
    };
    let mut tags = client()
        .list_tags(&img, Some(&creds))
        .await
        .expect("list with credentials");
    tags.sort();
    assert_eq!(tags, ["v1.0.0", "v1.1.0"]);
}

#[tokio::test]
async fn missing_repository_and_dead_registry() {
    let reg = Registry::start(RegistryAuth::None);
    let err = client()
        .list_tags(&image(&reg, "no/such"), None)
        .await
        .expect_err("404");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(!err.is_transient());

    let dead =
        ImageRef::parse(&format!("127.0.0.1:{}/x", tagwarden_testkit::free_port())).expect("valid");
    let started = std::time::Instant::now();
    let err = client()
        .list_tags(&dead, None)
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retries are bounded"
    );
}

#[tokio::test]
async fn many_tags_in_one_listing() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("big/repo", &["seed"], None);
    reg.bulk_tag("big/repo", "seed", (0..2500).map(|i| format!("1.0.{i}")));
    let tags = client()
        .list_tags(&image(&reg, "big/repo"), None)
        .await
        .expect("list");
    assert_eq!(tags.len(), 2501);
}
