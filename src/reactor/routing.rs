//! The reactor's routing: which key a trigger concerns, and in words why an event is ignored or what scheduling it did.

use tokio::time::Instant;

use super::{
    Reactor, CHECK_MARGIN, MANIFEST_SETTLE, MANIFEST_SETTLE_MAX, REACT_TO, SYSTEMD_UNIT_LABEL,
};
use crate::manifest;
use crate::report::secs;
use crate::runtime::Podman;
use crate::scheduler::Scheduled;
use crate::trigger::{ChangeKind, FileChange, Key, PodmanEvent, StreamStatus, Trigger};
use crate::APP_LABEL;

impl<R: Podman> Reactor<R> {
    pub(super) fn on_trigger(&mut self, trigger: Trigger) {
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
                self.observe_event("podman", what, "", &verdict);
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
                self.observe_event("conmon", "exit file", short, &verdict);
            }
            Trigger::SweepTick => {
                let verdict = self.schedule_verdict(Key::Sweep, now);
                self.observe_event("timer", "sweep due", "", &verdict);
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
                Some(id) if ev.action == "health_status" => {
                    EventVerdict::Health(self.on_health_status(id, ev, now))
                }
                Some(id)
                    if !crate::reconcile::app::event_may_leave_state(
                        self.apps.apps.get(id),
                        &ev.action,
                        REACT_TO,
                    ) =>
                {
                    EventVerdict::NoChange
                }
                Some(id) if self.seen_by_last_check(id, ev) => EventVerdict::SeenByCheck(id),
                Some(id) => {
                    EventVerdict::Scheduled(id, self.sched.schedule(Key::App(id.to_string()), now))
                }
            }
        };
        if is_container && ev.action == "start" {
            if let Some(id) = app {
                // A dependency started (by podkeeper or by hand): whoever waits for it looks now.
                self.wake_dependents(id, false, now);
            }
        }
        if !self.wants_events() {
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
        self.observe_event("podman", &what, ev.name(), &verdict);
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
        self.observe_event(
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
    pub(super) fn schedule_verdict(&mut self, key: Key, at: Instant) -> String {
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
    /// A `health_status` of an app: the health side's verdict.
    Health(String),
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
            EventVerdict::Unit(verdict) | EventVerdict::Health(verdict) => verdict,
        }
    }
}
