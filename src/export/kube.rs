//! A [`Workload`] as Kubernetes objects (k8s-openapi's types, never text): a Pod or a one-replica Deployment, and a claim per named volume.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, ExecAction, PersistentVolumeClaim, Pod, PodSpec,
    PodTemplateSpec, Probe, VolumeMount as KubeVolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::meta::metadata;
use super::names;
use super::notes::Notes;
use super::volumes::Claims;
use super::workload::Workload;
use crate::manifest::Restart;

/// What each workload becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kind {
    /// A bare Pod: what `podman kube play` runs as it is.
    #[default]
    Pod,
    /// A Deployment with one replica (strategy Recreate): a cluster
    /// reschedules it when its node goes.
    Deployment,
}

/// One object of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    Deployment(Box<Deployment>),
    /// An app with `restart: on-failure` or `never` under `--kind deployment`.
    Job(Box<Job>),
    Claim(Box<PersistentVolumeClaim>),
}

/// An object with the `#` lines written above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub comments: Vec<String>,
    pub object: Object,
}

impl Object {
    /// `Pod web`, `PersistentVolumeClaim data`.
    pub fn describe(&self) -> String {
        let (kind, meta) = match self {
            Object::Pod(o) => ("Pod", &o.metadata),
            Object::Deployment(o) => ("Deployment", &o.metadata),
            Object::Job(o) => ("Job", &o.metadata),
            Object::Claim(o) => ("PersistentVolumeClaim", &o.metadata),
        };
        format!("{kind} {}", meta.name.as_deref().unwrap_or(""))
    }

    /// The object as one YAML document, strings quoted by [`super::yaml`].
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        match self {
            Object::Pod(o) => super::yaml::to_string(o),
            Object::Deployment(o) => super::yaml::to_string(o),
            Object::Job(o) => super::yaml::to_string(o),
            Object::Claim(o) => super::yaml::to_string(o),
        }
    }
}

/// Builds the documents of one export. It remembers the claims already
/// written, so a volume two apps mount is claimed once.
#[derive(Debug, Default)]
pub struct Exporter {
    pub kind: Kind,
    claims: Claims,
}

impl Exporter {
    pub fn new(kind: Kind) -> Self {
        Exporter {
            kind,
            claims: Claims::default(),
        }
    }

    /// The workload's new claims, then its Pod or Deployment.
    pub fn documents(&mut self, w: &Workload, notes: &mut Notes) -> Vec<Document> {
        let (volumes, mounts, claims) = self.claims.volumes(w, notes);
        let meta = metadata(w, notes);
        let restart = w.options.restart;
        let mut spec = PodSpec {
            containers: vec![container(w, mounts, notes)],
            volumes: (!volumes.is_empty()).then_some(volumes),
            host_network: host_network(w, notes).then_some(true),
            restart_policy: Some(options::restart_policy(restart).into()),
            ..PodSpec::default()
        };
        options::apply(w, &mut spec, notes);
        let mut docs: Vec<Document> = claims
            .into_iter()
            .map(|c| Document {
                comments: Vec::new(),
                object: Object::Claim(Box::new(c)),
            })
            .collect();
        // A Deployment's pods must restart always: a one-shot app is a Job.
        let job = self.kind == Kind::Deployment && restart != Restart::Always;
        if w.stopped && self.kind == Kind::Pod {
            notes.not_exported(
                &w.subject,
                "state: stopped",
                "a bare Pod cannot be stopped: --kind deployment writes 0 replicas",
            );
        }
        let object = match self.kind {
            Kind::Pod => Object::Pod(Box::new(Pod {
                metadata: meta,
                spec: Some(spec),
                status: None,
            })),
            Kind::Deployment if job => Object::Job(Box::new(job_of(w, meta, spec, notes))),
            Kind::Deployment => Object::Deployment(Box::new(deployment(w, meta, spec))),
        };
        docs.push(Document {
            comments: Vec::new(),
            object,
        });
        // The workload's comments head its first document.
        docs[0].comments = w.comments.clone();
        docs
    }
}

/// The one container: image, entrypoint and CMD, env, working directory, ports, mounts.
///
/// A podkeeper `command` replaces the image's CMD and keeps its
/// ENTRYPOINT, as Kubernetes' `args` does (`command` would replace the
/// ENTRYPOINT): `podman kube play` gives the same Config.Cmd.
fn container(w: &Workload, mounts: Vec<KubeVolumeMount>, notes: &mut Notes) -> Container {
    let expands = |field: &str, s: &str, notes: &mut Notes| {
        if s.contains("$(") {
            notes.note(&w.subject, field, "contains $(: a cluster expands $(VAR) here and podman does not; write $$( for a literal $( on a cluster");
        }
    };
    for (field, list) in [("command", &w.args), ("entrypoint", &w.entrypoint)] {
        for s in list.iter().flatten() {
            expands(field, s, notes);
        }
    }
    let mut env = Vec::new();
    for (k, v) in &w.env {
        if !names::is_env_name(k) {
            notes.not_exported(
                &w.subject,
                format!("env {k}"),
                "Kubernetes takes only printable ASCII without '=' as an environment variable name",
            );
            continue;
        }
        if !names::is_strict_env_name(k) {
            notes.note(
                &w.subject,
                format!("env {k}"),
                "clusters older than 1.32 refuse this name (they want [-._a-zA-Z][-._a-zA-Z0-9]*)",
            );
        }
        expands(&format!("env {k}"), v, notes);
        env.push(EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        });
    }
    let ports: Vec<ContainerPort> = w
        .ports
        .iter()
        .map(|p| ContainerPort {
            container_port: i32::from(p.container_port),
            host_port: Some(i32::from(p.host_port)),
            host_ip: p.host_ip.clone(),
            protocol: Some(p.protocol.to_ascii_uppercase()),
            name: None,
        })
        .collect();
    Container {
        name: w.name.clone(),
        image: Some(w.image.clone()),
        // podkeeper pulls an image only when it is missing; so does this.
        image_pull_policy: Some("IfNotPresent".into()),
        command: w.entrypoint.clone(),
        args: w.args.clone(),
        env: (!env.is_empty()).then_some(env),
        working_dir: w.working_dir.clone(),
        ports: (!ports.is_empty()).then_some(ports),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        liveness_probe: w.healthcheck.as_ref().map(|h| liveness(w, h, notes)),
        ..Container::default()
    }
}

/// The healthcheck as an exec liveness probe: a cluster restarts the
/// container after `retries` failures, as podkeeper does. Kubernetes counts
/// in whole seconds: shorter durations are rounded up, and noted.
fn liveness(w: &Workload, h: &crate::manifest::HealthCheck, notes: &mut Notes) -> Probe {
    let mut secs = |field: &str, d: std::time::Duration, min: u64| {
        let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if d.subsec_nanos() > 0 {
            notes.changed(
                &w.subject,
                format!("healthcheck {field}"),
                format!("Kubernetes counts whole seconds: {whole}s"),
            );
        }
        i32::try_from(whole.max(min)).unwrap_or(i32::MAX)
    };
    let period = secs("interval", h.interval(), 1);
    let timeout = secs("timeout", h.timeout(), 1);
    let delay = secs("start_period", h.start_period(), 0);
    if h.command.iter().any(|a| a.contains(char::is_whitespace)) {
        notes.note(
            &w.subject,
            "healthcheck command",
            "podman 4.3's kube play joins the probe's arguments with spaces, so an argument with spaces splits there; a cluster runs it as written",
        );
    }
    Probe {
        exec: Some(ExecAction {
            command: Some(h.command.clone()),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(i32::try_from(h.retries()).unwrap_or(i32::MAX)),
        initial_delay_seconds: (delay > 0).then_some(delay),
        ..Probe::default()
    }
}

/// `host` maps to `hostNetwork`; the bridge is the pod network; every other
/// mode has no Kubernetes equivalent and is noted with what to pass to
/// `podman kube play` instead.
fn host_network(w: &Workload, notes: &mut Notes) -> bool {
    let Some(net) = w.network.as_deref() else {
        return false;
    };
    let field = format!("network: {net}");
    match net {
        "bridge" | "private" | "default" => false,
        "host" => {
            for p in w.ports.iter().filter(|p| p.host_port != p.container_port) {
                notes.note(
                    &w.subject,
                    format!("port {}:{}", p.host_port, p.container_port),
                    "with hostNetwork a cluster wants hostPort = containerPort",
                );
            }
            true
        }
        "none" => {
            notes.not_exported(&w.subject, field, "every Kubernetes pod has a network; play it with `podman kube play --network none`");
            false
        }
        "slirp4netns" | "pasta" => {
            notes.not_exported(&w.subject, field, format!("user-mode networking is podman's own; play it with `podman kube play --network {net}`"));
            false
        }
        _ if net.contains(':') => {
            notes.not_exported(
                &w.subject,
                field,
                "pods share a network only inside one pod; the pod network is used",
            );
            false
        }
        _ => {
            notes.not_exported(&w.subject, field, format!("a cluster has one pod network, not named ones; play it with `podman kube play --network {net}`"));
            false
        }
    }
}

/// One replica, replaced by stopping the old pod first (as podkeeper
/// recreates: a host port or a ReadWriteOnce claim cannot be held twice).
fn deployment(w: &Workload, meta: ObjectMeta, spec: PodSpec) -> Deployment {
    Deployment {
        metadata: meta.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(if w.stopped { 0 } else { 1 }),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([w.identity.clone()])),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { name: None, ..meta }),
                spec: Some(spec),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// A one-shot app as a Job: `never` runs once (backoffLimit 0), `on-failure`
/// retries a failed run; `state: stopped` suspends it.
fn job_of(w: &Workload, meta: ObjectMeta, spec: PodSpec, notes: &mut Notes) -> Job {
    let never = w.options.restart == Restart::Never;
    if !never {
        notes.note(
            &w.subject,
            "restart: on-failure",
            "a Job retries a failed pod at most backoffLimit (6) times; podkeeper retries as long as it runs",
        );
    }
    Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            backoff_limit: never.then_some(0),
            suspend: w.stopped.then_some(true),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { name: None, ..meta }),
                spec: Some(spec),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

mod options;
#[cfg(test)]
mod tests;
