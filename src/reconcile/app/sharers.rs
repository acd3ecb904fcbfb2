//! Apps that share this app's network namespace (`network: app:<id>`): podman refuses to remove a container others share, so they go first, and rejoin once it runs again.

use crate::reconcile::{CallLog, Failure};
use crate::runtime::{Podman, RuntimeError};
use crate::NETNS_OF_LABEL;

/// podman's words (4.3 and 5.x) when a container to remove is shared; its
/// cause, "container already exists", says nothing more.
const HAS_DEPENDENTS: &str = "has dependent containers which must be removed before it";

/// Remove `id`'s container. When podman refuses because others share its
/// namespaces, podkeeper's own sharers (labelled [`NETNS_OF_LABEL`] `=
/// id`) are removed first, then it: their apps find their container
/// missing (podman's `remove` event queues them), wait for `id` to run
/// like a dependency, and are created in its new namespace. The common
/// case costs nothing more than the remove.
pub(super) async fn remove_with_sharers<R: Podman>(
    rt: &R,
    id: &str,
    log: &mut CallLog,
) -> Result<(), Failure> {
    match log.time("remove", rt.remove_container(id)).await {
        Err(RuntimeError::NameInUse(e)) if e.contains(HAS_DEPENDENTS) => {
            let listed = log.time("list", rt.list_managed()).await?;
            for c in listed
                .iter()
                .filter(|c| c.label(NETNS_OF_LABEL) == Some(id))
            {
                log.time("remove", rt.remove_container(&c.name)).await?;
            }
            Ok(log.time("remove", rt.remove_container(id)).await?)
        }
        other => Ok(other?),
    }
}
