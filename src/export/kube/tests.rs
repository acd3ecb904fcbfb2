//! Tests of `kube`.
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
            Object::Deployment(_) | Object::Job(_) => panic!("asked for a pod"),
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
    assert!(
        text.contains(
            "changed       app/web  label note     the value is not a valid Kubernetes label value"
        ),
        "{text}"
    );
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
