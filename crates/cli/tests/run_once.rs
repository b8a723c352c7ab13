//! `tagwarden run --once` end to end: a real registry, a real Git
//! repository, the seed docs' manifests.

use std::path::Path;
use std::process::{Command, Output};
use tagwarden_testkit::{
    BareRepo, GitHttpServer, Registry, RegistryAuth, SshServer, TempDir, ssh_keygen,
};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .arg("run")
        .args(args)
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  template:
    spec:
      containers:
        # the app
        - name: podinfod
          image: IMAGE:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}
          ports:

            - containerPort: 9898
"#;

/// The getting-started guide's manifests, pointed at our servers.
fn manifests(dir: &Path, git_url: &str, image: &str, template: &str, secret: &str) {
    std::fs::write(
        dir.join("flux.yaml"),
        tagwarden_testkit::seed::podinfo_manifests(git_url, image, template, secret),
    )
    .expect("write manifests");
}

/// `run --once --dry-run`: the diff and the message a run would push, and
/// the repository untouched.
#[test]
fn a_dry_run_shows_the_diff_and_pushes_nothing() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.3"], None);
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let deployment = DEPLOYMENT.replace("IMAGE", &image);
    let bare = BareRepo::new(
        "main",
        &[("clusters/my-cluster/podinfo-deployment.yaml", &deployment)],
    );
    let before = bare.log("main", "%H");
    let dir = TempDir::new("dry-run");
    manifests(dir.path(), &bare.url(), &image, "", "");
    let file = dir.path().join("flux.yaml");
    let out = run(&["--once", "--dry-run", "-f", file.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("dry run: would push a commit to branch 'main'"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "-          image: {image}:5.0.0 # {{\"$imagepolicy\": \"flux-system:podinfo\"}}\n+          image: {image}:5.0.3 # {{\"$imagepolicy\": \"flux-system:podinfo\"}}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("=== ImageUpdateAutomation/flux-system/flux-system"),
        "{stdout}"
    );
    assert_eq!(bare.log("main", "%H"), before, "nothing pushed");
    let out = run(&[
        "--once",
        "--dry-run",
        "--state-dir",
        "/tmp/x",
        "-f",
        "x.yaml",
    ]);
    assert!(!out.status.success());
}

#[test]
fn podinfo_getting_started_end_to_end() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish(
        "stefanprodan/podinfo",
        &["5.0.0", "5.0.1", "5.0.3", "5.1.0"],
        None,
    );
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let deployment = DEPLOYMENT.replace("IMAGE", &image);
    let bare = BareRepo::new(
        "main",
        &[
            ("clusters/my-cluster/podinfo-deployment.yaml", &deployment),
            (
                "clusters/my-cluster/other.yaml",
                "a: 1 # {\"$imagepolicy\": \"apps:web\"}\n",
            ),
            // Outside update.path: not checked out, kept as they are.
            ("README.md", "# fleet\n"),
            ("infra/podinfo.yaml", &deployment),
        ],
    );
    let dir = TempDir::new("run-once");
    manifests(
        dir.path(),
        &bare.url(),
        &image,
        "{{range .Updated.Images}}{{println .}}{{end}}",
        "",
    );
    let state = dir.path().join("state");
    let file = dir.path().join("flux.yaml");
    let args = [
        "--once",
        "-f",
        file.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];

    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("successful scan: found 4 tags"), "{stdout}");
    assert!(
        stdout.contains(&format!("Latest image tag for '{image}' resolved to 5.0.3")),
        "{stdout}"
    );
    let short = &bare.log("main", "%H")[0][..7];
    assert!(
        stdout.contains(&format!("pushed commit '{short}' to branch 'main'")),
        "{stdout}"
    );

    let head = bare.log("main", "%an <%ae>%n%B");
    assert_eq!(
        head[..3],
        [
            "fluxcdbot <fluxcdbot@users.noreply.github.com>".to_string(),
            format!("{image}:5.0.3"),
            String::new()
        ]
    );
    // Only the marked value changed, byte for byte.
    assert_eq!(
        bare.show("main", "clusters/my-cluster/podinfo-deployment.yaml") + "\n",
        deployment.replace(":5.0.0 #", ":5.0.3 #")
    );
    assert_eq!(
        bare.show("main", "clusters/my-cluster/other.yaml"),
        "a: 1 # {\"$imagepolicy\": \"apps:web\"}"
    );
    assert_eq!(
        tagwarden_testkit::git(&bare.path(), &["diff", "--name-only", "main~1", "main"]),
        "clusters/my-cluster/podinfo-deployment.yaml",
        "the commit holds only the file the update wrote"
    );
    assert_eq!(bare.show("main", "README.md"), "# fleet");
    assert_eq!(bare.show("main", "infra/podinfo.yaml") + "\n", deployment);

    // Second run: nothing to do, no commit.
    let before = bare.log("main", "%H").len();
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("repository up-to-date"), "{stdout}");
    assert_eq!(bare.log("main", "%H").len(), before);
}

#[test]
fn over_smart_http_with_credentials_and_every_failure_reported() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.3"], None);
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let bare = BareRepo::new(
        "main",
        &[(
            "clusters/my-cluster/podinfo-deployment.yaml",
            &DEPLOYMENT.replace("IMAGE", &image),
        )],
    );
    tagwarden_testkit::git(&bare.path(), &["config", "http.receivepack", "true"]);
    let server = GitHttpServer::start(bare.root(), "flux", "gitpass");
    let secret = |password: &str| {
        format!(
            "  secretRef:\n    name: git-auth\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: git-auth\n  namespace: flux-system\nstringData:\n  username: flux\n  password: {password}\n"
        )
    };
    let dir = TempDir::new("run-http");
    let file = dir.path().join("flux.yaml");
    let args = ["--once", "-f", file.to_str().expect("utf-8")];

    // Wrong password: the automation fails, the others still succeed.
    manifests(
        dir.path(),
        &server.url("repo.git"),
        &image,
        "",
        &secret("wrong"),
    );
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("Latest image tag"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ImageUpdateAutomation"))
        .expect("automation line");
    assert!(
        line.contains("False") && line.contains("authentication failed"),
        "{line}"
    );

    // A checkout branch that does not exist.
    manifests(
        dir.path(),
        &server.url("repo.git"),
        &image,
        "",
        &secret("gitpass"),
    );
    let missing = std::fs::read_to_string(&file).expect("read").replace(
        "        branch: main\n    commit:",
        "        branch: nope\n    commit:",
    );
    std::fs::write(&file, missing).expect("write");
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("failed to checkout and determine revision")
            && stdout.contains("couldn't find remote ref 'refs/heads/nope'"),
        "{stdout}"
    );

    // A template error stalls the automation with the template's own text.
    manifests(
        dir.path(),
        &server.url("repo.git"),
        &image,
        "{{ .Nope",
        &secret("gitpass"),
    );
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout
            .contains("spec.git.commit.messageTemplate: unable to create commit message template"),
        "{stdout}"
    );

    // Right password: pushed over HTTP, default message.
    manifests(
        dir.path(),
        &server.url("repo.git"),
        &image,
        "",
        &secret("gitpass"),
    );
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(
        bare.log("main", "%s")[0],
        "Update from image update automation"
    );

    // Registry down: the repository fails, the policy has no scan, the
    // automation waits for it; exit code says so.
    drop(reg);
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("cannot connect"), "{stdout}");
    assert!(
        stdout.contains("ImagePolicy 'flux-system/podinfo' is not ready"),
        "{stdout}"
    );
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write manifest");
    p.to_str().expect("utf-8 path").to_string()
}

fn git_repository(url: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 1m0s\n  ref:\n    branch: main\n  url: {url}\n"
    )
}

/// The lab: CI tags `main-<sha>-<ts>`, a numerical policy on the extracted
/// timestamp, a kustomize `newTag` with a `:tag` marker.
#[test]
fn lab_ci_tags_with_a_numerical_policy_on_the_timestamp() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish(
        "xxxxx/vote",
        &[
            "main-e5d27a2c-1619063680",
            "main-0a1b2c3d-1619063700",
            "main-ffffffff-1619063690",
            "feature-9f8e7d6c-1619099999",
            "v8",
        ],
        None,
    );
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\nimages:\n- name: schoolofdevops/vote\n  newTag: v8 # {\"$imagepolicy\": \"flux-system:vote:tag\"}\n";
    let bare = BareRepo::new(
        "main",
        &[("deploy/vote/staging/kustomization.yaml", kustomization)],
    );
    let dir = TempDir::new("lab");
    let manifests = format!(
        r#"{git}---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata:
  name: vote
  namespace: flux-system
spec:
  image: {host}/xxxxx/vote
  interval: 1m0s
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: vote
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: vote
  filterTags:
    pattern: ^main-[a-f0-9]+-(?P<ts>[0-9]+)
    extract: $ts
  policy:
    numerical:
      order: asc
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: instavote-all
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
        email: flux@example.com
        name: flux
      messageTemplate: '{{{{range .Updated.Images}}}}{{{{println .}}}}{{{{end}}}}'
    push:
      branch: main
  update:
    path: ./deploy/vote/staging
    strategy: Setters
"#,
        git = git_repository(&bare.url()),
        host = reg.host()
    );
    let file = write(dir.path(), "lab.yaml", &manifests);
    let out = run(&["--once", "-f", &file]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("resolved to main-0a1b2c3d-1619063700"),
        "{stdout}"
    );
    assert_eq!(
        bare.log("main", "%an <%ae>|%s")[0],
        format!(
            "flux <flux@example.com>|{}/xxxxx/vote:main-0a1b2c3d-1619063700",
            reg.host()
        )
    );
    assert_eq!(
        bare.show("main", "deploy/vote/staging/kustomization.yaml") + "\n",
        kustomization.replace("newTag: v8 #", "newTag: main-0a1b2c3d-1619063700 #")
    );
}

/// The v1 reference: dev (numerical on run id), prod (semver on the
/// extracted version), staging (alphabetical) in one repository, and its
/// `.Changed` template.
#[test]
fn v1_reference_dev_prod_staging_with_the_changed_template() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish(
        "org/app-name-dev",
        &[
            "dev-abc1234-12345678",
            "dev-def5678-12345999",
            "dev-0000000-9",
        ],
        None,
    );
    reg.publish(
        "org/app-name-prod",
        &["v0.9.0", "v1.0.0", "v1.2.3", "latest", "v2.0.0-rc.1"],
        None,
    );
    reg.publish(
        "org/app-name-staging",
        &["staging-abc1234", "staging-fff0000", "staging-0123456"],
        None,
    );
    let host = reg.host();
    let patches = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: app-name\nspec:\n  values:\n    image:\n      tag: dev-abc1234-12345678 # {\"$imagepolicy\": \"flux-system:app-name-dev:tag\"}\n";
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {host}/org/app-name-prod:v1.0.0 # {{\"$imagepolicy\": \"flux-system:app-name-prod\"}}\n        - name: sidecar\n          image: \"staging-abc1234\" # {{\"$imagepolicy\": \"flux-system:app-name-staging:tag\"}}\n"
    );
    let bare = BareRepo::new(
        "main",
        &[
            ("apps/dev/patches.yaml", patches),
            ("apps/dev/app.yaml", &deploy),
            ("apps/prod/app.yaml", &deploy),
        ],
    );
    let policy = |name: &str, filter: &str, extract: &str, choice: &str| {
        format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  image: {host}/org/{name}\n  interval: 1m\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: {name}\n  filterTags:\n    pattern: '{filter}'\n    extract: '{extract}'\n  policy:\n{choice}"
        )
    };
    let manifests = git_repository(&bare.url())
        + &policy(
            "app-name-dev",
            "^dev-[0-9a-fA-F]{7,40}-(?P<run>[0-9]+)$",
            "$run",
            "    numerical:\n      order: asc\n",
        )
        + &policy(
            "app-name-prod",
            r"^v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)$",
            "$version",
            "    semver:\n      range: '>=1.0.0'\n",
        )
        + &policy(
            "app-name-staging",
            "^staging-(?P<sha>[0-9a-fA-F]{7,40})$",
            "$sha",
            "    alphabetical:\n      order: desc\n",
        )
        + r#"---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: app-name-auto-dev
  namespace: flux-system
spec:
  interval: 5m
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        name: fluxbot
        email: fluxbot@example.com
      messageTemplate: |
        chore: automated image update

        Automation: {{ .AutomationObject }}

        {{ range .Changed.Changes -}}
        - {{ .OldValue }} -> {{ .NewValue }}
        {{ end -}}
    push:
      branch: main
  update:
    strategy: Setters
    path: ./apps/dev  # Scope to environment
"#;
    let dir = TempDir::new("v1ref");
    let file = write(dir.path(), "ref.yaml", &manifests);
    let out = run(&["--once", "-f", &file]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("resolved to dev-def5678-12345999"),
        "{stdout}"
    );
    assert!(stdout.contains("resolved to v1.2.3"), "{stdout}");
    assert!(stdout.contains("resolved to staging-0123456"), "{stdout}");

    let message = tagwarden_testkit::git(&bare.path(), &["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message,
        format!(
            "chore: automated image update\n\nAutomation: flux-system/app-name-auto-dev\n\n- {host}/org/app-name-prod:v1.0.0 -> {host}/org/app-name-prod:v1.2.3\n- staging-abc1234 -> staging-0123456\n- dev-abc1234-12345678 -> dev-def5678-12345999"
        )
    );
    assert_eq!(bare.log("main", "%an")[0], "fluxbot");
    // Only ./apps/dev changed; quotes kept; prod untouched.
    assert_eq!(
        bare.show("main", "apps/dev/app.yaml") + "\n",
        deploy
            .replace(":v1.0.0 #", ":v1.2.3 #")
            .replace("\"staging-abc1234\"", "\"staging-0123456\"")
    );
    assert_eq!(bare.show("main", "apps/prod/app.yaml") + "\n", deploy);
    assert_eq!(
        bare.show("main", "apps/dev/patches.yaml") + "\n",
        patches.replace("tag: dev-abc1234-12345678", "tag: dev-def5678-12345999")
    );
}

/// YAML block scalar lines, indented for a `stringData` value.
fn block(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

#[test]
fn over_ssh_with_a_signed_commit() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.3"], None);
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let deployment = DEPLOYMENT.replace("IMAGE", &image);
    let bare = BareRepo::new(
        "main",
        &[("clusters/my-cluster/podinfo-deployment.yaml", &deployment)],
    );
    let deploy_key = ssh_keygen("ed25519", "", false);
    let signing_key = ssh_keygen("ed25519", "sign-pass", false);
    let server = SshServer::start(bare.root(), &deploy_key.public);
    let dir = TempDir::new("run-once-ssh");
    let secrets = format!(
        "  secretRef:\n    name: git-ssh\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: git-ssh\n  namespace: flux-system\nstringData:\n  identity: |\n{}  known_hosts: |\n{}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: signing\n  namespace: flux-system\nstringData:\n  identity: |\n{}  password: sign-pass\n",
        block(&deploy_key.private),
        block(&server.known_hosts_line()),
        block(&signing_key.private),
    );
    manifests(
        dir.path(),
        &server.url("repo.git"),
        &image,
        "Update podinfo",
        &secrets,
    );
    // Ask for signed commits with the SSH key of the `signing` secret.
    let file = dir.path().join("flux.yaml");
    let yaml = std::fs::read_to_string(&file).expect("read manifests");
    let yaml = yaml.replace(
        "      messageTemplate:",
        "      signingKey:\n        secretRef:\n          name: signing\n      messageTemplate:",
    );
    let state = dir.path().join("state");
    let args = [
        "--once",
        "-f",
        file.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    // A wrong passphrase is reported before anything is committed.
    std::fs::write(&file, yaml.replace("password: sign-pass", "password: nope")).expect("write");
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("failed to sign commit") && stdout.contains("wrong 'password'"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sign-pass") && !stdout.contains("nope"),
        "{stdout}"
    );
    assert_eq!(
        bare.log("main", "%H").len(),
        1,
        "no commit without a signature"
    );

    std::fs::write(&file, yaml).expect("write manifests");
    let out = run(&args);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\nsshd: {}",
        text(&out.stderr),
        server.log()
    );
    let sha = bare.log("main", "%H")[0].clone();
    assert!(
        stdout.contains(&format!("pushed commit '{}' to branch 'main'", &sha[..7])),
        "{stdout}"
    );
    let signers = dir.path().join("allowed_signers");
    std::fs::write(&signers, format!("fluxcdbot {}\n", signing_key.public)).expect("write");
    let verify = Command::new("git")
        .current_dir(bare.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir.path())
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
        .args(["verify-commit", &sha])
        .output()
        .expect("git verify-commit");
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

/// Unknown fields warn on stderr; with `--strict` the object is refused and
/// the run fails, naming the field and the closest known one.
#[test]
fn unknown_fields_warn_and_strict_refuses() {
    let dir = TempDir::new("strict");
    let file = dir.path().join("secret.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstrngData: {token: x}\n",
    )
    .expect("write");
    let f = file.to_str().expect("utf-8 path");
    let message = format!(
        "{f}: document 1: Secret 'token': strngData: unknown field, did you mean stringData?"
    );
    let out = run(&["--once", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("warning: {message}\n")),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["--once", "--strict", "-f", f]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("✗ {message}\n")),
        "{}",
        text(&out.stderr)
    );
}

/// `tagwarden.io/no-downgrade`: a marker already ahead of the selection
/// (a hotfix, or a registry listing an older set) is held back and the
/// status says so; narrowing the range to the older tag is a deliberate
/// revert and goes through.
#[test]
fn no_downgrade_holds_a_marker_back_until_the_range_is_narrowed() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    let image = format!("{}/team/web", reg.host());
    let file = |tag: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: {image}:{tag} # {{\"$imagepolicy\": \"flux-system:web\"}}\n"
        )
    };
    let bare = BareRepo::new("main", &[("apps/web.yaml", &file("1.2.0"))]);
    let dir = TempDir::new("no-downgrade");
    let manifests = |range: &str| {
        git_repository(&bare.url())
            + &format!(
                r#"---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: web, namespace: flux-system}}
spec: {{image: "{image}", interval: 1m}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: web
  namespace: flux-system
  annotations: {{tagwarden.io/no-downgrade: "true"}}
spec: {{imageRepositoryRef: {{name: web}}, policy: {{semver: {{range: "{range}"}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: apps, namespace: flux-system}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: flux-system}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit: {{author: {{name: bot, email: bot@example.com}}}}
    push: {{branch: main}}
  update: {{path: ./apps, strategy: Setters}}
"#
            )
    };
    let path = write(dir.path(), "flux.yaml", &manifests(">=1.0.0"));
    let out = run(&["--once", "-f", &path]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "repository up-to-date; held back a downgrade of flux-system:web in web.yaml:10: {image}:1.2.0 -> {image}:1.1.0"
        )),
        "{stdout}"
    );
    assert_eq!(bare.show("main", "apps/web.yaml") + "\n", file("1.2.0"));

    // The incident flow: narrow the range to the version to go back to.
    let path = write(dir.path(), "flux.yaml", &manifests("1.0.0"));
    let stdout = text(&run(&["--once", "-f", &path]).stdout);
    assert!(stdout.contains("pushed commit"), "{stdout}");
    assert_eq!(bare.show("main", "apps/web.yaml") + "\n", file("1.0.0"));
}
