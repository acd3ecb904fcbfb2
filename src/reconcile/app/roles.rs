//! An update's containers (`<id>.previous`, `<id>.next`) as podman shows them: looked for at once, removed when done with.

use crate::reconcile::updates::Role;
use crate::reconcile::{CallLog, Failure};
use crate::runtime::{ContainerInfo, Podman, RuntimeError, StopWith};
use crate::APP_LABEL;

/// An update's containers as podman shows them (podkeeper's only: a
/// container of such a name without the app's label is never touched).
#[derive(Debug, Default)]
pub(super) struct Roles {
    pub previous: Option<ContainerInfo>,
    pub next: Option<ContainerInfo>,
}

impl Roles {
    pub(super) fn is_empty(&self) -> bool {
        self.previous.is_none() && self.next.is_none()
    }
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
