//! The reactor: the single task that owns all state, turns triggers into keys, and runs reconciles.
//!
//! Every source feeds one channel; the reactor reads it, decides which key a
//! trigger concerns (an app, the sweep, the manifests), and leaves *when* to
//! the [`Scheduler`]. Ready keys run as tasks, a few at once; their results
//! come back here, so no state is ever shared or locked.

mod companions;
mod duplicates;
mod outage;

pub use companions::{SYSTEMD_UNIT_LABEL, UNIT_DIR_SETTLE};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::manifest::{self, AppsDir, ManifestSet};
use crate::reconcile::app::reconcile_app;
use crate::reconcile::sweep::{sweep, SweepFindings};
use crate::reconcile::Reaction;
use crate::report::{secs, Reporter};
use crate::runtime::Runtime;
use crate::scheduler::{Finished, Scheduled, Scheduler};
use crate::trigger::{ChangeKind, FileChange, Key, PodmanEvent, StreamStatus, Trigger};
use crate::APP_LABEL;

/// Container event actions that can mean a container left its declared state.
/// Everything else (create, init, start, attach, exec, …) is an effect, not a cause;
/// `cleanup` and `kill` always travel with `died`. `stop` is a hint only: podman
/// 4.3 often and podman 5 practically always leave it out of a `podman stop`
/// (its `died` is the news). `restart` is podman's restart policy bringing a
/// container back, `health_status` a healthcheck's verdict (manifests declare
/// no healthcheck), `exec_died` a healthcheck's or exec's process: none
/// leaves the declared state.
pub const REACT_TO: &[&str] = &["died", "stop", "remove", "pause", "rename"];

/// How long manifest-directory changes settle before the directory is re-read
/// (an editor's save is several events): each change restarts the wait.
pub const MANIFEST_SETTLE: Duration = Duration::from_millis(50);
/// The longest a stream of changes can put a re-read off.
pub const MANIFEST_SETTLE_MAX: Duration = Duration::from_secs(1);

/// How many waiting triggers the reactor handles before it looks at finished
/// reconciles, timers and shutdown again (a few microseconds' worth).
const BATCH: usize = 64;

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
    Companions(crate::reconcile::companion::BatchOutcome),
}

impl Done {
    fn reaction(&self) -> &Reaction {
        match self {
            Done::App(r, _) | Done::Sweep(r, _) | Done::Manifests(r, _) => r,
            Done::Companions(b) => &b.summary,
        }
    }
}

/// When a reconcile of an app began (before its inspect): on the runtime's
/// clock, which stamps podman's events, and on ours, to notice that clock
/// being stepped.
#[derive(Debug, Clone, Copy)]
struct Check {
    began: DateTime<Utc>,
    mono: Instant,
}

impl Check {
    fn now(rt: &impl Runtime) -> Self {
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
}

/// See the module documentation.
pub struct Reactor<R: Runtime> {
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
    sched: Scheduler<Key>,
    inflight: JoinSet<Done>,
    report: Reporter,
    stats: Stats,
    /// Companion units (enabled by `with_companions`).
    comp: companions::Companions,
    /// Containers carrying an app's label under another name.
    dups: duplicates::Duplicates,
    /// Whether podman is known to be away.
    outage: outage::Outage,
}

impl<R: Runtime> Reactor<R> {
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
            sched: Scheduler::default(),
            inflight: JoinSet::new(),
            report,
            stats: Stats::default(),
            comp: companions::Companions::default(),
            dups: duplicates::Duplicates::default(),
            outage: outage::Outage::default(),
        };
        reactor.report_manifest_errors(&apps);
        reactor.report.declared(&apps);
        reactor.apps = Arc::new(apps);
        reactor
    }

    /// Run until the channel closes (every source has stopped) or `shutdown`
    /// fires, then let in-flight reconciles finish within the drain timeout.
    pub async fn run(mut self, shutdown: CancellationToken) -> Stats {
        // An observer's heartbeat (systemd's watchdog) beats from this loop,
        // so a stuck loop stops it.
        let beat_every = self.report.heartbeat_every();
        let mut beat = tokio::time::interval(beat_every.unwrap_or(Duration::from_secs(3600)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            let deadline = self.next_deadline();
            tokio::select! {
                // Results first: they free slots and may queue follow-ups.
                biased;
                _ = shutdown.cancelled() => break,
                // Before the channel: a storm of triggers must not starve
                // the watchdog of a reactor that is working through it.
                _ = beat.tick(), if beat_every.is_some() => self.report.heartbeat(),
                Some(done) = self.inflight.join_next() => match done {
                    Ok(done) => self.finish(done),
                    Err(e) => tracing::error!(error = %e, "a reconcile task panicked"),
                },
                msg = self.rx.recv() => match msg {
                    Some(trigger) => {
                        self.on_trigger(trigger);
                        // Take what else is waiting before going round again:
                        // one select (cancellation, results, timer) per batch,
                        // not per trigger, when events pour in.
                        for _ in 1..BATCH {
                            match self.rx.try_recv() {
                                Ok(trigger) => self.on_trigger(trigger),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {}
            }
        }
        self.drain().await;
        self.stats
    }

    /// Process triggers until nothing is queued or running (replay and tests).
    pub async fn run_until_idle(&mut self) {
        loop {
            self.dispatch();
            if self.sched.is_idle() && self.inflight.is_empty() {
                return;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                Some(done) = self.inflight.join_next() => {
                    if let Ok(done) = done { self.finish(done) }
                }
                _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {}
            }
        }
    }

    /// Handle one trigger now (replay feeds triggers one by one).
    pub fn handle(&mut self, trigger: Trigger) {
        self.on_trigger(trigger);
        self.dispatch();
    }

    /// Wait for the next finished reconcile or deadline, for at most `until`.
    pub async fn step_until(&mut self, until: Instant) {
        loop {
            self.dispatch();
            let deadline = self.next_deadline().map_or(until, |d| d.min(until));
            tokio::select! {
                biased;
                Some(done) = self.inflight.join_next() => {
                    if let Ok(done) = done { self.finish(done) }
                }
                _ = sleep_until(deadline) => {
                    if Instant::now() >= until { return; }
                }
            }
        }
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

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn report_mut(&mut self) -> &mut Reporter {
        &mut self.report
    }

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
        while !self.inflight.is_empty() {
            tokio::select! {
                Some(done) = self.inflight.join_next() => {
                    if let Ok(done) = done {
                        let r = done.reaction().clone();
                        self.report.reaction(&r, None);
                    }
                }
                _ = sleep_until(deadline) => {
                    self.report.note("shutdown", "drain timeout: abandoning reconciles in flight", true);
                    self.inflight.abort_all();
                    return;
                }
            }
        }
    }

    /// When the next key the reactor would start becomes ready (companion
    /// keys are held back while a companion batch runs).
    fn next_deadline(&self) -> Option<Instant> {
        // Every slot taken: a ready key cannot start before a reconcile
        // finishes, which wakes the loop anyway. Waiting for a deadline that
        // has passed would spin (and freeze paused time in tests).
        if self.inflight.len() >= self.cfg.max_concurrent.max(1) {
            return None;
        }
        let batch_running = self.comp.batch_running;
        self.sched
            .next_deadline_if(|k| !(batch_running && matches!(k, Key::Companion(_))))
    }

    /// Start every ready key, up to the concurrency bound.
    fn dispatch(&mut self) {
        let now = Instant::now();
        while self.inflight.len() < self.cfg.max_concurrent.max(1) {
            // One companion batch at a time: companion keys wait for the next.
            let batch_running = self.comp.batch_running;
            let Some(key) = self
                .sched
                .pop_ready_if(now, |k| !(batch_running && matches!(k, Key::Companion(_))))
            else {
                break;
            };
            self.spawn(key);
        }
    }

    fn spawn(&mut self, key: Key) {
        let rt = self.rt.clone();
        let apps = self.apps.clone();
        match key {
            Key::App(id) => {
                self.stats.reconciles += 1;
                let may_remove = self.may_remove(&id);
                self.inflight.spawn(async move {
                    // Taken right before the reconcile's first call, its inspect.
                    let check = Check::now(&*rt);
                    let r = reconcile_app(&*rt, &id, apps.apps.get(&id), may_remove).await;
                    Done::App(r, check)
                });
            }
            Key::Sweep => {
                self.stats.sweeps += 1;
                let removable = self.had_manifest.clone();
                let prune = self.prune_orphans();
                self.inflight.spawn(async move {
                    let (r, f) = sweep(&*rt, &apps, &removable, prune).await;
                    Done::Sweep(r, f)
                });
            }
            Key::Manifests => {
                let dir = self.apps_dir.clone();
                self.inflight.spawn(async move {
                    let mut r = Reaction::new(Key::Manifests);
                    r.action = "reload";
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
                            r.result = Err(e.to_string());
                            Done::Manifests(r, None)
                        }
                        Err(e) => {
                            r.result = Err(e.to_string());
                            Done::Manifests(r, None)
                        }
                    }
                });
            }
            Key::Companion(name) => self.spawn_companions(name),
        }
    }

    fn finish(&mut self, done: Done) {
        let done = match done {
            Done::Companions(outcome) => return self.finish_companions(outcome),
            other => other,
        };
        let now = Instant::now();
        let reaction = done.reaction().clone();
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
        self.report.reaction(&reaction, retry_in);
        if let Some(after) = reaction.requeue_after {
            self.sched.schedule(reaction.key.clone(), now + after);
        }
        match done {
            Done::App(r, check) => {
                if let (Key::App(id), Ok(())) = (&r.key, &r.result) {
                    match self.checks.get_mut(id) {
                        Some(last) => *last = check,
                        None => {
                            self.checks.insert(id.clone(), check);
                        }
                    }
                }
            }
            Done::Sweep(r, findings) => {
                if r.result.is_ok() {
                    self.container_apps = findings.containers.into_iter().collect();
                    self.learn_duplicates(findings.duplicates);
                }
                self.on_sweep_reach(findings.unreachable, now);
                for (key, why) in r.queue {
                    let verdict = self.schedule_verdict(key.clone(), now);
                    self.report.event("sweep", &why, &key.to_string(), &verdict);
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
            Done::Manifests(_, None) | Done::Companions(_) => {}
        }
    }

    /// Take a freshly read apps directory: queue exactly the apps that changed.
    fn apply_manifests(&mut self, set: ManifestSet, now: Instant) {
        self.report_manifest_errors(&set);
        let old = self.apps.clone();
        let ids: BTreeSet<&String> = old.apps.keys().chain(set.apps.keys()).collect();
        let mut changed = Vec::new();
        for id in ids {
            let why = match (old.apps.get(id), set.apps.get(id)) {
                (None, Some(_)) => "manifest added",
                (Some(_), None) => "manifest gone",
                (Some(a), Some(b)) if a.app != b.app => "manifest changed",
                _ => continue,
            };
            changed.push((id.clone(), why));
        }
        for id in set.apps.keys() {
            self.had_manifest.insert(id.clone());
        }
        self.report.declared(&set);
        self.apps = Arc::new(set);
        self.diff_companions(&old, now);
        for (id, why) in changed {
            let key = Key::App(id);
            // A change of declaration is news: no backoff holds it back.
            self.sched.reset_backoff(&key, now);
            let verdict = self.schedule_verdict(key.clone(), now);
            self.report
                .event("apps-dir", why, &key.to_string(), &verdict);
            if why == "manifest gone" {
                if let Key::App(id) = &key {
                    self.queue_duplicates_of(id, now);
                }
            }
        }
    }

    /// Whether orphans may be removed now: with `--prune-orphans`, and only
    /// while every manifest is valid. An invalid file may be the one that
    /// declares an orphan's app; its container must not pay for a typo.
    fn prune_orphans(&self) -> bool {
        self.cfg.prune_orphans && self.apps.errors.is_empty()
    }

    /// Each error once, while it lasts; a file that was in error and no
    /// longer is gets one line saying so.
    fn report_manifest_errors(&mut self, set: &ManifestSet) {
        let errors: Vec<(PathBuf, String)> = set
            .errors
            .iter()
            .map(|e| (e.file.clone(), e.to_string()))
            .collect();
        for (_, e) in &errors {
            if !self.reported_errors.iter().any(|(_, r)| r == e) {
                self.report.note("manifest error", e, true);
            }
        }
        let fixed: BTreeSet<&PathBuf> = self
            .reported_errors
            .iter()
            .map(|(f, _)| f)
            .filter(|f| !errors.iter().any(|(e, _)| e == *f))
            .collect();
        for file in fixed {
            let what = if file.exists() { "valid again" } else { "gone" };
            let file = manifest::excerpt::file_name(&file.display().to_string());
            self.report
                .note("manifest", &format!("{file}: {what}"), false);
        }
        self.reported_errors = errors;
    }

    fn on_trigger(&mut self, trigger: Trigger) {
        self.stats.triggers += 1;
        let now = Instant::now();
        match trigger {
            Trigger::Podman(ev) => self.on_podman_event(&ev, now),
            Trigger::Stream(StreamStatus::Connected { resumed }) => {
                // A sweep on every (re)connect covers whatever happened while
                // nobody was listening.
                self.on_stream_connected(now);
                let what = if resumed {
                    self.sched.reset_failures(now);
                    "stream resumed after a gap"
                } else {
                    "stream connected"
                };
                let verdict = self.schedule_verdict(Key::Sweep, now);
                self.report.event("podman", what, "", &verdict);
            }
            Trigger::Stream(StreamStatus::Lost { error }) => {
                self.report.note(
                    "podman",
                    &format!("events stream lost: {error}; reconnecting"),
                    true,
                );
            }
            Trigger::AppsDir(change) => self.on_apps_dir(&change, now),
            Trigger::UnitDir(change) => self.on_unit_dir(&change, now),
            Trigger::ContainerExited { id } => {
                let short = &id[..id.len().min(12)];
                let verdict = match self.container_apps.get(&id) {
                    Some(app)
                        if self.apps.apps.contains_key(app) || self.had_manifest.contains(app) =>
                    {
                        self.schedule_verdict(Key::App(app.clone()), now)
                    }
                    _ => "ignored: not a container podkeeper manages".to_string(),
                };
                self.report.event("conmon", "exit file", short, &verdict);
            }
            Trigger::SweepTick => {
                let verdict = self.schedule_verdict(Key::Sweep, now);
                self.report.event("timer", "sweep due", "", &verdict);
                // The sweep covers companions too: one batch, one `show` for all.
                self.queue_all_companions("timer", "sweep due (companions)");
            }
            Trigger::Reload => self.on_reload(now),
        }
    }

    /// The hot path: every podman event comes through here. It decides with
    /// at most one allocation (the key it schedules) and puts the decision
    /// into words only when the reporter shows them.
    fn on_podman_event(&mut self, ev: &PodmanEvent, now: Instant) {
        let is_container = ev.typ == "container";
        let app = if is_container {
            ev.label(APP_LABEL)
        } else {
            None
        };
        if is_container {
            match (app, ev.action.as_str()) {
                (_, "remove") => {
                    self.container_apps.remove(&ev.actor.id);
                    self.forget_duplicate(ev.name());
                }
                (Some(app), "rename") => {
                    self.container_apps
                        .insert(ev.actor.id.clone(), app.to_string());
                    self.on_rename(app, ev.name(), now);
                }
                (Some(app), _) => {
                    if !self.container_apps.contains_key(&ev.actor.id) {
                        self.container_apps
                            .insert(ev.actor.id.clone(), app.to_string());
                    }
                }
                (None, _) => {}
            }
        }
        let verdict = if !is_container {
            EventVerdict::NotAContainer
        } else {
            match app {
                None => match ev.label(SYSTEMD_UNIT_LABEL) {
                    Some(unit) => EventVerdict::Unit(self.on_unit_container_event(ev, unit, now)),
                    None => EventVerdict::Unmanaged,
                },
                // had_manifest holds every id of `apps` too: its hash lookup
                // first, not a walk down the manifests' tree on every event.
                Some(id) if !self.had_manifest.contains(id) && !self.apps.apps.contains_key(id) => {
                    EventVerdict::Orphan
                }
                Some(_) if !REACT_TO.contains(&ev.action.as_str()) => EventVerdict::NoChange,
                Some(id) if self.seen_by_last_check(id, ev) => EventVerdict::SeenByCheck(id),
                Some(id) => {
                    EventVerdict::Scheduled(id, self.sched.schedule(Key::App(id.to_string()), now))
                }
            }
        };
        if !self.report.wants_events() {
            return;
        }
        let mut what = format!("{} {}", ev.typ, ev.action);
        if let Some(code) = ev
            .label("containerExitCode")
            .filter(|_| ev.action == "died")
        {
            what = format!("{what} ({code})");
        } else if let Some(health) = ev.rest.get("HealthStatus").and_then(|h| h.as_str()) {
            what = format!("{what} ({health})");
        }
        let verdict = verdict.describe(ev);
        self.report.event("podman", &what, ev.name(), &verdict);
    }

    /// Whether the last successful reconcile of app `id` already saw what
    /// `ev` reports: the event happened more than [`CHECK_MARGIN`] before
    /// that reconcile's inspect. A later exit (one after a restart we made,
    /// or after an inspect that found the app running) is stamped after that
    /// inspect, so it is never taken for one. Exit files carry no time and
    /// never come here.
    fn seen_by_last_check(&self, id: &str, ev: &PodmanEvent) -> bool {
        // An event without a time (0) is news.
        if ev.time_nano <= 0 {
            return false;
        }
        let Some(check) = self.checks.get(id) else {
            return false;
        };
        let Some(began) = check.began.timestamp_nanos_opt() else {
            return false;
        };
        let margin = CHECK_MARGIN.as_nanos() as i64;
        if ev.time_nano >= began.saturating_sub(margin) {
            return false;
        }
        // Trust the comparison only while the runtime's clock has kept pace
        // with the monotonic one since the check: a wall clock stepped back
        // (NTP at boot) would stamp a new exit with a time before the check.
        let Some(now) = self.rt.now().timestamp_nanos_opt() else {
            return false;
        };
        let on_runtime = now.saturating_sub(began);
        let on_ours = i64::try_from(check.mono.elapsed().as_nanos()).unwrap_or(i64::MAX);
        on_runtime.abs_diff(on_ours) < margin as u64
    }

    fn on_apps_dir(&mut self, change: &FileChange, now: Instant) {
        let relevant = change.kind == ChangeKind::Rescan
            || change.path.as_os_str().is_empty()
            || manifest::is_manifest_file(&change.path);
        let verdict = if relevant {
            // Debounced: read once, after the writes settle.
            let scheduled =
                self.sched
                    .debounce(Key::Manifests, now, MANIFEST_SETTLE, MANIFEST_SETTLE_MAX);
            describe_scheduled(&Key::Manifests, scheduled)
        } else {
            "ignored: not a manifest (*.yaml, *.yml)".to_string()
        };
        self.report.event(
            "apps-dir",
            &change.kind.to_string(),
            &change.path.display().to_string(),
            &verdict,
        );
    }

    /// SIGHUP: re-read the manifests, look at every companion's file and
    /// service, and sweep; one line says so.
    fn on_reload(&mut self, now: Instant) {
        self.sched.schedule(Key::Manifests, now);
        let companions = self.queue_every_companion(now);
        self.sched.schedule(Key::Sweep, now);
        self.report.note(
            "signal",
            &format!("SIGHUP: re-reading the manifests, {companions} companion(s) and sweeping"),
            false,
        );
    }

    /// Schedule `key` and say, for the debug line, what that did.
    fn schedule_verdict(&mut self, key: Key, at: Instant) -> String {
        let scheduled = self.sched.schedule(key.clone(), at);
        describe_scheduled(&key, scheduled)
    }
}

/// What scheduling `key` did, in the words of the debug line.
fn describe_scheduled(key: &Key, scheduled: Scheduled) -> String {
    let now = Instant::now();
    match scheduled {
        Scheduled::Queued(t) if t <= now => format!("queue {key}"),
        Scheduled::Queued(t) => format!("queue {key} in {}", secs(t - now)),
        Scheduled::Merged(t) if t <= now => format!("{key} already queued"),
        Scheduled::Merged(t) => format!("{key} already queued (runs in {})", secs(t - now)),
        Scheduled::Dirty => format!("{key} running; runs once more after"),
    }
}

/// What the reactor made of a podman event, kept in this form until someone
/// reads it (see [`Reactor::on_podman_event`]).
enum EventVerdict<'e> {
    NotAContainer,
    Unmanaged,
    Orphan,
    /// The action cannot take a container out of its declared state.
    NoChange,
    /// The app's last successful reconcile already saw it.
    SeenByCheck(&'e str),
    Scheduled(&'e str, Scheduled),
    /// A systemd unit's container: the companions' verdict.
    Unit(String),
}

impl EventVerdict<'_> {
    fn describe(self, ev: &PodmanEvent) -> String {
        match self {
            EventVerdict::NotAContainer => {
                format!("ignored: {} events do not change an app", ev.typ)
            }
            EventVerdict::Unmanaged => "ignored: not managed (no io.podkeeper.app label)".into(),
            EventVerdict::Orphan => "ignored: orphan (no manifest)".into(),
            EventVerdict::NoChange => {
                format!("ignored: {} does not leave the declared state", ev.action)
            }
            EventVerdict::SeenByCheck(id) => {
                format!("ignored: older than the last check of app/{id}")
            }
            EventVerdict::Scheduled(id, s) => describe_scheduled(&Key::App(id.to_string()), s),
            EventVerdict::Unit(verdict) => verdict,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}
