//! `tagwarden create image …`: the Flux docs' commands with `tagwarden` in
//! place of `flux`, their exact output, and that it reads back.
//!
//! Expected YAML is what current Flux (2.7+, sigs.k8s.io/yaml) prints:
//! `---`, apiVersion `image.toolkit.fluxcd.io/v1` for all three kinds, keys
//! sorted. The guides' listings predate v1 and show the automation's spec in
//! a hand-picked order (interval, sourceRef, git); the fields and values are
//! the same.

use std::path::Path;
use std::process::{Command, Output};
use tagwarden_api::{LoadOptions, Manifests, Object, PolicyChoice};
use tagwarden_testkit::TempDir;

fn tagwarden(args: &[&str]) -> Output {
    // No kubeconfig reaches the command: without one, `create` has no
    // cluster to apply to.
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs an export, checks it succeeded and reads back as one object.
fn export(args: &[&str]) -> (String, Object) {
    let out = tagwarden(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let m = Manifests::load_str(&yaml, Path::new("stdout"), &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}\n{yaml}", m.errors);
    assert_eq!(m.objects.len(), 1, "{yaml}");
    let obj = m.objects.into_iter().next().expect("one object");
    (yaml, obj)
}

fn fails_with(args: &[&str], message: &str) {
    let out = tagwarden(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        text(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(message),
        "{args:?}: want {message:?} in {}",
        text(&out.stderr)
    );
}

#[test]
fn issue_example_repository_export() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "repository",
        "podinfo",
        "--image=ghcr.io/stefanprodan/podinfo",
        "--interval=1m",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 1m0s
"
    );
    let Object::ImageRepository(r) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(r.image, "ghcr.io/stefanprodan/podinfo");
    assert_eq!(r.interval.as_secs(), 60);
    assert_eq!(r.meta.namespace, "flux-system");
}

/// `--provider`, as `flux create source oci` has it: the dev example's ECR
/// repository, and a host the provider does not log in to refused.
#[test]
fn a_cloud_provider_repository_exports_and_a_wrong_host_is_refused() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "repository",
        "app-name-dev",
        "--image=123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name",
        "--provider=aws",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app-name-dev
  namespace: flux-system
spec:
  image: 123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name
  interval: 1m0s
  provider: aws
"
    );
    let Object::ImageRepository(r) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(r.provider, "aws");
    fails_with(
        &[
            "create",
            "image",
            "repository",
            "app",
            "--image=ghcr.io/org/app",
            "--provider=gcp",
            "--export",
        ],
        "--provider gcp logs in to gcr.io, <region>.gcr.io or <region>-docker.pkg.dev only; --image is on 'ghcr.io'",
    );
}

#[test]
fn seed_policy_semver_exports() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "policy",
        "podinfo",
        "--image-ref=podinfo",
        "--select-semver=5.0.x",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
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
"
    );
    let Object::ImagePolicy(p) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(p.image_repository_ref.name, "podinfo");
    assert_eq!(
        p.policy,
        PolicyChoice::SemVer {
            range: "5.0.x".to_string()
        }
    );
}

#[test]
fn seed_policy_ranges_with_indicators_are_single_quoted() {
    for (range, printed) in [
        (">=5.0.0", "'>=5.0.0'"),
        ("5.0.0", "5.0.0"),
        (">5.0.1", "'>5.0.1'"),
        (">=1.0.0 <2.0.0", "'>=1.0.0 <2.0.0'"),
        ("^1.x-0", "^1.x-0"),
    ] {
        let flag = format!("--select-semver={range}");
        let (yaml, obj) = export(&[
            "create",
            "image",
            "policy",
            "podinfo",
            "--image-ref=podinfo",
            &flag,
            "--export",
        ]);
        assert!(
            yaml.ends_with(&format!("    semver:\n      range: {printed}\n")),
            "{yaml}"
        );
        let Object::ImagePolicy(p) = obj else {
            panic!("{yaml}")
        };
        assert_eq!(
            p.policy,
            PolicyChoice::SemVer {
                range: range.to_string()
            }
        );
    }
}

#[test]
fn seed_update_automation_exports() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "update",
        "flux-system",
        "--git-repo-ref=flux-system",
        "--git-repo-path=./clusters/my-cluster",
        "--checkout-branch=main",
        "--push-branch=main",
        "--author-name=fluxcdbot",
        "--author-email=fluxcdbot@users.noreply.github.com",
        "--commit-template={{range .Updated.Images}}{{println .}}{{end}}",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
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
  interval: 1m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
  update:
    path: ./clusters/my-cluster
    strategy: Setters
"
    );
    let Object::ImageUpdateAutomation(u) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(u.source_ref.kind, "GitRepository");
    assert_eq!(u.source_ref.name, "flux-system");
    assert_eq!(
        u.checkout_ref.and_then(|r| r.branch).as_deref(),
        Some("main")
    );
    assert_eq!(u.push_branch.as_deref(), Some("main"));
    assert_eq!(u.author_name, "fluxcdbot");
    assert_eq!(u.author_email, "fluxcdbot@users.noreply.github.com");
    assert_eq!(
        u.message_template.as_deref(),
        Some("{{range .Updated.Images}}{{println .}}{{end}}")
    );
    assert_eq!(u.update_path, "./clusters/my-cluster");
    assert_eq!(u.update_strategy, "Setters");
    assert_eq!(u.interval.as_secs(), 60);
}

#[test]
fn seed_numerical_policy_with_filter_exports() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "policy",
        "vote",
        "--image-ref=vote",
        "--select-numeric=asc",
        "--filter-regex=^main-[a-f0-9]+-(?P<ts>[0-9]+)",
        "--filter-extract=$ts",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: vote
  namespace: flux-system
spec:
  filterTags:
    extract: $ts
    pattern: ^main-[a-f0-9]+-(?P<ts>[0-9]+)
  imageRepositoryRef:
    name: vote
  policy:
    numerical:
      order: asc
"
    );
    let Object::ImagePolicy(p) = obj else {
        panic!("{yaml}")
    };
    let spec = p.policy_spec();
    assert_eq!(spec.numerical_order.as_deref(), Some("asc"));
    assert_eq!(
        spec.filter_pattern.as_deref(),
        Some("^main-[a-f0-9]+-(?P<ts>[0-9]+)")
    );
    assert_eq!(spec.filter_extract.as_deref(), Some("$ts"));
}

#[test]
fn seed_instavote_update_and_alpha_policy_export() {
    let (yaml, _) = export(&[
        "create",
        "image",
        "update",
        "instavote-all",
        "--git-repo-ref=instavote",
        "--git-repo-path=./deploy/vote/staging",
        "--checkout-branch=main",
        "--push-branch=main",
        "--author-name=flux",
        "--author-email=flux@example.com",
        "--commit-template={{range .Updated.Images}}{{println .}}{{end}}",
        "--export",
    ]);
    assert!(yaml.contains("  name: instavote-all\n"), "{yaml}");
    assert!(
        yaml.contains("  sourceRef:\n    kind: GitRepository\n    name: instavote\n"),
        "{yaml}"
    );
    assert!(
        yaml.ends_with("  update:\n    path: ./deploy/vote/staging\n    strategy: Setters\n"),
        "{yaml}"
    );

    let (yaml, obj) = export(&[
        "create",
        "image",
        "policy",
        "app",
        "--image-ref=app",
        "--select-alpha=desc",
        "--export",
    ]);
    assert!(
        yaml.ends_with("  policy:\n    alphabetical:\n      order: desc\n"),
        "{yaml}"
    );
    let Object::ImagePolicy(p) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(
        p.policy,
        PolicyChoice::Alphabetical {
            order: "desc".to_string()
        }
    );
}

#[test]
fn namespace_labels_and_optional_fields() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "repository",
        "myapp-repo",
        "--secret-ref",
        "image-pull",
        "--cert-ref=local-registry-cert",
        "--scan-timeout=30s",
        "--image",
        "ghcr.io/example.com/myapp",
        "--interval",
        "5m",
        "-n",
        "apps",
        "-l",
        "team=web",
        "--label=tier=1,env=prod",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  labels:
    env: prod
    team: web
    tier: \"1\"
  name: myapp-repo
  namespace: apps
spec:
  certSecretRef:
    name: local-registry-cert
  image: ghcr.io/example.com/myapp
  interval: 5m0s
  secretRef:
    name: image-pull
  timeout: 30s
"
    );
    let Object::ImageRepository(r) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(r.meta.namespace, "apps");
    assert_eq!(r.meta.labels.get("tier").map(String::as_str), Some("1"));
    assert_eq!(r.secret_ref.as_deref(), Some("image-pull"));
    assert_eq!(r.cert_secret_ref.as_deref(), Some("local-registry-cert"));
    assert_eq!(r.timeout.map(|t| t.as_secs()), Some(30));
}

#[test]
fn git_repo_namespace_and_no_path() {
    let (yaml, obj) = export(&[
        "create",
        "image",
        "update",
        "apps",
        "--namespace=apps",
        "--git-repo-ref=flux-system",
        "--git-repo-namespace=flux-system",
        "--checkout-branch=main",
        "--author-name=flux",
        "--author-email=flux@example.com",
        "--interval=10m",
        "--export",
    ]);
    assert_eq!(
        yaml,
        "---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: apps
  namespace: apps
spec:
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: flux@example.com
        name: flux
  interval: 10m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
"
    );
    let Object::ImageUpdateAutomation(u) = obj else {
        panic!("{yaml}")
    };
    assert_eq!(u.source_ref.namespace.as_deref(), Some("flux-system"));
    assert_eq!(u.update_path, "");
    assert_eq!(u.push_branch, None);
}

#[test]
fn invalid_flags_are_refused_naming_the_flag() {
    let policy = ["create", "image", "policy", "p", "--export"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        policy
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    fails_with(&with(&["--select-semver=1.x"]), "(--image-ref)");
    fails_with(
        &with(&["--image-ref=p"]),
        "a policy must be provided with either --select-semver",
    );
    fails_with(
        &with(&["--image-ref=p", "--select-semver=1.x", "--select-alpha=asc"]),
        "only one of --select-semver, --select-alpha or --select-numeric",
    );
    fails_with(
        &with(&["--image-ref=p", "--select-numeric=up"]),
        "--select-numeric must be one of [\"asc\", \"desc\"]",
    );
    fails_with(
        &with(&["--image-ref=p", "--select-semver=not a range"]),
        "(--select-semver)",
    );
    fails_with(
        &with(&[
            "--image-ref=p",
            "--select-numeric=asc",
            "--filter-extract=$ts",
        ]),
        "cannot specify --filter-extract without specifying --filter-regex",
    );
    fails_with(
        &with(&[
            "--image-ref=p",
            "--select-numeric=asc",
            "--filter-regex=^(?P<ts>[0-9]+)$",
            "--filter-extract=$build",
        ]),
        "(--filter-regex/--filter-extract)",
    );
    fails_with(
        &with(&["--image-ref=p", "--select-numeric=asc", "--filter-regex=(["]),
        "(--filter-regex/--filter-extract)",
    );
    fails_with(
        &with(&[
            "--image-ref=p",
            "--select-alpha=asc",
            "--reflect-digest=Always",
        ]),
        "--interval is required when --reflect-digest is Always",
    );

    let repo = ["create", "image", "repository", "r", "--export"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        repo.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails_with(&with(&[]), "an image repository (--image) is required");
    fails_with(
        &with(&["--image=ghcr.io/stefanprodan/podinfo:5.0.0"]),
        "(--image): image 'ghcr.io/stefanprodan/podinfo:5.0.0' should not contain a tag",
    );
    fails_with(
        &with(&["--image=alpine", "--interval=soon"]),
        "\"--interval\"",
    );
    fails_with(&with(&["--image=alpine", "-l", "team"]), "(--label)");

    let update = ["create", "image", "update", "u", "--export"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        update
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    fails_with(&with(&[]), "(--git-repo-ref)");
    fails_with(&with(&["--git-repo-ref=g"]), "(--checkout-branch)");
    fails_with(
        &with(&["--git-repo-ref=g", "--checkout-branch=main"]),
        "(--author-name)",
    );
    fails_with(
        &with(&[
            "--git-repo-ref=g",
            "--checkout-branch=main",
            "--author-name=n",
        ]),
        "(--author-email)",
    );
}

#[test]
fn without_export_writes_into_the_first_folder() {
    let dir = TempDir::new("create");
    let other = TempDir::new("create-other");
    let d = dir.path().to_str().expect("utf-8 path");
    let o = other.path().to_str().expect("utf-8 path");
    let args = [
        "create",
        "image",
        "repository",
        "vote",
        "--image=xxxxx/vote",
        "--interval=1m",
        "-f",
        d,
        "-f",
        o,
    ];
    let out = tagwarden(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines[0], "✚ generating ImageRepository");
    assert_eq!(lines[1], "► applying ImageRepository");
    assert!(
        lines[2].starts_with("✔ ImageRepository created"),
        "{stderr}"
    );

    let file = dir.path().join("vote-registry.yaml");
    let written = std::fs::read_to_string(&file).expect("manifest written");
    let exported = tagwarden(&[
        "create",
        "image",
        "repository",
        "vote",
        "--image=xxxxx/vote",
        "--interval=1m",
        "--export",
    ]);
    assert_eq!(written, text(&exported.stdout));
    assert_eq!(
        std::fs::read_dir(other.path()).expect("list").count(),
        0,
        "only the first -f folder is written"
    );

    // The folder loads as manifests, like any other tagwarden input.
    let m = Manifests::load_paths(&[dir.path().to_path_buf()], &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.objects.len(), 1);

    let out = tagwarden(&args);
    assert!(
        text(&out.stderr).contains("✔ ImageRepository updated"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_export_or_folder_is_an_error() {
    fails_with(
        &[
            "create",
            "image",
            "policy",
            "p",
            "--image-ref=p",
            "--select-semver=1.x",
        ],
        "tagwarden has no cluster to apply ImagePolicy to: use --export to print it, -f DIR to \
         write it into a folder, or --kubeconfig",
    );
    fails_with(
        &[
            "create",
            "image",
            "policy",
            "../p",
            "--image-ref=p",
            "--select-semver=1.x",
            "-f",
            ".",
        ],
        "invalid ImagePolicy name '../p'",
    );
}
