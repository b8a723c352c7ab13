//! The Git side of an image update automation: check out the branch to
//! update, commit what the setters changed, and push without ever
//! overwriting commits that are not ours.
//!
//! Every push has receive-pack semantics: the remote's `git receive-pack`
//! updates each ref only if it still is what we fetched (compare-and-swap)
//! and runs the remote's hooks. HTTP(S) and SSH get that from the smart
//! protocol (libgit2); `file://` and plain-path remotes are pushed with the
//! `git` command, as libgit2's local transport does neither. The answer is
//! typed: a lost race ([`GitError::Rejected`], retry on the new tip) is not a
//! refusal ([`GitError::Declined`], with the remote's text).
//!
//! Blocking (git2, behind the default `git2` feature); async callers run it
//! on a blocking thread. Without the feature: the types and the
//! [`GitRemote`] trait the engine calls.

#[cfg(feature = "git2")]
mod ca;
mod known_hosts;
#[cfg(feature = "git2")]
mod pack;
#[cfg(feature = "git2")]
mod push;
mod remote;
mod sign;
#[cfg(feature = "git2")]
mod workspace;

pub use known_hosts::HostKeyError;
pub use sign::Signer;

pub use remote::{GitRemote, OpenRequest, Worktree};
#[cfg(feature = "git2")]
pub use workspace::{Git2, Workspace};

use std::collections::BTreeMap;
use tagwarden_api::GitRef;

/// What went wrong, by step.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("failed to checkout and determine revision: {0}")]
    Checkout(String),
    #[error("unable to clone '{url}': {message}")]
    Clone { url: String, message: String },
    #[error("failed to commit: {0}")]
    Commit(String),
    /// The signing key secret is unusable (bad key, wrong passphrase).
    #[error("failed to sign commit: {0}")]
    Sign(String),
    #[error("failed to push to '{branch}': {message}")]
    Push { branch: String, message: String },
    /// The remote branch moved since our fetch (or another push held it):
    /// re-apply on the new tip and push again.
    #[error("push to '{branch}' rejected: {message}")]
    Rejected { branch: String, message: String },
    /// The remote refused the update itself (a hook, a protected branch):
    /// pushing again cannot help. `remote` is what the server printed.
    #[error(
        "push to '{branch}' declined by the remote: {reason}{}",
        remote_text(remote)
    )]
    Declined {
        branch: String,
        reason: String,
        remote: Vec<String>,
    },
    #[error("invalid git configuration: {0}")]
    Config(String),
    /// The SSH server's host key is not the one in the secret's `known_hosts`.
    #[error("ssh: handshake with '{url}' failed: {reason}")]
    HostKey { url: String, reason: HostKeyError },
    /// The HTTPS server's certificate is trusted neither by the system nor
    /// by the secret's `ca.crt`.
    #[error("tls: certificate of '{url}' not trusted: {message}")]
    Certificate { url: String, message: String },
}

/// `; remote: LINE` per line the server printed.
fn remote_text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("; remote: {l}")).collect()
}

impl GitError {
    /// Retrying later may help (network, a moving branch).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitError::Clone { .. } | GitError::Push { .. } | GitError::Rejected { .. }
        )
    }
}

/// Credentials from a GitRepository's `secretRef`, as Flux reads them.
#[derive(Clone, Default)]
pub struct GitAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// Private key (PEM / OpenSSH) for ssh:// URLs.
    pub identity: Option<String>,
    pub known_hosts: Option<String>,
    /// PEM CA bundle (`ca.crt`) trusted for https:// URLs.
    pub ca_pem: Option<Vec<u8>>,
}

// Never print a secret, not even in debug output.
impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("known_hosts", &self.known_hosts.is_some())
            .field("ca_pem", &self.ca_pem.is_some())
            .finish()
    }
}

impl GitAuth {
    /// Reads `username`, `password`, `bearerToken`, `identity`, `known_hosts`, `ca.crt`.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> GitAuth {
        let text = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|v| !v.is_empty())
        };
        GitAuth {
            username: text("username"),
            password: text("password"),
            bearer_token: text("bearerToken"),
            identity: text("identity"),
            known_hosts: text("known_hosts"),
            ca_pem: data.get("ca.crt").filter(|v| !v.is_empty()).cloned(),
        }
    }
}

/// What to check out, resolved from `git.checkout.ref` or the GitRepository's `spec.ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    Branch(String),
    Tag(String),
    Semver(String),
    Commit(String),
}

impl Checkout {
    /// Flux's precedence: commit, then name, semver, tag, branch; `master` by default.
    pub fn from_ref(r: Option<&GitRef>) -> Checkout {
        let Some(r) = r else {
            return Checkout::Branch("master".into());
        };
        if let Some(c) = &r.commit {
            return Checkout::Commit(c.clone());
        }
        if let Some(n) = &r.name {
            if let Some(b) = n.strip_prefix("refs/heads/") {
                return Checkout::Branch(b.to_string());
            }
            if let Some(t) = n.strip_prefix("refs/tags/") {
                return Checkout::Tag(t.to_string());
            }
        }
        if let Some(s) = &r.semver {
            return Checkout::Semver(s.clone());
        }
        if let Some(t) = &r.tag {
            return Checkout::Tag(t.clone());
        }
        Checkout::Branch(r.branch.clone().unwrap_or_else(|| "master".into()))
    }
}
