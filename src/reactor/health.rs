//! The timers of podkeeper's own health checks, one scheduler key per checked app.

use tokio::time::Instant;

use super::Reactor;
use crate::manifest::{Condition, DesiredState};
use crate::runtime::Podman;
use crate::trigger::{Key, PodmanEvent};

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
    /// run: podkeeper's own, or a user's `podman healthcheck run`). One that
    /// is not podkeeper's own is news: the app's check runs now, without
    /// waiting for its timer, and reads podman's status in its inspect
    /// (the event's `HealthStatus` is no guide: podman 4.3 puts the status
    /// from *before* that check in it, podman 5 the one after). Returns the
    /// debug line's verdict.
    pub(super) fn on_health_status(&mut self, id: &str, ev: &PodmanEvent, now: Instant) -> String {
        let declared = self
            .apps
            .apps
            .get(id)
            .filter(|a| a.app.state == DesiredState::Running)
            .is_some_and(|a| a.app.container.healthcheck.is_some());
        if !declared {
            return "ignored: no healthcheck declared, podkeeper runs none".into();
        }
        let key = Key::Health(id.to_string());
        if self.sched.is_running(&key) {
            return format!("ignored: {key} is checking now (its own check's event)");
        }
        let st = self.health.entry(id.to_string()).or_default();
        let checked = st
            .checked_at
            .and_then(|t| t.timestamp_nanos_opt())
            .is_some_and(|t| ev.time_nano > 0 && ev.time_nano <= t);
        if checked {
            return format!("ignored: {key}'s last check ran it or came after it");
        }
        st.asked_by_event = true;
        self.schedule_verdict(key, now)
    }

    /// App `id` started (`healthy` false) or turned healthy: queue now
    /// every app waiting for it whose condition that can meet, instead of
    /// letting them find out at their next slow look.
    pub(super) fn wake_dependents(&mut self, id: &str, healthy: bool, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let apps = &self.apps.apps;
        let meets = |app: &str| {
            apps.get(app).is_some_and(|a| {
                a.app
                    .depends_on
                    .iter()
                    .any(|d| d.app == id && (healthy || d.condition == Condition::Running))
            })
        };
        let woken: Vec<String> = self
            .waiting
            .iter()
            .filter(|(app, dep)| dep.as_str() == id && meets(app))
            .map(|(app, _)| app.clone())
            .collect();
        for app in woken {
            self.sched.schedule(Key::App(app), now);
        }
    }

    /// After an app's reconcile: remember what it waits for, and wake what
    /// waits for it when it started it.
    pub(super) fn after_app_reaction(&mut self, r: &crate::reconcile::Reaction, now: Instant) {
        let Key::App(id) = &r.key else { return };
        match &r.waits_for {
            Some(dep) => {
                self.waiting.insert(id.clone(), dep.clone());
            }
            None => {
                self.waiting.remove(id);
            }
        }
        if r.result.is_ok() && matches!(r.action, "create" | "start" | "recreate" | "unpause") {
            self.wake_dependents(id, false, now);
        }
    }
}
