//! The runtime the reconcilers act on: what they may ask of podman, as a trait.
//!
//! [`podman::PodmanRuntime`] is the real one (podman's REST API, every call under
//! a timeout). A simulated one backs replay and scale tests.

pub(crate) mod check_procs;
pub mod config;
pub(crate) mod engine;
pub mod libpod;
pub mod podman;
pub mod sim_podman;
pub mod sim_systemd;
pub(crate) mod systemd;
pub mod unmet;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;

use crate::manifest::secrets::SecretValue;
use crate::manifest::ContainerSpec;
pub use unmet::Unmet;

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    /// podman's health status (`healthy`, `unhealthy`, `starting`), as
    /// podkeeper's checks through its API last left it; `None` without a
    /// healthcheck, or where the runtime's answer does not say (list).
    pub health: Option<String>,
    /// Whether a user's `podman stop`, `rm` or `kill` ended its last run.
    /// podman 4.7 and later record it *before* they signal the process, so
    /// an exit with `Some(false)` is a crash, never a stop still under way;
    /// `None` where podman does not say (before 4.7, and in lists).
    pub stopped_by_user: Option<bool>,
    /// The host pid of its main process while it runs (inspect only): the
    /// healthcheck runner finds the check's processes through it.
    pub pid: Option<u32>,
    /// podman's log of the last check runs (`State.Health.Log`, inspect
    /// only), whoever ran them: podkeeper, or a user's `podman healthcheck run`.
    pub health_log: Vec<HealthLogEntry>,
    /// How long podman's own stop of it waits after the stop signal
    /// (`Config.StopTimeout`, inspect only): what a stop of a container
    /// whose manifest is gone honours.
    pub stop_timeout: Option<Duration>,
    /// The signal podman's stop sends it (`Config.StopSignal`, inspect
    /// only), by name (`SIGTERM`) whichever shape podman gave it in.
    pub stop_signal: Option<String>,
}

/// One check run as podman logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthLogEntry {
    /// When podman began the run: what tells one entry from another.
    pub start: Timestamp,
    /// The check's exit code; podman writes -1 for a check that outlived its timeout.
    pub exit_code: i32,
    /// The start of its output (podman keeps a few hundred bytes).
    pub output: String,
}

impl HealthLogEntry {
    pub fn passed(&self) -> bool {
        self.exit_code == 0
    }
}

impl ContainerInfo {
    /// How long it ran before it exited, when it has exited after a start.
    ///
    /// An instant crash counts as no uptime at all: podman 4.3 stamps the
    /// `FinishedAt` of a process that exits at once a few milliseconds
    /// *before* its `StartedAt` (it reads the exit before it writes the start).
    pub fn last_uptime(&self) -> Option<Duration> {
        let (start, end) = (self.started_at?, self.finished_at?);
        Some(Duration::try_from(end.duration_since(start)).unwrap_or(Duration::ZERO))
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

// Graceful stops (issue 22: `stop_signal`, `stop_timeout`).

/// podman's stop timeout where nothing else sets one.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest stop podkeeper waits out: the manifest's bound on
/// `stop_timeout`, and the cap on what a container's own inspect says.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// How a stop or a remove ends a running container: its stop signal (the
/// container's own: libpod's stop and remove take no signal per call, so
/// the `stop_signal` set at create is what podman sends), then up to
/// `timeout` for the process to exit before SIGKILL. Every stop and remove
/// podkeeper makes names it, so no stop falls back on podman's 10 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopWith {
    pub timeout: Duration,
}

impl StopWith {
    /// The stop of container `found` (as inspected) for the manifest
    /// `spec` (`None`: deleted): the longer of the manifest's
    /// `stop_timeout` and the container's own. A container created by an
    /// older podkeeper (podman's 10 s) still gets the manifest's time, and
    /// a container whose manifest is gone, or lowered its timeout, the time
    /// it was created with: a database is never cut short by a stop
    /// podkeeper makes.
    pub fn for_app(spec: Option<&ContainerSpec>, found: Option<&ContainerInfo>) -> StopWith {
        let declared = spec.and_then(declared_stop_timeout);
        let own = found.and_then(|c| c.stop_timeout);
        let timeout = declared
            .into_iter()
            .chain(own)
            .max()
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
            .min(MAX_STOP_TIMEOUT);
        StopWith { timeout }
    }
}

/// The manifest's `stop_timeout` (`30s`, `2m`, `1m30s`); `None` when unset
/// (or unreadable: validation refuses such a manifest before it gets here).
pub fn declared_stop_timeout(spec: &ContainerSpec) -> Option<Duration> {
    spec.stop_timeout
        .as_deref()
        .and_then(crate::manifest::health::parse_duration)
}

/// podman's container states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Configured,
    Created,
    Running,
    Paused,
    Stopping,
    Stopped,
    Exited,
    Removing,
    Other(String),
}

impl ContainerState {
    pub fn parse(s: &str) -> Self {
        match s {
            "configured" => Self::Configured,
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "exited" => Self::Exited,
            "removing" => Self::Removing,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Configured => "configured",
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
            Self::Removing => "removing",
            Self::Other(s) => s,
        }
    }
}

/// What the reconciler asks podman to create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    pub name: String,
    pub spec: ContainerSpec,
    /// The spec's labels plus podkeeper's own.
    pub labels: BTreeMap<String, String>,
    /// `container.secrets`, as the podman secrets created for them.
    pub secrets: Vec<SecretUse>,
}

/// One `container.secrets` entry as a create takes it: the podman secret
/// (made before the create) and where the container gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretUse {
    /// The podman secret's name (`podkeeper.<app>.<index>.<digest>`).
    pub name: String,
    /// The env variable it becomes, or
    pub env: Option<String>,
    /// the file it is mounted at.
    pub target: Option<String>,
    /// Its content (prints as its length only).
    pub value: SecretValue,
}

/// One healthcheck's verdict, as podman ran it in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthResult {
    /// The check's command exited 0 within its timeout.
    pub passed: bool,
    /// Its output, or why it failed (podman's error, a timeout), at most
    /// [`MAX_CHECK_OUTPUT`] bytes, for the debug output.
    pub output: String,
}

/// The most of a check's output podkeeper keeps (podman keeps 4 KiB at most too).
pub const MAX_CHECK_OUTPUT: usize = 4096;

/// What running a container's healthcheck once needs to know.
#[derive(Debug, Clone, Copy)]
pub struct HealthCall<'a> {
    /// The check's own timeout: its processes are killed once it is up.
    pub timeout: Duration,
    /// Its command, as podman runs it (exec form): how its processes are
    /// told from others in the container.
    pub command: &'a [String],
    /// The container's main process on the host (its inspect's `State.Pid`).
    pub pid: Option<u32>,
}

/// Why a runtime call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    /// The thing asked about does not exist (container, image).
    NotFound(String),
    /// The call did not answer in time.
    Timeout { call: &'static str, after: Duration },
    /// The runtime could not be reached (socket gone, service stopped).
    Unreachable(String),
    /// The runtime answered with an error.
    Failed(String),
    /// A create was refused because the name is taken: by a container podman
    /// is still removing (`podman rm -f` by hand), or by another one.
    NameInUse(String),
    /// A create refused before or after podman was asked: something it
    /// needs is missing (a network, a device) or would be ignored.
    Unmet(Unmet),
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeError::NotFound(what) => write!(f, "not found: {what}"),
            RuntimeError::Timeout { call, after } => {
                write!(f, "{call} did not answer within {}s", after.as_secs_f32())
            }
            RuntimeError::Unreachable(e) => write!(f, "podman unreachable: {e}"),
            RuntimeError::Failed(e) => f.write_str(e),
            RuntimeError::NameInUse(e) => f.write_str(e),
            RuntimeError::Unmet(u) => write!(f, "{u}"),
        }
    }
}

pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// Everything the app reconciler and the sweep need from a container runtime.
///
/// Implementations must be cheap to share (`Arc`) and every call must end:
/// the real one puts a timeout on each.
pub trait Podman: Send + Sync + 'static {
    /// The runtime's own clock: the one podman stamps its events with. The
    /// reactor compares event times with it (never with its own clock), so a
    /// simulated runtime on virtual time is judged on that time.
    fn now(&self) -> Timestamp;

    /// Whether this podman records a user's stop before it signals the
    /// process (podman 4.7 and later: `State.StoppedByUser`). Then an exit
    /// can be acted on the instant conmon writes its exit file: the inspect
    /// tells a crash from a stop still under way. Without it podkeeper waits
    /// until podman has collected the exit, and a little longer (see
    /// `reconcile::app::EXIT_GRACE`).
    fn reports_stop_intent(&self) -> bool {
        false
    }

    /// The container of that name, or `None` when there is none.
    fn inspect_container(
        &self,
        name: &str,
    ) -> impl Future<Output = RuntimeResult<Option<ContainerInfo>>> + Send;

    /// Every container carrying podkeeper's app label, in one call.
    fn list_managed(&self) -> impl Future<Output = RuntimeResult<Vec<ContainerInfo>>> + Send;

    /// Create (not start) a container. Fails with `NotFound` when the image is missing.
    fn create_container(
        &self,
        req: &CreateRequest,
    ) -> impl Future<Output = RuntimeResult<String>> + Send;

    fn start_container(&self, name: &str) -> impl Future<Output = RuntimeResult<()>> + Send;

    fn unpause_container(&self, name: &str) -> impl Future<Output = RuntimeResult<()>> + Send;

    /// Run the container's healthcheck once (`GET
    /// /libpod/containers/{name}/healthcheck`), whatever podman's own timer
    /// (none: podkeeper creates containers with it disabled). A check that
    /// fails, outlives its timeout (its processes are then killed: podman
    /// 4.3 never does) or cannot be run in the container is a failed
    /// check, `Ok` with `passed: false`; an error means podman did not
    /// answer (or the container is gone).
    fn run_healthcheck(
        &self,
        name: &str,
        call: HealthCall<'_>,
    ) -> impl Future<Output = RuntimeResult<HealthResult>> + Send;

    // Graceful stops (issue 22): every stop and remove says how (`StopWith`).

    /// Stop a container (an app declared `stopped`, a health restart),
    /// waiting `with.timeout` after its stop signal before SIGKILL;
    /// stopping a stopped one is no error.
    fn stop_container(
        &self,
        name: &str,
        with: StopWith,
    ) -> impl Future<Output = RuntimeResult<()>> + Send;

    /// Stop (if running, as [`Podman::stop_container`]) and remove a
    /// container; never its named volumes.
    fn remove_container(
        &self,
        name: &str,
        with: StopWith,
    ) -> impl Future<Output = RuntimeResult<()>> + Send;

    fn pull_image(&self, image: &str) -> impl Future<Output = RuntimeResult<()>> + Send;

    /// Whether the image is in local storage (asked when a create failed and
    /// the error alone does not say the image was missing).
    fn image_exists(&self, image: &str) -> impl Future<Output = RuntimeResult<bool>> + Send;

    // container.secrets: the podman secrets podkeeper makes, each named
    // `podkeeper.<app>.<index>.<digest>` (versioned by content), each call
    // under the one timeout.

    /// Create a podman secret holding `value`. One of that name already
    /// there is no error: the name is versioned by its content.
    fn create_secret(
        &self,
        name: &str,
        value: &SecretValue,
    ) -> impl Future<Output = RuntimeResult<()>> + Send;

    /// The names of every podman secret whose name starts with `prefix`.
    fn list_secrets(&self, prefix: &str)
        -> impl Future<Output = RuntimeResult<Vec<String>>> + Send;

    /// Remove a podman secret; one already gone is no error.
    fn remove_secret(&self, name: &str) -> impl Future<Output = RuntimeResult<()>> + Send;

    // Updates (issue 23): an update's containers are told by their names
    // (`reconcile::updates`), so renames carry its state.

    /// Rename a container (`POST /libpod/containers/{name}/rename`).
    /// `NotFound` when it is gone, `NameInUse` when `new_name` is taken.
    fn rename_container(
        &self,
        name: &str,
        new_name: &str,
    ) -> impl Future<Output = RuntimeResult<()>> + Send;

    /// The end of a container's output (stdout and stderr, as `podman
    /// logs` shows them), at most `max_bytes`, starting at a line: why a
    /// new container failed its gate.
    fn logs_tail(
        &self,
        name: &str,
        max_bytes: usize,
    ) -> impl Future<Output = RuntimeResult<String>> + Send;

    // Adoption (issue 23): a container made by another orchestrator is
    // compared field by field with its app's manifest.

    /// The container's whole config as podman shows it (its inspect and
    /// its image's: `reconcile::adopt` tells podman's defaults from what
    /// was asked); `None` when there is no container of that name.
    fn container_config(
        &self,
        name: &str,
    ) -> impl Future<Output = RuntimeResult<Option<config::ContainerConfig>>> + Send;
}

/// The last `max_bytes` of `text`, from the first line start within them
/// (or a char boundary when one line is longer).
pub fn tail_of(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    match rest.find('\n') {
        Some(i) if i + 1 < rest.len() => &rest[i + 1..],
        _ => rest,
    }
}

impl std::error::Error for RuntimeError {}
