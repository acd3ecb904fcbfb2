//! The timers of podkeeper's own health checks, one scheduler key per checked app.

use tokio::time::Instant;

use super::Reactor;
use crate::runtime::Podman;
use crate::trigger::Key;

impl<R: Podman> Reactor<R> {
    /// Start the check timers of these apps that declare a healthcheck (a
    /// timer already running keeps its time; it ends by itself when the
    /// healthcheck goes).
    pub(super) fn schedule_checks(&mut self, ids: Vec<String>, now: Instant) {
        for id in ids {
            if let Some(h) = self
                .apps
                .apps
                .get(&id)
                .and_then(|a| a.app.container.healthcheck.as_ref())
            {
                self.sched.schedule(Key::Health(id), now + h.interval());
            }
        }
    }
}
