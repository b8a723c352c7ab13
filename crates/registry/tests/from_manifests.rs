//! Scans configured the way a Flux user writes them: an ImageRepository and
//! its Secrets, read from YAML, against the real registry.

use std::path::Path;
use std::time::Duration;
use tagwarden_api::{LoadOptions, Manifests, Object};
use tagwarden_registry::{Client, RegistryError, ScanSettings, scan_result, scan_settings};
use tagwarden_testkit::{
    Action, FaultProxy, Pki, Registry, RegistryAuth, RegistryTls, TempDir, base64,
};

/// Loads `yaml` and builds the scan settings of its one ImageRepository.
fn settings(yaml: &str) -> Result<ScanSettings, RegistryError> {
    let m = Manifests::load_str(yaml, Path::new("test.yaml"), &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let repo = m
        .objects
        .iter()
        .find_map(|o| match o {
            Object::ImageRepository(r) => Some(r),
            _ => None,
        })
        .expect("an ImageRepository");
    scan_settings(repo, |name| {
        m.objects.iter().find_map(|o| match o {
            Object::Secret(s) if s.meta.name == name && s.meta.namespace == repo.meta.namespace => {
                Some(s)
            }
            _ => None,
        })
    })
}

async fn scan(s: &ScanSettings) -> Result<tagwarden_registry::ScanResult, RegistryError> {
    let mut opts = s.options.clone();
    opts.backoff = Duration::from_millis(10);
    opts.attempts = 2;
    let tags = Client::new(opts)?
        .scan_tags(&s.image, s.credentials.as_ref())
        .await?;
    Ok(scan_result(&s.image.canonical(), tags, &s.exclusions))
}

#[tokio::test]
async fn docker_config_secret_and_a_failed_scan_keeping_the_tags() {
    let reg = Registry::start(RegistryAuth::Basic {
        user: "bot".into(),
        password: "pa55".into(),
    });
    reg.publish(
        "team/web",
        &["1.0.0", "1.1.0", "1.1.0.sig", "nightly"],
        Some(("bot", "pa55")),
    );
    let auth = base64("bot:pa55");
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {{name: web, namespace: apps}}
spec:
  image: {host}/team/web
  interval: 5m
  secretRef: {{name: regcred}}
  exclusionList: ["^nightly$", "\\.sig$"]
---
apiVersion: v1
kind: Secret
metadata: {{name: regcred, namespace: apps}}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{{"auths":{{"http://{host}":{{"auth":"{auth}"}}}}}}'
"#,
        host = reg.host()
    );
    let s = settings(&yaml).expect("settings");
    assert_eq!(
        s.options.timeout,
        Duration::from_secs(300),
        "timeout defaults to the interval"
    );
    let result = scan(&s).await.expect("scan");
    assert_eq!(result.tags, ["1.1.0", "1.0.0"]);

    assert_eq!(result.message(), "successful scan: found 2 tags");

    // The registry goes away: the scan fails transiently (the engine keeps
    // the last tags and retries).
    drop(reg);
    let err = scan(&s).await.expect_err("registry gone");
    assert_eq!(err.reason(), "ReadOperationFailed");
    assert!(!err.is_stalled(), "a dead registry is retried");
}

#[tokio::test]
async fn cert_secret_ref_with_a_ca_and_a_client_certificate() {
    let dir = TempDir::new("pki");
    let pki = Pki::generate(dir.path());
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("tls/app", &["0.1.0"], None);
    reg.restart(RegistryAuth::None, Some(RegistryTls::from_pki(&pki, true)));
    let b64 = |s: &str| base64(s);
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app}}
spec:
  image: {host}/tls/app
  interval: 1m
  certSecretRef: {{name: tls}}
---
apiVersion: v1
kind: Secret
metadata: {{name: tls}}
type: kubernetes.io/tls
data:
  ca.crt: {ca}
  tls.crt: {crt}
  tls.key: {key}
"#,
        host = reg.host(),
        ca = b64(&pki.ca_pem),
        crt = b64(&pki.client_cert_pem),
        key = b64(&pki.client_key_pem),
    );
    let s = settings(&yaml).expect("settings");
    assert_eq!(scan(&s).await.expect("scan over mTLS").tags, ["0.1.0"]);
}

#[tokio::test]
async fn proxy_secret_ref_sends_proxy_credentials() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("via/proxy", &["3.2.1"], None);
    let want = format!("Basic {}", base64("proxyuser:proxypass"));
    let proxy = FaultProxy::start(reg.port, move |r| {
        let authorized = r
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("proxy-authorization") && *v == want);
        if authorized {
            Action::Forward
        } else {
            Action::Respond {
                status: 407,
                headers: vec![("Proxy-Authenticate".into(), "Basic realm=\"p\"".into())],
                body: vec![],
            }
        }
    });
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app}}
spec:
  image: {host}/via/proxy
  interval: 1m
  insecure: true
  proxySecretRef: {{name: proxy}}
---
apiVersion: v1
kind: Secret
metadata: {{name: proxy}}
stringData:
  address: http://{proxy}
  username: proxyuser
  password: proxypass
"#,
        host = reg.host(),
        proxy = proxy.host()
    );
    let s = settings(&yaml).expect("settings");
    assert_eq!(
        scan(&s).await.expect("scan through the proxy").tags,
        ["3.2.1"]
    );
    let seen = proxy.requests();
    assert!(
        seen.iter().any(|r| r
            .target
            .starts_with(&format!("http://{}/v2/via/proxy/tags/list", reg.host()))),
        "the registry was reached through the proxy: {seen:?}"
    );
}

#[test]
fn configuration_errors_say_which_field_and_whether_retrying_helps() {
    let repo = |spec: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: r}}\nspec:\n  interval: 1m\n{spec}"
        )
    };
    let cases = [
        (
            repo("  image: ghcr.io/org/app:1.0\n"),
            "ImageURLInvalid",
            true,
            "spec.image",
        ),
        (
            repo("  image: ghcr.io/org/app\n  secretRef: {name: missing}\n"),
            "AuthenticationFailed",
            false,
            "spec.secretRef: secret 'flux-system/missing' not found",
        ),
        (
            repo("  image: ghcr.io/org/app\n  exclusionList: ['^ok$', '^(']\n"),
            "InvalidConfiguration",
            true,
            "spec.exclusionList[1]",
        ),
        (
            repo("  image: ghcr.io/org/app\n  certSecretRef: {name: c}\n")
                + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: c}\nstringData: {tls.crt: x}\n",
            "AuthenticationFailed",
            false,
            "'tls.crt' and 'tls.key' go together",
        ),
        (
            repo("  image: ghcr.io/org/app\n  proxySecretRef: {name: p}\n")
                + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: p}\nstringData: {username: u}\n",
            "AuthenticationFailed",
            false,
            "has no 'address' key",
        ),
        (
            repo("  image: ghcr.io/org/app\n  provider: aws\n"),
            "InvalidConfiguration",
            true,
            "spec.provider: 'aws' logs in to <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn] \
             (or another AWS partition's suffix) or public.ecr.aws only; spec.image is on 'ghcr.io'",
        ),
        (
            repo("  image: europe-docker.pkg.dev.evil.io/app\n  provider: gcp\n"),
            "InvalidConfiguration",
            true,
            "spec.provider: 'gcp' logs in to gcr.io, <region>.gcr.io or <region>-docker.pkg.dev \
             only; spec.image is on 'europe-docker.pkg.dev.evil.io'",
        ),
    ];
    for (yaml, reason, stalled, needle) in cases {
        let err = settings(&yaml).expect_err(&yaml);
        assert_eq!(err.reason(), reason, "{err}");
        assert_eq!(err.is_stalled(), stalled, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A cloud provider on its own host logs in; a secretRef is ignored, as Flux.
    let s = settings(&repo(
        "  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/app\n  provider: aws\n  secretRef:\n    name: missing\n",
    ))
    .expect("aws settings");
    let login = s.login.expect("a cloud login");
    assert_eq!(login.provider, tagwarden_registry::Provider::Aws);
    assert_eq!(
        login.registry,
        "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    );
    assert_eq!(login.identity, tagwarden_registry::Identity::Controller);
    assert!(s.credentials.is_none());
}

/// Who sees which list: repositories of one image, with the same
/// credentials (from any Secret) and exclusions, share it; anything that
/// can change what the registry lists or what is kept gives another.
#[test]
fn the_list_identity_is_image_credentials_and_exclusions() {
    let repo = |name: &str, image: &str, secret: Option<&str>, extra: &str| {
        let secret_ref = secret.map_or(String::new(), |s| format!(", secretRef: {{name: {s}}}"));
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
             metadata: {{name: {name}, namespace: apps}}\n\
             spec: {{image: {image}, interval: 1m{secret_ref}{extra}}}\n"
        )
    };
    let secret = |name: &str, password: &str| {
        let auth = base64(&format!("bot:{password}"));
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: apps}}\n\
             type: kubernetes.io/dockerconfigjson\n\
             stringData: {{.dockerconfigjson: '{{\"auths\":{{\"ghcr.io\":{{\"auth\":\"{auth}\"}}}}}}'}}\n"
        )
    };
    let id = |yaml: String| settings(&yaml).expect("settings").list_identity();
    let anonymous = id(repo("a", "ghcr.io/team/web", None, ""));
    assert_eq!(anonymous, id(repo("b", "ghcr.io/team/web", None, "")));
    assert_eq!(
        id(repo("c", "nginx", None, "")),
        id(repo("d", "docker.io/library/nginx", None, "")),
        "the canonical image"
    );
    let with = id(repo("a", "ghcr.io/team/web", Some("one"), "") + &secret("one", "pa55"));
    assert_ne!(with, anonymous);
    assert_eq!(
        with,
        id(repo("b", "ghcr.io/team/web", Some("two"), "") + &secret("two", "pa55")),
        "the same credentials in another Secret"
    );
    assert_ne!(
        with,
        id(repo("b", "ghcr.io/team/web", Some("two"), "") + &secret("two", "other"))
    );
    assert_ne!(
        anonymous,
        id(repo(
            "a",
            "ghcr.io/team/web",
            None,
            ", exclusionList: ['^dev-']"
        ))
    );
    assert_ne!(anonymous, id(repo("a", "ghcr.io/team/api", None, "")));
    assert!(!with.contains("pa55") && with.len() == 64, "{with}");
}
