//! Platform lookup against a real docker-registry: OCI indexes, single OCI
//! and Docker images, and (through the fault proxy) manifests and config
//! blobs that are wrong in every way a registry can get them wrong.

use sha2::Digest as _;
use std::time::Duration;
use tagwarden_api::image::ImageRef;
use tagwarden_registry::{
    Client, ClientOptions, Platform, Pool, Registry as _, RegistryError, ScanSettings,
};
use tagwarden_testkit::{Action, FaultProxy, Registry, RegistryAuth, Request};

fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    Platform {
        os: os.into(),
        architecture: arch.into(),
        variant: variant.map(String::from),
    }
}

fn settings(host: &str, repo: &str) -> ScanSettings {
    ScanSettings {
        image: ImageRef::parse(&format!("{host}/{repo}")).expect("image"),
        options: ClientOptions::default(),
        credentials: None,
        login: None,
        exclusions: Vec::new(),
    }
}

fn client(max_body: usize) -> Client {
    Client::new(ClientOptions {
        max_body,
        attempts: 1,
        backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    })
    .expect("client")
}

#[tokio::test]
async fn platforms_of_an_index_and_of_single_images() {
    let reg = Registry::start(RegistryAuth::None);
    let index = reg.publish_index(
        "org/multi",
        "v1",
        &[
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
            ("unknown", "unknown", None),
        ],
    );
    reg.publish_image("org/arm", "v1", "linux", "arm", Some("v7"));
    // The harness's usual Docker v2 manifest, config linux/amd64.
    reg.publish("org/docker", &["1.0"], None);

    let pool = Pool::new();
    let multi = settings(&reg.host(), "org/multi");
    let want = vec![p("linux", "amd64", None), p("linux", "arm64", Some("v8"))];
    assert_eq!(pool.platforms(&multi, "v1").await.expect("index"), want);
    assert_eq!(
        pool.platforms(&multi, &index)
            .await
            .expect("index by digest"),
        want
    );
    assert_eq!(
        pool.platforms(&settings(&reg.host(), "org/arm"), "v1")
            .await
            .expect("single OCI image")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["linux/arm/v7"]
    );
    assert_eq!(
        pool.platforms(&settings(&reg.host(), "org/docker"), "1.0")
            .await
            .expect("docker image"),
        [p("linux", "amd64", None)]
    );

    let err = pool.platforms(&multi, "v9").await.expect_err("no such tag");
    assert!(
        matches!(err, RegistryError::ManifestNotFound { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no manifest 'v9' in repository 'org/multi' (HTTP 404): check the tag",
            reg.host()
        )
    );
    let err = pool
        .platforms(&multi, "../../_catalog")
        .await
        .expect_err("not a reference");
    assert_eq!(
        err.to_string(),
        "invalid client configuration: '../../_catalog' is neither a tag nor a digest"
    );
}

fn respond(body: &[u8]) -> Action {
    Action::Respond {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn malformed_manifests_and_config_blobs_say_what_was_wrong() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish_image("org/img", "v1", "linux", "amd64", None);
    reg.publish_index(
        "org/img",
        "multi",
        &[("linux", "amd64", None), ("linux", "arm64", None)],
    );
    let forged_blob = br#"{"os":"linux","architecture":"arm64"}"#.to_vec();
    // One proxy per misbehaviour keeps each rule obvious.
    let serve = |f: fn(&Request) -> Option<Action>| {
        FaultProxy::start(reg.port, move |r: &Request| f(r).unwrap_or(Action::Forward))
    };
    let malformed = |proxy: &FaultProxy, path: &str, message: &str| {
        format!(
            "{}: malformed response for http://{}/v2/org/img/{path}: {message}",
            proxy.host(),
            proxy.host()
        )
    };
    let image =
        |proxy: &FaultProxy| ImageRef::parse(&format!("{}/org/img", proxy.host())).expect("image");

    let proxy = serve(|r| {
        let path = r.path();
        if path.ends_with("/manifests/notjson") {
            Some(respond(b"{\"schemaVersion\": 2,"))
        } else if path.ends_with("/manifests/escape") {
            Some(respond(br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:../../../v2/_catalog","size":2},"layers":[]}"#))
        } else if path.ends_with("/manifests/noarch") {
            Some(respond(br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:00","platform":{"os":"linux"}}]}"#))
        } else {
            None
        }
    });
    let c = client(32 << 20);
    let err = c
        .platforms(&image(&proxy), "notjson", None)
        .await
        .expect_err("not JSON");
    assert!(matches!(err, RegistryError::Malformed { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        malformed(
            &proxy,
            "manifests/notjson",
            "manifest is not JSON: EOF while parsing a value at line 1 column 20"
        )
    );
    let err = c
        .platforms(&image(&proxy), "escape", None)
        .await
        .expect_err("bad digest");
    assert_eq!(
        err.to_string(),
        malformed(
            &proxy,
            "manifests/escape",
            "config digest 'sha256:../../../v2/_catalog' is not a digest (algorithm:hex, e.g. sha256: and 64 hex digits)"
        )
    );
    let err = c
        .platforms(&image(&proxy), "noarch", None)
        .await
        .expect_err("no arch");
    assert_eq!(
        err.to_string(),
        malformed(
            &proxy,
            "manifests/noarch",
            "manifests[0].platform has no 'architecture'"
        )
    );
    assert!(
        proxy
            .requests()
            .iter()
            .all(|r| !r.path().contains("/blobs/") && !r.path().contains("_catalog")),
        "a bad digest never reaches a URL: {:?}",
        proxy
            .requests()
            .iter()
            .map(|r| r.target.clone())
            .collect::<Vec<_>>()
    );

    // A registry serving another config than the manifest names.
    let proxy = serve(|r| {
        r.path()
            .contains("/blobs/")
            .then(|| respond(br#"{"os":"linux","architecture":"arm64"}"#))
    });
    let err = c
        .platforms(&image(&proxy), "v1", None)
        .await
        .expect_err("forged config");
    let RegistryError::Malformed { url, message, .. } = &err else {
        panic!("{err}");
    };
    let config = url
        .rsplit('/')
        .next()
        .expect("digest in the url")
        .to_string();
    assert_eq!(
        message,
        &format!(
            "the blob's content is sha256:{:x}, not the {config} the manifest names",
            sha2::Sha256::digest(&forged_blob)
        )
    );
    assert_eq!(
        err.to_string(),
        malformed(&proxy, &format!("blobs/{config}"), message)
    );

    // Bodies are capped: a manifest over max_body, then a config blob over it.
    let proxy = serve(|r| r.path().contains("/blobs/").then(|| respond(&[b' '; 5000])));
    let err = client(300)
        .platforms(&image(&proxy), "multi", None)
        .await
        .expect_err("big index");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: response for http://{}/v2/org/img/manifests/multi exceeds 300 bytes",
            proxy.host(),
            proxy.host()
        )
    );
    let err = client(2000)
        .platforms(&image(&proxy), "v1", None)
        .await
        .expect_err("big config");
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 2000, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("/v2/org/img/blobs/sha256:"),
        "{err}"
    );
}
