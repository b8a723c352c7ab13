//! A pack file of whole objects (no deltas), for writing many new objects
//! at once: libgit2's loose writes cost a file creation each.
//! Format: git's `Documentation/gitformat-pack.txt`, version 2.

use git2::{Odb, Oid};
use sha1::{Digest, Sha1};

/// The type numbers of a pack entry's header.
fn type_code(kind: git2::ObjectType) -> Option<u8> {
    match kind {
        git2::ObjectType::Commit => Some(1),
        git2::ObjectType::Tree => Some(2),
        git2::ObjectType::Blob => Some(3),
        git2::ObjectType::Tag => Some(4),
        _ => None,
    }
}

/// An entry's header: the type and the inflated size, seven bits a byte
/// after the first four, low bits first.
fn entry_header(code: u8, size: usize, out: &mut Vec<u8>) {
    let mut byte = (code << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
}

/// The pack holding `ids`, each read from `odb`.
pub(crate) fn build(odb: &Odb<'_>, ids: &[Oid]) -> Result<Vec<u8>, git2::Error> {
    let count = u32::try_from(ids.len())
        .map_err(|_| git2::Error::from_str("too many objects for one pack"))?;
    let mut out = Vec::with_capacity(64 + ids.len() * 256);
    out.extend_from_slice(b"PACK");
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    // Small objects: a fast level; the pack is short-lived before a push
    // sends it on.
    let mut z = flate2::Compress::new(flate2::Compression::fast(), true);
    for id in ids {
        let object = odb.read(*id)?;
        let code = type_code(object.kind())
            .ok_or_else(|| git2::Error::from_str("object of unknown type"))?;
        let data = object.data();
        entry_header(code, data.len(), &mut out);
        z.reset();
        out.reserve(data.len() + 64);
        // Bounded: every round either ends the stream or doubles the room.
        let mut ended = false;
        for _ in 0..64 {
            let done = usize::try_from(z.total_in()).map_or(data.len(), |n| n.min(data.len()));
            match z.compress_vec(&data[done..], &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => {
                    ended = true;
                    break;
                }
                Ok(_) => out.reserve(out.capacity()),
                Err(e) => return Err(git2::Error::from_str(&e.to_string())),
            }
        }
        if !ended {
            return Err(git2::Error::from_str("zlib did not finish an object"));
        }
    }
    let sum = Sha1::digest(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn entry_headers_carry_the_size_in_seven_bit_groups() {
        let mut out = Vec::new();
        entry_header(3, 5, &mut out);
        assert_eq!(out, [0x35]);
        out.clear();
        entry_header(3, 16, &mut out);
        assert_eq!(out, [0x80 | 0x30, 0x01]);
        out.clear();
        // 0x1234 = 0100 1000 1101 00, low nibble 4, then 0x23 in 7 bits.
        entry_header(2, 0x1234, &mut out);
        assert_eq!(out, [0x80 | 0x20 | 0x4, 0x80 | 0x23, 0x02]);
    }

    #[test]
    fn a_built_pack_indexes_and_yields_the_same_objects() {
        let src = tagwarden_testkit::TempDir::new("pack-src");
        let repo = git2::Repository::init(src.path()).expect("init");
        let mut ids = Vec::new();
        for i in 0..300 {
            // Sizes around every header-length boundary.
            let body = "x".repeat(i * 37);
            ids.push(repo.blob(body.as_bytes()).expect("blob"));
        }
        let mut tb = repo.treebuilder(None).expect("tb");
        tb.insert("a", ids[3], 0o100644).expect("insert");
        ids.push(tb.write().expect("tree"));
        let pack = build(&repo.odb().expect("odb"), &ids).expect("pack");
        let dst = tagwarden_testkit::TempDir::new("pack-dst");
        let other = git2::Repository::init_bare(dst.path()).expect("init");
        let odb = other.odb().expect("odb");
        let mut w = odb.packwriter().expect("writer");
        w.write_all(&pack).expect("write");
        w.commit().expect("index");
        let src_odb = repo.odb().expect("odb");
        for id in &ids {
            let a = src_odb.read(*id).expect("src");
            let b = odb.read(*id).expect("packed");
            assert_eq!((a.kind(), a.data()), (b.kind(), b.data()));
        }
    }
}
