//! Tags read as semantic versions, the way Flux's semver policy reads them.
//!
//! Flux accepts a tag only when it is a full `MAJOR.MINOR.PATCH[-PRE][+BUILD]`
//! with at most one leading `v`. Unlike Masterminds' strict parser we also take
//! leading zeros in the three numbers (`2024.01.05`), as the issue asks.

use semver::{BuildMetadata, Prerelease, Version};
use std::cmp::Ordering;

/// Why a tag is not a version; shown by `policy test --explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAVersion {
    /// Fewer than three dot-separated parts.
    MissingParts,
    /// A number part is empty, has a non-digit, or does not fit in 64 bits.
    BadNumber(&'static str),
    BadPrerelease,
    BadBuild,
}

impl std::fmt::Display for NotAVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAVersion::MissingParts => f.write_str("not MAJOR.MINOR.PATCH"),
            NotAVersion::BadNumber(part) => write!(f, "{part} is not a number"),
            NotAVersion::BadPrerelease => f.write_str("invalid prerelease"),
            NotAVersion::BadBuild => f.write_str("invalid build metadata"),
        }
    }
}

/// Parses a tag as Flux does: an optional single `v`, then exactly three
/// dot-separated numbers, then an optional `-prerelease` and `+build`.
pub fn parse_tag(tag: &str) -> Result<Version, NotAVersion> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    let (major, rest) = s.split_once('.').ok_or(NotAVersion::MissingParts)?;
    let (minor, rest) = rest.split_once('.').ok_or(NotAVersion::MissingParts)?;
    // Build metadata is cut first, so a '-' inside it is not a prerelease.
    let (rest, build) = match rest.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (rest, None),
    };
    let (patch, pre) = match rest.split_once('-') {
        Some((p, pre)) => (p, Some(pre)),
        None => (rest, None),
    };
    let mut v = Version::new(
        number(major, "major")?,
        number(minor, "minor")?,
        number(patch, "patch")?,
    );
    if let Some(pre) = pre {
        // semver's validation is the SemVer 2.0 rule Masterminds applies:
        // non-empty [0-9A-Za-z-] identifiers, no leading zero in numbers.
        v.pre = Prerelease::new(pre).map_err(|_| NotAVersion::BadPrerelease)?;
        if v.pre.is_empty() {
            return Err(NotAVersion::BadPrerelease);
        }
    }
    if let Some(build) = build {
        v.build = BuildMetadata::new(build).map_err(|_| NotAVersion::BadBuild)?;
        if v.build.is_empty() {
            return Err(NotAVersion::BadBuild);
        }
    }
    Ok(v)
}

/// Digits only, leading zeros allowed, must fit in u64.
pub(crate) fn number(s: &str, part: &'static str) -> Result<u64, NotAVersion> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotAVersion::BadNumber(part));
    }
    s.parse().map_err(|_| NotAVersion::BadNumber(part))
}

/// Version precedence: build metadata is ignored, so `1.0.0` and `1.0.0+a`
/// compare equal (and the first one seen wins a tie).
pub fn precedence(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_flux_accepts() {
        let table = [
            ("1.2.3", (1, 2, 3, "", "")),
            ("v1.2.3", (1, 2, 3, "", "")),
            ("v1.2.0-x.Y.0+metadata", (1, 2, 0, "x.Y.0", "metadata")),
            (
                "v1.2.0-x.Y.0+metadata-width-hypen",
                (1, 2, 0, "x.Y.0", "metadata-width-hypen"),
            ),
            ("v1.2.3-rc1-with-hypen", (1, 2, 3, "rc1-with-hypen", "")),
            ("1.2.3+a-b", (1, 2, 3, "", "a-b")),
            ("2024.01.05", (2024, 1, 5, "", "")),
            ("00.0.0", (0, 0, 0, "", "")),
            ("1.0.0+001", (1, 0, 0, "", "001")),
        ];
        for (tag, (ma, mi, pa, pre, build)) in table {
            let v = parse_tag(tag).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert_eq!((v.major, v.minor, v.patch), (ma, mi, pa), "{tag}");
            assert_eq!(v.pre.as_str(), pre, "{tag}");
            assert_eq!(v.build.as_str(), build, "{tag}");
        }
    }

    #[test]
    fn rejects_what_flux_rejects() {
        let table = [
            ("v1.0", NotAVersion::MissingParts),
            ("v1", NotAVersion::MissingParts),
            ("latest", NotAVersion::MissingParts),
            ("v1.2.beta", NotAVersion::BadNumber("patch")),
            ("v1.2-5", NotAVersion::MissingParts),
            ("v1.2-beta.5", NotAVersion::BadNumber("minor")),
            ("\nv1.2", NotAVersion::MissingParts),
            ("v1.2.3.4", NotAVersion::BadNumber("patch")),
            ("vv1.2.3", NotAVersion::BadNumber("major")),
            ("V1.2.3", NotAVersion::BadNumber("major")),
            (" 1.2.3", NotAVersion::BadNumber("major")),
            ("1..3", NotAVersion::BadNumber("minor")),
            ("1.2.3-", NotAVersion::BadPrerelease),
            ("1.2.3-01", NotAVersion::BadPrerelease),
            ("1.2.3-a..b", NotAVersion::BadPrerelease),
            ("1.2.3-a_b", NotAVersion::BadPrerelease),
            ("1.2.3+", NotAVersion::BadBuild),
            ("1.2.3+a..b", NotAVersion::BadBuild),
            ("18446744073709551616.0.0", NotAVersion::BadNumber("major")),
            ("-1.2.3", NotAVersion::BadNumber("major")),
        ];
        for (tag, want) in table {
            assert_eq!(parse_tag(tag), Err(want), "{tag:?}");
        }
    }

    #[test]
    fn precedence_ignores_build_and_orders_prereleases() {
        let p = |s| parse_tag(s).expect("valid");
        assert_eq!(precedence(&p("1.0.0"), &p("v1.0.0+b")), Ordering::Equal);
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.10.0",
            "10.0.0",
        ];
        for w in ordered.windows(2) {
            assert_eq!(
                precedence(&p(w[0]), &p(w[1])),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
    }
}
