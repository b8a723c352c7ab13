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
        format!(
            r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: {git_url}
{secret}---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: {image}
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
      messageTemplate: '{template}'
    push:
      branch: main
  update:
    path: ./clusters/my-cluster
    strategy: Setters
"#
        ),
    )
    .expect("write manifests");
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
