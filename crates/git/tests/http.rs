//! Smart HTTP details of Flux's Git settings: `bearerToken` in the secret
//! and `git.push.options`, against `git http-backend` on 127.0.0.1.

use std::collections::BTreeMap;
use tagwarden_git::{Checkout, GitAuth, GitError, Workspace};
use tagwarden_testkit::{BareRepo, GitHttpServer, TempDir, git};

const DEPLOY: &str = "image: ghcr.io/stefanprodan/podinfo:5.0.0\n";

fn open(url: &str, auth: &GitAuth, dir: &TempDir) -> Result<Workspace, GitError> {
    Workspace::open(
        url,
        &Checkout::Branch("main".into()),
        None,
        auth,
        &dir.path().join("checkout"),
    )
}

fn bump(ws: &Workspace, to: &str) {
    let p = ws.path("deploy.yaml");
    let text = std::fs::read_to_string(&p).expect("read");
    std::fs::write(&p, text.replace("5.0.0", to)).expect("write");
    ws.commit("bot", "bot@example.com", &format!("to {to}"))
        .expect("commit")
        .expect("a change");
}

#[test]
fn bearer_token_is_sent_as_an_authorization_header() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    git(&bare.path(), &["config", "http.receivepack", "true"]);
    // The server lets in `Authorization: Bearer t0ken` and nothing else.
    let server = GitHttpServer::start_bearer(bare.root(), "t0ken");
    let url = server.url("repo.git");

    let dir = TempDir::new("ws");
    let err = open(&url, &GitAuth::default(), &dir)
        .err()
        .expect("no token, no entry");
    // libgit2 cannot answer a Bearer challenge itself: only the header we add gets in.
    assert!(err.to_string().contains("authentication"), "{err}");

    let mut data = BTreeMap::new();
    data.insert("bearerToken".to_string(), b"wrong".to_vec());
    let dir = TempDir::new("ws");
    let err = open(&url, &GitAuth::from_secret(&data), &dir)
        .err()
        .expect("a wrong token is refused");
    assert!(err.to_string().contains("authentication"), "{err}");

    data.insert("bearerToken".to_string(), b"t0ken".to_vec());
    let auth = GitAuth::from_secret(&data);
    let dir = TempDir::new("ws");
    let ws = open(&url, &auth, &dir).expect("clone with the bearer token");
    bump(&ws, "5.0.2");
    ws.push(None, &BTreeMap::new())
        .expect("push with the bearer token");
    assert_eq!(bare.log("main", "%s")[0], "to 5.0.2");
}

#[test]
fn push_options_reach_the_server_hooks() {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    git(&bare.path(), &["config", "http.receivepack", "true"]);
    // receive-pack only accepts (and advertises) push options when asked to.
    git(
        &bare.path(),
        &["config", "receive.advertisePushOptions", "true"],
    );
    let seen = bare.root().join("push-options.txt");
    let hook = bare.path().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n\
             out='{}'\n\
             echo \"count=$GIT_PUSH_OPTION_COUNT\" > \"$out\"\n\
             i=0\n\
             while [ \"$i\" -lt \"${{GIT_PUSH_OPTION_COUNT:-0}}\" ]; do\n\
               eval \"echo \\\"\\$GIT_PUSH_OPTION_$i\\\"\" >> \"$out\"\n\
               i=$((i + 1))\n\
             done\n\
             cat > /dev/null\n",
            seen.display()
        ),
    )
    .expect("write hook");
    make_executable(&hook);
    let server = GitHttpServer::start(bare.root(), "git", "s3cret");

    let mut data = BTreeMap::new();
    data.insert("username".to_string(), b"git".to_vec());
    data.insert("password".to_string(), b"s3cret".to_vec());
    let dir = TempDir::new("ws");
    let ws = open(&server.url("repo.git"), &GitAuth::from_secret(&data), &dir).expect("open");
    bump(&ws, "5.0.4");
    // As in spec.git.push.options: a key with a value, and a bare flag.
    let options = BTreeMap::from([
        ("ci.skip".to_string(), String::new()),
        ("merge_request.create".to_string(), String::new()),
        ("merge_request.target".to_string(), "main".to_string()),
    ]);
    ws.push(None, &options).expect("push with options");
    assert_eq!(bare.log("main", "%s")[0], "to 5.0.4");
    let got = std::fs::read_to_string(&seen).expect("the hook ran");
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "count=3",
            "ci.skip",
            "merge_request.create",
            "merge_request.target=main"
        ],
        "{got}"
    );
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path).expect("hook").permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(path, perm).expect("chmod hook");
}
