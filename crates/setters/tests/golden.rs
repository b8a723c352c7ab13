//! Golden trees: `golden/<case>/input` updated with one fixed policy set must
//! equal `golden/<case>/expected` byte for byte; `changes.txt` lists the
//! result (`file|apiVersion|kind|namespace|name|old|new|setter`), and
//! `skipped.txt` the files reported as not YAML (`file:line`). A second
//! update changes nothing. In `changes.txt`, control characters, line and
//! paragraph separators and the BOM are written `\u{XX}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tagwarden_setters::{LatestRef, PolicyImage, Setters, UpdateResult, apply, slash_path};
use tagwarden_testkit::TempDir;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn setters() -> Setters {
    let digested = format!("ghcr.io/acme/app:1.2.3@{DIGEST}");
    let policies: Vec<PolicyImage> = [
        (
            "flux-system",
            "podinfo",
            "ghcr.io/stefanprodan/podinfo:5.0.3",
        ),
        ("flux-system", "golang", "docker.io/golang:1.16.0"),
        ("flux-system", "app-name-prod", "registry/app:v1.2.0"),
        (
            "flux-system",
            "app-name-dev",
            "123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name:dev-def5678-12345999",
        ),
        ("flux-system", "vote", "schoolofdevops/vote:v9"),
        ("flux-system", "ts", "ghcr.io/acme/app:1606364286"),
        ("flux-system", "digested", digested.as_str()),
        // Another namespace's policy: its markers are left alone.
        ("default", "podinfo", "ghcr.io/stefanprodan/podinfo:9.9.9"),
    ]
    .into_iter()
    .map(|(namespace, name, latest)| PolicyImage {
        no_downgrade: None,
        namespace: namespace.into(),
        name: name.into(),
        labels: BTreeMap::new(),
        latest: LatestRef::parse(latest).expect("valid ref"),
    })
    .chain(
        // Tags a hostile registry could send, built directly because
        // LatestRef::parse refuses them: the writer must still be safe.
        [
            ("evil", "1.0\u{2028}- name: evil"),
            ("nel", "1.0\u{85}kind: Secret"),
            ("ps", "1.0\u{2029}- name: evil"),
            ("controls", "1.0\u{1b}[31m\u{7f}\u{9b}\u{0}\t\n\r"),
            ("bom", "\u{feff}1.0"),
        ]
        .into_iter()
        .map(|(name, tag)| PolicyImage {
            no_downgrade: None,
            namespace: "flux-system".into(),
            name: name.into(),
            labels: BTreeMap::new(),
            latest: LatestRef {
                name: "ghcr.io/acme/app".into(),
                tag: tag.into(),
                digest: None,
            },
        }),
    )
    .collect();
    Setters::new("flux-system", None, &policies)
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                pending.push(p);
            } else {
                let rel = slash_path(p.strip_prefix(root).expect("under root"));
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in files(from) {
        let p = to.join(&rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
    }
}

/// A value on one line of `changes.txt`.
fn visible(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn result_lines(r: &UpdateResult) -> Vec<String> {
    let mut out = Vec::new();
    for f in &r.files {
        for o in &f.objects {
            for c in &o.changes {
                out.push(format!(
                    "{}|{}|{}|{}|{}|{}|{}|{}",
                    slash_path(&f.path),
                    o.id.api_version,
                    o.id.kind,
                    o.id.namespace,
                    o.id.name,
                    visible(&c.old_value),
                    visible(&c.new_value),
                    c.setter
                ));
            }
        }
    }
    out
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The first line where two texts differ, for readable failures.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let (w, g) = (String::from_utf8_lossy(want), String::from_utf8_lossy(got));
    for (i, (a, b)) in w.split('\n').zip(g.split('\n')).enumerate() {
        if a != b {
            return format!("line {}:\n  want {a:?}\n  got  {b:?}", i + 1);
        }
    }
    format!(
        "lengths differ: want {} bytes, got {}",
        want.len(),
        got.len()
    )
}

fn assert_tree(case: &str, want: &BTreeMap<String, Vec<u8>>, dir: &Path) {
    let got = files(dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{case}: file set"
    );
    for (rel, bytes) in want {
        assert!(
            &got[rel] == bytes,
            "{case}/{rel}: {}",
            first_difference(bytes, &got[rel])
        );
    }
}

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_trees() {
    let setters = setters();
    let dirs = case_dirs();
    assert!(dirs.len() >= 12, "golden cases missing: {dirs:?}");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for dir in dirs {
        let case = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let input = files(&dir.join("input"));
        let expected = files(&dir.join("expected"));
        let tmp = TempDir::new(&format!("golden-{case}"));
        copy_tree(&dir.join("input"), tmp.path());
        for rel in input.keys() {
            std::fs::File::options()
                .write(true)
                .open(tmp.path().join(rel))
                .and_then(|f| f.set_modified(old))
                .expect("set mtime");
        }

        let result = apply(tmp.path(), ".", &setters).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_tree(&case, &expected, tmp.path());
        assert_eq!(
            result_lines(&result),
            lines_of(&dir.join("changes.txt")),
            "{case}: changes"
        );
        let skipped: Vec<String> = result
            .skipped
            .iter()
            .map(|s| format!("{}:{}", slash_path(&s.path), s.error.line))
            .collect();
        assert_eq!(
            skipped,
            lines_of(&dir.join("skipped.txt")),
            "{case}: skipped"
        );
        // Files without a change are not written at all.
        for (rel, bytes) in &input {
            if expected[rel] == *bytes {
                let mtime = std::fs::metadata(tmp.path().join(rel))
                    .and_then(|m| m.modified())
                    .expect("mtime");
                assert_eq!(mtime, old, "{case}/{rel} was rewritten without a change");
            }
        }

        let again = apply(tmp.path(), ".", &setters).expect("second update");
        assert_eq!(again.files, [], "{case}: second update changed something");
        assert_tree(&case, &expected, tmp.path());
    }
}

#[test]
fn inputs_differ_from_expected_only_where_the_seeds_mark_values() {
    // Guards the fixtures themselves: every case changes something, and
    // every changed line of every file carries (or sits under) a marker.
    for dir in case_dirs() {
        let input = files(&dir.join("input"));
        let expected = files(&dir.join("expected"));
        assert_ne!(input, expected, "{}: nothing to update", dir.display());
        for (rel, want) in &expected {
            let (a, b) = (
                String::from_utf8_lossy(&input[rel]),
                String::from_utf8_lossy(want),
            );
            let (a, b): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
            assert_eq!(a.len(), b.len(), "{rel}: line count");
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if x != y {
                    let marked =
                        x.contains("$imagepolicy") || (i > 0 && a[i - 1].contains("$imagepolicy"));
                    assert!(marked, "{rel}:{}: changed line without a marker", i + 1);
                }
            }
        }
    }
}
