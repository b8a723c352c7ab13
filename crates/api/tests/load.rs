//! Loading the manifests of the seed docs, defaults, and error reports.

use std::path::Path;
use std::time::Duration;
use tagwarden_api::{LoadError, LoadOptions, Manifests, Object, PolicyChoice};

fn load(text: &str) -> Manifests {
    Manifests::load_str(
        text,
        Path::new("clusters/my-cluster/image.yaml"),
        &LoadOptions::default(),
    )
}

const PODINFO: &str = r#"
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 1m0s
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImagePolicy
metadata:
  name: podinfo
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: podinfo
  policy:
    semver:
      range: 5.0.x
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      messageTemplate: '{{range .Updated.Images}}{{println .}}{{end}}'
    push:
      branch: main
  update:
    path: ./clusters/my-cluster
    strategy: Setters
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
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
"#;

#[test]
fn seed_podinfo_manifests_load_with_defaults() {
    let m = load(PODINFO);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.objects.len(), 4, "the Deployment is skipped");
    let Object::ImageRepository(repo) = &m.objects[0] else {
        panic!("{:?}", m.objects[0])
    };
    assert_eq!(repo.image, "ghcr.io/stefanprodan/podinfo");
    assert_eq!(repo.interval, Duration::from_secs(60));
    assert_eq!(repo.exclusion_list, vec![r"^.*\.sig$".to_string()]);
    assert_eq!(repo.provider, "generic");
    assert_eq!(repo.meta.source.document, 1);
    let Object::ImagePolicy(pol) = &m.objects[1] else {
        panic!()
    };
    assert_eq!(
        pol.policy,
        PolicyChoice::SemVer {
            range: "5.0.x".into()
        }
    );
    assert_eq!(pol.digest_reflection_policy, "Never");
    let Object::ImageUpdateAutomation(a) = &m.objects[2] else {
        panic!()
    };
    assert_eq!(
        a.checkout_ref.as_ref().and_then(|r| r.branch.as_deref()),
        Some("main")
    );
    assert_eq!(a.push_branch.as_deref(), Some("main"));
    assert_eq!(a.author_name, "fluxcdbot");
    assert_eq!(
        a.message_template.as_deref(),
        Some("{{range .Updated.Images}}{{println .}}{{end}}")
    );
    assert_eq!(a.update_path, "./clusters/my-cluster");
    assert_eq!(a.update_strategy, "Setters");
    let Object::Receiver(r) = &m.objects[3] else {
        panic!()
    };
    assert_eq!(r.receiver_type, "dockerhub");
    assert_eq!(r.resources[0].kind, "ImageRepository");
    assert_eq!(r.meta.source.document, 5);
}

#[test]
fn v1_reference_manifests_load() {
    let m = load(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app-name-dev
spec:
  imageRepositoryRef:
    name: app-name-dev
  filterTags:
    pattern: '^dev-[0-9a-fA-F]{7,40}-(?P<run>[0-9]+)$'
    extract: '$run'
  policy:
    numerical:
      order: asc
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app-name-dev
  namespace: flux-system
spec:
  image: 123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name
  interval: 1m
  provider: aws
  insecure: true
  exclusionList: []
---
apiVersion: v1
kind: Secret
metadata:
  name: ghcr-auth
  namespace: flux-system
type: kubernetes.io/dockerconfigjson
data:
  token: aGVsbG8=
stringData:
  .dockerconfigjson: |
    {"auths":{"ghcr.io":{"auth":"dXNlcjpwYXQ="}}}
"#,
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let Object::ImagePolicy(p) = &m.objects[0] else {
        panic!()
    };
    assert_eq!(p.meta.namespace, "flux-system", "flux's default namespace");
    let f = p.filter_tags.as_ref().expect("filterTags");
    assert_eq!(f.extract, "$run");
    let Object::ImageRepository(r) = &m.objects[1] else {
        panic!()
    };
    assert!(r.insecure);
    assert!(
        r.exclusion_list.is_empty(),
        "an explicit empty list replaces the default"
    );
    let Object::Secret(s) = &m.objects[2] else {
        panic!()
    };
    assert_eq!(s.data["token"], b"hello");
    assert!(String::from_utf8_lossy(&s.data[".dockerconfigjson"]).contains("ghcr.io"));
}

#[test]
fn a_bad_document_names_file_document_and_field_and_others_still_load() {
    let m = load(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: broken
spec:
  imageRepositoryRef:
    name: podinfo
  policy:
    semver:
      range: 5
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: ok
spec:
  image: ghcr.io/a/b
  interval: 1m
"#,
    );
    assert_eq!(m.objects.len(), 1);
    assert_eq!(
        m.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "clusters/my-cluster/image.yaml: document 1: ImagePolicy 'broken': spec.policy.semver.range: expected a string, got a number"
        ]
    );
}

#[test]
fn field_errors_read_like_a_fix() {
    let cases = [
        (
            "kind: ImageRepository\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {interval: 1m}\n",
            "spec.image: required field is missing",
        ),
        (
            "kind: ImageRepository\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {image: x, interval: soon}\n",
            "spec.interval: invalid duration 'soon'",
        ),
        (
            "kind: ImageRepository\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {image: x, interval: 1m, insecure: yes}\n",
            "spec.insecure: expected true or false, got a string",
        ),
        (
            "kind: ImageRepository\napiVersion: image.toolkit.fluxcd.io/v1alpha1\nmetadata: {name: a}\nspec: {image: x}\n",
            "apiVersion: unsupported version 'image.toolkit.fluxcd.io/v1alpha1'",
        ),
        (
            "kind: ImagePolicy\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {imageRepositoryRef: {name: r}, policy: {}}\n",
            "spec.policy: expected one of semver, numerical or alphabetical",
        ),
        (
            "kind: ImagePolicy\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {imageRepositoryRef: {name: r}, policy: {semver: {range: '1.x'}, alphabetical: {}}}\n",
            "spec.policy: expected exactly one",
        ),
        (
            "kind: ImagePolicy\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {imageRepositoryRef: {name: r}, policy: {numerical: {order: up}}}\n",
            "spec.policy.numerical.order: invalid value 'up': expected one of asc, desc",
        ),
        (
            "kind: ImageUpdateAutomation\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {interval: 1m, sourceRef: {name: s}, git: {commit: {author: {name: n}}}}\n",
            "spec.git.commit.author.email: required field is missing",
        ),
        (
            "kind: GitRepository\napiVersion: source.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {url: github.com/x}\n",
            "spec.url: invalid URL 'github.com/x'",
        ),
        (
            "kind: Receiver\napiVersion: notification.toolkit.fluxcd.io/v1\nmetadata: {name: a}\nspec: {type: teams, secretRef: {name: t}, resources: [{kind: ImageRepository, name: x}]}\n",
            "spec.type: invalid value 'teams'",
        ),
        (
            "kind: Secret\napiVersion: v1\nmetadata: {name: a}\ndata: {token: '***'}\n",
            "data.token: expected base64",
        ),
        (
            "kind: ImageRepository\napiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {namespace: x}\nspec: {image: x, interval: 1m}\n",
            "metadata.name: required field is missing",
        ),
    ];
    for (doc, needle) in cases {
        let m = load(doc);
        assert_eq!(m.errors.len(), 1, "{doc}");
        let e = m.errors[0].to_string();
        assert!(e.contains(needle), "{doc}\n got: {e}\nwant: {needle}");
        assert!(
            e.starts_with("clusters/my-cluster/image.yaml: document 1:"),
            "{e}"
        );
    }
}

#[test]
fn a_syntax_error_spares_the_other_documents() {
    let m = load(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: one}\n---\nkey: [unclosed\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: three}\n",
    );
    let names: Vec<_> = m.objects.iter().map(|o| o.meta().name.clone()).collect();
    assert_eq!(names, ["one", "three"]);
    assert!(
        matches!(&m.errors[..], [LoadError::Syntax { origin, .. }] if origin.document == 2),
        "{:?}",
        m.errors
    );
    let Object::Secret(three) = &m.objects[1] else {
        panic!()
    };
    assert_eq!(three.meta.source.document, 3);
}

#[test]
fn folders_are_read_recursively_in_order() {
    let dir = std::env::temp_dir().join(format!("tagwarden-api-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("b")).expect("mkdir");
    std::fs::write(
        dir.join("b/2.yml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: two}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("a.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: one}\n",
    )
    .expect("write");
    std::fs::write(dir.join("notes.txt"), "kind: Secret").expect("write");
    let m = Manifests::load_paths(
        &[dir.clone(), dir.join("missing.yaml")],
        &LoadOptions::default(),
    );
    let names: Vec<_> = m.objects.iter().map(|o| o.meta().name.clone()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(m.errors.len(), 1);
    assert!(m.errors[0].to_string().contains("missing.yaml"));
    std::fs::remove_dir_all(dir).expect("cleanup");
}
