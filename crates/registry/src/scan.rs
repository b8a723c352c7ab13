//! What a scan reports, as Flux's ImageRepository status does.

use crate::{RegistryError, TagList};
use regex::Regex;
use sha2::{Digest, Sha256};
use std::time::SystemTime;
use tagwarden_api::status::{Condition, outcome_conditions};

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

/// What an ImageRepository's status holds between scans.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RepositoryStatus {
    pub canonical_image_name: Option<String>,
    /// The last successful scan and when it ran.
    pub last_scan: Option<(ScanResult, SystemTime)>,
    pub conditions: Vec<Condition>,
}

/// The status after a scan attempt. A failed scan keeps the previous result:
/// policies go on selecting from the last good tag list, and the failure
/// shows in the conditions only.
pub fn record_scan(
    previous: Option<&RepositoryStatus>,
    outcome: Result<ScanResult, &RegistryError>,
    now: SystemTime,
) -> RepositoryStatus {
    let prev_conditions = previous.map_or(&[][..], |p| &p.conditions[..]);
    match outcome {
        Ok(result) => RepositoryStatus {
            canonical_image_name: Some(result.canonical_image_name.clone()),
            conditions: outcome_conditions(
                prev_conditions,
                true,
                false,
                "Succeeded",
                &result.message(),
                now,
            ),
            last_scan: Some((result, now)),
        },
        Err(e) => RepositoryStatus {
            canonical_image_name: previous.and_then(|p| p.canonical_image_name.clone()),
            last_scan: previous.and_then(|p| p.last_scan.clone()),
            conditions: outcome_conditions(
                prev_conditions,
                false,
                e.is_stalled(),
                e.reason(),
                &e.to_string(),
                now,
            ),
        },
    }
}
