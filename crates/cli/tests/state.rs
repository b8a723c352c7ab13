//! What `run --once` leaves on the machine and what it says about it:
//! credentials in a GitRepository URL never leave the clone, checkouts are
//! private, the state dir is shared safely between runs.

use std::path::Path;
use std::process::{Command, Output};
use tagwarden_testkit::{BareRepo, GitHttpServer, Registry, RegistryAuth, TempDir};

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

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n          image: IMAGE:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

fn setup(reg: &Registry) -> (String, BareRepo) {
    reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.3"], None);
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let bare = BareRepo::new(
        "main",
        &[(
            "clusters/my-cluster/deploy.yaml",
            &DEPLOYMENT.replace("IMAGE", &image),
        )],
    );
    tagwarden_testkit::git(&bare.path(), &["config", "http.receivepack", "true"]);
    (image, bare)
}

/// Every file under `dir`, read as bytes.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

#[test]
fn credentials_in_the_git_url_reach_no_output_and_no_state() {
    let reg = Registry::start(RegistryAuth::None);
    let (image, bare) = setup(&reg);
    let server = GitHttpServer::start(bare.root(), "flux", "gitpass");
    let secret = "Wr0ngS3cretToken";
    let url = server
        .url("repo.git")
        .replacen("http://", &format!("http://flux:{secret}@"), 1);
    let dir = TempDir::new("redact");
    let file = dir.path().join("flux.yaml");
    std::fs::write(
        &file,
        tagwarden_testkit::seed::podinfo_manifests(&url, &image, "", ""),
    )
    .expect("write");
    let state = dir.path().join("state");
    let out = run(&[
        "--once",
        "-v",
        "-f",
        file.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "wrong password must fail: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ImageUpdateAutomation"))
        .expect("automation line");
    assert!(line.contains("False"), "{line}");
    for (what, s) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!s.contains(secret), "{what} shows the secret:\n{s}");
    }
    let stored = all_bytes(&state);
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the store keeps the secret"
    );
    // The checkout is gone once the run is over.
    let left: Vec<_> = std::fs::read_dir(state.join("checkouts"))
        .expect("checkouts dir under the state dir")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // With the right credentials in the URL it pushes, and still says nothing of them.
    let url = server
        .url("repo.git")
        .replacen("http://", "http://flux:gitpass@", 1);
    std::fs::write(
        &file,
        tagwarden_testkit::seed::podinfo_manifests(&url, &image, "", ""),
    )
    .expect("write");
    let out = run(&["--once", "-v", "-f", file.to_str().expect("utf-8")]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("pushed commit"), "{stdout}");
    assert!(
        !stderr.contains("gitpass") && !stdout.contains("gitpass"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_second_run_on_one_state_dir_waits_for_the_first() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start(RegistryAuth::None);
    let (image, bare) = setup(&reg);
    let dir = TempDir::new("lock");
    let file = dir.path().join("flux.yaml");
    std::fs::write(
        &file,
        tagwarden_testkit::seed::podinfo_manifests(&bare.url(), &image, "", ""),
    )
    .expect("write");
    let state = dir.path().join("state");
    // Another process holds the store for a moment, as a run in progress does.
    let held = tagwarden_store::FileStore::open(&state).expect("hold the store");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(800));
        drop(held);
    });
    let out = run(&[
        "--once",
        "-f",
        file.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    release.join().expect("join");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "◎ waiting for another tagwarden process to release {}",
            state.join("state.redb").display()
        )),
        "{stderr}"
    );
    assert!(stdout.contains("pushed commit"), "{stdout}");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("state.redb")), 0o600);
}

#[test]
fn control_characters_from_a_file_never_reach_the_commit_message_raw() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("stefanprodan/podinfo", &["5.0.0", "5.0.3"], None);
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    // The old value, as the file holds it, carries a BEL, an escape sequence
    // and a Unicode line separator: a template that prints it must not forge lines.
    let deployment = format!(
        "kind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  image: \"{image}:5.0.0\\a\\e[31m\\L\" # {{\"$imagepolicy\": \"flux-system:podinfo\"}}\n"
    );
    let bare = BareRepo::new("main", &[("clusters/my-cluster/deploy.yaml", &deployment)]);
    let dir = TempDir::new("commit-escape");
    let file = dir.path().join("flux.yaml");
    std::fs::write(
        &file,
        tagwarden_testkit::seed::podinfo_manifests(
            &bare.url(),
            &image,
            "{{range .Changed.Changes}}{{.OldValue}} -> {{.NewValue}}{{end}}",
            "",
        ),
    )
    .expect("write");
    let out = run(&["--once", "-f", file.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let message = bare.log("main", "%B")[0].clone();
    assert_eq!(
        message.trim_end(),
        format!("{image}:5.0.0\\u{{7}}\\u{{1b}}[31m\\u{{2028}} -> {image}:5.0.3")
    );
}
