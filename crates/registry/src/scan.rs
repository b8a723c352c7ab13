//! What a scan reports, as Flux's ImageRepository status does.

use crate::TagList;
use regex::Regex;
use sha2::{Digest, Sha256};

/// The outcome of one scan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanResult {
    pub canonical_image_name: String,
    /// After the exclusion list, sorted bytewise descending.
    pub tags: Vec<String>,
    pub tag_count: usize,
    /// The first ten of `tags`.
    pub latest_tags: Vec<String>,
    /// sha256 of the sorted list: changes exactly when the tag set changes.
    pub revision: String,
    /// Tags the registry listed outside the OCI tag grammar, dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invalid_tag_count: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ScanResult {
    /// Flux's Ready message for a scan, and what was skipped when anything was.
    pub fn message(&self) -> String {
        let found = format!("successful scan: found {} tags", self.tag_count);
        match self.invalid_tag_count {
            0 => found,
            1 => format!("{found} (1 invalid tag skipped)"),
            n => format!("{found} ({n} invalid tags skipped)"),
        }
    }
}

/// Applies the exclusion list (any match drops the tag) and orders the rest.
pub fn scan_result(canonical_image_name: &str, list: TagList, exclusions: &[Regex]) -> ScanResult {
    let mut tags: Vec<String> = list
        .tags
        .into_iter()
        .filter(|t| !exclusions.iter().any(|r| r.is_match(t)))
        .collect();
    tags.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    tags.dedup();
    let mut h = Sha256::new();
    for t in &tags {
        h.update(t.as_bytes());
        h.update(b"\n");
    }
    ScanResult {
        canonical_image_name: canonical_image_name.to_string(),
        tag_count: tags.len(),
        latest_tags: tags.iter().take(10).cloned().collect(),
        revision: format!("sha256:{:x}", h.finalize()),
        tags,
        invalid_tag_count: list.invalid,
    }
}
