//! Updating a checkout: walk, read, rewrite, write.

use crate::walk;
use crate::{
    FileChanges, ObjectChanges, PREFILTER, Render, Setters, SettersError, SkippedFile, TextError,
    UpdateResult, YamlError, rewrite, scalar,
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
    pub held: Vec<crate::HeldChange>,
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
            held: self.held.clone(),
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
    plan_with(root, update_path, setters, scalar::render)
}

pub(crate) fn plan_with(
    root: &Path,
    update_path: &str,
    setters: &Setters,
    render: Render,
) -> Result<Plan, SettersError> {
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
        match rewrite(text, setters, render) {
            // Nothing is written: a value YAML readers would not read back
            // as written must not reach a commit, in this file or another.
            Err(TextError::Unsafe { line, reason }) => {
                // Named from the checkout root: the update path may be deep.
                let path = c.path.strip_prefix(&root).map_or(rel, Path::to_path_buf);
                tracing::warn!(file = %path.display(), line, %reason, "rewrite refused");
                return Err(SettersError::Unsafe { path, line, reason });
            }
            Err(TextError::Yaml(error)) => {
                tracing::debug!(file = %rel.display(), %error, "not YAML; skipped");
                plan.skipped.push(SkippedFile { path: rel, error });
            }
            Ok(update) => {
                for (hold, line, setter, old, new) in &update.held {
                    plan.held.push(crate::HeldChange {
                        hold: *hold,
                        path: rel.clone(),
                        line: *line,
                        setter: setter.clone(),
                        old_value: old.clone(),
                        new_value: new.clone(),
                    });
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LatestRef, PolicyImage, Style};
    use std::collections::BTreeMap;

    fn policy(name: &str, tag: &str) -> PolicyImage {
        PolicyImage {
            no_downgrade: None,
            namespace: "flux-system".into(),
            name: name.into(),
            labels: BTreeMap::new(),
            // Built directly: LatestRef::parse would refuse such a tag.
            latest: LatestRef {
                name: "ghcr.io/acme/app".into(),
                tag: tag.into(),
                digest: None,
            },
        }
    }

    #[test]
    fn a_value_the_writer_gets_wrong_is_refused_and_nothing_is_written() {
        // A writer that never quotes: the verify step must catch it.
        fn raw(value: &str, _: Style, _: bool) -> String {
            value.to_string()
        }
        let tmp = tagwarden_testkit::TempDir::new("setters-refused");
        let safe = "tag: 1.0 # {\"$imagepolicy\": \"flux-system:safe:tag\"}\n";
        let evil = "spec:\n  tag: 1.0 # {\"$imagepolicy\": \"flux-system:evil:tag\"}\n";
        std::fs::create_dir_all(tmp.path().join("apps")).expect("mkdir");
        std::fs::write(tmp.path().join("apps/a.yaml"), safe).expect("write");
        std::fs::write(tmp.path().join("apps/b.yaml"), evil).expect("write");
        let setters = Setters::new(
            "flux-system",
            None,
            &[
                policy("safe", "v2"),
                policy("evil", "1.0\u{2028}- name: evil"),
            ],
        );
        let err = plan_with(tmp.path(), "apps", &setters, raw)
            .and_then(|p| p.write())
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "apps/b.yaml:2: refusing to rewrite: \"1.0\\u{2028}- name: evil\" would be written with U+2028 unescaped, a line break to YAML 1.1 readers (go-yaml, libyaml, kustomize); no file was changed"
        );
        assert!(!err.is_transient());
        let read =
            |f: &str| std::fs::read_to_string(tmp.path().join("apps").join(f)).expect("read");
        assert_eq!(
            (read("a.yaml").as_str(), read("b.yaml").as_str()),
            (safe, evil)
        );

        // The real writer escapes it, and the rewrite goes through.
        let plan = plan(tmp.path(), "apps", &setters).expect("safe");
        assert_eq!(
            plan.files
                .iter()
                .map(|f| f.updated.as_str())
                .collect::<Vec<_>>(),
            [
                safe.replace("1.0", "v2"),
                evil.replace("1.0", "\"1.0\\L- name: evil\""),
            ]
        );
    }
}
