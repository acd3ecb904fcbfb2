//! The simulation's side of issue 22's create fields: the spec each container was created from (kept whole, as podman keeps it), a list of podman networks (a named network must exist, and `add_network` emits podman 5's network `create` event), and podman's refusal to remove a container others share.

use super::{SimRuntime, SimState};
use crate::manifest::options::NetworkMode;
use crate::manifest::ContainerSpec;
use crate::runtime::{CreateRequest, RuntimeError, Unmet};
use crate::trigger::{Actor, PodmanEvent};
use crate::NETNS_OF_LABEL;

impl SimRuntime {
    /// A podman network appears (`podman network create NAME`): podman 5's
    /// `network` `create` event is emitted.
    pub fn add_network(&self, name: &str) {
        self.lock().networks.insert(name.to_string());
        let Some(tx) = &self.events else { return };
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("network".to_string(), name.to_string());
        attributes.insert("driver".to_string(), "bridge".to_string());
        let time_nano = i64::try_from(self.now().as_nanosecond()).unwrap_or(i64::MAX);
        let _ = tx.send(PodmanEvent {
            typ: "network".into(),
            action: "create".into(),
            actor: Actor {
                id: format!("net-{name}"),
                attributes,
            },
            time_nano,
            rest: serde_json::Map::new(),
        });
    }

    /// The spec container `name` was created from.
    pub fn spec_of(&self, name: &str) -> Option<ContainerSpec> {
        self.lock().specs.get(name).cloned()
    }
}

/// What podman refuses of a create before it makes anything: a named
/// network it does not have (podkeeper's real runtime asks first, and
/// says so as [`Unmet::NetworkMissing`]), another container's namespace
/// that does not exist.
pub(super) fn refuse_create(st: &SimState, req: &CreateRequest) -> Option<RuntimeError> {
    match req.spec.network_mode()? {
        NetworkMode::Named(n) if !st.networks.contains(&n) => {
            Some(RuntimeError::Unmet(Unmet::NetworkMissing(n)))
        }
        NetworkMode::App(id) if !st.containers.contains_key(&id) => {
            Some(RuntimeError::NotFound(format!("{id}: no such container")))
        }
        _ => None,
    }
}

/// podman's refusal to remove a container others share (as 4.3 and 5.x word it).
pub(super) fn refuse_remove(st: &SimState, name: &str) -> Option<RuntimeError> {
    let c = st.containers.get(name)?;
    let sharer = st
        .containers
        .values()
        .find(|o| o.labels.get(NETNS_OF_LABEL).map(String::as_str) == Some(name))?;
    Some(RuntimeError::NameInUse(format!(
        "container {} has dependent containers which must be removed before it: {}: container already exists",
        c.id, sharer.id
    )))
}
