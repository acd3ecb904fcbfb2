//! Replay: mirroring a recorded world in the podman simulation.

use super::*;

/// Replay: mirroring the recorded world in the simulation.
impl SimRuntime {
    /// The simulation's wall clock (its epoch plus tokio's elapsed time).
    pub fn now_utc(&self) -> Timestamp {
        self.now()
    }

    /// Put a container in the simulated world as it is (no event): the
    /// containers that existed when a recording started.
    pub fn insert(&self, c: SimContainer) {
        self.lock().containers.insert(c.name.clone(), c);
    }

    /// Make an image known, as if pulled or imported earlier.
    pub fn add_image(&self, image: &str) {
        self.lock().images.insert(image.to_string());
    }

    /// Apply an event recorded from the real podman to the simulated world,
    /// without emitting anything (the recorded event *is* podman's event).
    /// A container the simulation does not know yet (made before the
    /// recording, or by hand) is added from the event's attributes.
    pub fn observe(&self, ev: &PodmanEvent) {
        if ev.typ != "container" || ev.name().is_empty() {
            return;
        }
        if matches!(ev.action.as_str(), "health_status" | "exec_died") {
            return self.observe_health(ev);
        }
        self.lock().last_health_event = None;
        let now = self.now();
        let mut st = self.lock();
        if ev.action == "remove" {
            st.containers.remove(ev.name());
            return;
        }
        if ev.action == "rename" {
            // The event names the container by its new name; find the old
            // one by id (a container not known yet is added below).
            let old = st
                .containers
                .iter()
                .find(|(_, c)| c.id == ev.actor.id)
                .map(|(name, _)| name.clone());
            if let Some(mut c) = old.and_then(|n| st.containers.remove(&n)) {
                c.name = ev.name().to_string();
                st.containers.insert(c.name.clone(), c);
                return;
            }
        }
        let c = st
            .containers
            .entry(ev.name().to_string())
            .or_insert_with(|| SimContainer {
                id: ev.actor.id.clone(),
                name: ev.name().to_string(),
                image: ev.label("image").unwrap_or_default().to_string(),
                state: ContainerState::Created,
                labels: ev
                    .actor
                    .attributes
                    .iter()
                    .filter(|(k, _)| !EVENT_ONLY_ATTRIBUTES.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                started_at: None,
                finished_at: None,
                exit_code: None,
                stopped_by_user: None,
            });
        // When it happened, on podman's clock (the simulation's): the event
        // arrives 0 to 250 ms later.
        let at = Timestamp::from_nanosecond(ev.time_nano.into()).unwrap_or_default();
        let at = if ev.time_nano > 0 && at <= now {
            at
        } else {
            now
        };
        match ev.action.as_str() {
            "create" => {
                // A new container under a known name: the old one is gone.
                c.id = ev.actor.id.clone();
                c.state = ContainerState::Created;
                c.started_at = None;
                c.finished_at = None;
                c.exit_code = None;
                c.labels = ev
                    .actor
                    .attributes
                    .iter()
                    .filter(|(k, _)| !EVENT_ONLY_ATTRIBUTES.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            }
            "start" | "restart" => {
                c.state = ContainerState::Running;
                c.started_at = Some(at);
                c.exit_code = Some(0);
                c.stopped_by_user = Some(false);
            }
            // podman 4.7+ records these before the exit they cause; a
            // recording shows the `kill` (and podman 4's `stop`) only.
            "kill" => c.stopped_by_user = Some(true),
            "died" => {
                c.state = ContainerState::Exited;
                // A crash or a user's stop: a recording of podman 5 shows no
                // difference (a `kill` before it says so, and podman 4's `stop`).
                if c.stopped_by_user != Some(true) {
                    c.stopped_by_user = None;
                }
                c.finished_at = Some(at);
                c.exit_code = ev.label("containerExitCode").and_then(|s| s.parse().ok());
            }
            "stop" if c.state == ContainerState::Running => {
                c.state = ContainerState::Exited;
                c.finished_at = Some(at);
                c.stopped_by_user = Some(true);
            }
            "pause" => c.state = ContainerState::Paused,
            "unpause" => c.state = ContainerState::Running,
            // init, cleanup, exec, attach, … change nothing podkeeper reads.
            _ => {}
        }
    }
}

/// Attributes podman adds to a container event that are not labels.
const EVENT_ONLY_ATTRIBUTES: &[&str] = &["name", "image", "containerExitCode", "podId"];
