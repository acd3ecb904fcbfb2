//! A simulated podman: containers and images in memory, answering like podman and emitting podman's event sequences.
//!
//! It backs replay, the reactor's own tests and the scale benchmark. Calls take
//! a fixed time on tokio's clock, so under paused time everything is
//! deterministic. The event sequences follow what podman emits on this
//! project's stacks, in one of two sets ([`EventSet`], chosen by podman's
//! version; `tests/sim_matches_podman.rs` checks both against the real ones):
//!
//! | what | podman 4.3 ([`EventSet::V4`]) | podman 5.x ([`EventSet::V5`]) |
//! |---|---|---|
//! | create | `create` | `create` |
//! | start | `init`, `start` | `init`, `start` |
//! | crash (`kill -9`) | `died`, `cleanup` | `died`, `cleanup` |
//! | `podman stop` | `stop`, `died`, `cleanup`, `cleanup` | `died`, `cleanup` |
//! | `rm -f` or a forced REST remove of a running container | `stop`, `died`, `remove` | `died`, `remove` |
//! | `containerExitCode` | on every container event: the real code on `died`, "0" on the others | only on `died` and `remove` (the last exit code) |
//!
//! podman's `stop` event is a race in both (its stop path emits it only if
//! conmon's cleanup has not moved the container on yet): podman 4.3 sometimes
//! leaves it out, and 5.x, whose cleanup is quicker, practically always; the
//! V4 sim always emits it, V5 never. `podman run` of a local image also emits
//! `image pull`, a podman with a restart policy `restart`; podkeeper does
//! neither, so neither does the sim. A healthcheck run (podkeeper's call of
//! the healthcheck endpoint, or `podman healthcheck run`) emits
//! `health_status` with a top-level `HealthStatus`, on podman 4.3 followed by
//! `exec_died` carrying the check's exit code: see `sim_podman/health.rs`.
//!
//! `podman rename` → `rename`, naming the container by its new name only.
//!
//! [`SimRuntime::observe`] applies an event recorded from the real podman to
//! the simulated world (replay): a recorded `died` leaves the container exited,
//! a recorded `remove` removes it, a `rename` moves it (found by id) to its
//! new name, and so on.

mod calls;
mod config;
mod health;
mod networks;
mod replay;
mod stops;
mod updates;

pub use config::{as_podman_shows, sim_image_config};
pub use stops::KILLED;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use super::{
    ContainerInfo, ContainerState, CreateRequest, Podman, RuntimeError, RuntimeResult, StopWith,
};
use crate::trigger::{Actor, PodmanEvent};
use crate::APP_LABEL;

/// One simulated container.
#[derive(Debug, Clone)]
pub struct SimContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    /// A user's stop (or rm, kill) ended its last run (podman's
    /// `StoppedByUser`); `None` where a replayed recording does not say.
    pub stopped_by_user: Option<bool>,
}

/// Which podman's event sequences the simulation emits (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventSet {
    /// podman 4.x.
    #[default]
    V4,
    /// podman 5.x and later.
    V5,
}

impl EventSet {
    /// The set of a podman version (`4.3.1`, `5.4.2`, …); 4's for one that
    /// cannot be read.
    pub fn for_version(version: &str) -> Self {
        match version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
        {
            Some(major) if major >= 5 => EventSet::V5,
            _ => EventSet::V4,
        }
    }
}

#[derive(Debug, Default)]
struct SimState {
    containers: BTreeMap<String, SimContainer>,
    images: BTreeSet<String>,
    next_id: u64,
    /// Every call the reactor made, in order: `inspect web`, `start web`, …
    calls: Vec<String>,
    unreachable: bool,
    /// Containers whose healthcheck fails (every other one passes).
    unhealthy: BTreeSet<String>,
    /// Containers whose healthcheck hangs until killed at its timeout.
    hanging: BTreeSet<String>,
    /// Container name → its healthcheck as podman keeps it (see `health.rs`).
    checks: BTreeMap<String, health::SimCheck>,
    /// Replay: the container whose recorded `health_status` came last (its
    /// `exec_died` may follow).
    last_health_event: Option<String>,
    /// Container name → calls on it in flight now.
    busy: BTreeMap<String, u32>,
    /// Calls that began while another call on the same container was in
    /// flight (what one run per app at a time rules out).
    overlaps: Vec<String>,
    /// Containers whose process ignores SIGTERM: a stop takes this long.
    slow_stops: BTreeMap<String, Duration>,
    /// A call (`start web`) that panics the next time it is made.
    panic_once: Option<String>,
    /// podman's networks by name (see `networks.rs`).
    networks: BTreeSet<String>,
    /// Container name → the spec it was created from.
    specs: BTreeMap<String, crate::manifest::ContainerSpec>,
    /// The podman secrets' names (their values are never kept).
    secrets: BTreeSet<String>,
    // Graceful stops (issue 22), see `stops.rs`.
    /// Containers whose process needs this long after its stop signal.
    stop_needs: BTreeMap<String, Duration>,
    /// Every stop and remove, with its stop timeout.
    stops: Vec<(String, Duration)>,
    /// Container id → the stop timeout it was created with.
    own_stop: BTreeMap<String, Duration>,
    /// Updates (issue 23), see `updates.rs`.
    updates: updates::SimUpdates,
}

/// See the module documentation.
#[derive(Clone)]
pub struct SimRuntime {
    state: Arc<Mutex<SimState>>,
    events: Option<mpsc::UnboundedSender<PodmanEvent>>,
    /// How long each call takes (on tokio's clock).
    pub latency: Duration,
    /// The wall-clock origin of simulated timestamps.
    epoch: Timestamp,
    started: tokio::time::Instant,
    events_of: EventSet,
}

impl SimRuntime {
    /// A simulated podman that has the given images. Events it emits go to
    /// `events` when given.
    pub fn new(images: &[&str], events: Option<mpsc::UnboundedSender<PodmanEvent>>) -> Self {
        let state = SimState {
            images: images.iter().map(|s| s.to_string()).collect(),
            ..SimState::default()
        };
        SimRuntime {
            state: Arc::new(Mutex::new(state)),
            events,
            latency: Duration::from_millis(5),
            epoch: Timestamp::from_second(1_764_000_000).unwrap_or_default(),
            started: tokio::time::Instant::now(),
            events_of: EventSet::default(),
        }
    }

    /// Emit the event sequences of that podman (default: podman 4's).
    pub fn with_event_set(mut self, set: EventSet) -> Self {
        self.events_of = set;
        self
    }

    /// Let the simulated clock read `epoch` now (and run on from there on
    /// tokio's clock). Replay sets it to the moment the recording started, so
    /// that recorded events' times and the simulation's clock agree.
    pub fn with_epoch(mut self, epoch: Timestamp) -> Self {
        self.epoch = epoch;
        self.started = tokio::time::Instant::now();
        self
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Timestamp {
        self.epoch
            .checked_add(self.started.elapsed())
            .unwrap_or(Timestamp::MAX)
    }

    pub fn container(&self, name: &str) -> Option<SimContainer> {
        self.lock().containers.get(name).cloned()
    }

    /// The podman secrets there are, by name.
    pub fn secrets(&self) -> Vec<String> {
        self.lock().secrets.iter().cloned().collect()
    }

    pub fn containers(&self) -> Vec<SimContainer> {
        self.lock().containers.values().cloned().collect()
    }

    /// Make every call fail as if the service were stopped.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    fn emit(&self, c: &SimContainer, action: &str, exit_code: Option<i32>) {
        self.emit_full(c, action, exit_code, None);
    }

    /// An event; `health` is the top-level `HealthStatus` of a `health_status`.
    fn emit_full(
        &self,
        c: &SimContainer,
        action: &str,
        exit_code: Option<i32>,
        health: Option<&str>,
    ) {
        let Some(tx) = &self.events else { return };
        let mut attributes = c.labels.clone();
        attributes.insert("name".into(), c.name.clone());
        attributes.insert("image".into(), c.image.clone());
        let code = || exit_code.or(c.exit_code).unwrap_or(0).to_string();
        match (self.events_of, action) {
            // podman 4.3's `exec_died` of a healthcheck carries the check's code.
            (_, "died") | (EventSet::V4, "exec_died") => {
                attributes.insert("containerExitCode".into(), code());
            }
            // podman 4.3 puts `containerExitCode` on every container event,
            // but only `died` carries the real code: the others say "0".
            (EventSet::V4, _) => {
                attributes.insert("containerExitCode".into(), "0".into());
            }
            // podman 5 only on `died` and `remove`, with the last exit code.
            (EventSet::V5, "remove") => {
                attributes.insert("containerExitCode".into(), code());
            }
            (EventSet::V5, _) => {}
        }
        attributes.insert("podId".into(), String::new());
        let now = self.now();
        let mut rest = serde_json::Map::new();
        rest.insert("status".into(), action.into());
        rest.insert("id".into(), c.id.clone().into());
        rest.insert("from".into(), c.image.clone().into());
        rest.insert("scope".into(), "local".into());
        rest.insert("time".into(), now.as_second().into());
        if let Some(h) = health {
            rest.insert("HealthStatus".into(), h.into());
        }
        let _ = tx.send(PodmanEvent {
            typ: "container".into(),
            action: action.into(),
            actor: Actor {
                id: c.id.clone(),
                attributes,
            },
            time_nano: now.as_nanosecond().try_into().ok().unwrap_or_default(),
            rest,
        });
    }

    /// Add a container as if created by podkeeper earlier (or by hand), running.
    pub fn add_running(&self, name: &str, labels: BTreeMap<String, String>) {
        let mut st = self.lock();
        st.next_id += 1;
        let c = SimContainer {
            id: format!("{:064x}", st.next_id),
            name: name.into(),
            image: "localhost/bb:1".into(),
            state: ContainerState::Running,
            labels,
            started_at: Some(self.now()),
            finished_at: None,
            exit_code: None,
            stopped_by_user: Some(false),
        };
        st.containers.insert(name.into(), c);
    }

    /// The container's main process dies (`kill -9`): `died`, `cleanup`.
    pub fn crash(&self, name: &str, code: i32) {
        let now = self.now();
        let c = {
            let mut st = self.lock();
            let Some(c) = st.containers.get_mut(name) else {
                return;
            };
            if c.state != ContainerState::Running {
                return;
            }
            c.state = ContainerState::Exited;
            c.exit_code = Some(code);
            c.stopped_by_user = Some(false);
            c.finished_at = Some(now);
            c.clone()
        };
        self.emit(&c, "died", Some(code));
        self.emit(&c, "cleanup", Some(code));
    }

    /// `podman stop` by hand of a container that exits on SIGTERM: podman 4
    /// `stop`, `died`, `cleanup`, `cleanup` (the stop command and conmon's
    /// exit command each run a cleanup), podman 5 `died`, `cleanup`.
    pub fn stop_by_hand(&self, name: &str) {
        self.stopped(name, 0);
    }

    /// A stop that ended the process with `code` (0: it obeyed its stop
    /// signal; [`KILLED`]: SIGKILL at the end of the stop timeout).
    fn stopped(&self, name: &str, code: i32) {
        let now = self.now();
        let c = {
            let mut st = self.lock();
            let Some(c) = st.containers.get_mut(name) else {
                return;
            };
            c.state = ContainerState::Exited;
            c.exit_code = Some(code);
            c.stopped_by_user = Some(true);
            c.finished_at = Some(now);
            c.clone()
        };
        if self.events_of == EventSet::V4 {
            self.emit(&c, "stop", Some(code));
        }
        self.emit(&c, "died", Some(code));
        self.emit(&c, "cleanup", Some(code));
        if self.events_of == EventSet::V4 {
            self.emit(&c, "cleanup", Some(code));
        }
    }

    /// Make the container's healthcheck fail (`false`) or pass again.
    pub fn set_healthy(&self, name: &str, healthy: bool) {
        let mut st = self.lock();
        if healthy {
            st.unhealthy.remove(name);
        } else {
            st.unhealthy.insert(name.to_string());
        }
    }

    /// `podman rm -f` by hand.
    pub fn remove_by_hand(&self, name: &str) {
        let c = self.lock().containers.remove(name);
        if let Some(c) = c {
            self.emit_removal(&c, 0);
        }
    }

    /// `podman rename old new` by hand: one `rename` event, which names the
    /// container by its new name (podman 4.3 says nothing of the old one).
    pub fn rename_by_hand(&self, old: &str, new: &str) {
        let c = {
            let mut st = self.lock();
            if st.containers.contains_key(new) {
                return;
            }
            let Some(mut c) = st.containers.remove(old) else {
                return;
            };
            c.name = new.to_string();
            st.containers.insert(new.to_string(), c.clone());
            c
        };
        self.emit(&c, "rename", None);
    }

    /// A forced remove: a running container is stopped first (its stop
    /// signal, which it obeys with `code`) and removed without a cleanup event.
    fn emit_removal(&self, c: &SimContainer, code: i32) {
        let mut c = c.clone();
        if c.state == ContainerState::Running {
            if self.events_of == EventSet::V4 {
                self.emit(&c, "stop", Some(code));
            }
            self.emit(&c, "died", Some(code));
            c.exit_code = Some(code);
        }
        self.emit(&c, "remove", None);
    }
}

impl Podman for SimRuntime {
    fn now(&self) -> Timestamp {
        self.now_utc()
    }

    fn reports_stop_intent(&self) -> bool {
        self.events_of == EventSet::V5
    }

    async fn inspect_container(&self, name: &str) -> RuntimeResult<Option<ContainerInfo>> {
        self.call(format!("inspect {name}")).await?;
        let st = self.lock();
        Ok(st.containers.get(name).map(|c| {
            let mut i = info(c);
            // podman's inspect says `State.Health.Status`; its list does not.
            i.health = st.checks.get(name).map(|h| h.status.to_string());
            i.health_log = st
                .checks
                .get(name)
                .map(|h| h.log.iter().cloned().collect())
                .unwrap_or_default();
            // So does its `State.StoppedByUser`, from podman 4.7 (the 5 set here).
            i.stopped_by_user = c.stopped_by_user.filter(|_| self.reports_stop_intent());
            i.stop_timeout = Some(Self::own_stop_timeout(&st, c));
            i
        }))
    }

    async fn list_managed(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        self.call("list".into()).await?;
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|c| c.labels.contains_key(APP_LABEL))
            .map(info)
            .collect())
    }

    async fn create_container(&self, req: &CreateRequest) -> RuntimeResult<String> {
        self.call(format!("create {}", req.name)).await?;
        let c = {
            let mut st = self.lock();
            if !st.images.contains(&req.spec.image) {
                return Err(RuntimeError::NotFound(format!(
                    "{}: image not known",
                    req.spec.image
                )));
            }
            // As the real create does: its podman secrets first.
            st.secrets
                .extend(req.secrets.iter().map(|s| s.name.clone()));
            if st.containers.contains_key(&req.name) {
                return Err(RuntimeError::NameInUse(format!(
                    "the container name {:?} is already in use",
                    req.name
                )));
            }
            if let Some(e) = networks::refuse_create(&st, req) {
                return Err(e);
            }
            st.specs.insert(req.name.clone(), req.spec.clone());
            st.next_id += 1;
            let c = SimContainer {
                id: format!("{:064x}", st.next_id),
                name: req.name.clone(),
                image: req.spec.image.clone(),
                state: ContainerState::Created,
                labels: req.labels.clone(),
                started_at: None,
                finished_at: None,
                exit_code: None,
                stopped_by_user: Some(false),
            };
            st.containers.insert(req.name.clone(), c.clone());
            match &req.spec.healthcheck {
                Some(h) => {
                    st.checks
                        .insert(req.name.clone(), health::SimCheck::new(h.retries()));
                }
                None => {
                    st.checks.remove(&req.name);
                }
            }
            c
        };
        self.keep_stop_timeout(&c.id, &req.spec);
        self.emit(&c, "create", None);
        Ok(c.id)
    }

    async fn start_container(&self, name: &str) -> RuntimeResult<()> {
        self.call(format!("start {name}")).await?;
        let now = self.now();
        let c = {
            let mut st = self.lock();
            let c = st.containers.get_mut(name).ok_or_else(|| {
                RuntimeError::NotFound(format!("no container with name or ID {name:?} found"))
            })?;
            if c.state == ContainerState::Running {
                return Ok(());
            }
            c.state = ContainerState::Running;
            c.started_at = Some(now);
            c.exit_code = Some(0);
            c.stopped_by_user = Some(false);
            let c = c.clone();
            let set = self.events_of;
            if let Some(check) = st.checks.get_mut(name) {
                check.started(set);
            }
            c
        };
        self.emit(&c, "init", None);
        self.emit(&c, "start", None);
        Ok(())
    }

    async fn unpause_container(&self, name: &str) -> RuntimeResult<()> {
        self.call(format!("unpause {name}")).await?;
        let c = {
            let mut st = self.lock();
            let c = st
                .containers
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.to_string()))?;
            c.state = ContainerState::Running;
            c.clone()
        };
        self.emit(&c, "unpause", None);
        Ok(())
    }

    async fn run_healthcheck(
        &self,
        name: &str,
        call: super::HealthCall<'_>,
    ) -> RuntimeResult<super::HealthResult> {
        self.call(format!("healthcheck {name}")).await?;
        if self.check_hangs(name) {
            // Until its timeout, where the real runtime kills it.
            tokio::time::sleep(call.timeout).await;
            return self.check_run(name, Some(call.timeout));
        }
        self.check_now(name)
    }

    async fn stop_container(&self, name: &str, with: StopWith) -> RuntimeResult<()> {
        let what = format!("stop {name}");
        let (took, code) = self.plan_stop(&what, name, with);
        self.call_taking(what, took).await?;
        let running = self
            .lock()
            .containers
            .get(name)
            .is_some_and(|c| c.state == ContainerState::Running);
        if running {
            self.stopped(name, code);
        }
        Ok(())
    }

    async fn remove_container(&self, name: &str, with: StopWith) -> RuntimeResult<()> {
        let what = format!("remove {name}");
        let (took, code) = self.plan_stop(&what, name, with);
        self.call_taking(what, took).await?;
        let c = {
            let mut st = self.lock();
            if let Some(e) = networks::refuse_remove(&st, name) {
                return Err(e);
            }
            st.containers.remove(name)
        };
        if let Some(c) = c {
            self.emit_removal(&c, code);
        }
        Ok(())
    }

    async fn pull_image(&self, image: &str) -> RuntimeResult<()> {
        self.pull(image).await
    }

    async fn image_exists(&self, image: &str) -> RuntimeResult<bool> {
        self.call(format!("exists {image}")).await?;
        Ok(self.lock().images.contains(image))
    }

    async fn create_secret(
        &self,
        name: &str,
        _value: &crate::manifest::secrets::SecretValue,
    ) -> RuntimeResult<()> {
        self.call(format!("secret create {name}")).await?;
        self.lock().secrets.insert(name.to_string());
        Ok(())
    }

    async fn list_secrets(&self, prefix: &str) -> RuntimeResult<Vec<String>> {
        self.call(format!("secret list {prefix}")).await?;
        let st = self.lock();
        Ok(st
            .secrets
            .iter()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn remove_secret(&self, name: &str) -> RuntimeResult<()> {
        self.call(format!("secret remove {name}")).await?;
        self.lock().secrets.remove(name);
        Ok(())
    }

    async fn rename_container(&self, name: &str, new_name: &str) -> RuntimeResult<()> {
        self.rename(name, new_name).await
    }

    async fn logs_tail(&self, name: &str, max_bytes: usize) -> RuntimeResult<String> {
        self.logs(name, max_bytes).await
    }

    async fn container_config(
        &self,
        name: &str,
    ) -> RuntimeResult<Option<super::config::ContainerConfig>> {
        self.config(name).await
    }
}

fn info(c: &SimContainer) -> ContainerInfo {
    ContainerInfo {
        id: c.id.clone(),
        name: c.name.clone(),
        state: c.state.clone(),
        labels: c.labels.clone(),
        started_at: c.started_at,
        finished_at: c.finished_at,
        exit_code: c.exit_code,
        health: None,
        stopped_by_user: None,
        pid: None,
        health_log: Vec::new(),
        stop_timeout: None,
        stop_signal: None,
    }
}
