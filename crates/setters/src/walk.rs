//! The files an update may touch: under `update.path`, inside the checkout,
//! named `*.yaml`, `*.yml` or `Kustomization`.

use crate::SettersError;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// A file to consider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The file's path under the update directory (a symlink for `target`).
    pub path: PathBuf,
    /// Where the bytes live when `path` is a symlink, inside the checkout.
    pub target: Option<PathBuf>,
}

impl Candidate {
    /// The file to read and write.
    pub fn target(&self) -> &Path {
        self.target.as_deref().unwrap_or(&self.path)
    }
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

/// Candidate files under `dir` (a real path inside `root`), handed to
/// `found` as the walk meets them: by path, then the files reached through
/// symlinks; returns whether there were any of those. Directory symlinks
/// are not followed; file symlinks are, when they stay inside the checkout
/// (outside is an error), and dangling ones are skipped.
pub(crate) fn each_candidate(
    root: &Path,
    dir: &Path,
    found: &mut dyn FnMut(Candidate),
) -> Result<bool, SettersError> {
    if dir.is_file() {
        if dir.file_name().is_some_and(is_candidate_name) {
            found(Candidate {
                path: dir.to_path_buf(),
                target: None,
            });
        }
        return Ok(false);
    }
    let mut links = Vec::new();
    walk_dir(dir, found, &mut links)?;
    // A link to a file the walk reads itself adds nothing; others are read
    // through the link, once.
    let mut seen = HashSet::new();
    let mut linked = false;
    for link in links {
        let Ok(target) = link.canonicalize() else {
            tracing::debug!(file = %link.display(), "dangling symlink skipped");
            continue;
        };
        if !target.starts_with(root) {
            let path = link.strip_prefix(dir).unwrap_or(&link).to_path_buf();
            return Err(SettersError::Symlink { path, target });
        }
        let walked = target.strip_prefix(dir).is_ok_and(|rel| {
            target.file_name().is_some_and(is_candidate_name)
                && !rel.components().any(|c| c.as_os_str() == ".git")
        });
        if target.is_file() && !walked && seen.insert(target.clone()) {
            linked = true;
            found(Candidate {
                path: link,
                target: Some(target),
            });
        }
    }
    Ok(linked)
}

/// Depth first, entries by name, so files come out sorted by path without
/// sorting 10,000 paths component by component.
fn walk_dir(
    dir: &Path,
    found: &mut dyn FnMut(Candidate),
    links: &mut Vec<PathBuf>,
) -> Result<(), SettersError> {
    let walk_err = |source| SettersError::Walk {
        path: dir.to_path_buf(),
        source,
    };
    // Names taken once: sorting by `DirEntry::file_name` would allocate two
    // of them per comparison.
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(walk_err)? {
        let entry = entry.map_err(walk_err)?;
        entries.push((entry.file_name(), entry));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in entries {
        let kind = entry.file_type().map_err(walk_err)?;
        if kind.is_dir() {
            if name != ".git" {
                walk_dir(&dir.join(&name), found, links)?;
            }
        } else if !is_candidate_name(&name) {
            continue;
        } else if kind.is_file() {
            found(Candidate {
                path: dir.join(&name),
                target: None,
            });
        } else if kind.is_symlink() {
            links.push(dir.join(&name));
        }
    }
    Ok(())
}
