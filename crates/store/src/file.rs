//! The file-backed store: redb in the state dir, behind an exclusive lock.

use crate::{Store, StoreError};
use redb::ReadableDatabase;
use std::path::Path;

const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("records");

const CACHE_BYTES: usize = 2 << 20;

/// `state.redb` in a folder, held with an exclusive lock on `state.lock`
/// for as long as the store is open.
pub struct FileStore {
    db: redb::Database,
    dir: std::path::PathBuf,
    /// When a commit last reached the disk.
    synced: std::sync::Mutex<std::time::Instant>,
    _lock: std::fs::File,
}

/// The store's file name inside the state dir.
pub const FILE_NAME: &str = "state.redb";
pub(crate) const LOCK_NAME: &str = "state.lock";

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
            synced: std::sync::Mutex::new(std::time::Instant::now()),
            _lock: lock,
        })
    }
}

/// How long rebuildable writes may stay in memory only: a crash loses at
/// most this much of them (the next scan redoes it), never a durable write.
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl FileStore {
    /// One commit; `durable` ones (and the first rebuildable one after
    /// [`DURABLE_EVERY`]) are synced to disk together with every commit
    /// before them.
    fn insert(&self, key: &str, value: &[u8], durable: bool) -> Result<(), StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let mut tx = self.db.begin_write().map_err(|x| e(&x))?;
        let mut last = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let sync = durable || last.elapsed() >= DURABLE_EVERY;
        if !sync {
            tx.set_durability(redb::Durability::None)
                .map_err(|x| e(&x))?;
        }
        {
            let mut t = tx.open_table(TABLE).map_err(|x| e(&x))?;
            t.insert(key, value).map_err(|x| e(&x))?;
        }
        tx.commit().map_err(|x| e(&x))?;
        if sync {
            *last = std::time::Instant::now();
        }
        Ok(())
    }
}

impl Drop for FileStore {
    /// What only memory holds reaches the disk on a clean stop, and the
    /// file gives back the pages rewrites left free (tag lists and statuses
    /// are rewritten in place all day; without this the file only grows).
    fn drop(&mut self) {
        let synced = (|| {
            let tx = self.db.begin_write().ok()?;
            tx.commit().ok()
        })();
        if synced.is_none() {
            tracing::warn!(dir = %self.dir.display(), "state not synced to disk at stop");
            return;
        }
        // Bounded: each round moves pages towards the start of the file.
        for _ in 0..8 {
            match self.db.compact() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "state file not compacted");
                    break;
                }
            }
        }
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
        self.insert(key, value, true)
    }

    fn put_rebuildable(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.insert(key, value, false)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db.begin_write().map_err(|x| e(&x))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|x| e(&x))?;
            t.remove(key).map_err(|x| e(&x))?;
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
