//! Smart HTTP over TLS with a private CA, trusted through the secret's
//! `ca.crt` as Flux's GitRepository does.

use std::collections::BTreeMap;
use tagwarden_git::{Checkout, GitAuth, GitError, Workspace};
use tagwarden_testkit::{BareRepo, GitHttpServer, Pki, TempDir};

const DEPLOY: &str = "image: ghcr.io/stefanprodan/podinfo:5.0.0\n";

struct Fixture {
    bare: BareRepo,
    pki: Pki,
    server: GitHttpServer,
    _pki_dir: TempDir,
}

fn serve() -> Fixture {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    tagwarden_testkit::git(&bare.path(), &["config", "http.receivepack", "true"]);
    let pki_dir = TempDir::new("pki");
    let pki = Pki::generate(pki_dir.path());
    let server = GitHttpServer::start_tls(bare.root(), "git", "s3cret", &pki);
    Fixture {
        bare,
        pki,
        server,
        _pki_dir: pki_dir,
    }
}

fn secret(ca: Option<&[u8]>) -> GitAuth {
    let mut data = BTreeMap::new();
    data.insert("username".to_string(), b"git".to_vec());
    data.insert("password".to_string(), b"s3cret".to_vec());
    if let Some(ca) = ca {
        data.insert("ca.crt".to_string(), ca.to_vec());
    }
    GitAuth::from_secret(&data)
}

fn open(url: &str, auth: &GitAuth, dir: &TempDir) -> Result<Workspace, GitError> {
    Workspace::open(
        url,
        &Checkout::Branch("main".into()),
        None,
        auth,
        &dir.path().join("checkout"),
    )
}

#[test]
fn clone_commit_and_push_over_https_trusting_ca_crt() {
    let f = serve();
    let url = f.server.url("repo.git");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let auth = secret(Some(f.pki.ca_pem.as_bytes()));
    assert!(auth.ca_pem.is_some(), "ca.crt read from the secret");
    let dir = TempDir::new("ws");
    let ws = open(&url, &auth, &dir).expect("clone over https");
    let p = ws.path("deploy.yaml");
    let text = std::fs::read_to_string(&p).expect("read");
    std::fs::write(&p, text.replace("5.0.0", "5.0.1")).expect("write");
    let oid = ws
        .commit("bot", "bot@example.com", "over https")
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push over https");
    assert_eq!(f.bare.log("main", "%H")[0], oid.to_string());
    assert!(f.bare.show("main", "deploy.yaml").contains("5.0.1"));
}

#[test]
fn https_without_ca_crt_is_a_certificate_error() {
    let f = serve();
    let dir = TempDir::new("ws");
    let err = open(&f.server.url("repo.git"), &secret(None), &dir)
        .err()
        .expect("the private CA is not trusted");
    assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("certificate"), "{msg}");
    assert!(msg.contains("ca.crt"), "says how to fix it: {msg}");
    assert!(!err.is_transient(), "retrying will not fix trust");
}

#[test]
fn https_with_another_ca_is_a_certificate_error() {
    let f = serve();
    let other_dir = TempDir::new("pki-other");
    let other = Pki::generate(other_dir.path());
    let dir = TempDir::new("ws");
    let err = open(
        &f.server.url("repo.git"),
        &secret(Some(other.ca_pem.as_bytes())),
        &dir,
    )
    .err()
    .expect("signed by a different CA");
    assert!(matches!(err, GitError::Certificate { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not signed by the CA in ca.crt"),
        "{err}"
    );
}

#[test]
fn a_ca_crt_that_is_not_pem_is_a_config_error() {
    let dir = TempDir::new("ws");
    let err = open(
        "https://127.0.0.1:1/repo.git",
        &secret(Some(b"not a certificate")),
        &dir,
    )
    .err()
    .expect("bad ca.crt");
    assert!(matches!(err, GitError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
}
