//! `spec.filterTags`: a Go regular expression that keeps the tags it matches
//! (anywhere in the tag, unanchored), and an optional `extract` template that
//! turns each kept tag into the value the policy orders.

use crate::goregex::{self, PatternError};
use regex::Regex;

/// A compiled `filterTags`.
#[derive(Debug, Clone)]
pub struct TagFilter {
    regex: Regex,
    pattern: String,
    extract: Option<Template>,
}

/// Why `filterTags` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(
        "filterTags.extract '{extract}' refers to group {index}, but the pattern '{pattern}' has {groups} capture group(s)"
    )]
    NoSuchIndex {
        extract: String,
        pattern: String,
        index: usize,
        groups: usize,
    },
    #[error(
        "filterTags.extract '{extract}' refers to ${{{name}}}, but the pattern '{pattern}' has no group named '{name}' (named groups: {known})"
    )]
    NoSuchName {
        extract: String,
        pattern: String,
        name: String,
        known: String,
    },
}

/// An extract template resolved against the pattern's groups: Go's
/// `Regexp.Expand` syntax (`$name`, `${name}`, `$1`, `$$`).
#[derive(Debug, Clone)]
struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Group(usize),
}

impl TagFilter {
    /// Compiles `pattern`; an empty `extract` means "order the tags themselves".
    pub fn new(pattern: &str, extract: &str) -> Result<TagFilter, FilterError> {
        let regex = goregex::compile(pattern)?;
        let extract = if extract.is_empty() {
            None
        } else {
            Some(Template::parse(extract, pattern, &regex)?)
        };
        Ok(TagFilter {
            regex,
            pattern: pattern.to_string(),
            extract,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The value to order for `tag`, or `None` when the pattern does not match.
    pub fn apply(&self, tag: &str) -> Option<String> {
        match &self.extract {
            None => self.regex.is_match(tag).then(|| tag.to_string()),
            Some(t) => {
                let caps = self.regex.captures(tag)?;
                let mut out = String::new();
                for part in &t.parts {
                    match part {
                        Part::Text(s) => out.push_str(s),
                        Part::Group(i) => out.push_str(caps.get(*i).map_or("", |m| m.as_str())),
                    }
                }
                Some(out)
            }
        }
    }

    /// Whether the filter only keeps or drops tags (values are the tags).
    pub fn is_identity(&self) -> bool {
        self.extract.is_none()
    }

    /// Keeps or drops without computing a value.
    pub fn is_match(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }

    pub fn extract(&self) -> Option<&str> {
        self.extract.as_ref().map(|t| t.source.as_str())
    }
}

impl Template {
    fn parse(src: &str, pattern: &str, re: &Regex) -> Result<Template, FilterError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(pos) = rest.find('$') {
            text.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                text.push('$');
                rest = r;
                continue;
            }
            let Some((name, r)) = reference(after) else {
                // Go copies a '$' that starts no valid reference.
                text.push('$');
                rest = after;
                continue;
            };
            rest = r;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Group(resolve(name, src, pattern, re)?));
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: src.to_string(),
            parts,
        })
    }
}

/// Reads `name` or `{name}` after a `$`; names are letters, digits and `_`
/// (Unicode letters and digits, as Go's `Expand` has it), as long as possible.
fn reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let (name, rest) = body.split_at(end);
    if braced {
        return rest.strip_prefix('}').map(|r| (name, r));
    }
    Some((name, rest))
}

fn resolve(name: &str, extract: &str, pattern: &str, re: &Regex) -> Result<usize, FilterError> {
    let groups = re.captures_len() - 1;
    if name.bytes().all(|b| b.is_ascii_digit()) {
        // Go caps numbers at 1e8 and treats bigger ones as names; either way
        // no such group exists.
        let index = name.parse::<usize>().unwrap_or(usize::MAX);
        if index > groups {
            return Err(FilterError::NoSuchIndex {
                extract: extract.to_string(),
                pattern: pattern.to_string(),
                index,
                groups,
            });
        }
        return Ok(index);
    }
    re.capture_names()
        .position(|n| n == Some(name))
        .ok_or_else(|| FilterError::NoSuchName {
            extract: extract.to_string(),
            pattern: pattern.to_string(),
            name: name.to_string(),
            known: {
                let known: Vec<&str> = re.capture_names().flatten().collect();
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_follows_go_expand() {
        let f = TagFilter::new(r"^main-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)", "$ts").expect("valid");
        assert_eq!(
            f.apply("main-e5d27a2c-1619063680").as_deref(),
            Some("1619063680")
        );
        assert_eq!(f.apply("dev-e5d27a2c-1619063680"), None);
        let table = [
            ("${ts}", "1619063680"),
            ("$2", "1619063680"),
            ("${1}-x", "abc-x"),
            ("$ts$sha", "1619063680abc"),
            ("$$ts", "$ts"),
            ("a$", "a$"),
            ("$-", "$-"),
            ("${ts", "${ts"),
            ("$0", "main-abc-1619063680"),
            ("v$1", "vabc"),
        ];
        for (extract, want) in table {
            let f = TagFilter::new(r"^main-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)", extract)
                .unwrap_or_else(|e| panic!("{extract}: {e}"));
            assert_eq!(
                f.apply("main-abc-1619063680").as_deref(),
                Some(want),
                "{extract}"
            );
        }
    }

    #[test]
    fn extract_names_are_as_long_as_possible() {
        // `$1x` is the group named "1x", not group 1 then "x"; that group is
        // missing, which Go would expand to nothing and we refuse.
        let err = TagFilter::new(r"(a)", "$1x").expect_err("no group 1x");
        assert!(err.to_string().contains("no group named '1x'"), "{err}");
        let f = TagFilter::new(r"(a)", "${1}x").expect("valid");
        assert_eq!(f.apply("a").as_deref(), Some("ax"));
    }

    #[test]
    fn unmatched_optional_group_expands_to_nothing() {
        let f = TagFilter::new(r"^(?P<a>x)?(?P<b>y)$", "[$a][$b]").expect("valid");
        assert_eq!(f.apply("y").as_deref(), Some("[][y]"));
    }

    #[test]
    fn missing_groups_are_errors_that_say_which() {
        let e = TagFilter::new(r"^v(\d+)$", "$2")
            .expect_err("one group")
            .to_string();
        assert_eq!(
            e,
            "filterTags.extract '$2' refers to group 2, but the pattern '^v(\\d+)$' has 1 capture group(s)"
        );
        let e = TagFilter::new(r"^(?P<run>\d+)$", "$ts")
            .expect_err("no ts")
            .to_string();
        assert_eq!(
            e,
            "filterTags.extract '$ts' refers to ${ts}, but the pattern '^(?P<run>\\d+)$' has no group named 'ts' (named groups: run)"
        );
    }
}
