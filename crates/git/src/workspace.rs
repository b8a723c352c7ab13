//! The libgit2 working copy: clone, commit (signed), push with
//! compare-and-swap over every transport.

use crate::pack;
use crate::push::{self, LocalPush, LocalPushError, PushReport, RefOutcome};
use crate::{Checkout, GitAuth, GitError, HostKeyError, Signer, ca, known_hosts};
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, IndexAddOption, Oid,
    PushOptions, RemoteCallbacks, Repository, Signature,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Host and port of an `ssh://[user@]host[:port]/path` or scp-like
/// `[user@]host:path` URL.
fn ssh_host_port(url: &str) -> Option<(String, u16)> {
    if let Some(rest) = url.strip_prefix("ssh://") {
        let authority = rest.split('/').next()?;
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => 22,
            };
            return Some((host.to_string(), port));
        }
        return match hostport.split_once(':') {
            Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
            None => Some((hostport.to_string(), 22)),
        };
    }
    let (userhost, _) = url.split_once(':')?;
    let host = userhost.rsplit_once('@').map_or(userhost, |(_, h)| h);
    Some((host.to_string(), 22))
}

/// A working copy on the branch we push to.
pub struct Workspace {
    repo: Repository,
    url: String,
    auth: GitAuth,
    /// The branch we commit on and push to.
    pub push_branch: String,
    /// The commit we started from (the remote tip of `push_branch`, or the checkout).
    pub base: Oid,
    /// The remote's `push_branch` as last fetched (`None`: it does not
    /// exist there); a push only replaces exactly this.
    remote_tip: Cell<Option<Oid>>,
    /// Bounds a `git push` child (local remotes).
    timeout: Duration,
    /// Why the last SSH host key check failed: libgit2 only says "cancelled".
    host_key_error: RefCell<Option<HostKeyError>>,
    /// The secret's `ca.crt`, parsed once.
    ca: Option<ca::CaTrust>,
    /// Why `ca.crt` did not vouch for the last TLS certificate seen.
    ca_error: RefCell<Option<String>>,
    /// The checkout's commit (where a rebuilt branch starts).
    start: Oid,
    /// The push branch is ours alone (a pull request's head): rebuilt from
    /// the checkout each run, and replaced, still only if its tip is the one
    /// we fetched.
    rebuild: bool,
    /// `update.path` (slash-separated, inside the checkout) when only it is
    /// checked out; `None`: the whole tree.
    sparse: Option<String>,
    /// The working tree's real path, to name committed files relative to it.
    real_workdir: PathBuf,
}

const REMOTE: &str = "origin";
/// Flux's default `GitRepository` timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `file://` and plain-path URLs: libgit2 would push them with its local
/// transport, which neither compares-and-swaps nor runs hooks.
fn is_local(url: &str) -> bool {
    url.starts_with("file://")
        || url.starts_with('/')
        || url.starts_with("./")
        || url.starts_with("../")
}

impl Workspace {
    /// Clones `url` into `dir` (an empty or missing folder) and checks out
    /// the branch to push: `push_branch` when it exists remotely (so earlier
    /// automation commits there are kept), otherwise a new branch of that
    /// name at the checkout.
    pub fn open(
        url: &str,
        checkout: &Checkout,
        push_branch: Option<&str>,
        auth: &GitAuth,
        dir: &Path,
    ) -> Result<Workspace, GitError> {
        Workspace::open_sparse(url, checkout, push_branch, auth, dir, None)
    }

    /// [`Workspace::open`], checking out only `sparse` (an update path,
    /// as Flux's `GitSparseCheckout`) when the tree allows it: no symlink
    /// on or under it, no pattern characters in it. Commit with
    /// [`Workspace::commit_files`].
    pub fn open_sparse(
        url: &str,
        checkout: &Checkout,
        push_branch: Option<&str>,
        auth: &GitAuth,
        dir: &Path,
        sparse: Option<&str>,
    ) -> Result<Workspace, GitError> {
        let clone_err = |e: git2::Error| GitError::Clone {
            url: url.to_string(),
            message: e.message().to_string(),
        };
        let ca = auth
            .ca_pem
            .as_deref()
            .map(ca::CaTrust::from_pem)
            .transpose()
            .map_err(GitError::Config)?;
        let repo = Repository::init(dir).map_err(clone_err)?;
        repo.remote(REMOTE, url).map_err(clone_err)?;
        let real_workdir = dir.canonicalize().map_err(|e| GitError::Clone {
            url: url.to_string(),
            message: format!("{}: {e}", dir.display()),
        })?;
        let push_branch = match (push_branch, checkout) {
            (Some(p), _) => p.to_string(),
            (None, Checkout::Branch(b)) => b.clone(),
            (None, other) => {
                return Err(GitError::Config(format!(
                    "push branch needed: checkout ref {other:?} is not a branch"
                )));
            }
        };
        let mut ws = Workspace {
            repo,
            url: url.to_string(),
            auth: auth.clone(),
            push_branch,
            base: Oid::zero(),
            remote_tip: Cell::new(None),
            timeout: DEFAULT_TIMEOUT,
            host_key_error: RefCell::new(None),
            ca,
            ca_error: RefCell::new(None),
            start: Oid::zero(),
            rebuild: false,
            sparse: sparse.and_then(normal_path),
            real_workdir,
        };
        let start = ws.resolve_checkout(checkout)?;
        ws.start = start;
        // Pushing to the checkout branch: its tip is already fetched.
        let remote_tip = if *checkout == Checkout::Branch(ws.push_branch.clone()) {
            Some(start)
        } else {
            ws.fetch_branch(&ws.push_branch.clone())?
        };
        ws.remote_tip.set(remote_tip);
        ws.reset_to(remote_tip.unwrap_or(start))?;
        Ok(ws)
    }

    /// Makes the push branch a copy of the checkout plus our commit, each
    /// run: it starts from the checkout, and the push replaces the remote
    /// branch (whatever it holds, as long as it is the tip we fetched).
    pub fn rebuild_from_checkout(&mut self) -> Result<(), GitError> {
        self.rebuild = true;
        self.reset_to(self.start)
    }

    /// Whether the remote push branch already holds exactly our working
    /// tree's commit tree (nothing to push).
    pub fn remote_has_our_tree(&self) -> bool {
        let tree = |oid: Oid| self.repo.find_commit(oid).ok().map(|c| c.tree_id());
        let Some(remote) = self.remote_tip.get() else {
            return false;
        };
        let head = self.repo.head().ok().and_then(|h| h.target());
        head.is_some() && head.and_then(tree) == tree(remote)
    }

    /// The last commit's change against where the work started, as a
    /// unified diff (for plans; nothing is pushed).
    pub fn diff(&self) -> Result<String, GitError> {
        let err = |e: git2::Error| GitError::Commit(e.message().to_string());
        let base = self
            .repo
            .find_commit(self.base)
            .map_err(err)?
            .tree()
            .map_err(err)?;
        let head = self
            .repo
            .head()
            .and_then(|h| h.peel_to_tree())
            .map_err(err)?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&base), Some(&head), None)
            .map_err(err)?;
        let mut out = String::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                out.push(line.origin());
            }
            out.push_str(&String::from_utf8_lossy(line.content()));
            // A plan stays readable: cap it.
            out.len() < 1 << 20
        })
        .map_err(err)?;
        Ok(out)
    }

    /// Bounds each `git push` to a local remote (default 60 s, Flux's
    /// `GitRepository` timeout); a push still running then is killed.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The folder the files are in.
    pub fn workdir(&self) -> &Path {
        self.repo.workdir().unwrap_or_else(|| self.repo.path())
    }

    fn resolve_checkout(&self, checkout: &Checkout) -> Result<Oid, GitError> {
        match checkout {
            Checkout::Branch(b) => self.fetch_branch(b)?.ok_or_else(|| {
                GitError::Checkout(format!(
                    "unable to clone '{}': couldn't find remote ref 'refs/heads/{b}'",
                    self.url
                ))
            }),
            Checkout::Tag(t) => {
                self.fetch(&[&format!("+refs/tags/{t}:refs/tags/{t}")], true)?;
                self.peel(&format!("refs/tags/{t}"))
            }
            Checkout::Semver(range) => {
                let constraint = tagwarden_policy::Range::parse(range)
                    .map_err(|e| GitError::Config(format!("spec.ref.semver: {e}")))?;
                self.fetch(&["+refs/tags/*:refs/tags/*"], false)?;
                let names = self
                    .repo
                    .tag_names(None)
                    .map_err(|e| GitError::Checkout(e.message().to_string()))?;
                let best = names
                    .iter()
                    .flatten()
                    .filter_map(|t| {
                        let v = tagwarden_policy::parse_tag(t).ok()?;
                        constraint.matches(&v).then_some((v, t.to_string()))
                    })
                    .max_by(|a, b| tagwarden_policy::precedence(&a.0, &b.0));
                let (_, tag) = best.ok_or_else(|| {
                    GitError::Checkout(format!("no tag matches semver range '{range}'"))
                })?;
                self.peel(&format!("refs/tags/{tag}"))
            }
            Checkout::Commit(sha) => {
                // Servers refuse fetching an arbitrary sha; take the branches and find it.
                self.fetch(&["+refs/heads/*:refs/remotes/origin/*"], false)?;
                let oid = Oid::from_str(sha).map_err(|_| {
                    GitError::Config(format!("spec.ref.commit: '{sha}' is not a commit id"))
                })?;
                self.repo
                    .find_commit(oid)
                    .map(|c| c.id())
                    .map_err(|_| GitError::Checkout(format!("commit '{sha}' not found")))
            }
        }
    }

    fn peel(&self, refname: &str) -> Result<Oid, GitError> {
        self.repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| GitError::Checkout(format!("{refname}: {}", e.message())))
    }

    /// Fetches one branch; `None` when the remote has no such branch.
    fn fetch_branch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let remote_ref = format!("refs/remotes/{REMOTE}/{branch}");
        // Forget what we knew: a branch deleted remotely must read as missing.
        if let Ok(mut r) = self.repo.find_reference(&remote_ref) {
            let _ = r.delete();
        }
        self.fetch(&[&format!("+refs/heads/{branch}:{remote_ref}")], true)?;
        Ok(self
            .repo
            .find_reference(&remote_ref)
            .ok()
            .and_then(|r| r.target()))
    }

    /// Shallow fetches save time and memory on big histories; libgit2's
    /// local transport cannot do them.
    fn shallow(&self) -> bool {
        !is_local(&self.url)
    }

    fn fetch(&self, refspecs: &[&str], shallow: bool) -> Result<(), GitError> {
        let mut remote = self.repo.find_remote(REMOTE).map_err(|e| GitError::Clone {
            url: self.url.clone(),
            message: e.message().to_string(),
        })?;
        let headers = self.headers();
        let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks())
            .download_tags(AutotagOption::None)
            .custom_headers(&header_refs);
        if shallow && self.shallow() {
            opts.depth(1);
        }
        let result = remote.fetch(refspecs, Some(&mut opts), None);
        drop(opts);
        result.map_err(|e| {
            self.connect_failure(&e).unwrap_or_else(|| GitError::Clone {
                url: self.url.clone(),
                message: e.message().to_string(),
            })
        })
    }

    /// The host key or TLS certificate refusal behind a failed connection,
    /// if that was the cause.
    fn connect_failure(&self, e: &git2::Error) -> Option<GitError> {
        let ca_error = self.ca_error.borrow_mut().take();
        if let Some(reason) = self.host_key_error.borrow_mut().take() {
            return Some(GitError::HostKey {
                url: self.url.clone(),
                reason,
            });
        }
        // libgit2 reports OpenSSL's verdict as class Ssl (ECERTIFICATE, or -1
        // after our passthrough).
        if e.class() != git2::ErrorClass::Ssl && e.code() != git2::ErrorCode::Certificate {
            return None;
        }
        let message = match (&self.ca, ca_error) {
            (None, _) => format!(
                "{}; set ca.crt in the GitRepository's secretRef to trust a private CA",
                e.message()
            ),
            (Some(_), Some(why)) => format!("{}; ca.crt: {why}", e.message()),
            (Some(_), None) => e.message().to_string(),
        };
        Some(GitError::Certificate {
            url: self.url.clone(),
            message,
        })
    }

    fn headers(&self) -> Vec<String> {
        self.auth
            .bearer_token
            .iter()
            .map(|t| format!("Authorization: Bearer {t}"))
            .collect()
    }

    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let auth = &self.auth;
        let mut cb = RemoteCallbacks::new();
        let tries = RefCell::new(0u32);
        cb.credentials(move |_url, user_from_url, allowed| {
            // Without a user in the URL libgit2 first asks for one alone.
            if allowed == CredentialType::USERNAME {
                return Cred::username(auth.username.as_deref().unwrap_or("git"));
            }
            // libgit2 asks again after a refusal; a second ask means the
            // credentials are wrong, and looping would never end.
            *tries.borrow_mut() += 1;
            if *tries.borrow() > 1 {
                return Err(git2::Error::from_str(
                    "authentication failed: check the credentials in the GitRepository's secretRef",
                ));
            }
            if allowed.contains(CredentialType::SSH_KEY)
                && let Some(key) = &auth.identity
            {
                let user = user_from_url.or(auth.username.as_deref()).unwrap_or("git");
                return Cred::ssh_key_from_memory(user, None, key, auth.password.as_deref());
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let (Some(u), Some(p)) = (&auth.username, &auth.password)
            {
                return Cred::userpass_plaintext(u, p);
            }
            Err(git2::Error::from_str(
                "authentication required but no credentials in the GitRepository's secretRef",
            ))
        });
        let host_key_error = &self.host_key_error;
        let (ca, ca_error) = (&self.ca, &self.ca_error);
        let url = self.url.as_str();
        cb.certificate_check(move |cert, host| {
            if let Some(x509) = cert.as_x509() {
                // git2 hides libgit2's own verdict, so a certificate ca.crt
                // vouches for is accepted and anything else is left to
                // libgit2 (system store, host name): trust is the union.
                let Some(ca) = ca else {
                    return Ok(CertificateCheckStatus::CertificatePassthrough);
                };
                return match ca.verify(x509.data(), host) {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(why) => {
                        ca_error.replace(Some(why));
                        Ok(CertificateCheckStatus::CertificatePassthrough)
                    }
                };
            }
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let Some((host, port)) = ssh_host_port(url) else {
                return Err(git2::Error::from_str(
                    "ssh: cannot read the host of the URL",
                ));
            };
            let name = known_hosts::host_entry_name(&host, port);
            let Some(key) = hostkey.hostkey() else {
                return Err(git2::Error::from_str("ssh: the server sent no host key"));
            };
            match known_hosts::verify(auth.known_hosts.as_deref(), &name, key) {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(reason) => {
                    tracing::warn!(host = %name, %reason, "ssh host key refused");
                    let message = reason.to_string();
                    host_key_error.replace(Some(reason));
                    Err(git2::Error::from_str(&message))
                }
            }
        });
        cb
    }

    fn reset_to(&mut self, oid: Oid) -> Result<(), GitError> {
        let err = |e: git2::Error| GitError::Checkout(e.message().to_string());
        let commit = self.repo.find_commit(oid).map_err(err)?;
        let refname = format!("refs/heads/{}", self.push_branch);
        self.repo
            .reference(&refname, oid, true, "tagwarden: start from remote tip")
            .map_err(err)?;
        self.repo.set_head(&refname).map_err(err)?;
        let tree = commit.tree().map_err(err)?;
        let only = self
            .sparse
            .as_deref()
            .and_then(|p| sparse_path(&self.repo, &tree, p));
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.force().remove_untracked(true);
        if let Some(paths) = &only {
            // Exact paths: a `*` in a folder name is not a pattern.
            checkout.disable_pathspec_match(true);
            for path in paths {
                checkout.path(path);
            }
        }
        self.repo
            .reset(
                commit.as_object(),
                git2::ResetType::Hard,
                Some(&mut checkout),
            )
            .map_err(err)?;
        tracing::debug!(commit = %oid, sparse = ?only, "checked out");
        self.base = oid;
        Ok(())
    }

    /// Commits every change in the working tree; `None` when nothing changed.
    pub fn commit(&self, name: &str, email: &str, message: &str) -> Result<Option<Oid>, GitError> {
        self.commit_signed(name, email, message, None)
    }

    /// [`Workspace::commit`], signed with `signer` when given (the `gpgsig`
    /// header `git verify-commit` checks).
    pub fn commit_signed(
        &self,
        name: &str,
        email: &str,
        message: &str,
        signer: Option<&Signer>,
    ) -> Result<Option<Oid>, GitError> {
        let err = |e: git2::Error| GitError::Commit(e.message().to_string());
        if self.sparse.is_some() {
            // Files outside the sparse path are absent, not deleted.
            return Err(GitError::Commit(
                "a sparse checkout commits the files it wrote (commit_files), not its whole tree"
                    .into(),
            ));
        }
        let mut index = self.repo.index().map_err(err)?;
        index
            .add_all(["*"], IndexAddOption::DEFAULT, None)
            .map_err(err)?;
        index.update_all(["*"], None).map_err(err)?;
        index.write().map_err(err)?;
        let tree_id = index.write_tree().map_err(err)?;
        self.commit_tree(tree_id, name, email, message, signer)
    }

    /// Commits `files` (paths in the working tree, as written) on top of
    /// where the work started, every other path as it was: nothing else is
    /// read, so a big checkout costs only what changed, and a sparse one
    /// keeps what it did not check out. `None` when nothing changed.
    pub fn commit_files(
        &self,
        name: &str,
        email: &str,
        message: &str,
        signer: Option<&Signer>,
        files: &[PathBuf],
    ) -> Result<Option<Oid>, GitError> {
        let rels = files
            .iter()
            .map(|file| {
                file.strip_prefix(&self.real_workdir)
                    .or_else(|_| file.strip_prefix(self.workdir()))
                    .ok()
                    .and_then(|r| normal_path(&r.to_string_lossy()))
                    .filter(|r| r != ".")
                    .ok_or_else(|| {
                        GitError::Commit(format!("{} is not inside the checkout", file.display()))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tree_id = self.write_tree_packed(&rels)?;
        self.commit_tree(tree_id, name, email, message, signer)
    }

    /// Writes the blobs of `rels` and the trees above them as one pack, not
    /// a loose file each (a thousand file creations were most of a commit's
    /// time): they are made in memory on a second handle, with the same
    /// `.gitattributes` filters `git add` applies, then packed without
    /// deltas. Returns the new root tree.
    fn write_tree_packed(&self, rels: &[String]) -> Result<Oid, GitError> {
        let err = |e: git2::Error| GitError::Commit(e.message().to_string());
        let scratch = Repository::open(self.repo.path()).map_err(err)?;
        let odb = scratch.odb().map_err(err)?;
        let _memory = odb.add_new_mempack_backend(1000).map_err(err)?;
        let base = scratch
            .find_commit(self.base)
            .and_then(|c| c.tree())
            .map_err(err)?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        let mut objects = Vec::with_capacity(rels.len() + 8);
        // libgit2 does not cache trees over 4 KiB: a lookup by path would
        // read and parse a big folder again for every file in it.
        let mut folders: BTreeMap<&str, Option<git2::Tree<'_>>> = BTreeMap::new();
        for rel in rels {
            let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
            let folder = folders.entry(dir).or_insert_with(|| match dir {
                "" => Some(base.clone()),
                d => base
                    .get_path(Path::new(d))
                    .ok()
                    .and_then(|e| e.to_object(&scratch).ok())
                    .and_then(|o| o.into_tree().ok()),
            });
            // Keep an executable bit; anything else written is a plain file.
            let mode = match folder
                .as_ref()
                .and_then(|t| t.get_name(file))
                .map(|e| e.filemode())
            {
                Some(0o100755) => git2::FileMode::BlobExecutable,
                _ => git2::FileMode::Blob,
            };
            let blob = scratch.blob_path(&self.workdir().join(rel)).map_err(err)?;
            update.upsert(rel.as_str(), blob, mode);
            objects.push(blob);
        }
        let tree_id = update.create_updated(&scratch, &base).map_err(err)?;
        // The trees that changed: the root and every folder above a file.
        let root = scratch.find_tree(tree_id).map_err(err)?;
        objects.push(tree_id);
        let mut dirs = std::collections::BTreeSet::new();
        for rel in rels {
            let mut dir = Path::new(rel).parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                if !dirs.insert(d.to_path_buf()) {
                    break;
                }
                dir = d.parent();
            }
        }
        for d in &dirs {
            objects.push(root.get_path(d).map_err(err)?.id());
        }
        objects.sort();
        objects.dedup();
        let pack = pack::build(&odb, &objects).map_err(err)?;
        let main = self.repo.odb().map_err(err)?;
        let mut writer = main.packwriter().map_err(err)?;
        std::io::Write::write_all(&mut writer, &pack)
            .map_err(|e| GitError::Commit(format!("writing the pack: {e}")))?;
        writer.commit().map_err(err)?;
        Ok(tree_id)
    }

    fn commit_tree(
        &self,
        tree_id: Oid,
        name: &str,
        email: &str,
        message: &str,
        signer: Option<&Signer>,
    ) -> Result<Option<Oid>, GitError> {
        let err = |e: git2::Error| GitError::Commit(e.message().to_string());
        let parent = self.repo.find_commit(self.base).map_err(err)?;
        if parent.tree_id() == tree_id {
            return Ok(None);
        }
        let tree = self.repo.find_tree(tree_id).map_err(err)?;
        let sig = Signature::now(name, email).map_err(err)?;
        let Some(signer) = signer else {
            let oid = self
                .repo
                .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
                .map_err(err)?;
            return Ok(Some(oid));
        };
        // Sign the exact bytes of the commit object, then write it with the
        // signature in its header; HEAD is moved by hand as commit_signed won't.
        let buf = self
            .repo
            .commit_create_buffer(&sig, &sig, message, &tree, &[&parent])
            .map_err(err)?;
        let content = buf
            .as_str()
            .ok_or_else(|| GitError::Commit("commit object is not UTF-8".into()))?;
        let signature = signer.sign(content.as_bytes())?;
        let oid = self
            .repo
            .commit_signed(content, &signature, Some("gpgsig"))
            .map_err(err)?;
        let refname = format!("refs/heads/{}", self.push_branch);
        self.repo
            .reference(&refname, oid, true, "tagwarden: signed commit")
            .map_err(err)?;
        tracing::debug!(commit = %oid, signer = ?signer, "signed commit");
        Ok(Some(oid))
    }

    /// Pushes the push branch (and `extra_refspec`), never forced: the
    /// branch is replaced only if the remote still has the tip we fetched.
    /// A lost race gives [`GitError::Rejected`] (refresh and retry), a
    /// refusal by the server [`GitError::Declined`] with the remote's text.
    pub fn push(
        &self,
        extra_refspec: Option<&str>,
        push_options: &BTreeMap<String, String>,
    ) -> Result<(), GitError> {
        let branch = self.push_branch.clone();
        let options: Vec<String> = push_options
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        // A rebuilt branch is replaced ('+'), still leased on the fetched tip.
        let force = if self.rebuild { "+" } else { "" };
        let mut specs = vec![format!("{force}refs/heads/{branch}:refs/heads/{branch}")];
        if let Some(extra) = extra_refspec {
            // A refspec may never force: strip a leading '+'.
            specs.push(extra.trim_start_matches('+').to_string());
        }
        let report = if is_local(&self.url) {
            self.push_local(&specs, &options)?
        } else {
            self.push_remote(&specs, &options)?
        };
        let describe = |refname: &str, reason: &str| format!("{refname}: {reason}");
        let mut declined = Vec::new();
        let mut races = Vec::new();
        for (refname, outcome) in &report.refs {
            match outcome {
                RefOutcome::Updated => {}
                RefOutcome::Race(r) => races.push(describe(refname, r)),
                RefOutcome::Declined(r) => declined.push(describe(refname, r)),
            }
        }
        // A refusal wins over a race: retrying would only be refused again.
        if !declined.is_empty() {
            tracing::warn!(branch = %branch, reason = %declined.join(", "), remote = ?report.remote, "push declined by the remote");
            return Err(GitError::Declined {
                branch,
                reason: declined.join(", "),
                remote: report.remote,
            });
        }
        if !races.is_empty() {
            return Err(GitError::Rejected {
                branch,
                message: races.join(", "),
            });
        }
        let head = self
            .repo
            .refname_to_id(&format!("refs/heads/{branch}"))
            .map_err(|e| GitError::Push {
                branch: branch.clone(),
                message: e.message().to_string(),
            })?;
        self.remote_tip.set(Some(head));
        Ok(())
    }

    /// Through `git push` and the remote's `git receive-pack`.
    fn push_local(&self, specs: &[String], options: &[String]) -> Result<PushReport, GitError> {
        let branch_ref = format!("refs/heads/{}", self.push_branch);
        let push = LocalPush {
            git_dir: self.repo.path(),
            url: &self.url,
            specs,
            lease: (&branch_ref, self.remote_tip.get().map(|o| o.to_string())),
            options,
            timeout: self.timeout,
        };
        let started = std::time::Instant::now();
        let report = push.run().map_err(|e| match e {
            LocalPushError::NoGit => GitError::Config(
                "pushing to a file:// or local-path remote runs the git command, which is not installed (not found on PATH)".into(),
            ),
            LocalPushError::Failed(message) => GitError::Push {
                branch: self.push_branch.clone(),
                message,
            },
            LocalPushError::TimedOut(t) => GitError::Push {
                branch: self.push_branch.clone(),
                message: format!(
                    "git push did not finish within the timeout of {}s: killed",
                    t.as_secs_f64()
                ),
            },
        })?;
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            refs = report.refs.len(),
            "git push returned"
        );
        Ok(report)
    }

    /// Through libgit2's smart protocol (HTTP(S), SSH): the server's
    /// receive-pack checks each ref against the old value we send.
    fn push_remote(&self, specs: &[String], options: &[String]) -> Result<PushReport, GitError> {
        let branch = self.push_branch.clone();
        let branch_ref = format!("refs/heads/{branch}");
        let mut remote = self.repo.find_remote(REMOTE).map_err(|e| GitError::Push {
            branch: branch.clone(),
            message: e.message().to_string(),
        })?;
        let refs: RefCell<Vec<(String, RefOutcome)>> = RefCell::new(Vec::new());
        let sideband: RefCell<Vec<u8>> = RefCell::new(Vec::new());
        let stale: RefCell<Option<String>> = RefCell::new(None);
        let expected = self.remote_tip.get().unwrap_or_else(Oid::zero);
        let mut cb = self.callbacks();
        // libgit2 sends the old value it just listed; we also insist on the
        // one we fetched, so a branch reset behind our base is not undone.
        cb.push_negotiation(|updates| {
            for u in updates {
                if u.dst_refname() == Some(branch_ref.as_str()) && u.src() != expected {
                    stale.replace(Some(format!("{branch_ref}: stale info")));
                    return Err(git2::Error::from_str("stale info"));
                }
            }
            Ok(())
        });
        cb.push_update_reference(|refname, status| {
            let outcome = status.map_or(RefOutcome::Updated, push::classify);
            refs.borrow_mut().push((refname.to_string(), outcome));
            Ok(())
        });
        cb.sideband_progress(|data| {
            let mut buf = sideband.borrow_mut();
            if buf.len() < 64 * 1024 {
                buf.extend_from_slice(data);
            }
            true
        });
        let headers = self.headers();
        let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let option_refs: Vec<&str> = options.iter().map(String::as_str).collect();
        let spec_refs: Vec<&str> = specs.iter().map(String::as_str).collect();
        let mut opts = PushOptions::new();
        opts.custom_headers(&header_refs)
            .remote_push_options(&option_refs)
            .remote_callbacks(cb);
        let result = remote.push(&spec_refs, Some(&mut opts));
        drop(opts);
        if let Some(message) = stale.into_inner() {
            return Err(GitError::Rejected { branch, message });
        }
        match result {
            // libgit2 refuses a non-fast-forward itself: the branch moved.
            Err(e) if e.code() == git2::ErrorCode::NotFastForward => Err(GitError::Rejected {
                branch,
                message: e.message().to_string(),
            }),
            Err(e) => Err(self.connect_failure(&e).unwrap_or_else(|| GitError::Push {
                branch,
                message: e.message().to_string(),
            })),
            Ok(()) => Ok(PushReport {
                refs: refs.into_inner(),
                remote: push::remote_lines(&sideband.into_inner()),
            }),
        }
    }

    /// After a rejected push: fetch the branch's new tip and start over from
    /// it, dropping our local commit (the caller re-applies its update).
    pub fn refresh(&mut self) -> Result<Oid, GitError> {
        let branch = self.push_branch.clone();
        let tip = self.fetch_branch(&branch)?.ok_or_else(|| {
            GitError::Checkout(format!("branch '{branch}' disappeared from the remote"))
        })?;
        self.remote_tip.set(Some(tip));
        let from = if self.rebuild { self.start } else { tip };
        self.reset_to(from)?;
        Ok(tip)
    }

    /// The files under the working tree, for callers that need a path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.workdir().join(rel)
    }
}

/// `a/./b//c` as `a/b/c`, `.` for the root; `None` for a path that leaves
/// it (`..` past the top, absolute).
fn normal_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_str()?),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// A symlink's mode in a tree.
const LINK_MODE: i32 = 0o120000;

/// At most this many entries of a sparse path's subtree are searched for
/// symlinks; a bigger subtree gets the whole tree.
const SPARSE_MAX_ENTRIES: usize = 1 << 20;

/// What to check out of `tree` for an update under `path`: the path itself
/// when it is a folder or regular file reached without symlinks and holding
/// none (a file symlink there may lead anywhere in the checkout, and the
/// setters follow it), and the `.gitattributes` of the folders above it
/// (checkout filters read them from the working tree); `None` for the
/// whole tree.
fn sparse_path(repo: &Repository, tree: &git2::Tree<'_>, path: &str) -> Option<Vec<String>> {
    let mut paths = vec![sparse_root(repo, tree, path)?];
    let mut above = String::new();
    for part in path.split('/') {
        let attrs = format!("{above}.gitattributes");
        if tree
            .get_path(Path::new(&attrs))
            .is_ok_and(|e| e.kind() == Some(git2::ObjectType::Blob) && e.filemode() != LINK_MODE)
        {
            paths.push(attrs);
        }
        above.push_str(part);
        above.push('/');
    }
    Some(paths)
}

fn sparse_root(repo: &Repository, tree: &git2::Tree<'_>, path: &str) -> Option<String> {
    // libgit2 reads these as pattern syntax even with exact matching on,
    // and would check out nothing.
    if path == "." || path.starts_with('!') || path.contains(['*', '?', '[', '\\']) {
        return None;
    }
    // Every folder on the way is a real tree: get_path fails through a link.
    let entry = tree.get_path(Path::new(path)).ok()?;
    match entry.kind() {
        Some(git2::ObjectType::Blob) if entry.filemode() != LINK_MODE => Some(path.to_string()),
        Some(git2::ObjectType::Tree) => {
            let sub = entry.to_object(repo).ok()?.peel_to_tree().ok()?;
            let mut seen = 0usize;
            let mut clean = true;
            // An abort reads as an error here; `clean` says why it stopped.
            let _ = sub.walk(git2::TreeWalkMode::PreOrder, |_, e| {
                seen += 1;
                // A link, a submodule, or a tree too big to vouch for.
                if e.filemode() == LINK_MODE
                    || e.kind() == Some(git2::ObjectType::Commit)
                    || seen > SPARSE_MAX_ENTRIES
                {
                    clean = false;
                    return git2::TreeWalkResult::Abort;
                }
                git2::TreeWalkResult::Ok
            });
            clean.then(|| path.to_string())
        }
        _ => None,
    }
}

/// The libgit2 implementation of [`crate::GitRemote`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Git2;

impl crate::GitRemote for Git2 {
    fn open(&self, r: &crate::OpenRequest<'_>) -> Result<Box<dyn crate::Worktree>, GitError> {
        let mut ws =
            Workspace::open_sparse(r.url, r.checkout, r.push_branch, r.auth, r.dir, r.sparse)?;
        if let Some(t) = r.timeout.filter(|t| !t.is_zero()) {
            ws.set_timeout(t);
        }
        if r.rebuild {
            ws.rebuild_from_checkout()?;
        }
        Ok(Box::new(ws))
    }
}

impl crate::Worktree for Workspace {
    fn workdir(&self) -> &Path {
        Workspace::workdir(self)
    }

    fn push_branch(&self) -> &str {
        &self.push_branch
    }

    fn revision(&self) -> String {
        format!("{}@sha1:{}", self.push_branch, self.base)
    }

    fn commit(
        &self,
        name: &str,
        email: &str,
        message: &str,
        signer: Option<&Signer>,
        files: &[PathBuf],
    ) -> Result<Option<String>, GitError> {
        Ok(self
            .commit_files(name, email, message, signer, files)?
            .map(|oid| oid.to_string()))
    }

    fn push(
        &self,
        extra_refspec: Option<&str>,
        options: &BTreeMap<String, String>,
    ) -> Result<(), GitError> {
        Workspace::push(self, extra_refspec, options)
    }

    fn refresh(&mut self) -> Result<(), GitError> {
        Workspace::refresh(self).map(|_| ())
    }

    fn remote_has_our_tree(&self) -> bool {
        Workspace::remote_has_our_tree(self)
    }

    fn diff(&self) -> Result<String, GitError> {
        Workspace::diff(self)
    }
}
