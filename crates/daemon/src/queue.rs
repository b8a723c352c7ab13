//! When each object runs, as plain data with time passed in: the daemon's
//! loop asks it what to start and tells it what finished, and tests drive it
//! with made-up instants instead of sleeping.
//!
//! - Every object has at most one pending run and never runs twice at once;
//!   triggers during a run coalesce into one run after it.
//! - Triggered work (a webhook, a dependency that changed, `reconcile`, an
//!   edited manifest) starts before interval work, and scans have a slot of
//!   their own for it, so slow scans of one registry cannot make a webhook
//!   for another wait.
//! - Policies and automations have their own slots: scans never take them.
//! - At most `per_host` scans go to one registry host.
//! - An object waits while something it depends on is running or has a
//!   triggered run pending (it will be triggered again when that changes
//!   anything), not while its dependencies merely wait for their interval.
//! - Failures back off (the engine's error policy); success waits the
//!   interval with ±5% jitter.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tagwarden_api::{Kind, ObjectId};
use tagwarden_engine::{Backoff, Outcome};
use tokio::time::Instant;

/// Why a run is pending; triggered runs go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    /// Asked for: a webhook, a changed dependency, an edit, `reconcile`.
    Trigger,
    /// The first run after the daemon started.
    Start,
    /// The interval passed, or a failure's backoff.
    Timer,
}

#[derive(Debug, Default)]
struct Entry {
    pending: Option<(Instant, Why)>,
    running: bool,
    /// A trigger arrived while it ran: run once more when it ends.
    rerun: bool,
    /// Failures in a row.
    failures: u32,
    /// The registry host of a scan, for the per-host budget.
    host: Option<String>,
    /// The triggered slot a running scan holds, to give it back.
    express: bool,
    /// Removed from the manifests while it ran: forgotten when it ends.
    gone: bool,
}

/// Slots per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub scans: usize,
    /// Extra scans for triggered work only.
    pub express_scans: usize,
    pub policies: usize,
    pub automations: usize,
    pub per_host: usize,
}

impl Slots {
    /// From the daemon's `concurrency`: scans get twice as many (they
    /// mostly wait on the network).
    pub fn new(concurrency: usize) -> Slots {
        let n = concurrency.max(1);
        Slots {
            scans: 2 * n,
            express_scans: n.div_ceil(2),
            policies: n,
            automations: n,
            per_host: n,
        }
    }
}

#[derive(Debug)]
pub struct Queue {
    entries: HashMap<ObjectId, Entry>,
    /// Pending runs by (when, why, what): the next one is the first.
    pending: BTreeSet<(Instant, Why, ObjectId)>,
    slots: Slots,
    busy: HashMap<Kind, usize>,
    express_busy: usize,
    backoff: Backoff,
    /// Seeds the jitter; tests fix it.
    seed: u64,
}

/// A run the loop may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub id: ObjectId,
    pub why: Why,
}

impl Queue {
    pub fn new(slots: Slots, backoff: Backoff, seed: u64) -> Queue {
        Queue {
            entries: HashMap::new(),
            pending: BTreeSet::new(),
            slots,
            busy: HashMap::new(),
            express_busy: 0,
            backoff,
            seed,
        }
    }

    /// Knows `id` from now on (its scans go to `host`), with a run at `at`.
    pub fn add(&mut self, id: ObjectId, host: Option<String>, at: Instant, why: Why) {
        let e = self.entries.entry(id.clone()).or_default();
        e.host = host;
        e.gone = false;
        self.schedule(&id, at, why);
    }

    /// Forgets objects that are gone; a run in flight ends normally.
    pub fn retain(&mut self, keep: impl Fn(&ObjectId) -> bool) {
        let gone: Vec<ObjectId> = self.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for id in gone {
            self.unschedule(&id);
            if let Some(e) = self.entries.get_mut(&id) {
                e.rerun = false;
                e.gone = true;
                if !e.running {
                    self.entries.remove(&id);
                }
            }
        }
    }

    #[cfg(test)]
    fn contains(&self, id: &ObjectId) -> bool {
        self.entries.contains_key(id)
    }

    /// Run `id` as soon as it may; many triggers before it starts are one
    /// run, triggers while it runs are one more run after it.
    pub fn trigger(&mut self, id: &ObjectId, now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.running {
            e.rerun = true;
            return;
        }
        self.schedule(id, now, Why::Trigger);
    }

    /// Drops any pending run (a suspended object).
    pub fn unschedule(&mut self, id: &ObjectId) {
        if let Some(e) = self.entries.get_mut(id)
            && let Some((at, why)) = e.pending.take()
        {
            self.pending.remove(&(at, why, id.clone()));
        }
    }

    /// Pending at `at` for `why`, unless an earlier or more urgent run is
    /// already pending.
    fn schedule(&mut self, id: &ObjectId, at: Instant, why: Why) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if let Some((old_at, old_why)) = e.pending {
            if old_at <= at && old_why <= why {
                return;
            }
            self.pending.remove(&(old_at, old_why, id.clone()));
        }
        let at = match e.pending {
            Some((old_at, _)) => old_at.min(at),
            None => at,
        };
        e.pending = Some((at, why));
        self.pending.insert((at, why, id.clone()));
    }

    /// Whether `id` has a pending run that is due or triggered, or runs:
    /// then what depends on it waits.
    fn busy(&self, id: &ObjectId, now: Instant) -> bool {
        self.entries.get(id).is_some_and(|e| {
            e.running
                || e.pending
                    .is_some_and(|(at, why)| at <= now && why != Why::Timer)
        })
    }

    fn kind_limit(&self, kind: Kind) -> usize {
        match kind {
            Kind::ImageRepository => self.slots.scans,
            Kind::ImagePolicy => self.slots.policies,
            _ => self.slots.automations,
        }
    }

    /// The runs to start now, most urgent first, within the slots;
    /// `dependencies` says what an object reads. Each returned run is
    /// marked running until [`Queue::finish`].
    pub fn start(
        &mut self,
        now: Instant,
        dependencies: impl Fn(&ObjectId) -> Vec<ObjectId>,
    ) -> Vec<Start> {
        let mut due: Vec<(Why, Instant, ObjectId)> = self
            .pending
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .map(|(at, why, id)| (*why, *at, id.clone()))
            .collect();
        due.sort();
        let mut hosts: HashMap<&str, usize> = HashMap::new();
        for e in self.entries.values().filter(|e| e.running) {
            if let Some(h) = &e.host {
                *hosts.entry(h.as_str()).or_default() += 1;
            }
        }
        let mut hosts: HashMap<String, usize> =
            hosts.into_iter().map(|(h, n)| (h.to_string(), n)).collect();
        let mut started = Vec::new();
        for (why, at, id) in due {
            let busy = self.busy.get(&id.kind).copied().unwrap_or(0);
            let regular = busy < self.kind_limit(id.kind);
            let express = !regular
                && why == Why::Trigger
                && id.kind == Kind::ImageRepository
                && self.express_busy < self.slots.express_scans;
            if !regular && !express {
                continue;
            }
            let host = self.entries.get(&id).and_then(|e| e.host.clone());
            if let Some(h) = &host
                && hosts.get(h).copied().unwrap_or(0) >= self.slots.per_host
            {
                continue;
            }
            if dependencies(&id).iter().any(|d| self.busy(d, now)) {
                continue;
            }
            self.pending.remove(&(at, why, id.clone()));
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            e.pending = None;
            e.running = true;
            e.express = express;
            if express {
                self.express_busy += 1;
            } else {
                *self.busy.entry(id.kind).or_default() += 1;
            }
            if let Some(h) = host {
                *hosts.entry(h).or_default() += 1;
            }
            started.push(Start { id, why });
        }
        started
    }

    /// A started run that did not run after all (suspended, gone): its
    /// slot back, nothing scheduled.
    pub fn cancel(&mut self, id: &ObjectId) {
        if let Some(e) = self.release(id) {
            e.rerun = false;
        }
    }

    fn release(&mut self, id: &ObjectId) -> Option<&mut Entry> {
        let e = self.entries.get_mut(id)?;
        if e.running {
            e.running = false;
            if std::mem::take(&mut e.express) {
                self.express_busy = self.express_busy.saturating_sub(1);
            } else if let Some(n) = self.busy.get_mut(&id.kind) {
                *n = n.saturating_sub(1);
            }
        }
        self.entries.get_mut(id)
    }

    /// A run ended with `outcome` (`None`: the engine failed or the run was
    /// abandoned, a transient failure). Schedules the next run; returns
    /// the failures in a row so far.
    pub fn finish(&mut self, id: &ObjectId, outcome: Option<&Outcome>, now: Instant) -> u32 {
        let backoff = self.backoff;
        let seed = self.seed;
        let Some(e) = self.release(id) else {
            return 0;
        };
        if e.gone {
            self.entries.remove(id);
            return 0;
        }
        let failed = outcome.is_none_or(|o| o.failure.is_some());
        e.failures = if failed {
            e.failures.saturating_add(1)
        } else {
            0
        };
        let failures = e.failures;
        let rerun = std::mem::take(&mut e.rerun);
        let next = match outcome {
            Some(o) => o.next_run(failures, &backoff).map(|d| {
                if o.failure.is_none() {
                    jitter(d, seed, id, failures)
                } else {
                    d
                }
            }),
            None => Some(backoff.delay(failures)),
        };
        if rerun {
            self.schedule(id, now, Why::Trigger);
        } else if let Some(d) = next {
            self.schedule(id, now + d, Why::Timer);
        }
        failures
    }

    /// When the loop must look again without being woken: the earliest
    /// pending run still in the future. Runs already due that could not
    /// start wait for a finished run or a trigger, not for the clock, so
    /// the loop never spins.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.pending
            .iter()
            .map(|(at, _, _)| *at)
            .find(|at| *at > now)
    }

    #[cfg(test)]
    fn pending_of(&self, id: &ObjectId) -> Option<(Instant, Why)> {
        self.entries.get(id).and_then(|e| e.pending)
    }
}

/// `d` ±5%, the same for one object and attempt, different across
/// objects, so objects with one interval do not run in lockstep.
fn jitter(d: Duration, seed: u64, id: &ObjectId, n: u32) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (seed, id, n).hash(&mut h);
    let permille = h.finish() % 1001; // 0..=1000
    d.mul_f64(0.95 + permille as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_api::status::Status;
    use tagwarden_engine::Failure;

    fn id(kind: Kind, name: &str) -> ObjectId {
        ObjectId::new(kind, "ns", name)
    }

    fn slots(n: usize) -> Slots {
        Slots::new(n)
    }

    fn ok(id: &ObjectId, every: Duration) -> Outcome {
        Outcome {
            id: id.clone(),
            status: Status::empty(id.kind).expect("image kind"),
            change: None,
            requeue_after: Some(every),
            plan: None,
            events: Vec::new(),
            failure: None,
            suspended: false,
        }
    }

    fn failed(id: &ObjectId, stalled: bool) -> Outcome {
        Outcome {
            failure: Some(Failure::new("ReconciliationFailed", "down", stalled)),
            ..ok(id, Duration::from_secs(60))
        }
    }

    fn none(_: &ObjectId) -> Vec<ObjectId> {
        Vec::new()
    }

    #[test]
    fn runs_on_its_interval_with_jitter_within_five_percent() {
        let t0 = Instant::now();
        let every = Duration::from_secs(100);
        let mut lo = Duration::MAX;
        let mut hi = Duration::ZERO;
        for seed in 0..200 {
            let mut q = Queue::new(slots(1), Backoff::default(), seed);
            let r = id(Kind::ImageRepository, "r");
            q.add(r.clone(), None, t0, Why::Start);
            assert_eq!(
                q.start(t0, none),
                [Start {
                    id: r.clone(),
                    why: Why::Start
                }]
            );
            assert!(q.start(t0, none).is_empty(), "never twice at once");
            q.finish(&r, Some(&ok(&r, every)), t0);
            let (at, why) = q.pending_of(&r).expect("next run");
            assert_eq!(why, Why::Timer);
            lo = lo.min(at - t0);
            hi = hi.max(at - t0);
            assert!(q.start(at - Duration::from_millis(1), none).is_empty());
            assert_eq!(q.start(at, none).len(), 1);
        }
        assert!(
            lo >= Duration::from_secs(95) && hi <= Duration::from_secs(105),
            "{lo:?}..{hi:?}"
        );
        assert!(hi - lo > Duration::from_secs(5), "spread: {lo:?}..{hi:?}");
    }

    #[test]
    fn failures_back_off_and_success_resets() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(1), Backoff::default(), 1);
        let r = id(Kind::ImageRepository, "r");
        q.add(r.clone(), None, t0, Why::Start);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            assert_eq!(q.start(now, none).len(), 1);
            q.finish(&r, Some(&failed(&r, false)), now);
            let (at, _) = q.pending_of(&r).expect("retried");
            waits.push((at - now).as_millis());
            now = at;
        }
        assert_eq!(waits, [750, 1500, 3000, 6000]);
        // An engine error (no outcome) backs off the same way.
        assert_eq!(q.start(now, none).len(), 1);
        assert_eq!(q.finish(&r, None, now), 5);
        assert_eq!(
            q.pending_of(&r).map(|(at, _)| (at - now).as_millis()),
            Some(12_000)
        );
        now += Duration::from_secs(12);
        assert_eq!(q.start(now, none).len(), 1);
        assert_eq!(q.finish(&r, Some(&ok(&r, Duration::from_secs(60))), now), 0);
        let (at, _) = q.pending_of(&r).expect("interval");
        assert!(at - now >= Duration::from_secs(57), "{:?}", at - now);
        // Stalled: nothing until something changes (a trigger).
        now = at;
        assert_eq!(q.start(now, none).len(), 1);
        q.finish(&r, Some(&failed(&r, true)), now);
        assert_eq!(q.pending_of(&r), None);
        assert_eq!(q.next_wake(now), None);
        q.trigger(&r, now);
        assert_eq!(
            q.start(now, none),
            [Start {
                id: r,
                why: Why::Trigger
            }]
        );
    }

    #[test]
    fn a_burst_of_triggers_is_one_run_and_triggers_during_a_run_one_more() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(1), Backoff::default(), 1);
        let r = id(Kind::ImageRepository, "r");
        q.add(r.clone(), None, t0 + Duration::from_secs(60), Why::Timer);
        for _ in 0..50 {
            q.trigger(&r, t0);
        }
        assert_eq!(q.start(t0, none).len(), 1, "fifty triggers, one run");
        for _ in 0..50 {
            q.trigger(&r, t0);
        }
        assert!(q.start(t0, none).is_empty(), "still running");
        q.finish(&r, Some(&ok(&r, Duration::from_secs(60))), t0);
        assert_eq!(
            q.pending_of(&r),
            Some((t0, Why::Trigger)),
            "one more run, at once"
        );
        assert_eq!(q.start(t0, none).len(), 1);
        q.finish(&r, Some(&ok(&r, Duration::from_secs(60))), t0);
        assert_eq!(q.pending_of(&r).map(|p| p.1), Some(Why::Timer));
    }

    #[test]
    fn a_webhook_scan_does_not_wait_behind_slow_scans_of_another_registry() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(4), Backoff::default(), 1);
        // 200 slow repositories keep every regular scan slot busy.
        for i in 0..200 {
            q.add(
                id(Kind::ImageRepository, &format!("slow-{i}")),
                Some(format!("slow-{}.example", i % 20)),
                t0,
                Why::Start,
            );
        }
        let fast = id(Kind::ImageRepository, "fast");
        let policy = id(Kind::ImagePolicy, "fast");
        let auto = id(Kind::ImageUpdateAutomation, "fleet");
        q.add(
            fast.clone(),
            Some("fast.example".into()),
            t0 + Duration::from_secs(600),
            Why::Timer,
        );
        q.add(
            policy.clone(),
            None,
            t0 + Duration::from_secs(3600),
            Why::Timer,
        );
        q.add(
            auto.clone(),
            None,
            t0 + Duration::from_secs(3600),
            Why::Timer,
        );
        let deps = |i: &ObjectId| match i.kind {
            Kind::ImagePolicy => vec![id(Kind::ImageRepository, &i.name)],
            Kind::ImageUpdateAutomation => vec![policy.clone()],
            _ => Vec::new(),
        };
        let first = q.start(t0, deps);
        assert_eq!(first.len(), 8, "2 × concurrency scans");
        // The webhook: the fast scan starts at once, on the triggered slot.
        let t1 = t0 + Duration::from_secs(1);
        q.trigger(&fast, t1);
        assert_eq!(
            q.start(t1, deps),
            [Start {
                id: fast.clone(),
                why: Why::Trigger
            }]
        );
        let changed = ok(&fast, Duration::from_secs(600));
        q.finish(&fast, Some(&changed), t1);
        // Its policy, then the automation: their own slots, no waiting on
        // the slow scans (not theirs, and only due on a timer).
        q.trigger(&policy, t1);
        assert_eq!(
            q.start(t1, deps),
            [Start {
                id: policy.clone(),
                why: Why::Trigger
            }]
        );
        q.trigger(&auto, t1);
        assert!(q.start(t1, deps).is_empty(), "waits while its policy runs");
        q.finish(&policy, Some(&ok(&policy, Duration::from_secs(3600))), t1);
        assert_eq!(
            q.start(t1, deps),
            [Start {
                id: auto,
                why: Why::Trigger
            }]
        );
    }

    #[test]
    fn per_host_budget_and_kind_slots() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(2), Backoff::default(), 1);
        for i in 0..6 {
            q.add(
                id(Kind::ImageRepository, &format!("a{i}")),
                Some("a.example".into()),
                t0,
                Why::Start,
            );
        }
        q.add(
            id(Kind::ImageRepository, "b"),
            Some("b.example".into()),
            t0,
            Why::Start,
        );
        for i in 0..5 {
            q.add(
                id(Kind::ImagePolicy, &format!("p{i}")),
                None,
                t0,
                Why::Start,
            );
        }
        let started = q.start(t0, none);
        let scans: Vec<&str> = started
            .iter()
            .filter(|s| s.id.kind == Kind::ImageRepository)
            .map(|s| s.id.name.as_str())
            .collect();
        assert_eq!(scans, ["a0", "a1", "b"], "two per host, b not held up by a");
        let policies = started
            .iter()
            .filter(|s| s.id.kind == Kind::ImagePolicy)
            .count();
        assert_eq!(policies, 2, "policies have their own two slots");
        // Nothing else may start: the loop sleeps until a run ends.
        assert_eq!(q.next_wake(t0), None);
    }

    #[test]
    fn dependencies_hold_back_only_while_busy() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(1), Backoff::default(), 1);
        let r = id(Kind::ImageRepository, "r");
        let p = id(Kind::ImagePolicy, "r");
        q.add(r.clone(), None, t0, Why::Start);
        q.add(p.clone(), None, t0, Why::Start);
        let deps = |i: &ObjectId| {
            if i.kind == Kind::ImagePolicy {
                vec![r.clone()]
            } else {
                vec![]
            }
        };
        assert_eq!(
            q.start(t0, deps),
            [Start {
                id: r.clone(),
                why: Why::Start
            }]
        );
        assert!(
            q.start(t0, deps).is_empty(),
            "the policy waits for the first scan"
        );
        q.finish(&r, Some(&ok(&r, Duration::from_secs(60))), t0);
        assert_eq!(
            q.start(t0, deps),
            [Start {
                id: p.clone(),
                why: Why::Start
            }]
        );
        q.finish(&p, Some(&ok(&p, Duration::from_secs(3600))), t0);
        // Later the repository is due on its timer: a triggered policy runs anyway.
        let t1 = t0 + Duration::from_secs(120);
        q.trigger(&p, t1);
        let started = q.start(t1, deps);
        assert!(
            started.contains(&Start {
                id: p,
                why: Why::Trigger
            }),
            "{started:?}"
        );
    }

    #[test]
    fn removed_objects_are_forgotten() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(1), Backoff::default(), 1);
        let a = id(Kind::ImageRepository, "a");
        let b = id(Kind::ImageRepository, "b");
        q.add(a.clone(), None, t0, Why::Start);
        q.add(b.clone(), None, t0 + Duration::from_secs(5), Why::Start);
        assert_eq!(q.start(t0, none).len(), 1);
        q.retain(|i| *i != a && *i != b);
        assert!(q.contains(&a), "running: kept until it ends");
        assert!(!q.contains(&b));
        q.finish(&a, Some(&ok(&a, Duration::from_secs(60))), t0);
        assert!(!q.contains(&a), "forgotten once it ended");
        assert_eq!(q.next_wake(t0), None);
        assert!(q.start(t0 + Duration::from_secs(3600), none).is_empty());
    }
}
