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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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

impl Why {
    const ALL: [Why; 3] = [Why::Trigger, Why::Start, Why::Timer];

    fn rank(self) -> usize {
        self as usize
    }
}

/// Where an object is. Each queued copy of an index carries the entry's
/// `version` at the time; a copy with an older one is stale and skipped,
/// so moving an entry never searches a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing pending (stalled, or just known).
    Idle,
    /// Pending at `at`, in the timer heap.
    Timed {
        at: Instant,
        why: Why,
    },
    /// Due, in its class's ready queue for `why`.
    Ready {
        at: Instant,
        why: Why,
    },
    /// Due, but waiting for its registry host's budget or for a
    /// dependency; put back at the front of the ready queue when that
    /// frees up.
    Parked {
        at: Instant,
        why: Why,
    },
    Running,
}

impl State {
    fn pending(self) -> Option<(Instant, Why)> {
        match self {
            State::Timed { at, why } | State::Ready { at, why } | State::Parked { at, why } => {
                Some((at, why))
            }
            State::Idle | State::Running => None,
        }
    }
}

#[derive(Debug)]
struct Entry {
    id: ObjectId,
    state: State,
    version: u32,
    /// A trigger arrived while it ran: run once more when it ends.
    rerun: bool,
    /// Failures in a row.
    failures: u32,
    /// The registry host of a scan (an index into `hosts`), for the
    /// per-host budget.
    host: Option<usize>,
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

/// A queued copy of an entry: its index and version.
type Ticket = (usize, u32);

/// Scans, policies, automations: each has its own slots and queues.
const CLASSES: usize = 3;

fn class(kind: Kind) -> usize {
    match kind {
        Kind::ImageRepository => 0,
        Kind::ImagePolicy => 1,
        _ => 2,
    }
}

#[derive(Debug, Default)]
struct Host {
    running: usize,
    /// Due scans waiting for this host's budget, per [`Why`].
    waiting: [VecDeque<Ticket>; 3],
}

/// The schedule of every object. The work of one [`Queue::start`] is the
/// runs it starts or parks plus the timers that fell due, never a pass
/// over the objects that merely wait: 10,000 idle repositories cost
/// nothing per turn of the loop.
#[derive(Debug)]
pub struct Queue {
    entries: Vec<Option<Entry>>,
    index: HashMap<ObjectId, usize>,
    free: Vec<usize>,
    /// Pending runs by due time; stale copies are dropped when they surface.
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Live entries in `timers`, to know when stale copies pile up.
    timed: usize,
    /// Due runs per class and [`Why`], oldest first.
    ready: [[VecDeque<Ticket>; 3]; CLASSES],
    /// Runs parked on a dependency, by the dependency's index.
    waiters: HashMap<usize, Vec<Ticket>>,
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    slots: Slots,
    busy: [usize; CLASSES],
    express_busy: usize,
    /// Set when a parked run became ready during [`Queue::start`].
    woken: bool,
    backoff: Backoff,
    /// Seeds the jitter; tests fix it.
    seed: u64,
    /// Queue entries looked at by `start`, for the test that the work per
    /// turn does not grow with idle objects.
    #[cfg(test)]
    visited: usize,
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
            entries: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            timed: 0,
            ready: Default::default(),
            waiters: HashMap::new(),
            hosts: Vec::new(),
            host_index: HashMap::new(),
            slots,
            busy: [0; CLASSES],
            express_busy: 0,
            woken: false,
            backoff,
            seed,
            #[cfg(test)]
            visited: 0,
        }
    }

    fn entry(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, i: usize) -> Option<&mut Entry> {
        self.entries.get_mut(i).and_then(Option::as_mut)
    }

    fn host_of(&mut self, host: Option<String>) -> Option<usize> {
        let host = host?;
        if let Some(&h) = self.host_index.get(&host) {
            return Some(h);
        }
        self.hosts.push(Host::default());
        let h = self.hosts.len() - 1;
        self.host_index.insert(host, h);
        Some(h)
    }

    /// Knows `id` from now on (its scans go to `host`), with a run at `at`.
    pub fn add(&mut self, id: ObjectId, host: Option<String>, at: Instant, why: Why) {
        let host = self.host_of(host);
        let i = match self.index.get(&id) {
            Some(&i) => i,
            None => {
                let e = Entry {
                    id: id.clone(),
                    state: State::Idle,
                    version: 0,
                    rerun: false,
                    failures: 0,
                    host: None,
                    express: false,
                    gone: false,
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.entries[i] = Some(e);
                        i
                    }
                    None => {
                        self.entries.push(Some(e));
                        self.entries.len() - 1
                    }
                };
                self.index.insert(id, i);
                i
            }
        };
        if let Some(e) = self.entry_mut(i) {
            // A running scan keeps the host it counts against until it ends.
            if e.state != State::Running {
                e.host = host;
            }
            e.gone = false;
        }
        self.schedule(i, at, why);
    }

    /// Forgets objects that are gone; a run in flight ends normally.
    pub fn retain(&mut self, keep: impl Fn(&ObjectId) -> bool) {
        let gone: Vec<usize> = self
            .index
            .iter()
            .filter(|(id, _)| !keep(id))
            .map(|(_, &i)| i)
            .collect();
        for i in gone {
            let Some(e) = self.entry_mut(i) else { continue };
            e.rerun = false;
            e.gone = true;
            if e.state != State::Running {
                self.set_state(i, State::Idle);
                self.remove(i);
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(e) = self.entries.get_mut(i).and_then(Option::take) {
            self.index.remove(&e.id);
            self.free.push(i);
        }
        self.wake_waiters(i);
    }

    #[cfg(test)]
    fn contains(&self, id: &ObjectId) -> bool {
        self.index.contains_key(id)
    }

    /// Run `id` as soon as it may; many triggers before it starts are one
    /// run, triggers while it runs are one more run after it.
    pub fn trigger(&mut self, id: &ObjectId, now: Instant) {
        if let Some(&i) = self.index.get(id) {
            self.schedule(i, now, Why::Trigger);
        }
    }

    /// Drops any pending run (a suspended object).
    pub fn unschedule(&mut self, id: &ObjectId) {
        if let Some(&i) = self.index.get(id)
            && self.entry(i).is_some_and(|e| e.state.pending().is_some())
        {
            self.set_state(i, State::Idle);
        }
    }

    /// Moves entry `i` to `state`: stale copies of it in queues are now
    /// skipped, and what waited on it looks again once it no longer runs
    /// or is about to.
    fn set_state(&mut self, i: usize, state: State) {
        let Some(e) = self.entry_mut(i) else { return };
        let was_timed = matches!(e.state, State::Timed { .. });
        e.state = state;
        e.version = e.version.wrapping_add(1);
        let version = e.version;
        let c = class(e.id.kind);
        if was_timed {
            self.timed = self.timed.saturating_sub(1);
        }
        match state {
            State::Timed { at, .. } => {
                self.timed += 1;
                self.timers.push(Reverse((at, i, version)));
                self.compact_timers();
            }
            State::Ready { why, .. } => self.ready[c][why.rank()].push_back((i, version)),
            State::Idle | State::Parked { .. } => self.wake_waiters(i),
            State::Running => {}
        }
    }

    /// Rebuilds the heap when stale copies (left by triggers that came
    /// before a timer) outnumber the live ones: a webhook storm cannot
    /// grow it without bound.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.timed + 1024 {
            return;
        }
        let entries = &self.entries;
        self.timers.retain(|Reverse((_, i, v))| {
            entries
                .get(*i)
                .and_then(Option::as_ref)
                .is_some_and(|e| e.version == *v && matches!(e.state, State::Timed { .. }))
        });
    }

    /// Pending at `at` for `why`, unless an earlier or more urgent run is
    /// already pending; a running object runs once more after this run
    /// when triggered.
    fn schedule(&mut self, i: usize, at: Instant, why: Why) {
        let Some(e) = self.entry_mut(i) else { return };
        if e.state == State::Running {
            if why == Why::Trigger {
                e.rerun = true;
            }
            return;
        }
        let (at, why) = match e.state.pending() {
            Some((old_at, old_why)) if old_at <= at && old_why <= why => return,
            Some((old_at, old_why)) => (old_at.min(at), old_why.min(why)),
            None => (at, why),
        };
        self.set_state(i, State::Timed { at, why });
    }

    /// Whether entry `i` runs or is about to, so that what reads it waits.
    /// `strict` (first runs and timers) also waits for a dependency that
    /// is itself waiting; a triggered run does not, so a webhook's work
    /// never queues behind scans of other registries.
    fn holds(&self, i: usize, now: Instant, strict: bool) -> bool {
        self.entry(i).is_some_and(|e| match e.state {
            State::Running => true,
            State::Ready { why, .. } => why != Why::Timer,
            State::Timed { at, why } => at <= now && why != Why::Timer,
            State::Parked { why, .. } => strict && why != Why::Timer,
            State::Idle => false,
        })
    }

    fn limit(&self, c: usize) -> usize {
        match c {
            0 => self.slots.scans,
            1 => self.slots.policies,
            _ => self.slots.automations,
        }
    }

    /// The first live ticket of class `c`'s ready queue for `why`.
    fn peek_ready(&mut self, c: usize, why: Why) -> Option<usize> {
        while let Some(&(i, v)) = self.ready[c][why.rank()].front() {
            #[cfg(test)]
            {
                self.visited += 1;
            }
            let live = self
                .entry(i)
                .is_some_and(|e| e.version == v && matches!(e.state, State::Ready { .. }));
            if live {
                return Some(i);
            }
            self.ready[c][why.rank()].pop_front();
        }
        None
    }

    /// Due again, ahead of what became due after it.
    fn unpark(&mut self, (i, v): Ticket) {
        let Some(e) = self.entry_mut(i) else { return };
        let State::Parked { at, why } = e.state else {
            return;
        };
        if e.version != v {
            return;
        }
        e.state = State::Ready { at, why };
        e.version = e.version.wrapping_add(1);
        let ticket = (i, e.version);
        let c = class(e.id.kind);
        self.ready[c][why.rank()].push_front(ticket);
        self.woken = true;
    }

    fn wake_waiters(&mut self, i: usize) {
        if let Some(waiting) = self.waiters.remove(&i) {
            // Front-pushed: reversed, so the longest waiting stays first.
            for t in waiting.into_iter().rev() {
                self.unpark(t);
            }
        }
    }

    /// A slot of host `h` came free: its most urgent waiting scan is due again.
    fn host_freed(&mut self, h: usize) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        host.running = host.running.saturating_sub(1);
        for why in Why::ALL {
            while let Some(t) = self.hosts[h].waiting[why.rank()].pop_front() {
                let live = self
                    .entry(t.0)
                    .is_some_and(|e| e.version == t.1 && matches!(e.state, State::Parked { .. }));
                if live {
                    self.unpark(t);
                    return;
                }
            }
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
        while let Some(&Reverse((at, i, v))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(e) = self.entry(i)
                && e.version == v
                && let State::Timed { at, why } = e.state
            {
                self.set_state(i, State::Ready { at, why });
            }
        }
        let mut started = Vec::new();
        // Triggered runs of every class first, then first runs, then
        // timers. A run parks on one of an earlier class (policy on scan,
        // automation on policy); when a park or start during a pass frees
        // waiters, one more pass starts them now rather than at the next
        // event.
        loop {
            self.woken = false;
            for why in Why::ALL {
                for c in 0..CLASSES {
                    self.start_class(c, why, now, &dependencies, &mut started);
                }
            }
            if !self.woken {
                break;
            }
        }
        started
    }

    /// Starts or parks the ready runs of class `c` for `why` while it has slots.
    fn start_class(
        &mut self,
        c: usize,
        why: Why,
        now: Instant,
        dependencies: &impl Fn(&ObjectId) -> Vec<ObjectId>,
        started: &mut Vec<Start>,
    ) {
        while let Some(i) = self.peek_ready(c, why) {
            let regular = self.busy[c] < self.limit(c);
            let express = !regular
                && c == 0
                && why == Why::Trigger
                && self.express_busy < self.slots.express_scans;
            if !regular && !express {
                return;
            }
            self.ready[c][why.rank()].pop_front();
            let Some(e) = self.entry(i) else { continue };
            let State::Ready { at, .. } = e.state else {
                continue;
            };
            let host = e.host;
            if let Some(h) = host
                && self.hosts[h].running >= self.slots.per_host
            {
                self.set_state(i, State::Parked { at, why });
                let v = self.entry(i).map_or(0, |e| e.version);
                self.hosts[h].waiting[why.rank()].push_back((i, v));
                continue;
            }
            let id = e.id.clone();
            let strict = why != Why::Trigger;
            let blocker = dependencies(&id)
                .iter()
                .filter_map(|d| self.index.get(d).copied())
                .find(|&d| d != i && self.holds(d, now, strict));
            if let Some(d) = blocker {
                self.set_state(i, State::Parked { at, why });
                let v = self.entry(i).map_or(0, |e| e.version);
                self.waiters.entry(d).or_default().push((i, v));
                continue;
            }
            self.set_state(i, State::Running);
            if let Some(e) = self.entry_mut(i) {
                e.express = express;
            }
            if express {
                self.express_busy += 1;
            } else {
                self.busy[c] += 1;
            }
            if let Some(h) = host {
                self.hosts[h].running += 1;
            }
            started.push(Start { id, why });
        }
    }

    /// A started run that did not run after all (suspended, gone): its
    /// slot back, nothing scheduled.
    pub fn cancel(&mut self, id: &ObjectId) {
        let Some(&i) = self.index.get(id) else { return };
        if self.release(i) {
            if let Some(e) = self.entry_mut(i) {
                e.rerun = false;
            }
            self.set_state(i, State::Idle);
            if self.entry(i).is_some_and(|e| e.gone) {
                self.remove(i);
            }
        }
    }

    /// Gives back the slots a running entry holds; false when it was not running.
    fn release(&mut self, i: usize) -> bool {
        let Some(e) = self.entry_mut(i) else {
            return false;
        };
        if e.state != State::Running {
            return false;
        }
        let express = std::mem::take(&mut e.express);
        let c = class(e.id.kind);
        let host = e.host;
        if express {
            self.express_busy = self.express_busy.saturating_sub(1);
        } else {
            self.busy[c] = self.busy[c].saturating_sub(1);
        }
        if let Some(h) = host {
            self.host_freed(h);
        }
        true
    }

    /// A run ended with `outcome` (`None`: the engine failed or the run was
    /// abandoned, a transient failure). Schedules the next run; returns
    /// the failures in a row so far.
    pub fn finish(&mut self, id: &ObjectId, outcome: Option<&Outcome>, now: Instant) -> u32 {
        let Some(&i) = self.index.get(id) else {
            return 0;
        };
        if !self.release(i) {
            return 0;
        }
        let (backoff, seed) = (self.backoff, self.seed);
        let Some(e) = self.entry_mut(i) else { return 0 };
        if e.gone {
            e.state = State::Idle;
            self.remove(i);
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
        // Not running any more; what waited on it looks again.
        self.set_state(i, State::Idle);
        if rerun {
            self.schedule(i, now, Why::Trigger);
        } else if let Some(d) = next {
            self.schedule(i, now + d, Why::Timer);
        }
        failures
    }

    /// When the loop must look again without being woken: the earliest
    /// timer. Runs already due that could not start wait for a finished
    /// run or a trigger, not for the clock, so the loop never spins.
    pub fn next_wake(&mut self, _now: Instant) -> Option<Instant> {
        while let Some(&Reverse((at, i, v))) = self.timers.peek() {
            let live = self
                .entry(i)
                .is_some_and(|e| e.version == v && matches!(e.state, State::Timed { .. }));
            if live {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    #[cfg(test)]
    fn pending_of(&self, id: &ObjectId) -> Option<(Instant, Why)> {
        self.index
            .get(id)
            .and_then(|&i| self.entry(i))
            .and_then(|e| e.state.pending())
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

    /// 200 slow repositories with a policy each, one automation applying
    /// them all and the fast repository's policy. Every object is on its
    /// first run.
    fn fleet(q: &mut Queue, t0: Instant) -> (ObjectId, ObjectId, ObjectId) {
        for i in 0..200 {
            q.add(
                id(Kind::ImageRepository, &format!("slow-{i}")),
                Some("slow.example".into()),
                t0,
                Why::Start,
            );
            q.add(
                id(Kind::ImagePolicy, &format!("slow-{i}")),
                None,
                t0,
                Why::Start,
            );
        }
        let fast = id(Kind::ImageRepository, "fast");
        let policy = id(Kind::ImagePolicy, "fast");
        let auto = id(Kind::ImageUpdateAutomation, "fleet");
        q.add(fast.clone(), Some("fast.example".into()), t0, Why::Start);
        q.add(policy.clone(), None, t0, Why::Start);
        q.add(auto.clone(), None, t0, Why::Start);
        (fast, policy, auto)
    }

    fn fleet_deps(i: &ObjectId) -> Vec<ObjectId> {
        match i.kind {
            Kind::ImagePolicy => vec![id(Kind::ImageRepository, &i.name)],
            Kind::ImageUpdateAutomation => {
                let mut all: Vec<ObjectId> = (0..200)
                    .map(|n| id(Kind::ImagePolicy, &format!("slow-{n}")))
                    .collect();
                all.push(id(Kind::ImagePolicy, "fast"));
                all
            }
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_webhook_s_push_does_not_wait_for_policies_parked_behind_slow_scans() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(4), Backoff::default(), 1);
        let (fast, policy, auto) = fleet(&mut q, t0);
        let first = q.start(t0, fleet_deps);
        let names: Vec<&str> = first.iter().map(|s| s.id.name.as_str()).collect();
        assert_eq!(
            names,
            ["slow-0", "slow-1", "slow-2", "slow-3", "fast"],
            "four per host; the fast registry is not held up"
        );
        // The fast scan ends while 196 slow ones wait for their host.
        q.finish(&fast, Some(&ok(&fast, Duration::from_secs(3600))), t0);
        assert_eq!(
            q.start(t0, fleet_deps),
            [Start {
                id: policy.clone(),
                why: Why::Start
            }]
        );
        q.finish(&policy, Some(&ok(&policy, Duration::from_secs(3600))), t0);
        assert!(
            q.start(t0, fleet_deps).is_empty(),
            "a first run of the automation waits for every policy's first run"
        );
        // The webhook: a new tag for the fast image.
        let t1 = t0 + Duration::from_secs(1);
        q.trigger(&fast, t1);
        assert_eq!(q.start(t1, fleet_deps).len(), 1);
        q.finish(&fast, Some(&ok(&fast, Duration::from_secs(3600))), t1);
        q.trigger(&policy, t1);
        assert_eq!(q.start(t1, fleet_deps).len(), 1);
        q.finish(&policy, Some(&ok(&policy, Duration::from_secs(3600))), t1);
        q.trigger(&auto, t1);
        assert_eq!(
            q.start(t1, fleet_deps),
            [Start {
                id: auto,
                why: Why::Trigger
            }],
            "triggered: it runs now, not after the 196 slow scans"
        );
    }

    #[test]
    fn a_first_pass_automation_runs_once_every_policy_had_its_first_run() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(4), Backoff::default(), 1);
        let (fast, policy, auto) = fleet(&mut q, t0);
        let mut now = t0;
        let mut running: Vec<ObjectId> =
            q.start(now, fleet_deps).into_iter().map(|s| s.id).collect();
        let mut order = Vec::new();
        for _ in 0..10_000 {
            let Some(done) = running.pop() else { break };
            now += Duration::from_millis(10);
            order.push(done.clone());
            q.finish(&done, Some(&ok(&done, Duration::from_secs(3600))), now);
            running.extend(q.start(now, fleet_deps).into_iter().map(|s| s.id));
        }
        assert_eq!(order.len(), 403, "every object ran once");
        assert_eq!(order.last(), Some(&auto), "the automation last");
        assert!(order.contains(&fast) && order.contains(&policy));
        let first_policy_after_its_scan = order.iter().all(|o| {
            o.kind != Kind::ImagePolicy
                || order
                    .iter()
                    .position(|x| x.kind == Kind::ImageRepository && x.name == o.name)
                    < order.iter().position(|x| x == o)
        });
        assert!(first_policy_after_its_scan, "{order:?}");
    }

    #[test]
    fn the_work_of_a_turn_does_not_grow_with_idle_objects() {
        let visited = |idle: usize| {
            let t0 = Instant::now();
            let mut q = Queue::new(slots(4), Backoff::default(), 1);
            for i in 0..idle {
                q.add(
                    id(Kind::ImageRepository, &format!("idle-{i}")),
                    Some("a.example".into()),
                    t0 + Duration::from_secs(3600),
                    Why::Timer,
                );
            }
            // More due than slots: a saturated daemon.
            for i in 0..50 {
                q.add(
                    id(Kind::ImageRepository, &format!("due-{i}")),
                    Some(format!("h{}.example", i % 10)),
                    t0,
                    Why::Timer,
                );
            }
            let started = q.start(t0, none);
            assert_eq!(started.len(), 8);
            let wake = q.next_wake(t0);
            assert_eq!(
                wake,
                Some(t0 + Duration::from_secs(3600)),
                "due runs that cannot start wait for a slot, not for the clock"
            );
            q.visited = 0;
            let mut now = t0;
            for s in started {
                now += Duration::from_millis(1);
                q.finish(&s.id, Some(&ok(&s.id, Duration::from_secs(60))), now);
                assert_eq!(q.start(now, none).len(), 1);
            }
            q.visited
        };
        let few = visited(10);
        assert!(few <= 16, "{few} queue entries looked at for 8 starts");
        assert_eq!(visited(20_000), few, "20,000 idle objects cost nothing");
    }

    #[test]
    fn a_trigger_storm_leaves_the_timer_heap_bounded() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(1), Backoff::default(), 1);
        let r = id(Kind::ImageRepository, "r");
        q.add(r.clone(), None, t0, Why::Start);
        let mut now = t0;
        for _ in 0..50_000 {
            assert_eq!(q.start(now, none).len(), 1);
            q.finish(&r, Some(&ok(&r, Duration::from_secs(3600))), now);
            now += Duration::from_millis(1);
            q.trigger(&r, now);
        }
        assert!(q.timers.len() <= 2048, "{} timers", q.timers.len());
        assert_eq!(q.pending_of(&r), Some((now, Why::Trigger)));
    }

    #[test]
    fn a_trigger_while_parked_on_a_host_keeps_its_place_and_its_urgency() {
        let t0 = Instant::now();
        let mut q = Queue::new(slots(1), Backoff::default(), 1);
        let a = id(Kind::ImageRepository, "a");
        let b = id(Kind::ImageRepository, "b");
        let c = id(Kind::ImageRepository, "c");
        for r in [&a, &b, &c] {
            q.add(r.clone(), Some("one.example".into()), t0, Why::Timer);
        }
        assert_eq!(
            q.start(t0, none).len(),
            1,
            "a runs; b and c wait for the host"
        );
        q.trigger(&c, t0);
        q.finish(&a, Some(&ok(&a, Duration::from_secs(60))), t0);
        assert_eq!(
            q.start(t0, none),
            [Start {
                id: c.clone(),
                why: Why::Trigger
            }],
            "the triggered scan goes before the one due on its timer"
        );
        q.finish(&c, Some(&ok(&c, Duration::from_secs(60))), t0);
        assert_eq!(
            q.start(t0, none),
            [Start {
                id: b,
                why: Why::Timer
            }]
        );
    }
}
