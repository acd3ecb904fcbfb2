//! The full sweep: one list call, then queue only the apps that differ from their manifest.

use std::collections::{BTreeMap, HashSet};

use super::restart;
use super::{Action, CallLog, Found, Reaction};
use crate::manifest::ManifestSet;
use crate::reconcile::app::{drift, Drift};
use crate::reconcile::updates::role_of;
use crate::runtime::{ContainerInfo, Podman};
use crate::trigger::Key;
use crate::APP_LABEL;

/// What a sweep found, besides the keys it queues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepFindings {
    /// Labelled containers with no manifest that we leave alone.
    pub orphans: Vec<String>,
    /// Every labelled container: (container id, app id).
    pub containers: Vec<(String, String)>,
    /// Labelled containers not named after their app (`podman rename web
    /// web-old` leaves one, and podkeeper creates a new `web`): (container
    /// name, app id), whether the sweep queued them for removal or not.
    pub duplicates: Vec<(String, String)>,
    /// Apps with an update's container (`<app>.next`, `<app>.previous`):
    /// an update under way, each queued (issue 23).
    pub updating: Vec<String>,
}

/// List every labelled container once and compare with `apps`.
/// `removable` are app ids whose containers may go without a manifest
/// (deleted during this run); `prune` extends that to every orphan.
pub async fn sweep<R: Podman>(
    rt: &R,
    apps: &ManifestSet,
    removable: &HashSet<String>,
    prune: bool,
) -> (Reaction, SweepFindings) {
    let mut reaction = Reaction::new(Key::Sweep);
    let mut log = CallLog::default();
    let mut findings = SweepFindings::default();
    match log.time("list", rt.list_managed()).await {
        Ok(list) => {
            // An app's container is the one named after it; any other
            // container carrying its label is a duplicate.
            let mut by_app: BTreeMap<&str, &ContainerInfo> = BTreeMap::new();
            let mut duplicates: Vec<(&str, &ContainerInfo)> = Vec::new();
            for c in &list {
                let Some(id) = c.label(APP_LABEL) else {
                    continue;
                };
                if c.name == id {
                    by_app.insert(id, c);
                } else if role_of(&c.name).is_some_and(|(of, _)| of == id) {
                    // An update's container: no duplicate (issue 23).
                    if !findings.updating.iter().any(|a| a == id) {
                        findings.updating.push(id.to_string());
                    }
                } else {
                    duplicates.push((id, c));
                }
            }
            findings.containers = list
                .iter()
                .filter_map(|c| Some((c.id.clone(), c.label(APP_LABEL)?.to_string())))
                .collect();
            for (id, app) in &apps.apps {
                let c = by_app.get(id.as_str()).copied();
                let drifted = drift(Some(app), c);
                // No drift and not running: left exited by its policy.
                let done = c
                    .filter(|_| drifted.is_none())
                    .and_then(|c| Some((c, restart::done(app, c)?)));
                reaction.found.push(match done {
                    Some((c, done)) => done.found(id, c),
                    None => Found {
                        app: id.clone(),
                        container: c.map(|c| c.id.clone()),
                        state: c.map_or("missing", |c| c.state.as_str()).to_string(),
                        exit_code: None,
                    },
                });
                if let Some(d) = drifted {
                    reaction.queue.push((Key::App(id.clone()), d.describe()));
                }
            }
            for (id, c) in &by_app {
                if apps.apps.contains_key(*id) {
                    continue;
                }
                if prune || removable.contains(*id) {
                    reaction
                        .queue
                        .push((Key::App(id.to_string()), Drift::Unwanted.describe()));
                } else {
                    findings.orphans.push(format!("{id} ({})", c.name));
                }
            }
            for id in &findings.updating {
                let key = Key::App(id.clone());
                if reaction.queue.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                if apps.apps.contains_key(id) || prune || removable.contains(id) {
                    reaction.queue.push((key, "update in progress".into()));
                } else {
                    findings
                        .orphans
                        .push(format!("{id} (an update's container)"));
                }
            }
            for (id, c) in duplicates {
                let declared = apps.apps.contains_key(id);
                if prune || (!declared && removable.contains(id)) {
                    // Keyed by the container's own name: that is what the
                    // app reconciler inspects and removes.
                    let why = if declared {
                        format!("duplicate of app/{id} (--prune-orphans)")
                    } else {
                        format!("duplicate of app/{id}, manifest deleted")
                    };
                    reaction.queue.push((Key::App(c.name.clone()), why));
                    findings.duplicates.push((c.name.clone(), id.to_string()));
                } else if declared {
                    findings.duplicates.push((c.name.clone(), id.to_string()));
                } else {
                    findings.orphans.push(format!("{id} ({})", c.name));
                }
            }
            reaction.action = if reaction.queue.is_empty() {
                Action::None
            } else {
                Action::Queue
            };
            reaction.why = format!(
                "{} containers listed, {} differ{}",
                list.len(),
                reaction.queue.len(),
                if findings.orphans.is_empty() {
                    String::new()
                } else {
                    format!(", {} orphans left alone", findings.orphans.len())
                }
            );
        }
        Err(e) => reaction.result = Err(e.into()),
    }
    reaction.calls = log.calls;
    (reaction, findings)
}
