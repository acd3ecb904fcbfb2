//! What status shows: each app's and companion's state as the reactor's own records left it, kept by an observer.
//!
//! [`Records`] is an [`Observer`]: it reads the same event and reaction
//! records as the debug printer, asks podman nothing, and keeps a [`Board`]
//! (one row per declared app and companion) and the metrics' counters. The
//! board sits behind a mutex only the reactor's task and a status request
//! take; a reaction updates one row, an event only counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::metrics::Metrics;
use crate::manifest::{DesiredState, ManifestSet};
use crate::observe::{EventSeen, Ignored, Observer, Reacted, RememberedFailure, Verdict, What};
use crate::reconcile::{restart, Action, Category, Failure, Reaction};
use crate::trigger::Key;
pub use updates::{UpdateRow, UpdateStatus};

/// What the control socket serves from: the board and the metrics; and
/// where its `retry` goes (the reactor's channel, once there is one).
pub struct Shared {
    pub board: Mutex<Board>,
    pub metrics: Metrics,
    pub triggers: std::sync::OnceLock<tokio::sync::mpsc::Sender<crate::trigger::Trigger>>,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Shared {
            board: Mutex::new(Board::default()),
            metrics: Metrics::new(),
            triggers: std::sync::OnceLock::new(),
        })
    }

    /// The board, even if a panic poisoned its lock (it holds plain data).
    pub fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The status as served: computed on request, never kept.
    pub fn status(&self) -> Status {
        self.board().status(Timestamp::now())
    }

    /// The metrics text as served (the gauges are read off the board now).
    pub fn metrics_text(&self) -> String {
        let board = self.board();
        self.metrics
            .encode(&board.app_states(), &board.companion_states())
    }
}

/// One reconcile as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReaction {
    /// Wall-clock time, RFC 3339.
    pub at: String,
    pub action: String,
    pub reason: String,
    /// `ok`, or `failed: …`.
    pub result: String,
}

impl LastReaction {
    fn of(r: &Reaction, at: Timestamp) -> Self {
        LastReaction {
            at: rfc3339(at),
            action: r.action.as_str().to_string(),
            reason: r.why.clone(),
            result: match &r.result {
                Ok(()) => "ok".into(),
                Err(e) => format!("failed: {e}"),
            },
        }
    }
}

/// One app's row, as kept between reactions.
#[derive(Debug, Clone, Default)]
pub struct AppRow {
    pub declared: &'static str,
    pub has_health: bool,
    /// podman's state word or `missing`; `None` before any record said.
    pub state: Option<String>,
    /// The exit code of a container left exited by its policy (`completed`, `failed`).
    pub exit_code: Option<i32>,
    pub container: Option<String>,
    pub restarts: u64,
    pub last: Option<LastReaction>,
    /// The last failure's cause, in status words; cleared by a success.
    pub failure: Option<String>,
    /// What the app waits for (a dependency, podman's cleanup).
    pub waiting_for: Option<String>,
    /// It exited soon after a start and the scheduler holds its next
    /// restart back: how long it had run. Shown only while the container is
    /// last seen down.
    pub crashed_after: Option<Duration>,
    /// When podman last said its container started (tokio's clock).
    pub up_since: Option<Instant>,
    /// podman said it died while a reconcile of it ran (and no start
    /// since): that reconcile's `found` is older news.
    pub died_during_run: bool,
    /// The scheduler (or the health restarts' backoff) holds it back until then.
    pub held_until: Option<Timestamp>,
    pub health: Option<String>,
    /// An update in its gate, or a spec rolled back (issue 23).
    pub update: Option<UpdateRow>,
}

/// One companion's row.
#[derive(Debug, Clone, Default)]
pub struct CompanionRow {
    pub app: String,
    pub kind: String,
    /// `active` (as declared), `waiting`, `failed`, or `unknown` before any record.
    pub state: &'static str,
    pub last: Option<LastReaction>,
    pub why: Option<String>,
    pub held_until: Option<Timestamp>,
}

/// Every declared app and companion, as the reactor's records left them.
#[derive(Debug, Default)]
pub struct Board {
    pub apps: BTreeMap<String, AppRow>,
    pub companions: BTreeMap<String, CompanionRow>,
    /// Why the last sweep could not list the containers (podman away).
    pub podman_error: Option<String>,
    pub last_sweep: Option<Timestamp>,
    pub started: Option<Timestamp>,
    /// Reconciles lost to a panic (each key of the task), settled as failed.
    pub panics: u64,
}

/// `podkeeper status --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub started: Option<String>,
    pub last_sweep: Option<String>,
    /// null, or why podman could not be listed at the last sweep.
    pub podman_error: Option<String>,
    pub apps: Vec<AppStatus>,
    pub companions: Vec<CompanionStatus>,
    /// Reconciles lost to a panic since start-up (absent from older daemons).
    #[serde(default)]
    pub reconcile_panics: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    pub id: String,
    /// `running` or `stopped`, as the manifest says.
    pub declared: String,
    /// podman's state word, `missing`, or `unknown` before the first sweep.
    pub state: String,
    pub container: Option<String>,
    pub restarts: u64,
    pub last_reaction: Option<LastReaction>,
    /// null when the app is as declared.
    pub why: Option<String>,
    /// When a backoff or crash-loop delay in force ends (RFC 3339).
    pub backoff_until: Option<String>,
    /// podkeeper's own checks: `starting`, `healthy`, `failing`,
    /// `unhealthy`; null without a healthcheck.
    pub health: Option<String>,
    pub waiting_for: Option<String>,
    /// An update in its gate (`updating`) or rolled back; absent from older daemons.
    #[serde(default)]
    pub update: Option<UpdateStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanionStatus {
    pub name: String,
    pub app: String,
    pub kind: String,
    pub state: String,
    pub last_reaction: Option<LastReaction>,
    pub why: Option<String>,
    pub backoff_until: Option<String>,
}

pub(crate) fn rfc3339(t: Timestamp) -> String {
    // RFC 3339 in UTC, to the millisecond: `2026-12-07T20:38:03.123Z`.
    format!("{t:.3}")
}

fn until(now: Timestamp, d: Option<Duration>) -> Option<Timestamp> {
    d.and_then(|d| now.checked_add(d).ok())
}

/// A failed reconcile's cause in status words: its category, then its text.
pub fn cause(failure: &Failure) -> String {
    let e = crate::manifest::excerpt::excerpt(&failure.to_string(), 160);
    let what = match failure.category() {
        Category::NameConflict => "name conflict",
        Category::ImageMissing => "image missing",
        _ if failure.podman_away() => "podman unreachable",
        _ => "failed",
    };
    format!("{what}: {e}")
}

impl Board {
    fn app_reaction(&mut self, id: &str, r: &Reaction, at: Timestamp, held: Option<Duration>) {
        let Some(row) = self.apps.get_mut(id) else {
            return;
        };
        if let Some(f) = r.found.first() {
            row.state = Some(f.state.clone());
            row.exit_code = f.exit_code;
            row.container = f.container.clone();
        }
        updates::take_news(row, r, at);
        if std::mem::take(&mut row.died_during_run) {
            row.state = Some("exited".into());
        }
        if r.action != Action::None || r.result.is_err() || row.last.is_none() {
            row.last = Some(LastReaction::of(r, at));
        }
        // A look again shortly (the exit grace, podman cleaning up) changes
        // no hold: what the last start or exit said of the next one stands.
        let look_again = r.action == Action::Wait && r.waits_for.is_none() && r.result.is_ok();
        if !look_again {
            row.held_until = until(at, held);
        }
        row.waiting_for = None;
        match &r.result {
            Err(e) => row.failure = Some(cause(e)),
            Ok(()) => {
                row.failure = None;
                // Waiting for a dependency; a wait to look again shortly
                // (the exit grace, podman cleaning up) is no state of its own.
                if r.action == Action::Wait && r.waits_for.is_some() {
                    row.waiting_for = Some(match r.why.split_once("waiting for ") {
                        Some((_, what)) => what.to_string(),
                        None => r.why.clone(),
                    });
                }
                if r.restarted_after.is_some() {
                    row.restarts += 1;
                    // Held back after this start: it is crash-looping.
                    row.crashed_after = held.and(r.restarted_after);
                } else if look_again {
                    // Whatever the crash loop was, it still is.
                } else if r.action != Action::None || row.state.as_deref() != Some("running") {
                    row.crashed_after = None;
                }
            }
        }
    }

    /// A podman event of an app's own container: what it says of the
    /// container is the newest news of it (a pending restart is not).
    fn container_event(&mut self, seen: &EventSeen<'_>) {
        let What::Podman(ev) = seen.what else {
            return;
        };
        let Some(app) = ev.label(crate::APP_LABEL) else {
            return;
        };
        // Its own container (a duplicate's events are not its state).
        let Some(row) = self.apps.get_mut(app).filter(|_| ev.name() == app) else {
            return;
        };
        match (ev.action.as_str(), seen.verdict) {
            ("start", _) => {
                row.state = Some("running".into());
                row.container = Some(ev.actor.id.clone());
                row.up_since = Some(seen.at);
                row.died_during_run = false;
            }
            // An exit the last reconcile already saw: nothing new.
            ("died", Verdict::Ignored(Ignored::SeenByCheck(_))) => {}
            ("died", verdict) => {
                row.state = Some("exited".into());
                if let (Some(_), Some(up)) = (row.crashed_after, row.up_since) {
                    row.crashed_after = Some(seen.at.saturating_duration_since(up));
                }
                match verdict {
                    // While a reconcile of it runs (one that has just started
                    // it, say): that reconcile's record, when it lands, is
                    // older than this.
                    Verdict::Dirty(_) => row.died_during_run = true,
                    // Its restart runs after `wait` (a crash-loop delay, if any).
                    Verdict::Queued(_, wait) | Verdict::Merged(_, wait) if !wait.is_zero() => {
                        row.held_until = until(Timestamp::now(), Some(wait));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn health_reaction(&mut self, id: &str, r: &Reaction, at: Timestamp) {
        let Some(row) = self.apps.get_mut(id) else {
            return;
        };
        match (r.action, &r.result) {
            (Action::Healthy, _) => {
                // A check passed: its container runs.
                row.health = Some("healthy".into());
                row.state = Some("running".into());
            }
            (Action::Failing, _) => row.health = Some("failing".into()),
            (Action::Restart, Ok(())) => {
                row.health = Some("unhealthy".into());
                row.restarts += 1;
                row.state = Some("running".into());
            }
            (Action::Wait, Ok(())) => {
                row.health = Some("unhealthy".into());
                row.held_until = until(at, r.requeue_after);
            }
            _ => {}
        }
        if r.action != Action::None || r.result.is_err() {
            row.last = Some(LastReaction::of(r, at));
        }
    }

    fn companion_reaction(
        &mut self,
        name: &str,
        r: &Reaction,
        at: Timestamp,
        held: Option<Duration>,
    ) {
        let Some(row) = self.companions.get_mut(name) else {
            return;
        };
        if r.action != Action::None || r.result.is_err() || row.last.is_none() {
            row.last = Some(LastReaction::of(r, at));
        }
        row.held_until = until(at, held);
        (row.state, row.why) = match (&r.result, r.action) {
            (Err(e), _) => ("failed", Some(cause(e))),
            (Ok(()), Action::Wait) => ("waiting", Some(r.why.clone())),
            (Ok(()), _) => ("active", None),
        };
    }

    /// The status now: each row's `why` is worked out here, on request.
    pub fn status(&self, now: Timestamp) -> Status {
        let apps = self
            .apps
            .iter()
            .map(|(id, row)| {
                let held = row.held_until.filter(|t| *t > now);
                let state = row.state.clone().unwrap_or_else(|| "unknown".into());
                // `completed`: exited 0, left so by its `restart` policy.
                let as_declared = match row.declared {
                    "stopped" => state != "running" && state != "paused" && state != "missing",
                    _ => state == "running" || state == restart::COMPLETED,
                };
                let update = updates::status_of(row, now);
                let why = if let Some(f) = &row.failure {
                    Some(f.clone())
                } else if let Some((_, why)) = &update {
                    Some(why.clone())
                } else if let Some(w) = &row.waiting_for {
                    Some(format!("waiting for {w}"))
                } else if let (Some(up), Some(t), false) =
                    (row.crashed_after, held, state == "running")
                {
                    // Down, its restart held back. Once seen running again
                    // (a start, a start event, a passing check, a reconcile
                    // that found it so) the hold is only for a next exit.
                    Some(format!(
                        "crash-looping: exited after {} up; next restart not before {}",
                        crate::report::secs(up),
                        t.to_zoned(jiff::tz::TimeZone::system())
                            .strftime("%H:%M:%S")
                    ))
                } else if let (Some(e), false) = (&self.podman_error, as_declared) {
                    Some(format!("podman unreachable: {e}"))
                } else if state == restart::FAILED {
                    Some(
                        restart::Done::Failed {
                            code: row.exit_code,
                        }
                        .describe(),
                    )
                } else if !as_declared {
                    Some(format!("{state}, declared {}", row.declared))
                } else if row.health.as_deref() == Some("unhealthy") {
                    Some("unhealthy".into())
                } else {
                    None
                };
                AppStatus {
                    id: id.clone(),
                    declared: row.declared.to_string(),
                    state,
                    container: row.container.clone(),
                    restarts: row.restarts,
                    last_reaction: row.last.clone(),
                    why,
                    backoff_until: held.map(rfc3339),
                    health: row.health.clone(),
                    waiting_for: row.waiting_for.clone(),
                    update: update.map(|(u, _)| u),
                }
            })
            .collect();
        let companions = self
            .companions
            .iter()
            .map(|(name, row)| CompanionStatus {
                name: name.clone(),
                app: row.app.clone(),
                kind: row.kind.clone(),
                state: row.state.to_string(),
                last_reaction: row.last.clone(),
                why: row.why.clone(),
                backoff_until: row.held_until.filter(|t| *t > now).map(rfc3339),
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            started: self.started.map(rfc3339),
            last_sweep: self.last_sweep.map(rfc3339),
            podman_error: self.podman_error.clone(),
            apps,
            companions,
            reconcile_panics: self.panics,
        }
    }

    /// How many apps (or companions) are in each state, for the gauges.
    pub fn app_states(&self) -> BTreeMap<String, i64> {
        let mut n = BTreeMap::new();
        for row in self.apps.values() {
            *n.entry(row.state.clone().unwrap_or_else(|| "unknown".into()))
                .or_insert(0) += 1;
        }
        n
    }

    pub fn companion_states(&self) -> BTreeMap<&'static str, i64> {
        let mut n = BTreeMap::new();
        for row in self.companions.values() {
            *n.entry(row.state).or_insert(0) += 1;
        }
        n
    }
}

/// The observer that keeps the board and counts for the metrics.
pub struct Records {
    shared: Arc<Shared>,
}

impl Records {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.board().started = Some(Timestamp::now());
        Records { shared }
    }
}

impl Observer for Records {
    fn event(&mut self, seen: &EventSeen<'_>) {
        self.shared.metrics.count_event(seen);
        // The board's lock only for what says a container is up or down.
        if matches!(seen.what, What::Podman(ev) if ev.action == "start" || ev.action == "died") {
            self.shared.board().container_event(seen);
        }
    }

    fn reaction(&mut self, reacted: &Reacted<'_>) {
        let r = reacted.reaction;
        self.shared.metrics.count_reaction(reacted);
        let at = Timestamp::now();
        let held = reacted.held_for.or(reacted.retry_in);
        let mut board = self.shared.board();
        if r.failure().map(Failure::category) == Some(Category::Panicked) {
            board.panics += 1;
        }
        match &r.key {
            Key::App(id) => {
                if r.restarted_after.is_some() && r.result.is_ok() {
                    self.shared.metrics.count_restart(id);
                }
                if let Some(result) = r.update.as_ref().and_then(|u| u.result()) {
                    self.shared.metrics.count_update(id, result);
                }
                board.app_reaction(id, r, at, held);
            }
            Key::Health(id) => {
                if r.action == Action::Restart && r.result.is_ok() {
                    self.shared.metrics.count_restart(id);
                }
                board.health_reaction(id, r, at);
            }
            Key::Companion(name) => board.companion_reaction(name, r, at, held),
            Key::Sweep => {
                board.last_sweep = Some(at);
                match &r.result {
                    Ok(()) => {
                        board.podman_error = None;
                        for f in &r.found {
                            if let Some(row) = board.apps.get_mut(&f.app) {
                                row.state = Some(f.state.clone());
                                row.exit_code = f.exit_code;
                                row.container = f.container.clone();
                            }
                        }
                    }
                    Err(e) => board.podman_error = Some(e.to_string()),
                }
            }
            Key::Manifests => {}
        }
    }

    fn remembered(&mut self, app: &str, failed: Option<&RememberedFailure>) {
        if let Some(row) = self.shared.board().apps.get_mut(app) {
            updates::remembered(row, failed);
        }
    }

    fn declared(&mut self, apps: &ManifestSet) {
        let mut board = self.shared.board();
        let mut was = std::mem::take(&mut board.apps);
        board.apps = apps
            .apps
            .iter()
            .map(|(id, a)| {
                let mut row = was.remove(id).unwrap_or_default();
                row.declared = match a.app.state {
                    DesiredState::Running => "running",
                    DesiredState::Stopped => "stopped",
                };
                row.has_health = a.app.container.healthcheck.is_some();
                match (row.has_health, &row.health) {
                    (true, None) => row.health = Some("starting".into()),
                    (false, _) => row.health = None,
                    _ => {}
                }
                (id.clone(), row)
            })
            .collect();
        // A deleted app's restart counter goes with its row: ids churn over
        // years, and a label per app ever seen would grow without bound.
        for gone in was.keys() {
            self.shared.metrics.forget_app(gone);
        }
        let mut was = std::mem::take(&mut board.companions);
        board.companions = apps
            .companions()
            .map(|(app, c)| {
                let mut row = was.remove(&c.name).unwrap_or_else(|| CompanionRow {
                    state: "unknown",
                    ..CompanionRow::default()
                });
                row.app = app.to_string();
                row.kind = format!("{:?}", c.kind).to_lowercase();
                (c.name.clone(), row)
            })
            .collect();
    }
}

#[cfg(test)]
mod tests;
pub(crate) mod updates;
