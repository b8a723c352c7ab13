//! What the engine asks of Git, as traits: open a working copy on the
//! branch to push, commit (signed), push with compare-and-swap, start over
//! on the new tip after a lost race. Drivers wire [`crate::Git2`].

use crate::{Checkout, GitAuth, GitError, Signer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how to open a working copy.
#[derive(Debug, Clone)]
pub struct OpenRequest<'a> {
    pub url: &'a str,
    pub checkout: &'a Checkout,
    /// `spec.git.push.branch`; the checkout branch when `None`.
    pub push_branch: Option<&'a str>,
    pub auth: &'a GitAuth,
    /// An empty or missing private folder for the clone.
    pub dir: &'a Path,
    /// The GitRepository's `spec.timeout`, bounding network steps.
    pub timeout: Option<Duration>,
    /// The push branch is ours alone (a pull request's head): start from
    /// the checkout every time and replace the remote branch, leased on the
    /// tip fetched.
    pub rebuild: bool,
    /// Check out only this path (the automation's `update.path`) when the
    /// tree allows it; `None` or `.`: everything.
    pub sparse: Option<&'a str>,
}

/// A Git implementation: opens working copies. Blocking.
pub trait GitRemote: Send + Sync {
    fn open(&self, request: &OpenRequest<'_>) -> Result<Box<dyn Worktree>, GitError>;
}

/// A working copy on the branch we push to. Blocking.
pub trait Worktree {
    /// The folder the files are in.
    fn workdir(&self) -> &Path;

    /// The branch commits go to.
    fn push_branch(&self) -> &str;

    /// What the work started from, as Flux writes a source revision:
    /// `<branch>@sha1:<commit>`.
    fn revision(&self) -> String;

    /// Commits `files` (the paths the update wrote, in the working tree)
    /// on top of where the work started, signed when `signer` is given;
    /// `None` when nothing changed. The commit id as hex.
    fn commit(
        &self,
        name: &str,
        email: &str,
        message: &str,
        signer: Option<&Signer>,
        files: &[PathBuf],
    ) -> Result<Option<String>, GitError>;

    /// Pushes the branch (and `extra_refspec`), replacing only the tip we
    /// fetched: [`GitError::Rejected`] on a lost race, [`GitError::Declined`]
    /// when the remote refuses.
    fn push(
        &self,
        extra_refspec: Option<&str>,
        options: &BTreeMap<String, String>,
    ) -> Result<(), GitError>;

    /// After a lost race: fetch the new tip and reset to it, dropping our
    /// commit (the caller re-applies its change).
    fn refresh(&mut self) -> Result<(), GitError>;

    /// Whether the remote push branch already holds exactly the tree of
    /// our last commit (a rebuilt branch with nothing new).
    fn remote_has_our_tree(&self) -> bool {
        false
    }

    /// The last commit against where the work started, as a unified diff.
    fn diff(&self) -> Result<String, GitError> {
        Ok(String::new())
    }
}
