//! Finding marked scalars: a real YAML parser (yaml-rust2, libyaml's rules)
//! says where each scalar starts and what it holds; the bytes it spans are
//! then measured here and accepted only if they decode to exactly that value.
//! Comments are read from the source next to those spans, as Flux reads a
//! node's line comment and head comment: go-yaml gives a comment on its own
//! line to the next node, which for `key: value` is the key, so only a
//! block sequence item (`- value`) can be marked from the line above.

use crate::scalar::{self, Style};
use crate::{ObjectId, YamlError, marker};
use std::collections::HashMap;
use std::ops::Range;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A scalar with a marker, where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedScalar {
    /// Bytes of the scalar in the text, quotes included.
    pub range: Range<usize>,
    pub style: Style,
    /// In a flow collection (`[...]`, `{...}`), where `,[]{}` end a plain scalar.
    pub flow: bool,
    /// The decoded value.
    pub value: String,
    /// The marker's setter string, verbatim (`flux-system:podinfo:tag`).
    pub setter: String,
    /// 1-based line of the scalar.
    pub line: usize,
    /// 0-based document of the file.
    pub document: usize,
    /// Index of the scalar's parser event, to find it again after a rewrite
    /// (an empty scalar before it may share its start mark).
    pub(crate) event: usize,
}

/// Everything found in one text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// One entry per YAML document, in order.
    pub documents: Vec<ObjectId>,
    pub markers: Vec<MarkedScalar>,
    /// 1-based lines that mention `"$imagepolicy"` but hold no marker on a
    /// single-line scalar value (block scalars, keys, text inside strings).
    pub unattached: Vec<usize>,
}

/// The text after a leading byte-order mark, and the mark's length.
pub(crate) fn strip_bom(text: &str) -> (usize, &str) {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => (text.len() - rest.len(), rest),
        None => (0, text),
    }
}

/// Parser events with their start marks, scalars' values owned.
pub(crate) fn events(body: &str) -> Result<Vec<(Event, Marker)>, YamlError> {
    struct Collect(Vec<(Event, Marker)>);
    impl MarkedEventReceiver for Collect {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            self.0.push((ev, mark));
        }
    }
    let mut c = Collect(Vec::new());
    Parser::new_from_str(body)
        .load(&mut c, true)
        .map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
    Ok(c.0)
}

/// yaml-rust2 marks count characters (a CRLF counts two); edits need bytes.
pub(crate) struct CharToByte {
    /// Byte offset of each char, `None` for ASCII text where they are equal.
    offsets: Option<Vec<usize>>,
    len: usize,
}

impl CharToByte {
    pub(crate) fn new(s: &str) -> CharToByte {
        let offsets = (!s.is_ascii()).then(|| s.char_indices().map(|(i, _)| i).collect());
        CharToByte {
            offsets,
            len: s.len(),
        }
    }

    pub(crate) fn byte(&self, char_index: usize) -> usize {
        match &self.offsets {
            None => char_index.min(self.len),
            Some(v) => v.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

/// Start offsets of lines, for byte → line and line → text.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Lines<'a> {
        // YAML breaks lines at LF, CRLF and a lone CR.
        let b = text.as_bytes();
        let mut starts = vec![0];
        starts.extend(
            memchr::memchr2_iter(b'\n', b'\r', b)
                .filter(|&i| !(b[i] == b'\r' && b.get(i + 1) == Some(&b'\n')))
                .map(|i| i + 1),
        );
        Lines { text, starts }
    }

    /// 0-based line holding byte `at`.
    pub(crate) fn line_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at) - 1
    }

    /// Bytes between the start of the line holding `at` and `at`.
    fn column(&self, at: usize) -> usize {
        at - self.starts[self.line_of(at)]
    }

    /// Line `n` (0-based) without its line break.
    fn text(&self, n: usize) -> &'a str {
        let start = self.starts[n];
        let end = self.starts.get(n + 1).map_or(self.text.len(), |&e| e - 1);
        let line = &self.text[start..end.max(start)];
        line.strip_suffix('\r').unwrap_or(line)
    }
}

enum Frame {
    Map {
        flow: bool,
        expect_key: bool,
        key: Option<String>,
    },
    Seq {
        flow: bool,
    },
}

/// A single-line scalar value whose bytes were measured and verified.
struct Candidate {
    event: usize,
    range: Range<usize>,
    style: Style,
    flow: bool,
    value: String,
    document: usize,
    /// An item of a block sequence, the only value a head comment can mark.
    seq_item: bool,
}

/// Finds every marked scalar value in `text` (a whole file, BOM and all).
pub fn find_markers(text: &str) -> Result<Scan, YamlError> {
    scan(text).map(|(scan, _)| scan)
}

/// [`find_markers`], also giving the parser events of the text after its
/// BOM, so the rewrite's check need not parse the old text a second time.
pub(crate) fn scan(text: &str) -> Result<(Scan, Vec<(Event, Marker)>), YamlError> {
    let (bom, body) = strip_bom(text);
    let all = events(body)?;
    let c2b = CharToByte::new(body);
    let lines = Lines::new(text);

    let mut documents: Vec<ObjectId> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    // Lines where a quoted scalar continues: `#` there is text, not a comment.
    let mut in_string: Vec<Range<usize>> = Vec::new();
    // Block scalar content: lines and the content's indentation.
    let mut in_block: Vec<(Range<usize>, usize)> = Vec::new();
    // First value scalar starting on each line: the one a head comment names.
    let mut first_value: HashMap<usize, usize> = HashMap::new();

    let mut evs = all.iter().enumerate().peekable();
    while let Some((event, (ev, mark))) = evs.next() {
        match ev {
            Event::DocumentStart => documents.push(ObjectId::default()),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let at = bom + c2b.byte(mark.index());
                let open = text.as_bytes().get(at).copied();
                let flow = matches!(open, Some(b'{' | b'['))
                    || stack.iter().any(|f| {
                        matches!(f, Frame::Map { flow: true, .. } | Frame::Seq { flow: true })
                    });
                stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map {
                        flow,
                        expect_key: true,
                        key: None,
                    },
                    _ => Frame::Seq { flow },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                node_done(&mut stack);
            }
            Event::Alias(_) => node_done(&mut stack),
            Event::Scalar(value, style, _, _) => {
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Map {
                        expect_key: true,
                        ..
                    })
                );
                let start = bom + c2b.byte(mark.index());
                let style = match style {
                    TScalarStyle::Plain => Some(Style::Plain),
                    TScalarStyle::SingleQuoted => Some(Style::SingleQuoted),
                    TScalarStyle::DoubleQuoted => Some(Style::DoubleQuoted),
                    TScalarStyle::Literal | TScalarStyle::Folded => None,
                };
                let flow = stack.iter().any(|f| {
                    matches!(f, Frame::Map { flow: true, .. } | Frame::Seq { flow: true })
                });
                let seq_item = matches!(stack.last(), Some(Frame::Seq { flow: false }));
                let end = style.and_then(|s| scalar::span_end(text, start, s, flow));
                if style.is_none() {
                    // The mark is at the first content character, so its
                    // column is the content's indentation; content runs
                    // until the next token.
                    let next = evs
                        .peek()
                        .map_or(text.len(), |(_, (_, m))| bom + c2b.byte(m.index()));
                    in_block.push((lines.line_of(start)..lines.line_of(next), mark.col()));
                }
                if let (Some(Style::SingleQuoted | Style::DoubleQuoted), Some(end)) = (style, end) {
                    let (a, b) = (lines.line_of(start), lines.line_of(end.saturating_sub(1)));
                    if a != b {
                        in_string.push(a + 1..b + 1);
                    }
                }
                if is_key {
                    if let Some(Frame::Map {
                        expect_key, key, ..
                    }) = stack.last_mut()
                    {
                        *key = Some(value.clone());
                        *expect_key = false;
                    }
                    continue;
                }
                first_value.entry(lines.line_of(start)).or_insert(start);
                record_identity(&stack, &mut documents, value);
                // An empty plain value has no bytes to replace, and one glued
                // to the token before it could merge with it: both are left
                // alone. yaml-rust2 ends an anchor or tag at U+FEFF and starts
                // a scalar with it (`&a\u{feff}`, `&:\u{feff}`), so such a
                // scalar is never edited either.
                if let (Some(style), Some(end)) = (style, end)
                    && end > start
                    && clean_start(text, bom, start)
                    && !text[start..].starts_with('\u{feff}')
                    && scalar::decode(&text[start..end], style).as_deref() == Some(value.as_str())
                {
                    candidates.push(Candidate {
                        event,
                        range: start..end,
                        style,
                        flow,
                        value: value.clone(),
                        document: documents.len().saturating_sub(1),
                        seq_item,
                    });
                }
                node_done(&mut stack);
            }
            _ => {}
        }
    }

    let mut markers = Vec::new();
    let mut marker_lines = Vec::new();
    for c in candidates {
        let line = lines.line_of(c.range.start);
        // Flux reads the line comment, and only without one the head comment.
        let found = match line_comment(text, c.range.end) {
            Some(comment) => marker::parse(comment).map(|s| (s, line)),
            None => (|| {
                let head = line.checked_sub(1)?;
                let line_start = c.range.start - lines.column(c.range.start);
                if first_value.get(&line) != Some(&c.range.start)
                    || c.flow
                    || !c.seq_item
                    || !heads_its_line(&text[line_start..c.range.start])
                {
                    return None;
                }
                let is_comment = |n: usize| {
                    let t = lines.text(n);
                    let indent = t.len() - t.trim_start_matches([' ', '\t']).len();
                    t[indent..].starts_with('#')
                        && !in_string.iter().any(|r| r.contains(&n))
                        && !in_block.iter().any(|(r, i)| r.contains(&n) && indent >= *i)
                };
                head_comment(&lines, line, is_comment)
                    .and_then(marker::parse)
                    .map(|s| (s, head))
            })(),
        };
        if let Some((setter, comment_line)) = found {
            marker_lines.push(comment_line);
            markers.push(MarkedScalar {
                line: line + 1,
                range: c.range,
                style: c.style,
                flow: c.flow,
                value: c.value,
                setter,
                document: c.document,
                event: c.event,
            });
        }
    }

    let mut unattached: Vec<usize> = memchr::memmem::find_iter(text.as_bytes(), crate::PREFILTER)
        .map(|at| lines.line_of(at))
        .filter(|l| !marker_lines.contains(l))
        .map(|l| l + 1)
        .collect();
    unattached.dedup();

    Ok((
        Scan {
            documents,
            markers,
            unattached,
        },
        all,
    ))
}

/// Whether the scalar at `start` is separated from what precedes it, so new
/// text there cannot join the previous token.
fn clean_start(text: &str, bom: usize, start: usize) -> bool {
    start == bom
        || matches!(
            text.as_bytes().get(start - 1),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':')
        )
}

/// After a node in a mapping, the next scalar is a key again (and vice versa).
fn node_done(stack: &mut [Frame]) {
    if let Some(Frame::Map {
        expect_key, key, ..
    }) = stack.last_mut()
    {
        if !*expect_key {
            *key = None;
        }
        *expect_key = !*expect_key;
    }
}

/// `apiVersion`, `kind` and `metadata.{name,namespace}` of the document root.
fn record_identity(stack: &[Frame], documents: &mut [ObjectId], value: &str) {
    let Some(id) = documents.last_mut() else {
        return;
    };
    fn key(f: &Frame) -> Option<&str> {
        match f {
            Frame::Map { key, .. } => key.as_deref(),
            Frame::Seq { .. } => None,
        }
    }
    let slot = match stack {
        [root] => match key(root) {
            Some("apiVersion") => &mut id.api_version,
            Some("kind") => &mut id.kind,
            _ => return,
        },
        [root, meta @ Frame::Map { .. }] if key(root) == Some("metadata") => match key(meta) {
            Some("name") => &mut id.name,
            Some("namespace") => &mut id.namespace,
            _ => return,
        },
        _ => return,
    };
    *slot = value.to_string();
}

/// Whether a scalar preceded on its line by `prefix` is the line's node: a
/// comment above the line is then its head comment. True for nothing, for
/// its own mapping key, or for sequence dashes (with an anchor or tag); not
/// after `- key: `, where the comment heads the sequence item instead.
fn heads_its_line(prefix: &str) -> bool {
    let mut p = prefix.trim_start_matches([' ', '\t']);
    let mut dashes = false;
    while let Some(rest) = p.strip_prefix("- ").or_else(|| p.strip_prefix("-\t")) {
        p = rest.trim_start_matches([' ', '\t']);
        dashes = true;
    }
    while p.starts_with(['&', '!']) {
        let token = p.find([' ', '\t']).unwrap_or(p.len());
        p = p[token..].trim_start_matches([' ', '\t']);
    }
    !dashes || p.is_empty()
}

/// The comment right after a scalar on its line (text after `#`).
fn line_comment(text: &str, end: usize) -> Option<&str> {
    let rest = &text[end..];
    let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
    line.trim_start_matches([' ', '\t']).strip_prefix('#')
}

/// The head comment of line `line`: exactly one comment line right above it
/// (`is_comment` tells comments from block scalar and string content), not
/// indented past the line's first token.
fn head_comment<'a>(
    lines: &Lines<'a>,
    line: usize,
    is_comment: impl Fn(usize) -> bool,
) -> Option<&'a str> {
    let above = lines.text(line - 1);
    let indent = |s: &str| s.len() - s.trim_start_matches([' ', '\t']).len();
    if !is_comment(line - 1) || indent(above) > indent(lines.text(line)) {
        return None;
    }
    // A longer comment block is one multi-line head comment: not JSON.
    if line >= 2 && is_comment(line - 2) {
        return None;
    }
    above[indent(above)..].strip_prefix('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setters_at(text: &str) -> Vec<(String, String, usize)> {
        find_markers(text)
            .expect("valid YAML")
            .markers
            .into_iter()
            .map(|m| (text[m.range].to_string(), m.setter, m.line))
            .collect()
    }

    #[test]
    fn line_comments_on_values_and_items() {
        let text = "a:\n  image: ghcr.io/x:1.0 # {\"$imagepolicy\": \"ns:x\"}\n  list:\n  - 'q:1'   #{\"$imagepolicy\":\"ns:q:tag\"}\n";
        assert_eq!(
            setters_at(text),
            [
                ("ghcr.io/x:1.0".into(), "ns:x".into(), 2),
                ("'q:1'".into(), "ns:q:tag".into(), 4)
            ]
        );
    }

    #[test]
    fn head_comments_mark_sequence_items_not_mapping_values() {
        // go-yaml gives the comment above `image: y:1` to the key `image`,
        // and Flux reads only the value's own comments.
        let text = "list:\n# {\"$imagepolicy\": \"ns:x\"}\n- x:1\nspec:\n  # {\"$imagepolicy\": \"ns:y\"}\n  image: y:1\n";
        let scan = find_markers(text).expect("valid");
        assert_eq!(setters_at(text), [("x:1".into(), "ns:x".into(), 3)]);
        assert_eq!(scan.unattached, [5]);
    }

    #[test]
    fn a_line_comment_hides_the_head_comment() {
        // Flux reads the head comment only when there is no line comment.
        let m = "# {\"$imagepolicy\": \"ns:x\"}\n";
        assert_eq!(setters_at(&format!("l:\n{m}- x:1 # note\n")), []);
        assert_eq!(setters_at(&format!("l:\n{m}- x:1 #\n")), []);
        assert_eq!(
            setters_at(&format!("l:\n{m}- x:1\n")),
            [("x:1".into(), "ns:x".into(), 3)]
        );
    }

    #[test]
    fn not_markers_inside_block_scalars_strings_or_comment_blocks() {
        let text = concat!(
            "script: |\n",
            "  # {\"$imagepolicy\": \"ns:a\"}\n",
            "  image: a:1\n",
            "flow: {q: 'x\n",
            "  # {\"$imagepolicy\": \"ns:b\"}\n",
            "  y', k: b}\n",
            "# words\n",
            "# {\"$imagepolicy\": \"ns:c\"}\n",
            "image: c:1\n",
            "\n",
            "# {\"$imagepolicy\": \"ns:d\"}\n",
            "\n",
            "image2: d:1\n",
            "block: | # {\"$imagepolicy\": \"ns:e\"}\n",
            "  e:1\n",
        );
        let scan = find_markers(text).expect("valid");
        assert_eq!(scan.markers, []);
        assert_eq!(scan.unattached, [2, 5, 8, 11, 14]);
    }

    #[test]
    fn head_comments_name_the_line_node_not_a_compact_mapping_value() {
        let m = "# {\"$imagepolicy\": \"ns:x\"}\n";
        assert_eq!(setters_at(&format!("l:\n{m}- name: x\n")), []);
        assert_eq!(setters_at(&format!("l: {m}  [x]\n")), []);
        assert_eq!(
            setters_at(&format!("l:\n{m}- &a !!str x\n")),
            [("x".into(), "ns:x".into(), 3)]
        );
        // Above a key of a mapping in a sequence: the key's comment.
        assert_eq!(setters_at(&format!("l:\n- a: 1\n  {m}  b: x\n")), []);
    }

    #[test]
    fn a_comment_after_block_scalar_content_is_a_head_comment() {
        // The line above the marker is block content that looks like a
        // comment; the marker itself, less indented, is a real comment.
        let text = "l:\n- |\n  # not a comment\n# {\"$imagepolicy\": \"ns:a\"}\n- a:1\nm:\n  - >-\n      x\n      # still content\n  # {\"$imagepolicy\": \"ns:c\"}\n  - c:1\n";
        assert_eq!(
            setters_at(text),
            [
                ("a:1".into(), "ns:a".into(), 5),
                ("c:1".into(), "ns:c".into(), 11)
            ]
        );
    }

    #[test]
    fn deeper_indented_comment_is_not_a_head_comment() {
        let text = "- |\n  x\n  # {\"$imagepolicy\": \"ns:a\"}\n- a:1\n";
        assert_eq!(setters_at(text), []);
    }

    #[test]
    fn keys_and_empty_values_are_never_marked() {
        let text =
            "? k:1 # {\"$imagepolicy\": \"ns:a\"}\n: v\nempty: # {\"$imagepolicy\": \"ns:a\"}\n";
        assert_eq!(setters_at(text), []);
    }

    #[test]
    fn byte_offsets_past_multibyte_text_bom_and_crlf() {
        let text = "\u{feff}ü: \"äö\"\r\nimage: x:1 # {\"$imagepolicy\": \"ns:x\"}\r\n";
        assert_eq!(setters_at(text), [("x:1".into(), "ns:x".into(), 2)]);
    }

    #[test]
    fn identity_of_each_document() {
        let text = "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  namespace: n\n  labels: {name: no}\nspec:\n  name: no\n---\nvalues: 1\n";
        let scan = find_markers(text).expect("valid");
        assert_eq!(
            scan.documents,
            [
                ObjectId {
                    api_version: "v1".into(),
                    kind: "A".into(),
                    namespace: "n".into(),
                    name: "a".into()
                },
                ObjectId::default()
            ]
        );
    }

    #[test]
    fn scalars_glued_to_the_previous_token_are_left_alone() {
        // Found by fuzzing: yaml-rust2 ends the anchor name at the BOM
        // character, so the scalar starts right after the anchor.
        let text = "&f\u{feff} # {\"$imagepolicy\": \"ns:p\"}\n";
        assert_eq!(setters_at(text), []);
        // Found by fuzzing too: the anchor is named ':', so the ':' before
        // the scalar is no separator.
        let text = ": &:\u{feff} # {\"$imagepolicy\": \"ns:p\"}\n";
        assert_eq!(setters_at(text), []);
        // JSON-style `"k":v` is separated enough.
        assert_eq!(
            setters_at("{\"k\":v # {\"$imagepolicy\": \"ns:p\"}\n}\n"),
            [("v".into(), "ns:p".into(), 1)]
        );
        assert_eq!(
            setters_at("[a,b # {\"$imagepolicy\": \"ns:p\"}\n]\n"),
            [("b".into(), "ns:p".into(), 1)]
        );
    }

    #[test]
    fn parse_errors_carry_the_line() {
        let e = find_markers("a:\n  b: 1\n c: 2\n").expect_err("bad indent");
        assert_eq!(e.line, 3);
    }
}
