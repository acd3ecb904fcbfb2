//! The simulation's healthchecks: podman's health status and failing streak, and the events a check run emits.
//!
//! Measured on this project's stacks (a container with `--health-retries 2`,
//! checks run by `podman healthcheck run` and by `GET
//! /libpod/containers/{name}/healthcheck`, both alike):
//!
//! * The endpoint answers the verdict of the check just run:
//!   `{"Status":"healthy"|"unhealthy","FailingStreak":0,"Log":null}` (its
//!   `FailingStreak` is always 0 on podman 4.3.1 and 5.4.2).
//! * The container's status (`State.Health.Status` of its inspect) is
//!   `starting` from each start until a check passes (`healthy`, streak 0) or
//!   `retries` checks in a row failed (`unhealthy`); a failure below
//!   `retries` leaves it as it was.
//! * A start resets the status to `starting`; podman 4.3.1 keeps the failing
//!   streak across it (a restarted container that failed 3 checks is
//!   `unhealthy` after its first failure), podman 5.4.2 resets it to 0.
//! * Every check run emits `health_status` with a top-level `HealthStatus`:
//!   podman 5.4.2 the container's status after the check; podman 4.3.1 the
//!   status from *before* it (its event lags one check behind: with retries
//!   2, failing checks say `starting`, `starting`, `unhealthy` while the
//!   inspect says `starting`, `unhealthy`, `unhealthy`), and then
//!   `exec_died` with the check's exit code in `containerExitCode`.
//!
//! Not modelled: `start_period` (podkeeper counts it itself), the check's
//! output and timeout. `tests/sim_matches_podman.rs` checks the events.

use super::*;
use crate::runtime::HealthResult;

/// One container's healthcheck as podman keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCheck {
    pub retries: u32,
    /// `starting`, `healthy` or `unhealthy`.
    pub status: &'static str,
    pub streak: u32,
}

impl SimCheck {
    pub fn new(retries: u32) -> Self {
        SimCheck {
            retries,
            status: "starting",
            streak: 0,
        }
    }

    /// The container was started.
    pub(super) fn started(&mut self, set: EventSet) {
        self.status = "starting";
        if set == EventSet::V5 {
            self.streak = 0;
        }
    }

    fn record(&mut self, passed: bool) {
        if passed {
            self.status = "healthy";
            self.streak = 0;
        } else {
            self.streak += 1;
            if self.streak >= self.retries {
                self.status = "unhealthy";
            }
        }
    }
}

/// A status as podman names it, as one of the three.
fn status_of(s: &str) -> Option<&'static str> {
    ["starting", "healthy", "unhealthy"]
        .into_iter()
        .find(|k| *k == s)
}

impl SimRuntime {
    /// Give the container `name` a healthcheck with `retries` (replay: the
    /// containers that existed when the recording started; a create does it
    /// from the request).
    pub fn declare_healthcheck(&self, name: &str, retries: u32) {
        self.lock()
            .checks
            .insert(name.to_string(), SimCheck::new(retries));
    }

    /// The container's healthcheck as podman keeps it.
    pub fn check_of(&self, name: &str) -> Option<SimCheck> {
        self.lock().checks.get(name).cloned()
    }

    /// Run the container's healthcheck now, as the endpoint or `podman
    /// healthcheck run` does: its verdict (see [`SimRuntime::set_healthy`]),
    /// the status updated, the events emitted.
    pub fn check_now(&self, name: &str) -> RuntimeResult<HealthResult> {
        let (c, passed, status) = {
            let mut st = self.lock();
            let passed = !st.unhealthy.contains(name);
            let c = match st.containers.get(name) {
                None => {
                    return Err(RuntimeError::NotFound(format!(
                        "no container with name or ID {name:?} found"
                    )))
                }
                Some(c) if c.state != ContainerState::Running => {
                    return Err(RuntimeError::Failed(format!(
                        "container {} is not running",
                        c.id
                    )))
                }
                Some(c) => c.clone(),
            };
            let Some(check) = st.checks.get_mut(name) else {
                return Err(RuntimeError::Failed(format!(
                    "container {name} has no defined healthcheck"
                )));
            };
            let before = check.status;
            check.record(passed);
            // podman 4.3.1 puts the status from before the check in the event.
            let said = match self.events_of {
                EventSet::V4 => before,
                EventSet::V5 => check.status,
            };
            (c, passed, said)
        };
        let code = i32::from(!passed);
        self.emit_full(&c, "health_status", None, Some(status));
        if self.events_of == EventSet::V4 {
            self.emit(&c, "exec_died", Some(code));
        }
        Ok(HealthResult {
            passed,
            output: String::new(),
        })
    }

    /// A recorded `health_status` or `exec_died` (replay): the checks from
    /// now on give the verdict the recording implies, and the container's
    /// status is the recorded one. podman 5 says the status after the check
    /// (`healthy`: it passed; `starting` or `unhealthy`: it failed); podman
    /// 4.3's status lags one check behind, but the `exec_died` right after
    /// its `health_status` carries the check's exit code.
    pub(super) fn observe_health(&self, ev: &PodmanEvent) {
        let mut st = self.lock();
        let name = ev.name().to_string();
        let after_check = st.last_health_event.take().is_some_and(|n| n == name);
        let passed = match ev.action.as_str() {
            "health_status" => {
                let Some(status) = ev
                    .rest
                    .get("HealthStatus")
                    .and_then(|s| s.as_str())
                    .and_then(status_of)
                else {
                    return;
                };
                if let Some(check) = st.checks.get_mut(&name) {
                    check.status = status;
                }
                st.last_health_event = Some(name.clone());
                if self.events_of == EventSet::V4 {
                    return;
                }
                status == "healthy"
            }
            "exec_died" if after_check => ev.label("containerExitCode") == Some("0"),
            _ => return,
        };
        if passed {
            st.unhealthy.remove(&name);
        } else {
            st.unhealthy.insert(name);
        }
    }
}
