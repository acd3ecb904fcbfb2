//! What a create needs of the host that is not there (a named network, a device) or that podman would silently leave out (cgroup limits it ignores): each a clear, typed error, retried with backoff, never a container that differs from its manifest.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmet {
    /// `container.network` names a podman network that does not exist.
    NetworkMissing(String),
    /// A `container.devices` entry whose host path is missing or no device.
    Device { path: String, why: String },
    /// podman would create the container without its declared cgroup
    /// limits (rootless on cgroup v1): podman's warning.
    LimitsIgnored(String),
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmet::NetworkMissing(n) => write!(
                f,
                "network {n:?} does not exist: create it (`podman network create {n}`, or a \
                 `{n}.network` companion); podkeeper joins it as soon as it appears"
            ),
            Unmet::Device { path, why } => write!(f, "device {path}: {why}"),
            Unmet::LimitsIgnored(warning) => write!(
                f,
                "container.resources cannot be applied here, podman says: {warning:?} \
                 (cgroup limits need cgroup v2 with delegated controllers when rootless); \
                 remove container.resources or run podman as root"
            ),
        }
    }
}
