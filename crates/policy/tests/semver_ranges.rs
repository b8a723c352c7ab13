//! Range semantics, one row per documented rule of Masterminds/semver v3
//! (the range language Flux's semver policy uses).

use tagwarden_policy::{Range, RangeError, parse_tag};

fn check(range: &str, version: &str) -> bool {
    let r = Range::parse(range).unwrap_or_else(|e| panic!("range {range:?}: {e}"));
    let v = parse_tag(version).unwrap_or_else(|e| panic!("version {version:?}: {e}"));
    r.matches(&v)
}

#[test]
fn operators() {
    let table: &[(&str, &str, bool)] = &[
        // equality; no operator means `=`
        ("=2.0.0", "2.0.0", true),
        ("=2.0.0", "2.0.1", false),
        ("2.0.0", "2.0.0", true),
        ("2.0.0", "v2.0.0+build.7", true),
        ("v2.0.0", "2.0.0", true),
        ("!=4.1.0", "4.1.0", false),
        ("!=4.1.0", "4.1.1", true),
        (">1.2.3", "1.2.4", true),
        (">1.2.3", "1.2.3", false),
        ("<1.2.3", "1.2.2", true),
        ("<1.2.3", "1.2.3", false),
        (">=1.2.3", "1.2.3", true),
        (">=1.2.3", "1.2.2", false),
        ("=>1.2.3", "1.2.3", true),
        ("<=1.2.3", "1.2.3", true),
        ("<=1.2.3", "1.2.4", false),
        ("=<1.2.3", "1.2.3", true),
        // whitespace between operator and version
        (">= 1.2.3", "1.2.3", true),
        ("<  2", "1.9.9", true),
    ];
    for &(r, v, want) in table {
        assert_eq!(check(r, v), want, "{r} vs {v}");
    }
}

#[test]
fn partial_and_wildcard_versions() {
    let table: &[(&str, &str, bool)] = &[
        // partial versions in `=` are x-ranges
        ("=2.0", "2.0.1", true),
        ("=2.0", "2.1.0", false),
        ("2", "2.9.9", true),
        ("2", "3.0.0", false),
        ("5.0.x", "5.0.3", true),
        ("5.0.x", "5.1.0", false),
        ("5.0.X", "5.0.3", true),
        ("5.0.*", "5.0.3", true),
        ("1.*", "1.99.0", true),
        ("1.x", "2.0.0", false),
        ("1.x.x", "1.4.0", true),
        ("*", "0.0.1", true),
        ("*", "999.1.2", true),
        ("x", "1.2.3", true),
        // partial versions with comparison operators
        (">1.1", "1.1.9", false),
        (">1.1", "1.2.0", true),
        (">11", "11.9.9", false),
        (">11", "12.0.0", true),
        (">=1.1", "1.1.0", true),
        ("<1.1", "1.0.99", true),
        ("<1.1", "1.1.0", false),
        ("<1.x", "0.9.0", true),
        ("<1.x", "1.0.0", false),
        ("<=1.1", "1.1.99", true),
        ("<=1.1", "1.2.0", false),
        ("<=1.x", "1.99.0", true),
        ("<=2.x", "3.0.0", false),
        ("!=4.x", "4.1.0", false),
        ("!=4.x", "5.0.0", true),
        ("!=4.1.x", "4.1.7", false),
        ("!=4.1.x", "4.2.0", true),
        ("!=4.1", "4.1.1", false),
    ];
    for &(r, v, want) in table {
        assert_eq!(check(r, v), want, "{r} vs {v}");
    }
}

#[test]
fn tilde_and_caret() {
    let table: &[(&str, &str, bool)] = &[
        // ~ allows patch-level changes when a minor is given, minor-level if not
        ("~1.2.3", "1.2.9", true),
        ("~1.2.3", "1.2.2", false),
        ("~1.2.3", "1.3.0", false),
        ("~>1.2.3", "1.2.9", true),
        ("~1.2", "1.2.0", true),
        ("~1.2", "1.3.0", false),
        ("~1", "1.9.0", true),
        ("~1", "2.0.0", false),
        ("~1.x", "1.5.0", true),
        ("~0.0.0", "3.4.5", true),
        ("~*", "2.1.1", true),
        // ^ allows changes that do not modify the left-most non-zero part
        ("^1.2.3", "1.8.9", true),
        ("^1.2.3", "1.2.2", false),
        ("^1.2.3", "2.0.0", false),
        ("^1.2", "1.9.0", true),
        ("^1", "1.0.0", true),
        ("^1", "2.0.0", false),
        ("^1.x", "1.1.1", true),
        ("^2.x", "1.1.1", false),
        ("^0.2.3", "0.2.9", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.2", "0.2.5", true),
        ("^0.2", "0.5.6", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.3", true),
        ("^0.0", "0.1.0", false),
        ("^0", "0.9.9", true),
        ("^0", "1.0.0", false),
        ("^0.0.0", "1.2.3", false),
    ];
    for &(r, v, want) in table {
        assert_eq!(check(r, v), want, "{r} vs {v}");
    }
}

#[test]
fn hyphen_and_or_and_and() {
    let table: &[(&str, &str, bool)] = &[
        ("1.2 - 1.4.5", "1.2.0", true),
        ("1.2 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4.5", "1.4.6", false),
        ("1.2 - 1.4.5", "1.1.9", false),
        ("1.1 - 2", "2.9.9", true),
        ("1.1 - 2", "3.0.0", false),
        ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
        ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
        // no spaces around '-': a prerelease, not a hyphen range
        ("1.1-3", "4.3.2", false),
        // AND with spaces or commas
        (">=1.2.3 <2.0.0", "1.9.0", true),
        (">=1.2.3 <2.0.0", "2.0.0", false),
        (">=1.2.3, <2.0.0", "1.9.0", true),
        (">=1.1, <2, !=1.2.3", "1.2.3", false),
        (">=1.1    <2    !=1.2.3", "1.2.4", true),
        // OR
        (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
        (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", false),
        (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
        ("<1.0.0 || >=2.0.0", "1.5.0", false),
        ("<1.0.0 || >=2.0.0", "0.5.0", true),
    ];
    for &(r, v, want) in table {
        assert_eq!(check(r, v), want, "{r} vs {v}");
    }
}

#[test]
fn prerelease_rule() {
    let table: &[(&str, &str, bool)] = &[
        // a range that names no prerelease never matches one
        (">=1.0.0", "2.0.0-alpha", false),
        ("*", "1.2.3-alpha.1", false),
        ("5.0.x", "5.0.4-rc.1", false),
        ("^1.x", "1.1.1-beta1", false),
        ("~1.1", "1.1.1-alpha", false),
        ("<2.0.0", "1.0.0-rc.1", false),
        // the seed docs' ranges that opt in
        ("^1.x-0", "1.0.0-rc.1", true),
        ("^1.x-0", "1.5.0", true),
        ("^1.x-0", "2.0.0-rc.1", false),
        (">1.0.0-rc <2.0.0-rc", "1.0.0-rc.1", true),
        (">1.0.0-rc <2.0.0-rc", "1.9.0-beta", true),
        (">1.0.0-rc <2.0.0-rc", "2.0.0-alpha", true),
        (">1.0.0-rc <2.0.0-rc", "2.0.0-rc.1", false),
        ("*-0", "1.2.3-alpha.1", true),
        (">=0.0.0-0", "3.4.5-beta.1", true),
        // one comparator naming a prerelease opens its whole AND-group ...
        (">1.0.0-beta.1 <2", "1.5.0-rc.1", true),
        (">=1.0.0-0 <2.0.0", "1.5.0-beta", true),
        // ... but not the other OR-groups
        (">1.0.0-beta.1 <2 || >3", "4.0.0-rc.1", false),
        (">1.0.0-beta.1 <2 || >3", "4.0.0", true),
        // prerelease ordering inside the range
        ("~1.2.3-beta.2", "1.2.3-beta.4", true),
        ("~1.2.3-beta.2", "1.2.4-beta.2", true),
        ("~1.2.3-beta.2", "1.3.4-beta.2", false),
        ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
        ("^1.1.2-alpha", "1.2.1-beta1", true),
        ("!=4.1-alpha", "4.1.0", true),
        ("!=4.1-alpha", "4.1.0-alpha", false),
        (">0.0.0-0", "0.0.0-alpha", true),
        ("<0-z", "0.0.0-alpha", true),
    ];
    for &(r, v, want) in table {
        assert_eq!(check(r, v), want, "{r} vs {v}");
    }
}

#[test]
fn bad_ranges_are_errors_with_the_reason() {
    let table: &[(&str, &str)] = &[
        ("", "semver range is empty"),
        ("   ", "semver range is empty"),
        ("foo", "improper constraint 'foo'"),
        (">= bar", "improper constraint '>= bar'"),
        ("BAR >= 1.2.3", "improper constraint"),
        ("1.0.0 ||", "improper constraint ''"),
        ("|| 1.0.0", "improper constraint ''"),
        ("12.3.4.1234", "improper constraint"),
        ("12.3.34~ 1.2.3", "improper constraint"),
        (">>1.0.0", "improper constraint"),
        ("1.2.3 - ", "improper constraint"),
        (
            "1x.2.3",
            "invalid version '1x.2.3' in constraint: major is not a number",
        ),
        (
            "1.2.3-01",
            "invalid version '1.2.3-01' in constraint: invalid prerelease",
        ),
        (">=1|2.0.0", "major is not a number"),
        ("99999999999999999999.0.0", "major is not a number"),
    ];
    for &(r, needle) in table {
        let err = Range::parse(r).expect_err(r).to_string();
        assert!(err.contains(needle), "{r:?}: {err}");
    }
    assert!(matches!(Range::parse(""), Err(RangeError::Empty)));
}

#[test]
fn range_is_kept_as_written() {
    let r = Range::parse(">=1.0.0 <2.0.0").expect("valid");
    assert_eq!(r.as_str(), ">=1.0.0 <2.0.0");
    assert!(Range::parse("v2.3.5-20161202202307-sha.e8fc5e5").is_ok());
}
