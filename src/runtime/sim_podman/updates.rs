//! The simulation's side of updates: renames that carry every name-keyed fact with the container, logs set by a test, and images a pull can fetch.

use super::*;

/// What the simulation keeps for updates.
#[derive(Debug, Default)]
pub(super) struct SimUpdates {
    /// Container name → what its log says (set by a test).
    logs: BTreeMap<String, String>,
    /// Images a pull fetches (every other pull fails, as with no registry).
    pullable: BTreeSet<String>,
}

impl SimRuntime {
    /// Let a pull of `image` succeed (it is then in local storage).
    pub fn set_pullable(&self, image: &str) {
        self.lock().updates.pullable.insert(image.to_string());
    }

    /// What the container's log says from now on.
    pub fn set_logs(&self, name: &str, text: &str) {
        self.lock()
            .updates
            .logs
            .insert(name.to_string(), text.to_string());
    }

    /// A pull: the image is there afterwards when it is pullable.
    pub(super) async fn pull(&self, image: &str) -> RuntimeResult<()> {
        self.call(format!("pull {image}")).await?;
        let mut st = self.lock();
        if st.updates.pullable.contains(image) {
            st.images.insert(image.to_string());
            return Ok(());
        }
        Err(RuntimeError::Failed(format!(
            "initializing source docker://{image}: no registry can be reached (simulated)"
        )))
    }

    /// `podman rename`: one `rename` event naming the new name; whatever
    /// the simulation keeps by name moves with it.
    pub(super) async fn rename(&self, name: &str, new_name: &str) -> RuntimeResult<()> {
        self.call(format!("rename {name} {new_name}")).await?;
        let c = {
            let mut st = self.lock();
            if st.containers.contains_key(new_name) {
                return Err(RuntimeError::NameInUse(format!(
                    "the container name {new_name:?} is already in use"
                )));
            }
            let Some(mut c) = st.containers.remove(name) else {
                return Err(RuntimeError::NotFound(format!(
                    "no container with name or ID {name:?} found"
                )));
            };
            c.name = new_name.to_string();
            st.containers.insert(new_name.to_string(), c.clone());
            let st = &mut *st;
            move_key(&mut st.checks, name, new_name);
            move_key(&mut st.specs, name, new_name);
            move_key(&mut st.slow_stops, name, new_name);
            move_key(&mut st.stop_needs, name, new_name);
            move_key(&mut st.updates.logs, name, new_name);
            for set in [&mut st.unhealthy, &mut st.hanging] {
                if set.remove(name) {
                    set.insert(new_name.to_string());
                }
            }
            c
        };
        self.emit(&c, "rename", None);
        Ok(())
    }

    pub(super) async fn logs(&self, name: &str, max_bytes: usize) -> RuntimeResult<String> {
        self.call(format!("logs {name}")).await?;
        let st = self.lock();
        if !st.containers.contains_key(name) {
            return Err(RuntimeError::NotFound(format!(
                "no container with name or ID {name:?} found"
            )));
        }
        let text = st.updates.logs.get(name).map_or("", String::as_str);
        Ok(crate::runtime::tail_of(text, max_bytes).to_string())
    }
}

fn move_key<V>(map: &mut BTreeMap<String, V>, from: &str, to: &str) {
    if let Some(v) = map.remove(from) {
        map.insert(to.to_string(), v);
    }
}
