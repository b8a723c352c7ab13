//! The demo's sandbox against the real `docker-registry` and `git`.

use std::net::TcpStream;
use tagwarden_sandbox::{BareRepo, Registry, TempDir, git, http};

#[test]
fn published_tags_are_listed_by_the_registry() {
    let reg = Registry::start().expect("start docker-registry");
    reg.publish("demo/app", &["1.0.0", "1.1.0"], None)
        .expect("publish");
    let (status, _, body) =
        http(reg.port, "GET", "/v2/demo/app/tags/list", &[], b"").expect("list tags");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    let list = body
        .trim()
        .strip_prefix(r#"{"name":"demo/app","tags":["#)
        .and_then(|l| l.strip_suffix("]}"))
        .unwrap_or_else(|| panic!("{body}"));
    // The registry lists in storage order, not sorted.
    let mut tags: Vec<&str> = list.split(',').collect();
    tags.sort();
    assert_eq!(tags, [r#""1.0.0""#, r#""1.1.0""#]);
    let (status, headers, _) = http(
        reg.port,
        "HEAD",
        "/v2/demo/app/manifests/1.1.0",
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
        b"",
    )
    .expect("head manifest");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("docker-content-digest")
                && v.starts_with("sha256:")),
        "{headers:?}"
    );
}

#[test]
fn a_refused_publish_says_which_request_and_what_the_registry_answered() {
    let reg = Registry::start().expect("start docker-registry");
    // Repository names are lower case: the registry's router knows no such path.
    let err = reg
        .publish("Demo/App", &["1.0.0"], None)
        .expect_err("upper-case repository");
    assert_eq!(
        err.to_string().trim_end(),
        "start blob upload to Demo/App: status 404, expected 202: 404 page not found"
    );
}

#[test]
fn a_dropped_registry_stops_and_removes_its_storage() {
    let reg = Registry::start().expect("start docker-registry");
    reg.publish("demo/app", &["1.0.0"], None).expect("publish");
    let (port, data) = (reg.port, reg.data_dir());
    assert!(
        data.join("docker/registry/v2/repositories/demo/app")
            .is_dir()
    );
    drop(reg);
    assert!(!data.exists(), "{} still there", data.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_bare_repo_holds_its_seed_and_later_commits() {
    let bare = BareRepo::new("main", &[("a/b.yaml", "one\n")]);
    assert!(bare.url().starts_with("file:///"), "{}", bare.url());
    assert_eq!(bare.show("main", "a/b.yaml"), "one");
    let sha = bare.commit_files("main", &[("a/c.yaml", "two\n")], "add c");
    assert_eq!(
        bare.log("main", "%H %s"),
        [
            format!("{sha} add c"),
            format!("{} initial commit", bare.log("main~1", "%H")[0]),
        ]
    );
    assert_eq!(bare.show(&sha, "a/b.yaml"), "one");
    assert_eq!(
        git(&bare.path(), &["log", "-1", "--format=%an <%ae>", "main"]),
        "Dev <dev@example.com>"
    );
}

#[test]
#[should_panic(expected = r#"git ["rev-parse", "--verify", "no-such-branch"]: fatal: "#)]
fn a_failing_git_command_panics_with_its_arguments_and_stderr() {
    let bare = BareRepo::new("main", &[("f", "x")]);
    git(&bare.path(), &["rev-parse", "--verify", "no-such-branch"]);
}

#[test]
fn temp_dirs_are_distinct_and_removed_on_drop() {
    let (a, b) = (TempDir::new("t"), TempDir::new("t"));
    assert_ne!(a.path(), b.path());
    std::fs::write(a.path().join("f"), "x").expect("write");
    let p = a.path().to_path_buf();
    drop(a);
    assert!(!p.exists());
    assert!(b.path().is_dir());
}
