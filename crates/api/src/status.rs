//! Status conditions as Flux reports them (`Ready`, `Stalled`,
//! `Reconciling`), so `flux get`-style output and dashboards read the same.

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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Condition {
    /// `Ready`, `Stalled` or `Reconciling`.
    pub kind: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    pub last_transition: SystemTime,
}

/// The conditions after one reconcile: `Ready` always; `Stalled` only when
/// retrying cannot help until the object changes.
pub fn outcome_conditions(
    previous: &[Condition],
    ready: bool,
    stalled: bool,
    reason: &str,
    message: &str,
    now: SystemTime,
) -> Vec<Condition> {
    let make = |kind: &str, status: ConditionStatus| {
        // The transition time moves only when the status flips.
        let last_transition = previous
            .iter()
            .find(|c| c.kind == kind && c.status == status)
            .map_or(now, |c| c.last_transition);
        Condition {
            kind: kind.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition,
        }
    };
    let mut out = vec![make(
        "Ready",
        if ready {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
    )];
    if stalled {
        out.push(make("Stalled", ConditionStatus::True));
    }
    out
}

/// The condition of `kind`, if present.
pub fn find<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.kind == kind)
}
