//! A container's config against its app's manifest, field by field, knowing what podman and the image add by themselves.
//!
//! A container made by a plain `podman run` with the manifest's options
//! must compare equal, on podman 4.3 and 5.x alike; so each field accepts
//! podman's defaults where the manifest says nothing (the image's env and
//! command, `container=podman`, `HOSTNAME`, `TERM`, podman 4.3's extra
//! dropped capabilities, the tmpfs a read-only container gets, its default
//! pids limit and /dev/shm, its rlimits), and requires exactly what the
//! manifest says where it says something. Labels and rlimits the manifest
//! does not name are not differences: another orchestrator's own labels,
//! the image's, and podman's rlimits are on every such container.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::manifest::options::NetworkMode;
use crate::manifest::{parse_port, parse_volume, ContainerSpec};
use crate::runtime::config::{port_line, ContainerConfig, Mount};

/// One field that differs: `field: manifest X, container Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The manifest's field (`command`, `env FOO`, `volumes`, …).
    pub field: String,
    pub manifest: String,
    pub container: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: manifest {}, container {}",
            self.field, self.manifest, self.container
        )
    }
}

/// What stands for a field not set.
const UNSET: &str = "(unset)";

/// Env variables podman sets in every container by itself (`HOME` from
/// podman 5, `TERM` on podman 4.3).
const PODMAN_ENV: &[&str] = &["container", "HOSTNAME", "TERM", "HOME"];

/// Capabilities podman 4.3's inspect lists as dropped beyond what was
/// asked (its default set lacks them).
const PODMAN_4_DROPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW"];

/// The tmpfs podman mounts in a read-only container by itself.
const READ_ONLY_TMPFS: &[&str] = &["/tmp", "/var/tmp", "/run", "/dev/shm"];

/// podman's stop signal and timeout where nothing sets one.
const SIGTERM: i32 = 15;
const STOP_TIMEOUT_SECS: u64 = 10;
/// podman's /dev/shm where nothing sets one (64000k).
const SHM_SIZE: u64 = 65_536_000;

/// Every field in which container `c` differs from `spec`; empty when the
/// container is what the manifest would make.
pub fn differences(spec: &ContainerSpec, c: &ContainerConfig) -> Vec<Difference> {
    let mut d = Diffs::default();
    image(&mut d, spec, c);
    commands(&mut d, spec, c);
    env(&mut d, spec, c);
    d.sets("ports", ports_of(spec), c.ports.iter().cloned().collect());
    d.sets("volumes", volumes_of(spec), mounts_of(&c.mounts));
    tmpfs(&mut d, spec, c);
    network(&mut d, spec, c);
    d.field("user", spec.user.as_deref().unwrap_or(""), &c.user);
    workdir(&mut d, spec, c);
    hostname(&mut d, spec, c);
    d.sets(
        "cap_add",
        spec.cap_add_names().into_iter().collect(),
        set(&c.cap_add),
    );
    cap_drop(&mut d, spec, c);
    d.flag("read_only", spec.read_only, c.read_only);
    d.flag("init", spec.init, c.init);
    d.flag(
        "no_new_privileges",
        spec.no_new_privileges,
        c.no_new_privileges,
    );
    let devices = spec
        .parsed_devices()
        .into_iter()
        .map(|x| format!("{}:{}:{}", x.host, x.container, x.permissions))
        .collect();
    d.sets("devices", devices, set(&c.devices));
    for u in spec.parsed_ulimits() {
        let want = (u.soft, u.hard);
        let got = c.ulimits.get(u.name).copied();
        if got != Some(want) {
            let show = |l: Option<(u64, u64)>| l.map_or(UNSET.into(), |(s, h)| format!("{s}:{h}"));
            d.push(format!("ulimits {}", u.name), show(Some(want)), show(got));
        }
    }
    limits(&mut d, spec, c);
    stop(&mut d, spec, c);
    d.sets("dns", set(&spec.dns), set(&c.dns));
    d.sets("extra_hosts", set(&spec.extra_hosts), set(&c.extra_hosts));
    d.sets("group_add", set(&spec.group_add), set(&c.group_add));
    healthcheck(&mut d, spec, c);
    for (k, v) in &spec.labels {
        let got = c.labels.get(k);
        if got != Some(v) {
            d.push(format!("labels {k}"), v.clone(), shown(got));
        }
    }
    if !spec.secrets.is_empty() {
        // podkeeper's podman secrets carry the file's digest in their name:
        // a container made elsewhere has none of them, and their values are
        // never in an inspect to compare.
        let n = spec.secrets.len();
        d.push(
            "secrets",
            format!("{n} file(s)"),
            "not podkeeper's podman secrets".into(),
        );
    }
    d.0
}

#[derive(Default)]
struct Diffs(Vec<Difference>);

impl Diffs {
    fn push(&mut self, field: impl Into<String>, manifest: String, container: String) {
        self.0.push(Difference {
            field: field.into(),
            manifest,
            container,
        });
    }

    fn field(&mut self, field: &str, want: &str, got: &str) {
        if want != got {
            self.push(field, or_unset(want), or_unset(got));
        }
    }

    fn flag(&mut self, field: &str, want: bool, got: bool) {
        if want != got {
            self.push(field, want.to_string(), got.to_string());
        }
    }

    fn sets(&mut self, field: &str, want: BTreeSet<String>, got: BTreeSet<String>) {
        if want != got {
            self.push(field, list(&want), list(&got));
        }
    }
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn or_unset(s: &str) -> String {
    if s.is_empty() {
        UNSET.into()
    } else {
        s.to_string()
    }
}

fn shown(v: Option<&String>) -> String {
    v.map_or(UNSET.into(), |v| format!("{v:?}"))
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if items.is_empty() {
        "[]".into()
    } else {
        format!("[{}]", items.join(", "))
    }
}

fn argv(v: &[String]) -> String {
    if v.is_empty() {
        return UNSET.into();
    }
    format!("{v:?}")
}

/// The image as given; `busybox` and `busybox:latest` are one.
fn image(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let tagged = |s: &str| {
        let name = s.rsplit('/').next().unwrap_or(s);
        if name.contains(':') || s.contains('@') {
            s.to_string()
        } else {
            format!("{s}:latest")
        }
    };
    if tagged(&spec.image) != tagged(&c.image) {
        d.push("image", spec.image.clone(), or_unset(&c.image));
    }
}

/// The entrypoint and command; where the manifest has none, the image's.
/// An entrypoint given in the manifest clears the image's command, as
/// podman does, so then no command is as declared too.
fn commands(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let img = &c.image_config;
    let ep_ok = match &spec.entrypoint {
        Some(ep) => &c.entrypoint == ep,
        None => c.entrypoint == img.entrypoint,
    };
    if !ep_ok {
        let want = spec.entrypoint.as_deref().unwrap_or(&img.entrypoint);
        let want = match &spec.entrypoint {
            Some(_) => argv(want),
            None => format!("(the image's: {})", argv(want)),
        };
        d.push("entrypoint", want, argv(&c.entrypoint));
    }
    let cmd_ok = match &spec.command {
        Some(cmd) => &c.command == cmd,
        None if spec.entrypoint.is_some() => c.command.is_empty() || c.command == img.command,
        None => c.command == img.command,
    };
    if !cmd_ok {
        let want = match &spec.command {
            Some(cmd) => argv(cmd),
            None => format!("(the image's: {})", argv(&img.command)),
        };
        d.push("command", want, argv(&c.command));
    }
}

/// The manifest's env exactly; beyond it only what the image and podman add.
fn env(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let secret_env: BTreeSet<&str> = spec
        .secrets
        .iter()
        .filter_map(|s| s.env.as_deref())
        .collect();
    for (k, v) in &spec.env {
        let got = c.env.get(k);
        if got != Some(v) {
            d.push(format!("env {k}"), format!("{v:?}"), shown(got));
        }
    }
    for (k, v) in &c.env {
        if spec.env.contains_key(k) || secret_env.contains(k.as_str()) {
            continue;
        }
        let from_image = c.image_config.env.get(k) == Some(v);
        if !from_image && !PODMAN_ENV.contains(&k.as_str()) {
            d.push(format!("env {k}"), UNSET.into(), format!("{v:?}"));
        }
    }
}

fn ports_of(spec: &ContainerSpec) -> BTreeSet<String> {
    spec.ports
        .iter()
        .filter_map(|p| parse_port(p))
        .map(|p| {
            port_line(
                p.host_ip.as_deref().unwrap_or(""),
                &p.host_port.to_string(),
                &p.container_port.to_string(),
                &p.protocol,
            )
        })
        .collect()
}

/// Each volume as `source:dest` (`:ro` when read-only): podman shows no
/// other option of a mount (`z`, `U` act at create and leave no trace).
fn volumes_of(spec: &ContainerSpec) -> BTreeSet<String> {
    spec.volumes
        .iter()
        .filter_map(|v| parse_volume(v))
        .map(|v| {
            mount_line(&Mount {
                read_only: v.options.iter().any(|o| o == "ro"),
                source: v.source,
                dest: v.dest,
            })
        })
        .collect()
}

fn mounts_of(mounts: &[Mount]) -> BTreeSet<String> {
    mounts.iter().map(mount_line).collect()
}

fn mount_line(m: &Mount) -> String {
    let ro = if m.read_only { ":ro" } else { "" };
    format!(
        "{}:{}{ro}",
        m.source.trim_end_matches('/'),
        m.dest.trim_end_matches('/')
    )
}

/// Each declared tmpfs with (at least) its declared options; no other,
/// but those podman mounts in a read-only container.
fn tmpfs(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let declared: BTreeMap<String, Vec<String>> = spec
        .parsed_tmpfs()
        .into_iter()
        .map(|t| (t.path, t.options))
        .collect();
    for (path, options) in &declared {
        match c.tmpfs.get(path) {
            None => d.push(format!("tmpfs {path}"), list(options), UNSET.into()),
            Some(got) => {
                let got_opts: BTreeSet<&str> = got.split(',').collect();
                if !options.iter().all(|o| got_opts.contains(o.as_str())) {
                    d.push(format!("tmpfs {path}"), list(options), got.clone());
                }
            }
        }
    }
    for (path, got) in &c.tmpfs {
        let podmans = c.read_only && READ_ONLY_TMPFS.contains(&path.as_str());
        if !declared.contains_key(path) && !podmans {
            d.push(format!("tmpfs {path}"), UNSET.into(), got.clone());
        }
    }
}

/// The network mode (and a named network joined); where the manifest has
/// none, whichever default podman gives this host (bridge on `podman`,
/// slirp4netns, pasta).
fn network(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let mode = c.network_mode.as_str();
    let on_default_bridge = mode == "bridge" && c.networks.iter().all(|n| n == "podman");
    let ok = match spec.network_mode() {
        None | Some(NetworkMode::Private) => {
            mode.is_empty()
                || on_default_bridge
                || mode.starts_with("slirp4netns")
                || mode.starts_with("pasta")
        }
        Some(NetworkMode::None) => mode == "none",
        Some(NetworkMode::Host) => mode == "host",
        Some(NetworkMode::Bridge) => on_default_bridge,
        Some(NetworkMode::Slirp4netns) => mode.starts_with("slirp4netns"),
        Some(NetworkMode::Pasta) => mode.starts_with("pasta"),
        Some(NetworkMode::Named(name)) => mode == "bridge" && c.networks == [name],
        // The other app's container by id: any container's namespace
        // passes here; the name is not in the inspect.
        Some(NetworkMode::App(_)) => mode.starts_with("container:"),
    };
    if !ok {
        let got = if c.networks.is_empty() || mode != "bridge" {
            or_unset(mode)
        } else {
            format!("{mode} on {}", c.networks.join(", "))
        };
        let want = spec
            .network
            .clone()
            .unwrap_or_else(|| "(podman's default)".into());
        d.push("network", want, got);
    }
}

fn workdir(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let got = c.workdir.trim_end_matches('/');
    match &spec.workdir {
        Some(w) => d.field("workdir", w.trim_end_matches('/'), got),
        None => {
            if !got.is_empty() && got != c.image_config.workdir.trim_end_matches('/') {
                d.push("workdir", UNSET.into(), c.workdir.clone());
            }
        }
    }
}

/// Unset: podman's (the container id's start), or whatever a shared or
/// the host's network namespace gives.
fn hostname(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    match &spec.hostname {
        Some(h) => d.field("hostname", h, &c.hostname),
        None => {
            let shared = c.network_mode == "host" || c.network_mode.starts_with("container:");
            let own = c.id.get(..12).is_some_and(|p| p == c.hostname);
            if !shared && !own && !c.hostname.is_empty() {
                d.push("hostname", UNSET.into(), c.hostname.clone());
            }
        }
    }
}

fn cap_drop(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let want: BTreeSet<String> = spec.cap_drop_names().into_iter().collect();
    let got: BTreeSet<String> = c
        .cap_drop
        .iter()
        .filter(|x| want.contains(*x) || !PODMAN_4_DROPS.contains(&x.as_str()))
        .cloned()
        .collect();
    d.sets("cap_drop", want, got);
}

fn limits(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let r = spec.resources.clone().unwrap_or_default();
    let show = |v: Option<u64>| v.map_or(UNSET.into(), |v| v.to_string());
    if r.memory_bytes() != c.memory {
        d.push("resources.memory", show(r.memory_bytes()), show(c.memory));
    }
    if r.cpus_nano() != c.nano_cpus {
        let cpus = |v: Option<u64>| v.map_or(UNSET.into(), |n| format!("{}", n as f64 / 1e9));
        d.push("resources.cpus", cpus(r.cpus_nano()), cpus(c.nano_cpus));
    }
    // Unset: podman's default (`pids_limit` of containers.conf, 2048).
    if let Some(p) = r.pids_limit() {
        if Some(p) != c.pids_limit {
            d.push("resources.pids", p.to_string(), show(c.pids_limit));
        }
    }
    let shm_ok = match r.shm_size_bytes() {
        Some(b) => c.shm_size == Some(b),
        None => c.shm_size.is_none_or(|s| s == SHM_SIZE),
    };
    if !shm_ok {
        d.push(
            "resources.shm_size",
            show(r.shm_size_bytes()),
            show(c.shm_size),
        );
    }
}

fn stop(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let sig_ok = match spec.stop_signal() {
        Some(n) => c.stop_signal == Some(n),
        None => c
            .stop_signal
            .is_none_or(|n| n == SIGTERM || Some(n) == c.image_config.stop_signal),
    };
    if !sig_ok {
        let show = |n: Option<i32>| n.map_or(UNSET.into(), |n| n.to_string());
        d.push("stop_signal", show(spec.stop_signal()), show(c.stop_signal));
    }
    let want = spec.stop_timeout().map(|t| t.as_secs());
    let timeout_ok = match want {
        Some(s) => c.stop_timeout == Some(s),
        None => c.stop_timeout.is_none_or(|s| s == STOP_TIMEOUT_SECS),
    };
    if !timeout_ok {
        let show = |s: Option<u64>| s.map_or(UNSET.into(), |s| format!("{s}s"));
        d.push("stop_timeout", show(want), show(c.stop_timeout));
    }
}

/// The check's command only: podkeeper runs the checks itself, on the
/// manifest's interval, whatever timer podman keeps.
fn healthcheck(d: &mut Diffs, spec: &ContainerSpec, c: &ContainerConfig) {
    let want = spec.healthcheck.as_ref().map(|h| &h.command);
    let matches = match (want, c.healthcheck.as_deref()) {
        (None, None) => true,
        (Some(cmd), Some([head, rest @ ..])) if head == "CMD" => rest == cmd.as_slice(),
        (Some(cmd), Some([head, shell])) if head == "CMD-SHELL" => {
            cmd.join(" ") == *shell
                || matches!(cmd.as_slice(), [sh, dash_c, s] if (sh == "/bin/sh" || sh == "sh") && dash_c == "-c" && s == shell)
        }
        _ => false,
    };
    if !matches {
        let show = |v: Option<&[String]>| v.map_or(UNSET.into(), argv);
        d.push(
            "healthcheck.command",
            show(want.map(Vec::as_slice)),
            show(c.healthcheck.as_deref()),
        );
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
