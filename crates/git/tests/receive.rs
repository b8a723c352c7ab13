//! Receive-pack semantics on every transport: over file://, smart HTTP
//! (`git http-backend`) and SSH (sshd) alike, the remote's hooks run, a ref
//! is only replaced if it still is what we fetched, a refusal is told from a
//! lost race, and no commit of a concurrent pusher is ever lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tagwarden_git::{Checkout, GitAuth, GitError, Workspace};
use tagwarden_testkit::{BareRepo, GitHttpServer, SshKeyPair, SshServer, TempDir, git, ssh_keygen};

#[derive(Clone, Copy, Debug)]
enum Via {
    File,
    Http,
    Ssh,
}

/// A bare repository and how tagwarden reaches it.
struct Remote {
    bare: BareRepo,
    url: String,
    auth: GitAuth,
    _ssh: Option<(SshServer, SshKeyPair)>,
}

fn remote(via: Via) -> Remote {
    let bare = BareRepo::new("main", &[("deploy.yaml", "tag: v0\n")]);
    match via {
        Via::File => Remote {
            url: bare.url(),
            bare,
            auth: GitAuth::default(),
            _ssh: None,
        },
        Via::Http => {
            git(&bare.path(), &["config", "http.receivepack", "true"]);
            let server = GitHttpServer::start(bare.root(), "git", "s3cret");
            Remote {
                url: server.url("repo.git"),
                bare,
                auth: GitAuth {
                    username: Some("git".into()),
                    password: Some("s3cret".into()),
                    ..GitAuth::default()
                },
                _ssh: None,
            }
        }
        Via::Ssh => {
            let key = ssh_keygen("ed25519", "", false);
            let server = SshServer::start(bare.root(), &key.public);
            let auth = GitAuth {
                identity: Some(key.private.clone()),
                known_hosts: Some(server.known_hosts_line()),
                ..GitAuth::default()
            };
            Remote {
                url: server.url("repo.git"),
                bare,
                auth,
                _ssh: Some((server, key)),
            }
        }
    }
}

impl Remote {
    fn open(&self, dir: &TempDir) -> Workspace {
        Workspace::open(
            &self.url,
            &Checkout::Branch("main".into()),
            None,
            &self.auth,
            &dir.path().join("checkout"),
        )
        .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    /// Installs `hooks/pre-receive` with `body` (after reading the commands).
    fn pre_receive(&self, body: &str) {
        let hook = self.bare.path().join("hooks/pre-receive");
        std::fs::write(&hook, format!("#!/bin/sh\ncat > /dev/null\n{body}\n")).expect("hook");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn counter(&self) -> std::path::PathBuf {
        self.bare.root().join("hook-runs.txt")
    }

    fn hook_runs(&self) -> usize {
        std::fs::read_to_string(self.counter())
            .unwrap_or_default()
            .lines()
            .count()
    }
}

fn commit(ws: &Workspace, tag: &str) {
    std::fs::write(ws.path("deploy.yaml"), format!("tag: {tag}\n")).expect("write");
    ws.commit("bot", "bot@example.com", &format!("to {tag}"))
        .expect("commit")
        .expect("a change");
}

// A server hook's refusal is final and says why, in the remote's words.

fn refusing_hook_is_declined_with_the_remote_text(via: Via) {
    let r = remote(via);
    r.pre_receive(&format!(
        "echo run >> '{}'\necho 'refusing: frozen branch' >&2\nexit 1",
        r.counter().display()
    ));
    let before = r.bare.log("main", "%H");
    let dir = TempDir::new("ws");
    let ws = r.open(&dir);
    commit(&ws, "v1");
    let err = ws
        .push(None, &BTreeMap::new())
        .expect_err("the hook refuses everything");
    assert!(matches!(err, GitError::Declined { .. }), "{via:?}: {err:?}");
    assert!(!err.is_transient(), "a refusal is not retried");
    assert_eq!(
        err.to_string(),
        "push to 'main' declined by the remote: refs/heads/main: pre-receive hook declined; \
         remote: refusing: frozen branch",
        "{via:?}"
    );
    assert_eq!(r.hook_runs(), 1, "{via:?}: the hook ran once");
    assert_eq!(
        r.bare.log("main", "%H"),
        before,
        "{via:?}: branch unchanged"
    );
}

#[test]
fn refusing_hook_is_declined_with_the_remote_text_over_file() {
    refusing_hook_is_declined_with_the_remote_text(Via::File);
}

#[test]
fn refusing_hook_is_declined_with_the_remote_text_over_http() {
    refusing_hook_is_declined_with_the_remote_text(Via::Http);
}

#[test]
fn refusing_hook_is_declined_with_the_remote_text_over_ssh() {
    refusing_hook_is_declined_with_the_remote_text(Via::Ssh);
}

// Someone else's commit lands between the remote listing its refs and it
// updating ours: receive-pack's compare-and-swap fails, we see a race, and
// both commits survive the retry.

fn update_inside_the_push_window_is_a_race(via: Via) {
    let r = remote(via);
    let old = r.bare.log("main", "%H")[0].clone();
    let theirs = git(
        &r.bare.path(),
        &["commit-tree", "main^{tree}", "-p", "main", "-m", "theirs"],
    );
    // The first push moves the branch from inside the hook (outside the
    // push's quarantine), after the remote advertised `old` to us.
    r.pre_receive(&format!(
        "echo run >> '{counter}'\n\
         if [ ! -e '{marker}' ]; then\n\
           touch '{marker}'\n\
           env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \
             git update-ref refs/heads/main {theirs} {old} || exit 1\n\
         fi\n\
         exit 0",
        counter = r.counter().display(),
        marker = r.bare.root().join("moved").display(),
    ));
    let dir = TempDir::new("ws");
    let mut ws = r.open(&dir);
    commit(&ws, "v1");
    let err = ws
        .push(None, &BTreeMap::new())
        .expect_err("the branch moved under the push");
    assert!(matches!(err, GitError::Rejected { .. }), "{via:?}: {err:?}");
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "push to 'main' rejected: refs/heads/main: failed to update ref",
        "{via:?}"
    );
    assert_eq!(r.bare.log("main", "%s"), ["theirs", "initial commit"]);

    assert_eq!(ws.refresh().expect("refresh").to_string(), theirs);
    commit(&ws, "v1");
    ws.push(None, &BTreeMap::new())
        .expect("push on the new tip");
    assert_eq!(
        r.bare.log("main", "%s"),
        ["to v1", "theirs", "initial commit"],
        "{via:?}"
    );
    assert_eq!(r.hook_runs(), 2, "{via:?}: the hook ran on both pushes");
}

#[test]
fn update_inside_the_push_window_is_a_race_over_file() {
    update_inside_the_push_window_is_a_race(Via::File);
}

#[test]
fn update_inside_the_push_window_is_a_race_over_http() {
    update_inside_the_push_window_is_a_race(Via::Http);
}

#[test]
fn update_inside_the_push_window_is_a_race_over_ssh() {
    update_inside_the_push_window_is_a_race(Via::Ssh);
}

// A branch reset behind the tip we fetched is not a fast-forward to undo:
// the push only replaces exactly what we started from.

fn branch_reset_behind_our_base_is_a_race(via: Via) {
    let r = remote(via);
    r.bare.commit_files("main", &[("bad.txt", "x")], "bad");
    let dir = TempDir::new("ws");
    let mut ws = r.open(&dir);
    commit(&ws, "v1");
    // Someone removes the bad commit with a forced push.
    git(&r.bare.path(), &["update-ref", "refs/heads/main", "main~1"]);
    let err = ws
        .push(None, &BTreeMap::new())
        .expect_err("the branch is not what we fetched");
    assert!(matches!(err, GitError::Rejected { .. }), "{via:?}: {err:?}");
    assert_eq!(
        err.to_string(),
        "push to 'main' rejected: refs/heads/main: stale info",
        "{via:?}"
    );
    assert_eq!(
        r.bare.log("main", "%s"),
        ["initial commit"],
        "not resurrected"
    );
    ws.refresh().expect("refresh");
    commit(&ws, "v1");
    ws.push(None, &BTreeMap::new())
        .expect("push on the new tip");
    assert_eq!(r.bare.log("main", "%s"), ["to v1", "initial commit"]);
}

#[test]
fn branch_reset_behind_our_base_is_a_race_over_file() {
    branch_reset_behind_our_base_is_a_race(Via::File);
}

#[test]
fn branch_reset_behind_our_base_is_a_race_over_http() {
    branch_reset_behind_our_base_is_a_race(Via::Http);
}

// Many pushes racing a `git push` user: not one commit of either is lost.

/// `pause`: the racer's think time after each landed push, so both sides
/// push through the same stretch of time (a racer that never paused would
/// just finish first).
fn racing_a_cli_pusher_loses_nothing(via: Via, rounds: usize, pause: Duration) {
    let r = remote(via);
    let path = r.bare.path();
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let racer = {
        let start = start.clone();
        std::thread::spawn(move || {
            let work = TempDir::new("racer");
            let w = work.path();
            git(w, &["clone", "-q", &path.display().to_string(), "."]);
            start.wait();
            let mut landed = 0;
            while landed < rounds {
                // As a person would: pull --rebase until the push lands.
                git(w, &["pull", "-q", "--rebase", "origin", "main"]);
                std::fs::write(w.join(format!("racer-{landed}.txt")), "x").expect("write");
                git(w, &["add", "-A"]);
                git(w, &["commit", "-q", "-m", &format!("racer {landed}")]);
                if push_quietly(w) {
                    landed += 1;
                    // Varied, so pushes meet at every phase of ours.
                    std::thread::sleep(pause * (landed % 3) as u32);
                } else {
                    git(w, &["reset", "-q", "--hard", "HEAD~1"]);
                }
            }
            landed
        })
    };
    start.wait();
    let started = Instant::now();
    let mut rejected = 0;
    for i in 1..=rounds {
        let dir = TempDir::new("ws");
        let mut ws = r.open(&dir);
        let mut attempts = 0;
        loop {
            attempts += 1;
            commit(&ws, &format!("v{i}"));
            match ws.push(None, &BTreeMap::new()) {
                Ok(()) => break,
                Err(GitError::Rejected { .. }) if attempts < 50 => {
                    rejected += 1;
                    ws.refresh().expect("refresh");
                }
                Err(e) => panic!("{via:?} round {i}: {e}"),
            }
        }
    }
    let landed = racer.join().expect("racer");
    let subjects = r.bare.log("main", "%s");
    for i in 1..=rounds {
        assert!(
            subjects.contains(&format!("to v{i}")),
            "{via:?}: tagwarden {i} lost: {subjects:?}"
        );
    }
    for i in 0..landed {
        assert!(
            subjects.contains(&format!("racer {i}")),
            "{via:?}: racer {i} lost: {subjects:?}"
        );
    }
    assert_eq!(subjects.len(), rounds + landed + 1, "{via:?}: {subjects:?}");
    assert_eq!(
        r.bare.show("main", "deploy.yaml"),
        format!("tag: v{rounds}")
    );
    eprintln!(
        "{via:?}: {rounds} tagwarden + {landed} racer commits in {:?}, {rejected} rejected pushes re-applied",
        started.elapsed()
    );
}

fn push_quietly(w: &Path) -> bool {
    std::process::Command::new("git")
        .current_dir(w)
        .args(["push", "-q", "origin", "HEAD:main"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", w)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git push")
        .success()
}

#[test]
fn racing_a_cli_pusher_loses_nothing_over_file() {
    racing_a_cli_pusher_loses_nothing(Via::File, 30, Duration::from_millis(10));
}

#[test]
fn racing_a_cli_pusher_loses_nothing_over_http() {
    racing_a_cli_pusher_loses_nothing(Via::Http, 15, Duration::from_millis(60));
}

#[test]
fn racing_a_cli_pusher_loses_nothing_over_ssh() {
    racing_a_cli_pusher_loses_nothing(Via::Ssh, 12, Duration::from_millis(100));
}

// A local push that hangs (here: in a hook) is killed at the timeout,
// receive-pack and the hook with it.

#[test]
fn a_hanging_local_push_is_killed_at_the_timeout() {
    let r = remote(Via::File);
    let pid_file = r.bare.root().join("hook.pid");
    r.pre_receive(&format!(
        "echo $$ > '{}'\nexec sleep 30",
        pid_file.display()
    ));
    let dir = TempDir::new("ws");
    let mut ws = r.open(&dir);
    ws.set_timeout(Duration::from_secs(1));
    commit(&ws, "v1");
    let started = Instant::now();
    let err = ws.push(None, &BTreeMap::new()).expect_err("timed out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        "failed to push to 'main': git push did not finish within the timeout of 1s: killed"
    );
    assert!(err.is_transient());
    assert_eq!(r.bare.log("main", "%s"), ["initial commit"]);
    let pid = std::fs::read_to_string(&pid_file).expect("the hook ran");
    // Gone, or a zombie nobody reaps in a container: not sleeping on.
    std::thread::sleep(Duration::from_millis(200));
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = state.rsplit(") ").next().and_then(|s| s.chars().next());
    assert!(
        matches!(state, None | Some('Z') | Some('X')),
        "hook still running: {state:?}"
    );
}

// A plain path is a local remote too: pushed through receive-pack, hooks run.
#[test]
fn a_plain_path_remote_runs_the_hooks_too() {
    let r = remote(Via::File);
    r.pre_receive(&format!(
        "echo run >> '{}'\necho 'refusing: frozen branch' >&2\nexit 1",
        r.counter().display()
    ));
    let dir = TempDir::new("ws");
    let ws = Workspace::open(
        &r.bare.path().display().to_string(),
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir.path().join("checkout"),
    )
    .expect("open a plain path");
    commit(&ws, "v1");
    let err = ws.push(None, &BTreeMap::new()).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "push to 'main' declined by the remote: refs/heads/main: pre-receive hook declined; \
         remote: refusing: frozen branch"
    );
    assert_eq!(r.hook_runs(), 1);
}
