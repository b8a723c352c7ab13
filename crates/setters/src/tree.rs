//! Updating a checkout: walk, read, rewrite, write.

use crate::walk;
use crate::{
    FileChanges, ObjectChanges, PREFILTER, Setters, SettersError, SkippedFile, UpdateResult,
    YamlError, update_text,
};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file whose markers give new values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Relative to the update path.
    pub path: PathBuf,
    /// The file written (a symlink resolved).
    pub target: PathBuf,
    pub original: String,
    pub updated: String,
    pub objects: Vec<ObjectChanges>,
}

/// What an update would do, before anything is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The update path's real location.
    pub dir: PathBuf,
    pub files: Vec<PlannedFile>,
    pub skipped: Vec<SkippedFile>,
}

impl Plan {
    /// Writes every changed file; unchanged files are not touched.
    pub fn write(&self) -> Result<(), SettersError> {
        for f in &self.files {
            std::fs::write(&f.target, &f.updated).map_err(|source| SettersError::Write {
                path: f.target.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The changes, as commit templates and status want them.
    pub fn result(&self) -> UpdateResult {
        UpdateResult {
            files: self
                .files
                .iter()
                .map(|f| FileChanges {
                    path: f.path.clone(),
                    objects: f.objects.clone(),
                })
                .collect(),
            skipped: self.skipped.clone(),
        }
    }

    /// A unified diff of every changed file, paths relative to the update path.
    pub fn diff(&self) -> String {
        self.files
            .iter()
            .map(|f| crate::unified_diff(&slash_path(&f.path), &f.original, &f.updated))
            .collect()
    }
}

/// `a/b.yaml` on every platform, for diffs and JSON.
pub fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Works out the new content of every file under `update_path` (relative to
/// the checkout `root`) whose markers `setters` answers; writes nothing.
pub fn plan(root: &Path, update_path: &str, setters: &Setters) -> Result<Plan, SettersError> {
    let (root, dir) = walk::resolve(root, update_path)?;
    let candidates = walk::candidates(&root, &dir)?;
    let finder = memchr::memmem::Finder::new(PREFILTER);
    let mut plan = Plan {
        dir,
        ..Plan::default()
    };
    let mut buf = Vec::new();
    for c in candidates {
        let target = c.target();
        let len = read_into(target, &mut buf).map_err(|source| SettersError::Read {
            path: target.to_path_buf(),
            source,
        })?;
        let buf = &buf[..len];
        if finder.find(buf).is_none() {
            continue;
        }
        // Relative to the update path; a file given as the update path is
        // named by its file name.
        let rel = match c.path.strip_prefix(&plan.dir) {
            Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
            _ => PathBuf::from(c.path.file_name().unwrap_or_default()),
        };
        let target = target.to_path_buf();
        let text = match std::str::from_utf8(buf) {
            Ok(t) => t,
            Err(e) => {
                let upto = &buf[..e.valid_up_to()];
                let line = memchr::memchr_iter(b'\n', upto).count() + 1;
                let column =
                    upto.len() - upto.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
                plan.skipped.push(SkippedFile {
                    path: rel,
                    error: YamlError {
                        line,
                        column,
                        message: "not UTF-8 text".to_string(),
                    },
                });
                continue;
            }
        };
        match update_text(text, setters) {
            Err(error) => {
                tracing::debug!(file = %rel.display(), %error, "not YAML; skipped");
                plan.skipped.push(SkippedFile { path: rel, error });
            }
            Ok(update) => {
                for m in &update.ignored {
                    match &m.setter {
                        Some(setter) => tracing::debug!(
                            file = %rel.display(),
                            line = m.line,
                            setter,
                            reason = ?m.reason,
                            "marker left alone"
                        ),
                        None => tracing::debug!(
                            file = %rel.display(),
                            line = m.line,
                            "\"$imagepolicy\" is not a marker on a single-line value here; left alone"
                        ),
                    }
                }
                if let Some(updated) = update.text {
                    plan.files.push(PlannedFile {
                        path: rel,
                        target,
                        original: text.to_string(),
                        updated,
                        objects: update.objects,
                    });
                }
            }
        }
    }
    Ok(plan)
}

/// Reads a whole file into `buf[..n]` and returns `n`. Plain reads, because
/// `File::read_to_end` first asks for the size (statx + lseek), doubling the
/// syscalls of a large walk; `buf` keeps its length between files so it is
/// zeroed only when it grows.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize((buf.len() * 2).max(16 * 1024), 0);
        }
        match f.read(&mut buf[n..]) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`plan`], then write the changed files.
pub fn apply(
    root: &Path,
    update_path: &str,
    setters: &Setters,
) -> Result<UpdateResult, SettersError> {
    let plan = plan(root, update_path, setters)?;
    plan.write()?;
    Ok(plan.result())
}
