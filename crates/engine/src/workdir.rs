//! Private scratch folders for Git checkouts.
//!
//! A checkout holds the repository's contents and, while it runs, the
//! credentials libgit2 was handed; it must not be readable by other users,
//! and its name must not be guessable, or another user could create it first
//! and block (or tamper with) every run. So each one is a fresh folder with a
//! random name and mode 0700, created with `mkdir` that fails on an existing
//! path: under `<state-dir>/checkouts/` when the store has a state dir, in
//! the system temp dir otherwise. Folders left by a killed process are
//! removed on the first checkout of the next one.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Once;

const SUBDIR: &str = "checkouts";
const PREFIX: &str = "tagwarden-checkout-";
/// Name collisions are astronomically unlikely; a planted path just costs a retry.
const ATTEMPTS: usize = 16;

/// A checkout folder, removed with everything in it when dropped.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new private checkout folder under `state_dir` (or the temp dir).
pub(crate) fn create(state_dir: Option<&Path>) -> Result<ScratchDir, String> {
    let base = match state_dir {
        Some(dir) => {
            let base = dir.join(SUBDIR);
            private_mkdir(&base, true).map_err(|e| format!("creating {}: {e}", base.display()))?;
            base
        }
        None => std::env::temp_dir(),
    };
    static CLEAN: Once = Once::new();
    CLEAN.call_once(|| remove_stale(&base));
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let d = base.join(format!("{PREFIX}{}-{:016x}", std::process::id(), random()));
        match private_mkdir(&d, false) {
            Ok(()) => return Ok(ScratchDir(d)),
            Err(e) => last = format!("creating {}: {e}", d.display()),
        }
    }
    Err(last)
}

/// 64 random bits from the standard library's per-process hash seed.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// `mkdir` with mode 0700; `existing_ok` only for the shared parent, which
/// must then be a real folder of ours with no access for others.
fn private_mkdir(path: &Path, existing_ok: bool) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    match b.create(path) {
        Ok(()) => Ok(()),
        Err(e) if existing_ok && e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path)?;
            if !meta.is_dir() {
                return Err(std::io::Error::other("exists and is not a folder"));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes checkout folders whose process is gone. Only folders we own are
/// touched, so a shared temp dir is safe to sweep.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() || !owned_by_us(&meta) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(path = %entry.path().display(), "removed a checkout left by a stopped process")
            }
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a stale checkout")
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    // Where /proc is missing we cannot tell: keep the folder.
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(unix)]
fn owned_by_us(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == meta.uid())
}

#[cfg(not(unix))]
fn owned_by_us(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tagwarden-wd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[cfg(unix)]
    #[test]
    fn checkouts_are_private_unguessable_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let state = scratch("private");
        let a = create(Some(&state)).expect("create");
        let b = create(Some(&state)).expect("create");
        assert_ne!(a.path(), b.path());
        assert_eq!(a.path().parent(), Some(state.join(SUBDIR).as_path()));
        for p in [a.path(), &state.join(SUBDIR)] {
            let mode = std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", p.display());
        }
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());
        drop(b);
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn a_planted_folder_with_the_old_predictable_name_blocks_nothing() {
        let state = scratch("planted");
        let base = state.join(SUBDIR);
        std::fs::create_dir_all(&base).expect("mkdir");
        // What another user could pre-create under the old naming scheme.
        for n in 0..4 {
            std::fs::create_dir_all(base.join(format!("{PREFIX}{}-{n}", std::process::id())))
                .expect("plant");
        }
        let d = create(Some(&state)).expect("still gets a fresh folder");
        assert!(d.path().exists());
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn stale_checkouts_of_dead_processes_are_swept() {
        let state = scratch("stale");
        let base = state.join(SUBDIR);
        std::fs::create_dir_all(&base).expect("mkdir");
        // pid 4194304 is above Linux's pid_max, so never alive.
        let dead = base.join(format!("{PREFIX}4194304-00000000deadbeef"));
        let ours = base.join(format!("{PREFIX}{}-00000000cafef00d", std::process::id()));
        let other = base.join("unrelated");
        for d in [&dead, &ours, &other] {
            std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        }
        remove_stale(&base);
        assert!(!dead.exists(), "a dead process's checkout goes");
        assert!(ours.exists(), "ours stays");
        assert!(other.exists(), "foreign names stay");
        let _ = std::fs::remove_dir_all(&state);
    }
}
