//! Reconcile a batch of companions: unit files written atomically, one daemon-reload for all, each service brought up, restarted only when its definition changed.
//!
//! A batch is whatever companions were due at once (the reactor collects
//! them), so a burst of file changes costs one `daemon-reload`, and the state
//! of every companion is read with one `show`. The steps:
//!
//! 1. `show` the batch's services; for a running service whose run
//!    (`InvocationID`) we have not seen, remember the definition it runs: the
//!    generated unit it was started from, read from `FragmentPath` *before* any
//!    reload (the generator's output only changes on a reload).
//! 2. Stop the services of companions that go away.
//! 3. Write the files that are missing or differ (temporary file in the same
//!    directory, fsync, rename, mode 0644: a symlink in the way is replaced,
//!    never written through); remove the files of companions that go away.
//! 4. One `daemon-reload` if anything was written or removed, or systemd says
//!    a definition is stale; before it, one `show` of every other companion,
//!    to learn what their unseen runs were started from (step 1's rule).
//! 5. Per companion: failed or stopped → `reset-failed` (one call) + `start`;
//!    running → `restart` only if the definition it was started from differs
//!    from the one now loaded (a file restored to what the service runs needs
//!    nothing); systemd restarting it itself (`Restart=`, `auto-restart`) →
//!    left alone, looked at again later; starting or stopping → looked at again
//!    shortly.
//! 6. One `show` of what was (re)started, to remember which definition each new
//!    run was started from.
//!
//! Each step is one method of `BatchRun`; `plan` decides per service,
//! `unit_files` is the only code that touches a unit directory, and
//! `summary` turns the finished batch into reactions.

mod plan;
mod summary;
mod unit_files;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use self::plan::{by_id, learn_definition, plan, Plan};
use self::unit_files::{file_step, FileJob, FileOutcome};
pub use self::unit_files::{is_temp_file, write_atomic};
use super::{Action, CallLog, Failure, Reaction};
use crate::manifest::Companion;
use crate::runtime::systemd::{Systemd, UnitState};
use crate::trigger::Key;

/// Look again this soon at a service that is starting or stopping.
pub const TRANSIENT_RECHECK: Duration = Duration::from_millis(100);
/// Look again this soon at a service systemd is auto-restarting (to notice
/// when it gives up).
pub const AUTO_RESTART_RECHECK: Duration = Duration::from_secs(1);
/// How many start/restart/stop jobs run at once.
const JOBS_AT_ONCE: usize = 8;

/// One companion due in this batch.
#[derive(Debug, Clone)]
pub struct CompanionItem {
    pub name: String,
    /// What the manifests declare (None: its app or the companion was deleted).
    pub desired: Option<Companion>,
    /// A definition it had earlier in this run whose file or service differs
    /// from the desired one (deleted, or its kind changed): to be removed.
    pub retired: Option<Companion>,
}

/// The definition a run of a service was started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningDef {
    pub invocation: String,
    /// Hash of the generated unit (`FragmentPath`) that run was started from.
    pub definition: String,
}

/// Per service: what its current run was started from, as far as podkeeper knows.
pub type StartedFrom = HashMap<String, RunningDef>;

/// Everything a batch needs; the reactor builds it and gets it back updated.
#[derive(Debug, Clone)]
pub struct Batch {
    pub unit_dir: PathBuf,
    /// Every unit directory (the first is `unit_dir`): checked for files that
    /// would wedge the Quadlet generator before any reload.
    pub scan_dirs: Vec<PathBuf>,
    pub items: Vec<CompanionItem>,
    /// The services of every companion podkeeper knows (looked at before a reload).
    pub known_services: Vec<String>,
    pub started_from: StartedFrom,
}

/// What a batch did: one summary (the shared calls) and one reaction per companion.
#[derive(Debug, Clone)]
pub struct BatchReactions {
    pub summary: Reaction,
    pub items: Vec<Reaction>,
    pub started_from: StartedFrom,
    /// Companions whose files and services were removed for good.
    pub removed: Vec<String>,
}

/// The key the summary reaction carries (it prints as `companion/*`).
pub fn batch_key() -> Key {
    Key::Companion("*".into())
}

struct Work {
    name: String,
    desired: Option<Companion>,
    /// Companions (desired None, or retired) whose service and file go.
    going: Vec<Companion>,
    file: Option<FileOutcome>,
    removed_files: Vec<FileOutcome>,
    plan: Option<Plan>,
    log: CallLog,
    notes: Vec<String>,
    error: Option<Failure>,
    restarted_after: Option<Duration>,
}

impl Work {
    fn service(&self) -> Option<String> {
        self.desired.as_ref().map(Companion::service_name)
    }

    /// Whether its service was started or restarted in this batch.
    fn started(&self) -> bool {
        matches!(self.plan, Some(Plan::Start { .. } | Plan::Restart(_)))
    }

    fn fail(&mut self, e: impl Into<Failure>) {
        if self.error.is_none() {
            self.error = Some(e.into());
        }
    }
}

/// A shared systemd handle, for the reactor.
pub type SharedSystemd = Arc<dyn Systemd>;

/// Reconcile `batch` against `sd`. Never panics; every failure lands in the
/// reaction of the companion it concerns (a shared call's failure in all).
pub async fn reconcile_companions(sd: &dyn Systemd, batch: Batch) -> BatchReactions {
    let Batch {
        unit_dir,
        scan_dirs,
        items,
        known_services,
        started_from,
    } = batch;
    let mut run = BatchRun::new(sd, items, started_from);
    let shared_error = run.steps(&unit_dir, scan_dirs, known_services).await.err();
    summary::finish(
        run.summary,
        run.slog,
        run.works,
        run.started_from,
        shared_error,
    )
}

/// A batch in progress: the shared calls, each companion's work, and what
/// each run was started from. An `Err` from a step is a shared call's
/// failure, which fails every companion of the batch.
struct BatchRun<'a> {
    sd: &'a dyn Systemd,
    summary: Reaction,
    slog: CallLog,
    works: Vec<Work>,
    started_from: StartedFrom,
}

/// Every unit's state by id, as one `show` reported it.
type States = HashMap<String, UnitState>;

impl<'a> BatchRun<'a> {
    fn new(sd: &'a dyn Systemd, items: Vec<CompanionItem>, started_from: StartedFrom) -> Self {
        let mut summary = Reaction::new(batch_key());
        summary.action = Action::Batch;
        let works = items
            .into_iter()
            .map(|i| {
                let mut going: Vec<Companion> = Vec::new();
                if i.desired.is_none() {
                    going.extend(i.retired.clone());
                } else if let Some(old) = i.retired.clone() {
                    going.push(old);
                }
                Work {
                    name: i.name,
                    desired: i.desired,
                    going,
                    file: None,
                    removed_files: Vec::new(),
                    plan: None,
                    log: CallLog::default(),
                    notes: Vec::new(),
                    error: None,
                    restarted_after: None,
                }
            })
            .collect();
        BatchRun {
            sd,
            summary,
            slog: CallLog::default(),
            works,
            started_from,
        }
    }

    async fn steps(
        &mut self,
        unit_dir: &Path,
        scan_dirs: Vec<PathBuf>,
        known_services: Vec<String>,
    ) -> Result<(), Failure> {
        let (watch, before) = self.show_before().await?;
        self.stop_going(&before).await;
        let changed_files = self.write_files(unit_dir).await?;
        let after = self
            .reload(changed_files, &before, &watch, scan_dirs, known_services)
            .await?;
        self.plan_services(unit_dir, &after).await;
        self.start_and_restart().await;
        self.learn_new_runs().await;
        Ok(())
    }

    /// 1. One show for the batch; learn the definitions of runs not seen yet.
    async fn show_before(&mut self) -> Result<(Vec<String>, States), Failure> {
        let mut watch: BTreeSet<String> = BTreeSet::new();
        for w in &self.works {
            watch.extend(w.service());
            watch.extend(w.going.iter().map(Companion::service_name));
        }
        let watch: Vec<String> = watch.into_iter().collect();
        let before = match self.slog.time("show", self.sd.show(&watch)).await {
            Ok(states) => by_id(states),
            Err(e) => return Err(e.into()),
        };
        for st in before.values() {
            learn_definition(&mut self.started_from, st).await;
        }
        Ok((watch, before))
    }

    /// 2. Stop the services of companions that go away (and forget their failures).
    async fn stop_going(&mut self, before: &States) {
        let sd = self.sd;
        let mut reset_going = Vec::new();
        for w in self.works.iter_mut() {
            for old in w.going.clone() {
                let svc = old.service_name();
                let Some(st) = before.get(&svc) else { continue };
                if st.active_state == "failed" {
                    reset_going.push(svc.clone());
                } else if st.active_state != "inactive" {
                    if let Err(e) = w.log.time("stop", sd.stop(&svc)).await {
                        w.fail(e);
                    }
                }
                self.started_from.remove(&svc);
            }
        }
        if !reset_going.is_empty() {
            if let Err(e) = self
                .slog
                .time("reset-failed", sd.reset_failed(&reset_going))
                .await
            {
                tracing::warn!(error = %e, "reset-failed of removed companions");
            }
        }
    }

    /// 3. Files, off the async threads (fsync can take a while).
    ///
    /// Returns how many files were written or removed.
    async fn write_files(&mut self, unit_dir: &Path) -> Result<usize, Failure> {
        let jobs: Vec<FileJob> = self
            .works
            .iter()
            .map(|w| {
                let keep = w.desired.as_ref().map(|c| (c.file_name(), c.unit.clone()));
                let keep_name = keep.as_ref().map(|(f, _)| f.clone());
                let remove = w
                    .going
                    .iter()
                    .map(Companion::file_name)
                    .filter(|f| Some(f) != keep_name.as_ref())
                    .collect();
                (keep, remove)
            })
            .collect();
        let dir = unit_dir.to_path_buf();
        let files = tokio::task::spawn_blocking(move || file_step(&dir, jobs))
            .await
            .map_err(|e| Failure::Panicked(e.to_string()))?;
        let mut changed_files = 0;
        for (w, (keep, removed, calls)) in self.works.iter_mut().zip(files) {
            w.log.calls.extend(calls);
            if let Some(FileOutcome::Failed(e)) = &keep {
                w.fail(Failure::Companion(e.clone()));
            }
            changed_files += usize::from(matches!(keep, Some(FileOutcome::Written(_))));
            changed_files += removed
                .iter()
                .filter(|r| **r == FileOutcome::Removed)
                .count();
            for r in &removed {
                if let FileOutcome::Failed(e) = r {
                    w.fail(Failure::Companion(e.clone()));
                }
            }
            w.file = keep;
            w.removed_files = removed;
        }
        Ok(changed_files)
    }

    /// 4. One daemon-reload for the whole batch, if anything calls for it.
    ///
    /// Returns the states to plan from (after the reload, or `before`).
    async fn reload(
        &mut self,
        changed_files: usize,
        before: &States,
        watch: &[String],
        scan_dirs: Vec<PathBuf>,
        known_services: Vec<String>,
    ) -> Result<States, Failure> {
        let sd = self.sd;
        let stale: Vec<String> = self
            .works
            .iter()
            .filter_map(|w| {
                let svc = w.service()?;
                let st = before.get(&svc)?;
                (st.need_daemon_reload || !st.is_loaded()).then(|| w.name.clone())
            })
            .collect();
        let mut reload = changed_files > 0 || !stale.is_empty();
        if reload {
            // A FIFO (or device, socket) where Quadlet reads a unit file would
            // wedge the manager: withhold the reload, fail who needed it.
            if let Some(error) = withhold_reload(scan_dirs).await {
                reload = false;
                for w in self.works.iter_mut() {
                    let wrote = matches!(w.file, Some(FileOutcome::Written(_)))
                        || w.removed_files.contains(&FileOutcome::Removed);
                    if wrote || stale.contains(&w.name) {
                        w.fail(Failure::Companion(error.clone()));
                    }
                }
                self.summary.why = error;
            }
        }
        if !reload {
            return Ok(before.clone());
        }
        // The reload changes every unit's loaded definition, so first learn
        // what the other companions' unseen runs were started from.
        let others: Vec<String> = known_services
            .into_iter()
            .filter(|s| !watch.contains(s))
            .collect();
        if !others.is_empty() {
            let states = self.slog.time("show", sd.show(&others)).await?;
            for st in &states {
                learn_definition(&mut self.started_from, st).await;
            }
        }
        self.slog.time("daemon-reload", sd.daemon_reload()).await?;
        let wanted: Vec<String> = self.works.iter().filter_map(Work::service).collect();
        let after = match self.slog.time("show", sd.show(&wanted)).await {
            Ok(states) => by_id(states),
            Err(e) => return Err(e.into()),
        };
        self.summary.why = if changed_files > 0 {
            "daemon-reload: files changed".to_string()
        } else {
            format!("daemon-reload: stale definition of {}", stale.join(", "))
        };
        Ok(after)
    }

    /// 5. Decide per service; one `reset-failed` for every failed one.
    async fn plan_services(&mut self, unit_dir: &Path, after: &States) {
        let mut reset = Vec::new();
        for w in self.works.iter_mut() {
            if w.error.is_some() {
                continue;
            }
            let (Some(c), Some(svc)) = (w.desired.clone(), w.service()) else {
                continue;
            };
            let Some(st) = after.get(&svc) else {
                w.fail(Failure::Companion(format!("systemd did not report {svc}")));
                continue;
            };
            let plan = plan(unit_dir, &c, st, &self.started_from).await;
            if let Plan::Start { reset: true, .. } = plan {
                reset.push(svc.clone());
            }
            if let Plan::Start { .. } = plan {
                w.restarted_after = st.last_uptime();
            }
            w.plan = Some(plan);
        }
        if !reset.is_empty() {
            if let Err(e) = self
                .slog
                .time("reset-failed", self.sd.reset_failed(&reset))
                .await
            {
                // start may still work (it only refuses after the start limit).
                tracing::warn!(error = %e, "reset-failed");
            }
        }
    }

    /// 5. Start and restart a few at once: each waits for its job.
    async fn start_and_restart(&mut self) {
        let sd = self.sd;
        self.works = futures::stream::iter(std::mem::take(&mut self.works))
            .map(|mut w| async move {
                let svc = w.service().unwrap_or_default();
                let res = match &w.plan {
                    Some(Plan::Start { .. }) => Some(w.log.time("start", sd.start(&svc)).await),
                    Some(Plan::Restart(_)) => Some(w.log.time("restart", sd.restart(&svc)).await),
                    _ => None,
                };
                if let Some(Err(e)) = res {
                    w.fail(e);
                }
                w
            })
            .buffered(JOBS_AT_ONCE)
            .collect()
            .await;
    }

    /// 6. Remember what each new run was started from.
    async fn learn_new_runs(&mut self) {
        let started: Vec<String> = self
            .works
            .iter()
            .filter(|w| w.started())
            .filter_map(Work::service)
            .collect();
        if started.is_empty() {
            return;
        }
        match self.slog.time("show", self.sd.show(&started)).await {
            Ok(states) => {
                let states = by_id(states);
                for w in self.works.iter_mut() {
                    let Some(st) = w.service().and_then(|s| states.get(&s)) else {
                        continue;
                    };
                    if !w.started() {
                        continue;
                    }
                    learn_definition(&mut self.started_from, st).await;
                    if w.error.is_none() && !st.is_active() {
                        w.notes.push(format!("now {}", st.describe()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "show after start"),
        }
    }
}

/// The error for the companions that need a reload, when the unit
/// directories hold a file that would wedge the Quadlet generator.
async fn withhold_reload(dirs: Vec<PathBuf>) -> Option<String> {
    let problems = tokio::task::spawn_blocking(move || super::unit_paths::unsafe_unit_files(&dirs))
        .await
        .unwrap_or_else(|e| vec![format!("the unit directory check failed: {e}")]);
    (!problems.is_empty()).then(|| super::unit_paths::withheld_reload(&problems))
}
