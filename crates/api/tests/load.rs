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

fn errors(m: &Manifests) -> Vec<String> {
    m.errors.iter().map(ToString::to_string).collect()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tagwarden-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

const SECRET_ONE: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: one}\n";

/// The 377-byte "billion laughs": nine levels of ten aliases each. Built
/// naively it expands to 10^9 strings; it must be refused from the event
/// stream, naming the document, and the documents around it still load.
#[test]
fn an_alias_bomb_is_refused_before_it_expands() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    let text = format!(
        "{SECRET_ONE}---\n{bomb}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: three}}\n"
    );
    let started = std::time::Instant::now();
    let m = load(&text);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        errors(&m),
        [
            "clusters/my-cluster/image.yaml: document 2: aliases expand to more than 100000 nodes; refusing to expand it (a YAML alias bomb?)"
        ]
    );
    let names: Vec<_> = m.objects.iter().map(|o| o.meta().name.clone()).collect();
    assert_eq!(names, ["one", "three"]);

    // Every bomb is refused, also after a first one, also next to a broken
    // document (read one by one) or a duplicated key (the loader's own error).
    let bomb_msg = |n: usize| {
        format!(
            "clusters/my-cluster/image.yaml: document {n}: aliases expand to more than 100000 nodes; refusing to expand it (a YAML alias bomb?)"
        )
    };
    let m = load(&format!(
        "{bomb}---
{SECRET_ONE}---
{bomb}"
    ));
    assert_eq!(errors(&m), [bomb_msg(1), bomb_msg(3)]);
    assert_eq!(m.objects.len(), 1);
    let m = load(&format!(
        "{bomb}---
key: [unclosed\n---\n{bomb}x: 1\nx: 2\n"
    ));
    assert_eq!(errors(&m)[0], bomb_msg(1));
    assert!(
        errors(&m)[1].starts_with("clusters/my-cluster/image.yaml: document 2: invalid YAML"),
        "{:?}",
        m.errors
    );
    assert_eq!(errors(&m)[2], bomb_msg(3));

    // Many aliases of one big scalar: few nodes, many bytes.
    let big = format!(
        "s: &s \"{}\"\nl: [{}]\n",
        "x".repeat(1 << 20),
        vec!["*s"; 20].join(",")
    );
    assert_eq!(
        errors(&load(&big)),
        [
            "clusters/my-cluster/image.yaml: document 1: aliases expand to more than 16 MiB of text; refusing to expand it (a YAML alias bomb?)"
        ]
    );
    // Ordinary anchors still work.
    let m = load(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: a, labels: &l {x: y}}\nstringData: *l\n",
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn a_manifest_file_over_16_mib_is_refused() {
    let dir = temp_dir("big");
    let file = dir.join("big.yaml");
    let mut text = String::from(SECRET_ONE);
    text.push_str(&format!("# {}\n", "x".repeat(17 * 1024 * 1024)));
    std::fs::write(&file, &text).expect("write");
    let m = Manifests::load_paths(std::slice::from_ref(&file), &LoadOptions::default());
    assert_eq!(
        errors(&m),
        [format!(
            "{}: file is 17.0 MiB, larger than the 16 MiB a manifest file may be",
            file.display()
        )]
    );
    assert!(m.objects.is_empty());
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn invalid_utf8_names_line_and_byte_column() {
    let dir = temp_dir("utf8");
    let file = dir.join("latin1.yaml");
    std::fs::write(
        &file,
        b"apiVersion: v1\nkind: Secret\nmetadata: {name: caf\xe9}\n",
    )
    .expect("write");
    let m = Manifests::load_paths(std::slice::from_ref(&file), &LoadOptions::default());
    assert_eq!(
        errors(&m),
        [format!(
            "{}: invalid UTF-8 at line 3, byte column 21 (byte 0xe9): manifests must be UTF-8",
            file.display()
        )]
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
}

/// Two documents for one object would share one state key; neither loads,
/// the error names both places, and other objects are unaffected.
#[test]
fn duplicate_objects_are_refused_naming_both_documents() {
    let dir = temp_dir("dup");
    let repo = |image: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: app, namespace: flux-system}}\nspec: {{image: {image}, interval: 1m}}\n"
        )
    };
    std::fs::write(
        dir.join("a.yaml"),
        format!("{SECRET_ONE}---\n{}", repo("ghcr.io/a/app")),
    )
    .expect("write");
    // No namespace: the default, flux-system, makes it the same object.
    std::fs::write(
        dir.join("b.yaml"),
        repo("ghcr.io/b/app").replace(", namespace: flux-system", ""),
    )
    .expect("write");
    let m = Manifests::load_paths(std::slice::from_ref(&dir), &LoadOptions::default());
    assert_eq!(
        errors(&m),
        [format!(
            "{b}: document 1: duplicate ImageRepository 'flux-system/app', also defined in {a}: document 2; neither is loaded",
            a = dir.join("a.yaml").display(),
            b = dir.join("b.yaml").display()
        )]
    );
    let names: Vec<_> = m
        .objects
        .iter()
        .map(|o| format!("{} {}", o.kind(), o.meta().name))
        .collect();
    assert_eq!(names, ["Secret one"]);
    // Same name, other kind or namespace: distinct objects.
    let m = load(&format!(
        "{}---\n{}---\n{}",
        repo("x/a"),
        repo("x/b").replace("flux-system", "apps"),
        SECRET_ONE.replace("one", "app")
    ));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.objects.len(), 3);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

const AUTOMATION: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: apps, namespace: flux-system, annotations: {anything: goes}}
spec:
  interval: 1m
  suspnd: true
  sourceRef: {kind: GitRepository, name: flux-system}
  git:
    commit: {author: {email: bot@example.com}, mesageTemplate: x}
    push: {branch: main, options: {ci.skip: ''}}
  policySelector: {matchLabels: {any.label/x: y}}
  update: {path: ./clusters}
status: {whatever: 1}
colour: blue
";

#[test]
fn unknown_fields_warn_with_the_closest_known_field() {
    let m = load(AUTOMATION);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.objects.len(), 1, "a warning does not refuse the object");
    assert_eq!(
        m.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "clusters/my-cluster/image.yaml: document 1: ImageUpdateAutomation 'apps': spec.suspnd: unknown field, did you mean spec.suspend?",
            "clusters/my-cluster/image.yaml: document 1: ImageUpdateAutomation 'apps': spec.git.commit.mesageTemplate: unknown field, did you mean spec.git.commit.messageTemplate?",
            "clusters/my-cluster/image.yaml: document 1: ImageUpdateAutomation 'apps': colour: unknown field",
        ]
    );
    // Strict: the warnings are errors and the object is not loaded.
    let m = load(AUTOMATION).strict();
    assert!(m.objects.is_empty());
    assert_eq!(m.errors.len(), 3);
    assert!(m.warnings.is_empty());
    // Fields of other kinds and of v1beta2 GitRepository are known.
    let m = load(
        "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: GitRepository\nmetadata: {name: g}\nspec: {url: 'https://x/y', interval: 1m, gitImplementation: go-git, ref: {branch: main}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\nimmutable: true\n",
    );
    assert!(
        m.warnings.is_empty() && m.errors.is_empty(),
        "{:?} {:?}",
        m.warnings,
        m.errors
    );
    let m = load(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: g}\nspec: {url: 'https://x/y', gitImplementation: go-git}\n",
    );
    assert_eq!(
        m.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "clusters/my-cluster/image.yaml: document 1: GitRepository 'g': spec.gitImplementation: unknown field"
        ]
    );
}

#[test]
fn names_and_namespaces_must_be_dns_1123() {
    let repo = |meta: &str, extra: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {meta}\nspec: {{image: x, interval: 1m{extra}}}\n"
        )
    };
    let policy = |r: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: p}}\nspec: {{imageRepositoryRef: {r}, policy: {{semver: {{range: 1.x}}}}}}\n"
        )
    };
    let cases = [
        (
            repo("{name: ../../etc}", ""),
            "ImageRepository '../../etc': metadata.name: invalid name '../../etc': must be a lowercase RFC 1123 subdomain of at most 253 characters (lower case letters, digits, '-' and '.', starting and ending with a letter or digit)",
        ),
        (
            repo("{name: a, namespace: Flux_System!}", ""),
            "ImageRepository 'a': metadata.namespace: invalid namespace 'Flux_System!': must be a lowercase RFC 1123 label of at most 63 characters (lower case letters, digits and '-', starting and ending with a letter or digit)",
        ),
        (
            repo("{name: a}", ", secretRef: {name: ../creds}"),
            "ImageRepository 'a': spec.secretRef.name: invalid name '../creds'",
        ),
        (
            policy("{name: Repo}"),
            "ImagePolicy 'p': spec.imageRepositoryRef.name: invalid name 'Repo'",
        ),
        (
            policy("{name: r, namespace: a.b}"),
            "ImagePolicy 'p': spec.imageRepositoryRef.namespace: invalid namespace 'a.b'",
        ),
        (
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: a}\nspec: {interval: 1m, sourceRef: {name: ../x}, git: {commit: {author: {email: e}}}}\n".to_string(),
            "ImageUpdateAutomation 'a': spec.sourceRef.name: invalid name '../x'",
        ),
        (
            "apiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata: {name: a}\nspec: {type: generic, secretRef: {name: t}, resources: [{kind: ImageRepository, name: 'x/y'}]}\n".to_string(),
            "Receiver 'a': spec.resources[0].name: invalid name 'x/y'",
        ),
    ];
    for (doc, want) in cases {
        let e = errors(&load(&doc));
        assert_eq!(e.len(), 1, "{doc}");
        let want = format!("clusters/my-cluster/image.yaml: document 1: {want}");
        assert!(e[0].starts_with(&want), "\n got: {}\nwant: {want}", e[0]);
    }
    // The wildcard stays a valid resource name.
    let m = load(
        "apiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata: {name: a}\nspec: {type: generic, secretRef: {name: t}, resources: [{kind: ImageRepository, name: '*', matchLabels: {a: b}}]}\n",
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn zero_or_negative_intervals_are_refused_naming_the_field() {
    let cases = [
        (
            "interval: 0s",
            "spec.interval: must be greater than 0, got 0s",
        ),
        (
            "interval: '0'",
            "spec.interval: must be greater than 0, got 0",
        ),
        (
            "interval: -1m",
            "spec.interval: must be greater than 0, got -1m",
        ),
        (
            "interval: 1m, timeout: 0ms",
            "spec.timeout: must be greater than 0, got 0ms",
        ),
    ];
    for (fields, want) in cases {
        let doc = format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: a}}\nspec: {{image: x, {fields}}}\n"
        );
        assert_eq!(
            errors(&load(&doc)),
            [format!(
                "clusters/my-cluster/image.yaml: document 1: ImageRepository 'a': {want}"
            )]
        );
    }
    let doc = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: a}\nspec: {interval: 0s, sourceRef: {name: s}, git: {commit: {author: {email: e}}}}\n";
    assert_eq!(
        errors(&load(doc)),
        [
            "clusters/my-cluster/image.yaml: document 1: ImageUpdateAutomation 'a': spec.interval: must be greater than 0, got 0s"
        ]
    );
}

#[test]
fn an_exclusion_list_over_25_entries_is_refused() {
    let list = (0..300_000)
        .map(|i| format!("'^x{i}$'"))
        .collect::<Vec<_>>()
        .join(",");
    let doc = format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: a}}\nspec: {{image: x, interval: 1m, exclusionList: [{list}]}}\n"
    );
    assert_eq!(
        errors(&load(&doc)),
        [
            "clusters/my-cluster/image.yaml: document 1: ImageRepository 'a': spec.exclusionList: too many entries: 300000, at most 25 (as Flux's CRD)"
        ]
    );
    let list = (0..25)
        .map(|i| format!("'^x{i}$'"))
        .collect::<Vec<_>>()
        .join(",");
    let doc = format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: a}}\nspec: {{image: x, interval: 1m, exclusionList: [{list}]}}\n"
    );
    assert!(load(&doc).errors.is_empty());
}

/// Flux joins `update.path` under the checkout: `/` is the root.
#[test]
fn update_path_slash_is_the_repository_root() {
    for (path, want) in [
        ("/", "."),
        ("/clusters/x", "clusters/x"),
        ("./clusters", "./clusters"),
    ] {
        let doc = format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{name: a}}\nspec: {{interval: 1m, sourceRef: {{name: s}}, git: {{commit: {{author: {{email: e}}}}}}, update: {{path: '{path}'}}}}\n"
        );
        let m = load(&doc);
        let Some(Object::ImageUpdateAutomation(a)) = m.objects.first() else {
            panic!("{:?}", m.errors)
        };
        assert_eq!(a.update_path, want, "{path}");
    }
}

#[test]
fn namespace_labels_come_from_namespace_documents() {
    let m = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: apps, labels: {team: web}}\n");
    assert!(m.objects.is_empty() && m.errors.is_empty());
    let labels = m.namespace_labels("apps");
    assert_eq!(labels.get("team").map(String::as_str), Some("web"));
    assert_eq!(
        labels
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("apps")
    );
    assert_eq!(m.namespace_labels("other").len(), 1);
}
