//! Properties of the rewrite over generated YAML files: with no marker that
//! applies, a file comes back byte-identical; with markers, it differs from
//! the input only inside the marked values, which then hold the new values.
//!
//! The generator writes each file itself and records the byte range of every
//! scalar it marked, so the checks do not trust the locator under test.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Range;
use tagwarden_setters::{LatestRef, PolicyImage, Setters, find_markers, update_text};

/// Values a policy may hand out as a tag: some read as numbers, booleans or
/// null when plain, some need quotes or escapes.
const NEW_TAGS: &[&str] = &[
    "5.0.3",
    "1606364286",
    "1.10",
    "on",
    "null",
    "a: b",
    "x #y",
    "it's",
    "q\"b\\",
    "-lead",
    "[flow]",
    "é→✓",
    "tab\tin",
    "",
];
const POLICIES: usize = NEW_TAGS.len();

fn setters() -> Setters {
    let policies: Vec<PolicyImage> = NEW_TAGS
        .iter()
        .enumerate()
        .map(|(i, tag)| PolicyImage {
            no_downgrade: None,
            namespace: "ns".into(),
            name: format!("p{i}"),
            labels: BTreeMap::new(),
            // Built directly: tags outside what a registry allows still
            // must be written safely.
            latest: LatestRef {
                name: "ghcr.io/acme/app".into(),
                tag: (*tag).into(),
                digest: None,
            },
        })
        .collect();
    Setters::new("ns", None, &policies)
}

/// Places a marked value can stand (`M` is the marker), in every style.
const CONTEXTS: &[&str] = &[
    "k: x0 M\n",
    "k: 'x0' M\n",
    "k: \"x0\" M\n",
    "l:\n- x0 M\n",
    "l:\n  M\n  - 'x0'\n",
    "f: [a, x0 M\n  ]\n",
    "f: {k: \"x0\" M\n  }\n",
    "k:\t.x0 M\n",
    "\u{feff}k: &a !!str x0 M\r\nj: *a\r\n",
];

/// Tags a hostile registry might send: anything at all, biased to what
/// YAML readers disagree about (line separators, controls, indicators).
fn hostile_value() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        Just('\u{2028}'),
        Just('\u{2029}'),
        Just('\u{85}'),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just('\u{feff}'),
        Just('\u{7f}'),
        Just('\u{9b}'),
        Just('\u{0}'),
        Just('\u{1b}'),
        Just('-'),
        Just(' '),
        Just(':'),
        Just('#'),
        Just('\''),
        Just('"'),
        Just('\\'),
        Just(','),
        Just('['),
        Just('a'),
        Just('1'),
        Just('.'),
    ];
    prop_oneof![
        any::<String>(),
        "[ -~]{0,16}",
        "[0-9._eE:+-]{0,8}",
        prop::collection::vec(tricky, 0..12).prop_map(|v| v.into_iter().collect()),
    ]
}

#[derive(Debug, Clone)]
enum Comment {
    None,
    Text(String),
    /// `{"$imagepolicy": "ns:pN:tag"}` that applies.
    Marker(usize),
    /// The same marker on its own line above the entry: it marks a sequence
    /// item, but above `key: value` it is the key's comment.
    HeadMarker(usize),
    /// A marker that names a policy the automation does not own.
    Foreign(String),
}

#[derive(Debug, Clone)]
enum Style {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone)]
struct Scalar {
    value: String,
    style: Style,
    anchor: bool,
    comment: Comment,
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(Scalar),
    Alias,
    Block { folded: bool, lines: Vec<String> },
    Flow(usize),
    Map(Vec<(bool, Node)>),
    Seq(Vec<Node>),
}

fn plain_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9.-]{0,8}(/[a-z0-9]{1,6}){0,2}(:[a-z0-9.]{1,6})?",
        "[0-9]{1,4}(\\.[0-9]{1,3}){0,2}",
        Just("5.0.0".to_string()),
        Just("~".to_string()),
    ]
}

fn comment(marker_ok: bool) -> BoxedStrategy<Comment> {
    let mut options = vec![
        (4, Just(Comment::None).boxed()),
        (2, "[ -~&&[^\\\\\"]]{0,20}".prop_map(Comment::Text).boxed()),
        (
            2,
            prop_oneof![
                Just("other:p1"),
                Just("ns:unknown"),
                Just("ns:p1:version"),
                Just("ns"),
            ]
            .prop_map(|s| Comment::Foreign(s.to_string()))
            .boxed(),
        ),
    ];
    if marker_ok {
        options.push((4, (0..POLICIES).prop_map(Comment::Marker).boxed()));
        options.push((2, (0..POLICIES).prop_map(Comment::HeadMarker).boxed()));
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

fn scalar(marker_ok: bool) -> impl Strategy<Value = Scalar> {
    (
        prop_oneof![
            plain_value().prop_map(|v| (v, Style::Plain)),
            "[ -~é→]{0,12}".prop_map(|v| (v, Style::Single)),
            "[ -~é\t]{0,12}".prop_map(|v| (v, Style::Double)),
        ],
        proptest::bool::weighted(0.15),
        comment(marker_ok),
    )
        .prop_map(|((value, style), anchor, comment)| Scalar {
            value,
            style,
            anchor,
            comment,
        })
}

fn block_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{1,12}",
        Just("# {\"$imagepolicy\": \"ns:p0:tag\"}".to_string()),
        Just("image: x:1 # {\"$imagepolicy\": \"ns:p1\"}".to_string()),
        Just(String::new()),
    ]
}

fn leaf(marker_ok: bool) -> impl Strategy<Value = Node> {
    prop_oneof![
        6 => scalar(marker_ok).prop_map(Node::Scalar),
        1 => Just(Node::Alias),
        1 => (any::<bool>(), prop::collection::vec(block_line(), 1..4))
            .prop_map(|(folded, mut lines)| {
                // Content starts with a non-empty line: that sets its indentation.
                lines.insert(0, "text".to_string());
                Node::Block { folded, lines }
            }),
        1 => (0usize..FLOWS.len()).prop_map(Node::Flow),
    ]
}

fn node(marker_ok: bool) -> impl Strategy<Value = Node> {
    leaf(marker_ok).prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            prop::collection::vec((proptest::bool::weighted(0.2), inner.clone()), 1..5)
                .prop_map(Node::Map),
            prop::collection::vec(inner, 1..4).prop_map(Node::Seq),
        ]
    })
}

const FLOWS: &[&str] = &[
    "[a, \"b\", 'c']",
    "{name: x, tag: 1.0}",
    "[\"{\\\"$imagepolicy\\\": \\\"ns:p0\\\"}\", {k: [1, 2]}]",
    "[]",
];

#[derive(Debug, Clone)]
struct File {
    bom: bool,
    crlf: bool,
    final_newline: bool,
    indent: usize,
    explicit_start: bool,
    documents: Vec<Vec<(bool, Node)>>,
}

fn file(marker_ok: bool) -> impl Strategy<Value = File> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::bool::weighted(0.8),
        prop_oneof![Just(2usize), Just(4)],
        any::<bool>(),
        prop::collection::vec(
            prop::collection::vec((proptest::bool::weighted(0.2), node(marker_ok)), 1..6),
            1..3,
        ),
    )
        .prop_map(
            |(bom, crlf, final_newline, indent, explicit_start, documents)| File {
                bom,
                crlf,
                final_newline,
                indent,
                explicit_start,
                documents,
            },
        )
}

/// A marked scalar as written: its bytes, its marker's setter, its value and
/// the value the setters give it (`None`: a marker they leave alone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marked {
    range: Range<usize>,
    setter: String,
    old: String,
    new: Option<String>,
    /// Marked by a comment on the line above (a sequence item).
    head: bool,
}

impl Marked {
    fn after(&self) -> &str {
        self.new.as_deref().unwrap_or(&self.old)
    }
}

struct Writer {
    out: String,
    nl: &'static str,
    step: usize,
    anchors: usize,
    key: usize,
    marked: Vec<Marked>,
    /// Whether the scalar being written is a block sequence item.
    seq_item: bool,
}

impl Writer {
    fn line_end(&mut self) {
        self.out.push_str(self.nl);
    }

    fn key(&mut self) -> String {
        self.key += 1;
        format!("k{}", self.key)
    }

    fn head_comment(&mut self, indent: usize, node: &Node) {
        if let Node::Scalar(Scalar {
            comment: Comment::HeadMarker(p),
            ..
        }) = node
        {
            self.out.push_str(&" ".repeat(indent));
            self.out
                .push_str(&format!("# {{\"$imagepolicy\": \"ns:p{p}:tag\"}}"));
            self.line_end();
        }
    }

    /// Writes a scalar where the cursor is, then its line comment and break.
    fn scalar(&mut self, s: &Scalar) {
        if s.anchor {
            self.anchors += 1;
            self.out.push_str(&format!("&a{} ", self.anchors));
        }
        let text = match s.style {
            Style::Plain => s.value.clone(),
            Style::Single => format!("'{}'", s.value.replace('\'', "''")),
            Style::Double => format!(
                "\"{}\"",
                s.value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\t', "\\t")
            ),
        };
        let start = self.out.len();
        self.out.push_str(&text);
        let range = start..self.out.len();
        let spaces = " ".repeat(1 + s.value.len() % 3);
        match &s.comment {
            Comment::None | Comment::HeadMarker(_) => {}
            Comment::Text(t) => self.out.push_str(&format!("{spaces}#{t}")),
            Comment::Marker(p) => self
                .out
                .push_str(&format!("{spaces}# {{\"$imagepolicy\": \"ns:p{p}:tag\"}}")),
            Comment::Foreign(setter) => self
                .out
                .push_str(&format!("{spaces}# {{\"$imagepolicy\": \"{setter}\"}}")),
        }
        let (setter, new) = match &s.comment {
            Comment::Marker(p) | Comment::HeadMarker(p) => {
                (format!("ns:p{p}:tag"), Some(NEW_TAGS[*p].to_string()))
            }
            Comment::Foreign(setter) => (setter.clone(), None),
            Comment::None | Comment::Text(_) => (String::new(), None),
        };
        let head_ignored = matches!(s.comment, Comment::HeadMarker(_)) && !self.seq_item;
        // An empty plain value has no bytes to replace: never a marked scalar.
        if !setter.is_empty() && !range.is_empty() && !head_ignored {
            self.marked.push(Marked {
                range,
                setter,
                old: s.value.clone(),
                new,
                head: matches!(s.comment, Comment::HeadMarker(_)),
            });
        }
        self.line_end();
    }

    /// A value after `key: ` or `- ` (cursor on that line), at `indent`.
    fn value(&mut self, node: &Node, indent: usize) {
        match node {
            Node::Scalar(s) => self.scalar(s),
            Node::Alias => {
                if self.anchors == 0 {
                    self.out.push_str("plain");
                } else {
                    self.out.push_str(&format!("*a{}", self.anchors));
                }
                self.line_end();
            }
            Node::Block { folded, lines } => {
                self.out.push_str(if *folded { ">" } else { "|" });
                self.line_end();
                for l in lines {
                    if !l.is_empty() {
                        self.out.push_str(&" ".repeat(indent + self.step));
                        self.out.push_str(l);
                    }
                    self.line_end();
                }
            }
            Node::Flow(i) => {
                self.out.push_str(FLOWS[*i]);
                self.line_end();
            }
            Node::Map(entries) => {
                self.line_end();
                self.map(entries, indent + self.step);
            }
            Node::Seq(items) => {
                self.line_end();
                self.seq(items, indent + self.step);
            }
        }
    }

    fn map(&mut self, entries: &[(bool, Node)], indent: usize) {
        for (blank, node) in entries {
            if *blank {
                self.line_end();
            }
            self.head_comment(indent, node);
            self.out.push_str(&" ".repeat(indent));
            let key = self.key();
            self.out.push_str(&key);
            self.out.push(':');
            self.seq_item = false;
            if matches!(node, Node::Map(_) | Node::Seq(_)) {
                self.value(node, indent);
            } else {
                self.out.push(' ');
                self.value(node, indent);
            }
        }
    }

    fn seq(&mut self, items: &[Node], indent: usize) {
        for node in items {
            self.head_comment(indent, node);
            self.out.push_str(&" ".repeat(indent));
            self.out.push_str("- ");
            match node {
                // Compact form: the first entry shares the dash's line.
                Node::Map(entries) => {
                    let key = self.key();
                    self.out.push_str(&key);
                    self.out.push_str(": ");
                    self.out.push_str("first");
                    self.line_end();
                    self.map(entries, indent + 2);
                }
                Node::Seq(_) => {
                    self.out.push_str("nested:");
                    self.value(node, indent + 2);
                }
                _ => {
                    self.seq_item = true;
                    self.value(node, indent + 2);
                }
            }
        }
    }
}

/// The file's text and the marked scalars in it.
fn render(f: &File) -> (String, Vec<Marked>) {
    let mut w = Writer {
        out: String::new(),
        nl: if f.crlf { "\r\n" } else { "\n" },
        step: f.indent,
        anchors: 0,
        key: 0,
        marked: Vec::new(),
        seq_item: false,
    };
    if f.bom {
        w.out.push('\u{feff}');
    }
    // A blank line keeps this comment from joining a first head comment.
    w.out.push_str("# generated");
    w.line_end();
    w.line_end();
    for (i, doc) in f.documents.iter().enumerate() {
        if i > 0 || f.explicit_start {
            w.out.push_str("---");
            w.line_end();
        }
        // Anchors are per document.
        w.anchors = 0;
        w.map(doc, 0);
        if i % 2 == 1 {
            w.out.push_str("...");
            w.line_end();
        }
    }
    if !f.final_newline {
        let trimmed = w.out.trim_end_matches(['\r', '\n']).len();
        // A block scalar's last line break is part of its value; keep it.
        if !w.out[..trimmed].ends_with(['|', '>']) {
            w.out.truncate(trimmed);
        }
    }
    (w.out, w.marked)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Without a marker that applies, every file comes back byte-identical.
    #[test]
    fn files_without_applicable_markers_round_trip(f in file(false)) {
        let (text, marked) = render(&f);
        prop_assert!(marked.iter().all(|m| m.new.is_none()));
        let u = update_text(&text, &setters());
        let u = u.map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(u.text, None, "{}", text);
        prop_assert!(u.objects.is_empty());
    }

    /// With markers, the output is the input with only the marked scalars'
    /// bytes replaced, the replaced scalars read back as the new values, and a
    /// second run changes nothing.
    #[test]
    fn files_with_markers_change_only_inside_marked_values(f in file(true)) {
        let (text, marked) = render(&f);
        let setters = setters();
        let scan = find_markers(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let found: Vec<(Range<usize>, String)> =
            scan.markers.iter().map(|m| (m.range.clone(), m.setter.clone())).collect();
        let want: Vec<(Range<usize>, String)> =
            marked.iter().map(|m| (m.range.clone(), m.setter.clone())).collect();
        prop_assert_eq!(&found, &want, "{}", text);

        let u = update_text(&text, &setters).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let changing: Vec<&Marked> = marked.iter().filter(|m| m.old != m.after()).collect();
        let Some(out) = u.text else {
            prop_assert!(changing.is_empty(), "nothing changed in\n{}", text);
            return Ok(());
        };
        prop_assert_eq!(u.objects.iter().map(|o| o.changes.len()).sum::<usize>(), changing.len());

        // Same markers at shifted places, holding the new values...
        let after = find_markers(&out).map_err(|e| TestCaseError::fail(format!("{e}\n{out}")))?;
        prop_assert_eq!(after.markers.len(), marked.len(), "{}", out);
        for (m, a) in marked.iter().zip(&after.markers) {
            prop_assert_eq!(&a.value, m.after(), "{}", out);
        }
        // ...and every byte between them unchanged.
        let mut prev_in = 0;
        let mut prev_out = 0;
        for (m, a) in marked.iter().zip(&after.markers) {
            prop_assert_eq!(&text[prev_in..m.range.start], &out[prev_out..a.range.start]);
            if m.old == m.after() {
                prop_assert_eq!(&text[m.range.clone()], &out[a.range.clone()]);
            }
            prev_in = m.range.end;
            prev_out = a.range.end;
        }
        prop_assert_eq!(&text[prev_in..], &out[prev_out..]);

        let again = update_text(&out, &setters).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.text, None);
    }

    /// Whatever string a policy hands out, in whatever place and style the
    /// old value had, the written scalar is one line of printable text with
    /// no character any YAML reader breaks lines at, the rest of the file is
    /// untouched, and it reads back (go-yaml's rules in the verify step,
    /// YAML 1.2 here) as exactly that string.
    #[test]
    fn any_value_reads_back_as_the_same_single_string(
        value in hostile_value(),
        context in 0..CONTEXTS.len(),
    ) {
        let marker = "# {\"$imagepolicy\": \"ns:p:tag\"}";
        let text = CONTEXTS[context].replace("M", marker);
        let setters = Setters::new("ns", None, &[PolicyImage {
            no_downgrade: None,
            namespace: "ns".into(),
            name: "p".into(),
            labels: BTreeMap::new(),
            latest: LatestRef { name: "ghcr.io/acme/app".into(), tag: value.clone(), digest: None },
        }]);
        let before = find_markers(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(before.markers.len(), 1, "{}", text);
        let old = &before.markers[0];
        let u = update_text(&text, &setters)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text:?} {value:?}")))?;
        let Some(out) = u.text else {
            prop_assert_eq!(&old.value, &value);
            return Ok(());
        };
        let after = find_markers(&out).map_err(|e| TestCaseError::fail(format!("{e}\n{out:?}")))?;
        prop_assert_eq!(after.markers.len(), 1, "{:?}", out);
        let new = &after.markers[0];
        prop_assert_eq!(&new.value, &value, "{:?}", out);
        let written = &out[new.range.clone()];
        prop_assert!(
            written.chars().all(|c| matches!(c, '\t' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
                && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')),
            "{:?}", written
        );
        prop_assert_eq!(&text[..old.range.start], &out[..new.range.start]);
        prop_assert_eq!(&text[old.range.end..], &out[new.range.end..]);
    }

    /// Text that never mentions the marker is never parsed, so never changed.
    #[test]
    fn any_text_without_the_marker_is_returned_untouched(s in "\\PC{0,200}") {
        prop_assume!(!s.contains("\"$imagepolicy\""));
        let u = update_text(&s, &setters()).expect("not parsed");
        prop_assert_eq!(u.text, None);
    }
}

/// The properties above are only as good as the files generated: make sure a
/// fair share of them exercise what matters.
#[test]
fn generated_files_cover_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let setters = setters();
    let (mut changed, mut head, mut crlf_changed, mut bom_changed, mut quoted_new) =
        (0, 0, 0, 0, 0);
    let mut head_marked = 0;
    for _ in 0..300 {
        let f = file(true).new_tree(&mut runner).expect("tree").current();
        let (text, marked) = render(&f);
        let Ok(u) = update_text(&text, &setters) else {
            panic!("generated text does not parse:\n{text}");
        };
        if u.text.is_some() {
            changed += 1;
            crlf_changed += usize::from(f.crlf);
            bom_changed += usize::from(f.bom);
        }
        head += usize::from(
            text.contains("\n# {\"$imagepolicy\"") || text.contains("  # {\"$imagepolicy\""),
        );
        head_marked += usize::from(marked.iter().any(|m| m.head));
        quoted_new += usize::from(
            marked
                .iter()
                .any(|m| m.new.as_deref() == Some("1606364286")),
        );
    }
    for (what, n) in [
        ("changed", changed),
        ("head comments", head),
        ("CRLF and changed", crlf_changed),
        ("BOM and changed", bom_changed),
        ("numeric tag", quoted_new),
        ("a sequence item marked from above", head_marked),
    ] {
        assert!(n >= 30, "only {n} of 300 generated files: {what}");
    }
}
