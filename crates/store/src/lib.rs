//! Where tagwarden keeps what it saw between reconciles: bytes by key, so
//! the engine owns the meaning and the store only keeps it safe.
//! [`MemoryStore`] for one-shot runs and tests, [`FileStore`] (redb: one
//! file, crash-safe transactions) for `--state-dir` and the daemon.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

#[cfg(feature = "redb")]
mod file;
#[cfg(feature = "redb")]
pub use file::{FILE_NAME, FileStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening state file {path}: {message}")]
    Open { path: String, message: String },
    /// Another process (a daemon, another `run --once`) has the file open.
    #[error(
        "state file {path} is in use by another tagwarden process (a daemon or another run); \
         wait for it to finish, stop it, or use another --state-dir"
    )]
    Locked { path: String },
    /// The file exists but is not a readable store; nothing is reset behind
    /// the user's back, since it holds suspend flags and the last good tags.
    #[error(
        "state file {path} is corrupt ({message}); move it aside (mv {path} {path}.corrupt) \
         and run again: tags are scanned anew, but suspend flags and push history kept there are lost"
    )]
    Corrupt { path: String, message: String },
    #[error("reading state: {0}")]
    Read(String),
    #[error("writing state: {0}")]
    Write(String),
}

/// A key-value store of records.
pub trait Store: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Writes a record the next reconcile rebuilds (a status, a tag list):
    /// a crash may lose the last second of these, back to an earlier
    /// consistent state, never half of one, and never a [`Store::put`].
    fn put_rebuildable(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put(key, value)
    }
    /// Keys starting with `prefix`, sorted.
    fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Forgets `key` (nothing happens when it is absent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// The private folder the store lives in, if it has one: scratch space
    /// (Git checkouts) goes there rather than into a shared temp dir.
    fn state_dir(&self) -> Option<&Path> {
        None
    }
}

/// Forgets everything when dropped.
#[derive(Default)]
pub struct MemoryStore(Mutex<BTreeMap<String, Vec<u8>>>);

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        Ok(())
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

#[cfg(all(test, feature = "redb"))]
mod tests {
    use super::*;

    fn exercise(s: &dyn Store) {
        assert_eq!(s.get("a").expect("get"), None);
        s.put("repo/ns/a", b"1").expect("put");
        s.put("repo/ns/b", b"2").expect("put");
        s.put("policy/ns/a", b"3").expect("put");
        s.put("repo/ns/a", b"4").expect("overwrite");
        assert_eq!(s.get("repo/ns/a").expect("get").as_deref(), Some(&b"4"[..]));
        assert_eq!(s.keys("repo/").expect("keys"), ["repo/ns/a", "repo/ns/b"]);
    }

    #[test]
    fn memory_store() {
        exercise(&MemoryStore::default());
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tagwarden-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[cfg(unix)]
    #[test]
    fn state_dir_and_file_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let _s = FileStore::open(&dir).expect("open");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
        assert_eq!(mode(&dir.join(file::LOCK_NAME)), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_open_says_who_holds_it_and_waits_when_asked() {
        let dir = scratch("lock");
        let first = FileStore::open(&dir).expect("open");
        let e = FileStore::open(&dir).err().expect("locked");
        assert_eq!(
            e.to_string(),
            format!(
                "state file {} is in use by another tagwarden process (a daemon or another run); \
                 wait for it to finish, stop it, or use another --state-dir",
                dir.join(FILE_NAME).display()
            )
        );
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let mut told = false;
        let second =
            FileStore::open_waiting(&dir, std::time::Duration::from_secs(10), |_| told = true);
        release.join().expect("join");
        assert!(second.is_ok(), "{:?}", second.err());
        assert!(told, "the waiting caller is told once");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_store_file_is_reported_not_reset() {
        let dir = scratch("empty");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(FILE_NAME), b"").expect("truncate");
        let e = FileStore::open(&dir).err().expect("corrupt");
        let p = dir.join(FILE_NAME).display().to_string();
        assert_eq!(
            e.to_string(),
            format!(
                "state file {p} is corrupt (the file is empty); move it aside (mv {p} {p}.corrupt) \
                 and run again: tags are scanned anew, but suspend flags and push history kept there are lost"
            )
        );
        assert_eq!(
            std::fs::metadata(dir.join(FILE_NAME)).expect("stat").len(),
            0,
            "left as found"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_garbage_store_file_is_reported_with_the_remedy() {
        let dir = scratch("garbage");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(FILE_NAME), vec![0x5a; 8192]).expect("write");
        let e = FileStore::open(&dir).err().expect("corrupt");
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("move it aside"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A process that dies without closing the store (no destructors run):
    /// the durable write survives, the rebuildable one after it is lost,
    /// and the file opens cleanly.
    #[test]
    fn a_crash_loses_only_the_last_rebuildable_writes() {
        if let Some(dir) = std::env::var_os("TAGWARDEN_STORE_CRASH_CHILD") {
            let dir = std::path::PathBuf::from(dir);
            let s = FileStore::open(&dir).expect("open");
            s.put("durable", b"kept").expect("put");
            s.put_rebuildable("status/a", b"lost").expect("put");
            std::process::exit(0);
        }
        let dir = scratch("crash");
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "tests::a_crash_loses_only_the_last_rebuildable_writes",
            ])
            .env("TAGWARDEN_STORE_CRASH_CHILD", &dir)
            .output()
            .expect("run the child");
        assert!(out.status.success(), "{out:?}");
        let s = FileStore::open(&dir).expect("reopens after the crash");
        assert_eq!(
            s.get("durable").expect("get").as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(s.get("status/a").expect("get"), None, "never synced");
        // A clean stop syncs what only memory held.
        s.put_rebuildable("status/b", b"kept too").expect("put");
        drop(s);
        let s = FileStore::open(&dir).expect("reopen");
        assert_eq!(
            s.get("status/b").expect("get").as_deref(),
            Some(&b"kept too"[..])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_store_keeps_records_across_opens() {
        let dir = std::env::temp_dir().join(format!("tagwarden-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = FileStore::open(&dir).expect("open");
            exercise(&s);
        }
        let s = FileStore::open(&dir).expect("reopen");
        assert_eq!(
            s.get("policy/ns/a").expect("get").as_deref(),
            Some(&b"3"[..])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
