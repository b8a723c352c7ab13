//! Where tagwarden keeps what it saw between reconciles: bytes by key, so
//! the engine owns the meaning and the store only keeps it safe.
//! [`MemoryStore`] for one-shot runs and tests, [`FileStore`] (redb: one
//! file, crash-safe transactions) for `--state-dir` and the daemon.

use redb::ReadableDatabase;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

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
    /// Keys starting with `prefix`, sorted.
    fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
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

const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("records");

const CACHE_BYTES: usize = 2 << 20;

/// `state.redb` in a folder, held with an exclusive lock on `state.lock`
/// for as long as the store is open.
pub struct FileStore {
    db: redb::Database,
    dir: std::path::PathBuf,
    _lock: std::fs::File,
}

/// The store's file name inside the state dir.
pub const FILE_NAME: &str = "state.redb";
const LOCK_NAME: &str = "state.lock";

impl FileStore {
    /// Opens (or creates) the store in `dir`; fails at once with
    /// [`StoreError::Locked`] when another process holds it.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        Self::open_waiting(dir, std::time::Duration::ZERO, |_| {})
    }

    /// As [`FileStore::open`], but while another process holds the store,
    /// retries for up to `wait`, calling `on_wait` once before the first wait.
    pub fn open_waiting(
        dir: &Path,
        wait: std::time::Duration,
        on_wait: impl FnOnce(&Path),
    ) -> Result<FileStore, StoreError> {
        let path = dir.join(FILE_NAME);
        let shown = path.display().to_string();
        let open_err = |m: String| StoreError::Open {
            path: shown.clone(),
            message: m,
        };
        private_dir(dir).map_err(|e| open_err(e.to_string()))?;
        // Our own lock file first: redb's lock says only "already open", and
        // with it held, an empty store file can only be a damaged one.
        let lock = open_private(&dir.join(LOCK_NAME)).map_err(|e| open_err(e.to_string()))?;
        let deadline = std::time::Instant::now() + wait;
        let mut on_wait = Some(on_wait);
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(StoreError::Locked { path: shown });
                    }
                    if let Some(f) = on_wait.take() {
                        f(&path);
                    }
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(open_err(e.to_string())),
            }
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(open_err("not a regular file".into()));
            }
            // redb would silently start over on an empty file and drop every
            // suspend flag: a truncated store is reported, never reset.
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::Corrupt {
                    path: shown,
                    message: "the file is empty".into(),
                });
            }
            Ok(_) => {}
            Err(_) => {
                open_private(&path).map_err(|e| open_err(e.to_string()))?;
            }
        }
        // A small page cache: the daemon reads a record per reconcile, and
        // redb's default cache would grow with every tag list it has seen.
        let db = match redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Locked { path: shown });
            }
            // redb reports a foreign or truncated header as invalid data.
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() != std::io::ErrorKind::InvalidData =>
            {
                return Err(open_err(e.to_string()));
            }
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: shown,
                    message: e.to_string(),
                });
            }
        };
        // Create the table once so readers never meet a missing one.
        let tx = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        tx.open_table(TABLE).map_err(|e| open_err(e.to_string()))?;
        tx.commit().map_err(|e| open_err(e.to_string()))?;
        Ok(FileStore {
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Store for FileStore {
    fn state_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.db.begin_read().map_err(|x| e(&x))?;
        let t = tx.open_table(TABLE).map_err(|x| e(&x))?;
        Ok(t.get(key).map_err(|x| e(&x))?.map(|v| v.value().to_vec()))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db.begin_write().map_err(|x| e(&x))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|x| e(&x))?;
            t.insert(key, value).map_err(|x| e(&x))?;
        }
        tx.commit().map_err(|x| e(&x))
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.db.begin_read().map_err(|x| e(&x))?;
        let t = tx.open_table(TABLE).map_err(|x| e(&x))?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(|x| e(&x))? {
            let (k, _) = entry.map_err(|x| e(&x))?;
            let k = k.value().to_string();
            if !k.starts_with(prefix) {
                break;
            }
            out.push(k);
        }
        Ok(out)
    }
}

/// The state dir holds tags, status and the daemon's socket: owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let meta = std::fs::metadata(dir)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Opens or creates a file 0600 (before redb ever writes to it, so tags and
/// status are never readable by others, not even for a moment). The state
/// dir is private, so a symlink here was put there by the owner; it is still
/// refused rather than followed.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(std::io::Error::other(format!(
            "{} is a symlink",
            path.display()
        )));
    }
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

#[cfg(test)]
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
        assert_eq!(mode(&dir.join(LOCK_NAME)), 0o600);
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
