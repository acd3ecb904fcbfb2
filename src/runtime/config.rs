//! A container's full configuration as podman shows it (issue 23, adoption): what `reconcile::adopt` compares with a manifest.
//!
//! The values stay as podman reports them (its defaults included: the
//! image's env, `container=podman`, podman 4.3's extra dropped
//! capabilities, …); only the shapes that differ between podman 4.3 and 5.x
//! (a signal's number or name, an entrypoint's string or list) are made one.
//! Knowing which of them are podman's defaults is the comparison's job.

use std::collections::BTreeMap;

/// One container's configuration, as podman's inspect (and its image's) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// podman's container id.
    pub id: String,
    /// The image as it was given to the create (`localhost/bb:1`).
    pub image: String,
    /// `Config.Cmd`: the command, the image's own when none was given.
    pub command: Vec<String>,
    /// `Config.Entrypoint`, empty for none.
    pub entrypoint: Vec<String>,
    /// Every env variable the process gets (the image's and podman's too).
    pub env: BTreeMap<String, String>,
    /// Published ports, each as `[ip:]host:container/protocol`.
    pub ports: Vec<String>,
    /// Bind mounts and named volumes.
    pub mounts: Vec<Mount>,
    /// tmpfs mounts: path → podman's options (`size=1m,rw,nosuid,…`).
    pub tmpfs: BTreeMap<String, String>,
    /// `HostConfig.NetworkMode`: `none`, `host`, `bridge`, `slirp4netns`,
    /// `pasta`, `container:<id>`, …
    pub network_mode: String,
    /// The networks it joined, by name (`podman` is the default bridge).
    pub networks: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub hostname: String,
    /// `CAP_…` names.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    pub init: bool,
    pub no_new_privileges: bool,
    /// `host:container:permissions`.
    pub devices: Vec<String>,
    /// Short name (`nofile`) → (soft, hard).
    pub ulimits: BTreeMap<String, (u64, u64)>,
    /// Bytes; `None` for no limit.
    pub memory: Option<u64>,
    /// Billionths of a CPU; `None` for no limit.
    pub nano_cpus: Option<u64>,
    pub pids_limit: Option<u64>,
    pub shm_size: Option<u64>,
    /// The signal's number.
    pub stop_signal: Option<i32>,
    /// Seconds.
    pub stop_timeout: Option<u64>,
    pub dns: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub group_add: Vec<String>,
    /// The check's command as podman keeps it (`CMD-SHELL …` or `CMD …`).
    pub healthcheck: Option<Vec<String>>,
    /// Its labels (the image's included).
    pub labels: BTreeMap<String, String>,
    /// What the image itself sets: what the container has when its create
    /// did not say otherwise.
    pub image_config: ImageConfig,
}

/// The parts of an image's config a container inherits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub entrypoint: Vec<String>,
    pub workdir: String,
    pub stop_signal: Option<i32>,
    pub labels: BTreeMap<String, String>,
}

/// A bind mount (`source` an absolute path) or a named volume.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mount {
    pub source: String,
    pub dest: String,
    pub read_only: bool,
}

/// `KEY=value` entries as a map (an entry without `=` is a key with an
/// empty value, as podman shows it).
pub fn env_map<'a>(entries: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

/// One port mapping as the config and the comparison both write it:
/// `[ip:]host:container/protocol` (podman's `0.0.0.0` is no ip).
pub fn port_line(ip: &str, host: &str, ctr: &str, proto: &str) -> String {
    let ip = if ip == "0.0.0.0" { "" } else { ip };
    if ip.is_empty() {
        format!("{host}:{ctr}/{proto}")
    } else {
        format!("{ip}:{host}:{ctr}/{proto}")
    }
}
