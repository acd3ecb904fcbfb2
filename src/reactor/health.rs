//! The reactor's health side: the check timers (one key per checked app), which `health_status` events are news, and waking apps that wait for a dependency.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::Reactor;
use crate::manifest::{Condition, DesiredState};
use crate::observe::{Ignored, Verdict};
use crate::runtime::Podman;
use crate::trigger::{Key, KeyRef, PodmanEvent};

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
    /// is not podkeeper's own is news: the app's check runs now (or once
    /// more, if it is running), without waiting for its timer, and reads
    /// podman's status in its inspect (the event's `HealthStatus` is no
    /// guide: podman 4.3 puts the status from *before* that check in it,
    /// podman 5 the one after). Returns the debug line's verdict.
    pub(super) fn on_health_status<'e>(
        &mut self,
        id: &'e str,
        ev: &PodmanEvent,
        now: Instant,
    ) -> Verdict<'e> {
        let declared = self
            .apps
            .apps
            .get(id)
            .filter(|a| a.app.state == DesiredState::Running)
            .is_some_and(|a| a.app.container.healthcheck.is_some());
        if !declared {
            return Verdict::Ignored(Ignored::NoHealthcheck);
        }
        match self.check_windows.judge(id, ev.time_nano) {
            Echo::Older => Verdict::Ignored(Ignored::OlderThanHealthCheck(id)),
            Echo::Own => Verdict::Ignored(Ignored::OwnHealthCheck(id)),
            Echo::News => {
                self.check_windows.asked.insert(id.to_string());
                let scheduled = self.sched.schedule(Key::Health(id.to_string()), now);
                Verdict::scheduled(KeyRef::Health(id), scheduled, now)
            }
        }
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

/// Which `health_status` events are podkeeper's own: each check it runs
/// makes podman emit exactly one, stamped between the check's start and
/// its return. Counted per window, so a user's check run in the same
/// moment is still news.
#[derive(Debug, Default)]
pub(super) struct CheckWindows {
    windows: HashMap<String, Window>,
    /// Apps whose next check was asked for by a user's check run.
    pub asked: HashSet<String>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    began: i64,
    /// When the check returned (None: it runs).
    ended: Option<i64>,
    /// How many events the check made podman emit (0: it ran no check call).
    own: u32,
    seen: u32,
}

/// What a `health_status` is to the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Echo {
    /// Before the last check began: its inspect saw podman's status after it.
    Older,
    /// The last (or running) check's own.
    Own,
    News,
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(0)
}

impl CheckWindows {
    /// A check of `id` begins now (`at`, the runtime's clock). Whether a
    /// user's check run asked for it.
    pub fn began(&mut self, id: &str, at: DateTime<Utc>) -> bool {
        let w = Window {
            began: nanos(at),
            ended: None,
            own: 1,
            seen: 0,
        };
        self.windows.insert(id.to_string(), w);
        self.asked.remove(id)
    }

    /// The check of `id` returned; `checked_at`: when its check call did
    /// (None, or from an earlier run: it made none).
    pub fn ended(&mut self, id: &str, checked_at: Option<DateTime<Utc>>) {
        if let Some(w) = self.windows.get_mut(id) {
            match checked_at.map(nanos).filter(|t| *t >= w.began) {
                Some(t) => w.ended = Some(t),
                None => {
                    w.ended = Some(w.began);
                    w.own = 0;
                }
            }
        }
    }

    /// `id`'s checks end (no healthcheck any more).
    pub fn forget(&mut self, id: &str) {
        self.windows.remove(id);
        self.asked.remove(id);
    }

    pub fn judge(&mut self, id: &str, time_nano: i64) -> Echo {
        let Some(w) = self.windows.get_mut(id) else {
            return Echo::News;
        };
        if time_nano <= 0 {
            return Echo::News;
        }
        if time_nano < w.began {
            return Echo::Older;
        }
        if w.ended.is_none_or(|e| time_nano <= e) {
            w.seen += 1;
            if w.seen <= w.own {
                return Echo::Own;
            }
        }
        Echo::News
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn one_event_per_check_should_be_its_own_and_a_second_in_its_window_news() {
        let mut w = CheckWindows::default();
        assert_eq!(w.judge("a", 5_000_000_000), Echo::News, "never checked");
        assert!(!w.began("a", t(10)));
        // While it runs: the first is its own, a second a user's.
        assert_eq!(w.judge("a", 10_100_000_000), Echo::Own);
        assert_eq!(w.judge("a", 10_200_000_000), Echo::News);
        w.ended("a", Some(t(11)));
        assert_eq!(w.judge("a", 9_000_000_000), Echo::Older);
        assert_eq!(w.judge("a", 12_000_000_000), Echo::News);
        // A run that made no check call has no event of its own.
        w.asked.insert("a".into());
        assert!(w.began("a", t(20)));
        w.ended("a", Some(t(11)));
        assert_eq!(w.judge("a", 20_000_000_000), Echo::News);
    }
}
