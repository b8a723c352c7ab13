//! Hook paths and reconcile targets from Receivers read as real YAML.

use std::path::Path;
use tagwarden_api::{LoadOptions, Manifests, Object, Receiver};
use tagwarden_receivers::{Request, hook_path, targets, validate};

fn load(yaml: &str) -> Manifests {
    let m = Manifests::load_str(yaml, Path::new("test.yaml"), &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    m
}

fn receivers(m: &Manifests) -> Vec<&Receiver> {
    m.objects
        .iter()
        .filter_map(|o| match o {
            Object::Receiver(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// The DockerHub Receiver and its token Secret from the image automation
/// guide in the seed docs (`/work/shared/seeds/00{0,1}_*.txt`).
const SEED: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: webhook-token
  namespace: flux-system
stringData:
  token: s3cr3t
---
apiVersion: notification.toolkit.fluxcd.io/v1beta1
kind: Receiver
metadata:
  name: podinfo
  namespace: flux-system
spec:
  type: dockerhub
  secretRef:
    name: webhook-token
  resources:
    - kind: ImageRepository
      name: podinfo
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 1m0s
"#;

#[test]
fn hook_path_is_sha256_of_token_name_namespace() {
    // `printf %s s3cr3tpodinfoflux-system | sha256sum`
    assert_eq!(
        hook_path("s3cr3t", "podinfo", "flux-system"),
        "/hook/bc181690499ce8f98d792aa4fd12378c652c7fa2a520f0d778e96dbb0c1b4306"
    );
    // `printf %s tokenwebapp-receiverdefault | sha256sum`
    assert_eq!(
        hook_path("token", "webapp-receiver", "default"),
        "/hook/e39b062b2f2d029db771997fc7676c06ad2433eb4d0fd097f4cd61ec333cd6e6"
    );
    // Order matters: the same three strings in another order give another path.
    assert_ne!(
        hook_path("s3cr3t", "podinfo", "flux-system"),
        hook_path("podinfo", "s3cr3t", "flux-system")
    );
}

#[test]
fn seed_dockerhub_receiver_end_to_end() {
    let m = load(SEED);
    let [r] = receivers(&m)[..] else {
        panic!("one Receiver expected");
    };
    assert_eq!(r.receiver_type, "dockerhub");
    let token = m
        .objects
        .iter()
        .find_map(|o| match o {
            Object::Secret(s) if s.meta.name == r.secret_ref => s.data.get("token"),
            _ => None,
        })
        .expect("the seed's Secret holds the token");
    let token = std::str::from_utf8(token).expect("token is text");
    let path = hook_path(token, &r.meta.name, &r.meta.namespace);
    assert_eq!(
        path,
        "/hook/bc181690499ce8f98d792aa4fd12378c652c7fa2a520f0d778e96dbb0c1b4306"
    );

    let body = br#"{"push_data":{"tag":"5.0.3"},"repository":{"repo_url":"https://hub.docker.com/r/stefanprodan/podinfo"}}"#;
    let req = Request {
        method: "POST",
        headers: &[],
        body,
    };
    assert_eq!(validate(&r.receiver_type, &r.events, token, &req), Ok(()));
    assert_eq!(
        targets(r, &m.objects),
        vec![tagwarden_api::ObjectId::new(
            tagwarden_api::Kind::ImageRepository,
            "flux-system",
            "podinfo"
        )]
    );
}

const MANY: &str = r#"
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: images
  namespace: apps
spec:
  type: generic
  secretRef:
    name: token
  resources:
    - apiVersion: image.toolkit.fluxcd.io/v1beta2
      kind: ImageRepository
      name: "*"
      matchLabels:
        team: web
    - kind: ImageRepository
      name: db
    - kind: ImagePolicy
      name: web
      namespace: other
    - kind: ImageUpdateAutomation
      name: "*"
    - kind: GitRepository
      name: flux-system
    - apiVersion: source.toolkit.fluxcd.io/v1
      kind: ImageRepository
      name: api
    - kind: ImageRepository
      name: missing
    - kind: ImageRepository
      name: frontend
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {name: frontend, namespace: apps, labels: {team: web, tier: ui}}
spec: {image: ghcr.io/a/frontend, interval: 5m}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {name: api, namespace: apps, labels: {team: web}}
spec: {image: ghcr.io/a/api, interval: 5m}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {name: db, namespace: apps, labels: {team: data}}
spec: {image: ghcr.io/a/db, interval: 5m}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {name: web-elsewhere, namespace: other, labels: {team: web}}
spec: {image: ghcr.io/a/web, interval: 5m}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata: {name: web, namespace: apps, labels: {team: web}}
spec: {imageRepositoryRef: {name: frontend}, policy: {semver: {range: 1.x}}}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata: {name: web, namespace: other}
spec: {imageRepositoryRef: {name: web-elsewhere}, policy: {semver: {range: 1.x}}}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata: {name: apps, namespace: apps, labels: {team: web}}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: apps}
  git: {commit: {author: {name: bot, email: bot@example.com}}}
"#;

#[test]
fn targets_follow_resources_wildcards_and_namespaces() {
    let m = load(MANY);
    let [r] = receivers(&m)[..] else {
        panic!("one Receiver expected");
    };
    let got = targets(r, &m.objects);
    let t = |k: &str, ns: &str, n: &str| {
        tagwarden_api::ObjectId::new(tagwarden_api::Kind::parse(k).expect("kind"), ns, n)
    };
    assert_eq!(
        got,
        vec![
            // `*` + team=web: both labelled repositories in the Receiver's
            // namespace, not the one in `other`, not the ImagePolicy.
            t("ImageRepository", "apps", "frontend"),
            t("ImageRepository", "apps", "api"),
            // By name, whatever its labels.
            t("ImageRepository", "apps", "db"),
            // Explicit namespace wins over the Receiver's.
            t("ImagePolicy", "other", "web"),
            // `*` without matchLabels selects nothing (Flux refuses it);
            // GitRepository is not ours; a source.toolkit apiVersion is not an
            // image ImageRepository; `missing` is not loaded; `frontend`
            // again is not repeated.
        ]
    );
}

#[test]
fn wildcard_matching_nothing_leaves_named_targets() {
    let yaml = MANY.replacen("team: web\n", "team: nobody\n", 1);
    assert_ne!(yaml, MANY);
    let m = load(&yaml);
    let [r] = receivers(&m)[..] else {
        panic!("one Receiver expected");
    };
    let names: Vec<String> = targets(r, &m.objects).into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["db", "web", "frontend"]);
}

/// Flux refuses `name: '*'` without `matchLabels`; it must be reported, not
/// silently select nothing.
#[test]
fn a_wildcard_without_match_labels_is_reported() {
    let m = load(MANY);
    let [r] = receivers(&m)[..] else {
        panic!("one Receiver expected");
    };
    assert_eq!(
        tagwarden_receivers::resource_errors(r),
        [
            "spec.resources[3] (ImageUpdateAutomation): matchLabels field not set when using wildcard '*' as name"
        ]
    );
    let m = load(&MANY.replace(
        "    - kind: ImageUpdateAutomation\n      name: \"*\"\n",
        "    - kind: ImageUpdateAutomation\n      name: \"*\"\n      matchLabels: {team: web}\n",
    ));
    let [r] = receivers(&m)[..] else {
        panic!("one Receiver expected");
    };
    assert!(tagwarden_receivers::resource_errors(r).is_empty());
}
