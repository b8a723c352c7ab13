//! `tagwarden get|suspend|resume|reconcile image …` against a real daemon
//! (through its API: it holds the store) and after it stopped (the store).

mod common;

use common::*;
/// `tagwarden ARGS --state-dir STATE`: (success, stdout, stderr).
fn tw(state: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run tagwarden");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The trimmed cells of the row named `name` in a `get` table.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells[0] == name)
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
}

fn get_all(state: &Path) -> String {
    let (ok, out, err) = tw(state, &["get", "image", "all"]);
    assert!(ok, "{err}");
    out
}

#[test]
fn get_suspend_resume_reconcile_with_and_without_the_daemon() {
    let (s, reg) = Setup::new("get");
    let (image, state) = (&s.image, &s.state);
    let manifests_dir = &s.manifests_dir;
    let port = free_port();
    let daemon = Daemon::start(manifests_dir, state, port);
    let deployed = |tag: &str| s.deployed(tag);
    wait_for("/readyz", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    wait_for("the first update", Duration::from_secs(10), || {
        deployed("5.0.1")
    });
    assert_eq!(
        std::fs::read_to_string(state.join("daemon.addr")).expect("daemon.addr"),
        format!("127.0.0.1:{port}")
    );

    // The control API is on a socket only this user can open, never on the
    // public listener.
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let socket = std::fs::symlink_metadata(state.join("daemon.sock")).expect("daemon.sock");
    assert!(socket.file_type().is_socket());
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(state).expect("state dir");
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    for (method, path) in [
        ("GET", "/api/v1/objects"),
        (
            "POST",
            "/api/v1/suspend/ImageRepository/flux-system/podinfo",
        ),
        (
            "POST",
            "/api/v1/reconcile/ImageUpdateAutomation/flux-system/flux-system",
        ),
    ] {
        let (status, body) = http(port, method, path, "").expect("api on tcp");
        assert_eq!(
            (status, body.as_str()),
            (
                404,
                "not found: the control API is served on the daemon's unix socket only"
            ),
            "{method} {path}"
        );
    }

    // While the daemon runs (and holds the store's lock): its API.
    let all = get_all(state);
    let header = all.lines().next().expect("header");
    assert_eq!(
        header.split('\t').map(str::trim).collect::<Vec<_>>(),
        ["NAME", "LAST SCAN", "SUSPENDED", "READY", "MESSAGE"]
    );
    let repo = row(&all, "imagerepository/podinfo");
    assert_eq!(
        repo[2..],
        ["False", "True", "successful scan: found 2 tags"]
    );
    assert!(repo[1].ends_with('Z') && repo[1].len() == 20, "{repo:?}");
    let policy = row(&all, "imagepolicy/podinfo");
    assert_eq!(policy[1..4], [image.as_str(), "5.0.1", "True"]);
    assert_eq!(row(&all, "imageupdateautomation/flux-system")[3], "True");

    // Suspended: SUSPENDED True, and neither a webhook nor reconcile scans.
    let (ok, _, err) = tw(state, &["suspend", "image", "repository", "podinfo"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("► suspending image repository podinfo in flux-system namespace\n✔ image repository suspended"),
        "{err}"
    );
    let (_, out, _) = tw(state, &["get", "image", "repository", "podinfo"]);
    let suspended = row(&out, "podinfo");
    assert_eq!(suspended[2], "True", "{out}");
    reg.publish("stefanprodan/podinfo", &["5.0.3"], None);
    let (status, body) = http(port, "POST", &hook_path(), "{}").expect("hook");
    assert_eq!(status, 200, "{body}");
    let (ok, _, err) = tw(state, &["reconcile", "image", "repository", "podinfo"]);
    assert!(!ok && err.contains("✗ resource is suspended"), "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, out, _) = tw(state, &["get", "image", "repository", "podinfo"]);
    assert_eq!(row(&out, "podinfo"), suspended, "no scan while suspended");
    assert!(deployed("5.0.1"));

    // Resumed: reconcile scans at once and says so.
    let (ok, _, err) = tw(state, &["resume", "image", "repository", "podinfo"]);
    assert!(ok, "{err}");
    assert!(err.contains("✔ image repository resumed"), "{err}");
    let (ok, _, err) = tw(state, &["reconcile", "image", "repository", "podinfo"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("► annotating ImageRepository podinfo in flux-system namespace"),
        "{err}"
    );
    assert!(
        err.contains("◎ waiting for ImageRepository reconciliation"),
        "{err}"
    );
    assert!(
        err.contains("✔ ImageRepository reconciliation completed\n✔ scan fetched 3 tags"),
        "{err}"
    );
    wait_for("the update to 5.0.3", Duration::from_secs(10), || {
        deployed("5.0.3")
    });
    let (ok, _, err) = tw(state, &["reconcile", "image", "update", "flux-system"]);
    assert!(
        ok && err.contains("✔ ImageUpdateAutomation reconciliation completed"),
        "{err}"
    );

    // Settled rows, then SIGTERM: the same rows from the store.
    let mut before = get_all(state);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = get_all(state);
        if now == before {
            break;
        }
        before = now;
    }
    assert_eq!(row(&before, "imagepolicy/podinfo")[2], "5.0.3");
    assert!(daemon.stop().success());
    assert!(!state.join("daemon.addr").exists(), "removed on clean stop");
    assert!(!state.join("daemon.sock").exists(), "removed on clean stop");
    assert_eq!(get_all(state), before);

    // No daemon: suspend writes the store, reconcile refuses.
    let (ok, _, err) = tw(state, &["suspend", "image", "repository", "podinfo"]);
    assert!(ok && err.contains("✔ image repository suspended"), "{err}");
    let (ok, _, err) = tw(state, &["reconcile", "image", "repository", "podinfo"]);
    assert!(!ok && err.contains("✗ the daemon is not running"), "{err}");
    let (_, out, _) = tw(state, &["get", "image", "repository", "-A"]);
    let cells = row(&out.replace("flux-system\t", ""), "podinfo");
    assert_eq!(cells[2], "True", "{out}");

    // A restarted daemon keeps the flag: suspended, and still ready.
    let port = free_port();
    let daemon = Daemon::start(manifests_dir, state, port);
    wait_for("/readyz after restart", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let (_, out, _) = tw(state, &["get", "image", "repository", "podinfo"]);
    assert_eq!(row(&out, "podinfo")[2], "True", "{out}");
    assert!(daemon.stop().success());
}

/// `flux get images all --all-namespaces` (the guide) and `flux get images
/// policy` (the lab): `images` is `image` for every command taking it.
#[test]
fn images_is_an_alias_of_image() {
    let state = std::env::temp_dir().join(format!("tagwarden-images-alias-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("mkdir");
    let singular = tw(&state, &["get", "image", "all", "--all-namespaces"]);
    let plural = tw(&state, &["get", "images", "all", "--all-namespaces"]);
    assert!(plural.0, "{}", plural.2);
    assert_eq!(plural, singular);
    assert_eq!(plural.2, "✗ no image automation objects found\n");
    assert!(tw(&state, &["get", "images", "policy"]).0);
    for verb in ["suspend", "resume", "reconcile"] {
        let (ok, _, err) = tw(&state, &[verb, "images", "repository", "podinfo"]);
        assert!(!ok);
        assert!(!err.contains("unrecognized subcommand"), "{verb}: {err}");
        let (_, _, singular) = tw(&state, &[verb, "image", "repository", "podinfo"]);
        assert_eq!(err, singular, "{verb}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(["create", "images", "repository", "podinfo"])
        .args([
            "--image",
            "ghcr.io/stefanprodan/podinfo",
            "--interval",
            "1m",
            "--export",
        ])
        .output()
        .expect("run tagwarden");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: ImageRepository"));
    std::fs::remove_dir_all(&state).expect("cleanup");
}
