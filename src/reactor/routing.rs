//! The reactor's routing: which key a trigger concerns, and the record of each event: why it is ignored or what scheduling it did.

use tokio::time::Instant;

use super::observers::emit;
use super::{
    Reactor, CHECK_MARGIN, MANIFEST_SETTLE, MANIFEST_SETTLE_MAX, REACT_TO, SYSTEMD_UNIT_LABEL,
};
use crate::manifest;
use crate::observe::{EventSeen, Ignored, Source, Subject, Verdict, What};
use crate::runtime::Podman;
use crate::trigger::{
    ChangeKind, ExitFile, FileChange, Key, KeyRef, PodmanEvent, StreamStatus, Trigger,
};
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
                let (kind, what) = if resumed {
                    self.sched.reset_failures(now);
                    ("resumed", "stream resumed after a gap")
                } else {
                    ("connected", "stream connected")
                };
                let verdict = self.schedule_verdict(&Key::Sweep, now);
                self.observe_event(&EventSeen {
                    at: now,
                    source: Source::Podman,
                    kind,
                    what: What::Words(what),
                    subject: Subject::None,
                    verdict,
                });
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
            Trigger::ContainerExited { id, file } => self.on_exit_file(&id, file, now),
            Trigger::SweepTick => {
                let verdict = self.schedule_verdict(&Key::Sweep, now);
                self.observe_event(&EventSeen {
                    at: now,
                    source: Source::Timer,
                    kind: "sweep-due",
                    what: What::Words("sweep due"),
                    subject: Subject::None,
                    verdict,
                });
                // The sweep covers companions too: one batch, one `show` for all.
                self.queue_all_companions(
                    Source::Timer,
                    "companions-due",
                    "sweep due (companions)",
                );
            }
            Trigger::Reload => self.on_reload(now),
            Trigger::Retry(app) => self.on_retry(&app, now),
        }
    }

    /// conmon's exit file of container `id` was written or collected (see
    /// `sources::exit_watch`). Acted on when written where podman records
    /// stop intent (the reconciler's inspect then tells a crash from a stop);
    /// otherwise once collected, which is news unless a reconcile already
    /// looked after the write.
    fn on_exit_file(&mut self, id: &str, file: ExitFile, now: Instant) {
        let managed = self
            .container_apps
            .get(id)
            .filter(|app| self.has_or_had_manifest(app));
        let verdict = match (managed, file) {
            (None, _) => Verdict::Ignored(Ignored::NotManaged),
            (Some(_), ExitFile::Written) if !self.rt.reports_stop_intent() => {
                Verdict::Ignored(Ignored::UntilCollected)
            }
            (Some(app), ExitFile::Collected) if self.exits.collected_seen(id, app) => {
                Verdict::Ignored(Ignored::SeenByCheck(app))
            }
            (Some(app), file) => {
                if file == ExitFile::Written {
                    self.exits.written(id, now);
                }
                self.slots.repair_due(app);
                let scheduled = self.sched.schedule(Key::App(app.clone()), now);
                Verdict::scheduled(KeyRef::App(app), scheduled, now)
            }
        };
        let (kind, what) = match file {
            ExitFile::Written => ("exit-written", "exit file written"),
            ExitFile::Collected => ("exit-file", "exit file"),
        };
        let seen = EventSeen {
            at: now,
            source: Source::Conmon,
            kind,
            what: What::Words(what),
            subject: Subject::Name(id.get(..12).unwrap_or(id)),
            verdict,
        };
        emit(&mut self.report, &mut self.observers, &seen);
    }

    /// The hot path: every podman event comes through here. It decides with
    /// at most one allocation (the key it schedules); its record borrows the
    /// event and is put into words only by whoever prints it.
    fn on_podman_event(&mut self, ev: &PodmanEvent, now: Instant) {
        let is_container = ev.typ == "container";
        // An Arc's clone, no allocation: `app` may borrow from it.
        let apps = self.apps.clone();
        let app = if is_container {
            ev.label(APP_LABEL)
                .or_else(|| adoptable(&apps, self.memory.adopt_all, ev.name()))
        } else {
            None
        };
        if is_container {
            match (app, ev.action.as_str()) {
                (_, "remove") => {
                    self.container_apps.remove(&ev.actor.id);
                    self.exits.forget_container(&ev.actor.id);
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
        if is_container && ev.action == "start" {
            if let Some(id) = app {
                // A dependency started (by podkeeper or by hand): whoever waits for it looks now.
                self.wake_dependents(id, super::health::DepNews::Started, now);
            }
        }
        let verdict = if ev.typ == "network" {
            // issue 22 (create): a network that apps wait for appeared.
            self.on_network_event(ev, now)
        } else if !is_container {
            Verdict::Ignored(Ignored::NotAContainer(&ev.typ))
        } else {
            match app {
                None => match ev.label(SYSTEMD_UNIT_LABEL) {
                    Some(unit) => self.comp.unit_event_verdict(&mut self.sched, ev, unit, now),
                    None => Verdict::Ignored(Ignored::Unmanaged),
                },
                // A hash lookup first, not a walk down the manifests' tree
                // on every event (see has_or_had_manifest).
                Some(id) if !self.has_or_had_manifest(id) => Verdict::Ignored(Ignored::Orphan),
                Some(id) if ev.action == "health_status" => self.on_health_status(id, now),
                Some(id)
                    if !crate::reconcile::app::event_may_leave_state(
                        self.apps.apps.get(id),
                        &ev.action,
                        REACT_TO,
                    ) =>
                {
                    Verdict::Ignored(Ignored::NoChange(&ev.action))
                }
                Some(id) if self.seen_by_last_check(id, ev) => {
                    Verdict::Ignored(Ignored::SeenByCheck(id))
                }
                Some(id) => {
                    if ev.action == "died" {
                        self.slots.repair_due(id);
                    }
                    let scheduled = self.sched.schedule(Key::App(id.to_string()), now);
                    Verdict::scheduled(KeyRef::App(id), scheduled, now)
                }
            }
        };
        let seen = EventSeen {
            at: now,
            source: Source::Podman,
            kind: &ev.action,
            what: What::Podman(ev),
            subject: Subject::Name(ev.name()),
            verdict,
        };
        emit(&mut self.report, &mut self.observers, &seen);
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
        let Some(began) = i64::try_from(check.began.as_nanosecond()).ok() else {
            return false;
        };
        let margin = CHECK_MARGIN.as_nanos() as i64;
        if ev.time_nano >= began.saturating_sub(margin) {
            return false;
        }
        // Trust the comparison only while the runtime's clock has kept pace
        // with the monotonic one since the check: a wall clock stepped back
        // (NTP at boot) would stamp a new exit with a time before the check.
        let Some(now) = i64::try_from(self.rt.now().as_nanosecond()).ok() else {
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
            Verdict::scheduled(KeyRef::Manifests, scheduled, now)
        } else {
            Verdict::Ignored(Ignored::NotAManifest)
        };
        self.observe_event(&EventSeen {
            at: now,
            source: Source::AppsDir,
            kind: change.kind.as_str(),
            what: What::Words(change.kind.as_str()),
            subject: Subject::Path(&change.path),
            verdict,
        });
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

    /// Schedule `key` at `at`; what that did, as an event's verdict.
    pub(super) fn schedule_verdict<'k>(&mut self, key: &'k Key, at: Instant) -> Verdict<'k> {
        let scheduled = self.sched.schedule(key.clone(), at);
        Verdict::scheduled(KeyRef::from(key), scheduled, Instant::now())
    }
}

/// App `name` when it may adopt a container of its name that lacks
/// podkeeper's labels (issue 23: `run --adopt`, or its `adopt: true`): such
/// a container's events are the app's (adopted, it is kept: an exit is news).
pub(super) fn adoptable<'a>(
    apps: &'a crate::manifest::ManifestSet,
    adopt_all: bool,
    name: &str,
) -> Option<&'a str> {
    apps.apps
        .get_key_value(name)
        .filter(|(_, a)| adopt_all || a.app.adopt)
        .map(|(id, _)| id.as_str())
}
