//! Creating a container on the real podman: a [`CreateRequest`] turned into libpod's SpecGenerator JSON ([`body`]), what it needs of the host checked first, and the raw create call.
//!
//! Why the body is built here, with serde_json, and not by `podman-api`'s
//! `ContainerCreateOpts`: that builder (0.11) spells `no_new_privileges`
//! as `no_new_privilages`, which podman silently ignores, and it has no
//! setter for several of issue 22's fields as podman 4.3 and 5.4 both read
//! them (`r_limits` with podman's short rlimit names, `hostadd`,
//! `dns_server`, `shm_size`, `stop_signal` as a number, `Networks`). One
//! JSON object, keyed as podman's `specgen.SpecGenerator` tags its fields
//! (the same keys from libpod API 4.0 to 5.x), gives every field reliably,
//! is unit-tested without podman, and goes through the raw call path of
//! [`libpod`]: the one timeout and the one error classification.
//!
//! Before podman is asked: a named network must exist (podman would fail
//! with a message that varies by version) and every device must be a
//! device on this host; after: a create whose warnings say podman ignored
//! the declared cgroup limits (rootless on cgroup v1) is removed again and
//! refused. Each is an [`Unmet`]: a clear error, retried with backoff.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{from_call, PodmanRuntime};
use crate::manifest::options::{check_device_on_host, NetworkMode};
use crate::manifest::{parse_port, parse_volume, ContainerSpec};
use crate::runtime::libpod::{self, CallError};
use crate::runtime::{CreateRequest, RuntimeError, RuntimeResult, Unmet};

/// What podman's create answers.
#[derive(Debug, serde::Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Warnings", default)]
    warnings: Option<Vec<String>>,
}

/// The start of podman's warning when it drops a rootless container's
/// resource limits (cgroup v1: `pkg/specgen/container_validate.go`).
const LIMITS_IGNORED: &str = "Resource limits are not supported and ignored";

/// Create the container `req` describes; its id.
pub(super) async fn create(rt: &PodmanRuntime, req: &CreateRequest) -> RuntimeResult<String> {
    let body = body(req);
    check_host(rt, &req.spec).await?;
    super::secrets::prepare(rt, &req.secrets).await?; // container.secrets
    let limit = rt.timeouts.quick;
    let created: Created = libpod::post_json(
        &rt.socket,
        &libpod::path("/containers/create"),
        &body,
        limit,
    )
    .await
    .map_err(|e| from_call("create", limit, e))?;
    let warnings = created.warnings.unwrap_or_default();
    for w in &warnings {
        tracing::warn!(container = %req.name, "podman's create warns: {w}");
    }
    if has_limits(&req.spec) {
        if let Some(w) = warnings.iter().find(|w| w.starts_with(LIMITS_IGNORED)) {
            // Never a container that silently lacks its declared limits.
            let path = libpod::path(&format!(
                "/containers/{}?force=true",
                libpod::urlencode(&created.id)
            ));
            let _ = libpod::within(limit, libpod::delete(&rt.socket, &path)).await;
            return Err(RuntimeError::Unmet(Unmet::LimitsIgnored(w.clone())));
        }
    }
    Ok(created.id)
}

/// Whether the spec declares a cgroup limit (`shm_size` is no cgroup limit).
fn has_limits(spec: &ContainerSpec) -> bool {
    spec.resources
        .as_ref()
        .is_some_and(|r| r.memory.is_some() || r.cpus.is_some() || r.pids.is_some())
}

/// What the create needs of the host: its named network, its devices
/// (validation looked at the devices when the manifest was read; a device
/// can go away later, a USB stick unplugged).
async fn check_host(rt: &PodmanRuntime, spec: &ContainerSpec) -> RuntimeResult<()> {
    if let Some(NetworkMode::Named(name)) = spec.network_mode() {
        let limit = rt.timeouts.quick;
        let path = libpod::path(&format!("/networks/{}/exists", libpod::urlencode(&name)));
        let exists = libpod::exists(&rt.socket, &path, limit)
            .await
            .map_err(|e: CallError| from_call("network exists", limit, e))?;
        if !exists {
            return Err(RuntimeError::Unmet(Unmet::NetworkMissing(name)));
        }
    }
    for dev in spec.parsed_devices() {
        check_device(&dev.host).map_err(RuntimeError::Unmet)?;
    }
    Ok(())
}

/// A device's host path must be a device here (one `stat`). podkeeper sees
/// the host's /dev (its unit has no `PrivateDevices=`): what podman passes through.
pub fn check_device(host: &str) -> Result<(), Unmet> {
    check_device_on_host(host).map_err(|why| Unmet::Device {
        path: host.to_string(),
        why,
    })
}

/// libpod's SpecGenerator for `req`: every field the manifest sets, keyed
/// as podman reads it; an unset field is left out (podman's default).
pub fn body(req: &CreateRequest) -> Value {
    let spec = &req.spec;
    let mut b = Map::new();
    let mut set = |k: &str, v: Value| {
        b.insert(k.to_string(), v);
    };
    set("name", json!(req.name));
    set("image", json!(spec.image));
    set("env", json!(spec.env));
    set("labels", json!(req.labels));
    if let Some(cmd) = &spec.command {
        set("command", json!(cmd));
    }
    if let Some(ep) = &spec.entrypoint {
        set("entrypoint", json!(ep));
    }
    if let Some(w) = &spec.workdir {
        set("work_dir", json!(w));
    }
    if let Some(u) = &spec.user {
        set("user", json!(u));
    }
    if !spec.group_add.is_empty() {
        set("groups", json!(spec.group_add));
    }
    if spec.init {
        set("init", json!(true));
    }
    if let Some(h) = &spec.hostname {
        set("hostname", json!(h));
    }
    if !spec.dns.is_empty() {
        set("dns_server", json!(spec.dns));
    }
    if !spec.extra_hosts.is_empty() {
        set("hostadd", json!(spec.extra_hosts));
    }
    if !spec.devices.is_empty() {
        // podman parses `src[:dst[:perms]]` out of `path` itself.
        let devs: Vec<Value> = spec.devices.iter().map(|d| json!({"path": d})).collect();
        set("devices", Value::Array(devs));
    }
    if !spec.cap_add.is_empty() {
        set("cap_add", json!(spec.cap_add_names()));
    }
    if !spec.cap_drop.is_empty() {
        set("cap_drop", json!(spec.cap_drop_names()));
    }
    if spec.read_only {
        set("read_only_filesystem", json!(true));
    }
    if spec.no_new_privileges {
        set("no_new_privileges", json!(true));
    }
    if let Some(n) = spec.stop_signal() {
        set("stop_signal", json!(n));
    }
    if let Some(t) = spec.stop_timeout() {
        // podman takes whole seconds; validation allows only those.
        set("stop_timeout", json!(t.as_secs()));
    }
    resources(spec, &mut set);
    let ulimits = spec.parsed_ulimits();
    if !ulimits.is_empty() {
        // podman's short name (`nofile`): it prefixes `RLIMIT_` itself.
        // With any rlimit given, podman 4.3 sets `nofile` and `nproc` that
        // were not given to 1048576 (as root), which a podman without
        // CAP_SYS_RESOURCE (in a container) cannot set: the start fails
        // ("error setting rlimit type 6"), as `podman run --ulimit` does
        // there. podkeeper sends what the manifest says, no more.
        let limits: Vec<Value> = ulimits
            .iter()
            .map(|u| json!({"type": u.name, "soft": u.soft, "hard": u.hard}))
            .collect();
        set("r_limits", Value::Array(limits));
    }
    network(spec, &mut set);
    ports(spec, &mut set);
    mounts(spec, &mut set);
    if let Some(h) = &spec.healthcheck {
        let config = super::health::config(h);
        set(
            "healthconfig",
            serde_json::to_value(config).unwrap_or_default(),
        );
    }
    super::secrets::add_to(&mut b, spec, &req.secrets);
    Value::Object(b)
}

/// `resources`: memory, cpus and pids as cgroup limits (`resource_limits`,
/// the OCI runtime spec's shape), `shm_size` as /dev/shm's size.
fn resources(spec: &ContainerSpec, set: &mut impl FnMut(&str, Value)) {
    let Some(r) = &spec.resources else { return };
    let mut limits = Map::new();
    if let Some(bytes) = r.memory_bytes() {
        limits.insert("memory".into(), json!({"limit": bytes}));
    }
    if let Some(nano) = r.cpus_nano() {
        // As podman's `--cpus`: a quota of that share of a 100 ms period.
        let quota = u128::from(nano) * u128::from(CPU_PERIOD) / 1_000_000_000;
        limits.insert(
            "cpu".into(),
            json!({"quota": u64::try_from(quota).unwrap_or(u64::MAX), "period": CPU_PERIOD}),
        );
    }
    if let Some(n) = r.pids_limit() {
        limits.insert("pids".into(), json!({"limit": n}));
    }
    if !limits.is_empty() {
        set("resource_limits", Value::Object(limits));
    }
    if let Some(bytes) = r.shm_size_bytes() {
        set("shm_size", json!(bytes));
    }
}

/// The CFS period podman uses for `--cpus` (100 ms, in µs).
const CPU_PERIOD: u64 = 100_000;

/// `network`: a mode by name; a named network joined for real (bridge mode
/// on that network, never the default one); `app:<id>` that app's
/// container's namespace (the container's name is the app's id).
fn network(spec: &ContainerSpec, set: &mut impl FnMut(&str, Value)) {
    let Some(mode) = spec.network_mode() else {
        return;
    };
    let nsmode = match mode {
        NetworkMode::None => "none",
        NetworkMode::Host => "host",
        NetworkMode::Bridge => "bridge",
        NetworkMode::Slirp4netns => "slirp4netns",
        NetworkMode::Pasta => "pasta",
        NetworkMode::Private => "private",
        NetworkMode::Named(name) => {
            set("netns", json!({"nsmode": "bridge"}));
            // podman 4.x tags this field `Networks`; Go reads keys case-insensitively.
            let mut nets = BTreeMap::new();
            nets.insert(name, json!({}));
            set("Networks", json!(nets));
            return;
        }
        NetworkMode::App(id) => {
            set("netns", json!({"nsmode": "container", "value": id}));
            return;
        }
    };
    set("netns", json!({"nsmode": nsmode}));
}

fn ports(spec: &ContainerSpec, set: &mut impl FnMut(&str, Value)) {
    let ports: Vec<Value> = spec
        .ports
        .iter()
        .filter_map(|p| parse_port(p))
        .map(|p| {
            let mut m = json!({
                "container_port": p.container_port,
                "host_port": p.host_port,
                "protocol": p.protocol,
            });
            if let Some(ip) = p.host_ip {
                m["host_ip"] = json!(ip);
            }
            m
        })
        .collect();
    if !ports.is_empty() {
        set("portmappings", Value::Array(ports));
    }
}

/// Bind mounts and tmpfs as OCI mounts, named volumes as podman's; each
/// volume's options as written (`ro`, `U`, `Z`, …: podman applies them).
fn mounts(spec: &ContainerSpec, set: &mut impl FnMut(&str, Value)) {
    let (binds, named): (Vec<_>, Vec<_>) = spec
        .volumes
        .iter()
        .filter_map(|v| parse_volume(v))
        .partition(|v| v.is_bind());
    let mut mounts: Vec<Value> = binds
        .into_iter()
        .map(|v| {
            let options = if v.options.is_empty() {
                vec!["rbind".to_string()]
            } else {
                v.options
            };
            json!({"destination": v.dest, "type": "bind", "source": v.source, "options": options})
        })
        .collect();
    for t in spec.parsed_tmpfs() {
        mounts.push(json!({"destination": t.path, "type": "tmpfs", "source": "tmpfs", "options": t.options}));
    }
    if !mounts.is_empty() {
        set("mounts", Value::Array(mounts));
    }
    let volumes: Vec<Value> = named
        .into_iter()
        .map(|v| json!({"Name": v.source, "Dest": v.dest, "Options": v.options}))
        .collect();
    if !volumes.is_empty() {
        set("volumes", Value::Array(volumes));
    }
}
