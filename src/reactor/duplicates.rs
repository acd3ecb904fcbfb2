//! The reactor's duplicates: containers carrying an app's label under another name (`podman rename web web-old`), reported once and removed with their app.
//!
//! An app's container is the one named after it. After `podman rename web
//! web-old` the app has none, so podkeeper creates a new `web` (the rename
//! event queues it); `web-old` still carries `io.podkeeper.app=web` and keeps
//! running. podkeeper never guesses which of two copies a person meant to
//! keep: it says so once, leaves the duplicate alone while the manifest
//! exists, and removes it when the manifest is deleted, or at once with
//! `--prune-orphans`. Duplicates are learnt from `rename` events and from
//! every sweep (which lists every labelled container), and each is reconciled
//! under its own name as key (`app/web-old`), which is what the app
//! reconciler inspects and removes.
//!
//! An update's containers (`<app>.next`, `<app>.previous`: issue 23) carry
//! the app's label under another name too, but are no duplicates: they
//! tell that an update of the app is under way, which its reconcile is
//! told (`Remembered::update_under_way`) so that it looks for them.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::Reactor;
use crate::observe::{EventSeen, Source, Subject, What};
use crate::reconcile::updates::{role_of, UpdateNews};
use crate::reconcile::Reaction;
use crate::runtime::Podman;
use crate::trigger::{Key, KeyRef};
use crate::APP_LABEL;

/// Container name → the app whose label it carries.
#[derive(Default)]
pub(super) struct Duplicates {
    known: BTreeMap<String, String>,
    /// Apps with an update under way: a gate begun, or one of its
    /// containers listed or renamed so. Ended by the update's news.
    updating: BTreeSet<String>,
}

impl Duplicates {
    /// Whether a duplicate of `app` is known.
    pub fn has_copies_of(&self, app: &str) -> bool {
        self.known.values().any(|a| a == app)
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether an update of `app` may be under way.
    pub fn update_under_way(&self, app: &str) -> bool {
        self.updating.contains(app)
    }

    /// A sweep listed an update's containers of these apps.
    pub fn learn_updates(&mut self, apps: Vec<String>) {
        self.updating.extend(apps);
    }

    /// An app's reconcile told what became of its update.
    pub fn note_update(&mut self, r: &Reaction) {
        let Key::App(id) = &r.key else { return };
        match &r.update {
            Some(UpdateNews::Gating { .. }) => {
                if !self.updating.contains(id) {
                    self.updating.insert(id.clone());
                }
            }
            Some(UpdateNews::Applied { .. } | UpdateNews::RolledBack { .. }) => {
                self.updating.remove(id);
            }
            // Not made (a pull, a create) while a gate may still be under
            // way, or a gate failed with nothing to go back to: the next
            // looks still judge the container the app has.
            Some(UpdateNews::Failed { .. }) | None => {}
        }
    }
}

impl<R: Podman> Reactor<R> {
    /// Whether the reconcile of key `app/<name>` may remove a labelled
    /// container of that name that no manifest wants: its manifest was deleted
    /// in this run, it duplicates an app whose manifest was, or
    /// `--prune-orphans`.
    pub(super) fn may_remove(&self, name: &str) -> bool {
        self.prune_orphans()
            || self.had_manifest.contains(name)
            || self.dups.known.get(name).is_some_and(|app| {
                self.had_manifest.contains(app) && !self.apps.apps.contains_key(app)
            })
    }

    /// A sweep's duplicates (all of them): remember them, report the new
    /// ones; and the apps with an update's container (an update under way).
    pub(super) fn learn_duplicates(&mut self, found: Vec<(String, String)>, updating: Vec<String>) {
        self.dups.learn_updates(updating);
        let before = std::mem::take(&mut self.dups.known);
        for (name, app) in found {
            if !before.contains_key(&name) {
                self.report_duplicate(&name, &app);
            }
            self.dups.known.insert(name, app);
        }
    }

    /// A `rename` event of a container labelled `app`: a duplicate if its new
    /// name is not the app's (queued at once when it may go), none any more
    /// if it was renamed back.
    pub(super) fn on_rename(&mut self, app: &str, name: &str, now: Instant) {
        if name == app {
            self.dups.known.remove(name);
            return;
        }
        if role_of(name).is_some_and(|(of, _)| of == app) {
            // An update's step (issue 23), not a copy.
            if !self.dups.updating.contains(app) {
                self.dups.updating.insert(app.to_string());
            }
            return;
        }
        if !self.has_or_had_manifest(app) {
            // An orphan's copy: the orphan rules apply.
            return;
        }
        if self
            .dups
            .known
            .insert(name.to_string(), app.to_string())
            .is_none()
        {
            self.report_duplicate(name, app);
        }
        if self.may_remove(name) {
            self.sched.schedule(Key::App(name.to_string()), now);
        }
    }

    /// A container of that name was removed.
    pub(super) fn forget_duplicate(&mut self, name: &str) {
        if !self.dups.known.is_empty() {
            self.dups.known.remove(name);
        }
    }

    /// The manifest of `app` is gone: its duplicates go with its container.
    pub(super) fn queue_duplicates_of(&mut self, app: &str, now: Instant) {
        let names: Vec<String> = self
            .dups
            .known
            .iter()
            .filter(|(_, a)| a.as_str() == app)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let key = Key::App(name);
            let verdict = self.schedule_verdict(&key, now);
            self.observe_event(&EventSeen {
                at: now,
                source: Source::AppsDir,
                kind: "duplicate",
                what: What::DuplicateOf(app),
                subject: Subject::Key(KeyRef::from(&key)),
                verdict,
            });
        }
    }

    fn report_duplicate(&mut self, name: &str, app: &str) {
        let fate = if self.prune_orphans() {
            "removing it (--prune-orphans)".to_string()
        } else if self.apps.apps.contains_key(app) {
            format!("left alone while app/{app}'s manifest exists (removed with it; --prune-orphans removes it now)")
        } else {
            format!("removing it: app/{app}'s manifest is gone")
        };
        self.report.note(
            "duplicate",
            &format!("{name}: a second container of app/{app} (labelled {APP_LABEL}={app} but not named {app}, e.g. after `podman rename`); {fate}"),
            true,
        );
    }
}
