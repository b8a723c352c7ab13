//! The files an update may touch: under `update.path`, inside the checkout,
//! named `*.yaml`, `*.yml` or `Kustomization`.

use crate::SettersError;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// A file to consider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Relative to the update directory, as results report it.
    pub rel: PathBuf,
    /// Where the bytes live (a symlink resolved), inside the checkout.
    pub target: PathBuf,
}

/// Names Flux's setters read.
pub(crate) fn is_candidate_name(name: &OsStr) -> bool {
    let n = name.as_encoded_bytes();
    n.ends_with(b".yaml") || n.ends_with(b".yml") || n == b"Kustomization"
}

/// The checkout's real path and the update path's, refusing one that
/// leaves the checkout by `..`, by being absolute, or through a symlink.
pub(crate) fn resolve(root: &Path, update_path: &str) -> Result<(PathBuf, PathBuf), SettersError> {
    let refuse = |reason: &str| SettersError::UpdatePath {
        path: update_path.to_string(),
        reason: reason.to_string(),
    };
    let mut rel = PathBuf::new();
    for c in Path::new(update_path).components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                return Err(refuse(
                    "absolute paths are refused; give a path inside the checkout",
                ));
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(refuse("'..' leads outside the checkout"));
                }
            }
            Component::Normal(p) => rel.push(p),
        }
    }
    let root = root.canonicalize().map_err(|source| SettersError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let dir = root.join(&rel);
    let real = dir.canonicalize().map_err(|e| {
        refuse(&match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist in the checkout".to_string(),
            _ => e.to_string(),
        })
    })?;
    if !real.starts_with(&root) {
        return Err(refuse(&format!(
            "resolves to {} through a symlink, outside the checkout",
            real.display()
        )));
    }
    Ok((root, real))
}

/// Candidate files under `dir` (a real path inside `root`), sorted by path.
/// Directory symlinks are not followed; file symlinks are, when they stay
/// inside the checkout (outside is an error), and dangling ones are skipped.
pub(crate) fn candidates(root: &Path, dir: &Path) -> Result<Vec<Candidate>, SettersError> {
    let mut files = Vec::new();
    let mut links = Vec::new();
    if dir.is_file() {
        if let Some(name) = dir.file_name().filter(|n| is_candidate_name(n)) {
            files.push(Candidate {
                rel: PathBuf::from(name),
                target: dir.to_path_buf(),
            });
        }
        return Ok(files);
    }
    let mut pending = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let abs = dir.join(&rel_dir);
        let walk_err = |source| SettersError::Walk {
            path: abs.clone(),
            source,
        };
        for entry in std::fs::read_dir(&abs).map_err(walk_err)? {
            let entry = entry.map_err(walk_err)?;
            let kind = entry.file_type().map_err(walk_err)?;
            let name = entry.file_name();
            let rel = rel_dir.join(&name);
            if kind.is_dir() {
                if name != ".git" {
                    pending.push(rel);
                }
            } else if !is_candidate_name(&name) {
                continue;
            } else if kind.is_file() {
                files.push(Candidate {
                    rel,
                    target: entry.path(),
                });
            } else if kind.is_symlink() {
                links.push((rel, entry.path()));
            }
        }
    }
    // A link to a file already walked adds nothing; others are read through.
    let mut seen: HashSet<PathBuf> = files.iter().map(|c| c.target.clone()).collect();
    for (rel, link) in links {
        let Ok(target) = link.canonicalize() else {
            tracing::debug!(file = %rel.display(), "dangling symlink skipped");
            continue;
        };
        if !target.starts_with(root) {
            return Err(SettersError::Symlink { path: rel, target });
        }
        if target.is_file() && seen.insert(target.clone()) {
            files.push(Candidate { rel, target });
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}
