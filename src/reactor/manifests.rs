//! A freshly read apps directory taken in: which apps changed, what its errors say, whether orphans may go.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::Instant;

use super::Reactor;
use crate::manifest::{self, ManifestSet};
use crate::observe::{EventSeen, Source, Subject, What};
use crate::runtime::Podman;
use crate::trigger::{Key, KeyRef};

impl<R: Podman> Reactor<R> {
    /// Whether app `id` has a manifest, or had one in this run: its
    /// containers are podkeeper's; any other labelled one is an orphan.
    /// `had_manifest` holds every id of `apps` too; `apps` is asked as well
    /// so the answer never depends on the order the two are updated in.
    pub(super) fn has_or_had_manifest(&self, id: &str) -> bool {
        self.had_manifest.contains(id) || self.apps.apps.contains_key(id)
    }

    /// Take a freshly read apps directory: queue exactly the apps that changed.
    pub(super) fn apply_manifests(&mut self, set: ManifestSet, now: Instant) {
        self.report_manifest_errors(&set);
        let old = self.apps.clone();
        let ids: BTreeSet<&String> = old.apps.keys().chain(set.apps.keys()).collect();
        let mut changed = Vec::new();
        for id in ids {
            let why = match (old.apps.get(id), set.apps.get(id)) {
                (None, Some(_)) => ("manifest-added", "manifest added"),
                (Some(_), None) => ("manifest-gone", "manifest gone"),
                (Some(a), Some(b)) if a.app != b.app => ("manifest-changed", "manifest changed"),
                // container.secrets: a secret file's content changed.
                (Some(a), Some(b)) if a.spec_hash != b.spec_hash => {
                    ("manifest-changed", "secret changed")
                }
                _ => continue,
            };
            // A health restart decided on the old declaration is called off.
            if let Some(run) = self.health_runs.get(id) {
                run.cancel();
            }
            changed.push((id.clone(), why));
        }
        for id in set.apps.keys() {
            self.had_manifest.insert(id.clone());
        }
        for o in &mut self.observers {
            o.declared(&set);
        }
        self.apps = Arc::new(set);
        self.forget_undeclared();
        self.diff_companions(&old, now);
        self.schedule_checks(changed.iter().map(|(id, _)| id.clone()).collect(), now);
        for (id, (kind, why)) in changed {
            let key = Key::App(id);
            self.queue_declared(&key, kind, why, now);
            if kind == "manifest-gone" {
                if let Key::App(id) = &key {
                    self.queue_duplicates_of(id, now);
                }
            }
        }
    }

    /// `key`'s declaration changed (`kind`: `manifest-added`, …; `why` in
    /// words): queue it now, past any backoff (a change of declaration is
    /// news), and record the event.
    pub(super) fn queue_declared(&mut self, key: &Key, kind: &str, why: &str, now: Instant) {
        self.sched.reset_backoff(key, now);
        let verdict = self.schedule_verdict(key, now);
        self.observe_event(&EventSeen {
            at: now,
            source: Source::AppsDir,
            kind,
            what: What::Words(why),
            subject: Subject::Key(KeyRef::from(key)),
            verdict,
        });
    }

    /// Whether orphans may be removed now: with `--prune-orphans`, and only
    /// while every manifest is valid. An invalid file may be the one that
    /// declares an orphan's app; its container must not pay for a typo.
    pub(super) fn prune_orphans(&self) -> bool {
        self.cfg.prune_orphans && self.apps.errors.is_empty()
    }

    /// Each error once, while it lasts; a file that was in error and no
    /// longer is gets one line saying so.
    pub(super) fn report_manifest_errors(&mut self, set: &ManifestSet) {
        let errors: Vec<(PathBuf, String)> = set
            .errors
            .iter()
            .map(|e| (e.file.clone(), e.to_string()))
            .collect();
        for (_, e) in &errors {
            if !self.reported_errors.iter().any(|(_, r)| r == e) {
                self.report.note("manifest error", e, true);
            }
        }
        let fixed: BTreeSet<&PathBuf> = self
            .reported_errors
            .iter()
            .map(|(f, _)| f)
            .filter(|f| !errors.iter().any(|(e, _)| e == *f))
            .collect();
        for file in fixed {
            let what = if file.exists() { "valid again" } else { "gone" };
            let file = manifest::excerpt::file_name(&file.display().to_string());
            self.report
                .note("manifest", &format!("{file}: {what}"), false);
        }
        self.reported_errors = errors;
    }
}
