//! Bare Git repositories (file://) seeded with files, and `git` run with a
//! fixed identity.

use crate::{Error, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git` in `dir` with a fixed identity, panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    try_git(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Fails with the install hint when `git` cannot be run at all, so the demo
/// says so before it starts anything.
pub fn require_git() -> Result<(), Error> {
    try_git(&std::env::temp_dir(), &["--version"]).map(drop)
}

fn try_git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .map_err(|reason| Error::NotInstalled {
            program: "git".into(),
            package: "git",
            reason,
        })?;
    if !out.status.success() {
        return Err(Error::Git {
            args: format!("{args:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A bare repository seeded with files on a branch.
pub struct BareRepo {
    dir: TempDir,
}

impl BareRepo {
    /// `files` are (path, content) committed as one commit on `branch`.
    pub fn new(branch: &str, files: &[(&str, &str)]) -> BareRepo {
        let dir = TempDir::new("bare");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", branch, "repo.git"],
        );
        let r = BareRepo { dir };
        r.commit_files(branch, files, "initial commit");
        r
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    /// The folder holding `repo.git`, to serve over HTTP.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Clones, writes `files`, commits and pushes to `branch` (created if missing).
    pub fn commit_files(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let work = TempDir::new("work");
        let bare = self.path();
        git(work.path(), &["init", "-q", "-b", branch, "."]);
        git(
            work.path(),
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        git(work.path(), &["fetch", "-q", "origin"]);
        let has_branch = git(
            work.path(),
            &["branch", "-r", "--list", &format!("origin/{branch}")],
        );
        if !has_branch.is_empty() {
            git(
                work.path(),
                &["reset", "-q", "--hard", &format!("origin/{branch}")],
            );
        }
        for (path, content) in files {
            let p = work.path().join(path);
            std::fs::create_dir_all(p.parent().expect("file in a folder")).expect("mkdir");
            std::fs::write(&p, content).expect("write file");
        }
        git(work.path(), &["add", "-A"]);
        git(
            work.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(
            work.path(),
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(work.path(), &["rev-parse", "HEAD"])
    }

    /// `git show REV:PATH`.
    pub fn show(&self, rev: &str, path: &str) -> String {
        git(&self.path(), &["show", &format!("{rev}:{path}")])
    }

    /// `git log --format=FORMAT REV`, one line per commit, newest first.
    pub fn log(&self, rev: &str, format: &str) -> Vec<String> {
        git(&self.path(), &["log", &format!("--format={format}"), rev])
            .lines()
            .map(String::from)
            .collect()
    }
}
