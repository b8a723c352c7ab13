//! Bounds on what one manifest may cost to read: its size, and how far its
//! YAML aliases expand. yaml-rust2 copies the anchored node at every alias,
//! so a few hundred bytes of nested aliases (a "billion laughs") would grow
//! to gigabytes; the expansion is measured on the event stream as the tree
//! is built, at a few numbers per anchor, and an alias past the limits is
//! never expanded.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};
use yaml_rust2::{Yaml, YamlLoader};

/// Largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Aliases per document.
pub const MAX_ALIASES: u64 = 10_000;
/// Nodes that aliases may add to one document once expanded.
pub const MAX_EXPANDED_NODES: u64 = 100_000;
/// Scalar bytes that aliases may add to one document once expanded.
pub const MAX_EXPANDED_BYTES: u64 = 16 * 1024 * 1024;

/// Expanded size of a node: nodes and scalar bytes.
#[derive(Clone, Copy, Default)]
struct Size {
    nodes: u64,
    bytes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

#[derive(Default)]
struct Meter {
    /// 1-based index of the document being read.
    document: usize,
    anchors: HashMap<usize, Size>,
    /// Open collections: anchor id and size so far.
    open: Vec<(usize, Size)>,
    aliases: u64,
    expanded: Size,
    /// The documents over a limit, and why.
    over: Vec<(usize, String)>,
}

impl Meter {
    fn finish(&mut self, anchor: usize, size: Size) {
        if anchor > 0 {
            self.anchors.insert(anchor, size);
        }
        if let Some((_, parent)) = self.open.last_mut() {
            parent.add(size);
        }
    }

    fn is_over(&self) -> bool {
        self.over.last().is_some_and(|(d, _)| *d == self.document)
    }

    fn check(&mut self) {
        if self.is_over() {
            return;
        }
        let why = if self.aliases > MAX_ALIASES {
            format!("more than {MAX_ALIASES} aliases")
        } else if self.expanded.nodes > MAX_EXPANDED_NODES {
            format!("aliases expand to more than {MAX_EXPANDED_NODES} nodes")
        } else if self.expanded.bytes > MAX_EXPANDED_BYTES {
            format!(
                "aliases expand to more than {} MiB of text",
                MAX_EXPANDED_BYTES / (1024 * 1024)
            )
        } else {
            return;
        };
        self.over.push((
            self.document,
            format!("{why}; refusing to expand it (a YAML alias bomb?)"),
        ));
    }
}

impl Meter {
    /// Measures one event; `false` when it is an alias that must not be
    /// expanded (its document is over a limit and will be refused).
    fn measure(&mut self, ev: &Event) -> bool {
        match ev {
            Event::DocumentStart => {
                self.document += 1;
                self.anchors.clear();
                self.open.clear();
                self.aliases = 0;
                self.expanded = Size::default();
            }
            Event::SequenceStart(aid, _) | Event::MappingStart(aid, _) => {
                self.open.push((*aid, Size { nodes: 1, bytes: 0 }))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((aid, size)) = self.open.pop() {
                    self.finish(aid, size);
                }
            }
            Event::Scalar(value, _, aid, _) => self.finish(
                *aid,
                Size {
                    nodes: 1,
                    bytes: value.len() as u64,
                },
            ),
            Event::Alias(id) => {
                let one = Size { nodes: 1, bytes: 0 };
                let size = self.anchors.get(id).copied().unwrap_or(one);
                self.aliases += 1;
                self.expanded.add(size);
                self.check();
                if self.is_over() {
                    self.finish(0, one);
                    return false;
                }
                self.finish(0, size);
            }
            _ => {}
        }
        true
    }
}

/// yaml-rust2's loader behind the meter: an alias past the limits reaches
/// the loader as a null, so nothing grows, and its document is refused.
struct Guarded {
    meter: Meter,
    loader: YamlLoader,
    ends: usize,
}

impl MarkedEventReceiver for Guarded {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if matches!(ev, Event::DocumentEnd) {
            self.ends += 1;
        }
        if self.meter.measure(&ev) {
            self.loader.on_event(ev, mark);
        } else {
            self.loader.on_event(
                Event::Scalar("~".into(), TScalarStyle::Plain, 0, None),
                mark,
            );
        }
    }
}

/// The documents of a YAML stream, built with bounded alias expansion.
pub(crate) struct Loaded {
    /// Held rather than copied out: its documents are only lent.
    loader: YamlLoader,
    /// The documents (1-based) over a limit, and why: not to be used.
    pub refused: Vec<(usize, String)>,
    /// False when the loader stopped on an error of its own (a duplicated
    /// key), which [`YamlLoader::load_from_str`] then names.
    pub complete: bool,
}

/// Parses once: measuring and building in the same pass.
pub(crate) fn load(text: &str) -> Result<Loaded, ScanError> {
    let mut g = Guarded {
        meter: Meter::default(),
        loader: YamlLoader::default(),
        ends: 0,
    };
    Parser::new_from_str(text).load(&mut g, true)?;
    Ok(Loaded {
        complete: g.loader.documents().len() == g.ends,
        loader: g.loader,
        refused: g.meter.over,
    })
}

impl Loaded {
    pub(crate) fn docs(&self) -> &[Yaml] {
        self.loader.documents()
    }
}

/// Where the first invalid UTF-8 byte is: 1-based line and byte column.
pub(crate) fn utf8_position(bytes: &[u8], valid_up_to: usize) -> (usize, usize) {
    let before = &bytes[..valid_up_to];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, valid_up_to - line_start + 1)
}
