//! Clone, commit and push over SSH against Debian's OpenSSH server, with the
//! deploy key and `known_hosts` of a GitRepository secret.

use std::collections::BTreeMap;
use tagwarden_git::{Checkout, GitAuth, GitError, HostKeyError, Workspace};
use tagwarden_testkit::{BareRepo, SshKeyPair, SshServer, TempDir, ssh_keygen};

const DEPLOY: &str = "image: ghcr.io/stefanprodan/podinfo:5.0.0\n";

fn secret(key: &SshKeyPair, passphrase: Option<&str>, known_hosts: Option<&str>) -> GitAuth {
    let mut data = BTreeMap::new();
    data.insert("identity".to_string(), key.private.clone().into_bytes());
    if let Some(p) = passphrase {
        data.insert("password".to_string(), p.as_bytes().to_vec());
    }
    if let Some(k) = known_hosts {
        data.insert("known_hosts".to_string(), k.as_bytes().to_vec());
    }
    GitAuth::from_secret(&data)
}

fn open(server: &SshServer, auth: &GitAuth, dir: &TempDir) -> Result<Workspace, GitError> {
    Workspace::open(
        &server.url("repo.git"),
        &Checkout::Branch("main".into()),
        None,
        auth,
        &dir.path().join("checkout"),
    )
}

/// Clones, edits, commits and pushes; the bare repository gets the commit.
fn round_trip(key: &SshKeyPair, passphrase: Option<&str>) {
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let server = SshServer::start(bare.root(), &key.public);
    let known_hosts = format!("# deploy target\n{}\n", server.known_hosts_line());
    let auth = secret(key, passphrase, Some(&known_hosts));
    let dir = TempDir::new("ws");
    let ws = open(&server, &auth, &dir)
        .unwrap_or_else(|e| panic!("clone over ssh: {e}\nsshd: {}", server.log()));
    std::fs::write(ws.path("deploy.yaml"), DEPLOY.replace("5.0.0", "5.0.3")).expect("edit");
    let oid = ws
        .commit("fluxcdbot", "fluxcdbot@example.com", "Update podinfo")
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("push over ssh: {e}\nsshd: {}", server.log()));
    assert_eq!(bare.log("main", "%H")[0], oid.to_string());
    assert!(bare.show("main", "deploy.yaml").contains("5.0.3"));
}

#[test]
fn clone_commit_push_over_ssh_with_an_ed25519_deploy_key() {
    round_trip(&ssh_keygen("ed25519", "", false), None);
}

#[test]
fn clone_commit_push_over_ssh_with_an_encrypted_ed25519_key() {
    round_trip(&ssh_keygen("ed25519", "s3cret", false), Some("s3cret"));
}

#[test]
fn clone_commit_push_over_ssh_with_rsa_and_ecdsa_keys() {
    round_trip(&ssh_keygen("rsa", "", false), None);
    round_trip(&ssh_keygen("rsa", "", true), None);
    round_trip(&ssh_keygen("ecdsa", "", false), None);
    round_trip(&ssh_keygen("ecdsa", "", true), None);
}

#[test]
fn hashed_known_hosts_entry_is_accepted() {
    let key = ssh_keygen("ed25519", "", false);
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let server = SshServer::start(bare.root(), &key.public);
    // Hash the line the way `ssh-keygen -H` does for ~/.ssh/known_hosts.
    let file = TempDir::new("kh");
    let path = file.path().join("known_hosts");
    std::fs::write(&path, format!("{}\n", server.known_hosts_line())).expect("write");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen -H");
    assert!(out.status.success());
    let hashed = std::fs::read_to_string(&path).expect("read");
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let dir = TempDir::new("ws");
    open(&server, &secret(&key, None, Some(&hashed)), &dir).expect("clone with hashed entry");
}

#[test]
fn wrong_host_key_is_a_host_key_mismatch() {
    let key = ssh_keygen("ed25519", "", false);
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let server = SshServer::start(bare.root(), &key.public);
    let impostor = ssh_keygen("ed25519", "", false);
    let wrong = format!("[127.0.0.1]:{} {}", server.port, impostor.public);
    let dir = TempDir::new("ws");
    let err = open(&server, &secret(&key, None, Some(&wrong)), &dir)
        .err()
        .expect("a host key we do not know");
    assert!(
        matches!(
            &err,
            GitError::HostKey {
                reason: HostKeyError::Mismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("host key mismatch"), "{err}");
    // The entry for another host (or port) does not count as a match either.
    let other_port = format!("[127.0.0.1]:1 {}", server.host_key_pub);
    let err = open(
        &server,
        &secret(&key, None, Some(&other_port)),
        &TempDir::new("ws"),
    )
    .err()
    .expect("no entry for this port");
    assert!(err.to_string().contains("unknown host key"), "{err}");
}

#[test]
fn missing_known_hosts_is_refused() {
    let key = ssh_keygen("ed25519", "", false);
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let server = SshServer::start(bare.root(), &key.public);
    let dir = TempDir::new("ws");
    let err = open(&server, &secret(&key, None, None), &dir)
        .err()
        .expect("no known_hosts, no trust");
    assert!(
        matches!(
            &err,
            GitError::HostKey {
                reason: HostKeyError::NoKnownHosts,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("known_hosts"), "{err}");
}

#[test]
fn wrong_deploy_key_is_an_authentication_error() {
    let key = ssh_keygen("ed25519", "", false);
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let server = SshServer::start(bare.root(), &key.public);
    let stranger = ssh_keygen("ed25519", "", false);
    let dir = TempDir::new("ws");
    let err = open(
        &server,
        &secret(&stranger, None, Some(&server.known_hosts_line())),
        &dir,
    )
    .err()
    .expect("key not authorized");
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(err.to_string().contains("authentication"), "{err}");
}

#[test]
fn wrong_passphrase_is_an_error_not_a_prompt() {
    let key = ssh_keygen("ed25519", "right", false);
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let server = SshServer::start(bare.root(), &key.public);
    let dir = TempDir::new("ws");
    let err = open(
        &server,
        &secret(&key, Some("wrong"), Some(&server.known_hosts_line())),
        &dir,
    )
    .err()
    .expect("wrong passphrase");
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(!err.to_string().contains("right"), "{err}");
}
