//! Sparse checkouts of `update.path` and commits of only the files an
//! update wrote, against real repositories over file:// and smart HTTP.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tagwarden_git::{Checkout, GitAuth, GitError, Workspace};
use tagwarden_testkit::{BareRepo, GitHttpServer, TempDir, git};

const DEPLOY: &str =
    "image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

fn open(url: &str, sparse: &str, dir: &TempDir) -> Workspace {
    Workspace::open_sparse(
        url,
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir.path().join("checkout"),
        Some(sparse),
    )
    .expect("open")
}

/// Edits a file in the working tree and returns its path, as the setters
/// report it.
fn edit(ws: &Workspace, file: &str) -> PathBuf {
    let p = ws.path(file);
    let text = std::fs::read_to_string(&p).expect("read");
    std::fs::write(&p, text.replace("5.0.0", "5.0.3")).expect("write");
    p
}

/// Every path of `rev`'s tree with its mode, as `git ls-tree -r`.
fn ls_tree(bare: &BareRepo, rev: &str) -> Vec<String> {
    git(
        &bare.path(),
        &["ls-tree", "-r", "--format=%(objectmode) %(path)", rev],
    )
    .lines()
    .map(String::from)
    .collect()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .expect("under")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn only_the_update_path_is_checked_out_and_the_commit_keeps_every_other_file() {
    let bare = BareRepo::new(
        "main",
        &[
            ("apps/deploy.yaml", DEPLOY),
            ("apps/sub/more.yaml", DEPLOY),
            ("infra/big.yaml", "x: 1\n"),
            ("README.md", "hello\n"),
        ],
    );
    let dir = TempDir::new("sparse");
    let ws = open(&bare.url(), "./apps/", &dir);
    assert_eq!(
        files_under(ws.workdir()),
        ["apps/deploy.yaml", "apps/sub/more.yaml"],
        "only update.path is in the working tree"
    );
    let before = ls_tree(&bare, "main");
    let changed = edit(&ws, "apps/sub/more.yaml");
    let oid = ws
        .commit_files("bot", "bot@example.com", "update", None, &[changed])
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    assert_eq!(bare.log("main", "%H")[0], oid.to_string());
    assert_eq!(ls_tree(&bare, "main"), before, "same paths, same modes");
    let diff = git(&bare.path(), &["diff", "--name-only", "main~1", "main"]);
    assert_eq!(diff, "apps/sub/more.yaml", "only the written file changed");
    assert_eq!(bare.show("main", "README.md"), "hello");
    assert!(bare.show("main", "apps/sub/more.yaml").contains("5.0.3"));
    // The whole-tree commit would record the absent files as deleted.
    let err = ws
        .commit("bot", "bot@example.com", "everything")
        .expect_err("refused");
    assert!(matches!(err, GitError::Commit(_)), "{err}");
}

#[test]
fn an_unchanged_file_commits_nothing_and_an_outside_path_is_refused() {
    let bare = BareRepo::new("main", &[("apps/deploy.yaml", DEPLOY)]);
    let dir = TempDir::new("sparse-none");
    let ws = open(&bare.url(), "apps", &dir);
    let same = ws.path("apps/deploy.yaml");
    assert_eq!(
        ws.commit_files("bot", "bot@example.com", "none", None, &[same])
            .expect("commit"),
        None
    );
    let outside = dir.path().join("elsewhere.yaml");
    std::fs::write(&outside, DEPLOY).expect("write");
    let err = ws
        .commit_files("bot", "bot@example.com", "x", None, &[outside])
        .expect_err("refused");
    assert!(err.to_string().contains("not inside the checkout"), "{err}");
}

/// A repository built with the git CLI, for what BareRepo cannot seed:
/// symlinks and modes.
fn bare_with(setup: impl FnOnce(&Path)) -> BareRepo {
    let bare = BareRepo::new("main", &[("apps/deploy.yaml", DEPLOY)]);
    let work = TempDir::new("seed");
    git(work.path(), &["clone", "-q", &bare.url(), "."]);
    git(work.path(), &["config", "user.email", "seed@example.com"]);
    git(work.path(), &["config", "user.name", "seed"]);
    setup(work.path());
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "-q", "-m", "seed"]);
    git(work.path(), &["push", "-q", "origin", "main"]);
    bare
}

#[test]
fn a_symlink_under_the_update_path_gets_the_whole_tree() {
    let bare = bare_with(|w| {
        std::fs::create_dir_all(w.join("base")).expect("mkdir");
        std::fs::write(w.join("base/shared.yaml"), DEPLOY).expect("write");
        std::os::unix::fs::symlink("../base/shared.yaml", w.join("apps/shared.yaml"))
            .expect("symlink");
    });
    let dir = TempDir::new("sparse-link");
    let ws = open(&bare.url(), "apps", &dir);
    assert!(
        ws.path("base/shared.yaml").is_file(),
        "a link may lead anywhere in the checkout: {:?}",
        files_under(ws.workdir())
    );
    // Written through the link, committed at the target.
    let target = ws.path("base/shared.yaml").canonicalize().expect("real");
    edit(&ws, "base/shared.yaml");
    ws.commit_files("bot", "bot@example.com", "through", None, &[target])
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    assert!(bare.show("main", "base/shared.yaml").contains("5.0.3"));
    assert!(ls_tree(&bare, "main").contains(&"120000 apps/shared.yaml".to_string()));
}

#[test]
fn an_update_path_through_a_linked_folder_gets_the_whole_tree() {
    let bare = bare_with(|w| {
        std::os::unix::fs::symlink("apps", w.join("current")).expect("symlink");
    });
    let dir = TempDir::new("sparse-linked-dir");
    let ws = open(&bare.url(), "current", &dir);
    assert!(ws.path("apps/deploy.yaml").is_file());
    assert!(ws.path("current").is_symlink());
}

/// libgit2 takes these for patterns: the whole tree, never an empty one.
#[test]
fn an_update_path_with_pattern_characters_gets_the_whole_tree() {
    let bare = BareRepo::new(
        "main",
        &[
            ("apps[1]/deploy.yaml", DEPLOY),
            ("!apps/deploy.yaml", DEPLOY),
            ("apps1/deploy.yaml", DEPLOY),
        ],
    );
    for path in ["apps[1]", "!apps"] {
        let dir = TempDir::new("sparse-glob");
        let ws = open(&bare.url(), path, &dir);
        assert_eq!(
            files_under(ws.workdir()),
            [
                "!apps/deploy.yaml",
                "apps1/deploy.yaml",
                "apps[1]/deploy.yaml"
            ],
            "{path}"
        );
    }
    // A name with a space or a dot is plain.
    let bare = BareRepo::new(
        "main",
        &[("my apps.d/deploy.yaml", DEPLOY), ("other/x.yaml", DEPLOY)],
    );
    let dir = TempDir::new("sparse-space");
    let ws = open(&bare.url(), "my apps.d", &dir);
    assert_eq!(files_under(ws.workdir()), ["my apps.d/deploy.yaml"]);
}

#[test]
fn the_executable_bit_survives_a_commit_of_written_files() {
    let bare = bare_with(|w| {
        let p = w.join("apps/run.yaml");
        std::fs::write(&p, DEPLOY).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    });
    let dir = TempDir::new("sparse-mode");
    let ws = open(&bare.url(), "apps", &dir);
    let changed = edit(&ws, "apps/run.yaml");
    ws.commit_files("bot", "bot@example.com", "mode", None, &[changed])
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    assert!(ls_tree(&bare, "main").contains(&"100755 apps/run.yaml".to_string()));
    assert!(bare.show("main", "apps/run.yaml").contains("5.0.3"));
}

/// After a lost race the new tip is checked out sparsely too, and the
/// re-applied commit keeps the other writer's files outside update.path.
#[test]
fn a_refresh_after_a_lost_race_stays_sparse_and_keeps_their_commit_over_http() {
    let bare = BareRepo::new(
        "main",
        &[("apps/deploy.yaml", DEPLOY), ("infra/big.yaml", "x: 1\n")],
    );
    let server = GitHttpServer::start(bare.root(), "bot", "s3cret");
    let auth = GitAuth {
        username: Some("bot".into()),
        password: Some("s3cret".into()),
        ..GitAuth::default()
    };
    let dir = TempDir::new("sparse-http");
    let mut ws = Workspace::open_sparse(
        &server.url("repo.git"),
        &Checkout::Branch("main".into()),
        None,
        &auth,
        &dir.path().join("checkout"),
        Some("apps"),
    )
    .expect("open");
    assert_eq!(files_under(ws.workdir()), ["apps/deploy.yaml"]);
    let theirs = bare.commit_files("main", &[("infra/big.yaml", "x: 2\n")], "theirs");
    let changed = edit(&ws, "apps/deploy.yaml");
    ws.commit_files("bot", "bot@example.com", "ours", None, &[changed])
        .expect("commit");
    let err = ws.push(None, &BTreeMap::new()).expect_err("lost the race");
    assert!(matches!(err, GitError::Rejected { .. }), "{err}");
    ws.refresh().expect("refresh");
    assert_eq!(files_under(ws.workdir()), ["apps/deploy.yaml"]);
    let changed = edit(&ws, "apps/deploy.yaml");
    ws.commit_files("bot", "bot@example.com", "ours", None, &[changed])
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    assert_eq!(bare.log("main", "%H")[1], theirs);
    assert_eq!(bare.show("main", "infra/big.yaml"), "x: 2");
    assert!(bare.show("main", "apps/deploy.yaml").contains("5.0.3"));
}

/// `.gitattributes` outside the sparse path still applies both ways: the
/// file is checked out with CRLF and committed normalized, as `git add`.
#[test]
fn gitattributes_filters_apply_to_a_sparse_checkout_and_its_commit() {
    let bare = BareRepo::new(
        "main",
        &[
            (".gitattributes", "*.yaml text eol=crlf\n"),
            ("apps/.gitattributes", "*.yml text eol=crlf\n"),
            ("apps/other.yaml", DEPLOY),
            ("apps/prod/deploy.yaml", DEPLOY),
            ("apps/prod/deploy.yml", DEPLOY),
        ],
    );
    let dir = TempDir::new("sparse-attrs");
    let ws = open(&bare.url(), "apps/prod", &dir);
    assert!(ws.path(".gitattributes").is_file() && !ws.path("apps/other.yaml").exists());
    assert!(ws.path("apps/.gitattributes").is_file());
    for file in ["apps/prod/deploy.yaml", "apps/prod/deploy.yml"] {
        let checked_out = std::fs::read(ws.path(file)).expect("read");
        assert!(checked_out.ends_with(b"\r\n"), "{file}: {checked_out:?}");
    }
    let changed = edit(&ws, "apps/prod/deploy.yaml");
    ws.commit_files("bot", "bot@example.com", "crlf", None, &[changed])
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    let blob = git(
        &bare.path(),
        &["cat-file", "blob", "main:apps/prod/deploy.yaml"],
    );
    assert!(blob.contains("5.0.3") && !blob.contains('\r'), "{blob:?}");
    assert_eq!(
        git(&bare.path(), &["diff", "--name-only", "main~1", "main"]),
        "apps/prod/deploy.yaml"
    );
}
