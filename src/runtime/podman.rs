//! The real runtime: podman's REST API over its unix socket, every call under a timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use podman_api::opts::{ContainerListFilter, ContainerListOpts, PullOpts};
use podman_api::Podman;

use super::engine::{self, Engine};
use super::libpod::{self, CallError};
use super::{
    ContainerInfo, ContainerState, CreateRequest, HealthCall, HealthLogEntry, HealthResult,
    RuntimeError, RuntimeResult, StopWith,
};
mod config;
mod create;
use super::SecretValue;
mod health;
mod secrets;
#[cfg(test)]
mod socket_faults;
mod stops;
mod updates;

use stops::StopSignal;

/// How long each kind of call may take before it counts as failed.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// inspect, list, create, start, unpause
    pub quick: Duration,
    /// How much longer than its stop timeout a stop or remove may take.
    pub stop_margin: Duration,
    pub pull: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            quick: Duration::from_secs(15),
            stop_margin: Duration::from_secs(20),
            pull: Duration::from_secs(300),
        }
    }
}

/// Where the podman socket is when `--socket` is not given: `$CONTAINER_HOST`
/// (`unix://…`), else the rootful socket for root, else the user's.
pub fn default_socket() -> PathBuf {
    socket_for(
        std::env::var("CONTAINER_HOST").ok().as_deref(),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        crate::host::euid(),
    )
}

/// [`default_socket`] for that environment and effective uid. Without
/// `$XDG_RUNTIME_DIR` (a `su`, a cron job) a rootless podman's runtime
/// directory is still `/run/user/<uid>`: the uid podkeeper runs as.
fn socket_for(container_host: Option<&str>, runtime_dir: Option<PathBuf>, euid: u32) -> PathBuf {
    if let Some(path) = container_host.and_then(|h| h.strip_prefix("unix://")) {
        return PathBuf::from(path);
    }
    if euid == 0 {
        return PathBuf::from("/run/podman/podman.sock");
    }
    runtime_dir
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{euid}")))
        .join("podman/podman.sock")
}

/// See the module documentation.
#[derive(Clone)]
pub struct PodmanRuntime {
    api: Podman,
    socket: PathBuf,
    timeouts: Timeouts,
    /// Whether the podman that answered last records a user's stop before
    /// it signals (see [`STOP_INTENT_SINCE`]); every answer updates it, so a
    /// podman upgraded under a running podkeeper is seen as it is.
    stop_intent: Arc<AtomicBool>,
}

/// The first podman that records a user's stop, rm or kill
/// (`State.StoppedByUser`) before it signals the container and shows it in
/// an inspect: 4.6 moved the record before the signal (podman#18259), 4.7
/// put it into the inspect (podman commit 589867d).
pub const STOP_INTENT_SINCE: (u32, u32) = (4, 7);

/// Whether podman `version` records stop intent (see [`STOP_INTENT_SINCE`]).
pub fn records_stop_intent(version: &str) -> bool {
    libpod::major_minor(version).is_some_and(|v| v >= STOP_INTENT_SINCE)
}

impl PodmanRuntime {
    pub fn new(socket: &Path, timeouts: Timeouts) -> Self {
        PodmanRuntime {
            // Every typed call on the one pinned libpod API version.
            api: Podman::unix_versioned(socket, libpod::api_version()),
            socket: socket.to_path_buf(),
            timeouts,
            stop_intent: Arc::default(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// podman's versions, mode and exit directory (see [`engine`]).
    pub async fn engine(&self) -> RuntimeResult<Engine> {
        let engine = engine::discover(&self.socket, self.timeouts.quick)
            .await
            .map_err(|e| from_call("info", self.timeouts.quick, e))?;
        self.stop_intent
            .store(records_stop_intent(&engine.version), Ordering::Relaxed);
        Ok(engine)
    }
}

/// A call's failure in the runtime's terms, whichever client made it: the
/// one classification (by the HTTP status, then podman's cause; see [`libpod`]).
fn from_call(call: &'static str, after: Duration, e: CallError) -> RuntimeError {
    match e {
        CallError::Status(code, message) => by_cause(&message).unwrap_or(if code == 404 {
            RuntimeError::NotFound(message)
        } else {
            RuntimeError::Failed(message)
        }),
        CallError::Timeout => RuntimeError::Timeout { call, after },
        CallError::Unreachable(e) => RuntimeError::Unreachable(e),
        e @ (CallError::Body(_) | CallError::Request(_)) => {
            RuntimeError::Failed(format!("{call}: {e}"))
        }
    }
}

/// The fields of a libpod inspect podkeeper reads. podman 4 and podman 5
/// differ in others (`Config.StopSignal`: 15 or `"SIGTERM"`,
/// `Config.Entrypoint`: a string or a list), so only these are decoded.
#[derive(Debug, serde::Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "State")]
    state: InspectState,
    #[serde(rename = "Config", default)]
    config: InspectConfig,
}

#[derive(Debug, serde::Deserialize)]
struct InspectState {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i32>,
    #[serde(rename = "StartedAt", default)]
    started_at: Option<String>,
    #[serde(rename = "FinishedAt", default)]
    finished_at: Option<String>,
    #[serde(rename = "Health", default)]
    health: Option<InspectHealth>,
    /// podman 4.7+; left out when false (a `null` reads as false too, so
    /// an odd answer never fails the whole inspect).
    #[serde(rename = "StoppedByUser", default)]
    stopped_by_user: Option<bool>,
    #[serde(rename = "Pid", default)]
    pid: Option<i64>,
}

#[derive(Debug, serde::Deserialize)]
struct InspectHealth {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Log", default)]
    log: Option<Vec<InspectHealthLog>>,
}

/// One entry of `State.Health.Log`; an entry that cannot be read is left
/// out, never the whole inspect.
#[derive(Debug, serde::Deserialize)]
struct InspectHealthLog {
    #[serde(rename = "Start", default)]
    start: Option<String>,
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i32>,
    #[serde(rename = "Output", default)]
    output: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct InspectConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    /// Seconds.
    #[serde(rename = "StopTimeout", default)]
    stop_timeout: Option<u64>,
    /// podman 4 (and 5 on a 4.x API path): `15`; podman 5: `"SIGTERM"`.
    #[serde(rename = "StopSignal", default)]
    stop_signal: Option<StopSignal>,
}

impl Inspect {
    /// `stop_intent`: whether the podman that answered records a user's stop
    /// (then a missing `StoppedByUser` means false, not "unknown").
    fn into_info(self, stop_intent: bool) -> ContainerInfo {
        // podman says 0001-01-01T00:00:00Z for "never".
        let time = |t: Option<String>| {
            t.and_then(|t| t.parse::<Timestamp>().ok())
                .filter(|t| t.as_second() > 0)
        };
        let (health, health_log) = match self.state.health {
            Some(h) => {
                let log = h
                    .log
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| {
                        Some(HealthLogEntry {
                            start: time(e.start)?,
                            exit_code: e.exit_code?,
                            output: health::capped(e.output.unwrap_or_default()),
                        })
                    })
                    .collect();
                (Some(h.status).filter(|s| !s.is_empty()), log)
            }
            None => (None, Vec::new()),
        };
        ContainerInfo {
            id: self.id,
            name: self.name,
            state: ContainerState::parse(&self.state.status),
            labels: self.config.labels.unwrap_or_default(),
            stop_timeout: self.config.stop_timeout.map(stops::own_timeout),
            stop_signal: self.config.stop_signal.map(StopSignal::name),
            started_at: time(self.state.started_at),
            finished_at: time(self.state.finished_at),
            exit_code: self.state.exit_code,
            health,
            stopped_by_user: stop_intent.then_some(self.state.stopped_by_user.unwrap_or(false)),
            pid: self
                .state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
            health_log,
        }
    }
}

/// A `podman-api` call under the one timeout, its failure classified as a
/// raw call's is (see [`libpod`]).
async fn with_timeout<T>(
    call: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, podman_api::Error>>,
) -> RuntimeResult<T> {
    libpod::within(after, fut)
        .await
        .map_err(|e| from_call(call, after, e))
}

/// [`with_timeout`] for a start, which podman answers with 304 when the
/// container already runs (someone else started it).
async fn idempotent(
    call: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<(), podman_api::Error>>,
) -> RuntimeResult<()> {
    match libpod::within(after, fut).await {
        Err(CallError::Status(304, _)) => Ok(()),
        other => other.map_err(|e| from_call(call, after, e)),
    }
}

/// A `podman-api` failure in the runtime's terms (healthcheck's verdicts).
fn classify(e: podman_api::Error) -> RuntimeError {
    from_call("podman", Duration::ZERO, libpod::from_api(e))
}

/// podman's causes (the `cause` of its error body; the crate's message ends
/// with it) that mean the thing is missing, whatever the status code: podman
/// 4.3 answers HTTP 500 for an image it does not know (create) and for a
/// container that `podman rm` is removing right now (inspect: "… does not
/// exist in database: no such container").
const MISSING_CAUSES: &[&str] = &[
    "no such container",
    "no such image",
    "image not known",
    "no such object",
];

/// Causes that mean a create's name is taken: by a container in podman's
/// database ("container already exists"), or, while `podman rm` removes
/// one, still by its storage ("that name is already in use").
const NAME_IN_USE_CAUSES: &[&str] = &["container already exists", "that name is already in use"];

/// What an error body's cause means, whichever call (the crate's or a raw
/// libpod call) brought it.
fn by_cause(message: &str) -> Option<RuntimeError> {
    let message = message.trim();
    let is = |causes: &[&str]| causes.iter().any(|c| message.ends_with(c));
    if is(MISSING_CAUSES) {
        Some(RuntimeError::NotFound(message.to_string()))
    } else if is(NAME_IN_USE_CAUSES) {
        Some(RuntimeError::NameInUse(message.to_string()))
    } else {
        None
    }
}

fn labels_of(map: Option<std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

impl super::Podman for PodmanRuntime {
    /// podman runs on this host: its events carry this host's wall clock.
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn reports_stop_intent(&self) -> bool {
        self.stop_intent.load(Ordering::Relaxed)
    }

    async fn inspect_container(&self, name: &str) -> RuntimeResult<Option<ContainerInfo>> {
        let path = libpod::path(&format!("/containers/{}/json", libpod::urlencode(name)));
        match libpod::get_json_versioned::<Inspect>(&self.socket, &path, self.timeouts.quick).await
        {
            Ok((r, version)) => {
                let stop_intent = records_stop_intent(&version);
                self.stop_intent.store(stop_intent, Ordering::Relaxed);
                Ok(Some(r.into_info(stop_intent)))
            }
            Err(CallError::Status(404, _)) => Ok(None),
            // A container `podman rm` is removing right now: podman 4.3
            // answers HTTP 500 "… no such container"; it is missing.
            Err(e) => match from_call("inspect", self.timeouts.quick, e) {
                RuntimeError::NotFound(_) => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn list_managed(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKey(crate::APP_LABEL.to_string())])
            .build();
        let list = with_timeout(
            "list",
            self.timeouts.quick,
            self.api.containers().list(&opts),
        )
        .await?;
        let ts = |secs: Option<i64>| {
            secs.filter(|s| *s > 0)
                .and_then(|s| Timestamp::from_second(s).ok())
        };
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default(),
                state: ContainerState::parse(c.state.as_deref().unwrap_or("unknown")),
                labels: labels_of(c.labels),
                started_at: ts(c.started_at),
                finished_at: ts(c.exited_at),
                exit_code: c.exit_code,
                health: None,
                stopped_by_user: None,
                pid: None,
                health_log: Vec::new(),
                stop_timeout: None,
                stop_signal: None,
            })
            .collect())
    }

    async fn create_container(&self, req: &CreateRequest) -> RuntimeResult<String> {
        create::create(self, req).await
    }

    async fn start_container(&self, name: &str) -> RuntimeResult<()> {
        let c = self.api.containers().get(name);
        // A start of a running container (a healthcheck's restart, a user
        // started it first) is no error.
        idempotent("start", self.timeouts.quick, c.start(None)).await
    }

    async fn unpause_container(&self, name: &str) -> RuntimeResult<()> {
        let c = self.api.containers().get(name);
        with_timeout("unpause", self.timeouts.quick, c.unpause()).await
    }

    async fn run_healthcheck(
        &self,
        name: &str,
        call: HealthCall<'_>,
    ) -> RuntimeResult<HealthResult> {
        health::run(&self.api, name, call).await
    }

    async fn stop_container(&self, name: &str, with: StopWith) -> RuntimeResult<()> {
        self.stop(name, with).await
    }

    async fn remove_container(&self, name: &str, with: StopWith) -> RuntimeResult<()> {
        self.remove(name, with).await
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

    async fn pull_image(&self, image: &str) -> RuntimeResult<()> {
        use futures::StreamExt;
        let opts = PullOpts::builder().reference(image).quiet(true).build();
        let images = self.api.images();
        let pull = async {
            let mut stream = images.pull(&opts);
            while let Some(report) = stream.next().await {
                // podman's own words ("reading manifest … manifest unknown").
                if let Some(err) = report?.error {
                    return Ok(Some(err));
                }
            }
            Ok(None)
        };
        match with_timeout("pull", self.timeouts.pull, pull).await? {
            Some(err) => Err(RuntimeError::Failed(err.trim().to_string())),
            None => Ok(()),
        }
    }

    async fn image_exists(&self, image: &str) -> RuntimeResult<bool> {
        let img = self.api.images().get(image);
        with_timeout("exists", self.timeouts.quick, img.exists()).await
    }

    async fn create_secret(&self, name: &str, value: &SecretValue) -> RuntimeResult<()> {
        secrets::create(self, name, value).await
    }

    async fn list_secrets(&self, prefix: &str) -> RuntimeResult<Vec<String>> {
        secrets::list(self, prefix).await
    }

    async fn remove_secret(&self, name: &str) -> RuntimeResult<()> {
        secrets::remove(self, name).await
    }
}

#[cfg(test)]
mod cause_tests {
    use super::*;

    #[test]
    fn podmans_rfc3339_times_should_read_to_the_nanosecond_in_any_zone() {
        let at = |t: &str| {
            let state = serde_json::json!({"Status": "exited", "StartedAt": t, "FinishedAt": "0001-01-01T00:00:00Z"});
            let i: Inspect =
                serde_json::from_value(serde_json::json!({"Id": "a", "State": state})).unwrap();
            let info = i.into_info(false);
            assert_eq!(info.finished_at, None, "podman's zero time is never");
            info.started_at
                .map(|t| (t.as_second(), t.subsec_nanosecond(), format!("{t:.3}")))
        };
        let want = Some((
            1_796_675_883,
            123_456_789,
            "2026-12-07T20:38:03.123Z".into(),
        ));
        assert_eq!(at("2026-12-07T20:38:03.123456789+00:00"), want);
        assert_eq!(at("2026-12-07T20:38:03.123456789Z"), want);
        assert_eq!(at("2026-12-07T21:38:03.123456789+01:00"), want);
        assert_eq!(at("yesterday"), None);
        // As status and recordings write it (chrono's `SecondsFormat::Millis`).
        let whole = at("2026-12-07T20:38:03Z").unwrap().2;
        assert_eq!(whole, "2026-12-07T20:38:03.000Z");
    }

    #[test]
    fn the_default_socket_should_be_the_effective_users() {
        let sock = |host, dir: Option<&str>, uid| socket_for(host, dir.map(PathBuf::from), uid);
        assert_eq!(
            sock(None, None, 1001),
            Path::new("/run/user/1001/podman/podman.sock")
        );
        assert_eq!(
            sock(None, Some("/tmp/x"), 1001),
            Path::new("/tmp/x/podman/podman.sock")
        );
        assert_eq!(
            sock(None, Some("/run/user/0"), 0),
            Path::new("/run/podman/podman.sock")
        );
        assert_eq!(sock(Some("unix:///a.sock"), None, 0), Path::new("/a.sock"));
    }

    fn fault(code: u16, message: &str) -> podman_api::Error {
        podman_api::Error::Fault {
            code: hyper::StatusCode::from_u16(code).unwrap(),
            message: message.into(),
        }
    }

    #[test]
    fn podman_4_3s_500s_for_missing_things_should_be_not_found() {
        // As podman 4.3.1 answers (the crate joins message and cause with ": ").
        let image = fault(500, "127.0.0.1:5000/x:1: image not known: image not known");
        assert!(matches!(classify(image), RuntimeError::NotFound(_)));
        let removing = fault(
            500,
            "container 0c0f… does not exist in database: no such container: no such container",
        );
        assert!(matches!(classify(removing), RuntimeError::NotFound(_)));
        let other = fault(500, "crun: something broke: OCI runtime error");
        assert!(matches!(classify(other), RuntimeError::Failed(_)));
    }

    #[test]
    fn a_name_still_taken_should_be_name_in_use() {
        let storage = fault(500, "creating container storage: the container name \"a\" is already in use by 5076…. You have to remove that container to be able to reuse that name: that name is already in use: that name is already in use");
        assert!(matches!(classify(storage), RuntimeError::NameInUse(_)));
        let db = fault(
            500,
            "name \"a\" is in use: container already exists: container already exists",
        );
        assert!(matches!(classify(db), RuntimeError::NameInUse(_)));
    }
}
