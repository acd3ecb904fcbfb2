//! Reconcile one app: its container exists, carries our labels and spec hash, and runs.

mod create;
mod gate;
mod replace;
mod roles;
mod sharers;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{restart, Action, CallLog, Failure, Found, Reaction, Remembered};
use crate::manifest::{DesiredState, LoadedApp, ManifestSet};
use crate::runtime::{ContainerInfo, ContainerState, Podman, RuntimeError, StopWith};
use crate::trigger::Key;
use crate::{APP_LABEL, SPEC_HASH_LABEL};
use create::{create_and_start, look_again_unless};
pub use create::{NAME_IN_USE_GRACE, NAME_IN_USE_POLL};

/// How a container differs from what its manifest wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// No container of that name.
    Missing,
    /// A container of that name exists but lacks our label: never touched.
    NotOurs,
    /// Created from another spec.
    SpecChanged {
        found: String,
    },
    /// Exited, stopped or never started.
    NotRunning {
        state: String,
        exit_code: Option<i32>,
    },
    Paused,
    /// Running (or paused), but the manifest says `state: stopped`.
    Started,
    /// Stopping or being removed right now: look again shortly.
    Transient {
        state: String,
    },
    /// Ours, but no manifest wants it.
    Unwanted,
}

impl Drift {
    pub fn describe(&self) -> String {
        match self {
            Drift::Missing => "container missing".into(),
            Drift::NotOurs => format!("a container of that name exists without the {APP_LABEL} label; podkeeper never touches it (remove or rename it)"),
            Drift::SpecChanged { found } => format!("spec changed (container has {found:?})"),
            Drift::NotRunning { state, exit_code: Some(code) } => format!("{state} (code {code})"),
            Drift::NotRunning { state, .. } => state.clone(),
            Drift::Paused => "paused".into(),
            Drift::Started => "running, but declared stopped".into(),
            Drift::Transient { state } => format!("{state}, looking again shortly"),
            Drift::Unwanted => "manifest deleted".into(),
        }
    }
}

/// Compare one app's manifest with its container. `None` means all is as declared.
/// The sweep (on list results) and the app reconciler (on inspect results) share it.
pub fn drift(desired: Option<&LoadedApp>, actual: Option<&ContainerInfo>) -> Option<Drift> {
    let Some(actual) = actual else {
        return desired.map(|_| Drift::Missing);
    };
    let Some(desired) = desired else {
        return actual.label(APP_LABEL).is_some().then_some(Drift::Unwanted);
    };
    if actual.label(APP_LABEL) != Some(desired.app.id.as_str()) {
        return Some(Drift::NotOurs);
    }
    let found = actual.label(SPEC_HASH_LABEL).unwrap_or("");
    if found != desired.spec_hash {
        return Some(Drift::SpecChanged {
            found: found.to_string(),
        });
    }
    if desired.app.state == DesiredState::Stopped {
        return match &actual.state {
            ContainerState::Running | ContainerState::Paused => Some(Drift::Started),
            ContainerState::Stopping | ContainerState::Removing => Some(Drift::Transient {
                state: actual.state.as_str().to_string(),
            }),
            _ => None,
        };
    }
    // Exited and left so by its `restart` policy (completed, or a failed
    // one-shot): as declared.
    if restart::done(desired, actual).is_some() {
        return None;
    }
    match &actual.state {
        ContainerState::Running => None,
        ContainerState::Paused => Some(Drift::Paused),
        ContainerState::Stopping | ContainerState::Removing => Some(Drift::Transient {
            state: actual.state.as_str().to_string(),
        }),
        other => Some(Drift::NotRunning {
            state: other.as_str().to_string(),
            exit_code: actual
                .exit_code
                .filter(|_| *other != ContainerState::Created),
        }),
    }
}

/// Whether a container event of this app can mean it left its declared
/// state: the reactor's list, plus `start` (and `unpause`) for an app
/// declared `stopped`, which someone may start by hand.
pub fn event_may_leave_state(app: Option<&LoadedApp>, action: &str, react_to: &[&str]) -> bool {
    react_to.contains(&action)
        || (matches!(action, "start" | "unpause")
            && app.is_some_and(|a| a.app.state == DesiredState::Stopped))
}

/// The labels a container of this app carries.
pub fn labels_for(app: &LoadedApp) -> BTreeMap<String, String> {
    let mut labels = app.app.container.labels.clone();
    labels.insert(APP_LABEL.into(), app.app.id.clone());
    labels.insert(SPEC_HASH_LABEL.into(), app.spec_hash.clone());
    if let Some(owner) = super::depends::network_dependency(app) {
        labels.insert(crate::NETNS_OF_LABEL.into(), owner);
    }
    labels
}

/// How soon to look again at a container podman is still stopping or cleaning up.
pub const CLEANUP_POLL: Duration = Duration::from_millis(20);

/// How soon to look again at a container still `stopping` (someone's
/// `podman stop`, a stop abandoned at podkeeper's shutdown): its `died`
/// event brings the look forward; this only bounds the wait without one.
pub const STOPPING_POLL: Duration = Duration::from_secs(1);

/// How long podman's cleanup of an exit may take before we stop waiting for it
/// (its process may have died) and start the container anyway.
pub const CLEANUP_GRACE: Duration = Duration::from_secs(2);

/// podman reports `stopped` between a container's exit and its cleanup, and
/// `exited` once cleaned up.
fn cleanup_pending(c: &ContainerInfo, now: Timestamp) -> bool {
    c.state == ContainerState::Stopped
        && c.finished_at.is_some_and(|t| {
            Duration::try_from(now.duration_since(t)).unwrap_or_default() < CLEANUP_GRACE
        })
}

/// How long after any exit podkeeper holds off restarting, counted from the
/// exit (`FinishedAt`). Two commands people run by hand finish their work
/// on a container in steps that a start must not fall between:
///
/// * `podman stop` cleans up in two steps (the stop, then its own cleanup
///   call) and conmon's exit command may clean up in between: a start in
///   that gap makes the `podman stop` fail ("refusing to clean up") although
///   the container ends up running.
/// * `podman rm -f` (exit 137 with `-t 0`, like a crash) stops the container
///   with its lock released, polls every 100 ms for the process to be gone,
///   then takes the lock again and removes the container *without looking
///   whether it runs*: a start in between leaves the started process running
///   with no container in podman's database (podman 4.3.1: 2 leaked
///   processes in 10 `rm -f` by hand without this grace). 200 ms after the
///   exit, `rm` holds the lock: the inspect waits for it and finds the
///   container gone.
///
/// The exit file is deleted 50 to 150 ms after the exit, so this costs a
/// crash's repair at most that difference.
///
/// podman 4.7 and later record a user's stop, rm or kill before they signal
/// the process ([`ContainerInfo::stopped_by_user`]): there the grace (and
/// the wait for podman's own cleanup) holds only for an exit a user caused,
/// and a crash is restarted the moment it is seen.
pub const EXIT_GRACE: Duration = Duration::from_millis(200);

/// Whether this exit may be a user's stop or rm still under way: podman 4.7
/// and later say so outright; an older podman cannot tell, so any exit may be.
fn may_be_a_stop(c: &ContainerInfo) -> bool {
    c.stopped_by_user != Some(false)
}

/// How much of the exit grace is left for this container, if it exited
/// only just now.
fn exit_grace_left(c: &ContainerInfo, now: Timestamp) -> Option<Duration> {
    let since = Duration::try_from(now.duration_since(c.finished_at?)).ok()?;
    EXIT_GRACE.checked_sub(since).filter(|d| !d.is_zero())
}

/// Reconcile the app `id`. `desired` is its manifest (None: deleted).
/// `may_remove` allows removing a labelled container that has no manifest
/// (the manifest was deleted while we ran, or `--prune-orphans`).
/// Its dependencies' manifests are not known: a `completed` one's exit 0
/// counts whatever its spec (one app alone, as tests reconcile it).
pub async fn reconcile_app<R: Podman>(
    rt: &R,
    id: &str,
    desired: Option<&LoadedApp>,
    may_remove: bool,
) -> Reaction {
    reconcile_app_among(rt, id, None, desired, may_remove, &Remembered::default()).await
}

/// [`reconcile_app`] as the reactor runs it, with every declared app (a
/// `completed` dependency counts only with its current spec) and what the
/// reactor remembers of this one.
pub async fn reconcile_app_among<R: Podman>(
    rt: &R,
    id: &str,
    apps: Option<&ManifestSet>,
    desired: Option<&LoadedApp>,
    may_remove: bool,
    remembered: &Remembered,
) -> Reaction {
    let mut reaction = Reaction::new(Key::App(id.to_string()));
    let mut log = CallLog::default();
    let look = Look {
        id,
        desired,
        apps,
        may_remove,
        remembered,
    };
    let result = decide_and_act(rt, &look, &mut log, &mut reaction).await;
    reaction.calls = log.calls;
    reaction.result = result;
    if reaction.result.is_ok() {
        if let Some(found) = reaction.found.first_mut() {
            left_as(found, reaction.action, desired);
        }
    }
    reaction
}

/// The container as inspected, for the reaction's record.
fn found(id: &str, c: Option<&ContainerInfo>) -> Found {
    Found {
        app: id.to_string(),
        container: c.map(|c| c.id.clone()),
        state: c.map_or("missing", |c| c.state.as_str()).to_string(),
        exit_code: None,
    }
}

/// What a successful action left of the container it found.
fn left_as(found: &mut Found, action: Action, desired: Option<&LoadedApp>) {
    let stopped = desired.is_some_and(|d| d.app.state == DesiredState::Stopped);
    let state = match action {
        Action::Start | Action::Unpause => "running",
        Action::Create | Action::Recreate if stopped => "created",
        Action::Create | Action::Recreate => "running",
        Action::Stop => "exited",
        Action::Remove => {
            found.container = None;
            "missing"
        }
        _ => return,
    };
    found.state = state.to_string();
}

/// What one reconcile of an app is given.
#[derive(Clone, Copy)]
struct Look<'a> {
    id: &'a str,
    desired: Option<&'a LoadedApp>,
    /// Every declared app, for the dependencies (`None`: unknown).
    apps: Option<&'a ManifestSet>,
    may_remove: bool,
    remembered: &'a Remembered,
}

/// Look, then act on what differs: each step below may settle the run.
async fn decide_and_act<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    let Look {
        id,
        desired,
        may_remove,
        ..
    } = *look;
    let actual = log.time("inspect", rt.inspect_container(id)).await?;
    // Adoption (issue 23): an adopted container, or one adopted now, is podkeeper's.
    let mut actual = super::adopt::seen_as_ours(actual, id, look.remembered);
    r.found = vec![found(id, actual.as_ref())];
    super::adopt::take_over(rt, desired, actual.as_mut(), look.remembered, log, r).await?;
    if let Some(c) = &actual {
        if within_exit_grace(rt.now(), c, desired, r) {
            return Ok(());
        }
    }
    let drifted = drift(desired, actual.as_ref());
    // issue 23: an update's containers (`<id>.previous`, `<id>.next`)
    // decide first, whenever one may exist.
    // (An adoption's differences, when take_over found some, stand.)
    if let Some(d) = drifted.as_ref().filter(|_| r.why.is_empty()) {
        r.why = d.describe();
    }
    if replace::concerns(look, drifted.as_ref()) {
        let roles = roles::look_for_roles(rt, id, look.remembered, log).await?;
        let settled =
            replace::decide(rt, look, actual.as_ref(), drifted.as_ref(), roles, log, r).await?;
        if settled {
            return Ok(());
        }
    }
    let Some(drift) = drifted else {
        let done = desired
            .zip(actual.as_ref())
            .and_then(|(d, c)| restart::done(d, c));
        r.why = match (desired, &actual, done) {
            (None, None, _) => "no manifest, no container".into(),
            (Some(d), _, _) if d.app.state == DesiredState::Stopped => "stopped as declared".into(),
            (_, Some(c), Some(done)) => {
                r.found = vec![done.found(id, c)];
                done.describe()
            }
            _ => "running as declared".into(),
        };
        return Ok(());
    };
    r.why = drift.describe();
    if waits_for_dependency(rt, &drift, desired, look.apps, log, r).await? {
        return Ok(());
    }
    act(rt, id, drift, desired, actual.as_ref(), may_remove, log, r).await
}

/// Perhaps a `podman stop` or `podman rm` by hand that has yet to finish:
/// look again when the grace is over. A requeue, not a sleep: the slot is
/// free meanwhile, and triggers (the exit file's collection, podman's
/// `remove`) fold into that look or bring it forward. Where podman says a
/// user stopped it, look every CLEANUP_POLL: a `podman rm` is done the
/// moment the container is gone, and its replacement need not wait longer.
fn within_exit_grace(
    now: Timestamp,
    c: &ContainerInfo,
    desired: Option<&LoadedApp>,
    r: &mut Reaction,
) -> bool {
    let wants_running = desired.is_some_and(|d| d.app.state == DesiredState::Running);
    if !wants_running || c.state == ContainerState::Running || !may_be_a_stop(c) {
        return false;
    }
    // Left exited by its policy: nothing would start it, so no start can
    // fall between a stop's steps.
    if drift(desired, Some(c)).is_none() {
        return false;
    }
    let Some(left) = exit_grace_left(c, now) else {
        return false;
    };
    let by_user = c.stopped_by_user == Some(true);
    r.action = Action::Wait;
    let state = drift(desired, Some(c)).map_or_else(|| c.state.as_str().into(), |d| d.describe());
    r.why = format!("{state}, within the exit grace: looking again");
    r.requeue_after = Some(if by_user {
        left.min(CLEANUP_POLL)
    } else {
        left
    });
    true
}

/// Whatever would start the container waits for its dependencies (a
/// recreate too: the old container stays as it is meanwhile). True when it
/// waits.
async fn waits_for_dependency<R: Podman>(
    rt: &R,
    drift: &Drift,
    desired: Option<&LoadedApp>,
    apps: Option<&ManifestSet>,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<bool, Failure> {
    let (Drift::Missing | Drift::SpecChanged { .. } | Drift::NotRunning { .. }, Some(app)) =
        (drift, desired)
    else {
        return Ok(false);
    };
    if app.app.state != DesiredState::Running || !super::depends::has_dependencies(app) {
        return Ok(false);
    }
    let Some((dep, waiting)) = super::depends::unmet_dependency(rt, app, apps, log).await? else {
        return Ok(false);
    };
    r.action = Action::Wait;
    r.why = format!("{}; waiting for {waiting}", r.why);
    r.waits_for = Some(dep);
    r.requeue_after = Some(super::depends::DEPENDENCY_POLL);
    Ok(true)
}

/// The one action a drift calls for.
#[allow(clippy::too_many_arguments)]
async fn act<R: Podman>(
    rt: &R,
    id: &str,
    drift: Drift,
    desired: Option<&LoadedApp>,
    actual: Option<&ContainerInfo>,
    may_remove: bool,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    match (drift, desired) {
        (Drift::NotOurs, _) => {
            r.action = Action::Conflict;
            Err(Failure::NotOurs)
        }
        (Drift::Unwanted, _) => remove_unwanted(rt, id, actual, may_remove, log, r).await,
        (Drift::Missing, Some(app)) => {
            r.action = Action::Create;
            let created = create_and_start(rt, app, log).await?;
            look_again_unless(created, r);
            Ok(())
        }
        // replace::decide takes every spec change (the replace path);
        // never reached.
        (Drift::SpecChanged { .. }, Some(_)) => Ok(()),
        (Drift::NotRunning { .. }, Some(_)) => start_exited(rt, id, actual, log, r).await,
        (Drift::Started, Some(app)) => {
            r.action = Action::Stop;
            let with = StopWith::for_app(Some(&app.app.container), actual);
            Ok(log.time("stop", rt.stop_container(id, with)).await?)
        }
        (Drift::Paused, Some(_)) => {
            r.action = Action::Unpause;
            Ok(log.time("unpause", rt.unpause_container(id)).await?)
        }
        (Drift::Transient { state }, _) => {
            r.action = Action::Wait;
            // Graceful stops (issue 22): a stop lasts up to its stop timeout
            // (minutes for a database); podman's `died` or `remove` brings
            // the look forward, so a long one is not inspected every 20 ms.
            r.requeue_after = Some(if state == ContainerState::Stopping.as_str() {
                STOPPING_POLL
            } else {
                CLEANUP_POLL
            });
            Ok(())
        }
        // drift() only reports these with a manifest present.
        (
            Drift::Missing
            | Drift::SpecChanged { .. }
            | Drift::NotRunning { .. }
            | Drift::Paused
            | Drift::Started,
            None,
        ) => Ok(()),
    }
}

/// A labelled container no manifest wants: removed when allowed, else left.
async fn remove_unwanted<R: Podman>(
    rt: &R,
    id: &str,
    actual: Option<&ContainerInfo>,
    may_remove: bool,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    if !may_remove {
        r.why = "orphan: labelled but no manifest (left alone; --prune-orphans removes it)".into();
        return Ok(());
    }
    r.action = Action::Remove;
    if let Some(app) = actual
        .and_then(|c| c.label(APP_LABEL))
        .filter(|app| *app != id)
    {
        r.why = format!("duplicate of app/{app}, not wanted");
    }
    // No manifest (deleted, an orphan, a duplicate): the container's own
    // stop timeout, as it was created with.
    let with = StopWith::for_app(None, actual);
    sharers::remove_with_sharers(rt, id, with, log).await?;
    crate::reconcile::secrets::after_remove(rt, id, actual, log).await; // container.secrets
    Ok(())
}

/// Start a container that is not running, unless podman is still cleaning
/// up its exit.
async fn start_exited<R: Podman>(
    rt: &R,
    id: &str,
    actual: Option<&ContainerInfo>,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    if actual.is_some_and(|c| may_be_a_stop(c) && cleanup_pending(c, rt.now())) {
        // podman's cleanup of this exit (conmon's exit command, or the
        // `podman stop` that caused it) has not run yet. Starting now
        // would make a `podman stop` fail ("refusing to clean up"): look
        // again shortly (the exit file's deletion usually wakes us first).
        // A crash (podman 4.7+ says which) starts at once: conmon's exit
        // command then finds it running and gives up, which podman 5.3
        // and later take as the normal case.
        r.action = Action::Wait;
        r.why = format!("{}, podman still cleaning up", r.why);
        r.requeue_after = Some(CLEANUP_POLL);
        return Ok(());
    }
    r.action = Action::Start;
    r.restarted_after = actual.and_then(ContainerInfo::last_uptime);
    match log.time("start", rt.start_container(id)).await {
        // Removed under our hands (`podman rm -f` right after the
        // exit): it is missing now, which the next look repairs.
        Err(RuntimeError::NotFound(_)) => {
            r.action = Action::Wait;
            r.why = format!("{}; removed meanwhile, looking again", r.why);
            r.restarted_after = None;
            r.requeue_after = Some(CLEANUP_POLL);
            Ok(())
        }
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests;
