//! What a reconcile did ([`Action`]) and why it failed ([`Failure`], with its [`Category`]), as types that status, metrics and the reactor match on.
//!
//! As kube-runtime's reconcilers return a typed `Action` and error, ours
//! return these: nothing downstream parses words back. They are put into
//! words in `report.rs` only (status renders its own table from them).

use std::time::Duration;

use crate::runtime::systemd::SystemdError;
use crate::runtime::RuntimeError;

/// What a reconcile decided to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Nothing: all is as declared (or nothing could be done).
    None,
    /// Look again later: an exit grace, podman cleaning up, a dependency,
    /// a unit in transition, a health restart held by its backoff.
    Wait,
    /// A container of the app's name that is not ours.
    Conflict,
    /// A container of the app's name that is not ours taken over as it is
    /// (issue 23): it matches the manifest.
    Adopt,
    Create,
    /// Removed and created anew (the spec changed).
    Recreate,
    Start,
    Stop,
    Unpause,
    Remove,
    /// The sweep queued apps that differ.
    Queue,
    /// The apps directory was read again.
    Reload,
    /// A health check passed after the app was not known healthy.
    Healthy,
    /// A healthy app's check failed (not yet unhealthy).
    Failing,
    /// An unhealthy app's container (or a companion's service) restarted.
    Restart,
    /// A companion's unit file written, nothing else asked.
    Write,
    WriteStart,
    WriteRestart,
    /// A companion's service left to systemd's own restart.
    Leave,
    /// A companion batch as a whole.
    Batch,
}

impl Action {
    /// Its name, as lines, status and the metrics' `action` label spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Wait => "wait",
            Action::Conflict => "conflict",
            Action::Adopt => "adopt",
            Action::Create => "create",
            Action::Recreate => "recreate",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Unpause => "unpause",
            Action::Remove => "remove",
            Action::Queue => "queue",
            Action::Reload => "reload",
            Action::Healthy => "healthy",
            Action::Failing => "failing",
            Action::Restart => "restart",
            Action::Write => "write",
            Action::WriteStart => "write+start",
            Action::WriteRestart => "write+restart",
            Action::Leave => "leave",
            Action::Batch => "batch",
        }
    }

    /// Whether a successful run of it started the container.
    pub fn starts_container(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Start | Action::Recreate | Action::Unpause
        )
    }
}

/// Why a reconcile failed: the error it met, with what it was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A podman call failed.
    Podman(RuntimeError),
    /// A create found no image (`NotFound`, which a create means so).
    Image(RuntimeError),
    /// The image was missing and could not be pulled.
    Pull { image: String, error: RuntimeError },
    /// A create kept finding the name taken (by leftover storage, say).
    NameHeld {
        name: String,
        after: Duration,
        error: RuntimeError,
    },
    /// A container of the app's name exists without podkeeper's label.
    NotOurs,
    /// A systemd call failed (companions).
    Systemd(SystemdError),
    /// A companion's own failure, in its words (its unit file could not be
    /// written, systemd did not report it, a reload withheld, a unit
    /// systemd gave up on).
    Companion(String),
    /// The apps directory could not be read.
    Manifests(String),
    /// The reconcile task panicked (or was aborted).
    Panicked(String),
}

/// A failure's category: what status, metrics and the reactor match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// podman could not be reached.
    Unreachable,
    /// A call did not answer in time.
    Timeout,
    /// The name is taken by a container that is not (or no longer) ours.
    NameConflict,
    /// The image is not there and could not be pulled.
    ImageMissing,
    /// podman or systemd answered with an error.
    Refused,
    /// podkeeper's own files (a unit file, the apps directory).
    Local,
    /// The reconcile panicked.
    Panicked,
}

impl Category {
    /// The category's name, as the metrics' `cause` label spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Unreachable => "unreachable",
            Category::Timeout => "timeout",
            Category::NameConflict => "name-conflict",
            Category::ImageMissing => "image-missing",
            Category::Refused => "refused",
            Category::Local => "local",
            Category::Panicked => "panicked",
        }
    }
}

/// A runtime error's category, by its variant.
fn of_runtime(e: &RuntimeError) -> Category {
    match e {
        RuntimeError::Unreachable(_) => Category::Unreachable,
        RuntimeError::Timeout { .. } => Category::Timeout,
        RuntimeError::NameInUse(_) => Category::NameConflict,
        // issue 22 (create): a missing network or device, limits ignored.
        RuntimeError::NotFound(_) | RuntimeError::Failed(_) | RuntimeError::Unmet(_) => {
            Category::Refused
        }
    }
}

impl Failure {
    pub fn category(&self) -> Category {
        match self {
            Failure::Podman(e) => of_runtime(e),
            Failure::Image(e) => match of_runtime(e) {
                Category::Refused => Category::ImageMissing,
                other => other,
            },
            // A pull podman could not even be asked for is podman's outage,
            // not a missing image.
            Failure::Pull { error, .. } => match of_runtime(error) {
                Category::Unreachable => Category::Unreachable,
                _ => Category::ImageMissing,
            },
            Failure::NameHeld { .. } | Failure::NotOurs => Category::NameConflict,
            Failure::Systemd(SystemdError::Timeout { .. }) => Category::Timeout,
            Failure::Systemd(SystemdError::Spawn(_)) => Category::Unreachable,
            Failure::Systemd(SystemdError::Failed { .. }) => Category::Refused,
            Failure::Companion(_) | Failure::Manifests(_) => Category::Local,
            Failure::Panicked(_) => Category::Panicked,
        }
    }

    /// Whether podman (not systemd, not podkeeper) was away: unreachable,
    /// or not answering in time.
    pub fn podman_away(&self) -> bool {
        !matches!(self, Failure::Systemd(_))
            && matches!(self.category(), Category::Unreachable | Category::Timeout)
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure::Podman(e)
    }
}

impl From<SystemdError> for Failure {
    fn from(e: SystemdError) -> Self {
        Failure::Systemd(e)
    }
}
