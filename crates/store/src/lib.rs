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

/// `state.redb` in a folder.
pub struct FileStore(redb::Database);

impl FileStore {
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        let path = dir.join("state.redb");
        let open_err = |m: String| StoreError::Open {
            path: path.display().to_string(),
            message: m,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        // A small page cache: the daemon reads a record per reconcile, and
        // redb's default cache would grow with every tag list it has seen.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| open_err(e.to_string()))?;
        // Create the table once so readers never meet a missing one.
        let tx = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        tx.open_table(TABLE).map_err(|e| open_err(e.to_string()))?;
        tx.commit().map_err(|e| open_err(e.to_string()))?;
        Ok(FileStore(db))
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.0.begin_read().map_err(|x| e(&x))?;
        let t = tx.open_table(TABLE).map_err(|x| e(&x))?;
        Ok(t.get(key).map_err(|x| e(&x))?.map(|v| v.value().to_vec()))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.0.begin_write().map_err(|x| e(&x))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|x| e(&x))?;
            t.insert(key, value).map_err(|x| e(&x))?;
        }
        tx.commit().map_err(|x| e(&x))
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let e = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.0.begin_read().map_err(|x| e(&x))?;
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
