//! What a reconcile returns, and the one error policy every driver applies.

use std::time::Duration;
use tagwarden_api::status::{Condition, ConditionStatus, Status, Verdict, conditions};
use tagwarden_api::{LatestRef, ObjectId};

/// How one reconcile ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub id: ObjectId,
    /// The status to write, with Flux's v1 fields.
    pub status: Status,
    /// What moved that others depend on; `None` when nothing did.
    pub change: Option<Change>,
    /// On success: when to run again (the interval); `None`: only when
    /// something changes. Failures go through [`Backoff`].
    pub requeue_after: Option<Duration>,
    /// A dry run's plan: what would be pushed and proposed.
    pub plan: Option<String>,
    /// What a controller emits as Kubernetes Events (and the daemon logs).
    pub events: Vec<Event>,
    /// Why it did not succeed.
    pub failure: Option<Failure>,
    /// `spec.suspend` (or `tagwarden suspend`): nothing was done.
    pub suspended: bool,
}

/// What changed, typed: drivers never read messages to find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A scan found a different tag set.
    Tags { revision: String, tag_count: usize },
    /// A policy selected another image.
    Latest {
        previous: Option<LatestRef>,
        latest: LatestRef,
    },
    /// An automation pushed a commit.
    Pushed(PushResult),
    /// An automation opened, updated or closed a pull request.
    PullRequest(PullRequestResult),
}

/// What happened to an automation's pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Updated,
    /// Closed as superseded: the base branch holds the new values.
    Closed,
}

impl PullRequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PullRequestAction::Opened => "opened",
            PullRequestAction::Updated => "updated",
            PullRequestAction::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestResult {
    pub action: PullRequestAction,
    pub number: u64,
    pub url: String,
    /// The head branch commit pushed for it, when one was.
    pub push: Option<PushResult>,
}

/// A commit an automation pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// Full hex id.
    pub commit: String,
    pub branch: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A Kubernetes Event as Flux's controllers emit them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    /// Flux's reason (`Succeeded`, `AuthenticationFailed`, …).
    pub reason: String,
    pub message: String,
}

/// Why a reconcile did not succeed, with Flux's reason; `stalled` when only
/// a change to the object can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
    pub stalled: bool,
    /// The peer asked us to wait this long (a forge's rate limit).
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(reason: &'static str, message: impl Into<String>, stalled: bool) -> Failure {
        Failure {
            reason,
            message: message.into(),
            stalled,
            retry_after: None,
        }
    }

    /// The conditions after this failure.
    pub(crate) fn conditions(
        &self,
        previous: &[Condition],
        generation: i64,
        now: std::time::SystemTime,
    ) -> Vec<Condition> {
        conditions(
            previous,
            Verdict {
                ready: false,
                stalled: self.stalled,
                reason: self.reason,
                message: &self.message,
            },
            generation,
            now,
        )
    }
}

/// `Ready=True` with `reason` and `message`.
pub(crate) fn success_conditions(
    previous: &[Condition],
    message: &str,
    generation: i64,
    now: std::time::SystemTime,
) -> Vec<Condition> {
    conditions(
        previous,
        Verdict {
            ready: true,
            stalled: false,
            reason: "Succeeded",
            message,
        },
        generation,
        now,
    )
}

/// The events of a reconcile that went from `previous` to `now`: one when
/// the Ready condition's status or message moved, none when it repeats
/// itself (no event storm from a retried failure or a quiet interval).
pub(crate) fn events(previous: &[Condition], now: &[Condition]) -> Vec<Event> {
    let (before, before_msg) = tagwarden_api::status::ready(previous);
    let Some(ready) = tagwarden_api::status::find(now, tagwarden_api::status::READY) else {
        return Vec::new();
    };
    if before == ready.status && before_msg == ready.message {
        return Vec::new();
    }
    vec![Event {
        kind: if ready.status == ConditionStatus::True {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: ready.reason.clone(),
        message: ready.message.clone(),
    }]
}

impl Outcome {
    pub(crate) fn suspended(id: ObjectId, status: Status) -> Outcome {
        Outcome {
            id,
            status,
            change: None,
            requeue_after: None,
            plan: None,
            events: Vec::new(),
            failure: None,
            suspended: true,
        }
    }

    /// True when dependents must run now.
    pub fn changed(&self) -> bool {
        self.change.is_some()
    }

    /// The push, when one happened.
    pub fn pushed(&self) -> Option<&PushResult> {
        match &self.change {
            Some(Change::Pushed(p)) => Some(p),
            Some(Change::PullRequest(PullRequestResult { push: Some(p), .. })) => Some(p),
            _ => None,
        }
    }

    /// Ready as `flux get` shows it: status and message.
    pub fn ready(&self) -> (ConditionStatus, String) {
        if self.suspended {
            return (
                ConditionStatus::Unknown,
                "reconciliation is suspended".into(),
            );
        }
        let (s, m) = self.status.ready();
        (s, m.to_string())
    }

    /// When to run again after `failures` failures in a row (this one
    /// included): the error policy every driver shares.
    pub fn next_run(&self, failures: u32, backoff: &Backoff) -> Option<Duration> {
        if self.suspended {
            return None;
        }
        match &self.failure {
            None => self.requeue_after,
            Some(f) if f.stalled => None,
            Some(f) => Some(
                f.retry_after
                    .map_or(backoff.delay(failures), |w| w.max(backoff.delay(failures))),
            ),
        }
    }
}

/// Exponential backoff for transient failures, between Flux's
/// `--min-retry-delay` and `--max-retry-delay` defaults (750 ms, 15 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(750),
            max: Duration::from_secs(15 * 60),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row: `min`, doubled each
    /// time, never above `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.min
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
            .max(self.min.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_to_the_maximum() {
        let b = Backoff::default();
        let ms: Vec<u128> = (1..=12).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(
            ms,
            [
                750, 1_500, 3_000, 6_000, 12_000, 24_000, 48_000, 96_000, 192_000, 384_000,
                768_000, 900_000
            ]
        );
        assert_eq!(b.delay(0), Duration::from_millis(750));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(900));
        let odd = Backoff {
            min: Duration::from_secs(10),
            max: Duration::from_secs(1),
        };
        assert_eq!(odd.delay(5), Duration::from_secs(1), "max wins");
    }

    fn outcome(failure: Option<Failure>) -> Outcome {
        Outcome {
            id: ObjectId::new(tagwarden_api::Kind::ImageRepository, "ns", "r"),
            status: Status::ImageRepository(Default::default()),
            change: None,
            requeue_after: Some(Duration::from_secs(60)),
            plan: None,
            events: Vec::new(),
            failure,
            suspended: false,
        }
    }

    #[test]
    fn the_error_policy_retries_transient_failures_and_waits_on_stalled_ones() {
        let b = Backoff::default();
        assert_eq!(outcome(None).next_run(0, &b), Some(Duration::from_secs(60)));
        let transient = outcome(Some(Failure::new("ReconciliationFailed", "down", false)));
        assert_eq!(transient.next_run(1, &b), Some(Duration::from_millis(750)));
        assert_eq!(transient.next_run(3, &b), Some(Duration::from_secs(3)));
        let stalled = outcome(Some(Failure::new("InvalidPolicy", "bad", true)));
        assert_eq!(stalled.next_run(1, &b), None, "waits for a change");
        let mut suspended = outcome(None);
        suspended.suspended = true;
        assert_eq!(suspended.next_run(0, &b), None);
        assert_eq!(
            suspended.ready(),
            (
                ConditionStatus::Unknown,
                "reconciliation is suspended".into()
            )
        );
    }

    #[test]
    fn events_only_when_ready_moves() {
        let now = std::time::SystemTime::UNIX_EPOCH;
        let ok = success_conditions(&[], "found 3 tags", 1, now);
        let first = events(&[], &ok);
        assert_eq!(
            first,
            [Event {
                kind: EventType::Normal,
                reason: "Succeeded".into(),
                message: "found 3 tags".into()
            }]
        );
        assert!(events(&ok, &ok).is_empty(), "same message: no event");
        let down = Failure::new("ReconciliationFailed", "registry down", false);
        let failed = down.conditions(&ok, 1, now);
        assert_eq!(events(&ok, &failed)[0].kind, EventType::Warning);
        assert!(events(&failed, &down.conditions(&failed, 1, now)).is_empty());
    }
}
