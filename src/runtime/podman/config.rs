//! A container's full config on the real podman (adoption): its raw libpod inspect and its image's, read field by field whichever shape podman 4.3 or 5.x gives.
//!
//! Read as `serde_json::Value`, not a typed model: podman 4 and 5 differ
//! in several of these fields' shapes (`Config.Entrypoint` a string or a
//! list, `StopSignal` a number or a name), and a field podkeeper cannot
//! read is left at its default rather than failing the whole inspect.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{from_call, libpod, CallError, PodmanRuntime};
use crate::manifest::options::parse_signal;
use crate::runtime::config::{env_map, port_line, ContainerConfig, ImageConfig, Mount};
use crate::runtime::{RuntimeError, RuntimeResult};

impl PodmanRuntime {
    /// The inspect of `name` and of its image; `None` when there is no such container.
    pub(super) async fn config(&self, name: &str) -> RuntimeResult<Option<ContainerConfig>> {
        let limit = self.timeouts.quick;
        let path = libpod::path(&format!("/containers/{}/json", libpod::urlencode(name)));
        let inspect: Value = match libpod::get_json(&self.socket, &path, limit).await {
            Ok(v) => v,
            Err(CallError::Status(404, _)) => return Ok(None),
            Err(e) => {
                return match from_call("inspect", limit, e) {
                    RuntimeError::NotFound(_) => Ok(None),
                    e => Err(e),
                }
            }
        };
        // By id: the name the container was made with may since point to another image.
        let image_id = str_of(&inspect["Image"]);
        let path = libpod::path(&format!("/images/{}/json", libpod::urlencode(&image_id)));
        let image = match libpod::get_json::<Value>(&self.socket, &path, limit).await {
            Ok(v) => image_config(&v["Config"]),
            // An image removed under its container (`rmi -f`): nothing inherited is known.
            Err(CallError::Status(404, _)) => ImageConfig::default(),
            Err(e) => return Err(from_call("image inspect", limit, e)),
        };
        Ok(Some(from_inspect(&inspect, image)))
    }
}

/// A container's config out of its libpod inspect.
pub(super) fn from_inspect(v: &Value, image_config: ImageConfig) -> ContainerConfig {
    let config = &v["Config"];
    let host = &v["HostConfig"];
    let security = strings(&host["SecurityOpt"]);
    ContainerConfig {
        id: str_of(&v["Id"]),
        image: first_nonempty(&[&v["ImageName"], &config["Image"]]),
        command: strings(&config["Cmd"]),
        entrypoint: command_line(&config["Entrypoint"]),
        env: env_map(&strings(&config["Env"])),
        ports: ports(&host["PortBindings"]),
        mounts: mounts(&v["Mounts"]),
        tmpfs: host["Tmpfs"]
            .as_object()
            .map(|m| m.iter().map(|(k, o)| (k.clone(), str_of(o))).collect())
            .unwrap_or_default(),
        network_mode: str_of(&host["NetworkMode"]),
        networks: v["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        user: str_of(&config["User"]),
        workdir: str_of(&config["WorkingDir"]),
        hostname: str_of(&config["Hostname"]),
        cap_add: strings(&host["CapAdd"]),
        cap_drop: strings(&host["CapDrop"]),
        read_only: host["ReadonlyRootfs"].as_bool().unwrap_or(false),
        init: host["Init"].as_bool().unwrap_or(false),
        no_new_privileges: security.iter().any(|s| {
            s == "no-new-privileges"
                || s == "no-new-privileges:true"
                || s == "no-new-privileges=true"
        }),
        devices: host["Devices"]
            .as_array()
            .map(|ds| {
                ds.iter()
                    .map(|d| {
                        format!(
                            "{}:{}:{}",
                            str_of(&d["PathOnHost"]),
                            str_of(&d["PathInContainer"]),
                            str_of(&d["CgroupPermissions"])
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ulimits: ulimits(&host["Ulimits"]),
        memory: positive(&host["Memory"]),
        nano_cpus: positive(&host["NanoCpus"]).or_else(|| cpus_of_quota(host)),
        pids_limit: positive(&host["PidsLimit"]),
        shm_size: positive(&host["ShmSize"]),
        stop_signal: signal(&config["StopSignal"]),
        stop_timeout: config["StopTimeout"].as_u64(),
        dns: strings(&host["Dns"]),
        extra_hosts: strings(&host["ExtraHosts"]),
        group_add: strings(&host["GroupAdd"]),
        healthcheck: Some(strings(&config["Healthcheck"]["Test"])).filter(|t| !t.is_empty()),
        labels: string_map(&config["Labels"]),
        image_config,
    }
}

/// What an image's `Config` passes on to its containers.
pub(super) fn image_config(c: &Value) -> ImageConfig {
    ImageConfig {
        env: env_map(&strings(&c["Env"])),
        command: strings(&c["Cmd"]),
        entrypoint: command_line(&c["Entrypoint"]),
        workdir: str_of(&c["WorkingDir"]),
        stop_signal: signal(&c["StopSignal"]),
        labels: string_map(&c["Labels"]),
    }
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn first_nonempty(vs: &[&Value]) -> String {
    vs.iter()
        .map(|v| str_of(v))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// A list of strings; `null` or another shape is none.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// An entrypoint: a list (podman 5), or a string (podman 4.3 joins the
/// list with spaces: split back, which is exact for words without spaces).
fn command_line(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(String::from).collect(),
        other => strings(other),
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), str_of(v))).collect())
        .unwrap_or_default()
}

/// A limit; 0 (or a negative `PidsLimit`) is none.
fn positive(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

/// A CPU limit given as quota and period (podkeeper's create, `--cpu-quota`)
/// rather than `--cpus`, in billionths of a CPU.
fn cpus_of_quota(host: &Value) -> Option<u64> {
    let quota = positive(&host["CpuQuota"])?;
    let period = positive(&host["CpuPeriod"])?;
    u64::try_from(u128::from(quota) * 1_000_000_000 / u128::from(period)).ok()
}

/// `15` (podman 4, and 5 on a 4.x API path) or `"SIGTERM"` (podman 5).
fn signal(v: &Value) -> Option<i32> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| *n > 0),
        Value::String(s) if !s.is_empty() => parse_signal(s),
        _ => None,
    }
}

/// `{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}` as
/// `127.0.0.1:8080:80/tcp`, sorted.
fn ports(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (ctr, binds) in v.as_object().into_iter().flatten() {
        let (port, proto) = ctr.split_once('/').unwrap_or((ctr, "tcp"));
        for b in binds.as_array().into_iter().flatten() {
            let ip = str_of(&b["HostIp"]);
            let host = str_of(&b["HostPort"]);
            out.push(port_line(&ip, &host, port, proto));
        }
    }
    out.sort();
    out
}

fn mounts(v: &Value) -> Vec<Mount> {
    let mut out: Vec<Mount> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let source = match str_of(&m["Type"]).as_str() {
                "volume" => str_of(&m["Name"]),
                "bind" => str_of(&m["Source"]),
                _ => return None,
            };
            Some(Mount {
                source,
                dest: str_of(&m["Destination"]),
                read_only: !m["RW"].as_bool().unwrap_or(true),
            })
        })
        .collect();
    out.sort();
    out
}

/// `[{"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 2048}]` by short name.
fn ulimits(v: &Value) -> BTreeMap<String, (u64, u64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            let name = str_of(&u["Name"]).to_ascii_lowercase();
            let name = name.strip_prefix("rlimit_").unwrap_or(&name).to_string();
            Some((name, (u["Soft"].as_u64()?, u["Hard"].as_u64()?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// podman 4.3.1's inspect (API 4.0.0) of a `podman run` with many options, cut down.
    #[test]
    fn podman_4_3_and_5_4_shapes_should_read_the_same() {
        let v43 = serde_json::json!({
            "Id": "b943faadbcab", "ImageName": "localhost/bb:1", "Image": "c171",
            "Mounts": [
                {"Type": "volume", "Name": "pkvol", "Source": "/var/lib/x", "Destination": "/vol", "RW": true},
                {"Type": "bind", "Source": "/tmp", "Destination": "/data", "RW": false}],
            "Config": {"Hostname": "hh", "User": "1000:1000", "Env": ["TERM=xterm", "container=podman", "FOO=bar", "PATH=/bin"],
                "Cmd": ["sleep", "1000"], "WorkingDir": "/tmp", "Entrypoint": "", "Labels": {"a": "b"},
                "StopSignal": 2, "StopTimeout": 20, "Healthcheck": {"Test": ["CMD-SHELL", "true"]}},
            "HostConfig": {"NetworkMode": "bridge", "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "90/udp": [{"HostIp": "", "HostPort": "9090"}]},
                "CapAdd": ["CAP_NET_ADMIN"], "CapDrop": ["CAP_AUDIT_WRITE", "CAP_CHOWN"], "ReadonlyRootfs": true, "Init": true,
                "SecurityOpt": ["no-new-privileges"], "Tmpfs": {"/run": "size=1m,rw"}, "Memory": 67108864, "NanoCpus": 0, "CpuQuota": 150000, "CpuPeriod": 100000,
                "PidsLimit": 50, "Ulimits": [{"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 2048}],
                "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]},
            "NetworkSettings": {"Networks": {"podman": {}}}
        });
        let c = from_inspect(&v43, ImageConfig::default());
        assert_eq!(c.image, "localhost/bb:1");
        assert!(c.entrypoint.is_empty());
        assert_eq!(c.env["FOO"], "bar");
        assert_eq!(c.ports, ["127.0.0.1:18080:80/tcp", "9090:90/udp"]);
        assert_eq!(
            c.mounts[0],
            Mount {
                source: "/tmp".into(),
                dest: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(c.mounts[1].source, "pkvol");
        assert_eq!(c.stop_signal, Some(2));
        assert_eq!(c.ulimits["nofile"], (1024, 2048));
        assert_eq!(
            (c.memory, c.nano_cpus, c.pids_limit),
            (Some(67108864), Some(1_500_000_000), Some(50))
        );
        assert_eq!(c.devices, ["/dev/null:/dev/x:rwm"]);
        assert_eq!(c.networks, ["podman"]);
        assert!(c.no_new_privileges && c.init && c.read_only);
        // podman 5: a signal by name, an entrypoint as a list.
        let mut v5 = v43.clone();
        v5["Config"]["StopSignal"] = "SIGINT".into();
        v5["Config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c"]);
        let c5 = from_inspect(&v5, ImageConfig::default());
        assert_eq!(c5.stop_signal, Some(2));
        assert_eq!(c5.entrypoint, ["/bin/sh", "-c"]);
        // podman 4.3's string.
        v5["Config"]["Entrypoint"] = "/bin/sh -c".into();
        assert_eq!(
            from_inspect(&v5, ImageConfig::default()).entrypoint,
            ["/bin/sh", "-c"]
        );
        // Nothing readable: defaults, never a panic.
        assert_eq!(
            from_inspect(&serde_json::json!([1]), ImageConfig::default()),
            ContainerConfig::default()
        );
    }
}
