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
