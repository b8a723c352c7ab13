//! Signed commits (`spec.git.commit.signingKey`): OpenPGP keys made by gpg
//! and SSH keys made by ssh-keygen sign commits that real `git verify-commit`
//! accepts after the push.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use tagwarden_git::{Checkout, GitAuth, GitError, Signer, Workspace};
use tagwarden_testkit::{BareRepo, TempDir, ssh_keygen};

const DEPLOY: &str = "image: ghcr.io/stefanprodan/podinfo:5.0.0\n";

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Clones, edits, commits signed and pushes; returns the commit id.
fn signed_push(bare: &BareRepo, signer: &Signer) -> String {
    let dir = TempDir::new("ws");
    let ws = Workspace::open(
        &bare.url(),
        &Checkout::Branch("main".into()),
        None,
        &GitAuth::default(),
        &dir.path().join("checkout"),
    )
    .expect("open");
    std::fs::write(ws.path("deploy.yaml"), DEPLOY.replace("5.0.0", "5.0.3")).expect("edit");
    let oid = ws
        .commit_signed(
            "fluxcdbot",
            "fluxcdbot@example.com",
            "Update podinfo\n\nTo 5.0.3.",
            Some(signer),
        )
        .expect("commit")
        .expect("a change");
    ws.push(None, &BTreeMap::new()).expect("push");
    let sha = oid.to_string();
    assert_eq!(
        bare.log("main", "%H")[0],
        sha,
        "the branch moved to the signed commit"
    );
    assert_eq!(bare.log("main", "%an|%s")[0], "fluxcdbot|Update podinfo");
    sha
}

/// `git verify-commit` in the bare repository with extra config and env.
fn verify_commit(repo: &Path, sha: &str, config: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("git");
    cmd.current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo);
    for c in config {
        cmd.args(["-c", c]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["verify-commit", "-v", sha])
        .output()
        .expect("run git verify-commit")
}

fn verify_ssh(bare: &BareRepo, sha: &str, allowed_public_key: &str) -> Output {
    let dir = TempDir::new("signers");
    let file = dir.path().join("allowed_signers");
    std::fs::write(
        &file,
        format!("fluxcdbot@example.com {allowed_public_key}\n"),
    )
    .expect("write");
    verify_commit(
        &bare.path(),
        sha,
        &[
            "gpg.format=ssh",
            &format!("gpg.ssh.allowedSignersFile={}", file.display()),
        ],
        &[],
    )
}

fn ssh_round_trip(kind: &str, passphrase: &str) {
    let key = ssh_keygen(kind, passphrase, false);
    let mut data = vec![("identity", key.private.as_str())];
    if !passphrase.is_empty() {
        data.push(("password", passphrase));
    }
    let signer = Signer::from_secret(&secret(&data)).expect("ssh signer");
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let sha = signed_push(&bare, &signer);
    let raw = tagwarden_testkit::git(&bare.path(), &["cat-file", "commit", &sha]);
    assert!(
        raw.contains("gpgsig -----BEGIN SSH SIGNATURE-----"),
        "{raw}"
    );
    let out = verify_ssh(&bare, &sha, &key.public);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify-commit ({kind}): {stderr}");
    assert!(stderr.contains("Good \"git\" signature"), "{stderr}");
    // A signature by another key must not verify: the check is real.
    let other = ssh_keygen("ed25519", "", false);
    assert!(!verify_ssh(&bare, &sha, &other.public).status.success());
}

#[test]
fn ssh_signed_commit_passes_git_verify_commit() {
    ssh_round_trip("ed25519", "");
}

#[test]
fn ssh_signed_commit_with_an_encrypted_key() {
    ssh_round_trip("ed25519", "s3cret");
}

#[test]
fn ssh_signed_commit_with_rsa_and_ecdsa_keys() {
    ssh_round_trip("rsa", "");
    ssh_round_trip("ecdsa", "");
}

#[test]
fn ssh_signing_key_errors_name_the_cause_not_the_secret() {
    let key = ssh_keygen("ed25519", "right-pass", false);
    let err = Signer::from_secret(&secret(&[
        ("identity", &key.private),
        ("password", "wrong-pass"),
    ]))
    .expect_err("wrong password");
    assert!(matches!(err, GitError::Sign(_)), "{err:?}");
    assert!(err.to_string().contains("wrong 'password'"), "{err}");
    assert!(!err.to_string().contains("right-pass") && !err.to_string().contains("wrong-pass"));
    let err = Signer::from_secret(&secret(&[("identity", &key.private)])).expect_err("no password");
    assert!(err.to_string().contains("no 'password'"), "{err}");
    let err = Signer::from_secret(&secret(&[("identity", "not a key")])).expect_err("garbage");
    assert!(err.to_string().contains("invalid SSH signing key"), "{err}");
    let err = Signer::from_secret(&secret(&[("username", "x")])).expect_err("nothing");
    assert!(err.to_string().contains("git.asc"), "{err}");
}

/// A throwaway GNUPGHOME; its gpg-agent is stopped on drop.
struct GpgHome(TempDir);

impl GpgHome {
    fn new() -> GpgHome {
        let home = GpgHome(TempDir::new("gnupg"));
        let mut perms = std::fs::metadata(home.path()).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(home.path(), perms).expect("chmod");
        home
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn gpg(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = Command::new("gpg")
            .env("GNUPGHOME", self.path())
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run gpg (apt-get install gnupg)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write gpg stdin");
        let out = child.wait_with_output().expect("gpg output");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Generates a key from a `gpg --gen-key` parameter block and returns
    /// (armored secret key, armored public key).
    fn generate(&self, params: &str, passphrase: &str) -> (String, String) {
        let protection = if passphrase.is_empty() {
            "%no-protection\n".to_string()
        } else {
            format!("Passphrase: {passphrase}\n")
        };
        let batch = format!(
            "{params}{protection}Name-Real: Flux Bot\nName-Email: fluxcdbot@example.com\nExpire-Date: 0\n%commit\n"
        );
        self.gpg(&["--gen-key"], Some(&batch));
        let secret = self.gpg(
            &[
                "--passphrase",
                passphrase,
                "--armor",
                "--export-secret-keys",
                "fluxcdbot@example.com",
            ],
            None,
        );
        let public = self.gpg(&["--armor", "--export", "fluxcdbot@example.com"], None);
        (secret, public)
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn openpgp_round_trip(params: &str, passphrase: &str) {
    let signing = GpgHome::new();
    let (armored, public) = signing.generate(params, passphrase);
    let mut data = vec![("git.asc", armored.as_str())];
    if !passphrase.is_empty() {
        data.push(("passphrase", passphrase));
    }
    let signer = Signer::from_secret(&secret(&data)).expect("openpgp signer");
    let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
    let sha = signed_push(&bare, &signer);
    let raw = tagwarden_testkit::git(&bare.path(), &["cat-file", "commit", &sha]);
    assert!(
        raw.contains("gpgsig -----BEGIN PGP SIGNATURE-----"),
        "{raw}"
    );
    // Verify where only the public key is known, as a forge would.
    let verifying = GpgHome::new();
    verifying.gpg(&["--import"], Some(&public));
    let out = verify_commit(&bare.path(), &sha, &[], &[("GNUPGHOME", verifying.path())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify-commit: {stderr}");
    assert!(
        stderr.contains("Good signature from \"Flux Bot"),
        "{stderr}"
    );
    // Without the public key git must refuse: the signature is what is checked.
    let stranger = GpgHome::new();
    let out = verify_commit(&bare.path(), &sha, &[], &[("GNUPGHOME", stranger.path())]);
    assert!(!out.status.success());
}

#[test]
fn openpgp_signed_commit_passes_git_verify_commit_ed25519() {
    openpgp_round_trip("Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\n", "");
}

#[test]
fn openpgp_signed_commit_with_passphrase_rsa() {
    openpgp_round_trip("Key-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\n", "p4ss");
}

#[test]
fn openpgp_signed_commit_uses_the_signing_subkey() {
    openpgp_round_trip(
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: cert\n\
         Subkey-Type: EDDSA\nSubkey-Curve: ed25519\nSubkey-Usage: sign\n",
        "p4ss",
    );
}

#[test]
fn openpgp_key_errors_name_the_cause_not_the_secret() {
    let home = GpgHome::new();
    let (armored, _) = home.generate(
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\n",
        "right-pass",
    );
    let err = Signer::from_secret(&secret(&[
        ("git.asc", &armored),
        ("passphrase", "wrong-pass"),
    ]))
    .expect_err("wrong passphrase");
    assert!(matches!(err, GitError::Sign(_)), "{err:?}");
    assert!(err.to_string().contains("passphrase"), "{err}");
    assert!(!err.to_string().contains("right-pass") && !err.to_string().contains("wrong-pass"));
    let err = Signer::from_secret(&secret(&[("git.asc", &armored)])).expect_err("no passphrase");
    assert!(matches!(err, GitError::Sign(_)), "{err:?}");
    let err = Signer::from_secret(&secret(&[(
        "git.asc",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nnope\n",
    )]))
    .expect_err("garbage");
    assert!(err.to_string().contains("invalid OpenPGP key"), "{err}");
    // Debug output never carries key material.
    let ok = Signer::from_secret(&secret(&[
        ("git.asc", &armored),
        ("passphrase", "right-pass"),
    ]))
    .expect("right passphrase");
    let debug = format!("{ok:?}");
    assert!(
        debug.contains("OpenPgp") && !debug.contains("right-pass"),
        "{debug}"
    );
}
