//! A [`Workload`] as Kubernetes objects (k8s-openapi's types, never text): a Pod or a one-replica Deployment, and a claim per named volume.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
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
            Object::Claim(o) => ("PersistentVolumeClaim", &o.metadata),
        };
        format!("{kind} {}", meta.name.as_deref().unwrap_or(""))
    }

    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        match self {
            Object::Pod(o) => serde_yaml::to_string(o),
            Object::Deployment(o) => serde_yaml::to_string(o),
            Object::Claim(o) => serde_yaml::to_string(o),
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
        let spec = PodSpec {
            containers: vec![container(w, mounts, notes)],
            volumes: (!volumes.is_empty()).then_some(volumes),
            host_network: host_network(w, notes).then_some(true),
            restart_policy: Some("Always".into()),
            ..PodSpec::default()
        };
        let mut docs: Vec<Document> = claims
            .into_iter()
            .map(|c| Document {
                comments: Vec::new(),
                object: Object::Claim(Box::new(c)),
            })
            .collect();
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

#[cfg(test)]
mod tests {
    use super::super::volumes::CLAIM_SIZE;
    use super::*;
    use crate::manifest::{parse_port, parse_volume};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn workload() -> Workload {
        Workload {
            subject: "app/web".into(),
            name: "web".into(),
            identity: (crate::APP_LABEL.into(), "web".into()),
            image: "localhost/bb:1".into(),
            ..Workload::default()
        }
    }

    fn pod_of(w: &Workload) -> (Pod, Vec<PersistentVolumeClaim>, Notes) {
        let mut notes = Notes::default();
        let docs = Exporter::new(Kind::Pod).documents(w, &mut notes);
        let mut claims = Vec::new();
        let mut pod = None;
        for d in docs {
            match d.object {
                Object::Pod(p) => pod = Some(*p),
                Object::Claim(c) => claims.push(*c),
                Object::Deployment(_) => panic!("asked for a pod"),
            }
        }
        (pod.expect("a pod"), claims, notes)
    }

    fn only_container(p: &Pod) -> &Container {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.containers.len(), 1);
        &spec.containers[0]
    }

    #[test]
    fn a_healthcheck_should_become_an_exec_liveness_probe() {
        let mut w = workload();
        w.healthcheck = Some(crate::manifest::HealthCheck {
            command: vec!["/bin/sh".into(), "-c".into(), "test -e /ok".into()],
            interval: Some("10s".into()),
            timeout: Some("1500ms".into()),
            retries: Some(4),
            start_period: Some("1m".into()),
        });
        let (pod, _, notes) = pod_of(&w);
        let p = only_container(&pod).liveness_probe.clone().unwrap();
        assert_eq!(
            p.exec.unwrap().command.unwrap(),
            ["/bin/sh", "-c", "test -e /ok"]
        );
        assert_eq!(p.period_seconds, Some(10));
        assert_eq!(p.timeout_seconds, Some(2));
        assert_eq!(p.failure_threshold, Some(4));
        assert_eq!(p.initial_delay_seconds, Some(60));
        let text = notes.to_string();
        assert!(
            text.contains("healthcheck timeout") && text.contains("whole seconds: 2s"),
            "{text}"
        );
        assert!(
            text.contains("joins the probe's arguments with spaces"),
            "{text}"
        );
    }

    #[test]
    fn a_stopped_app_should_be_a_deployment_of_zero_replicas() {
        let mut w = workload();
        w.stopped = true;
        let mut notes = Notes::default();
        let docs = Exporter::new(Kind::Deployment).documents(&w, &mut notes);
        let Object::Deployment(d) = &docs[0].object else {
            panic!("{docs:?}")
        };
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(0));
        assert!(notes.list.is_empty());
        let (_, _, notes) = pod_of(&w);
        assert!(
            notes.to_string().contains("a bare Pod cannot be stopped"),
            "{notes}"
        );
    }

    #[test]
    fn image_and_names_should_map_with_podkeepers_pull_policy() {
        let (pod, claims, notes) = pod_of(&workload());
        assert!(claims.is_empty() && notes.list.is_empty(), "{notes}");
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
        let c = only_container(&pod);
        assert_eq!(c.name, "web");
        assert_eq!(c.image.as_deref(), Some("localhost/bb:1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.host_network, None);
        assert_eq!((c.command.as_ref(), c.args.as_ref()), (None, None));
    }

    #[test]
    fn a_command_should_replace_the_cmd_not_the_entrypoint() {
        let mut w = workload();
        w.args = Some(vec!["/bin/sleep".into(), "1".into()]);
        let (pod, _, _) = pod_of(&w);
        let c = only_container(&pod);
        assert_eq!(c.args, w.args);
        assert_eq!(c.command, None, "command would replace the ENTRYPOINT");
        w.entrypoint = Some(vec!["/bin/env".into()]);
        let (pod, _, _) = pod_of(&w);
        assert_eq!(only_container(&pod).command, w.entrypoint);
    }

    #[test]
    fn env_should_map_in_order_and_names_kubernetes_refuses_should_be_noted() {
        let mut w = workload();
        w.env = BTreeMap::from([
            ("B".into(), "2".into()),
            ("A".into(), "1 $(B)".into()),
            ("1X".into(), "x".into()),
            ("BAD\u{e9}".into(), "x".into()),
        ]);
        let (pod, _, notes) = pod_of(&w);
        let env = only_container(&pod).env.clone().unwrap();
        let pairs: Vec<(&str, &str)> = env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(pairs, vec![("1X", "x"), ("A", "1 $(B)"), ("B", "2")]);
        let text = notes.to_string();
        assert!(
            text.contains("env 1X") && text.contains("older than 1.32"),
            "{text}"
        );
        assert!(text.contains("env A") && text.contains("$$("), "{text}");
        assert!(text.contains("not exported  app/web  env BAD"), "{text}");
        assert_eq!(notes.list.len(), 3);
    }

    #[test]
    fn ports_should_carry_container_port_host_port_host_ip_and_protocol() {
        let mut w = workload();
        w.ports = vec![
            parse_port("8080:80").unwrap(),
            parse_port("127.0.0.1:5353:53/udp").unwrap(),
        ];
        let (pod, _, notes) = pod_of(&w);
        assert!(notes.list.is_empty());
        let ports = only_container(&pod).ports.clone().unwrap();
        assert_eq!(
            ports[0],
            ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                host_ip: None,
                protocol: Some("TCP".into()),
                name: None
            }
        );
        assert_eq!(ports[1].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        assert_eq!(
            (ports[1].container_port, ports[1].host_port),
            (53, Some(5353))
        );
    }

    #[test]
    fn bind_mounts_should_become_host_paths_and_ro_read_only() {
        let mut w = workload();
        w.volumes = vec![
            parse_volume("/srv/web:/data:ro").unwrap(),
            parse_volume("/srv/log:/log:rw,rbind,Z").unwrap(),
        ];
        let (pod, claims, notes) = pod_of(&w);
        assert!(claims.is_empty());
        let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        assert_eq!(volumes[0].name, "host-0");
        assert_eq!(volumes[0].host_path.as_ref().unwrap().path, "/srv/web");
        assert_eq!(volumes[0].host_path.as_ref().unwrap().type_, None);
        let mounts = only_container(&pod).volume_mounts.clone().unwrap();
        assert_eq!(mounts[0].name, "host-0");
        assert_eq!(mounts[0].mount_path, "/data");
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(mounts[1].read_only, None);
        // rw and rbind are Kubernetes' defaults; Z is not.
        assert_eq!(notes.list.len(), 1, "{notes}");
        assert_eq!(notes.list[0].field, "volume /srv/log:/log option Z");
    }

    #[test]
    fn named_volumes_should_become_claims_written_once() {
        let mut w = workload();
        w.volumes = vec![parse_volume("data:/v:ro").unwrap()];
        let mut exporter = Exporter::new(Kind::Pod);
        let mut notes = Notes::default();
        let first = exporter.documents(&w, &mut notes);
        let mut other = workload();
        other.name = "api".into();
        other.volumes = vec![parse_volume("data:/w").unwrap()];
        let second = exporter.documents(&other, &mut notes);
        assert_eq!(first.len(), 2, "the claim, then the pod");
        assert_eq!(second.len(), 1, "the claim is written once");
        let Object::Claim(claim) = &first[0].object else {
            panic!("claim first")
        };
        assert_eq!(claim.metadata.name.as_deref(), Some("data"));
        let spec = claim.spec.as_ref().unwrap();
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert_eq!(
            spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
            Quantity(CLAIM_SIZE.into())
        );
        let Object::Pod(pod) = &first[1].object else {
            panic!("pod second")
        };
        let v = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        assert_eq!(v.name, "claim-0");
        assert_eq!(
            v.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data"
        );
        assert_eq!(
            only_container(pod).volume_mounts.as_ref().unwrap()[0].read_only,
            Some(true)
        );
        assert_eq!(notes.list.len(), 1, "the size note, once: {notes}");
        assert!(notes.list[0].why.contains("1Gi"));
    }

    #[test]
    fn a_volume_name_kubernetes_refuses_should_be_renamed_and_noted() {
        let mut w = workload();
        w.volumes = vec![
            parse_volume("My_Data:/v").unwrap(),
            parse_volume("my-data:/w").unwrap(),
        ];
        let (pod, claims, notes) = pod_of(&w);
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("my-data"));
        let text = notes.to_string();
        assert!(
            text.contains("changed") && text.contains("\"My_Data\" is not a Kubernetes name"),
            "{text}"
        );
        assert!(
            text.contains("not exported") && text.contains("already volume \"My_Data\"'s"),
            "{text}"
        );
        assert_eq!(
            only_container(&pod).volume_mounts.as_ref().unwrap().len(),
            1
        );
    }

    #[test]
    fn labels_should_carry_the_identity_and_move_what_kubernetes_refuses() {
        let mut w = workload();
        w.labels = BTreeMap::from([
            ("tier".into(), "front".into()),
            ("note".into(), "hello world".into()),
            ("bad key".into(), "x".into()),
        ]);
        w.annotations = BTreeMap::from([("io.podkeeper.name".into(), "Web".into())]);
        let (pod, _, notes) = pod_of(&w);
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([
                (crate::APP_LABEL.to_string(), "web".to_string()),
                ("tier".to_string(), "front".to_string()),
            ])
        );
        let annotations = pod.metadata.annotations.clone().unwrap();
        assert_eq!(annotations["note"], "hello world");
        assert_eq!(annotations["io.podkeeper.name"], "Web");
        let text = notes.to_string();
        assert!(text.contains("changed       app/web  label note     the value is not a valid Kubernetes label value"), "{text}");
        assert!(text.contains("written as an annotation"), "{text}");
        assert!(
            text.contains("not exported  app/web  label bad key  the key is not a valid"),
            "{text}"
        );
    }

    #[test]
    fn the_identity_label_should_win_over_a_units_own() {
        let mut w = workload();
        w.labels = BTreeMap::from([(crate::APP_LABEL.into(), "other".into())]);
        let (pod, _, notes) = pod_of(&w);
        assert_eq!(pod.metadata.labels.unwrap()[crate::APP_LABEL], "web");
        assert_eq!(notes.list.len(), 1);
    }

    #[test]
    fn networks_should_map_to_host_network_or_be_noted_with_the_play_flag() {
        for (net, host, note) in [
            ("host", Some(true), None),
            ("bridge", None, None),
            ("none", None, Some("--network none")),
            ("slirp4netns", None, Some("--network slirp4netns")),
            ("lan", None, Some("--network lan")),
            ("container:db", None, Some("only inside one pod")),
        ] {
            let mut w = workload();
            w.network = Some(net.into());
            let (pod, _, notes) = pod_of(&w);
            assert_eq!(pod.spec.unwrap().host_network, host, "{net}");
            match note {
                None => assert!(notes.list.is_empty(), "{net}: {notes}"),
                Some(n) => {
                    assert_eq!(notes.list.len(), 1, "{net}");
                    assert_eq!(
                        notes.list[0].verdict,
                        super::super::notes::Verdict::NotExported
                    );
                    assert!(notes.list[0].why.contains(n), "{net}: {notes}");
                }
            }
        }
        let mut w = workload();
        w.network = Some("host".into());
        w.ports = vec![parse_port("8080:80").unwrap()];
        let (_, _, notes) = pod_of(&w);
        assert!(
            notes.to_string().contains("hostPort = containerPort"),
            "{notes}"
        );
    }

    #[test]
    fn a_deployment_should_run_one_replica_recreated_selected_by_identity() {
        let mut w = workload();
        w.labels = BTreeMap::from([("tier".into(), "front".into())]);
        w.annotations = BTreeMap::from([("a".into(), "b".into())]);
        w.args = Some(vec!["/bin/true".into()]);
        let mut notes = Notes::default();
        let docs = Exporter::new(Kind::Deployment).documents(&w, &mut notes);
        let Object::Deployment(d) = &docs[0].object else {
            panic!("a deployment")
        };
        assert_eq!(d.metadata.name.as_deref(), Some("web"));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.as_ref().unwrap().type_.as_deref(),
            Some("Recreate")
        );
        assert_eq!(
            spec.selector.match_labels,
            Some(BTreeMap::from([(
                crate::APP_LABEL.to_string(),
                "web".to_string()
            )]))
        );
        let meta = spec.template.metadata.as_ref().unwrap();
        assert_eq!(meta.name, None);
        assert_eq!(meta.labels.as_ref().unwrap()["tier"], "front");
        // podman kube play takes annotations from the Deployment, a cluster from the template.
        assert_eq!(meta.annotations.as_ref().unwrap()["a"], "b");
        assert_eq!(d.metadata.annotations.as_ref().unwrap()["a"], "b");
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[0].args, w.args);
        assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    }
}
