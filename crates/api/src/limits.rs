//! Bounds on what one manifest may cost to read: its size, and how far its
//! YAML aliases expand. yaml-rust2 copies the anchored node at every alias,
//! so a few hundred bytes of nested aliases (a "billion laughs") would grow
//! to gigabytes; the expansion is measured on the event stream first, where
//! it costs a few numbers per anchor, and only sound documents are built.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, EventReceiver, Parser};
use yaml_rust2::scanner::ScanError;

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
    /// The first document over a limit, and why.
    over: Option<(usize, String)>,
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

    fn check(&mut self) {
        if self.over.is_some() {
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
        self.over = Some((
            self.document,
            format!("{why}; refusing to expand it (a YAML alias bomb?)"),
        ));
    }
}

impl EventReceiver for Meter {
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::DocumentStart => {
                self.document += 1;
                self.anchors.clear();
                self.open.clear();
                self.aliases = 0;
                self.expanded = Size::default();
            }
            Event::SequenceStart(aid, _) | Event::MappingStart(aid, _) => {
                self.open.push((aid, Size { nodes: 1, bytes: 0 }))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((aid, size)) = self.open.pop() {
                    self.finish(aid, size);
                }
            }
            Event::Scalar(value, _, aid, _) => self.finish(
                aid,
                Size {
                    nodes: 1,
                    bytes: value.len() as u64,
                },
            ),
            Event::Alias(id) => {
                let size = self
                    .anchors
                    .get(&id)
                    .copied()
                    .unwrap_or(Size { nodes: 1, bytes: 0 });
                self.aliases += 1;
                self.expanded.add(size);
                self.check();
                self.finish(0, size);
            }
            _ => {}
        }
    }
}

/// The first document (1-based) whose aliases expand past the limits, and
/// why; a syntax error is returned as such.
pub(crate) fn alias_bomb(text: &str) -> Result<Option<(usize, String)>, ScanError> {
    let mut meter = Meter::default();
    Parser::new_from_str(text).load(&mut meter, true)?;
    Ok(meter.over)
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
