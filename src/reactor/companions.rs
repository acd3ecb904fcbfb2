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

use super::observers::emit;
use super::{Done, Reactor, REACT_TO};
use crate::manifest::{Companion, ManifestSet};
use crate::observe::{EventSeen, Ignored, Source, Subject, Verdict, What};
use crate::reconcile::companion::{
    is_temp_file, reconcile_companions, Batch, BatchReactions, CompanionItem, SharedSystemd,
    StartedFrom,
};
use crate::reconcile::Action;
use crate::runtime::Podman;
use crate::scheduler::{Finished, Scheduler};
use crate::trigger::{ChangeKind, FileChange, Key, KeyRef, PodmanEvent};

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

impl Companions {
    /// Entries held: (companions declared in this run, retired ones to remove).
    pub fn sizes(&self) -> (usize, usize) {
        (self.known.len(), self.retired.len())
    }

    fn enabled(&self) -> bool {
        self.systemd.is_some() && !self.unit_dirs.is_empty()
    }

    /// The companion whose unit file has this name (now or earlier in this run).
    fn owner_of(&self, file: &str) -> Option<&str> {
        self.known
            .values()
            .chain(self.retired.values())
            .find(|c| c.file_name() == file)
            .map(|c| c.name.as_str())
    }

    /// A podman event of a container a systemd unit started: its verdict,
    /// having queued its companion if it is one and the event matters.
    pub(super) fn unit_event_verdict<'a>(
        &'a self,
        sched: &mut Scheduler<Key>,
        ev: &'a PodmanEvent,
        unit: &'a str,
        now: Instant,
    ) -> Verdict<'a> {
        let companion = self.known.values().find(|c| c.service_name() == unit);
        match companion {
            None => Verdict::Ignored(Ignored::NotACompanion(unit)),
            Some(_) if !self.enabled() => Verdict::Ignored(Ignored::CompanionsOff),
            // A Quadlet container that exits is removed (--rm) and its service
            // goes inactive or failed; the reconcile reads which.
            Some(c) if REACT_TO.contains(&ev.action.as_str()) => {
                let scheduled = sched.schedule(Key::Companion(c.name.clone()), now);
                Verdict::scheduled(KeyRef::Companion(&c.name), scheduled, now)
            }
            Some(_) => Verdict::Ignored(Ignored::NoChange(&ev.action)),
        }
    }
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
        self.queue_all_companions(Source::StartUp, "companions", "look at every companion");
        self
    }

    fn companions_enabled(&self) -> bool {
        self.comp.enabled()
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

    /// Queue every companion (known or to be removed) with one event record.
    pub(super) fn queue_all_companions(&mut self, source: Source, kind: &str, what: &str) {
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
        self.observe_event(&EventSeen {
            at: now,
            source,
            kind,
            what: What::Words(what),
            subject: Subject::None,
            verdict: Verdict::Companions(names.len()),
        });
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
        let name = change.path.to_string_lossy();
        let verdict = if !self.companions_enabled() {
            Verdict::Ignored(Ignored::CompanionsOff)
        } else if change.kind == ChangeKind::Rescan || change.path.as_os_str().is_empty() {
            // Overflow, or the directory itself went or came back: anything may have changed.
            let names = self.all_companion_names();
            for n in &names {
                self.sched
                    .schedule(Key::Companion(n.clone()), now + UNIT_DIR_SETTLE);
            }
            Verdict::Companions(names.len())
        } else if is_temp_file(&name) {
            Verdict::Ignored(Ignored::OwnTempFile)
        } else {
            match self.comp.owner_of(&name) {
                Some(companion) => {
                    let key = Key::Companion(companion.to_string());
                    let scheduled = self.sched.schedule(key, now + UNIT_DIR_SETTLE);
                    Verdict::scheduled(KeyRef::Companion(companion), scheduled, now)
                }
                None => Verdict::Ignored(Ignored::NoOwner),
            }
        };
        let subject = if change.path.as_os_str().is_empty() {
            &change.dir
        } else {
            &change.path
        };
        let seen = EventSeen {
            at: now,
            source: Source::UnitDir,
            kind: change.kind.as_str(),
            what: What::Words(change.kind.as_str()),
            subject: Subject::Path(subject),
            verdict,
        };
        emit(&mut self.report, &mut self.observers, &seen);
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
            let (kind, why) = match (was, is) {
                (None, Some(_)) => ("companion-added", "companion added"),
                (Some(_), None) => ("companion-gone", "companion gone"),
                (Some(a), Some(b)) if a != b => ("companion-changed", "companion changed"),
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
            self.queue_declared(&Key::Companion(name), kind, why, now);
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
        let keys = names.iter().cloned().map(Key::Companion).collect();
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
        self.launch(keys, async move {
            Done::Companions(reconcile_companions(&*systemd, batch).await)
        });
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
        // issue 22 (create): a `.network` companion written or started
        // wakes the apps on named networks (podman 4.3 emits no network events).
        let touched: Vec<String> = outcome
            .items
            .iter()
            .filter(|r| r.result.is_ok() && r.action != Action::None)
            .filter_map(|r| match &r.key {
                Key::Companion(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        for r in outcome.items {
            // A kind change is done once the old file is gone.
            if let (Ok(()), Key::Companion(name)) = (&r.result, &r.key) {
                if self.apps.companion(name).is_some() {
                    self.comp.retired.remove(name);
                }
            }
            // "As declared" is in the summary line already.
            let print = r.action != Action::None || r.result.is_err();
            self.settle(&r, now, print);
        }
        self.after_network_companions(&touched, now);
    }
}
