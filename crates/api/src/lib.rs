//! The manifests Flux users already have, read into one model.
//!
//! `image.toolkit.fluxcd.io` v1beta1, v1beta2 and v1 (`ImageRepository`,
//! `ImagePolicy`, `ImageUpdateAutomation`), `source.toolkit.fluxcd.io`
//! `GitRepository`, `notification.toolkit.fluxcd.io` `Receiver` and v1
//! `Secret`. Every field of v1 is read in the older versions too. Unknown
//! kinds are skipped; a bad document is an error that names the file, the
//! document and the field, and never stops the other documents.

pub mod duration;
pub mod export;
pub mod image;
pub mod install;
mod latest;
pub mod limits;
mod model;
pub mod names;
mod node;
pub mod redact;
mod schema;
mod selector;

pub mod status;
pub mod text;
pub mod time;
pub use latest::{LatestRef, LatestRefError};
pub use model::*;
pub use node::FieldError;
pub use selector::{LabelSelector, Requirement};

use node::Owned;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based position of the document in its file.
    pub document: usize,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: document {}", self.file.display(), self.document)
    }
}

/// A document or file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{origin}: invalid YAML: {message}")]
    Syntax { origin: Source, message: String },
    #[error("{origin}: {kind} '{name}': {error}")]
    Field {
        origin: Source,
        kind: String,
        name: String,
        error: FieldError,
    },
    #[error("{origin}: {message}")]
    Expansion { origin: Source, message: String },
    #[error(
        "{second}: duplicate {kind} '{namespace}/{name}', also defined in {first}; neither is loaded"
    )]
    Duplicate {
        kind: String,
        namespace: String,
        name: String,
        first: Source,
        second: Source,
    },
    /// A warning turned into an error by strict loading.
    #[error("{0}")]
    Strict(LoadWarning),
}

/// A field tagwarden does not know, most likely a typo: the object loads,
/// but the field has no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    pub origin: Source,
    pub kind: String,
    pub name: String,
    /// Dotted path of the unknown field (`spec.suspnd`).
    pub field: String,
    /// The closest known field, when one is close.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} '{}': {}: unknown field",
            self.origin, self.kind, self.name, self.field
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, ", did you mean {s}?")?;
        }
        Ok(())
    }
}

/// Everything read from a set of files: objects and per-document errors.
#[derive(Debug, Default)]
pub struct Manifests {
    pub objects: Vec<Object>,
    pub errors: Vec<LoadError>,
    /// Unknown fields; [`Manifests::strict`] makes them errors.
    pub warnings: Vec<LoadWarning>,
    /// Labels of the namespaces declared by `Namespace` documents, for
    /// `accessFrom`; see [`Manifests::namespace_labels`].
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// How documents without a namespace are placed.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Namespace of objects that name none; `flux` defaults to `flux-system`.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "flux-system".to_string(),
        }
    }
}

impl Manifests {
    /// Reads files and folders (recursively: `*.yaml`, `*.yml`), in a stable order.
    pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Manifests {
        let mut out = Manifests::default();
        for path in paths {
            let mut files = Vec::new();
            if let Err(e) = collect_files(path, &mut files) {
                out.errors.push(LoadError::Read {
                    path: path.clone(),
                    message: e.to_string(),
                });
            }
            for file in files {
                match read_text(&file) {
                    Ok(text) => out.add_str(&text, &file, opts),
                    Err(message) => out.errors.push(LoadError::Read {
                        path: file,
                        message,
                    }),
                }
            }
        }
        out.refuse_duplicates();
        out
    }

    /// Reads every document of one YAML text.
    pub fn load_str(text: &str, file: &Path, opts: &LoadOptions) -> Manifests {
        let mut out = Manifests::default();
        if text.len() as u64 > limits::MAX_FILE_BYTES {
            out.errors.push(LoadError::Read {
                path: file.to_path_buf(),
                message: too_large(text.len() as u64),
            });
            return out;
        }
        out.add_str(text, file, opts);
        out.refuse_duplicates();
        out
    }

    /// Makes every unknown-field warning an error that refuses its object
    /// (`--strict`).
    pub fn strict(mut self) -> Manifests {
        let warnings = std::mem::take(&mut self.warnings);
        let refused: Vec<(PathBuf, usize)> = warnings
            .iter()
            .map(|w| (w.origin.file.clone(), w.origin.document))
            .collect();
        self.objects.retain(|o| {
            let s = &o.meta().source;
            !refused
                .iter()
                .any(|(f, d)| f == &s.file && *d == s.document)
        });
        self.errors
            .extend(warnings.into_iter().map(LoadError::Strict));
        self
    }

    /// The labels a namespace carries: those of its `Namespace` document,
    /// plus `kubernetes.io/metadata.name`, which Kubernetes sets on every
    /// namespace. A namespace with no document has only that one.
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self.namespaces.get(namespace).cloned().unwrap_or_default();
        labels.insert(
            "kubernetes.io/metadata.name".to_string(),
            namespace.to_string(),
        );
        labels
    }

    fn add_str(&mut self, text: &str, file: &Path, opts: &LoadOptions) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let source = |document| Source {
            file: file.to_path_buf(),
            document,
        };
        if let Ok(l) = limits::load(text)
            && l.complete
        {
            self.add_loaded(l, 0, &source, opts);
            return;
        }
        // One broken document must not hide the others: read them one by one.
        // Chunks of only comments are no document and take no number.
        let mut index = 0;
        for chunk in split_documents(text) {
            let l = match limits::load(chunk) {
                Ok(l) if l.complete => l,
                // The loader stopped on an error of its own; a bomb in the
                // chunk is the one to report, as building it to name the
                // error would expand it.
                Ok(l) if !l.refused.is_empty() => {
                    let (n, message) = l.refused[0].clone();
                    index += n;
                    self.errors.push(LoadError::Expansion {
                        origin: source(index),
                        message,
                    });
                    continue;
                }
                Ok(_) => {
                    let message = match YamlLoader::load_from_str(chunk) {
                        Err(e) => e.to_string(),
                        // Not reached: the same parser stopped before.
                        Ok(_) => "the YAML loader stopped early".to_string(),
                    };
                    index += 1;
                    self.errors.push(LoadError::Syntax {
                        origin: source(index),
                        message,
                    });
                    continue;
                }
                Err(e) => {
                    index += 1;
                    self.errors.push(LoadError::Syntax {
                        origin: source(index),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            index += self.add_loaded(l, index, &source, opts);
        }
    }

    /// Adds the documents of one parse, numbered after `before`; those over
    /// the alias limits are errors. Returns how many documents there were.
    fn add_loaded(
        &mut self,
        l: limits::Loaded,
        before: usize,
        source: &dyn Fn(usize) -> Source,
        opts: &LoadOptions,
    ) -> usize {
        for (i, doc) in l.docs().iter().enumerate() {
            let n = before + i + 1;
            match l.refused.iter().find(|(d, _)| *d == i + 1) {
                Some((_, message)) => self.errors.push(LoadError::Expansion {
                    origin: source(n),
                    message: message.clone(),
                }),
                None => self.add_doc(doc, source(n), opts),
            }
        }
        l.docs().len()
    }

    /// Two documents for one object would be reconciled into one state
    /// key, each overwriting the other; neither is trusted.
    fn refuse_duplicates(&mut self) {
        let mut seen: BTreeMap<ObjectId, usize> = BTreeMap::new();
        let mut refused = vec![false; self.objects.len()];
        for (i, o) in self.objects.iter().enumerate() {
            let m = o.meta();
            let key = o.id();
            match seen.get(&key) {
                Some(&first) => {
                    refused[first] = true;
                    refused[i] = true;
                    self.errors.push(LoadError::Duplicate {
                        kind: o.kind().to_string(),
                        namespace: m.namespace.clone(),
                        name: m.name.clone(),
                        first: self.objects[first].meta().source.clone(),
                        second: m.source.clone(),
                    });
                }
                None => {
                    seen.insert(key, i);
                }
            }
        }
        let mut i = 0;
        self.objects.retain(|_| {
            i += 1;
            !refused[i - 1]
        });
    }

    fn add_doc(&mut self, doc: &Yaml, source: Source, opts: &LoadOptions) {
        if matches!(doc, Yaml::Null) {
            return;
        }
        let root = Owned::root(doc);
        let n = root.node();
        let kind = match n.str("kind") {
            Ok(Some(k)) => k,
            // Not a Kubernetes object we could know.
            _ => return,
        };
        let api_version = n.str("apiVersion").ok().flatten().unwrap_or_default();
        let name = n
            .map("metadata")
            .ok()
            .flatten()
            .and_then(|m| m.node().str("name").ok().flatten())
            .unwrap_or_default();
        if kind == "Namespace" && api_version == "v1" {
            if let Ok(Some(m)) = n.map("metadata")
                && let Ok(labels) = m.node().string_map("labels")
            {
                self.namespaces.entry(name).or_default().extend(labels);
            }
            return;
        }
        let read = model::read_object(&kind, &api_version, n, source.clone(), opts);
        if !matches!(read, Ok(None)) {
            for (field, suggestion) in schema::unknown_fields(&kind, &api_version, doc) {
                self.warnings.push(LoadWarning {
                    origin: source.clone(),
                    kind: kind.clone(),
                    name: name.clone(),
                    field,
                    suggestion,
                });
            }
        }
        match read {
            Ok(Some(obj)) => self.objects.push(obj),
            Ok(None) => {}
            Err(error) => self.errors.push(LoadError::Field {
                origin: source,
                kind,
                name,
                error,
            }),
        }
    }
}

fn too_large(len: u64) -> String {
    format!(
        "file is {:.1} MiB, larger than the {} MiB a manifest file may be",
        len as f64 / (1024.0 * 1024.0),
        limits::MAX_FILE_BYTES / (1024 * 1024)
    )
}

/// Reads one manifest file: bounded in size, and UTF-8 with the place of
/// the first invalid byte when it is not.
fn read_text(file: &Path) -> Result<String, String> {
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(limits::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limits::MAX_FILE_BYTES {
        let len = std::fs::metadata(file).map_or(bytes.len() as u64, |m| m.len());
        return Err(too_large(len));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let (line, column) = limits::utf8_position(e.as_bytes(), at);
        format!(
            "invalid UTF-8 at line {line}, byte column {column} (byte 0x{:02x}): manifests must be UTF-8",
            e.as_bytes()[at]
        )
    })
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Splits a YAML stream at `---` lines, for reading documents one by one
/// after the stream as a whole failed to parse.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches(['\n', '\r']);
        let is_marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t");
        if is_marker && offset > 0 {
            docs.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}
