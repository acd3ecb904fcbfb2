//! The reactor's memory of updates: the spec each app failed its gate with and the containers it adopted, taken in from app reactions, handed to each reconcile, kept in the state file across restarts.
//!
//! The memory is the state file's contents ([`StateFile`]), held here and
//! written whole after each change. Writes go to a blocking task, off the
//! reactor's: a slow or hung disk delays the file, never a reconcile. Each
//! write carries a number and a newer one already written makes an older
//! one a no-op, so the file never goes back in time. A write that fails is
//! logged; the memory stands, and the next change writes it all again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::health::DepNews;
use super::Reactor;
use crate::observe::RememberedFailure;
use crate::ops::state_file::{self, AdoptedContainer, FailedSpec, StateFile};
use crate::reconcile::updates::{Failure, UpdateNews, LOG_TAIL_BYTES};
use crate::reconcile::{Adopted, Reaction, Remembered};
use crate::runtime::Podman;
use crate::trigger::Key;

/// How long the shutdown waits for the state file's last write.
const LAST_WRITE_WITHIN: Duration = Duration::from_secs(5);

/// See the module documentation.
#[derive(Default)]
pub(super) struct Memory {
    /// Where it is kept (None: in memory only, as in most tests).
    path: Option<PathBuf>,
    state: StateFile,
    /// `run --adopt`: every app may adopt, not only those saying `adopt: true`.
    pub(super) adopt_all: bool,
    /// The number of the last write asked for.
    seq: u64,
    /// The number of the last write made (shared with the writing tasks).
    written: Arc<Mutex<u64>>,
    /// Writes in flight: each ends with why it failed, if it did.
    writes: Vec<JoinHandle<Option<String>>>,
}

impl<R: Podman> Reactor<R> {
    /// Remember across restarts in the state file at `path` (see
    /// [`state_file::load`]: a bad file is set aside, with a warning);
    /// `adopt_all`: `run --adopt`. A failure remembered for a spec the
    /// manifest no longer declares is forgotten at once.
    pub fn with_memory(mut self, path: Option<PathBuf>, adopt_all: bool) -> Self {
        self.memory.adopt_all = adopt_all;
        if let Some(path) = path {
            let loaded = state_file::load(&path);
            if let Some(w) = &loaded.warning {
                self.report.note("state", w, true);
            }
            self.memory.state = loaded.state;
            self.memory.path = Some(path);
        }
        let apps: Vec<String> = self.memory.state.failed.keys().cloned().collect();
        for app in &apps {
            self.announce(app);
        }
        self.forget_undeclared();
        self
    }

    /// What this reactor remembers of app `id`, for its reconcile.
    pub fn remembered(&self, id: &str) -> Remembered {
        let m = &self.memory.state;
        Remembered {
            failed_spec: m.failed.get(id).map(|f| f.spec_hash.clone()),
            adopted: m
                .adopted
                .iter()
                .find(|(_, a)| a.app == id)
                .map(|(container, a)| Adopted {
                    container: container.clone(),
                    spec_hash: a.spec_hash.clone(),
                }),
            may_adopt: self.memory.adopt_all || self.apps.apps.get(id).is_some_and(|a| a.app.adopt),
            update_under_way: self.dups.update_under_way(id),
        }
    }

    /// Take `r` as if an app's reconcile had just returned it: reported to
    /// every observer, its wait and its update news taken in. For tests,
    /// which feed update news the simulated reconcile does not make.
    #[doc(hidden)]
    pub fn take_app_reaction(&mut self, r: &Reaction) {
        let now = Instant::now();
        self.observe_reaction(r, None, false);
        self.after_app_reaction(r, now);
        self.remember(r, now);
    }

    /// Take in what an app's reaction says of an update and an adoption:
    /// a rollback is remembered, an applied spec forgets it (and any
    /// adoption: that container was replaced); what waits for the app
    /// looks again either way.
    pub(super) fn remember(&mut self, r: &Reaction, now: Instant) {
        let Key::App(id) = &r.key else { return };
        let mut changed = false;
        if let Some(a) = &r.adopted {
            // One adoption per app: a newer one replaces an older record.
            self.memory.state.adopted.retain(|_, was| was.app != *id);
            self.memory.state.adopted.insert(
                a.container.clone(),
                AdoptedContainer {
                    app: id.clone(),
                    spec_hash: a.spec_hash.clone(),
                    at: rfc3339(Timestamp::now()),
                },
            );
            changed = true;
        }
        match &r.update {
            Some(UpdateNews::RolledBack { failed }) => {
                // A spec the manifest has moved on from since is no news:
                // the new one is tried.
                let declared = self.apps.apps.get(id).map(|a| a.spec_hash.as_str());
                if declared == Some(failed.spec_hash.as_str()) {
                    self.memory
                        .state
                        .failed
                        .insert(id.clone(), failed_spec(failed, Timestamp::now()));
                    self.announce(id);
                    changed = true;
                }
                self.wake_dependents(id, DepNews::Updated, now);
            }
            Some(UpdateNews::Applied { .. }) => {
                changed |= self.forget_failed(id);
                let before = self.memory.state.adopted.len();
                self.memory.state.adopted.retain(|_, a| a.app != *id);
                changed |= self.memory.state.adopted.len() != before;
                self.wake_dependents(id, DepNews::Updated, now);
            }
            Some(UpdateNews::Gating { .. } | UpdateNews::Failed { .. }) | None => {}
        }
        if changed {
            self.write_memory();
        }
    }

    /// After the manifests changed: a failure remembered for a spec the
    /// app no longer declares (edited, or gone) is forgotten, as is an
    /// adoption for an app that is gone.
    pub(super) fn forget_undeclared(&mut self) {
        let apps = self.apps.clone();
        let stale: Vec<String> = self
            .memory
            .state
            .failed
            .iter()
            .filter(|(id, f)| apps.apps.get(*id).map(|a| &a.spec_hash) != Some(&f.spec_hash))
            .map(|(id, _)| id.clone())
            .collect();
        let mut changed = false;
        for id in stale {
            changed |= self.forget_failed(&id);
        }
        let before = self.memory.state.adopted.len();
        self.memory
            .state
            .adopted
            .retain(|_, a| apps.apps.contains_key(&a.app));
        changed |= self.memory.state.adopted.len() != before;
        if changed {
            self.write_memory();
        }
    }

    /// `podkeeper retry APP`: forget the app's failed spec and look at it
    /// now, past any backoff.
    pub(super) fn on_retry(&mut self, id: &str, now: Instant) {
        if !self.apps.apps.contains_key(id) {
            // The control socket checked; the manifest went since.
            self.report
                .note("retry", &format!("app/{id}: no such app (any more)"), true);
            return;
        }
        let what = match self.memory.state.failed.get(id) {
            Some(f) => format!("failed spec {} forgotten", short(&f.spec_hash)),
            None => "no failed spec remembered".to_string(),
        };
        if self.forget_failed(id) {
            self.write_memory();
        }
        self.report.note(
            "retry",
            &format!("app/{id}: {what}; looking at it now"),
            false,
        );
        let key = Key::App(id.to_string());
        self.sched.reset_backoff(&key, now);
        self.sched.schedule(key, now);
    }

    /// Tell `observer` every failure remembered (as it is added).
    pub(super) fn tell_remembered(&self, observer: &mut dyn crate::observe::Observer) {
        for id in self.memory.state.failed.keys() {
            observer.remembered(id, self.remembered_failure(id).as_ref());
        }
    }

    /// Wait (bounded) for the state file's writes in flight: at shutdown,
    /// and for tests reading the file.
    pub async fn state_written(&mut self) {
        let writes = std::mem::take(&mut self.memory.writes);
        let all = futures::future::join_all(writes);
        match tokio::time::timeout(LAST_WRITE_WITHIN, all).await {
            Ok(ended) => {
                for e in ended.into_iter().filter_map(|w| w.ok().flatten()) {
                    self.say_write_failed(&e);
                }
            }
            Err(_) => self.report.note(
                "state",
                "the state file's last write did not finish in time",
                true,
            ),
        }
    }

    /// Say each failed write of those that have ended; keep the others.
    fn reap_writes(&mut self) {
        use futures::FutureExt;
        for mut w in std::mem::take(&mut self.memory.writes) {
            if !w.is_finished() {
                self.memory.writes.push(w);
            } else if let Some(Ok(Some(e))) = (&mut w).now_or_never() {
                self.say_write_failed(&e);
            }
        }
    }

    fn say_write_failed(&mut self, e: &str) {
        self.report.note(
            "state",
            &format!("{e}; kept in memory, written again at the next change"),
            true,
        );
    }

    fn forget_failed(&mut self, id: &str) -> bool {
        let forgot = self.memory.state.failed.remove(id).is_some();
        if forgot {
            self.announce(id);
        }
        forgot
    }

    fn remembered_failure(&self, id: &str) -> Option<RememberedFailure> {
        let f = self.memory.state.failed.get(id)?;
        Some(RememberedFailure {
            failure: Failure {
                spec_hash: f.spec_hash.clone(),
                why: f.why.clone(),
                exit_code: f.exit_code,
                // Bounded again: the file may have been edited by hand.
                log_tail: bounded_tail(&f.log_tail),
            },
            // A file edited by hand with a bad time: shown as now.
            at: f.at.parse().unwrap_or_else(|_| Timestamp::now()),
        })
    }

    /// Tell every observer what is now remembered of `id`.
    fn announce(&mut self, id: &str) {
        let failed = self.remembered_failure(id);
        for o in &mut self.observers {
            o.remembered(id, failed.as_ref());
        }
    }

    /// Write the memory as it is now, off the reactor's task.
    fn write_memory(&mut self) {
        let Some(path) = self.memory.path.clone() else {
            return;
        };
        self.memory.seq += 1;
        let (seq, state, written) = (
            self.memory.seq,
            self.memory.state.clone(),
            self.memory.written.clone(),
        );
        self.reap_writes();
        self.memory
            .writes
            .push(tokio::task::spawn_blocking(move || {
                let mut last = written
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *last >= seq {
                    return None; // A newer memory is on disk already.
                }
                match state_file::save(&path, &state) {
                    Ok(()) => {
                        *last = seq;
                        None
                    }
                    Err(e) => Some(e),
                }
            }));
    }
}

/// A failure as the state file keeps it: its log tail bounded.
fn failed_spec(f: &Failure, at: Timestamp) -> FailedSpec {
    FailedSpec {
        spec_hash: f.spec_hash.clone(),
        why: f.why.clone(),
        exit_code: f.exit_code,
        log_tail: bounded_tail(&f.log_tail),
        at: rfc3339(at),
    }
}

/// The last [`LOG_TAIL_BYTES`] of a log, from a character's start.
fn bounded_tail(log: &str) -> String {
    let mut cut = log.len().saturating_sub(LOG_TAIL_BYTES);
    while !log.is_char_boundary(cut) {
        cut += 1;
    }
    log[cut..].to_string()
}

fn rfc3339(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// A spec hash as lines show it.
pub(crate) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
