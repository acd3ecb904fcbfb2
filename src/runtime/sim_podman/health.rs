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
//! * Every run is logged (`State.Health.Log`, the last 5, kept across a
//!   start), with its start and exit code: -1 for one cut at its timeout.
//!
//! A check set to hang ([`SimRuntime::set_check_hangs`]) runs until its
//! timeout, where the real runtime kills its processes. Not modelled:
//! `start_period` (podkeeper counts it itself) and the check's output.
//! `tests/sim_matches_podman.rs` checks the events.

use super::*;
use crate::runtime::{HealthLogEntry, HealthResult};

/// How many runs podman's health log keeps (`State.Health.Log`).
pub const LOG_ENTRIES: usize = 5;

/// One container's healthcheck as podman keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCheck {
    pub retries: u32,
    /// `starting`, `healthy` or `unhealthy`.
    pub status: &'static str,
    pub streak: u32,
    /// The last runs, oldest first (podman keeps them across a restart).
    pub log: std::collections::VecDeque<HealthLogEntry>,
}

impl SimCheck {
    pub fn new(retries: u32) -> Self {
        SimCheck {
            retries,
            status: "starting",
            streak: 0,
            log: Default::default(),
        }
    }

    fn logged(&mut self, entry: HealthLogEntry) {
        if self.log.len() == LOG_ENTRIES {
            self.log.pop_front();
        }
        self.log.push_back(entry);
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

    /// Run the container's healthcheck now, as the endpoint or `podman
    /// healthcheck run` does: its verdict (see [`SimRuntime::set_healthy`]),
    /// the status updated, the events emitted.
    pub fn check_now(&self, name: &str) -> RuntimeResult<HealthResult> {
        self.check_run(name, None)
    }

    /// Make the container's check hang (`true`: it never ends by itself, and
    /// is killed at its timeout) or end as set by [`SimRuntime::set_healthy`].
    pub fn set_check_hangs(&self, name: &str, hangs: bool) {
        let mut st = self.lock();
        if hangs {
            st.hanging.insert(name.to_string());
        } else {
            st.hanging.remove(name);
        }
    }

    pub(super) fn check_hangs(&self, name: &str) -> bool {
        self.lock().hanging.contains(name)
    }

    /// One run: `cut_at` is the timeout of a run that hung until killed.
    pub(super) fn check_run(
        &self,
        name: &str,
        cut_at: Option<Duration>,
    ) -> RuntimeResult<HealthResult> {
        let start = self.now_utc();
        let (c, passed, status) = {
            let mut st = self.lock();
            let passed = cut_at.is_none() && !st.unhealthy.contains(name);
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
            check.logged(HealthLogEntry {
                start,
                exit_code: if cut_at.is_some() {
                    -1
                } else {
                    i32::from(!passed)
                },
                output: String::new(),
            });
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
            output: cut_at
                .map(|t| {
                    format!(
                        "no result within its timeout of {}: killed (1 process(es))",
                        crate::duration::secs(t)
                    )
                })
                .unwrap_or_default(),
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
        // The run, as podman logged it.
        let start = self.now_utc();
        if let Some(check) = st.checks.get_mut(&name) {
            check.logged(HealthLogEntry {
                start,
                exit_code: i32::from(!passed),
                output: String::new(),
            });
        }
        if passed {
            st.unhealthy.remove(&name);
        } else {
            st.unhealthy.insert(name);
        }
    }
}
