//! Status and tags in a key-value store (the embedded store of `run --once`
//! and the daemon): `status/<Kind>/<namespace>/<name>` holds the Flux v1
//! status JSON, `tags/<namespace>/<name>` a repository's last good tag list.

use crate::{EngineError, StatusStore};
use std::sync::Arc;
use tagwarden_api::status::Status;
use tagwarden_api::{Kind, ObjectId};
use tagwarden_store::Store;

const STATUS: &str = "status/";
const TAGS: &str = "tags/";

fn status_key(id: &ObjectId) -> String {
    format!("{STATUS}{}/{}/{}", id.kind, id.namespace, id.name)
}

pub(crate) fn tags_key(namespace: &str, name: &str) -> String {
    format!("{TAGS}{namespace}/{name}")
}

/// [`StatusStore`] over a key-value [`Store`].
pub struct KvStatus {
    store: Arc<dyn Store>,
}

impl KvStatus {
    pub fn new(store: Arc<dyn Store>) -> KvStatus {
        KvStatus { store }
    }
}

impl StatusStore for KvStatus {
    fn read(&self, id: &ObjectId) -> Result<Option<Status>, EngineError> {
        let key = status_key(id);
        match self.store.get(&key)? {
            None => Ok(None),
            Some(bytes) => {
                Status::from_json(id.kind, &bytes)
                    .map(Some)
                    .map_err(|e| EngineError::State {
                        key,
                        message: e.to_string(),
                    })
            }
        }
    }

    fn write(&self, id: &ObjectId, status: &Status) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(&status.to_json()).map_err(|e| EngineError::State {
            key: status_key(id),
            message: e.to_string(),
        })?;
        Ok(self.store.put_rebuildable(&status_key(id), &bytes)?)
    }

    fn list(&self) -> Result<Vec<(ObjectId, Status)>, EngineError> {
        let mut out = Vec::new();
        for key in self.store.keys(STATUS)? {
            let mut parts = key[STATUS.len()..].splitn(3, '/');
            let (Some(kind), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(kind) = Kind::parse(kind).filter(|k| k.is_reconciled()) else {
                continue;
            };
            let id = ObjectId::new(kind, ns, name);
            if let Some(s) = self.read(&id)? {
                out.push((id, s));
            }
        }
        Ok(out)
    }
}

/// Removes the records of tagwarden before 0.2 (`<Kind>/<ns>/<name>`, a
/// private format with the tags inside): their status is recomputed by the
/// next reconcile of each object. Returns how many were removed.
pub fn drop_legacy_records(store: &dyn Store) -> Result<usize, EngineError> {
    let mut n = 0;
    for kind in Kind::RECONCILED {
        for key in store.keys(&format!("{kind}/"))? {
            store.delete(&key)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Shared tag lists by [`tagwarden_registry::ScanSettings::list_identity`].
const LISTS: &str = "taglist/";
/// A repository's record that names its shared list.
const POINTER: &[u8] = b"\0list ";
/// A compressed list (a plain one is the tags, one per line): each tag as
/// the length of the prefix it shares with the one before (a byte: tags
/// are at most 128 bytes) and the rest of it up to a newline, deflated.
/// Sorted lists share long prefixes; a 1,000-tag list shrinks about 10x.
const DEFLATE: &[u8] = b"\0fc-deflate\n";
/// Inflating stops here: a damaged or forged record cannot take the memory.
const MAX_LIST_BYTES: u64 = 64 << 20;

fn list_key(id: &str) -> String {
    format!("{LISTS}{id}")
}

fn encode(tags: &[String]) -> Vec<u8> {
    use std::io::Write as _;
    let mut coded = Vec::with_capacity(tags.iter().map(|t| t.len() / 2 + 2).sum());
    let mut prev: &[u8] = b"";
    for t in tags {
        let t = t.as_bytes();
        let shared = prev
            .iter()
            .zip(t)
            .take(255)
            .take_while(|(a, b)| a == b)
            .count();
        coded.push(shared as u8);
        coded.extend_from_slice(&t[shared..]);
        coded.push(b'\n');
        prev = t;
    }
    // One compressor per thread, reset between lists: a new one per list
    // allocates its few hundred KiB of state each time, which glibc keeps
    // as fragments (RSS grew to 1.2 GiB over a 10,000-list first pass).
    thread_local! {
        static DEFLATER: std::cell::RefCell<flate2::Compress> = std::cell::RefCell::new(
            flate2::Compress::new(flate2::Compression::default(), false),
        );
    }
    DEFLATER.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        let mut out = Vec::with_capacity(DEFLATE.len() + coded.len() / 2 + 64);
        out.extend_from_slice(DEFLATE);
        // Bounded: every round either ends the stream or doubles the room.
        for _ in 0..64 {
            let done = usize::try_from(z.total_in()).map_or(coded.len(), |n| n.min(coded.len()));
            match z.compress_vec(&coded[done..], &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity()),
                Err(_) => break,
            }
        }
        // The compressor failed: keep the list uncompressed instead.
        let mut z =
            flate2::write::DeflateEncoder::new(DEFLATE.to_vec(), flate2::Compression::none());
        let _ = z.write_all(&coded);
        z.finish().unwrap_or_default()
    })
}

/// The tags of a front-coded list; `None` when it is not one we wrote.
fn front_decode(coded: &[u8]) -> Option<Vec<String>> {
    let mut tags = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    let mut rest = coded;
    while let Some((&shared, tail)) = rest.split_first() {
        let end = tail.iter().position(|&b| b == b'\n')?;
        let shared = usize::from(shared);
        if shared > prev.len() {
            return None;
        }
        prev.truncate(shared);
        prev.extend_from_slice(&tail[..end]);
        tags.push(String::from_utf8(prev.clone()).ok()?);
        rest = &tail[end + 1..];
    }
    Some(tags)
}

fn decode(key: &str, bytes: &[u8]) -> Result<Vec<String>, EngineError> {
    use std::io::Read as _;
    let bad = |message: String| EngineError::State {
        key: key.to_string(),
        message,
    };
    let tags: Vec<String> = match bytes.strip_prefix(DEFLATE) {
        Some(z) => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(z)
                .take(MAX_LIST_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(e.to_string()))?;
            if out.len() as u64 > MAX_LIST_BYTES {
                return Err(bad("the list inflates past 64 MiB".into()));
            }
            front_decode(&out).ok_or_else(|| bad("not a tag list".into()))?
        }
        None => std::str::from_utf8(bytes)
            .map_err(|e| bad(e.to_string()))?
            .split('\n')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    };
    // A record not written by us (or damaged) must not smuggle a tag past
    // the grammar the scan enforced.
    if let Some(bad_tag) = tags.iter().find(|t| !tagwarden_registry::is_valid_tag(t)) {
        return Err(bad(format!(
            "invalid tag '{}'",
            tagwarden_api::text::escape(bad_tag, false)
        )));
    }
    Ok(tags)
}

/// The shared list a repository's record names, if it names one (records
/// of tagwarden before 0.9 hold the list itself).
pub(crate) fn list_of(
    db: &dyn Store,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, EngineError> {
    Ok(db.get(&tags_key(namespace, name))?.and_then(|b| {
        b.strip_prefix(POINTER)
            .map(|id| String::from_utf8_lossy(id).into_owned())
    }))
}

/// Records a repository's tags (sorted as a scan keeps them) in the list
/// shared by every repository with identity `list` (ten ImageRepositories
/// of one image keep one copy), and points the repository at it. Both are
/// rebuildable: a crash that loses them costs one more scan.
pub(crate) fn save_tags(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    list: &str,
    tags: &[String],
) -> Result<(), EngineError> {
    // Tags passed the OCI grammar: no newline can be inside one.
    let bytes = encode(tags);
    let key = list_key(list);
    if db.get(&key)?.as_deref() != Some(&bytes[..]) {
        db.put_rebuildable(&key, &bytes)?;
    }
    let pointer = [POINTER, list.as_bytes()].concat();
    let own = tags_key(namespace, name);
    if db.get(&own)?.as_deref() != Some(&pointer[..]) {
        db.put_rebuildable(&own, &pointer)?;
    }
    Ok(())
}

/// Whether the repository's record names list `list` and that list is kept.
pub(crate) fn has_list(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    list: &str,
) -> Result<bool, EngineError> {
    Ok(
        list_of(db, namespace, name)?.as_deref() == Some(list)
            && db.get(&list_key(list))?.is_some(),
    )
}

/// The shared list `list`, if kept.
pub(crate) fn load_list(db: &dyn Store, list: &str) -> Result<Option<Vec<String>>, EngineError> {
    let key = list_key(list);
    db.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// A repository's last good tag list, if it was ever scanned.
pub fn load_tags(
    db: &dyn Store,
    namespace: &str,
    name: &str,
) -> Result<Option<Vec<String>>, EngineError> {
    let key = tags_key(namespace, name);
    let Some(bytes) = db.get(&key)? else {
        return Ok(None);
    };
    match bytes.strip_prefix(POINTER) {
        Some(id) => load_list(db, &String::from_utf8_lossy(id)),
        None => decode(&key, &bytes).map(Some),
    }
}

/// Drops a repository's record; its shared list (and what else is kept by
/// list, as `then` says) goes too when no other repository names it.
pub(crate) fn forget_tags(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    then: impl FnOnce(&str) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let list = list_of(db, namespace, name)?;
    db.delete(&tags_key(namespace, name))?;
    let Some(list) = list else { return Ok(()) };
    let pointer = [POINTER, list.as_bytes()].concat();
    for key in db.keys(TAGS)? {
        if db.get(&key)?.as_deref() == Some(&pointer[..]) {
            return Ok(());
        }
    }
    db.delete(&list_key(&list))?;
    then(&list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_store::MemoryStore;

    fn semver_tags(n: usize) -> Vec<String> {
        let mut t: Vec<String> = (0..n)
            .map(|i| format!("{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100))
            .collect();
        t.sort_unstable_by(|a, b| b.cmp(a));
        t
    }

    #[test]
    fn tags_round_trip_and_a_forged_record_is_refused() {
        let db = MemoryStore::default();
        assert_eq!(load_tags(&db, "ns", "r").expect("read"), None);
        let tags = vec!["6.0.0".to_string(), "5.0.3".to_string()];
        save_tags(&db, "ns", "r", "l1", &tags).expect("save");
        assert_eq!(load_tags(&db, "ns", "r").expect("read"), Some(tags));
        save_tags(&db, "ns", "empty", "l2", &[]).expect("save");
        assert_eq!(load_tags(&db, "ns", "empty").expect("read"), Some(vec![]));
        db.put("tags/ns/bad", b"1.0\nx: {y}").expect("put");
        let e = load_tags(&db, "ns", "bad").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "state record tags/ns/bad unreadable: invalid tag 'x: {y}'"
        );
        // A forged compressed list is held to the same grammar.
        db.put("taglist/l3", &encode(&["ok".into(), "x y".into()]))
            .expect("put");
        db.put("tags/ns/forged", b"\0list l3").expect("put");
        let e = load_tags(&db, "ns", "forged").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "state record taglist/l3 unreadable: invalid tag 'x y'"
        );
    }

    /// The compressor is reused per thread: nothing of one list may leak
    /// into the next.
    #[test]
    fn a_reused_compressor_encodes_each_list_on_its_own() {
        let big = semver_tags(20_000);
        let small = vec!["v2".to_string(), "v1".to_string()];
        let first = encode(&small);
        let _ = encode(&big);
        assert_eq!(encode(&small), first);
        assert_eq!(decode("k", &encode(&big)).expect("decode"), big);
        assert_eq!(decode("k", &first).expect("decode"), small);
    }

    #[test]
    fn a_list_inflating_past_the_cap_is_refused_not_read() {
        use std::io::Write as _;
        let db = MemoryStore::default();
        let mut z =
            flate2::write::DeflateEncoder::new(DEFLATE.to_vec(), flate2::Compression::best());
        let line = [b'a'; 1 << 20];
        for _ in 0..65 {
            z.write_all(&line).expect("deflate");
        }
        db.put("taglist/bomb", &z.finish().expect("finish"))
            .expect("put");
        db.put("tags/ns/bomb", b"\0list bomb").expect("put");
        let e = load_tags(&db, "ns", "bomb").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "state record taglist/bomb unreadable: the list inflates past 64 MiB"
        );
    }

    #[test]
    fn records_of_before_0_9_are_read_as_they_are() {
        let db = MemoryStore::default();
        db.put("tags/ns/old", b"2.0.0\n1.0.0").expect("put");
        assert_eq!(
            load_tags(&db, "ns", "old").expect("read"),
            Some(vec!["2.0.0".to_string(), "1.0.0".to_string()])
        );
        assert_eq!(list_of(&db, "ns", "old").expect("read"), None);
        assert!(!has_list(&db, "ns", "old", "l").expect("read"));
    }

    #[test]
    fn repositories_of_one_list_share_one_compressed_copy() {
        let db = MemoryStore::default();
        let tags = semver_tags(1000);
        let raw: usize = tags.iter().map(|t| t.len() + 1).sum();
        for i in 0..10 {
            save_tags(&db, "ns", &format!("r{i}"), "shared", &tags).expect("save");
        }
        save_tags(&db, "ns", "other", "own", &tags[..10]).expect("save");
        assert_eq!(
            db.keys("taglist/").expect("keys"),
            ["taglist/own", "taglist/shared"]
        );
        let kept = db.get("taglist/shared").expect("get").expect("kept").len();
        assert!(kept * 8 < raw, "{kept} bytes kept for {raw} raw");
        for i in 0..10 {
            assert_eq!(
                load_tags(&db, "ns", &format!("r{i}"))
                    .expect("read")
                    .as_deref(),
                Some(&tags[..])
            );
        }
        // The list goes with the last repository that names it.
        for i in 0..9 {
            crate::guards::forget_repository(&db, "ns", &format!("r{i}")).expect("forget");
        }
        assert!(
            db.get("taglist/shared").expect("get").is_some(),
            "r9 still names it"
        );
        crate::guards::forget_repository(&db, "ns", "r9").expect("forget");
        assert_eq!(db.keys("taglist/").expect("keys"), ["taglist/own"]);
        assert_eq!(db.keys("tags/").expect("keys"), ["tags/ns/other"]);
    }

    #[test]
    fn legacy_records_are_dropped_and_nothing_else() {
        let db = MemoryStore::default();
        for k in [
            "ImageRepository/ns/a",
            "ImagePolicy/ns/a",
            "ImageUpdateAutomation/ns/a",
            "status/ImagePolicy/ns/a",
            "tags/ns/a",
            "suspend/ImagePolicy/ns/a",
        ] {
            db.put(k, b"x").expect("put");
        }
        assert_eq!(drop_legacy_records(&db).expect("drop"), 3);
        assert_eq!(
            db.keys("").expect("keys"),
            [
                "status/ImagePolicy/ns/a",
                "suspend/ImagePolicy/ns/a",
                "tags/ns/a"
            ]
        );
        assert_eq!(drop_legacy_records(&db).expect("again"), 0);
    }

    #[test]
    fn status_round_trips_and_lists_by_identity() {
        let kv = KvStatus::new(Arc::new(MemoryStore::default()));
        let id = ObjectId::new(Kind::ImagePolicy, "flux-system", "podinfo");
        assert_eq!(kv.read(&id).expect("read"), None);
        let s = Status::ImagePolicy(tagwarden_api::status::ImagePolicyStatus {
            observed_generation: 4,
            ..Default::default()
        });
        kv.write(&id, &s).expect("write");
        assert_eq!(kv.read(&id).expect("read"), Some(s.clone()));
        assert_eq!(kv.list().expect("list"), [(id, s)]);
    }
}
