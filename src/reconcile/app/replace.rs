//! A spec change without downtime beyond a stop and a start (issue 23): pull and create the new container while the old one runs, keep the old one as `<id>.previous`, switch names, and finish whatever a killed podkeeper left, from podman's names alone.
//!
//! The steps, each a kill point for the fault tests:
//!
//! 1. `update:pulling`: pull the image if it is missing; the old container runs.
//! 2. `update:created`: `<id>.next` created (a stale one removed first).
//! 3. `update:stopped`: the old `<id>` stopped (its network sharers removed,
//!    as a removal would); `update:kept`: renamed `<id>.previous`, or removed
//!    when a previous is already kept (a second edit during a gate: the
//!    last good one stays the previous), when there is no gate
//!    (`rollback: false`) or the app is declared `stopped`.
//! 4. `update:started`: `<id>.next` renamed `<id>` and started; the gate
//!    (`gate.rs`) judges it on each later look while `<id>.previous` exists.
//!
//! Every failure before step 3 leaves the old container untouched.

use super::{gate, labels_for, sharers, start_exited, waits_for_dependency, Drift, Look};
use crate::kill_points::kill_point;
use crate::manifest::{DesiredState, LoadedApp};
use crate::reconcile::updates::{self, Role, UpdateNews};
use crate::reconcile::{secrets, Action, CallLog, Failure, Reaction};
use crate::runtime::{
    ContainerInfo, ContainerState, CreateRequest, Podman, RuntimeError, StopWith,
};
use crate::{APP_LABEL, SPEC_HASH_LABEL};

/// An update's containers as podman shows them (podkeeper's only: a
/// container of such a name without the app's label is never touched).
#[derive(Debug, Default)]
pub(super) struct Roles {
    pub previous: Option<ContainerInfo>,
    pub next: Option<ContainerInfo>,
}

impl Roles {
    fn is_empty(&self) -> bool {
        self.previous.is_none() && self.next.is_none()
    }
}

/// Whether this look must ask for `<id>.previous` and `<id>.next`: the
/// spec changed (the replace path needs them), or the reactor knows an
/// update may be under way: it began a gate, or a sweep (the first one
/// after a start too) listed one of them, or a rename made one. Every
/// other look (a running app, a crash's repair, a missing container's
/// create) costs nothing more.
pub(super) fn concerns(look: &Look<'_>, drift: Option<&Drift>) -> bool {
    look.remembered.update_under_way || matches!(drift, Some(Drift::SpecChanged { .. }))
}

/// Both role containers, asked at once (one round trip).
pub(super) async fn look_for_roles<R: Podman>(
    rt: &R,
    id: &str,
    remembered: &crate::reconcile::Remembered,
    log: &mut CallLog,
) -> Result<Roles, Failure> {
    let (p, n) = (Role::Previous.name(id), Role::Next.name(id));
    let (previous, next) = log
        .time("inspect", async {
            tokio::join!(rt.inspect_container(&p), rt.inspect_container(&n))
        })
        .await;
    // Adoption (issue 23): an adopted container being replaced is kept as
    // the previous one though it carries none of podkeeper's labels.
    let adopted = remembered.adopted.as_ref().map(|a| a.container.as_str());
    let ours = |c: &ContainerInfo| c.label(APP_LABEL) == Some(id) || adopted == Some(&c.id);
    Ok(Roles {
        previous: previous?.filter(ours),
        next: next?.filter(ours),
    })
}

/// Decide from podman's names what the update needs: `Ok(true)` when this
/// settled the run, `Ok(false)` when the usual drift handling follows.
pub(super) async fn decide<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    actual: Option<&ContainerInfo>,
    drift: Option<&Drift>,
    roles: Roles,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<bool, Failure> {
    let Some(app) = look.desired else {
        return deleted(rt, look, actual, roles, log, r).await;
    };
    let is_new = |c: &ContainerInfo| c.label(SPEC_HASH_LABEL) == Some(app.spec_hash.as_str());
    match actual {
        Some(c) if is_new(c) => {
            if let Some(next) = &roles.next {
                // Made for a spec edited away again: never becomes the app.
                remove_role(rt, next, log).await?;
            }
            match &roles.previous {
                Some(prev) => gate::look(rt, look, app, c, prev, log, r)
                    .await
                    .map(|()| true),
                None if look.remembered.update_under_way => {
                    gate::without_previous(rt, look, app, c, log, r).await
                }
                None => Ok(false),
            }
        }
        Some(c) => {
            if !matches!(drift, Some(Drift::SpecChanged { .. })) {
                return Ok(false);
            }
            if look.remembered.failed_spec.as_deref() == Some(app.spec_hash.as_str()) {
                return hold(rt, look, c, roles, log, r).await.map(|()| true);
            }
            // Killed after step 2 or 3: the new one is ready and the old one
            // stopped. Otherwise (the old one runs, or the next is of
            // another spec) from step 1, the stale next removed.
            let ready = roles
                .next
                .as_ref()
                .is_some_and(|n| is_new(n) && c.state != ContainerState::Running);
            if !ready {
                if let Some(d) = drift {
                    if waits_for_dependency(rt, d, look.desired, look.apps, log, r).await? {
                        return Ok(true);
                    }
                }
            }
            replace(rt, look, app, c, roles, ready, log, r)
                .await
                .map(|()| true)
        }
        None => {
            match (roles.previous, roles.next) {
                // Killed at step 3 (`update:kept`): step 4.
                (Some(prev), Some(next)) if is_new(&next) => {
                    r.action = Action::Recreate;
                    r.why = "update interrupted after the old container was kept: switching to the new one".into();
                    let gated = gated(app);
                    if !gated {
                        remove_role(rt, &prev, log).await?;
                    }
                    switch(
                        rt,
                        look,
                        app,
                        Some(&prev),
                        gated.then_some(&prev),
                        &next.id,
                        log,
                        r,
                    )
                    .await?;
                    Ok(true)
                }
                // The new container is gone (`podman rm -f` by hand during the
                // gate, or a rollback killed halfway): the previous one again.
                (Some(prev), next) => {
                    if let Some(next) = &next {
                        remove_role(rt, next, log).await?;
                    }
                    let why = "the new container is gone (removed during its gate)".to_string();
                    gate::rollback(rt, look, app, None, &prev, (why, None), log, r).await?;
                    Ok(true)
                }
                // No previous kept (`rollback: false`, declared `stopped`)
                // and killed before the switch: the switch.
                (None, Some(next)) if is_new(&next) => {
                    r.action = Action::Create;
                    r.why = "update interrupted before the switch: switching to the new container"
                        .into();
                    switch(rt, look, app, None, None, &next.id, log, r).await?;
                    Ok(true)
                }
                (None, Some(next)) => {
                    remove_role(rt, &next, log).await?;
                    Ok(false)
                }
                (None, None) => Ok(false),
            }
        }
    }
}

/// The manifest is gone: the update's containers go with the app's own
/// (when it may be removed), as a deletion does.
async fn deleted<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    actual: Option<&ContainerInfo>,
    roles: Roles,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<bool, Failure> {
    if !look.may_remove || roles.is_empty() {
        return Ok(false);
    }
    for c in [&roles.next, &roles.previous].into_iter().flatten() {
        remove_role(rt, c, log).await?;
    }
    if actual.is_some() {
        // The app's own container: removed as any deletion (`act`).
        return Ok(false);
    }
    r.action = Action::Remove;
    r.why = "manifest deleted during an update: its containers removed".into();
    secrets::after_remove(rt, look.id, roles.previous.as_ref(), log).await;
    Ok(true)
}

/// B failed its gate and is remembered so: the app stays on the container
/// it has (started again if it exits, as any app) until the manifest
/// changes or `podkeeper retry`.
async fn hold<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    c: &ContainerInfo,
    roles: Roles,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    if let Some(next) = &roles.next {
        remove_role(rt, next, log).await?;
    }
    let held = format!(
        "spec {} held after a rollback (`podkeeper retry {}` or a manifest change tries it again)",
        short(look.desired.map_or("", |d| d.spec_hash.as_str())),
        look.id
    );
    match c.state {
        ContainerState::Running => {
            r.why = format!("{held}; the previous spec runs");
            Ok(())
        }
        ContainerState::Paused => {
            r.why = held;
            r.action = Action::Unpause;
            Ok(log.time("unpause", rt.unpause_container(look.id)).await?)
        }
        ContainerState::Stopping | ContainerState::Removing => {
            r.why = format!("{held}; {}, looking again shortly", c.state.as_str());
            r.action = Action::Wait;
            r.requeue_after = Some(super::STOPPING_POLL);
            Ok(())
        }
        _ => {
            r.why = format!("{held}; the previous spec {}", c.state.as_str());
            start_exited(rt, look.id, Some(c), log, r).await
        }
    }
}

/// Whether this app's update keeps the old container for a gate.
fn gated(app: &LoadedApp) -> bool {
    app.app.state == DesiredState::Running && app.app.update_policy().rollback()
}

/// Steps 1 to 4 (from step 3 when `ready`: `roles.next` is the new one and
/// the old one `old` is stopped already).
#[allow(clippy::too_many_arguments)]
async fn replace<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    app: &LoadedApp,
    old: &ContainerInfo,
    roles: Roles,
    ready: bool,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    r.action = Action::Recreate;
    let next_id = match (&roles.next, ready) {
        (Some(next), true) => next.id.clone(),
        (stale, _) => {
            if let Some(stale) = stale {
                remove_role(rt, stale, log).await?;
            }
            kill_point("update:pulling");
            pull_if_missing(rt, app, log, r).await?;
            create_next(rt, app, log, r).await?
        }
    };
    kill_point("update:created");
    let gated = gated(app);
    // The old one's stop: the manifest's stop timeout, or its own if longer.
    let with = StopWith::for_app(Some(&app.app.container), Some(old));
    let id = look.id;
    if gated {
        log.time("stop", rt.stop_container(id, with)).await?;
        if shared(look) {
            sharers::remove_sharers(rt, id, log).await?;
        }
        kill_point("update:stopped");
        match &roles.previous {
            // A second edit during a gate: `old` was never gated; the last
            // good one stays the previous.
            Some(_) => sharers::remove_with_sharers(rt, id, with, log).await?,
            None => {
                log.time("rename", rt.rename_container(id, &Role::Previous.name(id)))
                    .await?
            }
        }
    } else {
        sharers::remove_with_sharers(rt, id, with, log).await?;
        kill_point("update:stopped");
        if let Some(prev) = &roles.previous {
            remove_role(rt, prev, log).await?;
        }
    }
    kill_point("update:kept");
    let kept = match (&roles.previous, gated) {
        (_, false) => None,
        (Some(prev), true) => Some(prev.clone()),
        // Renamed just now: the same container, by its new name.
        (None, true) => Some(ContainerInfo {
            name: Role::Previous.name(id),
            ..old.clone()
        }),
    };
    switch(rt, look, app, Some(old), kept.as_ref(), &next_id, log, r).await
}

/// Step 4: `<id>.next` becomes `<id>` and starts (not when declared
/// `stopped`). With a previous kept the gate begins; without, the update
/// is applied now and the old spec's secrets go.
#[allow(clippy::too_many_arguments)]
async fn switch<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    app: &LoadedApp,
    old: Option<&ContainerInfo>,
    previous: Option<&ContainerInfo>,
    next_id: &str,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    let id = look.id;
    log.time("rename", rt.rename_container(&Role::Next.name(id), id))
        .await?;
    if let Some(found) = r.found.first_mut() {
        found.container = Some(next_id.to_string());
    }
    let Some(previous) = previous else {
        if app.app.state == DesiredState::Running {
            log.time("start", rt.start_container(id)).await?;
            kill_point("update:started");
        }
        r.update = Some(UpdateNews::Applied {
            spec_hash: app.spec_hash.clone(),
        });
        secrets::after_recreate(rt, app, old, &Some(next_id.to_string()), log).await;
        return Ok(());
    };
    if let Err(e) = log.time("start", rt.start_container(id)).await {
        // A start podman refuses (a port taken, the runtime's error) is the
        // gate failing at once.
        let c = log.time("inspect", rt.inspect_container(id)).await?;
        let why = format!("its start failed: {e}");
        return gate::fail(rt, look, app, c.as_ref(), previous, (why, None), log, r).await;
    }
    kill_point("update:started");
    gate::begin(app, r);
    Ok(())
}

/// Step 1: the image, while the old container runs. A failure is the
/// update's (`Failed`), retried with the scheduler's backoff.
async fn pull_if_missing<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    let image = &app.app.container.image;
    let present = match log.time("exists", rt.image_exists(image)).await {
        Ok(present) => present,
        Err(e) => return Err(failed(app, e.into(), r)),
    };
    if present {
        return Ok(());
    }
    match log.time("pull", rt.pull_image(image)).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let f = Failure::Pull {
                image: image.clone(),
                error,
            };
            Err(failed(app, f, r))
        }
    }
}

/// Step 2: `<id>.next`, created with the new spec's labels (podman checks
/// its network, devices and secrets here: a refusal is the update's).
async fn create_next<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<String, Failure> {
    let mut req = CreateRequest {
        name: Role::Next.name(&app.app.id),
        spec: app.app.container.clone(),
        labels: labels_for(app),
        secrets: secrets::uses(app),
    };
    secrets::label(&mut req);
    match log.time("create", rt.create_container(&req)).await {
        Ok(id) => Ok(id),
        Err(e @ RuntimeError::NotFound(_)) => Err(failed(app, Failure::Image(e), r)),
        Err(e) => Err(failed(app, e.into(), r)),
    }
}

/// The update could not be made; the old container is untouched.
fn failed(app: &LoadedApp, f: Failure, r: &mut Reaction) -> Failure {
    let why = f.to_string();
    r.why = format!("{}; update not made, the old container runs on", r.why);
    r.update = Some(UpdateNews::Failed {
        failed: updates::Failure {
            spec_hash: app.spec_hash.clone(),
            why,
            exit_code: None,
            log_tail: String::new(),
        },
    });
    f
}

/// Whether any declared app shares `id`'s network namespace. Not known (one
/// app reconciled alone): no; the previous container's removal still
/// removes podkeeper's sharers when podman refuses it.
fn shared(look: &Look<'_>) -> bool {
    look.apps.is_some_and(|set| {
        set.apps
            .values()
            .any(|a| crate::reconcile::depends::network_dependency(a).as_deref() == Some(look.id))
    })
}

/// Remove one of an update's containers (stopped or not); gone already is fine.
pub(super) async fn remove_role<R: Podman>(
    rt: &R,
    c: &ContainerInfo,
    log: &mut CallLog,
) -> Result<(), Failure> {
    let with = StopWith::for_app(None, Some(c));
    match log.time("remove", rt.remove_container(&c.name, with)).await {
        Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A spec hash as lines show it.
pub(super) fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}
