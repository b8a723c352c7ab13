//! What a remote said about each ref of a push, whatever the transport, and
//! the `git push` child that gives local remotes receive-pack semantics.
//!
//! libgit2's local transport writes the remote's ref itself: no
//! compare-and-swap against the value it read and no hooks. For `file://`
//! and plain-path remotes we run `git push`, so the remote's own
//! `git receive-pack` does the update (locked, checked against the old
//! value) and runs its hooks, exactly as over HTTP and SSH.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How the remote answered one ref update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefOutcome {
    Updated,
    /// The ref was not where we fetched it (someone pushed in between, or
    /// held its lock): re-apply on the new tip and try again.
    Race(String),
    /// The remote refused the update itself (a hook, a protected branch, a
    /// policy): trying again cannot help.
    Declined(String),
}

/// Per-ref outcomes and the text the remote printed (hook output).
#[derive(Debug, Default)]
pub(crate) struct PushReport {
    pub(crate) refs: Vec<(String, RefOutcome)>,
    pub(crate) remote: Vec<String>,
}

/// The reasons git and receive-pack give when the ref moved under the
/// pusher. The protocol carries reasons as text, so this is the one place
/// they are read; anything else is the server's refusal.
const RACE_REASONS: &[&str] = &[
    "non-fast-forward",
    "fetch first",
    "stale info",
    "failed to update ref",
    "failed to lock",
    "cannot lock ref",
    "incorrect old value provided",
];

pub(crate) fn classify(reason: &str) -> RefOutcome {
    let r = reason.trim().to_ascii_lowercase();
    if RACE_REASONS.iter().any(|p| r.starts_with(p)) {
        RefOutcome::Race(reason.trim().to_string())
    } else {
        RefOutcome::Declined(reason.trim().to_string())
    }
}

/// At most this many lines of remote text are kept, each at most this long.
const REMOTE_LINES: usize = 20;
const REMOTE_LINE_CHARS: usize = 300;

/// Remote text is the server's: no control character reaches a log or a
/// status raw.
pub(crate) fn sanitize(line: &str) -> String {
    let cut: String = line.trim().chars().take(REMOTE_LINE_CHARS).collect();
    tagwarden_api::text::escape(&cut, false).into_owned()
}

/// The lines of what the remote printed (libgit2's sideband), progress
/// carriage returns split like newlines.
pub(crate) fn remote_lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .split(['\n', '\r'])
        .map(sanitize)
        .filter(|l| !l.is_empty())
        .take(REMOTE_LINES)
        .collect()
}

/// A `git push` to a local remote.
pub(crate) struct LocalPush<'a> {
    /// The clone's git directory (objects and the refs we push).
    pub(crate) git_dir: &'a Path,
    pub(crate) url: &'a str,
    /// `src:dst` refspecs, never forced.
    pub(crate) specs: &'a [String],
    /// `(ref, expected)`: push only if the remote's ref still is `expected`
    /// (`None`: does not exist).
    pub(crate) lease: (&'a str, Option<String>),
    pub(crate) options: &'a [String],
    pub(crate) timeout: Duration,
}

/// Why a local push could not even report per ref.
#[derive(Debug)]
pub(crate) enum LocalPushError {
    /// The git command is not installed.
    NoGit,
    Failed(String),
    TimedOut(Duration),
}

/// Most of git's output kept.
const OUTPUT_CAP: u64 = 1 << 20;

impl LocalPush<'_> {
    pub(crate) fn run(&self) -> Result<PushReport, LocalPushError> {
        let failed = |what: &str, e: std::io::Error| LocalPushError::Failed(format!("{what}: {e}"));
        // Output goes to files: a pipe could fill up, or be held open by a
        // hook that outlives a killed push.
        let out_path = self.git_dir.join("tagwarden-push.out");
        let err_path = self.git_dir.join("tagwarden-push.err");
        let home = self.git_dir.join("tagwarden-home");
        std::fs::create_dir_all(&home).map_err(|e| failed("creating a home for git", e))?;
        let stdout =
            std::fs::File::create(&out_path).map_err(|e| failed("creating git's output", e))?;
        let stderr =
            std::fs::File::create(&err_path).map_err(|e| failed("creating git's output", e))?;
        let mut cmd = Command::new("git");
        // Nothing of the caller's git environment (GIT_DIR from a hook we
        // run under, GIT_CONFIG_PARAMETERS, ...) leaks into the push.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GIT_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--git-dir")
            .arg(self.git_dir)
            .args(["push", "--porcelain", "--no-verify"])
            .arg(format!(
                "--force-with-lease={}:{}",
                self.lease.0,
                self.lease.1.as_deref().unwrap_or("")
            ));
        for o in self.options {
            cmd.arg(format!("--push-option={o}"));
        }
        cmd.arg(self.url)
            .args(self.specs)
            // No system or user config or credential prompt changes what the
            // push does; only the file transport may run.
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", "file")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Its own process group, so a timeout also ends receive-pack and the
        // remote's hooks.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LocalPushError::NoGit
            } else {
                failed("running git push", e)
            }
        })?;
        let pid = rustix::process::Pid::from_child(&child);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(self.timeout) {
            Ok(status) => status.map_err(|e| failed("waiting for git push", e))?,
            Err(_) => {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                let _ = waiter.join();
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "git push to a local remote timed out: killed"
                );
                return Err(LocalPushError::TimedOut(self.timeout));
            }
        };
        let _ = waiter.join();
        let read = |p: &Path| {
            let mut s = Vec::new();
            if let Ok(f) = std::fs::File::open(p) {
                let _ = f.take(OUTPUT_CAP).read_to_end(&mut s);
            }
            let _ = std::fs::remove_file(p);
            String::from_utf8_lossy(&s).into_owned()
        };
        let (out, err) = (read(&out_path), read(&err_path));
        let mut report = parse_porcelain(&out);
        report.remote = err
            .lines()
            .filter_map(|l| l.strip_prefix("remote:"))
            .map(sanitize)
            .filter(|l| !l.is_empty())
            .take(REMOTE_LINES)
            .collect();
        if report.refs.is_empty() && !status.success() {
            // No per-ref answer: the push never got to the remote.
            let why = err
                .lines()
                .map(sanitize)
                .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
                .unwrap_or_else(|| format!("git push exited with {status}"));
            return Err(LocalPushError::Failed(why));
        }
        Ok(report)
    }
}

/// `git push --porcelain`: `FLAG \t SRC:DST \t SUMMARY [(REASON)]` per ref.
pub(crate) fn parse_porcelain(out: &str) -> PushReport {
    let mut report = PushReport::default();
    for line in out.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(flag), Some(spec), summary) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let dst = spec.rsplit_once(':').map_or(spec, |(_, d)| d).to_string();
        let summary = summary.unwrap_or("");
        let outcome = match flag {
            "!" => {
                let reason = summary
                    .rsplit_once('(')
                    .map(|(_, r)| r.trim_end().trim_end_matches(')'))
                    .unwrap_or(summary);
                if summary.starts_with("[remote failure]") {
                    RefOutcome::Race(sanitize(reason))
                } else {
                    classify(&sanitize(reason))
                }
            }
            " " | "+" | "-" | "*" | "=" => RefOutcome::Updated,
            _ => continue,
        };
        report.refs.push((dst, outcome));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_lines_are_read_per_ref() {
        let out = "To /tmp/r.git\n\
                   !\trefs/heads/main:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n\
                   !\trefs/heads/a:refs/heads/a\t[rejected] (stale info)\n\
                   *\trefs/heads/b:refs/heads/b\t[new branch]\n\
                   Done\n";
        let r = parse_porcelain(out);
        assert_eq!(
            r.refs,
            [
                (
                    "refs/heads/main".to_string(),
                    RefOutcome::Declined("pre-receive hook declined".into())
                ),
                (
                    "refs/heads/a".to_string(),
                    RefOutcome::Race("stale info".into())
                ),
                ("refs/heads/b".to_string(), RefOutcome::Updated),
            ]
        );
    }

    #[test]
    fn remote_text_never_carries_control_characters() {
        assert_eq!(
            remote_lines(b"ok\x1b[31m red\r\nline\xe2\x80\xa8two\n\n"),
            ["ok\\u{1b}[31m red", "line\\u{2028}two"]
        );
    }
}
