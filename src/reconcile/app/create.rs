//! Creating an app's container: pull the image only when a create says it is missing, and wait while podman frees the name.

use std::time::Duration;

use super::{labels_for, CLEANUP_POLL};
use crate::manifest::{DesiredState, LoadedApp};
use crate::reconcile::{Action, CallLog, Failure, Reaction};
use crate::runtime::{CreateRequest, Podman, RuntimeError};

/// How long a name podman is still freeing (a `podman rm` by hand that is
/// removing the container's storage) may keep a create waiting before it
/// counts as a failure (a name held for good, by leftover storage).
pub const NAME_IN_USE_GRACE: Duration = Duration::from_secs(5);
/// How often the create is tried again meanwhile.
pub const NAME_IN_USE_POLL: Duration = Duration::from_millis(50);

/// After a create that found the name taken by a container that exists
/// after all: nothing was created; look again at once.
pub(super) fn look_again_unless(created: Option<String>, r: &mut Reaction) {
    if let (Some(id), Some(found)) = (&created, r.found.first_mut()) {
        found.container = Some(id.clone());
    }
    if created.is_none() {
        r.action = Action::Wait;
        r.why = format!(
            "{}; a container of that name appeared, looking again",
            r.why
        );
        r.requeue_after = Some(CLEANUP_POLL);
    }
}

/// Create the container (pulling the image if it is missing) and start it,
/// unless the app is declared `stopped`.
/// `Ok(Some(id))`: created; `Ok(None)`: a container of that name turned up
/// meanwhile (nothing was created; the caller looks again).
pub(super) async fn create_and_start<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    log: &mut CallLog,
) -> Result<Option<String>, Failure> {
    let mut req = CreateRequest {
        name: app.app.id.clone(),
        spec: app.app.container.clone(),
        labels: labels_for(app),
        secrets: crate::reconcile::secrets::uses(app),
    };
    crate::reconcile::secrets::label(&mut req);
    let image = &app.app.container.image;
    // Try to create first: the image is nearly always there, so this saves a
    // call; only a missing image costs a pull and a second create.
    let created = match create_when_free(rt, &req, log).await {
        Err(Failure::Podman(e) | Failure::Image(e)) if image_missing(rt, &e, image, log).await => {
            log.time("pull", rt.pull_image(image))
                .await
                .map_err(|error| Failure::Pull {
                    image: image.clone(),
                    error,
                })?;
            create_when_free(rt, &req, log).await?
        }
        other => other?,
    };
    if created.is_none() || app.app.state == DesiredState::Stopped {
        return Ok(created);
    }
    log.time("start", rt.start_container(&app.app.id)).await?;
    Ok(created)
}

/// Whether a create failed because the image is not in local storage. The
/// status code alone does not tell (podman 4.3 answers 500 "image not known"),
/// so a failure the runtime could not classify is settled by asking.
async fn image_missing<R: Podman>(
    rt: &R,
    e: &RuntimeError,
    image: &str,
    log: &mut CallLog,
) -> bool {
    match e {
        RuntimeError::NotFound(_) => true,
        RuntimeError::Failed(_) => {
            matches!(log.time("exists", rt.image_exists(image)).await, Ok(false))
        }
        _ => false,
    }
}

/// Create, waiting while podman frees the name (a container it is removing
/// right now): the new container's id, or `Ok(None)` when a container of
/// that name exists after all. A create's `NotFound` is the image's.
async fn create_when_free<R: Podman>(
    rt: &R,
    req: &CreateRequest,
    log: &mut CallLog,
) -> Result<Option<String>, Failure> {
    let deadline = tokio::time::Instant::now() + NAME_IN_USE_GRACE;
    loop {
        match log.time("create", rt.create_container(req)).await {
            Ok(id) => return Ok(Some(id)),
            Err(RuntimeError::NameInUse(e)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Failure::NameHeld {
                        name: req.name.clone(),
                        after: NAME_IN_USE_GRACE,
                        error: RuntimeError::NameInUse(e),
                    });
                }
                log.time("wait", tokio::time::sleep(NAME_IN_USE_POLL)).await;
                if log
                    .time("inspect", rt.inspect_container(&req.name))
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
            }
            Err(e @ RuntimeError::NotFound(_)) => return Err(Failure::Image(e)),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::sim_podman::SimRuntime;

    #[tokio::test(start_paused = true)]
    async fn a_create_failure_the_cause_does_not_explain_should_ask_whether_the_image_exists() {
        let sim = SimRuntime::new(&["localhost/bb:1"], None);
        let mut log = CallLog::default();
        let unexplained = RuntimeError::Failed("internal libpod error".into());
        assert!(image_missing(&sim, &unexplained, "localhost/nope:1", &mut log).await);
        assert!(!image_missing(&sim, &unexplained, "localhost/bb:1", &mut log).await);
        assert_eq!(
            sim.calls(),
            ["exists localhost/nope:1", "exists localhost/bb:1"]
        );
        // A cause that says so needs no question; a timeout is no answer.
        let said = RuntimeError::NotFound("image not known".into());
        assert!(image_missing(&sim, &said, "localhost/nope:1", &mut log).await);
        let timeout = RuntimeError::Timeout {
            call: "create",
            after: Duration::from_secs(15),
        };
        assert!(!image_missing(&sim, &timeout, "localhost/nope:1", &mut log).await);
        assert_eq!(sim.calls().len(), 2);
    }
}
