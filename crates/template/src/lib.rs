//! Commit messages from `spec.git.commit.messageTemplate`, rendered as Flux's
//! image-automation-controller renders them: a Go `text/template` named
//! `commit message`, hermetic sprig functions, and data shaped like Flux's
//! `TemplateData`:
//!
//! - `.AutomationObject` — `types.NamespacedName`, prints `namespace/name`;
//! - `.Changed` — `update.Result`: `.FileChanges` (file → object → changes),
//!   `.Objects` (object → changes), `.Changes` (all distinct changes); an
//!   object has `.Kind`, `.Name`, `.Namespace`, `.APIVersion` and prints like
//!   Go's `%v` of Flux's struct, `{{{apps/v1 Deployment} {name namespace}}}`;
//!   a change has `.OldValue`, `.NewValue`, `.Setter`;
//! - `.Values` — `messageTemplateValues`;
//! - `.Updated` — the legacy result Flux removed (`.Files`, `.Objects`,
//!   `.Images`); an image prints as `repo:tag` and has `.Repository`,
//!   `.Registry`, `.Name`, `.Identifier`, `.Policy` and (tagwarden only) `.Tag`.
//!
//! gotmpl parses the template; execution is ours because gotmpl's values
//! cannot be Go structs, Stringers or struct-keyed maps, all of which Flux's
//! data is. Known differences from Go, all on inputs Flux makes random or
//! that fail in Flux anyway: lists Flux builds from Go maps (`.Changed.Changes`,
//! `.Updated.Images`) follow file then object order instead of Go's random
//! one; an object changed in two files keeps both files' changes in
//! `.Changed.Objects`; `.Updated` renders instead of failing; sprig's `keys`
//! accepts any string-keyed map and sorts; `%#v` prints as `%v`; `trunc`,
//! `abbrev` and `substr` do not split a UTF-8 character. A template from a
//! Git repository must not take the controller down, so nested
//! `{{template}}` calls stop at depth 200, a rendering at 10 million range
//! iterations and 16 MiB of output, and `repeat`/`indent`/`until` at 16 Mi.

mod data;
mod exec;
mod funcs;
mod gofmt;
mod program;
mod value;

use std::collections::BTreeMap;
use std::fmt;

/// Flux's message when `messageTemplate` is unset or empty.
pub const DEFAULT_MESSAGE: &str = "Update from image update automation";

/// A namespaced Kubernetes name; prints as `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The object a change was made in; all empty for a file that is not a
/// Kubernetes object, some empty for one without a name (a kustomization.yaml).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One value a setter changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the update path, as Flux reports it.
    pub file: String,
    pub object: ObjectId,
    pub old_value: String,
    pub new_value: String,
    /// The marker's policy reference: `NAMESPACE:NAME` or `NAMESPACE:NAME:FIELD`.
    pub setter: String,
}

/// The image a policy selected, for the legacy `.Updated.Images`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatedImage {
    /// The image repository, e.g. `ghcr.io/stefanprodan/podinfo`.
    pub image: String,
    pub tag: String,
    pub digest: Option<String>,
    /// The ImagePolicy; setters naming it pick this image.
    pub policy: NamespacedName,
}

/// Everything a commit message template can see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateData {
    /// The ImageUpdateAutomation.
    pub automation: NamespacedName,
    pub changes: Vec<FileChange>,
    /// `spec.git.commit.messageTemplateValues`.
    pub values: BTreeMap<String, String>,
    pub images: Vec<UpdatedImage>,
}

/// Why a template gave no message. The text is what Flux puts in the
/// automation's Stalled condition: its own prefix, then Go's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// e.g. `template: commit message:3: function "foo" not defined`.
    #[error("unable to create commit message template from spec: {0}")]
    Parse(String),
    /// e.g. `template: commit message:1:3: executing "commit message" at
    /// <.Nope>: can't evaluate field Nope in type source.TemplateData`.
    #[error("failed to run template from spec: {0}")]
    Execute(String),
}

impl TemplateError {
    /// Go's own error text, without Flux's prefix.
    pub fn go_error(&self) -> &str {
        match self {
            TemplateError::Parse(e) | TemplateError::Execute(e) => e,
        }
    }
}

/// Renders the commit message; `None` or an empty template gives
/// [`DEFAULT_MESSAGE`].
pub fn render(template: Option<&str>, data: &TemplateData) -> Result<String, TemplateError> {
    let src = match template {
        Some(t) if !t.is_empty() => t,
        _ => DEFAULT_MESSAGE,
    };
    let prog = program::compile(src).map_err(TemplateError::Parse)?;
    exec::execute(&prog, &data::to_value(data)).map_err(TemplateError::Execute)
}

/// Parses without rendering, to refuse a bad template when the manifest is
/// read rather than at the first commit.
pub fn check(template: &str) -> Result<(), TemplateError> {
    program::compile(template)
        .map(|_| ())
        .map_err(TemplateError::Parse)
}
