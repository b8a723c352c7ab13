//! Status as Flux v1 writes it: the same JSON field names, conditions
//! (`Ready`, `Reconciling`, `Stalled`, kstatus semantics) and RFC 3339
//! times, so `kubectl`, `flux get` and dashboards read tagwarden's status as
//! they read Flux's.

use crate::LatestRef;
use crate::time::Time;
use std::collections::BTreeMap;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        })
    }
}

pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";
pub const RECONCILING: &str = "Reconciling";
/// Flux's reason on `Reconciling` while a failure is retried.
pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";

/// One `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Stalled` or `Reconciling`.
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    pub last_transition_time: Time,
    pub reason: String,
    pub message: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// How one reconcile ended, for the conditions.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'a> {
    pub ready: bool,
    /// Only a change to the object can help (`Stalled=True`); otherwise a
    /// failure is retried (`Reconciling=True`, `ProgressingWithRetry`).
    pub stalled: bool,
    pub reason: &'a str,
    pub message: &'a str,
}

/// The conditions after one reconcile: `Ready` always; `Stalled` for a
/// failure only a change can fix, `Reconciling` for one being retried.
pub fn conditions(
    previous: &[Condition],
    v: Verdict<'_>,
    generation: i64,
    now: SystemTime,
) -> Vec<Condition> {
    let make = |kind: &str, status: ConditionStatus, reason: &str| {
        // The transition time moves only when the status flips.
        let last_transition_time = previous
            .iter()
            .find(|c| c.kind == kind && c.status == status)
            .map_or_else(|| Time::from_system(now), |c| c.last_transition_time);
        Condition {
            kind: kind.to_string(),
            status,
            observed_generation: generation,
            last_transition_time,
            reason: reason.to_string(),
            message: v.message.to_string(),
        }
    };
    let ready = if v.ready {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let mut out = vec![make(READY, ready, v.reason)];
    if !v.ready && v.stalled {
        out.push(make(STALLED, ConditionStatus::True, v.reason));
    } else if !v.ready {
        out.push(make(
            RECONCILING,
            ConditionStatus::True,
            PROGRESSING_WITH_RETRY,
        ));
    }
    out
}

/// The condition of `kind`, if present.
pub fn find<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.kind == kind)
}

/// The Ready condition as `(status, message)`; `Unknown` when absent.
pub fn ready(conditions: &[Condition]) -> (ConditionStatus, &str) {
    find(conditions, READY).map_or((ConditionStatus::Unknown, ""), |c| {
        (c.status, c.message.as_str())
    })
}

/// `status.lastScanResult` of an ImageRepository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// Changes exactly when the tag set does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    pub tag_count: usize,
    pub scan_time: Time,
    /// The first tags of the list, newest first by Flux's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_tags: Vec<String>,
}

/// `ImageRepository.status` (image.toolkit.fluxcd.io/v1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositoryStatus {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_image_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_result: Option<ScanResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_exclusion_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// `ImagePolicy.status` (image.toolkit.fluxcd.io/v1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyStatus {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ref: Option<LatestRef>,
    /// What `latestRef` was before it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_previous_ref: Option<LatestRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// `ImageUpdateAutomation.status` (image.toolkit.fluxcd.io/v1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateAutomationStatus {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When it last ran, whatever the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_automation_run_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<Time>,
    /// The policies applied in the last run, by name (they share the
    /// automation's namespace), and the image each resolved to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observed_policies: BTreeMap<String, LatestRef>,
    /// The checkout it last worked on, `<branch>@sha1:<commit>` as Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_source_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// The status of any reconciled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    ImageRepository(ImageRepositoryStatus),
    ImagePolicy(ImagePolicyStatus),
    ImageUpdateAutomation(ImageUpdateAutomationStatus),
}

impl Status {
    /// An empty status of `kind`; `None` for kinds without one.
    pub fn empty(kind: crate::Kind) -> Option<Status> {
        Some(match kind {
            crate::Kind::ImageRepository => Status::ImageRepository(Default::default()),
            crate::Kind::ImagePolicy => Status::ImagePolicy(Default::default()),
            crate::Kind::ImageUpdateAutomation => Status::ImageUpdateAutomation(Default::default()),
            _ => return None,
        })
    }

    pub fn kind(&self) -> crate::Kind {
        match self {
            Status::ImageRepository(_) => crate::Kind::ImageRepository,
            Status::ImagePolicy(_) => crate::Kind::ImagePolicy,
            Status::ImageUpdateAutomation(_) => crate::Kind::ImageUpdateAutomation,
        }
    }

    pub fn conditions(&self) -> &[Condition] {
        match self {
            Status::ImageRepository(s) => &s.conditions,
            Status::ImagePolicy(s) => &s.conditions,
            Status::ImageUpdateAutomation(s) => &s.conditions,
        }
    }

    pub fn observed_generation(&self) -> i64 {
        match self {
            Status::ImageRepository(s) => s.observed_generation,
            Status::ImagePolicy(s) => s.observed_generation,
            Status::ImageUpdateAutomation(s) => s.observed_generation,
        }
    }

    /// The Ready condition as `(status, message)`.
    pub fn ready(&self) -> (ConditionStatus, &str) {
        ready(self.conditions())
    }

    /// The status as the API server would hold it (`.status`).
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Status::ImageRepository(s) => serde_json::to_value(s),
            Status::ImagePolicy(s) => serde_json::to_value(s),
            Status::ImageUpdateAutomation(s) => serde_json::to_value(s),
        };
        // Plain structs of strings, numbers and maps always serialise.
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Reads `.status` of `kind` back, its lists no longer than they are
    /// (a controller keeps one per object: grown by doubling, a status's
    /// conditions and tags held ~40% spare).
    pub fn from_json(kind: crate::Kind, json: &[u8]) -> Result<Status, serde_json::Error> {
        Ok(match kind {
            crate::Kind::ImagePolicy => {
                let mut s: ImagePolicyStatus = serde_json::from_slice(json)?;
                s.conditions.shrink_to_fit();
                Status::ImagePolicy(s)
            }
            crate::Kind::ImageUpdateAutomation => {
                let mut s: ImageUpdateAutomationStatus = serde_json::from_slice(json)?;
                s.conditions.shrink_to_fit();
                Status::ImageUpdateAutomation(s)
            }
            _ => {
                let mut s: ImageRepositoryStatus = serde_json::from_slice(json)?;
                s.conditions.shrink_to_fit();
                s.observed_exclusion_list.shrink_to_fit();
                if let Some(scan) = &mut s.last_scan_result {
                    scan.latest_tags.shrink_to_fit();
                }
                Status::ImageRepository(s)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn statuses_use_flux_v1_field_names() {
        let cond = conditions(
            &[],
            Verdict {
                ready: true,
                stalled: false,
                reason: "Succeeded",
                message: "successful scan: found 3 tags",
            },
            2,
            at(1_796_172_075),
        );
        let repo = Status::ImageRepository(ImageRepositoryStatus {
            observed_generation: 2,
            conditions: cond,
            canonical_image_name: Some("ghcr.io/stefanprodan/podinfo".into()),
            last_scan_result: Some(ScanResult {
                revision: "sha256:ab".into(),
                tag_count: 3,
                scan_time: Time::from_system(at(1_796_172_075)),
                latest_tags: vec!["6.0.0".into(), "5.1.0".into(), "5.0.3".into()],
            }),
            observed_exclusion_list: vec![r"^.*\.sig$".into()],
            last_handled_reconcile_at: Some("2026-12-02T00:41:00Z".into()),
        });
        assert_eq!(
            repo.to_json(),
            serde_json::json!({
                "observedGeneration": 2,
                "conditions": [{
                    "type": "Ready", "status": "True", "observedGeneration": 2,
                    "lastTransitionTime": "2026-12-02T00:41:15Z",
                    "reason": "Succeeded", "message": "successful scan: found 3 tags"
                }],
                "canonicalImageName": "ghcr.io/stefanprodan/podinfo",
                "lastScanResult": {
                    "revision": "sha256:ab", "tagCount": 3,
                    "scanTime": "2026-12-02T00:41:15Z",
                    "latestTags": ["6.0.0", "5.1.0", "5.0.3"]
                },
                "observedExclusionList": ["^.*\\.sig$"],
                "lastHandledReconcileAt": "2026-12-02T00:41:00Z"
            })
        );
        let latest = LatestRef {
            name: "ghcr.io/stefanprodan/podinfo".into(),
            tag: "5.0.3".into(),
            digest: None,
        };
        let auto = Status::ImageUpdateAutomation(ImageUpdateAutomationStatus {
            last_automation_run_time: Some(Time::from_system(at(1_796_172_075))),
            last_push_commit: Some("0123abc".into()),
            last_push_time: Some(Time::from_system(at(1_796_172_075))),
            observed_policies: [("podinfo".to_string(), latest.clone())].into(),
            observed_source_revision: Some("main@sha1:0123abc".into()),
            ..Default::default()
        });
        assert_eq!(
            auto.to_json(),
            serde_json::json!({
                "lastAutomationRunTime": "2026-12-02T00:41:15Z",
                "lastPushCommit": "0123abc",
                "lastPushTime": "2026-12-02T00:41:15Z",
                "observedPolicies": {"podinfo": {"name": "ghcr.io/stefanprodan/podinfo", "tag": "5.0.3"}},
                "observedSourceRevision": "main@sha1:0123abc"
            })
        );
        let policy = Status::ImagePolicy(ImagePolicyStatus {
            latest_ref: Some(latest.clone()),
            observed_previous_ref: Some(LatestRef {
                tag: "5.0.2".into(),
                digest: Some("sha256:12".into()),
                ..latest
            }),
            ..Default::default()
        });
        let json = policy.to_json();
        assert_eq!(json["latestRef"]["tag"], "5.0.3");
        assert_eq!(json["observedPreviousRef"]["digest"], "sha256:12");
        for s in [repo, auto, policy] {
            let bytes = serde_json::to_vec(&s.to_json()).expect("json");
            assert_eq!(Status::from_json(s.kind(), &bytes).expect("back"), s);
        }
    }

    #[test]
    fn kstatus_conditions_for_retry_and_stall() {
        let retry = |previous: &[Condition], now| {
            conditions(
                previous,
                Verdict {
                    ready: false,
                    stalled: false,
                    reason: "ReconciliationFailed",
                    message: "registry down",
                },
                1,
                at(now),
            )
        };
        let first = retry(&[], 100);
        let kinds: Vec<_> = first
            .iter()
            .map(|c| (c.kind.as_str(), c.status, c.reason.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Ready", ConditionStatus::False, "ReconciliationFailed"),
                ("Reconciling", ConditionStatus::True, "ProgressingWithRetry"),
            ]
        );
        // Still failing later: the transition time stays.
        let again = retry(&first, 200);
        assert_eq!(again[0].last_transition_time, first[0].last_transition_time);
        let stalled = conditions(
            &again,
            Verdict {
                ready: false,
                stalled: true,
                reason: "InvalidPolicy",
                message: "bad range",
            },
            3,
            at(300),
        );
        assert_eq!(stalled[1].kind, "Stalled");
        assert_eq!(stalled[1].observed_generation, 3);
        assert!(find(&stalled, RECONCILING).is_none());
        let ok = conditions(
            &stalled,
            Verdict {
                ready: true,
                stalled: false,
                reason: "Succeeded",
                message: "fine",
            },
            3,
            at(400),
        );
        assert_eq!(ok.len(), 1, "{ok:?}");
        assert_eq!(ok[0].last_transition_time, Time::from_system(at(400)));
    }
}
