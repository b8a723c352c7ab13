//! Checkout, commit and push against real repositories: bare over file://
//! and smart HTTP through `git http-backend` with basic auth.

use std::collections::BTreeMap;
use tagwarden_api::GitRef;
use tagwarden_git::{Checkout, GitAuth, GitError, Workspace};
use tagwarden_testkit::{BareRepo, GitHttpServer, TempDir};

const DEPLOY: &str =
    "image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

fn open(
    url: &str,
    checkout: &Checkout,
    push: Option<&str>,
    auth: &GitAuth,
    dir: &TempDir,
) -> Result<Workspace, GitError> {
    Workspace::open(url, checkout, push, auth, &dir.path().join("checkout"))
}

fn edit(ws: &Workspace, file: &str, from: &str, to: &str) {
    let p = ws.path(file);
    let text = std::fs::read_to_string(&p).expect("read");
    std::fs::write(&p, text.replace(from, to)).expect("write");
}

#[test]
fn commits_and_pushes_with_the_automation_author() {
    let bare = BareRepo::new("main", &[("apps/deploy.yaml", DEPLOY)]);
    let dir = TempDir::new("ws");
    let ws = open(
        &bare.url(),
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir,
    )
    .expect("open");
    assert_eq!(
        ws.commit("fluxcdbot", "fluxcdbot@users.noreply.github.com", "nothing")
            .expect("commit"),
        None,
        "no change, no commit"
    );
    edit(&ws, "apps/deploy.yaml", "5.0.0", "5.0.3");
    let oid = ws
        .commit(
            "fluxcdbot",
            "fluxcdbot@users.noreply.github.com",
            "Update podinfo to 5.0.3",
        )
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    assert_eq!(bare.log("main", "%H")[0], oid.to_string());
    assert_eq!(
        bare.log("main", "%an <%ae>|%cn <%ce>|%s")[0],
        "fluxcdbot <fluxcdbot@users.noreply.github.com>|fluxcdbot <fluxcdbot@users.noreply.github.com>|Update podinfo to 5.0.3"
    );
    assert!(
        bare.show("main", "apps/deploy.yaml")
            .contains("podinfo:5.0.3")
    );
}

#[test]
fn a_separate_push_branch_is_created_then_built_upon() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let dir = TempDir::new("ws");
    let ws = open(
        &bare.url(),
        &Checkout::Branch("main".into()),
        Some("image-updates"),
        &GitAuth::default(),
        &dir,
    )
    .expect("open");
    edit(&ws, "deploy.yaml", "5.0.0", "5.0.1");
    ws.commit("bot", "bot@example.com", "first")
        .expect("commit");
    ws.push(None, &BTreeMap::new())
        .expect("push creates the branch");
    assert_eq!(
        bare.log("main", "%s"),
        ["initial commit"],
        "checkout branch untouched"
    );

    // Next run: the push branch exists, so we start from its tip and keep its history.
    let dir2 = TempDir::new("ws");
    let ws = open(
        &bare.url(),
        &Checkout::Branch("main".into()),
        Some("image-updates"),
        &GitAuth::default(),
        &dir2,
    )
    .expect("open again");
    edit(&ws, "deploy.yaml", "5.0.1", "5.0.2");
    ws.commit("bot", "bot@example.com", "second")
        .expect("commit");
    ws.push(None, &BTreeMap::new()).expect("push");
    assert_eq!(
        bare.log("image-updates", "%s"),
        ["second", "first", "initial commit"]
    );
}

#[test]
fn a_push_over_someone_elses_commit_is_rejected_and_reapplied() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY), ("README.md", "hi\n")]);
    let dir = TempDir::new("ws");
    let mut ws = open(
        &bare.url(),
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir,
    )
    .expect("open");
    edit(&ws, "deploy.yaml", "5.0.0", "5.0.3");
    ws.commit("bot", "bot@example.com", "ours").expect("commit");
    // Someone pushes between our fetch and our push.
    bare.commit_files("main", &[("README.md", "hello\n")], "theirs");
    let err = ws.push(None, &BTreeMap::new()).expect_err("remote moved");
    assert!(matches!(err, GitError::Rejected { .. }), "{err}");
    assert_eq!(
        bare.log("main", "%s"),
        ["theirs", "initial commit"],
        "nothing overwritten"
    );

    ws.refresh().expect("refresh");
    assert_eq!(
        std::fs::read_to_string(ws.path("README.md")).expect("read"),
        "hello\n"
    );
    edit(&ws, "deploy.yaml", "5.0.0", "5.0.3");
    ws.commit("bot", "bot@example.com", "ours")
        .expect("commit")
        .expect("changed");
    ws.push(None, &BTreeMap::new())
        .expect("push on the new tip");
    assert_eq!(bare.log("main", "%s"), ["ours", "theirs", "initial commit"]);
}

#[test]
fn checkout_by_tag_semver_and_commit() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let first = bare.log("main", "%H")[0].clone();
    let repo = bare.path();
    tagwarden_testkit::git(&repo, &["tag", "v1.0.0", &first]);
    let second = bare.commit_files("main", &[("x", "2")], "two");
    tagwarden_testkit::git(&repo, &["tag", "v1.2.0", &second]);
    bare.commit_files("main", &[("x", "3")], "three");
    tagwarden_testkit::git(&repo, &["tag", "v2.0.0", "main"]);

    let cases = [
        (Checkout::Tag("v1.0.0".into()), first.clone()),
        (Checkout::Semver("<2.0.0".into()), second.clone()),
        (Checkout::Commit(second.clone()), second.clone()),
    ];
    for (checkout, want) in cases {
        let dir = TempDir::new("ws");
        let ws = open(
            &bare.url(),
            &checkout,
            Some("auto"),
            &GitAuth::default(),
            &dir,
        )
        .expect("open");
        assert_eq!(ws.base.to_string(), want, "{checkout:?}");
    }
    let dir = TempDir::new("ws");
    let err = open(
        &bare.url(),
        &Checkout::Tag("v1.0.0".into()),
        None,
        &GitAuth::default(),
        &dir,
    )
    .err()
    .expect("a tag needs a push branch");
    assert!(err.to_string().contains("push branch"), "{err}");
    let dir = TempDir::new("ws");
    let err = open(
        &bare.url(),
        &Checkout::Branch("nope".into()),
        None,
        &GitAuth::default(),
        &dir,
    )
    .err()
    .expect("missing branch");
    assert!(
        err.to_string()
            .contains("couldn't find remote ref 'refs/heads/nope'"),
        "{err}"
    );

    let r = GitRef {
        branch: Some("dev".into()),
        tag: Some("v1".into()),
        semver: None,
        name: None,
        commit: None,
    };
    assert_eq!(
        Checkout::from_ref(Some(&r)),
        Checkout::Tag("v1".into()),
        "tag wins over branch"
    );
    assert_eq!(Checkout::from_ref(None), Checkout::Branch("master".into()));
}

#[test]
fn smart_http_with_basic_auth() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    tagwarden_testkit::git(&bare.path(), &["config", "http.receivepack", "true"]);
    let server = GitHttpServer::start(bare.root(), "git", "s3cret");
    let url = server.url("repo.git");

    let dir = TempDir::new("ws");
    let err = open(
        &url,
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir,
    )
    .err()
    .expect("no credentials");
    assert!(err.to_string().contains("no credentials"), "{err}");
    let wrong = GitAuth {
        username: Some("git".into()),
        password: Some("bad".into()),
        ..GitAuth::default()
    };
    let dir = TempDir::new("ws");
    let err = open(&url, &Checkout::Branch("main".into()), None, &wrong, &dir)
        .err()
        .expect("bad password");
    assert!(err.to_string().contains("authentication failed"), "{err}");

    let mut data = BTreeMap::new();
    data.insert("username".to_string(), b"git".to_vec());
    data.insert("password".to_string(), b"s3cret".to_vec());
    let auth = GitAuth::from_secret(&data);
    let dir = TempDir::new("ws");
    let mut ws =
        open(&url, &Checkout::Branch("main".into()), None, &auth, &dir).expect("open over http");
    edit(&ws, "deploy.yaml", "5.0.0", "5.0.3");
    ws.commit("bot", "bot@example.com", "over http")
        .expect("commit");
    // Someone pushes in between: rejected, re-applied on the new tip, even
    // though our clone is shallow.
    bare.commit_files("main", &[("other.txt", "x")], "someone else");
    let err = ws.push(None, &BTreeMap::new()).expect_err("moved");
    assert!(matches!(err, GitError::Rejected { .. }), "{err}");
    ws.refresh().expect("refresh over http");
    edit(&ws, "deploy.yaml", "5.0.0", "5.0.3");
    ws.commit("bot", "bot@example.com", "over http")
        .expect("commit")
        .expect("changed");
    ws.push(None, &BTreeMap::new()).expect("push over http");
    assert_eq!(
        bare.log("main", "%s"),
        ["over http", "someone else", "initial commit"]
    );
    assert_eq!(
        tagwarden_testkit::git(
            &ws.workdir().join(".git"),
            &["rev-parse", "--is-shallow-repository"]
        ),
        "true",
        "smart HTTP clones are shallow"
    );
}

#[test]
fn push_refspec_also_updates_another_ref() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let dir = TempDir::new("ws");
    let ws = open(
        &bare.url(),
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir,
    )
    .expect("open");
    edit(&ws, "deploy.yaml", "5.0.0", "5.0.3");
    let oid = ws
        .commit("bot", "bot@example.com", "update")
        .expect("commit")
        .expect("changed");
    // A leading '+' would force: it is dropped, so the push stays safe.
    ws.push(
        Some("+refs/heads/main:refs/heads/release"),
        &BTreeMap::new(),
    )
    .expect("push with refspec");
    assert_eq!(bare.log("main", "%H")[0], oid.to_string());
    assert_eq!(bare.log("release", "%H")[0], oid.to_string());
}
