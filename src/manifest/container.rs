//! `app.container`: what the container an app runs is made of, and the spec hash that tells whether a container still matches it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use super::options::{self, Device, NetworkMode, Tmpfs, Ulimit};
use super::validate::string_or_number;
use super::HealthCheck;

/// The container an app runs. Everything here goes into the spec hash, so any
/// change to it recreates the container.
///
/// Every field added after the first release is left out of the hash while
/// it is unset (`skip_serializing_if`): a manifest valid before keeps its
/// hash, and upgrading podkeeper recreates nothing. The order of the fields
/// is the hash's order: never reorder them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `none`, `host`, `bridge`, `slirp4netns`, `pasta`, `private`, a
    /// named podman network, or `app:<id>` (another app's network namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Left out of the hash when absent, so adding the field changed no
    /// existing container's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheck>,

    // Added with issue 22: each left out of the hash while unset.
    /// Exec form, replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// An absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `uid[:gid]` or `name[:group]`.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// podman's `--init`: catatonit as PID 1.
    #[serde(default, skip_serializing_if = "is_false")]
    pub init: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `host:ip` entries for the container's /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `/dev/x`, `/dev/x:/dev/y`, `/dev/x:/dev/y:rwm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// `/path` or `/path:options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// `nofile: "1024:4096"` (soft:hard) or `nofile: 1024` (both).
    #[serde(
        default,
        deserialize_with = "strings_or_numbers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub ulimits: BTreeMap<String, String>,
    /// `SIGTERM` (default), `SIGINT`, `TERM`, `15`, …
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// How long a stop waits after the stop signal before SIGKILL, as
    /// written (`2m`); podman's default is 10 s.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_timeout: Option<String>,
    /// Files whose content the container gets as an env variable or a file,
    /// through podman secrets; never in clear anywhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
}

/// `container.resources`: cgroup limits. Sizes and counts stay as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// `512M`, `1G`, `1048576` (bytes).
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    /// `1.5`: CPUs' worth of time.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus: Option<String>,
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub pids: Option<String>,
    /// `/dev/shm`'s size: `64M`.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub shm_size: Option<String>,
}

/// One `container.secrets` entry: a file podkeeper reads, handed to the
/// container as exactly one of an env variable or a file at `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// An absolute path to a regular file owned by podkeeper's user.
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `app.restart`: whether an exited container is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Every exit is restarted (with the crash-loop backoff): a service.
    #[default]
    Always,
    /// An exit with code 0 is *completed* and left exited; others restart.
    OnFailure,
    /// Run once per spec: no exit is restarted.
    Never,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "never",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A map whose values may be written as numbers (`nofile: 1024`).
fn strings_or_numbers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        I(i64),
    }
    Ok(BTreeMap::<String, V>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                V::S(s) => s,
                V::I(i) => i.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// The parsed forms of the options, for the runtime and export. They
/// assume a validated spec: an entry that does not parse is left out
/// (validation refused it before any caller sees the spec).
impl ContainerSpec {
    /// How long a stop waits for the stop signal before SIGKILL; `None`:
    /// podman's default (10 s).
    pub fn stop_timeout(&self) -> Option<Duration> {
        options::parse_stop_timeout(self.stop_timeout.as_deref()?).ok()
    }

    /// The stop signal's number (`SIGINT` → 2); `None`: the image's or SIGTERM.
    pub fn stop_signal(&self) -> Option<i32> {
        options::parse_signal(self.stop_signal.as_deref()?)
    }

    /// `None` when unset (podman's default for the host: bridge as root,
    /// slirp4netns or pasta rootless).
    pub fn network_mode(&self) -> Option<NetworkMode> {
        options::parse_network(self.network.as_deref()?).ok()
    }

    pub fn parsed_devices(&self) -> Vec<Device> {
        self.devices
            .iter()
            .filter_map(|d| options::parse_device(d))
            .collect()
    }

    pub fn parsed_tmpfs(&self) -> Vec<Tmpfs> {
        self.tmpfs
            .iter()
            .filter_map(|t| options::parse_tmpfs(t).ok())
            .collect()
    }

    pub fn parsed_ulimits(&self) -> Vec<Ulimit> {
        self.ulimits
            .iter()
            .filter_map(|(k, v)| options::parse_ulimit(k, v).ok())
            .collect()
    }

    /// `CAP_NET_BIND_SERVICE` form (or `ALL`), as podman's API takes them.
    pub fn cap_add_names(&self) -> Vec<String> {
        self.cap_add
            .iter()
            .filter_map(|c| options::parse_capability(c))
            .collect()
    }

    pub fn cap_drop_names(&self) -> Vec<String> {
        self.cap_drop
            .iter()
            .filter_map(|c| options::parse_capability(c))
            .collect()
    }
}

impl Resources {
    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        options::parse_memory(self.memory.as_deref()?)
    }

    /// `/dev/shm`'s size in bytes.
    pub fn shm_size_bytes(&self) -> Option<u64> {
        options::parse_size(self.shm_size.as_deref()?)
    }

    /// CPUs in billionths (`1.5` → 1_500_000_000): quota = nano × period / 1e9.
    pub fn cpus_nano(&self) -> Option<u64> {
        options::parse_cpus(self.cpus.as_deref()?)
    }

    /// The pids limit.
    pub fn pids_limit(&self) -> Option<u64> {
        self.pids.as_deref()?.parse().ok()
    }
}

impl ContainerSpec {
    /// A short, stable hash of the spec. Stored as a label on the container so a
    /// sweep can tell from one list call whether a container matches its manifest.
    pub fn hash(&self) -> String {
        // serde_json of a struct with BTreeMaps is deterministic.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&json);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}
