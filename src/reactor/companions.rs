//! The reactor's companion side: which companion a unit-directory change or a Quadlet container's event concerns, and batching due companions into one reconcile.
//!
//! Each companion is its own key in the scheduler (so it is deduplicated and
//! backs off on its own), but companions never reconcile one by one: when the
//! first companion key is ready, every ready companion key goes into one
//! batch (one `show`, one `daemon-reload`). Only one batch runs at a time;
//! keys that become ready meanwhile wait and form the next batch, so a burst
//! of file changes costs a handful of reloads however many files it touches.
//! Unit-directory events also wait a short settle time, so the files an
//! editor or a script writes together land in the same batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::{Done, Reactor, REACT_TO};
use crate::manifest::{Companion, ManifestSet};
use crate::reconcile::companion::{
    is_temp_file, reconcile_companions, Batch, BatchReactions, CompanionItem, SharedSystemd,
    StartedFrom,
};
use crate::runtime::Podman;
use crate::scheduler::Finished;
use crate::trigger::{ChangeKind, FileChange, Key, PodmanEvent};

/// How long unit-directory changes settle before their companions are
/// reconciled (files written together go into one batch, one reload).
pub const UNIT_DIR_SETTLE: Duration = Duration::from_millis(30);

/// The label podman gives a container started by a systemd unit (Quadlet's).
pub const SYSTEMD_UNIT_LABEL: &str = "PODMAN_SYSTEMD_UNIT";

/// The reactor's companion state. Disabled (no systemd) by default.
#[derive(Default)]
pub(super) struct Companions {
    systemd: Option<SharedSystemd>,
    /// Every unit directory; the first is where companions are written.
    unit_dirs: Vec<PathBuf>,
    /// Every companion declared at some point in this run, as last declared:
    /// its file and service go when its declaration goes.
    known: BTreeMap<String, Companion>,
    /// Earlier definitions to remove: deleted, or their kind (file) changed.
    retired: BTreeMap<String, Companion>,
    /// What each service's current run was started from.
    started_from: StartedFrom,
    pub(super) batch_running: bool,
}

impl<R: Podman> Reactor<R> {
    /// Also keep the companions of the apps in their declared state, through
    /// `systemd`, writing their files into `unit_dirs[0]` (all are watched by
    /// the caller). Queues every companion for a first look.
    pub fn with_companions(mut self, systemd: SharedSystemd, unit_dirs: Vec<PathBuf>) -> Self {
        self.comp.systemd = Some(systemd);
        self.comp.unit_dirs = unit_dirs;
        self.comp.known = self
            .apps
            .companions()
            .map(|(_, c)| (c.name.clone(), c.clone()))
            .collect();
        self.queue_all_companions("start-up", "look at every companion");
        self
    }

    fn companions_enabled(&self) -> bool {
        self.comp.systemd.is_some() && !self.comp.unit_dirs.is_empty()
    }

    /// Every companion podkeeper knows of: declared, or retired and still to be removed.
    fn all_companion_names(&self) -> BTreeSet<String> {
        self.comp
            .known
            .keys()
            .chain(self.comp.retired.keys())
            .cloned()
            .collect()
    }

    /// Queue every companion (known or to be removed) with one debug line.
    pub(super) fn queue_all_companions(&mut self, source: &str, what: &str) {
        if !self.companions_enabled() {
            return;
        }
        let names = self.all_companion_names();
        if names.is_empty() {
            return;
        }
        let now = Instant::now();
        for name in &names {
            self.sched.schedule(Key::Companion(name.clone()), now);
        }
        self.observe_event(
            source,
            what,
            "",
            &format!("queue {} companion(s)", names.len()),
        );
    }

    /// Queue every companion (known or to be removed) now; how many.
    pub(super) fn queue_every_companion(&mut self, now: Instant) -> usize {
        if !self.companions_enabled() {
            return 0;
        }
        let names = self.all_companion_names();
        for name in &names {
            self.sched.schedule(Key::Companion(name.clone()), now);
        }
        names.len()
    }

    /// A change in a unit directory: queue the companion whose file it is.
    pub(super) fn on_unit_dir(&mut self, change: &FileChange, now: Instant) {
        let name = change.path.to_string_lossy().into_owned();
        let verdict = if !self.companions_enabled() {
            "ignored: companions are not enabled".to_string()
        } else if change.kind == ChangeKind::Rescan || change.path.as_os_str().is_empty() {
            // Overflow, or the directory itself went or came back: anything may have changed.
            let names = self.all_companion_names();
            for n in &names {
                self.sched
                    .schedule(Key::Companion(n.clone()), now + UNIT_DIR_SETTLE);
            }
            format!("queue {} companion(s)", names.len())
        } else if is_temp_file(&name) {
            "ignored: podkeeper's own temporary file".to_string()
        } else {
            match self.companion_of_file(&name) {
                Some(companion) => {
                    self.schedule_verdict(Key::Companion(companion), now + UNIT_DIR_SETTLE)
                }
                None => "ignored: no companion owns it".to_string(),
            }
        };
        let subject = if change.path.as_os_str().is_empty() {
            change.dir.display().to_string()
        } else {
            name
        };
        self.report
            .event("unit-dir", &change.kind.to_string(), &subject, &verdict);
    }

    /// The companion whose unit file has this name (now or earlier in this run).
    fn companion_of_file(&self, file: &str) -> Option<String> {
        self.comp
            .known
            .values()
            .chain(self.comp.retired.values())
            .find(|c| c.file_name() == file)
            .map(|c| c.name.clone())
    }

    /// A podman event of a container a systemd unit started: the debug
    /// verdict, having queued its companion if it is one and the event matters.
    pub(super) fn on_unit_container_event(
        &mut self,
        ev: &PodmanEvent,
        unit: &str,
        now: Instant,
    ) -> String {
        let companion = self
            .comp
            .known
            .values()
            .find(|c| c.service_name() == unit)
            .map(|c| c.name.clone());
        match companion {
            None => format!("ignored: {unit} is no companion"),
            Some(_) if !self.companions_enabled() => {
                "ignored: companions are not enabled".to_string()
            }
            // A Quadlet container that exits is removed (--rm) and its service
            // goes inactive or failed; the reconcile reads which.
            Some(name) if REACT_TO.contains(&ev.action.as_str()) => {
                self.schedule_verdict(Key::Companion(name), now)
            }
            Some(_) => format!("ignored: {} does not leave the declared state", ev.action),
        }
    }

    /// After the manifests changed: queue the companions that were added,
    /// changed or removed.
    pub(super) fn diff_companions(&mut self, old: &ManifestSet, now: Instant) {
        if !self.companions_enabled() {
            return;
        }
        let before: BTreeMap<&str, &Companion> = old
            .companions()
            .map(|(_, c)| (c.name.as_str(), c))
            .collect();
        let after: BTreeMap<String, Companion> = self
            .apps
            .companions()
            .map(|(_, c)| (c.name.clone(), c.clone()))
            .collect();
        let names: BTreeSet<String> = before
            .keys()
            .map(|n| n.to_string())
            .chain(after.keys().cloned())
            .collect();
        for name in names {
            let was = before.get(name.as_str()).copied();
            let is = after.get(&name);
            let why = match (was, is) {
                (None, Some(_)) => "companion added",
                (Some(_), None) => "companion gone",
                (Some(a), Some(b)) if a != b => "companion changed",
                _ => continue,
            };
            // The old file and service go when the new one has another file.
            let prev = self.comp.known.get(&name).cloned();
            if let Some(prev) = prev {
                let retire = match is {
                    None => true,
                    Some(now) => now.file_name() != prev.file_name(),
                };
                if retire {
                    self.comp.retired.insert(name.clone(), prev);
                }
            }
            match is {
                Some(c) => {
                    // Back with the same file before the old one was removed.
                    if self
                        .comp
                        .retired
                        .get(&name)
                        .is_some_and(|r| r.file_name() == c.file_name())
                    {
                        self.comp.retired.remove(&name);
                    }
                    self.comp.known.insert(name.clone(), c.clone());
                }
                None => {
                    self.comp.known.remove(&name);
                }
            }
            let key = Key::Companion(name);
            // A change of declaration is news: no backoff holds it back.
            self.sched.reset_backoff(&key, now);
            let verdict = self.schedule_verdict(key.clone(), now);
            self.report
                .event("apps-dir", why, &key.to_string(), &verdict);
        }
    }

    /// Start a batch with `first` and every other ready companion key.
    pub(super) fn spawn_companions(&mut self, first: String) {
        let Some(systemd) = self
            .comp
            .systemd
            .clone()
            .filter(|_| self.companions_enabled())
        else {
            // Not enabled: the key cannot have been queued by us; let it go.
            let _ = self.sched.finish(
                &Key::Companion(first),
                Finished::Ok {
                    restarted_after: None,
                },
                Instant::now(),
            );
            return;
        };
        let now = Instant::now();
        let mut names = vec![first];
        while let Some(Key::Companion(n)) = self
            .sched
            .pop_ready_if(now, |k| matches!(k, Key::Companion(_)))
        {
            names.push(n);
        }
        let items: Vec<CompanionItem> = names
            .into_iter()
            .map(|name| CompanionItem {
                desired: self.apps.companion(&name).map(|(_, c)| c.clone()),
                retired: self.comp.retired.get(&name).cloned(),
                name,
            })
            .collect();
        let known_services = self
            .comp
            .known
            .values()
            .chain(self.comp.retired.values())
            .map(Companion::service_name)
            .collect();
        let batch = Batch {
            unit_dir: self.comp.unit_dirs[0].clone(),
            scan_dirs: self.comp.unit_dirs.clone(),
            items,
            known_services,
            started_from: std::mem::take(&mut self.comp.started_from),
        };
        self.stats.reconciles += batch.items.len() as u64;
        self.comp.batch_running = true;
        self.inflight
            .spawn(async move { Done::Companions(reconcile_companions(&*systemd, batch).await) });
    }

    /// A batch finished: settle each companion's key, report, requeue.
    pub(super) fn finish_companions(&mut self, outcome: BatchReactions) {
        let now = Instant::now();
        self.comp.batch_running = false;
        self.comp.started_from = outcome.started_from;
        self.observe_reaction(&outcome.summary, None, false);
        for name in &outcome.removed {
            if self.apps.companion(name).is_none() {
                self.comp.known.remove(name);
            }
            self.comp.retired.remove(name);
        }
        for r in outcome.items {
            // A kind change is done once the old file is gone.
            if let (Ok(()), Key::Companion(name)) = (&r.result, &r.key) {
                if self.apps.companion(name).is_some() {
                    self.comp.retired.remove(name);
                }
            }
            // "As declared" is in the summary line already.
            let print = r.action != "none" || r.result.is_err();
            self.settle(&r, now, print);
        }
    }
}
