//! Forgetting a deleted app (client-go's `Forget`): once its manifest and its containers are gone, nothing is kept of it, so apps created and deleted for ever leave the reactor's maps as they were.
//!
//! An app is forgotten when a reconcile of it ends well with no manifest and
//! no container left, and nothing of it is queued or running; a sweep that
//! finds no container of a deleted app forgets it too (one whose duplicates
//! were removed after it). Until then `had_manifest` must keep it: that is
//! what lets its container, and its duplicates, be removed.

use std::collections::HashSet;

use super::Reactor;
use crate::reconcile::Reaction;
use crate::runtime::Podman;
use crate::trigger::Key;

/// How many entries each of the reactor's per-key maps holds (tests: a run
/// that only added and deleted apps ends where it began).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapSizes {
    pub had_manifest: usize,
    pub reported_orphans: usize,
    pub container_apps: usize,
    pub checks: usize,
    pub exits_written: usize,
    pub exits_looked: usize,
    pub health: usize,
    pub waiting: usize,
    pub health_runs: usize,
    pub waits_said: usize,
    pub scheduler_keys: usize,
    pub tasks: usize,
    pub busy: usize,
    pub repairs_due: usize,
    pub duplicates: usize,
    pub companions: usize,
    pub companions_retired: usize,
}

impl<R: Podman> Reactor<R> {
    /// The size of every per-key map (cheap: lengths only).
    pub fn map_sizes(&self) -> MapSizes {
        let (exits_written, exits_looked) = self.exits.sizes();
        let (tasks, busy, repairs_due) = self.slots.sizes();
        let (companions, companions_retired) = self.comp.sizes();
        MapSizes {
            had_manifest: self.had_manifest.len(),
            reported_orphans: self.reported_orphans.len(),
            container_apps: self.container_apps.len(),
            checks: self.checks.len(),
            exits_written,
            exits_looked,
            health: self.health.len(),
            waiting: self.waiting.len(),
            health_runs: self.health_runs.len(),
            waits_said: self.waits_said.len(),
            scheduler_keys: self.sched.known(),
            tasks,
            busy,
            repairs_due,
            duplicates: self.dups.len(),
            companions,
            companions_retired,
        }
    }

    /// After an app's reconcile was settled: forget the app if it left
    /// neither manifest nor container.
    pub(super) fn forget_if_gone(&mut self, r: &Reaction) {
        let Key::App(id) = &r.key else { return };
        let gone = r.result.is_ok()
            && r.requeue_after.is_none()
            && r.found.first().is_some_and(|f| f.container.is_none());
        if gone {
            self.forget_app(id);
        }
    }

    /// After a sweep that listed every labelled container (into
    /// `container_apps`): forget each deleted app none of them belongs to.
    pub(super) fn forget_absent(&mut self) {
        let present: HashSet<&str> = self.container_apps.values().map(String::as_str).collect();
        let absent: Vec<String> = self
            .had_manifest
            .iter()
            .filter(|id| !present.contains(id.as_str()) && !self.apps.apps.contains_key(*id))
            .cloned()
            .collect();
        for id in absent {
            self.forget_app(&id);
        }
    }

    /// Drop everything kept of app `id`, unless it has a manifest or one of
    /// its keys is queued or running. Its entry in `had_manifest` stays
    /// while a duplicate of it is known (removing that needs it).
    fn forget_app(&mut self, id: &str) {
        if self.apps.apps.contains_key(id) || !self.sched.forget(&Key::App(id.to_string())) {
            return;
        }
        if self.sched.forget(&Key::Health(id.to_string())) {
            self.health.remove(id);
            self.health_runs.remove(id);
        }
        self.checks.remove(id);
        self.exits.forget_app(id);
        self.waiting.remove(id);
        self.waits_said.remove(id);
        self.slots.forget(id);
        if !self.dups.has_copies_of(id) {
            self.had_manifest.remove(id);
        }
    }
}
