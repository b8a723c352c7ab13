//! Selection tables: which tag wins, per policy, as Flux picks it.

use tagwarden_policy::{Policy, PolicyError, PolicySpec, SelectError, Verdict};

fn semver(range: &str) -> PolicySpec {
    PolicySpec {
        semver_range: Some(range.into()),
        ..PolicySpec::default()
    }
}
fn numerical(order: &str) -> PolicySpec {
    PolicySpec {
        numerical_order: Some(order.into()),
        ..PolicySpec::default()
    }
}
fn alphabetical(order: &str) -> PolicySpec {
    PolicySpec {
        alphabetical_order: Some(order.into()),
        ..PolicySpec::default()
    }
}
fn filtered(mut spec: PolicySpec, pattern: &str, extract: &str) -> PolicySpec {
    spec.filter_pattern = Some(pattern.into());
    spec.filter_extract = Some(extract.into());
    spec
}

fn select(spec: &PolicySpec, tags: &[&str]) -> Result<String, SelectError> {
    let p = Policy::new(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
    p.select(tags).map(|s| s.tag.to_string())
}

#[test]
fn semver_table() {
    let podinfo = [
        "5.0.0",
        "5.0.1",
        "5.0.2",
        "5.0.3",
        "5.1.0",
        "6.0.0",
        "latest",
        "master-1a2b3c",
    ];
    let rows: &[(&str, &[&str], &str)] = &[
        // the seed: podinfo 5.0.x resolves to 5.0.3
        ("5.0.x", &podinfo, "5.0.3"),
        (">=5.0.0", &podinfo, "6.0.0"),
        (">5.0.1", &podinfo, "6.0.0"),
        ("5.0.0", &podinfo, "5.0.0"),
        (">=1.0.0 <6.0.0", &podinfo, "5.1.0"),
        // the original tag is returned, with its v and build metadata
        ("^1", &["1.0.0", "v1.2.0", "1.1.0"], "v1.2.0"),
        ("*", &["1.0.0+build.1", "0.9.0"], "1.0.0+build.1"),
        // prereleases only when the range opts in
        (">=1.0.0", &["1.0.0", "1.1.0-rc.1"], "1.0.0"),
        ("^1.x-0", &["1.0.0", "1.1.0-rc.1"], "1.1.0-rc.1"),
        ("^1.x-0", &["1.1.0", "1.1.0-rc.1"], "1.1.0"),
        // tags that are not three-part versions are skipped, not errors
        ("*", &["1.2", "1", "1.2.3.4", "v1.0.0", "sha-abc"], "v1.0.0"),
        // leading zeros are read as numbers
        (">=2024.1.1", &["2024.01.05", "2023.12.31"], "2024.01.05"),
        // equal versions: the first tag seen wins
        ("*", &["v1.0.0", "1.0.0", "1.0.0+b"], "v1.0.0"),
        ("*", &["1.0.0+b", "v1.0.0", "1.0.0"], "1.0.0+b"),
    ];
    for (range, tags, want) in rows {
        assert_eq!(
            select(&semver(range), tags).as_deref(),
            Ok(*want),
            "{range} over {tags:?}"
        );
    }
}

#[test]
fn numerical_table() {
    let rows: &[(&str, &[&str], &str)] = &[
        ("asc", &["1", "10", "9"], "10"),
        ("desc", &["1", "10", "9"], "1"),
        ("ASC", &["-1", "-10", "0.5"], "0.5"),
        ("", &["1.5", "1.25", "1e1"], "1e1"),
        ("asc", &["0x10p0", "15"], "0x10p0"),
        ("asc", &["1_000", "999"], "1_000"),
        ("asc", &["Inf", "1e300"], "Inf"),
        // ties: the last one seen wins (Flux replaces unless strictly worse)
        ("asc", &["010", "10", "10.0"], "10.0"),
        ("desc", &["1", "1.0", "2"], "1.0"),
    ];
    for (order, tags, want) in rows {
        assert_eq!(
            select(&numerical(order), tags).as_deref(),
            Ok(*want),
            "{order} over {tags:?}"
        );
    }
}

#[test]
fn numerical_needs_every_value_to_be_a_number() {
    let err = select(&numerical("asc"), &["1", "latest", "2"]).expect_err("latest");
    assert_eq!(
        err.to_string(),
        "failed to parse invalid numeric value 'latest' (from tag 'latest')"
    );
    assert!(
        select(&numerical("asc"), &["1", "1e400"]).is_err(),
        "out of range is an error, as in Go"
    );
}

#[test]
fn alphabetical_table() {
    let rows: &[(&str, &[&str], &str)] = &[
        ("asc", &["a", "c", "b"], "c"),
        ("desc", &["a", "c", "b"], "a"),
        (
            "",
            &["RELEASE.2021-01-01", "RELEASE.2021-06-30"],
            "RELEASE.2021-06-30",
        ),
        // bytewise: uppercase sorts before lowercase, '9' before 'a'
        ("asc", &["Zeta", "alpha"], "alpha"),
        ("asc", &["9", "a"], "a"),
        ("asc", &["é", "z"], "é"),
        ("desc", &["b", "a", "a"], "a"),
    ];
    for (order, tags, want) in rows {
        assert_eq!(
            select(&alphabetical(order), tags).as_deref(),
            Ok(*want),
            "{order} over {tags:?}"
        );
    }
}

#[test]
fn filter_tags_table() {
    let ci = [
        "main-e5d27a2c-1619063680",
        "main-8b1f3a01-1619063999",
        "main-0c1e2d3f-1619063001",
        "dev-aaaaaaa-1719999999",
        "latest",
    ];
    // the seed lab: newest main build by timestamp
    let spec = filtered(numerical("asc"), r"^main-[a-f0-9]+-(?P<ts>[0-9]+)", "$ts");
    assert_eq!(
        select(&spec, &ci).as_deref(),
        Ok("main-8b1f3a01-1619063999")
    );
    // the v1 reference: dev builds by run id, prod by semver, staging by sha
    let dev = filtered(
        numerical("asc"),
        r"^dev-[0-9a-fA-F]{7,40}-(?P<run>[0-9]+)$",
        "$run",
    );
    assert_eq!(
        select(
            &dev,
            &[
                "dev-abc1234-12345678",
                "dev-abc1234-9",
                "dev-fff0000-12345679",
                "prod-1"
            ]
        )
        .as_deref(),
        Ok("dev-fff0000-12345679")
    );
    let prod = filtered(
        semver(">=1.0.0"),
        r"^v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)$",
        "$version",
    );
    assert_eq!(
        select(&prod, &["v1.2.3", "v1.10.0", "1.11.0", "v0.9.0"]).as_deref(),
        Ok("v1.10.0")
    );
    let staging = filtered(
        alphabetical("desc"),
        r"^staging-(?P<sha>[0-9a-fA-F]{7,40})$",
        "$sha",
    );
    assert_eq!(
        select(
            &staging,
            &["staging-bbbbbbb", "staging-aaaaaaa", "staging-x"]
        )
        .as_deref(),
        Ok("staging-aaaaaaa")
    );
    // a pattern without extract only filters
    let only = filtered(alphabetical("asc"), r"^rel-", "");
    assert_eq!(
        select(&only, &["rel-1", "zzz", "rel-2"]).as_deref(),
        Ok("rel-2")
    );
    // the pattern is unanchored, as Go's FindStringSubmatch
    let loose = filtered(alphabetical("asc"), r"abc", "");
    assert_eq!(select(&loose, &["xabcx", "zzz"]).as_deref(), Ok("xabcx"));
}

#[test]
fn same_extracted_value_is_the_later_tag() {
    let spec = filtered(semver("*"), r"^(?:a|b)-(?P<v>.*)$", "$v");
    assert_eq!(
        select(&spec, &["a-1.0.0", "b-1.0.0", "a-0.1.0"]).as_deref(),
        Ok("b-1.0.0")
    );
    let p = Policy::new(&spec).expect("valid");
    let (verdicts, err) = p.explain(&["a-1.0.0", "b-1.0.0", "a-0.1.0", "zzz"]);
    assert!(err.is_none());
    assert_eq!(
        verdicts,
        vec![
            Verdict::Shadowed {
                value: "1.0.0".into(),
                by: "b-1.0.0".into()
            },
            Verdict::Selected {
                value: "1.0.0".into()
            },
            Verdict::Candidate {
                value: "0.1.0".into()
            },
            Verdict::FilteredOut,
        ]
    );
}

#[test]
fn explain_says_why_each_tag_lost() {
    let p = Policy::new(&semver("5.0.x")).expect("valid");
    let (verdicts, err) = p.explain(&["5.0.0", "5.0.3", "5.1.0", "latest", "5.0.4-rc.1"]);
    assert!(err.is_none());
    assert_eq!(
        verdicts[0],
        Verdict::Candidate {
            value: "5.0.0".into()
        }
    );
    assert_eq!(
        verdicts[1],
        Verdict::Selected {
            value: "5.0.3".into()
        }
    );
    assert_eq!(
        verdicts[2],
        Verdict::OutOfRange {
            value: "5.1.0".into()
        }
    );
    assert!(
        matches!(&verdicts[3], Verdict::Unparsable { reason, .. } if reason == "not MAJOR.MINOR.PATCH")
    );
    assert_eq!(
        verdicts[4],
        Verdict::OutOfRange {
            value: "5.0.4-rc.1".into()
        }
    );
}

#[test]
fn selection_errors_say_what_happened() {
    assert_eq!(select(&semver("*"), &[]), Err(SelectError::NoTags));
    let e = select(&filtered(semver("*"), "^v", ""), &["1.0.0", "latest"]).expect_err("no match");
    assert_eq!(
        e.to_string(),
        "none of the 2 tags matches filterTags pattern '^v'"
    );
    let e = select(&semver("5.0.x"), &["6.0.0", "latest"]).expect_err("none in range");
    assert_eq!(
        e.to_string(),
        "no tag satisfies semver range '5.0.x' (1 of 2 candidate tags are semantic versions)"
    );
}

#[test]
fn invalid_policies_fail_at_construction() {
    let cases: Vec<(PolicySpec, &str)> = vec![
        (
            PolicySpec::default(),
            "spec.policy: no policy set: expected one of semver, numerical or alphabetical",
        ),
        (
            PolicySpec {
                semver_range: Some("1.x".into()),
                numerical_order: Some("asc".into()),
                ..PolicySpec::default()
            },
            "spec.policy: semver and numerical are all set: expected exactly one policy",
        ),
        (
            semver(""),
            "spec.policy.semver.range: semver range is empty",
        ),
        (
            semver(">= bar"),
            "spec.policy.semver.range: improper constraint '>= bar'",
        ),
        (
            numerical("up"),
            "spec.policy.numerical.order: invalid order 'up': expected asc or desc",
        ),
        (
            alphabetical("sideways"),
            "spec.policy.alphabetical.order: invalid order 'sideways': expected asc or desc",
        ),
        (
            filtered(semver("*"), "^(v", ""),
            "spec.filterTags: invalid regular expression pattern '^(v'",
        ),
        (
            filtered(semver("*"), r"^(?x) v", ""),
            "flag 'x' is not part of Go's regexp syntax",
        ),
        (
            filtered(semver("*"), r"^v(\d+)$", "$2"),
            "refers to group 2, but the pattern '^v(\\d+)$' has 1 capture group(s)",
        ),
        (
            filtered(semver("*"), r"^(?P<ts>\d+)$", "$tss"),
            "has no group named 'tss' (named groups: ts)",
        ),
        (
            PolicySpec {
                semver_range: Some("*".into()),
                filter_extract: Some("$1".into()),
                ..PolicySpec::default()
            },
            "spec.filterTags.extract is set but spec.filterTags.pattern is not",
        ),
    ];
    for (spec, needle) in cases {
        let err: PolicyError = Policy::new(&spec).expect_err(needle);
        assert!(
            err.to_string().contains(needle),
            "{spec:?}\n got: {err}\nwant: {needle}"
        );
    }
}
