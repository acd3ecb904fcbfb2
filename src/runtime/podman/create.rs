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

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{from_call, PodmanRuntime};
use crate::manifest::{parse_port, parse_volume, ContainerSpec};
use crate::runtime::libpod::{self, CallError};
use crate::runtime::network::Network;
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
    let body = body(req).map_err(RuntimeError::Unmet)?;
    check_host(rt, &req.spec).await?;
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

/// What the create needs of the host: its named network, its devices.
async fn check_host(rt: &PodmanRuntime, spec: &ContainerSpec) -> RuntimeResult<()> {
    if let Some(name) = Network::named(spec.network.as_deref()) {
        let limit = rt.timeouts.quick;
        let path = libpod::path(&format!("/networks/{}/exists", libpod::urlencode(name)));
        let exists = libpod::exists(&rt.socket, &path, limit)
            .await
            .map_err(|e: CallError| from_call("network exists", limit, e))?;
        if !exists {
            return Err(RuntimeError::Unmet(Unmet::NetworkMissing(name.to_string())));
        }
    }
    for dev in &spec.devices {
        check_device(dev).await.map_err(RuntimeError::Unmet)?;
    }
    Ok(())
}

/// A `devices` entry's host path (`/dev/x[:/dev/y[:rwm]]`) must be a
/// character or block device here. podkeeper sees the host's /dev (its
/// unit has no `PrivateDevices=`), which is what podman passes through.
pub async fn check_device(entry: &str) -> Result<(), Unmet> {
    use std::os::unix::fs::FileTypeExt;
    let path = entry.split(':').next().unwrap_or(entry);
    let unmet = |why: &str| Unmet::Device {
        path: path.to_string(),
        why: why.to_string(),
    };
    match tokio::fs::metadata(path).await {
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_block_device() => Ok(()),
        Ok(_) => Err(unmet("is not a device on this host")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(unmet("does not exist on this host"))
        }
        Err(e) => Err(unmet(&format!("cannot be read: {e}"))),
    }
}

/// libpod's SpecGenerator for `req`: every field the manifest sets, keyed
/// as podman reads it; an unset field is left out (podman's default).
pub fn body(req: &CreateRequest) -> Result<Value, Unmet> {
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
        set("cap_add", json!(spec.cap_add));
    }
    if !spec.cap_drop.is_empty() {
        set("cap_drop", json!(spec.cap_drop));
    }
    if spec.read_only {
        set("read_only_filesystem", json!(true));
    }
    if spec.no_new_privileges {
        set("no_new_privileges", json!(true));
    }
    if let Some(sig) = &spec.stop_signal {
        let n = parse::signal(sig).ok_or_else(|| invalid("stop_signal", sig, "a signal"))?;
        set("stop_signal", json!(n));
    }
    if let Some(t) = &spec.stop_timeout {
        let secs =
            parse::stop_timeout(t).ok_or_else(|| invalid("stop_timeout", t, "a duration"))?;
        set("stop_timeout", json!(secs));
    }
    resources(spec, &mut set)?;
    if !spec.ulimits.is_empty() {
        let mut limits = Vec::new();
        for (name, value) in &spec.ulimits {
            let (typ, soft, hard) = parse::ulimit(name, value)
                .ok_or_else(|| invalid("ulimits", value, "soft:hard or one number"))?;
            limits.push(json!({"type": typ, "soft": soft, "hard": hard}));
        }
        // With any rlimit given, podman 4.3 sets `nofile` and `nproc` it was
        // not given to 1048576, which a host whose podman lacks
        // CAP_SYS_RESOURCE (a container host) cannot set: the create's
        // start fails ("error setting rlimit type 6"). Without any, the
        // container inherits the limits podman runs with; so does it here.
        for name in ["nofile", "nproc"] {
            if !limits.iter().any(|l| l["type"] == name) {
                if let Some((soft, hard)) = inherited_rlimit(name) {
                    limits.push(json!({"type": name, "soft": soft, "hard": hard}));
                }
            }
        }
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
    // SECRETS (issue 22, `secrets` helper): `secret_env` ({ENV: secret})
    // and `secrets` ([{source, target, …}]) from the request go here.
    Ok(Value::Object(b))
}

/// podkeeper's own soft and hard limit of `nofile` or `nproc`: what podman,
/// started alike, runs with.
pub fn inherited_rlimit(name: &str) -> Option<(u64, u64)> {
    let resource = match name {
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        _ => return None,
    };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the one struct it is given.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur as u64, lim.rlim_max as u64))
}

fn invalid(field: &'static str, value: &str, allowed: &str) -> Unmet {
    Unmet::Invalid {
        field,
        why: format!("{value:?} is not {allowed}"),
    }
}

/// `resources`: memory, cpus and pids as cgroup limits (`resource_limits`,
/// the OCI runtime spec's shape), `shm_size` as /dev/shm's size.
fn resources(spec: &ContainerSpec, set: &mut impl FnMut(&str, Value)) -> Result<(), Unmet> {
    let Some(r) = &spec.resources else {
        return Ok(());
    };
    let mut limits = Map::new();
    if let Some(m) = &r.memory {
        let bytes = parse::size(m).ok_or_else(|| invalid("resources.memory", m, "a size"))?;
        limits.insert("memory".into(), json!({"limit": bytes}));
    }
    if let Some(c) = &r.cpus {
        let quota =
            parse::cpu_quota(c).ok_or_else(|| invalid("resources.cpus", c, "a CPU count"))?;
        limits.insert(
            "cpu".into(),
            json!({"quota": quota, "period": parse::CPU_PERIOD}),
        );
    }
    if let Some(p) = &r.pids {
        let n = parse::pids(p).ok_or_else(|| invalid("resources.pids", p, "a positive count"))?;
        limits.insert("pids".into(), json!({"limit": n}));
    }
    if !limits.is_empty() {
        set("resource_limits", Value::Object(limits));
    }
    if let Some(s) = &r.shm_size {
        let bytes = parse::size(s).ok_or_else(|| invalid("resources.shm_size", s, "a size"))?;
        set("shm_size", json!(bytes));
    }
    Ok(())
}

/// `network`: a mode by name; a named network joined for real (bridge mode
/// on that network, never the default one); `app:<id>` that app's
/// container's namespace (the container's name is the app's id).
fn network(spec: &ContainerSpec, set: &mut impl FnMut(&str, Value)) {
    let Some(net) = &spec.network else { return };
    match Network::parse(net) {
        Network::Mode(mode) => set("netns", json!({"nsmode": mode})),
        Network::Named(name) => {
            set("netns", json!({"nsmode": "bridge"}));
            // podman 4.x tags this field `Networks`; Go reads keys case-insensitively.
            let mut nets = BTreeMap::new();
            nets.insert(name, json!({}));
            set("Networks", json!(nets));
        }
        Network::App(id) => set("netns", json!({"nsmode": "container", "value": id})),
    }
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
    for t in &spec.tmpfs {
        let (dest, options) = match t.split_once(':') {
            Some((d, o)) => (d, o.split(',').filter(|o| !o.is_empty()).collect()),
            None => (t.as_str(), Vec::new()),
        };
        mounts.push(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
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
