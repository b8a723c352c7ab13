//! The tree walk: which files an update reads, and which paths it refuses.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use tagwarden_setters::{LatestRef, PolicyImage, Setters, SettersError, apply, plan, slash_path};
use tagwarden_testkit::TempDir;

const MARKED: &str =
    "image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
const UPDATED: &str =
    "image: ghcr.io/stefanprodan/podinfo:5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

fn setters() -> Setters {
    Setters::new(
        "flux-system",
        None,
        &[PolicyImage {
            no_downgrade: None,
            namespace: "flux-system".into(),
            name: "podinfo".into(),
            labels: BTreeMap::new(),
            latest: LatestRef::parse("ghcr.io/stefanprodan/podinfo:5.0.3").expect("valid"),
        }],
    )
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn changed(root: &Path, update_path: &str) -> Vec<String> {
    plan(root, update_path, &setters())
        .unwrap_or_else(|e| panic!("{update_path}: {e}"))
        .files
        .iter()
        .map(|f| slash_path(&f.path))
        .collect()
}

#[test]
fn paths_leaving_the_checkout_are_refused() {
    let outside = TempDir::new("walk-outside");
    write(outside.path(), "secret.yaml", MARKED);
    let tmp = TempDir::new("walk-escape");
    let root = tmp.path().join("checkout");
    write(&root, "apps/app.yaml", MARKED);
    symlink(outside.path(), root.join("apps/elsewhere")).expect("symlink");

    for (path, needle) in [
        ("..", "'..' leads outside the checkout"),
        ("apps/../../x", "'..' leads outside the checkout"),
        ("/etc", "absolute paths are refused"),
        ("apps/elsewhere", "through a symlink, outside the checkout"),
        ("missing", "does not exist in the checkout"),
    ] {
        let e = plan(&root, path, &setters()).expect_err(path);
        assert!(
            matches!(e, SettersError::UpdatePath { .. }),
            "{path}: {e:?}"
        );
        assert!(!e.is_transient(), "{path}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{path}: {msg}");
        assert!(msg.starts_with(&format!("update path '{path}'")), "{msg}");
    }
    // `..` that stays inside is fine, and a directory symlink met while
    // walking is not followed.
    assert_eq!(changed(&root, "apps/../apps"), ["app.yaml"]);
    assert_eq!(changed(&root, ""), ["apps/app.yaml"]);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.yaml")).expect("read"),
        MARKED
    );
}

#[test]
fn file_symlinks_inside_are_read_once_outside_refused_dangling_skipped() {
    let tmp = TempDir::new("walk-links");
    let root = tmp.path();
    write(root, "shared/base.yaml", MARKED);
    write(root, "other/target.txt", MARKED);
    write(root, "apps/own.yaml", MARKED);
    symlink("../shared/base.yaml", root.join("apps/link-to-base.yaml")).expect("symlink");
    symlink("../other/target.txt", root.join("apps/link.yaml")).expect("symlink");
    symlink("../nowhere.yaml", root.join("apps/dangling.yaml")).expect("symlink");

    // From the whole checkout: base.yaml is walked itself, so its link adds
    // nothing; the .txt target is reached (and named) through its link.
    assert_eq!(
        changed(root, "."),
        ["apps/link.yaml", "apps/own.yaml", "shared/base.yaml"]
    );
    // From apps/ alone, the link is how base.yaml is reached; the write goes
    // to the target and the link stays a link.
    let result = apply(root, "apps", &setters()).expect("apply");
    let paths: Vec<String> = result.files.iter().map(|f| slash_path(&f.path)).collect();
    assert_eq!(paths, ["link-to-base.yaml", "link.yaml", "own.yaml"]);
    assert_eq!(result.change_count(), 3);
    assert_eq!(
        result.policies().into_iter().collect::<Vec<_>>(),
        [("flux-system".to_string(), "podinfo".to_string())]
    );
    assert_eq!(
        std::fs::read_to_string(root.join("shared/base.yaml")).expect("read"),
        UPDATED
    );
    assert!(
        std::fs::symlink_metadata(root.join("apps/link-to-base.yaml"))
            .expect("meta")
            .file_type()
            .is_symlink()
    );

    let outside = TempDir::new("walk-links-outside");
    write(outside.path(), "x.yaml", MARKED);
    symlink(outside.path().join("x.yaml"), root.join("apps/escape.yaml")).expect("symlink");
    let e = plan(root, "apps", &setters()).expect_err("escaping link");
    assert!(
        matches!(&e, SettersError::Symlink { path, .. } if path == Path::new("escape.yaml")),
        "{e:?}"
    );
    assert!(e.to_string().contains("outside the checkout"), "{e}");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("x.yaml")).expect("read"),
        MARKED
    );
}

#[test]
fn only_yaml_names_and_kustomization_are_read_and_git_is_skipped() {
    let tmp = TempDir::new("walk-names");
    let root = tmp.path();
    for rel in [
        "a.yaml",
        "b.yml",
        "Kustomization",
        "deep/er/c.yaml",
        "kustomization",
        "x.YAML",
        "x.json",
        "yaml",
        ".git/config.yaml",
        ".hidden/d.yaml",
    ] {
        write(root, rel, MARKED);
    }
    assert_eq!(
        changed(root, "."),
        [
            ".hidden/d.yaml",
            "Kustomization",
            "a.yaml",
            "b.yml",
            "deep/er/c.yaml"
        ]
    );
    // An update path may name a single file.
    assert_eq!(changed(root, "deep/er/c.yaml"), ["c.yaml"]);
}

#[test]
fn files_that_are_not_text_are_reported_and_skipped() {
    let tmp = TempDir::new("walk-binary");
    let root = tmp.path();
    let mut bytes = b"a: 1\nimage: \"$imagepolicy\" \xff\n".to_vec();
    bytes.extend_from_slice(MARKED.as_bytes());
    std::fs::write(root.join("bin.yaml"), &bytes).expect("write");
    write(root, "ok.yaml", MARKED);
    let r = apply(root, ".", &setters()).expect("apply");
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].path, Path::new("bin.yaml"));
    assert_eq!(
        (r.skipped[0].error.line, r.skipped[0].error.column),
        (2, 23)
    );
    assert_eq!(std::fs::read(root.join("bin.yaml")).expect("read"), bytes);
}

#[test]
fn a_large_tree_is_read_once_and_only_files_with_the_marker_bytes_are_parsed_or_written() {
    // Enough files that the reads are shared among threads.
    let tmp = TempDir::new("walk-large");
    let root = tmp.path();
    let plain =
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  image: ghcr.io/stefanprodan/podinfo:5.0.0\n";
    // Would be skipped as not YAML, or not UTF-8, if it were parsed.
    let broken_unmarked = "a: [1\nb: 'open\n\t- x: : y\n";
    let binary_unmarked = b"a: 1\n\xff\xfe image: x\n";
    // The marker bytes in places that mark nothing: a comment above
    // `key: value` (the key's, as in Flux) and inside a block scalar.
    let comment_only = "# {\"$imagepolicy\": \"flux-system:podinfo\"}\nimage: ghcr.io/stefanprodan/podinfo:5.0.0\n";
    let in_block = "note: |\n  image: x # {\"$imagepolicy\": \"flux-system:podinfo\"}\nimage: ghcr.io/stefanprodan/podinfo:5.0.0\n";
    let broken_marked = "a: [1\nimage: x # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
    let mut marked = Vec::new();
    let mut skipped = Vec::new();
    let mut left = Vec::new();
    for i in 0..1500 {
        let rel = format!("apps/d{:02}/f{i:04}.yaml", i / 100);
        let text: &[u8] = match i % 150 {
            7 => MARKED.as_bytes(),
            20 => broken_unmarked.as_bytes(),
            21 => binary_unmarked,
            33 => comment_only.as_bytes(),
            34 => in_block.as_bytes(),
            99 => broken_marked.as_bytes(),
            _ => plain.as_bytes(),
        };
        match i % 150 {
            7 => marked.push(rel.clone()),
            99 => skipped.push(rel.clone()),
            _ => left.push((rel.clone(), text)),
        }
        let p = root.join(&rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    // Every file dated in the past: a file written anew would show it.
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for (rel, _) in &left {
        std::fs::File::options()
            .write(true)
            .open(root.join(rel))
            .and_then(|f| f.set_modified(past))
            .expect("set mtime");
    }

    // One directory walked alone (a single thread) agrees with the whole.
    assert_eq!(changed(root, "apps/d00"), ["f0007.yaml"]);
    let r = apply(root, ".", &setters()).expect("apply");
    let paths: Vec<String> = r.files.iter().map(|f| slash_path(&f.path)).collect();
    assert_eq!(paths, marked);
    assert_eq!(r.change_count(), 10);
    let skipped_paths: Vec<String> = r.skipped.iter().map(|s| slash_path(&s.path)).collect();
    assert_eq!(skipped_paths, skipped);
    assert!(
        r.skipped.iter().all(|s| s.error.line == 2),
        "{:?}",
        r.skipped
    );
    for rel in &marked {
        assert_eq!(
            std::fs::read_to_string(root.join(rel)).expect("read"),
            UPDATED
        );
    }
    for (rel, text) in &left {
        let p = root.join(rel);
        assert_eq!(&std::fs::read(&p).expect("read"), text, "{rel}");
        let mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(mtime, past, "{rel} was written");
    }
    // A second run has nothing left to do.
    assert_eq!(changed(root, "."), Vec::<String>::new());
}
