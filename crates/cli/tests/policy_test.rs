//! `tagwarden policy test` as a user runs it: stdout, stderr, exit code.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tagwarden");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    // A command refused at flag parsing exits before reading its input; the
    // pipe closing under us is then expected, not a failure of the test.
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tagwarden-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

#[test]
fn prints_the_selected_tag_alone() {
    let out = run(
        &["policy", "test", "--select-semver", "5.0.x", "--tags", "-"],
        "5.0.0\n5.0.3\n5.1.0\nlatest\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5.0.3\n");
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn lines_are_verbatim_but_for_the_line_ending() {
    let out = run(
        &["policy", "test", "--select-alpha", "asc", "--tags", "-"],
        "a \r\nb\r\n\n a\n",
    );
    assert_eq!(text(&out.stdout), "b\n", "CRLF stripped, spaces kept");
    let out = run(
        &["policy", "test", "--select-alpha", "desc", "--tags", "-"],
        "a \r\nb\r\n\n a\n",
    );
    assert_eq!(text(&out.stdout), " a\n");
}

#[test]
fn the_lab_seed_numerical_policy() {
    let out = run(
        &[
            "policy",
            "test",
            "--select-numeric=asc",
            "--filter-regex=^main-[a-f0-9]+-(?P<ts>[0-9]+)",
            "--filter-extract=$ts",
            "--tags",
            "-",
        ],
        "main-e5d27a2c-1619063680\nmain-2d3fcbd-1611906956\nfeature-x-1719999999\n",
    );
    assert_eq!(
        text(&out.stdout),
        "main-e5d27a2c-1619063680\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn reads_the_policy_from_a_flux_manifest_and_flags_override_it() {
    let file = temp_file(
        "podinfo-policy.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1beta1\nkind: ImagePolicy\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: podinfo\n  policy:\n    semver:\n      range: 5.0.x\n",
    );
    let tags = temp_file("tags.txt", "5.0.0\n5.0.3\n6.0.0\n");
    let f = file.to_str().expect("utf8");
    let t = tags.to_str().expect("utf8");
    let out = run(&["policy", "test", "-f", f, "--tags", t], "");
    assert_eq!(text(&out.stdout), "5.0.3\n", "{}", text(&out.stderr));
    let out = run(
        &[
            "policy",
            "test",
            "-f",
            f,
            "--select-semver",
            ">=6",
            "--tags",
            t,
        ],
        "",
    );
    assert_eq!(text(&out.stdout), "6.0.0\n");
    let out = run(
        &["policy", "test", "-f", f, "--name", "other", "--tags", t],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no ImagePolicy named 'other'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn explain_goes_to_stderr_and_says_why() {
    let out = run(
        &[
            "policy",
            "test",
            "--select-semver",
            "5.0.x",
            "--filter-regex",
            "^5",
            "--tags",
            "-",
            "--explain",
        ],
        "5.0.0\n5.0.3\n5.1.0\nlatest\n",
    );
    assert_eq!(text(&out.stdout), "5.0.3\n");
    let err = text(&out.stderr);
    assert!(err.contains("5.0.3\tSELECTED '5.0.3'"), "{err}");
    assert!(err.contains("5.1.0\toutside the range"), "{err}");
    assert!(err.contains("latest\tfiltered out"), "{err}");
}

#[test]
fn failures_print_nothing_on_stdout_and_exit_non_zero() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--select-semver", "5.0.x"],
            "6.0.0\nlatest\n",
            "no tag satisfies semver range '5.0.x'",
        ),
        (
            &["--select-semver", ">= bar"],
            "1.0.0\n",
            "spec.policy.semver.range: improper constraint '>= bar'",
        ),
        (
            &["--select-numeric", "asc"],
            "1\nlatest\n",
            "failed to parse invalid numeric value 'latest'",
        ),
        (
            &["--select-numeric", "up"],
            "1\n",
            "spec.policy.numerical.order: invalid order 'up'",
        ),
        (
            &["--select-alpha", "asc", "--filter-regex", "^("],
            "a\n",
            "invalid regular expression pattern '^('",
        ),
        (
            &[
                "--select-alpha",
                "asc",
                "--filter-regex",
                "^(a)$",
                "--filter-extract",
                "$2",
            ],
            "a\n",
            "refers to group 2",
        ),
        (
            &["--select-alpha", "asc", "--filter-regex", "^v"],
            "a\n",
            "none of the 1 tags matches filterTags pattern '^v'",
        ),
        (&["--select-alpha", "asc"], "", "no tags to select from"),
        (&[], "a\n", "no policy: give -f"),
    ];
    for (flags, stdin, needle) in cases {
        let mut args = vec!["policy", "test", "--tags", "-"];
        args.extend_from_slice(flags);
        let out = run(&args, stdin);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn two_policy_kinds_are_refused_by_the_flags() {
    let out = run(
        &[
            "policy",
            "test",
            "--select-semver",
            "*",
            "--select-alpha",
            "asc",
            "--tags",
            "-",
        ],
        "a\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}

/// A misspelt field (`filterTag`) is ignored with a warning that names the
/// closest field; `--strict` makes it an error.
#[test]
fn unknown_fields_warn_and_strict_fails() {
    let file = temp_file(
        "typo-policy.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: app}\nspec:\n  imageRepositoryRef: {name: app}\n  policy: {semver: {range: 1.x}}\n  filterTag: {pattern: '^1[.]0'}\n",
    );
    let f = file.to_str().expect("utf-8 path");
    let warning = format!(
        "{f}: document 1: ImagePolicy 'app': spec.filterTag: unknown field, did you mean spec.filterTags?"
    );
    let out = run(
        &["policy", "test", "-f", f, "--tags", "-"],
        "1.0.0\n1.1.0\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "1.1.0\n",
        "the misspelt filter has no effect"
    );
    assert_eq!(text(&out.stderr), format!("warning: {warning}\n"));
    let out = run(
        &["policy", "test", "-f", f, "--strict", "--tags", "-"],
        "1.0.0\n",
    );
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!("error: {f}: unknown fields (--strict):\n  {warning}\n")
    );
}

/// The guards, offline: a policy file's `tagwarden.io/no-downgrade` with
/// `--current`, and `tagwarden.io/minimum-age` with `--first-seen`.
#[test]
fn guards_are_explained_offline() {
    let policy = temp_file(
        "guarded.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: web\n  namespace: flux-system\n  annotations:\n    tagwarden.io/no-downgrade: \"true\"\n    tagwarden.io/minimum-age: 24h\nspec:\n  imageRepositoryRef: {name: web}\n  policy: {semver: {range: '>=1.0.0'}}\n",
    );
    let p = policy.to_str().expect("utf-8");
    // A marker at 1.3.0 while the registry lists up to 1.2.0: kept.
    let out = run(
        &[
            "policy",
            "test",
            "-f",
            p,
            "--tags",
            "-",
            "--current",
            "1.3.0",
        ],
        "1.0.0\n1.2.0\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1.3.0\n");
    assert_eq!(
        text(&out.stderr),
        "1.2.0\theld back by tagwarden.io/no-downgrade: ranks lower than the current '1.3.0'; narrow the range to revert on purpose\n"
    );
    // An older current tag is replaced as usual.
    let out = run(
        &[
            "policy",
            "test",
            "-f",
            p,
            "--tags",
            "-",
            "--current",
            "1.0.0",
        ],
        "1.0.0\n1.2.0\n",
    );
    assert_eq!(text(&out.stdout), "1.2.0\n");

    // 1.2.0 was first seen an hour before --now: too young.
    let seen = temp_file("first-seen.txt", "1.2.0 2026-12-01T09:00:00Z\n");
    let out = run(
        &[
            "policy",
            "test",
            "-f",
            p,
            "--tags",
            "-",
            "--first-seen",
            seen.to_str().expect("utf-8"),
            "--now",
            "2026-12-01T10:00:00Z",
        ],
        "1.0.0\n1.2.0\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1.0.0\n");
    assert_eq!(
        text(&out.stderr),
        "1.2.0\ttoo young for tagwarden.io/minimum-age 24h0m0s: eligible at 2026-12-02T09:00:00Z\n"
    );
}
