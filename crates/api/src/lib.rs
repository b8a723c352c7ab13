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
mod model;
mod node;
pub mod redact;
mod selector;

pub mod status;
pub mod text;
pub use model::*;
pub use node::FieldError;
pub use selector::{LabelSelector, Requirement};

use node::Owned;
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
}

/// Everything read from a set of files: objects and per-document errors.
#[derive(Debug, Default)]
pub struct Manifests {
    pub objects: Vec<Object>,
    pub errors: Vec<LoadError>,
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
                match std::fs::read_to_string(&file) {
                    Ok(text) => out.add_str(&text, &file, opts),
                    Err(e) => out.errors.push(LoadError::Read {
                        path: file,
                        message: e.to_string(),
                    }),
                }
            }
        }
        out
    }

    /// Reads every document of one YAML text.
    pub fn load_str(text: &str, file: &Path, opts: &LoadOptions) -> Manifests {
        let mut out = Manifests::default();
        out.add_str(text, file, opts);
        out
    }

    fn add_str(&mut self, text: &str, file: &Path, opts: &LoadOptions) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let source = |document| Source {
            file: file.to_path_buf(),
            document,
        };
        match YamlLoader::load_from_str(text) {
            Ok(docs) => {
                for (i, doc) in docs.iter().enumerate() {
                    self.add_doc(doc, source(i + 1), opts);
                }
            }
            // One broken document must not hide the others: read them one by one.
            Err(_) => {
                // Chunks of only comments are no document and take no number.
                let mut index = 0;
                for chunk in split_documents(text) {
                    match YamlLoader::load_from_str(chunk) {
                        Ok(docs) => {
                            for doc in &docs {
                                index += 1;
                                self.add_doc(doc, source(index), opts);
                            }
                        }
                        Err(e) => {
                            index += 1;
                            self.errors.push(LoadError::Syntax {
                                origin: source(index),
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
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
        match model::read_object(&kind, &api_version, n, source.clone(), opts) {
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
