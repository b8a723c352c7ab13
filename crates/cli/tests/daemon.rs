//! `tagwarden run` as a daemon: a webhook-triggered update end to end,
//! live manifest edits, metrics, SIGTERM, and a restart that resumes.

mod common;

use common::*;
#[test]
fn webhook_update_live_edits_metrics_sigterm_and_resume() {
    let (s, reg) = Setup::new("daemon");
    let (bare, state) = (&s.bare, &s.state);
    let manifests_dir = &s.manifests_dir;
    let port = free_port();
    let daemon = Daemon::start(manifests_dir, state, port);
    let deployed = |tag: &str| s.deployed(tag);

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
    s.write("<=5.0.1");
    wait_for(
        "the edited policy to apply",
        Duration::from_secs(10),
        || deployed("5.0.1"),
    );

    // The push lands in Git a moment before the daemon records it.
    let pushes = "tagwarden_pushes_total{namespace=\"flux-system\",name=\"flux-system\"} 3";
    wait_for(
        "three pushes: 5.0.1, 5.0.3, back to 5.0.1",
        Duration::from_secs(5),
        || http(port, "GET", "/metrics", "").is_some_and(|(_, m)| m.contains(pushes)),
    );
    let (status, metrics) = http(port, "GET", "/metrics", "").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tagwarden_repository_tags{namespace=\"flux-system\",name=\"podinfo\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagwarden_registry_requests_total{status=\"200\"}"),
        "{metrics}"
    );
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
    let daemon = Daemon::start(manifests_dir, state, port);
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

/// SIGTERM while a webhook-triggered update is in flight: the daemon lets it
/// finish, exits cleanly, leaves no checkout behind, and the store reopens.
#[test]
fn sigterm_mid_update_leaves_no_partial_state() {
    let (s, reg) = Setup::new("daemon-term");
    let (bare, state) = (&s.bare, &s.state);
    let manifests_dir = &s.manifests_dir;
    let line = |tag: &str| s.line(tag);
    let port = free_port();
    let daemon = Daemon::start(manifests_dir, state, port);
    wait_for("/readyz", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let pid = daemon.pid();

    reg.publish("stefanprodan/podinfo", &["5.0.3"], None);
    let (status, _) = http(port, "POST", &hook_path(), "{}").expect("post");
    assert_eq!(status, 200);
    assert!(daemon.stop().success(), "clean exit with work in flight");

    let deployed = bare.show("main", DEPLOY);
    assert!(
        [line("5.0.1"), line("5.0.3")].contains(&deployed),
        "the file is one whole version or the other: {deployed}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("read tmp")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("tagwarden-checkout-{pid}-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "checkouts left behind: {leftovers:?}");

    // The store reopens and the next daemon finishes the job.
    let port = free_port();
    let daemon = Daemon::start(manifests_dir, state, port);
    wait_for("/readyz after restart", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let (status, _) = http(port, "POST", &hook_path(), "{}").expect("post");
    assert_eq!(status, 200);
    wait_for("5.0.3 after restart", Duration::from_secs(10), || {
        bare.show("main", DEPLOY) == line("5.0.3")
    });
    assert!(daemon.stop().success());
}

/// A registry that accepts connections and never answers.
struct Hang {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Hang {
    fn start() -> Hang {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(conn);
            }
        });
        Hang { port, accepted }
    }
}

/// Six ImageRepositories on a registry that never answers (more than the
/// old four slots, sorted before podinfo) do not keep podinfo from being
/// scanned, selected and pushed; SIGTERM with those scans hung exits within
/// `--shutdown-grace` and says what it abandoned.
#[test]
fn hanging_registry_blocks_nothing_and_sigterm_keeps_to_its_grace() {
    let (s, _reg) = Setup::new("daemon-hol");
    let hang = Hang::start();
    let mut hanging = String::new();
    for i in 0..6 {
        hanging.push_str(&format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\n\
             metadata: {{name: app{i}, namespace: flux-system}}\n\
             spec: {{image: \"127.0.0.1:{}/hang/app{i}\", interval: 1h, timeout: 10m}}\n",
            hang.port
        ));
    }
    std::fs::write(s.manifests_dir.join("hanging.yaml"), hanging).expect("write");
    let log = s.state.with_file_name("daemon.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(["run", "-f"])
        .arg(&s.manifests_dir)
        .arg("--state-dir")
        .arg(&s.state)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--shutdown-grace", "2s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start daemon");
    let latency = wait_for("the push to 5.0.1", Duration::from_secs(10), || {
        s.deployed("5.0.1")
    });
    eprintln!("pushed with six scans hung: {latency:?}");
    wait_for("scans hung on the registry", Duration::from_secs(5), || {
        hang.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 4
    });
    // Two scans wait for their host's slots: waiting, not spinning.
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("comm")
            .1
            .split_whitespace()
            .collect();
        // utime and stime, in clock ticks (fields 14 and 15 of stat).
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    let before = cpu(child.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu(child.id()) - before;
    assert!(
        used < 20,
        "the daemon used {used} ticks of CPU in 1s while waiting"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(8) {
            let _ = child.kill();
            panic!("daemon still running 8s after SIGTERM with a 2s grace");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    eprintln!("SIGTERM to exit with hung scans: {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        took >= Duration::from_millis(1900),
        "the grace was kept: {took:?}"
    );
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains("shutdown grace period over: abandoning reconciles in flight"),
        "{log}"
    );
    assert!(log.contains("ImageRepository/flux-system/app0"), "{log}");
    assert!(log.contains("✔ stopped"), "{log}");
}

/// A Receiver resource `name: "*"` without `matchLabels` is an error in
/// Flux; the webhook says so (400, Flux's message) instead of silently
/// selecting nothing, and still reconciles the resources that are sound.
#[test]
fn a_receiver_wildcard_without_match_labels_is_reported() {
    let (s, _reg) = Setup::new("wildcard");
    let text = std::fs::read_to_string(&s.file).expect("read manifests");
    let one = "    - kind: ImageRepository\n      name: podinfo\n";
    assert!(text.contains(one));
    std::fs::write(
        &s.file,
        text.replace(
            one,
            &format!("{one}    - kind: ImagePolicy\n      name: \"*\"\n"),
        ),
    )
    .expect("write manifests");
    let port = free_port();
    let _daemon = Daemon::start(&s.manifests_dir, &s.state, port);
    wait_for("/readyz", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let (status, body) = http(port, "POST", &hook_path(), "{}").expect("post");
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "reconciling 1 objects; spec.resources[1] (ImagePolicy): matchLabels field not set when using wildcard '*' as name"
        )
    );
}
