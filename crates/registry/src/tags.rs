//! What a registry may call a tag, and how its strings reach a terminal.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// How many skipped tags a scan shows (escaped) in its warning.
const EXAMPLES: usize = 5;
/// Characters of each skipped tag shown.
const EXAMPLE_CHARS: usize = 40;

/// The OCI distribution-spec tag grammar, `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
/// Anything else (line separators, `../`, control characters) could end up
/// in a manifest, a commit message or a terminal, so a scan drops it.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    match b.split_first() {
        Some((first, rest)) => {
            b.len() <= 128
                && (first.is_ascii_alphanumeric() || *first == b'_')
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        }
        None => false,
    }
}

/// `s` with every character a terminal or a YAML reader would act on (C0/C1
/// controls, DEL, line and paragraph separators, bidi and zero-width format
/// characters) written as `\u{..}`, so a registry's strings never reach a
/// terminal raw.
pub fn printable(s: &str) -> String {
    tagwarden_api::text::escape(s, false).into_owned()
}

/// A repository's tag list as a scan keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagList {
    /// Valid tags, in the order the registry listed them.
    pub tags: Vec<String>,
    /// Tags outside the OCI tag grammar, dropped.
    pub invalid: usize,
    /// The first few dropped tags, shortened and escaped for display.
    pub invalid_examples: Vec<String>,
}

impl TagList {
    /// The dropped examples as one line: `'a', '../x'`.
    pub fn examples_line(&self) -> String {
        let mut s = self
            .invalid_examples
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.invalid > self.invalid_examples.len() {
            s.push_str(", …");
        }
        s
    }
}

/// Collects tags page by page: valid ones are kept, invalid ones counted,
/// and the total is capped while parsing so a huge page never turns into a
/// huge vector first.
pub(crate) struct Collect {
    pub list: TagList,
    /// Every tag listed so far, valid or not.
    pub seen: usize,
    pub max_tags: usize,
    /// Set when the cap stopped the parse.
    pub over: bool,
    /// The last tag of the current page when it was invalid (a valid one is
    /// the last of `list.tags`).
    pub last_invalid: Option<String>,
}

impl Collect {
    pub fn new(max_tags: usize) -> Self {
        Collect {
            list: TagList::default(),
            seen: 0,
            max_tags,
            over: false,
            last_invalid: None,
        }
    }

    fn push(&mut self, tag: String) -> Result<(), ()> {
        self.seen += 1;
        if self.seen > self.max_tags {
            self.over = true;
            return Err(());
        }
        if is_valid_tag(&tag) {
            self.last_invalid = None;
            self.list.tags.push(tag);
        } else {
            self.list.invalid += 1;
            if self.list.invalid_examples.len() < EXAMPLES {
                let mut short: String = tag.chars().take(EXAMPLE_CHARS).collect();
                if short.len() < tag.len() {
                    short.push('…');
                }
                self.list.invalid_examples.push(printable(&short));
            }
            self.last_invalid = Some(tag);
        }
        Ok(())
    }

    /// Where the list stands, to undo a page that turns out to repeat one.
    pub fn mark(&self) -> (usize, usize, usize, usize) {
        (
            self.list.tags.len(),
            self.list.invalid,
            self.list.invalid_examples.len(),
            self.seen,
        )
    }

    pub fn undo(&mut self, mark: (usize, usize, usize, usize)) {
        self.list.tags.truncate(mark.0);
        self.list.invalid = mark.1;
        self.list.invalid_examples.truncate(mark.2);
        self.seen = mark.3;
    }
}

/// `{"name": …, "tags": [...] | null}`, other keys ignored.
pub(crate) struct Page<'a>(pub &'a mut Collect);

impl<'de> DeserializeSeed<'de> for Page<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Page<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tag list object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(key) = m.next_key::<String>()? {
            if key == "tags" {
                m.next_value_seed(Tags(&mut *self.0))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Tags<'a>(&'a mut Collect);

impl<'de> DeserializeSeed<'de> for Tags<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Tags<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tags or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while let Some(tag) = s.next_element::<String>()? {
            if self.0.push(tag).is_err() {
                return Err(de::Error::custom(format_args!(
                    "more than {} tags",
                    self.0.max_tags
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oci_tag_grammar() {
        for ok in ["latest", "1.0.0", "_x", "v1-rc.2_b", &"a".repeat(128)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "-bad",
            ".x",
            "../x",
            "1.0\u{2028}evil",
            "a\x1b[31m",
            "a b",
            "a:b",
            "ä",
            &"a".repeat(129),
        ] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn printable_escapes_what_a_terminal_or_yaml_acts_on() {
        assert_eq!(
            printable("a\x1b[31mb\u{2028}c\u{85}d\ne\u{202e}f\u{7f}"),
            "a\\u{1b}[31mb\\u{2028}c\\u{85}d\\u{a}e\\u{202e}f\\u{7f}"
        );
        assert_eq!(printable("plain ünïcode 1.0"), "plain ünïcode 1.0");
    }

    #[test]
    fn pages_parse_into_the_list_and_the_cap_stops_the_parse() {
        let mut c = Collect::new(3);
        let mut de = serde_json::Deserializer::from_slice(
            br#"{"name":"x","tags":["1.0","../x","2.0"],"extra":{"a":[1]}}"#,
        );
        Page(&mut c).deserialize(&mut de).expect("page");
        assert_eq!(c.list.tags, ["1.0", "2.0"]);
        assert_eq!((c.list.invalid, c.seen), (1, 3));
        let mut de = serde_json::Deserializer::from_slice(br#"{"tags":null}"#);
        Page(&mut c).deserialize(&mut de).expect("null tags");
        let mut de = serde_json::Deserializer::from_slice(br#"{"tags":["3.0"]}"#);
        let err = Page(&mut c).deserialize(&mut de).expect_err("over");
        assert!(c.over, "{err}");
    }
}
