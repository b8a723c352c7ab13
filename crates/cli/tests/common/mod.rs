//! Shared by the daemon tests: the manifests, a daemon process, raw HTTP.
// Each test binary uses its own subset of these.
#![allow(dead_code, unused_imports)]

pub use std::io::{Read, Write};
pub use std::net::TcpStream;
pub use std::path::Path;
pub use std::process::{Child, Command, Stdio};
pub use std::time::{Duration, Instant};
pub use tagwarden_testkit::{BareRepo, Registry, RegistryAuth, TempDir, free_port};

pub const DEPLOY: &str = "clusters/my-cluster/podinfo-deployment.yaml";

pub fn manifests(image: &str, git_url: &str, range: &str) -> String {
    format!(
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: flux-system, namespace: flux-system}}
spec: {{interval: 1h, ref: {{branch: main}}, url: "{git_url}"}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: podinfo, namespace: flux-system}}
spec: {{image: "{image}", interval: 1h}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: podinfo, namespace: flux-system}}
spec: {{imageRepositoryRef: {{name: podinfo}}, policy: {{semver: {{range: "{range}"}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: flux-system, namespace: flux-system}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: flux-system}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit: {{author: {{name: fluxcdbot, email: fluxcdbot@users.noreply.github.com}}}}
    push: {{branch: main}}
  update: {{path: ./clusters/my-cluster, strategy: Setters}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: podinfo-hook, namespace: flux-system}}
spec:
  type: generic
  secretRef: {{name: webhook-token}}
  resources:
    - kind: ImageRepository
      name: podinfo
---
apiVersion: v1
kind: Secret
metadata: {{name: webhook-token, namespace: flux-system}}
stringData: {{token: s3cr3t-t0ken}}
"#
    )
}

pub struct Daemon(Child);

impl Daemon {
    pub fn start(dir: &Path, state: &Path, port: u16) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
            .args(["run", "-f"])
            .arg(dir)
            .arg("--state-dir")
            .arg(state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon");
        Daemon(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        out.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string(),
    ))
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

pub fn hook_path() -> String {
    tagwarden_receivers::hook_path("s3cr3t-t0ken", "podinfo-hook", "flux-system")
}

/// A registry with podinfo 5.0.0 and 5.0.1, a Git repository whose
/// Deployment is marked at 5.0.0, the manifests (range 5.0.x) in a folder
/// of their own, and a state folder. The registry comes separately so a
/// test can take it away.
pub struct Setup {
    pub image: String,
    pub bare: BareRepo,
    pub manifests_dir: std::path::PathBuf,
    pub file: std::path::PathBuf,
    pub state: std::path::PathBuf,
    _dir: TempDir,
}

impl Setup {
    pub fn new(prefix: &str) -> (Setup, Registry) {
        let reg = Registry::start(RegistryAuth::None);
        reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.1"], None);
        let image = format!("{}/stefanprodan/podinfo", reg.host());
        let dir = TempDir::new(prefix);
        let manifests_dir = dir.path().join("flux");
        std::fs::create_dir_all(&manifests_dir).expect("mkdir");
        let bare = BareRepo::new(
            "main",
            &[(DEPLOY, &format!("{}\n", marked_line(&image, "5.0.0")))],
        );
        let s = Setup {
            bare,
            file: manifests_dir.join("automation.yaml"),
            state: dir.path().join("state"),
            manifests_dir,
            image,
            _dir: dir,
        };
        s.write("5.0.x");
        (s, reg)
    }

    /// The marked line at `tag`.
    pub fn line(&self, tag: &str) -> String {
        marked_line(&self.image, tag)
    }

    /// Whether the repository's Deployment is at `tag`.
    pub fn deployed(&self, tag: &str) -> bool {
        self.bare.show("main", DEPLOY) == self.line(tag)
    }

    /// (Re)writes the manifests with the policy's semver `range`.
    pub fn write(&self, range: &str) {
        std::fs::write(&self.file, manifests(&self.image, &self.bare.url(), range))
            .expect("write manifests");
    }
}

fn marked_line(image: &str, tag: &str) -> String {
    format!("image: {image}:{tag} # {{\"$imagepolicy\": \"flux-system:podinfo\"}}")
}
