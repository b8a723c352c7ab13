//! `tagwarden update` as a user runs it: files on disk, stdout, stderr, exit code.

use std::path::Path;
use std::process::{Command, Output};
use tagwarden_testkit::TempDir;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}
";

const VALUES: &str = "# Helm values\r\nimage:\r\n  repository: ghcr.io/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}\r\n  tag: 5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\r\n";

const LOCAL: &str = "image: localhost:5000/team/app:v1 # {\"$imagepolicy\": \"apps:app\"}\n";

fn update(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .arg("update")
        .args(args)
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tree(dir: &TempDir) {
    for (rel, content) in [
        ("clusters/my-cluster/podinfo.yaml", DEPLOY),
        ("charts/podinfo/values.yaml", VALUES),
        ("apps/local.yaml", LOCAL),
        ("README.md", DEPLOY),
    ] {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).expect("read")
}

const PODINFO: &str = "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3";

#[test]
fn rewrites_in_place_and_exits_zero_also_when_nothing_changed() {
    let dir = TempDir::new("update-cli");
    tree(&dir);
    let root = dir.path().to_str().expect("utf8");
    let out = update(&[root, "--policy", PODINFO]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "charts/podinfo/values.yaml: 5.0.0 -> 5.0.3 (flux-system:podinfo:tag)\n\
         clusters/my-cluster/podinfo.yaml: Deployment default/podinfo: \
         ghcr.io/stefanprodan/podinfo:5.0.0 -> ghcr.io/stefanprodan/podinfo:5.0.3 (flux-system:podinfo)\n"
    );
    assert!(
        text(&out.stderr).contains("updated 2 values in 2 files"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        read(dir.path(), "clusters/my-cluster/podinfo.yaml"),
        DEPLOY.replace("podinfo:5.0.0", "podinfo:5.0.3")
    );
    // CRLF kept; the :name marker already holds the policy's image.
    assert_eq!(
        read(dir.path(), "charts/podinfo/values.yaml"),
        VALUES.replace("tag: 5.0.0", "tag: 5.0.3")
    );
    assert_eq!(read(dir.path(), "README.md"), DEPLOY, "not a YAML name");
    assert_eq!(
        read(dir.path(), "apps/local.yaml"),
        LOCAL,
        "another namespace"
    );

    let again = update(&[root, "--policy", PODINFO]);
    assert!(again.status.success());
    assert_eq!(text(&again.stdout), "");
    assert!(
        text(&again.stderr).contains("nothing to update"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn dry_run_writes_nothing_and_prints_a_diff_that_applies() {
    let dir = TempDir::new("update-cli-dry");
    tree(&dir);
    let root = dir.path().to_str().expect("utf8");
    let out = update(&[root, "--policy", PODINFO, "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(dir.path(), "clusters/my-cluster/podinfo.yaml"), DEPLOY);
    let diff = text(&out.stdout);
    assert!(
        diff.contains(
            "--- a/clusters/my-cluster/podinfo.yaml\n+++ b/clusters/my-cluster/podinfo.yaml\n"
        ),
        "{diff}"
    );
    assert!(text(&out.stderr).contains("would update 2 values in 2 files"));

    // The diff, applied by git, gives what a real run writes.
    let patch = dir.path().join("../update-cli-dry.patch");
    std::fs::write(&patch, &diff).expect("write patch");
    let applied = Command::new("git")
        .args(["apply", "--whitespace=nowarn"])
        .arg(&patch)
        .current_dir(dir.path())
        .output()
        .expect("run git apply");
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let _ = std::fs::remove_file(&patch);
    let patched = [
        read(dir.path(), "clusters/my-cluster/podinfo.yaml"),
        read(dir.path(), "charts/podinfo/values.yaml"),
    ];
    let real = TempDir::new("update-cli-real");
    tree(&real);
    assert!(
        update(&[real.path().to_str().expect("utf8"), "--policy", PODINFO])
            .status
            .success()
    );
    assert_eq!(
        patched,
        [
            read(real.path(), "clusters/my-cluster/podinfo.yaml"),
            read(real.path(), "charts/podinfo/values.yaml"),
        ]
    );
}

#[test]
fn json_lists_files_objects_and_changes_relative_to_path() {
    let dir = TempDir::new("update-cli-json");
    tree(&dir);
    let root = dir.path().join("apps");
    let latest = format!("apps/app=localhost:5000/team/app:v2@{DIGEST}");
    let out = update(&[
        root.to_str().expect("utf8"),
        "--namespace",
        "apps",
        "--policy",
        &latest,
        "--policy",
        PODINFO,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let want = serde_json::json!({"files": [{
        "file": "local.yaml",
        "objects": [{
            "apiVersion": "", "kind": "", "namespace": "", "name": "",
            "changes": [{
                "oldValue": "localhost:5000/team/app:v1",
                "newValue": format!("localhost:5000/team/app:v2@{DIGEST}"),
                "setter": "apps:app",
            }],
        }],
    }]});
    assert_eq!(v, want);
    assert!(
        text(&out.stderr).contains(
            "warning: --policy flux-system/podinfo: not in namespace 'apps', so its markers are left alone"
        ),
        "{}",
        text(&out.stderr)
    );
    // Keys in the documented order.
    let raw = text(&out.stdout);
    let at = |k: &str| raw.find(k).unwrap_or_else(|| panic!("{k} missing"));
    assert!(at("\"apiVersion\"") < at("\"kind\"") && at("\"namespace\"") < at("\"changes\""));
    assert!(at("\"oldValue\"") < at("\"newValue\"") && at("\"newValue\"") < at("\"setter\""));
    assert_eq!(
        read(dir.path(), "apps/local.yaml"),
        LOCAL.replace("app:v1", &format!("app:v2@{DIGEST}"))
    );
}

#[test]
fn broken_files_are_reported_and_the_others_still_updated() {
    let dir = TempDir::new("update-cli-broken");
    tree(&dir);
    std::fs::write(
        dir.path().join("broken.yaml"),
        "a:\n  b: 1 # \"$imagepolicy\"\n c: 2\n",
    )
    .expect("write");
    let out = update(&[dir.path().to_str().expect("utf8"), "--policy", PODINFO]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: broken.yaml skipped: line 3, column 3"),
        "{err}"
    );
    assert!(err.contains("updated 2 values"), "{err}");
}

#[test]
fn bad_arguments_and_escaping_links_are_refused() {
    let dir = TempDir::new("update-cli-bad");
    tree(&dir);
    let root = dir.path().to_str().expect("utf8");
    for (policy, needle) in [
        (
            "podinfo=ghcr.io/a/b:1",
            "'podinfo': expected NS/NAME before '='",
        ),
        ("ns/p=ghcr.io/a/b", "the tag is missing"),
        ("ns/p", "expected NS/NAME=IMAGE:TAG[@DIGEST]"),
        ("ns/p=ghcr.io/a/b:1@nope", "digest must look like"),
    ] {
        let out = update(&[root, "--policy", policy]);
        assert_eq!(out.status.code(), Some(2), "{policy}");
        assert!(
            text(&out.stderr).contains(needle),
            "{policy}: {}",
            text(&out.stderr)
        );
    }
    let out = update(&[&format!("{root}/missing"), "--policy", PODINFO]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such file or directory"),
        "{}",
        text(&out.stderr)
    );

    let outside = TempDir::new("update-cli-outside");
    std::fs::write(outside.path().join("x.yaml"), DEPLOY).expect("write");
    std::os::unix::fs::symlink(outside.path().join("x.yaml"), dir.path().join("link.yaml"))
        .expect("symlink");
    let out = update(&[root, "--policy", PODINFO]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("link.yaml: symlink to")
            && text(&out.stderr).contains("outside the checkout"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(outside.path(), "x.yaml"), DEPLOY);
    assert_eq!(
        read(dir.path(), "clusters/my-cluster/podinfo.yaml"),
        DEPLOY,
        "nothing written"
    );
}
