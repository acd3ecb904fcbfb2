//! Issue 22's container options onto a Pod spec: securityContext, limits, grace period, DNS and hosts, in-memory emptyDirs, Secret references; the rest noted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostAlias, PodDNSConfig,
    PodSecurityContext, PodSpec, ResourceRequirements, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::super::names;
use super::super::notes::Notes;
use super::super::options as opt;
use super::super::workload::Workload;
use crate::manifest::Restart;

/// The pod's `restartPolicy` for the app's `restart`.
pub(super) fn restart_policy(restart: Restart) -> &'static str {
    match restart {
        Restart::Always => "Always",
        Restart::OnFailure => "OnFailure",
        Restart::Never => "Never",
    }
}

/// Everything of the workload's [`opt::Options`] that maps goes into `spec` (whose one
/// container is already built); everything that does not is noted.
pub(super) fn apply(w: &Workload, spec: &mut PodSpec, notes: &mut Notes) {
    let o = &w.options;
    let s = w.subject.as_str();
    let mut pod_security = PodSecurityContext::default();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut mounts: Vec<VolumeMount> = Vec::new();
    let mut env: Vec<EnvVar> = Vec::new();
    let security = security_context(w, &mut pod_security, notes);

    if o.init {
        notes.not_exported(s, "init: true", "Kubernetes has no init process per container; shareProcessNamespace: true makes the pod's pause process PID 1 (it reaps zombies) and may be set by hand");
    }
    if let Some(h) = &o.hostname {
        if names::is_dns1123_label(h) {
            spec.hostname = Some(h.clone());
        } else {
            notes.not_exported(
                s,
                format!("hostname: {h}"),
                "a pod's hostname must be a DNS-1123 label",
            );
        }
    }
    if !o.dns.is_empty() {
        spec.dns_policy = Some("None".into());
        spec.dns_config = Some(PodDNSConfig {
            nameservers: Some(o.dns.clone()),
            ..PodDNSConfig::default()
        });
        notes.note(s, "dns", "dnsPolicy: None: the pod resolves only through these servers, not the cluster's DNS (no service names)");
    }
    let mut aliases: Vec<HostAlias> = Vec::new();
    for e in &o.extra_hosts {
        match opt::split_host(e) {
            Some((_, "host-gateway")) => notes.not_exported(
                s,
                format!("extra_hosts: {e}"),
                "host-gateway is podman's; a pod has no address for its node",
            ),
            Some((host, ip)) => match aliases.iter_mut().find(|a| a.ip == ip) {
                Some(a) => a.hostnames.get_or_insert_with(Vec::new).push(host.into()),
                None => aliases.push(HostAlias {
                    ip: ip.into(),
                    hostnames: Some(vec![host.into()]),
                }),
            },
            None => notes.not_exported(s, format!("extra_hosts: {e}"), "not host:ip"),
        }
    }
    if !aliases.is_empty() {
        spec.host_aliases = Some(aliases);
    }
    for d in &o.devices {
        notes.not_exported(s, format!("devices: {d}"), "Kubernetes has no device field: a device plugin of the cluster provides devices (or a privileged container with a hostPath)");
    }
    for (name, value) in &o.ulimits {
        notes.not_exported(s, format!("ulimits {name}: {value}"), "Kubernetes has no per-container ulimits: they are the container runtime's (containerd, CRI-O) defaults on each node");
    }

    let container = &mut spec.containers[0];
    container.resources = limits(w, &mut volumes, &mut mounts, notes);
    tmpfs(w, &mut volumes, &mut mounts, notes);
    secrets(w, &mut volumes, &mut mounts, &mut env, notes);

    if let Some(t) = &o.stop_timeout {
        match opt::timeout_secs(t) {
            Some(secs) => {
                spec.termination_grace_period_seconds =
                    Some(i64::try_from(secs).unwrap_or(i64::MAX))
            }
            None => notes.not_exported(s, format!("stop_timeout: {t}"), "not a duration"),
        }
    }
    if let Some(sig) = &o.stop_signal {
        notes.not_exported(s, format!("stop_signal: {sig}"), "a cluster sends SIGTERM: lifecycle.stopSignal is alpha in Kubernetes 1.33 (feature gate ContainerStopSignals, needs spec.os.name); make the app stop on SIGTERM, or set it by hand where the gate is on");
    }

    container.security_context = security;
    if !env.is_empty() {
        container.env.get_or_insert_with(Vec::new).extend(env);
    }
    if !mounts.is_empty() {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(mounts);
    }
    if !volumes.is_empty() {
        spec.volumes.get_or_insert_with(Vec::new).extend(volumes);
    }
    if pod_security != PodSecurityContext::default() {
        spec.security_context = Some(pod_security);
    }
}

/// `user`, `group_add`, capabilities, `read_only`, `no_new_privileges`.
fn security_context(
    w: &Workload,
    pod: &mut PodSecurityContext,
    notes: &mut Notes,
) -> Option<SecurityContext> {
    let (o, s) = (&w.options, w.subject.as_str());
    let mut sc = SecurityContext::default();
    if let Some(user) = &o.user {
        let (u, g) = opt::split_user(user);
        match u.parse::<i64>() {
            Ok(uid) => sc.run_as_user = Some(uid),
            Err(_) => notes.not_exported(s, format!("user: {user}"), "Kubernetes takes a numeric uid (runAsUser), not a name: write the uid the image gives that user"),
        }
        match g.map(str::parse::<i64>) {
            Some(Ok(gid)) => sc.run_as_group = Some(gid),
            Some(Err(_)) if u.parse::<i64>().is_ok() => notes.not_exported(
                s,
                format!("user: {user}"),
                "Kubernetes takes a numeric gid (runAsGroup), not a group name",
            ),
            _ => {}
        }
    }
    let mut groups = Vec::new();
    for g in &o.group_add {
        match g.parse::<i64>() {
            Ok(gid) => groups.push(gid),
            Err(_) => notes.not_exported(
                s,
                format!("group_add: {g}"),
                "supplementalGroups takes numeric gids, not names",
            ),
        }
    }
    if !groups.is_empty() {
        pod.supplemental_groups = Some(groups);
    }
    let caps = |list: &[String]| -> Option<Vec<String>> {
        (!list.is_empty()).then(|| list.iter().map(|c| opt::kube_capability(c)).collect())
    };
    if !o.cap_add.is_empty() || !o.cap_drop.is_empty() {
        sc.capabilities = Some(Capabilities {
            add: caps(&o.cap_add),
            drop: caps(&o.cap_drop),
        });
    }
    if o.read_only {
        sc.read_only_root_filesystem = Some(true);
    }
    if o.no_new_privileges {
        sc.allow_privilege_escalation = Some(false);
    }
    (sc != SecurityContext::default()).then_some(sc)
}

/// `resources` as `limits`; `shm_size` as an in-memory emptyDir at /dev/shm.
fn limits(
    w: &Workload,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    notes: &mut Notes,
) -> Option<ResourceRequirements> {
    let (r, s) = (&w.options.resources, w.subject.as_str());
    let mut limits = BTreeMap::new();
    if let Some(m) = &r.memory {
        match opt::size_bytes(m) {
            Some(b) => {
                limits.insert("memory".to_string(), Quantity(opt::quantity(b)));
            }
            None => notes.not_exported(s, format!("resources memory: {m}"), "not a size"),
        }
    }
    if let Some(c) = &r.cpus {
        match opt::millicpus(c) {
            Some(m) => {
                limits.insert("cpu".to_string(), Quantity(format!("{m}m")));
            }
            None => notes.not_exported(s, format!("resources cpus: {c}"), "not a number of CPUs"),
        }
    }
    if let Some(p) = &r.pids {
        notes.not_exported(s, format!("resources pids: {p}"), "Kubernetes limits pids per pod on each node (kubelet podPidsLimit), not in the pod spec");
    }
    if let Some(shm) = &r.shm_size {
        match opt::size_bytes(shm) {
            Some(b) => {
                volumes.push(memory_dir("shm", Some(b)));
                mounts.push(VolumeMount {
                    name: "shm".into(),
                    mount_path: "/dev/shm".into(),
                    ..VolumeMount::default()
                });
            }
            None => notes.not_exported(s, format!("resources shm_size: {shm}"), "not a size"),
        }
    }
    (!limits.is_empty()).then(|| ResourceRequirements {
        limits: Some(limits),
        ..ResourceRequirements::default()
    })
}

fn memory_dir(name: &str, bytes: Option<u64>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: bytes.map(|b| Quantity(opt::quantity(b))),
        }),
        ..Volume::default()
    }
}

/// Each tmpfs as an in-memory emptyDir (`size=` its sizeLimit).
fn tmpfs(
    w: &Workload,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    notes: &mut Notes,
) {
    for (i, entry) in w.options.tmpfs.iter().enumerate() {
        let (path, options) = opt::split_tmpfs(entry);
        let mut size = None;
        for o in options {
            match o.split_once('=') {
                Some(("size", v)) => match opt::size_bytes(v) {
                    Some(b) => size = Some(b),
                    None => notes.not_exported(
                        &w.subject,
                        format!("tmpfs {path} {o}"),
                        "not a size (a percentage has no sizeLimit equivalent)",
                    ),
                },
                _ => notes.not_exported(
                    &w.subject,
                    format!("tmpfs {path} {o}"),
                    "an emptyDir takes only a size; the mount is exported without it",
                ),
            }
        }
        let name = format!("tmpfs-{i}");
        volumes.push(memory_dir(&name, size));
        mounts.push(VolumeMount {
            name,
            mount_path: path.into(),
            ..VolumeMount::default()
        });
    }
}

/// Each secret as a reference to a Secret the user creates: an env var
/// from `secretKeyRef`, or a file mounted at its target (`subPath`). The
/// secret file is never opened: only its path is named, in the note.
fn secrets(
    w: &Workload,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    env: &mut Vec<EnvVar>,
    notes: &mut Notes,
) {
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    let mut noted: Vec<String> = Vec::new();
    for (i, sec) in w.options.secrets.iter().enumerate() {
        let (name, key) = opt::secret_name(&w.name, &sec.file, i, &mut used);
        let field = format!("secrets {}", sec.file);
        if let Some(var) = &sec.env {
            env.push(EnvVar {
                name: var.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        key: key.clone(),
                        name: name.clone(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
        if let Some(target) = &sec.target {
            let vol = format!("secret-{i}");
            volumes.push(Volume {
                name: vol.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(name.clone()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: vol,
                mount_path: target.clone(),
                sub_path: Some(key.clone()),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
        // One note per Secret, however many entries use its file.
        if noted.contains(&name) {
            continue;
        }
        noted.push(name.clone());
        notes.note(
            &w.subject,
            field,
            format!(
                "a reference to the Secret {name} (key {key}), content not exported: create it with `kubectl create secret generic {name} --from-file={key}={}`",
                sec.file
            ),
        );
    }
}
