//! Apps that share this app's network namespace (`network: app:<id>`): podman refuses to remove a container others share, so they go first, the app stopped meanwhile, and rejoin once it runs again.

use crate::reconcile::{CallLog, Failure};
use crate::runtime::{Podman, RuntimeError, StopWith};
use crate::NETNS_OF_LABEL;

/// podman's words (4.3 and 5.x) when a container to remove is shared; its
/// cause, "container already exists", says nothing more. The sharers' ids follow.
const HAS_DEPENDENTS: &str = "has dependent containers which must be removed before it: ";

/// Remove `id`'s container. When podman refuses because others share its
/// namespaces and every one of them is podkeeper's own sharer (labelled
/// [`NETNS_OF_LABEL`] `= id`): stop it first, so that no sharer's app can
/// join it again meanwhile (each waits for it to run, like a dependency),
/// then remove the sharers, then it. Their apps find their container
/// missing (podman's `remove` event queues them) and are created in its
/// new namespace once it runs. Not podman's `rm --depend`: on podman 5.4 it took
/// over 30 s once here, every inspect waiting on it. A container of someone else's
/// that shares it is never removed: the refusal stands. The common case
/// costs nothing more than the remove.
pub(super) async fn remove_with_sharers<R: Podman>(
    rt: &R,
    id: &str,
    with: StopWith,
    log: &mut CallLog,
) -> Result<(), Failure> {
    let refusal = match log.time("remove", rt.remove_container(id, with)).await {
        Err(RuntimeError::NameInUse(e)) if e.contains(HAS_DEPENDENTS) => e,
        other => return Ok(other?),
    };
    let listed = log.time("list", rt.list_managed()).await?;
    let ours = |dep: &str| {
        listed
            .iter()
            .any(|c| c.id.starts_with(dep) && c.label(NETNS_OF_LABEL) == Some(id))
    };
    let dependents = refusal
        .split_once(HAS_DEPENDENTS)
        .map(|(_, ids)| ids.split(':').next().unwrap_or(""))
        .unwrap_or("");
    let all_ours = dependents
        .split(',')
        .map(str::trim)
        .all(|d| !d.is_empty() && ours(d));
    if !all_ours {
        return Err(RuntimeError::NameInUse(refusal).into());
    }
    log.time("stop", rt.stop_container(id, with)).await?;
    for c in listed
        .iter()
        .filter(|c| c.label(NETNS_OF_LABEL) == Some(id))
    {
        // A list has no stop timeout: each sharer's own, from its inspect.
        let own = log.time("inspect", rt.inspect_container(&c.name)).await?;
        let with = StopWith::for_app(None, own.as_ref());
        log.time("remove", rt.remove_container(&c.name, with))
            .await?;
    }
    Ok(log.time("remove", rt.remove_container(id, with)).await?)
}

/// Remove podkeeper's own sharers of `id`'s namespace (labelled
/// [`NETNS_OF_LABEL`] `= id`) once it is stopped but kept (an update's
/// previous container): as a removal would, so their apps are created
/// again in the new container's namespace once it runs.
pub(super) async fn remove_sharers<R: Podman>(
    rt: &R,
    id: &str,
    log: &mut CallLog,
) -> Result<(), Failure> {
    let listed = log.time("list", rt.list_managed()).await?;
    for c in listed
        .iter()
        .filter(|c| c.label(NETNS_OF_LABEL) == Some(id))
    {
        let own = log.time("inspect", rt.inspect_container(&c.name)).await?;
        let with = StopWith::for_app(None, own.as_ref());
        match log.time("remove", rt.remove_container(&c.name, with)).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
