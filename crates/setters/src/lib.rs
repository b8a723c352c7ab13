//! The update step of Flux's image automation ("Setters" strategy), lossless.
//!
//! Values marked with `# {"$imagepolicy": "NS:NAME[:tag|:name|:digest]"}`
//! are set to the policy's latest image, tag, name or digest. Only the
//! marked scalars' bytes change: comments, blank lines, indentation, CRLF,
//! BOM, block scalars, anchors, document markers and key order stay as they
//! were, and files without a change are not written.
//!
//! Everything but the tree walk ([`plan`], [`apply`]) works on `&str`:
//! [`find_markers`] locates marked scalars, [`update_text`] rewrites them.

mod diff;
mod locate;
pub mod marker;
mod readback;
mod scalar;
mod tree;
mod walk;

pub use diff::unified_diff;
pub use locate::{MarkedScalar, Scan, find_markers};
pub use scalar::{Style, reads_as_string, render};
pub use tree::{Plan, PlannedFile, apply, plan, slash_path};

use marker::{Field, Setter, setter_string};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use tagwarden_api::LabelSelector;
pub use tagwarden_api::LatestRef;

/// Files not containing this text are never parsed.
pub(crate) const PREFILTER: &[u8] = b"\"$imagepolicy\"";

/// Why an update could not run.
#[derive(Debug, thiserror::Error)]
pub enum SettersError {
    #[error("update path '{path}': {reason}")]
    UpdatePath { path: String, reason: String },
    #[error("{path}: symlink to {target}, outside the checkout; refusing to follow it")]
    Symlink { path: PathBuf, target: PathBuf },
    #[error("cannot list {path}")]
    Walk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("latest image '{value}': {reason}")]
    LatestRef { value: String, reason: String },
    #[error("{path}:{line}: refusing to rewrite: {reason}; no file was changed")]
    Unsafe {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

impl From<tagwarden_api::LatestRefError> for SettersError {
    fn from(e: tagwarden_api::LatestRefError) -> SettersError {
        SettersError::LatestRef {
            value: e.value,
            reason: e.reason,
        }
    }
}

impl SettersError {
    /// File system trouble may pass; a path or reference the user wrote will not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SettersError::Walk { .. } | SettersError::Read { .. } | SettersError::Write { .. }
        )
    }
}

/// A file that is not YAML; it is skipped, the others are still updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    pub message: String,
}

/// Why [`update_text`] gave no new text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The text is not YAML: such a file is skipped.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// The rewritten text would not read back as intended (a value that
    /// YAML readers would split, retype or refuse): nothing may be written.
    #[error("line {line}: {reason}")]
    Unsafe { line: usize, reason: String },
}

impl TextError {
    /// 1-based line the error is about.
    pub fn line(&self) -> usize {
        match self {
            TextError::Yaml(e) => e.line,
            TextError::Unsafe { line, .. } => *line,
        }
    }
}

/// The object a change belongs to, as Flux's template data names it. Empty
/// strings for plain YAML such as Helm values files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One value set by one marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub old_value: String,
    pub new_value: String,
    /// The marker's setter, `NS:NAME[:field]`.
    pub setter: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChanges {
    pub id: ObjectId,
    pub changes: Vec<Change>,
}

/// The changes in one file, per object in order of appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChanges {
    /// Relative to the update path.
    pub path: PathBuf,
    /// The file written: the real path, a symlink resolved.
    pub target: PathBuf,
    pub objects: Vec<ObjectChanges>,
}

/// A candidate file left alone because it could not be read as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// Relative to the update path.
    pub path: PathBuf,
    pub error: YamlError,
}

/// What an update changed, for commit messages and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateResult {
    pub files: Vec<FileChanges>,
    pub skipped: Vec<SkippedFile>,
    /// Markers left at their value: the new one ranks lower under the policy.
    pub held: Vec<HeldChange>,
}

/// Why a marker was held at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// `tagwarden.io/no-downgrade`: the new tag ranks lower.
    Downgrade,
    /// `tagwarden.io/flap-window`: we set this value lately, someone else
    /// changed it since; setting it again would fight them.
    Flap,
}

/// A change held back (`tagwarden.io/no-downgrade`, `tagwarden.io/flap-window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldChange {
    pub hold: Hold,
    /// Relative to the update path.
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    pub setter: String,
    pub old_value: String,
    pub new_value: String,
}

impl UpdateResult {
    pub fn change_count(&self) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.objects)
            .map(|o| o.changes.len())
            .sum()
    }

    /// `(namespace, name)` of every policy that changed something.
    pub fn policies(&self) -> BTreeSet<(String, String)> {
        self.files
            .iter()
            .flat_map(|f| &f.objects)
            .flat_map(|o| &o.changes)
            .filter_map(|c| Setter::parse(&c.setter))
            .map(|s| (s.namespace.to_string(), s.name.to_string()))
            .collect()
    }
}

/// A ready ImagePolicy: where it lives, its labels, what it selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyImage {
    /// The policy's rule when its markers must never move to a lower-ranked
    /// tag (`tagwarden.io/no-downgrade`).
    pub no_downgrade: Option<tagwarden_policy::PolicySpec>,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub latest: LatestRef,
}

/// Why a marker's value was left alone (reported at debug level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Not `NS:NAME[:tag|:name|:digest]`.
    NotASetter,
    /// A policy of another namespace than the automation's.
    OtherNamespace,
    /// A policy of the namespace that the policySelector leaves out.
    NotSelected,
    /// No such policy (or it has no latest image yet).
    UnknownPolicy,
    /// `:digest` of a policy that reflects no digest.
    NoDigest,
    /// `"$imagepolicy"` on a line where no single-line scalar value carries
    /// it as a marker: block scalars, keys, string contents, comment blocks,
    /// a comment above `key: value` (the key's, as in Flux).
    Unattached,
    /// Held back by a guard (`tagwarden.io/no-downgrade`,
    /// `tagwarden.io/flap-window`); see [`Hold`].
    Held,
}

/// A marker that changed nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredMarker {
    /// 1-based.
    pub line: usize,
    pub setter: Option<String>,
    pub reason: IgnoreReason,
}

/// The values markers can take: setter string → value, for the policies
/// of one automation.
#[derive(Debug, Clone, Default)]
pub struct Setters {
    namespace: String,
    values: HashMap<String, String>,
    /// Policies in the namespace, selected or not, for precise reasons.
    known: HashSet<String>,
    unselected: HashSet<String>,
    /// Policies whose markers never move to a lower-ranked tag.
    no_downgrade: HashMap<String, tagwarden_policy::Policy>,
    /// Setter → the value this automation wrote lately (flap guard).
    contested: HashMap<String, String>,
}

impl Setters {
    /// The setters of an automation in `namespace`: its policies that the
    /// selector (if any) matches. Others' markers are left alone.
    pub fn new<'a>(
        namespace: &str,
        selector: Option<&LabelSelector>,
        policies: impl IntoIterator<Item = &'a PolicyImage>,
    ) -> Setters {
        let mut s = Setters {
            namespace: namespace.to_string(),
            ..Setters::default()
        };
        for p in policies {
            if p.namespace != namespace {
                continue;
            }
            if selector.is_some_and(|sel| !sel.matches(&p.labels)) {
                s.unselected.insert(p.name.clone());
                continue;
            }
            s.known.insert(p.name.clone());
            if let Some(spec) = &p.no_downgrade
                && let Ok(policy) = tagwarden_policy::Policy::new(spec)
            {
                s.hold_downgrades(&p.name, policy);
            }
            let l = &p.latest;
            let mut set = |field, value: String| {
                s.values
                    .insert(setter_string(&p.namespace, &p.name, field), value);
            };
            set(Field::Image, l.to_string());
            set(Field::Tag, l.tag.clone());
            set(Field::Name, l.name.clone());
            if let Some(d) = &l.digest {
                set(Field::Digest, d.clone());
            }
        }
        s
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Markers of policy `name` are not moved to a tag that ranks lower
    /// under `policy` than the one they hold, unless that one is no longer
    /// admitted by the policy (a narrowed range: a deliberate revert).
    pub fn hold_downgrades(&mut self, name: &str, policy: tagwarden_policy::Policy) {
        self.no_downgrade.insert(name.to_string(), policy);
    }

    /// Markers this automation set lately to these values: if someone
    /// changed one since, it is not set back (that would be a fight).
    pub fn hold_flaps(&mut self, written: HashMap<String, String>) {
        self.contested = written;
    }

    /// Whether moving `setter` from `old` to `new` is a held downgrade.
    fn holds(&self, setter: &str, old: &str, new: &str) -> bool {
        let Some(s) = Setter::parse(setter) else {
            return false;
        };
        let Some(policy) = self.no_downgrade.get(s.name) else {
            return false;
        };
        // The tag of `IMAGE:TAG[@DIGEST]`, or the value of a `:tag` marker.
        let tag = |v: &str| -> Option<String> {
            match s.field {
                Field::Tag => Some(v.to_string()),
                Field::Image => {
                    let v = v.split('@').next().unwrap_or(v);
                    let (_, t) = v.rsplit_once(':')?;
                    (!t.contains('/')).then(|| t.to_string())
                }
                Field::Name | Field::Digest => None,
            }
        };
        let (Some(old), Some(new)) = (tag(old), tag(new)) else {
            return false;
        };
        policy.admits(&old) && policy.compare(&new, &old) == Some(std::cmp::Ordering::Less)
    }

    /// The value for a marker's setter string, or why there is none.
    pub fn lookup(&self, setter: &str) -> Result<&str, IgnoreReason> {
        if let Some(v) = self.values.get(setter) {
            return Ok(v);
        }
        let s = Setter::parse(setter).ok_or(IgnoreReason::NotASetter)?;
        Err(if s.namespace != self.namespace {
            IgnoreReason::OtherNamespace
        } else if self.unselected.contains(s.name) {
            IgnoreReason::NotSelected
        } else if s.field == Field::Digest && self.known.contains(s.name) {
            IgnoreReason::NoDigest
        } else {
            IgnoreReason::UnknownPolicy
        })
    }
}

/// The outcome of [`update_text`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextUpdate {
    /// The new text, `None` when nothing changed.
    pub text: Option<String>,
    pub objects: Vec<ObjectChanges>,
    pub ignored: Vec<IgnoredMarker>,
    /// Changes held back: why, line, setter, old value, new value.
    pub held: Vec<(Hold, usize, String, String, String)>,
}

/// Sets every marked value of `text` that `setters` knows, replacing only
/// those scalars' bytes. Text without `"$imagepolicy"` is not parsed.
pub fn update_text(text: &str, setters: &Setters) -> Result<TextUpdate, TextError> {
    rewrite(text, setters, scalar::render)
}

/// How a new value is written: [`scalar::render`], but for tests that need
/// a writer that gets it wrong.
pub(crate) type Render = fn(&str, Style, bool) -> String;

pub(crate) fn rewrite(
    text: &str,
    setters: &Setters,
    render: Render,
) -> Result<TextUpdate, TextError> {
    let mut out = TextUpdate::default();
    if memchr::memmem::find(text.as_bytes(), PREFILTER).is_none() {
        return Ok(out);
    }
    let (scan, before) = locate::scan(text)?;
    let mut edits: Vec<Edit<'_>> = Vec::new();
    for m in &scan.markers {
        let new = match setters.lookup(&m.setter) {
            Ok(v) => v,
            Err(reason) => {
                out.ignored.push(IgnoredMarker {
                    line: m.line,
                    setter: Some(m.setter.clone()),
                    reason,
                });
                continue;
            }
        };
        if new == m.value {
            continue;
        }
        let hold = if setters.contested.get(&m.setter).map(String::as_str) == Some(new) {
            Some(Hold::Flap)
        } else if setters.holds(&m.setter, &m.value, new) {
            Some(Hold::Downgrade)
        } else {
            None
        };
        if let Some(hold) = hold {
            out.ignored.push(IgnoredMarker {
                line: m.line,
                setter: Some(m.setter.clone()),
                reason: IgnoreReason::Held,
            });
            out.held.push((
                hold,
                m.line,
                m.setter.clone(),
                m.value.clone(),
                new.to_string(),
            ));
            continue;
        }
        let mut rendered = render(new, m.style, m.flow);
        // libyaml-style scanners refuse `key:<TAB>` before a plain scalar that
        // starts with a letter, digit, `_` or `-`: quote rather than break it.
        if text[..m.range.start].ends_with('\t')
            && rendered.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            rendered = render(new, Style::DoubleQuoted, m.flow);
        }
        edits.push(Edit {
            range: m.range.clone(),
            rendered,
            value: new,
            event: m.event,
            flow: m.flow,
            line: m.line,
        });
        let id = scan.documents.get(m.document).cloned().unwrap_or_default();
        let change = Change {
            old_value: m.value.clone(),
            new_value: new.to_string(),
            setter: m.setter.clone(),
        };
        match out.objects.iter_mut().find(|o| o.id == id) {
            Some(o) => o.changes.push(change),
            None => out.objects.push(ObjectChanges {
                id,
                changes: vec![change],
            }),
        }
    }
    out.ignored
        .extend(scan.unattached.iter().map(|&line| IgnoredMarker {
            line,
            setter: None,
            reason: IgnoreReason::Unattached,
        }));
    if edits.is_empty() {
        return Ok(out);
    }
    let mut new_text = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for e in &edits {
        new_text.push_str(&text[at..e.range.start]);
        new_text.push_str(&e.rendered);
        at = e.range.end;
    }
    new_text.push_str(&text[at..]);
    verify(&before, &new_text, &edits)?;
    out.text = Some(new_text);
    Ok(out)
}

/// One scalar's replacement.
struct Edit<'a> {
    range: Range<usize>,
    rendered: String,
    value: &'a str,
    /// The scalar's parser event in the old text.
    event: usize,
    flow: bool,
    /// 1-based.
    line: usize,
}

/// Reads every new scalar back as go-yaml (YAML 1.1) would, then re-parses
/// the new text (YAML 1.2): every event must equal the old one (`before`,
/// the old text's events) but for the edited scalars, which must now hold
/// their new values. Guards the byte-level edit against ever changing a
/// document's meaning for any reader.
fn verify(
    before: &[(yaml_rust2::parser::Event, yaml_rust2::scanner::Marker)],
    new: &str,
    edits: &[Edit<'_>],
) -> Result<(), TextError> {
    use yaml_rust2::parser::Event;
    for e in edits {
        readback::check(&e.rendered, e.flow, e.value).map_err(|reason| TextError::Unsafe {
            line: e.line,
            reason,
        })?;
    }
    let fail = |line: usize, what: &str| TextError::Unsafe {
        line,
        reason: format!("internal error: the rewrite {what}"),
    };
    let (_, new_body) = locate::strip_bom(new);
    let after = locate::events(new_body).map_err(|e| fail(e.line, "does not parse"))?;
    if before.len() != after.len() {
        return Err(fail(1, "changes the document structure"));
    }
    let edited: HashMap<usize, &str> = edits.iter().map(|e| (e.event, e.value)).collect();
    for (i, ((a, mark), (b, _))) in before.iter().zip(&after).enumerate() {
        let ok = match (a, b) {
            (Event::Scalar(_, _, anchor_a, tag_a), Event::Scalar(v, _, anchor_b, tag_b)) => {
                match edited.get(&i) {
                    Some(want) => v == want && anchor_a == anchor_b && tag_a == tag_b,
                    None => a == b,
                }
            }
            _ => a == b,
        };
        if !ok {
            return Err(fail(mark.line(), "changes other values"));
        }
    }
    Ok(())
}
