//! The daemon's two listeners against real sockets: the control API only on
//! its Unix socket (0600), slow connections closed, webhooks rate limited.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tagwarden_daemon::{Config, HttpLimits, SOCKET_FILE, run};
use tagwarden_store::MemoryStore;
use tagwarden_testkit::{TempDir, free_port};

/// Everything the daemons of this test binary logged.
static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> String {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_target(false)
            .try_init();
    });
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// A daemon on a thread, with no manifests; stops when dropped.
struct Daemon {
    port: u16,
    state: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

fn config(dir: &Path, port: u16, http: HttpLimits) -> Config {
    let manifests = dir.join("flux");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    Config {
        paths: vec![manifests],
        listen: Some(([127, 0, 0, 1], port).into()),
        state_dir: Some(dir.join("state")),
        http,
        ..Config::default()
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

impl Daemon {
    fn start(http: HttpLimits, prepare: impl FnOnce(&Path)) -> Daemon {
        Daemon::start_with(|c, _| {
            c.http = http;
            if let Some(state) = &c.state_dir {
                prepare(state);
            }
        })
    }

    /// With `modify` applied to the config (and the temporary dir).
    fn start_with(modify: impl FnOnce(&mut Config, &Path)) -> Daemon {
        Daemon::start_on(Arc::new(MemoryStore::default()), modify)
    }

    /// Over `store`, with `modify` applied to the config.
    fn start_on(
        store: Arc<dyn tagwarden_store::Store>,
        modify: impl FnOnce(&mut Config, &Path),
    ) -> Daemon {
        log();
        let dir = TempDir::new("daemon-http");
        let port = free_port();
        let mut config = config(dir.path(), port, HttpLimits::default());
        modify(&mut config, dir.path());
        let state = dir.path().join("state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let stop = async {
                let _ = rx.await;
            };
            block_on(run(config, store, stop)).expect("daemon runs");
        });
        let started = Instant::now();
        while get(port, "/healthz").is_none_or(|(s, _)| s != 200) {
            assert!(started.elapsed() < Duration::from_secs(10), "daemon not up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            port,
            state,
            stop: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn exchange(mut s: impl Read + Write, request: &str) -> Option<(u16, String)> {
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out))
}

fn request(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// (status, whole answer) over TCP.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    exchange(
        TcpStream::connect(("127.0.0.1", port)).ok()?,
        &request("GET", path),
    )
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn control_api_only_on_the_private_socket() {
    let d = Daemon::start(HttpLimits::default(), |state| {
        // A group-readable state dir, and a stale socket from a killed run.
        std::fs::create_dir_all(state).expect("mkdir");
        std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        drop(std::os::unix::net::UnixListener::bind(state.join(SOCKET_FILE)).expect("bind"));
    });
    let socket = d.state.join(SOCKET_FILE);
    let meta = std::fs::symlink_metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(&d.state).expect("state dir");
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);

    // TCP: no API, whatever the method.
    for (method, path) in [
        ("GET", "/api/v1/objects"),
        (
            "POST",
            "/api/v1/suspend/ImageRepository/flux-system/podinfo",
        ),
        ("POST", "/api/v1/resume/ImageRepository/flux-system/podinfo"),
    ] {
        let s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
        let (status, answer) = exchange(s, &request(method, path)).expect("answer");
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(
            body(&answer),
            "not found: the control API is served on the daemon's unix socket only"
        );
    }
    let (status, _) = get(d.port, "/metrics").expect("metrics");
    assert_eq!(status, 200, "metrics stay public");

    // The socket: the API.
    let s = UnixStream::connect(&socket).expect("connect socket");
    let (status, answer) = exchange(s, &request("GET", "/api/v1/objects")).expect("answer");
    assert_eq!((status, body(&answer)), (200, "[]"), "{answer}");
    let s = UnixStream::connect(&socket).expect("connect socket");
    let (status, answer) = exchange(
        s,
        &request(
            "POST",
            "/api/v1/suspend/ImageRepository/flux-system/podinfo",
        ),
    )
    .expect("answer");
    assert_eq!(
        (status, body(&answer)),
        (404, "ImageRepository 'flux-system/podinfo' not found")
    );

    // A second daemon on the same state dir does not take the socket over.
    let dir = TempDir::new("daemon-second");
    let mut second = config(dir.path(), free_port(), HttpLimits::default());
    second.state_dir = Some(d.state.clone());
    let e = block_on(run(
        second,
        Arc::new(MemoryStore::default()),
        std::future::pending(),
    ))
    .expect_err("socket in use");
    assert_eq!(
        e.to_string(),
        format!(
            "control socket {}: another daemon is listening on it (same --state-dir?)",
            socket.display()
        )
    );
    drop(d);
    assert!(!socket.exists(), "removed on stop");
}

#[test]
fn a_symlink_or_a_file_at_the_socket_path_is_refused() {
    let dir = TempDir::new("daemon-symlink");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep me").expect("write");
    let socket = state.join(SOCKET_FILE);
    std::os::unix::fs::symlink(&target, &socket).expect("symlink");
    let e = block_on(run(
        config(dir.path(), free_port(), HttpLimits::default()),
        Arc::new(MemoryStore::default()),
        std::future::pending(),
    ))
    .expect_err("symlink");
    assert_eq!(
        e.to_string(),
        format!(
            "control socket {}: is a symlink: refusing to replace it",
            socket.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");

    std::fs::remove_file(&socket).expect("rm");
    std::fs::write(&socket, "").expect("write");
    let e = block_on(run(
        config(dir.path(), free_port(), HttpLimits::default()),
        Arc::new(MemoryStore::default()),
        std::future::pending(),
    ))
    .expect_err("regular file");
    assert_eq!(
        e.to_string(),
        format!(
            "control socket {}: exists and is not a socket: refusing to replace it",
            socket.display()
        )
    );
}

/// Slowloris: connections that never finish their headers are closed after
/// the header timeout, and while they hold every slot a real request waits
/// (in the backlog) instead of being refused.
#[test]
fn slow_connections_are_closed_and_bounded() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(1),
        max_connections: 4,
        ..HttpLimits::default()
    };
    let d = Daemon::start(limits, |_| {});
    let started = Instant::now();
    let slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("write");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s
        })
        .collect();
    // Let the server accept all four before the healthy one queues.
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = get(d.port, "/healthz").expect("healthz");
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(900),
        "served before a slot was free: {waited:?}"
    );
    for mut s in slow {
        let mut rest = Vec::new();
        // EOF (or a reset) once the server gave up on the headers.
        let _ = s.read_to_end(&mut rest);
        let closed = started.elapsed();
        assert!(
            closed < Duration::from_secs(4),
            "slow connection still open after {closed:?}"
        );
    }

    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let opened = Instant::now();
    let mut answer = String::new();
    let _ = idle.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let closed = opened.elapsed();
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(3),
        "idle keep-alive connection closed after {closed:?}"
    );
}

#[test]
fn a_burst_of_webhooks_gets_429_with_retry_after() {
    let limits = HttpLimits {
        hook_rate: 0.5,
        hook_burst: 5,
        ..HttpLimits::default()
    };
    let d = Daemon::start(limits, |_| {});
    let post = || {
        let s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
        exchange(s, &request("POST", "/hook/0000")).expect("answer")
    };
    for i in 0..5 {
        let (status, answer) = post();
        assert_eq!(status, 404, "request {i} within the burst: {answer}");
    }
    let (status, answer) = post();
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 2\r\n"),
        "{answer}"
    );
    assert_eq!(
        body(&answer),
        "too many webhook requests from 127.0.0.1: retry after 2s"
    );
    // Only webhooks are limited.
    let (status, _) = get(d.port, "/healthz").expect("healthz");
    assert_eq!(status, 200);
}

/// A scan that hangs past the daemon's hard deadline is abandoned: counted
/// as a failure, not Ready, its slot free, while the registry never answered.
#[test]
fn a_hung_scan_is_abandoned_at_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    let d = Daemon::start_with(|c, dir| {
        c.max_reconcile = Duration::from_secs(1);
        std::fs::write(
            dir.join("flux/hang.yaml"),
            format!(
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                 metadata: {{name: hung, namespace: flux-system}}\n\
                 spec: {{image: \"127.0.0.1:{hang}/app\", interval: 1h, timeout: 10m}}\n"
            ),
        )
        .expect("write");
    });
    let started = Instant::now();
    let failed = "tagwarden_reconcile_total{kind=\"ImageRepository\",result=\"failure\"} 1";
    loop {
        let (_, metrics) = get(d.port, "/metrics").expect("metrics");
        if metrics.contains(failed) {
            assert!(
                metrics.contains(
                    "tagwarden_ready{kind=\"ImageRepository\",namespace=\"flux-system\",name=\"hung\"} 0"
                ),
                "{metrics}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no abandoned scan after {:?}: {metrics}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let log = log();
    let line = log
        .lines()
        .find(|l| l.contains("name=hung") && l.contains("abandoned"))
        .unwrap_or_else(|| panic!("no abandoned line in:\n{log}"));
    assert!(
        line.contains("WARN reconcile did not finish within 1s: abandoned kind=\"ImageRepository\" namespace=flux-system name=hung deadline_secs=1.0"),
        "{line}"
    );
}

/// An engine error (here an unreadable status record) is that object's
/// failure, retried with backoff: the other objects reconcile and the
/// daemon keeps serving.
#[test]
fn an_engine_error_fails_one_object_not_the_daemon() {
    let reg = tagwarden_testkit::Registry::start(tagwarden_testkit::RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    let store = Arc::new(MemoryStore::default());
    tagwarden_store::Store::put(
        &*store,
        "status/ImageRepository/flux-system/broken",
        b"{not json",
    )
    .expect("seed a corrupt record");
    let host = reg.host();
    let d = Daemon::start_on(store, |_, dir| {
        std::fs::write(
            dir.join("flux/repos.yaml"),
            format!(
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                 metadata: {{name: broken, namespace: flux-system}}\n\
                 spec: {{image: \"{host}/team/app\", interval: 1h}}\n---\n\
                 apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
                 metadata: {{name: good, namespace: flux-system}}\n\
                 spec: {{image: \"{host}/team/app\", interval: 1h}}\n"
            ),
        )
        .expect("write");
    });
    let started = Instant::now();
    let good =
        "tagwarden_ready{kind=\"ImageRepository\",namespace=\"flux-system\",name=\"good\"} 1";
    let broken =
        "tagwarden_ready{kind=\"ImageRepository\",namespace=\"flux-system\",name=\"broken\"} 0";
    // Retried with backoff (0.75 s, 1.5 s, …): at least twice within 3 s.
    let retried = "tagwarden_reconcile_total{kind=\"ImageRepository\",result=\"failure\"} 2";
    loop {
        let (_, metrics) = get(d.port, "/metrics").expect("the daemon still serves");
        if metrics.contains(good) && metrics.contains(broken) && metrics.contains(retried) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "after {:?}: {metrics}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log();
    let line = log
        .lines()
        .find(|l| l.contains("name=broken") && l.contains("reconcile failed"))
        .unwrap_or_else(|| panic!("no failure line in:\n{log}"));
    assert!(
        line.contains(
            "state record status/ImageRepository/flux-system/broken unreadable: key must be a string"
        ),
        "{line}"
    );
}

/// The issue-10 starvation case against real servers: slow scans of two
/// registries (every request held 4 s) fill every regular scan slot; a
/// webhook for a fast registry still reaches its pushed commit at once,
/// through the slot only triggered work may use.
#[test]
fn a_webhook_for_a_fast_registry_does_not_wait_behind_slow_scans() {
    use tagwarden_testkit::{Action, BareRepo, FaultProxy, Registry, RegistryAuth};
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/fast", &["1.0.0"], None);
    reg.publish("team/slow", &["1.0.0"], None);
    let slow = |_: &tagwarden_testkit::Request| {
        std::thread::sleep(Duration::from_secs(4));
        Action::Forward
    };
    let slow_a = FaultProxy::start(reg.port, slow);
    let slow_b = FaultProxy::start(reg.port, slow);
    let bare = BareRepo::new(
        "main",
        &[(
            "deploy/app.yaml",
            &format!(
                "image: {}/team/fast:1.0.0 # {{\"$imagepolicy\": \"flux-system:fast\"}}\n",
                reg.host()
            ),
        )],
    );
    let token = "hook-token";
    let mut manifests = format!(
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: repo, namespace: flux-system}}
spec: {{interval: 1h, ref: {{branch: main}}, url: "{url}"}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: fast, namespace: flux-system}}
spec: {{image: "{host}/team/fast", interval: 1h}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: fast, namespace: flux-system, labels: {{app: fast}}}}
spec: {{imageRepositoryRef: {{name: fast}}, policy: {{semver: {{range: ">=1.0.0"}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: fast, namespace: flux-system}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: repo}}
  policySelector: {{matchLabels: {{app: fast}}}}
  git: {{commit: {{author: {{name: bot, email: bot@example.com}}}}, push: {{branch: main}}}}
  update: {{path: ./deploy, strategy: Setters}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: hook, namespace: flux-system}}
spec: {{type: generic, secretRef: {{name: hook-token}}, resources: [{{kind: ImageRepository, name: fast}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: hook-token, namespace: flux-system}}
stringData: {{token: {token}}}
"#,
        url = bare.url(),
        host = reg.host()
    );
    for i in 0..30 {
        let host = if i % 2 == 0 {
            slow_a.host()
        } else {
            slow_b.host()
        };
        manifests.push_str(&format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
             metadata: {{name: slow-{i}, namespace: flux-system}}\n\
             spec: {{image: \"{host}/team/slow\", interval: 1h}}\n"
        ));
    }
    let d = Daemon::start_with(|c, dir| {
        // 4 regular scan slots, 2 per host: both slow registries fill them.
        c.concurrency = 2;
        std::fs::write(dir.join("flux/all.yaml"), &manifests).expect("write");
    });
    // The first pass: the fast chain is up to date, the slow scans run on.
    let started = Instant::now();
    let up_to_date =
        "tagwarden_ready{kind=\"ImageUpdateAutomation\",namespace=\"flux-system\",name=\"fast\"} 1";
    loop {
        let (_, metrics) = get(d.port, "/metrics").expect("metrics");
        if metrics.contains(up_to_date) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{metrics}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let slow_requests = slow_a.requests().len() + slow_b.requests().len();
    assert!(
        slow_requests >= 4,
        "the slow scans are running: {slow_requests}"
    );

    reg.publish("team/fast", &["1.1.0"], None);
    let path = tagwarden_receivers::hook_path(token, "hook", "flux-system");
    let posted = Instant::now();
    let (status, answer) = exchange(
        TcpStream::connect(("127.0.0.1", d.port)).expect("connect"),
        &request("POST", &path),
    )
    .expect("answer");
    assert_eq!(status, 200, "{answer}");
    let wanted = format!("{}/team/fast:1.1.0 #", reg.host());
    loop {
        let head = bare.show("main", "deploy/app.yaml");
        if head.contains(&wanted) {
            break;
        }
        assert!(
            posted.elapsed() < Duration::from_secs(3),
            "no push within 3 s of the webhook (a slow scan holds a slot for 8 s): {head}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = posted.elapsed();
    println!("webhook -> pushed commit with every regular scan slot busy: {took:?}");
    assert!(
        slow_a.requests().len() + slow_b.requests().len() < 60,
        "the slow scans were still running"
    );
}

/// Manifest files as an object source: an edited spec is a new generation
/// (`observedGeneration`), an edited `reconcile.fluxcd.io/requestedAt` runs
/// the object at once without one and shows as `lastHandledReconcileAt`.
#[test]
fn file_edits_reach_the_status_as_generation_and_reconcile_requests() {
    let reg = tagwarden_testkit::Registry::start(tagwarden_testkit::RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let store = Arc::new(MemoryStore::default());
    let manifest = |annotations: &str, interval: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
             metadata: {{name: app, namespace: flux-system{annotations}}}\n\
             spec: {{image: \"{}/team/app\", interval: {interval}}}\n",
            reg.host()
        )
    };
    let file = std::cell::RefCell::new(PathBuf::new());
    let d = Daemon::start_on(store.clone(), |c, dir| {
        c.reload_every = Duration::from_millis(50);
        let f = dir.join("flux/app.yaml");
        std::fs::write(&f, manifest("", "1h")).expect("write");
        *file.borrow_mut() = f;
    });
    let status = || -> Option<serde_json::Value> {
        let bytes = tagwarden_store::Store::get(&*store, "status/ImageRepository/flux-system/app")
            .expect("read")?;
        serde_json::from_slice(&bytes).ok()
    };
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let started = Instant::now();
        loop {
            if let Some(s) = status()
                && ok(&s)
            {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {:?}",
                status()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = wait_for("first scan", &|s| s["lastScanResult"]["tagCount"] == 1);
    assert_eq!(first["observedGeneration"], 1);
    assert!(first.get("lastHandledReconcileAt").is_none(), "{first}");

    let asked = ", annotations: {reconcile.fluxcd.io/requestedAt: '2026-12-02T02:00:00Z'}";
    std::fs::write(&*file.borrow(), manifest(asked, "1h")).expect("annotate");
    let handled = wait_for("reconcile request", &|s| {
        s["lastHandledReconcileAt"] == "2026-12-02T02:00:00Z"
    });
    assert_eq!(
        handled["observedGeneration"], 1,
        "an annotation is no new generation"
    );
    assert_eq!(handled["conditions"][0]["type"], "Ready");
    assert_eq!(handled["conditions"][0]["status"], "True");

    std::fs::write(&*file.borrow(), manifest(asked, "2h")).expect("edit the spec");
    let edited = wait_for("new generation", &|s| s["observedGeneration"] == 2);
    assert_eq!(edited["conditions"][0]["observedGeneration"], 2);
    assert_eq!(edited["lastHandledReconcileAt"], "2026-12-02T02:00:00Z");
    drop(d);
}

/// A manifest removed from the files takes its per-object series with it:
/// they used to stay in /metrics for as long as the daemon ran.
#[test]
fn a_removed_object_s_metrics_go_with_it() {
    let reg = tagwarden_testkit::Registry::start(tagwarden_testkit::RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let host = reg.host();
    let repo = |name: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
             metadata: {{name: {name}, namespace: flux-system}}\n\
             spec: {{image: \"{host}/team/app\", interval: 1h}}\n"
        )
    };
    let file = std::cell::RefCell::new(PathBuf::new());
    let d = Daemon::start_with(|c, dir| {
        c.reload_every = Duration::from_millis(50);
        let f = dir.join("flux/repos.yaml");
        std::fs::write(&f, format!("{}---\n{}", repo("kept"), repo("removed"))).expect("write");
        *file.borrow_mut() = f;
    });
    let series = |name: &str| {
        format!(
            "tagwarden_ready{{kind=\"ImageRepository\",namespace=\"flux-system\",name=\"{name}\"}} 1"
        )
    };
    let wait = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        loop {
            let (_, metrics) = get(d.port, "/metrics").expect("metrics");
            if ok(&metrics) {
                return metrics;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {metrics}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("both scanned", &|m| {
        m.contains(&series("kept")) && m.contains(&series("removed"))
    });
    std::fs::write(&*file.borrow(), repo("kept")).expect("remove one");
    let after = wait("the removed one's series gone", &|m| {
        !m.contains("name=\"removed\"")
    });
    assert!(after.contains(&series("kept")), "{after}");
    assert!(
        after.contains("gotk_reconcile_duration_seconds_count{kind=\"ImageRepository\",namespace=\"flux-system\",name=\"kept\"}"),
        "{after}"
    );
}
