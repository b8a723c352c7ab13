//! Prometheus metrics: what the daemon counts and their text exposition.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tagwarden_api::ObjectId;

type Labels = Vec<(String, String)>;

/// What the daemon counts.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    durations: Family<Labels, Histogram>,
    /// Flux's per-object reconcile duration, `ready` and the tag count.
    objects: Arc<PerObject>,
    pushes: Family<Labels, Counter>,
    /// Mirrors the registry client's process-wide counts at each scrape.
    registry_requests: Family<Labels, Counter>,
    cloud_logins: Family<Labels, Counter>,
    pull_requests: Family<Labels, Counter>,
    /// One scrape at a time, so two never add the same requests twice.
    scrape: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let objects = Arc::new(PerObject::default());
        root.register_collector(Box::new(objects.clone()));
        let registry = root.sub_registry_with_prefix("tagwarden");
        let reconciles = Family::<Labels, Counter>::default();
        let durations = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, DURATION_BUCKETS as u16))
        });
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
        Metrics {
            registry: root,
            reconciles,
            durations,
            objects,
            pushes,
            registry_requests,
            cloud_logins,
            pull_requests,
            scrape: std::sync::Mutex::new(()),
        }
    }
}

/// Classic buckets of the reconcile durations: 5 ms doubling, and +Inf.
const DURATION_BUCKETS: usize = 14;

/// The same bounds as the by-result histograms, computed once.
fn duration_bounds() -> &'static [f64] {
    static BOUNDS: std::sync::LazyLock<Vec<f64>> = std::sync::LazyLock::new(|| {
        exponential_buckets(0.005, 2.0, DURATION_BUCKETS as u16).collect()
    });
    &BOUNDS
}

/// One object's series.
#[derive(Debug, Default)]
struct ObjectSeries {
    /// Observations per bucket (not cumulative); the last is +Inf. Four
    /// billion reconciles of one object is 8,000 years at one a minute.
    buckets: [u32; DURATION_BUCKETS + 1],
    sum: f64,
    count: u64,
    ready: Option<bool>,
    tags: Option<i64>,
}

impl ObjectSeries {
    fn observe(&mut self, secs: f64) {
        let i = duration_bounds()
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS);
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.sum += secs;
        self.count += 1;
    }
}

/// The per-object series, kept compact and written at scrape time: a
/// `Family` holds a label vector and a histogram able to go native per
/// object, ~1 KB each, 11 MB at 10,000 objects; this holds ~200 bytes.
#[derive(Debug, Default)]
struct PerObject(Mutex<HashMap<ObjectId, ObjectSeries>>);

impl PerObject {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, ObjectSeries>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with(&self, id: &ObjectId, f: impl FnOnce(&mut ObjectSeries)) {
        let mut map = self.lock();
        match map.get_mut(id) {
            Some(s) => f(s),
            None => f(map.entry(id.clone()).or_default()),
        }
    }
}

fn object_labels(id: &ObjectId) -> [(&'static str, &str); 3] {
    [
        ("kind", id.kind.as_str()),
        ("namespace", id.namespace.as_str()),
        ("name", id.name.as_str()),
    ]
}

impl Collector for PerObject {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self.lock();
        let mut all: Vec<(&ObjectId, &ObjectSeries)> = map.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        {
            // Flux's own name and labels, so its dashboards read tagwarden.
            let mut m = encoder.encode_descriptor(
                "gotk_reconcile_duration_seconds",
                "Reconcile duration per object, as Flux's controllers report it",
                None,
                MetricType::Histogram,
            )?;
            let bounds = duration_bounds();
            let mut buckets = Vec::with_capacity(DURATION_BUCKETS + 1);
            for (id, s) in all.iter().filter(|(_, s)| s.count > 0) {
                buckets.clear();
                buckets.extend(
                    bounds
                        .iter()
                        .copied()
                        .chain(std::iter::once(f64::INFINITY))
                        .zip(s.buckets.map(u64::from)),
                );
                m.encode_family(&object_labels(id))?
                    .encode_histogram::<NoLabelSet>(s.sum, s.count, &buckets, None)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "tagwarden_repository_tags",
                "Tags of the last good scan, per ImageRepository",
                None,
                MetricType::Gauge,
            )?;
            for (id, s) in &all {
                if let Some(n) = s.tags {
                    let labels = [
                        ("namespace", id.namespace.as_str()),
                        ("name", id.name.as_str()),
                    ];
                    m.encode_family(&labels)?.encode_gauge(&n)?;
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "tagwarden_ready",
            "1 when the object's Ready condition is True",
            None,
            MetricType::Gauge,
        )?;
        for (id, s) in &all {
            if let Some(ready) = s.ready {
                m.encode_family(&object_labels(id))?
                    .encode_gauge(&i64::from(ready))?;
            }
        }
        Ok(())
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
            self.tags(id, scan.tag_count);
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
        self.objects.with(key, |s| {
            s.observe(took.as_secs_f64());
            s.ready = Some(ready);
        });
    }

    /// An ImageRepository's tag count.
    pub fn tags(&self, id: &ObjectId, count: usize) {
        self.objects.with(id, |s| {
            s.tags = Some(i64::try_from(count).unwrap_or(i64::MAX))
        });
    }

    /// Drops the series of objects that are gone, so deleted objects do
    /// not accumulate.
    pub fn retain(&self, keep: impl Fn(&ObjectId) -> bool) {
        self.objects.lock().retain(|id, _| keep(id));
    }

    /// Drops the series of one object that is gone.
    pub fn forget(&self, id: &ObjectId) {
        self.objects.lock().remove(id);
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

    /// The per-object series read as the `Family` types wrote them:
    /// cumulative buckets with `le` first, one line per object, and a
    /// deleted object's series gone.
    #[test]
    fn per_object_series_are_exposed_and_dropped_with_their_object() {
        let m = Metrics::default();
        let a = ObjectId::new(Kind::ImageRepository, "apps", "a");
        let b = ObjectId::new(Kind::ImagePolicy, "apps", "b");
        m.observe(&a, true, Duration::from_millis(3));
        m.observe(&a, false, Duration::from_millis(30));
        m.observe(&a, false, Duration::from_secs(100));
        m.tags(&a, 1000);
        m.observe(&b, true, Duration::from_millis(7));
        let text = m.render();
        let line = |s: &str| text.lines().any(|l| l == s);
        let ls = "kind=\"ImageRepository\",namespace=\"apps\",name=\"a\"";
        for want in [
            "# TYPE gotk_reconcile_duration_seconds histogram".to_string(),
            format!("gotk_reconcile_duration_seconds_count{{{ls}}} 3"),
            format!("gotk_reconcile_duration_seconds_sum{{{ls}}} 100.033"),
            format!("gotk_reconcile_duration_seconds_bucket{{le=\"0.005\",{ls}}} 1"),
            format!("gotk_reconcile_duration_seconds_bucket{{le=\"0.02\",{ls}}} 1"),
            format!("gotk_reconcile_duration_seconds_bucket{{le=\"0.04\",{ls}}} 2"),
            format!("gotk_reconcile_duration_seconds_bucket{{le=\"40.96\",{ls}}} 2"),
            format!("gotk_reconcile_duration_seconds_bucket{{le=\"+Inf\",{ls}}} 3"),
            format!("tagwarden_ready{{{ls}}} 0"),
            "tagwarden_repository_tags{namespace=\"apps\",name=\"a\"} 1000".to_string(),
            "tagwarden_ready{kind=\"ImagePolicy\",namespace=\"apps\",name=\"b\"} 1".to_string(),
        ] {
            assert!(line(&want), "no line {want:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        m.forget(&a);
        let text = m.render();
        assert!(!text.contains("name=\"a\""), "{text}");
        assert!(text.contains("name=\"b\""), "{text}");
        m.retain(|id| *id != b);
        assert!(!m.render().contains("name=\"b\""));
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
