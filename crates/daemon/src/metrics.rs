//! Prometheus metrics: what the daemon counts and their text exposition.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;
use tagwarden_api::ObjectId;

type Labels = Vec<(String, String)>;

/// What the daemon counts.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    durations: Family<Labels, Histogram>,
    ready: Family<Labels, Gauge>,
    tags: Family<Labels, Gauge>,
    pushes: Family<Labels, Counter>,
    /// Mirrors the registry client's process-wide counts at each scrape.
    registry_requests: Family<Labels, Counter>,
    cloud_logins: Family<Labels, Counter>,
    pull_requests: Family<Labels, Counter>,
    /// Flux's own name and labels, so its dashboards read tagwarden.
    gotk_durations: Family<Labels, Histogram>,
    /// One scrape at a time, so two never add the same requests twice.
    scrape: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let gotk_durations = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        root.register(
            "gotk_reconcile_duration_seconds",
            "Reconcile duration per object, as Flux's controllers report it",
            gotk_durations.clone(),
        );
        let registry = root.sub_registry_with_prefix("tagwarden");
        let reconciles = Family::<Labels, Counter>::default();
        let durations = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let ready = Family::<Labels, Gauge>::default();
        let tags = Family::<Labels, Gauge>::default();
        let pushes = Family::<Labels, Counter>::default();
        let registry_requests = Family::<Labels, Counter>::default();
        let cloud_logins = Family::<Labels, Counter>::default();
        let pull_requests = Family::<Labels, Counter>::default();
        registry.register(
            "pull_requests",
            "Pull/merge requests opened, updated and closed, per ImageUpdateAutomation",
            pull_requests.clone(),
        );
        registry.register(
            "cloud_logins",
            "Cloud registry logins by provider and result (hit: from the token cache, miss: fetched, failure: refused or unreachable)",
            cloud_logins.clone(),
        );
        registry.register(
            "registry_requests",
            "Registry HTTP requests by status code (0: no response)",
            registry_requests.clone(),
        );
        registry.register(
            "repository_tags",
            "Tags of the last good scan, per ImageRepository",
            tags.clone(),
        );
        registry.register(
            "pushes",
            "Commits pushed, per ImageUpdateAutomation",
            pushes.clone(),
        );
        registry.register(
            "reconcile",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind and result",
            durations.clone(),
        );
        registry.register(
            "ready",
            "1 when the object's Ready condition is True",
            ready.clone(),
        );
        Metrics {
            registry: root,
            gotk_durations,
            reconciles,
            durations,
            ready,
            tags,
            pushes,
            registry_requests,
            cloud_logins,
            pull_requests,
            scrape: std::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// What one finished run counts, for every driver: its result and
    /// duration (not for a suspended object), a scan's tag count, a push.
    /// `None`: the engine failed, a failure.
    pub fn record(
        &self,
        id: &ObjectId,
        outcome: Option<&tagwarden_engine::Outcome>,
        took: Duration,
    ) {
        use tagwarden_api::status::{ConditionStatus, Status};
        let Some(o) = outcome else {
            self.observe(id, false, took);
            return;
        };
        if !o.suspended {
            self.observe(id, o.ready().0 == ConditionStatus::True, took);
        }
        if let Status::ImageRepository(s) = &o.status
            && let Some(scan) = &s.last_scan_result
        {
            self.tags(&id.namespace, &id.name, scan.tag_count);
        }
        if let Some(tagwarden_engine::Change::PullRequest(pr)) = &o.change {
            let labels: Labels = vec![
                ("namespace".into(), id.namespace.clone()),
                ("name".into(), id.name.clone()),
                ("action".into(), pr.action.as_str().into()),
            ];
            self.pull_requests.get_or_create(&labels).inc();
        }
        if o.pushed().is_some() {
            self.pushed(&id.namespace, &id.name);
        }
    }

    pub fn observe(&self, key: &ObjectId, ready: bool, took: Duration) {
        let result = if ready { "success" } else { "failure" };
        let by_result: Labels = vec![
            ("kind".into(), key.kind.as_str().into()),
            ("result".into(), result.into()),
        ];
        self.reconciles.get_or_create(&by_result).inc();
        self.durations
            .get_or_create(&by_result)
            .observe(took.as_secs_f64());
        let object: Labels = vec![
            ("kind".into(), key.kind.as_str().into()),
            ("namespace".into(), key.namespace.clone()),
            ("name".into(), key.name.clone()),
        ];
        self.gotk_durations
            .get_or_create(&object)
            .observe(took.as_secs_f64());
        self.ready.get_or_create(&object).set(i64::from(ready));
    }

    pub fn tags(&self, namespace: &str, name: &str, count: usize) {
        let labels: Labels = vec![
            ("namespace".into(), namespace.into()),
            ("name".into(), name.into()),
        ];
        self.tags
            .get_or_create(&labels)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn pushed(&self, namespace: &str, name: &str) {
        let labels: Labels = vec![
            ("namespace".into(), namespace.into()),
            ("name".into(), name.into()),
        ];
        self.pushes.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        for (status, total) in tagwarden_registry::request_counts() {
            let c = self
                .registry_requests
                .get_or_create(&vec![("status".to_string(), status.to_string())]);
            // Counters only go up: add what happened since the last scrape.
            let seen = c.get();
            if total > seen {
                c.inc_by(total - seen);
            }
        }
        for (provider, result, total) in tagwarden_registry::login_counts() {
            let c = self.cloud_logins.get_or_create(&vec![
                ("provider".to_string(), provider.to_string()),
                ("result".to_string(), result.as_str().to_string()),
            ]);
            let seen = c.get();
            if total > seen {
                c.inc_by(total - seen);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_api::Kind;

    #[test]
    fn ours_are_prefixed_and_flux_s_reconcile_duration_keeps_its_name() {
        let m = Metrics::default();
        let id = ObjectId::new(Kind::ImagePolicy, "flux-system", "podinfo");
        m.observe(&id, true, Duration::from_millis(20));
        let text = m.render();
        assert!(
            text.contains(
                "gotk_reconcile_duration_seconds_count{kind=\"ImagePolicy\",namespace=\"flux-system\",name=\"podinfo\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("tagwarden_reconcile_total{kind=\"ImagePolicy\",result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "tagwarden_ready{kind=\"ImagePolicy\",namespace=\"flux-system\",name=\"podinfo\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn pull_requests_are_counted_by_action() {
        let m = Metrics::default();
        let id = ObjectId::new(Kind::ImageUpdateAutomation, "flux-system", "apps");
        let outcome = tagwarden_engine::Outcome {
            id: id.clone(),
            status: tagwarden_api::status::Status::ImageUpdateAutomation(Default::default()),
            change: Some(tagwarden_engine::Change::PullRequest(
                tagwarden_engine::PullRequestResult {
                    action: tagwarden_engine::PullRequestAction::Opened,
                    number: 7,
                    url: "https://example.com/pr/7".into(),
                    push: Some(tagwarden_engine::PushResult {
                        commit: "abc".into(),
                        branch: "tagwarden/apps".into(),
                    }),
                },
            )),
            requeue_after: None,
            plan: None,
            events: Vec::new(),
            failure: None,
            suspended: false,
        };
        m.record(&id, Some(&outcome), Duration::from_millis(5));
        let text = m.render();
        assert!(
            text.contains("tagwarden_pull_requests_total{namespace=\"flux-system\",name=\"apps\",action=\"opened\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tagwarden_pushes_total{namespace=\"flux-system\",name=\"apps\"} 1"),
            "{text}"
        );
    }
}
