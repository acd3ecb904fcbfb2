//! The reactor: the single task that owns all state, turns triggers into keys, and runs reconciles.
//!
//! Every source feeds one channel; the reactor reads it, decides which key a
//! trigger concerns (an app, the sweep, the manifests), and leaves *when* to
//! the [`Scheduler`]. Ready keys run as tasks, a few at once; their results
//! come back here, so no state is ever shared or locked.

mod companions;
mod duplicates;
mod exits;
mod forget;
mod health;
mod manifests;
mod networks;
mod observers;
mod outage;
mod routing;
mod run_loop;
mod slots;

pub use companions::{SYSTEMD_UNIT_LABEL, UNIT_DIR_SETTLE};
pub use forget::MapSizes;

use run_loop::{Stopped, Until};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::manifest::{AppsDir, ManifestSet};
use crate::observe::{EventSeen, Observer, Source, Subject, What};
use crate::reconcile::app::reconcile_app_among;
use crate::reconcile::health::{check_health, HealthState};
use crate::reconcile::sweep::{sweep, SweepFindings};
use crate::reconcile::{Action, Failure, Reaction};
use crate::report::Reporter;
use crate::runtime::Podman;
use crate::scheduler::{Finished, Scheduler};
use crate::trigger::{Key, Trigger};
use crate::APP_LABEL;

/// Container event actions that can mean a container left its declared state.
/// Everything else (create, init, start, attach, exec, …) is an effect, not a cause;
/// `cleanup` and `kill` always travel with `died`. `stop` is a hint only: podman
/// 4.3 often and podman 5 practically always leave it out of a `podman stop`
/// (its `died` is the news). `restart` is podman's restart policy bringing a
/// container back, `exec_died` a healthcheck's or exec's process: none
/// leaves the declared state. `health_status` (a check's verdict) goes to the
/// app's health key instead (`reactor/health.rs`).
pub const REACT_TO: &[&str] = &["died", "stop", "remove", "pause", "rename"];

/// How long manifest-directory changes settle before the directory is re-read
/// (an editor's save is several events): each change restarts the wait.
pub const MANIFEST_SETTLE: Duration = Duration::from_millis(50);
/// The longest a stream of changes can put a re-read off.
pub const MANIFEST_SETTLE_MAX: Duration = Duration::from_secs(1);

/// How long before a check of an app began an event must have happened for
/// that check to have seen it. podman writes an event (`died`: while it
/// handles the exit) a moment before it saves the state the event reports,
/// so an inspect in that moment may still show the state from before.
pub const CHECK_MARGIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct ReactorConfig {
    /// The apps directory to re-read when it changes (None: manifests are fixed).
    pub apps_dir: Option<PathBuf>,
    /// Remove labelled containers that have no manifest.
    pub prune_orphans: bool,
    /// How many keys may reconcile at once.
    pub max_concurrent: usize,
    /// How long in-flight reconciles may take to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            apps_dir: None,
            prune_orphans: false,
            max_concurrent: 4,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What a finished task hands back.
enum Done {
    App(Reaction, Check),
    Sweep(Reaction, SweepFindings),
    Manifests(Reaction, Option<ManifestSet>),
    Companions(crate::reconcile::companion::BatchReactions),
    Health(Reaction, HealthState),
}

impl Done {
    fn reaction(&self) -> &Reaction {
        match self {
            Done::App(r, _) | Done::Sweep(r, _) | Done::Manifests(r, _) | Done::Health(r, _) => r,
            Done::Companions(b) => &b.summary,
        }
    }
}

/// When a reconcile of an app began (before its inspect): on the runtime's
/// clock, which stamps podman's events, and on ours, to notice that clock
/// being stepped.
#[derive(Debug, Clone, Copy)]
struct Check {
    began: Timestamp,
    mono: Instant,
}

impl Check {
    fn now(rt: &impl Podman) -> Self {
        Check {
            began: rt.now(),
            mono: Instant::now(),
        }
    }
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub triggers: u64,
    pub reconciles: u64,
    pub sweeps: u64,
    pub failures: u64,
    /// Reconcile tasks that panicked (each settled as a failure).
    pub panics: u64,
}

/// See the module documentation.
pub struct Reactor<R: Podman> {
    rt: Arc<R>,
    rx: mpsc::Receiver<Trigger>,
    cfg: ReactorConfig,
    apps: Arc<ManifestSet>,
    /// The apps directory as last read (when `cfg.apps_dir` is set). Only the
    /// manifests key uses it, never twice at once; a mutex lets it go to a
    /// blocking task and survive that task's panic.
    apps_dir: Option<Arc<std::sync::Mutex<AppsDir>>>,
    /// Apps that had a manifest at some point in this run: their containers
    /// go when the manifest goes. Containers of others are orphans.
    had_manifest: HashSet<String>,
    reported_orphans: BTreeSet<String>,
    /// The manifest errors reported last: (file, line).
    reported_errors: Vec<(PathBuf, String)>,
    /// Container id → app id, learnt from events and sweeps, so an exit file
    /// (named by container id only) can be mapped to its app.
    container_apps: HashMap<String, String>,
    /// App id → when its last successful reconcile began. An event from well
    /// before that is no news: that reconcile's inspect saw its effect.
    checks: HashMap<String, Check>,
    /// Exit files seen written, and when each app was last looked at.
    exits: exits::Exits,
    /// App id → its healthcheck's streak and verdict (apps with a healthcheck).
    health: HashMap<String, HealthState>,
    /// App id → the app it waits for (its last reconcile's `wait`).
    waiting: HashMap<String, String>,
    sched: Scheduler<Key>,
    inflight: JoinSet<Done>,
    /// Which ready key may start: the slots, one run per app, each task's keys.
    slots: slots::Slots,
    /// Apps whose health run is in flight: cancelled when the app's
    /// declaration changes, so a restart decided on the old one is called off.
    health_runs: HashMap<String, CancellationToken>,
    /// App id → the why of its last printed wait (a repeat is not printed).
    waits_said: HashMap<String, String>,
    report: Reporter,
    /// Who else reads the records of events and reactions (status, metrics).
    observers: Vec<Box<dyn Observer>>,
    stats: Stats,
    /// Companion units (enabled by `with_companions`).
    comp: companions::Companions,
    /// Containers carrying an app's label under another name.
    dups: duplicates::Duplicates,
    /// Whether podman is known to be away.
    outage: outage::Outage,
}

impl<R: Podman> Reactor<R> {
    pub fn new(
        rt: Arc<R>,
        rx: mpsc::Receiver<Trigger>,
        apps: ManifestSet,
        cfg: ReactorConfig,
        report: Reporter,
    ) -> Self {
        let had_manifest = apps.apps.keys().cloned().collect();
        let apps_dir = cfg
            .apps_dir
            .as_deref()
            .map(|dir| Arc::new(std::sync::Mutex::new(AppsDir::resume(dir, &apps))));
        let slots = slots::Slots::new(cfg.max_concurrent);
        let mut reactor = Reactor {
            rt,
            rx,
            cfg,
            apps: Arc::new(ManifestSet::default()),
            apps_dir,
            had_manifest,
            reported_orphans: BTreeSet::new(),
            reported_errors: Vec::new(),
            container_apps: HashMap::new(),
            checks: HashMap::new(),
            exits: exits::Exits::default(),
            health: HashMap::new(),
            waiting: HashMap::new(),
            sched: Scheduler::default(),
            inflight: JoinSet::new(),
            slots,
            health_runs: HashMap::new(),
            waits_said: HashMap::new(),
            report,
            observers: Vec::new(),
            stats: Stats::default(),
            comp: companions::Companions::default(),
            dups: duplicates::Duplicates::default(),
            outage: outage::Outage::default(),
        };
        reactor.report_manifest_errors(&apps);
        reactor.apps = Arc::new(apps);
        reactor.schedule_checks(reactor.apps.apps.keys().cloned().collect(), Instant::now());
        reactor
    }

    /// Run until the channel closes (every source has stopped) or `shutdown`
    /// fires, then let in-flight reconciles finish within the drain timeout.
    pub async fn run(mut self, shutdown: CancellationToken) -> Stats {
        self.run_loop(Until::Shutdown(&shutdown)).await;
        self.drain().await;
        self.stats
    }

    /// Process triggers until nothing is queued or running but the health
    /// checks' timers, which requeue themselves for ever (replay and tests).
    pub async fn run_until_idle(&mut self) {
        self.run_loop(Until::Idle).await;
    }

    /// Handle one trigger now (replay feeds triggers one by one).
    pub fn handle(&mut self, trigger: Trigger) {
        self.on_trigger(trigger);
        self.dispatch();
    }

    /// Run finished reconciles and due keys until `until` (virtual time in replay).
    pub async fn step_until(&mut self, until: Instant) {
        self.run_loop(Until::Deadline(until)).await;
    }

    /// When the reactor next has something to do by itself: now while a
    /// reconcile runs, else its earliest queued deadline (None: nothing at
    /// all). Replay jumps virtual time to it over quiet stretches.
    pub fn next_wake(&self) -> Option<Instant> {
        if !self.inflight.is_empty() {
            return Some(Instant::now());
        }
        self.next_deadline()
    }

    /// Nothing to do but wait for a health check's timer: no reconcile
    /// runs, and every queued key is a check due later. A replay ends here.
    pub fn is_idle(&self) -> bool {
        let now = Instant::now();
        self.inflight.is_empty()
            && self
                .sched
                .is_idle_but(|k, at| matches!(k, Key::Health(_)) && at > now)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn report_mut(&mut self) -> &mut Reporter {
        &mut self.report
    }

    /// Let the reconciles in flight finish (reporting each), within the
    /// drain timeout; abandon what is left then.
    async fn drain(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        self.report.note(
            "shutdown",
            &format!("waiting for {} reconcile(s) in flight", self.inflight.len()),
            false,
        );
        let deadline = Instant::now() + self.cfg.drain_timeout;
        if self.run_loop(Until::Drained(deadline)).await == Stopped::DrainTimedOut {
            self.report.note(
                "shutdown",
                "drain timeout: abandoning reconciles in flight",
                true,
            );
            self.inflight.abort_all();
        }
    }

    /// When the next key the reactor would start becomes ready (companion
    /// keys are held back while a companion batch runs).
    fn next_deadline(&self) -> Option<Instant> {
        // Every slot taken: a ready key cannot start before a reconcile
        // finishes, which wakes the loop anyway. Waiting for a deadline that
        // has passed would spin (and freeze paused time in tests); so would
        // one of a key held back (its app busy: the end of that run wakes us).
        if self.slots.is_full() {
            return None;
        }
        self.sched.next_deadline_if(|k| self.may_start(k))
    }

    /// Whether a ready `key` may start now: a slot is free for it, no other
    /// key of its app runs, and (a companion) no companion batch runs.
    fn may_start(&self, key: &Key) -> bool {
        !(self.comp.batch_running && matches!(key, Key::Companion(_))) && self.slots.accepts(key)
    }

    /// Start every ready key that may start.
    fn dispatch(&mut self) {
        let now = Instant::now();
        loop {
            let (comp, slots) = (&self.comp, &self.slots);
            let Some(key) = self.sched.pop_ready_if(now, |k| {
                !(comp.batch_running && matches!(k, Key::Companion(_))) && slots.accepts(k)
            }) else {
                break;
            };
            self.spawn(key);
        }
    }

    /// Spawn the reconcile of `keys` (one key, or a companion batch).
    fn launch(
        &mut self,
        keys: Vec<Key>,
        task: impl std::future::Future<Output = Done> + Send + 'static,
    ) {
        let id = self.inflight.spawn(task).id();
        self.slots.started(id, keys);
    }

    /// What this reactor remembers of app `id` for its reconcile (issue 23;
    /// adopt lane, minimal: `adopt: true` only, the memory lane the rest).
    fn remembered(&self, id: &str) -> crate::reconcile::Remembered {
        routing::remembered(&self.apps, id)
    }

    fn spawn(&mut self, key: Key) {
        let rt = self.rt.clone();
        let apps = self.apps.clone();
        let keys = vec![key.clone()];
        match key {
            Key::App(id) => {
                self.stats.reconciles += 1;
                let may_remove = self.may_remove(&id);
                let mut remembered = self.remembered(&id);
                remembered.update_under_way = self.dups.update_under_way(&id); // issue 23 (replace)
                self.exits.looking(&id, Instant::now());
                self.launch(keys, async move {
                    // Taken right before the reconcile's first call, its inspect.
                    let check = Check::now(&*rt);
                    let desired = apps.apps.get(&id);
                    let r = reconcile_app_among(
                        &*rt,
                        &id,
                        Some(&apps),
                        desired,
                        may_remove,
                        &remembered,
                    )
                    .await;
                    Done::App(r, check)
                });
            }
            Key::Sweep => {
                self.stats.sweeps += 1;
                let removable = self.had_manifest.clone();
                let prune = self.prune_orphans();
                self.launch(keys, async move {
                    let (r, f) = sweep(&*rt, &apps, &removable, prune).await;
                    Done::Sweep(r, f)
                });
            }
            Key::Manifests => {
                let dir = self.apps_dir.clone();
                self.launch(keys, async move {
                    let mut r = Reaction::new(Key::Manifests);
                    r.action = Action::Reload;
                    let Some(dir) = dir else {
                        return Done::Manifests(r, None);
                    };
                    let loaded = tokio::task::spawn_blocking(move || {
                        dir.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .read()
                    })
                    .await;
                    match loaded {
                        Ok(Ok(set)) => {
                            r.why = format!("{} apps, {} errors", set.apps.len(), set.errors.len());
                            Done::Manifests(r, Some(set))
                        }
                        Ok(Err(e)) => {
                            r.result = Err(Failure::Manifests(e.to_string()));
                            Done::Manifests(r, None)
                        }
                        Err(e) => {
                            r.result = Err(Failure::Panicked(e.to_string()));
                            Done::Manifests(r, None)
                        }
                    }
                });
            }
            Key::Companion(name) => self.spawn_companions(name),
            Key::Health(id) => {
                let mut st = self.health.get(&id).cloned().unwrap_or_default();
                st.update_under_way = self.dups.update_under_way(&id); // issue 23 (replace)
                let cancel = CancellationToken::new();
                self.health_runs.insert(id.clone(), cancel.clone());
                self.launch(keys, async move {
                    let (r, st) = check_health(&*rt, &id, apps.apps.get(&id), st, &cancel).await;
                    Done::Health(r, st)
                });
            }
        }
    }

    fn finish(&mut self, done: Done) {
        let done = match done {
            Done::Companions(outcome) => return self.finish_companions(outcome),
            other => other,
        };
        let now = Instant::now();
        let reaction = done.reaction();
        // A health check that changed nothing is no news; nor is an app's
        // wait that says what its last one said (a stop by hand looked at
        // every few ms until podman is done with it).
        let quiet_check = matches!(reaction.key, Key::Health(_))
            && reaction.action == Action::None
            && reaction.result.is_ok();
        let said_already = self.wait_said_before(reaction);
        self.settle(reaction, now, !(quiet_check || said_already));
        match done {
            Done::App(r, check) => {
                // Its container is down and it looks again shortly (the exit
                // grace, podman cleaning up): that look is still a repair.
                if let Key::App(id) = &r.key {
                    if r.action == Action::Wait
                        && r.waits_for.is_none()
                        && r.found.first().is_some_and(|f| f.state != "running")
                    {
                        self.slots.repair_due(id);
                    }
                }
                if let (Key::App(id), Ok(())) = (&r.key, &r.result) {
                    match self.checks.get_mut(id) {
                        Some(last) => *last = check,
                        None => {
                            self.checks.insert(id.clone(), check);
                        }
                    }
                }
                self.after_app_reaction(&r, now);
                self.forget_if_gone(&r);
            }
            Done::Sweep(r, findings) => {
                if r.result.is_ok() {
                    self.container_apps = findings.containers.into_iter().collect();
                    let known = &self.container_apps;
                    self.exits.keep_containers(|id| known.contains_key(id));
                    self.learn_duplicates(findings.duplicates, findings.updating);
                    self.forget_absent();
                    // An orphan no longer found is no longer remembered (and
                    // is reported again should it come back).
                    let found = &findings.orphans;
                    self.reported_orphans.retain(|o| found.contains(o));
                }
                self.on_sweep_reach(r.failure(), now);
                for (key, why) in &r.queue {
                    let verdict = self.schedule_verdict(key, now);
                    self.observe_event(&EventSeen {
                        at: now,
                        source: Source::Sweep,
                        kind: "drift",
                        what: What::Words(why),
                        subject: Subject::Key(key.into()),
                        verdict,
                    });
                }
                let why = if self.cfg.prune_orphans {
                    "left alone while a manifest is invalid (it may be this app's)"
                } else {
                    "left alone (--prune-orphans removes it)"
                };
                for orphan in findings.orphans {
                    if self.reported_orphans.insert(orphan.clone()) {
                        self.report.note(
                            "orphan",
                            &format!("{orphan}: labelled {APP_LABEL} but no manifest; {why}"),
                            true,
                        );
                    }
                }
            }
            Done::Manifests(_, Some(set)) => self.apply_manifests(set, now),
            Done::Health(r, st) => {
                if let Key::Health(id) = r.key {
                    self.health_runs.remove(&id);
                    if r.action == Action::Healthy {
                        self.wake_dependents(&id, health::DepNews::Healthy, now);
                    }
                    if st == HealthState::default() || !self.apps.apps.contains_key(&id) {
                        self.health.remove(&id);
                    } else {
                        self.health.insert(id, st);
                    }
                }
            }
            Done::Manifests(_, None) | Done::Companions(_) => {}
        }
    }

    /// Whether `r` is an app's wait that repeats its last one word for word
    /// (remembered until the app does something else).
    fn wait_said_before(&mut self, r: &Reaction) -> bool {
        let Key::App(id) = &r.key else { return false };
        if r.action != Action::Wait || r.result.is_err() {
            self.waits_said.remove(id);
            return false;
        }
        if self.waits_said.get(id) == Some(&r.why) {
            return true;
        }
        self.waits_said.insert(id.clone(), r.why.clone());
        false
    }

    /// A task that panicked (or was aborted) took its reaction with it: its
    /// keys are settled as failed, so they back off and run again, never
    /// left running for good.
    fn settle_lost(&mut self, keys: Vec<Key>, e: &tokio::task::JoinError, draining: bool) {
        tracing::error!(error = %e, "a reconcile task panicked");
        self.stats.panics += 1;
        let now = Instant::now();
        for key in keys {
            match &key {
                Key::Companion(_) => self.comp.batch_running = false,
                Key::Health(id) => {
                    self.health_runs.remove(id);
                }
                _ => {}
            }
            let mut r = Reaction::new(key);
            r.result = Err(Failure::Panicked(e.to_string()));
            if draining {
                self.observe_reaction(&r, None, false);
            } else {
                self.settle(&r, now, true);
            }
        }
    }

    /// The one way a finished reconcile (an app's, the sweep's, the
    /// manifests', each companion's) becomes the scheduler's verdict: the key
    /// is done or failed (and backs off), the reaction is reported with its
    /// retry, and a requested look-again is queued.
    fn settle(&mut self, reaction: &Reaction, now: Instant, print: bool) {
        let finished = match &reaction.result {
            Ok(()) => Finished::Ok {
                restarted_after: reaction.restarted_after,
            },
            Err(_) => {
                self.stats.failures += 1;
                Finished::Failed
            }
        };
        let next = self.sched.finish(&reaction.key, finished, now);
        let retry_in = match finished {
            Finished::Failed => next.map(|at| at.saturating_duration_since(now)),
            Finished::Ok { .. } => None,
        };
        self.observe_reaction(reaction, retry_in, !print);
        if let Some(after) = reaction.requeue_after {
            self.sched.schedule(reaction.key.clone(), now + after);
        }
    }
}
