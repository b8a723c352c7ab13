//! `tagwarden run` as a daemon: a webhook-triggered update end to end,
//! live manifest edits, metrics, SIGTERM, and a restart that resumes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tagwarden_testkit::{BareRepo, Registry, RegistryAuth, TempDir, free_port};

const DEPLOY: &str = "clusters/my-cluster/podinfo-deployment.yaml";

fn manifests(image: &str, git_url: &str, range: &str) -> String {
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

struct Daemon(Child);

impl Daemon {
    fn start(dir: &Path, state: &Path, port: u16) -> Daemon {
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

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
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

fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
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

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn hook_path() -> String {
    tagwarden_receivers::hook_path("s3cr3t-t0ken", "podinfo-hook", "flux-system")
}

#[test]
fn webhook_update_live_edits_metrics_sigterm_and_resume() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.1"], None);
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let line =
        |tag: &str| format!("image: {image}:{tag} # {{\"$imagepolicy\": \"flux-system:podinfo\"}}");
    let bare = BareRepo::new("main", &[(DEPLOY, &format!("{}\n", line("5.0.0")))]);
    let dir = TempDir::new("daemon");
    let manifests_dir = dir.path().join("flux");
    std::fs::create_dir_all(&manifests_dir).expect("mkdir");
    let file = manifests_dir.join("automation.yaml");
    std::fs::write(&file, manifests(&image, &bare.url(), "5.0.x")).expect("write");
    let state = dir.path().join("state");
    let port = free_port();
    let daemon = Daemon::start(&manifests_dir, &state, port);
    let deployed = |tag: &str| bare.show("main", DEPLOY) == line(tag);

    wait_for("/readyz", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    wait_for("the first update to 5.0.1", Duration::from_secs(10), || {
        deployed("5.0.1")
    });

    // A new tag and a webhook: updated at once, not after the 1h interval.
    reg.publish("stefanprodan/podinfo", &["5.0.3"], None);
    let (status, _) = http(port, "POST", "/hook/0000", "{}").expect("post");
    assert_eq!(status, 404, "unknown hook path");
    let (status, body) = http(port, "POST", &hook_path(), "{}").expect("post");
    assert_eq!(status, 200, "{body}");
    let latency = wait_for(
        "the webhook update to 5.0.3",
        Duration::from_secs(5),
        || deployed("5.0.3"),
    );
    eprintln!("webhook to pushed commit: {latency:?}");

    // A live edit of the manifests: the policy now wants 5.0.1 at most.
    std::fs::write(&file, manifests(&image, &bare.url(), "<=5.0.1")).expect("edit");
    wait_for(
        "the edited policy to apply",
        Duration::from_secs(10),
        || deployed("5.0.1"),
    );

    let (status, metrics) = http(port, "GET", "/metrics", "").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "tagwarden_reconcile_total{kind=\"ImageUpdateAutomation\",result=\"success\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "tagwarden_ready{kind=\"ImagePolicy\",namespace=\"flux-system\",name=\"podinfo\"} 1"
        ),
        "{metrics}"
    );

    assert!(daemon.stop().success(), "SIGTERM is a clean stop");
    let commits = bare.log("main", "%H").len();

    // Restart: resumes from the store (the repository was scanned within
    // its interval, so the registry is not needed), nothing new to push.
    drop(reg);
    let port = free_port();
    let daemon = Daemon::start(&manifests_dir, &state, port);
    wait_for("/readyz after restart", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let (_, metrics) = http(port, "GET", "/metrics", "").expect("metrics");
    assert!(
        !metrics.contains("tagwarden_reconcile_total{kind=\"ImageRepository\""),
        "no rescan on restart: {metrics}"
    );
    assert!(daemon.stop().success());
    assert_eq!(bare.log("main", "%H").len(), commits);
}
