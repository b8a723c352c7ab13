//! Which tag is the latest under an ImagePolicy, decided exactly as Flux's
//! image-reflector-controller decides it. Pure and synchronous: no IO.
//!
//! The flow is `filterTags` (keep matching tags, optionally map each to an
//! extracted value) then one ordering policy over the values, then back to
//! the original tag:
//! - **semver**: the highest version that satisfies the range; tags that are
//!   not `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]` are skipped; on equal
//!   precedence the first tag seen wins.
//! - **numerical**: values read as Go floats; one that is not a number fails
//!   the whole policy; `asc` picks the largest, `desc` the smallest, and on a
//!   tie the last one seen wins (Flux replaces on `>=`).
//! - **alphabetical**: bytewise; `asc` picks the last, `desc` the first.
//!
//! When two tags extract the same value, the later tag stands for it (Flux
//! keeps them in a map keyed by value).

mod filter;
mod goregex;
mod numeric;
mod range;
mod version;

pub use filter::{FilterError, TagFilter};
pub use goregex::{PatternError, compile as go_regex};
pub use numeric::parse_go_float;
pub use range::{Range, RangeError};
pub use version::{NotAVersion, parse_tag, precedence};

use std::borrow::Cow;
use std::collections::HashMap;

/// Sort direction of the numerical and alphabetical policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    /// Flux compares case-insensitively and defaults to `asc`.
    pub fn parse(s: &str) -> Option<Order> {
        match s.to_ascii_lowercase().as_str() {
            "" | "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// The ordering policy of an ImagePolicy (`spec.policy`).
#[derive(Debug, Clone)]
pub enum Choice {
    SemVer(Range),
    Numerical(Order),
    Alphabetical(Order),
}

/// What a user wrote in `spec.policy` and `spec.filterTags`, unvalidated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySpec {
    pub semver_range: Option<String>,
    pub numerical_order: Option<String>,
    pub alphabetical_order: Option<String>,
    pub filter_pattern: Option<String>,
    pub filter_extract: Option<String>,
}

/// A policy that cannot be built; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("spec.policy: no policy set: expected one of semver, numerical or alphabetical")]
    NoPolicy,
    #[error("spec.policy: {0} are all set: expected exactly one policy")]
    TooManyPolicies(String),
    #[error("spec.policy.semver.range: {0}")]
    Range(RangeError),
    #[error("spec.policy.{kind}.order: invalid order '{value}': expected asc or desc")]
    Order { kind: &'static str, value: String },
    #[error("spec.filterTags.extract is set but spec.filterTags.pattern is not")]
    ExtractWithoutPattern,
    #[error("spec.filterTags: {0}")]
    Filter(FilterError),
}

/// Why no tag could be selected from a list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no tags to select from")]
    NoTags,
    #[error("none of the {total} tags matches filterTags pattern '{pattern}'")]
    NoMatch { pattern: String, total: usize },
    #[error(
        "no tag satisfies semver range '{range}' ({versions} of {candidates} candidate tags are semantic versions)"
    )]
    NotInRange {
        range: String,
        versions: usize,
        candidates: usize,
    },
    #[error("failed to parse invalid numeric value '{value}' (from tag '{tag}')")]
    NotNumeric { value: String, tag: String },
}

/// A validated ImagePolicy selection rule.
#[derive(Debug, Clone)]
pub struct Policy {
    filter: Option<TagFilter>,
    choice: Choice,
}

/// The winner of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'t> {
    /// The original tag, as the registry lists it.
    pub tag: &'t str,
    /// The value the policy ordered (differs from `tag` with an extract).
    pub value: Cow<'t, str>,
}

/// What the policy made of one tag (`policy test --explain`).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The filter pattern does not match it.
    FilteredOut,
    /// A later tag extracted the same value and stands for it.
    Shadowed {
        value: String,
        by: String,
    },
    /// Not a version (semver) or not a number (numerical).
    Unparsable {
        value: String,
        reason: String,
    },
    /// A version outside the semver range.
    OutOfRange {
        value: String,
    },
    /// In the running, but not the winner.
    Candidate {
        value: String,
    },
    Selected {
        value: String,
    },
}

struct Candidate<'t> {
    value: Cow<'t, str>,
    tag: &'t str,
    index: usize,
}

impl Policy {
    /// Validates a spec the way Flux's admission and reconciler do, with
    /// errors that name the field.
    pub fn new(spec: &PolicySpec) -> Result<Policy, PolicyError> {
        let set: Vec<&str> = [
            ("semver", spec.semver_range.is_some()),
            ("numerical", spec.numerical_order.is_some()),
            ("alphabetical", spec.alphabetical_order.is_some()),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
        if set.len() > 1 {
            return Err(PolicyError::TooManyPolicies(set.join(" and ")));
        }
        let order = |kind: &'static str, v: &str| {
            Order::parse(v).ok_or_else(|| PolicyError::Order {
                kind,
                value: v.to_string(),
            })
        };
        let choice = if let Some(r) = &spec.semver_range {
            Choice::SemVer(Range::parse(r).map_err(PolicyError::Range)?)
        } else if let Some(o) = &spec.numerical_order {
            Choice::Numerical(order("numerical", o)?)
        } else if let Some(o) = &spec.alphabetical_order {
            Choice::Alphabetical(order("alphabetical", o)?)
        } else {
            return Err(PolicyError::NoPolicy);
        };
        let pattern = spec.filter_pattern.as_deref().unwrap_or("");
        let extract = spec.filter_extract.as_deref().unwrap_or("");
        let filter = match (pattern.is_empty(), extract.is_empty()) {
            (true, true) => None,
            (true, false) => return Err(PolicyError::ExtractWithoutPattern),
            (false, _) => Some(TagFilter::new(pattern, extract).map_err(PolicyError::Filter)?),
        };
        Ok(Policy { filter, choice })
    }

    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    pub fn filter(&self) -> Option<&TagFilter> {
        self.filter.as_ref()
    }

    /// The latest tag under this policy.
    pub fn select<'t, T: AsRef<str>>(&self, tags: &'t [T]) -> Result<Selected<'t>, SelectError> {
        let candidates = self.candidates(tags);
        let winner = self.winner(tags.len(), &candidates)?;
        let c = &candidates[winner];
        Ok(Selected {
            tag: c.tag,
            value: c.value.clone(),
        })
    }

    /// Index of the winning candidate, or why there is none.
    fn winner(&self, total: usize, candidates: &[Candidate<'_>]) -> Result<usize, SelectError> {
        if total == 0 {
            return Err(SelectError::NoTags);
        }
        if candidates.is_empty() {
            return Err(SelectError::NoMatch {
                pattern: self.filter.as_ref().map_or("", |f| f.pattern()).to_string(),
                total,
            });
        }
        self.pick(candidates)
    }

    /// One verdict per input tag, in input order; the selection error, if
    /// any, is returned beside them.
    pub fn explain<T: AsRef<str>>(&self, tags: &[T]) -> (Vec<Verdict>, Option<SelectError>) {
        let candidates = self.candidates(tags);
        let mut verdicts: Vec<Verdict> = vec![Verdict::FilteredOut; tags.len()];
        let mut by_value: HashMap<&str, usize> = HashMap::new();
        for (i, c) in candidates.iter().enumerate() {
            by_value.insert(c.value.as_ref(), i);
        }
        // Tags whose value a later tag took over.
        if let Some(f) = &self.filter {
            for (i, t) in tags.iter().enumerate() {
                let Some(v) = f.apply(t.as_ref()) else {
                    continue;
                };
                if let Some(&ci) = by_value.get(v.as_str())
                    && candidates[ci].index != i
                {
                    verdicts[i] = Verdict::Shadowed {
                        by: candidates[ci].tag.to_string(),
                        value: v,
                    };
                }
            }
        }
        for c in &candidates {
            let value = c.value.to_string();
            verdicts[c.index] = match &self.choice {
                Choice::SemVer(r) => match parse_tag(&c.value) {
                    Err(e) => Verdict::Unparsable {
                        value,
                        reason: e.to_string(),
                    },
                    Ok(v) if !r.matches(&v) => Verdict::OutOfRange { value },
                    Ok(_) => Verdict::Candidate { value },
                },
                Choice::Numerical(_) => match parse_go_float(&c.value) {
                    None => Verdict::Unparsable {
                        value,
                        reason: "not a number".to_string(),
                    },
                    Some(_) => Verdict::Candidate { value },
                },
                Choice::Alphabetical(_) => Verdict::Candidate { value },
            };
        }
        let err = match self.winner(tags.len(), &candidates) {
            Ok(w) => {
                verdicts[candidates[w].index] = Verdict::Selected {
                    value: candidates[w].value.to_string(),
                };
                None
            }
            Err(e) => Some(e),
        };
        (verdicts, err)
    }

    /// Filtered, extracted and de-duplicated values in first-seen order.
    fn candidates<'t, T: AsRef<str>>(&self, tags: &'t [T]) -> Vec<Candidate<'t>> {
        let all = tags.iter().map(AsRef::as_ref).enumerate();
        match &self.filter {
            None => all
                .map(|(index, tag)| Candidate {
                    value: Cow::Borrowed(tag),
                    tag,
                    index,
                })
                .collect(),
            Some(f) if f.is_identity() => all
                .filter(|(_, tag)| f.is_match(tag))
                .map(|(index, tag)| Candidate {
                    value: Cow::Borrowed(tag),
                    tag,
                    index,
                })
                .collect(),
            Some(f) => {
                let mut out: Vec<Candidate<'t>> = Vec::new();
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (index, tag) in all {
                    let Some(value) = f.apply(tag) else {
                        continue;
                    };
                    match seen.get(&value) {
                        Some(&slot) => {
                            // Same value again: the later tag stands for it.
                            out[slot].tag = tag;
                            out[slot].index = index;
                        }
                        None => {
                            seen.insert(value.clone(), out.len());
                            out.push(Candidate {
                                value: Cow::Owned(value),
                                tag,
                                index,
                            });
                        }
                    }
                }
                out
            }
        }
    }

    /// The value the policy orders for `tag`: the extract when a filter is
    /// set, `None` when the filter does not match.
    fn value_of(&self, tag: &str) -> Option<String> {
        match &self.filter {
            None => Some(tag.to_string()),
            Some(f) => f.apply(tag),
        }
    }

    /// Whether `tag` is one this policy could select today: it passes the
    /// filter, parses, and (semver) is in the range.
    pub fn admits(&self, tag: &str) -> bool {
        let Some(v) = self.value_of(tag) else {
            return false;
        };
        match &self.choice {
            Choice::SemVer(r) => parse_tag(&v).is_ok_and(|v| r.matches(&v)),
            Choice::Numerical(_) => parse_go_float(&v).is_some(),
            Choice::Alphabetical(_) => true,
        }
    }

    /// How `a` ranks against `b` under this policy's own order: `Greater`
    /// when the policy prefers `a`. `None` when either cannot be ordered.
    pub fn compare(&self, a: &str, b: &str) -> Option<std::cmp::Ordering> {
        let (va, vb) = (self.value_of(a)?, self.value_of(b)?);
        match &self.choice {
            Choice::SemVer(_) => Some(version::precedence(
                &parse_tag(&va).ok()?,
                &parse_tag(&vb).ok()?,
            )),
            Choice::Numerical(order) => {
                let (x, y) = (parse_go_float(&va)?, parse_go_float(&vb)?);
                let o = x.partial_cmp(&y)?;
                Some(match order {
                    Order::Asc => o,
                    Order::Desc => o.reverse(),
                })
            }
            Choice::Alphabetical(order) => {
                let o = va.as_bytes().cmp(vb.as_bytes());
                Some(match order {
                    Order::Asc => o,
                    Order::Desc => o.reverse(),
                })
            }
        }
    }

    /// Index of the winning candidate.
    fn pick(&self, candidates: &[Candidate<'_>]) -> Result<usize, SelectError> {
        match &self.choice {
            Choice::SemVer(range) => {
                let mut best: Option<(usize, semver::Version)> = None;
                let mut versions = 0;
                for (i, c) in candidates.iter().enumerate() {
                    let Ok(v) = parse_tag(&c.value) else {
                        continue;
                    };
                    versions += 1;
                    if !range.matches(&v) {
                        continue;
                    }
                    // Strictly greater: on a tie the first seen stays.
                    if best
                        .as_ref()
                        .is_none_or(|(_, b)| version::precedence(&v, b).is_gt())
                    {
                        best = Some((i, v));
                    }
                }
                best.map(|(i, _)| i).ok_or_else(|| SelectError::NotInRange {
                    range: range.as_str().to_string(),
                    versions,
                    candidates: candidates.len(),
                })
            }
            Choice::Numerical(order) => {
                let mut best: Option<(usize, f64)> = None;
                for (i, c) in candidates.iter().enumerate() {
                    let v = parse_go_float(&c.value).ok_or_else(|| SelectError::NotNumeric {
                        value: c.value.to_string(),
                        tag: c.tag.to_string(),
                    })?;
                    // Flux skips only a strictly worse value, so a tie (and,
                    // as in Go, a NaN) replaces the current best.
                    let worse = best.is_some_and(|(_, b)| match order {
                        Order::Asc => v < b,
                        Order::Desc => v > b,
                    });
                    if !worse {
                        best = Some((i, v));
                    }
                }
                Ok(best.map_or(0, |(i, _)| i))
            }
            Choice::Alphabetical(order) => {
                let mut best = 0;
                for (i, c) in candidates.iter().enumerate().skip(1) {
                    let b = candidates[best].value.as_bytes();
                    let better = match order {
                        Order::Asc => c.value.as_bytes() > b,
                        Order::Desc => c.value.as_bytes() < b,
                    };
                    if better {
                        best = i;
                    }
                }
                Ok(best)
            }
        }
    }
}

#[cfg(test)]
mod compare_tests {
    use super::*;
    use std::cmp::Ordering::{Greater, Less};

    fn policy(
        semver: Option<&str>,
        numerical: Option<&str>,
        pattern: Option<&str>,
        extract: Option<&str>,
    ) -> Policy {
        Policy::new(&PolicySpec {
            semver_range: semver.map(String::from),
            numerical_order: numerical.map(String::from),
            filter_pattern: pattern.map(String::from),
            filter_extract: extract.map(String::from),
            ..PolicySpec::default()
        })
        .expect("policy")
    }

    #[test]
    fn tags_compare_under_the_policy_s_own_order() {
        let p = policy(Some(">=1.0.0"), None, None, None);
        assert_eq!(p.compare("1.0.0", "1.2.0"), Some(Less));
        assert_eq!(p.compare("v1.10.0", "1.9.0"), Some(Greater));
        assert_eq!(p.compare("latest", "1.0.0"), None);
        assert!(p.admits("1.2.0") && !p.admits("0.9.0") && !p.admits("latest"));
        let ts = policy(
            None,
            Some("asc"),
            Some("^main-[a-f0-9]+-(?P<ts>[0-9]+)"),
            Some("$ts"),
        );
        assert_eq!(ts.compare("main-abc-100", "main-def-99"), Some(Greater));
        assert_eq!(ts.compare("main-abc-100", "other"), None);
        let desc = policy(None, Some("desc"), None, None);
        assert_eq!(
            desc.compare("1", "2"),
            Some(Greater),
            "desc prefers the smaller"
        );
    }
}
