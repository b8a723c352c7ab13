//! Updating a checkout: walk, read, rewrite, write.

use crate::walk;
use crate::{
    FileChanges, ObjectChanges, PREFILTER, Render, Setters, SettersError, SkippedFile, TextError,
    TextUpdate, UpdateResult, YamlError, rewrite, scalar,
};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

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
                    target: f.target.clone(),
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
    let outcomes = examine_tree(&root, &dir, setters, render)?;
    let mut plan = Plan {
        dir,
        ..Plan::default()
    };
    // Worked out on any thread; acted on here, in path order, so results,
    // logs and the first error are those of a walk one file after another.
    for (c, outcome) in outcomes {
        let target = c.target();
        // Relative to the update path; a file given as the update path is
        // named by its file name.
        let rel = match c.path.strip_prefix(&plan.dir) {
            Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
            _ => PathBuf::from(c.path.file_name().unwrap_or_default()),
        };
        match outcome {
            Outcome::ReadFailed(source) => {
                return Err(SettersError::Read {
                    path: target.to_path_buf(),
                    source,
                });
            }
            Outcome::NotUtf8(error) => plan.skipped.push(SkippedFile { path: rel, error }),
            // Nothing is written: a value YAML readers would not read back
            // as written must not reach a commit, in this file or another.
            Outcome::Rewritten(_, Err(TextError::Unsafe { line, reason })) => {
                // Named from the checkout root: the update path may be deep.
                let path = c.path.strip_prefix(&root).map_or(rel, Path::to_path_buf);
                tracing::warn!(file = %path.display(), line, %reason, "rewrite refused");
                return Err(SettersError::Unsafe { path, line, reason });
            }
            Outcome::Rewritten(_, Err(TextError::Yaml(error))) => {
                tracing::debug!(file = %rel.display(), %error, "not YAML; skipped");
                plan.skipped.push(SkippedFile { path: rel, error });
            }
            Outcome::Rewritten(original, Ok(update)) => {
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
                if let (Some(updated), Some(original)) = (update.text, original) {
                    plan.files.push(PlannedFile {
                        path: rel,
                        target: target.to_path_buf(),
                        original,
                        updated,
                        objects: update.objects,
                    });
                }
            }
        }
    }
    Ok(plan)
}

/// What one candidate file came to. Files without the marker bytes have
/// none: they are read once and neither parsed nor kept.
enum Outcome {
    ReadFailed(std::io::Error),
    NotUtf8(YamlError),
    /// The rewrite, and the old text when there is a new one.
    Rewritten(Option<String>, Result<TextUpdate, TextError>),
}

/// Candidates handed out at a time: neighbours share a directory.
const BLOCK: usize = 64;
/// A thread more for every so many files the walk has found.
const PER_THREAD: usize = 256;
const MAX_THREADS: usize = 4;

/// The outcome of every candidate under `dir` that holds the marker bytes
/// (or fails to read), in path order. Most of an update's time is the
/// kernel listing, opening and copying files, so files are read while the
/// walk goes on, shared out among threads, up to one per core.
fn examine_tree(
    root: &Path,
    dir: &Path,
    setters: &Setters,
    render: Render,
) -> Result<Vec<(walk::Candidate, Outcome)>, SettersError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    // Batches of (walk order, candidate).
    let (tx, rx) = mpsc::channel::<Vec<(usize, walk::Candidate)>>();
    let rx = Mutex::new(rx);
    // Set when the walk failed: its error is the answer, the reads are moot.
    let abandon = AtomicBool::new(false);
    let work = || {
        let finder = memchr::memmem::Finder::new(PREFILTER);
        let mut buf = Vec::new();
        let mut found = Vec::new();
        let mut parent = None;
        while !abandon.load(Ordering::Relaxed) {
            let batch = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
                Ok(batch) => batch,
                // The walk is over and every batch taken.
                Err(_) => break,
            };
            for (i, c) in batch {
                let file = open(&c, &mut parent);
                if let Some(o) = examine(file, &mut buf, &finder, setters, render) {
                    found.push((i, c, o));
                }
            }
        }
        found
    };
    std::thread::scope(|s| {
        let mut helpers = Vec::new();
        let mut batch = Vec::with_capacity(BLOCK);
        let mut n = 0;
        let walked = walk::each_candidate(root, dir, &mut |c| {
            batch.push((n, c));
            n += 1;
            if batch.len() == BLOCK {
                // `rx` outlives every send.
                let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BLOCK)));
            }
            // A thread that cannot be started leaves its share to the others.
            if n % PER_THREAD == 0
                && helpers.len() + 1 < threads
                && let Ok(h) = std::thread::Builder::new().spawn_scoped(s, work)
            {
                helpers.push(h);
            }
        });
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        abandon.store(walked.is_err(), Ordering::Relaxed);
        // Ends the helpers' loops once the queue is empty.
        drop(tx);
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(found) => all.extend(found),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        // Walk order is path order, but for files reached through links.
        if walked? {
            all.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        } else {
            all.sort_unstable_by_key(|(i, _, _)| *i);
        }
        Ok(all.into_iter().map(|(_, c, o)| (c, o)).collect())
    })
}

/// The directory a file was last opened from, open itself.
#[cfg(unix)]
type Parent = Option<(PathBuf, rustix::fd::OwnedFd)>;
#[cfg(not(unix))]
type Parent = Option<()>;

/// Opens a candidate's file. A walked file is opened by name from its open
/// directory, which its neighbours share: the kernel then looks up one
/// name, not every directory of a long path, for each file.
#[cfg(unix)]
fn open(c: &walk::Candidate, parent: &mut Parent) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    if c.target.is_none()
        && let (Some(dir), Some(name)) = (c.path.parent(), c.path.file_name())
    {
        if parent.as_ref().is_none_or(|(p, _)| p != dir) {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            *parent = rustix::fs::open(dir, flags, Mode::empty())
                .ok()
                .map(|fd| (dir.to_path_buf(), fd));
        }
        if let Some((_, fd)) = parent
            && let Ok(f) =
                rustix::fs::openat(fd, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        {
            return Ok(f.into());
        }
    }
    // Also the way to an error worded as for any other open.
    std::fs::File::open(c.target())
}

#[cfg(not(unix))]
fn open(c: &walk::Candidate, _: &mut Parent) -> std::io::Result<std::fs::File> {
    std::fs::File::open(c.target())
}

/// Reads one file and, if it holds the marker bytes, rewrites its text.
fn examine(
    file: std::io::Result<std::fs::File>,
    buf: &mut Vec<u8>,
    finder: &memchr::memmem::Finder<'_>,
    setters: &Setters,
    render: Render,
) -> Option<Outcome> {
    let len = match file.and_then(|f| read_into(f, buf)) {
        Ok(len) => len,
        Err(e) => return Some(Outcome::ReadFailed(e)),
    };
    let buf = &buf[..len];
    finder.find(buf)?;
    let text = match std::str::from_utf8(buf) {
        Ok(t) => t,
        Err(e) => {
            let upto = &buf[..e.valid_up_to()];
            let line = memchr::memchr_iter(b'\n', upto).count() + 1;
            let column =
                upto.len() - upto.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
            return Some(Outcome::NotUtf8(YamlError {
                line,
                column,
                message: "not UTF-8 text".to_string(),
            }));
        }
    };
    let update = rewrite(text, setters, render);
    let original = matches!(&update, Ok(u) if u.text.is_some()).then(|| text.to_string());
    Some(Outcome::Rewritten(original, update))
}

/// Reads a whole file into `buf[..n]` and returns `n`. Plain reads, because
/// `File::read_to_end` first asks for the size (statx + lseek), doubling the
/// syscalls of a large walk; `buf` keeps its length between files so it is
/// zeroed only when it grows.
fn read_into(mut f: std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
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
    fn in_a_large_tree_the_first_refused_file_in_path_order_is_named() {
        fn raw(value: &str, _: Style, _: bool) -> String {
            value.to_string()
        }
        // Enough files that they are read by several threads; the refused
        // ones far apart, so different threads meet them.
        let tmp = tagwarden_testkit::TempDir::new("setters-refused-large");
        let safe = "tag: 1.0 # {\"$imagepolicy\": \"flux-system:safe:tag\"}\n";
        let evil = "spec:\n  tag: 1.0 # {\"$imagepolicy\": \"flux-system:evil:tag\"}\n";
        let dir = tmp.path().join("apps");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..2000 {
            let text = match i {
                1500 | 1900 => evil,
                _ => safe,
            };
            std::fs::write(dir.join(format!("f{i:04}.yaml")), text).expect("write");
        }
        let setters = Setters::new(
            "flux-system",
            None,
            &[
                policy("safe", "v2"),
                policy("evil", "1.0\u{2028}- name: evil"),
            ],
        );
        for _ in 0..5 {
            let err = plan_with(tmp.path(), "apps", &setters, raw)
                .and_then(|p| p.write())
                .expect_err("refused");
            assert_eq!(
                err.to_string(),
                "apps/f1500.yaml:2: refusing to rewrite: \"1.0\\u{2028}- name: evil\" would be written with U+2028 unescaped, a line break to YAML 1.1 readers (go-yaml, libyaml, kustomize); no file was changed"
            );
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("f0000.yaml")).expect("read"),
            safe
        );
        let plan = plan(tmp.path(), "apps", &setters).expect("safe");
        let names: Vec<String> = plan.files.iter().map(|f| slash_path(&f.path)).collect();
        let want: Vec<String> = (0..2000).map(|i| format!("f{i:04}.yaml")).collect();
        assert_eq!(names, want);
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
