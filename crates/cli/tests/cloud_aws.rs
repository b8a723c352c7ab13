//! `provider: aws` end to end: moto (the AWS emulator) serves STS and ECR,
//! the real docker-registry serves the images over TLS behind htpasswd with
//! user `AWS` and the password moto issues, reached under its ECR host name
//! through `TAGWARDEN_CONNECT_TO`, trusted through `SSL_CERT_FILE`.

use std::path::Path;
use std::process::{Command, Output};
use tagwarden_testkit::{
    Action, BareRepo, FaultProxy, Moto, Pki, Registry, RegistryAuth, RegistryTls, TempDir,
};

const ECR: &str = "123456789012.dkr.ecr.me-central-1.amazonaws.com";
const ROLE: &str = "arn:aws:iam::123456789012:role/image-reflector";
/// A web identity token a test can look for in every output.
const WEB_IDENTITY: &str = "eyJhbGciOiJSUzI1NiJ9.d2ViLWlkZW50aXR5LXMzY3IzdA.c2ln";

struct Ecr {
    moto: Moto,
    reg: Registry,
    pki: Pki,
    dir: TempDir,
    password: String,
}

impl Ecr {
    fn start(tags: &[&str]) -> Ecr {
        let moto = Moto::start();
        let password = moto.ecr_password("me-central-1");
        let dir = TempDir::new("ecr");
        let pki = Pki::generate_for(dir.path(), &[ECR]);
        let auth = || RegistryAuth::Basic {
            user: "AWS".into(),
            password: password.clone(),
        };
        let mut reg = Registry::start(auth());
        reg.publish("app-name", tags, Some(("AWS", &password)));
        reg.restart(auth(), Some(RegistryTls::from_pki(&pki, false)));
        std::fs::write(dir.path().join("token"), WEB_IDENTITY).expect("token file");
        Ecr {
            moto,
            reg,
            pki,
            dir,
            password,
        }
    }

    /// `tagwarden run --once -f file` with IRSA's variables, moto as every
    /// AWS endpoint, and the registry under its ECR name.
    fn run(&self, file: &str, sts: Option<&str>, extra: &[(&str, &str)]) -> Output {
        self.tagwarden(&["run", "--once", "-f", file], sts, extra)
    }

    fn tagwarden(&self, args: &[&str], sts: Option<&str>, extra: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagwarden"));
        cmd.args(args);
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            cmd.env_remove(k);
        }
        let token = self.dir.path().join("token");
        cmd.env("AWS_ROLE_ARN", ROLE)
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "TAGWARDEN_CONNECT_TO",
                format!("{ECR}:443:127.0.0.1:{}", self.reg.port),
            )
            .env("SSL_CERT_FILE", &self.pki.ca_file);
        if let Some(sts) = sts {
            cmd.env("AWS_ENDPOINT_URL_STS", sts);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("run tagwarden")
    }

    /// No known secret in what a user sees.
    fn assert_no_secrets(&self, out: &Output) {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        for secret in [self.password.as_str(), WEB_IDENTITY] {
            assert!(!all.contains(secret), "a secret leaked: {all}");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p.display().to_string()
}

/// The v1 reference's "Complete Example: Dev Environment", as printed, with
/// a GitRepository for it.
fn dev_example(git_url: &str) -> String {
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
---
# apps/dev/image-automation.yaml
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

---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app-name-dev
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: app-name-dev
  filterTags:
    pattern: '^dev-[0-9a-fA-F]{{7,40}}-(?P<run>[0-9]+)$'
    extract: '$run'
  policy:
    numerical:
      order: asc

---
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

        Automation: {{{{ .AutomationObject }}}}
    push:
      branch: main
  update:
    strategy: Setters
    path: ./apps/dev
"#
    )
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: 123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name:dev-abc1234-7 # {\"$imagepolicy\": \"flux-system:app-name-dev\"}\n";

#[test]
fn the_v1_reference_dev_example_scans_ecr_with_irsa_and_pushes() {
    let ecr = Ecr::start(&["dev-abc1234-7", "dev-def5678-12", "dev-0123abc-9", "latest"]);
    let bare = BareRepo::new("main", &[("apps/dev/app.yaml", DEPLOY)]);
    let file = write(ecr.dir.path(), "dev.yaml", &dev_example(&bare.url()));
    let out = ecr.run(&file, None, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("resolved to dev-def5678-12"), "{stdout}");
    assert_eq!(
        bare.show("main", "apps/dev/app.yaml") + "\n",
        DEPLOY.replace("dev-abc1234-7", "dev-def5678-12")
    );
    assert_eq!(
        tagwarden_testkit::git(&bare.path(), &["log", "-1", "--format=%B", "main"]),
        "chore: automated image update\n\nAutomation: flux-system/app-name-auto-dev"
    );
    ecr.assert_no_secrets(&out);
}

#[test]
fn aws_failures_say_what_to_fix_and_leak_nothing() {
    let ecr = Ecr::start(&["dev-abc1234-7"]);
    let repo = |image: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  image: {image}\n  interval: 1m\n  provider: aws\n"
        )
    };
    let file = write(
        ecr.dir.path(),
        "repo.yaml",
        &repo(&format!("{ECR}/app-name")),
    );

    // No credentials anywhere: the chain is named, nothing hangs.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagwarden"));
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(k);
    }
    let started = std::time::Instant::now();
    let out = cmd
        .args(["run", "--once", "-f", &file])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run");
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("spec.provider 'aws': no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), or AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity); instance metadata is disabled (AWS_EC2_METADATA_DISABLED)"),
        "{stdout}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // STS refuses the role (our fault proxy in front of moto answers for
    // STS as AWS does; ECR calls pass through).
    let proxy = FaultProxy::start(ecr.moto.port, |r| {
        if r.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
        {
            Action::Forward
        } else {
            Action::Respond {
                status: 403,
                headers: vec![("Content-Type".into(), "text/xml".into())],
                body: b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>".to_vec(),
            }
        }
    });
    let out = ecr.run(&file, Some(&format!("http://{}", proxy.host())), &[]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("spec.provider 'aws': sts AssumeRoleWithWebIdentity: HTTP 403: role '{ROLE}': AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity")),
        "{stdout}"
    );
    ecr.assert_no_secrets(&out);

    // The registry refuses what ECR issued (another password in htpasswd).
    let mut ecr = ecr;
    ecr.reg.restart(
        RegistryAuth::Basic {
            user: "AWS".into(),
            password: "someone-else".into(),
        },
        Some(RegistryTls::from_pki(&ecr.pki, false)),
    );
    let out = ecr.run(&file, None, &[]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{ECR}: the registry refused the aws credentials of the controller's identity (HTTP 401): check that it may pull 'app-name'")),
        "{stdout}"
    );
    ecr.assert_no_secrets(&out);

    // A host that is not ECR: stalled before any cloud call.
    let file = write(ecr.dir.path(), "ghcr.yaml", &repo("ghcr.io/org/app"));
    let out = ecr.run(&file, None, &[]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("spec.provider: 'aws' logs in to <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn] (or another AWS partition's suffix) or public.ecr.aws only; spec.image is on 'ghcr.io'"),
        "{stdout}"
    );
}

#[test]
fn scan_with_provider_aws_lists_the_tags() {
    let ecr = Ecr::start(&["dev-abc1234-7", "dev-def5678-12"]);
    let image = format!("{ECR}/app-name");
    let out = ecr.tagwarden(&["scan", &image, "--provider", "aws"], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "dev-def5678-12\ndev-abc1234-7\n");
    ecr.assert_no_secrets(&out);
    let out = ecr.tagwarden(&["scan", "ghcr.io/org/app", "--provider", "aws"], None, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--provider aws logs in to <account>.dkr.ecr[-fips]"),
        "{}",
        text(&out.stderr)
    );
}
