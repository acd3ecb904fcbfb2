//! The reactor's health side: the check timers (one key per checked app), which `health_status` events are news, and waking apps that wait for a dependency (started, healthy, completed).

use tokio::time::Instant;

use super::Reactor;
use crate::manifest::{Condition, DesiredState};
use crate::observe::{Ignored, Verdict};
use crate::reconcile::restart;
use crate::runtime::Podman;
use crate::trigger::{Key, KeyRef};

impl<R: Podman> Reactor<R> {
    /// Start the check timers of these apps that declare a healthcheck (a
    /// timer already running keeps its time; it ends by itself when the
    /// healthcheck goes).
    pub(super) fn schedule_checks(&mut self, ids: Vec<String>, now: Instant) {
        for id in ids {
            if let Some(h) = self
                .apps
                .apps
                .get(&id)
                .and_then(|a| a.app.container.healthcheck.as_ref())
            {
                self.sched.schedule(Key::Health(id), now + h.interval());
            }
        }
    }

    /// A `health_status` event of app `id` (podman emits one for every check
    /// run: podkeeper's own, or a user's `podman healthcheck run`). Each is
    /// a reason to read podman's health log now: the run counts each logged
    /// check once, whoever ran it (see `reconcile/health.rs`), so no event
    /// needs telling apart, and a user's failing run is never lost. Returns
    /// the debug line's verdict.
    pub(super) fn on_health_status<'e>(&mut self, id: &'e str, now: Instant) -> Verdict<'e> {
        let declared = self
            .apps
            .apps
            .get(id)
            .filter(|a| a.app.state == DesiredState::Running)
            .is_some_and(|a| a.app.container.healthcheck.is_some());
        if !declared {
            return Verdict::Ignored(Ignored::NoHealthcheck);
        }
        let scheduled = self.sched.schedule(Key::Health(id.to_string()), now);
        if self.dups.update_under_way(id) {
            // issue 23 (replace): a gate waits for this verdict; its next look now.
            self.sched.schedule(Key::App(id.to_string()), now);
        }
        Verdict::scheduled(KeyRef::Health(id), scheduled, now)
    }

    /// App `id` started, turned healthy or is done (exited and left so by
    /// its policy): queue now every app waiting for it whose condition that
    /// can meet (or, for a failed one-shot, whose reason to wait changed),
    /// instead of letting them find out at their next slow look.
    pub(super) fn wake_dependents(&mut self, id: &str, news: DepNews, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let apps = &self.apps.apps;
        let meets = |app: &str| {
            apps.get(app).is_some_and(|a| {
                a.app.depends_on.iter().any(|d| {
                    d.app == id
                        && match news {
                            DepNews::Started => d.condition == Condition::Running,
                            DepNews::Healthy => d.condition != Condition::Completed,
                            DepNews::Done => d.condition == Condition::Completed,
                        }
                })
                    // issue 22 (create): `network: app:<id>` waits for <id> to run.
                    || (matches!(news, DepNews::Started | DepNews::Healthy)
                        && crate::reconcile::depends::network_dependency(a).as_deref() == Some(id))
            })
        };
        let woken: Vec<String> = self
            .waiting
            .iter()
            .filter(|(app, dep)| dep.as_str() == id && meets(app))
            .map(|(app, _)| app.clone())
            .collect();
        // Woken once: its reconcile says again what it waits for, if it
        // still does. podkeeper's own start and podman's `start` event for
        // it then wake it once, not twice.
        for app in woken {
            self.waiting.remove(&app);
            self.sched.schedule(Key::App(app), now);
        }
    }

    /// After an app's reconcile: remember what it waits for, and wake what
    /// waits for it when it started it.
    pub(super) fn after_app_reaction(&mut self, r: &crate::reconcile::Reaction, now: Instant) {
        let Key::App(id) = &r.key else { return };
        self.dups.note_update(r); // issue 23 (replace): a gate under way or over
        match &r.waits_for {
            Some(dep) => {
                self.waiting.insert(id.clone(), dep.clone());
            }
            None => {
                self.waiting.remove(id);
            }
        }
        if r.result.is_ok() && r.action.starts_container() {
            self.wake_dependents(id, DepNews::Started, now);
        }
        // Found exited and left so (completed, or a failed one-shot): an
        // inspect after the exit, so what waits for it sees the same. The
        // exit's `died` event or exit file brought this reconcile on.
        let done = r.found.first().is_some_and(|f| {
            f.app == *id && matches!(f.state.as_str(), restart::COMPLETED | restart::FAILED)
        });
        if r.result.is_ok() && done {
            self.wake_dependents(id, DepNews::Done, now);
        }
    }
}

/// What a dependency did that may meet a waiting app's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DepNews {
    Started,
    Healthy,
    /// Exited and left so by its policy: `completed` (or a failed one-shot).
    Done,
}
