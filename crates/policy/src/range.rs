//! Semver ranges with the rules of Masterminds/semver v3 (`NewConstraint`),
//! which Flux's semver policy uses.
//!
//! A range is OR-groups (`||`) of AND-ed comparators (space or comma).
//! Hyphen ranges `A - B` become `>= A, <= B`. Versions in a comparator may be
//! partial (`1`, `1.2`) or wild (`1.x`, `*`), which changes what the operator
//! means (see [`Comparator::matches`]). A prerelease version only satisfies a
//! group in which at least one comparator names a prerelease.

use crate::version::{NotAVersion, number};
use regex::Regex;
use semver::{BuildMetadata, Prerelease, Version};
use std::cmp::Ordering;
use std::sync::OnceLock;

/// A parsed semver range.
#[derive(Debug, Clone)]
pub struct Range {
    source: String,
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    comparators: Vec<Comparator>,
    /// Some comparator names a prerelease: prereleases may match this group.
    allows_prerelease: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` or no operator: equality, or tilde when the version is wild.
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: Version,
    /// Any part was wild or missing (`1.2`, `1.x`, `*`).
    dirty: bool,
    /// The minor part was wild or missing (`1`, `1.x`).
    minor_dirty: bool,
    /// The patch part was wild or missing (`1.2`, `1.2.x`).
    patch_dirty: bool,
}

/// Why a range could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("semver range is empty")]
    Empty,
    #[error("improper constraint '{group}': expected comparators like '>=1.2.3 <2.0.0' or '1.2.x'")]
    Improper { group: String },
    #[error("invalid version '{version}' in constraint: {reason}")]
    BadVersion { version: String, reason: String },
}

// Operators, longest first so the scanner never stops inside one.
const OPS: &str = r"!=|>=|=>|<=|=<|~>|>|<|=|~|\^";
// A possibly partial or wild version: the grammar Masterminds accepts.
const CV: &str = r"v?([0-9xX*|]+)(\.[0-9xX*|]+)?(\.[0-9xX*|]+)?(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?";
// Go's \s is ASCII whitespace; Rust's is Unicode, so spell it out.
const WS: &str = r"[\t\n\x0C\r ]";

struct Grammar {
    hyphen: Regex,
    group: Regex,
    comparator: Regex,
}

fn grammar() -> &'static Grammar {
    static G: OnceLock<Grammar> = OnceLock::new();
    G.get_or_init(|| {
        let build = |p: String| Regex::new(&p).expect("static range grammar compiles");
        // The same version grammar without capture groups, for the outer patterns.
        let cv_plain = CV.replace('(', "(?:").replace("(?:?:", "(?:");
        Grammar {
            hyphen: build(format!("{WS}*({cv_plain}){WS}+-{WS}+({cv_plain}){WS}*")),
            group: build(format!(
                "^{WS}*(?:{OPS})?{WS}*{cv_plain}{WS}*(?:(?:{WS}+|,{WS}*)(?:{OPS})?{WS}*{cv_plain}{WS}*)*$"
            )),
            comparator: build(format!("({OPS})?{WS}*{CV}")),
        }
    })
}

impl Range {
    /// Parses a range as Masterminds' `NewConstraint` does.
    pub fn parse(source: &str) -> Result<Range, RangeError> {
        if source.trim().is_empty() {
            return Err(RangeError::Empty);
        }
        let g = grammar();
        let rewritten = g.hyphen.replace_all(source, ">= $1, <= $2 ");
        let mut groups = Vec::new();
        for part in rewritten.split("||") {
            if !g.group.is_match(part) {
                return Err(RangeError::Improper {
                    group: part.trim().to_string(),
                });
            }
            let mut comparators = Vec::new();
            for caps in g.comparator.captures_iter(part) {
                comparators.push(Comparator::from_captures(&caps)?);
            }
            let allows_prerelease = comparators.iter().any(|c| !c.version.pre.is_empty());
            groups.push(Group {
                comparators,
                allows_prerelease,
            });
        }
        Ok(Range {
            source: source.to_string(),
            groups,
        })
    }

    /// The range as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `v` satisfies any OR-group.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|g| {
            (v.pre.is_empty() || g.allows_prerelease) && g.comparators.iter().all(|c| c.matches(v))
        })
    }
}

impl Comparator {
    fn from_captures(caps: &regex::Captures<'_>) -> Result<Comparator, RangeError> {
        let op = match caps.get(1).map_or("", |m| m.as_str()) {
            "" | "=" => Op::Equal,
            "!=" => Op::NotEqual,
            ">" => Op::Greater,
            "<" => Op::Less,
            ">=" | "=>" => Op::GreaterEqual,
            "<=" | "=<" => Op::LessEqual,
            "~" | "~>" => Op::Tilde,
            _ => Op::Caret,
        };
        let whole = caps.get(0).map_or("", |m| m.as_str());
        let bad = |reason: NotAVersion| RangeError::BadVersion {
            version: whole
                .trim_start_matches(['!', '=', '<', '>', '~', '^', ' ', '\t'])
                .to_string(),
            reason: reason.to_string(),
        };
        let part = |i: usize| caps.get(i).map(|m| m.as_str().trim_start_matches('.'));
        let is_wild = |s: Option<&str>| matches!(s, None | Some("x" | "X" | "*"));
        let (major, minor, patch) = (part(2), part(3), part(4));
        let pre = caps.get(5).map(|m| &m.as_str()[1..]);

        let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
        // Which parts count follows Masterminds: the first wild or missing part
        // makes every later part zero, whatever was written there.
        let (ma, mi, pa) = if is_wild(major) {
            dirty = true;
            (0, 0, 0)
        } else if is_wild(minor) {
            dirty = true;
            minor_dirty = true;
            (number(major.unwrap_or(""), "major").map_err(bad)?, 0, 0)
        } else if is_wild(patch) {
            dirty = true;
            patch_dirty = true;
            (
                number(major.unwrap_or(""), "major").map_err(bad)?,
                number(minor.unwrap_or(""), "minor").map_err(bad)?,
                0,
            )
        } else {
            (
                number(major.unwrap_or(""), "major").map_err(bad)?,
                number(minor.unwrap_or(""), "minor").map_err(bad)?,
                number(patch.unwrap_or(""), "patch").map_err(bad)?,
            )
        };
        let mut version = Version::new(ma, mi, pa);
        if let Some(pre) = pre {
            version.pre = Prerelease::new(pre).map_err(|_| bad(NotAVersion::BadPrerelease))?;
        }
        if let Some(build) = caps.get(6) {
            // Validated for the error only: build metadata never affects a match.
            BuildMetadata::new(&build.as_str()[1..]).map_err(|_| bad(NotAVersion::BadBuild))?;
        }
        Ok(Comparator {
            op,
            version,
            dirty,
            minor_dirty,
            patch_dirty,
        })
    }

    /// One comparator against one version (the group already decided whether
    /// a prerelease may be considered at all).
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        let cmp = v.cmp_precedence(c);
        match self.op {
            Op::Equal if self.dirty => self.tilde(v),
            Op::Equal => cmp == Ordering::Equal,
            Op::NotEqual => self.not_equal(v),
            Op::Greater if !self.dirty => cmp == Ordering::Greater,
            Op::Greater => {
                if v.major != c.major {
                    v.major > c.major
                } else if self.minor_dirty {
                    // `>1` means 2.0.0 or later.
                    false
                } else if self.patch_dirty {
                    // `>1.2` means 1.3.0 or later.
                    v.minor > c.minor
                } else {
                    cmp == Ordering::Greater
                }
            }
            Op::Less => cmp == Ordering::Less,
            Op::GreaterEqual => cmp != Ordering::Less,
            Op::LessEqual if !self.dirty => cmp != Ordering::Greater,
            Op::LessEqual => {
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    fn not_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.dirty {
            if c.major != v.major {
                return true;
            }
            if self.minor_dirty {
                return false;
            }
            if c.minor != v.minor {
                return true;
            }
            if self.patch_dirty {
                // `!=1.2.x` excludes the whole 1.2 line, but a prerelease is
                // only "equal" to the same prerelease.
                return (!v.pre.is_empty() || !c.pre.is_empty()) && v.pre != c.pre;
            }
            if c.patch != v.patch {
                return true;
            }
        }
        v.cmp_precedence(c) != Ordering::Equal
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.cmp_precedence(c) == Ordering::Less {
            return false;
        }
        // `~0.0.0` and `~*` accept everything from 0.0.0 up.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (self.minor_dirty || v.minor == c.minor)
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.cmp_precedence(c) == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        v.patch == c.patch
    }
}
